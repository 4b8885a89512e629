//! How a Message reads in Slack, read in two seconds: a headline that says what happened, the
//! key facts side by side, the long values (error message, request parameters) below, the rest
//! in small print, and a button to the event in the console. Every field of the Message shows
//! somewhere; the `text` beside the blocks stays the original's.

use std::collections::HashMap;

use activity_aware_message::{Message, SEVERITY_TAG, Severity};
use serde_json::{Value, json};

use crate::body::{cut_chars, cut_escaped, escape, escape_code, render_value, section};

/// Slack rejects a section field's text beyond 2,000 characters, and more than 10 fields.
const MAX_FACT_CHARS: usize = 2_000;
const MAX_FACTS: usize = 10;
/// A context block's text element: kept under Slack's 2,000 characters.
const MAX_CONTEXT_CHARS: usize = 2_000;
/// A button's text: Slack takes 75 characters; its URL: 3,000.
const MAX_BUTTON_TEXT_CHARS: usize = 75;
const MAX_BUTTON_URL_CHARS: usize = 3_000;
/// JSON values (request parameters) are trimmed to this much in their code block; the text
/// beside the blocks keeps them whole (within its own limit).
const MAX_CODE_CHARS: usize = 1_500;
/// A string longer than this is a long value, shown on its own below the facts.
const MAX_FACT_VALUE_CHARS: usize = 120;

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

/// Names of AWS accounts, from `111122223333=prod,444455556666=staging`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountNames(HashMap<String, String>);

impl FromIterator<(String, String)> for AccountNames {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        AccountNames(pairs.into_iter().collect())
    }
}

impl AccountNames {
    /// Reads `id=name` pairs separated by commas; an account ID is 12 digits, a name is not
    /// empty. Empty text names no account.
    pub fn parse(text: &str) -> Result<AccountNames, String> {
        let mut names = HashMap::new();
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (id, name) = pair
                .split_once('=')
                .map(|(id, name)| (id.trim(), name.trim()))
                .ok_or_else(|| format!("{pair:?} is not account-id=name"))?;
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{id:?} is not a 12-digit account ID"));
            }
            if name.is_empty() {
                return Err(format!("account {id} has an empty name"));
            }
            names.insert(id.to_owned(), name.to_owned());
        }
        Ok(AccountNames(names))
    }

    /// These names, and `others`' where they name the same account.
    pub fn overridden_by(mut self, others: &AccountNames) -> AccountNames {
        self.0
            .extend(others.0.iter().map(|(id, name)| (id.clone(), name.clone())));
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `prod (111122223333)` when the account's name is known.
    pub fn label(&self, account_id: &str) -> String {
        match self.0.get(account_id) {
            Some(name) => format!("{name} ({account_id})"),
            None => account_id.to_owned(),
        }
    }
}

fn field<'m>(message: &'m Message, key: &str) -> Option<&'m Value> {
    message
        .fields
        .iter()
        .find(|field| field.key == key)
        .map(|field| &field.value)
        .filter(|value| !value.is_null())
}

/// A field's text, when it has some.
pub(crate) fn field_text<'m>(message: &'m Message, key: &str) -> Option<&'m str> {
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

pub fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut_escaped(text, crate::body::MAX_HEADER_CHARS), "emoji": false},
    })
}

/// A console link the post turns into its button: a field whose label names a console or a
/// link and whose value is an https URL.
fn console_link(message: &Message) -> Option<(&str, &str)> {
    message.fields.iter().find_map(|field| {
        let label = field.key.as_str();
        let url = field.value.as_str()?;
        let is_link = label.contains("Console") || label.to_lowercase().contains("link");
        (is_link && url.starts_with("https://") && url.len() <= MAX_BUTTON_URL_CHARS)
            .then_some((label, url))
    })
}

/// The blocks of one Message below its header, in at most `room` blocks.
pub fn message_blocks(message: &Message, accounts: &AccountNames, room: usize) -> Vec<Value> {
    let link = console_link(message);
    let mut shown = vec![false; message.fields.len()];
    let position = |key: &str| message.fields.iter().position(|field| field.key == key);

    // The facts, side by side.
    let mut facts = Vec::new();
    for (key, name) in FACTS {
        if facts.len() == MAX_FACTS {
            break;
        }
        let Some(index) = position(key) else { continue };
        if shown[index] || facts.iter().any(|(fact, _): &(&str, String)| *fact == name) {
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
        facts.push((name, text));
    }

    // The long values, then every other field: long ones on their own, short ones in small print.
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
        if link.is_some_and(|(label, _)| label == field.key) {
            continue;
        }
        let value = &field.value;
        let rendered = render_value(value);
        if value.is_object() || value.is_array() {
            let code = cut_chars(&escape_code(&rendered), MAX_CODE_CHARS);
            long.push(format!("*{}*\n```{code}```", escape(&field.key)));
        } else if LONG_FIELDS.contains(&field.key.as_str())
            || rendered.chars().count() > MAX_FACT_VALUE_CHARS
        {
            let quoted = escape(&rendered).replace('\n', "\n>");
            long.push(format!("*{}*\n>{quoted}", escape(&field.key)));
        } else if ACCOUNT_FIELDS.contains(&field.key.as_str()) {
            small_print.push(format!(
                "{}: {}",
                escape(&field.key),
                escape(&accounts.label(&rendered))
            ));
        } else {
            small_print.push(format!("{}: {}", escape(&field.key), escape(&rendered)));
        }
    }

    let mut blocks = Vec::new();
    if !facts.is_empty() {
        blocks.push(json!({
            "type": "section",
            "fields": facts.iter().map(|(name, value)| json!({
                "type": "mrkdwn",
                "text": cut_chars(&format!("*{}*\n{}", escape(name), escape(value)), MAX_FACT_CHARS),
            })).collect::<Vec<_>>(),
        }));
    }
    for text in long {
        blocks.push(section(&text));
    }
    if !small_print.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": cut_chars(&small_print.join("  ·  "), MAX_CONTEXT_CHARS)}],
        }));
    }
    if let Some((label, url)) = link {
        let text = if label.to_lowercase().contains("link") {
            "Open in the console".to_owned()
        } else {
            format!("Open in {label}")
        };
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": cut_escaped(&text, MAX_BUTTON_TEXT_CHARS), "emoji": false},
                "url": url,
                "action_id": "open-console",
            }],
        }));
    }
    fit(blocks, room)
}

/// At most `room` blocks: the last sections that do not fit are merged into one.
fn fit(mut blocks: Vec<Value>, room: usize) -> Vec<Value> {
    if blocks.len() <= room {
        return blocks;
    }
    if room == 0 {
        return Vec::new();
    }
    let rest = blocks.split_off(room - 1);
    let merged: Vec<String> = rest
        .iter()
        .filter_map(|block| match block["type"].as_str() {
            Some("section") => block["text"]["text"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    block["fields"].as_array().map(|fields| {
                        fields
                            .iter()
                            .filter_map(|f| f["text"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                }),
            Some("context") => block["elements"][0]["text"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    if !merged.is_empty() {
        blocks.push(section(&merged.join("\n")));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Metadata, Tag};
    use test_world::block_kit::assert_valid;

    fn message(subject: &str, fields: &[(&str, Value)]) -> Message {
        Message {
            subject: subject.into(),
            fields: fields
                .iter()
                .map(|(key, value)| Field {
                    key: (*key).into(),
                    value: value.clone(),
                })
                .collect(),
            metadata: Metadata::default(),
            tags: vec![],
        }
    }

    fn denial() -> Message {
        message(
            "Error Message: User: arn:aws:iam::111122223333:user/mallory is not authorized to perform: iam:ListUsers",
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
                ("User Account ID", json!("111122223333")),
                ("Username", json!("mallory")),
                ("User ARN", json!("arn:aws:iam::111122223333:user/mallory")),
                ("Source IP", json!("203.0.113.7")),
                ("Request Parameters", json!({"maxItems": 100})),
                ("Error Code", json!("AccessDenied")),
                ("Region", json!("us-east-1")),
                ("Event Time", json!("2024-06-02T20:16:32Z")),
                ("Event ID", json!("57b719ad-f2fa-4d18-bd84-000000000001")),
                (
                    "CloudTrail Console",
                    json!(
                        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/57b719ad-f2fa-4d18-bd84-000000000001"
                    ),
                ),
            ],
        )
    }

    fn all_text(blocks: &[Value]) -> String {
        serde_json::to_string(blocks).unwrap()
    }

    #[test]
    fn backticks_in_a_value_never_end_its_code_block() {
        let hostile = message(
            "s",
            &[(
                "Request Parameters",
                json!({"k": "```\n*not bold* <!channel>\n````"}),
            )],
        );
        let blocks = message_blocks(&hostile, &AccountNames::default(), 10);
        let text = blocks[0]["text"]["text"].as_str().unwrap();
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert!(
            text.starts_with("*Request Parameters*\n```") && text.ends_with("```"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt;"));
        assert_valid(&json!({"text": "t", "blocks": blocks}));
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
        stop.tags.push(Tag {
            key: "severity".into(),
            value: "critical".into(),
        });
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
        by_role.fields.push(Field {
            key: "Role".into(),
            value: json!("ci-deployer"),
        });
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
    fn facts_side_by_side_long_values_below_the_rest_in_small_print_and_a_button() {
        let accounts = AccountNames::parse("111122223333=prod").unwrap();
        let blocks = message_blocks(&denial(), &accounts, 49);
        let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["section", "section", "section", "context", "actions"]
        );
        let facts: Vec<&str> = blocks[0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            facts,
            [
                "*User*\nmallory",
                "*Account*\nprod (111122223333)",
                "*Region*\nus-east-1",
                "*Time*\n2024-06-02T20:16:32Z",
                "*Source IP*\n203.0.113.7",
                "*Error Code*\nAccessDenied",
                "*Action*\nListUsers",
            ]
        );
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Error Message*\n>User: arn:aws:iam::111122223333:user/mallory")
        );
        assert_eq!(
            blocks[2]["text"]["text"],
            "*Request Parameters*\n```{\n  \"maxItems\": 100\n}```"
        );
        assert_eq!(
            blocks[3]["elements"][0]["text"],
            "Source: iam.amazonaws.com  ·  User Account ID: prod (111122223333)  ·  User ARN: arn:aws:iam::111122223333:user/mallory  ·  Event ID: 57b719ad-f2fa-4d18-bd84-000000000001"
        );
        assert_eq!(
            blocks[4]["elements"][0]["text"]["text"],
            "Open in CloudTrail Console"
        );
        assert!(
            blocks[4]["elements"][0]["url"]
                .as_str()
                .unwrap()
                .ends_with("events/57b719ad-f2fa-4d18-bd84-000000000001")
        );
        // Every field shows somewhere.
        let text = all_text(&blocks);
        for field in &denial().fields {
            assert!(
                text.contains(&field.key)
                    || [
                        "Username",
                        "Recipient Account ID",
                        "Event Time",
                        "Event",
                        "CloudTrail Console"
                    ]
                    .contains(&field.key.as_str()),
                "{}",
                field.key
            );
        }
    }

    #[test]
    fn hostile_values_stay_text_and_within_every_limit() {
        let markup = "<!channel> <@U024BE7LH> <https://evil.example|click> & *bold* `code`";
        let huge = json!({"名前": "Grüße 🚀", "policy": "<x>".repeat(4_000)});
        let hostile = message(
            markup,
            &[
                ("Error Message", json!(markup.repeat(100))),
                ("Event", json!(markup)),
                ("Error Code", json!("AccessDenied")),
                ("Username", json!(markup)),
                ("Recipient Account ID", json!("111122223333")),
                ("Request Parameters", huge),
                ("Region", json!("🚀".repeat(500))),
                ("CloudTrail Console", json!("javascript:alert(1)")),
                ("Note", json!("ok")),
            ],
        );
        let blocks = message_blocks(&hostile, &AccountNames::default(), 49);
        let mut body_blocks = vec![header(&headline(&hostile))];
        body_blocks.extend(blocks.clone());
        assert_valid(&json!({"text": "t", "blocks": body_blocks}));
        let text = all_text(&blocks);
        assert!(
            !text.contains("<!channel>")
                && !text.contains("<@U")
                && !text.contains("<https://evil")
        );
        assert!(text.contains("Grüße 🚀"));
        // Not an https link: no button, the value stays visible as text.
        assert!(!text.contains("\"actions\""));
        assert!(text.contains("javascript:alert(1)"));
        let code = blocks
            .iter()
            .find_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .filter(|t| t.starts_with("*Request Parameters*"))
            })
            .unwrap();
        assert!(
            code.chars().count() < MAX_CODE_CHARS + 40 && code.ends_with("…```"),
            "{code}"
        );
    }

    #[test]
    fn fits_the_room_it_is_given() {
        let fields: Vec<(String, Value)> = (0..80)
            .map(|i| (format!("Field {i}"), json!({"v": i})))
            .collect();
        let refs: Vec<(&str, Value)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let many = message("s", &refs);
        for room in [0, 1, 5, 49] {
            let blocks = message_blocks(&many, &AccountNames::default(), room);
            assert_eq!(blocks.len(), room.min(blocks.len()));
            assert!(blocks.len() <= room);
            if room > 0 {
                assert!(
                    all_text(&blocks).contains("Field 79"),
                    "the last field is merged in, room {room}"
                );
            }
        }
    }

    #[test]
    fn account_names_are_read_strictly() {
        let names = AccountNames::parse(" 111122223333=prod , 444455556666 = staging ").unwrap();
        assert_eq!(names.label("111122223333"), "prod (111122223333)");
        assert_eq!(names.label("444455556666"), "staging (444455556666)");
        assert_eq!(names.label("999999999999"), "999999999999");
        assert_eq!(AccountNames::parse("").unwrap(), AccountNames::default());
        for bad in ["prod", "1234=prod", "111122223333=", "11112222333x=prod"] {
            assert!(AccountNames::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_given_win_over_names_looked_up() {
        let looked_up: AccountNames = [
            ("111122223333".to_owned(), "Production".to_owned()),
            ("444455556666".to_owned(), "Staging".to_owned()),
        ]
        .into_iter()
        .collect();
        let given = AccountNames::parse("111122223333=prod").unwrap();
        let names = looked_up.overridden_by(&given);
        assert_eq!(names.len(), 2);
        assert_eq!(names.label("111122223333"), "prod (111122223333)");
        assert_eq!(names.label("444455556666"), "Staging (444455556666)");
    }
}
