//! `GuardDuty Finding`: what GuardDuty found, how severe, on which resource, and a link to it.

use crate::{digest_tags, text};
use activity_aware_cloudtrail::{is_safe_id, is_safe_region};
use activity_aware_message::{Field, Message, Metadata, Severity};
use serde_json::Value;
use serde_json::value::RawValue;

pub const SOURCE_NAME: &str = "GuardDuty";
pub const CONSOLE_LINK_LABEL: &str = "GuardDuty Console";
/// What a digest of findings of one type on one resource counts.
const DIGEST_FIELDS: [&str; 2] = ["Severity", "Region"];

/// GuardDuty's severity bands: low 1.0-3.9, medium 4.0-6.9, high 7.0-8.9, critical 9.0-10.0
/// (the Message contract's severities, as GuardDuty scales them).
pub fn severity_label(severity: f64) -> &'static str {
    Severity::of_guardduty(severity).label()
}

/// The resource a finding is about, as people name it: `Instance i-0abc`, `AccessKey AKIA…
/// of user alice`, `S3Bucket my-bucket`...
pub fn resource(finding: &Value) -> Option<String> {
    let resource = finding.get("resource")?;
    let kind = text(resource, &["resourceType"])?;
    let named = match kind.as_str() {
        "Instance" => text(resource, &["instanceDetails", "instanceId"]),
        "AccessKey" => {
            let key = text(resource, &["accessKeyDetails", "accessKeyId"]);
            let user = text(resource, &["accessKeyDetails", "userName"]);
            match (key, user) {
                (Some(key), Some(user)) => Some(format!("{key} of {user}")),
                (key, user) => key.or(user),
            }
        }
        "S3Bucket" => resource
            .get("s3BucketDetails")
            .and_then(Value::as_array)
            .map(|buckets| {
                buckets
                    .iter()
                    .filter_map(|bucket| text(bucket, &["name"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|names| !names.is_empty()),
        "EKSCluster" => text(resource, &["eksClusterDetails", "name"]),
        "ECSCluster" => text(resource, &["ecsClusterDetails", "name"]),
        "Lambda" => text(resource, &["lambdaDetails", "functionName"]),
        "RDSDBInstance" => text(resource, &["rdsDbInstanceDetails", "dbInstanceIdentifier"]),
        _ => None,
    };
    Some(match named {
        Some(name) => format!("{kind} {name}"),
        None => kind,
    })
}

/// The finding in the GuardDuty console, when its region and ID can go into a URL as they are.
pub fn console_link(region: &str, finding_id: &str) -> Option<String> {
    (is_safe_region(region) && is_safe_id(finding_id)).then(|| {
        format!("https://{region}.console.aws.amazon.com/guardduty/home?region={region}#/findings?macros=current&fId={finding_id}")
    })
}

/// The finding's Message, and its severity (GuardDuty's number).
pub fn message(detail: &RawValue) -> Result<(Message, f64), String> {
    let finding: Value = serde_json::from_str(detail.get()).map_err(|error| error.to_string())?;
    let severity = finding
        .get("severity")
        .and_then(Value::as_f64)
        .ok_or("a GuardDuty finding has a numeric severity")?;
    let title = text(&finding, &["title"]).unwrap_or_else(|| "GuardDuty finding".to_owned());
    let severity_text = format!("{} ({severity:.1})", severity_label(severity));
    let kind = text(&finding, &["type"]);
    let resource = resource(&finding);
    let region = text(&finding, &["region"]);
    let id = text(&finding, &["id"]);

    let mut fields = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push(Field::text(key, value));
        }
    };
    push("Title", Some(title.clone()));
    push("Severity", Some(severity_text.clone()));
    push("Finding Type", kind.clone());
    push("Account", text(&finding, &["accountId"]));
    push("Region", region.clone());
    push("Resource", resource.clone());
    push("Description", text(&finding, &["description"]));
    push("First Seen", text(&finding, &["service", "eventFirstSeen"]));
    push("Last Seen", text(&finding, &["service", "eventLastSeen"]));
    push("Occurrences", text(&finding, &["service", "count"]));
    push("Finding ID", id.clone());
    push(
        CONSOLE_LINK_LABEL,
        region
            .zip(id)
            .and_then(|(region, id)| console_link(&region, &id)),
    );

    // The same finding type on the same resource: repeats of one finding group together.
    let group = format!(
        "guardduty {} {}",
        kind.as_deref().unwrap_or("finding"),
        resource.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_owned();
    let time = text(&finding, &["updatedAt"]).or_else(|| text(&finding, &["createdAt"]));
    let tags = digest_tags(Some(group), &DIGEST_FIELDS, time);
    let message = Message {
        subject: format!("GuardDuty finding, {severity_text}: {title}"),
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: None,
        },
        tags,
    };
    Ok((message, severity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{DIGEST_GROUP_TAG, EVENT_TIME_TAG};
    use serde_json::json;

    fn finding(severity: f64, resource: Value) -> Value {
        json!({
            "schemaVersion": "2.0", "accountId": "111122223333", "region": "eu-west-1",
            "partition": "aws", "id": "16afba5c5c43e07c9e3e5e2e544e95df",
            "arn": "arn:aws:guardduty:eu-west-1:111122223333:detector/x/finding/16afba5c5c43e07c9e3e5e2e544e95df",
            "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller", "resource": resource,
            "service": {"serviceName": "guardduty", "count": 3, "eventFirstSeen": "2024-06-02T20:00:00Z",
                "eventLastSeen": "2024-06-02T20:16:00Z"},
            "severity": severity, "createdAt": "2024-06-02T20:00:01Z", "updatedAt": "2024-06-02T20:16:01Z",
            "title": "API was invoked from a known malicious IP address.",
            "description": "An API was used to access a resource from a known malicious IP address."
        })
    }

    fn message_of(finding: Value) -> Message {
        message(&RawValue::from_string(finding.to_string()).unwrap())
            .unwrap()
            .0
    }

    #[test]
    fn severity_bands() {
        for (severity, label) in [
            (1.0, "Low"),
            (3.9, "Low"),
            (4.0, "Medium"),
            (6.9, "Medium"),
            (7.0, "High"),
            (8.9, "High"),
            (9.0, "Critical"),
        ] {
            assert_eq!(severity_label(severity), label, "{severity}");
        }
    }

    #[test]
    fn a_finding_says_what_how_severe_where_and_on_what() {
        let key = json!({"resourceType": "AccessKey", "accessKeyDetails": {"accessKeyId": "AKIAEXAMPLE", "userName": "alice", "userType": "IAMUser"}});
        let message = message_of(finding(8.0, key));
        assert_eq!(
            message.subject,
            "GuardDuty finding, High (8.0): API was invoked from a known malicious IP address."
        );
        let shown: Vec<(&str, &str)> = message
            .fields
            .iter()
            .map(|f| (f.key.as_str(), f.value.as_str().unwrap()))
            .collect();
        assert_eq!(
            &shown[..6],
            [
                (
                    "Title",
                    "API was invoked from a known malicious IP address."
                ),
                ("Severity", "High (8.0)"),
                (
                    "Finding Type",
                    "UnauthorizedAccess:IAMUser/MaliciousIPCaller"
                ),
                ("Account", "111122223333"),
                ("Region", "eu-west-1"),
                ("Resource", "AccessKey AKIAEXAMPLE of alice"),
            ]
        );
        assert!(shown.contains(&("Occurrences", "3")));
        assert_eq!(
            shown.last().unwrap(),
            &(
                CONSOLE_LINK_LABEL,
                "https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1#/findings?macros=current&fId=16afba5c5c43e07c9e3e5e2e544e95df"
            )
        );
        assert_eq!(
            message.tag(DIGEST_GROUP_TAG),
            Some(
                "guardduty UnauthorizedAccess:IAMUser/MaliciousIPCaller AccessKey AKIAEXAMPLE of alice"
            )
        );
        assert_eq!(message.tag(EVENT_TIME_TAG), Some("2024-06-02T20:16:01Z"));
    }

    #[test]
    fn resources_are_named_by_kind() {
        let cases = [
            (
                json!({"resourceType": "Instance", "instanceDetails": {"instanceId": "i-0abc"}}),
                "Instance i-0abc",
            ),
            (
                json!({"resourceType": "S3Bucket", "s3BucketDetails": [{"name": "a"}, {"name": "b"}]}),
                "S3Bucket a, b",
            ),
            (json!({"resourceType": "Container"}), "Container"),
        ];
        for (resource, named) in cases {
            assert_eq!(
                super::resource(&json!({"resource": resource})).as_deref(),
                Some(named)
            );
        }
    }

    #[test]
    fn a_finding_without_a_severity_is_refused() {
        let mut finding = finding(5.0, json!({"resourceType": "Instance"}));
        finding.as_object_mut().unwrap().remove("severity");
        assert!(message(&RawValue::from_string(finding.to_string()).unwrap()).is_err());
    }
}
