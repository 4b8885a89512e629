"""The known noise is filtered by AWS, before any function runs: the subscription filter's
pattern as the template composes it (the CloudTrailCloudWatchLogsFilterPattern parameter, then
the exclusions) evaluated with CloudWatch Logs' documented semantics (tests/logs_filter.py), and
the fast denial rule's EventPattern with moto's EventBridge matcher, over the CloudTrail corpus
and over the noise the corpus does not hold.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import copy
import json
import os
import unittest

from moto.events.models import EventPattern

import cfn_template
import logs_filter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fixtures", "cloudtrail", "records.jsonl")
ORIGINAL = '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }'

SCANNER = "arn:aws:iam::111122223333:user/security-scanner"
AUDIT_SESSIONS = "arn:aws:sts::111122223333:assumed-role/SecurityAudit/*"


def corpus():
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_denial(record):
    code = record.get("errorCode") or ""
    return code.endswith("UnauthorizedOperation") or code.startswith("AccessDenied")


def a_denial():
    return next(r for r in corpus() if is_denial(r) and r["userIdentity"]["type"] == "IAMUser")


def with_identity(identity, **changes):
    record = copy.deepcopy(a_denial())
    record["userIdentity"] = identity
    record.update(changes)
    return record


# The noise, in the shapes CloudTrail records it.
ANONYMOUS = with_identity({"type": "AWSAccount", "principalId": "", "accountId": "ANONYMOUS_PRINCIPAL"},
                          eventSource="s3.amazonaws.com", eventName="ListObjects", errorCode="AccessDenied")
AWS_SERVICE = with_identity({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
                            eventSource="s3.amazonaws.com", eventName="PutObject", errorCode="AccessDenied")
# Not noise: another account's principal (no ARN in the record) denied here.
OTHER_ACCOUNT = with_identity({"type": "AWSAccount", "principalId": "AIDAEXAMPLE", "accountId": "444455556666"})
SCANNER_DENIAL = with_identity({"type": "IAMUser", "principalId": "AIDASCANNER", "accountId": "111122223333",
                                "arn": SCANNER, "userName": "security-scanner"})
AUDIT_DENIAL = with_identity({"type": "AssumedRole", "principalId": "AROAAUDIT:run-7", "accountId": "111122223333",
                              "arn": "arn:aws:sts::111122223333:assumed-role/SecurityAudit/run-7"})
# A role whose name only starts like the ignored one.
AUDITOR_DENIAL = with_identity({"type": "AssumedRole", "principalId": "AROAAUDITOR:x", "accountId": "111122223333",
                                "arn": "arn:aws:sts::111122223333:assumed-role/SecurityAuditor/x"})


def filter_pattern(**parameters):
    template = cfn_template.load()
    return cfn_template.Resolved(template, **parameters).property("CloudWatchLogsSubscriptionFilter", "FilterPattern")


def fast_denials(**parameters):
    template = cfn_template.load()
    pattern = cfn_template.Resolved(template, **parameters).property("FastDenialsRule", "EventPattern")
    return EventPattern.load(json.dumps(pattern))


def as_event(record):
    return {"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws." + record.get("eventSource", "x.amazonaws.com").split(".")[0],
            "account": "111122223333", "time": record.get("eventTime"), "region": record.get("awsRegion"),
            "resources": [], "detail": record}


class LogsFilterSemantics(unittest.TestCase):
    """The evaluator itself, on the documented cases."""

    def test_documented_cases(self):
        record = {"errorCode": "Client.UnauthorizedOperation", "userIdentity": {"type": "IAMUser"}}
        self.assertTrue(logs_filter.matches(ORIGINAL, record))
        self.assertTrue(logs_filter.matches('{ $.errorCode = "AccessDenied*" }', {"errorCode": "AccessDeniedException"}))
        self.assertFalse(logs_filter.matches('{ $.errorCode = "AccessDenied*" }', {"errorCode": "xAccessDenied"}))
        self.assertFalse(logs_filter.matches('{ $.errorCode = "accessdenied*" }', {"errorCode": "AccessDenied"}))
        # != on a field the record lacks is false; NOT EXISTS is what makes it pass.
        self.assertFalse(logs_filter.matches('{ $.userIdentity.arn != "x" }', record))
        self.assertTrue(logs_filter.matches('{ $.userIdentity.arn NOT EXISTS || $.userIdentity.arn != "x" }', record))
        # && before ||.
        self.assertTrue(logs_filter.matches('{ $.a = "1" || $.b = "2" && $.c = "3" }', {"a": "1"}))
        self.assertFalse(logs_filter.matches('{ ($.a = "1" || $.b = "2") && $.c = "3" }', {"a": "1"}))
        with self.assertRaises(logs_filter.FilterPatternError):
            logs_filter.parse("{ " + "$.a = 1 && " * 100 + "$.a = 1 }")


class SubscriptionFilter(unittest.TestCase):
    def test_by_default_the_original_selection_less_anonymous_and_service_denials(self):
        pattern = filter_pattern()
        self.assertLessEqual(len(pattern), logs_filter.MAX_PATTERN_LENGTH)
        kept = 0
        for record in corpus():
            expected = logs_filter.matches(ORIGINAL, record)
            self.assertEqual(expected, is_denial(record), record.get("errorCode"))
            self.assertEqual(logs_filter.matches(pattern, record), expected, record.get("eventID"))
            kept += expected
        self.assertGreater(kept, 90)
        self.assertFalse(logs_filter.matches(pattern, ANONYMOUS))
        self.assertFalse(logs_filter.matches(pattern, AWS_SERVICE))
        self.assertTrue(logs_filter.matches(pattern, OTHER_ACCOUNT))
        self.assertTrue(logs_filter.matches(pattern, SCANNER_DENIAL))

    def test_ignored_principals_by_arn_or_arn_prefix(self):
        pattern = filter_pattern(IgnoredPrincipalArns=f"{SCANNER},{AUDIT_SESSIONS}")
        self.assertFalse(logs_filter.matches(pattern, SCANNER_DENIAL))
        self.assertFalse(logs_filter.matches(pattern, AUDIT_DENIAL))
        self.assertTrue(logs_filter.matches(pattern, AUDITOR_DENIAL))
        self.assertTrue(logs_filter.matches(pattern, OTHER_ACCOUNT))
        self.assertTrue(logs_filter.matches(pattern, a_denial()))
        self.assertFalse(logs_filter.matches(pattern, ANONYMOUS))

    def test_exclusions_switched_off_leave_the_selection_as_it_is(self):
        pattern = filter_pattern(IgnoreAnonymousAndServiceDenials="Disabled")
        for record in corpus() + [ANONYMOUS, AWS_SERVICE, OTHER_ACCOUNT]:
            self.assertEqual(logs_filter.matches(pattern, record), logs_filter.matches(ORIGINAL, record))

    def test_a_pattern_of_ones_own_gets_the_same_exclusions(self):
        pattern = filter_pattern(CloudTrailCloudWatchLogsFilterPattern='{ $.eventName = "ConsoleLogin" }')
        sign_in = with_identity(a_denial()["userIdentity"], eventName="ConsoleLogin")
        self.assertTrue(logs_filter.matches(pattern, sign_in))
        self.assertFalse(logs_filter.matches(pattern, dict(copy.deepcopy(ANONYMOUS), eventName="ConsoleLogin")))
        self.assertFalse(logs_filter.matches(pattern, a_denial()))

    def test_the_longest_allowed_list_still_fits_the_pattern_limit(self):
        spec = cfn_template.load()["Parameters"]["IgnoredPrincipalArns"]
        import re
        shortest = "arn:" + "x" * 16
        self.assertRegex(shortest, spec["AllowedPattern"])
        self.assertNotRegex("arn:x", spec["AllowedPattern"])
        # A * only after a /: every session of a role, never part of a session name the caller
        # chooses, nor a prefix of a role's name.
        self.assertRegex(AUDIT_SESSIONS, f"^(?:{spec['AllowedPattern']})$")
        for prefix in ["arn:aws:sts::111122223333:assumed-role/SecurityAudit/run-*",
                       "arn:aws:sts::111122223333:assumed-role/Security*",
                       "arn:aws:iam::111122223333:user/sc*anner"]:
            self.assertIsNone(re.fullmatch(spec["AllowedPattern"], prefix), prefix)
        items = (spec["MaxLength"] + 1) // (len(shortest) + 1)
        longest = ",".join([shortest] * items)
        self.assertLessEqual(len(longest), spec["MaxLength"])
        self.assertTrue(re.fullmatch(spec["AllowedPattern"], longest))
        self.assertLessEqual(len(filter_pattern(IgnoredPrincipalArns=longest)), logs_filter.MAX_PATTERN_LENGTH)


class FastDenialRule(unittest.TestCase):
    def test_the_same_noise_is_left_out(self):
        rule = fast_denials()
        for record in corpus():
            self.assertEqual(rule.matches_event(as_event(record)), is_denial(record), record.get("eventID"))
        self.assertFalse(rule.matches_event(as_event(ANONYMOUS)))
        self.assertFalse(rule.matches_event(as_event(AWS_SERVICE)))
        self.assertTrue(rule.matches_event(as_event(OTHER_ACCOUNT)))
        self.assertTrue(rule.matches_event(as_event(SCANNER_DENIAL)))

    def test_ignored_principals_by_arn_or_arn_prefix(self):
        rule = fast_denials(IgnoredPrincipalArns=f"{SCANNER},{AUDIT_SESSIONS}")
        self.assertFalse(rule.matches_event(as_event(SCANNER_DENIAL)))
        self.assertFalse(rule.matches_event(as_event(AUDIT_DENIAL)))
        self.assertTrue(rule.matches_event(as_event(AUDITOR_DENIAL)))
        self.assertTrue(rule.matches_event(as_event(OTHER_ACCOUNT)))
        self.assertFalse(rule.matches_event(as_event(ANONYMOUS)))

    def test_exclusions_switched_off(self):
        rule = fast_denials(IgnoreAnonymousAndServiceDenials="Disabled")
        self.assertTrue(rule.matches_event(as_event(ANONYMOUS)))
        self.assertTrue(rule.matches_event(as_event(AWS_SERVICE)))
        self.assertTrue(rule.matches_event(as_event(a_denial())))


if __name__ == "__main__":
    unittest.main()
