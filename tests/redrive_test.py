"""The choices infrastructure/redrive.py makes about what a failure queue holds; the stack test
runs it against moto and the real functions."""
import json
import os
import sys
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


if __name__ == "__main__":
    unittest.main()
