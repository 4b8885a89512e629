//! Whether a call touched one of this stack's own parts, however it named it. AWS takes a
//! function by name, partial ARN (`ACCOUNT:function:NAME`) or ARN, each with a qualifier; a queue
//! by any of its URLs (regional, legacy, dual-stack, FIPS, a VPC endpoint's) or its ARN; a log
//! group by name or ARN; a key by ID, ARN, alias or alias ARN; a table by name or ARN. An EventBridge pattern can list
//! some of these forms, never all: the rules send every such call, and the source decides here.

use serde_json::Value;

/// What the stack is, as its sources are told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackParts {
    /// The stack's name: every part CloudFormation names is `NAME-...`.
    pub stack: String,
    pub account: String,
    /// Topics (the alert topic, the operations topic), by ARN.
    pub topics: Vec<String>,
    /// Keys (the stack key), by ARN.
    pub keys: Vec<String>,
    /// The trail's log group the stack reads, by name.
    pub trail_log_group: Option<String>,
}

/// The part a call touched, said for a person.
fn said(kind: &str, name: &str, written: &str) -> String {
    if name == written {
        format!("the stack's {kind} {name}")
    } else {
        format!("the stack's {kind} {name} (named {written:?})")
    }
}

fn texts<'v>(record: &'v Value, path: &[&str]) -> Vec<&'v str> {
    let Some(value) = path.iter().try_fold(record, |value, key| value.get(*key)) else {
        return Vec::new();
    };
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl StackParts {
    /// The stack's part the call named, when it named one, and how.
    pub fn touched(&self, record: &Value) -> Option<String> {
        if self.stack.is_empty() {
            return None;
        }
        let at = |path: &[&str]| texts(record, path);
        let source = record.get("eventSource").and_then(Value::as_str)?;
        match source {
            "lambda.amazonaws.com" => at(&["requestParameters", "functionName"])
                .into_iter()
                .chain(at(&["requestParameters", "FunctionName"]))
                .chain(at(&["responseElements", "functionArn"]))
                .find_map(|written| self.function(written))
                .or_else(|| {
                    // Another function set to read one of the stack's queues.
                    at(&["requestParameters", "eventSourceArn"])
                        .into_iter()
                        .find_map(|written| self.queue_arn(written))
                }),
            "sqs.amazonaws.com" => at(&["requestParameters", "queueUrl"])
                .into_iter()
                .chain(at(&["requestParameters", "QueueUrl"]))
                .find_map(|written| self.queue_url(written)),
            "sns.amazonaws.com" => [
                "topicArn",
                "TopicArn",
                "subscriptionArn",
                "SubscriptionArn",
                "resourceArn",
            ]
            .iter()
            .flat_map(|key| at(&["requestParameters", key]))
            .find_map(|written| self.topic(written)),
            "kms.amazonaws.com" => ["keyId", "KeyId", "targetKeyId", "aliasName"]
                .iter()
                .flat_map(|key| at(&["requestParameters", key]))
                .find_map(|written| self.key(written)),
            "logs.amazonaws.com" => ["logGroupName", "logGroupIdentifier", "resourceArn"]
                .iter()
                .flat_map(|key| at(&["requestParameters", key]))
                .find_map(|written| self.log_group(written)),
            "events.amazonaws.com" => ["name", "rule", "Rule", "Name"]
                .iter()
                .flat_map(|key| at(&["requestParameters", key]))
                .find_map(|written| self.named("rule", written, "rule/"))
                .or_else(|| {
                    // Any rule made to invoke one of the stack's functions (their permission
                    // admits every rule of the account).
                    record
                        .pointer("/requestParameters/targets")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|target| target.get("arn").and_then(Value::as_str))
                        .find_map(|written| self.function(written))
                        .map(|function| format!("{function}, made the target of a rule"))
                }),
            "monitoring.amazonaws.com" => ["alarmNames", "alarmName", "AlarmNames", "AlarmName"]
                .iter()
                .flat_map(|key| at(&["requestParameters", key]))
                .find_map(|written| self.named("alarm", written, "alarm:")),
            // A table by name or ARN (the sources' memory of routine changes).
            "dynamodb.amazonaws.com" => ["tableName", "TableName", "resourceArn", "ResourceArn"]
                .iter()
                .flat_map(|key| at(&["requestParameters", key]))
                .find_map(|written| self.named("table", written, ":table/")),
            "cloudformation.amazonaws.com" => at(&["requestParameters", "stackName"])
                .into_iter()
                .find_map(|written| self.stack_named(written)),
            _ => None,
        }
    }

    /// Whether `arn` is one of the stack's roles, or a session of one (CloudFormation names
    /// them `STACK-...`).
    pub fn is_stack_principal(&self, arn: &str) -> bool {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", _, service, _, account, resource] = parts[..] else {
            return false;
        };
        if self.stack.is_empty() || account != self.account {
            return false;
        }
        let role = match (service, resource.split_once('/')) {
            ("sts", Some(("assumed-role", rest))) => rest.split('/').next(),
            ("iam", Some(("role", path))) => path.rsplit('/').next(),
            _ => None,
        };
        role.is_some_and(|role| self.own_name(role))
    }

    fn own_name(&self, name: &str) -> bool {
        name.strip_prefix(self.stack.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// `NAME`, `NAME:QUALIFIER`, `ACCOUNT:function:NAME[:QUALIFIER]` or the ARN.
    fn function(&self, written: &str) -> Option<String> {
        let (account, rest) = if let Some(arn) = written.strip_prefix("arn:") {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            match parts[..] {
                [_, "lambda", _, account, rest] | [_, "lambda", _, account, rest, ..] => {
                    (Some(account), rest_after(written, account).unwrap_or(rest))
                }
                _ => return None,
            }
        } else {
            match written.split_once(":function:") {
                Some((account, _)) => (Some(account), &written[account.len() + 1..]),
                None => (None, written),
            }
        };
        let name = rest.strip_prefix("function:").unwrap_or(rest);
        let name = name.split(':').next().unwrap_or(name);
        (account.is_none_or(|account| account == self.account) && self.own_name(name))
            .then(|| said("function", name, written))
    }

    /// A queue's URL in any of its forms: the path is `/ACCOUNT/NAME`, whatever the host.
    fn queue_url(&self, written: &str) -> Option<String> {
        let path = written.split_once("://").map_or(written, |(_, rest)| {
            rest.split_once('/').map_or("", |(_, path)| path)
        });
        let mut segments = path.trim_end_matches('/').split('/');
        let (account, name) = (segments.next()?, segments.next()?);
        (segments.next().is_none() && account == self.account && self.own_name(name))
            .then(|| said("queue", name, written))
    }

    /// `arn:PARTITION:sqs:REGION:ACCOUNT:NAME`.
    fn queue_arn(&self, written: &str) -> Option<String> {
        let parts: Vec<&str> = written.splitn(6, ':').collect();
        match parts[..] {
            ["arn", _, "sqs", _, account, name]
                if account == self.account && self.own_name(name) =>
            {
                Some(said("queue", name, written))
            }
            _ => None,
        }
    }

    /// A topic's ARN, or one of its subscriptions' (`TOPIC:ID`).
    fn topic(&self, written: &str) -> Option<String> {
        self.topics
            .iter()
            .find(|topic| {
                written == topic.as_str()
                    || written
                        .strip_prefix(topic.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
            })
            .map(|topic| said("topic", topic, written))
    }

    /// A key by ID, ARN, alias name or alias ARN (the stack's alias is `alias/STACK-Key`).
    fn key(&self, written: &str) -> Option<String> {
        let id = |arn: &str| arn.rsplit_once('/').map_or(arn, |(_, id)| id).to_owned();
        let alias = format!("alias/{}-", self.stack);
        let by_alias = written.contains(&alias)
            && (!written.starts_with("arn:") || written.split(':').nth(4) == Some(&self.account));
        self.keys
            .iter()
            .find(|key| by_alias || written == key.as_str() || written == id(key))
            .map(|key| said("key", &id(key), written))
    }

    /// A log group by name or ARN (`arn:PARTITION:logs:REGION:ACCOUNT:log-group:NAME[:*]`): the
    /// trail's, or a function's of the stack (`/aws/lambda/STACK-...`).
    fn log_group(&self, written: &str) -> Option<String> {
        let name = match written.split_once(":log-group:") {
            Some((head, name)) => {
                if head.split(':').nth(4) != Some(self.account.as_str()) {
                    return None;
                }
                name.strip_suffix(":*").unwrap_or(name)
            }
            None => written,
        };
        let functions = format!("/aws/lambda/{}-", self.stack);
        (self.trail_log_group.as_deref() == Some(name) || name.starts_with(&functions))
            .then(|| said("log group", name, written))
    }

    /// A rule or an alarm by name or ARN (`...:rule/[BUS/]NAME`, `...:alarm:NAME`).
    fn named(&self, kind: &str, written: &str, marker: &str) -> Option<String> {
        let name = match written.split_once(marker) {
            Some((head, name)) if head.starts_with("arn:") => {
                if head.split(':').nth(4) != Some(self.account.as_str()) {
                    return None;
                }
                name.rsplit('/').next().unwrap_or(name)
            }
            _ => written,
        };
        self.own_name(name).then(|| said(kind, name, written))
    }

    /// The stack itself, by name or ID (`arn:...:stack/NAME/ID`).
    fn stack_named(&self, written: &str) -> Option<String> {
        let name = match written.split_once(":stack/") {
            Some((head, rest)) => {
                if head.split(':').nth(4) != Some(self.account.as_str()) {
                    return None;
                }
                rest.split('/').next().unwrap_or(rest)
            }
            None => written,
        };
        (name == self.stack).then(|| format!("the stack {name} itself"))
    }
}

/// What follows `:ACCOUNT:` in an ARN.
fn rest_after<'a>(arn: &'a str, account: &str) -> Option<&'a str> {
    let marker = format!(":{account}:");
    arn.find(&marker).map(|at| &arn[at + marker.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts() -> StackParts {
        StackParts {
            stack: "ids".into(),
            account: "111122223333".into(),
            topics: vec![
                "arn:aws:sns:eu-west-1:111122223333:ids-SNSTopic-AB".into(),
                "arn:aws:sns:eu-west-1:111122223333:ids-OperationsTopic-CD".into(),
            ],
            keys: vec!["arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab".into()],
            trail_log_group: Some("CloudTrail/DefaultLogGroup".into()),
        }
    }

    fn call(source: &str, parameters: Value) -> Value {
        json!({"eventSource": source, "requestParameters": parameters})
    }

    #[test]
    fn a_function_by_every_name_form() {
        let parts = parts();
        for written in [
            "ids-SourceEventbridgeLambda-X1",
            "ids-SourceEventbridgeLambda-X1:$LATEST",
            "111122223333:function:ids-SourceEventbridgeLambda-X1",
            "111122223333:function:ids-SourceEventbridgeLambda-X1:live",
            "arn:aws:lambda:eu-west-1:111122223333:function:ids-SourceEventbridgeLambda-X1",
            "arn:aws:lambda:eu-west-1:111122223333:function:ids-SourceEventbridgeLambda-X1:3",
        ] {
            let touched = parts.touched(&call(
                "lambda.amazonaws.com",
                json!({"functionName": written}),
            ));
            assert!(
                touched
                    .as_deref()
                    .is_some_and(|t| t.contains("function ids-SourceEventbridgeLambda-X1")),
                "{written}: {touched:?}"
            );
        }
        for other in [
            "idsother-X",
            "app",
            "444455556666:function:ids-SourceEventbridgeLambda-X1",
            "arn:aws:lambda:eu-west-1:444455556666:function:ids-X",
        ] {
            assert_eq!(
                parts.touched(&call(
                    "lambda.amazonaws.com",
                    json!({"functionName": other})
                )),
                None,
                "{other}"
            );
        }
        // Another function set to read one of the stack's queues.
        let mapping = call(
            "lambda.amazonaws.com",
            json!({"functionName": "attacker", "eventSourceArn": "arn:aws:sqs:eu-west-1:111122223333:ids-DestinationSlackQueue-Q"}),
        );
        assert!(parts.touched(&mapping).unwrap().contains("queue"));
    }

    #[test]
    fn a_queue_by_every_url() {
        let parts = parts();
        for written in [
            "https://sqs.eu-west-1.amazonaws.com/111122223333/ids-DestinationSlackQueue-Q",
            "https://eu-west-1.queue.amazonaws.com/111122223333/ids-DestinationSlackQueue-Q",
            "https://queue.amazonaws.com/111122223333/ids-DestinationSlackQueue-Q",
            "https://sqs.eu-west-1.api.aws/111122223333/ids-DestinationSlackQueue-Q",
            "https://sqs-fips.us-east-1.amazonaws.com/111122223333/ids-DestinationSlackQueue-Q",
            "https://vpce-0abc.sqs.eu-west-1.vpce.amazonaws.com/111122223333/ids-DestinationSlackQueue-Q",
            "http://SQS.EU-WEST-1.AMAZONAWS.COM/111122223333/ids-DestinationSlackQueue-Q/",
        ] {
            assert!(
                parts
                    .touched(&call("sqs.amazonaws.com", json!({"queueUrl": written})))
                    .is_some(),
                "{written}"
            );
        }
        for other in [
            "https://sqs.eu-west-1.amazonaws.com/444455556666/ids-DestinationSlackQueue-Q",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/orders",
        ] {
            assert_eq!(
                parts.touched(&call("sqs.amazonaws.com", json!({"queueUrl": other}))),
                None
            );
        }
    }

    #[test]
    fn topics_keys_log_groups_rules_alarms_and_the_stack() {
        let parts = parts();
        let touched = |source: &str, parameters: Value| parts.touched(&call(source, parameters));
        assert!(touched("sns.amazonaws.com", json!({"subscriptionArn": "arn:aws:sns:eu-west-1:111122223333:ids-OperationsTopic-CD:8f2e"})).is_some());
        assert!(
            touched(
                "sns.amazonaws.com",
                json!({"topicArn": "arn:aws:sns:eu-west-1:111122223333:ids-SNSTopic-ABC"})
            )
            .is_none()
        );
        for key in [
            "1234abcd-12ab",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab",
            "alias/ids-Key",
            "arn:aws:kms:eu-west-1:111122223333:alias/ids-Key",
        ] {
            assert!(
                touched("kms.amazonaws.com", json!({"keyId": key})).is_some(),
                "{key}"
            );
        }
        assert!(touched("kms.amazonaws.com", json!({"keyId": "alias/other"})).is_none());
        for group in [
            "CloudTrail/DefaultLogGroup",
            "arn:aws:logs:eu-west-1:111122223333:log-group:CloudTrail/DefaultLogGroup:*",
            "/aws/lambda/ids-SourceEventbridge",
        ] {
            assert!(
                touched("logs.amazonaws.com", json!({"logGroupIdentifier": group})).is_some(),
                "{group}"
            );
        }
        assert!(
            touched(
                "logs.amazonaws.com",
                json!({"logGroupName": "/aws/lambda/app"})
            )
            .is_none()
        );
        assert!(
            touched(
                "events.amazonaws.com",
                json!({"name": "ids-SelfProtectionEventsRule-Z"})
            )
            .is_some()
        );
        assert!(
            touched(
                "events.amazonaws.com",
                json!({"rule": "arn:aws:events:eu-west-1:111122223333:rule/default/ids-X"})
            )
            .is_some()
        );
        // A rule of someone's own, aimed at one of the stack's functions.
        let aimed = touched(
            "events.amazonaws.com",
            json!({"rule": "app-rule", "targets": [{"id": "1",
                "arn": "arn:aws:lambda:eu-west-1:111122223333:function:ids-SourceEventbridgeLambda-X"}]}),
        );
        assert!(aimed.unwrap().contains("made the target of a rule"));
        assert!(
            touched(
                "events.amazonaws.com",
                json!({"rule": "app-rule", "targets": [{"id": "1",
                    "arn": "arn:aws:lambda:eu-west-1:111122223333:function:app"}]})
            )
            .is_none()
        );
        assert!(
            touched(
                "monitoring.amazonaws.com",
                json!({"alarmNames": ["app-cpu", "ids-HeartbeatMissing"]})
            )
            .unwrap()
            .contains("alarm ids-HeartbeatMissing")
        );
        for table in [
            "ids-FamiliarityTable-1A2B",
            "arn:aws:dynamodb:eu-west-1:111122223333:table/ids-FamiliarityTable-1A2B",
        ] {
            assert!(
                touched("dynamodb.amazonaws.com", json!({"tableName": table})).is_some(),
                "{table}"
            );
            assert!(
                touched("dynamodb.amazonaws.com", json!({"resourceArn": table})).is_some(),
                "{table}"
            );
        }
        for other in [
            "orders",
            "arn:aws:dynamodb:eu-west-1:444455556666:table/ids-FamiliarityTable-1A2B",
            "idsx-FamiliarityTable",
        ] {
            assert!(
                touched("dynamodb.amazonaws.com", json!({"tableName": other})).is_none(),
                "{other}"
            );
        }
        assert!(
            touched(
                "cloudformation.amazonaws.com",
                json!({"stackName": "arn:aws:cloudformation:eu-west-1:111122223333:stack/ids/abc"})
            )
            .is_some()
        );
        assert!(
            touched(
                "cloudformation.amazonaws.com",
                json!({"stackName": "ids-other"})
            )
            .is_none()
        );
        assert!(parts.is_stack_principal(
            "arn:aws:sts::111122223333:assumed-role/ids-DestinationSlackRole-X1/ids-DestinationSlackLambda-Y2"
        ));
        assert!(
            !parts.is_stack_principal("arn:aws:sts::111122223333:assumed-role/PowerUser/ids-x")
        );
        assert!(!parts.is_stack_principal("arn:aws:sts::444455556666:assumed-role/ids-X/s"));
        // No stack name known: nothing is the stack's.
        assert_eq!(
            StackParts::default().touched(&call(
                "lambda.amazonaws.com",
                json!({"functionName": "ids-X"})
            )),
            None
        );
    }
}
