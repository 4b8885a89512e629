//! Who is probing: the denial Messages of one batch, by principal.

use activity_aware_detections::principals::session_role;
use activity_aware_message::{
    DETECTION_TAG, EVENT_TIME_TAG, Message, PRINCIPAL_TAG, SESSION_ISSUED_TAG,
};
use std::collections::BTreeMap;

/// The detection whose Messages containment counts.
pub const DENIAL_DETECTION: &str = "access-denied";

/// One denial, as its Message tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The SQS message it came in.
    pub message_id: String,
    pub principal: String,
    pub session_issued: Option<String>,
    pub event_time: Option<String>,
    pub event: Option<String>,
    pub source_ip: Option<String>,
}

impl Denial {
    /// The denial a Message tells, when it is one with a principal's ARN.
    pub fn of(message_id: &str, message: &Message) -> Option<Denial> {
        let tag = |key: &str| {
            message
                .tags
                .iter()
                .find(|tag| tag.key == key)
                .map(|tag| tag.value.clone())
        };
        let field = |key: &str| {
            message
                .fields
                .iter()
                .find(|field| field.key == key)
                .and_then(|field| field.value.as_str())
                .map(str::to_owned)
        };
        if tag(DETECTION_TAG).as_deref() != Some(DENIAL_DETECTION) {
            return None;
        }
        Some(Denial {
            message_id: message_id.to_owned(),
            principal: tag(PRINCIPAL_TAG).filter(|arn| arn.starts_with("arn:"))?,
            session_issued: tag(SESSION_ISSUED_TAG),
            event_time: tag(EVENT_TIME_TAG),
            event: field("Event"),
            source_ip: field("Source IP"),
        })
    }
}

/// One principal's denials in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub principal: String,
    pub denials: Vec<Denial>,
}

impl Probe {
    /// Its denials by sessions issued at or after `time` (RFC 3339), or whose session's issue
    /// time is unknown: the ones a revoke at `time` did not already stop.
    pub fn since(&self, time: &str) -> Vec<&Denial> {
        self.denials
            .iter()
            .filter(|denial| {
                denial
                    .session_issued
                    .as_deref()
                    .is_none_or(|issued| !is_before(issued, time))
            })
            .collect()
    }

    /// Each distinct value of `of` with its count, most frequent first, at most `limit`.
    pub fn top(&self, of: impl Fn(&Denial) -> Option<&str>, limit: usize) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for denial in &self.denials {
            if let Some(value) = of(denial) {
                *counts.entry(value).or_default() += 1;
            }
        }
        let mut counted: Vec<(&str, usize)> = counts.into_iter().collect();
        counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = counted
            .iter()
            .take(limit)
            .map(|(value, count)| format!("{value} ({count})"))
            .collect();
        match counted.len().saturating_sub(limit) {
            0 => shown.join(", "),
            more => format!("{} and {more} more", shown.join(", ")),
        }
    }

    /// The first and last event time of its denials.
    pub fn span(&self) -> Option<(String, String)> {
        let mut times: Vec<&str> = self
            .denials
            .iter()
            .filter_map(|denial| denial.event_time.as_deref())
            .collect();
        times.sort_unstable();
        Some((times.first()?.to_string(), times.last()?.to_string()))
    }

    /// The role of a session principal.
    pub fn role(&self) -> Option<&str> {
        session_role(&self.principal).map(|(_, role)| role)
    }
}

/// Whether RFC 3339 time `a` is before `b`. Both are UTC as CloudTrail and this stack write
/// them (`Z`), so comparing the text compares the times, once fractions are aligned.
pub fn is_before(a: &str, b: &str) -> bool {
    let seconds = |time: &str| time.get(..19).unwrap_or(time).to_owned();
    seconds(a) < seconds(b)
}

/// The batch's denials, by principal, the most denied first.
pub fn probes(denials: Vec<Denial>) -> Vec<Probe> {
    let mut by_principal: BTreeMap<String, Vec<Denial>> = BTreeMap::new();
    for denial in denials {
        by_principal
            .entry(denial.principal.clone())
            .or_default()
            .push(denial);
    }
    let mut probes: Vec<Probe> = by_principal
        .into_iter()
        .map(|(principal, denials)| Probe { principal, denials })
        .collect();
    probes.sort_by_key(|probe| std::cmp::Reverse(probe.denials.len()));
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Tag};

    fn denial_message(principal: &str, issued: Option<&str>, event: &str) -> Message {
        let mut message = Message::new("Error Message: denied", vec![Field::text("Event", event)]);
        let mut tags = vec![("detection", "access-denied"), ("principal", principal)];
        if let Some(issued) = issued {
            tags.push(("session-issued", issued));
        }
        message.tags = tags
            .into_iter()
            .map(|(key, value)| Tag {
                key: key.into(),
                value: value.into(),
            })
            .collect();
        message
    }

    #[test]
    fn denials_are_counted_by_principal_and_other_messages_ignored() {
        let mut messages: Vec<Message> = (0..3)
            .map(|i| denial_message("arn:aws:iam::1:user/bob", None, &format!("List{}", i % 2)))
            .collect();
        messages.push(denial_message("arn:aws:iam::1:user/eve", None, "GetUser"));
        let mut other = denial_message("arn:aws:iam::1:user/bob", None, "x");
        other.tags[0].value = "root-activity".into();
        messages.push(other);
        let mut unattributed = denial_message("AWSService s3", None, "x");
        unattributed.tags.retain(|tag| tag.key != "principal");
        messages.push(unattributed);
        let denials = messages
            .iter()
            .enumerate()
            .filter_map(|(i, message)| Denial::of(&i.to_string(), message))
            .collect();
        let probes = probes(denials);
        assert_eq!(
            probes
                .iter()
                .map(|p| (p.principal.as_str(), p.denials.len()))
                .collect::<Vec<_>>(),
            [
                ("arn:aws:iam::1:user/bob", 3),
                ("arn:aws:iam::1:user/eve", 1)
            ]
        );
        assert_eq!(
            probes[0].top(|d| d.event.as_deref(), 1),
            "List0 (2) and 1 more"
        );
    }

    #[test]
    fn denials_of_sessions_issued_before_a_revoke_are_already_stopped() {
        let probe = Probe {
            principal: "arn:aws:sts::1:assumed-role/app/i-1".into(),
            denials: [
                Some("2026-12-03T09:00:00Z"),
                Some("2026-12-03T11:00:00.500Z"),
                None,
            ]
            .iter()
            .enumerate()
            .map(|(i, issued)| {
                Denial::of(
                    &i.to_string(),
                    &denial_message("arn:aws:sts::1:assumed-role/app/i-1", *issued, "x"),
                )
                .unwrap()
            })
            .collect(),
        };
        assert_eq!(probe.role(), Some("app"));
        let since: Vec<&str> = probe
            .since("2026-12-03T10:00:00Z")
            .iter()
            .map(|d| d.message_id.as_str())
            .collect();
        assert_eq!(since, ["1", "2"]);
    }
}
