//! The Message parser every destination runs on what arrives from the topic, and the Slack body
//! made from it: never a panic, a parsed Message round-trips, and no Slack markup gets through.
#![no_main]

use activity_aware_message::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = Message::from_json(text) else {
        return;
    };
    assert_eq!(Message::from_json(&message.to_json()).unwrap(), message);
    let body = destination_slack::slack_body(&message);
    let text = body["text"].as_str().unwrap();
    assert!(!text.contains('<') && !text.contains('>'));
    for block in body["blocks"].as_array().unwrap() {
        let block_text = block["text"]["text"].as_str().unwrap();
        assert!(!block_text.contains('<') && !block_text.contains('>'));
    }
});
