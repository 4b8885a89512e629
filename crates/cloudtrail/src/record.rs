//! One CloudTrail record to one Message, as the original did, plus context people can act on.
//!
//! A record is read once, keeping only the raw JSON text of the few values any field shows
//! ([`RecordView`]); the rest of it (often most of it, such as responseElements) is skipped
//! without being built. The same choice of fields then renders either as a [`Message`] or
//! straight to the Message's JSON text, which is what the source publishes.

use crate::detect::{Detected, WHAT_HAPPENED_LABEL};
use activity_aware_message::{
    ACCESS_KEY_TAG, DIGEST_FIELD_TAG, DIGEST_GROUP_TAG, EVENT_TIME_TAG, Field, Message, Metadata,
    PRINCIPAL_TAG, SESSION_ISSUED_TAG, Tag, field_value_from_raw, reads_back_as_field_value,
};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;

pub const SOURCE_NAME: &str = "Cloudtrail";
pub const SOURCE_ICON_URL: &str =
    "https://s3-us-west-2.amazonaws.com/giftbit-developer-static-resources/AWS-CloudTrail.png";

/// Where each value read from a record is kept.
mod slot {
    pub const ERROR_MESSAGE: usize = 0;
    pub const EVENT_NAME: usize = 1;
    pub const EVENT_SOURCE: usize = 2;
    pub const RECIPIENT_ACCOUNT_ID: usize = 3;
    pub const USER_ACCOUNT_ID: usize = 4;
    pub const USER_NAME: usize = 5;
    pub const USER_ARN: usize = 6;
    pub const SOURCE_IP: usize = 7;
    pub const REQUEST_PARAMETERS: usize = 8;
    pub const ROLE: usize = 9;
    pub const ERROR_CODE: usize = 10;
    pub const REGION: usize = 11;
    pub const EVENT_TIME: usize = 12;
    pub const EVENT_ID: usize = 13;
    pub const USER_TYPE: usize = 14;
    pub const PRINCIPAL_ID: usize = 15;
    pub const INVOKED_BY: usize = 16;
    pub const SESSION_ISSUED: usize = 17;
    pub const ACCESS_KEY_ID: usize = 18;
    pub const COUNT: usize = 19;
}

/// The original's fields, in its order (its paths: errorMessage, eventName, eventSource,
/// recipientAccountId, userIdentity.accountId, userIdentity.userName, userIdentity.arn,
/// sourceIPAddress, requestParameters).
const ORIGINAL_FIELDS: [(&str, usize); 9] = [
    ("Error Message", slot::ERROR_MESSAGE),
    ("Event", slot::EVENT_NAME),
    ("Source", slot::EVENT_SOURCE),
    ("Recipient Account ID", slot::RECIPIENT_ACCOUNT_ID),
    ("User Account ID", slot::USER_ACCOUNT_ID),
    ("Username", slot::USER_NAME),
    ("User ARN", slot::USER_ARN),
    ("Source IP", slot::SOURCE_IP),
    ("Request Parameters", slot::REQUEST_PARAMETERS),
];

/// Context appended after the original fields: who (the role behind an assumed-role session,
/// userIdentity.sessionContext.sessionIssuer.userName), what failed, where and when.
const CONTEXT_FIELDS: [(&str, usize); 5] = [
    (ROLE_LABEL, slot::ROLE),
    ("Error Code", slot::ERROR_CODE),
    ("Region", slot::REGION),
    ("Event Time", slot::EVENT_TIME),
    ("Event ID", slot::EVENT_ID),
];

const ROLE_LABEL: &str = "Role";

/// Label of the link to the event in the CloudTrail console.
pub const CONSOLE_LINK_LABEL: &str = "CloudTrail Console";

/// What a digest of one principal's denials lists with counts: each action, service, region,
/// source IP and error code.
pub const DIGEST_FIELDS: [&str; 5] = ["Event", "Source", "Region", "Source IP", "Error Code"];

/// A key of the record to read: a leaf's value is kept whole in its slot, an inner node is read
/// only for the keys below it.
struct Wanted {
    key: &'static str,
    slot: usize,
    below: &'static [Wanted],
}

const fn leaf(key: &'static str, slot: usize) -> Wanted {
    Wanted {
        key,
        slot,
        below: &[],
    }
}

const fn inner(key: &'static str, below: &'static [Wanted]) -> Wanted {
    Wanted {
        key,
        slot: usize::MAX,
        below,
    }
}

const READ: &[Wanted] = &[
    leaf("errorMessage", slot::ERROR_MESSAGE),
    leaf("eventName", slot::EVENT_NAME),
    leaf("eventSource", slot::EVENT_SOURCE),
    leaf("recipientAccountId", slot::RECIPIENT_ACCOUNT_ID),
    inner(
        "userIdentity",
        &[
            leaf("type", slot::USER_TYPE),
            leaf("principalId", slot::PRINCIPAL_ID),
            leaf("accessKeyId", slot::ACCESS_KEY_ID),
            leaf("invokedBy", slot::INVOKED_BY),
            leaf("accountId", slot::USER_ACCOUNT_ID),
            leaf("userName", slot::USER_NAME),
            leaf("arn", slot::USER_ARN),
            inner(
                "sessionContext",
                &[
                    inner("sessionIssuer", &[leaf("userName", slot::ROLE)]),
                    inner("attributes", &[leaf("creationDate", slot::SESSION_ISSUED)]),
                ],
            ),
        ],
    ),
    leaf("sourceIPAddress", slot::SOURCE_IP),
    leaf("requestParameters", slot::REQUEST_PARAMETERS),
    leaf("errorCode", slot::ERROR_CODE),
    leaf("awsRegion", slot::REGION),
    leaf("eventTime", slot::EVENT_TIME),
    leaf("eventID", slot::EVENT_ID),
];

/// The values of a CloudTrail record that the Message is made from, as raw JSON text borrowed
/// from the record.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordView<'a> {
    values: [Option<&'a RawValue>; slot::COUNT],
    /// The whole record, read again only when a detection may be it.
    text: &'a str,
}

impl<'a> RecordView<'a> {
    /// Reads a record; anything but a JSON object is an error.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        let mut view = RecordView {
            text,
            ..RecordView::default()
        };
        let mut deserializer = serde_json::Deserializer::from_str(text);
        deserializer.deserialize_map(Reader {
            view: &mut view,
            wanted: READ,
        })?;
        deserializer.end()?;
        Ok(view)
    }

    /// The record's whole text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// A string value of the record at a path the view keeps: `Some(None)` when the record has
    /// none there, `None` for a path the view does not keep (or a value that is no string).
    pub fn known_text(&self, path: &str) -> Option<Option<String>> {
        let slot = match path {
            "eventName" => slot::EVENT_NAME,
            "eventSource" => slot::EVENT_SOURCE,
            "errorCode" => slot::ERROR_CODE,
            "errorMessage" => slot::ERROR_MESSAGE,
            "awsRegion" => slot::REGION,
            "recipientAccountId" => slot::RECIPIENT_ACCOUNT_ID,
            "sourceIPAddress" => slot::SOURCE_IP,
            "eventID" => slot::EVENT_ID,
            "eventTime" => slot::EVENT_TIME,
            "userIdentity.type" => slot::USER_TYPE,
            "userIdentity.arn" => slot::USER_ARN,
            "userIdentity.accountId" => slot::USER_ACCOUNT_ID,
            "userIdentity.invokedBy" => slot::INVOKED_BY,
            "userIdentity.accessKeyId" => slot::ACCESS_KEY_ID,
            _ => return None,
        };
        match self.values[slot] {
            None => Some(None),
            Some(raw) => serde_json::from_str::<String>(raw.get()).ok().map(Some),
        }
    }

    /// Whether the call was denied: an error code CloudTrail writes for a refused permission
    /// (`AccessDenied...`, `...UnauthorizedOperation`).
    pub fn is_denial(&self) -> bool {
        self.string(slot::ERROR_CODE)
            .is_some_and(|code| is_denial_code(&code))
    }

    /// The role behind an assumed-role session (`sessionContext.sessionIssuer.userName`).
    pub fn role(&self) -> Option<String> {
        self.string(slot::ROLE)
    }

    /// The request parameters, as the record's JSON text.
    pub fn request_parameters(&self) -> Option<&'a str> {
        self.values[slot::REQUEST_PARAMETERS].map(RawValue::get)
    }

    /// The value in a slot when JavaScript would call it truthy.
    fn truthy(&self, slot: usize) -> Option<&'a RawValue> {
        self.values[slot].filter(|raw| is_truthy(raw.get()))
    }

    fn string(&self, slot: usize) -> Option<String> {
        self.values[slot].and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    }

    /// The fields the Message shows, in order, or `None` when it has none of the original's
    /// fields (there is nothing to say, and no subject to say it with).
    fn fields(&self, detected: &Detected) -> Option<Vec<(&'static str, Shown<'a>)>> {
        let mut fields: Vec<(&'static str, Shown<'a>)> = ORIGINAL_FIELDS
            .iter()
            .filter_map(|&(label, slot)| self.truthy(slot).map(|raw| (label, Shown::of(raw))))
            .collect();
        if fields.is_empty() {
            return None;
        }
        let is_assumed_role = self.string(slot::USER_TYPE).as_deref() == Some("AssumedRole");
        fields.extend(
            CONTEXT_FIELDS
                .iter()
                .filter(|&&(label, _)| label != ROLE_LABEL || is_assumed_role)
                .filter_map(|&(label, slot)| self.truthy(slot).map(|raw| (label, Shown::of(raw)))),
        );
        fields.extend(
            detected
                .fields()
                .into_iter()
                .map(|(label, value)| (label, Shown::Text(value))),
        );
        if let Some(link) = self.console_link() {
            fields.push((CONSOLE_LINK_LABEL, Shown::Text(link)));
        }
        Some(fields)
    }

    /// Who acted: the identity's ARN, or else its type with its principal ID, account or
    /// calling service (anonymous callers have no ARN). `None` when the record says nothing.
    pub fn principal(&self) -> Option<String> {
        let non_empty = |slot| self.string(slot).filter(|text| !text.is_empty());
        if let Some(arn) = non_empty(slot::USER_ARN) {
            return Some(arn);
        }
        let kind = non_empty(slot::USER_TYPE);
        let id = [slot::PRINCIPAL_ID, slot::USER_ACCOUNT_ID, slot::INVOKED_BY]
            .into_iter()
            .find_map(non_empty);
        match (kind, id) {
            (Some(kind), Some(id)) => Some(format!("{kind} {id}")),
            (kind, id) => kind.or(id),
        }
    }

    /// The tags that let a destination combine one principal's Messages into a digest (a
    /// detection's with the principal's others of the same detection only), and its severity.
    fn tags(&self, detected: &Detected) -> Vec<Tag> {
        let tag = |key: &str, value: String| Tag {
            key: key.to_owned(),
            value,
        };
        let detection = detected.shown();
        let mut tags = Vec::with_capacity(DIGEST_FIELDS.len() + 7);
        if let Some(principal) = self.principal() {
            let group = match detection {
                Some(detection) => format!("{principal} · {}", detection.id),
                None => principal,
            };
            tags.push(tag(DIGEST_GROUP_TAG, group));
        }
        tags.extend(
            DIGEST_FIELDS
                .iter()
                .map(|label| tag(DIGEST_FIELD_TAG, (*label).to_owned())),
        );
        if detection.is_some_and(|detection| detection.what_happened.is_some()) {
            tags.push(tag(DIGEST_FIELD_TAG, WHAT_HAPPENED_LABEL.to_owned()));
        }
        tags.extend(detected.tags());
        // Who, and since when, for responders: the identity's ARN and its session's start.
        if let Some(arn) = self
            .string(slot::USER_ARN)
            .filter(|arn| arn.starts_with("arn:"))
        {
            tags.push(tag(PRINCIPAL_TAG, arn));
        }
        if let Some(key) = self
            .string(slot::ACCESS_KEY_ID)
            .filter(|key| is_access_key_id(key))
        {
            tags.push(tag(ACCESS_KEY_TAG, key));
        }
        if let Some(issued) = self
            .string(slot::SESSION_ISSUED)
            .filter(|issued| !issued.is_empty())
        {
            tags.push(tag(SESSION_ISSUED_TAG, issued));
        }
        if let Some(time) = self
            .string(slot::EVENT_TIME)
            .filter(|time| !time.is_empty())
        {
            tags.push(tag(EVENT_TIME_TAG, time));
        }
        tags
    }

    /// A link to the event in the CloudTrail console's event history, when the record names a
    /// plausible region and event ID (both end up in a URL, so anything else is left out).
    fn console_link(&self) -> Option<String> {
        cloudtrail_event_link(&self.string(slot::REGION)?, &self.string(slot::EVENT_ID)?)
    }
}

/// Whether an error code is CloudTrail's for a refused permission: `AccessDenied`,
/// `AccessDeniedException`, `Client.UnauthorizedOperation`...
pub fn is_denial_code(code: &str) -> bool {
    code.starts_with("AccessDenied") || code.ends_with("UnauthorizedOperation")
}

/// An access key ID as AWS makes them (`AKIA…`, `ASIA…`): 16 to 128 capital letters and digits.
pub fn is_access_key_id(key: &str) -> bool {
    (16..=128).contains(&key.len())
        && key
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
}

/// Whether a region can go into a console URL as it is: lowercase letters, digits and dashes.
pub fn is_safe_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether an ID can go into a console URL as it is: letters, digits and dashes.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The event in the CloudTrail console's event history, when the region and event ID are
/// plausible (both end up in the URL, so anything else is left out).
pub fn cloudtrail_event_link(region: &str, event_id: &str) -> Option<String> {
    (is_safe_region(region) && is_safe_id(event_id)).then(|| {
        format!("https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}")
    })
}

/// A field's value: raw JSON from the record, or text made here.
#[derive(Debug, Clone)]
enum Shown<'a> {
    Raw(&'a RawValue),
    Text(String),
}

impl<'a> Shown<'a> {
    /// A value of the record as it is, or as its text when no reader could take it back (a lone
    /// surrogate escape, nesting past serde_json's limit): one crafted record never stops the
    /// Messages of the delivery it came in.
    fn of(raw: &'a RawValue) -> Self {
        if reads_back_as_field_value(raw.get()) {
            Shown::Raw(raw)
        } else {
            Shown::Text(raw.get().to_owned())
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Shown::Raw(raw) => field_value_from_raw(raw.get()),
            Shown::Text(text) => Value::String(text.clone()),
        }
    }
}

/// JavaScript truthiness of a JSON value, which decided what the original showed: no null, "",
/// false or 0.
fn is_truthy(raw: &str) -> bool {
    match raw.as_bytes().first() {
        Some(b'n') | None => false,
        Some(b'f') => false,
        Some(b'"') => raw != "\"\"",
        Some(b'-' | b'0'..=b'9') => raw.parse::<f64>().map_or(true, |n| n != 0.0 && !n.is_nan()),
        Some(_) => true,
    }
}

/// `"<first label>: <first value>"`, strings as they are and anything else as compact JSON.
fn subject(fields: &[(&'static str, Shown<'_>)]) -> String {
    let (label, first) = &fields[0];
    match first.to_value() {
        Value::String(text) => format!("{label}: {text}"),
        other => format!("{label}: {other}"),
    }
}

fn metadata() -> Metadata {
    Metadata {
        source_name: Some(SOURCE_NAME.into()),
        source_icon_url: Some(SOURCE_ICON_URL.into()),
    }
}

/// The Message for one record, or `None` when the record has none of the original fields.
pub fn message_from_record(record: &RecordView<'_>, detected: &Detected) -> Option<Message> {
    let fields = record.fields(detected)?;
    Some(Message {
        subject: subject(&fields),
        fields: fields
            .iter()
            .map(|(label, shown)| Field::new(*label, shown.to_value()))
            .collect(),
        metadata: metadata(),
        tags: record.tags(detected),
    })
}

/// The JSON text of [`message_from_record`]'s Message, written straight from the record's raw
/// values: the same Message, without building it.
pub fn message_json_from_record(record: &RecordView<'_>, detected: &Detected) -> Option<String> {
    let fields = record.fields(detected)?;
    let raw_len: usize = fields
        .iter()
        .map(|(_, shown)| match shown {
            Shown::Raw(raw) => raw.get().len(),
            Shown::Text(text) => text.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(raw_len * 2 + 512);
    let write_str = |out: &mut Vec<u8>, text: &str| {
        serde_json::to_writer(&mut *out, text).expect("writing to memory cannot fail");
    };
    out.extend_from_slice(b"{\"subject\":");
    write_str(&mut out, &subject(&fields));
    out.extend_from_slice(b",\"fields\":[");
    for (index, (label, shown)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        write_str(&mut out, label);
        out.extend_from_slice(b",\"value\":");
        match shown {
            Shown::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Shown::Text(text) => write_str(&mut out, text),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"metadata\":");
    serde_json::to_writer(&mut out, &metadata()).expect("writing to memory cannot fail");
    out.extend_from_slice(b",\"tags\":");
    serde_json::to_writer(&mut out, &record.tags(detected)).expect("writing to memory cannot fail");
    out.push(b'}');
    Some(String::from_utf8(out).expect("JSON written from UTF-8 text is UTF-8"))
}

/// Reads an object's wanted keys into the view's slots (the last of duplicate keys wins, as in
/// JavaScript); anything that is not an object has nothing a path could reach.
struct Reader<'v, 'a> {
    view: &'v mut RecordView<'a>,
    wanted: &'static [Wanted],
}

impl<'a> DeserializeSeed<'a> for Reader<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for Reader<'_, 'a> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a CloudTrail record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(KeyIn(self.wanted))? {
            match found {
                Some(Wanted {
                    slot, below: [], ..
                }) => {
                    self.view.values[*slot] = Some(map.next_value::<&'a RawValue>()?);
                }
                Some(Wanted { below, .. }) => map.next_value_seed(Reader {
                    view: &mut *self.view,
                    wanted: below,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Matches an object key against the wanted keys without copying it.
struct KeyIn(&'static [Wanted]);

impl<'a> DeserializeSeed<'a> for KeyIn {
    type Value = Option<&'static Wanted>;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIn {
    type Value = Option<&'static Wanted>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|wanted| wanted.key == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use test_world::payloads::{cloudtrail_records, edge_case_records};

    /// The Message for a record, checking on the way that the JSON written straight from the
    /// record is that Message's JSON.
    fn detector() -> &'static crate::Detector {
        static DETECTOR: std::sync::OnceLock<crate::Detector> = std::sync::OnceLock::new();
        DETECTOR.get_or_init(crate::Detector::default)
    }

    fn message_of_text(text: &str) -> Option<Message> {
        let view = RecordView::parse(text).unwrap();
        let detected = detector().detect(&view);
        let message = message_from_record(&view, &detected);
        let written = message_json_from_record(&view, &detected);
        assert_eq!(
            written
                .as_deref()
                .map(|json| serde_json::from_str::<Value>(json).unwrap()),
            message
                .as_ref()
                .map(|m| serde_json::from_str::<Value>(&m.to_json()).unwrap()),
        );
        message
    }

    fn mapped(value: Value) -> Option<Message> {
        message_of_text(&value.to_string())
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
        let message = mapped(iam_user_denial()).unwrap();
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
        assert_eq!(
            message.tags,
            [
                ("digest-group", "arn:aws:iam::111122223333:user/alice"),
                ("digest-field", "Event"),
                ("digest-field", "Source"),
                ("digest-field", "Region"),
                ("digest-field", "Source IP"),
                ("digest-field", "Error Code"),
                ("severity", "low"),
                ("detection", "access-denied"),
                ("principal", "arn:aws:iam::111122223333:user/alice"),
                ("event-time", "2024-03-01T12:00:00Z"),
            ]
            .map(|(key, value)| Tag {
                key: key.into(),
                value: value.into()
            })
        );
        for label in DIGEST_FIELDS {
            assert!(keys(&message).contains(&label), "{label} is not a field");
        }
    }

    #[test]
    fn the_principal_is_whoever_acted_even_without_an_arn() {
        let principal = |identity: Value| {
            let text = json!({"eventName": "GetObject", "userIdentity": identity}).to_string();
            RecordView::parse(&text).unwrap().principal()
        };
        assert_eq!(
            principal(
                json!({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s", "principalId": "AROA:s"})
            ),
            Some("arn:aws:sts::1:assumed-role/r/s".into())
        );
        assert_eq!(
            principal(
                json!({"type": "AWSAccount", "principalId": "", "accountId": "ANONYMOUS_PRINCIPAL"})
            ),
            Some("AWSAccount ANONYMOUS_PRINCIPAL".into())
        );
        assert_eq!(
            principal(json!({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"})),
            Some("AWSService cloudtrail.amazonaws.com".into())
        );
        assert_eq!(principal(json!({"arn": ""})), None);
        assert_eq!(principal(json!("not an object")), None);
    }

    #[test]
    fn a_record_without_a_principal_or_time_has_no_group_or_time_tag() {
        let message = mapped(json!({"eventName": "X"})).unwrap();
        let keys: Vec<&str> = message.tags.iter().map(|tag| tag.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "digest-field",
                "digest-field",
                "digest-field",
                "digest-field",
                "digest-field",
                "severity"
            ]
        );
        // A record no detection is: someone's own filter sent it.
        assert_eq!(message.tag("severity"), Some("medium"));
    }

    /// A detection's Message says what it is, why it matters and how severe, after the
    /// original's fields, and digests only with the principal's others of the same detection.
    #[test]
    fn a_detection_says_what_it_is_after_the_originals_fields() {
        let mut record = iam_user_denial();
        record["eventSource"] = json!("cloudtrail.amazonaws.com");
        record["eventName"] = json!("StopLogging");
        record["requestParameters"] = json!({"name": "main"});
        for key in ["errorCode", "errorMessage"] {
            record.as_object_mut().unwrap().remove(key);
        }
        let message = mapped(record).unwrap();
        assert_eq!(message.subject, "Event: StopLogging");
        let keys = keys(&message);
        assert_eq!(
            keys[keys.len() - 5..],
            [
                "Detection",
                "What Happened",
                "Why It Matters",
                "ATT&CK Tactic",
                "CloudTrail Console",
            ][..]
        );
        let value = |key: &str| {
            message
                .fields
                .iter()
                .find(|field| field.key == key)
                .and_then(|field| field.value.as_str())
                .unwrap()
        };
        assert_eq!(value("Detection"), "CloudTrail logging stopped");
        assert_eq!(value("What Happened"), "trail main");
        assert_eq!(value("ATT&CK Tactic"), "Defense Evasion");
        assert_eq!(message.tag("severity"), Some("critical"));
        assert_eq!(message.tag("detection"), Some("cloudtrail-stopped"));
        assert_eq!(
            message.tag("digest-group"),
            Some("arn:aws:iam::111122223333:user/alice · cloudtrail-stopped")
        );
        assert!(
            message
                .tag_values("digest-field")
                .any(|field| field == "What Happened")
        );
    }

    #[test]
    fn request_parameters_are_kept_as_json_with_key_order() {
        let message = mapped(iam_user_denial()).unwrap();
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
        let message = mapped(value).unwrap();
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
        let message = mapped(value).unwrap();
        assert!(keys(&message).contains(&"Request Parameters"));
        assert_eq!(message.fields[3].value, json!(111122223333u64));
    }

    #[test]
    fn subject_renders_non_strings_as_json() {
        let message = mapped(json!({"requestParameters": {"b": 1, "a": [true]}})).unwrap();
        assert_eq!(message.subject, r#"Request Parameters: {"b":1,"a":[true]}"#);
        let message = mapped(json!({"recipientAccountId": 42})).unwrap();
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
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "new-service", "arn": "arn:aws:iam::111122223333:role/new-service"},
                    "attributes": {"creationDate": "2024-03-01T11:00:00Z", "mfaAuthenticated": "false"}}
            }
        });
        let message = mapped(value).unwrap();
        // Who and since when, for the responders.
        let tag = |key: &str| {
            message
                .tags
                .iter()
                .find(|tag| tag.key == key)
                .map(|tag| tag.value.as_str())
        };
        assert_eq!(
            tag("principal"),
            Some("arn:aws:sts::111122223333:assumed-role/new-service/i-0abc")
        );
        assert_eq!(tag("session-issued"), Some("2024-03-01T11:00:00Z"));
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
        let message = mapped(value).unwrap();
        assert!(!keys(&message).contains(&"Role"));
    }

    #[test]
    fn nested_paths_through_non_objects_are_absent() {
        let message = mapped(json!({"eventName": "X", "userIdentity": "not-an-object"})).unwrap();
        assert_eq!(keys(&message), ["Event"]);
        let message = mapped(json!({"eventName": "X", "userIdentity": null})).unwrap();
        assert_eq!(keys(&message), ["Event"]);
    }

    #[test]
    fn a_record_without_any_original_field_has_no_message() {
        assert_eq!(mapped(json!({})), None);
        // Context alone does not make a Message: there is nothing to say.
        let context_only = json!({"awsRegion": "us-east-1", "eventID": "abc", "eventTime": "t", "errorCode": "AccessDenied"});
        assert_eq!(mapped(context_only), None);
    }

    #[test]
    fn console_link_needs_a_safe_region_and_event_id() {
        let mut value = iam_user_denial();
        value["awsRegion"] = json!("us-east-1.evil.example/");
        let message = mapped(value).unwrap();
        assert!(!keys(&message).contains(&CONSOLE_LINK_LABEL));
    }

    #[test]
    fn every_path_reads_into_its_own_slot() {
        let paths = [
            ("errorMessage", slot::ERROR_MESSAGE),
            ("eventName", slot::EVENT_NAME),
            ("eventSource", slot::EVENT_SOURCE),
            ("recipientAccountId", slot::RECIPIENT_ACCOUNT_ID),
            ("userIdentity.accountId", slot::USER_ACCOUNT_ID),
            ("userIdentity.userName", slot::USER_NAME),
            ("userIdentity.arn", slot::USER_ARN),
            ("sourceIPAddress", slot::SOURCE_IP),
            ("requestParameters", slot::REQUEST_PARAMETERS),
            (
                "userIdentity.sessionContext.sessionIssuer.userName",
                slot::ROLE,
            ),
            ("errorCode", slot::ERROR_CODE),
            ("awsRegion", slot::REGION),
            ("eventTime", slot::EVENT_TIME),
            ("eventID", slot::EVENT_ID),
            ("userIdentity.type", slot::USER_TYPE),
            ("userIdentity.principalId", slot::PRINCIPAL_ID),
            ("userIdentity.invokedBy", slot::INVOKED_BY),
            (
                "userIdentity.sessionContext.attributes.creationDate",
                slot::SESSION_ISSUED,
            ),
            ("userIdentity.accessKeyId", slot::ACCESS_KEY_ID),
        ];
        assert_eq!(paths.len(), slot::COUNT);
        for (path, expected) in paths {
            // Build a record holding a marker at exactly this path.
            let mut value = json!(format!("at {path}"));
            for part in path.rsplit('.') {
                value = json!({ part: value });
            }
            let text = value.to_string();
            let view = RecordView::parse(&text).unwrap();
            for (slot, raw) in view.values.iter().enumerate() {
                let expected_text = (slot == expected).then(|| format!("\"at {path}\""));
                assert_eq!(raw.map(|raw| raw.get().to_owned()), expected_text, "{path}");
            }
        }
    }

    #[test]
    fn unread_parts_and_non_objects_on_the_way_are_skipped() {
        let text = json!({
            "responseElements": {"huge": [1, 2, 3], "userIdentity": {"userName": "decoy"}},
            "userIdentity": {"type": "AssumedRole", "principalId": "P", "accountId": 7,
                "sessionContext": {"attributes": {"x": 1}, "sessionIssuer": [{"userName": "decoy"}]}},
            "eventName": "E"
        })
        .to_string();
        let view = RecordView::parse(&text).unwrap();
        let kept: Vec<(usize, &str)> = view
            .values
            .iter()
            .enumerate()
            .filter_map(|(slot, raw)| raw.map(|raw| (slot, raw.get())))
            .collect();
        assert_eq!(
            kept,
            [
                (slot::EVENT_NAME, "\"E\""),
                (slot::USER_ACCOUNT_ID, "7"),
                (slot::USER_TYPE, "\"AssumedRole\""),
                (slot::PRINCIPAL_ID, "\"P\"")
            ]
        );
    }

    #[test]
    fn records_that_are_not_objects_are_errors() {
        assert!(RecordView::parse("[1, 2]").is_err());
        assert!(RecordView::parse("\"text\"").is_err());
        assert!(RecordView::parse("{\"eventName\": ").is_err());
        assert!(RecordView::parse("{\"eventName\": \"x\"} trailing").is_err());
    }

    #[test]
    fn duplicate_keys_keep_the_last_like_json_parse() {
        let message = message_of_text(r#"{"eventName":"A","eventName":"B"}"#).unwrap();
        assert_eq!(message.subject, "Event: B");
    }
    /// A value no reader could take back is shown as its raw text, and the Message, written
    /// straight or built (and cut to fit SNS), reads back whole.
    #[test]
    fn crafted_records_become_messages_that_read_back() {
        use activity_aware_message::SNS_MESSAGE_LIMIT_BYTES;
        for record in test_world::payloads::poison_records() {
            let message = message_of_text(&record).expect("a Message");
            let view = RecordView::parse(&record).unwrap();
            let json = message_json_from_record(&view, &detector().detect(&view)).unwrap();
            assert_eq!(Message::from_json(&json).unwrap(), message);
            let (cut, _) = message.to_json_within(SNS_MESSAGE_LIMIT_BYTES);
            assert!(cut.len() <= SNS_MESSAGE_LIMIT_BYTES);
            Message::from_json(&cut).unwrap();
        }
        let message = message_of_text(r#"{"errorMessage":"a \ud800 b","eventName":"E"}"#).unwrap();
        assert_eq!(message.subject, r#"Error Message: "a \ud800 b""#);
        assert_eq!(message.fields[1].value, json!("E"));
    }

    /// Every real record maps without panicking; every record with an errorMessage gets it as
    /// the subject; every other record with an eventName gets that.
    #[test]
    fn every_fixture_record_maps() {
        let mut with_error_message = 0;
        for (number, line) in cloudtrail_records()
            .into_iter()
            .chain(edge_case_records())
            .enumerate()
        {
            let record: Value = serde_json::from_str(line).unwrap();
            let view = RecordView::parse(line).unwrap();
            let detected = detector().detect(&view);
            let message = message_from_record(&view, &detected);
            // What is published is exactly this Message.
            assert_eq!(
                message_json_from_record(&view, &detected)
                    .map(|json| serde_json::from_str::<Value>(&json).unwrap()),
                message
                    .as_ref()
                    .map(|m| serde_json::from_str::<Value>(&m.to_json()).unwrap()),
                "line {number}"
            );
            let error_message = record
                .get("errorMessage")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            match (
                error_message,
                record.get("eventName").and_then(Value::as_str),
            ) {
                (Some(error_message), _) => {
                    with_error_message += 1;
                    let message = message.unwrap_or_else(|| panic!("line {number}: no message"));
                    assert_eq!(
                        message.subject,
                        format!("Error Message: {error_message}"),
                        "line {number}"
                    );
                }
                (None, Some(event_name)) => {
                    let message = message.unwrap_or_else(|| panic!("line {number}: no message"));
                    assert_eq!(
                        message.subject,
                        format!("Event: {event_name}"),
                        "line {number}"
                    );
                }
                (None, None) => {}
            }
        }
        assert!(with_error_message > 100, "{with_error_message}");
    }
}
