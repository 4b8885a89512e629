//! The heartbeat's canary, as the sources see it. Every hour the heartbeat makes one call its
//! own role is denied (`ssm:PutParameter` of `/activity-aware-ids/<stack>/heartbeat`): CloudTrail
//! records it, and it reaches both sources the way any denial does (EventBridge in seconds, the
//! CloudWatch Logs subscription in minutes). Each source turns it into a heartbeat leg, signed
//! with the stack's heartbeat key, instead of an alert. The Slack function counts each leg it
//! can verify; an alarm fires when a source's legs stop: a source switched off, throttled or cut
//! off from CloudTrail stops its heartbeat.

use crate::record::RecordView;
use activity_aware_message::{
    DIGEST_GROUP_TAG, EVENT_TIME_TAG, Field, HEARTBEAT_MAC_TAG, HEARTBEAT_PATH_TAG, HEARTBEAT_TAG,
    Message, Metadata, OutgoingMessage, SEVERITY_TAG, Severity, Tag, heartbeat_mac_text,
};
use aws_query::{JsonClient, QueryError, Service};
use base64::Engine;
use serde_json::{Value, json};

/// The source a leg came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    EventBridge,
    CloudWatchLogs,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::EventBridge => "eventbridge",
            Path::CloudWatchLogs => "cloudwatch-logs",
        }
    }

    fn said(self) -> &'static str {
        match self {
            Path::EventBridge => "the EventBridge source",
            Path::CloudWatchLogs => "the CloudWatch Logs source",
        }
    }
}

/// The parameter the canary call names.
pub fn canary_parameter(stack: &str) -> String {
    format!("/activity-aware-ids/{stack}/heartbeat")
}

/// What makes a record the stack's canary call: the heartbeat's role (its name) in this account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Canary {
    pub stack: String,
    pub account: String,
    /// The heartbeat function's role's name.
    pub role: String,
}

/// One canary call, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub event_id: String,
    pub event_time: String,
}

impl Canary {
    /// `STACK_NAME`, the account of `SNS_TOPIC` and `HEARTBEAT_ROLE_ARN`; `None` without them
    /// (no heartbeat is recognised, every record is what it is).
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Option<Canary> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let role_arn = get("HEARTBEAT_ROLE_ARN")?;
        let account = role_arn.split(':').nth(4)?.to_owned();
        let role = role_arn.rsplit('/').next()?.to_owned();
        Some(Canary {
            stack: get("STACK_NAME")?,
            account,
            role,
        })
    }

    /// The canary call a record is, if it is one: `PutParameter` of the canary parameter by a
    /// session of the heartbeat's role in this account.
    pub fn leg(&self, view: &RecordView<'_>) -> Option<Leg> {
        let text = |path: &str| view.known_text(path).flatten();
        if text("eventSource").as_deref() != Some("ssm.amazonaws.com")
            || text("eventName").as_deref() != Some("PutParameter")
            || text("userIdentity.accountId").as_deref() != Some(self.account.as_str())
            || view.role().as_deref() != Some(self.role.as_str())
        {
            return None;
        }
        let parameters: Value = serde_json::from_str(view.request_parameters()?).ok()?;
        if parameters.get("name").and_then(Value::as_str)
            != Some(canary_parameter(&self.stack).as_str())
        {
            return None;
        }
        Some(Leg {
            event_id: text("eventID")?,
            event_time: text("eventTime")?,
        })
    }

    /// The leg's Message, unsigned (see [`HeartbeatSigner`]).
    pub fn message(&self, leg: &Leg, path: Path) -> Message {
        Message {
            subject: format!("Heartbeat through {}", path.said()),
            fields: vec![
                Field::text("Path", path.as_str()),
                Field::text(
                    "Canary Call",
                    format!("ssm:PutParameter {}", canary_parameter(&self.stack)),
                ),
                Field::text("Event ID", leg.event_id.clone()),
                Field::text("Event Time", leg.event_time.clone()),
            ],
            metadata: Metadata {
                source_name: Some("Activity Aware IDS".into()),
                source_icon_url: None,
            },
            tags: vec![
                Tag::new(HEARTBEAT_TAG, self.stack.as_str()),
                Tag::new(HEARTBEAT_PATH_TAG, path.as_str()),
                Tag::new(SEVERITY_TAG, Severity::Info.as_str()),
                Tag::new(EVENT_TIME_TAG, leg.event_time.as_str()),
                Tag::new(DIGEST_GROUP_TAG, format!("heartbeat {}", path.as_str())),
            ],
        }
    }

    /// What the leg's MAC covers.
    pub fn mac_text(&self, leg: &Leg, path: Path) -> String {
        heartbeat_mac_text(&self.stack, path.as_str(), &leg.event_id, &leg.event_time)
    }
}

/// Signs heartbeat legs with the stack's heartbeat key (KMS `GenerateMac`, HMAC-SHA-256): the
/// key never leaves KMS, and only the sources' roles may use it to sign.
pub struct HeartbeatSigner {
    client: JsonClient,
    key: String,
}

impl HeartbeatSigner {
    /// With `HEARTBEAT_KEY_ARN`; `None` without it (legs then go unsigned, and are not counted).
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Option<HeartbeatSigner>, QueryError> {
        std::env::var("HEARTBEAT_KEY_ARN")
            .ok()
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty())
            .map(|key| HeartbeatSigner::new(config, &key))
            .transpose()
    }

    /// Signs with `key` (an HMAC key's ID or ARN).
    pub fn new(config: &aws_config::SdkConfig, key: &str) -> Result<HeartbeatSigner, QueryError> {
        Ok(HeartbeatSigner {
            client: JsonClient::new(config, Service::Kms, None)?,
            key: key.to_owned(),
        })
    }

    /// The HMAC of `text`, hex.
    pub async fn mac(&self, text: &str) -> Result<String, QueryError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let answer = self
            .client
            .call(
                "GenerateMac",
                &json!({"KeyId": self.key, "MacAlgorithm": "HMAC_SHA_256", "Message": b64.encode(text)}),
            )
            .await?;
        let mac = answer["Mac"]
            .as_str()
            .and_then(|mac| b64.decode(mac).ok())
            .ok_or_else(|| QueryError::Answer("GenerateMac returned no Mac".into()))?;
        Ok(mac.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// Signs each Message that asks for it (`to_sign`), in place. One that cannot be signed is
    /// published unsigned: the Slack function does not count it, and the missing-heartbeat
    /// alarm says so.
    pub async fn sign_all(&self, outgoing: &mut [OutgoingMessage]) {
        for message in outgoing.iter_mut() {
            let Some(text) = message.to_sign.take() else {
                continue;
            };
            let signed = match self.mac(&text).await {
                Ok(mac) => Message::from_json(&message.body).map(|mut body| {
                    body.tags.push(Tag::new(HEARTBEAT_MAC_TAG, mac));
                    body.to_json()
                }),
                Err(error) => {
                    tracing::error!(%error, "a heartbeat leg could not be signed");
                    continue;
                }
            };
            if let Ok(body) = signed {
                message.body = body;
            }
        }
    }
}
