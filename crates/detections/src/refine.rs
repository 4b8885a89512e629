//! Conditions finer than an EventBridge pattern can say, checked by the source on the record a
//! pattern matched: which ports a rule opens to the internet, whether a bucket policy's
//! statement grants everyone or another account.

use crate::Severity;
use crate::catalogue::values_text;
use crate::ingress::{AddedRule, added_rules, exposed};
use crate::settings::Settings;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refine {
    /// Security-group rules open to the internet, however the ranges are cut (see
    /// [`crate::exposure`]): info when every port they open is on the allowlist.
    PublicIngress,
    /// A bucket policy statement that allows `*` or another account.
    PolicyGrants,
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
            "stack-part" => Some(Refine::StackPart),
            "not-stack-principal" => Some(Refine::NotStackPrincipal),
            _ => None,
        }
    }

    pub fn apply(self, record: &Value, settings: &Settings) -> Refined {
        match self {
            Refine::PublicIngress => public_ingress(record, settings),
            Refine::PolicyGrants => policy_grants(record),
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

fn policy_grants(record: &Value) -> Refined {
    let Some(policy) = record
        .get("requestParameters")
        .and_then(|parameters| parameters.get("bucketPolicy"))
    else {
        return Refined::NotThis;
    };
    let own_account = record
        .get("recipientAccountId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let statements: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(statements)) => statements.iter().collect(),
        Some(statement) => vec![statement],
        None => vec![],
    };
    let mut grants = Vec::new();
    for statement in statements {
        if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let principals: Vec<String> = match statement.get("Principal") {
            Some(Value::String(everyone)) => vec![everyone.clone()],
            Some(principal @ Value::Object(_)) => values_text(principal, "AWS")
                .map_or_else(Vec::new, |text| {
                    text.split(", ").map(str::to_owned).collect()
                }),
            _ => vec![],
        };
        let actions = values_text(statement, "Action").unwrap_or_else(|| "its actions".into());
        for principal in principals {
            let whom = if principal == "*" {
                Some("everyone (*)".to_owned())
            } else {
                account_of(&principal)
                    .filter(|account| *account != own_account)
                    .map(|account| format!("account {account}"))
            };
            if let Some(whom) = whom {
                grants.push(format!("{actions} to {whom}"));
            }
        }
    }
    if grants.is_empty() {
        return Refined::NotThis;
    }
    grants.dedup();
    Refined::Keep {
        severity: None,
        reason: format!("the policy allows {}", grants.join("; ")),
    }
}

/// The account of a principal: a 12-digit ID, or the account in its ARN.
fn account_of(principal: &str) -> Option<&str> {
    let is_account = |text: &str| text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit());
    if is_account(principal) {
        return Some(principal);
    }
    principal
        .split(':')
        .nth(4)
        .filter(|account| is_account(account))
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
            keep(policy_grants(&public)).1,
            "the policy allows s3:GetObject to everyone (*)"
        );
        let other = policy(
            json!({"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:root"]}, "Action": ["s3:*"]}),
        );
        assert_eq!(
            keep(policy_grants(&other)).1,
            "the policy allows s3:* to account 444455556666"
        );
        // Deny statements (TLS only) and grants to this account are no exposure.
        let tls_only = policy(json!([
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "s3:GetObject"},
            {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject"}
        ]));
        assert!(matches!(policy_grants(&tls_only), Refined::NotThis));
    }
}
