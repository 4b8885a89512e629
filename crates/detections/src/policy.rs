//! Who a call lets in: the resource policy it sets (a bucket's, a key's, a topic's, a queue's,
//! a secret's, a repository's, a vault's, a domain's, a role's trust policy), the principal it
//! names (a Lambda permission, a KMS grant), or the accounts it lists (SNS and SQS
//! `AddPermission`). A grant matters when it lets in everyone or an account other than the one
//! the call was made in. Policies arrive as objects or as JSON strings; both are read.
//!
//! A statement that allows `*` is no grant to everyone when a condition pins the caller down to
//! fixed values: an account (`aws:SourceAccount`, `aws:PrincipalAccount`, `kms:CallerAccount`,
//! `aws:SourceOwner`), an ARN (`aws:SourceArn`, `aws:PrincipalArn`), the organization
//! (`aws:PrincipalOrgID` and its kin), a network (`aws:SourceVpc`, `aws:SourceVpce`, an
//! `aws:SourceIp` short of the whole internet) or an identity (`aws:userid`, `aws:username`).
//! The accounts such a condition names are grants to them. Negated operators (`StringNotEquals`,
//! `ArnNotLike`...) and values with wildcards pin nothing down.

use crate::catalogue::values_text;
use serde_json::Value;

/// One grant a call makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Everyone (`*`, any account, any holder of a token), rather than one account.
    pub everyone: bool,
    /// Whom, in words: `everyone (*)`, `account 444455556666`.
    pub whom: String,
    /// What it allows, in words (`s3:GetObject`, `its actions`).
    pub actions: String,
}

impl Grant {
    fn everyone(whom: &str, actions: &str) -> Grant {
        Grant {
            everyone: true,
            whom: whom.to_owned(),
            actions: actions.to_owned(),
        }
    }

    fn account(account: &str, actions: &str) -> Grant {
        Grant {
            everyone: false,
            whom: format!("account {account}"),
            actions: actions.to_owned(),
        }
    }
}

/// The account the call was made in.
pub fn own_account(record: &Value) -> &str {
    record
        .get("recipientAccountId")
        .and_then(Value::as_str)
        .or_else(|| {
            record
                .get("userIdentity")
                .and_then(|identity| identity.get("accountId"))
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
}

/// Where calls carry a resource policy, under `requestParameters`.
const POLICY_KEYS: &[&str] = &[
    "bucketPolicy",
    "policy",
    "policyDocument",
    "assumeRolePolicyDocument",
    "resourcePolicy",
    "policyText",
    "policyInJson",
    "accessPolicies",
];

/// Every grant to everyone or another account the call makes, once each.
pub fn grants(record: &Value) -> Vec<Grant> {
    let own = own_account(record);
    let mut out = Vec::new();
    let Some(parameters) = record.get("requestParameters").filter(|p| p.is_object()) else {
        return out;
    };
    for key in POLICY_KEYS {
        if let Some(value) = parameters.get(*key) {
            policy_grants(value, own, &mut out);
        }
    }
    // SNS CreateTopic, SQS CreateQueue and SetQueueAttributes: attributes.Policy; SNS
    // SetTopicAttributes: the attribute named Policy.
    if let Some(policy) = parameters.get("attributes").and_then(|a| a.get("Policy")) {
        policy_grants(policy, own, &mut out);
    }
    if parameters.get("attributeName").and_then(Value::as_str) == Some("Policy")
        && let Some(policy) = parameters.get("attributeValue")
    {
        policy_grants(policy, own, &mut out);
    }
    principal_grants(parameters, own, &mut out);
    for key in ["aWSAccountId", "aWSAccountIds", "AWSAccountIds"] {
        for account in strings(parameters.get(key)) {
            if is_account(&account) && account != own {
                let actions = values_text(parameters, "actionName")
                    .or_else(|| values_text(parameters, "actions"))
                    .unwrap_or_else(|| "its actions".into());
                out.push(Grant::account(&account, &actions));
            }
        }
    }
    // KMS CreateGrant: the principal that may use the key.
    if let Some(grantee) = parameters.get("granteePrincipal").and_then(Value::as_str)
        && let Some(account) = account_of(grantee)
        && account != own
    {
        let operations = values_text(parameters, "operations").unwrap_or_else(|| "the key".into());
        out.push(Grant::account(account, &operations));
    }
    let mut unique: Vec<Grant> = Vec::new();
    for grant in out {
        if !unique.contains(&grant) {
            unique.push(grant);
        }
    }
    unique
}

/// The grants in a policy: an object, a JSON string of one, or an object holding one under
/// `policy` (Glacier's vault access policy).
pub fn policy_grants(policy: &Value, own: &str, out: &mut Vec<Grant>) {
    let parsed;
    let policy = match policy {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                parsed = value;
                &parsed
            }
            Err(_) => return,
        },
        other => other,
    };
    if policy.get("Statement").is_none()
        && let Some(inner) = policy.get("policy")
    {
        policy_grants(inner, own, out);
        return;
    }
    for statement in statements(policy) {
        statement_grants(statement, own, out);
    }
}

/// A policy's statements: a list, or one statement on its own.
pub fn statements(policy: &Value) -> Vec<&Value> {
    match policy.get("Statement") {
        Some(Value::Array(statements)) => statements.iter().collect(),
        Some(statement @ Value::Object(_)) => vec![statement],
        _ => vec![],
    }
}

fn statement_grants(statement: &Value, own: &str, out: &mut Vec<Grant>) {
    if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return;
    }
    let actions = values_text(statement, "Action")
        .or_else(|| values_text(statement, "NotAction").map(|not| format!("all but {not}")))
        .unwrap_or_else(|| "its actions".into());
    let pinned = Pinned::of(statement.get("Condition"), own);
    let mut open_to_everyone = None;
    let mut accounts: Vec<String> = Vec::new();
    if statement.get("NotPrincipal").is_some() {
        open_to_everyone = Some("everyone but the principals it names (NotPrincipal)".to_owned());
    }
    match statement.get("Principal") {
        Some(Value::String(text)) if text == "*" => open_to_everyone = Some("everyone (*)".into()),
        Some(principal @ Value::Object(_)) => {
            for aws in strings(principal.get("AWS")) {
                if aws == "*" {
                    open_to_everyone = Some("everyone (*)".into());
                } else if let Some(account) = account_of(&aws) {
                    if account != own {
                        accounts.push(account.to_owned());
                    }
                } else if aws.split(':').nth(4) == Some("*") {
                    open_to_everyone = Some(format!("any account ({aws})"));
                }
            }
            for federated in strings(principal.get("Federated")) {
                if federated == "*" {
                    open_to_everyone = Some("everyone (*)".into());
                } else if is_web_identity(&federated) && !pinned.subject {
                    open_to_everyone = Some(format!(
                        "anyone holding a token from {federated} (no condition on its subject)"
                    ));
                }
            }
        }
        _ => {}
    }
    if let Some(whom) = open_to_everyone {
        if pinned.restricted {
            accounts.extend(pinned.accounts.iter().cloned());
        } else {
            out.push(Grant::everyone(&whom, &actions));
        }
    }
    for account in accounts {
        out.push(Grant::account(&account, &actions));
    }
}

/// An OpenID Connect provider a trust policy names (its ARN, or a provider's host name):
/// every holder of one of its tokens may ask, unless a condition names the subject.
fn is_web_identity(federated: &str) -> bool {
    federated.contains(":oidc-provider/")
        || federated == "cognito-identity.amazonaws.com"
        || federated.contains("token.actions.githubusercontent.com")
}

/// What a statement's conditions pin the caller down to.
#[derive(Debug, Default)]
struct Pinned {
    /// Some condition names fixed callers (an account, an ARN, the organization, a network).
    restricted: bool,
    /// Other accounts the conditions name.
    accounts: Vec<String>,
    /// A web identity token's subject is named (`...:sub`).
    subject: bool,
}

impl Pinned {
    fn of(condition: Option<&Value>, own: &str) -> Pinned {
        let mut pinned = Pinned::default();
        let Some(Value::Object(operators)) = condition else {
            return pinned;
        };
        for (operator, keys) in operators {
            let lowered = operator.to_ascii_lowercase();
            let negated = lowered.contains("not") || lowered.starts_with("null");
            let Value::Object(keys) = keys else { continue };
            for (key, values) in keys {
                let key = key.to_ascii_lowercase();
                let values = strings(Some(values));
                if negated || values.is_empty() {
                    continue;
                }
                let wild = values
                    .iter()
                    .any(|value| value.contains('*') || value.contains('?'));
                if key.ends_with(":sub") && !values.iter().all(|value| value == "*") {
                    pinned.subject = true;
                }
                match key.as_str() {
                    "aws:sourceaccount"
                    | "aws:principalaccount"
                    | "kms:calleraccount"
                    | "aws:sourceowner"
                    | "s3:dataaccesspointaccount"
                        if !wild =>
                    {
                        pinned.restricted = true;
                        pinned
                            .accounts
                            .extend(values.iter().filter(|value| value.as_str() != own).cloned());
                    }
                    "aws:sourcearn" | "aws:principalarn" => {
                        let accounts: Vec<Option<&str>> =
                            values.iter().map(|value| account_of(value)).collect();
                        if accounts.iter().all(Option::is_some) {
                            pinned.restricted = true;
                            pinned.accounts.extend(
                                accounts
                                    .into_iter()
                                    .flatten()
                                    .filter(|account| *account != own)
                                    .map(str::to_owned),
                            );
                        }
                    }
                    "aws:principalorgid"
                    | "aws:principalorgpaths"
                    | "aws:sourceorgid"
                    | "aws:sourceorgpaths"
                    | "aws:sourcevpc"
                    | "aws:sourcevpce"
                    | "aws:userid"
                    | "aws:username"
                        if !wild =>
                    {
                        pinned.restricted = true;
                    }
                    "aws:sourceip"
                        if !values
                            .iter()
                            .any(|value| value == "0.0.0.0/0" || value == "::/0") =>
                    {
                        pinned.restricted = true;
                    }
                    _ => {}
                }
            }
        }
        pinned.accounts.sort();
        pinned.accounts.dedup();
        pinned
    }
}

/// A Lambda permission's principal (AddPermission, AddLayerVersionPermission): `*`, an account
/// or an ARN, narrowed by the source account, source ARN or organization it names.
fn principal_grants(parameters: &Value, own: &str, out: &mut Vec<Grant>) {
    let Some(principal) = parameters.get("principal").and_then(Value::as_str) else {
        return;
    };
    let actions = values_text(parameters, "action").unwrap_or_else(|| "its actions".into());
    let source_account = parameters.get("sourceAccount").and_then(Value::as_str);
    let source_arn_account = parameters
        .get("sourceArn")
        .and_then(Value::as_str)
        .and_then(account_of);
    let organization = ["principalOrgID", "organizationId"].iter().any(|key| {
        parameters
            .get(*key)
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty())
    });
    if principal == "*" {
        match (source_account.or(source_arn_account), organization) {
            (Some(account), _) if account != own => out.push(Grant::account(account, &actions)),
            (Some(_), _) | (None, true) => {}
            (None, false) => out.push(Grant::everyone("everyone (*)", &actions)),
        }
    } else if let Some(account) = account_of(principal)
        && account != own
    {
        out.push(Grant::account(account, &actions));
    }
}

/// A value's strings: a string, or the strings of a list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![],
    }
}

fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The account of a principal: a 12-digit ID, or the account in its ARN.
pub fn account_of(principal: &str) -> Option<&str> {
    if is_account(principal) {
        return Some(principal);
    }
    principal
        .split(':')
        .nth(4)
        .filter(|account| is_account(account))
}

/// The grants, in words: `s3:GetObject to everyone (*); s3:* to account 444455556666`.
pub fn describe(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|grant| format!("{} to {}", grant.actions, grant.whom))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(parameters: Value) -> Value {
        json!({"recipientAccountId": "111122223333", "requestParameters": parameters})
    }

    fn said(parameters: Value) -> String {
        describe(&grants(&call(parameters)))
    }

    #[test]
    fn policies_are_read_as_objects_or_strings() {
        let statement = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}]});
        assert_eq!(
            said(json!({"attributes": {"Policy": statement.to_string()}})),
            "sqs:SendMessage to everyone (*)"
        );
        assert_eq!(
            said(json!({"attributeName": "Policy", "attributeValue": statement.to_string()})),
            "sqs:SendMessage to everyone (*)"
        );
        // Glacier's vault access policy sits one level down.
        assert_eq!(
            said(json!({"policy": {"policy": statement.to_string()}})),
            "sqs:SendMessage to everyone (*)"
        );
        // Another attribute of a topic is no policy.
        assert_eq!(
            said(json!({"attributeName": "DisplayName", "attributeValue": statement.to_string()})),
            ""
        );
        assert_eq!(said(json!({"policyText": "not JSON"})), "");
    }

    #[test]
    fn conditions_that_pin_the_caller_down_are_no_grant_to_everyone() {
        let with = |condition: Value| {
            said(
                json!({"resourcePolicy": json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": "secretsmanager:GetSecretValue", "Condition": condition}}).to_string()}),
            )
        };
        assert_eq!(
            with(json!({"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})),
            ""
        );
        assert_eq!(
            with(json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
            ""
        );
        assert_eq!(
            with(json!({"StringEquals": {"aws:SourceAccount": "111122223333"}})),
            ""
        );
        assert_eq!(
            with(json!({"StringEquals": {"AWS:SourceAccount": ["111122223333", "444455556666"]}})),
            "secretsmanager:GetSecretValue to account 444455556666"
        );
        assert_eq!(
            with(json!({"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}})),
            "secretsmanager:GetSecretValue to everyone (*)"
        );
        assert_eq!(
            with(json!({"StringNotEquals": {"aws:PrincipalOrgID": "o-abc"}})),
            "secretsmanager:GetSecretValue to everyone (*)"
        );
        assert_eq!(
            with(json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})),
            "secretsmanager:GetSecretValue to everyone (*)"
        );
        assert_eq!(
            with(json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})),
            ""
        );
    }

    #[test]
    fn trust_policies_name_accounts_and_identity_providers() {
        let trust = |statement: Value| {
            said(json!({"policyDocument": json!({"Statement": [statement]}).to_string()}))
        };
        assert_eq!(
            trust(
                json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::193672423079:root"}, "Action": "sts:AssumeRole"})
            ),
            "sts:AssumeRole to account 193672423079"
        );
        assert_eq!(
            trust(
                json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
            ),
            ""
        );
        let github = "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com";
        assert_eq!(
            trust(
                json!({"Effect": "Allow", "Principal": {"Federated": github}, "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}}})
            ),
            format!(
                "sts:AssumeRoleWithWebIdentity to anyone holding a token from {github} (no condition on its subject)"
            )
        );
        assert_eq!(
            trust(
                json!({"Effect": "Allow", "Principal": {"Federated": github}, "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:org/app:*"}}})
            ),
            ""
        );
        assert_eq!(
            trust(
                json!({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"})
            ),
            "sts:AssumeRole to everyone but the principals it names (NotPrincipal)"
        );
    }

    #[test]
    fn permissions_and_grants_name_their_principal() {
        assert_eq!(
            said(json!({"functionName": "f", "action": "lambda:InvokeFunction", "principal": "*"})),
            "lambda:InvokeFunction to everyone (*)"
        );
        assert_eq!(
            said(
                json!({"functionName": "f", "action": "lambda:InvokeFunction", "principal": "*", "principalOrgID": "o-1"})
            ),
            ""
        );
        assert_eq!(
            said(
                json!({"action": "lambda:InvokeFunction", "principal": "s3.amazonaws.com", "sourceAccount": "111122223333"})
            ),
            ""
        );
        assert_eq!(
            said(json!({"action": "lambda:GetLayerVersion", "principal": "444455556666"})),
            "lambda:GetLayerVersion to account 444455556666"
        );
        assert_eq!(
            said(
                json!({"topicArn": "t", "label": "x", "aWSAccountId": ["444455556666", "111122223333"], "actionName": ["Publish"]})
            ),
            "Publish to account 444455556666"
        );
        assert_eq!(
            said(
                json!({"keyId": "k", "granteePrincipal": "arn:aws:iam::444455556666:role/r", "operations": ["Decrypt"]})
            ),
            "Decrypt to account 444455556666"
        );
        assert_eq!(
            said(
                json!({"keyId": "k", "granteePrincipal": "arn:aws:iam::111122223333:role/r", "operations": ["Decrypt"]})
            ),
            ""
        );
    }
}
