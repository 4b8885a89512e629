//! The ready invoke events in events/ are what `test-world make-events` makes, so they cannot
//! drift from the corpus or from the functions' own mapping; and they have the shapes Lambda
//! hands the functions.

use base64::Engine;
use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

fn committed(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_committed_events_are_what_make_events_makes() {
    for (name, made) in test_world::events::ready_events() {
        assert_eq!(
            committed(name),
            made,
            "events/{name} differs from what `test-world make-events --out events` makes"
        );
    }
}

#[test]
fn the_source_event_is_a_logs_subscription_delivery_of_a_real_denial() {
    let event = committed("source-cloudtrail-cloudwatch-logs.json");
    let data = base64::engine::general_purpose::STANDARD
        .decode(event["awslogs"]["data"].as_str().unwrap())
        .unwrap();
    let mut json = String::new();
    GzDecoder::new(&data[..]).read_to_string(&mut json).unwrap();
    let payload: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(payload["messageType"], "DATA_MESSAGE");
    assert_eq!(payload["logGroup"], "CloudTrail/DefaultLogGroup");
    let [log_event] = payload["logEvents"].as_array().unwrap().as_slice() else {
        panic!("one log event")
    };
    let record: Value = serde_json::from_str(log_event["message"].as_str().unwrap()).unwrap();
    assert!(
        record["errorCode"]
            .as_str()
            .unwrap()
            .starts_with("AccessDenied")
    );
    assert_eq!(payload["owner"], record["recipientAccountId"]);
    // The record is the corpus's, untouched.
    assert!(
        test_world::payloads::cloudtrail_records()
            .iter()
            .any(|text| serde_json::from_str::<Value>(text).unwrap() == record)
    );
}

#[test]
fn the_destination_event_is_an_sqs_batch_of_messages() {
    let records = committed("destination-slack.json")["Records"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(records.len(), 3);
    for record in records {
        assert_eq!(record["eventSource"], "aws:sqs");
        assert!(record["messageId"].is_string() && record["receiptHandle"].is_string());
        let message: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["subject", "fields", "metadata", "tags"]);
    }
}
