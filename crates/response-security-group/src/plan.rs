//! What a call opened and what to close, decided without calling anything.

use crate::ec2::Group;
use activity_aware_detections::PublicPorts;
use activity_aware_detections::ingress::{AddedRule, added_rules};
use activity_aware_message::Severity;
use aws_query::QueryError;
use serde_json::Value;
use std::fmt;

/// How the call named its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(String),
    /// A group of the default VPC, named.
    Name(String),
    Unknown,
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Id(id) => f.write_str(id),
            GroupRef::Name(name) => write!(f, "named {name:?}"),
            GroupRef::Unknown => f.write_str("(not recorded)"),
        }
    }
}

/// The call, as its CloudTrail record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub event_name: Option<String>,
    /// Who made it: the identity's ARN, or its type when it has none.
    pub principal: String,
    pub source_ip: Option<String>,
    pub region: Option<String>,
    pub event_time: Option<String>,
    pub event_id: Option<String>,
    pub group: GroupRef,
    /// Rules it added that are open to every address on ports not on the allowlist.
    pub to_close: Vec<AddedRule>,
    /// Rules it added that are open to every address on allowlisted ports.
    pub left_open: Vec<AddedRule>,
}

/// Reads the call from an EventBridge event of a CloudTrail record. A failed call opened
/// nothing, so it has nothing to close.
pub fn read_call(event: &Value, ports: &PublicPorts) -> Result<Call, String> {
    let detail = event
        .get("detail")
        .filter(|detail| detail.is_object())
        .ok_or_else(|| "it has no detail object".to_owned())?;
    if detail.get("eventSource").and_then(Value::as_str) != Some("ec2.amazonaws.com") {
        return Err("its detail is no EC2 CloudTrail record".into());
    }
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let identity = detail.get("userIdentity");
    let principal = text(identity.and_then(|identity| identity.get("arn")))
        .or_else(|| text(identity.and_then(|identity| identity.get("type"))))
        .unwrap_or_else(|| "an unknown principal".into());
    let parameters = detail.get("requestParameters");
    let group = match (
        text(parameters.and_then(|p| p.get("groupId"))).or_else(|| {
            text(
                parameters
                    .and_then(|p| p.get("ModifySecurityGroupRulesRequest"))
                    .and_then(|request| request.get("GroupId")),
            )
        }),
        text(parameters.and_then(|p| p.get("groupName"))),
    ) {
        (Some(id), _) => GroupRef::Id(id),
        (None, Some(name)) => GroupRef::Name(name),
        (None, None) => GroupRef::Unknown,
    };
    let failed = detail.get("errorCode").is_some_and(|code| !code.is_null());
    let (left_open, to_close) = if failed {
        (Vec::new(), Vec::new())
    } else {
        added_rules(detail)
            .into_iter()
            .filter(AddedRule::is_public)
            .partition(|rule| rule.is_allowed(ports))
    };
    Ok(Call {
        event_name: text(detail.get("eventName")),
        principal,
        source_ip: text(detail.get("sourceIPAddress")),
        region: text(detail.get("awsRegion")),
        event_time: text(detail.get("eventTime")),
        event_id: text(detail.get("eventID")),
        group,
        to_close,
        left_open,
    })
}

/// A protocol as EC2 names it: `tcp`, `udp`, `icmp`, `icmpv6`, `-1` for all.
fn protocol_name(protocol: &str) -> String {
    match protocol.trim().to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        "all" => "-1".into(),
        other => other.to_owned(),
    }
}

fn same_rule(a: &AddedRule, b: &AddedRule) -> bool {
    let ports = |rule: &AddedRule| (rule.from.unwrap_or(-1), rule.to.unwrap_or(-1));
    let everything = |rule: &AddedRule| protocol_name(&rule.protocol) == "-1";
    protocol_name(&a.protocol) == protocol_name(&b.protocol)
        && (everything(a) || ports(a) == ports(b))
        && a.range.trim().eq_ignore_ascii_case(b.range.trim())
}

/// The group's rules (`existing`, as EC2 lists them) that are the ones to close: the same rule
/// ID, or (when the record names none, or the rule was replaced) the same protocol, ports and
/// range. Each at most once.
pub fn matching_rules(to_close: &[AddedRule], existing: &[AddedRule]) -> Vec<AddedRule> {
    existing
        .iter()
        .filter(|rule| {
            to_close.iter().any(|wanted| {
                (wanted.rule_id.is_some() && wanted.rule_id == rule.rule_id)
                    || same_rule(wanted, rule)
            })
        })
        .filter(|rule| rule.rule_id.is_some())
        .cloned()
        .collect()
}

/// What the responder decided, and did.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing the call added is open to the internet on a port off the allowlist.
    NothingToClose,
    GroupGone {
        group: String,
    },
    Exempt {
        group: Group,
    },
    /// The rules to close were gone when the response ran.
    AlreadyClosed {
        group: Group,
    },
    WouldRevoke {
        group: Group,
        rules: Vec<AddedRule>,
    },
    Revoked {
        group: Group,
        rules: Vec<AddedRule>,
    },
    CouldNotRevoke {
        group: Group,
        rules: Vec<AddedRule>,
        error: QueryError,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::NothingToClose => "nothing-to-close",
            Outcome::GroupGone { .. } => "group-gone",
            Outcome::Exempt { .. } => "exempt",
            Outcome::AlreadyClosed { .. } => "already-closed",
            Outcome::WouldRevoke { .. } => "would-revoke",
            Outcome::Revoked { .. } => "revoked",
            Outcome::CouldNotRevoke { .. } => "could-not-revoke",
        }
    }

    /// How much its Message matters; `None` when there is none.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Outcome::NothingToClose => None,
            Outcome::Exempt { .. } => Some(Severity::Info),
            Outcome::AlreadyClosed { .. } | Outcome::GroupGone { .. } => Some(Severity::Medium),
            Outcome::WouldRevoke { .. } | Outcome::Revoked { .. } => Some(Severity::High),
            Outcome::CouldNotRevoke { .. } => Some(Severity::Critical),
        }
    }

    /// The group's ID as EC2 gave it (or as the record did, for a group that is gone).
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Outcome::NothingToClose => None,
            Outcome::GroupGone { group } => Some(group),
            Outcome::Exempt { group }
            | Outcome::AlreadyClosed { group }
            | Outcome::WouldRevoke { group, .. }
            | Outcome::Revoked { group, .. }
            | Outcome::CouldNotRevoke { group, .. } => Some(&group.id),
        }
    }

    /// The rules revoked, or that would be, or that could not be.
    pub fn rule_ids(&self) -> Vec<String> {
        match self {
            Outcome::WouldRevoke { rules, .. }
            | Outcome::Revoked { rules, .. }
            | Outcome::CouldNotRevoke { rules, .. } => rules
                .iter()
                .filter_map(|rule| rule.rule_id.clone())
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> Value {
        json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": detail})
    }

    fn rule(id: &str, protocol: &str, port: i64, range: &str) -> AddedRule {
        AddedRule {
            group_id: Some("sg-1".into()),
            rule_id: Some(id.into()),
            protocol: protocol.into(),
            from: Some(port),
            to: Some(port),
            range: range.into(),
        }
    }

    #[test]
    fn only_public_rules_off_the_allowlist_are_to_close() {
        let call = read_call(
            &event(json!({
                "eventSource": "ec2.amazonaws.com", "eventName": "AuthorizeSecurityGroupIngress",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/mallory"},
                "requestParameters": {"groupId": "sg-1", "ipPermissions": {"items": [
                    {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]}},
                    {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}},
                    {"ipProtocol": "udp", "fromPort": 53, "toPort": 53, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}}
            })),
            &PublicPorts::default(),
        )
        .unwrap();
        assert_eq!(call.group, GroupRef::Id("sg-1".into()));
        assert_eq!(call.principal, "arn:aws:iam::1:user/mallory");
        let described: Vec<String> = call.to_close.iter().map(AddedRule::describe).collect();
        assert_eq!(described, ["tcp/22 from 0.0.0.0/0", "udp/53 from ::/0"]);
        assert_eq!(call.left_open.len(), 1);
    }

    #[test]
    fn a_failed_call_opened_nothing_and_other_events_are_refused() {
        let call = read_call(
            &event(json!({"eventSource": "ec2.amazonaws.com", "errorCode": "Client.UnauthorizedOperation",
                "requestParameters": {"groupId": "sg-1", "cidrIp": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}})),
            &PublicPorts::default(),
        )
        .unwrap();
        assert!(call.to_close.is_empty());
        assert!(read_call(&json!({"detail": "x"}), &PublicPorts::default()).is_err());
        assert!(
            read_call(
                &event(json!({"eventSource": "s3.amazonaws.com"})),
                &PublicPorts::default()
            )
            .is_err()
        );
    }

    #[test]
    fn rules_match_by_id_or_by_what_they_open() {
        let existing = vec![
            rule("sgr-a", "tcp", 22, "0.0.0.0/0"),
            rule("sgr-b", "tcp", 22, "10.0.0.0/8"),
            rule("sgr-c", "tcp", 3389, "::/0"),
        ];
        // By ID.
        let by_id = matching_rules(&[rule("sgr-c", "tcp", 1, "x")], &existing);
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id[0].rule_id.as_deref(), Some("sgr-c"));
        // Without an ID: by protocol (a number in the record), ports and range.
        let mut wanted = rule("", "6", 22, "0.0.0.0/0");
        wanted.rule_id = None;
        let by_shape = matching_rules(&[wanted], &existing);
        assert_eq!(by_shape.len(), 1);
        assert_eq!(by_shape[0].rule_id.as_deref(), Some("sgr-a"));
        // Gone: nothing.
        assert!(matching_rules(&[rule("sgr-z", "tcp", 23, "0.0.0.0/0")], &existing).is_empty());
    }
}
