//! The Slack incoming-webhook body for a Message: the original's `text` (with its username, icon,
//! colour and channel), plus Block Kit blocks that lay the same fields out for reading.

use activity_aware_message::{Message, SLACK_PREFERRED_CHANNEL_TAG};
use serde_json::{Map, Value, json};

/// The original's attachment colour.
pub const COLOR: &str = "danger";

/// Slack truncates a message's `text` beyond 40,000 characters; stop a little short.
pub const MAX_TEXT_CHARS: usize = 39_000;
/// Slack rejects a section's text beyond 3,000 characters.
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Slack rejects a header's text beyond 150 characters.
pub const MAX_HEADER_CHARS: usize = 150;
/// Slack rejects a message with more than 50 blocks.
pub const MAX_BLOCKS: usize = 50;

const CUT_MARKER: &str = "…";

/// Neutralises Slack markup: `<!channel>`, `<@U123>`, `<https://x|label>` and entities become
/// plain text. Everything CloudTrail-derived is attacker-controlled, so everything goes through this.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            other => escaped.push(other),
        }
    }
    escaped
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

/// The original's text: one `key: value` line per field, unescaped.
pub fn plain_text(message: &Message) -> String {
    message
        .fields
        .iter()
        .map(|field| format!("{}: {}", field.key, render_value(&field.value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON body to POST to the webhook.
pub fn slack_body(message: &Message) -> Value {
    let mut body = Map::new();
    if let Some(name) = &message.metadata.source_name {
        body.insert("username".into(), Value::String(name.clone()));
    }
    if let Some(icon) = &message.metadata.source_icon_url {
        body.insert("icon_url".into(), Value::String(icon.clone()));
    }
    body.insert("color".into(), Value::String(COLOR.into()));
    body.insert(
        "text".into(),
        Value::String(cut_escaped(&plain_text(message), MAX_TEXT_CHARS)),
    );
    if let Some(channel) = message.tag(SLACK_PREFERRED_CHANNEL_TAG) {
        body.insert("channel".into(), Value::String(channel.to_owned()));
    }
    body.insert("blocks".into(), Value::Array(blocks(message)));
    Value::Object(body)
}

fn blocks(message: &Message) -> Vec<Value> {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut_escaped(&message.subject, MAX_HEADER_CHARS), "emoji": false},
    })];
    let sections: Vec<String> = message
        .fields
        .iter()
        .map(|field| {
            let value = render_value(&field.value);
            if field.value.is_object() || field.value.is_array() {
                format!("*{}*\n```{}```", escape(&field.key), escape(&value))
            } else {
                format!("*{}*: {}", escape(&field.key), escape(&value))
            }
        })
        .collect();
    // One section per field while they fit; whatever is left shares the last section.
    let room = MAX_BLOCKS - blocks.len();
    let mut sections = sections.into_iter();
    for text in sections.by_ref().take(room.saturating_sub(1)) {
        blocks.push(section(&text));
    }
    let rest: Vec<String> = sections.collect();
    if !rest.is_empty() {
        blocks.push(section(&rest.join("\n")));
    }
    blocks
}

fn section(escaped_text: &str) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut_chars(escaped_text, MAX_SECTION_CHARS)},
    })
}

/// Escapes, then cuts to `max_chars` characters without splitting an entity.
fn cut_escaped(text: &str, max_chars: usize) -> String {
    cut_chars(&escape(text), max_chars)
}

/// Cuts already-escaped text to at most `max_chars` characters, marking the cut, and never leaves
/// half an entity (`&am`) or half a code fence behind.
fn cut_chars(escaped: &str, max_chars: usize) -> String {
    if escaped.chars().count() <= max_chars {
        return escaped.to_owned();
    }
    let fence_room = if escaped.contains("```") { 3 } else { 0 };
    let keep = max_chars.saturating_sub(CUT_MARKER.chars().count() + fence_room);
    let end = escaped
        .char_indices()
        .nth(keep)
        .map_or(escaped.len(), |(index, _)| index);
    let mut kept = &escaped[..end];
    if let Some(amp) = kept.rfind('&')
        && !kept[amp..].contains(';')
    {
        kept = &kept[..amp];
    }
    let mut cut = format!("{kept}{CUT_MARKER}");
    if kept.matches("```").count() % 2 == 1 {
        cut.push_str("```");
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Metadata, Tag};

    fn field(key: &str, value: Value) -> Field {
        Field {
            key: key.into(),
            value,
        }
    }

    fn message(fields: Vec<Field>) -> Message {
        Message {
            subject: "Some subject".into(),
            fields,
            metadata: Metadata {
                source_name: Some("ASource".into()),
                source_icon_url: Some("Some url".into()),
            },
            tags: Vec::new(),
        }
    }

    #[test]
    fn plain_fields_as_the_original() {
        let body = slack_body(&message(vec![
            field("AKey", json!("SomeValue")),
            field("AnotherKey", json!("SomeOtherValue")),
        ]));
        assert_eq!(body["username"], "ASource");
        assert_eq!(body["icon_url"], "Some url");
        assert_eq!(body["color"], "danger");
        assert_eq!(body["text"], "AKey: SomeValue\nAnotherKey: SomeOtherValue");
        assert!(body.get("channel").is_none());
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["username", "icon_url", "color", "text", "blocks"]);
    }

    #[test]
    fn objects_are_pretty_json_in_key_order() {
        let body = slack_body(&message(vec![
            field("AKey", json!("SomeValue")),
            field(
                "AnotherKey",
                json!({"SomeSubKey": "SomeSubValue", "AnotherSubKey": "AnotherSubValue"}),
            ),
        ]));
        assert_eq!(
            body["text"],
            "AKey: SomeValue\nAnotherKey: {\n  \"SomeSubKey\": \"SomeSubValue\",\n  \"AnotherSubKey\": \"AnotherSubValue\"\n}"
        );
    }

    #[test]
    fn numbers_booleans_null_and_arrays() {
        let body = slack_body(&message(vec![
            field("n", json!(12)),
            field("b", json!(true)),
            field("z", Value::Null),
            field("a", json!([1, "x"])),
        ]));
        assert_eq!(
            body["text"],
            "n: 12\nb: true\nz: null\na: [\n  1,\n  \"x\"\n]"
        );
    }

    #[test]
    fn metadata_is_optional() {
        let mut plain = message(vec![field("k", json!("v"))]);
        plain.metadata = Metadata::default();
        let body = slack_body(&plain);
        assert!(body.get("username").is_none());
        assert!(body.get("icon_url").is_none());
        assert_eq!(body["color"], "danger");
    }

    #[test]
    fn preferred_channel_tag_sets_the_channel() {
        let mut tagged = message(vec![field("k", json!("v"))]);
        tagged.tags = vec![
            Tag {
                key: "other".into(),
                value: "x".into(),
            },
            Tag {
                key: "slack-preferred-channel".into(),
                value: "#security".into(),
            },
        ];
        assert_eq!(slack_body(&tagged)["channel"], "#security");
    }

    #[test]
    fn markup_is_escaped_in_text_and_blocks() {
        let hostile = "<!channel> <!here> <@U024BE7LH> <https://evil.example|click> & more";
        let mut attack = message(vec![
            field("Error Message", json!(hostile)),
            field("Request Parameters", json!({"key": hostile, hostile: 1})),
            field(hostile, json!("v")),
        ]);
        attack.subject = format!("Error Message: {hostile}");
        let posted = slack_body(&attack).to_string();
        for raw in [
            "<!channel>",
            "<!here>",
            "<@U024BE7LH>",
            "<https://",
            "|click>",
            "& more",
        ] {
            assert!(
                !posted.contains(raw),
                "{raw} reached Slack unescaped: {posted}"
            );
        }
        assert!(posted.contains("&lt;!channel&gt; &lt;!here&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|click&gt; &amp; more"));
        let body = slack_body(&attack);
        assert_eq!(
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .matches("&lt;")
                .count(),
            4
        );
    }

    #[test]
    fn blocks_have_a_header_and_one_section_per_field() {
        let body = slack_body(&message(vec![
            field("Event", json!("GetPolicy")),
            field("Request Parameters", json!({"a": 1})),
        ]));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "Some subject");
        assert_eq!(blocks[1]["text"]["text"], "*Event*: GetPolicy");
        assert_eq!(
            blocks[2]["text"]["text"],
            "*Request Parameters*\n```{\n  \"a\": 1\n}```"
        );
    }

    #[test]
    fn everything_stays_within_slacks_limits() {
        let long = "<&>".repeat(30_000);
        let mut big = message(
            (0..80)
                .map(|i| field(&format!("k{i}"), json!({"v": long})))
                .collect(),
        );
        big.subject = long.clone();
        let body = slack_body(&big);
        assert!(body["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
        let blocks = body["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER_CHARS);
        for block in &blocks[1..] {
            let text = block["text"]["text"].as_str().unwrap();
            assert!(text.chars().count() <= MAX_SECTION_CHARS);
            assert_eq!(text.matches("```").count() % 2, 0, "unbalanced code fence");
            assert!(!text.contains("<"), "raw markup");
        }
        // Cut text never ends inside an entity.
        let text = body["text"].as_str().unwrap();
        assert!(
            text.ends_with("&gt;…") || text.ends_with("&lt;…") || text.ends_with("&amp;…"),
            "{}",
            &text[text.len() - 20..]
        );
    }

    #[test]
    fn unicode_passes_through() {
        let body = slack_body(&message(vec![field("Key", json!("桶/報告 – Grüße 🚀"))]));
        assert_eq!(body["text"], "Key: 桶/報告 – Grüße 🚀");
    }
}
