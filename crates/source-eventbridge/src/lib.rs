//! Source: EventBridge events become Messages on the SNS topic, in seconds rather than the
//! minutes CloudTrail takes to reach CloudWatch Logs.
//!
//! - `AWS API Call via CloudTrail`: the detail is a CloudTrail record, and becomes exactly the
//!   Message the CloudWatch Logs source makes of it (one mapping, `activity-aware-cloudtrail`).
//! - `AWS Console Sign In via CloudTrail`: who signed in, from where, whether it worked, with MFA
//!   or not, root or not ([`sign_in`]).
//! - `GuardDuty Finding`: title, severity, type, account, region, resource, description and a
//!   link to the finding ([`guardduty`]).
//! - Anything else: a plain Message with the event's envelope and its detail ([`generic`]).

pub mod alarm;
pub mod generic;
pub mod guardduty;
pub mod noise;
pub mod operations;
pub mod sign_in;

pub use activity_aware_cloudtrail::{
    Detector, SourceConfig as Config, SourceConfigError as ConfigError,
};

use activity_aware_cloudtrail::BeforePublishing;
use activity_aware_cloudtrail::familiar::{record_told_key, told_key};
use activity_aware_cloudtrail::heartbeat::Path;
use activity_aware_cloudtrail::{
    Detected, RecordView, message_from_record, message_json_from_record,
};
use activity_aware_detections::Severity;
use activity_aware_message::{
    DIGEST_FIELD_TAG, DIGEST_GROUP_TAG, EVENT_TIME_TAG, MESSAGE_BODY_LIMIT_BYTES, Message,
    MessagePublisher, OutgoingMessage, PublishError, Tag,
};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub const API_CALL: &str = "AWS API Call via CloudTrail";
pub const CONSOLE_SIGN_IN: &str = "AWS Console Sign In via CloudTrail";
pub const GUARDDUTY_FINDING: &str = "GuardDuty Finding";
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// The suffix of a member stack's liveness rule's name (member.yaml): `<stack>-liveness`.
pub const LIVENESS_RULE_SUFFIX: &str = "-liveness";

/// An EventBridge event as Lambda receives it, its detail kept as raw JSON.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(borrow)]
    pub detail: &'a RawValue,
}

/// What one invocation did, returned as the function's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub detail_type: String,
    pub published: usize,
    /// Cut down to fit SNS's size limit.
    pub truncated: bool,
    /// An expected change, not published because the stack drops those (ExpectedChanges).
    pub dropped: bool,
    /// An API call no detection takes, not published.
    #[serde(default)]
    pub no_detection: bool,
    /// A member stack's liveness event: the account and region it says are watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<String>,
    /// Not published: the same event was told already (by the other path, or another copy).
    #[serde(default)]
    pub already_told: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("not an EventBridge event: {0}")]
    NotAnEvent(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<SourceError> for Diagnostic {
    fn from(error: SourceError) -> Self {
        let error_type = match &error {
            SourceError::NotAnEvent(_) => "UnrecognisedEvent",
            SourceError::Publish(_) => "PublishFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What an event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// The JSON text to publish (within SNS's limit), whether it was cut, and its severity.
    Message {
        body: String,
        truncated: bool,
        severity: Severity,
        detection: Option<String>,
        denied: bool,
        /// A heartbeat leg: what to sign before publishing.
        to_sign: Option<String>,
        /// A routine change: what is remembered of it.
        familiar: Option<String>,
        /// The event it tells: posted once, however many paths bring it.
        once: Option<String>,
    },
    /// A CloudTrail record with nothing to say (as the CloudWatch Logs source).
    WithoutFields,
    /// An expected change, and the stack drops those.
    Dropped,
    /// A CloudTrail API call no detection takes: the rules send broadly (a pattern cannot say
    /// everything a detection means), and what no detection's finer condition keeps is no alert.
    NoDetection,
    /// A member stack's liveness event (its schedule, forwarded to the central bus): this
    /// account and region are watched. Remembered, not published.
    Liveness { account: String, region: String },
}

/// The Message an event becomes, with its detection and severity.
pub fn message_json(event: &Event<'_>, detector: &Detector) -> Made {
    if let Some((account, region)) = liveness(event, detector) {
        return Made::Liveness { account, region };
    }
    // Another schedule's tick says nothing about the account (a member account may aim a
    // scheduled rule of its own at the central bus).
    if event.detail_type == SCHEDULED_EVENT && event.source == "aws.events" {
        return Made::NoDetection;
    }
    // A detail that is not what its detail-type carries still reaches people, as the plain
    // Message of the event with what was wrong: nothing an event holds stops its alert.
    let (mut message, detected, once) = match event.detail_type.as_str() {
        API_CALL => match RecordView::parse(event.detail.get()) {
            // Written straight from the record, as the CloudWatch Logs source writes it.
            Ok(view) => {
                if let Some((message, to_sign)) = detector.heartbeat(&view, Path::EventBridge) {
                    return Made::Message {
                        body: message.to_json(),
                        truncated: false,
                        severity: Severity::Info,
                        detection: None,
                        denied: false,
                        to_sign: Some(to_sign),
                        familiar: None,
                        once: None,
                    };
                }
                let detected = detector.detect(&view);
                if detected.dropped() {
                    return Made::Dropped;
                }
                if detected.detection.is_none() {
                    return Made::NoDetection;
                }
                return match message_json_from_record(&view, &detected) {
                    None => Made::WithoutFields,
                    Some(body) if body.len() <= MESSAGE_BODY_LIMIT_BYTES => Made::Message {
                        body,
                        truncated: false,
                        severity: detected.severity,
                        detection: detected.detection.as_ref().map(|d| d.id.clone()),
                        denied: detected.denied,
                        to_sign: None,
                        familiar: detected.familiar_key.clone(),
                        once: record_told_key(&view),
                    },
                    Some(_) => match message_from_record(&view, &detected) {
                        Some(message) => made(&message, &detected, record_told_key(&view)),
                        None => Made::WithoutFields,
                    },
                };
            }
            Err(error) => (
                generic::unread(event, &error.to_string()),
                Detected::unclassified(),
                None,
            ),
        },
        CONSOLE_SIGN_IN => match sign_in::message(event.detail) {
            Ok(message) => {
                // A sign-in no detection takes (one with MFA from a known address, a passed
                // MFA check) is no alert.
                let Some(detected) = detect_whole(event, detector) else {
                    return Made::NoDetection;
                };
                if detected.dropped() {
                    return Made::Dropped;
                }
                let once = detail_text(event, "eventID").map(|id| told_key([id.as_str()]));
                (message, detected, once)
            }
            Err(reason) => (
                generic::unread(event, &reason),
                Detected::unclassified(),
                None,
            ),
        },
        ALARM_STATE_CHANGE => match alarm::message(event.detail, event.region.as_deref()) {
            Ok((message, severity)) => (message, Detected::tagged(ALARM_DETECTION, severity), None),
            Err(reason) => (
                generic::unread(event, &reason),
                Detected::unclassified(),
                None,
            ),
        },
        GUARDDUTY_FINDING => match guardduty::message(event.detail) {
            Ok((message, severity)) => {
                // One finding reaches the member account's stack and its administrator's: the
                // same finding, at the same update, is posted once.
                let once = detail_text(event, "id").map(|id| {
                    let updated = detail_text(event, "updatedAt").unwrap_or_default();
                    told_key(["guardduty", id.as_str(), updated.as_str()])
                });
                (message, guardduty_detected(severity), once)
            }
            Err(reason) => (
                generic::unread(event, &reason),
                Detected::unclassified(),
                None,
            ),
        },
        _ => (generic::message(event), Detected::unclassified(), None),
    };
    detected.apply_to(&mut message);
    made(&message, &detected, once)
}

/// The account and region a member stack's liveness event says are watched: EventBridge's own
/// scheduled event (source `aws.events`, which no account can write) of the rule member.yaml
/// names `<stack>-liveness`, in the account and region it ran in.
fn liveness(event: &Event<'_>, detector: &Detector) -> Option<(String, String)> {
    if event.detail_type != SCHEDULED_EVENT || event.source != "aws.events" {
        return None;
    }
    let stack = &detector.catalogue().settings().parts.stack;
    let account = event.account.as_deref()?;
    let region = event.region.as_deref()?;
    let rule = format!(":rule/{stack}{LIVENESS_RULE_SUFFIX}");
    let named = event.resources.iter().any(|resource| {
        resource.ends_with(&rule)
            && resource.starts_with("arn:")
            && resource.split(':').nth(3) == Some(region)
            && resource.split(':').nth(4) == Some(account)
    });
    let plain_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (!stack.is_empty()
        && named
        && plain_account
        && activity_aware_cloudtrail::is_safe_region(region))
    .then(|| (account.to_owned(), region.to_owned()))
}

/// A text value at the top of an event's detail.
fn detail_text(event: &Event<'_>, key: &str) -> Option<String> {
    let detail: Value = serde_json::from_str(event.detail.get()).ok()?;
    text(&detail, &[key])
}

fn made(message: &Message, detected: &Detected, once: Option<String>) -> Made {
    let (body, truncated) = within_limit(message);
    Made::Message {
        body,
        truncated,
        severity: detected.severity,
        detection: detected.detection.as_ref().map(|d| d.id.clone()),
        denied: detected.denied,
        to_sign: None,
        familiar: detected.familiar_key.clone(),
        once,
    }
}

/// The detection an event is, read whole.
fn detect_whole(event: &Event<'_>, detector: &Detector) -> Option<Detected> {
    let detail: Value = serde_json::from_str(event.detail.get()).ok()?;
    let event = serde_json::json!({
        "source": event.source,
        "detail-type": event.detail_type,
        "detail": detail,
    });
    detector.detect_event(&event)
}

/// A finding is as severe as GuardDuty rates it.
fn guardduty_detected(severity: f64) -> Detected {
    Detected::tagged(GUARDDUTY_DETECTION, Severity::of_guardduty(severity))
}

/// The catalogue's detection of GuardDuty findings.
pub const GUARDDUTY_DETECTION: &str = "guardduty-finding";

/// The detection tag of the stack's own alarms (its health path).
pub const ALARM_DETECTION: &str = "stack-alarm";

/// The value at `path` in a JSON tree.
pub(crate) fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, key| value.get(*key))
}

/// A non-empty string at `path`, or a number or boolean as text.
pub(crate) fn text(value: &Value, path: &[&str]) -> Option<String> {
    match at(value, path)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The tags a digest reads (see the Message contract): the group the Message belongs to, the
/// fields a digest counts, and when it happened.
pub(crate) fn digest_tags(
    group: Option<String>,
    fields: &[&str],
    time: Option<String>,
) -> Vec<Tag> {
    let tag = |key: &str, value: String| Tag {
        key: key.to_owned(),
        value,
    };
    group
        .map(|group| tag(DIGEST_GROUP_TAG, group))
        .into_iter()
        .chain(
            fields
                .iter()
                .map(|field| tag(DIGEST_FIELD_TAG, (*field).to_owned())),
        )
        .chain(time.map(|time| tag(EVENT_TIME_TAG, time)))
        .collect()
}

fn within_limit(message: &Message) -> (String, bool) {
    message.to_json_within(MESSAGE_BODY_LIMIT_BYTES)
}

/// Reads an event as Lambda delivers it.
pub fn parse_event(text: &str) -> Result<Event<'_>, SourceError> {
    serde_json::from_str(text).map_err(|error| SourceError::NotAnEvent(error.to_string()))
}

/// Handles one EventBridge event: publishes its Message.
pub async fn handle(
    publisher: &MessagePublisher,
    detector: &Detector,
    before_publishing: &BeforePublishing,
    event: Box<RawValue>,
) -> Result<Summary, SourceError> {
    let event = parse_event(event.get())?;
    let mut summary = Summary {
        detail_type: event.detail_type.clone(),
        published: 0,
        truncated: false,
        dropped: false,
        no_detection: false,
        liveness: None,
        already_told: false,
    };
    let made = message_json(&event, detector);
    summary.dropped = made == Made::Dropped;
    summary.no_detection = made == Made::NoDetection;
    if let Made::Liveness { account, region } = &made {
        summary.liveness = Some(format!("{account} {region}"));
        before_publishing.remember_coverage(account, region).await;
    }
    if let Made::Message {
        body,
        truncated,
        severity,
        detection,
        denied,
        to_sign,
        familiar,
        once,
    } = made
    {
        if truncated {
            tracing::warn!(
                event_id = ?event.id.as_deref().unwrap_or(""),
                "Message cut down to fit SNS's size limit"
            );
        }
        summary.truncated = truncated;
        let mut outgoing = vec![OutgoingMessage {
            label: format!("event {}", event.id.as_deref().unwrap_or("without an id")),
            body,
            severity: Some(severity),
            detection,
            denied,
            to_sign,
            familiar,
            once,
        }];
        summary.already_told = before_publishing.settle(&mut outgoing).await > 0;
        let told: Vec<String> = outgoing.iter().filter_map(|m| m.once.clone()).collect();
        summary.published = publisher.publish_all(outgoing).await?;
        before_publishing.after_publishing(told).await;
    }
    tracing::info!(
        detail_type = ?summary.detail_type,
        source = ?event.source,
        published = summary.published,
        dropped = summary.dropped,
        already_told = summary.already_told,
        "event handled"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(detail_type: &str, source: &str, detail: Value) -> String {
        json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": detail_type, "source": source, "account": "111122223333",
            "time": "2024-06-02T20:16:32Z", "region": "us-east-1", "resources": [],
            "detail": detail
        })
        .to_string()
    }

    #[test]
    fn events_that_are_not_eventbridge_events_are_clear_errors() {
        for (text, expected) in [
            (
                r#"{"awslogs": {"data": "x"}}"#,
                "not an EventBridge event: missing field `detail-type`",
            ),
            (
                r#"{"detail-type": "X", "source": "s"}"#,
                "not an EventBridge event: missing field `detail`",
            ),
            ("[1, 2]", "not an EventBridge event: invalid type"),
        ] {
            let error = parse_event(text).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }

    /// A detail that is not what its detail-type carries, or that no reader could take back,
    /// is still published: as the event's plain Message, saying what was wrong.
    #[test]
    fn details_that_cannot_be_read_are_still_published() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for (detail_type, detail) in [
            (API_CALL, "[1, 2]".to_owned()),
            (
                CONSOLE_SIGN_IN,
                r#"{"eventName": "ConsoleLogin", "errorMessage": "\ud800"}"#.to_owned(),
            ),
            (
                GUARDDUTY_FINDING,
                format!(r#"{{"severity": 8, "x": {deep}}}"#),
            ),
            (GUARDDUTY_FINDING, r#"{"title": "no severity"}"#.to_owned()),
            ("Custom Event", deep.clone()),
        ] {
            let text = event(detail_type, "aws.test", json!(null))
                .replace(r#""detail":null"#, &format!(r#""detail":{detail}"#));
            let event = parse_event(&text).unwrap();
            let Made::Message { body: json, .. } = message_json(&event, &Detector::default())
            else {
                panic!("{detail_type}: no Message");
            };
            let message = Message::from_json(&json).unwrap();
            assert_eq!(message.subject, format!("{detail_type} (aws.test)"));
            let field = |key: &str| {
                message
                    .fields
                    .iter()
                    .find(|f| f.key == key)
                    .map(|f| &f.value)
            };
            if detail_type != "Custom Event" {
                let problem = field("Problem").and_then(Value::as_str).unwrap();
                assert!(
                    problem.starts_with(&format!("not read as a {detail_type:?} event: ")),
                    "{problem}"
                );
            }
            let shown = field("Detail").unwrap();
            if detail.contains("[[[[") || detail.contains("\\ud800") {
                assert_eq!(shown, &json!(detail), "{detail_type}");
            }
        }
    }

    #[test]
    fn an_oversized_event_is_cut_and_still_a_message() {
        let big = event(
            "Custom Event",
            "my.app",
            json!({"blob": "x".repeat(400_000)}),
        );
        let event: Event<'_> = serde_json::from_str(&big).unwrap();
        let Made::Message {
            body: json,
            truncated,
            ..
        } = message_json(&event, &Detector::default())
        else {
            panic!("no Message");
        };
        assert!(truncated && json.len() <= MESSAGE_BODY_LIMIT_BYTES);
        Message::from_json(&json).unwrap();
    }
}
