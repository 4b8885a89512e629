"""The organisation's routing, over the two templates: every event the central stack's own
rules send to the source in its home account and region, rehomed to a member account in each
watched region (and to the central account's other regions), is forwarded by a rule of
member.yaml to the central bus in one hop, and the central bus's rule sends it to the source;
the member stacks' liveness events too. Nothing an account writes itself (a custom source)
reaches the source, and the member stacks hold rules and roles only.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import copy
import json
import unittest

import cfn_template
import detections_test
import eventbridge
import rules_test
from detections_test import ALL_EVENTS, API, BY_ID, CATALOGUE, example_event, is_read_only

CENTRAL_ACCOUNT = "111122223333"
CENTRAL_REGION = "eu-central-1"
MEMBER_ACCOUNT = "777788889999"
CENTRAL_BUS = f"arn:aws:events:{CENTRAL_REGION}:{CENTRAL_ACCOUNT}:event-bus/ids-central"
RESPONDER_ROLE_ARN = f"arn:aws:iam::{CENTRAL_ACCOUNT}:role/ids-ResponseSecurityGroupRole-0A1B2C3D"
CENTRAL = cfn_template.load()
WATCHED = CENTRAL["Parameters"]["WatchedRegions"]["Default"].split(",")
MEMBER = cfn_template.load(cfn_template.MEMBER)
# Console sign-ins are recorded in these regions (and that of a regional sign-in endpoint).
SIGN_IN_REGIONS = ["us-east-1", "us-east-2", "eu-north-1", "ap-southeast-2"]


def receives(state, event):
    detail = event.get("detail", {})
    read_only = (event.get("detail-type") == API and detail.get("managementEvent") is not False
                 and (detail.get("readOnly") is True or is_read_only(detail.get("eventName", ""))))
    return state != "DISABLED" and (state == ALL_EVENTS or not read_only)


class Member:
    """member.yaml as a StackSet instance makes it in an account and region."""

    def __init__(self, account, region, deployment="Organization", **parameters):
        values = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": "aws",
                  "AWS::StackName": "StackSet-ids-organization-0000"}
        given = dict(CentralEventBusArn=CENTRAL_BUS, CentralAccountId=CENTRAL_ACCOUNT,
                     CentralRegion=CENTRAL_REGION, CentralStackName="ids", Deployment=deployment,
                     ResponderExternalId="0f0e0d0c-0000-4000-8000-000000000001",
                     ResponderRoleArn=RESPONDER_ROLE_ARN)
        given.update(parameters)
        self.resolved = cfn_template.Resolved(MEMBER, values, **given)
        self.rules = {}
        for name in cfn_template.resources(MEMBER, "AWS::Events::Rule"):
            if not self.resolved.condition(name):
                continue
            properties = MEMBER["Resources"][name]["Properties"]
            targets = properties["Targets"]
            if "EventPattern" in properties:
                pattern = self.resolved.property(name, "EventPattern")
                pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
                self.rules[name] = (eventbridge.matcher(pattern), properties["State"], targets)
            else:
                self.rules[name] = (None, properties["State"], targets)

    def made(self):
        return [name for name in MEMBER["Resources"] if self.resolved.condition(name)]

    def forwarding(self, event):
        return {name for name, (matcher, state, _) in self.rules.items()
                if matcher is not None and receives(state, event) and matcher.matches(event)}


def central_bus_rules(**parameters):
    resolved = cfn_template.Resolved(CENTRAL, {"AWS::Region": CENTRAL_REGION, "AWS::AccountId": CENTRAL_ACCOUNT},
                                     **parameters)
    rules = {}
    for name in cfn_template.resources(CENTRAL, "AWS::Events::Rule"):
        properties = CENTRAL["Resources"][name]["Properties"]
        if properties.get("EventBusName") != {"Fn::GetAtt": ["CentralEventBus", "Name"]} or not resolved.condition(name):
            continue
        rules[name] = (eventbridge.matcher(resolved.property(name, "EventPattern")), properties["State"],
                       properties["Targets"][0]["Arn"]["Fn::GetAtt"][0])
    return rules


def rehomed(event, account, region):
    """The same event, as it happens in another account and region."""
    event = json.loads(json.dumps(event).replace("111122223333", account))
    event["account"], event["region"] = account, region
    detail = event.get("detail")
    if isinstance(detail, dict):
        detail["awsRegion"] = region
        detail["recipientAccountId"] = account
    return event


def samples():
    """What the central stack's own rules send the source at home: the catalogue's examples
    (every detection that member stacks forward), the Stratus detonations' own calls, the CIS
    cases, console sign-ins, a GuardDuty finding and an IAM call."""
    out = {}
    central_only = {f["name"] for f in CATALOGUE["families"] if f["name"] in ("SelfProtection", "HoneyBucket", "Denials")}
    for d in CATALOGUE["detections"]:
        if d["family"] in central_only:
            continue
        for i, example in enumerate(d["examples"]["alert"]):
            out[f"{d['id']} example {i}"] = example_event(example)
    for technique in detections_test.stratus():
        for i, r in enumerate(technique["records"]):
            out[f"{technique['id']} call {i}"] = detections_test.event_of_record(r)
    with open(f"{detections_test.BENCHMARK}/cis.json", encoding="utf-8") as f:
        controls = json.load(f)
    for control in controls["controls"] if isinstance(controls, dict) else controls:
        if control["id"] == "CloudWatch.2":
            continue  # denials: the CloudWatch Logs path's, from the organisation trail
        for name, r in detections_test.cis_cases(control).items():
            out[f"{control['id']} {name}"] = detections_test.event_of_record(r)
    for name in ["console-sign-in-root-success.json", "console-sign-in-iam-user-no-mfa.json",
                 "guardduty-iam-privilege-escalation-high.json", "api-call-iam-create-access-key-by-root.json",
                 "api-call-iam-attach-role-policy-admin.json"]:
        out[name] = rules_test.load(name)
    return out


class Organisation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.home = detections_test.Stack(stack_values={"AWS::Region": CENTRAL_REGION})
        cls.central = central_bus_rules()
        cls.samples = samples()

    def reaches_source_at_home(self, event):
        return bool(self.home.rules_for(event) - {"FastDenialsRule"})

    def through_the_central_bus(self, event):
        return {target for matcher, state, target in self.central.values()
                if receives(state, event) and matcher.matches(event)}

    def test_every_watched_account_and_region_reaches_the_source_in_one_hop(self):
        at_home = {name: event for name, event in self.samples.items() if self.reaches_source_at_home(event)}
        self.assertGreater(len(at_home), 200)
        # Every sample in three regions; in every watched and sign-in region, one of each kind.
        every_kind = {name: event for name, event in at_home.items()
                      if name.endswith(".json") or name.startswith(("security-group-open-to-internet", "cloudtrail-stopped"))}
        self.assertGreaterEqual(len(every_kind), 6)
        regions = sorted(set(WATCHED) | set(SIGN_IN_REGIONS))
        for region in regions:
            member = Member(MEMBER_ACCOUNT, region)
            chosen = at_home if region in ("us-east-2", "eu-west-3", "sa-east-1") else every_kind
            for name, event in chosen.items():
                if event.get("detail-type") == "AWS Console Sign In via CloudTrail" and region not in SIGN_IN_REGIONS:
                    continue
                moved = rehomed(event, MEMBER_ACCOUNT, region)
                forwarded = member.forwarding(moved)
                self.assertTrue(forwarded, f"{name} in {region}: no member rule forwards it")
                # Every forwarding rule aims at the central bus, with the role that may put there.
                for rule in forwarded:
                    [target] = member.rules[rule][2]
                    self.assertEqual(member.resolved.value(target["Arn"]), CENTRAL_BUS, rule)
                    self.assertEqual(target["RoleArn"], {"Fn::GetAtt": ["ForwardRole", "Arn"]}, rule)
                # One hop: on the central bus, a rule sends it to the source (not to another bus).
                self.assertIn("SourceEventbridgeLambda", self.through_the_central_bus(moved), f"{name} in {region}")

    def test_the_central_accounts_other_regions_are_forwarded_and_its_own_region_is_not(self):
        event = self.samples["api-call-iam-create-access-key-by-root.json"]
        for region in WATCHED:
            own = Member(CENTRAL_ACCOUNT, region, deployment="CentralAccount")
            moved = rehomed(event, CENTRAL_ACCOUNT, region)
            if region == CENTRAL_REGION:
                # Its rules are the central stack's own: nothing forwarded twice.
                self.assertEqual(own.rules, {}, region)
            else:
                self.assertTrue(own.forwarding(moved), region)
            # The organisation's deployment skips the central account: its own deployment covers it.
            self.assertEqual(Member(CENTRAL_ACCOUNT, region).rules, {}, region)

    def test_member_stacks_hold_rules_and_roles_only_and_say_they_are_alive(self):
        kinds = {r["Type"] for r in MEMBER["Resources"].values()}
        self.assertLessEqual(kinds, {"AWS::Events::Rule", "AWS::IAM::Role", "AWS::CloudFormation::WaitConditionHandle"})
        member = Member(MEMBER_ACCOUNT, "ap-southeast-1")
        liveness = MEMBER["Resources"]["LivenessRule"]["Properties"]
        self.assertEqual(member.resolved.value(liveness["Name"]), "ids-liveness")
        self.assertEqual(liveness["ScheduleExpression"], "rate(15 minutes)")
        [target] = liveness["Targets"]
        self.assertEqual(member.resolved.value(target["Arn"]), CENTRAL_BUS)
        # The scheduled event EventBridge makes of it reaches the source through the central bus.
        scheduled = {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                     "account": MEMBER_ACCOUNT, "region": "ap-southeast-1", "time": "2026-12-07T10:00:00Z",
                     "resources": [f"arn:aws:events:ap-southeast-1:{MEMBER_ACCOUNT}:rule/ids-liveness"], "detail": {}}
        self.assertIn("SourceEventbridgeLambda", self.through_the_central_bus(scheduled))
        # The role the rules forward with may put events on the central bus and do nothing else.
        [statement] = MEMBER["Resources"]["ForwardRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        self.assertEqual((statement["Action"], statement["Resource"]), ("events:PutEvents", {"Ref": "CentralEventBusArn"}))

    def test_what_an_account_writes_itself_never_reaches_the_source(self):
        forged = copy.deepcopy(self.samples["console-sign-in-root-success.json"])
        forged["source"] = "my.forger"
        self.assertEqual(self.through_the_central_bus(forged), set())
        # An account's own rule sending the bus AWS events member.yaml never forwards (an upload
        # loop's S3 events) does not reach the source every account shares.
        uploaded = {"version": "0", "id": "x", "detail-type": "Object Created", "source": "aws.s3",
                    "account": MEMBER_ACCOUNT, "region": "eu-west-3", "time": "2026-12-07T10:00:00Z",
                    "resources": ["arn:aws:s3:::bucket"], "detail": {"bucket": {"name": "bucket"}}}
        self.assertEqual(self.through_the_central_bus(uploaded), set())
        # Every kind member.yaml forwards is one the central bus's rule takes.
        central = CENTRAL["Resources"]["CentralBusRule"]["Properties"]["EventPattern"]["detail-type"]
        forwarded = set()
        for name, resource in MEMBER["Resources"].items():
            pattern = resource.get("Properties", {}).get("EventPattern")
            if resource["Type"] == "AWS::Events::Rule" and pattern is not None:
                if isinstance(pattern, dict) and "Fn::Sub" in pattern:
                    pattern = json.loads(pattern["Fn::Sub"].replace("${GuardDutyMinimumSeverity}", "7"))
                forwarded.update(pattern["detail-type"])
        self.assertEqual(forwarded | {"Scheduled Event"}, set(central))
        # Only the organisation's accounts may put events on the bus at all.
        policy = cfn_template.Resolved(CENTRAL, OrganizationId="o-a1b2c3d4e5", OrganizationalUnitIds="ou-ab12-abcdefgh",
                                       MemberTemplateURL="https://b.s3.amazonaws.com/member.yaml")
        statement = policy.property("CentralEventBusPolicy", "Statement")
        self.assertEqual(statement["Condition"], {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}})
        self.assertEqual(statement["Action"], "events:PutEvents")
        alone = cfn_template.Resolved(CENTRAL).property("CentralEventBusPolicy", "Statement")
        self.assertNotIn("Condition", alone)
        self.assertEqual(alone["Principal"], {"AWS": "arn:aws:iam::111122223333:root"})

    def test_the_responder_role_is_made_once_per_account_for_the_central_responders_alone(self):
        for region in WATCHED:
            made = Member(MEMBER_ACCOUNT, region).made()
            self.assertEqual("ResponderRole" in made, region == CENTRAL_REGION, region)
            self.assertNotIn("ResponderRole", Member(CENTRAL_ACCOUNT, region, deployment="CentralAccount").made())
        member = Member(MEMBER_ACCOUNT, CENTRAL_REGION, OrganizationId="o-a1b2c3d4e5")
        role = member.resolved.value(MEMBER["Resources"]["ResponderRole"]["Properties"])
        self.assertEqual(role["RoleName"], "ids-responder")
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(trust["Principal"], {"AWS": f"arn:aws:iam::{CENTRAL_ACCOUNT}:root"})
        self.assertEqual(trust["Condition"]["StringEquals"], {
            "sts:ExternalId": "0f0e0d0c-0000-4000-8000-000000000001",
            "aws:PrincipalTag/ActivityAwareIdsResponder": "ids", "aws:PrincipalOrgID": "o-a1b2c3d4e5"})
        # The central responder's role alone: a principal given its tag is not it.
        self.assertEqual(trust["Condition"]["ArnEquals"], {"aws:PrincipalArn": RESPONDER_ROLE_ARN})
        # With the open-port response off, there is no role to trust, and none is made.
        self.assertNotIn("ResponderRole", Member(MEMBER_ACCOUNT, CENTRAL_REGION, ResponderRoleArn="").made())
        actions = [s["Action"] for s in role["Policies"][0]["PolicyDocument"]["Statement"]]
        self.assertEqual(actions, [["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
                                    "ec2:GetManagedPrefixListEntries"]])
        revokes = Member(MEMBER_ACCOUNT, CENTRAL_REGION, OpenSecurityGroupResponse="Revoke").resolved.value(
            MEMBER["Resources"]["ResponderRole"]["Properties"])
        self.assertEqual([s["Action"] for s in revokes["Policies"][0]["PolicyDocument"]["Statement"]][1],
                         "ec2:RevokeSecurityGroupIngress")

    def test_the_stack_sets_deploy_member_yaml_where_they_should(self):
        given = dict(OrganizationId="o-a1b2c3d4e5", OrganizationalUnitIds="ou-ab12-abcdefgh,r-ab12",
                     MemberTemplateURL="https://b.s3.amazonaws.com/member.yaml")
        org = cfn_template.Resolved(CENTRAL, {"AWS::Region": CENTRAL_REGION}, **given)
        self.assertTrue(org.condition("OrganizationStackSet"))
        props = {key: org.value(value) for key, value in CENTRAL["Resources"]["OrganizationStackSet"]["Properties"].items()
                 if key not in ("TemplateURL",)}
        self.assertEqual((props["PermissionModel"], props["AutoDeployment"]["Enabled"]), ("SERVICE_MANAGED", True))
        [group] = props["StackInstancesGroup"]
        self.assertEqual(group["DeploymentTargets"]["OrganizationalUnitIds"], ["ou-ab12-abcdefgh", "r-ab12"])
        self.assertEqual(group["Regions"], WATCHED)
        values = {p["ParameterKey"]: p["ParameterValue"] for p in props["Parameters"]}
        self.assertEqual(values["Deployment"], "Organization")
        # Every parameter member.yaml takes without a default is given, and nothing it does not take.
        self.assertLessEqual(set(values), set(MEMBER["Parameters"]))
        self.assertLessEqual({k for k, v in MEMBER["Parameters"].items() if "Default" not in v}, set(values))
        own = CENTRAL["Resources"]["CentralAccountStackSet"]["Properties"]
        self.assertEqual(own["PermissionModel"], "SELF_MANAGED")
        own_values = {p["ParameterKey"]: org.value(p["ParameterValue"]) for p in own["Parameters"]}
        self.assertEqual(own_values["Deployment"], "CentralAccount")
        self.assertEqual(set(own_values), set(values))
        self.assertEqual(org.value(own["StackInstancesGroup"])[0]["Regions"], WATCHED)
        # Without member.yaml's address, no StackSet: this account's own region, as before.
        alone = cfn_template.Resolved(CENTRAL)
        self.assertFalse(alone.condition("OrganizationStackSet") or alone.condition("CentralAccountStackSet"))
        self.assertEqual(len(WATCHED), 17)


if __name__ == "__main__":
    unittest.main()
