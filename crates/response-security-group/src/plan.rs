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
            // A name is its maker's text (up to 255 characters): quoted, and cut short.
            GroupRef::Name(name) if name.chars().count() > 64 => {
                let short: String = name.chars().take(64).collect();
                write!(f, "named {short:?}…")
            }
            GroupRef::Name(name) => write!(f, "named {name:?}"),
            GroupRef::Unknown => f.write_str("(not recorded)"),
        }
    }
}

/// The call, as its CloudTrail record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The account it happened in: the event's, which its record's agrees with.
    pub account: String,
    /// The region it happened in, likewise.
    pub region: String,
    pub event_name: Option<String>,
    /// Who made it: the identity's ARN, or its type when it has none.
    pub principal: String,
    pub source_ip: Option<String>,
    pub event_time: Option<String>,
    pub event_id: Option<String>,
    pub group: GroupRef,
    /// The rules the call added or changed, by the IDs its record names (its response
    /// elements, or a ModifySecurityGroupRules request): the only rules the response acts on.
    pub rule_ids: Vec<String>,
    /// What the record says the call added, for the Message when EC2 no longer has it.
    pub recorded: Vec<AddedRule>,
}

/// Twelve digits, as every AWS account ID.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A region's name (`eu-west-3`, `us-gov-west-1`): it goes into an endpoint's host name.
pub fn is_region(text: &str) -> bool {
    let mut parts = text.split('-');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    (2..=4).contains(&first.len())
        && first.bytes().all(|byte| byte.is_ascii_lowercase())
        && rest.len() >= 2
        && rest.last().is_some_and(|last| {
            !last.is_empty() && last.len() <= 2 && last.bytes().all(|byte| byte.is_ascii_digit())
        })
        && rest[..rest.len() - 1].iter().all(|part| {
            !part.is_empty() && part.len() <= 12 && part.bytes().all(|b| b.is_ascii_lowercase())
        })
}

/// The detail-type of a CloudTrail API call's EventBridge event.
const API_CALL: &str = "AWS API Call via CloudTrail";

/// Reads the call from an EventBridge event of a CloudTrail record, when it is AWS's own event
/// (`source` `aws.ec2`, which nobody can put on a bus, and which a member account's rule
/// forwards unchanged) whose event and record agree on the account and region it happened in.
/// A failed call opened nothing, so it names no rule to act on. Whose account may be acted on
/// is the caller's decision.
pub fn read_call(event: &Value) -> Result<Call, String> {
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
    let account = text(event.get("account"))
        .filter(|account| is_account_id(account))
        .ok_or_else(|| "it names no account (12 digits) it happened in".to_owned())?;
    if let Some(other) = text(detail.get("recipientAccountId")).filter(|other| *other != account) {
        return Err(format!(
            "its record is of account {other}, its event of {account}: they must agree"
        ));
    }
    let region = text(event.get("region"))
        .filter(|region| is_region(region))
        .ok_or_else(|| "it names no region it happened in".to_owned())?;
    if let Some(other) = text(detail.get("awsRegion")).filter(|other| *other != region) {
        return Err(format!(
            "its record is of region {other}, its event of {region}: they must agree"
        ));
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
        account,
        region,
        event_name: text(detail.get("eventName")),
        principal,
        source_ip: text(detail.get("sourceIPAddress")),
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
        json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "account": account,
            "region": "eu-west-3", "detail": detail})
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
            "recipientAccountId": "111122223333", "awsRegion": "eu-west-3",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory"},
            "requestParameters": {"groupId": "sg-1"},
            "responseElements": {"_return": true, "securityGroupRuleSet": {"items": items}}})
    }

    #[test]
    fn only_aws_own_events_whose_event_and_record_agree_on_where_are_read() {
        let detail = opened(&[("sgr-1", "tcp", 22, "0.0.0.0/0")]);
        let call = read_call(&event("111122223333", detail.clone())).unwrap();
        assert_eq!(call.group, GroupRef::Id("sg-1".into()));
        assert_eq!(call.rule_ids, ["sgr-1"]);
        assert_eq!(call.principal, "arn:aws:iam::111122223333:user/mallory");
        assert_eq!(
            (call.account.as_str(), call.region.as_str()),
            ("111122223333", "eu-west-3")
        );
        // Another source: what events:PutEvents can send.
        let mut forged = event("111122223333", detail.clone());
        forged["source"] = json!("custom.ec2");
        assert!(
            read_call(&forged)
                .unwrap_err()
                .contains("only AWS's events")
        );
        // The event and its record disagree on the account, or on the region.
        assert!(
            read_call(&event("444455556666", detail.clone()))
                .unwrap_err()
                .contains("account 111122223333, its event of 444455556666")
        );
        let mut elsewhere = event("111122223333", detail.clone());
        elsewhere["region"] = json!("us-east-1");
        assert!(
            read_call(&elsewhere)
                .unwrap_err()
                .contains("region eu-west-3")
        );
        // No account, or a region that is no region's name (it would go into a host name).
        for (key, value) in [
            ("account", json!(null)),
            ("account", json!("1111222233334")),
            ("region", json!("evil.example/x")),
            ("region", json!(null)),
        ] {
            let mut bad = event("111122223333", detail.clone());
            bad[key] = value;
            assert!(read_call(&bad).is_err(), "{bad}");
        }
        assert!(read_call(&json!({"detail": "x"})).is_err());
        // A failed call names nothing to act on.
        let mut failed = opened(&[("sgr-1", "tcp", 22, "0.0.0.0/0")]);
        failed["errorCode"] = json!("Client.UnauthorizedOperation");
        assert!(
            read_call(&event("111122223333", failed))
                .unwrap()
                .rule_ids
                .is_empty()
        );
    }

    #[test]
    fn region_names_are_told_from_anything_else() {
        for region in [
            "us-east-1",
            "eu-west-3",
            "ap-southeast-3",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
        ] {
            assert!(is_region(region), "{region}");
        }
        for text in [
            "",
            "us-east",
            "us-east-1.evil.example",
            "US-EAST-1",
            "us--1",
            "us-east-123",
            "x-y-1",
        ] {
            assert!(!is_region(text), "{text}");
        }
        assert!(is_account_id("111122223333"));
        assert!(!is_account_id("11112222333a"));
    }

    #[test]
    fn ec2s_own_rules_decide_by_the_ids_the_record_names() {
        let call = read_call(&event(
            "111122223333",
            opened(&[
                ("sgr-a", "tcp", 22, "0.0.0.0/0"),
                ("sgr-b", "tcp", 443, "::/0"),
                ("sgr-c", "tcp", 22, "10.0.0.0/8"),
                ("sgr-d", "tcp", 3389, "0.0.0.0/1"),
                ("sgr-e", "tcp", 5432, "pl-0abc"),
            ]),
        ))
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
