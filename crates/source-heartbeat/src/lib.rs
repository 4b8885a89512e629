//! Source: the heartbeat. Every hour it makes one call its own role is denied, the canary
//! (`ssm:PutParameter` of `/activity-aware-ids/<stack>/heartbeat`): CloudTrail records it, and
//! it reaches each source the way any denial does, which turns it into a signed heartbeat leg
//! (see `activity_aware_cloudtrail::heartbeat`); the Slack function counts the legs it
//! verifies, per source, and an alarm per source fires when they stop for three hours. A source
//! switched off, throttled or cut off from CloudTrail stops its own heartbeat: a dead man's
//! switch that travels the path it watches.
//!
//! Every `HEARTBEAT_HOURS` (daily by default), and whenever something waits in a failure
//! queue, it also posts a summary: how many Messages the topic took, what waits, and how many
//! accounts and regions reported. Every 15 minutes it checks coverage (see [`coverage`]).

pub mod coverage;

use activity_aware_message::{
    DIGEST_GROUP_TAG, Field, Message, MessagePublisher, Metadata, OutgoingMessage, PublishError,
    SEVERITY_TAG, Severity, Tag, Topic, TopicError,
};
use aws_query::{JsonClient, QueryError, Service};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SOURCE_NAME: &str = "Activity Aware IDS";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("FAILURE_QUEUE_URLS must be name=url pairs separated by commas, not {0:?}")]
    Queues(String),
    #[error("HEARTBEAT_HOURS must be a whole number of hours from 1 to 167, not {0:?}")]
    Hours(String),
}

/// What the heartbeat reports on, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub stack_name: String,
    /// The failure queues, by the function whose failures they keep.
    pub failure_queues: Vec<(String, String)>,
    /// Hours between two heartbeats: the span the count covers.
    pub hours: u32,
    /// The watched organizational units (`ORGANIZATIONAL_UNIT_IDS`), whose accounts must report.
    pub organizational_units: Vec<String>,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC`, `STACK_NAME`, `FAILURE_QUEUE_URLS` (`function=url,...`) and
    /// `HEARTBEAT_HOURS` (default 24).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let topic_arn = Topic::from_lookup(&lookup)?.arn;
        let stack_name = get("STACK_NAME").ok_or(ConfigError::Missing("STACK_NAME"))?;
        let queues = get("FAILURE_QUEUE_URLS").unwrap_or_default();
        let failure_queues = queues
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, url)) if !name.is_empty() && url.starts_with("http") => {
                    Ok((name.to_owned(), url.to_owned()))
                }
                _ => Err(ConfigError::Queues(queues.clone())),
            })
            .collect::<Result<_, _>>()?;
        let hours = match get("HEARTBEAT_HOURS") {
            None => 24,
            Some(text) => match text.parse::<u32>() {
                Ok(hours) if (1..=167).contains(&hours) => hours,
                _ => return Err(ConfigError::Hours(text)),
            },
        };
        let organizational_units = get("ORGANIZATIONAL_UNIT_IDS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|unit| !unit.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Config {
            topic_arn,
            stack_name,
            failure_queues,
            hours,
            organizational_units,
        })
    }

    fn topic_name(&self) -> &str {
        self.topic_arn.rsplit(':').next().unwrap_or_default()
    }

    /// The parameter the canary call names (its role is denied writing it).
    pub fn canary_parameter(&self) -> String {
        format!("/activity-aware-ids/{}/heartbeat", self.stack_name)
    }

    /// Whether the hour starting at `now_s` (seconds since 1970) is one the summary is posted in.
    pub fn summary_due(&self, now_s: u64) -> bool {
        (now_s / 3600).is_multiple_of(u64::from(self.hours))
    }
}

/// What the heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Messages the topic took over the span, or why they could not be counted.
    pub published: Result<u64, String>,
    /// Each failure queue's Messages (visible or in flight), or why they could not be counted.
    pub waiting: Vec<(String, Result<u64, String>)>,
}

impl Health {
    fn waiting_total(&self) -> u64 {
        self.waiting
            .iter()
            .filter_map(|(_, count)| count.as_ref().ok())
            .sum()
    }

    /// Healthy: everything counted, nothing waiting.
    pub fn healthy(&self) -> bool {
        self.published.is_ok() && self.waiting.iter().all(|(_, count)| count == &Ok(0))
    }
}

/// The heartbeat's Message: healthy and low, or needing attention and high; with what the
/// coverage items say, when the stack remembers any.
pub fn message(config: &Config, health: &Health, coverage: Option<&coverage::Coverage>) -> Message {
    let published = match &health.published {
        Ok(count) => format!("{count} Messages"),
        Err(_) => "an unknown number of Messages".to_owned(),
    };
    let waiting = health.waiting_total();
    let subject = format!(
        "{}: {published} in the last {} h, {waiting} waiting in failure queues",
        if health.healthy() {
            "Pipeline healthy"
        } else {
            "Pipeline needs attention"
        },
        config.hours
    );
    let count = |count: &Result<u64, String>| match count {
        Ok(count) => Value::from(*count),
        Err(error) => Value::String(format!("not counted: {error}")),
    };
    let mut fields = vec![
        Field::new("Messages Published", count(&health.published)),
        Field::new("Waiting In Failure Queues", Value::from(waiting)),
    ];
    for (name, waiting) in &health.waiting {
        fields.push(Field::new(
            format!("Failure Queue Of {name}"),
            count(waiting),
        ));
    }
    if waiting > 0 {
        fields.push(Field::text(
            "What To Do",
            "./dev.sh redrive <function> posts what a failure queue holds, once the cause is fixed; a Message is lost after 14 days there.",
        ));
    }
    if let Some(coverage) = coverage {
        fields.push(Field::text("Accounts And Regions Watched", coverage.said()));
    }
    fields.push(Field::text(
        "Next Summary",
        format!(
            "in {} h; meanwhile a heartbeat goes through each source every hour, and an alarm fires when one stops for 3 h",
            config.hours
        ),
    ));
    let severity = summary_severity(health);
    Message {
        subject,
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: None,
        },
        tags: vec![
            Tag::new(SEVERITY_TAG, severity.as_str()),
            Tag::new(
                DIGEST_GROUP_TAG,
                format!("pipeline summary {}", config.stack_name),
            ),
        ],
    }
}

/// The clients the heartbeat reads with, built once per container.
pub struct Readers {
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// SSM, for the canary call.
    pub ssm: JsonClient,
    /// The stack's memory, where coverage is remembered (`FAMILIARITY_TABLE`).
    pub memory: Option<activity_aware_memory::Memory>,
    /// Organizations, for the watched units' accounts (with `ORGANIZATIONAL_UNIT_IDS`).
    pub organizations: Option<aws_sdk_organizations::Client>,
}

/// What became of the canary call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Canary {
    /// Denied, as the role's policy says: CloudTrail records the denial.
    Denied,
    /// It went through (the role's policy lets it): CloudTrail records it all the same, but
    /// the CloudWatch Logs subscription's default pattern takes denials only.
    Made,
    /// No answer: the sources will not see it this hour.
    Failed,
    /// Not made: a coverage check.
    NotMade,
}

impl Readers {
    /// Makes the canary call: a write its role is denied, which CloudTrail records.
    pub async fn canary(&self, config: &Config) -> Canary {
        let request = serde_json::json!({
            "Name": config.canary_parameter(), "Value": "heartbeat", "Type": "String", "Overwrite": true,
        });
        match self.ssm.call("PutParameter", &request).await {
            Ok(_) => Canary::Made,
            Err(QueryError::Service { code, .. }) if code.starts_with("AccessDenied") => {
                Canary::Denied
            }
            Err(error) => {
                tracing::error!(%error, "the heartbeat's canary call got no answer");
                Canary::Failed
            }
        }
    }
}

/// The SSM client of the canary call.
pub fn ssm_client(config: &aws_config::SdkConfig) -> Result<JsonClient, QueryError> {
    JsonClient::new(config, Service::Ssm, None)
}

impl Readers {
    /// Counts what the topic took over the span, and what waits in each failure queue.
    pub async fn health(&self, config: &Config) -> Health {
        let now = SystemTime::now();
        let span = Duration::from_secs(u64::from(config.hours) * 3600);
        let published = self
            .cloudwatch
            .get_metric_statistics()
            .namespace("AWS/SNS")
            .metric_name("NumberOfMessagesPublished")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("TopicName")
                    .value(config.topic_name())
                    .build(),
            )
            .start_time((now - span).into())
            .end_time(now.into())
            .period(span.as_secs() as i32)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .send()
            .await
            .map(|output| {
                output
                    .datapoints()
                    .iter()
                    .filter_map(|point| point.sum())
                    .sum::<f64>() as u64
            })
            .map_err(|error| aws_errors::summary(&error));
        let mut waiting = Vec::with_capacity(config.failure_queues.len());
        for (name, url) in &config.failure_queues {
            let count = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .map(|output| {
                    output
                        .attributes()
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, value)| value.parse::<u64>().ok())
                        .sum()
                })
                .map_err(|error| aws_errors::summary(&error));
            waiting.push((name.clone(), count));
        }
        Health { published, waiting }
    }
}

/// What one heartbeat did, returned as the function's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub canary: Canary,
    pub healthy: bool,
    pub waiting: u64,
    /// Summaries published (one when due or when something waits, else none).
    pub published: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("coverage could not be checked: {0}")]
    Coverage(String),
}

impl From<HeartbeatError> for Diagnostic {
    fn from(error: HeartbeatError) -> Self {
        let error_type = match &error {
            HeartbeatError::Publish(_) => "PublishFailed",
            HeartbeatError::Coverage(_) => "CoverageUnchecked",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What a schedule asks for: the hourly heartbeat, or the coverage check every 15 minutes
/// (its rule's input is `{"coverage": true}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Heartbeat,
    Coverage,
}

impl Run {
    pub fn of(event: &Value) -> Run {
        if event.get("coverage") == Some(&Value::Bool(true)) {
            Run::Coverage
        } else {
            Run::Heartbeat
        }
    }
}

/// What the coverage items say now, when the stack has a memory and it answers.
async fn coverage_now(readers: &Readers, now_s: i64) -> Option<coverage::Coverage> {
    let memory = readers.memory.as_ref()?;
    match coverage::Coverage::read(memory, now_s).await {
        Ok(coverage) => Some(coverage),
        Err(error) => {
            tracing::error!(%error, "the coverage items could not be read");
            None
        }
    }
}

/// The coverage check: silent accounts and regions, and uncovered accounts, told once each.
/// What cannot be read fails the invocation (Lambda tries again; its errors are alarmed).
pub async fn check_coverage(
    config: &Config,
    readers: &Readers,
    publisher: &MessagePublisher,
    now_s: i64,
) -> Result<usize, HeartbeatError> {
    let Some(memory) = &readers.memory else {
        return Ok(0);
    };
    let coverage = coverage::Coverage::read(memory, now_s)
        .await
        .map_err(|error| HeartbeatError::Coverage(error.to_string()))?;
    let accounts = match (
        &readers.organizations,
        config.organizational_units.is_empty(),
    ) {
        (Some(organizations), false) => {
            coverage::unit_accounts(organizations, &config.organizational_units)
                .await
                .map_err(HeartbeatError::Coverage)?
        }
        _ => Vec::new(),
    };
    let messages = coverage::messages(memory, &config.stack_name, &coverage, &accounts, now_s)
        .await
        .map_err(|error| HeartbeatError::Coverage(error.to_string()))?;
    let published = if messages.is_empty() {
        0
    } else {
        publisher.publish_all(messages).await?
    };
    tracing::info!(
        reporting = coverage.reporting.len(),
        silent = coverage.silent.len(),
        published,
        "coverage"
    );
    Ok(published)
}

/// One heartbeat: the canary call, then the summary when it is due or something waits. A
/// count that fails is said in the summary; only a summary that cannot be published fails the
/// invocation.
pub async fn handle(
    config: &Config,
    readers: &Readers,
    publisher: &MessagePublisher,
    now_s: u64,
    run: Run,
) -> Result<Summary, HeartbeatError> {
    if run == Run::Coverage {
        let published = check_coverage(config, readers, publisher, now_s as i64).await?;
        return Ok(Summary {
            canary: Canary::NotMade,
            healthy: true,
            waiting: 0,
            published,
        });
    }
    let canary = readers.canary(config).await;
    let health = readers.health(config).await;
    let mut published = 0;
    if config.summary_due(now_s) || !health.healthy() {
        let coverage = coverage_now(readers, now_s as i64).await;
        let message = message(config, &health, coverage.as_ref());
        let severity = summary_severity(&health);
        published = publisher
            .publish_all(vec![OutgoingMessage {
                label: "the pipeline summary".into(),
                body: message.to_json(),
                severity: Some(severity),
                ..OutgoingMessage::default()
            }])
            .await?;
    }
    tracing::info!(
        ?canary,
        healthy = health.healthy(),
        waiting = health.waiting_total(),
        published,
        "heartbeat"
    );
    Ok(Summary {
        canary,
        healthy: health.healthy(),
        waiting: health.waiting_total(),
        published,
    })
}

/// Seconds since 1970.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A healthy pipeline's summary is good to know (low, which Slack posts by default); one
/// with something wrong takes the priority lane.
fn summary_severity(health: &Health) -> Severity {
    if health.healthy() {
        Severity::Low
    } else {
        Severity::High
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:ids-SNSTopic-1".into()),
            "STACK_NAME" => Some("ids".into()),
            "FAILURE_QUEUE_URLS" => Some("destination-slack=https://sqs.us-east-1.amazonaws.com/111122223333/ids-f, source-eventbridge=https://sqs.us-east-1.amazonaws.com/111122223333/ids-g".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn the_settings_are_read_strictly() {
        let config = config();
        assert_eq!(config.hours, 24);
        assert_eq!(config.topic_name(), "ids-SNSTopic-1");
        assert_eq!(config.failure_queues.len(), 2);
        let with = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            Config::from_lookup(|name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let topic = ("SNS_TOPIC", "arn:aws:sns:us-east-1:111122223333:t");
        assert_eq!(
            with(&[("STACK_NAME", "s")]),
            Err(ConfigError::Topic(TopicError::Missing))
        );
        assert_eq!(with(&[topic]), Err(ConfigError::Missing("STACK_NAME")));
        assert!(matches!(
            with(&[topic, ("STACK_NAME", "s"), ("FAILURE_QUEUE_URLS", "no-url")]),
            Err(ConfigError::Queues(_))
        ));
        assert!(matches!(
            with(&[topic, ("STACK_NAME", "s"), ("HEARTBEAT_HOURS", "0")]),
            Err(ConfigError::Hours(_))
        ));
        assert_eq!(
            with(&[topic, ("STACK_NAME", "s"), ("HEARTBEAT_HOURS", "6")])
                .unwrap()
                .hours,
            6
        );
    }

    #[test]
    fn a_healthy_pipeline_says_so_and_is_low() {
        let health = Health {
            published: Ok(37),
            waiting: vec![
                ("destination-slack".into(), Ok(0)),
                ("source-eventbridge".into(), Ok(0)),
            ],
        };
        let message = message(&config(), &health, None);
        assert_eq!(
            message.subject,
            "Pipeline healthy: 37 Messages in the last 24 h, 0 waiting in failure queues"
        );
        assert_eq!(message.tag(SEVERITY_TAG), Some("low"));
        // The summary is no heartbeat leg: nothing counts it.
        assert_eq!(message.tag(activity_aware_message::HEARTBEAT_TAG), None);
        assert_eq!(
            config().canary_parameter(),
            "/activity-aware-ids/ids/heartbeat"
        );
        // Daily: the summary is posted in the hour starting at midnight UTC only.
        assert!(config().summary_due(1_764_979_200));
        assert!(!config().summary_due(1_764_979_200 + 3_600));
        assert!(!message.fields.iter().any(|f| f.key == "What To Do"));
    }

    #[test]
    fn what_waits_or_cannot_be_counted_needs_attention() {
        let health = Health {
            published: Err("AccessDenied".into()),
            waiting: vec![
                ("destination-slack".into(), Ok(12)),
                ("source-eventbridge".into(), Err("throttled".into())),
            ],
        };
        let message = message(&config(), &health, None);
        assert_eq!(
            message.subject,
            "Pipeline needs attention: an unknown number of Messages in the last 24 h, 12 waiting in failure queues"
        );
        assert_eq!(message.tag(SEVERITY_TAG), Some("high"));
        let value = |key: &str| {
            message
                .fields
                .iter()
                .find(|f| f.key == key)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("Failure Queue Of destination-slack"), 12);
        assert_eq!(
            value("Failure Queue Of source-eventbridge"),
            "not counted: throttled"
        );
        assert!(
            value("What To Do")
                .as_str()
                .unwrap()
                .contains("./dev.sh redrive")
        );
    }
}
