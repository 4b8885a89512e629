//! Keeping a Message within SNS's size limit without dropping it.

use crate::Message;
use serde_json::Value;

/// SNS rejects a message larger than 256 KiB, its body and its attributes together.
pub const SNS_MESSAGE_LIMIT_BYTES: usize = 256 * 1024;

/// Room kept for a Message's attributes (its `severity` and `detection`: names, types and
/// values; a detection id is at most 64 characters).
pub const MESSAGE_ATTRIBUTES_ROOM_BYTES: usize = 160;

/// The largest body a source publishes: SNS's limit, less the attributes' room.
pub const MESSAGE_BODY_LIMIT_BYTES: usize = SNS_MESSAGE_LIMIT_BYTES - MESSAGE_ATTRIBUTES_ROOM_BYTES;

/// Starts the note appended to a value that was cut short, so readers know it is incomplete.
pub const TRUNCATION_MARKER: &str = "… [truncated: ";

/// Values shorter than this are never cut: they carry the who/what and cost little.
const SMALLEST_TRUNCATED_BYTES: usize = 200;

/// Room for the marker and for JSON escaping of the kept text.
const MARKER_ALLOWANCE_BYTES: usize = 64;

impl Message {
    /// The JSON text of this message, at most `limit` bytes: when it is larger, the largest values
    /// (subject or field values) are cut and marked with [`TRUNCATION_MARKER`], largest first, until
    /// it fits. Returns the text and whether anything was cut.
    pub fn to_json_within(&self, limit: usize) -> (String, bool) {
        let text = self.to_json();
        if text.len() <= limit {
            return (text, false);
        }
        let mut message = self.clone();
        let mut text = text;
        // Each pass cuts one value to what the excess allows; a few passes per value is plenty.
        let max_passes = 4 * (message.fields.len() + 1);
        for _ in 0..max_passes {
            if text.len() <= limit {
                break;
            }
            let excess = text.len() - limit;
            let Some((slot, size)) = largest_value(&message) else {
                break;
            };
            if size <= SMALLEST_TRUNCATED_BYTES {
                break;
            }
            let wanted = size.saturating_sub(excess + MARKER_ALLOWANCE_BYTES);
            match slot {
                Slot::Subject => {
                    let keep = raw_bytes_to_keep(message.subject.len(), size, wanted);
                    message.subject = truncated(&message.subject, keep);
                }
                Slot::Field(index) => {
                    let value = &mut message.fields[index].value;
                    let text = value_text(value);
                    let keep = raw_bytes_to_keep(text.len(), size, wanted);
                    *value = Value::String(truncated(&text, keep));
                }
            }
            text = message.to_json();
        }
        (text, true)
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Subject,
    Field(usize),
}

fn largest_value(message: &Message) -> Option<(Slot, usize)> {
    let subject = (Slot::Subject, serialized_len(&message.subject));
    message
        .fields
        .iter()
        .enumerate()
        .map(|(index, field)| (Slot::Field(index), value_serialized_len(&field.value)))
        .chain(std::iter::once(subject))
        .max_by_key(|(_, size)| *size)
}

/// Sizes are measured as serialised JSON, but cuts are made in the raw text, which escaping
/// (quotes, backslashes, control characters) makes shorter: scale the cut to match.
fn raw_bytes_to_keep(raw_len: usize, serialized_len: usize, wanted_serialized: usize) -> usize {
    let scaled =
        (raw_len as u128 * wanted_serialized as u128 / serialized_len.max(1) as u128) as usize;
    scaled.max(SMALLEST_TRUNCATED_BYTES)
}

fn serialized_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len(), |json| json.len())
}

fn value_serialized_len(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |json| json.len())
}

/// Strings are cut as they are; anything else is cut as its compact JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn truncated(text: &str, keep_bytes: usize) -> String {
    if text.len() <= keep_bytes {
        return text.to_owned();
    }
    let mut end = keep_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}{TRUNCATION_MARKER}{} bytes in all]",
        &text[..end],
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Field;
    use serde_json::json;

    fn field(key: &str, value: Value) -> Field {
        Field {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn small_messages_are_untouched() {
        let message = Message::new("s", vec![field("a", json!({"b": 1}))]);
        assert_eq!(
            message.to_json_within(SNS_MESSAGE_LIMIT_BYTES),
            (message.to_json(), false)
        );
    }

    #[test]
    fn the_largest_value_is_cut_and_marked_and_the_rest_kept() {
        let big = json!({"instances": (0..20_000).map(|i| json!({"id": i, "name": "é"})).collect::<Vec<_>>()});
        let message = Message::new(
            "Event: RunInstances",
            vec![
                field("Event", json!("RunInstances")),
                field("Request Parameters", big),
            ],
        );
        assert!(message.to_json().len() > SNS_MESSAGE_LIMIT_BYTES);
        let (text, shrunk) = message.to_json_within(SNS_MESSAGE_LIMIT_BYTES);
        assert!(shrunk);
        assert!(
            text.len() <= SNS_MESSAGE_LIMIT_BYTES,
            "{} bytes",
            text.len()
        );
        let parsed = Message::from_json(&text).unwrap();
        assert_eq!(parsed.subject, "Event: RunInstances");
        assert_eq!(parsed.fields[0], message.fields[0]);
        let cut = parsed.fields[1].value.as_str().unwrap();
        assert!(cut.starts_with(r#"{"instances":[{"id":0,"name":"é"}"#));
        assert!(cut.contains(TRUNCATION_MARKER));
        // Cut close to the limit, not far below it.
        assert!(
            text.len() > SNS_MESSAGE_LIMIT_BYTES - 1024,
            "{} bytes",
            text.len()
        );
    }

    #[test]
    fn several_large_values_and_a_large_subject_are_all_cut_until_it_fits() {
        let long = "x\"<&".repeat(40_000);
        let message = Message::new(
            format!("Error Message: {long}"),
            vec![
                field("Error Message", json!(long)),
                field("Other", json!([long, long])),
                field("Event", json!("GetObject")),
            ],
        );
        let (text, shrunk) = message.to_json_within(SNS_MESSAGE_LIMIT_BYTES);
        assert!(shrunk);
        assert!(
            text.len() <= SNS_MESSAGE_LIMIT_BYTES,
            "{} bytes",
            text.len()
        );
        let parsed = Message::from_json(&text).unwrap();
        assert_eq!(parsed.fields[2], field("Event", json!("GetObject")));
        assert!(
            parsed.fields[1]
                .value
                .as_str()
                .unwrap()
                .contains(TRUNCATION_MARKER)
        );
    }

    #[test]
    fn cuts_never_split_a_character() {
        let text = truncated(&"🚀".repeat(100), 201);
        assert!(text.starts_with(&"🚀".repeat(50)));
        assert!(text.ends_with("[truncated: 400 bytes in all]"));
    }
}
