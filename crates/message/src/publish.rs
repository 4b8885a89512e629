//! Publishing many Messages to the SNS topic: PublishBatch, bounded concurrency, retries of the
//! entries SNS says may succeed later, and a report of what never went.

use crate::{SNS_MESSAGE_LIMIT_BYTES, Severity};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::types::PublishBatchRequestEntry;
use futures::StreamExt;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// PublishBatch takes at most this many entries per call.
const MAX_BATCH_ENTRIES: usize = 10;

/// A Message body ready to publish, with a label that identifies it in logs and errors.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub label: String,
    pub body: String,
    /// Published as the message attribute `severity`, which the topic's subscriptions sort by
    /// (high and critical take the priority lane); `None` publishes none.
    pub severity: Option<Severity>,
    /// Published as the message attribute `detection` (the catalogue's id), which responders'
    /// subscriptions select by.
    pub detection: Option<String>,
    /// A denied call: published as the message attribute `denied` = `true`, which
    /// containment's subscription selects by.
    pub denied: bool,
    /// What to sign before it is published (a heartbeat leg's [`crate::heartbeat_mac_text`]):
    /// the signature goes into the Message's `heartbeat-mac` tag.
    pub to_sign: Option<String>,
    /// A routine change: what the source remembers of it, to tell whether it is news before
    /// it is published (never published itself).
    pub familiar: Option<String>,
    /// The event it tells, for the source to post it once however many paths bring it (never
    /// published itself).
    pub once: Option<String>,
}

/// The message attribute a Message's severity is published as.
pub const SEVERITY_ATTRIBUTE: &str = "severity";

/// The message attribute a Message's detection is published as.
pub const DETECTION_ATTRIBUTE: &str = "detection";

/// The message attribute that marks a denied call's Message (`true`).
pub const DENIED_ATTRIBUTE: &str = "denied";

impl OutgoingMessage {
    /// What SNS counts against its limit: the body and the attributes.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attribute_values()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }

    fn attribute_values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let severity = self
            .severity
            .map(|severity| (SEVERITY_ATTRIBUTE, severity.as_str()));
        let detection = self
            .detection
            .as_deref()
            .map(|detection| (DETECTION_ATTRIBUTE, detection));
        let denied = self.denied.then_some((DENIED_ATTRIBUTE, "true"));
        severity.into_iter().chain(detection).chain(denied)
    }

    fn attributes(&self) -> Option<HashMap<String, MessageAttributeValue>> {
        let attributes: HashMap<String, MessageAttributeValue> = self
            .attribute_values()
            .map(|(name, value)| {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .expect("the data type is set");
                (name.to_owned(), value)
            })
            .collect();
        (!attributes.is_empty()).then_some(attributes)
    }
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// PublishBatch calls in flight at once.
    pub max_concurrent_batches: usize,
    /// Tries per entry, counting the first.
    pub max_attempts: u32,
    /// Wait before the second try; doubled for each later one.
    pub first_backoff: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            max_concurrent_batches: 8,
            max_attempts: 4,
            first_backoff: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    pub label: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{} of {total} messages were not published to SNS: {}", failed.len(), Capped(failed))]
    NotPublished {
        failed: Vec<FailedMessage>,
        total: usize,
    },
}

/// How many failures an error names one by one: the rest are counted, so that an error (and
/// the failure record that carries it, with its event) stays small whatever the delivery.
pub const NAMED_FAILURES: usize = 20;

/// A list of failures, `; `-separated: the first [`NAMED_FAILURES`], then how many more.
pub struct Capped<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for Capped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, failed) in self.0.iter().take(NAMED_FAILURES).enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failed}")?;
        }
        if self.0.len() > NAMED_FAILURES {
            write!(f, "; and {} more", self.0.len() - NAMED_FAILURES)?;
        }
        Ok(())
    }
}

impl fmt::Display for FailedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label, self.reason)
    }
}

#[derive(Debug, Clone)]
pub struct MessagePublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    options: PublishOptions,
}

impl MessagePublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self::with_options(client, topic_arn, PublishOptions::default())
    }

    pub fn with_options(
        client: aws_sdk_sns::Client,
        topic_arn: impl Into<String>,
        options: PublishOptions,
    ) -> Self {
        MessagePublisher {
            client,
            topic_arn: topic_arn.into(),
            options,
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes every message, returning how many went; if any did not, the error names them.
    pub async fn publish_all(&self, messages: Vec<OutgoingMessage>) -> Result<usize, PublishError> {
        let total = messages.len();
        let positions = (0..total).collect();
        let mut failed: Vec<(usize, FailedMessage)> =
            futures::stream::iter(batches(messages, positions))
                .map(|batch| self.publish_batch(batch))
                .buffer_unordered(self.options.max_concurrent_batches.max(1))
                .flat_map(futures::stream::iter)
                .collect()
                .await;
        // Batches finish in any order; report in the order the messages were given.
        failed.sort_by_key(|(position, _)| *position);
        let failed: Vec<FailedMessage> = failed.into_iter().map(|(_, failed)| failed).collect();
        if failed.is_empty() {
            Ok(total)
        } else {
            Err(PublishError::NotPublished { failed, total })
        }
    }

    async fn publish_batch(
        &self,
        batch: Vec<(usize, OutgoingMessage)>,
    ) -> Vec<(usize, FailedMessage)> {
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut failed = Vec::new();
        let mut backoff = self.options.first_backoff;
        for attempt in 1..=self.options.max_attempts.max(1) {
            let last_attempt = attempt == self.options.max_attempts.max(1);
            let entries = pending
                .iter()
                .map(|&index| {
                    PublishBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message(batch[index].1.body.clone())
                        .set_message_attributes(batch[index].1.attributes())
                        .build()
                        .expect("id and message are set")
                })
                .collect();
            let response = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await;
            let mut retry = Vec::new();
            match response {
                Ok(output) => {
                    for entry in output.failed() {
                        let Some(index) = entry
                            .id()
                            .parse::<usize>()
                            .ok()
                            .filter(|i| pending.contains(i))
                        else {
                            continue;
                        };
                        let reason = format!(
                            "{}: {}",
                            entry.code(),
                            entry.message().unwrap_or("no message")
                        );
                        if entry.sender_fault() || last_attempt {
                            failed.push(failure(&batch[index], reason));
                        } else {
                            tracing::warn!(label = %batch[index].1.label, attempt, %reason, "SNS did not take a message; retrying");
                            retry.push(index);
                        }
                    }
                }
                Err(error) => {
                    let reason = aws_errors::summary(&error);
                    // NotFound, AuthorizationError...: the same call would fail the same way.
                    if last_attempt || !aws_errors::is_transient(&error) {
                        failed.extend(
                            pending
                                .iter()
                                .map(|&index| failure(&batch[index], reason.clone())),
                        );
                    } else {
                        tracing::warn!(attempt, entries = pending.len(), %reason, "PublishBatch failed; retrying");
                        retry = pending.clone();
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            pending = retry;
        }
        failed
    }
}

fn failure(
    (position, message): &(usize, OutgoingMessage),
    reason: String,
) -> (usize, FailedMessage) {
    let failed = FailedMessage {
        label: message.label.clone(),
        reason,
    };
    (*position, failed)
}

/// Groups messages in order into PublishBatch calls, each message with its position: at most ten
/// entries, and at most 256 KiB in all, which SNS also enforces per batch.
fn batches(
    messages: Vec<OutgoingMessage>,
    positions: Vec<usize>,
) -> Vec<Vec<(usize, OutgoingMessage)>> {
    let mut batches: Vec<Vec<(usize, OutgoingMessage)>> = Vec::new();
    let mut batch_bytes = 0;
    for (position, message) in positions.into_iter().zip(messages) {
        let fits = batches.last().is_some_and(|batch| {
            batch.len() < MAX_BATCH_ENTRIES
                && batch_bytes + message.size() <= SNS_MESSAGE_LIMIT_BYTES
        });
        if !fits {
            batches.push(Vec::with_capacity(MAX_BATCH_ENTRIES));
            batch_bytes = 0;
        }
        batch_bytes += message.size();
        batches
            .last_mut()
            .expect("a batch was just ensured")
            .push((position, message));
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(label: usize, bytes: usize) -> OutgoingMessage {
        OutgoingMessage {
            label: label.to_string(),
            body: "x".repeat(bytes),
            ..OutgoingMessage::default()
        }
    }

    fn batched(messages: Vec<OutgoingMessage>) -> Vec<Vec<(usize, OutgoingMessage)>> {
        let positions = (0..messages.len()).collect();
        batches(messages, positions)
    }

    fn shape(batches: &[Vec<(usize, OutgoingMessage)>]) -> Vec<Vec<String>> {
        batches
            .iter()
            .map(|batch| batch.iter().map(|(_, m)| m.label.clone()).collect())
            .collect()
    }

    #[test]
    fn batches_hold_at_most_ten_in_order() {
        let grouped = batched((0..23).map(|i| outgoing(i, 10)).collect());
        assert_eq!(
            grouped.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 3]
        );
        let labels: Vec<String> = shape(&grouped).concat();
        assert_eq!(labels, (0..23).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn batches_stay_within_the_aggregate_size_limit() {
        let sizes = [100_000, 100_000, 100_000, 250_000, 10, 262_144, 1];
        let grouped = batched(
            sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| outgoing(i, s))
                .collect(),
        );
        assert_eq!(
            shape(&grouped),
            [
                vec!["0", "1"],
                vec!["2"],
                vec!["3", "4"],
                vec!["5"],
                vec!["6"]
            ]
        );
        for batch in &grouped {
            assert!(
                batch.iter().map(|(_, m)| m.body.len()).sum::<usize>() <= SNS_MESSAGE_LIMIT_BYTES
            );
        }
    }

    #[test]
    fn severity_and_detection_are_published_as_attributes_and_counted() {
        let mut message = outgoing(0, 10);
        assert!(message.attributes().is_none());
        assert_eq!(message.size(), 10);
        message.severity = Some(Severity::High);
        message.detection = Some("access-denied".into());
        let attributes = message.attributes().expect("two attributes");
        assert_eq!(
            attributes[DETECTION_ATTRIBUTE].string_value(),
            Some("access-denied")
        );
        assert_eq!(attributes[SEVERITY_ATTRIBUTE].string_value(), Some("high"));
        assert_eq!(
            message.size(),
            10 + "severity".len()
                + "String".len()
                + "high".len()
                + "detection".len()
                + "String".len()
                + "access-denied".len()
        );
    }

    #[test]
    fn no_messages_no_batches() {
        assert!(batched(Vec::new()).is_empty());
    }

    #[test]
    fn a_long_list_of_failures_names_the_first_and_counts_the_rest() {
        let failed: Vec<FailedMessage> = (0..25_000)
            .map(|i| FailedMessage {
                label: format!("log event {i}"),
                reason: "InternalError: boom".into(),
            })
            .collect();
        let text = PublishError::NotPublished {
            failed,
            total: 25_000,
        }
        .to_string();
        assert!(text.starts_with(
            "25000 of 25000 messages were not published to SNS: log event 0 (InternalError: boom); "
        ));
        assert!(
            text.contains("log event 19 (InternalError: boom); and 24980 more"),
            "{text:.200}"
        );
        assert!(!text.contains("log event 20 "));
        assert!(text.len() < 2_000, "{} bytes", text.len());
    }

    #[test]
    fn the_error_names_every_message_that_did_not_go() {
        let error = PublishError::NotPublished {
            failed: vec![
                FailedMessage {
                    label: "log event 1".into(),
                    reason: "InternalError: boom".into(),
                },
                FailedMessage {
                    label: "log event 7".into(),
                    reason: "InvalidParameter: too big".into(),
                },
            ],
            total: 9,
        };
        assert_eq!(
            error.to_string(),
            "2 of 9 messages were not published to SNS: log event 1 (InternalError: boom); log event 7 (InvalidParameter: too big)"
        );
    }
}
