//! Destination: Messages at or above a minimum severity (default high) become PagerDuty
//! incidents through the Events API v2, one `trigger` per digest, deduplicated per digest group
//! and detection so that a probe is one incident, at most 120 events a minute per routing key.
//! The delivery core does the batches, digests, pacing, retries and deadlines; this crate is
//! PagerDuty's event and its endpoint.

pub mod event;

use activity_aware_delivery::{
    AccountDirectory, AccountNames, Answer, Channel, ConfigError, DeliveryError, DestinationEvent,
    Endpoint, PaceLimit, Post, PostError, RetryPolicy, Secret, SecretUrl, decrypt_secret,
    handle_event,
};
use activity_aware_message::Severity;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use event::{dedup_key, pagerduty_event, pagerduty_severity};

/// What logs and errors call PagerDuty.
pub const SERVICE: &str = "PagerDuty";

/// PagerDuty's Events API v2; PAGERDUTY_EVENTS_URL overrides it (tests).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PAGERDUTY_ROUTING_KEY: the integration's routing key, which lets anyone open incidents.
pub const ROUTING_KEY: Secret = Secret {
    variable: "PAGERDUTY_ROUTING_KEY",
    purpose: "activity-aware-ids/pagerduty-routing-key",
    holds: "the PagerDuty routing key",
};

/// The encryption context of the routing key.
pub const ROUTING_KEY_ENCRYPTION_CONTEXT: [(&str, &str); 1] = ROUTING_KEY.encryption_context();

/// PagerDuty takes 120 events a minute per routing key; one instance alone sends at that pace
/// (the stack sets PAGERDUTY_EVENT_INTERVAL_MS for the instances that may send at once).
pub const DEFAULT_PACE: PaceLimit = PaceLimit {
    interval: Duration::from_millis(500),
    burst: 1,
};

/// What the PagerDuty function reads from its environment, once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// PAGERDUTY_ROUTING_KEY: base64 KMS ciphertext, decrypted on the first invocation.
    pub encrypted_routing_key: String,
    /// PAGERDUTY_EVENTS_URL (https).
    pub events_url: SecretUrl,
    /// PAGERDUTY_EVENT_INTERVAL_MS and PAGERDUTY_EVENT_BURST.
    pub pace: PaceLimit,
    pub accounts: AccountNames,
    /// MINIMUM_SEVERITY: default high.
    pub minimum_severity: Severity,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let events_url = std::env::var("PAGERDUTY_EVENTS_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| EVENTS_URL.to_owned());
        Ok(Config {
            encrypted_routing_key: std::env::var(ROUTING_KEY.variable).unwrap_or_default(),
            events_url: SecretUrl::parse(&events_url)
                .map_err(|error| format!("PAGERDUTY_EVENTS_URL {error}"))?,
            pace: activity_aware_delivery::pace_from_env("PAGERDUTY_EVENT", DEFAULT_PACE)?,
            accounts: AccountNames::parse(&std::env::var("ACCOUNT_NAMES").unwrap_or_default())
                .map_err(|error| format!("ACCOUNT_NAMES: {error}"))?,
            minimum_severity: activity_aware_delivery::minimum_severity_from_env(Severity::High)?,
        })
    }
}

/// A routing key: printable, no spaces. Its `Debug` never shows it.
#[derive(Clone)]
pub struct RoutingKey(String);

impl std::fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoutingKey(<redacted>)")
    }
}

impl RoutingKey {
    pub fn parse(plaintext: &str) -> Result<RoutingKey, ConfigError> {
        let key = plaintext.trim();
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                secret: ROUTING_KEY,
                problem: "the decrypted key is not a routing key (printable, no spaces, at most 128 characters)".into(),
            });
        }
        Ok(RoutingKey(key.to_owned()))
    }
}

/// State kept for the life of the container: the routing key, decrypted once, and the pace.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    config: Config,
    http: reqwest::Client,
    accounts: AccountDirectory,
    sender: OnceCell<(RoutingKey, Endpoint)>,
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
            sender: OnceCell::new(),
        }
    }

    async fn sender(&self) -> Result<&(RoutingKey, Endpoint), ConfigError> {
        self.sender
            .get_or_try_init(|| async {
                let key = RoutingKey::parse(
                    &decrypt_secret(&self.kms, ROUTING_KEY, &self.config.encrypted_routing_key)
                        .await?,
                )?;
                // The key is in every body: an answer that echoes it never carries it on.
                let endpoint = Endpoint::new(
                    SERVICE,
                    self.http.clone(),
                    self.config.events_url.clone(),
                    RetryPolicy::default(),
                    self.config.pace,
                )
                .hiding(key.0.clone());
                Ok((key, endpoint))
            })
            .await
    }

    /// Sends the event's Messages at or above the minimum as PagerDuty events. From SQS, what
    /// could not be sent (a 429 past the deadline, PagerDuty down) comes back as batch item
    /// failures, to be sent later; nothing is dropped.
    pub async fn handle(
        &self,
        event: LambdaEvent<DestinationEvent>,
    ) -> Result<Answer, DeliveryError> {
        handle_event(event, self.config.minimum_severity, |_| async {
            let (key, endpoint) = self.sender().await?;
            Ok(PagerDutyChannel {
                key,
                endpoint,
                accounts: self.accounts.names().await,
            })
        })
        .await
    }
}

struct PagerDutyChannel<'a> {
    key: &'a RoutingKey,
    endpoint: &'a Endpoint,
    accounts: Arc<AccountNames>,
}

impl Channel for PagerDutyChannel<'_> {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn room(&self, _route: usize, deadline: Instant) -> usize {
        self.endpoint.posts_before(deadline)
    }

    async fn send(
        &self,
        _route: usize,
        post: &Post<'_>,
        deadline: Instant,
    ) -> Result<(), PostError> {
        let event = pagerduty_event(post, &self.key.0, &self.accounts);
        self.endpoint.post(&event, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routing_key_is_printable_and_never_shown() {
        let key = RoutingKey::parse(" R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY01\n").unwrap();
        assert_eq!(format!("{key:?}"), "RoutingKey(<redacted>)");
        for bad in ["", "has space", "tab\there"] {
            let error = RoutingKey::parse(bad).unwrap_err().to_string();
            assert!(error.starts_with("PAGERDUTY_ROUTING_KEY, "), "{error}");
        }
    }
}
