//! Destination: Messages from the stack's buffer queue (or straight from the SNS topic) are
//! posted to a Slack incoming webhook, Messages that belong together as one digest, at the
//! pace Slack takes.

mod body;
mod digest;
mod fold;
mod incoming;
pub mod layout;
mod organizations;
mod pace;
pub mod routes;
/// RFC 3339 times, in the Message crate (sources and responders write them too).
pub use activity_aware_message::time;
mod webhook;

pub use body::{
    COLOR, COUNT_LABEL, TIME_SPAN_LABEL, digest_body, escape, plain_fallback, plain_text,
    render_value, slack_body,
};
pub use digest::{ABSENT_VALUE, Digest, FieldSummary, Received, group_positions};
pub use incoming::{EventError, Item, ItemError, Origin, read_event};
use layout::AccountNames;
pub use organizations::organization_account_names;
pub use pace::{PaceLimit, Pacer};
pub use routes::{WebhookRoutes, Webhooks};
pub use webhook::{
    ConfigError, RetryPolicy, Secret, SlackError, SlackWebhook, UrlError,
    WEBHOOK_ENCRYPTION_CONTEXT, WEBHOOK_ROUTES_ENCRYPTION_CONTEXT, WebhookUrl, decrypt_secret,
    decrypt_webhook_url,
};

use activity_aware_message::{Capped, HEARTBEAT_TAG, Message};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use std::cmp::Reverse;
use std::sync::Arc;
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
    #[error("{} of {total} messages were not delivered to Slack: {}", failures.len(), Capped(failures))]
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

/// State kept for the life of the container: the webhooks are decrypted on first use, once,
/// and their pace is kept across invocations.
pub struct Destination {
    kms: aws_sdk_kms::Client,
    encrypted_webhook_url: String,
    encrypted_webhook_routes: String,
    http: reqwest::Client,
    policy: RetryPolicy,
    pace: PaceLimit,
    accounts: AccountNames,
    organizations: Option<aws_sdk_organizations::Client>,
    webhooks: OnceCell<Webhooks>,
    /// The names posts show, and when to try the organisation's again after a failed lookup.
    names: std::sync::Mutex<Option<(Arc<AccountNames>, Option<Instant>)>>,
}

/// How long the organisation's account names may take to look up, and how long after a failed
/// lookup the next is tried: alerts never wait long for a name.
const ORGANIZATION_LOOKUP_TIME: Duration = Duration::from_secs(5);
const ORGANIZATION_LOOKUP_RETRY: Duration = Duration::from_secs(600);

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
            encrypted_webhook_routes: String::new(),
            http: SlackWebhook::http_client(),
            policy,
            pace,
            accounts: AccountNames::default(),
            organizations: None,
            webhooks: OnceCell::new(),
            names: std::sync::Mutex::new(None),
        }
    }

    /// Posts show these accounts by name.
    pub fn with_account_names(mut self, accounts: AccountNames) -> Self {
        self.accounts = accounts;
        self
    }

    /// Also names the organisation's accounts, looked up once per container (names given with
    /// [`Self::with_account_names`] win).
    pub fn with_organization_account_names(
        mut self,
        client: aws_sdk_organizations::Client,
    ) -> Self {
        self.organizations = Some(client);
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
                let url = decrypt_webhook_url(&self.kms, &self.encrypted_webhook_url).await?;
                let (routes, notice) = match self.webhook_routes().await {
                    Ok(routes) => (routes, None),
                    Err(error) => {
                        tracing::error!(%error, "webhook routes not in use: every Message goes to the stack's webhook");
                        (WebhookRoutes::default(), Some(error.to_string()))
                    }
                };
                Ok(Webhooks::new(
                    self.http.clone(),
                    url,
                    routes,
                    self.policy.clone(),
                    self.pace,
                )
                .with_notice(notice))
            })
            .await
    }

    async fn webhook_routes(&self) -> Result<WebhookRoutes, ConfigError> {
        match self.encrypted_webhook_routes.trim() {
            "" => Ok(WebhookRoutes::default()),
            ciphertext => WebhookRoutes::parse(
                &decrypt_secret(&self.kms, Secret::WebhookRoutes, ciphertext).await?,
            ),
        }
    }

    /// The names posts show: those given, and the organisation's when asked for. A lookup that
    /// fails (or takes too long) is logged, posts go on with the names given, and it is tried
    /// again some minutes later: a name is worth less than an alert.
    async fn account_names(&self) -> Arc<AccountNames> {
        let known = self.names.lock().expect("never poisoned").clone();
        if let Some((names, retry_at)) = known
            && retry_at.is_none_or(|at| Instant::now() < at)
        {
            return names;
        }
        let (names, retry_at) = match &self.organizations {
            None => (self.accounts.clone(), None),
            Some(client) => {
                match tokio::time::timeout(
                    ORGANIZATION_LOOKUP_TIME,
                    organization_account_names(client),
                )
                .await
                {
                    Ok(Ok(found)) => {
                        tracing::info!(accounts = found.len(), "named the organisation's accounts");
                        (found.overridden_by(&self.accounts), None)
                    }
                    failed => {
                        let error = match failed {
                            Ok(Err(error)) => error,
                            _ => format!(
                                "organizations:ListAccounts took more than {} s",
                                ORGANIZATION_LOOKUP_TIME.as_secs()
                            ),
                        };
                        tracing::error!(%error, "could not look up the organisation's account names; posts show account IDs");
                        (
                            self.accounts.clone(),
                            Some(Instant::now() + ORGANIZATION_LOOKUP_RETRY),
                        )
                    }
                }
            }
        };
        let names = Arc::new(names);
        *self.names.lock().expect("never poisoned") = Some((names.clone(), retry_at));
        names
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
        let webhooks = self.webhooks().await?;
        webhooks.post_notice(deadline).await;
        let accounts = self.account_names().await;
        let fates = post_all(webhooks, &accounts, &items, deadline).await;

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

/// Posts one body per group to each group's webhook, and says what became of every item. The
/// webhooks are posted to side by side, each at its own pace.
async fn post_all(
    webhooks: &Webhooks,
    accounts: &AccountNames,
    items: &[Item],
    deadline: Instant,
) -> Vec<Fate> {
    let mut fates: Vec<Option<Fate>> = items.iter().map(|_| None).collect();
    let mut by_webhook: Vec<Vec<(usize, &Message)>> = vec![Vec::new(); webhooks.len()];
    for (index, item) in items.iter().enumerate() {
        match &item.message {
            Ok(message) => by_webhook[webhooks.route(message)].push((index, message)),
            Err(error) => {
                tracing::error!(id = ?item.id, error = ?error.to_string(), "not a Message; it will not be posted");
                fates[index] = Some(Fate::Failed(error.to_string()));
            }
        }
    }
    let posting = by_webhook
        .iter()
        .enumerate()
        .filter(|(_, readable)| !readable.is_empty())
        .map(|(route, readable)| {
            post_to_webhook(webhooks, route, accounts, items, readable, deadline)
        });
    for outcome in futures::future::join_all(posting).await {
        for (index, fate) in outcome {
            fates[index] = Some(fate);
        }
    }
    fates
        .into_iter()
        .map(|fate| fate.expect("every item is either unreadable or in a group"))
        .collect()
}

/// Posts the groups of one webhook's Messages, one after another. Groups received before go
/// first (in batch order otherwise), so that a batch with more groups than one invocation can
/// post never keeps the same Messages back until they reach the failure queue. After a
/// failure that every later post would meet too (the webhook revoked, Slack down, the deadline
/// near), nothing more is tried.
async fn post_to_webhook(
    webhooks: &Webhooks,
    route: usize,
    accounts: &AccountNames,
    items: &[Item],
    readable: &[(usize, &Message)],
    deadline: Instant,
) -> Vec<(usize, Fate)> {
    let webhook = webhooks.webhook(route);
    let name = webhooks.name(route);
    let messages: Vec<&Message> = readable.iter().map(|(_, message)| *message).collect();
    let mut groups = group_positions(&messages);
    // The most severe first, then those received before: a critical alert never waits behind
    // a flood, and what came back is not kept waiting again.
    groups.sort_by_key(|group| {
        let first = messages[group[0]];
        let received = group
            .iter()
            .map(|&position| items[readable[position].0].receive_count)
            .max();
        Reverse((layout::severity(first), received))
    });
    let posts = plan_posts(groups, &messages, webhook.posts_before(deadline));
    let mut fates = Vec::with_capacity(readable.len());
    let mut stopped: Option<String> = None;
    for post in &posts {
        let group = post.positions();
        let indices = group.iter().map(|&position| readable[position].0);
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
                let body = match post {
                    Post::Summary(_) => {
                        let folded: Vec<&Message> = received.iter().map(|r| r.message).collect();
                        fold::summary_body(&folded)
                    }
                    Post::Group(_) if received.len() == 1 => {
                        slack_body(received[0].message, accounts)
                    }
                    Post::Group(_) => digest_body(&Digest::of(&received), accounts),
                };
                let subject = &received[0].message.subject;
                let mut outcome = webhook.post(&body, deadline).await;
                if let Err(SlackError::Rejected { status, .. }) = &outcome
                    && *status == reqwest::StatusCode::BAD_REQUEST
                {
                    // Slack refused the blocks: the text alone still says what happened.
                    tracing::warn!(
                        messages = group.len(),
                        webhook = name,
                        ?subject,
                        "Slack refused the post (400); posting its text alone"
                    );
                    outcome = webhook.post(&plain_fallback(&body), deadline).await;
                }
                match outcome {
                    Ok(()) => {
                        tracing::info!(
                            messages = group.len(),
                            webhook = name,
                            ?subject,
                            "posted to Slack"
                        );
                        for message in &received {
                            if let Some(stack) = message.message.tag(HEARTBEAT_TAG) {
                                // CloudWatch reads this line as the metric the
                                // missing-heartbeat alarm watches.
                                println!("{}", heartbeat_metric(stack, now_ms()));
                            }
                        }
                        Ok(())
                    }
                    Err(error) => {
                        tracing::error!(messages = group.len(), webhook = name, ?subject, %error, "not posted to Slack");
                        if !matches!(error, SlackError::Rejected { .. })
                            || error.refuses_every_post()
                        {
                            stopped =
                                Some(format!("not tried after an earlier post failed: {error}"));
                        }
                        Err(match route {
                            0 => error.to_string(),
                            _ => format!("{error} ({name})"),
                        })
                    }
                }
            }
        };
        fates.extend(indices.map(|index| {
            (
                index,
                match &outcome {
                    Ok(()) => Fate::Posted,
                    Err(reason) => Fate::Failed(reason.clone()),
                },
            )
        }));
    }
    fates
}

/// The metric namespace and name the Slack function counts delivered heartbeats in.
pub const HEARTBEAT_METRIC_NAMESPACE: &str = "ActivityAwareIDS";
pub const HEARTBEAT_METRIC: &str = "HeartbeatsDelivered";

/// One delivered heartbeat, as a CloudWatch embedded metric format line: CloudWatch Logs turns
/// it into the `HeartbeatsDelivered` metric of the stack, no API call needed.
pub fn heartbeat_metric(stack: &str, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": HEARTBEAT_METRIC_NAMESPACE,
                "Dimensions": [["Stack"]],
                "Metrics": [{"Name": HEARTBEAT_METRIC, "Unit": "Count"}],
            }],
        },
        "Stack": stack,
        HEARTBEAT_METRIC: 1,
    })
    .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// One post: a group (a single Message or a digest), or the summary of groups folded together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Post {
    Group(Vec<usize>),
    Summary(Vec<usize>),
}

impl Post {
    fn positions(&self) -> &[usize] {
        match self {
            Post::Group(positions) | Post::Summary(positions) => positions,
        }
    }
}

/// The posts for the groups (in the order they go), when `room` posts can be made before the
/// deadline: with more groups than room, the last that fit are folded into one summary, save
/// the high and critical ones, which keep their own posts (and, when out of time, come back
/// first).
fn plan_posts(groups: Vec<Vec<usize>>, messages: &[&Message], room: usize) -> Vec<Post> {
    if groups.len() <= room || room == 0 {
        return groups.into_iter().map(Post::Group).collect();
    }
    let mut posts = Vec::with_capacity(room);
    let mut folded = Vec::new();
    let mut folded_groups = 0;
    for group in groups {
        if posts.len() + 1 < room || !fold::foldable(messages[group[0]]) {
            posts.push(Post::Group(group));
        } else {
            folded.extend(group);
            folded_groups += 1;
        }
    }
    match folded_groups {
        0 => {}
        1 => posts.push(Post::Group(folded)),
        _ => posts.push(Post::Summary(folded)),
    }
    posts
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

#[cfg(test)]
mod tests {
    use super::*;
    use activity_aware_message::Tag;

    fn tagged(severity: &str) -> Message {
        let mut message = Message::new("s", vec![]);
        message.tags.push(Tag {
            key: "severity".into(),
            value: severity.into(),
        });
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
                Post::Group(vec![0]),
                Post::Group(vec![1]),
                Post::Group(vec![2])
            ]
        );
        assert_eq!(
            plan_posts(groups(&[5, 0, 1, 2, 3, 4]), &messages, 3),
            [
                Post::Group(vec![5]),
                Post::Group(vec![0]),
                Post::Summary(vec![1, 2, 3, 4])
            ]
        );
        // A severe group past the room keeps its own post (and comes back if out of time).
        assert_eq!(
            plan_posts(groups(&[0, 1, 2, 5]), &messages, 2),
            [
                Post::Group(vec![0]),
                Post::Group(vec![5]),
                Post::Summary(vec![1, 2])
            ]
        );
        // One group left to fold is no summary; no room at all folds nothing.
        assert_eq!(
            plan_posts(groups(&[0, 5, 1]), &messages, 2),
            [
                Post::Group(vec![0]),
                Post::Group(vec![5]),
                Post::Group(vec![1])
            ]
        );
        assert_eq!(plan_posts(groups(&[0, 1]), &messages, 0).len(), 2);
    }
}
