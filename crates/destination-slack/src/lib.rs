//! Destination: every Message arriving from the SNS topic is posted to a Slack incoming webhook.

mod body;
mod webhook;

pub use body::{COLOR, escape, plain_text, render_value, slack_body};
pub use webhook::{
    ConfigError, RetryPolicy, SlackError, SlackWebhook, WebhookUrl, decrypt_webhook_url,
};

use activity_aware_message::messages_from_sns_event;
use aws_lambda_events::event::sns::SnsEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Used when an invocation carries no deadline (never on Lambda).
const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(30);

/// What one invocation delivered, returned as the function's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub delivered: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{} of {total} messages were not delivered to Slack: {}", failures.len(), failures.join("; "))]
    NotDelivered { failures: Vec<String>, total: usize },
}

impl From<DestinationError> for Diagnostic {
    fn from(error: DestinationError) -> Self {
        let error_type = match &error {
            DestinationError::Config(_) => "WebhookConfiguration",
            DestinationError::NotDelivered { .. } => "NotDelivered",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// State kept for the life of the container: the webhook is decrypted on first use, once.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    encrypted_webhook_url: String,
    http: reqwest::Client,
    policy: RetryPolicy,
    webhook: OnceCell<SlackWebhook>,
}

impl Destination {
    pub fn new(
        kms: aws_sdk_kms::Client,
        encrypted_webhook_url: String,
        policy: RetryPolicy,
    ) -> Self {
        Destination {
            kms,
            encrypted_webhook_url,
            http: SlackWebhook::http_client(),
            policy,
            webhook: OnceCell::new(),
        }
    }

    async fn webhook(&self) -> Result<&SlackWebhook, ConfigError> {
        self.webhook
            .get_or_try_init(|| async {
                let url = decrypt_webhook_url(&self.kms, &self.encrypted_webhook_url).await?;
                Ok(SlackWebhook::new(
                    self.http.clone(),
                    url,
                    self.policy.clone(),
                ))
            })
            .await
    }

    /// Posts every record's Message; one that fails does not stop the others, but fails the
    /// invocation so Lambda retries it and the failure destination keeps it.
    pub async fn handle(
        &self,
        event: LambdaEvent<SnsEvent>,
    ) -> Result<Delivered, DestinationError> {
        let deadline = deadline_of(&event.context);
        let webhook = self.webhook().await?;
        let total = event.payload.records.len();
        let mut delivered = 0;
        let mut failures = Vec::new();
        for (index, (record, message)) in event
            .payload
            .records
            .iter()
            .zip(messages_from_sns_event(&event.payload))
            .enumerate()
        {
            let sns_message_id = record.sns.message_id.as_str();
            let outcome = match message {
                Ok(message) => webhook
                    .post(&slack_body(&message), deadline)
                    .await
                    .map(|()| message.subject)
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match outcome {
                Ok(subject) => {
                    delivered += 1;
                    tracing::info!(record = index, %sns_message_id, %subject, "delivered to Slack");
                }
                Err(error) => {
                    tracing::error!(record = index, %sns_message_id, %error, "not delivered to Slack");
                    failures.push(format!(
                        "record {index} (SNS message {sns_message_id}): {error}"
                    ));
                }
            }
        }
        if failures.is_empty() {
            Ok(Delivered { delivered })
        } else {
            Err(DestinationError::NotDelivered { failures, total })
        }
    }
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
