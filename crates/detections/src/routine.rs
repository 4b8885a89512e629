//! Routine changes: what deployments and people do every day (a security group made, a policy
//! attached to a role, a distribution updated), whose risky forms (opened to the internet,
//! granting everything, trusting another account) are detections of their own. A routine
//! detection is posted when it is news: the first time its principal makes that kind of change
//! within the stack's memory (`FamiliarityDays`, kept in DynamoDB by the sources). Made by
//! infrastructure as code, or made again, it is told for the record (info), which the topic
//! carries and Slack and Teams do not post by default.

use serde::Deserialize;
use serde_json::Value;

/// What makes a routine detection familiar, as the catalogue writes it: `"familiar": true`
/// (its principal made it before; infrastructure as code makes it routinely), or an object
/// naming what is remembered (`by`) and whether code's changes are routine (`code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Familiar {
    /// What is remembered: the change is news the first time these values are seen together.
    pub by: Vec<By>,
    /// Changes made by infrastructure as code are routine (told for the record) at once.
    pub code: bool,
}

/// One part of what a routine detection remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// Who made it, as [`real_principal`] says.
    Principal,
    /// The account it was made in.
    Account,
    /// The record's value at a dotted path (`awsRegion`, `sourceIPAddress`).
    Path(String),
}

impl<'de> Deserialize<'de> for Familiar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fail = |reason: &str| serde::de::Error::custom(format!("\"familiar\": {reason}"));
        let written = Value::deserialize(deserializer)?;
        let (by, code) = match &written {
            Value::Bool(true) => (vec![Value::from("principal")], true),
            Value::Object(object) => {
                if let Some(unknown) = object
                    .keys()
                    .find(|key| !["by", "code"].contains(&key.as_str()))
                {
                    return Err(fail(&format!("no such setting {unknown:?} (by, code)")));
                }
                let by = match object.get("by") {
                    Some(Value::Array(by)) if !by.is_empty() => by.clone(),
                    _ => return Err(fail("\"by\" lists what is remembered")),
                };
                let code = match object.get("code") {
                    None => true,
                    Some(Value::Bool(code)) => *code,
                    Some(_) => return Err(fail("\"code\" is true or false")),
                };
                (by, code)
            }
            _ => {
                return Err(fail(
                    "true, or {\"by\": [...], \"code\": true|false}; leave it out for no",
                ));
            }
        };
        let by = by
            .iter()
            .map(|part| match part.as_str() {
                Some("principal") => Ok(By::Principal),
                Some("account") => Ok(By::Account),
                Some(path) if !path.is_empty() => Ok(By::Path(path.to_owned())),
                _ => Err(fail(
                    "each of \"by\" is principal, account or a record path",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Familiar { by, code })
    }
}

/// The longest key remembered: DynamoDB keys are at most 2,048 bytes, and a principal's or a
/// value's text is the caller's to choose in part (a session name, an address).
pub const MAX_KEY_LEN: usize = 1_024;

impl Familiar {
    /// What the stack remembers of this change: the detection and the values of `by`. `None`
    /// when the record lacks one of them (nothing to remember it by: it is news each time).
    pub fn key(&self, detection: &str, record: &Value) -> Option<String> {
        let mut key = detection.to_owned();
        for part in &self.by {
            let value = match part {
                By::Principal => {
                    let principal = real_principal(record)?;
                    if principal.starts_with("arn:") {
                        principal
                    } else {
                        // A service or a principal without an ARN is the same text in every
                        // account: one account's routine is not another's.
                        let account = text(record, "recipientAccountId").unwrap_or("?");
                        format!("{principal} in {account}")
                    }
                }
                By::Account => text(record, "recipientAccountId")
                    .or_else(|| text(record, "userIdentity.accountId"))?
                    .to_owned(),
                By::Path(path) => text(record, path)?.to_owned(),
            };
            key.push('\u{1f}');
            key.push_str(&value);
        }
        if key.len() > MAX_KEY_LEN {
            let mut end = MAX_KEY_LEN;
            while !key.is_char_boundary(end) {
                end -= 1;
            }
            key.truncate(end);
        }
        Some(key)
    }
}

fn text<'r>(record: &'r Value, path: &str) -> Option<&'r str> {
    path.split('.')
        .try_fold(record, |node, key| node.get(key))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Who really made a call, as far as CloudTrail says, for remembering what they do: a user or
/// root by its ARN; a role's session by its role, and by the person behind it where AWS
/// carries one (the source identity a session was made with, or the user of an IAM Identity
/// Center session, which is its session name). Other session names change with every run of
/// a tool, so they are not part of it.
pub fn real_principal(record: &Value) -> Option<String> {
    let kind = text(record, "userIdentity.type");
    if kind == Some("AssumedRole") {
        let role = text(record, "userIdentity.sessionContext.sessionIssuer.arn")
            .map(str::to_owned)
            .or_else(|| {
                // arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION without the session.
                text(record, "userIdentity.arn")
                    .and_then(|arn| arn.rsplit_once('/'))
                    .map(|(role, _)| role.to_owned())
            })?;
        let person = text(record, "userIdentity.sessionContext.sourceIdentity").or_else(|| {
            role.contains("/AWSReservedSSO_")
                .then(|| text(record, "userIdentity.arn"))
                .flatten()
                .and_then(|arn| arn.rsplit_once('/'))
                .map(|(_, session)| session)
        });
        return Some(match person {
            Some(person) => format!("{role} {person}"),
            None => role,
        });
    }
    if let Some(arn) = text(record, "userIdentity.arn") {
        return Some(arn.to_owned());
    }
    let id = text(record, "userIdentity.invokedBy")
        .or_else(|| text(record, "userIdentity.principalId"))?;
    Some(format!("{} {id}", kind.unwrap_or("principal")))
}

/// The infrastructure-as-code tool that made a call, when the record says one did:
/// CloudFormation by AWS's own word (`invokedBy`, or the address it calls from), the others by
/// their user agent. A user agent is the caller's to write, so this only ever quiets routine
/// changes, never their risky forms.
pub fn made_by_code(record: &Value) -> Option<&'static str> {
    const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";
    if text(record, "userIdentity.invokedBy") == Some(CLOUDFORMATION)
        || text(record, "sourceIPAddress") == Some(CLOUDFORMATION)
    {
        return Some("CloudFormation");
    }
    let agent = text(record, "userAgent")?.to_ascii_lowercase();
    [
        ("terraform/", "Terraform"),
        ("opentofu/", "OpenTofu"),
        ("pulumi", "Pulumi"),
        ("crossplane", "Crossplane"),
        ("aws-cdk/", "the AWS CDK"),
    ]
    .into_iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, tool)| tool)
}

/// Why a routine change made by code is told for the record.
pub fn made_by_code_reason(tool: &str) -> String {
    if tool == "CloudFormation" {
        "made by CloudFormation: a routine change, told for the record".into()
    } else {
        format!("made by {tool} (its user agent says so): a routine change, told for the record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn familiar(written: Value) -> Result<Familiar, serde_json::Error> {
        serde_json::from_value(written)
    }

    #[test]
    fn familiar_is_written_as_true_or_as_what_is_remembered() {
        assert_eq!(
            familiar(json!(true)).unwrap(),
            Familiar {
                by: vec![By::Principal],
                code: true
            }
        );
        assert_eq!(
            familiar(json!({"by": ["account", "awsRegion"], "code": false})).unwrap(),
            Familiar {
                by: vec![By::Account, By::Path("awsRegion".into())],
                code: false
            }
        );
        assert!(familiar(json!(false)).is_err());
        assert!(familiar(json!({"by": []})).is_err());
        assert!(familiar(json!({"by": ["principal"], "what": 1})).is_err());
        assert!(familiar(json!({"by": [""]})).is_err());
    }

    #[test]
    fn a_role_is_remembered_by_its_role_and_the_person_behind_it_not_its_session_name() {
        let session = |name: &str, role: &str, source_identity: Option<&str>| {
            let mut record = json!({"userIdentity": {"type": "AssumedRole",
                "arn": format!("arn:aws:sts::111122223333:assumed-role/{role}/{name}"),
                "sessionContext": {"sessionIssuer": {"type": "Role",
                    "arn": format!("arn:aws:iam::111122223333:role/deploy/{role}")}}}});
            if let Some(identity) = source_identity {
                record["userIdentity"]["sessionContext"]["sourceIdentity"] = json!(identity);
            }
            record
        };
        // A tool's sessions are one principal, whatever each run names its session.
        assert_eq!(
            real_principal(&session("run-1", "Deployer", None)),
            real_principal(&session("run-2", "Deployer", None))
        );
        assert_eq!(
            real_principal(&session("run-1", "Deployer", None)).unwrap(),
            "arn:aws:iam::111122223333:role/deploy/Deployer"
        );
        // People behind one role are told apart.
        let sso = "AWSReservedSSO_Admin_0123456789abcdef";
        assert_ne!(
            real_principal(&session("alice@example.com", sso, None)),
            real_principal(&session("bob@example.com", sso, None))
        );
        assert_ne!(
            real_principal(&session("x", "Deployer", Some("alice"))),
            real_principal(&session("x", "Deployer", Some("bob")))
        );
        // Without a session issuer, the role is read from the session's ARN.
        let bare = json!({"userIdentity": {"type": "AssumedRole",
            "arn": "arn:aws:sts::111122223333:assumed-role/Deployer/run-9"}});
        assert_eq!(
            real_principal(&bare).unwrap(),
            "arn:aws:sts::111122223333:assumed-role/Deployer"
        );
        let user = json!({"userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"}});
        assert_eq!(
            real_principal(&user).unwrap(),
            "arn:aws:iam::111122223333:user/alice"
        );
        let service =
            json!({"userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}});
        assert_eq!(
            real_principal(&service).unwrap(),
            "AWSService ec2.amazonaws.com"
        );
        assert_eq!(real_principal(&json!({})), None);
    }

    #[test]
    fn the_key_names_the_detection_and_what_is_remembered() {
        let record = json!({"recipientAccountId": "111122223333", "awsRegion": "ap-east-1",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"}});
        let by_region = familiar(json!({"by": ["account", "awsRegion"]})).unwrap();
        assert_eq!(
            by_region.key("launch", &record).unwrap(),
            "launch\u{1f}111122223333\u{1f}ap-east-1"
        );
        let by_principal = familiar(json!(true)).unwrap();
        assert_eq!(
            by_principal.key("sg", &record).unwrap(),
            "sg\u{1f}arn:aws:iam::111122223333:user/alice"
        );
        // A service is remembered per account: its routine in one is not news in another.
        let service = |account: &str| {
            json!({"recipientAccountId": account,
                "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}})
        };
        assert_eq!(
            by_principal.key("sg", &service("111122223333")).unwrap(),
            "sg\u{1f}AWSService ec2.amazonaws.com in 111122223333"
        );
        assert_ne!(
            by_principal.key("sg", &service("111122223333")),
            by_principal.key("sg", &service("444455556666"))
        );
        // Nothing to remember it by: news every time.
        let by_address = familiar(json!({"by": ["sourceIPAddress"]})).unwrap();
        assert_eq!(by_address.key("x", &record), None);
        // A caller's long text cannot make a key DynamoDB refuses.
        let long = json!({"sourceIPAddress": "é".repeat(2_000)});
        let key = by_address.key("x", &long).unwrap();
        assert!(key.len() <= MAX_KEY_LEN && key.starts_with("x\u{1f}é"));
    }

    #[test]
    fn code_is_recognised_by_cloudformation_s_own_word_or_a_tool_s_user_agent() {
        let by = |identity: Value, agent: &str| {
            made_by_code(&json!({"userIdentity": identity, "userAgent": agent}))
        };
        assert_eq!(
            by(
                json!({"invokedBy": "cloudformation.amazonaws.com"}),
                "cloudformation.amazonaws.com"
            ),
            Some("CloudFormation")
        );
        assert_eq!(
            by(
                json!({}),
                "APN/1.0 HashiCorp/1.0 Terraform/1.6.2 (+https://www.terraform.io) terraform-provider-aws/5.31.0"
            ),
            Some("Terraform")
        );
        assert_eq!(
            by(json!({}), "aws-sdk-go-v2/1.21 OpenTofu/1.6.0"),
            Some("OpenTofu")
        );
        assert_eq!(
            by(json!({}), "aws-cdk/2.100.0 (darwin)"),
            Some("the AWS CDK")
        );
        for person in [
            "aws-cli/2.13.5 Python/3.11.4 Linux/4.14 exec-env/CloudShell",
            "console.amazonaws.com",
            "Mozilla/5.0 (Macintosh)",
            "",
        ] {
            assert_eq!(by(json!({}), person), None, "{person}");
        }
        assert!(made_by_code_reason("Terraform").contains("user agent"));
        assert!(!made_by_code_reason("CloudFormation").contains("user agent"));
    }
}
