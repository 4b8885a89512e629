//! The email for a post, in the reading order of every destination (headline, a table of
//! facts, the long values, small print, the console link), as plain text and as HTML with the
//! same content, in one `multipart/alternative` MIME message.
//!
//! Every value may be attacker-controlled. In HTML each is escaped, and only the console link
//! the Message carries (https) is a link. Both bodies are base64-encoded, so no value can end
//! a part or start one, and the subject is RFC 2047 encoded words, so none can start a header.

use activity_aware_delivery::digest::{listed, time_span};
use activity_aware_delivery::reading::cut;
use activity_aware_delivery::summary::Summary;
use activity_aware_delivery::{AccountNames, Post, Reading, severity};
use activity_aware_message::Severity;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::address::Address;

/// The subject is cut to this many characters (mail clients show far fewer).
const MAX_SUBJECT_CHARS: usize = 200;
/// A long value is cut to this many characters: the event in the console has the rest.
const MAX_LONG_CHARS: usize = 20_000;
/// A listed value in a digest is cut to this many characters.
const MAX_LISTED_VALUE_CHARS: usize = 200;
/// What a digest lists of one field's values, at most.
const MAX_LISTED_CHARS: usize = 2_000;
/// The sender's display name.
const SENDER_NAME: &str = "Activity Aware IDS";
/// Parts are base64: its alphabet has no `_` and no `-`, so no line of a part is this.
const BOUNDARY: &str = "=_activity-aware-ids_alternative";
/// Base64 lines of MIME (RFC 2045) are at most 76 characters.
const BASE64_LINE: usize = 76;

/// One piece of an email, rendered the same way in text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Facts(Vec<(String, String)>),
    /// A value on its own under its label; code (pretty JSON) keeps its layout.
    Long {
        label: String,
        text: String,
        is_code: bool,
    },
    SmallPrint(Vec<(String, String)>),
    Link {
        text: String,
        url: String,
    },
    Note(String),
    Rule,
}

/// An email's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub severity: Option<Severity>,
    headline: String,
    blocks: Vec<Block>,
}

/// The email for one post: a Message, a digest (its counts, the values that vary, then the
/// first Message in full) or a summary of folded groups.
pub fn email_of(post: &Post<'_>, accounts: &AccountNames) -> Email {
    match post {
        Post::Message(message) => {
            let reading = Reading::of(message, accounts);
            Email {
                subject: reading.headline.clone(),
                severity: severity(message),
                headline: reading.headline.clone(),
                blocks: reading_blocks(&reading),
            }
        }
        Post::Digest(digest) => {
            let reading = Reading::of(digest.first, accounts);
            let mut counts = vec![("Count".to_owned(), digest.count.to_string())];
            if let Some(span) = time_span(digest) {
                counts.push(("Time Span".to_owned(), span));
            }
            let mut blocks = vec![Block::Facts(counts)];
            let show = |value: &str| cut(value, MAX_LISTED_VALUE_CHARS);
            for field in &digest.fields {
                blocks.push(Block::Long {
                    label: format!("{} ({} distinct)", field.key, field.values.len()),
                    text: listed(field, MAX_LISTED_CHARS, ", ", &show),
                    is_code: false,
                });
            }
            blocks.push(Block::Rule);
            blocks.push(Block::Note(format!(
                "The first of the {} Messages:",
                digest.count
            )));
            blocks.extend(reading_blocks(&reading));
            Email {
                subject: format!("{} (×{})", reading.headline, digest.count),
                severity: severity(digest.first),
                headline: reading.headline,
                blocks,
            }
        }
        Post::Summary(messages) => {
            let summary = Summary::of(messages, crate::SERVICE);
            Email {
                subject: summary.headline.clone(),
                severity: messages.iter().filter_map(|m| severity(m)).max(),
                headline: summary.headline,
                blocks: vec![
                    Block::Facts(vec![
                        ("Count".to_owned(), summary.count.to_string()),
                        ("Principals".to_owned(), summary.principals.to_string()),
                    ]),
                    Block::Long {
                        label: "Principals and actions".to_owned(),
                        text: cut(&summary.lines.join("\n"), MAX_LONG_CHARS),
                        is_code: false,
                    },
                    Block::Note(summary.why),
                ],
            }
        }
    }
}

fn reading_blocks(reading: &Reading) -> Vec<Block> {
    let mut blocks = vec![Block::Facts(reading.facts.clone())];
    blocks.extend(reading.long.iter().map(|long| Block::Long {
        label: long.label.clone(),
        text: cut(&long.text, MAX_LONG_CHARS),
        is_code: long.is_code,
    }));
    if !reading.small_print.is_empty() {
        blocks.push(Block::SmallPrint(reading.small_print.clone()));
    }
    if let Some(link) = &reading.link {
        blocks.push(Block::Link {
            text: link.text.clone(),
            url: link.url.clone(),
        });
    }
    blocks
}

impl Email {
    /// The headline, for the subject line: one line, cut.
    pub fn subject_line(&self) -> String {
        cut(&one_line(&self.subject), MAX_SUBJECT_CHARS)
    }

    /// The plain text body.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n", one_line(&self.headline));
        for block in &self.blocks {
            text.push('\n');
            match block {
                Block::Facts(facts) | Block::SmallPrint(facts) => {
                    for (label, value) in facts {
                        text.push_str(&format!("{}: {}\n", one_line(label), one_line(value)));
                    }
                }
                Block::Long {
                    label, text: value, ..
                } => {
                    text.push_str(&format!("{}:\n", one_line(label)));
                    // Indented, so that no line of a value passes for a line of the email.
                    for line in value.lines() {
                        text.push_str(&format!("    {}\n", without_controls(line)));
                    }
                }
                Block::Link { text: label, url } => {
                    text.push_str(&format!("{}: {}\n", one_line(label), one_line(url)));
                }
                Block::Note(note) => text.push_str(&format!("{}\n", one_line(note))),
                Block::Rule => text.push_str(&format!("{}\n", "-".repeat(60))),
            }
        }
        text.push_str(&format!("\n-- \n{FOOTER}\n"));
        text
    }

    /// The HTML body: the same content, every value escaped.
    pub fn html(&self) -> String {
        let colour = match self.severity {
            Some(Severity::Critical | Severity::High) => "#b42318",
            Some(Severity::Medium) => "#b54708",
            _ => "#1d2939",
        };
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body style=\"font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #1d2939;\">\n<h2 style=\"color: {colour};\">{title}</h2>\n",
            title = escape(&one_line(&self.headline)),
        );
        for block in &self.blocks {
            match block {
                Block::Facts(facts) => {
                    html.push_str("<table style=\"border-collapse: collapse;\">\n");
                    for (label, value) in facts {
                        html.push_str(&format!(
                            "<tr><th style=\"text-align: left; padding: 2px 12px 2px 0; vertical-align: top;\">{}</th><td style=\"padding: 2px 0;\">{}</td></tr>\n",
                            escape(label),
                            escape(&one_line(value))
                        ));
                    }
                    html.push_str("</table>\n");
                }
                Block::Long {
                    label,
                    text,
                    is_code,
                } => {
                    let font = if *is_code {
                        "font-family: Menlo, Consolas, monospace; "
                    } else {
                        ""
                    };
                    html.push_str(&format!(
                        "<h4 style=\"margin-bottom: 4px;\">{}</h4>\n<pre style=\"{font}white-space: pre-wrap; word-break: break-word; background: #f2f4f7; padding: 8px; margin-top: 0;\">{}</pre>\n",
                        escape(label),
                        escape(&without_controls(text))
                    ));
                }
                Block::SmallPrint(items) => {
                    let line: Vec<String> = items
                        .iter()
                        .map(|(label, value)| {
                            format!("{}: {}", escape(label), escape(&one_line(value)))
                        })
                        .collect();
                    html.push_str(&format!(
                        "<p style=\"color: #667085; font-size: small;\">{}</p>\n",
                        line.join(" &middot; ")
                    ));
                }
                Block::Link { text, url } => {
                    html.push_str(&format!(
                        "<p><a href=\"{}\">{}</a></p>\n",
                        escape(url),
                        escape(text)
                    ));
                }
                Block::Note(note) => {
                    html.push_str(&format!("<p>{}</p>\n", escape(&one_line(note))));
                }
                Block::Rule => html.push_str("<hr>\n"),
            }
        }
        html.push_str(&format!(
            "<p style=\"color: #667085; font-size: small;\">{}</p>\n</body></html>\n",
            escape(FOOTER)
        ));
        html
    }
}

/// Why the recipient gets this, at the end of every email.
const FOOTER: &str = "Sent by Activity Aware IDS to the addresses in its EmailTo parameter.";

/// The whole email, as SES takes it raw: headers, then the text and HTML parts.
pub fn raw_message(email: &Email, from: &Address, to: &[Address]) -> String {
    let recipients: Vec<&str> = to.iter().map(Address::as_str).collect();
    let mut raw = String::new();
    let mut header = |name: &str, value: &str| {
        raw.push_str(name);
        raw.push_str(": ");
        raw.push_str(value);
        raw.push_str("\r\n");
    };
    header("From", &format!("{SENDER_NAME} <{from}>"));
    // One recipient a line: lines stay within RFC 5322's 78 characters.
    header("To", &recipients.join(",\r\n "));
    header("Subject", &encoded_words(&email.subject_line()));
    header("MIME-Version", "1.0");
    // An alert, not a conversation: no vacation replies back to the sender.
    header("Auto-Submitted", "auto-generated");
    header("X-Auto-Response-Suppress", "All");
    header(
        "Content-Type",
        &format!("multipart/alternative;\r\n boundary=\"{BOUNDARY}\""),
    );
    raw.push_str("\r\n");
    for (content_type, body) in [("text/plain", email.text()), ("text/html", email.html())] {
        raw.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Type: {content_type}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        raw.push_str(&base64_lines(body.as_bytes()));
    }
    raw.push_str(&format!("--{BOUNDARY}--\r\n"));
    raw
}

/// RFC 2047 encoded words (UTF-8, base64), each within 75 characters, folded onto lines of
/// their own.
fn encoded_words(text: &str) -> String {
    // 45 bytes make 60 base64 characters: with `=?UTF-8?B?` and `?=`, 72.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|word| format!("=?UTF-8?B?{}?=", STANDARD.encode(word.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut lines = String::with_capacity(encoded.len() + encoded.len() / BASE64_LINE * 2 + 2);
    for line in encoded.as_bytes().chunks(BASE64_LINE) {
        lines.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        lines.push_str("\r\n");
    }
    lines
}

/// One line: every control character (a newline among them) a space.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Lines kept; every other control character a space.
fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// HTML's five special characters, escaped (in text and in attribute values alike).
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_delivery::{Digest, Received};
    use activity_aware_message::{Field, Message, Tag};
    use serde_json::json;

    fn denial(user: &str, event: &str) -> Message {
        let mut message = Message::new(
            "s",
            vec![
                Field::text(
                    "Error Message",
                    format!(
                        "User: arn:aws:iam::111122223333:user/{user} is not authorized to perform: iam:{event}"
                    ),
                ),
                Field::text("Event", event),
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
        message.tags.push(Tag::new("severity", "medium"));
        message
    }

    fn from() -> Address {
        Address::parse("ids@example.com").unwrap()
    }

    fn to() -> Vec<Address> {
        vec![
            Address::parse("oncall@example.com").unwrap(),
            Address::parse("security@example.com").unwrap(),
        ]
    }

    #[test]
    fn text_and_html_say_the_same_in_the_reading_order() {
        let message = denial("mallory", "ListUsers");
        let accounts = AccountNames::parse("111122223333=prod").unwrap();
        let email = email_of(&Post::Message(&message), &accounts);
        assert_eq!(
            email.subject_line(),
            "[Medium] mallory was denied iam:ListUsers"
        );
        let text = email.text();
        let order = [
            "[Medium] mallory was denied iam:ListUsers",
            "User: mallory",
            "Account: prod (111122223333)",
            "Action: ListUsers",
            "Error Message:\n    User: arn:aws:iam::111122223333:user/mallory",
            "Request Parameters:\n    {\n      \"maxItems\": 100\n    }",
            "Source: iam.amazonaws.com",
            "Open in CloudTrail Console: https://us-east-1.console.aws.amazon.com/",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|part| {
                text.find(part)
                    .unwrap_or_else(|| panic!("{part:?} in {text}"))
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
        let html = email.html();
        for part in [
            "<h2 style=\"color: #b54708;\">[Medium] mallory was denied iam:ListUsers</h2>",
            "<th style=\"text-align: left; padding: 2px 12px 2px 0; vertical-align: top;\">Account</th><td style=\"padding: 2px 0;\">prod (111122223333)</td>",
            "&quot;maxItems&quot;: 100",
            "<a href=\"https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1\">Open in CloudTrail Console</a>",
        ] {
            assert!(html.contains(part), "{part:?} in {html}");
        }
    }

    #[test]
    fn attacker_text_never_becomes_markup_a_link_or_a_header() {
        let mut message = denial("mallory", "ListUsers");
        message.fields[0].value = json!(
            "<a href=\"https://evil.example\">click</a> & <script>alert(1)</script>\nSource: forged"
        );
        message.fields.push(Field::text(
            "Role",
            "r\r\nBcc: victim@example.net\r\n\r\n<b>x</b>",
        ));
        let email = email_of(&Post::Message(&message), &AccountNames::default());
        let html = email.html();
        assert!(!html.contains("<a href=\"https://evil"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(
            "&lt;a href=&quot;https://evil.example&quot;&gt;click&lt;/a&gt; &amp; &lt;script&gt;"
        ));
        assert_eq!(html.matches("<a href=").count(), 1, "only the console link");
        // In text, a forged line stays indented under its label.
        assert!(email.text().contains("\n    Source: forged\n"));
        let raw = raw_message(&email, &from(), &to());
        let (headers, _) = raw.split_once("\r\n\r\n").unwrap();
        assert!(!headers.contains("Bcc"), "{headers}");
        assert!(
            !raw.contains("victim@example.net"),
            "values are base64 in the parts"
        );
    }

    #[test]
    fn the_subject_is_encoded_words_of_one_line() {
        let mut message = denial("mallory", "ListUsers");
        message.subject = "Ünïcödé\r\nBcc: x@example.net ".repeat(20);
        message.fields.retain(|field| field.key != "Event");
        let email = email_of(&Post::Message(&message), &AccountNames::default());
        assert_eq!(email.subject_line().chars().count(), 200);
        assert!(!email.subject_line().contains('\n'));
        let raw = raw_message(&email, &from(), &to());
        let subject = raw
            .split("\r\n")
            .skip_while(|line| !line.starts_with("Subject: "))
            .take_while(|line| line.starts_with("Subject: ") || line.starts_with(' '))
            .collect::<Vec<_>>();
        assert!(subject.len() > 1, "long subjects are folded");
        for line in &subject {
            let word = line.trim_start_matches("Subject: ").trim();
            assert!(
                word.starts_with("=?UTF-8?B?") && word.ends_with("?="),
                "{word}"
            );
            assert!(word.len() <= 75, "{word}");
            let payload = &word["=?UTF-8?B?".len()..word.len() - 2];
            assert!(std::str::from_utf8(&STANDARD.decode(payload).unwrap()).is_ok());
        }
    }

    #[test]
    fn a_digest_counts_every_message_lists_what_varies_then_shows_the_first() {
        let messages: Vec<Message> = (0..12)
            .map(|i| denial("mallory", &format!("List{}", i % 4)))
            .collect();
        let received: Vec<Received<'_>> = messages
            .iter()
            .map(|message| Received {
                message,
                sent_at_ms: None,
            })
            .collect();
        let digest = Digest::of(&received);
        let email = email_of(&Post::Digest(digest), &AccountNames::default());
        assert_eq!(
            email.subject_line(),
            "[Medium] mallory was denied iam:List0 (×12)"
        );
        let text = email.text();
        assert!(text.contains("Count: 12\n"), "{text}");
        assert!(
            text.contains("Event (4 distinct):\n    List0 ×3, List1 ×3, List2 ×3, List3 ×3\n"),
            "{text}"
        );
        let first = text.find("The first of the 12 Messages:").unwrap();
        assert!(text[first..].contains("User: mallory"));
        assert!(email.html().contains("<hr>"));
    }

    #[test]
    fn the_message_is_multipart_alternative_with_base64_parts() {
        let message = denial("mallory", "ListUsers");
        let email = email_of(&Post::Message(&message), &AccountNames::default());
        let raw = raw_message(&email, &from(), &to());
        assert!(raw.starts_with(
            "From: Activity Aware IDS <ids@example.com>\r\nTo: oncall@example.com,\r\n security@example.com\r\n"
        ));
        assert!(raw.contains("\r\nAuto-Submitted: auto-generated\r\n"));
        assert!(raw.contains(&format!(
            "Content-Type: multipart/alternative;\r\n boundary=\"{BOUNDARY}\"\r\n\r\n--{BOUNDARY}\r\n"
        )));
        assert!(raw.ends_with(&format!("--{BOUNDARY}--\r\n")));
        assert!(
            raw.lines().all(|line| line.len() <= 78),
            "lines within RFC 5322's 78"
        );
        assert_eq!(raw.matches(&format!("--{BOUNDARY}\r\n")).count(), 2);
    }
}
