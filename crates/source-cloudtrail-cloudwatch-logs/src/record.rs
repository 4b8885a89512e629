//! One CloudTrail record to one Message, as the original did, plus context people can act on.

use activity_aware_message::{Field, Message, Metadata};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

pub const SOURCE_NAME: &str = "Cloudtrail";
pub const SOURCE_ICON_URL: &str =
    "https://s3-us-west-2.amazonaws.com/giftbit-developer-static-resources/AWS-CloudTrail.png";

/// The original's fields, in its order: label and dotted path into the record.
const ORIGINAL_FIELDS: [(&str, &str); 9] = [
    ("Error Message", "errorMessage"),
    ("Event", "eventName"),
    ("Source", "eventSource"),
    ("Recipient Account ID", "recipientAccountId"),
    ("User Account ID", "userIdentity.accountId"),
    ("Username", "userIdentity.userName"),
    ("User ARN", "userIdentity.arn"),
    ("Source IP", "sourceIPAddress"),
    ("Request Parameters", "requestParameters"),
];

/// Context appended after the original fields: who (the role behind an assumed-role session),
/// what failed, where and when.
const CONTEXT_FIELDS: [(&str, &str); 5] = [
    ("Role", "userIdentity.sessionContext.sessionIssuer.userName"),
    ("Error Code", "errorCode"),
    ("Region", "awsRegion"),
    ("Event Time", "eventTime"),
    ("Event ID", "eventID"),
];

/// Label of the link to the event in the CloudTrail console.
pub const CONSOLE_LINK_LABEL: &str = "CloudTrail Console";

/// The parts of a record that any field reads: a leaf is kept whole, an inner node only for the
/// keys below it. Everything else (often most of a record, such as responseElements) is skipped
/// without being built.
struct Wanted {
    key: &'static str,
    below: &'static [Wanted],
}

const fn leaf(key: &'static str) -> Wanted {
    Wanted { key, below: &[] }
}

const READ: &[Wanted] = &[
    leaf("errorMessage"),
    leaf("eventName"),
    leaf("eventSource"),
    leaf("recipientAccountId"),
    Wanted {
        key: "userIdentity",
        below: &[
            leaf("type"),
            leaf("accountId"),
            leaf("userName"),
            leaf("arn"),
            Wanted {
                key: "sessionContext",
                below: &[Wanted {
                    key: "sessionIssuer",
                    below: &[leaf("userName")],
                }],
            },
        ],
    },
    leaf("sourceIPAddress"),
    leaf("requestParameters"),
    leaf("errorCode"),
    leaf("awsRegion"),
    leaf("eventTime"),
    leaf("eventID"),
];

/// The parts of a CloudTrail record the Message is made from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CloudTrailRecord(Map<String, Value>);

impl CloudTrailRecord {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value at a dotted path, like the original's `getValueFromObjectPath`.
    fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut value = self.0.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    fn truthy(&self, path: &str) -> Option<&Value> {
        self.get(path).filter(|value| is_truthy(value))
    }
}

impl<'de> Deserialize<'de> for CloudTrailRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;

        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = CloudTrailRecord;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a CloudTrail record (a JSON object)")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                read_wanted(map, READ).map(CloudTrailRecord)
            }
        }

        deserializer.deserialize_map(RecordVisitor)
    }
}

/// Reads the wanted keys of an object (the last of duplicates wins, as in JavaScript).
fn read_wanted<'de, A: MapAccess<'de>>(
    mut map: A,
    wanted: &'static [Wanted],
) -> Result<Map<String, Value>, A::Error> {
    let mut kept = Map::new();
    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
        match wanted.iter().find(|w| w.key == key.as_ref()) {
            Some(Wanted { key, below: [] }) => {
                kept.insert((*key).to_owned(), map.next_value::<Value>()?);
            }
            Some(Wanted { key, below }) => {
                kept.insert((*key).to_owned(), map.next_value_seed(Inner(below))?);
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(kept)
}

/// An inner node: an object is read for its wanted keys; anything else has nothing below it
/// that a path could reach, so it reads as null.
struct Inner(&'static [Wanted]);

impl<'de> DeserializeSeed<'de> for Inner {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inner {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        read_wanted(map, self.0).map(Value::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// JavaScript truthiness, which decided what the original showed: no null, "", false or 0.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_none_or(|n| n != 0.0 && !n.is_nan()),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The Message for one record, or `None` when the record has none of the original fields
/// (there is no subject to give it).
pub fn message_from_record(record: &CloudTrailRecord) -> Option<Message> {
    let mut fields: Vec<Field> = ORIGINAL_FIELDS
        .iter()
        .filter_map(|&(label, path)| field(record, label, path))
        .collect();
    let first = fields.first()?;
    let subject = format!("{}: {}", first.key, plain_text(&first.value));

    let is_assumed_role =
        record.get("userIdentity.type").and_then(Value::as_str) == Some("AssumedRole");
    fields.extend(
        CONTEXT_FIELDS
            .iter()
            .filter(|&&(label, _)| label != "Role" || is_assumed_role)
            .filter_map(|&(label, path)| field(record, label, path)),
    );
    if let Some(link) = console_link(record) {
        fields.push(Field {
            key: CONSOLE_LINK_LABEL.into(),
            value: Value::String(link),
        });
    }

    Some(Message {
        subject,
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: Some(SOURCE_ICON_URL.into()),
        },
        tags: Vec::new(),
    })
}

fn field(record: &CloudTrailRecord, label: &str, path: &str) -> Option<Field> {
    record.truthy(path).map(|value| Field {
        key: label.into(),
        value: value.clone(),
    })
}

/// Strings as they are; anything else as compact JSON.
fn plain_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        other => Cow::Owned(other.to_string()),
    }
}

/// A link to the event in the CloudTrail console's event history, when the record names a
/// plausible region and event ID (both end up in a URL, so anything else is left out).
fn console_link(record: &CloudTrailRecord) -> Option<String> {
    let region = record.get("awsRegion")?.as_str()?;
    let event_id = record.get("eventID")?.as_str()?;
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let id_ok = !event_id.is_empty()
        && event_id.len() <= 64
        && event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (region_ok && id_ok).then(|| {
        format!("https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> CloudTrailRecord {
        CloudTrailRecord::from_json(&value.to_string()).unwrap()
    }

    fn keys(message: &Message) -> Vec<&str> {
        message
            .fields
            .iter()
            .map(|field| field.key.as_str())
            .collect()
    }

    fn iam_user_denial() -> Value {
        json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:user/alice",
                "accountId": "111122223333",
                "accessKeyId": "AKIAEXAMPLE",
                "userName": "alice"
            },
            "eventTime": "2024-03-01T12:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "GetPolicy",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2",
            "errorCode": "AccessDenied",
            "errorMessage": "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: iam:GetPolicy",
            "requestParameters": {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess", "a": {"z": 1, "b": 2}},
            "responseElements": null,
            "requestID": "r-1",
            "eventID": "8b2f2a5c-1111-2222-3333-444455556666",
            "recipientAccountId": "111122223333"
        })
    }

    #[test]
    fn fields_follow_the_originals_order_then_context() {
        let message = message_from_record(&record(iam_user_denial())).unwrap();
        assert_eq!(
            keys(&message),
            [
                "Error Message",
                "Event",
                "Source",
                "Recipient Account ID",
                "User Account ID",
                "Username",
                "User ARN",
                "Source IP",
                "Request Parameters",
                "Error Code",
                "Region",
                "Event Time",
                "Event ID",
                "CloudTrail Console",
            ]
        );
        assert_eq!(
            message.subject,
            "Error Message: User: arn:aws:iam::111122223333:user/alice is not authorized to perform: iam:GetPolicy"
        );
        assert_eq!(message.fields[5].value, json!("alice"));
        assert_eq!(
            message.fields.last().unwrap().value,
            json!(
                "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/8b2f2a5c-1111-2222-3333-444455556666"
            )
        );
        assert_eq!(message.metadata.source_name.as_deref(), Some("Cloudtrail"));
        assert!(
            message
                .metadata
                .source_icon_url
                .as_deref()
                .unwrap()
                .starts_with("https://")
        );
        assert!(message.tags.is_empty());
    }

    #[test]
    fn request_parameters_are_kept_as_json_with_key_order() {
        let message = message_from_record(&record(iam_user_denial())).unwrap();
        let parameters = &message.fields[8];
        assert_eq!(parameters.key, "Request Parameters");
        assert_eq!(
            parameters.value.to_string(),
            r#"{"policyArn":"arn:aws:iam::aws:policy/AdministratorAccess","a":{"z":1,"b":2}}"#
        );
    }

    #[test]
    fn falsy_values_are_left_out_like_javascript() {
        let mut value = iam_user_denial();
        value["errorMessage"] = json!("");
        value["sourceIPAddress"] = json!(null);
        value["recipientAccountId"] = json!(0);
        value["requestParameters"] = json!(false);
        value["userIdentity"]["userName"] = json!(0.0);
        let message = message_from_record(&record(value)).unwrap();
        assert_eq!(
            &keys(&message)[..4],
            ["Event", "Source", "User Account ID", "User ARN"]
        );
        assert_eq!(message.subject, "Event: GetPolicy");
    }

    #[test]
    fn empty_objects_and_nonzero_numbers_are_truthy() {
        let mut value = iam_user_denial();
        value["requestParameters"] = json!({});
        value["recipientAccountId"] = json!(111122223333u64);
        let message = message_from_record(&record(value)).unwrap();
        assert!(keys(&message).contains(&"Request Parameters"));
        assert_eq!(message.fields[3].value, json!(111122223333u64));
    }

    #[test]
    fn subject_renders_non_strings_as_json() {
        let message =
            message_from_record(&record(json!({"requestParameters": {"b": 1, "a": [true]}})))
                .unwrap();
        assert_eq!(message.subject, r#"Request Parameters: {"b":1,"a":[true]}"#);
        let message = message_from_record(&record(json!({"recipientAccountId": 42}))).unwrap();
        assert_eq!(message.subject, "Recipient Account ID: 42");
    }

    #[test]
    fn assumed_role_without_user_name_names_the_role() {
        let value = json!({
            "eventName": "CreateLogGroup",
            "eventSource": "logs.amazonaws.com",
            "errorCode": "AccessDenied",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": "arn:aws:sts::111122223333:assumed-role/new-service/i-0abc",
                "accountId": "111122223333",
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "new-service", "arn": "arn:aws:iam::111122223333:role/new-service"}}
            }
        });
        let message = message_from_record(&record(value)).unwrap();
        assert_eq!(
            keys(&message),
            [
                "Event",
                "Source",
                "User Account ID",
                "User ARN",
                "Role",
                "Error Code"
            ]
        );
        assert!(!keys(&message).contains(&"Username"));
        assert_eq!(message.fields[4].value, json!("new-service"));
    }

    #[test]
    fn role_is_only_named_for_assumed_roles() {
        let mut value = iam_user_denial();
        value["userIdentity"]["sessionContext"] = json!({"sessionIssuer": {"userName": "x"}});
        let message = message_from_record(&record(value)).unwrap();
        assert!(!keys(&message).contains(&"Role"));
    }

    #[test]
    fn nested_paths_through_non_objects_are_absent() {
        let message = message_from_record(&record(
            json!({"eventName": "X", "userIdentity": "not-an-object"}),
        ))
        .unwrap();
        assert_eq!(keys(&message), ["Event"]);
        let message =
            message_from_record(&record(json!({"eventName": "X", "userIdentity": null}))).unwrap();
        assert_eq!(keys(&message), ["Event"]);
    }

    #[test]
    fn a_record_without_any_original_field_has_no_message() {
        assert_eq!(message_from_record(&record(json!({}))), None);
        // Context alone does not make a Message: there is nothing to say.
        let context_only = json!({"awsRegion": "us-east-1", "eventID": "abc", "eventTime": "t", "errorCode": "AccessDenied"});
        assert_eq!(message_from_record(&record(context_only)), None);
    }

    #[test]
    fn console_link_needs_a_safe_region_and_event_id() {
        let mut value = iam_user_denial();
        value["awsRegion"] = json!("us-east-1.evil.example/");
        let message = message_from_record(&record(value)).unwrap();
        assert!(!keys(&message).contains(&CONSOLE_LINK_LABEL));
    }

    #[test]
    fn every_path_a_field_reads_is_read_from_the_record() {
        let paths = ORIGINAL_FIELDS
            .iter()
            .chain(CONTEXT_FIELDS.iter())
            .map(|(_, path)| *path)
            .chain(["userIdentity.type", "awsRegion", "eventID"]);
        for path in paths {
            let mut level = READ;
            let parts: Vec<&str> = path.split('.').collect();
            for (depth, part) in parts.iter().enumerate() {
                let node = level
                    .iter()
                    .find(|w| w.key == *part)
                    .unwrap_or_else(|| panic!("{path} is not read"));
                assert_eq!(node.below.is_empty(), depth == parts.len() - 1, "{path}");
                level = node.below;
            }
        }
    }

    #[test]
    fn only_wanted_parts_are_kept() {
        let parsed = record(json!({
            "responseElements": {"huge": [1, 2, 3]},
            "userIdentity": {"type": "AssumedRole", "principalId": "P", "accountId": 7,
                "sessionContext": {"attributes": {"x": 1}, "sessionIssuer": {"userName": "r", "arn": "a"}}},
            "eventName": "E"
        }));
        assert_eq!(
            Value::Object(parsed.0),
            json!({"userIdentity": {"type": "AssumedRole", "accountId": 7,
                "sessionContext": {"sessionIssuer": {"userName": "r"}}}, "eventName": "E"})
        );
    }

    #[test]
    fn records_that_are_not_objects_are_errors() {
        assert!(CloudTrailRecord::from_json("[1, 2]").is_err());
        assert!(CloudTrailRecord::from_json("\"text\"").is_err());
        assert!(CloudTrailRecord::from_json("{\"eventName\": ").is_err());
    }

    #[test]
    fn duplicate_keys_keep_the_last_like_json_parse() {
        let message = message_from_record(
            &CloudTrailRecord::from_json(r#"{"eventName":"A","eventName":"B"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(message.subject, "Event: B");
    }
}
