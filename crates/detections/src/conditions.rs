//! Finer conditions the source checks on a record a pattern matched, where EventBridge cannot
//! say them: a policy that allows everything, a credential made for another user, a layer or a
//! key from another account, selectors that drop management events, findings closed in bulk,
//! objects set to expire, a session of an instance's role, a cluster endpoint open to the
//! internet, a container that reads its role's credentials.

use crate::Severity;
use crate::policy::{account_of, own_account, statements};
use crate::refine::Refined;
use serde_json::Value;

fn keep(reason: String) -> Refined {
    Refined::Keep {
        severity: None,
        reason,
    }
}

fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, key| value.get(*key))
}

fn text<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    at(value, path).and_then(Value::as_str)
}

/// A value as a list: its items, or itself.
fn items(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Null) | None => vec![],
        Some(other) => vec![other],
    }
}

/// A JSON document the record carries as an object or as a JSON string.
fn document(value: Option<&Value>) -> Option<Value> {
    match value? {
        Value::String(text) => serde_json::from_str(text).ok(),
        other => Some(other.clone()),
    }
}

/// An IAM policy (inline, managed, a new version, a permission set's) with an `Allow` of every
/// action (`*`, `iam:*` or a `NotAction`) on every resource. A new version that is not made the
/// default changes nothing yet.
pub fn policy_allows_all(record: &Value) -> Refined {
    let parameters = record.get("requestParameters").unwrap_or(&Value::Null);
    if record.get("eventName").and_then(Value::as_str) == Some("CreatePolicyVersion")
        && parameters.get("setAsDefault").and_then(Value::as_bool) != Some(true)
    {
        return Refined::NotThis;
    }
    let Some(policy) = document(
        parameters
            .get("policyDocument")
            .or_else(|| parameters.get("inlinePolicy")),
    ) else {
        return Refined::NotThis;
    };
    for statement in statements(&policy) {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let strings = |key: &str| -> Vec<String> {
            items(statement.get(key))
                .into_iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let every_resource = statement.get("NotResource").is_none()
            && strings("Resource").iter().any(|resource| resource == "*");
        let every_action = statement.get("NotAction").is_some()
            || strings("Action").iter().any(|action| {
                action == "*" || action == "*:*" || action.eq_ignore_ascii_case("iam:*")
            });
        if every_resource && every_action {
            let actions = if statement.get("NotAction").is_some() {
                "every action but those its NotAction names".to_owned()
            } else {
                strings("Action").join(", ")
            };
            return keep(format!("the policy allows {actions} on every resource (*)"));
        }
    }
    Refined::NotThis
}

/// A credential (an access key, a console password, an MFA device) made or changed for a user
/// other than the caller: the caller is another IAM user, a role or root.
pub fn other_user(record: &Value) -> Refined {
    let Some(target) = text(record, &["requestParameters", "userName"])
        .or_else(|| text(record, &["responseElements", "accessKey", "userName"]))
        .filter(|name| !name.is_empty())
    else {
        return Refined::NotThis;
    };
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    let caller_type = text(identity, &["type"]).unwrap_or_default();
    if caller_type == "IAMUser" && text(identity, &["userName"]) == Some(target) {
        return Refined::NotThis;
    }
    let caller = text(identity, &["arn"]).unwrap_or(caller_type);
    keep(format!("{caller} acted for user {target}"))
}

/// A function given a layer published in another account.
pub fn layer_outside(record: &Value) -> Refined {
    let own = own_account(record);
    let layers = items(at(record, &["requestParameters", "layers"]));
    let foreign: Vec<&str> = layers
        .into_iter()
        .filter_map(Value::as_str)
        .filter(|layer| account_of(layer).is_some_and(|account| account != own))
        .collect();
    if foreign.is_empty() {
        return Refined::NotThis;
    }
    keep(format!("layers of another account: {}", foreign.join(", ")))
}

/// Event selectors that leave management events out, or record only reads, or advanced
/// selectors none of which takes management events whole.
pub fn trail_records_less(record: &Value) -> Refined {
    let parameters = record.get("requestParameters").unwrap_or(&Value::Null);
    let mut less = Vec::new();
    if record.get("eventName").and_then(Value::as_str) == Some("UpdateTrail") {
        // A trail's own switches: one region only, no global services, no validation.
        for (key, words) in [
            ("isMultiRegionTrail", "one region only"),
            ("includeGlobalServiceEvents", "no global service events"),
            ("enableLogFileValidation", "no log file validation"),
        ] {
            if parameters.get(key).and_then(Value::as_bool) == Some(false) {
                less.push(words);
            }
        }
        if less.is_empty() {
            return Refined::NotThis;
        }
        return keep(format!("the trail now records less: {}", less.join("; ")));
    }
    let mut less = Vec::new();
    let selectors = items(parameters.get("eventSelectors"));
    for selector in &selectors {
        if selector
            .get("includeManagementEvents")
            .and_then(Value::as_bool)
            == Some(false)
        {
            less.push("management events left out".to_owned());
        }
        if let Some(kind @ ("ReadOnly" | "WriteOnly")) =
            selector.get("readWriteType").and_then(Value::as_str)
        {
            less.push(format!("only {kind} events"));
        }
        if !items(selector.get("excludeManagementEventSources")).is_empty() {
            less.push(format!(
                "management events of {} left out",
                crate::catalogue::values_text(selector, "excludeManagementEventSources")
                    .unwrap_or_default()
            ));
        }
    }
    let advanced = items(parameters.get("advancedEventSelectors"));
    if !advanced.is_empty() {
        let whole_management = advanced.iter().any(|selector| {
            let fields = items(selector.get("fieldSelectors"));
            let management = fields.iter().any(|field| {
                text(field, &["field"]) == Some("eventCategory")
                    && items(field.get("equals"))
                        .iter()
                        .any(|value| value.as_str() == Some("Management"))
            });
            management && fields.len() == 1
        });
        if !whole_management {
            less.push("no advanced selector takes every management event".to_owned());
        }
    }
    if selectors.is_empty() && advanced.is_empty() {
        return Refined::NotThis;
    }
    less.dedup();
    if less.is_empty() {
        return Refined::NotThis;
    }
    keep(format!("the trail now records less: {}", less.join("; ")))
}

/// Findings closed in bulk: ten or more in one call.
pub fn findings_in_bulk(record: &Value) -> Refined {
    // Security Hub's own casing, or CloudTrail's lower camel case.
    let count = items(
        at(record, &["requestParameters", "FindingIdentifiers"])
            .or_else(|| at(record, &["requestParameters", "findingIdentifiers"])),
    )
    .len();
    if count < 10 {
        return Refined::NotThis;
    }
    let status = text(record, &["requestParameters", "Workflow", "Status"])
        .or_else(|| text(record, &["requestParameters", "workflow", "status"]))
        .unwrap_or("closed");
    keep(format!("{count} findings set to {status} in one call"))
}

/// A lifecycle rule that deletes current objects, or old versions, within a week. On a bucket
/// whose name says it holds logs or trails, high; on another, medium.
pub fn lifecycle_expires(record: &Value) -> Refined {
    let parameters = record.get("requestParameters").unwrap_or(&Value::Null);
    let mut soon = Vec::new();
    for rule in items(at(parameters, &["LifecycleConfiguration", "Rule"])) {
        if text(rule, &["Status"]) != Some("Enabled") {
            continue;
        }
        let days = |path: &[&str]| {
            at(rule, path).and_then(|value| match value {
                Value::Number(n) => n.as_u64(),
                Value::String(text) => text.parse().ok(),
                _ => None,
            })
        };
        if let Some(days) = days(&["Expiration", "Days"]).filter(|days| *days <= 7) {
            soon.push(format!("objects expire after {days} day(s)"));
        }
        if let Some(days) =
            days(&["NoncurrentVersionExpiration", "NoncurrentDays"]).filter(|d| *d <= 7)
        {
            soon.push(format!("old versions expire after {days} day(s)"));
        }
    }
    if soon.is_empty() {
        return Refined::NotThis;
    }
    soon.dedup();
    let bucket = text(parameters, &["bucketName"]).unwrap_or_default();
    let lowered = bucket.to_ascii_lowercase();
    let logs = lowered.contains("trail") || lowered.contains("log");
    Refined::Keep {
        severity: (!logs).then_some(Severity::Medium),
        reason: format!(
            "{} on bucket {bucket}{}",
            soon.join(", "),
            if logs {
                ", whose name says it holds logs"
            } else {
                ""
            }
        ),
    }
}

/// A KMS key of another account made the default: for new EBS volumes, or for a bucket's
/// objects. Whoever holds that key decides whether the data can be read again.
pub fn key_outside(record: &Value) -> Refined {
    let own = own_account(record);
    let parameters = record.get("requestParameters").unwrap_or(&Value::Null);
    let mut keys: Vec<&str> = Vec::new();
    for path in [
        &["kmsKeyId"][..],
        &["KmsKeyId"],
        &["ModifyEbsDefaultKmsKeyIdRequest", "KmsKeyId"],
        &["x-amz-server-side-encryption-aws-kms-key-id"],
    ] {
        keys.extend(text(parameters, path));
    }
    for rule in items(at(
        parameters,
        &["ServerSideEncryptionConfiguration", "Rule"],
    )) {
        keys.extend(text(
            rule,
            &["ApplyServerSideEncryptionByDefault", "KMSMasterKeyID"],
        ));
    }
    let foreign: Vec<&str> = keys
        .into_iter()
        .filter(|key| account_of(key).is_some_and(|account| account != own))
        .collect();
    if foreign.is_empty() {
        return Refined::NotThis;
    }
    keep(format!("a key of another account: {}", foreign.join(", ")))
}

/// A session of an EC2 instance's role (`assumed-role/ROLE/i-0123...`): credentials taken from
/// an instance.
pub fn instance_session(record: &Value) -> Refined {
    let arn = text(record, &["userIdentity", "arn"]).unwrap_or_default();
    let Some((_, session)) = arn
        .split_once(":assumed-role/")
        .and_then(|(_, rest)| rest.split_once('/'))
    else {
        return Refined::NotThis;
    };
    let instance = session
        .strip_prefix("i-")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if !instance {
        return Refined::NotThis;
    }
    keep(format!("{arn} is a session of an EC2 instance's role"))
}

/// An EKS cluster's API endpoint open to the internet: public access on (a new cluster's
/// default) with no CIDRs, or CIDRs holding the whole internet.
pub fn eks_endpoint_open(record: &Value) -> Refined {
    let Some(config) = at(record, &["requestParameters", "resourcesVpcConfig"]) else {
        return Refined::NotThis;
    };
    let creating = record.get("eventName").and_then(Value::as_str) == Some("CreateCluster");
    let public = match config.get("endpointPublicAccess").and_then(Value::as_bool) {
        Some(public) => public,
        None => creating,
    };
    if !public {
        return Refined::NotThis;
    }
    let cidrs: Vec<&str> = items(config.get("publicAccessCidrs"))
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty()
        && !cidrs
            .iter()
            .any(|cidr| *cidr == "0.0.0.0/0" || *cidr == "::/0")
    {
        return Refined::NotThis;
    }
    let cluster = text(record, &["requestParameters", "name"]).unwrap_or_default();
    keep(format!(
        "the API endpoint of cluster {cluster} is reachable from {}",
        if cidrs.is_empty() {
            "anywhere (no CIDRs)".to_owned()
        } else {
            cidrs.join(", ")
        }
    ))
}

/// A task definition whose containers read the task role's credentials endpoint or the
/// instance metadata service themselves.
pub fn container_reads_credentials(record: &Value) -> Refined {
    // A task definition's containers, or a task's overrides of them (RunTask, StartTask).
    let Some(containers) =
        at(record, &["requestParameters", "containerDefinitions"]).or_else(|| {
            at(
                record,
                &["requestParameters", "overrides", "containerOverrides"],
            )
        })
    else {
        return Refined::NotThis;
    };
    let text = containers.to_string();
    let marks = [
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "169.254.170.2",
        "169.254.169.254",
    ];
    let found: Vec<&str> = marks
        .into_iter()
        .filter(|mark| text.contains(mark))
        .collect();
    if found.is_empty() {
        return Refined::NotThis;
    }
    keep(format!(
        "its containers' commands name {}",
        found.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kept(refined: Refined) -> Option<(Option<Severity>, String)> {
        match refined {
            Refined::Keep { severity, reason } => Some((severity, reason)),
            Refined::NotThis => None,
        }
    }

    #[test]
    fn a_policy_that_allows_everything() {
        let put = |document: Value| json!({"eventName": "PutUserPolicy", "requestParameters": {"userName": "u", "policyDocument": document.to_string()}});
        let admin =
            put(json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}));
        assert_eq!(
            kept(policy_allows_all(&admin)).unwrap().1,
            "the policy allows * on every resource (*)"
        );
        let iam = put(
            json!({"Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "iam:*"], "Resource": ["*"]}}),
        );
        assert!(kept(policy_allows_all(&iam)).is_some());
        let narrow = put(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}]}),
        );
        assert!(kept(policy_allows_all(&narrow)).is_none());
        let deny = put(json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}));
        assert!(kept(policy_allows_all(&deny)).is_none());
        let version = |default: bool| {
            json!({"eventName": "CreatePolicyVersion", "requestParameters": {"policyArn": "p", "setAsDefault": default,
                "policyDocument": json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}).to_string()}})
        };
        assert!(kept(policy_allows_all(&version(true))).is_some());
        assert!(kept(policy_allows_all(&version(false))).is_none());
    }

    #[test]
    fn a_credential_for_another_user() {
        let alice =
            json!({"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::1:user/alice"});
        let for_user = |name: Option<&str>, identity: &Value| json!({"userIdentity": identity, "requestParameters": name.map(|n| json!({"userName": n}))});
        assert_eq!(
            kept(other_user(&for_user(Some("bob"), &alice))).unwrap().1,
            "arn:aws:iam::1:user/alice acted for user bob"
        );
        assert!(kept(other_user(&for_user(Some("alice"), &alice))).is_none());
        assert!(kept(other_user(&for_user(None, &alice))).is_none());
        let role = json!({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s"});
        assert!(kept(other_user(&for_user(Some("alice"), &role))).is_some());
    }

    #[test]
    fn layers_and_keys_of_another_account() {
        let layers = |layer: &str| json!({"recipientAccountId": "111122223333", "requestParameters": {"layers": [layer]}});
        assert!(
            kept(layer_outside(&layers(
                "arn:aws:lambda:us-east-1:444455556666:layer:x:1"
            )))
            .is_some()
        );
        assert!(
            kept(layer_outside(&layers(
                "arn:aws:lambda:us-east-1:111122223333:layer:x:1"
            )))
            .is_none()
        );
        let bucket = |key: &str| {
            json!({"recipientAccountId": "111122223333", "requestParameters": {"bucketName": "b",
            "ServerSideEncryptionConfiguration": {"Rule": {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}}}})
        };
        assert_eq!(
            kept(key_outside(&bucket(
                "arn:aws:kms:us-east-1:444455556666:key/k"
            )))
            .unwrap()
            .1,
            "a key of another account: arn:aws:kms:us-east-1:444455556666:key/k"
        );
        assert!(
            kept(key_outside(&bucket(
                "arn:aws:kms:us-east-1:111122223333:key/k"
            )))
            .is_none()
        );
        assert!(kept(key_outside(&bucket("alias/aws/s3"))).is_none());
        let ebs = json!({"recipientAccountId": "111122223333", "requestParameters": {"ModifyEbsDefaultKmsKeyIdRequest": {"KmsKeyId": "arn:aws:kms:us-east-1:444455556666:key/k"}}});
        assert!(kept(key_outside(&ebs)).is_some());
    }

    #[test]
    fn selectors_that_record_less() {
        let put = |parameters: Value| json!({"requestParameters": parameters});
        assert!(kept(trail_records_less(&put(json!({"eventSelectors": [{"includeManagementEvents": false, "readWriteType": "ReadOnly"}]})))).is_some());
        assert!(
            kept(trail_records_less(&put(
                json!({"eventSelectors": [{"includeManagementEvents": true, "readWriteType": "All",
            "dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3"]}]}]})
            )))
            .is_none()
        );
        let management =
            json!({"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]});
        let data = json!({"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}, {"field": "resources.type", "equals": ["AWS::S3::Object"]}]});
        assert!(
            kept(trail_records_less(&put(
                json!({"advancedEventSelectors": [management, data.clone()]})
            )))
            .is_none()
        );
        assert!(
            kept(trail_records_less(&put(
                json!({"advancedEventSelectors": [data]})
            )))
            .is_some()
        );
        let writes_only = json!({"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}, {"field": "readOnly", "equals": ["false"]}]});
        assert!(
            kept(trail_records_less(&put(
                json!({"advancedEventSelectors": [writes_only]})
            )))
            .is_some()
        );
        let update = |parameters: Value| json!({"eventName": "UpdateTrail", "requestParameters": parameters});
        assert_eq!(
            kept(trail_records_less(&update(
                json!({"name": "t", "isMultiRegionTrail": false})
            )))
            .unwrap()
            .1,
            "the trail now records less: one region only"
        );
        assert!(
            kept(trail_records_less(&update(
                json!({"name": "t", "s3BucketName": "b"})
            )))
            .is_none()
        );
    }

    #[test]
    fn findings_closed_in_bulk_and_objects_expiring() {
        let findings = |n: usize| {
            json!({"requestParameters": {"Workflow": {"Status": "SUPPRESSED"},
            "FindingIdentifiers": (0..n).map(|i| json!({"Id": i.to_string(), "ProductArn": "p"})).collect::<Vec<_>>()}})
        };
        assert_eq!(
            kept(findings_in_bulk(&findings(12))).unwrap().1,
            "12 findings set to SUPPRESSED in one call"
        );
        assert!(kept(findings_in_bulk(&findings(2))).is_none());
        let lifecycle = |bucket: &str, days: u64| {
            json!({"requestParameters": {"bucketName": bucket,
            "LifecycleConfiguration": {"Rule": [{"Status": "Enabled", "Expiration": {"Days": days}}]}}})
        };
        assert_eq!(
            kept(lifecycle_expires(&lifecycle("org-cloudtrail-logs", 1)))
                .unwrap()
                .0,
            None
        );
        assert_eq!(
            kept(lifecycle_expires(&lifecycle("data", 3))).unwrap().0,
            Some(Severity::Medium)
        );
        assert!(kept(lifecycle_expires(&lifecycle("org-cloudtrail-logs", 365))).is_none());
    }

    #[test]
    fn instance_sessions_endpoints_and_containers() {
        let by = |arn: &str| json!({"userIdentity": {"type": "AssumedRole", "arn": arn}});
        assert!(
            kept(instance_session(&by(
                "arn:aws:sts::1:assumed-role/web/i-0abc123def"
            )))
            .is_some()
        );
        assert!(
            kept(instance_session(&by(
                "arn:aws:sts::1:assumed-role/web/alice"
            )))
            .is_none()
        );
        let cluster = |name: &str, config: Value| json!({"eventName": name, "requestParameters": {"name": "c", "resourcesVpcConfig": config}});
        assert!(
            kept(eks_endpoint_open(&cluster(
                "CreateCluster",
                json!({"subnetIds": ["s"]})
            )))
            .is_some()
        );
        assert!(
            kept(eks_endpoint_open(&cluster(
                "UpdateClusterConfig",
                json!({"endpointPublicAccess": true, "publicAccessCidrs": ["203.0.113.0/24"]})
            )))
            .is_none()
        );
        assert!(
            kept(eks_endpoint_open(&cluster(
                "UpdateClusterConfig",
                json!({"endpointPublicAccess": false})
            )))
            .is_none()
        );
        let task = json!({"requestParameters": {"family": "f", "containerDefinitions": [{"name": "c", "image": "alpine",
            "command": ["sh", "-c", "curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]}]}});
        assert!(kept(container_reads_credentials(&task)).is_some());
        let run = |command: &str| {
            json!({"requestParameters": {"taskDefinition": "f:1", "overrides": {"containerOverrides": [
                {"name": "c", "command": ["sh", "-c", command]}]}}})
        };
        assert!(
            kept(container_reads_credentials(&run(
                "wget -qO- 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
            )))
            .is_some()
        );
        assert!(kept(container_reads_credentials(&run("./migrate.sh"))).is_none());
        assert!(
            kept(container_reads_credentials(
                &json!({"requestParameters": {}})
            ))
            .is_none()
        );
    }
}
