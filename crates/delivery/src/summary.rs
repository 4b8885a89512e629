//! When a batch holds more groups than one invocation can deliver before its deadline (a
//! flood spread over many principals: one role assumed under hundreds of session names costs
//! an attacker nothing), the least important are folded into one summary instead of being left
//! to come back until they reach the failure queue. The summary names the principals, how many
//! Messages each and which actions, most frequent first, and counts every Message. Nothing
//! high or critical is ever folded.

use std::collections::BTreeMap;

use activity_aware_message::{DIGEST_GROUP_TAG, Message};

use crate::reading::severity;

/// Principals listed one by one in the summary; the rest are counted on one line.
const MAX_LISTED_PRINCIPALS: usize = 60;
/// Actions named for each principal.
const MAX_ACTIONS: usize = 5;

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

/// What a summary says, in the order it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `[Low] 1200 more Messages from 600 principals, folded into one post`.
    pub headline: String,
    /// Every Message folded.
    pub count: usize,
    pub principals: usize,
    /// One line a principal, most Messages first, then `+K more principals (M Messages)`.
    pub lines: Vec<String>,
    /// Why they were folded.
    pub why: String,
}

impl Summary {
    /// The summary of `messages` (not empty), which `service` could not take one by one.
    pub fn of(messages: &[&Message], service: &str) -> Summary {
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
        let mut lines: Vec<String> = ranked
            .iter()
            .take(MAX_LISTED_PRINCIPALS)
            .map(|(key, principal)| line(key, principal))
            .collect();
        if ranked.len() > MAX_LISTED_PRINCIPALS {
            let unlisted: usize = ranked
                .iter()
                .skip(MAX_LISTED_PRINCIPALS)
                .map(|(_, p)| p.count)
                .sum();
            lines.push(format!(
                "+{} more principals ({unlisted} Messages)",
                ranked.len() - MAX_LISTED_PRINCIPALS
            ));
        }
        Summary {
            headline,
            count: messages.len(),
            principals: principals.len(),
            lines,
            why: format!(
                "More groups came than {service} takes before this function's deadline: these, the least severe, are counted here instead of waiting to come back."
            ),
        }
    }
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
