//! The Message parser every destination runs on what arrives from the topic, and the Slack body
//! made from it: never a panic, a parsed Message round-trips, and no Slack markup gets through.
#![no_main]

use activity_aware_message::Message;
use destination_slack::layout::AccountNames;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every string Slack reads as text in the blocks (not a button's URL), with the post's own
/// quote markers (`>` starting a line) taken off.
fn texts(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(
            text.lines()
                .map(|line| line.strip_prefix('>').unwrap_or(line))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Value::Array(items) => items.iter().for_each(|item| texts(item, found)),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| key.as_str() != "url")
            .for_each(|(_, item)| texts(item, found)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = Message::from_json(text) else {
        return;
    };
    assert_eq!(Message::from_json(&message.to_json()).unwrap(), message);
    let body = destination_slack::slack_body(&message, &AccountNames::default());
    let text = body["text"].as_str().unwrap();
    assert!(!text.contains('<') && !text.contains('>'));
    let mut found = Vec::new();
    texts(&body["blocks"], &mut found);
    for block_text in found {
        assert!(!block_text.contains('<') && !block_text.contains('>'), "{block_text}");
    }
});
