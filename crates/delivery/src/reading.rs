//! How a Message reads, whatever it is shown in: a headline that says what happened, the key
//! facts side by side, the long values (error message, request parameters) below, the rest in
//! small print, and a link to the event in the console. Every field of the Message shows
//! somewhere. Each destination renders a [`Reading`] in its own markup, escaping every value
//! (all of them may be attacker-controlled); the text here is raw.

use activity_aware_message::{Message, SEVERITY_TAG, Severity};
use serde_json::Value;

use crate::accounts::AccountNames;

/// A destination shows at most this many facts side by side (Slack takes 10 section fields).
pub const MAX_FACTS: usize = 10;
/// A string longer than this is a long value, shown on its own below the facts.
pub const MAX_FACT_VALUE_CHARS: usize = 120;
/// A console link longer than this is not made a button (Slack takes 3,000 characters).
const MAX_LINK_CHARS: usize = 3_000;

/// Fields shown side by side, in this order, under the names a person looks for.
const FACTS: [(&str, &str); 20] = [
    ("Severity", "Severity"),
    // A responder's: who it acted on, where, how often denied.
    ("Principal", "Principal"),
    ("Security Group", "Security Group"),
    ("Denied Calls", "Denied Calls"),
    ("Finding Type", "Finding Type"),
    ("Result", "Result"),
    ("MFA Used", "MFA Used"),
    ("Username", "User"),
    ("User", "User"),
    ("Role", "Role"),
    ("Recipient Account ID", "Account"),
    ("Account", "Account"),
    ("Region", "Region"),
    ("Event Time", "Time"),
    ("Time", "Time"),
    ("Source IP", "Source IP"),
    ("Error Code", "Error Code"),
    ("Resource", "Resource"),
    ("Event", "Action"),
    ("Detail Type", "Detail Type"),
];

/// Fields that hold an account ID, shown with the account's name when it is known.
const ACCOUNT_FIELDS: [&str; 3] = ["Recipient Account ID", "User Account ID", "Account"];

/// Long values, shown below the facts in this order (any other long value follows them): what
/// a responder did comes first.
const LONG_FIELDS: [&str; 6] = [
    "Response",
    "To Undo",
    "Error Message",
    "Description",
    "Request Parameters",
    "Detail",
];

fn field<'m>(message: &'m Message, key: &str) -> Option<&'m Value> {
    message
        .fields
        .iter()
        .find(|field| field.key == key)
        .map(|field| &field.value)
        .filter(|value| !value.is_null())
}

/// A field's text, when it has some.
pub fn field_text<'m>(message: &'m Message, key: &str) -> Option<&'m str> {
    field(message, key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// What happened, in a few words, after its severity when the Message has one: `[Low] alice
/// was denied iam:ListUsers` for a denied call; `[Critical] CloudTrail logging stopped: alice
/// called cloudtrail:StopLogging` for a detection, headed by what the principal did; otherwise
/// the subject (a sign-in or a finding says it plainly there).
pub fn headline(message: &Message) -> String {
    let said = what_happened(message);
    match severity(message) {
        Some(severity) => format!("[{}] {said}", severity.label()),
        None => said,
    }
}

/// The Message's severity, from its tag (the Message contract); `None` when it has none, or
/// one that is not a severity.
pub fn severity(message: &Message) -> Option<Severity> {
    message.tag(SEVERITY_TAG)?.parse().ok()
}

fn what_happened(message: &Message) -> String {
    let detection = field_text(message, "Detection");
    let code = field_text(message, "Error Code");
    let Some(event) =
        field_text(message, "Event").filter(|_| detection.is_some() || code.is_some())
    else {
        return message.subject.clone();
    };
    let who = field_text(message, "Username")
        .or_else(|| field_text(message, "Role"))
        .or_else(|| field_text(message, "User ARN").and_then(|arn| arn.rsplit('/').next()))
        .unwrap_or("Someone");
    let action = match field_text(message, "Source") {
        Some(source) => format!(
            "{}:{event}",
            source.strip_suffix(".amazonaws.com").unwrap_or(source)
        ),
        None => event.to_owned(),
    };
    let did = match code {
        Some(code)
            if code.contains("Unauthorized")
                || code.contains("AccessDenied")
                || code.contains("Denied") =>
        {
            format!("{who} was denied {action}")
        }
        Some(code) => format!("{who}: {action} failed ({code})"),
        None => format!("{who} called {action}"),
    };
    match detection {
        Some(detection) => format!("{detection}: {did}"),
        None => did,
    }
}

/// A long value, shown on its own below the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongValue {
    pub label: String,
    /// As [`render_value`] shows it.
    pub text: String,
    /// An object or array, pretty JSON: shown as code.
    pub is_code: bool,
}

/// The link to the event, shown as a button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLink {
    /// `Open in CloudTrail Console`, or `Open in the console`.
    pub text: String,
    pub url: String,
}

/// A Message laid out for reading, in the order a person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub headline: String,
    /// Facts shown side by side, under the names a person looks for (accounts named).
    pub facts: Vec<(String, String)>,
    pub long: Vec<LongValue>,
    /// Every other field, `label: value` (accounts named).
    pub small_print: Vec<(String, String)>,
    pub link: Option<ConsoleLink>,
}

impl Reading {
    pub fn of(message: &Message, accounts: &AccountNames) -> Reading {
        let link = console_link(message);
        let mut shown = vec![false; message.fields.len()];
        let position = |key: &str| message.fields.iter().position(|field| field.key == key);

        let mut facts: Vec<(String, String)> = Vec::new();
        for (key, name) in FACTS {
            if facts.len() == MAX_FACTS {
                break;
            }
            let Some(index) = position(key) else { continue };
            if shown[index] || facts.iter().any(|(fact, _)| fact == name) {
                continue;
            }
            let value = &message.fields[index].value;
            let text = match value {
                Value::String(text)
                    if !text.is_empty() && text.chars().count() <= MAX_FACT_VALUE_CHARS =>
                {
                    if ACCOUNT_FIELDS.contains(&key) {
                        accounts.label(text)
                    } else {
                        text.clone()
                    }
                }
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => continue,
            };
            shown[index] = true;
            facts.push((name.to_owned(), text));
        }

        // The long values, then every other field: long ones on their own, short ones in
        // small print.
        let mut long = Vec::new();
        let mut small_print = Vec::new();
        let order = LONG_FIELDS
            .iter()
            .filter_map(|key| position(key))
            .chain(0..message.fields.len());
        for index in order {
            if shown[index] {
                continue;
            }
            shown[index] = true;
            let field = &message.fields[index];
            if link.as_ref().is_some_and(|(label, _)| *label == field.key) {
                continue;
            }
            let value = &field.value;
            let rendered = render_value(value);
            let is_code = value.is_object() || value.is_array();
            if is_code
                || LONG_FIELDS.contains(&field.key.as_str())
                || rendered.chars().count() > MAX_FACT_VALUE_CHARS
            {
                long.push(LongValue {
                    label: field.key.clone(),
                    text: rendered,
                    is_code,
                });
            } else if ACCOUNT_FIELDS.contains(&field.key.as_str()) {
                small_print.push((field.key.clone(), accounts.label(&rendered)));
            } else {
                small_print.push((field.key.clone(), rendered));
            }
        }

        Reading {
            headline: headline(message),
            facts,
            long,
            small_print,
            link: link.map(|(label, url)| ConsoleLink {
                text: if label.to_lowercase().contains("link") {
                    "Open in the console".to_owned()
                } else {
                    format!("Open in {label}")
                },
                url: url.to_owned(),
            }),
        }
    }
}

/// A console link: a field whose label names a console or a link and whose value is an https
/// URL.
fn console_link(message: &Message) -> Option<(&str, &str)> {
    message.fields.iter().find_map(|field| {
        let label = field.key.as_str();
        let url = field.value.as_str()?;
        let is_link = label.contains("Console") || label.to_lowercase().contains("link");
        (is_link && url.starts_with("https://") && url.len() <= MAX_LINK_CHARS)
            .then_some((label, url))
    })
}

/// A field value as the original showed it: strings as they are, numbers and booleans as JSON
/// text, objects, arrays and null as pretty JSON with 2-space indents, keys in their order.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            serde_json::to_string_pretty(value).expect("a JSON value always serialises")
        }
    }
}

/// Marks where a value was cut short.
pub const CUT_MARKER: &str = "…";

/// At most `max_chars` characters of raw text (a destination that escapes measures after
/// escaping instead), the cut marked.
pub fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text
        .chars()
        .take(max_chars.saturating_sub(CUT_MARKER.chars().count()))
        .collect();
    format!("{kept}{CUT_MARKER}")
}

/// The original's text: one `key: value` line per field, unescaped.
pub fn plain_text(message: &Message) -> String {
    message
        .fields
        .iter()
        .map(|field| format!("{}: {}", field.key, render_value(&field.value)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Tag};
    use serde_json::json;

    fn message(subject: &str, fields: &[(&str, Value)]) -> Message {
        let fields = fields
            .iter()
            .map(|(key, value)| Field::new(*key, value.clone()))
            .collect();
        Message::new(subject, fields)
    }

    fn denial() -> Message {
        message(
            "s",
            &[
                (
                    "Error Message",
                    json!(
                        "User: arn:aws:iam::111122223333:user/mallory is not authorized to perform: iam:ListUsers"
                    ),
                ),
                ("Event", json!("ListUsers")),
                ("Source", json!("iam.amazonaws.com")),
                ("Recipient Account ID", json!("111122223333")),
                ("Username", json!("mallory")),
                ("Request Parameters", json!({"maxItems": 100})),
                ("Error Code", json!("AccessDenied")),
                ("Event ID", json!("57b719ad-f2fa-4d18-bd84-000000000001")),
                (
                    "CloudTrail Console",
                    json!(
                        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/57b719ad"
                    ),
                ),
            ],
        )
    }

    #[test]
    fn a_detection_is_headed_by_what_was_done_after_its_severity() {
        let mut stop = message(
            "Event: StopLogging",
            &[
                ("Event", json!("StopLogging")),
                ("Source", json!("cloudtrail.amazonaws.com")),
                ("Username", json!("mallory")),
                ("Detection", json!("CloudTrail logging stopped")),
            ],
        );
        assert_eq!(
            headline(&stop),
            "CloudTrail logging stopped: mallory called cloudtrail:StopLogging"
        );
        stop.tags.push(Tag::new("severity", "critical"));
        assert_eq!(severity(&stop), Some(Severity::Critical));
        assert!(headline(&stop).starts_with("[Critical] CloudTrail logging stopped: "));
        // A value that is no severity is ignored, not shown.
        stop.tags[0].value = "urgent!!".into();
        assert_eq!(severity(&stop), None);
        assert!(headline(&stop).starts_with("CloudTrail logging stopped"));
        // A detection without an event (a sign-in) is headed by its subject.
        let sign_in = message(
            "Console sign-in without MFA by bob",
            &[("Detection", json!("x"))],
        );
        assert_eq!(headline(&sign_in), sign_in.subject);
    }

    #[test]
    fn a_denial_says_who_was_denied_what() {
        assert_eq!(headline(&denial()), "mallory was denied iam:ListUsers");
        let mut by_role = denial();
        by_role.fields.retain(|f| f.key != "Username");
        by_role
            .fields
            .push(Field::new("Role", json!("ci-deployer")));
        assert_eq!(headline(&by_role), "ci-deployer was denied iam:ListUsers");
        let throttled = message(
            "s",
            &[
                ("Event", json!("PutObject")),
                ("Error Code", json!("SlowDown")),
                ("User ARN", json!("arn:aws:sts::1:assumed-role/r/s3-writer")),
            ],
        );
        assert_eq!(
            headline(&throttled),
            "s3-writer: PutObject failed (SlowDown)"
        );
        // Without an event and an error code, the subject is the headline.
        let sign_in = message(
            "Root user signed in to the AWS console without MFA",
            &[("Result", json!("Success"))],
        );
        assert_eq!(headline(&sign_in), sign_in.subject);
    }

    #[test]
    fn facts_first_long_values_below_then_small_print_and_the_link() {
        let accounts = AccountNames::parse("111122223333=prod").unwrap();
        let reading = Reading::of(&denial(), &accounts);
        assert_eq!(reading.headline, "mallory was denied iam:ListUsers");
        assert_eq!(
            reading.facts,
            [
                ("User".to_owned(), "mallory".to_owned()),
                ("Account".to_owned(), "prod (111122223333)".to_owned()),
                ("Error Code".to_owned(), "AccessDenied".to_owned()),
                ("Action".to_owned(), "ListUsers".to_owned()),
            ]
        );
        let long: Vec<(&str, bool)> = reading
            .long
            .iter()
            .map(|long| (long.label.as_str(), long.is_code))
            .collect();
        assert_eq!(
            long,
            [("Error Message", false), ("Request Parameters", true)]
        );
        assert_eq!(reading.long[1].text, "{\n  \"maxItems\": 100\n}");
        let small: Vec<&str> = reading
            .small_print
            .iter()
            .map(|(label, _)| label.as_str())
            .collect();
        assert_eq!(small, ["Source", "Event ID"]);
        let link = reading.link.unwrap();
        assert_eq!(link.text, "Open in CloudTrail Console");
        assert!(
            link.url
                .starts_with("https://us-east-1.console.aws.amazon.com/")
        );
    }

    #[test]
    fn a_cut_counts_characters_and_is_marked() {
        assert_eq!(cut("short", 5), "short");
        assert_eq!(cut("ééééé", 4), "ééé…");
        assert_eq!(cut("abcdef", 4).chars().count(), 4);
    }

    #[test]
    fn a_link_that_is_not_https_is_small_print_not_a_button() {
        let mut message = denial();
        message
            .fields
            .retain(|field| field.key != "CloudTrail Console");
        message
            .fields
            .push(Field::new("Console Link", json!("javascript:alert(1)")));
        let reading = Reading::of(&message, &AccountNames::default());
        assert_eq!(reading.link, None);
        assert!(
            reading
                .small_print
                .iter()
                .any(|(label, _)| label == "Console Link")
        );
    }
}
