//! The PagerDuty Events API v2 event for a post: `trigger`, a `dedup_key` stable per digest
//! group and detection (so a probe is one incident, however many Messages it makes), a summary
//! of at most 1,024 characters, the severity PagerDuty knows, the fields as `custom_details`
//! and the console link.

use activity_aware_delivery::digest::{listed, time_span};
use activity_aware_delivery::reading::cut;
use activity_aware_delivery::summary::Summary;
use activity_aware_delivery::{AccountNames, Post, Reading, severity};
use activity_aware_message::time::parse_rfc3339_ms;
use activity_aware_message::{DETECTION_TAG, DIGEST_GROUP_TAG, EVENT_TIME_TAG, Message, Severity};
use serde_json::{Map, Value, json};

/// PagerDuty's limit on `payload.summary`.
pub const MAX_SUMMARY_CHARS: usize = 1_024;
/// PagerDuty's limit on `dedup_key`.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// A value in `custom_details` is cut to this many characters (PagerDuty takes 512 KB an event).
const MAX_DETAIL_CHARS: usize = 4_000;
const MAX_LISTED_VALUE_CHARS: usize = 200;
const MAX_LISTED_CHARS: usize = 1_000;

/// The severity PagerDuty knows for a Message's: critical, error, warning or info.
pub fn pagerduty_severity(severity: Option<Severity>) -> &'static str {
    match severity {
        Some(Severity::Critical) => "critical",
        Some(Severity::High) => "error",
        Some(Severity::Medium) | None => "warning",
        Some(Severity::Low | Severity::Info) => "info",
    }
}

/// How long one incident gathers a group's triggers: a probe is one incident, but an incident
/// left open does not swallow the same principal's next attack, days later.
pub const DEDUP_WINDOW_MS: i64 = 4 * 3_600_000;

/// Stable for the same digest group (the principal, for a probe) and detection within a
/// [`DEDUP_WINDOW_MS`] window of the event's time, and for the same Message when it has no
/// group: PagerDuty folds every trigger with it into one incident.
pub fn dedup_key(message: &Message) -> String {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64)
    };
    let at = message
        .tag(EVENT_TIME_TAG)
        .and_then(parse_rfc3339_ms)
        .unwrap_or_else(now);
    let window = at.div_euclid(DEDUP_WINDOW_MS).to_string();
    let parts = match message.tag(DIGEST_GROUP_TAG) {
        Some(group) => vec![
            "group",
            group,
            message.tag(DETECTION_TAG).unwrap_or_default(),
            message.metadata.source_name.as_deref().unwrap_or_default(),
            &window,
        ],
        None => vec!["message", &message.subject],
    };
    let text = serde_json::to_string(&parts).expect("strings serialise");
    let text = match parts[0] {
        "message" => format!("{text}{}", message.to_json()),
        _ => text,
    };
    format!("activity-aware-ids-{:016x}", fnv1a(text.as_bytes()))
}

/// FNV-1a, 64 bits: stable across builds and releases (unlike std's hasher), which a key
/// PagerDuty keeps between invocations needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The event to enqueue for one post.
pub fn pagerduty_event(post: &Post<'_>, routing_key: &str, accounts: &AccountNames) -> Value {
    let first = post.first();
    let (summary, details, worst) = match post {
        Post::Message(message) => {
            let reading = Reading::of(message, accounts);
            (
                reading.headline.clone(),
                reading_details(&reading),
                severity(message),
            )
        }
        Post::Digest(digest) => {
            let reading = Reading::of(digest.first, accounts);
            let mut details = Map::new();
            details.insert("Count".into(), json!(digest.count));
            if let Some(span) = time_span(digest) {
                details.insert("Time Span".into(), json!(span));
            }
            let show = |value: &str| cut(value, MAX_LISTED_VALUE_CHARS);
            for field in &digest.fields {
                details.insert(
                    format!("{} ({} distinct)", field.key, field.values.len()),
                    json!(listed(field, MAX_LISTED_CHARS, ", ", &show)),
                );
            }
            details.extend(reading_details(&reading));
            (
                format!("{} (×{})", reading.headline, digest.count),
                details,
                severity(digest.first),
            )
        }
        Post::Summary(messages) => {
            let summary = Summary::of(messages, crate::SERVICE);
            let mut details = Map::new();
            details.insert("Count".into(), json!(summary.count));
            details.insert("Principals".into(), json!(summary.principals));
            details.insert(
                "Principals and actions".into(),
                json!(cut(&summary.lines.join("\n"), MAX_DETAIL_CHARS)),
            );
            details.insert("Why folded".into(), json!(summary.why));
            let worst = messages
                .iter()
                .filter_map(|message| severity(message))
                .max();
            (summary.headline, details, worst)
        }
    };
    let mut payload = json!({
        "summary": cut(&summary, MAX_SUMMARY_CHARS),
        "source": source(first, accounts),
        "severity": pagerduty_severity(worst),
        "component": first.metadata.source_name.clone().unwrap_or_else(|| "Activity Aware IDS".into()),
        "custom_details": details,
    });
    if let Some(detection) = first.tag(DETECTION_TAG) {
        payload["class"] = json!(cut(detection, 255));
    }
    if let Some(time) = first
        .tag(EVENT_TIME_TAG)
        .filter(|time| parse_rfc3339_ms(time).is_some())
    {
        payload["timestamp"] = json!(time);
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(first),
        "client": "Activity Aware IDS",
        "payload": payload,
    });
    if let Some(link) = Reading::of(first, accounts).link {
        event["links"] = json!([{"href": link.url, "text": link.text}]);
    }
    event
}

fn reading_details(reading: &Reading) -> Map<String, Value> {
    let mut details = Map::new();
    for (name, value) in &reading.facts {
        details.insert(name.clone(), json!(cut(value, MAX_DETAIL_CHARS)));
    }
    for long in &reading.long {
        details.insert(long.label.clone(), json!(cut(&long.text, MAX_DETAIL_CHARS)));
    }
    for (label, value) in &reading.small_print {
        details
            .entry(label.clone())
            .or_insert_with(|| json!(cut(value, MAX_DETAIL_CHARS)));
    }
    details
}

/// Where it happened: the account (named when known), else the Message's source.
fn source(message: &Message, accounts: &AccountNames) -> String {
    let account = ["Recipient Account ID", "Account"]
        .iter()
        .find_map(|key| activity_aware_delivery::reading::field_text(message, key));
    match (account, message.metadata.source_name.as_deref()) {
        (Some(account), _) => format!("AWS account {}", accounts.label(account)),
        (None, Some(source)) => cut(source, 255),
        (None, None) => "Activity Aware IDS".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_delivery::{Digest, Received};
    use activity_aware_message::{Field, Tag};

    fn denial(user: &str, group: Option<&str>) -> Message {
        let mut message = Message::new(
            "s",
            vec![
                Field::text("Event", "ListUsers"),
                Field::text("Source", "iam.amazonaws.com"),
                Field::text("Recipient Account ID", "111122223333"),
                Field::text("Username", user),
                Field::text("Error Code", "AccessDenied"),
                Field::new("Request Parameters", json!({"maxItems": 100})),
                Field::text(
                    "CloudTrail Console",
                    "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1",
                ),
            ],
        );
        message.tags.push(Tag::new("severity", "high"));
        message
            .tags
            .push(Tag::new("event-time", "2024-06-02T20:16:32Z"));
        if let Some(group) = group {
            message.tags.push(Tag::new("digest-group", group));
            message.tags.push(Tag::new("detection", "access-denied"));
        }
        message
    }

    #[test]
    fn an_event_has_every_required_field_within_its_limits() {
        let message = denial("mallory", None);
        let accounts = AccountNames::parse("111122223333=prod").unwrap();
        let event = pagerduty_event(&Post::Message(&message), "R0UT1NGKEY", &accounts);
        assert_eq!(event["routing_key"], "R0UT1NGKEY");
        assert_eq!(event["event_action"], "trigger");
        assert_eq!(
            event["payload"]["summary"],
            "[High] mallory was denied iam:ListUsers"
        );
        assert_eq!(event["payload"]["severity"], "error");
        assert_eq!(
            event["payload"]["source"],
            "AWS account prod (111122223333)"
        );
        assert_eq!(event["payload"]["timestamp"], "2024-06-02T20:16:32Z");
        assert_eq!(event["payload"]["custom_details"]["User"], "mallory");
        assert_eq!(
            event["payload"]["custom_details"]["Request Parameters"],
            "{\n  \"maxItems\": 100\n}"
        );
        assert_eq!(event["links"][0]["text"], "Open in CloudTrail Console");
        assert!(event["dedup_key"].as_str().unwrap().len() <= MAX_DEDUP_KEY_CHARS);
    }

    #[test]
    fn severities_map_to_pagerdutys() {
        assert_eq!(pagerduty_severity(Some(Severity::Critical)), "critical");
        assert_eq!(pagerduty_severity(Some(Severity::High)), "error");
        assert_eq!(pagerduty_severity(Some(Severity::Medium)), "warning");
        assert_eq!(pagerduty_severity(Some(Severity::Low)), "info");
        assert_eq!(pagerduty_severity(Some(Severity::Info)), "info");
    }

    #[test]
    fn a_probe_is_one_incident_and_different_probes_are_not() {
        let a = dedup_key(&denial("mallory", Some("arn:aws:iam::1:user/mallory")));
        let b = dedup_key(&denial(
            "mallory-other-call",
            Some("arn:aws:iam::1:user/mallory"),
        ));
        let c = dedup_key(&denial("mallory", Some("arn:aws:iam::1:user/eve")));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // The same principal's probe the next day is a new incident; an hour later it is not.
        let at = |time: &str| {
            let mut message = denial("mallory", Some("arn:aws:iam::1:user/mallory"));
            message.tags.retain(|tag| tag.key != EVENT_TIME_TAG);
            message
                .tags
                .push(activity_aware_message::Tag::new(EVENT_TIME_TAG, time));
            dedup_key(&message)
        };
        assert_eq!(at("2026-12-03T10:05:00Z"), at("2026-12-03T11:55:00Z"));
        assert_ne!(at("2026-12-03T10:05:00Z"), at("2026-12-04T10:05:00Z"));
        // Without a group, the same Message is the same incident, another is another.
        assert_eq!(dedup_key(&denial("x", None)), dedup_key(&denial("x", None)));
        assert_ne!(dedup_key(&denial("x", None)), dedup_key(&denial("y", None)));
        // Stable across builds: a known value.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_long_summary_is_cut_to_1024_characters() {
        let message = denial(&"m".repeat(5_000), None);
        let event = pagerduty_event(&Post::Message(&message), "k", &AccountNames::default());
        assert_eq!(
            event["payload"]["summary"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_SUMMARY_CHARS
        );
    }

    #[test]
    fn a_digest_counts_its_messages() {
        let messages: Vec<Message> = (0..6)
            .map(|i| denial(&format!("u{}", i % 2), Some("arn:aws:iam::1:user/mallory")))
            .collect();
        let received: Vec<Received<'_>> = messages
            .iter()
            .map(|message| Received {
                message,
                sent_at_ms: None,
            })
            .collect();
        let event = pagerduty_event(
            &Post::Digest(Digest::of(&received)),
            "k",
            &AccountNames::default(),
        );
        assert!(
            event["payload"]["summary"]
                .as_str()
                .unwrap()
                .ends_with("(×6)")
        );
        assert_eq!(event["payload"]["custom_details"]["Count"], 6);
        assert_eq!(
            event["payload"]["custom_details"]["Username (2 distinct)"],
            "u0 ×3, u1 ×3"
        );
    }
}
