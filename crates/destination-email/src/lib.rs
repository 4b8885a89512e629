//! Destination: Messages at or above a minimum severity (default medium) are emailed through
//! SES v2 `SendEmail`, from a verified sender to the team's addresses: one email a post (a
//! Message, a digest of Messages that belong together, or the summary of groups folded
//! together), plain text and HTML with the same content, at SES's sending rate. The delivery
//! core does the batches, digests, pacing, retries and deadlines; this crate is the email and
//! SES.

pub mod address;
pub mod mail;
pub mod mime;

use activity_aware_delivery::{
    AccountDirectory, AccountNames, Answer, Channel, DeliveryError, DestinationEvent, PaceLimit,
    Post, PostError, RetryPolicy, handle_event,
};
use activity_aware_message::Severity;
use lambda_runtime::LambdaEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use address::{Address, AddressError, MAX_RECIPIENTS, parse_recipients};
pub use mail::Mailer;
pub use mime::{Email, email_of, raw_message};

/// What logs and errors call the service the emails go through.
pub const SERVICE: &str = "SES";

/// SES sends 1 email a second from a sandbox account (more once out of it); one instance alone
/// keeps to that (the stack sets EMAIL_SEND_INTERVAL_MS for the instances that may send at
/// once).
pub const DEFAULT_PACE: PaceLimit = PaceLimit {
    interval: Duration::from_secs(1),
    burst: 1,
};

/// What the email function reads from its environment, once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// EMAIL_FROM: the sender, an address or domain SES has verified.
    pub from: Address,
    /// EMAIL_TO: the recipients, comma-separated (at most 50, SES's limit for one email).
    pub to: Vec<Address>,
    /// EMAIL_SEND_INTERVAL_MS and EMAIL_SEND_BURST.
    pub pace: PaceLimit,
    /// ACCOUNT_NAMES: `111122223333=prod`, shown as `prod (111122223333)`.
    pub accounts: AccountNames,
    /// MINIMUM_SEVERITY: default medium.
    pub minimum_severity: Severity,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let variable = |name: &str| std::env::var(name).unwrap_or_default();
        Ok(Config {
            from: Address::parse(&variable("EMAIL_FROM"))
                .map_err(|error| format!("EMAIL_FROM {error}"))?,
            to: parse_recipients(&variable("EMAIL_TO"))
                .map_err(|error| format!("EMAIL_TO: {error}"))?,
            pace: activity_aware_delivery::pace_from_env("EMAIL_SEND", DEFAULT_PACE)?,
            accounts: AccountNames::parse(&variable("ACCOUNT_NAMES"))
                .map_err(|error| format!("ACCOUNT_NAMES: {error}"))?,
            minimum_severity: activity_aware_delivery::minimum_severity_from_env(Severity::Medium)?,
        })
    }
}

/// State kept for the life of the container: SES's client and the pace.
pub struct Destination {
    mailer: Mailer,
    minimum_severity: Severity,
    accounts: AccountDirectory,
}

impl Destination {
    pub fn new(config: Config, ses: aws_sdk_sesv2::Client) -> Self {
        Destination {
            mailer: Mailer::new(
                ses,
                config.from,
                config.to,
                RetryPolicy::default(),
                config.pace,
            ),
            minimum_severity: config.minimum_severity,
            accounts: AccountDirectory::new(config.accounts),
        }
    }

    /// Emails the event's Messages at or above the minimum. From SQS, what could not be sent
    /// (SES throttling past the deadline, SES down) comes back as batch item failures; from
    /// SNS, any failure fails the invocation.
    pub async fn handle(
        &self,
        event: LambdaEvent<DestinationEvent>,
    ) -> Result<Answer, DeliveryError> {
        handle_event(event, self.minimum_severity, |_| async {
            Ok(EmailChannel {
                mailer: &self.mailer,
                accounts: self.accounts.names().await,
            })
        })
        .await
    }
}

struct EmailChannel<'a> {
    mailer: &'a Mailer,
    accounts: Arc<AccountNames>,
}

impl Channel for EmailChannel<'_> {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn room(&self, _route: usize, deadline: Instant) -> usize {
        self.mailer.posts_before(deadline)
    }

    async fn send(
        &self,
        _route: usize,
        post: &Post<'_>,
        deadline: Instant,
    ) -> Result<(), PostError> {
        let email = email_of(post, &self.accounts);
        let raw = raw_message(&email, self.mailer.from(), self.mailer.to());
        self.mailer.send(raw.into_bytes(), deadline).await
    }
}
