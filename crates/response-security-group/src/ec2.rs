//! The EC2 calls the responder makes: describe a group, list its ingress rules, revoke rules by
//! ID. Nothing else: its role allows nothing else.

use activity_aware_detections::ingress::AddedRule;
use aws_query::{Element, QueryClient, QueryError};

/// The group a rule was added to, as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
}

impl Group {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// EC2's error codes for a group that does not exist.
const GROUP_GONE: &[&str] = &["InvalidGroup.NotFound", "InvalidGroupId.NotFound"];

/// EC2's error codes for a rule that is no longer there.
pub const RULE_GONE: &[&str] = &[
    "InvalidPermission.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
];

pub fn is_group_gone(error: &QueryError) -> bool {
    error.code().is_some_and(|code| GROUP_GONE.contains(&code))
}

pub fn is_rule_gone(error: &QueryError) -> bool {
    error.code().is_some_and(|code| RULE_GONE.contains(&code))
}

/// Pages of rules read before giving up (a group holds at most a few thousand).
const MAX_PAGES: usize = 20;

pub struct Ec2 {
    client: QueryClient,
}

impl Ec2 {
    pub fn new(client: QueryClient) -> Ec2 {
        Ec2 { client }
    }

    /// The group with this ID, or `None` when EC2 says it does not exist.
    pub async fn group(&self, id: &str) -> Result<Option<Group>, QueryError> {
        self.describe_group(vec![("GroupId.1".into(), id.into())])
            .await
    }

    /// The group of the default VPC with this name (a call may name its group by name).
    pub async fn group_named(&self, name: &str) -> Result<Option<Group>, QueryError> {
        self.describe_group(vec![("GroupName.1".into(), name.into())])
            .await
    }

    async fn describe_group(
        &self,
        parameters: Vec<(String, String)>,
    ) -> Result<Option<Group>, QueryError> {
        let answer = match self
            .client
            .call("DescribeSecurityGroups", &parameters)
            .await
        {
            Err(error) if is_group_gone(&error) => return Ok(None),
            answer => answer?,
        };
        Ok(answer.items("securityGroupInfo").next().map(|item| Group {
            id: item.child_text("groupId").unwrap_or_default().to_owned(),
            name: item.child_text("groupName").unwrap_or_default().to_owned(),
            tags: item
                .items("tagSet")
                .map(|tag| {
                    (
                        tag.child_text("key").unwrap_or_default().to_owned(),
                        tag.child_text("value").unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        }))
    }

    /// The group's ingress rules, each with its rule ID.
    pub async fn ingress_rules(&self, group_id: &str) -> Result<Vec<AddedRule>, QueryError> {
        let mut rules = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut parameters = vec![
                ("Filter.1.Name".to_owned(), "group-id".to_owned()),
                ("Filter.1.Value.1".to_owned(), group_id.to_owned()),
                ("MaxResults".to_owned(), "1000".to_owned()),
            ];
            if let Some(token) = &next {
                parameters.push(("NextToken".into(), token.clone()));
            }
            let answer = self
                .client
                .call("DescribeSecurityGroupRules", &parameters)
                .await?;
            rules.extend(
                answer
                    .items("securityGroupRuleSet")
                    .filter(|item| item.child_text("isEgress") != Some("true"))
                    .filter_map(rule_of_item),
            );
            next = answer
                .child_text("nextToken")
                .filter(|token| !token.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(rules)
    }

    /// The ranges a managed prefix list holds (at most a few thousand).
    pub async fn prefix_list_entries(&self, list: &str) -> Result<Vec<String>, QueryError> {
        let mut ranges = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut parameters = vec![
                ("PrefixListId".to_owned(), list.to_owned()),
                ("MaxResults".to_owned(), "100".to_owned()),
            ];
            if let Some(token) = &next {
                parameters.push(("NextToken".into(), token.clone()));
            }
            let answer = self
                .client
                .call("GetManagedPrefixListEntries", &parameters)
                .await?;
            ranges.extend(
                answer
                    .items("entrySet")
                    .filter_map(|entry| entry.child_text("cidr").map(str::to_owned)),
            );
            next = answer
                .child_text("nextToken")
                .filter(|token| !token.is_empty())
                .map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(ranges)
    }

    /// Revokes these ingress rules of the group, by rule ID: its other rules stay.
    pub async fn revoke(&self, group_id: &str, rule_ids: &[String]) -> Result<(), QueryError> {
        let mut parameters = vec![("GroupId".to_owned(), group_id.to_owned())];
        parameters.extend(
            rule_ids
                .iter()
                .enumerate()
                .map(|(index, id)| (format!("SecurityGroupRuleId.{}", index + 1), id.clone())),
        );
        self.client
            .call("RevokeSecurityGroupIngress", &parameters)
            .await
            .map(drop)
    }
}

fn rule_of_item(item: &Element) -> Option<AddedRule> {
    let range = item
        .child_text("cidrIpv4")
        .or_else(|| item.child_text("cidrIpv6"))
        .or_else(|| item.child_text("prefixListId"))
        // A rule naming another group opens nothing to the internet.
        .filter(|range| !range.is_empty())?;
    let port = |name: &str| item.child_text(name).and_then(|text| text.parse().ok());
    Some(AddedRule {
        group_id: item.child_text("groupId").map(str::to_owned),
        rule_id: item.child_text("securityGroupRuleId").map(str::to_owned),
        protocol: item.child_text("ipProtocol").unwrap_or("-1").to_owned(),
        from: port("fromPort"),
        to: port("toPort"),
        range: range.to_owned(),
    })
}
