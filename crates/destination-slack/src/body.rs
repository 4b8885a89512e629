//! The Slack incoming-webhook body for a Message: the original's `text` (with its username, icon,
//! colour and channel), plus Block Kit blocks that lay the same fields out for reading.

use crate::layout::{AccountNames, header, headline, message_blocks};
use activity_aware_delivery::digest::{listed, time_span};
use activity_aware_delivery::reading::CUT_MARKER;
use activity_aware_delivery::{Digest, FieldSummary};
pub use activity_aware_delivery::{plain_text, render_value};
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

/// The label of a digest's count, so its text reads `Count: N`.
pub const COUNT_LABEL: &str = "Count";
/// The label of a digest's time span.
pub const TIME_SPAN_LABEL: &str = "Time Span";
/// A value listed in a digest is cut to this many characters.
const MAX_LISTED_VALUE_CHARS: usize = 200;
/// What a digest's block lists of one field's values, at most.
const MAX_LISTED_BLOCK_CHARS: usize = 600;
/// Text a digest's summary may take before the first Message's lines get the rest.
const MAX_SUMMARY_TEXT_CHARS: usize = 24_000;

/// Text for inside a code block: escaped, and no backtick left that could run into another or
/// into the fence and end the block early (a zero-width space parts them).
pub fn escape_code(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len());
    // A backtick first or last would run into the fence around it.
    if escaped.starts_with('`') {
        out.push('\u{200B}');
    }
    let mut chars = escaped.chars().peekable();
    while let Some(character) = chars.next() {
        out.push(character);
        if character == '`' && matches!(chars.peek(), Some('`') | None) {
            out.push('\u{200B}');
        }
    }
    out
}

/// A mrkdwn text object Slack takes literally but for the stack's own markup (`verbatim`): no
/// URL in it becomes a link, no channel name or mention is parsed.
pub(crate) fn mrkdwn(text: impl Into<String>) -> Value {
    json!({"type": "mrkdwn", "text": text.into(), "verbatim": true})
}

/// A value as Slack inline code: nothing in it can bold, strike, quote or link. A backtick is
/// shown as `ˋ` and a line break as a space, so the value cannot end its own code span.
pub fn literal(value: &str) -> String {
    let inert: String = value
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            '\n' | '\r' => ' ',
            other => other,
        })
        .collect();
    if inert.trim().is_empty() {
        return "` `".into();
    }
    format!("`{}`", escape(&inert))
}

/// A label in bold, without formatting characters of its own (a publisher chooses labels).
pub fn bold(label: &str) -> String {
    let plain: String = label
        .chars()
        .filter(|c| !matches!(c, '*' | '_' | '~' | '`'))
        .collect();
    format!("*{}*", escape(&plain))
}

/// Neutralises Slack markup: `<!channel>`, `<@U123>`, `<https://x|label>` and entities become
/// plain text. Everything CloudTrail-derived is attacker-controlled, so everything goes through
/// this; values also go into code spans or blocks ([`literal`], [`escape_code`]), so that no
/// `*`, `_` or `~` of theirs formats either.
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

/// The JSON body to POST to the webhook for one Message.
pub fn slack_body(message: &Message, accounts: &AccountNames) -> Value {
    let text = cut_escaped(&plain_text(message), MAX_TEXT_CHARS);
    let mut blocks = vec![header(&headline(message))];
    blocks.extend(message_blocks(message, accounts, MAX_BLOCKS - blocks.len()));
    body_of(message, text, blocks)
}

/// The JSON body for a digest: the first Message in full, how many Messages it stands for,
/// their time span and every distinct value of the summarised fields with its count.
pub fn digest_body(digest: &Digest<'_>, accounts: &AccountNames) -> Value {
    // Every piece of text below is escaped before it is measured, so the limits hold for
    // what Slack receives.
    let mut summary_lines = vec![format!("{COUNT_LABEL}: {}", digest.count)];
    if let Some(span) = time_span(digest) {
        summary_lines.push(format!("{TIME_SPAN_LABEL}: {}", escape(&span)));
    }
    let fixed: usize = summary_lines
        .iter()
        .map(|line| line.chars().count() + 1)
        .sum();
    let budgets = share_budget(
        &digest
            .fields
            .iter()
            .map(|field| summary_line(field, usize::MAX).chars().count() + 1)
            .collect::<Vec<_>>(),
        MAX_SUMMARY_TEXT_CHARS.saturating_sub(fixed),
    );
    for (field, budget) in digest.fields.iter().zip(budgets) {
        summary_lines.push(summary_line(field, budget.saturating_sub(1)));
    }
    let summary = summary_lines.join("\n");
    let room = MAX_TEXT_CHARS.saturating_sub(summary.chars().count() + 1);
    let text = format!(
        "{}\n{summary}",
        cut_escaped(&plain_text(digest.first), room)
    );

    let mut blocks = vec![header(&headline(digest.first))];
    let mut facts = vec![format!("{}\n{}", bold(COUNT_LABEL), digest.count)];
    if let Some(span) = time_span(digest) {
        facts.push(format!("{}\n{}", bold(TIME_SPAN_LABEL), literal(&span)));
    }
    blocks.push(json!({
        "type": "section",
        "fields": facts.into_iter().map(mrkdwn).collect::<Vec<_>>(),
    }));
    // Summaries first (they are what a digest adds), leaving room for the first Message; when
    // there are more than fit, the last block names the fields left out (the text lists them).
    let summary_room = MAX_BLOCKS.saturating_sub(blocks.len() + 10);
    let shown_fields = if digest.fields.len() > summary_room {
        summary_room.saturating_sub(1)
    } else {
        digest.fields.len()
    };
    for field in &digest.fields[..shown_fields] {
        let heading = format!("{} ({} distinct)\n", bold(&field.key), field.values.len());
        // A few lines on a phone: the most frequent values, then "+K more"; the text beside
        // the blocks lists more.
        let budget = MAX_LISTED_BLOCK_CHARS.min(MAX_SECTION_CHARS - heading.chars().count());
        blocks.push(section(&format!(
            "{heading}{}",
            listed(field, budget, ", ", &show_value)
        )));
    }
    let left_out = &digest.fields[shown_fields..];
    if !left_out.is_empty() {
        let names: Vec<String> = left_out.iter().map(|field| literal(&field.key)).collect();
        blocks.push(section(&format!(
            "*+{} more fields vary* (each listed in the text): {}",
            left_out.len(),
            names.join(", ")
        )));
    }
    blocks.push(json!({"type": "divider"}));
    blocks.extend(message_blocks(
        digest.first,
        accounts,
        MAX_BLOCKS - blocks.len(),
    ));
    body_of(digest.first, text, blocks)
}

/// The keys every body has, in the original's order, around the text and blocks given.
pub(crate) fn body_of(message: &Message, text: String, blocks: Vec<Value>) -> Value {
    let mut body = Map::new();
    if let Some(name) = &message.metadata.source_name {
        body.insert("username".into(), Value::String(name.clone()));
    }
    if let Some(icon) = &message.metadata.source_icon_url {
        body.insert("icon_url".into(), Value::String(icon.clone()));
    }
    body.insert("color".into(), Value::String(COLOR.into()));
    body.insert("text".into(), Value::String(text));
    if let Some(channel) = message.tag(SLACK_PREFERRED_CHANNEL_TAG) {
        body.insert("channel".into(), Value::String(channel.to_owned()));
    }
    body.insert("blocks".into(), Value::Array(blocks));
    // Slack must not fetch what the links in a post point at: they are attacker-controlled.
    body.insert("unfurl_links".into(), Value::Bool(false));
    body.insert("unfurl_media".into(), Value::Bool(false));
    Value::Object(body)
}

/// The same post without its blocks: its text (the original's, and a digest's counts) alone,
/// for a Slack that refused the blocks (400), so that the alert still gets through.
pub fn plain_fallback(body: &Value) -> Value {
    let mut plain = body.clone();
    if let Some(fields) = plain.as_object_mut() {
        fields.remove("blocks");
    }
    plain
}

/// `Event (3 distinct): ListRoles ×3, ListUsers ×1, +1 more (1 Message)`, escaped, at most
/// `max_chars` characters.
fn summary_line(field: &FieldSummary, max_chars: usize) -> String {
    let heading = format!("{} ({} distinct): ", escape(&field.key), field.values.len());
    let budget = max_chars.saturating_sub(heading.chars().count());
    format!("{heading}{}", listed(field, budget, ", ", &show_text))
}

/// A listed value in the text beside the blocks (never rendered as mrkdwn), escaped and cut.
fn show_text(value: &str) -> String {
    cut_escaped(value, MAX_LISTED_VALUE_CHARS)
}

/// A listed value in a block, cut and shown as inline code.
fn show_value(value: &str) -> String {
    let cut: String = value.chars().take(MAX_LISTED_VALUE_CHARS).collect();
    if cut.len() < value.len() {
        literal(&format!("{cut}{CUT_MARKER}"))
    } else {
        literal(value)
    }
}

/// Shares `total` among lines wanting `wanted[i]` each: those wanting less than an equal share
/// get what they want, the rest share what is left equally.
fn share_budget(wanted: &[usize], total: usize) -> Vec<usize> {
    let mut budgets = vec![0; wanted.len()];
    let mut open: Vec<usize> = (0..wanted.len()).collect();
    let mut left = total;
    loop {
        if open.is_empty() {
            return budgets;
        }
        let share = left / open.len();
        let (satisfied, hungry): (Vec<usize>, Vec<usize>) =
            open.iter().partition(|&&i| wanted[i] <= share);
        if satisfied.is_empty() {
            for i in hungry {
                budgets[i] = share;
            }
            return budgets;
        }
        for i in satisfied {
            budgets[i] = wanted[i];
            left -= wanted[i];
        }
        open = hungry;
    }
}

pub(crate) fn section(escaped_text: &str) -> Value {
    json!({
        "type": "section",
        "text": mrkdwn(cut_chars(escaped_text, MAX_SECTION_CHARS)),
    })
}

/// Escapes, then cuts to `max_chars` characters without splitting an entity.
pub(crate) fn cut_escaped(text: &str, max_chars: usize) -> String {
    cut_chars(&escape(text), max_chars)
}

/// Cuts already-escaped text to at most `max_chars` characters, marking the cut, and never leaves
/// half an entity (`&am`) or half a code fence behind.
pub(crate) fn cut_chars(escaped: &str, max_chars: usize) -> String {
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
        Field::new(key, value)
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
        let body = slack_body(
            &message(vec![
                field("AKey", json!("SomeValue")),
                field("AnotherKey", json!("SomeOtherValue")),
            ]),
            &AccountNames::default(),
        );
        assert_eq!(body["username"], "ASource");
        assert_eq!(body["icon_url"], "Some url");
        assert_eq!(body["color"], "danger");
        assert_eq!(body["text"], "AKey: SomeValue\nAnotherKey: SomeOtherValue");
        assert!(body.get("channel").is_none());
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "username",
                "icon_url",
                "color",
                "text",
                "blocks",
                "unfurl_links",
                "unfurl_media"
            ]
        );
        // Slack fetches nothing the post links to.
        assert_eq!(
            (&body["unfurl_links"], &body["unfurl_media"]),
            (&json!(false), &json!(false))
        );
    }

    #[test]
    fn objects_are_pretty_json_in_key_order() {
        let body = slack_body(
            &message(vec![
                field("AKey", json!("SomeValue")),
                field(
                    "AnotherKey",
                    json!({"SomeSubKey": "SomeSubValue", "AnotherSubKey": "AnotherSubValue"}),
                ),
            ]),
            &AccountNames::default(),
        );
        assert_eq!(
            body["text"],
            "AKey: SomeValue\nAnotherKey: {\n  \"SomeSubKey\": \"SomeSubValue\",\n  \"AnotherSubKey\": \"AnotherSubValue\"\n}"
        );
    }

    #[test]
    fn numbers_booleans_null_and_arrays() {
        let body = slack_body(
            &message(vec![
                field("n", json!(12)),
                field("b", json!(true)),
                field("z", Value::Null),
                field("a", json!([1, "x"])),
            ]),
            &AccountNames::default(),
        );
        assert_eq!(
            body["text"],
            "n: 12\nb: true\nz: null\na: [\n  1,\n  \"x\"\n]"
        );
    }

    #[test]
    fn metadata_is_optional() {
        let mut plain = message(vec![field("k", json!("v"))]);
        plain.metadata = Metadata::default();
        let body = slack_body(&plain, &AccountNames::default());
        assert!(body.get("username").is_none());
        assert!(body.get("icon_url").is_none());
        assert_eq!(body["color"], "danger");
    }

    #[test]
    fn preferred_channel_tag_sets_the_channel() {
        let mut tagged = message(vec![field("k", json!("v"))]);
        tagged.tags = vec![
            Tag::new("other", "x"),
            Tag::new("slack-preferred-channel", "#security"),
        ];
        assert_eq!(
            slack_body(&tagged, &AccountNames::default())["channel"],
            "#security"
        );
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
        let posted = slack_body(&attack, &AccountNames::default()).to_string();
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
        let body = slack_body(&attack, &AccountNames::default());
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
    fn blocks_have_a_header_the_facts_and_the_long_values() {
        let body = slack_body(
            &message(vec![
                field("Event", json!("GetPolicy")),
                field("Request Parameters", json!({"a": 1})),
            ]),
            &AccountNames::default(),
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "Some subject");
        assert_eq!(blocks[1]["fields"][0]["text"], "*Action*\n`GetPolicy`");
        assert_eq!(blocks[1]["fields"][0]["verbatim"], true);
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
        let body = slack_body(&big, &AccountNames::default());
        assert!(body["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(
            blocks.len(),
            MAX_BLOCKS,
            "eighty long values fill every block Slack allows"
        );
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER_CHARS);
        test_world::block_kit::assert_valid(&body);
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
    fn text_at_each_limit_is_kept_whole_and_one_past_it_is_cut() {
        for limit in [MAX_HEADER_CHARS, MAX_SECTION_CHARS, MAX_TEXT_CHARS] {
            let at = "é".repeat(limit);
            assert_eq!(cut_chars(&at, limit), at, "{limit} characters fit {limit}");
            let past = format!("{at}x");
            let cut = cut_chars(&past, limit);
            assert_eq!(cut.chars().count(), limit, "cut to exactly {limit}");
            assert!(cut.ends_with(CUT_MARKER));
        }
        // Through the blocks that carry them.
        let header = crate::layout::header(&"h".repeat(MAX_HEADER_CHARS));
        assert_eq!(header["text"]["text"], "h".repeat(MAX_HEADER_CHARS));
        let header = crate::layout::header(&"h".repeat(MAX_HEADER_CHARS + 1));
        assert_eq!(
            header["text"]["text"].as_str().unwrap().chars().count(),
            MAX_HEADER_CHARS
        );
        let at = section(&"s".repeat(MAX_SECTION_CHARS));
        assert_eq!(at["text"]["text"], "s".repeat(MAX_SECTION_CHARS));
        let past = section(&"s".repeat(MAX_SECTION_CHARS + 1));
        assert_eq!(
            past["text"]["text"].as_str().unwrap().chars().count(),
            MAX_SECTION_CHARS
        );
        // An escaped character counts as its entity: `&` at the limit is cut whole, never `&am`.
        let cut = cut_escaped(
            &format!("{}&", "a".repeat(MAX_HEADER_CHARS - 3)),
            MAX_HEADER_CHARS,
        );
        assert_eq!(cut, format!("{}…", "a".repeat(MAX_HEADER_CHARS - 3)));
        // The whole text of a Message exactly at Slack's limit is posted as it is.
        let exact = message(vec![field("K", json!("v".repeat(MAX_TEXT_CHARS - 3)))]);
        let body = slack_body(&exact, &AccountNames::default());
        assert_eq!(
            body["text"].as_str().unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
        assert!(!body["text"].as_str().unwrap().ends_with(CUT_MARKER));
    }

    #[test]
    fn unicode_passes_through() {
        let body = slack_body(
            &message(vec![field("Key", json!("桶/報告 – Grüße 🚀"))]),
            &AccountNames::default(),
        );
        assert_eq!(body["text"], "Key: 桶/報告 – Grüße 🚀");
    }

    mod digests {
        use super::*;
        use activity_aware_delivery::{Digest, Received};
        use activity_aware_message::{DIGEST_FIELD_TAG, DIGEST_GROUP_TAG, EVENT_TIME_TAG};
        use test_world::block_kit::assert_valid;

        fn denial(action: &str, region: &str, second: usize) -> Message {
            let mut denial = message(vec![
                field(
                    "Error Message",
                    json!(format!("not authorized to perform: {action}")),
                ),
                field("Event", json!(action)),
                field("Region", json!(region)),
                field("Request Parameters", json!({"a": action})),
            ]);
            denial.subject = format!("Error Message: not authorized to perform: {action}");
            denial.tags = vec![
                Tag::new(DIGEST_GROUP_TAG, "arn:aws:iam::111122223333:user/mallory"),
                Tag::new(DIGEST_FIELD_TAG, "Event"),
                Tag::new(DIGEST_FIELD_TAG, "Region"),
                Tag::new(
                    EVENT_TIME_TAG,
                    format!("2024-06-02T20:{:02}:{:02}Z", second / 60, second % 60),
                ),
            ];
            denial
        }

        fn body_of_group(messages: &[Message]) -> Value {
            let received: Vec<Received<'_>> = messages
                .iter()
                .map(|message| Received {
                    message,
                    sent_at_ms: None,
                })
                .collect();
            digest_body(&Digest::of(&received), &AccountNames::default())
        }

        fn text(body: &Value) -> &str {
            body["text"].as_str().unwrap()
        }

        #[test]
        fn shows_the_first_message_the_count_the_span_and_each_value() {
            let messages = [
                denial("ListUsers", "us-east-1", 0),
                denial("ListRoles", "eu-west-1", 12),
                denial("ListRoles", "us-east-1", 95),
            ];
            let body = body_of_group(&messages);
            assert_valid(&body);
            assert_eq!(body["username"], "ASource");
            assert_eq!(body["color"], "danger");
            assert_eq!(
                text(&body),
                [
                    plain_text(&messages[0]).as_str(),
                    "Count: 3",
                    "Time Span: 2024-06-02T20:00:00Z to 2024-06-02T20:01:35Z (1 min 35 s)",
                    "Event (2 distinct): ListRoles ×2, ListUsers ×1",
                    "Region (2 distinct): us-east-1 ×2, eu-west-1 ×1",
                ]
                .join("\n")
            );
            let blocks = body["blocks"].as_array().unwrap();
            assert_eq!(
                blocks[0]["text"]["text"], messages[0].subject,
                "no error code: the subject"
            );
            assert_eq!(blocks[1]["fields"][0]["text"], "*Count*\n3");
            assert_eq!(
                blocks[2]["text"]["text"],
                "*Event* (2 distinct)\n`ListRoles` ×2, `ListUsers` ×1"
            );
            assert_eq!(blocks[4]["type"], "divider");
            assert_eq!(blocks[5]["fields"][0]["text"], "*Region*\n`us-east-1`");
            assert_eq!(
                blocks[6]["text"]["text"],
                "*Error Message*\n```not authorized to perform: ListUsers```"
            );
        }

        #[test]
        fn a_flood_of_distinct_values_stays_within_every_limit_and_counts_everything() {
            let messages: Vec<Message> = (0..5_000)
                .map(|i| {
                    denial(
                        &format!("Action{i:04}{}", "x".repeat(150)),
                        &format!("region-{}", i % 7),
                        i,
                    )
                })
                .collect();
            let body = body_of_group(&messages);
            assert_valid(&body);
            let text = text(&body);
            assert!(text.chars().count() <= MAX_TEXT_CHARS);
            assert!(text.contains("Count: 5000"));
            // The shown counts and the "+K more (M Messages)" line cover all 5,000.
            let line = text
                .lines()
                .find(|line| line.starts_with("Event (5000 distinct): "))
                .unwrap();
            let shown = line.matches(" ×1").count();
            let more = format!("+{} more ({} Messages)", 5_000 - shown, 5_000 - shown);
            assert!(line.ends_with(&more), "{}", &line[line.len() - 80..]);
            assert!(shown > 50, "only {shown} actions named in the text");
            let region = text
                .lines()
                .find(|line| line.starts_with("Region (7 distinct): "))
                .unwrap();
            assert!(!region.contains("more"), "{region}");
            let event_block = body["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|block| {
                    block["text"]["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("*Event*"))
                })
                .unwrap();
            let block_text = event_block["text"]["text"].as_str().unwrap();
            let in_block = block_text.matches(" ×1").count();
            assert!(block_text.ends_with(&format!(
                "+{} more ({} Messages)",
                5_000 - in_block,
                5_000 - in_block
            )));
        }

        /// Three denials with fields F0, F1, ... that their digest summarises.
        fn with_summarised_fields(count: usize) -> Vec<Message> {
            let mut messages: Vec<Message> = (0..3)
                .map(|i| denial("ListUsers", "us-east-1", i))
                .collect();
            for message in &mut messages {
                for i in 0..count {
                    message.fields.push(field(&format!("F{i}"), json!(i)));
                    message
                        .tags
                        .push(Tag::new(DIGEST_FIELD_TAG, format!("F{i}")));
                }
            }
            messages
        }

        #[test]
        fn many_summarised_fields_still_fit_fifty_blocks() {
            let messages = with_summarised_fields(80);
            let body = body_of_group(&messages);
            assert_valid(&body);
            let blocks = body["blocks"].as_array().unwrap();
            // The fields without a block of their own are named, and every one is in the text.
            let named = blocks
                .iter()
                .filter_map(|block| block["text"]["text"].as_str())
                .find(|text| text.starts_with("*+"))
                .expect("a block names the fields left out");
            let shown = blocks
                .iter()
                .filter_map(|block| block["text"]["text"].as_str())
                .filter(|text| text.contains(" distinct)\n"))
                .count();
            // Event and Region come first, then F0, F1, ...
            let shown_f = shown - 2;
            assert_eq!(
                named,
                format!(
                    "*+{} more fields vary* (each listed in the text): {}",
                    80 - shown_f,
                    (shown_f..80)
                        .map(|i| format!("`F{i}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
            for i in 0..80 {
                assert!(
                    text(&body).contains(&format!("\nF{i} (1 distinct): {i} ×3")),
                    "F{i}"
                );
            }
        }

        #[test]
        fn summarised_fields_that_fit_each_have_a_block_and_none_is_named_left_out() {
            let messages = with_summarised_fields(30);
            let body = body_of_group(&messages);
            assert_valid(&body);
            let texts: Vec<&str> = body["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|block| block["text"]["text"].as_str())
                .collect();
            assert_eq!(
                texts.iter().filter(|t| t.contains(" distinct)\n")).count(),
                32
            );
            assert!(!texts.iter().any(|t| t.starts_with("*+")));
        }

        #[test]
        fn hostile_values_are_escaped_everywhere() {
            let hostile = "<!channel> <@U024BE7LH> <https://evil.example|click> & more";
            let messages = [
                denial(hostile, hostile, 0),
                denial("ListRoles", "<!here>", 1),
            ];
            let body = body_of_group(&messages);
            assert_valid(&body);
            let posted = body.to_string();
            for raw in [
                "<!channel>",
                "<!here>",
                "<@U024BE7LH>",
                "<https://",
                "& more",
            ] {
                assert!(!posted.contains(raw), "{raw} reached Slack unescaped");
            }
        }

        #[test]
        fn a_huge_first_message_leaves_room_for_the_summary() {
            let mut messages: Vec<Message> = (0..3)
                .map(|i| denial("ListUsers", "us-east-1", i))
                .collect();
            messages[0].fields[3].value = json!({"blob": "y".repeat(100_000)});
            let body = body_of_group(&messages);
            assert_valid(&body);
            assert!(text(&body).contains("\nCount: 3\n"));
        }
    }
}
