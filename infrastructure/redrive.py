"""Replays what a function's failure queue holds into the function, and deletes from the queue
only what the function then handled. Run it through `./dev.sh redrive <function>`.

  python redrive.py --queue-url URL --function-name NAME

A failure queue holds one of two kinds of message, told apart by their shape:

- Lambda's on-failure record of an asynchronous invocation that failed after its retries
  (`{"requestContext": ..., "requestPayload": <the event>, ...}`), as the CloudWatch Logs source
  leaves them: the event is invoked again, and the record deleted when the function succeeds.
- An EventBridge event that a rule could not deliver to the function (the rule target's
  dead-letter queue holds the event itself, `{"detail-type": ..., "detail": ...}`), as the
  EventBridge source's queue may: the event is invoked again, alone.
- A message its SQS queue gave up on (the redrive policy moved it), as the Slack function's
  Messages: they are invoked again as one SQS batch, and deleted unless the function reports
  them as batch item failures (or fails as a whole).

Messages that fail again stay in the queue (hidden for a few minutes, then visible again) and
are counted; the exit status is 1 when any failed. A run replays each message once: one that
fails and shows again later in the same run is left for the next. One run at a time: a run
holds a lease on the queue (its tag activity-aware-ids:redrive) and another run refuses to
start while it is held. AWS endpoints, region and credentials come from the environment as for
the AWS CLI (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_LAMBDA, ...).
"""
import argparse
import json
import os
import socket
import sys
import time
import uuid

# While a message is being replayed it stays hidden, so a run never takes the same one twice.
HIDDEN_SECONDS = 300
# The tag that says a run is replaying the queue, and how long its lease lasts unless renewed.
LEASE_TAG = "activity-aware-ids:redrive"
LEASE_SECONDS = 900


class Busy(Exception):
    """Another run holds the queue's lease."""


class Lease:
    """One run at a time per queue: the run's token, and when its lease ends, in a queue tag.
    Taken by writing the tag and reading it back (the last writer wins, and any other run sees
    it is not its own)."""

    def __init__(self, sqs, queue_url, clock=time.time, settle=0.5):
        self.sqs, self.queue_url, self.clock, self.settle = sqs, queue_url, clock, settle
        self.token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def holder(self):
        value = self.sqs.list_queue_tags(QueueUrl=self.queue_url).get("Tags", {}).get(LEASE_TAG, "")
        token, _, until = value.rpartition(" ")
        try:
            return (token, float(until)) if token else None
        except ValueError:
            return None

    def take(self):
        held = self.holder()
        if held and held[0] != self.token and held[1] > self.clock():
            raise Busy(f"another redrive of this queue is running ({held[0]}, until "
                       f"{time.strftime('%H:%M:%S', time.gmtime(held[1]))} UTC); wait for it, or remove "
                       f"the queue's tag {LEASE_TAG} if it is gone")
        self.renew()
        time.sleep(self.settle)
        held = self.holder()
        if not held or held[0] != self.token:
            raise Busy("another redrive of this queue started at the same moment; run it again later")

    def renew(self):
        self.sqs.tag_queue(QueueUrl=self.queue_url,
                           Tags={LEASE_TAG: f"{self.token} {self.clock() + LEASE_SECONDS:.0f}"})

    def release(self):
        held = self.holder()
        if held and held[0] == self.token:
            self.sqs.untag_queue(QueueUrl=self.queue_url, TagKeys=[LEASE_TAG])


def replay_plan(messages):
    """Splits received messages into on-failure records and undelivered EventBridge events (each
    replayed alone, as its event) and queue messages (replayed together as one SQS batch). Returns (records, batch)."""
    records, batch = [], []
    for message in messages:
        try:
            body = json.loads(message["Body"])
        except ValueError:
            body = None
        if isinstance(body, dict) and "requestContext" in body and "requestPayload" in body:
            records.append((message, body["requestPayload"]))
        elif isinstance(body, dict) and "detail-type" in body and "detail" in body:
            records.append((message, body))
        else:
            batch.append(message)
    return records, batch


def sqs_event(messages, queue_arn, region):
    """The SQS event Lambda's event source mapping would build from these messages."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for m in messages]}


def batch_failures(answer, messages):
    """The message IDs an SQS-fed function did not handle: those it names in batchItemFailures,
    or all of them when it failed as a whole or answered something else."""
    ids = [m["MessageId"] for m in messages]
    if not isinstance(answer, dict):
        return ids
    failures = answer.get("batchItemFailures")
    if failures is None:
        # A function that answers no batch response handled the whole batch.
        return []
    return [f.get("itemIdentifier") for f in failures if f.get("itemIdentifier") in ids]


def invoke(lambda_client, function_name, payload):
    """(succeeded, answer) of one synchronous invocation."""
    response = lambda_client.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                                    Payload=json.dumps(payload).encode())
    text = response["Payload"].read().decode() or "null"
    try:
        answer = json.loads(text)
    except ValueError:
        answer = text
    return "FunctionError" not in response, answer


def describe_error(answer):
    if isinstance(answer, dict) and "errorMessage" in answer:
        return f"{answer.get('errorType', 'Error')}: {answer['errorMessage']}"
    return json.dumps(answer)[:500]


def redrive(sqs, lambda_client, queue_url, function_name, out=sys.stdout, lease=None):
    lease = lease or Lease(sqs, queue_url)
    lease.take()
    try:
        return replay_queue(sqs, lambda_client, queue_url, function_name, out, lease)
    finally:
        lease.release()


def replay_queue(sqs, lambda_client, queue_url, function_name, out, lease):
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    queue_arn = attributes["QueueArn"]
    region = queue_arn.split(":")[3]
    replayed = succeeded = 0
    seen = set()
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       VisibilityTimeout=HIDDEN_SECONDS,
                                       MessageSystemAttributeNames=["All"]).get("Messages", [])
        # What failed earlier in this run and shows again is the next run's.
        messages = [m for m in received if m["MessageId"] not in seen]
        if not messages:
            break
        seen.update(m["MessageId"] for m in messages)
        lease.renew()
        records, batch = replay_plan(messages)
        done = []
        for message, event in records:
            ok, answer = invoke(lambda_client, function_name, event)
            if ok:
                done.append(message)
            else:
                print(f"still failing: {message['MessageId']}: {describe_error(answer)}", file=out)
        if batch:
            ok, answer = invoke(lambda_client, function_name, sqs_event(batch, queue_arn, region))
            failed = batch_failures(answer if ok else None, batch)
            if not ok:
                print(f"still failing: {len(batch)} messages: {describe_error(answer)}", file=out)
            done += [m for m in batch if m["MessageId"] not in failed]
        for message in done:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        replayed += len(messages)
        succeeded += len(done)
    failed = replayed - succeeded
    print(f"replayed {replayed} message(s) into {function_name}: {succeeded} handled and deleted, "
          f"{failed} failed again and kept", file=out)
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--function-name", required=True)
    args = parser.parse_args()
    import botocore.session  # from the AWS CLI in .venv

    session = botocore.session.get_session()
    try:
        failed = redrive(session.create_client("sqs"), session.create_client("lambda"), args.queue_url,
                         args.function_name)
    except Busy as busy:
        print(f"not replayed: {busy}", file=sys.stderr)
        sys.exit(1)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
