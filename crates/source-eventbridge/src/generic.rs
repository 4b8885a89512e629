//! Any other EventBridge event: a plain Message with its envelope and its detail as JSON, so an
//! event the rules send that no mapping knows still reaches people readably.

use activity_aware_message::{Field, Message, Metadata, field_value_from_raw};
use serde_json::Value;

use crate::{Event, digest_tags};

pub const SOURCE_NAME: &str = "EventBridge";

pub fn message(event: &Event<'_>) -> Message {
    message_noting(event, None)
}

/// The plain Message of an event whose detail could not be read as its detail-type says, with
/// why: the event still reaches people.
pub fn unread(event: &Event<'_>, reason: &str) -> Message {
    message_noting(
        event,
        Some(format!(
            "not read as a {:?} event: {reason}",
            event.detail_type
        )),
    )
}

fn message_noting(event: &Event<'_>, problem: Option<String>) -> Message {
    let mut fields = Vec::new();
    let mut push = |key: &str, value: Value| {
        fields.push(Field::new(key, value));
    };
    push("Detail Type", Value::String(event.detail_type.clone()));
    push("Source", Value::String(event.source.clone()));
    for (key, value) in [
        ("Account", &event.account),
        ("Region", &event.region),
        ("Time", &event.time),
        ("Event ID", &event.id),
    ] {
        if let Some(value) = value.as_ref().filter(|value| !value.is_empty()) {
            push(key, Value::String(value.clone()));
        }
    }
    if !event.resources.is_empty() {
        push(
            "Resources",
            Value::Array(event.resources.iter().cloned().map(Value::String).collect()),
        );
    }
    if let Some(problem) = problem {
        push("Problem", Value::String(problem));
    }
    push("Detail", field_value_from_raw(event.detail.get()));

    let tags = digest_tags(
        Some(format!("{} {}", event.source, event.detail_type)),
        &["Account", "Region"],
        event.time.clone().filter(|time| !time.is_empty()),
    );
    Message {
        subject: format!("{} ({})", event.detail_type, event.source),
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: None,
        },
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::DIGEST_GROUP_TAG;
    use serde_json::json;

    #[test]
    fn the_envelope_and_the_detail_are_shown() {
        let text = json!({
            "version": "0", "id": "ee376907-2647-4179-9203-343cfb3017a4",
            "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
            "account": "111122223333", "time": "2024-06-02T20:16:32Z", "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:111122223333:instance/i-abcd1111"],
            "detail": {"instance-id": "i-abcd1111", "state": "pending"}
        })
        .to_string();
        let event: Event<'_> = serde_json::from_str(&text).unwrap();
        let message = message(&event);
        assert_eq!(
            message.subject,
            "EC2 Instance State-change Notification (aws.ec2)"
        );
        let keys: Vec<&str> = message.fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Detail Type",
                "Source",
                "Account",
                "Region",
                "Time",
                "Event ID",
                "Resources",
                "Detail"
            ]
        );
        assert_eq!(
            message.fields[7].value,
            json!({"instance-id": "i-abcd1111", "state": "pending"})
        );
        assert_eq!(
            message.tag(DIGEST_GROUP_TAG),
            Some("aws.ec2 EC2 Instance State-change Notification")
        );
    }
}
