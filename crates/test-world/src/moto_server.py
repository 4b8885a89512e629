"""moto_server, with two changes that keep its SQS queues usable under load and one that lets
a template read as CloudFormation reads it; nothing else differs from `moto_server`.

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

from moto.server import main  # noqa: E402

sys.exit(main())
