//! The IAM calls containment makes, and nothing else (its role allows nothing else):
//! - a user: whether AWS's quarantine policy is attached, attaching it, and the tag that says
//!   when containment last acted on the user;
//! - a role: its tags (which session is contained, since when), tagging it with those two keys
//!   only, and attaching the stack's contained-session policy, which denies everything to the
//!   one session the role's tag names. Containment writes no policy: it cannot grant anything.

use aws_query::{Element, QueryClient, QueryError};
use std::collections::BTreeMap;

/// The tag on a role naming its contained session (`aws:userid`, `ROLEID:session-name`): the
/// stack's contained-session policy denies everything to that session, and to no other.
pub const CONTAINED_SESSION_TAG: &str = "ActivityAwareIdsContainedSession";

/// The tag on a user or role saying when containment last acted on it (RFC 3339).
pub const CONTAINED_AT_TAG: &str = "ActivityAwareIdsContainedAt";

/// AWS's managed policy for exposed keys, in `partition`.
pub fn quarantine_policy_arn(partition: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/AWSCompromisedKeyQuarantineV3")
}

pub fn is_missing(error: &QueryError) -> bool {
    error.code() == Some("NoSuchEntity")
}

/// IAM refuses to change this entity (a service-linked role, an IAM Identity Center role).
pub fn is_unmodifiable(error: &QueryError) -> bool {
    error.code() == Some("UnmodifiableEntity")
}

/// Whether a value can be a tag value: IAM takes letters, digits, spaces and `_.:/=+-@`, at
/// most 256 (a session name may hold a comma, which no tag can).
pub fn is_tag_value(value: &str) -> bool {
    (1..=256).contains(&value.chars().count())
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

pub struct Iam {
    client: QueryClient,
}

/// Pages of attached policies read before giving up.
const MAX_PAGES: usize = 10;

fn owned(parameters: &[(&str, &str)]) -> Vec<(String, String)> {
    parameters
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

impl Iam {
    pub fn new(client: QueryClient) -> Iam {
        Iam { client }
    }

    async fn call(&self, action: &str, parameters: &[(&str, &str)]) -> Result<Element, QueryError> {
        self.client.call(action, &owned(parameters)).await
    }

    /// Whether the user (`UserName`) or role (`RoleName`) has the managed policy attached;
    /// `Err` with NoSuchEntity when it does not exist.
    async fn has_policy(
        &self,
        kind: Kind,
        name: &str,
        policy_arn: &str,
    ) -> Result<bool, QueryError> {
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut parameters = vec![(kind.name_parameter(), name)];
            if let Some(marker) = &marker {
                parameters.push(("Marker", marker.as_str()));
            }
            let action = kind.list_attached_action();
            let answer = self.call(action, &parameters).await?;
            let Some(result) = answer.find(&format!("{action}Result")) else {
                return Ok(false);
            };
            if result
                .items("AttachedPolicies")
                .any(|policy| policy.child_text("PolicyArn") == Some(policy_arn))
            {
                return Ok(true);
            }
            if result.child_text("IsTruncated") != Some("true") {
                break;
            }
            marker = result.child_text("Marker").map(str::to_owned);
        }
        Ok(false)
    }

    pub async fn user_has_policy(&self, user: &str, policy_arn: &str) -> Result<bool, QueryError> {
        self.has_policy(Kind::User, user, policy_arn).await
    }

    pub async fn role_has_policy(&self, role: &str, policy_arn: &str) -> Result<bool, QueryError> {
        self.has_policy(Kind::Role, role, policy_arn).await
    }

    pub async fn attach_user_policy(&self, user: &str, policy_arn: &str) -> Result<(), QueryError> {
        self.call(
            "AttachUserPolicy",
            &[("UserName", user), ("PolicyArn", policy_arn)],
        )
        .await
        .map(drop)
    }

    pub async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), QueryError> {
        self.call(
            "AttachRolePolicy",
            &[("RoleName", role), ("PolicyArn", policy_arn)],
        )
        .await
        .map(drop)
    }

    /// The containment tags of a user or role (the others are none of its business).
    pub async fn tags(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<BTreeMap<String, String>, QueryError> {
        let action = kind.list_tags_action();
        let answer = self.call(action, &[(kind.name_parameter(), name)]).await?;
        Ok(answer
            .find(&format!("{action}Result"))
            .into_iter()
            .flat_map(|result| result.items("Tags"))
            .filter_map(|tag| Some((tag.child_text("Key")?, tag.child_text("Value")?)))
            .filter(|(key, _)| [CONTAINED_SESSION_TAG, CONTAINED_AT_TAG].contains(key))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect())
    }

    /// Sets containment's tags (and only those) on a user or role.
    pub async fn tag(
        &self,
        kind: Kind,
        name: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), QueryError> {
        let mut parameters = vec![(kind.name_parameter().to_owned(), name.to_owned())];
        for (index, (key, value)) in tags.iter().enumerate() {
            parameters.push((format!("Tags.member.{}.Key", index + 1), (*key).to_owned()));
            parameters.push((
                format!("Tags.member.{}.Value", index + 1),
                (*value).to_owned(),
            ));
        }
        self.client
            .call(kind.tag_action(), &parameters)
            .await
            .map(drop)
    }
}

/// A user or a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Role,
}

impl Kind {
    fn name_parameter(self) -> &'static str {
        match self {
            Kind::User => "UserName",
            Kind::Role => "RoleName",
        }
    }

    fn list_attached_action(self) -> &'static str {
        match self {
            Kind::User => "ListAttachedUserPolicies",
            Kind::Role => "ListAttachedRolePolicies",
        }
    }

    fn list_tags_action(self) -> &'static str {
        match self {
            Kind::User => "ListUserTags",
            Kind::Role => "ListRoleTags",
        }
    }

    fn tag_action(self) -> &'static str {
        match self {
            Kind::User => "TagUser",
            Kind::Role => "TagRole",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_tag_values_unless_they_hold_what_tags_cannot() {
        assert!(is_tag_value("AROAEXAMPLEID:i-0abc123"));
        assert!(is_tag_value("AROAEXAMPLEID:alice@example.com"));
        assert!(!is_tag_value("AROAEXAMPLEID:a,b"));
        assert!(!is_tag_value(""));
        assert!(!is_tag_value(&"a".repeat(257)));
    }
}
