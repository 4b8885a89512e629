//! Destination: Messages from the stack's buffer queue (or straight from the SNS topic) are
//! posted to a Slack incoming webhook, Messages that belong together as one digest, at the
//! pace Slack takes.

mod body;
mod digest;
mod incoming;
pub mod layout;
mod pace;
pub mod time;
mod webhook;

pub use body::{
    COLOR, COUNT_LABEL, TIME_SPAN_LABEL, digest_body, escape, plain_text, render_value, slack_body,
};
pub use digest::{ABSENT_VALUE, Digest, FieldSummary, Received, group_positions};
pub use incoming::{EventError, Item, ItemError, Origin, read_event};
use layout::AccountNames;
pub use pace::{PaceLimit, Pacer};
pub use webhook::{
    ConfigError, RetryPolicy, SlackError, SlackWebhook, WEBHOOK_ENCRYPTION_CONTEXT, WebhookUrl,
    decrypt_webhook_url,
};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Used when an invocation carries no deadline (never on Lambda).
const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(30);

/// What one invocation answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// To an SQS batch: the Messages to bring back (none when all were posted).
    Batch(SqsBatchResponse),
    /// To an SNS event, where every Message was posted.
    Delivered { delivered: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{} of {total} messages were not delivered to Slack: {}", failures.len(), failures.join("; "))]
    NotDelivered { failures: Vec<String>, total: usize },
}

impl From<DestinationError> for Diagnostic {
    fn from(error: DestinationError) -> Self {
        let error_type = match &error {
            DestinationError::Config(_) => "WebhookConfiguration",
            DestinationError::Event(_) => "UnrecognisedEvent",
            DestinationError::NotDelivered { .. } => "NotDelivered",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// State kept for the life of the container: the webhook is decrypted on first use, once, and
/// its pace is kept across invocations.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    encrypted_webhook_url: String,
    http: reqwest::Client,
    policy: RetryPolicy,
    pace: PaceLimit,
    accounts: AccountNames,
    webhook: OnceCell<SlackWebhook>,
}

/// The fate of one Message of the event.
#[derive(Debug)]
enum Fate {
    Posted,
    Failed(String),
}

impl Destination {
    pub fn new(
        kms: aws_sdk_kms::Client,
        encrypted_webhook_url: String,
        policy: RetryPolicy,
        pace: PaceLimit,
    ) -> Self {
        Destination {
            kms,
            encrypted_webhook_url,
            http: SlackWebhook::http_client(),
            policy,
            pace,
            accounts: AccountNames::default(),
            webhook: OnceCell::new(),
        }
    }

    /// Posts show these accounts by name.
    pub fn with_account_names(mut self, accounts: AccountNames) -> Self {
        self.accounts = accounts;
        self
    }

    async fn webhook(&self) -> Result<&SlackWebhook, ConfigError> {
        self.webhook
            .get_or_try_init(|| async {
                let url = decrypt_webhook_url(&self.kms, &self.encrypted_webhook_url).await?;
                Ok(SlackWebhook::new(
                    self.http.clone(),
                    url,
                    self.policy.clone(),
                    self.pace,
                ))
            })
            .await
    }

    /// Posts the event's Messages, those that belong together as one digest. From SQS, what
    /// could not be posted (Slack down, out of time, a bad Message) is reported as batch item
    /// failures, so SQS brings it back and nothing posted is posted twice; from SNS, any
    /// failure fails the invocation, so Lambda retries it.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Answer, DestinationError> {
        let deadline = deadline_of(&event.context);
        let (origin, items) = read_event(event.payload)?;
        if items.is_empty() {
            return Ok(empty_answer(origin));
        }
        let webhook = self.webhook().await?;
        let fates = post_all(webhook, &self.accounts, &items, deadline).await;

        let total = items.len();
        let failed: Vec<(&Item, &String)> = items
            .iter()
            .zip(&fates)
            .filter_map(|(item, fate)| match fate {
                Fate::Failed(reason) => Some((item, reason)),
                Fate::Posted => None,
            })
            .collect();
        let describe = |(item, reason): &(&Item, &String)| {
            let kind = match origin {
                Origin::Sqs => "SQS message",
                Origin::Sns => "SNS message",
            };
            format!("{kind} {}: {reason}", item.id)
        };
        // Nothing posted at all: failing the invocation says so loudly (an error in the
        // function's metrics), and retrying the whole batch posts nothing twice.
        if origin == Origin::Sns || (!failed.is_empty() && failed.len() == total) {
            if failed.is_empty() {
                return Ok(Answer::Delivered { delivered: total });
            }
            return Err(DestinationError::NotDelivered {
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
}

fn empty_answer(origin: Origin) -> Answer {
    match origin {
        Origin::Sqs => Answer::Batch(SqsBatchResponse::default()),
        Origin::Sns => Answer::Delivered { delivered: 0 },
    }
}

/// Posts one body per group, in batch order, and says what became of every item. After a
/// failure that every later post would meet too (the webhook revoked, Slack down, the deadline
/// near), nothing more is tried.
async fn post_all(
    webhook: &SlackWebhook,
    accounts: &AccountNames,
    items: &[Item],
    deadline: Instant,
) -> Vec<Fate> {
    let mut fates: Vec<Option<Fate>> = items.iter().map(|_| None).collect();
    let mut readable = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match &item.message {
            Ok(message) => readable.push((index, message)),
            Err(error) => {
                tracing::error!(id = %item.id, %error, "not a Message; it will not be posted");
                fates[index] = Some(Fate::Failed(error.to_string()));
            }
        }
    }
    let messages: Vec<_> = readable.iter().map(|(_, message)| *message).collect();
    let groups = group_positions(&messages);
    let mut stopped: Option<String> = None;
    for group in &groups {
        let indices: Vec<usize> = group.iter().map(|&position| readable[position].0).collect();
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
                let body = if received.len() == 1 {
                    slack_body(received[0].message, accounts)
                } else {
                    digest_body(&Digest::of(&received), accounts)
                };
                let subject = &received[0].message.subject;
                match webhook.post(&body, deadline).await {
                    Ok(()) => {
                        tracing::info!(messages = indices.len(), %subject, "posted to Slack");
                        Ok(())
                    }
                    Err(error) => {
                        tracing::error!(messages = indices.len(), %subject, %error, "not posted to Slack");
                        if !matches!(error, SlackError::Rejected { .. })
                            || error.refuses_every_post()
                        {
                            stopped =
                                Some(format!("not tried after an earlier post failed: {error}"));
                        }
                        Err(error.to_string())
                    }
                }
            }
        };
        for index in indices {
            fates[index] = Some(match &outcome {
                Ok(()) => Fate::Posted,
                Err(reason) => Fate::Failed(reason.clone()),
            });
        }
    }
    fates
        .into_iter()
        .map(|fate| fate.expect("every item is either unreadable or in a group"))
        .collect()
}

fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let left = match context.deadline {
        0 => DEFAULT_TIME_BUDGET,
        deadline_ms => Duration::from_millis(deadline_ms.saturating_sub(now_ms)),
    };
    Instant::now() + left
}
