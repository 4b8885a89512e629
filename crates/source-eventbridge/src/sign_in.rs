//! `AWS Console Sign In via CloudTrail`: a CloudTrail sign-in record (`ConsoleLogin`, and the
//! sign-in service's other events: a password changed or recovered, an MFA check). The subject
//! says plainly what matters: a root sign-in, a sign-in without MFA, a failed sign-in, a root
//! password changed.

use crate::{digest_tags, text};
use activity_aware_cloudtrail::{
    CONSOLE_LINK_LABEL, SOURCE_ICON_URL, SOURCE_NAME, cloudtrail_event_link,
};
use activity_aware_message::{Field, Message, Metadata};
use serde_json::Value;
use serde_json::value::RawValue;

/// What a digest of one principal's sign-ins counts.
const DIGEST_FIELDS: [&str; 3] = ["Result", "Source IP", "MFA Used"];

/// How a sign-in went, as the record tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn<'r> {
    /// The sign-in service's event: `ConsoleLogin`, `PasswordUpdated`, `CheckMfa`...
    pub event: &'r str,
    pub succeeded: bool,
    /// `None` when the record does not say (a failed sign-in often does not).
    pub mfa_used: Option<bool>,
    pub root: bool,
}

impl<'r> SignIn<'r> {
    pub fn of(record: &'r Value) -> SignIn<'r> {
        let event = record
            .get("eventName")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .unwrap_or("ConsoleLogin");
        // Each event writes its result under its own name.
        let result = text(record, &["responseElements", event])
            .or_else(|| text(record, &["responseElements", "ConsoleLogin"]));
        SignIn {
            event,
            succeeded: result.as_deref() == Some("Success"),
            mfa_used: match text(record, &["additionalEventData", "MFAUsed"]).as_deref() {
                Some("Yes") => Some(true),
                Some("No") => Some(false),
                _ => None,
            },
            root: text(record, &["userIdentity", "type"]).as_deref() == Some("Root"),
        }
    }

    /// The subject: what a person must know first.
    pub fn subject(&self, who: &str) -> String {
        let whom = if self.root { "the root user" } else { who };
        let failed = if self.succeeded { "" } else { "Failed " };
        match self.event {
            "ConsoleLogin" => {}
            "PasswordUpdated" if self.root && self.succeeded => {
                return "Root user's password changed".to_owned();
            }
            "PasswordUpdated" if self.succeeded => {
                return format!("Console password changed by {who}");
            }
            "PasswordUpdated" => return format!("Failed password change by {whom}"),
            "PasswordRecoveryRequested" => {
                return format!("{failed}Password recovery requested for {whom}");
            }
            "PasswordRecoveryCompleted" => {
                return format!("{failed}Password recovered for {whom}");
            }
            "CheckMfa" => return format!("{failed}MFA check by {whom}"),
            other => return format!("{failed}{other} by {whom}"),
        }
        match (self.root, self.succeeded, self.mfa_used) {
            (true, false, _) => "Failed root sign-in to the AWS console".to_owned(),
            (true, true, Some(false)) => {
                "Root user signed in to the AWS console without MFA".to_owned()
            }
            (true, true, _) => "Root user signed in to the AWS console".to_owned(),
            (false, false, _) => format!("Failed console sign-in by {who}"),
            (false, true, Some(false)) => format!("Console sign-in without MFA by {who}"),
            (false, true, _) => format!("Console sign-in by {who}"),
        }
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "Yes" } else { "No" }
}

pub fn message(detail: &RawValue) -> Result<Message, String> {
    let record: Value = serde_json::from_str(detail.get()).map_err(|error| error.to_string())?;
    if !record.is_object() {
        return Err("the detail is not a CloudTrail record (a JSON object)".into());
    }
    let sign_in = SignIn::of(&record);
    let arn = text(&record, &["userIdentity", "arn"]);
    let who = text(&record, &["userIdentity", "userName"])
        .or_else(|| {
            arn.as_deref()
                .and_then(|arn| arn.rsplit(['/', ':']).next())
                .map(str::to_owned)
        })
        .or_else(|| text(&record, &["userIdentity", "principalId"]))
        .unwrap_or_else(|| "an unknown user".to_owned());
    let mut fields = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push(Field::text(key, value));
        }
    };
    push(
        "Result",
        Some(
            if sign_in.succeeded {
                "Success"
            } else {
                "Failure"
            }
            .to_owned(),
        ),
    );
    push(
        "MFA Used",
        sign_in.mfa_used.map(|used| yes_no(used).to_owned()),
    );
    push("Root", Some(yes_no(sign_in.root).to_owned()));
    push("User", Some(who.clone()));
    push("User ARN", arn.clone());
    push(
        "Account",
        text(&record, &["recipientAccountId"])
            .or_else(|| text(&record, &["userIdentity", "accountId"])),
    );
    push("Source IP", text(&record, &["sourceIPAddress"]));
    push("User Agent", text(&record, &["userAgent"]));
    push("Error Message", text(&record, &["errorMessage"]));
    push("Region", text(&record, &["awsRegion"]));
    push("Event Time", text(&record, &["eventTime"]));
    push("Event ID", text(&record, &["eventID"]));
    let link = text(&record, &["awsRegion"])
        .zip(text(&record, &["eventID"]))
        .and_then(|(region, id)| cloudtrail_event_link(&region, &id));
    push(CONSOLE_LINK_LABEL, link);

    // Sign-ins group with the principal's other sign-ins (repeated failures are one digest), never
    // with its API calls: a sign-in must not hide as one counted line of a denial digest.
    let group = arn
        .or_else(|| text(&record, &["userIdentity", "principalId"]))
        .map(|principal| format!("console sign-in by {principal}"));
    let tags = digest_tags(group, &DIGEST_FIELDS, text(&record, &["eventTime"]));
    Ok(Message {
        subject: sign_in.subject(&who),
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: Some(SOURCE_ICON_URL.into()),
        },
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{DIGEST_GROUP_TAG, EVENT_TIME_TAG};
    use serde_json::json;

    fn sign_in(kind: &str, result: &str, mfa: Option<&str>) -> Value {
        let mut record = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": kind, "principalId": "AIDAEXAMPLE",
                "arn": if kind == "Root" { "arn:aws:iam::111122223333:root" } else { "arn:aws:iam::111122223333:user/alice" },
                "accountId": "111122223333"},
            "eventTime": "2024-06-02T20:16:32Z", "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
            "userAgent": "Mozilla/5.0", "responseElements": {"ConsoleLogin": result},
            "eventID": "3e0c8d0a-1111-2222-3333-444455556666", "recipientAccountId": "111122223333"
        });
        if kind == "IAMUser" {
            record["userIdentity"]["userName"] = json!("alice");
        }
        if let Some(mfa) = mfa {
            record["additionalEventData"] =
                json!({"MFAUsed": mfa, "LoginTo": "https://console.aws.amazon.com/"});
        }
        if result == "Failure" {
            record["errorMessage"] = json!("Failed authentication");
        }
        record
    }

    fn message_of(record: Value) -> Message {
        let raw = RawValue::from_string(record.to_string()).unwrap();
        message(&raw).unwrap()
    }

    fn field<'m>(message: &'m Message, key: &str) -> Option<&'m Value> {
        message
            .fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| &f.value)
    }

    #[test]
    fn the_subject_says_what_matters() {
        let cases = [
            (
                sign_in("Root", "Success", Some("Yes")),
                "Root user signed in to the AWS console",
            ),
            (
                sign_in("Root", "Success", Some("No")),
                "Root user signed in to the AWS console without MFA",
            ),
            (
                sign_in("Root", "Failure", None),
                "Failed root sign-in to the AWS console",
            ),
            (
                sign_in("IAMUser", "Failure", Some("No")),
                "Failed console sign-in by alice",
            ),
            (
                sign_in("IAMUser", "Success", Some("No")),
                "Console sign-in without MFA by alice",
            ),
            (
                sign_in("IAMUser", "Success", Some("Yes")),
                "Console sign-in by alice",
            ),
        ];
        for (record, subject) in cases {
            assert_eq!(message_of(record).subject, subject);
        }
    }

    #[test]
    fn the_subject_names_sign_in_events_other_than_a_sign_in() {
        let event = |kind: &str, name: &str, result: &str| {
            let mut record = sign_in(kind, "Success", None);
            record["eventName"] = json!(name);
            record["responseElements"] = json!({ name: result });
            record
        };
        let cases = [
            (
                event("Root", "PasswordUpdated", "Success"),
                "Root user's password changed",
            ),
            (
                event("IAMUser", "PasswordUpdated", "Success"),
                "Console password changed by alice",
            ),
            (
                event("Root", "PasswordUpdated", "Failure"),
                "Failed password change by the root user",
            ),
            (
                event("IAMUser", "CheckMfa", "Failure"),
                "Failed MFA check by alice",
            ),
            (
                event("Root", "PasswordRecoveryRequested", "Success"),
                "Password recovery requested for the root user",
            ),
            (
                event("IAMUser", "SwitchRole", "Success"),
                "SwitchRole by alice",
            ),
        ];
        for (record, subject) in cases {
            let message = message_of(record);
            assert_eq!(message.subject, subject);
            // A root password change is no failed sign-in.
            assert!(!message.subject.contains("sign-in"), "{}", message.subject);
        }
    }

    #[test]
    fn the_fields_say_who_from_where_and_how() {
        let message = message_of(sign_in("IAMUser", "Failure", Some("No")));
        assert_eq!(field(&message, "Result"), Some(&json!("Failure")));
        assert_eq!(field(&message, "MFA Used"), Some(&json!("No")));
        assert_eq!(field(&message, "Root"), Some(&json!("No")));
        assert_eq!(
            field(&message, "User ARN"),
            Some(&json!("arn:aws:iam::111122223333:user/alice"))
        );
        assert_eq!(field(&message, "Source IP"), Some(&json!("203.0.113.7")));
        assert_eq!(
            field(&message, "Error Message"),
            Some(&json!("Failed authentication"))
        );
        assert!(
            field(&message, CONSOLE_LINK_LABEL)
                .unwrap()
                .as_str()
                .unwrap()
                .starts_with("https://us-east-1.console.aws.amazon.com/cloudtrailv2/")
        );
        assert_eq!(
            message.tag(DIGEST_GROUP_TAG),
            Some("console sign-in by arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(message.tag(EVENT_TIME_TAG), Some("2024-06-02T20:16:32Z"));
        // An unknown MFA state is not shown as "No".
        let message = message_of(sign_in("IAMUser", "Failure", None));
        assert_eq!(field(&message, "MFA Used"), None);
    }

    #[test]
    fn a_detail_that_is_not_a_record_is_refused() {
        let raw = RawValue::from_string("\"text\"".into()).unwrap();
        assert!(message(&raw).is_err());
    }
}
