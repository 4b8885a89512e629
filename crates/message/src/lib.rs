//! The Message every source publishes to the SNS topic and every destination reads from it.
//!
//! The JSON shape is a public contract shared with other publishers:
//! `{"subject": string, "fields": [{"key", "value"}], "metadata": {...}, "tags": [{"key", "value"}]}`,
//! keys in that order, object key order inside values preserved.

mod publish;
mod raw;
mod response;
mod severity;
mod shrink;
pub mod time;
mod topic;

pub use publish::{
    Capped, DENIED_ATTRIBUTE, DETECTION_ATTRIBUTE, FailedMessage, MessagePublisher, NAMED_FAILURES,
    OutgoingMessage, PublishError, PublishOptions, SEVERITY_ATTRIBUTE,
};
pub use raw::{MAX_FIELD_VALUE_DEPTH, field_value_from_raw, reads_back_as_field_value};
pub use response::{RESPONDER_SOURCE_NAME, RESPONSE_TAG, Response};
pub use severity::{Severity, SeverityError};
pub use shrink::{
    MESSAGE_ATTRIBUTES_ROOM_BYTES, MESSAGE_BODY_LIMIT_BYTES, SNS_MESSAGE_LIMIT_BYTES,
    TRUNCATION_MARKER,
};
pub use topic::{TOPIC_VARIABLE, Topic, TopicError};

use aws_lambda_events::event::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Tag a source can set to ask the Slack destination for a specific channel.
pub const SLACK_PREFERRED_CHANNEL_TAG: &str = "slack-preferred-channel";

/// Tag naming what a Message belongs with: a destination may combine Messages with the same
/// value (from the same source, for the same channel) into one digest. CloudTrail sources set it
/// to the acting principal. Messages without it are only combined with identical ones.
pub const DIGEST_GROUP_TAG: &str = "digest-group";

/// Tag, repeatable, naming a field whose distinct values a digest lists with their counts.
/// Without it, a digest lists every field whose value varies.
pub const DIGEST_FIELD_TAG: &str = "digest-field";

/// Tag holding how much the Message matters: `info`, `low`, `medium`, `high` or `critical`.
/// Sources set it; without it, a destination uses its default. A digest never mixes
/// severities.
pub const SEVERITY_TAG: &str = "severity";

/// Tag of a heartbeat Message (its value: the stack's name): the Slack function counts each one
/// it posts in the `HeartbeatsDelivered` metric, which the missing-heartbeat alarm watches.
pub const HEARTBEAT_TAG: &str = "heartbeat";

/// Tag of a heartbeat's leg: which source it came through (`eventbridge`, `cloudwatch-logs`).
/// With [`HEARTBEAT_MAC_TAG`], the Slack function counts it (per source) in the
/// `HeartbeatsDelivered` metric the missing-heartbeat alarms watch, and posts nothing.
pub const HEARTBEAT_PATH_TAG: &str = "heartbeat-path";

/// Tag holding a heartbeat leg's HMAC (hex, KMS `GenerateMac` with the stack's heartbeat key)
/// of [`heartbeat_mac_text`]: only the sources can make one, so a publisher on the topic cannot
/// forge a heartbeat.
pub const HEARTBEAT_MAC_TAG: &str = "heartbeat-mac";

/// What a heartbeat leg's MAC covers: the stack, the source it came through, and the canary
/// call CloudTrail recorded (its event ID and time), so that a leg is good for one stack, one
/// path and one hour's call.
pub fn heartbeat_mac_text(stack: &str, path: &str, event_id: &str, event_time: &str) -> String {
    format!("activity-aware-ids heartbeat|{stack}|{path}|{event_id}|{event_time}")
}

/// Tag naming the detection of the catalogue a Message is (`cloudtrail-stopped`...).
pub const DETECTION_TAG: &str = "detection";

/// Tag holding the ARN of the principal that acted (CloudTrail's `userIdentity.arn`), for
/// responders. CloudTrail sources set it when the record has an ARN.
pub const PRINCIPAL_TAG: &str = "principal";

/// Tag holding when the acting session was issued (RFC 3339; CloudTrail's
/// `userIdentity.sessionContext.attributes.creationDate`), for responders that revoke sessions.
pub const SESSION_ISSUED_TAG: &str = "session-issued";

/// Tag holding the access key the principal called with (CloudTrail's
/// `userIdentity.accessKeyId`): containment asks CloudTrail for that key's calls.
pub const ACCESS_KEY_TAG: &str = "access-key";

/// Tag holding when the event happened (RFC 3339), for a digest's time span. Without it, the
/// time the topic received the Message is used.
pub const EVENT_TIME_TAG: &str = "event-time";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// One line saying what happened.
    pub subject: String,
    /// Details, in the order they should be shown.
    pub fields: Vec<Field>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub key: String,
    /// Any JSON value; destinations decide how to render it.
    pub value: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_icon_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Field {
    pub fn new(key: impl Into<String>, value: Value) -> Field {
        Field {
            key: key.into(),
            value,
        }
    }

    /// A field whose value is text.
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Field {
        Field::new(key, Value::String(value.into()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("Message is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("Message must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("Missing Required Parameter '{0}'")]
    MissingParameter(&'static str),
    #[error("Invalid Parameter '{name}': {reason}")]
    InvalidParameter { name: &'static str, reason: String },
}

impl Message {
    pub fn new(subject: impl Into<String>, fields: Vec<Field>) -> Self {
        Message {
            subject: subject.into(),
            fields,
            metadata: Metadata::default(),
            tags: Vec::new(),
        }
    }

    /// Parses a Message the way every destination must: `subject` and `fields` required,
    /// unknown keys ignored, tags without both a key and a value dropped.
    pub fn from_json(text: &str) -> Result<Self, MessageError> {
        let value: Value = serde_json::from_str(text).map_err(MessageError::NotJson)?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self, MessageError> {
        let Value::Object(mut object) = value else {
            return Err(MessageError::NotAnObject(json_type_name(&value)));
        };
        let subject = match take_required(&mut object, "subject")? {
            Value::String(subject) => subject,
            other => {
                return Err(MessageError::InvalidParameter {
                    name: "subject",
                    reason: format!("expected a string, got {}", json_type_name(&other)),
                });
            }
        };
        let fields = match take_required(&mut object, "fields")? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(index, item)| parse_field(index, item))
                .collect::<Result<Vec<_>, _>>()?,
            other => {
                return Err(MessageError::InvalidParameter {
                    name: "fields",
                    reason: format!("expected an array, got {}", json_type_name(&other)),
                });
            }
        };
        let metadata = match object.remove("metadata") {
            Some(Value::Object(metadata)) => Metadata {
                source_name: string_entry(&metadata, "sourceName"),
                source_icon_url: string_entry(&metadata, "sourceIconUrl"),
            },
            _ => Metadata::default(),
        };
        let tags = match object.remove("tags") {
            Some(Value::Array(tags)) => tags.iter().filter_map(parse_tag).collect(),
            _ => Vec::new(),
        };
        Ok(Message {
            subject,
            fields,
            metadata,
            tags,
        })
    }

    /// The contract's JSON text, keys in contract order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Message always serialises")
    }

    /// The value of the first tag with this key.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tag_values(key).next()
    }

    /// The values of every tag with this key, in order.
    pub fn tag_values<'m>(&'m self, key: &str) -> impl Iterator<Item = &'m str> {
        self.tags
            .iter()
            .filter(move |tag| tag.key == key)
            .map(|tag| tag.value.as_str())
    }
}

impl Message {
    /// The Message an SQS record's body holds: the Message itself (raw delivery from the
    /// topic), or SNS's notification around it (a subscription without raw delivery).
    pub fn from_delivery_body(body: &str) -> Result<Message, MessageError> {
        let value: Value = serde_json::from_str(body).map_err(MessageError::NotJson)?;
        let is_notification = value.get("Type").and_then(Value::as_str) == Some("Notification")
            && value.get("TopicArn").is_some();
        match value.get("Message").and_then(Value::as_str) {
            Some(inner) if is_notification => Message::from_json(inner),
            _ => Message::from_value(value),
        }
    }
}

/// The Message of every record of an SNS event, in order; one bad record does not hide the others.
pub fn messages_from_sns_event(event: &SnsEvent) -> Vec<Result<Message, MessageError>> {
    event
        .records
        .iter()
        .map(|record| Message::from_json(&record.sns.message))
        .collect()
}

fn take_required(
    object: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Value, MessageError> {
    match object.remove(name) {
        None | Some(Value::Null) => Err(MessageError::MissingParameter(name)),
        Some(value) => Ok(value),
    }
}

fn parse_field(index: usize, item: Value) -> Result<Field, MessageError> {
    let invalid = |reason: String| MessageError::InvalidParameter {
        name: "fields",
        reason,
    };
    let Value::Object(mut entry) = item else {
        return Err(invalid(format!(
            "entry {index} must be an object with \"key\" and \"value\", got {}",
            json_type_name(&item)
        )));
    };
    let key = match entry.remove("key") {
        Some(Value::String(key)) => key,
        _ => return Err(invalid(format!("entry {index} has no string \"key\""))),
    };
    let value = entry.remove("value").unwrap_or(Value::Null);
    Ok(Field { key, value })
}

fn parse_tag(tag: &Value) -> Option<Tag> {
    let key = tag.get("key")?.as_str().filter(|key| !key.is_empty())?;
    let value = tag
        .get("value")?
        .as_str()
        .filter(|value| !value.is_empty())?;
    Some(Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn string_entry(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Message {
        Message {
            subject: "Error Message: denied".into(),
            fields: vec![
                Field {
                    key: "Error Message".into(),
                    value: json!("denied"),
                },
                Field {
                    key: "Request Parameters".into(),
                    value: json!({"zeta": 1, "alpha": {"y": true, "b": null}}),
                },
            ],
            metadata: Metadata {
                source_name: Some("Cloudtrail".into()),
                source_icon_url: Some("https://example.com/icon.png".into()),
            },
            tags: vec![Tag {
                key: "slack-preferred-channel".into(),
                value: "#alerts".into(),
            }],
        }
    }

    #[test]
    fn serialises_keys_in_contract_order_and_keeps_value_key_order() {
        let text = sample().to_json();
        assert_eq!(
            text,
            r##"{"subject":"Error Message: denied","fields":[{"key":"Error Message","value":"denied"},{"key":"Request Parameters","value":{"zeta":1,"alpha":{"y":true,"b":null}}}],"metadata":{"sourceName":"Cloudtrail","sourceIconUrl":"https://example.com/icon.png"},"tags":[{"key":"slack-preferred-channel","value":"#alerts"}]}"##
        );
    }

    #[test]
    fn round_trips_through_json() {
        let message = sample();
        assert_eq!(Message::from_json(&message.to_json()).unwrap(), message);
    }

    #[test]
    fn empty_metadata_and_tags_are_always_present() {
        let text = Message::new("s", vec![]).to_json();
        assert_eq!(
            text,
            r#"{"subject":"s","fields":[],"metadata":{},"tags":[]}"#
        );
    }

    #[test]
    fn missing_subject_is_the_originals_error() {
        let error = Message::from_json(r#"{"fields": []}"#).unwrap_err();
        assert_eq!(error.to_string(), "Missing Required Parameter 'subject'");
    }

    #[test]
    fn missing_fields_is_the_originals_error() {
        let error = Message::from_json(r#"{"subject": "x"}"#).unwrap_err();
        assert_eq!(error.to_string(), "Missing Required Parameter 'fields'");
    }

    #[test]
    fn null_counts_as_missing() {
        let error = Message::from_json(r#"{"subject": null, "fields": []}"#).unwrap_err();
        assert_eq!(error.to_string(), "Missing Required Parameter 'subject'");
    }

    #[test]
    fn wrong_types_are_named() {
        let error = Message::from_json(r#"{"subject": 3, "fields": []}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid Parameter 'subject': expected a string, got a number"
        );
        let error =
            Message::from_json(r#"{"subject": "s", "fields": [{"value": 1}]}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid Parameter 'fields': entry 0 has no string \"key\""
        );
        let error = Message::from_json("[1]").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Message must be a JSON object, got an array"
        );
        assert!(matches!(
            Message::from_json("{not json").unwrap_err(),
            MessageError::NotJson(_)
        ));
    }

    #[test]
    fn unknown_keys_are_tolerated() {
        let message = Message::from_json(
            r#"{"extra": 1, "subject": "s", "fields": [], "metadata": {"other": 2}}"#,
        )
        .unwrap();
        assert_eq!(message, Message::new("s", vec![]));
    }

    #[test]
    fn tags_missing_key_or_value_are_dropped() {
        let message = Message::from_json(
            r#"{"subject": "s", "fields": [], "tags": [
                {"key": "a", "value": "1"}, {"key": "b"}, {"value": "2"},
                {"key": "", "value": "3"}, {"key": "c", "value": ""}, "junk", {"key": "d", "value": "4"}
            ]}"#,
        )
        .unwrap();
        let keys: Vec<_> = message.tags.iter().map(|tag| tag.key.as_str()).collect();
        assert_eq!(keys, ["a", "d"]);
        assert_eq!(message.tag("d"), Some("4"));
        assert_eq!(message.tag("b"), None);
    }

    #[test]
    fn repeated_tags_keep_every_value_in_order() {
        let message = Message::from_json(
            r#"{"subject": "s", "fields": [], "tags": [
                {"key": "digest-field", "value": "Event"}, {"key": "other", "value": "x"},
                {"key": "digest-field", "value": "Region"}
            ]}"#,
        )
        .unwrap();
        let values: Vec<_> = message.tag_values(DIGEST_FIELD_TAG).collect();
        assert_eq!(values, ["Event", "Region"]);
        assert_eq!(message.tag(DIGEST_FIELD_TAG), Some("Event"));
    }

    #[test]
    fn unicode_and_large_numbers_pass_through_unchanged() {
        let text = r#"{"subject":"键 – ü 🚀","fields":[{"key":"n","value":123456789012345678901234567890},{"key":"f","value":8.82145e-05},{"key":"u","value":18446744073709551615}],"metadata":{},"tags":[]}"#;
        let message = Message::from_json(text).unwrap();
        assert_eq!(message.to_json(), text);
    }

    #[test]
    fn decodes_every_record_of_an_sns_event() {
        let mut event: SnsEvent = serde_json::from_value(json!({"Records": [
            sns_record(&sample().to_json()),
            sns_record("{\"fields\": []}"),
            sns_record(&Message::new("second", vec![]).to_json()),
        ]}))
        .unwrap();
        let decoded = messages_from_sns_event(&event);
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].as_ref().unwrap(), &sample());
        assert!(decoded[1].is_err());
        assert_eq!(decoded[2].as_ref().unwrap().subject, "second");
        event.records.clear();
        assert!(messages_from_sns_event(&event).is_empty());
    }

    fn sns_record(message: &str) -> Value {
        json!({
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:topic:sub",
            "Sns": {
                "Type": "Notification",
                "MessageId": "id",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:topic",
                "Subject": null,
                "Message": message,
                "Timestamp": "2024-01-01T00:00:00.000Z",
                "SignatureVersion": "1",
                "Signature": "sig",
                "SigningCertUrl": "https://example.com/cert.pem",
                "UnsubscribeUrl": "https://example.com/unsubscribe",
                "MessageAttributes": {}
            }
        })
    }
}
