//! Messages that belong together become one post: during a permission-enumeration probe, a
//! thousand denials by one principal are one digest, not a thousand posts.

use activity_aware_message::time::{format_rfc3339, format_span, parse_rfc3339_ms};
use activity_aware_message::{
    DIGEST_FIELD_TAG, DIGEST_GROUP_TAG, EVENT_TIME_TAG, Message, SEVERITY_TAG,
    SLACK_PREFERRED_CHANNEL_TAG,
};
use serde_json::Value;
use std::collections::HashMap;

/// Shown for a Message that lacks a summarised field, so every count adds up to the total.
pub const ABSENT_VALUE: &str = "(none)";

/// One Message of a batch, with when the topic received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'m> {
    pub message: &'m Message,
    pub sent_at_ms: Option<u64>,
}

/// Groups Messages that belong together, keeping batch order: groups in the order their first
/// Message came, Messages in their order within each. Returns positions in `messages`.
pub fn group_positions(messages: &[&Message]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (position, message) in messages.iter().enumerate() {
        let key = group_key(message);
        match index_of.get(&key) {
            Some(&index) => groups[index].push(position),
            None => {
                index_of.insert(key, groups.len());
                groups.push(vec![position]);
            }
        }
    }
    groups
}

/// Same digest group, source, channel and severity (a digest never hides a Message among
/// less severe ones); without a group, the same Message.
fn group_key(message: &Message) -> String {
    match message.tag(DIGEST_GROUP_TAG) {
        Some(group) => {
            let parts = [
                group,
                message.metadata.source_name.as_deref().unwrap_or_default(),
                message.tag(SLACK_PREFERRED_CHANNEL_TAG).unwrap_or_default(),
                message.tag(SEVERITY_TAG).unwrap_or_default(),
            ];
            // JSON keeps the parts apart whatever they contain.
            format!(
                "group:{}",
                serde_json::to_string(&parts).expect("strings serialise")
            )
        }
        None => format!("message:{}", message.to_json()),
    }
}

/// What a digest says about Messages that belong together.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest<'m> {
    /// Shown in full.
    pub first: &'m Message,
    /// How many Messages the digest stands for.
    pub count: usize,
    /// Earliest and latest event time, in milliseconds since 1970, when any is known.
    pub span_ms: Option<(i64, i64)>,
    /// The summarised fields, in order.
    pub fields: Vec<FieldSummary>,
}

/// Every distinct value of one field across the group, most frequent first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSummary {
    pub key: String,
    /// Value as shown, and how many Messages have it; the counts add up to the digest's count.
    pub values: Vec<(String, usize)>,
}

impl<'m> Digest<'m> {
    /// Summarises a group (not empty).
    pub fn of(group: &[Received<'m>]) -> Digest<'m> {
        let first = group[0].message;
        let times: Vec<i64> = group.iter().filter_map(event_time_ms).collect();
        let span_ms = times
            .iter()
            .min()
            .zip(times.iter().max())
            .map(|(&min, &max)| (min, max));
        let fields = summarised_keys(group)
            .into_iter()
            .map(|key| summarise(&key, group))
            .collect();
        Digest {
            first,
            count: group.len(),
            span_ms,
            fields,
        }
    }
}

fn event_time_ms(received: &Received<'_>) -> Option<i64> {
    received
        .message
        .tag(EVENT_TIME_TAG)
        .and_then(parse_rfc3339_ms)
        .or_else(|| received.sent_at_ms.map(|ms| ms as i64))
}

/// The fields the first Message names with `digest-field` tags, or else every field whose
/// value is a scalar and varies across the group, in the order they first appear.
fn summarised_keys(group: &[Received<'_>]) -> Vec<String> {
    let named: Vec<String> = group[0]
        .message
        .tag_values(DIGEST_FIELD_TAG)
        .map(str::to_owned)
        .collect();
    if !named.is_empty() {
        let mut unique = Vec::new();
        for key in named {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        return unique;
    }
    let mut keys: Vec<String> = Vec::new();
    for received in group {
        for field in &received.message.fields {
            if !keys.contains(&field.key) {
                keys.push(field.key.clone());
            }
        }
    }
    keys.retain(|key| {
        let mut values = group.iter().map(|r| field_value(r.message, key));
        let first = values.next().flatten();
        let scalar = |value: &Option<&Value>| {
            value.is_none_or(|v| !(v.is_object() || v.is_array() || v.is_null()))
        };
        scalar(&first) && {
            let mut varies = false;
            for value in values {
                if !scalar(&value) {
                    return false;
                }
                varies |= value != first;
            }
            varies
        }
    });
    keys
}

fn field_value<'m>(message: &'m Message, key: &str) -> Option<&'m Value> {
    message
        .fields
        .iter()
        .find(|field| field.key == key)
        .map(|field| &field.value)
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn summarise(key: &str, group: &[Received<'_>]) -> FieldSummary {
    // (value, count, first position) so that ties keep the order values first came in.
    let mut counted: Vec<(String, usize, usize)> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (position, received) in group.iter().enumerate() {
        let value =
            field_value(received.message, key).map_or_else(|| ABSENT_VALUE.to_owned(), shown);
        match index_of.get(&value) {
            Some(&index) => counted[index].1 += 1,
            None => {
                index_of.insert(value.clone(), counted.len());
                counted.push((value, 1, position));
            }
        }
    }
    counted.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    FieldSummary {
        key: key.to_owned(),
        values: counted
            .into_iter()
            .map(|(value, count, _)| (value, count))
            .collect(),
    }
}

/// `first to last (span)`, or the one time when they are the same.
pub fn time_span(digest: &Digest<'_>) -> Option<String> {
    let (first, last) = digest.span_ms?;
    Some(if first / 1_000 == last / 1_000 {
        format_rfc3339(first)
    } else {
        format!(
            "{} to {} ({})",
            format_rfc3339(first),
            format_rfc3339(last),
            format_span(last - first)
        )
    })
}

/// `value ×count` items, each value as `show` shows it (escaped and cut for the destination's
/// markup), most frequent first, as many as fit in `max_chars` characters, then a `+K more (M
/// Messages)` item for the rest, so the counts always cover every Message.
pub fn listed(
    field: &FieldSummary,
    max_chars: usize,
    separator: &str,
    show: &dyn Fn(&str) -> String,
) -> String {
    let items: Vec<String> = field
        .values
        .iter()
        .map(|(value, count)| format!("{} ×{count}", show(value)))
        .collect();
    let separator_len = separator.chars().count();
    let lengths: Vec<usize> = items.iter().map(|item| item.chars().count()).collect();
    let everything = lengths.iter().sum::<usize>() + separator_len * items.len().saturating_sub(1);
    let shown = if everything <= max_chars {
        items.len()
    } else {
        // As many as fit with the "+K more" that follows them.
        let mut used = 0;
        let mut shown = 0;
        for (index, length) in lengths.iter().enumerate() {
            let with_item = used + if index == 0 { 0 } else { separator_len } + length;
            let more_len = separator_len + more(&field.values[index + 1..]).chars().count();
            if with_item + more_len > max_chars {
                break;
            }
            used = with_item;
            shown = index + 1;
        }
        shown
    };
    let mut parts: Vec<String> = items[..shown].to_vec();
    if shown < items.len() {
        parts.push(more(&field.values[shown..]));
    }
    parts.join(separator)
}

fn more(rest: &[(String, usize)]) -> String {
    let messages: usize = rest.iter().map(|(_, count)| count).sum();
    let noun = if messages == 1 { "Message" } else { "Messages" };
    format!("+{} more ({messages} {noun})", rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::{Field, Metadata, Tag};
    use serde_json::json;

    fn tag(key: &str, value: &str) -> Tag {
        Tag::new(key, value)
    }

    fn denial(principal: &str, action: &str, region: &str, time: &str) -> Message {
        Message {
            subject: format!("Event: {action}"),
            fields: vec![
                Field::text("Event", action),
                Field::text("Region", region),
                Field::new("Request Parameters", json!({"n": action})),
            ],
            metadata: Metadata {
                source_name: Some("Cloudtrail".into()),
                source_icon_url: None,
            },
            tags: vec![
                tag(DIGEST_GROUP_TAG, principal),
                tag(DIGEST_FIELD_TAG, "Event"),
                tag(DIGEST_FIELD_TAG, "Region"),
                tag(EVENT_TIME_TAG, time),
            ],
        }
    }

    fn received(messages: &[Message]) -> Vec<Received<'_>> {
        messages
            .iter()
            .map(|message| Received {
                message,
                sent_at_ms: None,
            })
            .collect()
    }

    #[test]
    fn groups_by_principal_in_batch_order() {
        let messages = [
            denial("mallory", "ListUsers", "us-east-1", "2024-06-02T20:16:32Z"),
            denial("alice", "GetObject", "us-east-1", "2024-06-02T20:16:33Z"),
            denial("mallory", "ListRoles", "eu-west-1", "2024-06-02T20:16:34Z"),
            denial("mallory", "ListUsers", "eu-west-1", "2024-06-02T20:16:35Z"),
        ];
        let refs: Vec<&Message> = messages.iter().collect();
        assert_eq!(group_positions(&refs), [vec![0, 2, 3], vec![1]]);
    }

    #[test]
    fn another_source_or_channel_never_joins_a_group() {
        let mut other_source = denial("mallory", "ListUsers", "us-east-1", "t");
        other_source.metadata.source_name = Some("Other".into());
        let mut other_channel = denial("mallory", "ListUsers", "us-east-1", "t");
        other_channel
            .tags
            .push(tag(SLACK_PREFERRED_CHANNEL_TAG, "#elsewhere"));
        let plain = denial("mallory", "ListUsers", "us-east-1", "t");
        let refs = [&plain, &other_source, &other_channel];
        assert_eq!(group_positions(&refs), [vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn messages_without_a_group_join_only_identical_ones() {
        let a = Message::new("disk full", vec![]);
        let b = Message::new("disk full", vec![]);
        let c = Message::new("disk nearly full", vec![]);
        assert_eq!(group_positions(&[&a, &c, &b]), [vec![0, 2], vec![1]]);
    }

    #[test]
    fn a_digest_counts_every_value_most_frequent_first() {
        let messages = [
            denial("mallory", "ListUsers", "us-east-1", "2024-06-02T20:16:40Z"),
            denial("mallory", "ListRoles", "eu-west-1", "2024-06-02T20:16:32Z"),
            denial("mallory", "GetPolicy", "eu-west-1", "2024-06-02T20:17:02Z"),
            denial("mallory", "ListRoles", "us-east-1", "2024-06-02T20:16:50Z"),
            denial("mallory", "ListRoles", "ap-south-1", "2024-06-02T20:16:51Z"),
        ];
        let digest = Digest::of(&received(&messages));
        assert_eq!(digest.count, 5);
        assert_eq!(digest.first.subject, "Event: ListUsers");
        assert_eq!(
            digest.span_ms,
            Some((
                parse_rfc3339_ms("2024-06-02T20:16:32Z").unwrap(),
                parse_rfc3339_ms("2024-06-02T20:17:02Z").unwrap()
            ))
        );
        let event = &digest.fields[0];
        assert_eq!(event.key, "Event");
        assert_eq!(
            event.values,
            [
                ("ListRoles".to_owned(), 3),
                ("ListUsers".to_owned(), 1),
                ("GetPolicy".to_owned(), 1)
            ]
        );
        let region = &digest.fields[1];
        assert_eq!(region.key, "Region");
        assert_eq!(
            region.values,
            // Ties keep the order values first came in.
            [
                ("us-east-1".to_owned(), 2),
                ("eu-west-1".to_owned(), 2),
                ("ap-south-1".to_owned(), 1)
            ]
        );
        for field in &digest.fields {
            assert_eq!(field.values.iter().map(|(_, n)| n).sum::<usize>(), 5);
        }
    }

    #[test]
    fn a_missing_field_is_counted_as_none() {
        let mut lacking = denial("mallory", "ListUsers", "us-east-1", "t");
        lacking.fields.retain(|field| field.key != "Region");
        let messages = [denial("mallory", "ListUsers", "us-east-1", "t"), lacking];
        let digest = Digest::of(&received(&messages));
        assert_eq!(
            digest.fields[1].values,
            [("us-east-1".to_owned(), 1), (ABSENT_VALUE.to_owned(), 1)]
        );
    }

    #[test]
    fn without_digest_fields_every_varying_scalar_is_summarised() {
        let message = |host: &str, load: f64| {
            let mut message = Message::new(
                "high load",
                vec![
                    Field::text("Service", "api"),
                    Field::new("Host", json!(host)),
                    Field::new("Load", json!(load)),
                    Field::new("Details", json!({"host": host})),
                ],
            );
            message.tags.push(tag(DIGEST_GROUP_TAG, "api-load"));
            message
        };
        let messages = [message("a", 0.9), message("b", 0.9), message("a", 0.95)];
        let digest = Digest::of(&received(&messages));
        let keys: Vec<&str> = digest.fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["Host", "Load"]);
        assert_eq!(
            digest.fields[1].values,
            [("0.9".to_owned(), 2), ("0.95".to_owned(), 1)]
        );
    }

    #[test]
    fn the_span_falls_back_to_when_the_topic_received_them() {
        let messages = [Message::new("a", vec![]), Message::new("a", vec![])];
        let group = [
            Received {
                message: &messages[0],
                sent_at_ms: Some(5_000),
            },
            Received {
                message: &messages[1],
                sent_at_ms: Some(2_000),
            },
        ];
        assert_eq!(Digest::of(&group).span_ms, Some((2_000, 5_000)));
        let unknown = [Received {
            message: &messages[0],
            sent_at_ms: None,
        }];
        assert_eq!(Digest::of(&unknown).span_ms, None);
    }
}
