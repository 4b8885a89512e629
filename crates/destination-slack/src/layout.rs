//! How a Message reads in Slack, read in two seconds: the delivery core's [`Reading`] (headline,
//! facts side by side, long values below, the rest in small print, a button to the event in the
//! console) in Block Kit, every value escaped and cut to Slack's limits. The `text` beside the
//! blocks stays the original's.

pub use activity_aware_delivery::accounts::AccountNames;
pub use activity_aware_delivery::reading::{Reading, field_text, headline, severity};
use serde_json::{Value, json};

use crate::body::{bold, cut_chars, cut_escaped, escape_code, literal, mrkdwn, section};

/// Slack rejects a section field's text beyond 2,000 characters.
const MAX_FACT_CHARS: usize = 2_000;
/// A context block's text element: kept under Slack's 2,000 characters.
const MAX_CONTEXT_CHARS: usize = 2_000;
/// A button's text: Slack takes 75 characters.
const MAX_BUTTON_TEXT_CHARS: usize = 75;
/// JSON values (request parameters) are trimmed to this much in their code block; the text
/// beside the blocks keeps them whole (within its own limit).
const MAX_CODE_CHARS: usize = 1_500;
/// Other long values (an error message, a description) in their code block.
const MAX_LONG_TEXT_CHARS: usize = 2_900;

pub fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut_escaped(text, crate::body::MAX_HEADER_CHARS), "emoji": false},
    })
}

/// The blocks of one Message below its header, in at most `room` blocks.
pub fn message_blocks(
    message: &activity_aware_message::Message,
    accounts: &AccountNames,
    room: usize,
) -> Vec<Value> {
    let reading = Reading::of(message, accounts);
    let mut blocks = Vec::new();
    if !reading.facts.is_empty() {
        blocks.push(json!({
            "type": "section",
            "fields": reading.facts.iter().map(|(name, value)| mrkdwn(
                cut_chars(&format!("{}\n{}", bold(name), literal(value)), MAX_FACT_CHARS),
            )).collect::<Vec<_>>(),
        }));
    }
    // Long values as code blocks: whatever they hold stays text.
    for long in &reading.long {
        let limit = if long.is_code {
            MAX_CODE_CHARS
        } else {
            MAX_LONG_TEXT_CHARS
        };
        let code = cut_chars(&escape_code(&long.text), limit);
        blocks.push(section(&format!("{}\n```{code}```", bold(&long.label))));
    }
    if !reading.small_print.is_empty() {
        let small_print: Vec<String> = reading
            .small_print
            .iter()
            .map(|(label, value)| format!("{}: {}", bold(label), literal(value)))
            .collect();
        blocks.push(json!({
            "type": "context",
            "elements": [mrkdwn(cut_chars(&small_print.join("  ·  "), MAX_CONTEXT_CHARS))],
        }));
    }
    if let Some(link) = &reading.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": cut_escaped(&link.text, MAX_BUTTON_TEXT_CHARS), "emoji": false},
                "url": link.url,
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
    use activity_aware_message::{Field, Message, Metadata};
    use test_world::block_kit::assert_valid;

    fn message(subject: &str, fields: &[(&str, Value)]) -> Message {
        Message {
            subject: subject.into(),
            fields: fields
                .iter()
                .map(|(key, value)| Field::new(*key, value.clone()))
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

    /// A mrkdwn text with its code spans and blocks taken out: what Slack would format.
    fn formatted_part(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        loop {
            let fence = rest.find("```");
            let tick = rest.find('`');
            match (fence, tick) {
                (Some(at), _) if tick == Some(at) => {
                    out.push_str(&rest[..at]);
                    let after = &rest[at + 3..];
                    let end = after.find("```").expect("a closed code block");
                    rest = &after[end + 3..];
                }
                (_, Some(at)) => {
                    out.push_str(&rest[..at]);
                    let after = &rest[at + 1..];
                    let end = after.find('`').expect("a closed code span");
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str(rest);
                    return out;
                }
            }
        }
    }

    #[test]
    fn attacker_text_never_formats_links_or_mentions() {
        // A failed console sign-in's user agent: anyone on the internet writes it.
        let agent = "Mozilla <https://evil.example|Reset your MFA> *Severity*\nLow @channel <!here> https://evil.example/x _it_ ~gone~ `tick`";
        let mut hostile = denial();
        hostile.fields.push(Field::text("User Agent", agent));
        hostile.fields.push(Field::text("Description", agent));
        hostile.fields[5].value = json!(agent);
        let blocks = message_blocks(&hostile, &AccountNames::default(), 50);
        assert_valid(&json!({"text": "t", "blocks": blocks}));
        let mut mrkdwn_texts = Vec::new();
        for block in &blocks {
            let texts = [&block["text"]]
                .into_iter()
                .chain(block["fields"].as_array().into_iter().flatten())
                .chain(block["elements"].as_array().into_iter().flatten());
            for text in texts {
                if text["type"] == "mrkdwn" {
                    assert_eq!(text["verbatim"], true, "{text}");
                    mrkdwn_texts.push(text["text"].as_str().unwrap().to_owned());
                }
            }
        }
        assert!(mrkdwn_texts.len() >= 4);
        for text in &mrkdwn_texts {
            let formatted = formatted_part(text);
            for never in [
                "evil",
                "@channel",
                "here",
                "_it_",
                "~gone~",
                "Severity*\nLow",
            ] {
                assert!(!formatted.contains(never), "{never} formats in {text:?}");
            }
            assert!(!text.contains('<'), "{text}");
        }
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
                "*User*\n`mallory`",
                "*Account*\n`prod (111122223333)`",
                "*Region*\n`us-east-1`",
                "*Time*\n`2024-06-02T20:16:32Z`",
                "*Source IP*\n`203.0.113.7`",
                "*Error Code*\n`AccessDenied`",
                "*Action*\n`ListUsers`",
            ]
        );
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Error Message*\n```User: arn:aws:iam::111122223333:user/mallory")
        );
        assert_eq!(
            blocks[2]["text"]["text"],
            "*Request Parameters*\n```{\n  \"maxItems\": 100\n}```"
        );
        assert_eq!(
            blocks[3]["elements"][0]["text"],
            "*Source*: `iam.amazonaws.com`  ·  *User Account ID*: `prod (111122223333)`  ·  *User ARN*: `arn:aws:iam::111122223333:user/mallory`  ·  *Event ID*: `57b719ad-f2fa-4d18-bd84-000000000001`"
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
}
