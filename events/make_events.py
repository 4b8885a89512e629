#!/usr/bin/env python3
"""Regenerates the ready invoke payloads in events/ from the CloudTrail fixture corpus.

  python3 events/make_events.py [path/to/records.jsonl]
"""
import base64
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "fixtures", "cloudtrail", "records.jsonl")


def denial():
    """The first IAM user's AccessDenied in the corpus that carries an error message."""
    with open(RECORDS, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if (record.get("errorCode", "").startswith("AccessDenied") and record.get("errorMessage")
                    and record.get("userIdentity", {}).get("type") == "IAMUser"):
                return line.strip()
    raise SystemExit("no AccessDenied record with an errorMessage in " + RECORDS)


def write(name, value):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2, ensure_ascii=False)
        out.write("\n")


record = denial()
payload = {
    "messageType": "DATA_MESSAGE",
    "owner": json.loads(record).get("recipientAccountId", "111122223333"),
    "logGroup": "CloudTrail/DefaultLogGroup",
    "logStream": "111122223333_CloudTrail_us-east-1",
    "subscriptionFilters": ["Activity-Aware-IDS-CloudWatchLogsSubscriptionFilter"],
    "logEvents": [{"id": "37813620348713217281838382364736583014812741256736833536",
                   "timestamp": 1700000000000, "message": record}],
}
data = base64.b64encode(gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)).decode()
write("source-cloudtrail-cloudwatch-logs.json", {"awslogs": {"data": data}})

message = {
    "subject": "Error Message: User: arn:aws:iam::111122223333:user/alice is not authorized to perform: iam:GetPolicy",
    "fields": [
        {"key": "Error Message", "value": "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: iam:GetPolicy"},
        {"key": "Event", "value": "GetPolicy"},
        {"key": "Source", "value": "iam.amazonaws.com"},
        {"key": "User ARN", "value": "arn:aws:iam::111122223333:user/alice"},
        {"key": "Request Parameters", "value": {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}},
    ],
    "metadata": {"sourceName": "Cloudtrail",
                 "sourceIconUrl": "https://s3-us-west-2.amazonaws.com/giftbit-developer-static-resources/AWS-CloudTrail.png"},
    "tags": [],
}
topic = "arn:aws:sns:us-east-1:111122223333:Activity-Aware-IDS-SNSTopic"
write("destination-slack.json", {"Records": [{
    "EventVersion": "1.0", "EventSource": "aws:sns",
    "EventSubscriptionArn": topic + ":2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
    "Sns": {"Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e", "TopicArn": topic,
            "Subject": None, "Message": json.dumps(message), "Timestamp": "2024-03-01T12:00:05.000Z",
            "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe", "MessageAttributes": {}}}]})
print("wrote events/source-cloudtrail-cloudwatch-logs.json and events/destination-slack.json")
