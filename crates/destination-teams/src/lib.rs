//! Destination: Messages from the destination's queue (or straight from the SNS topic) are
//! posted to a Microsoft Teams Workflows webhook (the "When a Teams webhook request is
//! received" trigger) as Adaptive Cards, Messages that belong together as one digest, at the
//! pace Teams takes. The delivery core does the batches, digests, pacing, retries and
//! deadlines; this crate is Teams' card and its webhook.

pub mod card;

use activity_aware_delivery::{
    AccountDirectory, AccountNames, Answer, Channel, ConfigError, DeliveryError, DestinationEvent,
    Endpoint, PaceLimit, Post, PostError, RetryPolicy, Secret, decrypt_secret_url, handle_event,
};
use activity_aware_message::Severity;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use card::{CARD_VERSION, MAX_REQUEST_BYTES, teams_body};

/// What logs and errors call Teams.
pub const SERVICE: &str = "Teams";

/// TEAMS_WEBHOOK_URL: the Workflows webhook's URL (its `sig=` is its key).
pub const WEBHOOK_URL: Secret = Secret {
    variable: "TEAMS_WEBHOOK_URL",
    purpose: "activity-aware-ids/teams-webhook-url",
    holds: "the Teams webhook URL",
};

/// The encryption context of the webhook URL.
pub const WEBHOOK_ENCRYPTION_CONTEXT: [(&str, &str); 1] = WEBHOOK_URL.encryption_context();

/// Teams takes at most 4 requests a second per webhook; one instance alone posts a little
/// under that, so that network jitter never puts five in one second (the stack sets
/// TEAMS_POST_INTERVAL_MS for the instances that may post at once).
pub const DEFAULT_PACE: PaceLimit = PaceLimit {
    interval: Duration::from_millis(300),
    burst: 1,
};

/// What the Teams function reads from its environment, once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// TEAMS_WEBHOOK_URL: base64 KMS ciphertext, decrypted on the first invocation.
    pub encrypted_webhook_url: String,
    /// TEAMS_POST_INTERVAL_MS and TEAMS_POST_BURST.
    pub pace: PaceLimit,
    /// ACCOUNT_NAMES: `111122223333=prod`, shown as `prod (111122223333)`.
    pub accounts: AccountNames,
    /// MINIMUM_SEVERITY: Messages below it are not posted (default: low, so what is told for
    /// the record is not).
    pub minimum_severity: Severity,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        Ok(Config {
            encrypted_webhook_url: std::env::var(WEBHOOK_URL.variable).unwrap_or_default(),
            pace: activity_aware_delivery::pace_from_env("TEAMS_POST", DEFAULT_PACE)?,
            accounts: AccountNames::parse(&std::env::var("ACCOUNT_NAMES").unwrap_or_default())
                .map_err(|error| format!("ACCOUNT_NAMES: {error}"))?,
            minimum_severity: activity_aware_delivery::minimum_severity_from_env(Severity::Low)?,
        })
    }
}

/// State kept for the life of the container: the webhook, decrypted once, and its pace.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    config: Config,
    http: reqwest::Client,
    accounts: AccountDirectory,
    webhook: OnceCell<Endpoint>,
}

impl Destination {
    /// With the clients `main` builds once: KMS, and the HTTPS client
    /// ([`activity_aware_delivery::http_client`]).
    pub fn new(config: Config, kms: aws_sdk_kms::Client, http: reqwest::Client) -> Self {
        Destination {
            kms,
            accounts: AccountDirectory::new(config.accounts.clone()),
            config,
            http,
            webhook: OnceCell::new(),
        }
    }

    async fn webhook(&self) -> Result<&Endpoint, ConfigError> {
        self.webhook
            .get_or_try_init(|| async {
                let url =
                    decrypt_secret_url(&self.kms, WEBHOOK_URL, &self.config.encrypted_webhook_url)
                        .await?;
                Ok(Endpoint::new(
                    SERVICE,
                    self.http.clone(),
                    url,
                    RetryPolicy::default(),
                    self.config.pace,
                ))
            })
            .await
    }

    /// Posts the event's Messages as cards. From SQS, what could not be posted is reported as
    /// batch item failures; from SNS, any failure fails the invocation.
    pub async fn handle(
        &self,
        event: LambdaEvent<DestinationEvent>,
    ) -> Result<Answer, DeliveryError> {
        handle_event(event, self.config.minimum_severity, |_| async {
            Ok(TeamsChannel {
                webhook: self.webhook().await?,
                accounts: self.accounts.names().await,
            })
        })
        .await
    }
}

struct TeamsChannel<'a> {
    webhook: &'a Endpoint,
    accounts: Arc<AccountNames>,
}

impl Channel for TeamsChannel<'_> {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn room(&self, _route: usize, deadline: Instant) -> usize {
        self.webhook.posts_before(deadline)
    }

    async fn send(
        &self,
        _route: usize,
        post: &Post<'_>,
        deadline: Instant,
    ) -> Result<(), PostError> {
        self.webhook
            .post(&teams_body(post, &self.accounts), deadline)
            .await
    }
}
