//! The ingress rules a security-group call adds, read from its CloudTrail record: for the
//! detection (which ports a call opens to the internet) and for the response that revokes them.

use crate::exposure::{covers_internet, holds_public, is_wide};
use crate::ports::{Protocol, PublicPorts, describe_ports};
use serde_json::Value;

/// One ingress rule a call adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedRule {
    pub group_id: Option<String>,
    /// The security-group rule ID, when the record has it (its response elements do).
    pub rule_id: Option<String>,
    pub protocol: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The source range (`0.0.0.0/0`, `::/0`...), or the prefix list it names (`pl-...`).
    pub range: String,
}

impl AddedRule {
    /// Open to the internet on its own: a range holding at least a `/8` of public addresses
    /// (see [`crate::exposure`]).
    pub fn is_public(&self) -> bool {
        is_wide(&self.range)
    }

    /// The prefix list it names, whose entries say what it opens.
    pub fn prefix_list(&self) -> Option<&str> {
        self.range
            .trim()
            .starts_with("pl-")
            .then(|| self.range.trim())
    }

    fn same_ports(&self, other: &AddedRule) -> bool {
        Protocol::of_rule(&self.protocol) == Protocol::of_rule(&other.protocol)
            && self.from == other.from
            && self.to == other.to
    }

    /// Whether every port it opens is on the allowlist.
    pub fn is_allowed(&self, ports: &PublicPorts) -> bool {
        ports.allows(
            Protocol::of_rule(&self.protocol),
            self.from.unwrap_or(-1),
            self.to.unwrap_or(-1),
        )
    }

    /// `tcp/22 from 0.0.0.0/0`.
    pub fn describe(&self) -> String {
        format!(
            "{} from {}",
            describe_ports(&self.protocol, self.from, self.to),
            self.range
        )
    }
}

/// The rules of `rules` that open something to the internet: each that does alone, and each of
/// a set on the same protocol and ports whose ranges together cover every public address
/// (`0.0.0.0/1` with `128.0.0.0/1`) and that holds public addresses itself (a `10.0.0.0/8`
/// beside a `0.0.0.0/0` opens nothing more). `context` are other rules of the same group (EC2's own
/// list), which count towards a set but are not returned.
pub fn exposed<'r>(rules: &'r [AddedRule], context: &[AddedRule]) -> Vec<&'r AddedRule> {
    rules
        .iter()
        .filter(|rule| {
            rule.is_public()
                || holds_public(&rule.range)
                    && covers_internet(
                        rules
                            .iter()
                            .chain(context)
                            .filter(|other| other.same_ports(rule))
                            .map(|other| other.range.as_str()),
                    )
        })
        .collect()
}

/// A port as CloudTrail writes it: a number, or a number in a string.
fn port(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// The ingress rules an `AuthorizeSecurityGroupIngress` (either shape) or
/// `ModifySecurityGroupRules` record adds: from its response elements, which name each new
/// rule's ID, else from its request parameters.
pub fn added_rules(record: &Value) -> Vec<AddedRule> {
    let parameters = record.get("requestParameters").unwrap_or(&Value::Null);
    let group = text(parameters.get("groupId")).or_else(|| {
        text(
            parameters
                .get("ModifySecurityGroupRulesRequest")
                .and_then(|request| request.get("GroupId")),
        )
    });
    let from_response: Vec<AddedRule> = record
        .get("responseElements")
        .and_then(|elements| elements.get("securityGroupRuleSet"))
        .and_then(|set| set.get("items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|rule| rule.get("isEgress") != Some(&Value::Bool(true)))
        .filter_map(|rule| {
            let range = text(rule.get("cidrIpv4"))
                .or_else(|| text(rule.get("cidrIpv6")))
                .or_else(|| text(rule.get("prefixListId")))?;
            Some(AddedRule {
                group_id: text(rule.get("groupId")).or_else(|| group.clone()),
                rule_id: text(rule.get("securityGroupRuleId")),
                protocol: text(rule.get("ipProtocol")).unwrap_or_else(|| "-1".into()),
                from: port(rule.get("fromPort")),
                to: port(rule.get("toPort")),
                range,
            })
        })
        .collect();
    if !from_response.is_empty() {
        return from_response;
    }
    let mut rules = Vec::new();
    // The older shape: one range, straight in the parameters.
    if let Some(range) = text(parameters.get("cidrIp")) {
        rules.push(AddedRule {
            group_id: group.clone(),
            rule_id: None,
            protocol: text(parameters.get("ipProtocol")).unwrap_or_else(|| "-1".into()),
            from: port(parameters.get("fromPort")),
            to: port(parameters.get("toPort")),
            range,
        });
    }
    let items = parameters
        .get("ipPermissions")
        .and_then(|permissions| permissions.get("items"))
        .and_then(Value::as_array);
    for permission in items.into_iter().flatten() {
        let protocol = text(permission.get("ipProtocol")).unwrap_or_else(|| "-1".into());
        let (from, to) = (
            port(permission.get("fromPort")),
            port(permission.get("toPort")),
        );
        for (list, key) in [
            ("ipRanges", "cidrIp"),
            ("ipv6Ranges", "cidrIpv6"),
            ("prefixListIds", "prefixListId"),
        ] {
            let ranges = permission
                .get(list)
                .and_then(|ranges| ranges.get("items"))
                .and_then(Value::as_array);
            for range in ranges.into_iter().flatten() {
                if let Some(range) = text(range.get(key)) {
                    rules.push(AddedRule {
                        group_id: group.clone(),
                        rule_id: None,
                        protocol: protocol.clone(),
                        from,
                        to,
                        range,
                    });
                }
            }
        }
    }
    // ModifySecurityGroupRules: each rule's new form, under its ID.
    let modified = parameters
        .get("ModifySecurityGroupRulesRequest")
        .and_then(|request| request.get("SecurityGroupRule"));
    let modified: Vec<&Value> = match modified {
        Some(Value::Array(rules)) => rules.iter().collect(),
        Some(rule) => vec![rule],
        None => vec![],
    };
    for entry in modified {
        let rule = entry.get("SecurityGroupRule").unwrap_or(entry);
        for key in ["CidrIpv4", "CidrIpv6", "PrefixListId"] {
            if let Some(range) = text(rule.get(key)) {
                rules.push(AddedRule {
                    group_id: group.clone(),
                    rule_id: text(entry.get("SecurityGroupRuleId")),
                    protocol: text(rule.get("IpProtocol")).unwrap_or_else(|| "-1".into()),
                    from: port(rule.get("FromPort")),
                    to: port(rule.get("ToPort")),
                    range,
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_response_names_each_new_rule() {
        let record = json!({
            "requestParameters": {"groupId": "sg-1", "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}},
            "responseElements": {"_return": true, "securityGroupRuleSet": {"items": [
                {"groupId": "sg-1", "securityGroupRuleId": "sgr-1", "isEgress": false, "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
                {"groupId": "sg-1", "securityGroupRuleId": "sgr-2", "isEgress": false, "ipProtocol": "-1", "fromPort": -1, "toPort": -1, "cidrIpv6": "::/0"}
            ]}}
        });
        let rules = added_rules(&record);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].rule_id.as_deref(), Some("sgr-1"));
        assert_eq!(rules[0].describe(), "tcp/22 from 0.0.0.0/0");
        assert_eq!(rules[1].describe(), "all traffic from ::/0");
        assert!(rules.iter().all(AddedRule::is_public));
    }

    #[test]
    fn without_a_response_the_request_says_what_was_added() {
        // Ports as strings, as some records write them.
        let record = json!({"requestParameters": {"groupId": "sg-9", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": "443", "toPort": "443", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]}}]}},
            "responseElements": {"_return": true}});
        let rules = added_rules(&record);
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (rules[0].group_id.as_deref(), rules[0].from, rules[0].to),
            (Some("sg-9"), Some(443), Some(443))
        );
        assert!(rules[0].is_allowed(&PublicPorts::default()));
        assert!(!rules[1].is_public());
    }

    #[test]
    fn the_internet_in_halves_is_the_internet() {
        let record = json!({"requestParameters": {"groupId": "sg-1", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/9"}, {"cidrIp": "128.0.0.0/9"}]}},
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "52.95.110.0/24"}]}},
            {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "prefixListIds": {"items": [{"prefixListId": "pl-0abc"}]}}]}}});
        let rules = added_rules(&record);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[3].prefix_list(), Some("pl-0abc"));
        // Two /9s are no /8 each, and do not cover the rest: not exposed...
        assert!(exposed(&rules, &[]).is_empty());
        // ...until the group's other rules on the same port fill in the rest.
        let rest: Vec<AddedRule> = ["0.128.0.0/9", "1.0.0.0/8"]
            .iter()
            .map(|range| AddedRule {
                range: (*range).into(),
                ..rules[0].clone()
            })
            .chain((2..=127u32).chain(129..=255).map(|first| AddedRule {
                range: format!("{first}.0.0.0/8"),
                ..rules[0].clone()
            }))
            .chain(std::iter::once(AddedRule {
                range: "128.128.0.0/9".into(),
                ..rules[0].clone()
            }))
            .collect();
        let open: Vec<&str> = exposed(&rules, &rest)
            .iter()
            .map(|rule| rule.range.as_str())
            .collect();
        // 0.0.0.0/9 holds no public address: it opens nothing more than the rest does.
        assert_eq!(open, ["128.0.0.0/9", "52.95.110.0/24"]);
    }

    #[test]
    fn a_modified_rule_keeps_its_id_and_takes_its_new_form() {
        let record = json!({"requestParameters": {"ModifySecurityGroupRulesRequest": {
            "GroupId": "sg-7",
            "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-7", "tag": 1, "SecurityGroupRule": {
                "IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "CidrIpv4": "0.0.0.0/0"}}}},
            "responseElements": {"ModifySecurityGroupRulesResponse": {"return": true}}});
        let rules = added_rules(&record);
        assert_eq!(rules.len(), 1);
        assert_eq!(
            (rules[0].group_id.as_deref(), rules[0].rule_id.as_deref()),
            (Some("sg-7"), Some("sgr-7"))
        );
        assert_eq!(rules[0].describe(), "tcp/3389 from 0.0.0.0/0");
    }
}
