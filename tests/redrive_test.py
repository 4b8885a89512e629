"""The choices infrastructure/redrive.py makes about what a failure queue holds; the stack test
runs it against moto and the real functions."""
import io
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "infrastructure"))
import redrive  # noqa: E402


def message(message_id, body):
    return {"MessageId": message_id, "ReceiptHandle": "handle-" + message_id, "Body": body,
            "MD5OfBody": "md5", "Attributes": {"ApproximateReceiveCount": "5"}}


ON_FAILURE = json.dumps({
    "version": "1.0", "timestamp": "2026-01-01T00:00:00.000Z",
    "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
                       "condition": "RetriesExhausted", "approximateInvokeCount": 3},
    "requestPayload": {"awslogs": {"data": "H4sI"}},
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "responsePayload": {"errorType": "PublishFailed", "errorMessage": "SNS is down"},
})
# What a rule target's dead-letter queue holds: the event EventBridge could not deliver.
UNDELIVERED_EVENT = {"version": "0", "id": "e", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
                     "account": "1", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
                     "detail": {"severity": 8}}
A_MESSAGE = json.dumps({"subject": "s", "fields": [], "metadata": {}, "tags": []})


class Redrive(unittest.TestCase):
    def test_on_failure_records_replay_their_event_and_queue_messages_replay_as_a_batch(self):
        records, batch = redrive.replay_plan([message("1", ON_FAILURE), message("2", A_MESSAGE),
                                              message("3", "not json")])
        self.assertEqual([(m["MessageId"], event) for m, event in records], [("1", {"awslogs": {"data": "H4sI"}})])
        self.assertEqual([m["MessageId"] for m in batch], ["2", "3"])

    def test_undelivered_eventbridge_events_replay_alone_as_themselves(self):
        records, batch = redrive.replay_plan([message("1", json.dumps(UNDELIVERED_EVENT)),
                                              message("2", A_MESSAGE)])
        self.assertEqual([(m["MessageId"], event) for m, event in records], [("1", UNDELIVERED_EVENT)])
        self.assertEqual([m["MessageId"] for m in batch], ["2"])

    def test_a_batch_is_the_event_the_event_source_mapping_would_build(self):
        event = redrive.sqs_event([message("2", A_MESSAGE)], "arn:aws:sqs:eu-west-1:1:q", "eu-west-1")
        [record] = event["Records"]
        self.assertEqual((record["messageId"], record["receiptHandle"], record["body"]), ("2", "handle-2", A_MESSAGE))
        self.assertEqual((record["eventSource"], record["eventSourceARN"], record["awsRegion"]),
                         ("aws:sqs", "arn:aws:sqs:eu-west-1:1:q", "eu-west-1"))

    def test_only_what_the_function_handled_counts_as_done(self):
        batch = [message("a", A_MESSAGE), message("b", A_MESSAGE)]
        self.assertEqual(redrive.batch_failures({"batchItemFailures": []}, batch), [])
        self.assertEqual(redrive.batch_failures({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "x"}]}, batch), ["b"])
        self.assertEqual(redrive.batch_failures(None, batch), ["a", "b"])
        self.assertEqual(redrive.batch_failures({"delivered": 2}, batch), [])

    def test_errors_are_shown_by_type_and_message(self):
        self.assertEqual(redrive.describe_error({"errorType": "NotDelivered", "errorMessage": "404"}), "NotDelivered: 404")


class FunctionStandIn:
    """A Lambda client whose function fails what it is told to, and counts what it is given (the
    stack test replays into the real functions)."""

    def __init__(self, failing=()):
        self.failing, self.invocations = set(failing), []

    def invoke(self, FunctionName, InvocationType, Payload):
        event = json.loads(Payload)
        records = event.get("Records")
        failed = False
        if records is not None:
            # An SQS batch: what fails is reported as batch item failures.
            self.invocations.extend(r["body"] for r in records)
            answer = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records
                                            if r["body"] in self.failing]}
        else:
            self.invocations.append(json.dumps(event))
            failed = json.dumps(event) in self.failing
            answer = {"errorType": "NotDelivered", "errorMessage": "no"} if failed else None

        class Stream:
            def read(self):
                return json.dumps(answer).encode()

        response = {"Payload": Stream()}
        if failed:
            response["FunctionError"] = "Unhandled"
        return response


class RedriveAgainstSqs(unittest.TestCase):
    """The replay loop and its lease against moto's SQS."""

    def setUp(self):
        from moto import mock_aws
        import boto3
        self.mock = mock_aws()
        self.mock.start()
        self.sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        self.queue = self.sqs.create_queue(QueueName="failures")["QueueUrl"]

    def tearDown(self):
        self.mock.stop()

    def send(self, *bodies):
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue, MessageBody=body)

    def run_once(self, function, **lease):
        out = io.StringIO()
        failed = redrive.redrive(self.sqs, function, self.queue, "f", out=out,
                                 lease=redrive.Lease(self.sqs, self.queue, settle=0, **lease))
        return failed, out.getvalue()

    def test_each_message_is_replayed_once_a_run_even_when_it_shows_again(self):
        bad = json.dumps({"subject": "bad", "fields": [], "metadata": {}, "tags": []})
        self.send(A_MESSAGE, bad)
        function = FunctionStandIn(failing=[bad])
        hidden = redrive.HIDDEN_SECONDS
        redrive.HIDDEN_SECONDS = 0  # the failed message shows again at once
        try:
            failed, out = self.run_once(function)
        finally:
            redrive.HIDDEN_SECONDS = hidden
        self.assertEqual(failed, 1, out)
        self.assertEqual(function.invocations.count(bad), 1, function.invocations)
        left = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        self.assertEqual([m["Body"] for m in left], [bad])

    def test_a_second_run_refuses_while_the_first_holds_the_lease(self):
        self.send(A_MESSAGE)
        first = redrive.Lease(self.sqs, self.queue, settle=0)
        first.take()
        function = FunctionStandIn()
        with self.assertRaises(redrive.Busy) as refused:
            self.run_once(function)
        self.assertIn("another redrive of this queue is running", str(refused.exception))
        self.assertEqual(function.invocations, [])
        first.release()
        failed, _ = self.run_once(function)
        self.assertEqual((failed, function.invocations), (0, [A_MESSAGE]))
        # The run let go of its lease.
        self.assertNotIn(redrive.LEASE_TAG, self.sqs.list_queue_tags(QueueUrl=self.queue).get("Tags", {}))

    def test_a_lease_left_behind_expires(self):
        self.send(A_MESSAGE)
        stale = redrive.Lease(self.sqs, self.queue, clock=lambda: time.time() - 2 * redrive.LEASE_SECONDS, settle=0)
        stale.renew()
        failed, _ = self.run_once(FunctionStandIn())
        self.assertEqual(failed, 0)


if __name__ == "__main__":
    unittest.main()
