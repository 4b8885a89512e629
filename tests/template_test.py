"""Checks of infrastructure/cloudformation.yaml that moto cannot make: least privilege, the
wiring moto fakes (SNS subscriptions, subscription filter, on-failure destinations, event source
mapping, the custom resource's attribute in the destination's environment), encryption, the
pacing arithmetic that keeps the stack under Slack's rate limit, and dev.sh's conventions.

  .venv/bin/python -m unittest discover -s tests -p '*_test.py'   (./dev.sh test runs it)
"""
import json
import os
import re
import unittest

from cfnlint.decode import cfn_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "infrastructure", "cloudformation.yaml")
WEBHOOK_RS = os.path.join(ROOT, "crates", "destination-slack", "src", "webhook.rs")
STACK_TEST = os.path.join(ROOT, "tests", "stack_test.sh")

SEVERITIES = ["info", "low", "medium", "high", "critical"]

# The destinations besides Slack, each deployed only under its condition, when given where to
# deliver: its crate, the prefix of its logical IDs, the parameters that deploy it, its secret
# (the crate's Secret constant, the parameter holding it in plain text, the custom resource
# encrypting it), its minimum severity parameter, its DestinationPace entry, and the rate its
# service takes from one webhook, routing key or account (requests a second).
DESTINATIONS = [
    {"crate": "destination-teams", "prefix": "DestinationTeams", "condition": "HasTeamsWebhook",
     "given": {"TeamsWebhookURL": "https://prod-00.westus.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke?sig=s3cr3t"},
     "secret": ("WEBHOOK_URL", "TeamsWebhookURL", "EncryptedTeamsWebhookURL"),
     "minimum": "TeamsMinimumSeverity", "pace": "Teams", "per_second": 4},
    {"crate": "destination-pagerduty", "prefix": "DestinationPagerduty", "condition": "HasPagerDutyRoutingKey",
     "given": {"PagerDutyRoutingKey": "R0123456789abcdef0123456789ABCDE"},
     "secret": ("ROUTING_KEY", "PagerDutyRoutingKey", "EncryptedPagerDutyRoutingKey"),
     "minimum": "PagerDutyMinimumSeverity", "pace": "PagerDuty", "per_second": 120 / 60},
    # SES in its sandbox: one email a second.
    {"crate": "destination-email", "prefix": "DestinationEmail", "condition": "HasEmail",
     "given": {"EmailFrom": "ids@example.com", "EmailTo": "ops@example.com,oncall@example.org"},
     "secret": None, "minimum": "EmailMinimumSeverity", "pace": "Email", "per_second": 1},
]
OTHER_DESTINATIONS = {d["prefix"]: d["condition"] for d in DESTINATIONS}


def crate_source(crate):
    with open(os.path.join(ROOT, "crates", crate, "src", "lib.rs"), encoding="utf-8") as f:
        return f.read()


def secret_in(crate, constant):
    """The variable and purpose of a crate's `pub const <constant>: Secret = Secret { ... }`."""
    found = re.search(r"pub const " + constant + r": Secret = Secret \{([^}]*)\}", crate_source(crate))
    assert found, f"{constant} not found in crates/{crate}/src/lib.rs"
    fields = dict(re.findall(r'(\w+): "([^"]*)"', found.group(1)))
    return fields["variable"], fields["purpose"]


def plain(node):
    """The decoded template as plain dicts and lists (comparable with ==)."""
    return json.loads(json.dumps(node))


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


def get_att(resource, attribute):
    return {"Fn::GetAtt": [resource, attribute]}


def ref(name):
    return {"Ref": name}


def functions_in(template):
    """The function crates, read from the template's Code paths: the one list of functions."""
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            match = re.fullmatch(r"\.\./dist/([a-z0-9-]+)/\1\.zip", resource["Properties"]["Code"])
            assert match, resource["Properties"]["Code"]
            found.append(match.group(1))
    # Each crate once: the operations relay runs the Slack function's code.
    return sorted(set(found))


class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = plain(cfn_yaml.load(TEMPLATE))
        cls.resources = cls.template["Resources"]
        cls.functions = functions_in(cls.template)

    def of_type(self, resource_type):
        return {name: r for name, r in self.resources.items() if r["Type"] == resource_type}

    def props(self, name):
        return self.resources[name]["Properties"]

    def pace(self, key):
        return self.template["Mappings"]["SlackPace"]["EventSourceMapping"][key]

    def resolved(self, value):
        """A !FindInMap on SlackPace, resolved."""
        if isinstance(value, dict) and "Fn::FindInMap" in value:
            mapping, top, key = value["Fn::FindInMap"]
            return self.template["Mappings"][mapping][top][key]
        return value

    def statements(self, role, conditions_on=()):
        """Every (action, resource, condition) a role allows, with its !If statements resolved for
        these conditions on and every other off."""
        found = []
        for policy in self.props(role)["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Fn::If" in statement:
                    condition, when_on, when_off = statement["Fn::If"]
                    self.assertIn(condition, self.template["Conditions"])
                    statement = when_on if condition in conditions_on else when_off
                    if statement == ref("AWS::NoValue"):
                        continue
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                condition = json.dumps(statement.get("Condition"), sort_keys=True)
                found += [(action, json.dumps(statement["Resource"], sort_keys=True), condition) for action in actions]
                self.assertEqual(statement["Effect"], "Allow")
        return sorted(found)

    def assert_only_the_topic_sends_and_only_the_reader_reads(self, policy_name, queues, reader):
        """A queue's policy: the topic may send, nothing else sends, and only its function's
        role receives (another function's event source mapping on it is refused)."""
        allow, deny_send, deny_read = self.props(policy_name)["PolicyDocument"]["Statement"]
        resources = queues if len(queues) > 1 else queues[0]
        topic = {"aws:SourceArn": ref("SNSTopic")}
        self.assertEqual((allow["Effect"], allow["Principal"], allow["Action"], allow["Resource"], allow["Condition"]),
                         ("Allow", {"Service": "sns.amazonaws.com"}, "sqs:SendMessage", resources, {"ArnEquals": topic}))
        self.assertEqual((deny_send["Effect"], deny_send["Principal"], deny_send["Action"], deny_send["Resource"],
                          deny_send["Condition"]), ("Deny", "*", "sqs:SendMessage", resources, {"ArnNotEquals": topic}))
        self.assertEqual((deny_read["Effect"], deny_read["Principal"], sorted(deny_read["Action"]), deny_read["Resource"],
                          deny_read["Condition"]),
                         ("Deny", "*", ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"], resources,
                          {"ArnNotEquals": {"aws:PrincipalArn": get_att(reader, "Arn")}}))

    def expect_statements(self, role, expected, conditions_on=()):
        self.assertEqual(self.statements(role, conditions_on), sorted(
            (action, json.dumps(resource, sort_keys=True), json.dumps(condition, sort_keys=True))
            for action, resource, condition in expected))

    def test_plain_cloudformation(self):
        self.assertNotIn("Transform", self.template)

    def test_parameters_as_the_original(self):
        p = self.template["Parameters"]
        self.assertEqual(p["CloudTrailCloudWatchLogsGroupName"]["Default"], "CloudTrail/DefaultLogGroup")
        self.assertEqual(p["CloudTrailCloudWatchLogsFilterPattern"]["Default"],
                         '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }')
        self.assertTrue(p["SlackWebhookURL"]["NoEcho"])
        self.assertEqual(p["Architecture"]["Default"], "arm64")
        self.assertEqual(sorted(p["Architecture"]["AllowedValues"]), ["arm64", "x86_64"])

    def test_every_function_is_a_crate_found_by_dev_sh(self):
        self.assertEqual(self.functions, ["destination-email", "destination-pagerduty", "destination-slack", "destination-teams",
                                          "kms-encryption", "response-containment", "response-security-group",
                                          "source-cloudtrail-cloudwatch-logs", "source-eventbridge", "source-heartbeat"])
        functions = self.of_type("AWS::Lambda::Function")
        for fn in self.functions:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, "crates", fn, "src", "main.rs")), fn)
            named = [name for name in functions if name.startswith(camel(fn))]
            self.assertEqual(named, [camel(fn) + "Lambda"], fn)
            props = functions[named[0]]["Properties"]
            self.assertEqual(props["Runtime"], "provided.al2023")
            self.assertEqual(props["Handler"], "bootstrap")
            self.assertEqual(props["Architectures"], [ref("Architecture")])
            self.assertNotIn("FunctionName", props, "a fixed name would cap the stack name's length")
            self.assertGreaterEqual(props["MemorySize"], 128)
            self.assertEqual(self.template["Outputs"][camel(fn) + "FunctionName"]["Value"], ref(camel(fn) + "Lambda"))
        # The one function that is no crate of its own: the Slack function's code as the relay.
        others = sorted(set(functions) - {camel(fn) + "Lambda" for fn in self.functions})
        self.assertEqual(others, ["OperationsRelayLambda"])
        self.assertEqual(functions["OperationsRelayLambda"]["Properties"]["Code"],
                         "../dist/destination-slack/destination-slack.zip")

    def test_the_sources_and_only_they_reserve_concurrency_and_their_throttles_are_alarmed(self):
        # The sources keep instances of their own (the account's other functions cannot starve
        # them), unless SourceReservedConcurrency is 0: a new account's concurrency quota can be
        # 10, where any reservation fails the stack. Throttles, dropped events and late events
        # (someone setting the concurrency to 0, or a minute's event age) are alarmed.
        sources = ["SourceCloudtrailCloudwatchLogsLambda", "SourceEventbridgeLambda"]
        for name, function in self.of_type("AWS::Lambda::Function").items():
            reserved = function["Properties"].get("ReservedConcurrentExecutions")
            if name in sources:
                self.assertEqual(reserved, {"Fn::If": ["ReservesSourceConcurrency", ref("SourceReservedConcurrency"),
                                                       ref("AWS::NoValue")]}, name)
            else:
                self.assertIsNone(reserved, name)
        self.assertEqual(self.template["Parameters"]["SourceReservedConcurrency"]["MinValue"], 0)
        alarms = self.of_type("AWS::CloudWatch::Alarm")
        for source in sources:
            prefix = source.removesuffix("Lambda")
            for suffix, metric in [("Throttles", "Throttles"), ("EventsDropped", "AsyncEventsDropped"),
                                   ("EventsDelayed", "AsyncEventAge")]:
                alarm = alarms[prefix + suffix]["Properties"]
                self.assertEqual((alarm["MetricName"], alarm["Dimensions"][0]["Value"], alarm["AlarmActions"]),
                                 (metric, ref(source), [ref("OperationsTopic")]), suffix)

    def test_least_privilege(self):
        key = get_att("StackKey", "Arn")
        via = lambda *services: {"StringEquals": {"kms:ViaService": (
            [{"Fn::Sub": f"{s}.${{AWS::Region}}.amazonaws.com"} for s in services] if len(services) > 1
            else {"Fn::Sub": f"{services[0]}.${{AWS::Region}}.amazonaws.com"})}}
        webhook_context = {"StringEquals": {"kms:EncryptionContext:purpose": [
            self.webhook_purpose("WEBHOOK_ENCRYPTION_CONTEXT"), self.webhook_purpose("WEBHOOK_ROUTES_ENCRYPTION_CONTEXT")]}}

        def logs(fn):
            return [("logs:CreateLogStream", get_att(fn + "LogGroup", "Arn"), None),
                    ("logs:PutLogEvents", get_att(fn + "LogGroup", "Arn"), None)]

        for source in ["SourceCloudtrailCloudwatchLogs", "SourceEventbridge"]:
            self.expect_statements(source + "Role", [
                ("sns:Publish", ref("SNSTopic"), None),
                ("sqs:SendMessage", get_att(source + "FailureQueue", "Arn"), None),
                ("kms:GenerateDataKey", key, via("sns", "sqs")), ("kms:Decrypt", key, via("sns", "sqs")),
                # Signing heartbeat legs: the sources sign, the Slack function verifies.
                ("kms:GenerateMac", get_att("HeartbeatKey", "Arn"), None),
                # Remembering routine changes, one item at a time.
                ("dynamodb:UpdateItem", get_att("FamiliarityTable", "Arn"), None),
            ] + logs(source))
        queue = [get_att("DestinationSlackQueue", "Arn"), get_att("DestinationSlackPriorityQueue", "Arn")]
        destination = [
            ("sqs:ReceiveMessage", queue, None), ("sqs:DeleteMessage", queue, None),
            ("sqs:ChangeMessageVisibility", queue, None), ("sqs:GetQueueAttributes", queue, None),
            ("kms:Decrypt", key, via("sqs")), ("kms:Decrypt", key, webhook_context),
            ("kms:VerifyMac", get_att("HeartbeatKey", "Arn"), None),
        ] + logs("DestinationSlack")
        self.expect_statements("DestinationSlackRole", destination)
        # Reading the organisation's account names only when asked for.
        self.expect_statements("DestinationSlackRole", destination + [
            (action, "*", None) for action in
            ["organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListChildren"]],
                               conditions_on={"AccountNamesFromOrganizationsOn"})
        self.expect_statements("KmsEncryptionRole", [("kms:Encrypt", [key, get_att("OperationsKey", "Arn")], None)]
                               + logs("KmsEncryption"))
        # The operations relay decrypts its own webhook with the operations key, and nothing else.
        self.expect_statements("OperationsRelayRole", [
            ("kms:Decrypt", get_att("OperationsKey", "Arn"),
             {"StringEquals": {"kms:EncryptionContext:purpose": "activity-aware-ids/operations-slack-webhook-url"}}),
            ("sqs:SendMessage", get_att("OperationsRelayFailureQueue", "Arn"), None)] + logs("OperationsRelay"))
        # The open-port response describes groups and their rules, and revokes only when asked.
        responder = [
            ("ec2:DescribeSecurityGroups", "*", None), ("ec2:DescribeSecurityGroupRules", "*", None),
            ("ec2:GetManagedPrefixListEntries", "*", None), ("sns:Publish", ref("SNSTopic"), None),
            ("sqs:SendMessage", get_att("ResponseSecurityGroupFailureQueue", "Arn"), None),
            ("kms:GenerateDataKey", key, via("sns", "sqs")), ("kms:Decrypt", key, via("sns", "sqs")),
        ] + logs("ResponseSecurityGroup")
        self.expect_statements("ResponseSecurityGroupRole", responder)
        # It revokes in this account's groups of any region (its other regions forward to the
        # central bus), and in member accounts only as the role member.yaml makes there.
        self.expect_statements("ResponseSecurityGroupRole", responder + [
            ("ec2:RevokeSecurityGroupIngress",
             {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:security-group/*"}, None)],
            conditions_on={"OpenSecurityGroupResponseRevokes"})
        self.expect_statements("ResponseSecurityGroupRole", responder + [
            ("sts:AssumeRole", {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${AWS::StackName}-responder"},
             {"Fn::If": ["HasOrganizationId", {"StringEquals": {"aws:ResourceOrgID": ref("OrganizationId")}},
                         ref("AWS::NoValue")]})],
            conditions_on={"DeploysMembers"})
        self.assertEqual(self.template["Parameters"]["OpenSecurityGroupResponse"]["Default"], "Alert")
        variables = self.props("ResponseSecurityGroupLambda")["Environment"]["Variables"]
        self.assertEqual(variables["RESPONSE_MODE"], {"Fn::If": ["OpenSecurityGroupResponseRevokes", "revoke", "alert"]})
        self.assertEqual(variables["MEMBER_RESPONDER_ROLE"], {"Fn::If": [
            "DeploysMembers", {"Fn::Sub": "${AWS::StackName}-responder"}, ref("AWS::NoValue")]})
        self.assertEqual(variables["MEMBER_EXTERNAL_ID"], {"Fn::If": [
            "DeploysMembers", {"Fn::Select": [2, {"Fn::Split": ["/", ref("AWS::StackId")]}]}, ref("AWS::NoValue")]})
        for name, resource in self.resources.items():
            if name.startswith("ResponseSecurityGroup") or name.startswith("OpenSecurityGroupResponse"):
                self.assertEqual(resource.get("Condition"), "OpenSecurityGroupResponseOn", name)
        stack_sets = {"StackSetAdministrationRole": [{"Service": "cloudformation.amazonaws.com"}],
                      "StackSetExecutionRole": [{"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}]}
        for name, role in self.of_type("AWS::IAM::Role").items():
            self.assertNotIn("ManagedPolicyArns", role["Properties"], name)
            principals = [s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
            self.assertEqual(principals, stack_sets.get(name, [{"Service": "lambda.amazonaws.com"}]), name)
            if name in stack_sets:
                self.assertEqual(role.get("Condition"), "DeploysMembers", name)
        # The execution role is taken by the administration role alone, which StackSets alone take.
        [trust] = self.props("StackSetExecutionRole")["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(trust["Condition"], {"StringLike": {"aws:PrincipalArn": {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-StackSetAdministrationRole-*"}}})

    def test_the_topic_takes_messages_from_the_stacks_sources_and_named_publishers_only(self):
        import cfn_template
        sources = ["arn:aws:iam::111122223333:role/ids-SourceCloudtrailCloudwatchLogsRole-1",
                   "arn:aws:iam::111122223333:role/ids-SourceEventbridgeRole-1"]
        values = {"SourceCloudtrailCloudwatchLogsRole.Arn": sources[0], "SourceEventbridgeRole.Arn": sources[1],
                  "DestinationSlackQueue.Arn": "arn:aws:sqs:us-east-1:111122223333:ids-DestinationSlackQueue-1",
                  "DestinationSlackPriorityQueue.Arn": "arn:aws:sqs:us-east-1:111122223333:ids-DestinationSlackPriorityQueue-1",
                  "SourceHeartbeatRole.Arn": "arn:aws:iam::111122223333:role/ids-SourceHeartbeatRole-1",
                  "ResponseSecurityGroupRole.Arn": "arn:aws:iam::111122223333:role/ids-ResponseSecurityGroupRole-1"}
        sources.append(values["SourceHeartbeatRole.Arn"])
        without_responders = list(sources)
        sources.append(values["ResponseSecurityGroupRole.Arn"])

        def statements(**parameters):
            resolved = cfn_template.Resolved(self.template, values, **parameters)
            return {s["Sid"]: s for s in resolved.property("SNSTopicPolicy", "PolicyDocument")["Statement"]}

        by_default = statements()
        self.assertEqual(sorted(by_default), ["OnlyTheStacksQueuesSubscribe", "OnlyTheStacksSourcesAndThePublishersYouNamePublish", "TlsOnly"])
        publish = by_default["OnlyTheStacksSourcesAndThePublishersYouNamePublish"]
        self.assertEqual((publish["Effect"], publish["Principal"], publish["Action"]), ("Deny", "*", "sns:Publish"))
        self.assertEqual(publish["Condition"], {"ArnNotLike": {"aws:PrincipalArn": sources}})
        subscribe = by_default["OnlyTheStacksQueuesSubscribe"]
        self.assertEqual(subscribe["Condition"], {"StringNotEquals": {"sns:Endpoint": [
            values["DestinationSlackQueue.Arn"], values["DestinationSlackPriorityQueue.Arn"]]}})
        self.assertEqual(by_default["TlsOnly"]["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
        named = "arn:aws:iam::444455556666:role/deployer,arn:aws:iam::111122223333:role/ci"
        with_publishers = statements(TopicPublisherArns=named)
        self.assertEqual(with_publishers["OnlyTheStacksSourcesAndThePublishersYouNamePublish"]["Condition"],
                         {"ArnNotLike": {"aws:PrincipalArn": sources + named.split(",")}})
        self.assertEqual(with_publishers["PublishersYouName"]["Principal"], {"AWS": named.split(",")})
        # Containment, when on, publishes and takes the denials through its own queue.
        values["ResponseContainmentRole.Arn"] = "arn:aws:iam::111122223333:role/ids-ResponseContainmentRole-1"
        values["ResponseContainmentQueue.Arn"] = "arn:aws:sqs:us-east-1:111122223333:ids-ResponseContainmentQueue-1"
        containing = statements(ProbeContainment="Quarantine")
        self.assertEqual(containing["OnlyTheStacksSourcesAndThePublishersYouNamePublish"]["Condition"],
                         {"ArnNotLike": {"aws:PrincipalArn": sources + [values["ResponseContainmentRole.Arn"]]}})
        self.assertEqual(containing["OnlyTheStacksQueuesSubscribe"]["Condition"], {"StringNotEquals": {"sns:Endpoint": [
            values["DestinationSlackQueue.Arn"], values["DestinationSlackPriorityQueue.Arn"],
            values["ResponseContainmentQueue.Arn"]]}})
        # Each other destination, when given, subscribes its own queue, and nothing else.
        for prefix in OTHER_DESTINATIONS:
            values[prefix + "Queue.Arn"] = f"arn:aws:sqs:us-east-1:111122223333:ids-{prefix}Queue-1"
        every_destination = statements(TeamsWebhookURL="https://example.logic.azure.com/workflows/1?sig=x",
                                       PagerDutyRoutingKey="R" * 32, EmailFrom="ids@example.com", EmailTo="ops@example.com")
        self.assertEqual(every_destination["OnlyTheStacksQueuesSubscribe"]["Condition"], {"StringNotEquals": {"sns:Endpoint": [
            values["DestinationSlackQueue.Arn"], values["DestinationSlackPriorityQueue.Arn"],
            values["DestinationTeamsQueue.Arn"], values["DestinationPagerdutyQueue.Arn"], values["DestinationEmailQueue.Arn"]]}})
        self.assertEqual(every_destination["OnlyTheStacksSourcesAndThePublishersYouNamePublish"],
                         by_default["OnlyTheStacksSourcesAndThePublishersYouNamePublish"])
        # A response that is off publishes nothing, so its role may not either.
        off = statements(OpenSecurityGroupResponse="Off")
        self.assertEqual(off["OnlyTheStacksSourcesAndThePublishersYouNamePublish"]["Condition"],
                         {"ArnNotLike": {"aws:PrincipalArn": without_responders}})

    def test_the_health_path_is_its_own(self):
        alarms = self.of_type("AWS::CloudWatch::Alarm")
        for name, alarm in alarms.items():
            props = alarm["Properties"]
            self.assertEqual(props["AlarmName"], {"Fn::Sub": "${AWS::StackName}-" + name}, name)
            self.assertEqual(props["AlarmActions"], [ref("OperationsTopic")], name)
            self.assertEqual(props["OKActions"], [ref("OperationsTopic")], name)
            self.assertTrue(props["AlarmDescription"].endswith("."), name)

        def watched(metric):
            return sorted(next(iter(a["Properties"]["Dimensions"]))["Value"].get("Ref")
                          or a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
                          for a in alarms.values() if a["Properties"]["MetricName"] == metric)

        failure_queues = sorted(n for n in self.of_type("AWS::SQS::Queue") if n.endswith("FailureQueue"))
        self.assertEqual(len(failure_queues), 9)
        self.assertEqual(watched("ApproximateNumberOfMessagesVisible"), failure_queues)
        self.assertEqual(watched("ApproximateAgeOfOldestMessage"),
                         sorted(failure_queues + ["DestinationSlackQueue", "DestinationSlackPriorityQueue",
                                                  "ResponseContainmentQueue"]
                                + [prefix + "Queue" for prefix in OTHER_DESTINATIONS]))
        self.assertEqual(watched("Errors"), sorted([camel(fn) + "Lambda" for fn in self.functions]
                                                   + ["OperationsRelayLambda"]))
        self.assertEqual(watched("DestinationDeliveryFailures"),
                         sorted(camel(fn) + "Lambda" for fn in ["source-cloudtrail-cloudwatch-logs", "source-eventbridge",
                                                                "response-security-group"]))
        # A function's alarms exist when it does.
        for name, alarm in alarms.items():
            dimension = alarm["Properties"]["Dimensions"][0]["Value"]
            watched_resource = dimension.get("Ref") or dimension["Fn::GetAtt"][0]
            if watched_resource == "AWS::StackName":
                continue  # the heartbeat's metric
            self.assertEqual(alarm.get("Condition"), self.resources[watched_resource].get("Condition"), name)
        # A failure queue's Message is told a week before it expires.
        for queue in failure_queues:
            oldest = alarms[queue + "Oldest"]["Properties"]
            self.assertLessEqual(oldest["Threshold"], self.props(queue)["MessageRetentionPeriod"] // 2)
        # The dead man's switch: the heartbeat's canary, through each source, counted by the
        # Slack function in a metric of its path; three hours without one is an alarm.
        with open(os.path.join(ROOT, "crates", "destination-slack", "src", "heartbeat.rs"), encoding="utf-8") as f:
            source = f.read()
        namespace = re.search(r'HEARTBEAT_METRIC_NAMESPACE: &str = "([^"]+)"', source).group(1)
        metric = re.search(r'HEARTBEAT_METRIC: &str = "([^"]+)"', source).group(1)
        for name, path, condition in [("HeartbeatMissingEventBridge", "eventbridge", None),
                                      ("HeartbeatMissingCloudWatchLogs", "cloudwatch-logs", "CloudTrailConfigured")]:
            missing = alarms[name]["Properties"]
            self.assertEqual(alarms[name].get("Condition"), condition, name)
            self.assertEqual((missing["Namespace"], missing["MetricName"]), (namespace, metric))
            self.assertEqual(missing["Dimensions"], [{"Name": "Stack", "Value": ref("AWS::StackName")},
                                                     {"Name": "Path", "Value": path}])
            self.assertEqual((missing["Period"], missing["EvaluationPeriods"], missing["DatapointsToAlarm"],
                              missing["Statistic"], missing["TreatMissingData"], missing["Threshold"],
                              missing["ComparisonOperator"]), (3600, 3, 3, "Sum", "breaching", 1, "LessThanThreshold"))
        self.assertNotIn("HeartbeatMissing", alarms)
        # The canary: a call the heartbeat's role is denied, to the parameter the sources know.
        self.assertEqual(self.props("HeartbeatScheduleRule")["ScheduleExpression"], "rate(1 hour)")
        canary = self.props("HeartbeatCanaryRule")
        self.assertEqual(canary["EventPattern"]["detail"]["requestParameters"]["name"],
                         [{"Fn::Sub": "/activity-aware-ids/${AWS::StackName}/heartbeat"}])
        self.assertEqual([t["Arn"] for t in canary["Targets"]], [get_att("SourceEventbridgeLambda", "Arn")])
        heartbeat_key = self.props("HeartbeatKey")
        self.assertEqual((heartbeat_key["KeySpec"], heartbeat_key["KeyUsage"]), ("HMAC_256", "GENERATE_VERIFY_MAC"))
        # The operations topic works when the stack key does not.
        self.assertNotIn("KmsMasterKeyId", self.props("OperationsTopic"))
        [alarms_publish, rules_publish, nobody_else, tls] = self.props("OperationsTopicPolicy")["PolicyDocument"]["Statement"]
        self.assertEqual(alarms_publish["Principal"], {"Service": "cloudwatch.amazonaws.com"})
        self.assertEqual((rules_publish["Principal"], rules_publish["Condition"]), (
            {"Service": "events.amazonaws.com"},
            {"ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${AWS::StackName}-*"}}}))
        # Nobody else publishes to it: no forged "OK", no flood to bury an alarm.
        self.assertEqual((nobody_else["Effect"], nobody_else["Principal"], nobody_else["Action"], nobody_else["Condition"]), (
            "Deny", "*", "sns:Publish",
            {"StringNotEquals": {"aws:PrincipalServiceName": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}}))
        self.assertEqual(tls["Condition"], {"Bool": {"aws:SecureTransport": "false"}})
        # It has a subscriber by default: the relay, which posts to Slack with a key of its own.
        relay = self.props("OperationsRelaySubscription")
        self.assertEqual((relay["TopicArn"], relay["Protocol"], relay["Endpoint"]),
                         (ref("OperationsTopic"), "lambda", get_att("OperationsRelayLambda", "Arn")))
        self.assertNotIn("Condition", self.resources["OperationsRelaySubscription"])
        email = self.resources["OperationsEmailSubscription"]
        self.assertEqual((email["Condition"], email["Properties"]["Protocol"]), ("HasOperationsEmail", "email"))
        self.assertEqual(self.template["Parameters"]["OperationsEmail"]["Default"], "")
        # The heartbeat's function counts and publishes, and nothing else.
        statements = self.props("SourceHeartbeatRole")["Policies"][0]["PolicyDocument"]["Statement"]
        # (Organizations' listing, only when an organisation is watched, is checked below.)
        self.props("SourceHeartbeatRole")["Policies"][0]["PolicyDocument"]["Statement"] = [
            st for st in statements if "Fn::If" not in st and st["Effect"] == "Allow"]
        [listing] = [st["Fn::If"] for st in statements if "Fn::If" in st]
        self.assertEqual(listing[0], "WatchesOrganization")
        self.assertEqual((listing[1]["Action"], listing[1]["Resource"]),
                         (["organizations:ListAccountsForParent", "organizations:ListChildren"], "*"))
        self.expect_statements("SourceHeartbeatRole", [
            ("sns:Publish", ref("SNSTopic"), None),
            ("kms:GenerateDataKey", get_att("StackKey", "Arn"), {"StringEquals": {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"}}}),
            ("kms:Decrypt", get_att("StackKey", "Arn"), {"StringEquals": {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"}}}),
            ("sqs:GetQueueAttributes", [get_att(q, "Arn") for q in ["SourceCloudtrailCloudwatchLogsFailureQueue",
                                                                    "SourceEventbridgeFailureQueue", "DestinationSlackFailureQueue"]]
             + [{"Fn::If": [condition, get_att(prefix + "FailureQueue", "Arn"), ref("AWS::NoValue")]}
                for prefix, condition in OTHER_DESTINATIONS.items()]
             + [{"Fn::If": ["OpenSecurityGroupResponseOn", get_att("ResponseSecurityGroupFailureQueue", "Arn"),
                            ref("AWS::NoValue")]},
                {"Fn::If": ["ProbeContainmentOn", get_att("ResponseContainmentFailureQueue", "Arn"),
                            ref("AWS::NoValue")]}], None),
            ("cloudwatch:GetMetricStatistics", "*", None),
            ("dynamodb:Scan", get_att("FamiliarityTable", "Arn"), None),
            ("dynamodb:UpdateItem", get_att("FamiliarityTable", "Arn"), None),
            ("logs:CreateLogStream", get_att("SourceHeartbeatLogGroup", "Arn"), None),
            ("logs:PutLogEvents", get_att("SourceHeartbeatLogGroup", "Arn"), None),
        ])
        self.props("SourceHeartbeatRole")["Policies"][0]["PolicyDocument"]["Statement"] = statements
        [deny] = [st for st in statements if st.get("Effect") == "Deny"]
        self.assertEqual((deny["Action"], deny["Resource"]), ("ssm:PutParameter", {"Fn::Sub":
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/activity-aware-ids/${AWS::StackName}/heartbeat"}))
        schedule = self.props("HeartbeatScheduleRule")
        self.assertEqual([t["Arn"] for t in schedule["Targets"]], [get_att("SourceHeartbeatLambda", "Arn")])

    def test_every_function_logs_json(self):
        # Lambda then sets AWS_LAMBDA_LOG_FORMAT=JSON, and the functions write one JSON object a
        # line: attacker-controlled newlines stay inside their string.
        for name, function in self.of_type("AWS::Lambda::Function").items():
            self.assertEqual(function["Properties"]["LoggingConfig"].get("LogFormat"), "JSON", name)

    def test_each_function_logs_to_its_own_encrypted_group_with_retention(self):
        for fn in self.functions:
            group = camel(fn) + "LogGroup"
            self.assertEqual(self.props(camel(fn) + "Lambda")["LoggingConfig"], {"LogGroup": ref(group), "LogFormat": "JSON"})
            self.assertEqual(self.props(group)["RetentionInDays"], ref("LogRetentionInDays"))
            self.assertEqual(self.props(group)["KmsKeyId"], get_att("StackKey", "Arn"))
            self.assertEqual(self.props(group)["LogGroupName"],
                             {"Fn::Sub": "/aws/lambda/${AWS::StackName}-" + camel(fn)})
        logs_statement = [s for s in self.props("StackKey")["KeyPolicy"]["Statement"]
                          if s["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}]
        self.assertEqual(len(logs_statement), 1)
        self.assertEqual(logs_statement[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"],
                         {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*"})

    def test_encryption_at_rest_with_one_way_of_naming_the_key(self):
        key = self.props("StackKey")
        self.assertTrue(key["EnableKeyRotation"])
        self.assertEqual(self.props("StackKeyAlias"),
                         {"AliasName": {"Fn::Sub": "alias/${AWS::StackName}-Key"}, "TargetKeyId": get_att("StackKey", "Arn")})
        self.assertEqual(self.props("SNSTopic")["KmsMasterKeyId"], get_att("StackKey", "Arn"))
        queues = self.of_type("AWS::SQS::Queue")
        self.assertGreaterEqual(len(queues), 3)
        for name in queues:
            if name == "OperationsRelayFailureQueue":
                # The operations path shares no key with what it watches: SQS's own key.
                self.assertEqual(self.props(name)["SqsManagedSseEnabled"], True)
                self.assertNotIn("KmsMasterKeyId", self.props(name))
            else:
                self.assertEqual(self.props(name)["KmsMasterKeyId"], get_att("StackKey", "Arn"), name)
            self.assertEqual(self.props(name)["MessageRetentionPeriod"], 1209600, name)
        # The key is named one way everywhere: its ARN.
        with open(TEMPLATE, encoding="utf-8") as f:
            self.assertNotIn("!Ref StackKey\n", f.read())
        # The services that write to the encrypted topic and queues: SNS (the buffer queue) and
        # EventBridge (the rules' dead-letter queue, for this account's rules only).
        [sns] = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "sns.amazonaws.com"}]
        self.assertEqual(sorted(sns["Action"]), ["kms:Decrypt", "kms:GenerateDataKey*"])
        self.assertEqual(sns["Condition"], {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}})
        [events] = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
        self.assertEqual(sorted(events["Action"]), ["kms:Decrypt", "kms:GenerateDataKey"])
        self.assertEqual(events["Condition"], {
            "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
            "ArnLike": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"}}})

    def webhook_purpose(self, constant="WEBHOOK_ENCRYPTION_CONTEXT"):
        """The purpose the destination requires on decrypt, read from its source."""
        with open(WEBHOOK_RS, encoding="utf-8") as f:
            source = f.read()
        # `WEBHOOK_ENCRYPTION_CONTEXT: [(&str, &str); 1] = WEBHOOK_URL.encryption_context();`
        secret = re.search(constant + r': \[\(&str, &str\); 1\] =\s*(\w+)\.encryption_context\(\)', source)
        self.assertIsNotNone(secret, f"{constant} not found in webhook.rs")
        found = re.search(r"pub const " + secret.group(1) + r': Secret = Secret \{[^}]*purpose: "([^"]+)"', source)
        self.assertIsNotNone(found, f"{secret.group(1)} not found in webhook.rs")
        return found.group(1)

    def test_webhook_encrypted_by_the_custom_resource_for_one_purpose(self):
        custom = self.resources["EncryptedSlackWebhookURL"]
        self.assertTrue(custom["Type"].startswith("Custom::"))
        self.assertEqual(custom["Properties"], {"ServiceToken": get_att("KmsEncryptionLambda", "Arn"),
                                                "ServiceTimeout": 300,
                                                "KeyId": get_att("StackKey", "Arn"),
                                                "PlainText": ref("SlackWebhookURL"),
                                                "EncryptionContext": {"purpose": self.webhook_purpose()}})
        variables = self.props("DestinationSlackLambda")["Environment"]["Variables"]
        self.assertEqual(variables["SLACK_WEBHOOK_URL"], get_att("EncryptedSlackWebhookURL", "CipherText"))
        self.assertEqual(variables["ACCOUNT_NAMES"], ref("AccountNames"))
        # The custom resource knows its stack only: it answers that stack's requests alone.
        self.assertEqual(self.props("KmsEncryptionLambda")["Environment"],
                         {"Variables": {"STACK_ID": ref("AWS::StackId")}})
        # The plain webhook URL reaches nothing but the custom resource.
        uses = [name for name, r in self.resources.items() if json.dumps(ref("SlackWebhookURL")) in json.dumps(r)]
        self.assertEqual(sorted(uses), ["EncryptedOperationsSlackWebhookURL", "EncryptedSlackWebhookURL"])
        # The operations relay's copy: the operations key, a purpose of its own.
        self.assertEqual(self.props("EncryptedOperationsSlackWebhookURL"), {
            "ServiceToken": get_att("KmsEncryptionLambda", "Arn"), "ServiceTimeout": 300,
            "KeyId": get_att("OperationsKey", "Arn"), "PlainText": ref("SlackWebhookURL"),
            "EncryptionContext": {"purpose": self.webhook_purpose("OPERATIONS_WEBHOOK_ENCRYPTION_CONTEXT")}})
        relay = self.props("OperationsRelayLambda")["Environment"]["Variables"]
        self.assertEqual((relay["OPERATIONS_RELAY"], relay["SLACK_WEBHOOK_URL"]),
                         ("true", get_att("EncryptedOperationsSlackWebhookURL", "CipherText")))
        # Only the destinations' roles may decrypt a secret, whatever else a principal may do.
        for key in ["StackKey", "OperationsKey"]:
            [deny] = [s for s in self.props(key)["KeyPolicy"]["Statement"] if s["Effect"] == "Deny"]
            self.assertEqual(deny["Condition"], {
                "StringLike": {"kms:EncryptionContext:purpose": "activity-aware-ids/*"},
                "StringNotEquals": {"aws:PrincipalTag/ActivityAwareIdsSecrets": ref("AWS::StackName")}}, key)
        readers = sorted(name for name, role in self.of_type("AWS::IAM::Role").items()
                         if {"Key": "ActivityAwareIdsSecrets", "Value": ref("AWS::StackName")} in role["Properties"].get("Tags", []))
        self.assertEqual(readers, ["DestinationPagerdutyRole", "DestinationSlackRole", "DestinationTeamsRole",
                                   "OperationsRelayRole"])

    def test_webhook_routes_are_encrypted_for_a_purpose_of_their_own_when_given(self):
        parameter = self.template["Parameters"]["SlackWebhookRoutes"]
        self.assertTrue(parameter["NoEcho"])
        self.assertEqual(parameter["Default"], "")
        self.assertEqual(self.template["Conditions"]["HasSlackWebhookRoutes"],
                         {"Fn::Not": [{"Fn::Equals": [ref("SlackWebhookRoutes"), ""]}]})
        custom = self.resources["EncryptedSlackWebhookRoutes"]
        self.assertEqual(custom["Condition"], "HasSlackWebhookRoutes")
        purpose = self.webhook_purpose("WEBHOOK_ROUTES_ENCRYPTION_CONTEXT")
        self.assertNotEqual(purpose, self.webhook_purpose())
        self.assertEqual(custom["Properties"], {"ServiceToken": get_att("KmsEncryptionLambda", "Arn"),
                                                "ServiceTimeout": 300,
                                                "KeyId": get_att("StackKey", "Arn"),
                                                "PlainText": ref("SlackWebhookRoutes"),
                                                "EncryptionContext": {"purpose": purpose}})
        variables = self.props("DestinationSlackLambda")["Environment"]["Variables"]
        self.assertEqual(variables["SLACK_WEBHOOK_ROUTES"], {"Fn::If": [
            "HasSlackWebhookRoutes", get_att("EncryptedSlackWebhookRoutes", "CipherText"), ""]})
        uses = [name for name, r in self.resources.items() if json.dumps(ref("SlackWebhookRoutes")) in json.dumps(r)]
        self.assertEqual(uses, ["EncryptedSlackWebhookRoutes"])
        # The routes the function reads (crates/destination-slack/src/routes.rs), and not others.
        pattern = re.compile(parameter["AllowedPattern"])
        for good in ["", "account:111122223333=https://hooks.slack.com/services/T0/B0/x",
                     "account:111122223333=https://hooks.slack.com/services/T0/B0/x,channel:#oncall=https://hooks.slack.com/services/T0/B1/y"]:
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in ["https://hooks.slack.com/services/T0/B0/x", "account:1234=https://h/x", "team:x=https://h/x",
                    "channel:#a=http://h/x", "channel:#a=https://h/x,", "channel:=https://h/x"]:
            self.assertFalse(pattern.fullmatch(bad), bad)

    def test_the_slack_functions_environment_fits_lambdas_4_kb_at_every_parameters_longest(self):
        """Lambda refuses a function whose environment variables (names and values) pass 4 KB.
        KMS ciphertext is the plaintext and at most about 200 bytes besides, then base64."""
        parameters = self.template["Parameters"]

        def encrypted(parameter):
            return (parameters[parameter]["MaxLength"] + 200 + 2) // 3 * 4

        longest = {
            "SLACK_WEBHOOK_URL": encrypted("SlackWebhookURL"),
            "SLACK_WEBHOOK_ROUTES": encrypted("SlackWebhookRoutes"),
            "ACCOUNT_NAMES": parameters["AccountNames"]["MaxLength"],
            "SLACK_POST_INTERVAL_MS": len(str(self.pace("PostIntervalMs"))),
            "ACCOUNT_NAMES_FROM_ORGANIZATIONS": len("false"),
            "HEARTBEAT_KEY_ARN": len("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/") + 36,
            "MINIMUM_SEVERITY": len("critical"),
        }
        variables = self.props("DestinationSlackLambda")["Environment"]["Variables"]
        self.assertEqual(sorted(variables), sorted(longest))
        self.assertLessEqual(sum(len(name) + size for name, size in longest.items()), 4096, longest)

    def test_only_the_sources_write_what_is_remembered_of_routine_changes(self):
        table = self.props("FamiliarityTable")
        self.assertEqual(table["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual(table["TimeToLiveSpecification"], {"AttributeName": "expires", "Enabled": True})
        self.assertEqual(table["KeySchema"], [{"AttributeName": "key", "KeyType": "HASH"}])
        self.assertTrue(table["SSESpecification"]["SSEEnabled"])
        self.assertTrue(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        [deny] = table["ResourcePolicy"]["PolicyDocument"]["Statement"]
        self.assertEqual((deny["Effect"], deny["Principal"]), ("Deny", "*"))
        for write in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                      "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"]:
            self.assertIn(write, deny["Action"])
        # The policy names the table CloudFormation makes.
        self.assertEqual(table["TableName"], {"Fn::Sub": "${AWS::StackName}-familiarity"})
        self.assertTrue(deny["Resource"]["Fn::Sub"].endswith(":table/${AWS::StackName}-familiarity"))
        self.assertEqual(deny["Condition"], {"StringNotEquals": {
            "aws:PrincipalTag/ActivityAwareIdsFamiliarity": ref("AWS::StackName")}})
        # The tag is the sources' alone.
        tagged = sorted(name for name, role in self.of_type("AWS::IAM::Role").items()
                        if {"Key": "ActivityAwareIdsFamiliarity", "Value": ref("AWS::StackName")}
                        in role["Properties"].get("Tags", []))
        self.assertEqual(tagged, ["SourceCloudtrailCloudwatchLogsRole", "SourceEventbridgeRole", "SourceHeartbeatRole"])
        days = self.template["Parameters"]["FamiliarityDays"]
        self.assertEqual((days["Default"], days["MinValue"], days["MaxValue"]), (90, 1, 3650))

    def test_slack_and_teams_post_from_low_and_the_operations_relay_everything(self):
        parameters = self.template["Parameters"]
        for destination in ["Slack", "Teams"]:
            self.assertEqual(parameters[destination + "MinimumSeverity"]["Default"], "low")
        self.assertEqual(self.props("DestinationSlackLambda")["Environment"]["Variables"]["MINIMUM_SEVERITY"],
                         ref("SlackMinimumSeverity"))
        self.assertEqual(self.props("OperationsRelayLambda")["Environment"]["Variables"]["MINIMUM_SEVERITY"], "info")

    def test_organization_account_names_are_off_by_default(self):
        self.assertEqual(self.template["Parameters"]["AccountNamesFromOrganizations"]["Default"], "Disabled")
        self.assertEqual(self.props("DestinationSlackLambda")["Environment"]["Variables"]["ACCOUNT_NAMES_FROM_ORGANIZATIONS"],
                         {"Fn::If": ["AccountNamesFromOrganizationsOn", "true", "false"]})

    def test_sources_publish_to_the_topic_and_read_detections_the_same_way(self):
        expected = {
            "SNS_TOPIC": ref("SNSTopic"),
            "STACK_NAME": ref("AWS::StackName"),
            "STACK_KEY_ARN": get_att("StackKey", "Arn"),
            "OPERATIONS_TOPIC_ARN": ref("OperationsTopic"),
            "CLOUDTRAIL_LOG_GROUP": ref("CloudTrailCloudWatchLogsGroupName"),
            "HONEY_BUCKET_NAME": ref("HoneyBucketName"),
            "HEARTBEAT_ROLE_ARN": get_att("SourceHeartbeatRole", "Arn"),
            "HEARTBEAT_KEY_ARN": get_att("HeartbeatKey", "Arn"),
            "ALLOWED_PUBLIC_PORTS": ref("AllowedPublicPorts"),
            "EXPECTED_PRINCIPAL_ARNS": ref("ExpectedPrincipalArns"),
            "EXPECT_CLOUDFORMATION_CHANGES": {"Fn::If": ["ExpectCloudFormationChangesOn", "true", "false"]},
            "EXPECTED_CHANGES": {"Fn::If": ["DropExpectedChanges", "drop", "info"]},
            "FAMILIARITY_TABLE": ref("FamiliarityTable"),
            "FAMILIARITY_DAYS": ref("FamiliarityDays"),
        }
        for source in ["SourceCloudtrailCloudwatchLogsLambda", "SourceEventbridgeLambda"]:
            self.assertEqual(self.props(source)["Environment"], {"Variables": expected})
        parameters = self.template["Parameters"]
        self.assertEqual(parameters["AllowedPublicPorts"]["Default"], "tcp:80,tcp:443")
        self.assertEqual(parameters["ExpectedPrincipalArns"]["Default"], "")
        self.assertEqual(parameters["ExpectedChanges"]["Default"], "Info")
        # The parameters' patterns take what the sources take, and refuse what they refuse.
        ports = re.compile(parameters["AllowedPublicPorts"]["AllowedPattern"])
        for good in ["tcp:80,tcp:443", "tcp:8000-8080,udp:53,icmp", ""]:
            self.assertTrue(ports.fullmatch(good), good)
        for bad in ["tcp:https", "tcp:80, tcp:443", "sctp:1"]:
            self.assertFalse(ports.fullmatch(bad), bad)
        principals = re.compile(parameters["ExpectedPrincipalArns"]["AllowedPattern"])
        for good in ["arn:aws:iam::111122223333:role/Deploy",
                     "arn:aws:sts::111122223333:assumed-role/Deploy/*,arn:aws:iam::111122223333:user/ci"]:
            self.assertTrue(principals.fullmatch(good), good)
        for bad in ["arn:aws:sts::111122223333:assumed-role/Deploy/ci-*", "arn:aws:iam::111122223333:user/*",
                    "arn:aws:sts::111122223333:assumed-role/Deploy*", "deploy"]:
            self.assertFalse(principals.fullmatch(bad), bad)

    def test_every_asynchronously_invoked_function_keeps_its_failures(self):
        configs = self.of_type("AWS::Lambda::EventInvokeConfig")
        self.assertEqual(sorted(configs), ["OperationsRelayInvokeConfig", "ResponseSecurityGroupInvokeConfig",
                                           "SourceCloudtrailCloudwatchLogsInvokeConfig", "SourceEventbridgeInvokeConfig"])
        for name, config in configs.items():
            fn = name.replace("InvokeConfig", "")
            props = config["Properties"]
            self.assertEqual(props["FunctionName"], ref(fn + "Lambda"))
            self.assertEqual(props["Qualifier"], "$LATEST")
            self.assertEqual(props["DestinationConfig"], {"OnFailure": {"Destination": get_att(fn + "FailureQueue", "Arn")}})
            self.assertEqual(self.template["Outputs"][fn + "FailureQueueUrl"]["Value"], ref(fn + "FailureQueue"))

    def test_cloudtrail_subscription_is_conditional_and_scoped(self):
        conditions = self.template["Conditions"]
        self.assertEqual(conditions["CloudTrailConfigured"],
                         {"Fn::Not": [{"Fn::Equals": [ref("CloudTrailCloudWatchLogsGroupName"), ""]}]})
        permission = self.resources["SourceCloudtrailCloudwatchLogsPermission"]
        self.assertEqual(permission["Condition"], "CloudTrailConfigured")
        self.assertEqual(permission["Properties"]["Principal"], {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"})
        self.assertEqual(permission["Properties"]["SourceArn"], {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${CloudTrailCloudWatchLogsGroupName}:*"})
        self.assertEqual(permission["Properties"]["FunctionName"], get_att("SourceCloudtrailCloudwatchLogsLambda", "Arn"))
        subscription = self.resources["CloudWatchLogsSubscriptionFilter"]
        self.assertEqual(subscription["Type"], "AWS::Logs::SubscriptionFilter")
        self.assertEqual(subscription["Condition"], "CloudTrailConfigured")
        self.assertEqual(subscription["DependsOn"], "SourceCloudtrailCloudwatchLogsPermission")
        properties = dict(subscription["Properties"])
        # The pattern is the parameter's with the noise exclusions: tests/filter_test.py.
        self.assertIn(json.dumps(ref("CloudTrailCloudWatchLogsFilterPattern")), json.dumps(properties.pop("FilterPattern")))
        self.assertEqual(properties, {
            "DestinationArn": get_att("SourceCloudtrailCloudwatchLogsLambda", "Arn"),
            "LogGroupName": ref("CloudTrailCloudWatchLogsGroupName")})

    def test_account_names_are_checked_as_the_function_reads_them(self):
        pattern = re.compile(self.template["Parameters"]["AccountNames"]["AllowedPattern"])
        for good in ["", "111122223333=prod", "111122223333=prod,444455556666=staging team",
                     " 111122223333 = prod , 444455556666=staging"]:
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in ["prod", "1234=prod", "111122223333=", "111122223333=prod,", "111122223333=a=b"]:
            self.assertFalse(pattern.fullmatch(bad), bad)

    def test_the_topic_feeds_the_destination_through_its_two_lanes(self):
        subscriptions = {name: s for name, s in self.of_type("AWS::SNS::Subscription").items()
                         if s["Properties"]["TopicArn"] == ref("SNSTopic") and name.startswith("DestinationSlack")}
        self.assertEqual(list(subscriptions), ["DestinationSlackSubscription", "DestinationSlackPrioritySubscription"])
        lanes = {"DestinationSlackSubscription": "DestinationSlackQueue",
                 "DestinationSlackPrioritySubscription": "DestinationSlackPriorityQueue"}
        for subscription, queue in lanes.items():
            props = dict(subscriptions[subscription]["Properties"])
            self.assertEqual(props.pop("FilterPolicyScope"), "MessageAttributes")
            props.pop("FilterPolicy")
            self.assertEqual(props, {"TopicArn": ref("SNSTopic"), "Protocol": "sqs",
                                     "Endpoint": get_att(queue, "Arn"), "RawMessageDelivery": True})
        # The filter policies split every Message between the lanes, and none is in both: the
        # SNS filter semantics, with moto's implementation of them.
        from moto.sns.utils import FilterPolicyMatcher
        bulk = FilterPolicyMatcher(subscriptions["DestinationSlackSubscription"]["Properties"]["FilterPolicy"], "MessageAttributes")
        priority = FilterPolicyMatcher(subscriptions["DestinationSlackPrioritySubscription"]["Properties"]["FilterPolicy"], "MessageAttributes")
        for severity, lane in [("info", "bulk"), ("low", "bulk"), ("medium", "bulk"), (None, "bulk"),
                               ("high", "priority"), ("critical", "priority"), ("urgent", "bulk")]:
            attributes = {} if severity is None else {"severity": {"Type": "String", "Value": severity}}
            matched = {name for name, matcher in [("bulk", bulk), ("priority", priority)]
                       if matcher.matches(attributes, "message")}
            self.assertEqual(matched, {lane}, severity)
        policy = self.props("DestinationSlackQueuePolicy")
        self.assertEqual(policy["Queues"], [ref("DestinationSlackQueue"), ref("DestinationSlackPriorityQueue")])
        self.assert_only_the_topic_sends_and_only_the_reader_reads(
            "DestinationSlackQueuePolicy",
            [get_att("DestinationSlackQueue", "Arn"), get_att("DestinationSlackPriorityQueue", "Arn")], "DestinationSlackRole")
        # No function is invoked by the alert topic itself: only the operations relay, by the
        # operations topic.
        by_sns = {name: p["Properties"] for name, p in self.of_type("AWS::Lambda::Permission").items()
                  if p["Properties"]["Principal"] == "sns.amazonaws.com"}
        self.assertEqual(by_sns, {"OperationsRelayPermission": {
            "FunctionName": get_att("OperationsRelayLambda", "Arn"), "Action": "lambda:InvokeFunction",
            "Principal": "sns.amazonaws.com", "SourceArn": ref("OperationsTopic")}})

    def test_the_priority_lane_is_small_quick_and_kept(self):
        props = self.props("DestinationSlackPriorityEventSourceMapping")
        self.assertEqual(props["EventSourceArn"], get_att("DestinationSlackPriorityQueue", "Arn"))
        self.assertEqual(props["FunctionName"], ref("DestinationSlackLambda"))
        self.assertEqual(props["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertLessEqual(self.resolved(props["MaximumBatchingWindowInSeconds"]), 1)
        self.assertLessEqual(self.resolved(props["BatchSize"]), 10)
        self.assertGreaterEqual(self.resolved(props["ScalingConfig"]["MaximumConcurrency"]), 2)
        queue = self.props("DestinationSlackPriorityQueue")
        timeout = self.resolved(self.props("DestinationSlackLambda")["Timeout"])
        self.assertGreaterEqual(self.resolved(queue["VisibilityTimeout"]), 6 * timeout + self.resolved(props["MaximumBatchingWindowInSeconds"]))
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"], get_att("DestinationSlackFailureQueue", "Arn"))
        self.assertEqual(queue["KmsMasterKeyId"], get_att("StackKey", "Arn"))

    def test_containment_counts_denied_calls_only_and_can_deny_but_never_grant(self):
        subscription = self.resources["ResponseContainmentSubscription"]
        self.assertEqual(subscription["Condition"], "ProbeContainmentOn")
        props = subscription["Properties"]
        self.assertEqual((props["Endpoint"], props["RawMessageDelivery"], props["FilterPolicyScope"]),
                         (get_att("ResponseContainmentQueue", "Arn"), True, "MessageAttributes"))
        from moto.sns.utils import FilterPolicyMatcher
        matcher = FilterPolicyMatcher(props["FilterPolicy"], "MessageAttributes")
        attributes = lambda detection, denied: {
            "severity": {"Type": "String", "Value": "low"}, "detection": {"Type": "String", "Value": detection},
            **({"denied": {"Type": "String", "Value": "true"}} if denied else {})}
        # Every denied call, whatever its detection (a denied LeaveOrganization too); nothing else.
        self.assertTrue(matcher.matches(attributes("access-denied", True), ""))
        self.assertTrue(matcher.matches(attributes("organization-left", True), ""))
        self.assertFalse(matcher.matches(attributes("organization-left", False), ""))
        self.assertFalse(matcher.matches({"severity": {"Type": "String", "Value": "low"}}, ""))
        # The mapping gathers a minute of denials; the queue hides a batch for longer than
        # the function and the window take, and a probe CloudTrail does not confirm yet is
        # looked up again on its third receive, the last before the failure queue.
        mapping = self.props("ResponseContainmentEventSourceMapping")
        self.assertEqual((mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"],
                          mapping["FunctionResponseTypes"]), (1000, 60, ["ReportBatchItemFailures"]))
        timeout = self.props("ResponseContainmentLambda")["Timeout"]
        queue_props = self.props("ResponseContainmentQueue")
        self.assertGreaterEqual(queue_props["VisibilityTimeout"], 6 * timeout + 60)
        self.assertEqual(queue_props["RedrivePolicy"]["maxReceiveCount"], 3)
        self.assertGreaterEqual(2 * queue_props["VisibilityTimeout"] + 60, 14 * 60,
                                "the last look comes after CloudTrail's 15 minutes")
        self.assertEqual(self.template["Parameters"]["ProbeContainment"]["Default"], "Off")
        for name, resource in self.resources.items():
            if name.startswith("ResponseContainment") or name == "ContainedSessionsPolicy":
                self.assertEqual(resource.get("Condition"), "ProbeContainmentOn", name)
        self.assert_only_the_topic_sends_and_only_the_reader_reads(
            "ResponseContainmentQueuePolicy", [get_att("ResponseContainmentQueue", "Arn")], "ResponseContainmentRole")
        # The contained-session policy only denies, and only the session the role's tag names.
        document = self.props("ContainedSessionsPolicy")["PolicyDocument"]
        self.assertEqual(document["Statement"], [{
            "Sid": "DenyTheSessionTheRoleTagNames", "Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:userid": "${aws:PrincipalTag/ActivityAwareIdsContainedSession}"}}}])
        env = self.props("ResponseContainmentLambda")["Environment"]["Variables"]
        self.assertEqual(env["CONTAINED_SESSIONS_POLICY_ARN"], ref("ContainedSessionsPolicy"))
        self.assertEqual(env["CONTAINMENT_WINDOW_HOURS"], ref("ProbeContainmentWindowHours"))
        # Users get AWS's quarantine policy only, roles the stack's contained-session policy
        # only, both containment's two tags only; it writes no policy, and never touches the
        # stack's own roles.
        key = get_att("StackKey", "Arn")
        via = {"StringEquals": {"kms:ViaService": [{"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"},
                                                   {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}]}}
        users = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}
        roles = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
        queue = get_att("ResponseContainmentQueue", "Arn")
        quarantine = {"ArnEquals": {"iam:PolicyARN": {
            "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}}}
        contained = {"ArnEquals": {"iam:PolicyARN": ref("ContainedSessionsPolicy")}}
        two_tags = {"ForAllValues:StringEquals": {
            "aws:TagKeys": ["ActivityAwareIdsContainedSession", "ActivityAwareIdsContainedAt"]}}
        statements = self.props("ResponseContainmentRole")["Policies"][0]["PolicyDocument"]["Statement"]
        [deny] = [s for s in statements if s["Effect"] == "Deny"]
        self.assertEqual((deny["Action"], deny["Resource"]), (["iam:AttachRolePolicy", "iam:TagRole"], {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-*"}))
        actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
        for never in ("iam:PutRolePolicy", "iam:PutUserPolicy", "iam:CreatePolicyVersion", "iam:UpdateAssumeRolePolicy"):
            self.assertNotIn(never, actions)
        self.props("ResponseContainmentRole")["Policies"][0]["PolicyDocument"]["Statement"] = [
            s for s in statements if s["Effect"] == "Allow"]
        try:
            self.expect_statements("ResponseContainmentRole", [
                ("iam:AttachUserPolicy", users, quarantine), ("iam:AttachRolePolicy", roles, contained),
                ("iam:TagUser", [users, roles], two_tags), ("iam:TagRole", [users, roles], two_tags),
                ("iam:ListAttachedUserPolicies", [users, roles], None), ("iam:ListUserTags", [users, roles], None),
                ("iam:ListAttachedRolePolicies", [users, roles], None), ("iam:ListRoleTags", [users, roles], None),
                ("cloudtrail:LookupEvents", "*", None),
                ("sqs:ReceiveMessage", queue, None), ("sqs:DeleteMessage", queue, None),
                ("sqs:ChangeMessageVisibility", queue, None), ("sqs:GetQueueAttributes", queue, None),
                ("sns:Publish", ref("SNSTopic"), None), ("kms:GenerateDataKey", key, via), ("kms:Decrypt", key, via),
                ("logs:CreateLogStream", get_att("ResponseContainmentLogGroup", "Arn"), None),
                ("logs:PutLogEvents", get_att("ResponseContainmentLogGroup", "Arn"), None),
            ])
        finally:
            self.props("ResponseContainmentRole")["Policies"][0]["PolicyDocument"]["Statement"] = statements
        # The function knows the stack's roles, to never contain them.
        stack_roles = env["STACK_ROLE_ARNS"]["Fn::Join"][1]
        named = {item["Fn::GetAtt"][0] if "Fn::GetAtt" in item else item["Fn::If"][1]["Fn::GetAtt"][0]
                 for item in stack_roles}
        self.assertEqual(named, set(self.of_type("AWS::IAM::Role")))

    def test_the_event_source_mapping_keeps_the_stack_under_slacks_rate_limit(self):
        mappings = self.of_type("AWS::Lambda::EventSourceMapping")
        props = mappings["DestinationSlackEventSourceMapping"]["Properties"]
        lanes = sum(self.resolved(m["Properties"]["ScalingConfig"]["MaximumConcurrency"])
                    for name, m in mappings.items() if name.startswith("DestinationSlack"))
        self.assertEqual(props["EventSourceArn"], get_att("DestinationSlackQueue", "Arn"))
        self.assertEqual(props["FunctionName"], ref("DestinationSlackLambda"))
        self.assertEqual(props["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        concurrency = self.resolved(props["ScalingConfig"]["MaximumConcurrency"])
        batch_size = self.resolved(props["BatchSize"])
        window = self.resolved(props["MaximumBatchingWindowInSeconds"])
        interval_ms = int(self.resolved(self.props("DestinationSlackLambda")["Environment"]["Variables"]["SLACK_POST_INTERVAL_MS"]))
        timeout = self.resolved(self.props("DestinationSlackLambda")["Timeout"])
        queue = self.props("DestinationSlackQueue")
        visibility = self.resolved(queue["VisibilityTimeout"])
        # Together, the instances of both lanes post at most once a second.
        self.assertGreaterEqual(concurrency, 2)
        self.assertEqual(lanes, 4)
        self.assertGreaterEqual(interval_ms, 1000 * lanes)
        # Lambda's rules for SQS batches, and the bounds.
        self.assertTrue(10 < batch_size <= 10000)
        self.assertTrue(1 <= window <= 30)
        # AWS's guidance for a queue feeding a function: six times its timeout and the window.
        self.assertGreaterEqual(visibility, 6 * timeout + window)
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"], get_att("DestinationSlackFailureQueue", "Arn"))
        self.assertGreaterEqual(self.resolved(queue["RedrivePolicy"]["maxReceiveCount"]), 3)
        self.assertEqual(self.template["Outputs"]["DestinationSlackFailureQueueUrl"]["Value"], ref("DestinationSlackFailureQueue"))

    # --- the destinations besides Slack: Teams, PagerDuty, email ---

    def test_each_other_destination_is_deployed_only_when_given_where_to_deliver(self):
        import cfn_template
        by_default = cfn_template.Resolved(self.template)
        for d in DESTINATIONS:
            prefix, condition = d["prefix"], d["condition"]
            with self.subTest(d["crate"]):
                self.assertEqual(sorted(n for n in self.resources if n.startswith(prefix)), sorted(prefix + part for part in [
                    "Queue", "FailureQueue", "QueuePolicy", "Subscription", "Role", "LogGroup", "Lambda",
                    "EventSourceMapping", "Errors", "FailureQueueWaiting", "FailureQueueOldest", "QueueStuck"]))
                mine = [n for n in self.resources if n.startswith(prefix)] + ([d["secret"][2]] if d["secret"] else [])
                for name in mine:
                    self.assertEqual(self.resources[name].get("Condition"), condition, name)
                outputs = {n: o for n, o in self.template["Outputs"].items() if n.startswith(prefix)}
                self.assertEqual(sorted(outputs), sorted(prefix + o for o in ["FunctionName", "QueueUrl", "FailureQueueUrl"]))
                for name, output in outputs.items():
                    self.assertEqual(output.get("Condition"), condition, name)
                self.assertEqual({n: o["Value"] for n, o in outputs.items()}, {
                    prefix + "FunctionName": ref(prefix + "Lambda"), prefix + "QueueUrl": ref(prefix + "Queue"),
                    prefix + "FailureQueueUrl": ref(prefix + "FailureQueue")})
                # Off by default; on when given where to deliver.
                self.assertFalse(by_default.conditions[condition])
                self.assertTrue(cfn_template.Resolved(self.template, **d["given"]).conditions[condition])
                # Its alarms say which destination, and how to replay what it never delivered.
                for alarm in ["Errors", "FailureQueueWaiting", "FailureQueueOldest", "QueueStuck"]:
                    self.assertIn(f"./dev.sh redrive {d['crate']}", self.props(prefix + alarm)["AlarmDescription"], alarm)
                self.assertEqual(self.props(prefix + "QueueStuck")["Threshold"], 1800)
                self.assertEqual(self.props(prefix + "QueueStuck")["Dimensions"],
                                 [{"Name": "QueueName", "Value": get_att(prefix + "Queue", "QueueName")}])
        # The stack test leaves out of the stack it expects what the default parameters (and no
        # CloudTrail log group, as ./dev.sh create makes it) leave off: the same conditions.
        with open(STACK_TEST, encoding="utf-8") as f:
            listed = re.search(r"Condition: \(([A-Za-z0-9|]+)\)\$", f.read()).group(1).split("|")
        created = cfn_template.Resolved(self.template, CloudTrailCloudWatchLogsGroupName="")
        used = {r["Condition"] for r in self.resources.values() if "Condition" in r}
        self.assertEqual(sorted(listed), sorted(c for c in used if not created.conditions[c]))

    def test_the_other_destinations_secrets_are_encrypted_each_for_its_purpose(self):
        purposes = [self.webhook_purpose(), self.webhook_purpose("WEBHOOK_ROUTES_ENCRYPTION_CONTEXT")]
        with open(TEMPLATE, encoding="utf-8") as f:
            text = f.read()
        for d in DESTINATIONS:
            if not d["secret"]:
                continue
            constant, parameter, custom = d["secret"]
            variable, purpose = secret_in(d["crate"], constant)
            purposes.append(purpose)
            with self.subTest(d["crate"]):
                self.assertTrue(self.template["Parameters"][parameter]["NoEcho"])
                self.assertEqual(self.template["Parameters"][parameter]["Default"], "")
                self.assertEqual(self.resources[custom]["Type"], "Custom::KmsEncryption")
                self.assertEqual(self.props(custom), {"ServiceToken": get_att("KmsEncryptionLambda", "Arn"),
                                                      "ServiceTimeout": 300,
                                                      "KeyId": get_att("StackKey", "Arn"),
                                                      "PlainText": ref(parameter),
                                                      "EncryptionContext": {"purpose": purpose}})
                # The function gets the ciphertext, in the variable its crate reads.
                variables = self.props(d["prefix"] + "Lambda")["Environment"]["Variables"]
                self.assertEqual(variables[variable], get_att(custom, "CipherText"))
                # The plain secret reaches nothing but the custom resource.
                uses = [name for name, r in self.resources.items() if json.dumps(ref(parameter)) in json.dumps(r)]
                self.assertEqual(uses, [custom])
                self.assertNotIn("${" + parameter + "}", text)
                self.assertNotIn(json.dumps(ref(parameter)), json.dumps(self.template["Outputs"]))
        # No ciphertext decrypts for another secret's purpose.
        self.assertEqual(len(set(purposes)), len(purposes), purposes)

    def test_the_other_destinations_roles_are_least_privilege(self):
        import cfn_template
        key = get_att("StackKey", "Arn")
        via_sqs = {"StringEquals": {"kms:ViaService": {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}}}
        for d in DESTINATIONS:
            prefix = d["prefix"]
            queue, group = get_att(prefix + "Queue", "Arn"), get_att(prefix + "LogGroup", "Arn")
            expected = [
                ("sqs:ReceiveMessage", queue, None), ("sqs:DeleteMessage", queue, None),
                ("sqs:ChangeMessageVisibility", queue, None), ("sqs:GetQueueAttributes", queue, None),
                ("kms:Decrypt", key, via_sqs),
                ("logs:CreateLogStream", group, None), ("logs:PutLogEvents", group, None),
            ]
            if d["secret"]:
                # Its own secret, and nothing encrypted for another purpose.
                purpose = secret_in(d["crate"], d["secret"][0])[1]
                expected.append(("kms:Decrypt", key, {"StringEquals": {"kms:EncryptionContext:purpose": purpose}}))
            else:
                # Email from EmailFrom to EmailTo's addresses only.
                expected.append(("ses:SendEmail", {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"},
                                 {"StringEquals": {"ses:FromAddress": ref("EmailFrom")},
                                  "ForAllValues:StringEquals": {"ses:Recipients": {"Fn::Split": [",", ref("EmailTo")]}}}))
            with self.subTest(d["crate"]):
                # Whatever else is switched on, nothing more.
                self.expect_statements(prefix + "Role", expected, conditions_on=set(self.template["Conditions"]))
                self.assertEqual(self.props(prefix + "Lambda")["Role"], get_att(prefix + "Role", "Arn"))
        # The email role's conditions, as CloudFormation makes them.
        given = DESTINATIONS[2]["given"]
        [policy] = cfn_template.Resolved(self.template, **given).property("DestinationEmailRole", "Policies")
        [ses] = [s for s in policy["PolicyDocument"]["Statement"] if s["Action"] == "ses:SendEmail"]
        self.assertEqual(ses["Resource"], "arn:aws:ses:us-east-1:111122223333:identity/*")
        self.assertEqual(ses["Condition"], {"StringEquals": {"ses:FromAddress": "ids@example.com"},
                                            "ForAllValues:StringEquals": {"ses:Recipients": ["ops@example.com", "oncall@example.org"]}})

    def test_the_other_destinations_read_what_their_crates_read(self):
        for d in DESTINATIONS:
            source = crate_source(d["crate"])
            prefix = d["prefix"]
            interval = re.search(r'pace_from_env\(\s*"([A-Z_]+)"', source).group(1) + "_INTERVAL_MS"
            expected = {interval: {"Fn::FindInMap": ["DestinationPace", d["pace"], "PostIntervalMs"]},
                        "ACCOUNT_NAMES": ref("AccountNames"), "MINIMUM_SEVERITY": ref(d["minimum"])}
            if d["secret"]:
                variable = secret_in(d["crate"], d["secret"][0])[0]
                expected[variable] = get_att(d["secret"][2], "CipherText")
            else:
                expected.update({"EMAIL_FROM": ref("EmailFrom"), "EMAIL_TO": ref("EmailTo")})
            with self.subTest(d["crate"]):
                props = self.props(prefix + "Lambda")
                self.assertEqual(props["Environment"], {"Variables": expected})
                # Every variable is one the crate reads (MINIMUM_SEVERITY through the delivery core).
                read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source)) | {interval}
                if "minimum_severity_from_env(" in source:
                    read.add("MINIMUM_SEVERITY")
                self.assertLessEqual(set(expected), read)
                self.assertEqual((props["MemorySize"], props["Timeout"], props["TracingConfig"]),
                                 (256, {"Fn::FindInMap": ["DestinationPace", d["pace"], "FunctionTimeout"]}, {"Mode": "PassThrough"}))
                self.assertEqual(props["Code"], f"../dist/{d['crate']}/{d['crate']}.zip")
                # The minimum severity by default is the crate's own.
                default = re.search(r"minimum_severity_from_env\(\s*Severity::(\w+)", source).group(1).lower()
                parameter = self.template["Parameters"][d["minimum"]]
                self.assertEqual((parameter["Default"], parameter["AllowedValues"]), (default, SEVERITIES))

    def test_the_other_destinations_environments_fit_lambdas_4_kb_at_every_parameters_longest(self):
        parameters = self.template["Parameters"]

        def encrypted(parameter):
            return (parameters[parameter]["MaxLength"] + 200 + 2) // 3 * 4

        for d in DESTINATIONS:
            variables = self.props(d["prefix"] + "Lambda")["Environment"]["Variables"]
            longest = {}
            for variable, value in variables.items():
                if "Fn::GetAtt" in value:
                    longest[variable] = encrypted(self.props(value["Fn::GetAtt"][0])["PlainText"]["Ref"])
                elif "Fn::FindInMap" in value:
                    longest[variable] = len(str(self.resolved(value)))
                elif "AllowedValues" in parameters[value["Ref"]]:
                    longest[variable] = max(len(v) for v in parameters[value["Ref"]]["AllowedValues"])
                else:
                    longest[variable] = parameters[value["Ref"]]["MaxLength"]
            with self.subTest(d["crate"]):
                self.assertLessEqual(sum(len(name) + size for name, size in longest.items()), 4096, longest)

    def test_the_other_destinations_keep_to_their_services_rates_and_keep_what_fails(self):
        for d in DESTINATIONS:
            prefix = d["prefix"]
            pace = self.template["Mappings"]["DestinationPace"][d["pace"]]
            mapping = self.props(prefix + "EventSourceMapping")
            function = self.props(prefix + "Lambda")
            with self.subTest(d["crate"]):
                self.assertEqual(mapping, {
                    "EventSourceArn": get_att(prefix + "Queue", "Arn"), "FunctionName": ref(prefix + "Lambda"),
                    "BatchSize": {"Fn::FindInMap": ["DestinationPace", d["pace"], "BatchSize"]},
                    "MaximumBatchingWindowInSeconds": {"Fn::FindInMap": ["DestinationPace", d["pace"], "MaximumBatchingWindowInSeconds"]},
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": {"Fn::FindInMap": ["DestinationPace", d["pace"], "MaximumConcurrency"]}}})
                instances = pace["MaximumConcurrency"]
                interval_ms = int(pace["PostIntervalMs"])
                # Together, the instances stay within what the service takes; each alone keeps at
                # least its crate's own pace (one post per its default interval), in bursts of one.
                self.assertGreaterEqual(instances, 2)
                self.assertLessEqual(instances * 1000 / interval_ms, d["per_second"])
                default = re.search(r"DEFAULT_PACE: PaceLimit = PaceLimit \{\s*interval: Duration::from_(millis|secs)\((\d+)\)",
                                    crate_source(d["crate"]))
                self.assertGreaterEqual(interval_ms, instances * int(default.group(2)) * (1000 if default.group(1) == "secs" else 1))
                self.assertFalse([v for v in function["Environment"]["Variables"] if v.endswith("_BURST")])
                # Lambda's rules for SQS batches.
                self.assertTrue(1 <= pace["BatchSize"] <= 10000)
                self.assertTrue(1 <= pace["MaximumBatchingWindowInSeconds"] <= 300)
                # The queue: AWS's guidance, six times the function's timeout and the window; what
                # still fails after MaxReceiveCount receives is kept in the failure queue.
                self.assertEqual(pace["FunctionTimeout"], self.resolved(function["Timeout"]))
                queue = self.props(prefix + "Queue")
                self.assertEqual(self.resolved(queue["VisibilityTimeout"]), pace["VisibilityTimeout"])
                self.assertGreaterEqual(pace["VisibilityTimeout"], 6 * pace["FunctionTimeout"] + pace["MaximumBatchingWindowInSeconds"])
                self.assertEqual(queue["RedrivePolicy"], {"deadLetterTargetArn": get_att(prefix + "FailureQueue", "Arn"),
                                                          "maxReceiveCount": {"Fn::FindInMap": ["DestinationPace", d["pace"], "MaxReceiveCount"]}})
                self.assertGreaterEqual(pace["MaxReceiveCount"], 3)
                for name in [prefix + "Queue", prefix + "FailureQueue"]:
                    self.assertEqual((self.props(name)["KmsMasterKeyId"], self.props(name)["MessageRetentionPeriod"]),
                                     (get_att("StackKey", "Arn"), 1209600), name)

    def test_the_other_destinations_take_from_the_topic_what_their_minimum_severity_lets_through(self):
        import boto3
        import cfn_template
        from moto import mock_aws
        from moto.sns.utils import FilterPolicyMatcher
        rank = {severity: i for i, severity in enumerate(SEVERITIES)}
        self.assertEqual(sorted(self.template["Mappings"]["MinimumSeverity"], key=rank.get), SEVERITIES)
        policies = []
        for d in DESTINATIONS:
            prefix = d["prefix"]
            queue_arn = f"arn:aws:sqs:us-east-1:111122223333:ids-{prefix}Queue-1"
            subscription = self.resources[prefix + "Subscription"]
            self.assertEqual(subscription["DependsOn"], prefix + "QueuePolicy")
            for minimum in SEVERITIES:
                resolved = cfn_template.Resolved(self.template, {prefix + "Queue.Arn": queue_arn}, **{d["minimum"]: minimum})
                props = {name: resolved.property(prefix + "Subscription", name) for name in subscription["Properties"]}
                policy = props.pop("FilterPolicy")
                policies.append(policy)
                with self.subTest(d["crate"], minimum=minimum):
                    self.assertEqual(props, {"TopicArn": cfn_template.STACK_VALUES["SNSTopic"], "Protocol": "sqs",
                                             "Endpoint": queue_arn, "RawMessageDelivery": True,
                                             "FilterPolicyScope": "MessageAttributes"})
                    # At or above the minimum; without a severity (another publisher's) as medium.
                    matcher = FilterPolicyMatcher(policy, "MessageAttributes")
                    for severity in SEVERITIES + [None]:
                        attributes = {} if severity is None else {"severity": {"Type": "String", "Value": severity}}
                        self.assertEqual(matcher.matches(attributes, "message"), rank[severity or "medium"] >= rank[minimum], severity)
            # Only the topic sends to the queue.
            policy = self.props(prefix + "QueuePolicy")
            self.assertEqual(policy["Queues"], [ref(prefix + "Queue")])
            self.assert_only_the_topic_sends_and_only_the_reader_reads(
                prefix + "QueuePolicy", [get_att(prefix + "Queue", "Arn")], prefix + "Role")
        # SNS (as moto checks it) takes every one of the filter policies.
        with mock_aws():
            sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
            topic = sns.create_topic(Name="topic")["TopicArn"]
            queue = sqs.create_queue(QueueName="queue")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for policy in policies:
                sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={
                    "RawMessageDelivery": "true", "FilterPolicyScope": "MessageAttributes", "FilterPolicy": json.dumps(policy)})

    def test_email_needs_both_addresses(self):
        import cfn_template
        rules = self.template["Rules"]

        def refusals(**parameters):
            """What CloudFormation says when it refuses these parameters (nothing: it takes them)."""
            resolved = cfn_template.Resolved(self.template, **parameters)
            return [assertion["AssertDescription"] for rule in rules.values() if resolved.value(rule.get("RuleCondition", True))
                    for assertion in rule["Assertions"] if not resolved.value(assertion["Assert"])]

        self.assertEqual(refusals(), [])
        self.assertEqual(refusals(EmailFrom="ids@example.com", EmailTo="ops@example.com"), [])
        [why] = refusals(EmailTo="ops@example.com")
        self.assertIn("EmailFrom must be", why)
        [why] = refusals(EmailFrom="ids@example.com")
        self.assertIn("EmailTo must be", why)
        self.assertEqual(self.template["Conditions"]["HasEmail"], {"Fn::Not": [{"Fn::Equals": [ref("EmailTo"), ""]}]})

    def test_the_other_destinations_parameters_take_what_their_functions_take(self):
        parameters = self.template["Parameters"]
        fifty = ",".join(f"ops{i}@example.com" for i in range(50))
        cases = {
            "TeamsWebhookURL": (["", DESTINATIONS[0]["given"]["TeamsWebhookURL"],
                                 "https://default0a.0b.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/0c/triggers/manual/paths/invoke?api-version=1&sig=x"],
                                ["http://example.logic.azure.com/x", "https://example.com/a b", "example.logic.azure.com/x"]),
            "PagerDutyRoutingKey": (["", DESTINATIONS[1]["given"]["PagerDutyRoutingKey"], "0123456789abcdef0123456789abcdef"],
                                    ["short", "0123456789abcdef 0123456789abcdef", "0123456789abcdef-0123456789abcdef"]),
            "EmailFrom": (["", "ids@example.com", "ids+alerts@mail.example.co.uk"],
                          ["ids", "ids@example", "ids@example.com,ops@example.com", "IDS <ids@example.com>",
                           "ids@example.com\nBcc: x@example.com"]),
            "EmailTo": (["", "ops@example.com", DESTINATIONS[2]["given"]["EmailTo"], fifty],
                        ["ops@example.com, oncall@example.org", "ops@example.com;oncall@example.org", "ops@example.com,",
                         fifty + ",ops50@example.com", "Ops <ops@example.com>"]),
        }
        for name, (good, bad) in cases.items():
            pattern = re.compile(parameters[name]["AllowedPattern"])
            for value in good:
                self.assertTrue(pattern.fullmatch(value) and len(value) <= parameters[name]["MaxLength"], (name, value))
            for value in bad:
                self.assertFalse(pattern.fullmatch(value), (name, value))
            self.assertEqual(parameters[name]["Default"], "")

    def test_the_heartbeat_counts_every_failure_queue_the_stack_has(self):
        import cfn_template
        queues = {n: f"https://sqs.us-east-1.amazonaws.com/111122223333/ids-{n}-1"
                  for n in self.of_type("AWS::SQS::Queue") if n.endswith("FailureQueue")}
        queues["FamiliarityTable"] = "ids-familiarity"
        everything = {"ProbeContainment": "Quarantine"}
        for d in DESTINATIONS:
            everything.update(d["given"])
        for parameters in [{}, everything]:
            resolved = cfn_template.Resolved(self.template, queues, **parameters)
            urls = resolved.property("SourceHeartbeatLambda", "Environment")["Variables"]["FAILURE_QUEUE_URLS"]
            told = dict(item.split("=", 1) for item in urls.split(","))
            self.assertEqual(told, {fn: queues[camel(fn) + "FailureQueue"] for fn in self.functions
                                    if camel(fn) + "FailureQueue" in queues and resolved.condition(camel(fn) + "FailureQueue")})
        self.assertEqual(len(told), 8)

    def test_every_rule_feeds_the_eventbridge_source_and_may_invoke_it_alone(self):
        rules = {name: rule for name, rule in self.of_type("AWS::Events::Rule").items()
                 if "EventPattern" in rule["Properties"]}
        self.assertGreaterEqual(len(rules), 30)
        # The responders' rules feed the responders; every other, the EventBridge source.
        responders = {"OpenSecurityGroupResponseRule": "ResponseSecurityGroup",
                      "CentralBusOpenSecurityGroupResponseRule": "ResponseSecurityGroup"}
        for name, rule in rules.items():
            function = responders.get(name, "SourceEventbridge")
            target, *others = rule["Properties"]["Targets"]
            # Self-protection is told on the operations path too, which shares neither the
            # topic nor the key it reports cut.
            self.assertEqual(others, [{"Id": "OperationsTopic", "Arn": ref("OperationsTopic")}]
                             if name.startswith("SelfProtection") else [], name)
            self.assertEqual(target["Arn"], get_att(function + "Lambda", "Arn"), name)
            self.assertEqual(target["DeadLetterConfig"], {"Arn": get_att(function + "FailureQueue", "Arn")}, name)
            if function != "SourceEventbridge":
                permission = self.resources[name + "Permission"]
                self.assertEqual(permission.get("Condition"), rule.get("Condition"), name)
                self.assertEqual(permission["Properties"], {
                    "FunctionName": get_att(function + "Lambda", "Arn"), "Action": "lambda:InvokeFunction",
                    "Principal": "events.amazonaws.com", "SourceArn": get_att(name, "Arn")}, name)
            # Read-only calls reach a rule only in the state that delivers every management event:
            # only the rules whose detections need them are in it (detections_test checks which).
            self.assertIn(rule["Properties"]["State"], ["ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"], name)
        # The EventBridge source's rules invoke it through one statement: one a rule would pass
        # Lambda's 20 KB resource policy (about 330 bytes each).
        permissions = {name: p["Properties"] for name, p in self.of_type("AWS::Lambda::Permission").items()
                       if p["Properties"]["FunctionName"] == get_att("SourceEventbridgeLambda", "Arn")}
        self.assertEqual(permissions, {"SourceEventbridgeRulesPermission": {
            "FunctionName": get_att("SourceEventbridgeLambda", "Arn"), "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com", "SourceAccount": ref("AWS::AccountId"),
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/*"}}})
        every = self.of_type("AWS::Lambda::Permission")
        self.assertLessEqual(len(every), 10, sorted(every))
        [statement] = self.props("SourceEventbridgeFailureQueuePolicy")["PolicyDocument"]["Statement"]
        self.assertEqual((statement["Principal"], statement["Action"], statement["Resource"]),
                         ({"Service": "events.amazonaws.com"}, "sqs:SendMessage", get_att("SourceEventbridgeFailureQueue", "Arn")))

    def test_rules_are_on_by_default_except_honey_bucket_and_fast_denials(self):
        p = self.template["Parameters"]
        conditions = self.template["Conditions"]
        on = []
        for name, rule in self.of_type("AWS::Events::Rule").items():
            if "Condition" not in rule:
                # The health path's rules: always there.
                self.assertIn(name, ["HealthAlarmsRule", "HeartbeatScheduleRule", "HeartbeatCanaryRule", "CentralBusRule",
                                     "CoverageScheduleRule"])
                on.append((name, True))
                continue
            condition = conditions[rule["Condition"]]
            if "Fn::Equals" in condition:
                switch, value = condition["Fn::Equals"]
                on.append((name, p[switch["Ref"]]["Default"] == value))
            else:
                [(switch, value)] = [condition["Fn::Not"][0]["Fn::Equals"]]
                self.assertIn(switch, [ref("HoneyBucketName"), ref("OpenSecurityGroupResponse")])
                on.append((name, p[switch["Ref"]]["Default"] != value))
        self.assertEqual(sorted(name for name, enabled in on if not enabled), ["FastDenialsRule", "HoneyBucketRule"])
        self.assertGreaterEqual(len(on), 30)
        self.assertEqual(p["GuardDutyMinimumSeverity"]["Default"], 4)

    def test_outputs(self):
        outputs = self.template["Outputs"]
        self.assertEqual(outputs["SNSTopicArn"]["Value"], ref("SNSTopic"))
        self.assertEqual(outputs["SNSTopicArn"]["Export"], {"Name": {"Fn::Sub": "${AWS::StackName}-SNSTopic"}})
        self.assertEqual(outputs["StackKeyArn"]["Value"], get_att("StackKey", "Arn"))

    def test_every_checkov_skip_has_a_reason(self):
        skips = 0
        for name, resource in self.resources.items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                skips += 1
                self.assertRegex(skip["id"], r"^CKV2?_AWS_\d+$", name)
                self.assertGreater(len(skip.get("comment", "")), 20, f"{name} skips {skip['id']} without a reason")
        self.assertGreater(skips, 0)

    def test_only_w3002_is_ignored_by_cfn_lint(self):
        self.assertEqual(self.template["Metadata"]["cfn-lint"]["config"], {"ignore_checks": ["W3002"]})
        with open(TEMPLATE, encoding="utf-8") as f:
            self.assertIsNone(re.search(r"cfn[-_]lint.*(ignore|disable)", f.read().split("Parameters:")[1]))


if __name__ == "__main__":
    unittest.main()
