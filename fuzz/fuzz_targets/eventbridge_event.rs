//! What the EventBridge source makes of any event: never a panic, and what it would publish
//! is a Message the destinations read, within SNS's size limit.
#![no_main]

use activity_aware_message::{MESSAGE_BODY_LIMIT_BYTES, Message};
use libfuzzer_sys::fuzz_target;
use source_eventbridge::noise::measuring_detector;
use source_eventbridge::{Detector, Made, message_json, parse_event};
use std::sync::LazyLock;

static DETECTOR: LazyLock<Detector> = LazyLock::new(measuring_detector);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = parse_event(text) else {
        return;
    };
    if let Made::Message { body, .. } = message_json(&event, &DETECTOR) {
        assert!(body.len() <= MESSAGE_BODY_LIMIT_BYTES, "{} bytes", body.len());
        Message::from_json(&body).expect("the source publishes Messages");
    }
});
