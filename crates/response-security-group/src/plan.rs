//! What a call opened and what to close, decided without calling anything.

use crate::ec2::Group;
use activity_aware_detections::PublicPorts;
use activity_aware_detections::ingress::{AddedRule, added_rules, exposed};
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
    /// The rules the call added or changed, by the IDs its record names (its response
    /// elements, or a ModifySecurityGroupRules request): the only rules the response acts on.
    pub rule_ids: Vec<String>,
    /// What the record says the call added, for the Message when EC2 no longer has it.
    pub recorded: Vec<AddedRule>,
}

/// The detail-type of a CloudTrail API call's EventBridge event.
const API_CALL: &str = "AWS API Call via CloudTrail";

/// Reads the call from an EventBridge event of a CloudTrail record, when it is AWS's own event
/// (`source` `aws.ec2`, which nobody can put on a bus) of this account. A failed call opened
/// nothing, so it names no rule to act on.
pub fn read_call(event: &Value, account: &str) -> Result<Call, String> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let source = text(event.get("source")).unwrap_or_default();
    if source != "aws.ec2" || text(event.get("detail-type")).as_deref() != Some(API_CALL) {
        return Err(format!(
            "it is not EC2's own CloudTrail event (source {source:?}): only AWS's events are acted on"
        ));
    }
    let detail = event
        .get("detail")
        .filter(|detail| detail.is_object())
        .ok_or_else(|| "it has no detail object".to_owned())?;
    if detail.get("eventSource").and_then(Value::as_str) != Some("ec2.amazonaws.com") {
        return Err("its detail is no EC2 CloudTrail record".into());
    }
    for (what, value) in [
        ("event", text(event.get("account"))),
        ("record", text(detail.get("recipientAccountId"))),
    ] {
        if let Some(other) = value.filter(|other| other != account) {
            return Err(format!(
                "its {what} is of account {other}, not this one ({account}): only that account's own response acts on it"
            ));
        }
    }
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
    let recorded = if failed {
        Vec::new()
    } else {
        added_rules(detail)
    };
    let mut rule_ids: Vec<String> = recorded
        .iter()
        .filter_map(|rule| rule.rule_id.clone())
        .collect();
    rule_ids.dedup();
    Ok(Call {
        event_name: text(detail.get("eventName")),
        principal,
        source_ip: text(detail.get("sourceIPAddress")),
        region: text(detail.get("awsRegion")),
        event_time: text(detail.get("eventTime")),
        event_id: text(detail.get("eventID")),
        group,
        rule_ids,
        recorded,
    })
}

/// What the call opened to the internet, as EC2 itself describes the group's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The call's rules (EC2's description) open to the internet on ports off the allowlist.
    pub to_close: Vec<AddedRule>,
    /// The call's rules open to the internet on allowlisted ports.
    pub left_open: Vec<AddedRule>,
}

/// Decides from EC2's own list of the group's ingress rules (`existing`) and the entries of the
/// prefix lists they name (`entries`): of the rules the call's record names by ID, those open to
/// the internet alone or together with the group's other rules on the same ports.
pub fn decide(
    call: &Call,
    existing: &[AddedRule],
    entries: &std::collections::HashMap<String, Vec<String>>,
    ports: &PublicPorts,
) -> Decision {
    // A prefix list's rule stands for one rule per entry, under the same ID.
    let expand = |rule: &AddedRule| -> Vec<AddedRule> {
        match rule.prefix_list().and_then(|list| entries.get(list)) {
            Some(ranges) => ranges
                .iter()
                .map(|range| AddedRule {
                    range: range.clone(),
                    ..rule.clone()
                })
                .collect(),
            None => vec![rule.clone()],
        }
    };
    let named = |rule: &&AddedRule| {
        rule.rule_id
            .as_ref()
            .is_some_and(|id| call.rule_ids.contains(id))
    };
    let ours: Vec<AddedRule> = existing.iter().filter(named).flat_map(expand).collect();
    let others: Vec<AddedRule> = existing
        .iter()
        .filter(|rule| !named(rule))
        .flat_map(expand)
        .collect();
    let open_ids: Vec<&String> = exposed(&ours, &others)
        .into_iter()
        .filter_map(|rule| rule.rule_id.as_ref())
        .collect();
    let mut decision = Decision::default();
    for rule in existing.iter().filter(named) {
        if !rule
            .rule_id
            .as_ref()
            .is_some_and(|id| open_ids.contains(&id))
        {
            continue;
        }
        if rule.is_allowed(ports) {
            decision.left_open.push(rule.clone());
        } else {
            decision.to_close.push(rule.clone());
        }
    }
    decision
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
    use std::collections::HashMap;

    fn event(account: &str, detail: Value) -> Value {
        json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "account": account, "detail": detail})
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

    fn opened(ids_and_rules: &[(&str, &str, i64, &str)]) -> Value {
        let items: Vec<Value> = ids_and_rules
            .iter()
            .map(|(id, protocol, port, range)| {
                let key = if range.contains(':') { "cidrIpv6" } else { "cidrIpv4" };
                json!({"groupId": "sg-1", "securityGroupRuleId": id, "isEgress": false, "ipProtocol": protocol,
                    "fromPort": port, "toPort": port, key: range})
            })
            .collect();
        json!({"eventSource": "ec2.amazonaws.com", "eventName": "AuthorizeSecurityGroupIngress",
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory"},
            "requestParameters": {"groupId": "sg-1"},
            "responseElements": {"_return": true, "securityGroupRuleSet": {"items": items}}})
    }

    #[test]
    fn only_aws_own_events_of_this_account_are_read() {
        let detail = opened(&[("sgr-1", "tcp", 22, "0.0.0.0/0")]);
        let call = read_call(&event("111122223333", detail.clone()), "111122223333").unwrap();
        assert_eq!(call.group, GroupRef::Id("sg-1".into()));
        assert_eq!(call.rule_ids, ["sgr-1"]);
        assert_eq!(call.principal, "arn:aws:iam::111122223333:user/mallory");
        // Another account's event, another source (what events:PutEvents can send), no record.
        assert!(
            read_call(&event("444455556666", detail.clone()), "111122223333")
                .unwrap_err()
                .contains("account 444455556666")
        );
        let mut forged = event("111122223333", detail.clone());
        forged["source"] = json!("custom.ec2");
        assert!(
            read_call(&forged, "111122223333")
                .unwrap_err()
                .contains("only AWS's events")
        );
        let mut elsewhere = detail;
        elsewhere["recipientAccountId"] = json!("444455556666");
        assert!(read_call(&event("111122223333", elsewhere), "111122223333").is_err());
        assert!(read_call(&json!({"detail": "x"}), "111122223333").is_err());
        // A failed call names nothing to act on.
        let mut failed = opened(&[("sgr-1", "tcp", 22, "0.0.0.0/0")]);
        failed["errorCode"] = json!("Client.UnauthorizedOperation");
        assert!(
            read_call(&event("111122223333", failed), "111122223333")
                .unwrap()
                .rule_ids
                .is_empty()
        );
    }

    #[test]
    fn ec2s_own_rules_decide_by_the_ids_the_record_names() {
        let call = read_call(
            &event(
                "111122223333",
                opened(&[
                    ("sgr-a", "tcp", 22, "0.0.0.0/0"),
                    ("sgr-b", "tcp", 443, "::/0"),
                    ("sgr-c", "tcp", 22, "10.0.0.0/8"),
                    ("sgr-d", "tcp", 3389, "0.0.0.0/1"),
                    ("sgr-e", "tcp", 5432, "pl-0abc"),
                ]),
            ),
            "111122223333",
        )
        .unwrap();
        // EC2 has sgr-a..e, and sgr-f (another call's, the other half of the internet on 3389),
        // and sgr-z (another call's, open, not this call's business).
        let existing = vec![
            rule("sgr-a", "tcp", 22, "0.0.0.0/0"),
            rule("sgr-b", "tcp", 443, "::/0"),
            rule("sgr-c", "tcp", 22, "10.0.0.0/8"),
            rule("sgr-d", "tcp", 3389, "0.0.0.0/9"),
            rule("sgr-e", "tcp", 5432, "pl-0abc"),
            rule("sgr-f", "tcp", 3389, "0.128.0.0/9"),
            rule("sgr-z", "tcp", 23, "0.0.0.0/0"),
        ];
        let entries = HashMap::from([("pl-0abc".to_owned(), vec!["203.0.113.0/24".to_owned()])]);
        let decision = decide(&call, &existing, &entries, &PublicPorts::default());
        let ids = |rules: &[AddedRule]| -> Vec<String> {
            rules
                .iter()
                .filter_map(|rule| rule.rule_id.clone())
                .collect()
        };
        // sgr-d is EC2's 0.0.0.0/9 (the record said /1): EC2's word counts, and it is no /8.
        assert_eq!(ids(&decision.to_close), ["sgr-a"]);
        assert_eq!(ids(&decision.left_open), ["sgr-b"]);
        // A prefix list whose entries are the internet is.
        let wide = HashMap::from([(
            "pl-0abc".to_owned(),
            vec!["0.0.0.0/1".to_owned(), "128.0.0.0/1".to_owned()],
        )]);
        assert_eq!(
            ids(&decide(&call, &existing, &wide, &PublicPorts::default()).to_close),
            ["sgr-a", "sgr-e"]
        );
    }
}
