//! CloudTrail records to Messages: the CloudWatch Logs source and the EventBridge source make
//! the same Message of the same record, because both use this one mapping, and read which
//! detection of the catalogue the record is with the same [`Detector`].

mod config;
mod detect;
pub mod familiar;
pub mod heartbeat;
mod record;
mod settle;

pub use config::{SourceConfig, SourceConfigError};
pub use detect::{
    DETECTION_LABEL, Detected, DetectionText, Detector, DetectorError, EXPECTED_LABEL,
    ROUTINE_LABEL, TACTIC_LABEL, UNCLASSIFIED_SEVERITY, WHAT_HAPPENED_LABEL, WHY_IT_ALERTED_LABEL,
    WHY_IT_MATTERS_LABEL,
};
pub use record::{
    CONSOLE_LINK_LABEL, DIGEST_FIELDS, RecordView, SOURCE_ICON_URL, SOURCE_NAME,
    cloudtrail_event_link, is_access_key_id, is_denial_code, is_safe_id, is_safe_region,
    message_from_record, message_json_from_record,
};
pub use settle::{BeforePublishing, BeforePublishingError};
