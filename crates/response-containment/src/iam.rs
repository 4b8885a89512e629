//! The IAM calls containment makes: whether a user has the quarantine policy and attaching it,
//! whether a role's older sessions are already denied and denying them. Nothing else: its role
//! allows nothing else.

use aws_query::{QueryClient, QueryError};

/// The inline policy that denies a role's sessions issued before a time.
pub const REVOKE_POLICY_NAME: &str = "ActivityAwareIdsRevokedSessions";

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

/// The policy document that denies every session of a role issued before `before` (RFC 3339):
/// what the console's "Revoke active sessions" writes.
pub fn revoke_policy_document(before: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenySessionsIssuedBeforeContainment",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}}
        }]
    })
    .to_string()
}

/// The time a revoke policy denies sessions before, when `document` is one.
pub fn revoked_before(document: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(document).ok()?;
    let statements = match &value["Statement"] {
        serde_json::Value::Array(statements) => statements.clone(),
        statement => vec![statement.clone()],
    };
    statements.iter().find_map(|statement| {
        statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
            .as_str()
            .map(str::to_owned)
    })
}

/// Percent-decoding, as IAM returns policy documents (RFC 3986: a `+` is a plus).
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|byte| (*byte as char).to_digit(16))
                .map(|digit| digit as u8)
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Iam {
    client: QueryClient,
}

/// Pages of attached policies read before giving up.
const MAX_PAGES: usize = 10;

impl Iam {
    pub fn new(client: QueryClient) -> Iam {
        Iam { client }
    }

    /// Whether the user has the policy attached; `None` when the user does not exist.
    pub async fn user_has_policy(
        &self,
        user: &str,
        policy_arn: &str,
    ) -> Result<Option<bool>, QueryError> {
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut parameters = vec![("UserName".to_owned(), user.to_owned())];
            if let Some(marker) = &marker {
                parameters.push(("Marker".into(), marker.clone()));
            }
            let answer = match self
                .client
                .call("ListAttachedUserPolicies", &parameters)
                .await
            {
                Err(error) if is_missing(&error) => return Ok(None),
                answer => answer?,
            };
            let Some(result) = answer.find("ListAttachedUserPoliciesResult") else {
                return Ok(Some(false));
            };
            if result
                .items("AttachedPolicies")
                .any(|policy| policy.child_text("PolicyArn") == Some(policy_arn))
            {
                return Ok(Some(true));
            }
            if result.child_text("IsTruncated") != Some("true") {
                break;
            }
            marker = result.child_text("Marker").map(str::to_owned);
        }
        Ok(Some(false))
    }

    pub async fn attach_user_policy(&self, user: &str, policy_arn: &str) -> Result<(), QueryError> {
        self.client
            .call(
                "AttachUserPolicy",
                &[
                    ("UserName".into(), user.into()),
                    ("PolicyArn".into(), policy_arn.into()),
                ],
            )
            .await
            .map(drop)
    }

    /// The time before which the role's sessions are already denied, if they are; `Err` with
    /// NoSuchEntity for a role that does not exist.
    pub async fn sessions_revoked_before(&self, role: &str) -> Result<Option<String>, QueryError> {
        let answer = self
            .client
            .call(
                "GetRolePolicy",
                &[
                    ("RoleName".into(), role.into()),
                    ("PolicyName".into(), REVOKE_POLICY_NAME.into()),
                ],
            )
            .await;
        match answer {
            Ok(answer) => Ok(answer
                .find("PolicyDocument")
                .map(|document| percent_decoded(document.text()))
                .and_then(|document| revoked_before(&document))),
            // No such policy, or no such role: which one, the role's existence says.
            Err(error) if is_missing(&error) => {
                match self
                    .client
                    .call("GetRole", &[("RoleName".into(), role.into())])
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(role_error) => Err(role_error),
                }
            }
            Err(error) => Err(error),
        }
    }

    pub async fn revoke_sessions_before(&self, role: &str, before: &str) -> Result<(), QueryError> {
        self.client
            .call(
                "PutRolePolicy",
                &[
                    ("RoleName".into(), role.into()),
                    ("PolicyName".into(), REVOKE_POLICY_NAME.into()),
                    ("PolicyDocument".into(), revoke_policy_document(before)),
                ],
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoke_policy_reads_back_its_time() {
        let document = revoke_policy_document("2026-12-03T10:00:00Z");
        assert_eq!(
            revoked_before(&document).as_deref(),
            Some("2026-12-03T10:00:00Z")
        );
        let encoded = "%7B%22Statement%22%3A%7B%22Condition%22%3A%7B%22DateLessThan%22%3A%7B%22aws%3ATokenIssueTime%22%3A%222026-01-01T00%3A00%3A00Z%22%7D%7D%7D%7D";
        assert_eq!(
            revoked_before(&percent_decoded(encoded)).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(revoked_before("{\"Statement\": []}"), None);
        assert_eq!(revoked_before("not json"), None);
    }
}
