"""Every EventBridge rule of infrastructure/cloudformation.yaml against real sample events
(fixtures/eventbridge, see its PROVENANCE.md): each matches exactly the events it must, judged
by moto's implementation of EventBridge's pattern matching (tests/eventbridge.py). A typo in a
pattern fails here. The rules made from the detection catalogue meet its examples in
detections_test.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import copy
import re
import glob
import json
import os
import unittest

import cfn_template
import eventbridge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "fixtures", "eventbridge")

# The honey bucket for this test: the bucket of the denied GetObject sample.
HONEY_BUCKET = "example-bucket"

# Which rules each sample must reach; every other pairing must not match.
EXPECTED = {
    "api-call-cloudtrail-delete-trail.json": {"CloudTrailTamperingRule"},
    "api-call-cloudtrail-stop-logging.json": {"CloudTrailTamperingRule"},
    # A failed attempt to share an AMI: the sharing rule sends attempts of high detections too.
    "api-call-ec2-modify-image-attribute-unauthorized.json": {"FastDenialsRule", "ResourceSharingEc2Rule"},
    "api-call-iam-attach-role-policy-admin.json": {"IamPolicyChangesRule"},
    "api-call-iam-create-access-key-by-root.json": {"AccessKeyChangesRule", "RootActivityRule"},
    "api-call-iam-get-role-access-denied.json": {"FastDenialsRule"},
    "api-call-iam-put-user-policy.json": {"IamPolicyChangesRule"},
    "api-call-iam-update-assume-role-policy.json": {"IamPolicyChangesRule"},
    "api-call-s3-create-bucket-by-root.json": {"RootActivityRule"},
    "api-call-s3-get-object-access-denied.json": {"FastDenialsRule", "HoneyBucketRule"},
    "console-sign-in-iam-user-failure.json": {"ConsoleSignInSigninRule"},
    # A sign-in from a new address is news (told for the record once the address is known).
    "console-sign-in-iam-user-mfa-success.json": {"ConsoleSignInSigninRule"},
    "console-sign-in-iam-user-no-mfa.json": {"ConsoleSignInSigninRule"},
    "console-sign-in-root-failure.json": {"RootActivitySigninRule"},
    "console-sign-in-root-success.json": {"RootActivitySigninRule"},
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


def detail(**fields):
    return lambda e: e["detail"].update(fields)


# Events no public sample shows: a sample with one stated change, and the rules it must reach.
VARIANTS = {
    # No permissively licensed sample deactivates an MFA device: the policy change sample with
    # the event name changed stands in.
    "MFA device deactivated": ("api-call-iam-attach-role-policy-admin.json",
                               detail(eventName="DeactivateMFADevice"), {"MfaDeactivationRule"}),
    "virtual MFA device deleted": ("api-call-iam-attach-role-policy-admin.json",
                                   detail(eventName="DeleteVirtualMFADevice"), {"MfaDeactivationRule"}),
    "MFA devices listed": ("api-call-iam-attach-role-policy-admin.json", detail(eventName="ListMFADevices"), set()),
    # Reading an AMI's launch permissions, denied, is a denial and no attempt at sharing it.
    "image attribute read, denied": ("api-call-ec2-modify-image-attribute-unauthorized.json",
                                     detail(eventName="DescribeImageAttribute"), {"FastDenialsRule"}),
    # A trail created is a CloudTrail change (CIS CloudWatch.5), listing the trails is not.
    "trail created": ("api-call-cloudtrail-delete-trail.json", detail(eventName="CreateTrail"), {"CloudTrailTamperingRule"}),
    "trails listed": ("api-call-cloudtrail-delete-trail.json", detail(eventName="DescribeTrails"), set()),
    # An event AWS records on the root account's behalf is not root activity.
    "root's event recorded by a service": ("api-call-s3-create-bucket-by-root.json",
                                           detail(eventType="AwsServiceEvent"), set()),
    # A finding just below the chosen severity.
    "finding below the severity": ("guardduty-instance-c2-dns-medium.json", detail(severity=3.9), set()),
    # Another bucket is no honey bucket.
    "denied on another bucket": ("api-call-s3-get-object-access-denied.json",
                                 lambda e: e["detail"]["requestParameters"].update(bucketName="ordinary-bucket"),
                                 {"FastDenialsRule"}),
    # A denial whose error code only contains the words.
    "error code only containing the words": ("api-call-iam-get-role-access-denied.json",
                                             detail(errorCode="NotAccessDeniedReally"), set()),
}

# Every setting of the parameters that changes a pattern's shape: each rule made, each branch of
# the fast denials rule's !If taken.
EVERY_RULE = dict(HoneyBucketName=HONEY_BUCKET, FastDenialAlerts="Enabled")
SETTINGS = [
    EVERY_RULE,
    dict(EVERY_RULE, IgnoreAnonymousAndServiceDenials="Disabled"),
    dict(EVERY_RULE, IgnoredPrincipalArns="arn:aws:iam::123456789012:user/scanner,"
                                          "arn:aws:sts::123456789012:assumed-role/SecurityAudit/*"),
]


def on_bus(template, name, bus):
    """Whether the rule is on `bus` (None: the default bus)."""
    return template["Resources"][name]["Properties"].get("EventBusName") == bus


def rule_patterns(bus=None, **parameters):
    """The EventPattern of every rule the template makes with these parameters on `bus` (the
    default bus unless named, `{"Fn::GetAtt": ["CentralEventBus", "Name"]}`), as a dict."""
    template = cfn_template.load()
    resolved = cfn_template.Resolved(template, **parameters)
    patterns = {}
    for name in cfn_template.resources(template, "AWS::Events::Rule"):
        if not on_bus(template, name, bus):
            continue
        if resolved.condition(name) and "EventPattern" in template["Resources"][name]["Properties"]:
            pattern = resolved.property(name, "EventPattern")
            # The GuardDuty rule's pattern is a JSON string, so that its severity is a number.
            patterns[name] = json.loads(pattern) if isinstance(pattern, str) else pattern
    return patterns


def matcher(pattern):
    return eventbridge.matcher(pattern)


# The filters EventBridge documents (eb-create-pattern-operators), each with the values it takes.
# moto's matcher takes a filter it does not know as matching, so a misspelled one would pass
# every must-match sample: pattern_problems catches it instead.
def strings(value):
    return isinstance(value, str) or (isinstance(value, list) and bool(value)
                                      and all(isinstance(v, str) for v in value))


def numbers(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ignoring_case(value):
    return isinstance(value, dict) and list(value) == ["equals-ignore-case"] and isinstance(*value.values(), str)


def numeric(value):
    return (isinstance(value, list) and len(value) in (2, 4)
            and all(op in ("<", "<=", "=", ">=", ">") for op in value[::2]) and all(map(numbers, value[1::2])))


def anything_but(value):
    if isinstance(value, dict):
        return (len(value) == 1 and next(iter(value)) in ("prefix", "suffix", "wildcard", "equals-ignore-case")
                and strings(*value.values()))
    return (isinstance(value, str) or numbers(value) or strings(value)
            or (isinstance(value, list) and bool(value) and all(map(numbers, value))))


FILTERS = {
    "prefix": lambda v: isinstance(v, str) or ignoring_case(v),
    "suffix": lambda v: isinstance(v, str) or ignoring_case(v),
    "anything-but": anything_but,
    "numeric": numeric,
    "exists": lambda v: isinstance(v, bool),
    "cidr": lambda v: isinstance(v, str),
    "equals-ignore-case": lambda v: isinstance(v, str),
    "wildcard": lambda v: isinstance(v, str),
}


def pattern_problems(pattern, path="pattern"):
    """What in an event pattern EventBridge does not document: an unknown filter, a field whose
    value is no list, $or anywhere but among an object's fields."""
    if not isinstance(pattern, dict) or not pattern:
        return [f"{path}: not an object of fields"]
    problems = []
    for field, value in pattern.items():
        at = f"{path}.{field}"
        if field == "$or":
            if not isinstance(value, list) or not value:
                problems.append(f"{at}: not a list of patterns")
            else:
                for i, alternative in enumerate(value):
                    problems += pattern_problems(alternative, f"{at}[{i}]")
        elif isinstance(value, dict):
            problems += pattern_problems(value, at)
        elif not isinstance(value, list) or not value:
            problems.append(f"{at}: {value!r} is no list of values")
        else:
            for i, item in enumerate(value):
                if item is None or isinstance(item, (str, bool, int, float)):
                    continue
                if not isinstance(item, dict) or len(item) != 1:
                    problems.append(f"{at}[{i}]: {item!r} is neither a value nor a filter of one operator")
                    continue
                (operator, argument), = item.items()
                if operator not in FILTERS:
                    problems.append(f"{at}[{i}]: unknown operator {operator!r}")
                elif not FILTERS[operator](argument):
                    problems.append(f"{at}[{i}]: {operator} does not take {argument!r}")
    return problems


class Rules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        template = cfn_template.load()
        cls.rules = [name for name in cfn_template.resources(template, "AWS::Events::Rule")
                     if "EventPattern" in template["Resources"][name]["Properties"]
                     and on_bus(template, name, None)]
        cls.patterns = rule_patterns(**EVERY_RULE)
        assert set(cls.patterns) == set(cls.rules), set(cls.rules) - set(cls.patterns)
        cls.matchers = {name: matcher(pattern) for name, pattern in cls.patterns.items()}
        # Each sample and variant the test checks, with the rules it must reach.
        cls.cases = [(name, load(name), rules) for name, rules in EXPECTED.items()]
        cls.cases += [(name, variant(sample, change), rules) for name, (sample, change, rules) in VARIANTS.items()]

    def matching(self, event):
        return {name for name, pattern in self.matchers.items() if pattern.matches_event(event)}

    def test_every_sample_reaches_exactly_its_rules(self):
        samples = sorted(os.path.basename(path) for path in glob.glob(os.path.join(SAMPLES, "*.json")))
        self.assertEqual(samples, sorted(EXPECTED), "every sample has its expectation")
        for name in samples:
            self.assertEqual(self.matching(load(name)), EXPECTED[name], name)

    def test_every_variant_reaches_exactly_its_rules(self):
        for name, (sample, change, rules) in VARIANTS.items():
            self.assertEqual(self.matching(variant(sample, change)), rules, name)

    def test_every_rule_with_real_samples_has_one_to_match_and_one_to_miss(self):
        # Every rule a real sample reaches, and the hand-written one. (Every rule made from the
        # catalogue meets its detections' examples in detections_test.) The sample to miss is
        # of the rule's own kind: it fails the pattern on one of its top-level fields only.
        sampled = set().union(*EXPECTED.values(), *(rules for _, _, rules in VARIANTS.values()))
        self.assertGreaterEqual(len(sampled), 9)
        for name in sorted(sampled | {"FastDenialsRule"}):
            pattern = self.patterns[name]
            self.assertTrue([case for case, _, rules in self.cases if name in rules], f"{name}: no sample to match")
            misses = [case for case, event, rules in self.cases if name not in rules and any(
                matcher({k: v for k, v in pattern.items() if k != field}).matches_event(event) for field in pattern)]
            self.assertTrue(misses, f"{name}: no sample of its kind to miss")

    def test_the_root_user_acting_through_the_console_is_root_activity(self):
        # invokedBy signin.amazonaws.com is no event AWS records on the root account's behalf.
        sample = load("api-call-iam-create-access-key-by-root.json")
        self.assertEqual(sample["detail"]["userIdentity"]["invokedBy"], "signin.amazonaws.com")
        self.assertIn("RootActivityRule", self.matching(sample))

    def test_the_honey_bucket_is_the_parameter(self):
        # Another bucket named, the sample's bucket is no honey bucket; none named, no rule.
        sample = load("api-call-s3-get-object-access-denied.json")
        self.assertTrue(self.matchers["HoneyBucketRule"].matches_event(sample))
        another = rule_patterns(HoneyBucketName="another-bucket")["HoneyBucketRule"]
        self.assertFalse(matcher(another).matches_event(sample))
        self.assertNotIn("HoneyBucketRule", rule_patterns(HoneyBucketName=""))

    def test_every_pattern_uses_only_documented_filters(self):
        for parameters in SETTINGS:
            for name, pattern in rule_patterns(**parameters).items():
                self.assertEqual(pattern_problems(pattern), [], f"{name} with {parameters}")

    def test_a_misspelled_filter_is_caught(self):
        # In a copy of the fast denials rule's pattern, as moto would take it.
        pattern = rule_patterns(**SETTINGS[2])["FastDenialsRule"]
        self.assertEqual(pattern_problems(pattern), [])
        text = json.dumps(pattern)
        for right, wrong in [('"prefix"', '"prefx"'), ('"anything-but"', '"anything_but"'),
                             ('"wildcard"', '"wildcards"'), ('"exists"', '"exist"'), ('"suffix"', '"Suffix"')]:
            self.assertIn(right, text)
            self.assertTrue(pattern_problems(json.loads(text.replace(right, wrong))), wrong)
        # A field whose value is no list, $or among the values, a filter of two operators.
        for wrong in [{"source": "aws.iam"}, {"detail": {"errorCode": {"prefix": "AccessDenied"}}},
                      {"errorCode": [{"$or": [{"prefix": "A"}]}]}, {"errorCode": [{"prefix": "A", "suffix": "B"}]},
                      {"severity": [{"numeric": [">=", "4"]}]}, {"$or": {"source": ["aws.iam"]}}]:
            self.assertTrue(pattern_problems(wrong), wrong)
        # Every documented form, by contrast.
        self.assertEqual(pattern_problems({
            "a": [{"prefix": "x"}, {"prefix": {"equals-ignore-case": "x"}}, {"suffix": "x"},
                  {"suffix": {"equals-ignore-case": "x"}}, {"equals-ignore-case": "x"}, {"wildcard": "*x"},
                  {"cidr": "10.0.0.0/24"}, {"exists": False}, {"numeric": [">", 0, "<=", 5]}, "x", 1, None, True],
            "b": [{"anything-but": "x"}, {"anything-but": 1}, {"anything-but": ["x", "y"]}, {"anything-but": [1, 2]},
                  {"anything-but": {"prefix": "x"}}, {"anything-but": {"suffix": "x"}},
                  {"anything-but": {"wildcard": ["*x", "y*"]}}, {"anything-but": {"equals-ignore-case": ["x"]}}],
            "$or": [{"c": ["x"]}, {"d": {"e": [{"numeric": ["=", 1.5]}]}}],
        }), [])

    def test_every_rule_takes_aws_events_only(self):
        # Nobody can put an event whose source starts with "aws." on a bus (EventBridge refuses
        # it), so a rule whose every source is AWS's cannot be fed forged root or sign-in events:
        # not on the default bus, and not on the central bus, which every account of the
        # organisation may put events on.
        central = {"Fn::GetAtt": ["CentralEventBus", "Name"]}
        for parameters in SETTINGS:
            for name, pattern in {**rule_patterns(**parameters), **rule_patterns(central, **parameters)}.items():
                alternatives = pattern["$or"] if list(pattern) == ["$or"] else [pattern]
                for alternative in alternatives:
                    sources = alternative.get("source")
                    self.assertTrue(sources, f"{name}: no source")
                    for source in sources:
                        self.assertTrue(source == {"prefix": "aws."} or (isinstance(source, str) and source.startswith("aws.")),
                                        f"{name}: {source!r}")
        forged = variant("console-sign-in-root-success.json", lambda e: e.update(source="my.forger"))
        self.assertEqual(self.matching(forged), set())

    def test_the_stacks_own_alarms_reach_the_eventbridge_source(self):
        def alarm(name):
            return {"version": "0", "id": "a", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
                    "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
                    "resources": [f"arn:aws:cloudwatch:us-east-1:111122223333:alarm:{name}"],
                    "detail": {"alarmName": name, "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}}
        # The stack is named "ids" (cfn_template.STACK_VALUES).
        self.assertEqual(self.matching(alarm("ids-HeartbeatMissing")), {"HealthAlarmsRule"})
        self.assertEqual(self.matching(alarm("billing-HeartbeatMissing")), set())

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
