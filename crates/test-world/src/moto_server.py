"""moto_server, with two changes that keep its SQS queues usable under load, one that lets a
template read as CloudFormation reads it, and CloudTrail's event history, which moto lacks;
nothing else differs from `moto_server`.

- moto 5 reads the clock through datetime arithmetic, and a queue reads it once per message on
  every send and receive (to compute its attributes), which makes a queue of a thousand
  messages crawl. time.time() gives the same value a hundred times faster.
- A queue deletes a message by rebuilding its message list without the lock that sending takes,
  so a message sent meanwhile (SNS delivering while a consumer deletes) can vanish. Deleting
  takes that lock here.
- CloudFormation takes a rule's EventPattern as a JSON object or as a JSON string (the template
  writes the GuardDuty rule's as a string, so the severity goes in as a number); moto encodes
  either once more as JSON, which turns a string into a pattern it cannot read. A string is
  decoded first here.
"""
import json
import sys
import time

import moto.core.utils as utils

_unix_time = utils.unix_time


def unix_time(dt=None):
    return time.time() if dt is None else _unix_time(dt)


utils.unix_time = unix_time

from moto.sqs import models as sqs_models  # noqa: E402  (after the clock is swapped)

_delete_message = sqs_models.Queue.delete_message


def delete_message(self, receipt_handle):
    with self._messages_lock:
        return _delete_message(self, receipt_handle)


sqs_models.Queue.delete_message = delete_message

from moto.events import models as events_models  # noqa: E402

_create_rule = events_models.Rule.create_from_cloudformation_json.__func__


def create_rule(cls, resource_name, cloudformation_json, *args, **kwargs):
    properties = cloudformation_json.get("Properties", {})
    if isinstance(properties.get("EventPattern"), str):
        properties["EventPattern"] = json.loads(properties["EventPattern"])
    return _create_rule(cls, resource_name, cloudformation_json, *args, **kwargs)


events_models.Rule.create_from_cloudformation_json = classmethod(create_rule)

# CloudTrail's event history (LookupEvents), which moto lacks: the records a test says CloudTrail
# recorded, one JSON record a line in the *.jsonl files of ACTIVITY_AWARE_CLOUDTRAIL_HISTORY,
# answered as CloudTrail answers: the region's records, newest first, 50 a page at most.
import glob  # noqa: E402
import os  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from moto.cloudtrail import responses as cloudtrail_responses  # noqa: E402

LOOKUP_KEYS = {
    "EventId": lambda r: r.get("eventID"),
    "EventName": lambda r: r.get("eventName"),
    "EventSource": lambda r: r.get("eventSource"),
    "ReadOnly": lambda r: str(r.get("readOnly", False)).lower(),
    "AccessKeyId": lambda r: (r.get("userIdentity") or {}).get("accessKeyId"),
    "Username": lambda r: (r.get("userIdentity") or {}).get("userName")
    or ((r.get("userIdentity") or {}).get("arn") or "").rsplit("/", 1)[-1],
}


def recorded(region):
    records = []
    for path in sorted(glob.glob(os.path.join(os.environ.get("ACTIVITY_AWARE_CLOUDTRAIL_HISTORY", "/nonexistent"), "*.jsonl"))):
        with open(path, encoding="utf-8") as lines:
            records += [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("awsRegion") == region]


def epoch(text):
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def lookup_events(self):
    attributes = self._get_param("LookupAttributes") or []
    start, end = self._get_param("StartTime"), self._get_param("EndTime")
    limit = min(int(self._get_param("MaxResults") or 50), 50)
    offset = int(self._get_param("NextToken") or 0)
    found = []
    for record in recorded(self.region):
        when = epoch(record["eventTime"])
        if (start is not None and when < float(start)) or (end is not None and when > float(end)):
            continue
        if all(LOOKUP_KEYS.get(a["AttributeKey"], lambda r: None)(record) == a["AttributeValue"] for a in attributes):
            found.append((when, record))
    found.sort(key=lambda pair: -pair[0])
    page = found[offset:offset + limit]
    answer = {"Events": [{
        "EventId": r.get("eventID"), "EventName": r.get("eventName"), "ReadOnly": str(r.get("readOnly", False)).lower(),
        "AccessKeyId": (r.get("userIdentity") or {}).get("accessKeyId"), "EventTime": when,
        "EventSource": r.get("eventSource"), "Username": LOOKUP_KEYS["Username"](r), "Resources": [],
        "CloudTrailEvent": json.dumps(r)} for when, r in page]}
    if offset + limit < len(found):
        answer["NextToken"] = str(offset + limit)
    return json.dumps(answer)


cloudtrail_responses.CloudTrailResponse.lookup_events = lookup_events

from moto.server import main  # noqa: E402

sys.exit(main())
