//! One invocation's delivery, whatever the destination: the Messages that belong together go
//! as one digest, the most severe first, each endpoint at its own pace; groups beyond what the
//! deadline allows fold into one summary (never a high or critical one); what could not be
//! delivered is reported so that SQS brings it back (batch item failures) or Lambda retries
//! it (SNS), and nothing delivered is delivered twice.

use crate::digest::{Digest, Received, group_positions};
use crate::endpoint::PostError;
use crate::incoming::{DestinationEvent, EventError, Item, Origin, read_event};
use crate::reading::severity;
use crate::secret::ConfigError;
use activity_aware_message::{Capped, Message, Severity};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use std::cmp::Reverse;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Used when an invocation carries no deadline (never on Lambda).
const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(30);

/// One delivery: a Message on its own, a digest of Messages that belong together, or the
/// summary of groups folded together when there was no room for each.
#[derive(Debug, Clone)]
pub enum Post<'m> {
    Message(&'m Message),
    Digest(Digest<'m>),
    Summary(Vec<&'m Message>),
}

impl Post<'_> {
    /// The Message the post is headed by.
    pub fn first(&self) -> &Message {
        match self {
            Post::Message(message) => message,
            Post::Digest(digest) => digest.first,
            Post::Summary(messages) => messages[0],
        }
    }

    /// How many Messages it stands for.
    pub fn count(&self) -> usize {
        match self {
            Post::Message(_) => 1,
            Post::Digest(digest) => digest.count,
            Post::Summary(messages) => messages.len(),
        }
    }
}

/// A destination's way of delivering: where each Message goes, how much room there is, and
/// how one post is sent.
pub trait Channel {
    /// Named in errors and logs: `Slack`.
    fn service(&self) -> &'static str;

    /// How many endpoints Messages are routed to (each posted to at its own pace).
    fn endpoints(&self) -> usize {
        1
    }

    /// The endpoint a Message goes to.
    fn route(&self, _message: &Message) -> usize {
        0
    }

    /// An endpoint's name for logs, and for errors of all but the first (never its URL).
    fn endpoint_name(&self, _route: usize) -> &str {
        ""
    }

    /// How many posts can still start before `deadline` to this endpoint.
    fn room(&self, route: usize, deadline: Instant) -> usize;

    /// Sends one post to the endpoint.
    fn send(
        &self,
        route: usize,
        post: &Post<'_>,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), PostError>>;

    /// Called with the Messages of each post that went through.
    fn delivered(&self, _messages: &[&Message]) {}
}

/// What became of one Message of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// Below the destination's minimum severity: left out, on purpose.
    BelowMinimum,
    Failed(String),
}

/// What one invocation answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// To an SQS batch: the Messages to bring back (none when all were delivered).
    Batch(SqsBatchResponse),
    /// To an SNS event, where every Message was delivered.
    Delivered { delivered: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{} of {total} messages were not delivered to {service}: {}", failures.len(), Capped(failures))]
    NotDelivered {
        service: &'static str,
        failures: Vec<String>,
        total: usize,
    },
}

impl From<DeliveryError> for Diagnostic {
    fn from(error: DeliveryError) -> Self {
        let error_type = match &error {
            DeliveryError::Config(_) => "Configuration",
            DeliveryError::Event(_) => "UnrecognisedEvent",
            DeliveryError::NotDelivered { .. } => "NotDelivered",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// The answer to an event with nothing in it.
pub fn empty_answer(origin: Origin) -> Answer {
    match origin {
        Origin::Sqs => Answer::Batch(SqsBatchResponse::default()),
        Origin::Sns => Answer::Delivered { delivered: 0 },
    }
}

/// When the invocation must be done by.
pub fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let left = match context.deadline {
        0 => DEFAULT_TIME_BUDGET,
        deadline_ms => Duration::from_millis(deadline_ms.saturating_sub(now_ms)),
    };
    Instant::now() + left
}

/// One invocation, whatever the destination: the event read and, when it holds anything, the
/// channel made by `channel` (which decrypts its secrets on first use, so an empty event never
/// needs them; it is given the deadline), the Messages delivered, and the answer.
pub async fn handle_event<C, F, Fut>(
    event: LambdaEvent<DestinationEvent>,
    minimum: Severity,
    channel: F,
) -> Result<Answer, DeliveryError>
where
    C: Channel,
    F: FnOnce(Instant) -> Fut,
    Fut: Future<Output = Result<C, ConfigError>>,
{
    let deadline = deadline_of(&event.context);
    let (origin, items) = read_event(event.payload)?;
    if items.is_empty() {
        return Ok(empty_answer(origin));
    }
    let channel = channel(deadline).await?;
    let fates = deliver(&channel, &items, minimum, deadline).await;
    answer(channel.service(), origin, &items, &fates)
}

/// Delivers the items at or above `minimum`, one post per group to each group's endpoint
/// (endpoints side by side, each at its own pace), and says what became of every item.
pub async fn deliver<C: Channel>(
    channel: &C,
    items: &[Item],
    minimum: Severity,
    deadline: Instant,
) -> Vec<Fate> {
    let mut fates: Vec<Option<Fate>> = items.iter().map(|_| None).collect();
    let mut by_endpoint: Vec<Vec<(usize, &Message)>> = vec![Vec::new(); channel.endpoints()];
    for (index, item) in items.iter().enumerate() {
        match &item.message {
            Ok(message) if !meets(message, minimum) => {
                fates[index] = Some(Fate::BelowMinimum);
            }
            Ok(message) => by_endpoint[channel.route(message)].push((index, message)),
            Err(error) => {
                tracing::error!(id = ?item.id, error = ?error.to_string(), "not a Message; it will not be delivered");
                fates[index] = Some(Fate::Failed(error.to_string()));
            }
        }
    }
    let skipped = fates
        .iter()
        .filter(|fate| **fate == Some(Fate::BelowMinimum))
        .count();
    if skipped > 0 {
        tracing::info!(
            messages = skipped,
            minimum = minimum.label(),
            "below the minimum severity; not delivered here"
        );
    }
    let sending = by_endpoint
        .iter()
        .enumerate()
        .filter(|(_, readable)| !readable.is_empty())
        .map(|(route, readable)| deliver_to_endpoint(channel, route, items, readable, deadline));
    for outcome in futures::future::join_all(sending).await {
        for (index, fate) in outcome {
            fates[index] = Some(fate);
        }
    }
    fates
        .into_iter()
        .map(|fate| fate.expect("every item is unreadable, below the minimum or in a group"))
        .collect()
}

/// Whether a Message is at or above the minimum. One without a severity (another system's)
/// counts as medium.
pub fn meets(message: &Message, minimum: Severity) -> bool {
    severity(message).unwrap_or(Severity::Medium) >= minimum
}

/// Sends the groups of one endpoint's Messages, one after another. The most severe go first,
/// then those received before (in batch order otherwise): a critical alert never waits behind
/// a flood, and a batch with more groups than one invocation can send never keeps the same
/// Messages back until they reach the failure queue. After a failure that every later post
/// would meet too (the endpoint revoked or down, the deadline near), nothing more is tried.
async fn deliver_to_endpoint<C: Channel>(
    channel: &C,
    route: usize,
    items: &[Item],
    readable: &[(usize, &Message)],
    deadline: Instant,
) -> Vec<(usize, Fate)> {
    let name = channel.endpoint_name(route);
    let service = channel.service();
    let messages: Vec<&Message> = readable.iter().map(|(_, message)| *message).collect();
    let mut groups = group_positions(&messages);
    groups.sort_by_key(|group| {
        let first = messages[group[0]];
        let received = group
            .iter()
            .map(|&position| items[readable[position].0].receive_count)
            .max();
        Reverse((severity(first), received))
    });
    let plans = plan_posts(groups, &messages, channel.room(route, deadline));
    let mut fates = Vec::with_capacity(readable.len());
    let mut stopped: Option<String> = None;
    for plan in &plans {
        let group = plan.positions();
        let outcome = match &stopped {
            Some(reason) => Err(reason.clone()),
            None => {
                let received: Vec<Received<'_>> = group
                    .iter()
                    .map(|&position| Received {
                        message: readable[position].1,
                        sent_at_ms: items[readable[position].0].sent_at_ms,
                    })
                    .collect();
                let post = match plan {
                    Plan::Summary(_) => Post::Summary(received.iter().map(|r| r.message).collect()),
                    Plan::Group(_) if received.len() == 1 => Post::Message(received[0].message),
                    Plan::Group(_) => Post::Digest(Digest::of(&received)),
                };
                let subject = &received[0].message.subject;
                match channel.send(route, &post, deadline).await {
                    Ok(()) => {
                        tracing::info!(
                            messages = group.len(),
                            service,
                            endpoint = name,
                            ?subject,
                            "delivered"
                        );
                        let sent: Vec<&Message> = received.iter().map(|r| r.message).collect();
                        channel.delivered(&sent);
                        Ok(())
                    }
                    Err(error) => {
                        tracing::error!(messages = group.len(), service, endpoint = name, ?subject, %error, "not delivered");
                        if !error.is_rejected() || error.refuses_every_post() {
                            stopped =
                                Some(format!("not tried after an earlier post failed: {error}"));
                        }
                        // The first endpoint is the destination's own; others are named.
                        Err(if route == 0 || name.is_empty() {
                            error.to_string()
                        } else {
                            format!("{error} ({name})")
                        })
                    }
                }
            }
        };
        fates.extend(group.iter().map(|&position| {
            (
                readable[position].0,
                match &outcome {
                    Ok(()) => Fate::Delivered,
                    Err(reason) => Fate::Failed(reason.clone()),
                },
            )
        }));
    }
    fates
}

/// The answer for what became of the items. From SQS, what failed is reported as batch item
/// failures, unless nothing at all was delivered: failing the invocation then says so loudly
/// (an error in the function's metrics), and retrying the whole batch delivers nothing twice.
/// From SNS, any failure fails the invocation, so Lambda retries it.
pub fn answer(
    service: &'static str,
    origin: Origin,
    items: &[Item],
    fates: &[Fate],
) -> Result<Answer, DeliveryError> {
    let total = items.len();
    let failed: Vec<(&Item, &String)> = items
        .iter()
        .zip(fates)
        .filter_map(|(item, fate)| match fate {
            Fate::Failed(reason) => Some((item, reason)),
            Fate::Delivered | Fate::BelowMinimum => None,
        })
        .collect();
    let describe = |(item, reason): &(&Item, &String)| {
        let kind = match origin {
            Origin::Sqs => "SQS message",
            Origin::Sns => "SNS message",
        };
        format!("{kind} {}: {reason}", item.id)
    };
    if origin == Origin::Sns || (!failed.is_empty() && failed.len() == total) {
        if failed.is_empty() {
            return Ok(Answer::Delivered { delivered: total });
        }
        return Err(DeliveryError::NotDelivered {
            service,
            failures: failed.iter().map(describe).collect(),
            total,
        });
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .iter()
        .map(|(item, _)| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = item.id.clone();
            failure
        })
        .collect();
    Ok(Answer::Batch(response))
}

/// Whether a group may be folded into a summary: only below high.
pub fn foldable(message: &Message) -> bool {
    severity(message).is_none_or(|severity| severity < Severity::High)
}

/// One post planned: a group (a single Message or a digest), or groups folded together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Group(Vec<usize>),
    Summary(Vec<usize>),
}

impl Plan {
    fn positions(&self) -> &[usize] {
        match self {
            Plan::Group(positions) | Plan::Summary(positions) => positions,
        }
    }
}

/// The posts for the groups (in the order they go), when `room` posts can be made before the
/// deadline: with more groups than room, the last that fit are folded into one summary, save
/// the high and critical ones, which keep their own posts (and, when out of time, come back
/// first).
fn plan_posts(groups: Vec<Vec<usize>>, messages: &[&Message], room: usize) -> Vec<Plan> {
    if groups.len() <= room || room == 0 {
        return groups.into_iter().map(Plan::Group).collect();
    }
    let mut plans = Vec::with_capacity(room);
    let mut folded = Vec::new();
    let mut folded_groups = 0;
    for group in groups {
        if plans.len() + 1 < room || !foldable(messages[group[0]]) {
            plans.push(Plan::Group(group));
        } else {
            folded.extend(group);
            folded_groups += 1;
        }
    }
    match folded_groups {
        0 => {}
        1 => plans.push(Plan::Group(folded)),
        _ => plans.push(Plan::Summary(folded)),
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::Tag;

    fn tagged(severity: &str) -> Message {
        let mut message = Message::new("s", vec![]);
        message.tags.push(Tag::new("severity", severity));
        message
    }

    #[test]
    fn groups_beyond_the_room_fold_into_one_summary_but_never_a_severe_one() {
        let low = tagged("low");
        let high = tagged("high");
        // Positions 0..6, one group each; position 5 is high.
        let messages: Vec<&Message> = vec![&low, &low, &low, &low, &low, &high];
        let groups = |order: &[usize]| order.iter().map(|&p| vec![p]).collect::<Vec<_>>();
        assert_eq!(
            plan_posts(groups(&[0, 1, 2]), &messages, 3),
            [
                Plan::Group(vec![0]),
                Plan::Group(vec![1]),
                Plan::Group(vec![2])
            ]
        );
        assert_eq!(
            plan_posts(groups(&[5, 0, 1, 2, 3, 4]), &messages, 3),
            [
                Plan::Group(vec![5]),
                Plan::Group(vec![0]),
                Plan::Summary(vec![1, 2, 3, 4])
            ]
        );
        // A severe group past the room keeps its own post (and comes back if out of time).
        assert_eq!(
            plan_posts(groups(&[0, 1, 2, 5]), &messages, 2),
            [
                Plan::Group(vec![0]),
                Plan::Group(vec![5]),
                Plan::Summary(vec![1, 2])
            ]
        );
        // One group left to fold is no summary; no room at all folds nothing.
        assert_eq!(
            plan_posts(groups(&[0, 5, 1]), &messages, 2),
            [
                Plan::Group(vec![0]),
                Plan::Group(vec![5]),
                Plan::Group(vec![1])
            ]
        );
        assert_eq!(plan_posts(groups(&[0, 1]), &messages, 0).len(), 2);
    }

    #[test]
    fn high_and_critical_are_never_folded() {
        assert!(foldable(&tagged("low")));
        assert!(foldable(&tagged("medium")));
        assert!(!foldable(&tagged("high")));
        assert!(!foldable(&tagged("critical")));
        assert!(foldable(&Message::new("untagged", vec![])));
    }

    #[test]
    fn the_minimum_severity_lets_through_what_is_at_or_above_it() {
        assert!(meets(&tagged("high"), Severity::High));
        assert!(meets(&tagged("critical"), Severity::High));
        assert!(!meets(&tagged("medium"), Severity::High));
        assert!(meets(&tagged("info"), Severity::Info));
        // Another system's Message without a severity counts as medium.
        let untagged = Message::new("untagged", vec![]);
        assert!(meets(&untagged, Severity::Medium));
        assert!(!meets(&untagged, Severity::High));
    }

    fn item(id: &str) -> Item {
        Item {
            id: id.into(),
            sent_at_ms: None,
            receive_count: 1,
            message: Ok(Message::new("s", vec![])),
        }
    }

    #[test]
    fn the_answer_brings_back_what_failed_and_fails_loudly_when_nothing_went() {
        let items = [item("a"), item("b"), item("c")];
        let some = [
            Fate::Delivered,
            Fate::Failed("503".into()),
            Fate::BelowMinimum,
        ];
        let Answer::Batch(batch) = answer("Teams", Origin::Sqs, &items, &some).unwrap() else {
            panic!("an SQS batch is answered with its failures");
        };
        let ids: Vec<&str> = batch
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["b"]);
        let none = [
            Fate::Failed("403".into()),
            Fate::Failed("403".into()),
            Fate::Failed("403".into()),
        ];
        let error = answer("Teams", Origin::Sqs, &items, &none).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("3 of 3 messages were not delivered to Teams: "),
            "{error}"
        );
        let skipped = [Fate::BelowMinimum, Fate::Delivered, Fate::BelowMinimum];
        assert_eq!(
            answer("Teams", Origin::Sns, &items, &skipped).unwrap(),
            Answer::Delivered { delivered: 3 }
        );
        assert!(answer("Teams", Origin::Sns, &items, &some).is_err());
    }
}
