//! Who is said to be probing: the denial Messages of one batch, by principal. A Message is only
//! a hint (anyone who can publish to the topic, write to the trail's log group or invoke the
//! function can make one); what containment acts on is what CloudTrail confirms ([`crate::history`]).

use activity_aware_message::time::parse_rfc3339_ms;
use activity_aware_message::{ACCESS_KEY_TAG, EVENT_TIME_TAG, Message, PRINCIPAL_TAG};
use std::collections::{BTreeMap, BTreeSet};

/// One denial, as a Message tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The SQS message it came in.
    pub message_id: String,
    pub principal: String,
    /// The access key it was made with.
    pub access_key: Option<String>,
    pub region: Option<String>,
    pub event_time: Option<String>,
}

impl Hint {
    /// The denial a Message tells, when it tells one of a principal with an ARN. The sources
    /// publish every denied call's Message with the `denied` attribute, which the containment
    /// queue's subscription selects; the Message itself says who, with which key, where, when.
    pub fn of(message_id: &str, message: &Message) -> Option<Hint> {
        let field = |key: &str| {
            message
                .fields
                .iter()
                .find(|field| field.key == key)
                .and_then(|field| field.value.as_str())
                .map(str::to_owned)
        };
        message
            .fields
            .iter()
            .find(|field| field.key == "Error Code")?;
        Some(Hint {
            message_id: message_id.to_owned(),
            principal: message
                .tag(PRINCIPAL_TAG)
                .filter(|arn| arn.starts_with("arn:"))?
                .to_owned(),
            access_key: message.tag(ACCESS_KEY_TAG).map(str::to_owned),
            region: field("Region"),
            event_time: message.tag(EVENT_TIME_TAG).map(str::to_owned),
        })
    }
}

/// One principal's denials in a batch, as the Messages say them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub principal: String,
    pub hints: Vec<Hint>,
}

/// Lookups at most per principal: access keys times regions.
pub const MAX_LOOKUPS: usize = 8;

impl Reported {
    /// Where to ask CloudTrail: each (region, access key) the hints name, at most
    /// [`MAX_LOOKUPS`], the most named first.
    pub fn lookups(&self) -> Vec<(String, String)> {
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for hint in &self.hints {
            if let (Some(region), Some(key)) = (&hint.region, &hint.access_key) {
                *counts.entry((region.clone(), key.clone())).or_default() += 1;
            }
        }
        let mut counted: Vec<((String, String), usize)> = counts.into_iter().collect();
        counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counted
            .into_iter()
            .take(MAX_LOOKUPS)
            .map(|(lookup, _)| lookup)
            .collect()
    }

    /// The first and last time the hints name (milliseconds since 1970).
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        let times: BTreeSet<i64> = self
            .hints
            .iter()
            .filter_map(|hint| hint.event_time.as_deref().and_then(parse_rfc3339_ms))
            .collect();
        Some((*times.first()?, *times.last()?))
    }

    pub fn message_ids(&self) -> impl Iterator<Item = &str> {
        self.hints.iter().map(|hint| hint.message_id.as_str())
    }
}

/// The batch's hints, by principal, the most reported first.
pub fn reported(hints: Vec<Hint>) -> Vec<Reported> {
    let mut by_principal: BTreeMap<String, Vec<Hint>> = BTreeMap::new();
    for hint in hints {
        by_principal
            .entry(hint.principal.clone())
            .or_default()
            .push(hint);
    }
    let mut reported: Vec<Reported> = by_principal
        .into_iter()
        .map(|(principal, hints)| Reported { principal, hints })
        .collect();
    reported.sort_by_key(|reported| std::cmp::Reverse(reported.hints.len()));
    reported
}

/// Each distinct value with its count, most frequent first, at most `limit`:
/// `ListUsers (20), ListRoles (12) and 3 more`.
pub fn top<'a>(values: impl Iterator<Item = &'a str>, limit: usize) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Tag};

    fn denial_message(principal: &str, key: &str, region: &str, time: &str) -> Message {
        let mut message = Message::new(
            "Error Message: denied",
            vec![
                Field::text("Event", "ListUsers"),
                Field::text("Error Code", "AccessDenied"),
                Field::text("Region", region),
            ],
        );
        message.tags = vec![
            Tag::new("detection", "access-denied"),
            Tag::new("principal", principal),
            Tag::new("access-key", key),
            Tag::new("event-time", time),
        ];
        message
    }

    #[test]
    fn hints_are_counted_by_principal_and_other_messages_ignored() {
        let bob = "arn:aws:iam::1:user/bob";
        let mut messages: Vec<Message> = (0..3)
            .map(|i| {
                denial_message(
                    bob,
                    "AKIABOB0000000000000",
                    ["us-east-1", "eu-west-1"][i % 2],
                    &format!("2026-12-03T10:00:0{i}Z"),
                )
            })
            .collect();
        messages.push(denial_message(
            "arn:aws:iam::1:user/eve",
            "AKIAEVE0000000000000",
            "us-east-1",
            "2026-12-03T10:00:00Z",
        ));
        let mut no_error = denial_message(bob, "AKIABOB0000000000000", "us-east-1", "x");
        no_error.fields.retain(|field| field.key != "Error Code");
        messages.push(no_error);
        let mut unattributed = denial_message("AWSService s3", "k", "us-east-1", "x");
        unattributed.tags.retain(|tag| tag.key != "principal");
        messages.push(unattributed);
        let hints = messages
            .iter()
            .enumerate()
            .filter_map(|(i, message)| Hint::of(&i.to_string(), message))
            .collect();
        let reported = reported(hints);
        assert_eq!(
            reported
                .iter()
                .map(|r| (r.principal.as_str(), r.hints.len()))
                .collect::<Vec<_>>(),
            [(bob, 3), ("arn:aws:iam::1:user/eve", 1)]
        );
        assert_eq!(
            reported[0].lookups(),
            [
                ("us-east-1".to_owned(), "AKIABOB0000000000000".to_owned()),
                ("eu-west-1".to_owned(), "AKIABOB0000000000000".to_owned())
            ]
        );
        let (first, last) = reported[0].span_ms().unwrap();
        assert_eq!(last - first, 2_000);
        assert_eq!(top(["b", "a", "b", "c"].into_iter(), 1), "b (2) and 2 more");
    }
}
