//! Source: CloudTrail records delivered by a CloudWatch Logs subscription filter become Messages
//! on the SNS topic.

mod payload;

pub use activity_aware_cloudtrail::{
    CONSOLE_LINK_LABEL, DIGEST_FIELDS, RecordView, SOURCE_ICON_URL, SOURCE_NAME,
    message_from_record, message_json_from_record,
};
pub use payload::{
    CloudWatchLogsEvent, DecodeError, Decoded, SkippedEvent, decode_and_transform,
    transform_payload,
};

use activity_aware_message::{MessagePublisher, PublishError};
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
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<SourceError> for Diagnostic {
    fn from(error: SourceError) -> Self {
        let error_type = match &error {
            SourceError::Decode(_) => "UndecodablePayload",
            SourceError::Publish(_) => "PublishFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Handles one CloudWatch Logs subscription delivery.
pub async fn handle(
    publisher: &MessagePublisher,
    event: CloudWatchLogsEvent,
) -> Result<Summary, SourceError> {
    let decoded = decode_and_transform(event.awslogs.data)?;
    for skipped in &decoded.not_json {
        tracing::warn!(log_event_id = %skipped.id, error = %skipped.error, "skipping a log event that is not a CloudTrail record");
    }
    let mut summary = decoded.summary;
    if !decoded.outgoing.is_empty() {
        summary.published = publisher.publish_all(decoded.outgoing).await?;
    }
    tracing::info!(
        message_type = %summary.message_type,
        log_events = summary.log_events,
        published = summary.published,
        without_fields = summary.without_fields,
        not_json = summary.not_json,
        truncated = summary.truncated,
        "delivery handled"
    );
    Ok(summary)
}
