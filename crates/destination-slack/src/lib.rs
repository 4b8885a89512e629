//! Destination: Messages from the stack's buffer queue (or straight from the SNS topic) are
//! posted to a Slack incoming webhook, Messages that belong together as one digest, at the
//! pace Slack takes. The delivery core does the batches, digests, pacing, retries and
//! deadlines; this crate is Slack's formatter (Block Kit) and its webhooks.

mod body;
mod fold;
pub mod heartbeat;
pub mod layout;
pub mod routes;
mod webhook;

/// RFC 3339 times, in the Message crate (sources and responders write them too).
pub use activity_aware_message::time;

pub use activity_aware_delivery::{
    ABSENT_VALUE, Answer, ConfigError, DestinationEvent, Digest, EventError, FieldSummary, Item,
    ItemError, Origin, PaceLimit, Pacer, Received, RetryPolicy, UrlError, group_positions,
    organization_account_names, read_event,
};
pub use body::{
    COLOR, COUNT_LABEL, TIME_SPAN_LABEL, digest_body, escape, plain_fallback, plain_text,
    render_value, slack_body,
};
pub use routes::{WebhookRoutes, Webhooks};
pub use webhook::{
    OPERATIONS_WEBHOOK_ENCRYPTION_CONTEXT, OPERATIONS_WEBHOOK_URL, SERVICE, SlackError,
    SlackWebhook, WEBHOOK_ENCRYPTION_CONTEXT, WEBHOOK_ROUTES, WEBHOOK_ROUTES_ENCRYPTION_CONTEXT,
    WEBHOOK_URL, WebhookUrl, decrypt_webhook_url,
};

use activity_aware_delivery::{
    AccountDirectory, Channel, DeliveryError, Post, decrypt_secret, handle_event,
};
use activity_aware_message::{Message, Severity};
use lambda_runtime::LambdaEvent;
use layout::AccountNames;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// What goes wrong for the Slack function: its webhooks, the event, or delivery.
pub type DestinationError = DeliveryError;

/// What the Slack function reads from its environment, once, at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// SLACK_WEBHOOK_URL: base64 KMS ciphertext of the stack's webhook URL (decrypted on the
    /// first invocation, so that a KMS failure fails that invocation, and is retried, instead
    /// of killing the container).
    pub encrypted_webhook_url: String,
    /// SLACK_WEBHOOK_ROUTES: base64 KMS ciphertext of `account:ID=URL,channel:NAME=URL` pairs.
    pub encrypted_webhook_routes: String,
    /// SLACK_POST_INTERVAL_MS (sustained: one post per interval; the stack sets it to 1 s times
    /// the number of instances that may post at once) and SLACK_POST_BURST.
    pub pace: PaceLimit,
    /// ACCOUNT_NAMES: `111122223333=prod,444455556666=staging`, shown as `prod (111122223333)`.
    pub accounts: AccountNames,
    /// ACCOUNT_NAMES_FROM_ORGANIZATIONS: also name the organisation's accounts.
    pub organization_names: bool,
    /// MINIMUM_SEVERITY: Messages below it are not posted (default: low, so what is told for
    /// the record is not; the operations relay's template sets info).
    pub minimum_severity: Severity,
    /// OPERATIONS_RELAY: this is the operations relay, subscribed to the operations topic: it
    /// reads CloudWatch's alarm notifications and the self-protection rules' events as well as
    /// Messages, and its webhook is encrypted with the operations key for its own purpose.
    pub operations: bool,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let accounts = AccountNames::parse(&std::env::var("ACCOUNT_NAMES").unwrap_or_default())
            .map_err(|error| format!("ACCOUNT_NAMES: {error}"))?;
        Ok(Config {
            encrypted_webhook_url: std::env::var(WEBHOOK_URL.variable).unwrap_or_default(),
            encrypted_webhook_routes: std::env::var(WEBHOOK_ROUTES.variable).unwrap_or_default(),
            pace: activity_aware_delivery::pace_from_env("SLACK_POST", PaceLimit::default())?,
            accounts,
            organization_names: flag_from_env("ACCOUNT_NAMES_FROM_ORGANIZATIONS")?,
            minimum_severity: activity_aware_delivery::minimum_severity_from_env(Severity::Low)?,
            operations: flag_from_env("OPERATIONS_RELAY")?,
        })
    }
}

/// `true` or `false`; unset is false.
fn flag_from_env(name: &str) -> Result<bool, String> {
    match std::env::var(name).as_deref() {
        Err(_) | Ok("") | Ok("false") => Ok(false),
        Ok("true") => Ok(true),
        Ok(other) => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

/// How long reading one routed unit's accounts may take.
const UNIT_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// State kept for the life of the container: the webhooks are decrypted on first use, once,
/// and their pace is kept across invocations.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    encrypted_webhook_url: String,
    encrypted_webhook_routes: String,
    http: reqwest::Client,
    policy: RetryPolicy,
    pace: PaceLimit,
    minimum_severity: Severity,
    accounts: AccountDirectory,
    /// Reads the routed organizational units' accounts (with ACCOUNT_NAMES_FROM_ORGANIZATIONS).
    organizations: Option<aws_sdk_organizations::Client>,
    webhooks: OnceCell<Webhooks>,
    /// Which purpose the webhook is encrypted for (the operations relay's is its own).
    webhook_secret: activity_aware_delivery::Secret,
    /// As the operations relay: the catalogue that reads the events it is sent.
    operations: Option<source_eventbridge::Detector>,
    /// Counts the heartbeat's legs it can verify, and posts none.
    heartbeats: Option<HeartbeatVerifier>,
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
            encrypted_webhook_routes: String::new(),
            http: activity_aware_delivery::http_client(),
            policy,
            pace,
            minimum_severity: Severity::Info,
            accounts: AccountDirectory::default(),
            organizations: None,
            webhooks: OnceCell::new(),
            webhook_secret: WEBHOOK_URL,
            operations: None,
            heartbeats: None,
        }
    }

    /// Counts the heartbeat legs it verifies with this verifier (and posts none).
    pub fn with_heartbeats(mut self, verifier: Option<HeartbeatVerifier>) -> Self {
        self.heartbeats = verifier;
        self
    }

    /// The operations relay: its webhook encrypted for its own purpose, and what reaches the
    /// operations topic (alarm notifications, self-protection events) read as Messages with
    /// this catalogue.
    pub fn as_operations_relay(mut self, detector: source_eventbridge::Detector) -> Self {
        self.webhook_secret = OPERATIONS_WEBHOOK_URL;
        self.operations = Some(detector);
        self
    }

    /// The destination a [`Config`] describes, with the clients `main` built once: KMS,
    /// Organizations (when account names come from it) and the HTTPS client
    /// ([`activity_aware_delivery::http_client`]).
    pub fn from_config(
        config: Config,
        kms: aws_sdk_kms::Client,
        organizations: Option<aws_sdk_organizations::Client>,
        http: reqwest::Client,
    ) -> Self {
        let organizations = organizations.filter(|_| config.organization_names);
        let mut accounts = AccountDirectory::new(config.accounts);
        if let Some(client) = organizations.clone() {
            accounts = accounts.with_organization(client);
        }
        Destination {
            encrypted_webhook_routes: config.encrypted_webhook_routes,
            minimum_severity: config.minimum_severity,
            accounts,
            organizations,
            http,
            ..Destination::new(
                kms,
                config.encrypted_webhook_url,
                RetryPolicy::default(),
                config.pace,
            )
        }
    }

    /// Posts show these accounts by name.
    pub fn with_account_names(mut self, accounts: AccountNames) -> Self {
        self.accounts = AccountDirectory::new(accounts);
        self
    }

    /// Webhooks of their own for some accounts and channels: the base64 KMS ciphertext of
    /// SLACK_WEBHOOK_ROUTES (empty: none).
    pub fn with_webhook_routes(mut self, encrypted_webhook_routes: String) -> Self {
        self.encrypted_webhook_routes = encrypted_webhook_routes;
        self
    }

    /// The webhooks, decrypted on first use. Routes that cannot be used (not decrypted, not
    /// read) send every Message to the stack's webhook instead, with a notice posted there
    /// first: a broken route never holds an alert back, and the channel says what is wrong.
    async fn webhooks(&self) -> Result<&Webhooks, ConfigError> {
        self.webhooks
            .get_or_try_init(|| async {
                let url =
                    decrypt_webhook_url(&self.kms, self.webhook_secret, &self.encrypted_webhook_url)
                        .await?;
                let (routes, notice) = match self.webhook_routes().await {
                    Ok(routes) => (routes, None),
                    Err(error) => {
                        tracing::error!(%error, "webhook routes not in use: every Message goes to the stack's webhook");
                        (WebhookRoutes::default(), Some(error.to_string()))
                    }
                };
                let webhooks = Webhooks::new(
                    self.http.clone(),
                    url,
                    routes,
                    self.policy.clone(),
                    self.pace,
                )
                .with_notice(notice);
                Ok(self.route_units(webhooks).await)
            })
            .await
    }

    /// The routed units' accounts, read from the organisation once per container (a unit's
    /// new account is routed from the function's next start). A unit that cannot be read
    /// routes nothing, and the stack's channel is told why.
    async fn route_units(&self, webhooks: Webhooks) -> Webhooks {
        let units = webhooks.units();
        if units.is_empty() {
            return webhooks;
        }
        let Some(organizations) = &self.organizations else {
            let routes: Vec<String> = units.iter().map(|unit| format!("ou:{unit}")).collect();
            let problem = format!(
                "the routes of {} need AccountNamesFromOrganizations Enabled (the function reads the organisation); their accounts' alerts are posted here",
                routes.join(", ")
            );
            tracing::error!(%problem, "unit routes not in use");
            return webhooks.with_notice(Some(problem));
        };
        let mut read = Vec::new();
        let mut problems = Vec::new();
        for unit in &units {
            // Each unit's own accounts: a routed unit inside it keeps its accounts. A read that
            // takes too long routes nothing rather than holding every post back.
            let others: Vec<String> = units
                .iter()
                .filter(|other| *other != unit)
                .cloned()
                .collect();
            let reading = activity_aware_delivery::accounts::unit_accounts_short_of(
                organizations,
                std::slice::from_ref(unit),
                &others,
            );
            let answer = tokio::time::timeout(UNIT_READ_LIMIT, reading)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "Organizations took more than {} s",
                        UNIT_READ_LIMIT.as_secs()
                    ))
                });
            let unit = unit.clone();
            match answer {
                Ok(accounts) => {
                    tracing::info!(unit, accounts = accounts.len(), "unit route");
                    read.push((unit, accounts.into_iter().map(|(id, _)| id).collect()));
                }
                Err(error) => {
                    tracing::error!(unit, %error, "a unit's accounts could not be read");
                    problems.push(format!(
                        "the accounts of ou:{unit} could not be read ({error}); their alerts are posted here"
                    ));
                }
            }
        }
        let notice = (!problems.is_empty()).then(|| problems.join("; "));
        webhooks.with_unit_accounts(&read).with_notice(notice)
    }

    async fn webhook_routes(&self) -> Result<WebhookRoutes, ConfigError> {
        match self.encrypted_webhook_routes.trim() {
            "" => Ok(WebhookRoutes::default()),
            ciphertext => {
                WebhookRoutes::parse(&decrypt_secret(&self.kms, WEBHOOK_ROUTES, ciphertext).await?)
            }
        }
    }

    /// Posts the event's Messages, those that belong together as one digest. From SQS, what
    /// could not be posted (Slack down, out of time, a bad Message) is reported as batch item
    /// failures, so SQS brings it back and nothing posted is posted twice; from SNS, any
    /// failure fails the invocation, so Lambda retries it.
    pub async fn handle(
        &self,
        mut event: LambdaEvent<DestinationEvent>,
    ) -> Result<Answer, DestinationError> {
        if let Some(verifier) = &self.heartbeats {
            verifier
                .take_legs(&mut event.payload, now_ms() as i64)
                .await;
        }
        if let (Some(detector), DestinationEvent::Sns(sns)) = (&self.operations, &mut event.payload)
        {
            for record in &mut sns.records {
                if let Some(message) = source_eventbridge::operations::operations_message(
                    &record.sns.message,
                    detector,
                ) {
                    record.sns.message = message;
                }
            }
        }
        handle_event(event, self.minimum_severity, |deadline| async move {
            let webhooks = self.webhooks().await?;
            webhooks.post_notice(deadline).await;
            Ok(SlackChannel {
                webhooks,
                accounts: self.accounts.names().await,
            })
        })
        .await
    }
}

/// One invocation's posting to Slack: Block Kit bodies to each Message's webhook.
struct SlackChannel<'a> {
    webhooks: &'a Webhooks,
    accounts: Arc<AccountNames>,
}

impl Channel for SlackChannel<'_> {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn endpoints(&self) -> usize {
        self.webhooks.len()
    }

    fn route(&self, message: &Message) -> usize {
        self.webhooks.route(message)
    }

    fn endpoint_name(&self, route: usize) -> &str {
        self.webhooks.name(route)
    }

    fn room(&self, route: usize, deadline: Instant) -> usize {
        self.webhooks.webhook(route).posts_before(deadline)
    }

    async fn send(
        &self,
        route: usize,
        post: &Post<'_>,
        deadline: Instant,
    ) -> Result<(), SlackError> {
        let body = match post {
            Post::Message(message) => slack_body(message, &self.accounts),
            Post::Digest(digest) => digest_body(digest, &self.accounts),
            Post::Summary(messages) => fold::summary_body(messages),
        };
        let webhook = self.webhooks.webhook(route);
        let outcome = webhook.post(&body, deadline).await;
        match outcome {
            Err(error) if error.rejected_status() == Some(reqwest::StatusCode::BAD_REQUEST) => {
                // Slack refused the blocks: the text alone still says what happened.
                tracing::warn!(
                    messages = post.count(),
                    webhook = self.webhooks.name(route),
                    subject = ?post.first().subject,
                    "Slack refused the post (400); posting its text alone"
                );
                webhook.post(&plain_fallback(&body), deadline).await
            }
            outcome => outcome,
        }
    }
}

pub use heartbeat::{
    HEARTBEAT_METRIC, HEARTBEAT_METRIC_NAMESPACE, HeartbeatVerifier, heartbeat_metric,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
