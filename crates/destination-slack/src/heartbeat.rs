//! Heartbeat legs: each source turns the heartbeat's hourly canary call into a leg, signed with
//! the stack's heartbeat key. The Slack function counts each leg it can verify in the
//! `HeartbeatsDelivered` metric of its source (an alarm per source fires when they stop) and
//! posts none of them. A leg that does not verify (someone with a right to publish to the topic
//! forging one, to hide a dead source) is not counted, and is posted as what it is.

use activity_aware_delivery::DestinationEvent;
use activity_aware_message::time::parse_rfc3339_ms;
use activity_aware_message::{
    EVENT_TIME_TAG, Field, HEARTBEAT_MAC_TAG, HEARTBEAT_PATH_TAG, HEARTBEAT_TAG, Message,
    SEVERITY_TAG, Severity, Tag, heartbeat_mac_text,
};

/// The metric namespace and name the Slack function counts delivered heartbeats in.
pub const HEARTBEAT_METRIC_NAMESPACE: &str = "ActivityAwareIDS";
pub const HEARTBEAT_METRIC: &str = "HeartbeatsDelivered";

/// How old a leg may be and still count: a leg is for the hour of its call.
pub const MAX_LEG_AGE_MS: i64 = 2 * 3_600_000;

/// One delivered heartbeat leg, as a CloudWatch embedded metric format line: CloudWatch Logs
/// turns it into the stack's `HeartbeatsDelivered` metric of that path, no API call needed.
pub fn heartbeat_metric(stack: &str, path: &str, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": HEARTBEAT_METRIC_NAMESPACE,
                "Dimensions": [["Stack", "Path"]],
                "Metrics": [{"Name": HEARTBEAT_METRIC, "Unit": "Count"}],
            }],
        },
        "Stack": stack,
        "Path": path,
        HEARTBEAT_METRIC: 1,
    })
    .to_string()
}

/// What a body is, as a heartbeat leg.
#[derive(Debug, PartialEq, Eq)]
pub enum Leg {
    /// No leg: a Message like any other.
    NotALeg,
    /// A leg of this stack, through this path, signed and recent.
    Verified { stack: String, path: String },
    /// Tagged as a leg, but not one: the reason, and what to post instead.
    Refused { reason: String, warning: String },
    /// KMS could not say: not counted (the alarm tells if this lasts), not posted.
    Unchecked,
}

/// Verifies legs with the stack's heartbeat key (KMS `VerifyMac`). The key is the stack's own,
/// and the MAC covers the stack's name: a leg that verifies is this stack's.
pub struct HeartbeatVerifier {
    pub kms: aws_sdk_kms::Client,
    /// `HEARTBEAT_KEY_ARN`.
    pub key: String,
}

impl HeartbeatVerifier {
    /// From `HEARTBEAT_KEY_ARN`; `None` without it (no leg is counted).
    pub fn from_env(kms: aws_sdk_kms::Client) -> Option<HeartbeatVerifier> {
        let key = std::env::var("HEARTBEAT_KEY_ARN")
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())?;
        Some(HeartbeatVerifier { kms, key })
    }

    /// What `body` is, as a leg, at `now_ms`.
    pub async fn read(&self, body: &str, now_ms: i64) -> Leg {
        let Ok(message) = Message::from_delivery_body(body) else {
            return Leg::NotALeg;
        };
        let Some(path) = message.tag(HEARTBEAT_PATH_TAG) else {
            return Leg::NotALeg;
        };
        let field = |key: &str| {
            message
                .fields
                .iter()
                .find(|field| field.key == key)
                .and_then(|field| field.value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let time = message.tag(EVENT_TIME_TAG).unwrap_or_default();
        let covered = heartbeat_mac_text(
            message.tag(HEARTBEAT_TAG).unwrap_or_default(),
            path,
            &field("Event ID"),
            time,
        );
        let refused = |reason: String| Leg::Refused {
            warning: warning(&message, &reason).to_json(),
            reason,
        };
        match parse_rfc3339_ms(time) {
            Some(at) if (now_ms - at).abs() <= MAX_LEG_AGE_MS => {}
            _ => {
                return refused(format!(
                    "its canary call's time ({time:?}) is not of the last two hours"
                ));
            }
        }
        let Some(mac) = message.tag(HEARTBEAT_MAC_TAG).and_then(hex) else {
            return refused("it carries no signature".into());
        };
        let verified = self
            .kms
            .verify_mac()
            .key_id(&self.key)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_sdk_kms::primitives::Blob::new(covered.into_bytes()))
            .mac(aws_sdk_kms::primitives::Blob::new(mac))
            .send()
            .await;
        let not_the_keys = "its signature is not the stack's heartbeat key's";
        match verified {
            Ok(answer) if answer.mac_valid() => Leg::Verified {
                stack: message.tag(HEARTBEAT_TAG).unwrap_or_default().to_owned(),
                path: path.to_owned(),
            },
            Ok(_) => refused(not_the_keys.into()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_kms_invalid_mac_exception()) =>
            {
                refused(not_the_keys.into())
            }
            Err(error) => {
                tracing::error!(error = %aws_errors::summary(&error), "a heartbeat leg could not be verified");
                Leg::Unchecked
            }
        }
    }

    /// Takes the legs out of the event: each verified one is counted and not posted; one that
    /// is refused becomes a high warning, posted.
    pub async fn take_legs(&self, event: &mut DestinationEvent, now_ms: i64) {
        let mut bodies: Vec<&mut String> = match event {
            DestinationEvent::Sqs(sqs) => sqs
                .records
                .iter_mut()
                .filter_map(|record| record.body.as_mut())
                .collect(),
            DestinationEvent::Sns(sns) => sns
                .records
                .iter_mut()
                .map(|record| &mut record.sns.message)
                .collect(),
            DestinationEvent::Unrecognised(_) => return,
        };
        let mut counted = Vec::new();
        for (index, body) in bodies.iter_mut().enumerate() {
            match self.read(body, now_ms).await {
                Leg::NotALeg => {}
                Leg::Verified { stack, path } => {
                    // CloudWatch reads this line as the metric the missing-heartbeat alarms watch.
                    println!("{}", heartbeat_metric(&stack, &path, now_ms.max(0) as u64));
                    counted.push(index);
                }
                Leg::Unchecked => counted.push(index),
                Leg::Refused { reason, warning } => {
                    tracing::warn!(%reason, "a heartbeat leg refused");
                    **body = warning;
                }
            }
        }
        // Counted legs are not posted: they are taken out, and leave the queue as handled.
        let keep = |index: usize| !counted.contains(&index);
        match event {
            DestinationEvent::Sqs(sqs) => {
                let mut index = 0;
                sqs.records.retain(|record| {
                    let kept = record.body.is_none() || keep(index);
                    if record.body.is_some() {
                        index += 1;
                    }
                    kept
                });
            }
            DestinationEvent::Sns(sns) => {
                let mut index = 0;
                sns.records.retain(|_| {
                    index += 1;
                    keep(index - 1)
                });
            }
            DestinationEvent::Unrecognised(_) => {}
        }
    }
}

/// The hex of a MAC, as bytes.
fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// What a refused leg is posted as.
fn warning(leg: &Message, reason: &str) -> Message {
    let mut message = Message::new(
        "A heartbeat that is not the stack's own: not counted",
        vec![
            Field::text("Why", format!("Not counted: {reason}.")),
            Field::text(
                "What It Means",
                "Something that may publish to the topic sent a heartbeat the sources did not make: perhaps to hide a source that is switched off. Check TopicPublisherArns and the sources' alarms.",
            ),
        ],
    );
    message.fields.extend(leg.fields.iter().cloned());
    message.metadata = leg.metadata.clone();
    message.tags = vec![Tag::new(SEVERITY_TAG, Severity::High.as_str())];
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_names_the_stack_and_the_path() {
        let line: serde_json::Value =
            serde_json::from_str(&heartbeat_metric("ids", "eventbridge", 1_700_000_000_000))
                .unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Stack", "Path"]])
        );
        assert_eq!(
            (&line["Stack"], &line["Path"], &line[HEARTBEAT_METRIC]),
            (
                &serde_json::json!("ids"),
                &serde_json::json!("eventbridge"),
                &serde_json::json!(1)
            )
        );
        assert_eq!(hex("0aFF"), Some(vec![10, 255]));
        assert_eq!(hex("0"), None);
        assert_eq!(hex("zz"), None);
    }
}
