//! The delivery core every destination stands on: SQS and SNS events read into Messages,
//! digests of Messages that belong together, pacing per endpoint, retries with backoff and
//! Retry-After, deadlines and batch item failures, a minimum severity, the secrets (KMS, each
//! for its own purpose) and how a Message reads. A destination adds its formatter and client.

pub mod accounts;
pub mod deliver;
pub mod digest;
pub mod endpoint;
pub mod incoming;
pub mod pace;
pub mod reading;
pub mod secret;
pub mod summary;

pub use accounts::{AccountDirectory, AccountNames, organization_account_names};
pub use deliver::{
    Answer, Channel, DeliveryError, Fate, Post, answer, deadline_of, deliver, empty_answer,
    foldable, handle_event, meets,
};
pub use digest::{ABSENT_VALUE, Digest, FieldSummary, Received, group_positions};
pub use endpoint::{Attempt, Endpoint, PacedSender, PostError, RetryPolicy, http_client};
pub use incoming::{DestinationEvent, EventError, Item, ItemError, Origin, read_event};
pub use pace::{PaceLimit, Pacer};
pub use reading::{ConsoleLink, LongValue, Reading, headline, plain_text, render_value, severity};
/// The HTTP status a refusal names.
pub use reqwest::StatusCode;
pub use secret::{ConfigError, Secret, SecretUrl, UrlError, decrypt_secret, decrypt_secret_url};

/// RFC 3339 times, in the Message crate (sources and responders write them too).
pub use activity_aware_message::time;

use activity_aware_message::Severity;

/// MINIMUM_SEVERITY: `info`, `low`, `medium`, `high` or `critical`; unset, `default`.
pub fn minimum_severity_from_env(default: Severity) -> Result<Severity, String> {
    match std::env::var("MINIMUM_SEVERITY") {
        Err(_) => Ok(default),
        Ok(text) if text.trim().is_empty() => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|error| format!("MINIMUM_SEVERITY: {error}")),
    }
}

/// A pace from `<PREFIX>_INTERVAL_MS` (sustained: one post per interval) and `<PREFIX>_BURST`,
/// each defaulting to `default`'s.
pub fn pace_from_env(prefix: &str, default: PaceLimit) -> Result<PaceLimit, String> {
    let mut pace = default;
    let interval = format!("{prefix}_INTERVAL_MS");
    if let Ok(text) = std::env::var(&interval) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("{interval} must be a number of milliseconds, not {text:?}"))?;
        pace.interval = std::time::Duration::from_millis(ms);
    }
    let burst = format!("{prefix}_BURST");
    if let Ok(text) = std::env::var(&burst) {
        pace.burst = text
            .parse()
            .ok()
            .filter(|&burst| burst >= 1)
            .ok_or_else(|| {
                format!("{burst} must be a whole number of posts, at least 1, not {text:?}")
            })?;
    }
    Ok(pace)
}
