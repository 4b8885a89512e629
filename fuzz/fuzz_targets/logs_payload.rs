//! The decompressed CloudWatch Logs payload parser and the record mapping behind it: never a
//! panic, and whatever is published is a valid Message within SNS's limit, exactly the Message
//! the record stands for.
#![no_main]

use activity_aware_message::{Message, MESSAGE_BODY_LIMIT_BYTES};
use libfuzzer_sys::fuzz_target;
use source_cloudtrail_cloudwatch_logs::{
    Detector, RecordView, message_from_record, message_json_from_record,
};
use std::sync::OnceLock;

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(Detector::default)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = source_cloudtrail_cloudwatch_logs::transform_payload(data, detector()) {
        for outgoing in &decoded.outgoing {
            assert!(outgoing.body.len() <= MESSAGE_BODY_LIMIT_BYTES);
            Message::from_json(&outgoing.body).expect("a published body is a valid Message");
        }
    }
    // The same bytes as one record: the JSON written straight from it is its Message's JSON.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(view) = RecordView::parse(text)
    {
        let detected = detector().detect(&view);
        let written = message_json_from_record(&view, &detected)
            .map(|json| serde_json::from_str::<serde_json::Value>(&json).unwrap());
        let built = message_from_record(&view, &detected)
            .map(|m| serde_json::from_str::<serde_json::Value>(&m.to_json()).unwrap());
        assert_eq!(written, built);
    }
});
