//! When a batch holds more groups than one invocation can post before its deadline (a flood
//! spread over many principals: one role assumed under hundreds of session names costs an
//! attacker nothing), the least important are folded into one summary post instead of being
//! left to come back until they reach the failure queue. The summary names the principals,
//! how many Messages each and which actions, most frequent first, and counts every Message.
//! Nothing high or critical is ever folded.

use std::collections::BTreeMap;

use activity_aware_message::{DIGEST_GROUP_TAG, Message, Severity};
use serde_json::{Value, json};

use crate::body::{
    COUNT_LABEL, MAX_BLOCKS, MAX_SECTION_CHARS, MAX_TEXT_CHARS, body_of, cut_escaped, escape,
    section,
};
use crate::layout::{header, severity};

/// Principals listed one by one in the summary; the rest are counted on one line.
const MAX_LISTED_PRINCIPALS: usize = 60;
/// Actions named for each principal.
const MAX_ACTIONS: usize = 5;

/// Whether a group may be folded into a summary: only below high.
pub fn foldable(message: &Message) -> bool {
    severity(message).is_none_or(|severity| severity < Severity::High)
}

/// Who a Message is about, for the summary: its digest group (a detection's without the
/// detection), the sessions of an assumed role as the role.
fn principal(message: &Message) -> (String, Option<String>) {
    let group = message
        .tag(DIGEST_GROUP_TAG)
        .map(|group| group.split(" · ").next().unwrap_or(group))
        .unwrap_or(message.subject.as_str());
    match group.split_once(":assumed-role/") {
        Some((account, rest)) => match rest.split_once('/') {
            Some((role, session)) => (
                format!("{account}:assumed-role/{role}/*"),
                Some(session.to_owned()),
            ),
            None => (group.to_owned(), None),
        },
        None => (group.to_owned(), None),
    }
}

#[derive(Default)]
struct Principal {
    count: usize,
    sessions: BTreeMap<String, ()>,
    actions: BTreeMap<String, usize>,
}

/// The one post that stands for `messages`, every one of them counted.
pub fn summary_body(messages: &[&Message]) -> Value {
    let mut principals: BTreeMap<String, Principal> = BTreeMap::new();
    for message in messages {
        let (key, session) = principal(message);
        let entry = principals.entry(key).or_default();
        entry.count += 1;
        if let Some(session) = session {
            entry.sessions.insert(session, ());
        }
        let action = message
            .fields
            .iter()
            .find(|field| field.key == "Event")
            .and_then(|field| field.value.as_str())
            .unwrap_or(message.subject.as_str());
        *entry.actions.entry(action.to_owned()).or_default() += 1;
    }
    let mut ranked: Vec<(&String, &Principal)> = principals.iter().collect();
    ranked.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));

    let worst = messages
        .iter()
        .filter_map(|message| severity(message))
        .max();
    let headline = format!(
        "{}{} more Messages from {} principal{}, folded into one post",
        worst
            .map(|severity| format!("[{}] ", severity.label()))
            .unwrap_or_default(),
        messages.len(),
        principals.len(),
        if principals.len() == 1 { "" } else { "s" },
    );
    let lines: Vec<String> = ranked
        .iter()
        .take(MAX_LISTED_PRINCIPALS)
        .map(|(key, principal)| line(key, principal))
        .collect();
    let unlisted: usize = ranked
        .iter()
        .skip(MAX_LISTED_PRINCIPALS)
        .map(|(_, p)| p.count)
        .sum();
    let unlisted_line = (ranked.len() > MAX_LISTED_PRINCIPALS).then(|| {
        format!(
            "+{} more principals ({unlisted} Messages)",
            ranked.len() - MAX_LISTED_PRINCIPALS
        )
    });
    let why = "More groups came than Slack takes before this function's deadline: these, the least severe, are counted here instead of waiting to come back.";

    let mut text = format!("{headline}\n{COUNT_LABEL}: {}\n", messages.len());
    for line in lines.iter().chain(&unlisted_line) {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(why);

    let mut blocks = vec![
        header(&headline),
        json!({
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": format!("*{COUNT_LABEL}*\n{}", messages.len())},
                {"type": "mrkdwn", "text": format!("*Principals*\n{}", principals.len())},
            ],
        }),
    ];
    // The lines, as few sections as hold them, within Slack's 50 blocks.
    let mut chunk = String::new();
    for line in lines.iter().chain(&unlisted_line) {
        let escaped = escape(line);
        if !chunk.is_empty()
            && chunk.chars().count() + escaped.chars().count() + 1 > MAX_SECTION_CHARS
        {
            blocks.push(section(&chunk));
            chunk.clear();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(&escaped);
    }
    if !chunk.is_empty() {
        blocks.push(section(&chunk));
    }
    blocks.truncate(MAX_BLOCKS - 1);
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(why)}]}));
    body_of(messages[0], cut_escaped(&text, MAX_TEXT_CHARS), blocks)
}

fn line(key: &str, principal: &Principal) -> String {
    let sessions = match principal.sessions.len() {
        0 => String::new(),
        1 => " (1 session)".to_owned(),
        n => format!(" ({n} sessions)"),
    };
    let mut actions: Vec<(&String, &usize)> = principal.actions.iter().collect();
    actions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut named: Vec<String> = actions
        .iter()
        .take(MAX_ACTIONS)
        .map(|(action, count)| format!("{action} ×{count}"))
        .collect();
    if actions.len() > MAX_ACTIONS {
        named.push(format!("+{} more", actions.len() - MAX_ACTIONS));
    }
    format!("{key}{sessions} ×{}: {}", principal.count, named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Tag};
    use test_world::block_kit::assert_valid;

    fn denial(principal: &str, action: &str, severity: &str) -> Message {
        let mut message = Message::new(
            format!("Error Message: {principal} denied {action}"),
            vec![Field {
                key: "Event".into(),
                value: json!(action),
            }],
        );
        message.tags = vec![
            Tag {
                key: DIGEST_GROUP_TAG.into(),
                value: principal.into(),
            },
            Tag {
                key: "severity".into(),
                value: severity.into(),
            },
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

    #[test]
    fn high_and_critical_are_never_folded() {
        assert!(foldable(&denial("a", "x", "low")));
        assert!(foldable(&denial("a", "x", "medium")));
        assert!(!foldable(&denial("a", "x", "high")));
        assert!(!foldable(&denial("a", "x", "critical")));
        assert!(foldable(&Message::new("untagged", vec![])));
    }
}
