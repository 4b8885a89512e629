//! What the stack tells a source about itself, read once at start: the values the catalogue's
//! patterns name (`${AWS::StackName}`...), the ports that may be public, and the principals
//! whose changes are expected.

use crate::own::StackParts;
use crate::ports::{PortsError, PublicPorts};
use crate::principals::{PrincipalEntryError, PrincipalList};
use activity_aware_message::{TOPIC_VARIABLE, Topic, TopicError};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(transparent)]
    Ports(#[from] PortsError),
    #[error(
        "EXPECTED_PRINCIPAL_ARNS: {0:?} is not an ARN, an IAM role's ARN, or an assumed role's sessions (arn:...:assumed-role/NAME/*); a * may stand only for a whole session name, which the caller chooses"
    )]
    Principal(String),
    #[error("EXPECTED_CHANGES must be info or drop, not {0:?}")]
    ExpectedChanges(String),
    #[error(transparent)]
    Topic(#[from] TopicError),
}

/// Principals whose changes are expected (deployment roles; CloudFormation acting for
/// someone): their detections become `info`, or are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedPrincipals {
    principals: PrincipalList,
    pub cloudformation: bool,
    pub drop: bool,
}

impl ExpectedPrincipals {
    pub fn parse(arns: &str, cloudformation: bool, drop: bool) -> Result<Self, SettingsError> {
        Ok(ExpectedPrincipals {
            principals: PrincipalList::parse(arns)
                .map_err(|PrincipalEntryError(entry)| SettingsError::Principal(entry))?,
            cloudformation,
            drop,
        })
    }

    /// Why the record's change was expected, when it was. CloudFormation's changes are
    /// expected only to the stack's own parts (`own_part`): that is this stack being updated.
    /// Any other stack's, an intruder's own among them, are not.
    pub fn why(&self, record: &Value, own_part: bool) -> Option<String> {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(record, |node, key| node.get(*key))
                .and_then(Value::as_str)
        };
        if self.cloudformation
            && own_part
            && (text(&["userIdentity", "invokedBy"]) == Some(CLOUDFORMATION)
                || text(&["sourceIPAddress"]) == Some(CLOUDFORMATION))
        {
            return Some(
                "made by CloudFormation to this stack's own part, as the stack's updates do".into(),
            );
        }
        let arn = text(&["userIdentity", "arn"])?;
        let issuer = text(&["userIdentity", "sessionContext", "sessionIssuer", "arn"]);
        let entry = self.principals.entry_for(arn, issuer)?;
        Some(match entry.strip_suffix('/') {
            Some(_) => format!("made by a session of {entry}*, which ExpectedPrincipalArns names"),
            None if entry == arn => format!("made by {arn}, which ExpectedPrincipalArns names"),
            None => format!("made by a session of {entry}, which ExpectedPrincipalArns names"),
        })
    }
}

const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";

#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Values for the catalogue's `${Name}` placeholders; a detection naming one that is not
    /// here is not looked for.
    pub placeholders: BTreeMap<String, String>,
    pub public_ports: PublicPorts,
    pub expected: ExpectedPrincipals,
    /// The stack's own parts, for the self-protection detections.
    pub parts: StackParts,
}

impl Settings {
    /// Reads the environment the template gives the sources.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the same variables from `lookup`:
    /// - `SNS_TOPIC`: the topic's ARN, which names the partition, region and account;
    /// - `STACK_NAME`, `STACK_KEY_ARN`, `CLOUDTRAIL_LOG_GROUP`, `HONEY_BUCKET_NAME`,
    ///   `OPERATIONS_TOPIC_ARN`: what the self-protection and honey bucket detections name;
    /// - `ALLOWED_PUBLIC_PORTS` (default `tcp:80,tcp:443`);
    /// - `EXPECTED_PRINCIPAL_ARNS`, `EXPECT_CLOUDFORMATION_CHANGES` (`true`, the default, or
    ///   `false`) and `EXPECTED_CHANGES` (`info`, the default, or `drop`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut placeholders = BTreeMap::new();
        if let Some(topic) = get(TOPIC_VARIABLE) {
            let topic = Topic::parse(&topic)?;
            placeholders.insert("AWS::Partition".into(), topic.partition);
            placeholders.insert("AWS::Region".into(), topic.region);
            placeholders.insert("AWS::AccountId".into(), topic.account);
            placeholders.insert("SNSTopic".into(), topic.arn);
        }
        for (variable, placeholder) in [
            ("STACK_NAME", "AWS::StackName"),
            ("STACK_KEY_ARN", "StackKey.Arn"),
            ("CLOUDTRAIL_LOG_GROUP", "CloudTrailCloudWatchLogsGroupName"),
            ("HONEY_BUCKET_NAME", "HoneyBucketName"),
        ] {
            if let Some(value) = get(variable) {
                placeholders.insert(placeholder.into(), value);
            }
        }
        if let Some(key_id) = placeholders
            .get("StackKey.Arn")
            .and_then(|arn| arn.rsplit_once('/'))
            .map(|(_, id)| id.to_owned())
        {
            placeholders.insert("StackKey".into(), key_id);
        }
        let placeholder = |name: &str| placeholders.get(name).cloned();
        let parts = StackParts {
            stack: placeholder("AWS::StackName").unwrap_or_default(),
            account: placeholder("AWS::AccountId").unwrap_or_default(),
            topics: placeholder("SNSTopic")
                .into_iter()
                .chain(get("OPERATIONS_TOPIC_ARN"))
                .collect(),
            keys: placeholder("StackKey.Arn").into_iter().collect(),
            trail_log_group: placeholder("CloudTrailCloudWatchLogsGroupName"),
        };
        let public_ports = match get("ALLOWED_PUBLIC_PORTS") {
            Some(ports) => PublicPorts::parse(&ports)?,
            None => PublicPorts::default(),
        };
        let drop = match get("EXPECTED_CHANGES").as_deref() {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("info") => false,
            Some(value) if value.eq_ignore_ascii_case("drop") => true,
            Some(other) => return Err(SettingsError::ExpectedChanges(other.to_owned())),
        };
        let cloudformation = get("EXPECT_CLOUDFORMATION_CHANGES")
            .is_none_or(|value| !value.eq_ignore_ascii_case("false"));
        let expected = ExpectedPrincipals::parse(
            &get("EXPECTED_PRINCIPAL_ARNS").unwrap_or_default(),
            cloudformation,
            drop,
        )?;
        Ok(Settings {
            placeholders,
            public_ports,
            expected,
            parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_topic_and_the_stack_name_the_placeholders() {
        let settings = settings(&[
            ("SNS_TOPIC", "arn:aws:sns:eu-west-1:111122223333:ids"),
            ("STACK_NAME", "ids"),
            (
                "STACK_KEY_ARN",
                "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab",
            ),
            ("HONEY_BUCKET_NAME", ""),
        ])
        .unwrap();
        let get = |name: &str| settings.placeholders.get(name).map(String::as_str);
        assert_eq!(get("AWS::AccountId"), Some("111122223333"));
        assert_eq!(get("AWS::Region"), Some("eu-west-1"));
        assert_eq!(get("AWS::Partition"), Some("aws"));
        assert_eq!(get("StackKey"), Some("1234abcd-12ab"));
        assert_eq!(get("HoneyBucketName"), None);
        assert!(settings.expected.cloudformation && !settings.expected.drop);
        assert_eq!(settings.public_ports, PublicPorts::default());
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        assert_eq!(
            settings(&[("SNS_TOPIC", "my-topic")]).unwrap_err(),
            SettingsError::Topic(TopicError::NotAnArn("my-topic".into()))
        );
        assert!(matches!(
            settings(&[("ALLOWED_PUBLIC_PORTS", "tcp:https")]).unwrap_err(),
            SettingsError::Ports(_)
        ));
        assert_eq!(
            settings(&[("EXPECTED_CHANGES", "hide")]).unwrap_err(),
            SettingsError::ExpectedChanges("hide".into())
        );
        // A * inside a session name the caller chooses, or anywhere but a whole session.
        for arn in [
            "arn:aws:sts::111122223333:assumed-role/Deploy/ci-*",
            "arn:aws:sts::111122223333:assumed-role/Deploy*",
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:sts::111122223333:assumed-role/*/x",
            "deploy-role",
        ] {
            assert_eq!(
                settings(&[("EXPECTED_PRINCIPAL_ARNS", arn)]).unwrap_err(),
                SettingsError::Principal(arn.into()),
                "{arn}"
            );
        }
    }

    #[test]
    fn expected_principals_are_whole_arns_roles_or_every_session_of_a_role() {
        let expected = ExpectedPrincipals::parse(
            "arn:aws:iam::111122223333:user/deployer, arn:aws:iam::111122223333:role/Pipeline,arn:aws:sts::111122223333:assumed-role/Terraform/*",
            false,
            false,
        )
        .unwrap();
        let record = |arn: &str, issuer: &str| json!({"userIdentity": {"arn": arn, "sessionContext": {"sessionIssuer": {"arn": issuer}}}});
        assert!(
            expected
                .why(
                    &record("arn:aws:iam::111122223333:user/deployer", ""),
                    false
                )
                .is_some()
        );
        assert!(
            expected
                .why(
                    &record("arn:aws:iam::111122223333:user/deployer2", ""),
                    false
                )
                .is_none()
        );
        assert!(
            expected
                .why(
                    &record(
                        "arn:aws:sts::111122223333:assumed-role/Pipeline/run-1",
                        "arn:aws:iam::111122223333:role/Pipeline"
                    ),
                    false
                )
                .is_some()
        );
        assert!(
            expected
                .why(
                    &record("arn:aws:sts::111122223333:assumed-role/Terraform/plan", ""),
                    false
                )
                .is_some()
        );
        assert!(
            expected
                .why(
                    &record(
                        "arn:aws:sts::111122223333:assumed-role/TerraformAdmin/x",
                        ""
                    ),
                    false
                )
                .is_none()
        );
        // CloudFormation only when the stack expects it, and only to the stack's own parts:
        // any other stack's change (an intruder's own stack's) is no update of this one.
        let by_stack = json!({"userIdentity": {"arn": "arn:aws:iam::1:user/x", "invokedBy": "cloudformation.amazonaws.com"}});
        assert!(expected.why(&by_stack, true).is_none());
        let expected = ExpectedPrincipals::parse("", true, false).unwrap();
        assert!(
            expected
                .why(&by_stack, true)
                .unwrap()
                .contains("CloudFormation")
        );
        assert!(expected.why(&by_stack, false).is_none());
    }
}
