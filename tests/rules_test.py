"""Every EventBridge rule of infrastructure/cloudformation.yaml against real sample events
(fixtures/eventbridge, see its PROVENANCE.md): each matches exactly the events it must, judged
by moto's implementation of EventBridge's pattern matching. A typo in a pattern fails here.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import copy
import re
import glob
import json
import os
import unittest

from moto.events.models import EventPattern

import cfn_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "fixtures", "eventbridge")

# The honey bucket for this test: the bucket of the denied GetObject sample.
HONEY_BUCKET = "example-bucket"

# Which rules each sample must reach; every other pairing must not match.
EXPECTED = {
    "api-call-cloudtrail-delete-trail.json": {"CloudTrailTamperingRule"},
    "api-call-cloudtrail-stop-logging.json": {"CloudTrailTamperingRule"},
    "api-call-ec2-modify-image-attribute-unauthorized.json": {"FastDenialsRule"},
    "api-call-iam-attach-role-policy-admin.json": {"IamPolicyChangesRule"},
    "api-call-iam-create-access-key-by-root.json": {"AccessKeyChangesRule", "RootActivityRule"},
    "api-call-iam-get-role-access-denied.json": {"FastDenialsRule"},
    "api-call-iam-put-user-policy.json": {"IamPolicyChangesRule"},
    "api-call-iam-update-assume-role-policy.json": {"IamPolicyChangesRule"},
    "api-call-s3-create-bucket-by-root.json": {"RootActivityRule"},
    "api-call-s3-get-object-access-denied.json": {"FastDenialsRule", "HoneyBucketRule"},
    "console-sign-in-iam-user-failure.json": {"ConsoleSignInRule"},
    "console-sign-in-iam-user-mfa-success.json": set(),
    "console-sign-in-iam-user-no-mfa.json": {"ConsoleSignInRule"},
    "console-sign-in-root-failure.json": {"RootActivityRule"},
    "console-sign-in-root-success.json": {"RootActivityRule"},
    "guardduty-accesskey-tor-caller-medium.json": {"GuardDutyFindingsRule"},
    "guardduty-iam-privilege-escalation-high.json": {"GuardDutyFindingsRule"},
    "guardduty-iam-privilege-escalation-low.json": set(),
    "guardduty-instance-c2-dns-medium.json": {"GuardDutyFindingsRule"},
    "guardduty-s3bucket-pentest-medium.json": {"GuardDutyFindingsRule"},
    "other-health-ec2-retirement-scheduled.json": set(),
    "other-s3-object-created.json": set(),
    "other-securityhub-custom-action.json": set(),
}


def load(name):
    with open(os.path.join(SAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def variant(name, change):
    """A sample with one stated change: for what no public sample shows."""
    event = copy.deepcopy(load(name))
    change(event)
    return event


class Rules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        template = cfn_template.load()
        # Every rule made: the honey bucket named, fast denials on.
        resolved = cfn_template.Resolved(template, HoneyBucketName=HONEY_BUCKET, FastDenialAlerts="Enabled")
        cls.patterns = {}
        for name, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Events::Rule":
                continue
            assert resolved.condition(name), name
            pattern = resolved.property(name, "EventPattern")
            # The GuardDuty rule's pattern is a JSON string, so that its severity is a number.
            cls.patterns[name] = EventPattern.load(pattern if isinstance(pattern, str) else json.dumps(pattern))

    def matching(self, event):
        return {name for name, pattern in self.patterns.items() if pattern.matches_event(event)}

    def test_every_sample_reaches_exactly_its_rules(self):
        samples = sorted(os.path.basename(path) for path in glob.glob(os.path.join(SAMPLES, "*.json")))
        self.assertEqual(samples, sorted(EXPECTED), "every sample has its expectation")
        for name in samples:
            self.assertEqual(self.matching(load(name)), EXPECTED[name], name)

    def test_every_rule_is_reached_by_some_sample(self):
        reached = set().union(*EXPECTED.values()) | {"MfaDeactivationRule"}
        self.assertEqual(reached, set(self.patterns))

    def test_mfa_devices_deactivated_or_deleted(self):
        # No permissively licensed sample deactivates an MFA device: the access key sample
        # with the event name changed stands in.
        for event_name in ["DeactivateMFADevice", "DeleteVirtualMFADevice"]:
            event = variant("api-call-iam-attach-role-policy-admin.json",
                            lambda e, n=event_name: e["detail"].update(eventName=n))
            self.assertEqual(self.matching(event), {"MfaDeactivationRule"}, event_name)
        listed = variant("api-call-iam-attach-role-policy-admin.json",
                         lambda e: e["detail"].update(eventName="ListMFADevices"))
        self.assertEqual(self.matching(listed), set())

    def test_what_the_rules_leave_out(self):
        # An event AWS records on the root account's behalf is not root activity; the root user
        # acting through the console (invokedBy signin.amazonaws.com, as in the sample) is.
        by_service = variant("api-call-s3-create-bucket-by-root.json",
                             lambda e: e["detail"].update(eventType="AwsServiceEvent"))
        self.assertNotIn("RootActivityRule", self.matching(by_service))
        self.assertEqual(load("api-call-iam-create-access-key-by-root.json")["detail"]["userIdentity"]["invokedBy"],
                         "signin.amazonaws.com")
        # A finding just below the chosen severity.
        below = variant("guardduty-instance-c2-dns-medium.json", lambda e: e["detail"].update(severity=3.9))
        self.assertEqual(self.matching(below), set())
        # Another bucket is no honey bucket.
        other_bucket = variant("api-call-s3-get-object-access-denied.json",
                               lambda e: e["detail"]["requestParameters"].update(bucketName="ordinary-bucket"))
        self.assertNotIn("HoneyBucketRule", self.matching(other_bucket))
        # A denial whose error code only contains the words.
        odd = variant("api-call-iam-get-role-access-denied.json",
                      lambda e: e["detail"].update(errorCode="NotAccessDeniedReally"))
        self.assertNotIn("FastDenialsRule", self.matching(odd))

    def test_the_honey_bucket_is_the_sample_bucket(self):
        detail = load("api-call-s3-get-object-access-denied.json")["detail"]
        self.assertEqual(detail["requestParameters"]["bucketName"], HONEY_BUCKET)

    def test_patterns_are_written_out_in_the_template(self):
        with open(cfn_template.TEMPLATE, encoding="utf-8") as f:
            text = f.read()
        # Each rule's pattern is in the template itself, not assembled from elsewhere.
        for name in self.patterns:
            block = re.search(rf"\n  {name}:\n(.*?)(?=\n  [A-Za-z]|\Z)", text, re.S).group(1)
            self.assertRegex(block, r"\n      EventPattern:", name)
        self.assertIsNone(re.search(r"EventPattern: !(Join|GetAtt|ImportValue)", text))


if __name__ == "__main__":
    unittest.main()
