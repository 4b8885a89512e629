"""The detection catalogue (crates/detections/catalogue.json) and the template's rules made from
it, measured the way fixtures/benchmarks/detection/README.md says a record counts as alerted:
a created subscription filter's pattern matches it (CloudWatch Logs semantics, logs_filter.py),
or a created rule on the default bus matches the event CloudTrail makes of it and its State lets
the event through (moto's EventBridge matcher, eventbridge.py).

- the template and README's table are what ./dev.sh detections makes of the catalogue;
- every detection's examples alert through its family's rules, its near misses do not match it;
- the Stratus Red Team benchmark and the CIS / Security Hub monitoring controls are alerted with
  the default parameters, and ordinary activity (the corpus's dashboards-observability records)
  mostly is not;
- EventBridge's limits hold: rules per bus, rules with wildcards, pattern sizes.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import copy
import glob
import json
import os
import re
import sys
import unittest

import cfn_template
import eventbridge
import logs_filter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "infrastructure"))
import detections  # noqa: E402

BENCHMARK = os.path.join(ROOT, "fixtures", "benchmarks", "detection")
CORPUS = os.path.join(ROOT, "fixtures", "cloudtrail")
API = "AWS API Call via CloudTrail"
ALL_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

CATALOGUE = detections.load()
BY_ID = {d["id"]: d for d in CATALOGUE["detections"]}
# EventBridge's default quotas: rules per bus (adjustable), rules with wildcards (not), and the
# size of one pattern (2,048 characters by default, 4,096 at most).
MAX_RULES = 300
MAX_WILDCARD_RULES = 30
MAX_PATTERN_CHARACTERS = 2048


def event_of_record(record):
    """The EventBridge event CloudTrail makes of a record (the benchmark README's rule)."""
    source = "aws." + record.get("eventSource", "").split(".")[0]
    detail_type = {"AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
                   "AwsServiceEvent": "AWS Service Event via CloudTrail"}.get(record.get("eventType"), API)
    return {"source": source, "detail-type": detail_type, "detail": record}


def merge(base, overrides):
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def example_event(example):
    """An example of the catalogue as the event it stands for (as the Rust catalogue makes it)."""
    detail = {} if example.get("base") is False else copy.deepcopy(CATALOGUE["example-base"])
    merge(detail, example.get("detail", {}))
    event = event_of_record(detail)
    for key in ("source", "detail-type"):
        if key in example:
            event[key] = example[key]
    return event


def is_read_only(name):
    return name.startswith(("Describe", "Get", "List")) and name not in ("GetFederationToken", "GetSessionToken")


class Stack:
    """The template with a set of parameters: its created rules (pattern, state) and its
    subscription filter's pattern."""

    def __init__(self, stack_values=None, **parameters):
        template = cfn_template.load()
        resolved = cfn_template.Resolved(template, stack_values, **parameters)
        self.rules = {}
        self.responses = {}
        for name in cfn_template.resources(template, "AWS::Events::Rule"):
            if not resolved.condition(name):
                continue
            properties = template["Resources"][name]["Properties"]
            if "EventPattern" not in properties:
                continue  # the heartbeat's schedule
            if "EventBusName" in properties:
                continue  # the central bus's: what member stacks forward (tests/org_test.py)
            pattern = resolved.property(name, "EventPattern")
            pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
            targets = [t["Arn"] for t in properties.get("Targets", [])]
            on_default_bus = properties.get("EventBusName", "default") == "default"
            if not on_default_bus:
                continue
            # The source's rules (self-protection's also tell the operations topic).
            if targets[:1] == [{"Fn::GetAtt": ["SourceEventbridgeLambda", "Arn"]}]:
                self.rules[name] = (eventbridge.matcher(pattern), properties["State"], pattern)
            elif targets:
                # A responder's: it acts on what a detection matched.
                self.responses[name] = pattern
        self.filter = None
        if resolved.condition("CloudWatchLogsSubscriptionFilter"):
            self.filter = logs_filter.parse(resolved.property("CloudWatchLogsSubscriptionFilter", "FilterPattern"))

    def rules_for(self, event):
        """The rules that receive and match an event."""
        detail = event.get("detail", {})
        read_only = (event.get("detail-type") == API and detail.get("managementEvent") is not False
                     and is_read_only(detail.get("eventName", "")))
        return {name for name, (matcher, state, _) in self.rules.items()
                if state != "DISABLED" and (state == ALL_EVENTS or not read_only) and matcher.matches(event)}

    def alerted(self, record):
        if record.get("managementEvent") is False or record.get("eventCategory") == "Data":
            return False
        if self.filter is not None and logs_filter.evaluate(self.filter, record):
            return True
        return bool(self.rules_for(event_of_record(record)))

    def rule_alerted(self, record):
        """Alerted by a rule, the subscription filter aside: by the call itself, not a denial."""
        if record.get("managementEvent") is False or record.get("eventCategory") == "Data":
            return False
        return bool(self.rules_for(event_of_record(record)) - {"FastDenialsRule"})


def stratus():
    techniques = []
    for path in sorted(glob.glob(os.path.join(BENCHMARK, "stratus", "*.json"))):
        with open(path, encoding="utf-8") as f:
            techniques.append(json.load(f))
    return techniques


# Calls a detonation makes that are not the technique: Stratus Red Team's own set-up.
INCIDENTAL = {"sts:AssumeRole", "sts:GetCallerIdentity"}

# Where each CIS control's event names come from (its filter names a source only sometimes).
CIS_SOURCES = {
    "CloudWatch.3": "signin.amazonaws.com", "CloudWatch.4": "iam.amazonaws.com",
    "CloudWatch.5": "cloudtrail.amazonaws.com", "CloudWatch.6": "signin.amazonaws.com",
    "CloudWatch.7": "kms.amazonaws.com", "CloudWatch.8": "s3.amazonaws.com",
    "CloudWatch.9": "config.amazonaws.com", "CloudWatch.10": "ec2.amazonaws.com",
    "CloudWatch.11": "ec2.amazonaws.com", "CloudWatch.12": "ec2.amazonaws.com",
    "CloudWatch.13": "ec2.amazonaws.com", "CloudWatch.14": "ec2.amazonaws.com",
    "CIS-5.15": "organizations.amazonaws.com",
}


def record(**fields):
    return merge(copy.deepcopy(CATALOGUE["example-base"]), fields)


ROOT_USER = {"type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root",
             "accountId": "111122223333"}


def sign_in(identity, result, mfa):
    fields = {"eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "eventType": "AwsConsoleSignIn",
              "responseElements": {"ConsoleLogin": result}, "additionalEventData": {"MFAUsed": mfa}}
    if result == "Failure":
        fields["errorMessage"] = "Failed authentication"
    if identity:
        fields["userIdentity"] = identity
    return record(**fields)


def cis_cases(control):
    """The kinds of event a CIS control describes, as records: each must be alerted."""
    v6 = " ".join(control["cis_v6_patterns"])
    names = list(control["eventNames"])
    names += [n for n in re.findall(r"\$\.eventName\s*=\s*\"?([A-Za-z]+)", v6) if n not in names]
    cases = {}
    if control["id"] == "CloudWatch.1":
        cases["root write"] = record(userIdentity=ROOT_USER, eventSource="s3.amazonaws.com", eventName="CreateBucket")
        cases["root read-only"] = record(userIdentity=ROOT_USER, eventSource="iam.amazonaws.com",
                                         eventName="ListUsers", readOnly=True)
        cases["root sign-in"] = sign_in(ROOT_USER, "Success", "No")
    elif control["id"] == "CloudWatch.2":
        for code in ["AccessDenied", "Client.UnauthorizedOperation", "AccessDeniedException"]:
            for identity in [None, {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/r/s",
                                    "accountId": "111122223333"}]:
                cases[f"{code} by {(identity or {}).get('type', 'IAMUser')}"] = record(
                    eventSource="ec2.amazonaws.com", eventName="DescribeInstances", errorCode=code,
                    errorMessage="denied", **({"userIdentity": identity} if identity else {}))
    elif control["id"] == "CloudWatch.3":
        for who, identity in [("user", None), ("root", ROOT_USER)]:
            for result in ["Success", "Failure"]:
                cases[f"{who} {result} without MFA"] = sign_in(identity, result, "No")
    elif control["id"] == "CloudWatch.6":
        cases["user failure"] = sign_in(None, "Failure", "No")
        cases["root failure"] = sign_in(ROOT_USER, "Failure", "No")
    else:
        for name in names:
            cases[name] = record(eventSource=CIS_SOURCES[control["id"]], eventName=name)
    return cases


class Detections(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.defaults = Stack()
        cls.every_rule = Stack(HoneyBucketName="honey", FastDenialAlerts="Enabled")

    def test_the_template_and_readme_are_made_from_the_catalogue(self):
        template, readme, member = detections.generated()
        with open(detections.TEMPLATE, encoding="utf-8") as f:
            self.assertEqual(f.read(), template, "run ./dev.sh detections")
        with open(detections.README, encoding="utf-8") as f:
            self.assertEqual(f.read(), readme, "run ./dev.sh detections")
        with open(detections.MEMBER, encoding="utf-8") as f:
            self.assertEqual(f.read(), member, "run ./dev.sh detections")
        # Every family is switched by a parameter of the template, and every rule is a family's.
        parameters = cfn_template.load()["Parameters"]
        for family in CATALOGUE["families"]:
            self.assertIn(family["parameter"], parameters, family["name"])
        made = {rule["name"] for rule in detections.rules(CATALOGUE)}
        hand = {name for f in CATALOGUE["families"] for name in f.get("hand-written-rules", [])}
        # And the health path's rules, which take the stack's own alarms and heartbeat (no
        # detection).
        self.assertLessEqual(made | hand, set(self.every_rule.rules))
        self.assertLessEqual(set(self.every_rule.rules) - (made | hand), {"HealthAlarmsRule", "HeartbeatCanaryRule"})
        # A responder's rule matches what its detection matches, no more and no less.
        for region, detection_id in detections.RESPONSE_PATTERNS.items():
            [detection] = [d for d in CATALOGUE["detections"] if d["id"] == detection_id]
            self.assertIn(detection["pattern"], self.defaults.responses.values(), region)
        self.assertEqual(sorted(self.defaults.responses), ["OpenSecurityGroupResponseRule"])

    def test_every_detection_alerts_through_its_rules_and_not_on_its_near_misses(self):
        rules_of = {}
        for rule in detections.rules(CATALOGUE):
            for detection in rule["detections"]:
                rules_of.setdefault(detection, set()).add(rule["name"])
        families = {f["name"]: f for f in CATALOGUE["families"]}
        resolved_values = dict(cfn_template.STACK_VALUES, HoneyBucketName="honey", GuardDutyMinimumSeverity="4",
                               CloudTrailCloudWatchLogsGroupName="CloudTrail/DefaultLogGroup")
        for d in CATALOGUE["detections"]:
            own = rules_of.get(d["id"], set(families[d["family"]].get("hand-written-rules", [])))
            self.assertTrue(own, d["id"])
            for example in d["examples"]["alert"]:
                event = example_event(example)
                self.assertTrue(self.every_rule.rules_for(event) & own, f"{d['id']}: {example}")
            pattern = json.loads(re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: resolved_values[m.group(1)],
                                        json.dumps(d["pattern"])).replace('"4"]', "4]"))
            matcher = eventbridge.matcher(pattern)
            missed = [not matcher.matches(example_event(example)) for example in d["examples"]["quiet"]]
            if d.get("refine"):
                # The rules send broadly and the source's finer condition decides: the Rust
                # tests check its near misses through it.
                pass
            else:
                self.assertTrue(all(missed), f"{d['id']}: a near miss matches")

    def test_every_rule_meets_an_example_it_matches_and_a_near_miss_it_does_not(self):
        for rule in detections.rules(CATALOGUE):
            matcher, _, _ = self.every_rule.rules[rule["name"]]
            examples = [e for d in rule["detections"] for e in BY_ID[d]["examples"]["alert"]]
            misses = [e for d in rule["detections"] if not BY_ID[d].get("refine")
                      for e in BY_ID[d]["examples"]["quiet"]]
            self.assertTrue(any(matcher.matches(example_event(e)) for e in examples), rule["name"])
            if misses:
                self.assertTrue(any(not matcher.matches(example_event(e)) for e in misses), rule["name"])

    def test_read_only_calls_reach_only_the_rules_that_need_them(self):
        for rule in detections.rules(CATALOGUE):
            needs = any(BY_ID[d].get("reads") for d in rule["detections"])
            _, state, _ = self.every_rule.rules[rule["name"]]
            self.assertEqual(state == ALL_EVENTS, needs, rule["name"])
        reading = sorted(r["name"] for r in detections.rules(CATALOGUE) if r["state"] == ALL_EVENTS)
        # Sessions, bucket listings and tools' user agents are reads: a budget, not a limit AWS sets.
        self.assertLessEqual(len(reading), 14, reading)

    def test_the_attack_benchmark_is_alerted_on_the_techniques_own_calls(self):
        with_log, alerted, by_rule = 0, [], []
        for technique in stratus():
            records = technique["records"]
            if not records:
                continue
            with_log += 1
            own = [r for r in records if f"{r['eventSource'].split('.')[0]}:{r['eventName']}" not in INCIDENTAL]
            if any(self.defaults.alerted(r) for r in own):
                alerted.append(technique["id"])
            if any(self.defaults.rule_alerted(r) for r in own):
                by_rule.append(technique["id"])
        self.assertEqual(with_log, 35)
        print(f"\nStratus Red Team, default parameters: {len(alerted)} of {with_log} techniques with a log alerted "
              f"on their own calls, {len(by_rule)} by a rule on the call itself (not only a denial)", file=sys.stderr)
        self.assertGreaterEqual(len(alerted), 33)
        self.assertGreaterEqual(len(by_rule), 33)

    def test_techniques_without_a_log_are_covered_where_management_events_record_them(self):
        documented = {
            "aws.defense-evasion.cloudtrail-lifecycle-rule": record(eventSource="s3.amazonaws.com", eventName="PutBucketLifecycle",
                                                                     requestParameters={"bucketName": "trail-logs"}),
            "aws.discovery.ses-enumerate": record(eventSource="ses.amazonaws.com", eventName="GetSendQuota"),
            "aws.execution.sagemaker-update-lifecycle-config": record(eventSource="sagemaker.amazonaws.com",
                                                                       eventName="UpdateNotebookInstance"),
            "aws.exfiltration.s3-backdoor-bucket-policy": record(eventSource="s3.amazonaws.com", eventName="PutBucketPolicy",
                                                                  requestParameters={"bucketName": "b"}),
            "aws.impact.ec2-deregister-ami": record(eventSource="ec2.amazonaws.com", eventName="DeregisterImage"),
        }
        without_log = {t["id"] for t in stratus() if not t["records"]}
        self.assertEqual(len(without_log), 9)
        self.assertLessEqual(set(documented), without_log)
        for technique, call in documented.items():
            self.assertTrue(self.defaults.rule_alerted(call), technique)
        # S3 object deletions and reads are data events, and enumeration from an instance has no
        # call of its own: no management event records them.
        self.assertFalse(self.defaults.alerted(record(eventSource="s3.amazonaws.com", eventName="DeleteObjects",
                                                      managementEvent=False, eventCategory="Data")))

    def test_every_cis_monitoring_control_is_alerted(self):
        with open(os.path.join(BENCHMARK, "cis.json"), encoding="utf-8") as f:
            controls = json.load(f)["controls"]
        self.assertEqual(len(controls), 15)
        covered = []
        for control in controls:
            cases = cis_cases(control)
            self.assertTrue(cases, control["id"])
            missed = [name for name, case in cases.items() if not self.defaults.alerted(case)]
            self.assertEqual(missed, [], control["id"])
            covered.append(control["id"])
        # CloudWatch.2 leaves AWS services' own denials out, as noise the stack filters.
        service_denial = record(userIdentity={"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
                                eventSource="s3.amazonaws.com", eventName="PutObject", errorCode="AccessDenied")
        self.assertFalse(self.defaults.alerted(service_denial))
        print(f"\nCIS / Security Hub monitoring controls, default parameters: {len(covered)} of {len(controls)} covered "
              "(CloudWatch.2 but for AWS services' own denials)", file=sys.stderr)

    def test_ordinary_activity_stays_quiet(self):
        with open(os.path.join(CORPUS, "records.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        with open(os.path.join(CORPUS, "records.index.tsv"), encoding="utf-8") as f:
            sources = [line.split("\t")[1] for line in f.read().splitlines()[1:]]
        ordinary = [r for r, source in zip(records, sources) if source == "dashboards-observability"]
        self.assertEqual(len(ordinary), 840)
        alerted = [r for r in ordinary if self.defaults.alerted(r)]
        print(f"\ndashboards-observability (ordinary background activity), default parameters: "
              f"{len(alerted)} of {len(ordinary)} records alert: "
              f"{sorted({(r['eventSource'], r['eventName']) for r in alerted})}", file=sys.stderr)
        self.assertLessEqual(len(alerted), 10)

    def test_eventbridge_limits_hold(self):
        longest = {
            "HoneyBucketName": "h" * 63,
            "CloudTrailCloudWatchLogsGroupName": "g" * 512,
        }
        stack = Stack(stack_values={"AWS::StackName": "s" * 128, "AWS::Partition": "aws-us-gov",
                                    "AWS::Region": "ap-southeast-4"},
                      FastDenialAlerts="Enabled", IgnoredPrincipalArns=",".join(["arn:aws:iam::111122223333:user/" + "x" * 30] * 8),
                      **longest)
        self.assertLessEqual(len(stack.rules), MAX_RULES // 3)
        wildcards = [name for name, (_, _, pattern) in stack.rules.items() if '"wildcard"' in json.dumps(pattern)]
        # Fast denials, and the user agents of tools intruders use.
        self.assertLessEqual(len(wildcards), 2, wildcards)
        self.assertLess(len(wildcards), MAX_WILDCARD_RULES)
        for name, (_, _, pattern) in stack.rules.items():
            size = len(json.dumps(pattern, separators=(",", ":")))
            self.assertLessEqual(size, MAX_PATTERN_CHARACTERS, name)
            self.assertEqual(eventbridge_problems(pattern), [], name)


def eventbridge_problems(pattern):
    import rules_test
    return rules_test.pattern_problems(pattern)


if __name__ == "__main__":
    unittest.main()
