//! CloudTrail records to Messages: the CloudWatch Logs source and the EventBridge source make
//! the same Message of the same record, because both use this one mapping.

mod record;

pub use record::{
    CONSOLE_LINK_LABEL, DIGEST_FIELDS, RecordView, SOURCE_ICON_URL, SOURCE_NAME,
    cloudtrail_event_link, is_safe_id, is_safe_region, message_from_record,
    message_json_from_record,
};
