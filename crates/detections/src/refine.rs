//! Conditions finer than an EventBridge pattern can say, checked by the source on the record a
//! pattern matched: which ports a rule opens to the internet, whether a resource policy, a
//! permission or a grant lets in everyone or another account, and the conditions of
//! [`crate::conditions`].

use crate::Severity;
use crate::conditions;
use crate::ingress::{AddedRule, added_rules, exposed};
use crate::policy;
use crate::settings::Settings;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refine {
    /// Security-group rules open to the internet, however the ranges are cut (see
    /// [`crate::exposure`]): info when every port they open is on the allowlist.
    PublicIngress,
    /// A resource policy, permission or grant that lets in everyone (critical) or another
    /// account (see [`crate::policy`]).
    PolicyGrants,
    /// The same, everyone no worse than another account.
    GrantsOutside,
    /// An IAM policy that allows every action on every resource.
    PolicyAllowsAll,
    /// A credential made or changed for a user other than the caller.
    OtherUser,
    /// A Lambda layer of another account.
    LayerOutside,
    /// Trail event selectors that leave management events out.
    TrailRecordsLess,
    /// Security Hub findings closed in bulk.
    FindingsInBulk,
    /// A lifecycle rule that deletes objects within a week.
    LifecycleExpires,
    /// A KMS key of another account made a default.
    KeyOutside,
    /// A session of an EC2 instance's role.
    InstanceSession,
    /// An EKS API endpoint open to the internet.
    EksEndpointOpen,
    /// Containers that read their role's credentials.
    ContainerReadsCredentials,
    /// One of this stack's own parts, however the call named it.
    StackPart,
    /// A principal that is none of the stack's own roles.
    NotStackPrincipal,
}

pub enum Refined {
    /// The pattern matched, but the record is not what the detection means.
    NotThis,
    Keep {
        severity: Option<Severity>,
        reason: String,
    },
}

impl Refine {
    pub fn named(name: &str) -> Option<Refine> {
        match name {
            "public-ingress" => Some(Refine::PublicIngress),
            "policy-grants" => Some(Refine::PolicyGrants),
            "grants-outside" => Some(Refine::GrantsOutside),
            "policy-allows-all" => Some(Refine::PolicyAllowsAll),
            "other-user" => Some(Refine::OtherUser),
            "layer-outside" => Some(Refine::LayerOutside),
            "trail-records-less" => Some(Refine::TrailRecordsLess),
            "findings-in-bulk" => Some(Refine::FindingsInBulk),
            "lifecycle-expires" => Some(Refine::LifecycleExpires),
            "key-outside" => Some(Refine::KeyOutside),
            "instance-session" => Some(Refine::InstanceSession),
            "eks-endpoint-open" => Some(Refine::EksEndpointOpen),
            "container-reads-credentials" => Some(Refine::ContainerReadsCredentials),
            "stack-part" => Some(Refine::StackPart),
            "not-stack-principal" => Some(Refine::NotStackPrincipal),
            _ => None,
        }
    }

    pub fn apply(self, record: &Value, settings: &Settings) -> Refined {
        match self {
            Refine::PublicIngress => public_ingress(record, settings),
            Refine::PolicyGrants => policy_grants(record, true),
            Refine::GrantsOutside => policy_grants(record, false),
            Refine::PolicyAllowsAll => conditions::policy_allows_all(record),
            Refine::OtherUser => conditions::other_user(record),
            Refine::LayerOutside => conditions::layer_outside(record),
            Refine::TrailRecordsLess => conditions::trail_records_less(record),
            Refine::FindingsInBulk => conditions::findings_in_bulk(record),
            Refine::LifecycleExpires => conditions::lifecycle_expires(record),
            Refine::KeyOutside => conditions::key_outside(record),
            Refine::InstanceSession => conditions::instance_session(record),
            Refine::EksEndpointOpen => conditions::eks_endpoint_open(record),
            Refine::ContainerReadsCredentials => conditions::container_reads_credentials(record),
            Refine::StackPart => match settings.parts.touched(record) {
                Some(part) => Refined::Keep {
                    severity: None,
                    reason: format!("it touched {part}"),
                },
                None => Refined::NotThis,
            },
            Refine::NotStackPrincipal => {
                let arn = record
                    .get("userIdentity")
                    .and_then(|identity| identity.get("arn"))
                    .and_then(Value::as_str)
                    .unwrap_or("a principal without an ARN");
                if settings.parts.is_stack_principal(arn) {
                    Refined::NotThis
                } else {
                    Refined::Keep {
                        severity: None,
                        reason: format!("{arn} is none of the stack's own roles"),
                    }
                }
            }
        }
    }
}

fn public_ingress(record: &Value, settings: &Settings) -> Refined {
    let added = added_rules(record);
    let public: Vec<AddedRule> = exposed(&added, &[]).into_iter().cloned().collect();
    if public.is_empty() {
        return Refined::NotThis;
    }
    let describe = |rules: &[&AddedRule]| {
        rules
            .iter()
            .map(|rule| rule.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (on_list, off_list): (Vec<&AddedRule>, Vec<&AddedRule>) = public
        .iter()
        .partition(|rule| rule.is_allowed(&settings.public_ports));
    if off_list.is_empty() {
        return Refined::Keep {
            severity: Some(Severity::Info),
            reason: format!(
                "open to the internet: {}; AllowedPublicPorts ({}) allows it",
                describe(&on_list),
                settings.public_ports
            ),
        };
    }
    Refined::Keep {
        severity: None,
        reason: format!(
            "open to the internet: {} (AllowedPublicPorts: {})",
            describe(&off_list),
            settings.public_ports
        ),
    }
}

/// Grants to everyone or another account: critical when everyone is let in and `escalate`.
fn policy_grants(record: &Value, escalate: bool) -> Refined {
    let grants = policy::grants(record);
    if grants.is_empty() {
        return Refined::NotThis;
    }
    let everyone = grants.iter().any(|grant| grant.everyone);
    Refined::Keep {
        severity: (everyone && escalate).then_some(Severity::Critical),
        reason: format!("the policy allows {}", policy::describe(&grants)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep(refined: Refined) -> (Option<Severity>, String) {
        match refined {
            Refined::Keep { severity, reason } => (severity, reason),
            Refined::NotThis => panic!("not kept"),
        }
    }

    #[test]
    fn public_ingress_on_the_allowlist_is_info() {
        let settings = Settings::default();
        let web = json!({"requestParameters": {"ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}},
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}}
        ]}}});
        let (severity, reason) = keep(public_ingress(&web, &settings));
        assert_eq!(severity, Some(Severity::Info));
        assert!(reason.contains("tcp/443 from 0.0.0.0/0"), "{reason}");
        let ssh = json!({"requestParameters": {"cidrIp": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}});
        let (severity, reason) = keep(public_ingress(&ssh, &settings));
        assert_eq!(severity, None);
        assert_eq!(
            reason,
            "open to the internet: tcp/22 from 0.0.0.0/0 (AllowedPublicPorts: tcp:80,tcp:443)"
        );
        let v6 = json!({"requestParameters": {"ipPermissions": {"items": [
            {"ipProtocol": "-1", "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}}});
        assert!(
            keep(public_ingress(&v6, &settings))
                .1
                .contains("all traffic from ::/0")
        );
        let halves = json!({"requestParameters": {"ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/1"}, {"cidrIp": "128.0.0.0/1"}]}}]}}});
        assert_eq!(
            keep(public_ingress(&halves, &settings)).1,
            "open to the internet: tcp/22 from 0.0.0.0/1, tcp/22 from 128.0.0.0/1 (AllowedPublicPorts: tcp:80,tcp:443)"
        );
        let private = json!({"requestParameters": {"cidrIp": "10.0.0.0/8", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}});
        assert!(matches!(
            public_ingress(&private, &settings),
            Refined::NotThis
        ));
        let modified = json!({"requestParameters": {"ModifySecurityGroupRulesRequest": {"GroupId": "sg-1",
            "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-1", "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "CidrIpv4": "0.0.0.0/0"}}}}});
        assert!(
            keep(public_ingress(&modified, &settings))
                .1
                .contains("tcp/3389")
        );
    }

    #[test]
    fn a_policy_grants_everyone_or_another_account() {
        let policy = |statements: Value| json!({"recipientAccountId": "111122223333", "requestParameters": {"bucketName": "b", "bucketPolicy": {"Statement": statements}}});
        let public =
            policy(json!([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]));
        assert_eq!(
            keep(policy_grants(&public, true)),
            (
                Some(Severity::Critical),
                "the policy allows s3:GetObject to everyone (*)".to_owned()
            )
        );
        assert_eq!(keep(policy_grants(&public, false)).0, None);
        let other = policy(
            json!({"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]}, "Action": ["s3:*"]}),
        );
        assert_eq!(
            keep(policy_grants(&other, true)),
            (
                None,
                "the policy allows s3:* to account 444455556666".to_owned()
            )
        );
        // Deny statements (TLS only) and grants to this account are no exposure.
        let tls_only = policy(json!([
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "s3:GetObject"},
            {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject"}
        ]));
        assert!(matches!(policy_grants(&tls_only, true), Refined::NotThis));
    }
}
