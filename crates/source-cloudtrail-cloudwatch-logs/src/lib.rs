//! Source: CloudTrail records delivered by a CloudWatch Logs subscription filter become Messages
//! on the SNS topic.

mod payload;

pub use activity_aware_cloudtrail::{
    CONSOLE_LINK_LABEL, DIGEST_FIELDS, Detector, RecordView, SOURCE_ICON_URL, SOURCE_NAME,
    SourceConfig as Config, SourceConfigError as ConfigError, message_from_record,
    message_json_from_record,
};
pub use payload::{
    CloudWatchLogsEvent, DecodeError, Decoded, SkippedEvent, decode, decode_and_transform,
    transform_payload, transform_payload_with,
};

use activity_aware_cloudtrail::BeforePublishing;
use activity_aware_message::{MessagePublisher, OutgoingMessage, PublishError};
use lambda_runtime::Diagnostic;
use serde::Serialize;

/// What one invocation did, returned as the function's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub message_type: String,
    pub log_events: usize,
    pub published: usize,
    /// Records with none of the Message's fields: nothing to say, nothing published.
    pub without_fields: usize,
    /// Records that were not CloudTrail JSON: logged and skipped.
    pub not_json: usize,
    /// Messages cut down to fit SNS's size limit.
    pub truncated: usize,
    /// Expected changes not published, because the stack drops those (ExpectedChanges).
    pub dropped: usize,
    /// Records not published because their event was told already (the other path's copy).
    pub already_told: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The payload broke off after some of its Messages were on their way.
    #[error("{error}; it broke off after {published} Message(s) of the log events before the break were published{}", not_published.as_ref().map(|error| format!("; besides, {error}")).unwrap_or_default())]
    BrokenOff {
        error: DecodeError,
        published: usize,
        not_published: Option<PublishError>,
    },
}

impl From<SourceError> for Diagnostic {
    fn from(error: SourceError) -> Self {
        let error_type = match &error {
            SourceError::Decode(_) | SourceError::BrokenOff { .. } => "UndecodablePayload",
            SourceError::Publish(_) => "PublishFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Messages made but not yet published, at most: the records are mapped while earlier Messages
/// are being published, and memory holds the payload and this many Messages, not every Message
/// of the delivery at once (the largest delivery makes about 40 MB of them).
const MESSAGES_IN_WAITING: usize = 1_000;
/// Messages published together (PublishBatch calls of 10, several in flight).
const MESSAGES_PER_ROUND: usize = 400;

/// Handles one CloudWatch Logs subscription delivery: the payload is decoded, its records mapped
/// to Messages on a blocking thread and published as they come. Every Message is tried; the
/// invocation fails naming each one SNS did not take.
pub async fn handle(
    publisher: &MessagePublisher,
    detector: &Detector,
    before_publishing: &BeforePublishing,
    event: CloudWatchLogsEvent,
) -> Result<Summary, SourceError> {
    let json = decode(event.awslogs.data)?;
    // The mapping thread's own handle on the same catalogue.
    let detector = detector.clone();
    let (sender, mut made) = tokio::sync::mpsc::channel::<OutgoingMessage>(MESSAGES_IN_WAITING);
    let mapping = tokio::task::spawn_blocking(move || {
        // A send fails only when publishing stopped, which it never does before the end.
        transform_payload_with(&json, &detector, &mut |message| {
            let _ = sender.blocking_send(message);
        })
    });
    let mut published = 0;
    let mut total = 0;
    let mut already_told = 0;
    let mut failed = Vec::new();
    let mut round = Vec::with_capacity(MESSAGES_PER_ROUND);
    while made.recv_many(&mut round, MESSAGES_PER_ROUND).await > 0 {
        total += round.len();
        already_told += before_publishing.settle(&mut round).await;
        let told: Vec<(String, String)> = round
            .iter()
            .filter_map(|m| m.once.clone().map(|key| (m.label.clone(), key)))
            .collect();
        let not_published = match publisher.publish_all(std::mem::take(&mut round)).await {
            Ok(count) => {
                published += count;
                Vec::new()
            }
            Err(PublishError::NotPublished {
                failed: not_published,
                total: tried,
            }) => {
                published += tried - not_published.len();
                not_published
            }
        };
        // What SNS took is told; what it did not is tried again, and posted then.
        let keys = told
            .into_iter()
            .filter(|(label, _)| !not_published.iter().any(|f| &f.label == label))
            .map(|(_, key)| key)
            .collect();
        before_publishing.after_publishing(keys).await;
        failed.extend(not_published);
    }
    let not_published =
        (!failed.is_empty()).then_some(PublishError::NotPublished { failed, total });
    let (mut summary, not_json) = match mapping
        .await
        .expect("mapping records to Messages does not panic")
    {
        Ok(mapped) => mapped,
        Err(error) if total == 0 => return Err(error.into()),
        // Retrying publishes the Messages before the break again; failing keeps the
        // delivery (in the failure queue) for whoever made it.
        Err(error) => {
            return Err(SourceError::BrokenOff {
                error,
                published,
                not_published,
            });
        }
    };
    for skipped in &not_json {
        tracing::warn!(log_event_id = ?skipped.id, error = ?skipped.error, "skipping a log event that is not a CloudTrail record");
    }
    if let Some(error) = not_published {
        return Err(error.into());
    }
    summary.published = published;
    summary.already_told = already_told;
    tracing::info!(
        message_type = %summary.message_type,
        log_events = summary.log_events,
        published = summary.published,
        without_fields = summary.without_fields,
        not_json = summary.not_json,
        truncated = summary.truncated,
        already_told = summary.already_told,
        "delivery handled"
    );
    Ok(summary)
}
