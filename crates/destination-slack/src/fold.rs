//! The summary post of groups folded together (the delivery core decides what is folded and
//! what a summary says), in Block Kit.

use activity_aware_delivery::summary::Summary;
use activity_aware_message::Message;
use serde_json::{Value, json};

use crate::body::{
    COUNT_LABEL, MAX_BLOCKS, MAX_SECTION_CHARS, MAX_TEXT_CHARS, body_of, bold, cut_escaped,
    escape_code, mrkdwn, section,
};
use crate::layout::header;

/// The one post that stands for `messages`, every one of them counted.
pub fn summary_body(messages: &[&Message]) -> Value {
    let summary = Summary::of(messages, crate::SERVICE);
    let mut text = format!("{}\n{COUNT_LABEL}: {}\n", summary.headline, summary.count);
    for line in &summary.lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&summary.why);

    let mut blocks = vec![
        header(&summary.headline),
        json!({
            "type": "section",
            "fields": [
                mrkdwn(format!("{}\n{}", bold(COUNT_LABEL), summary.count)),
                mrkdwn(format!("{}\n{}", bold("Principals"), summary.principals)),
            ],
        }),
    ];
    // The lines (principals and actions: attacker's text) as code blocks, as few sections as
    // hold them, within Slack's 50 blocks.
    let fenced = |chunk: &str| section(&format!("```{chunk}```"));
    let mut chunk = String::new();
    for line in &summary.lines {
        let escaped = escape_code(line);
        if !chunk.is_empty()
            && chunk.chars().count() + escaped.chars().count() + 7 > MAX_SECTION_CHARS
        {
            blocks.push(fenced(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(&escaped);
    }
    if !chunk.is_empty() {
        blocks.push(fenced(&chunk));
    }
    blocks.truncate(MAX_BLOCKS - 1);
    blocks
        .push(json!({"type": "context", "elements": [mrkdwn(crate::body::escape(&summary.why))]}));
    body_of(messages[0], cut_escaped(&text, MAX_TEXT_CHARS), blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::DIGEST_GROUP_TAG;
    use activity_aware_message::{Field, Tag};
    use test_world::block_kit::assert_valid;

    fn denial(principal: &str, action: &str, severity: &str) -> Message {
        let mut message = Message::new(
            format!("Error Message: {principal} denied {action}"),
            vec![Field::text("Event", action)],
        );
        message.tags = vec![
            Tag::new(DIGEST_GROUP_TAG, principal),
            Tag::new("severity", severity),
        ];
        message
    }

    #[test]
    fn a_role_under_many_session_names_is_one_line_and_every_message_counts() {
        let mut messages = Vec::new();
        for session in 0..600 {
            let arn = format!("arn:aws:sts::111122223333:assumed-role/probe/s-{session}");
            messages.push(denial(&arn, "ListUsers", "low"));
            messages.push(denial(
                &arn,
                if session % 3 == 0 {
                    "GetPolicy"
                } else {
                    "ListUsers"
                },
                "low",
            ));
        }
        messages.push(denial(
            "arn:aws:iam::111122223333:user/bob",
            "GetObject",
            "medium",
        ));
        let refs: Vec<&Message> = messages.iter().collect();
        let body = summary_body(&refs);
        assert_valid(&body);
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with(
                "[Medium] 1201 more Messages from 2 principals, folded into one post\nCount: 1201\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("arn:aws:sts::111122223333:assumed-role/probe/* (600 sessions) ×1200: ListUsers ×1000, GetPolicy ×200"),
            "{text}"
        );
        assert!(text.contains("arn:aws:iam::111122223333:user/bob ×1: GetObject ×1"));
        assert_eq!(body["unfurl_links"], false);
    }

    #[test]
    fn many_principals_stay_within_slacks_limits_and_are_all_counted() {
        let messages: Vec<Message> = (0..5_000)
            .map(|i| {
                denial(
                    &format!("arn:aws:iam::111122223333:user/u{i}-<!channel>"),
                    "ListUsers",
                    "low",
                )
            })
            .collect();
        let refs: Vec<&Message> = messages.iter().collect();
        let body = summary_body(&refs);
        assert_valid(&body);
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("+4940 more principals (4940 Messages)"),
            "{text:.300}"
        );
        assert!(!body["blocks"].to_string().contains("<!channel>"));
    }
}
