//! The Teams Workflows webhook body for a post: one Adaptive Card (1.4) in the reading order of
//! the Slack post (headline, facts, long values, small print, a button to the console), digests
//! and summaries included, within Teams' 28 KB a request.
//!
//! Every value is attacker-controlled, so none goes where Teams reads markup: all text is in
//! `RichTextBlock` `TextRun`s, which Teams renders as plain text (a `TextBlock` or a `FactSet`
//! would render Markdown, links included), and `{{` is parted so that no value becomes a
//! `DATE()` or `TIME()` function. Only a console link the Message carries (https) is a button.

use activity_aware_delivery::digest::{listed, time_span};
use activity_aware_delivery::reading::cut;
use activity_aware_delivery::summary::Summary;
use activity_aware_delivery::{AccountNames, Digest, Post, Reading, severity};
use activity_aware_message::{Message, Severity};
use serde_json::{Value, json};

/// Teams answers 413 to a request over 28 KB; stop a little short of 28,000 bytes.
pub const MAX_REQUEST_BYTES: usize = 27_500;
/// The Adaptive Card version the cards declare (Teams renders 1.5; 1.4 is enough).
pub const CARD_VERSION: &str = "1.4";
/// How much of a long value a card shows before the limit forces it shorter.
const MAX_LONG_CHARS: usize = 3_000;
/// The fewest characters of a long value a card cut to fit still shows.
const MIN_LONG_CHARS: usize = 100;
/// A listed value in a digest is cut to this many characters.
const MAX_LISTED_VALUE_CHARS: usize = 200;
/// What a digest lists of one field's values, at most.
const MAX_LISTED_CHARS: usize = 600;
/// Headline and facts are cut to this many characters.
const MAX_HEADLINE_CHARS: usize = 300;
const MAX_FACT_CHARS: usize = 500;
const MAX_SMALL_PRINT_CHARS: usize = 2_000;

/// The webhook body for one post, at most [`MAX_REQUEST_BYTES`] serialised: long values are
/// cut shorter until it fits, and when even the shortest does not, the card keeps its headline,
/// facts and link and says it was cut.
pub fn teams_body(post: &Post<'_>, accounts: &AccountNames) -> Value {
    let mut long_chars = MAX_LONG_CHARS;
    loop {
        let body = envelope(card(post, accounts, long_chars, true));
        if serialised_len(&body) <= MAX_REQUEST_BYTES {
            return body;
        }
        if long_chars <= MIN_LONG_CHARS {
            let body = envelope(card(post, accounts, 0, false));
            if serialised_len(&body) <= MAX_REQUEST_BYTES {
                return body;
            }
            return envelope(headline_only(post.first()));
        }
        long_chars = (long_chars / 2).max(MIN_LONG_CHARS);
    }
}

fn serialised_len(body: &Value) -> usize {
    serde_json::to_vec(body).map_or(usize::MAX, |bytes| bytes.len())
}

/// The Workflows webhook's message: one Adaptive Card attachment.
fn envelope(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn card(post: &Post<'_>, accounts: &AccountNames, long_chars: usize, with_detail: bool) -> Value {
    let mut body = Vec::new();
    let mut actions = Vec::new();
    match post {
        Post::Message(message) => {
            message_elements(
                message,
                accounts,
                long_chars,
                with_detail,
                &mut body,
                &mut actions,
            );
        }
        Post::Digest(digest) => {
            body.push(headline_block(
                &Reading::of(digest.first, accounts).headline,
                severity(digest.first),
            ));
            body.extend(digest_elements(digest));
            let mut first = Vec::new();
            message_elements(
                digest.first,
                accounts,
                long_chars,
                with_detail,
                &mut first,
                &mut actions,
            );
            // The first Message in full below the digest's counts, its headline already shown.
            first.remove(0);
            body.push(json!({"type": "Container", "separator": true, "items": first}));
        }
        Post::Summary(messages) => {
            let summary = Summary::of(messages, crate::SERVICE);
            let worst = messages
                .iter()
                .filter_map(|message| severity(message))
                .max();
            body.push(headline_block(&summary.headline, worst));
            body.push(fact("Count", &summary.count.to_string()));
            body.push(fact("Principals", &summary.principals.to_string()));
            let lines = summary.lines.join("\n");
            body.push(rich(vec![run(&cut(
                &lines,
                long_chars.max(MIN_LONG_CHARS) * 4,
            ))]));
            body.push(small_print(&summary.why));
        }
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    card
}

fn message_elements(
    message: &Message,
    accounts: &AccountNames,
    long_chars: usize,
    with_detail: bool,
    body: &mut Vec<Value>,
    actions: &mut Vec<Value>,
) {
    let reading = Reading::of(message, accounts);
    body.push(headline_block(&reading.headline, severity(message)));
    for (name, value) in &reading.facts {
        body.push(fact(name, value));
    }
    if with_detail {
        for long in &reading.long {
            body.push(rich(vec![bold(&long.label)]));
            let mut text = run(&cut(&long.text, long_chars));
            if long.is_code {
                text["fontType"] = json!("Monospace");
            }
            body.push(rich(vec![text]));
        }
        if !reading.small_print.is_empty() {
            let line: Vec<String> = reading
                .small_print
                .iter()
                .map(|(label, value)| format!("{label}: {value}"))
                .collect();
            body.push(small_print(&line.join("  ·  ")));
        }
    } else {
        body.push(small_print(
            "Cut to fit Teams' 28 KB: the long values and small print are left out; the event in the console has them.",
        ));
    }
    if let Some(link) = &reading.link {
        actions.push(json!({
            "type": "Action.OpenUrl",
            "title": cut(&link.text, 80),
            "url": link.url,
        }));
    }
}

fn digest_elements(digest: &Digest<'_>) -> Vec<Value> {
    let mut elements = vec![fact("Count", &digest.count.to_string())];
    if let Some(span) = time_span(digest) {
        elements.push(fact("Time Span", &span));
    }
    let show = |value: &str| cut(value, MAX_LISTED_VALUE_CHARS);
    for field in &digest.fields {
        let heading = format!("{} ({} distinct): ", field.key, field.values.len());
        elements.push(rich(vec![
            bold(&heading),
            run(&listed(field, MAX_LISTED_CHARS, ", ", &show)),
        ]));
    }
    elements
}

fn headline_only(message: &Message) -> Value {
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [
            headline_block(&activity_aware_delivery::headline(message), severity(message)),
            small_print("Cut to fit Teams' 28 KB: only the headline is left; the event in the console has the rest."),
        ],
    })
}

/// The headline, large and bold, coloured by severity.
fn headline_block(headline: &str, severity: Option<Severity>) -> Value {
    let color = match severity {
        Some(Severity::Critical | Severity::High) => "Attention",
        Some(Severity::Medium) => "Warning",
        _ => "Default",
    };
    let mut text = run(&cut(headline, MAX_HEADLINE_CHARS));
    text["weight"] = json!("Bolder");
    text["size"] = json!("Large");
    text["color"] = json!(color);
    rich(vec![text])
}

fn fact(name: &str, value: &str) -> Value {
    rich(vec![
        bold(&format!("{name}: ")),
        run(&cut(value, MAX_FACT_CHARS)),
    ])
}

fn small_print(text: &str) -> Value {
    let mut text = run(&cut(text, MAX_SMALL_PRINT_CHARS));
    text["isSubtle"] = json!(true);
    text["size"] = json!("Small");
    let mut block = rich(vec![text]);
    block["spacing"] = json!("Medium");
    block
}

fn rich(inlines: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": inlines})
}

fn bold(text: &str) -> Value {
    let mut run = run(text);
    run["weight"] = json!("Bolder");
    run
}

/// A run of plain text: no Markdown is read in it; `{{` is parted by a zero-width space so
/// that no value turns into a date or time function.
fn run(text: &str) -> Value {
    json!({"type": "TextRun", "text": text.replace("{{", "{\u{200B}{")})
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_delivery::{Digest, Received};
    use activity_aware_message::{Field, Tag};

    fn denial(user: &str) -> Message {
        let mut message = Message::new(
            "s",
            vec![
                Field::text(
                    "Error Message",
                    "User: arn:aws:iam::111122223333:user/mallory is not authorized to perform: iam:ListUsers",
                ),
                Field::text("Event", "ListUsers"),
                Field::text("Source", "iam.amazonaws.com"),
                Field::text("Recipient Account ID", "111122223333"),
                Field::text("Username", user),
                Field::new("Request Parameters", json!({"maxItems": 100})),
                Field::text("Error Code", "AccessDenied"),
                Field::text(
                    "CloudTrail Console",
                    "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1",
                ),
            ],
        );
        message.tags.push(Tag::new("severity", "low"));
        message
    }

    fn card_of(body: &Value) -> &Value {
        &body["attachments"][0]["content"]
    }

    /// Every `text` in the card, in order.
    fn texts(value: &Value) -> Vec<String> {
        let mut found = Vec::new();
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("text", Value::String(text)) => found.push(text.clone()),
                        _ => found.extend(texts(value)),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| found.extend(texts(item))),
            _ => {}
        }
        found
    }

    #[test]
    fn a_message_reads_headline_facts_long_values_small_print_then_the_button() {
        let message = denial("mallory");
        let accounts = AccountNames::parse("111122223333=prod").unwrap();
        let body = teams_body(&Post::Message(&message), &accounts);
        assert_eq!(body["type"], "message");
        assert_eq!(
            body["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = card_of(&body);
        assert_eq!(card["version"], "1.4");
        let texts = texts(card);
        assert_eq!(texts[0], "[Low] mallory was denied iam:ListUsers");
        let position = |text: &str| {
            texts
                .iter()
                .position(|t| t == text)
                .unwrap_or_else(|| panic!("{text} in {texts:?}"))
        };
        assert!(position("User: ") < position("Account: "));
        assert_eq!(texts[position("Account: ") + 1], "prod (111122223333)");
        assert!(position("Action: ") < position("Error Message"));
        assert!(position("Error Message") < position("Request Parameters"));
        assert!(
            texts
                .last()
                .unwrap()
                .starts_with("Source: iam.amazonaws.com")
        );
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(card["actions"][0]["title"], "Open in CloudTrail Console");
        // No element that Teams reads Markdown in.
        let text = card.to_string();
        assert!(!text.contains("\"TextBlock\"") && !text.contains("\"FactSet\""));
    }

    #[test]
    fn hostile_values_stay_plain_text() {
        let message =
            denial("[click me](https://evil.example) **now** {{DATE(2017-02-14T06:08:00Z)}}");
        let body = teams_body(&Post::Message(&message), &AccountNames::default());
        let card = card_of(&body);
        let texts = texts(card);
        assert!(
            texts
                .iter()
                .any(|t| t.contains("[click me](https://evil.example) **now**"))
        );
        assert!(!card.to_string().contains("{{DATE"));
        // The only URL that is a link is the Message's console link.
        assert_eq!(card["actions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_huge_message_is_cut_to_fit_28_kb() {
        let mut message = denial("mallory");
        message.fields.push(Field::new(
            "Request Parameters",
            json!({"policy": "x".repeat(200_000)}),
        ));
        for index in 0..200 {
            message
                .fields
                .push(Field::text(format!("Extra {index}"), "y".repeat(2_000)));
        }
        let body = teams_body(&Post::Message(&message), &AccountNames::default());
        assert!(serialised_len(&body) <= MAX_REQUEST_BYTES);
        assert_eq!(
            texts(card_of(&body))[0],
            "[Low] mallory was denied iam:ListUsers"
        );
    }

    #[test]
    fn a_digest_counts_every_message_and_lists_what_varies() {
        let messages: Vec<Message> = (0..40)
            .map(|i| denial(&format!("user-{}", i % 4)))
            .collect();
        let received: Vec<Received<'_>> = messages
            .iter()
            .map(|message| Received {
                message,
                sent_at_ms: Some(1_717_359_392_000),
            })
            .collect();
        let digest = Digest::of(&received);
        let body = teams_body(&Post::Digest(digest), &AccountNames::default());
        let texts = texts(card_of(&body));
        assert_eq!(
            texts.iter().filter(|t| t.starts_with("[Low] ")).count(),
            1,
            "{texts:?}"
        );
        let count = texts.iter().position(|t| t == "Count: ").unwrap();
        assert_eq!(texts[count + 1], "40");
        let users = texts
            .iter()
            .position(|t| t == "Username (4 distinct): ")
            .unwrap();
        assert_eq!(
            texts[users + 1],
            "user-0 ×10, user-1 ×10, user-2 ×10, user-3 ×10"
        );
    }

    #[test]
    fn a_summary_counts_every_message() {
        let messages: Vec<Message> = (0..300)
            .map(|i| {
                let mut message = denial(&format!("user-{i}"));
                message.tags.push(Tag::new(
                    "digest-group",
                    format!("arn:aws:iam::1:user/u{i}"),
                ));
                message
            })
            .collect();
        let refs: Vec<&Message> = messages.iter().collect();
        let body = teams_body(&Post::Summary(refs), &AccountNames::default());
        assert!(serialised_len(&body) <= MAX_REQUEST_BYTES);
        let texts = texts(card_of(&body));
        assert!(
            texts[0].starts_with("[Low] 300 more Messages from 300 principals"),
            "{}",
            texts[0]
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("Teams takes before this function's deadline"))
        );
    }
}
