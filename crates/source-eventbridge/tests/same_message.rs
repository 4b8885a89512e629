//! One CloudTrail record, two ways in: delivered by CloudWatch Logs to the Logs source, or by
//! EventBridge as an `AWS API Call via CloudTrail` event to this source. Both publish the same
//! Message, byte for byte, for every record of the corpus.

use serde_json::Value;
use source_cloudtrail_cloudwatch_logs::transform_payload;
use source_eventbridge::{Detector, Made, message_json, parse_event};
use test_world::events::{data_message, eventbridge_api_call};
use test_world::payloads::{cloudtrail_records, edge_case_records};

#[test]
fn every_corpus_record_makes_the_same_message_through_both_sources() {
    let records: Vec<&str> = cloudtrail_records()
        .into_iter()
        .chain(edge_case_records())
        .collect();
    assert!(records.len() > 1_900);
    let mut published = 0;
    let mut unmatched = 0;
    // Each source its own, as deployed: a burst of attempts is counted per function.
    let (logs, eventbridge) = (Detector::default(), Detector::default());
    for text in records {
        let Ok(record) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let payload = data_message(&[text.to_owned()]).to_string();
        let through_logs: Vec<String> = transform_payload(payload.as_bytes(), &logs)
            .expect("a Logs payload of one record")
            .outgoing
            .into_iter()
            .map(|message| message.body)
            .collect();

        let event = with_raw_detail(&record, text);
        let through_eventbridge: Vec<String> =
            match message_json(&parse_event(&event).unwrap(), &eventbridge) {
                Made::Message { body, .. } => vec![body],
                Made::WithoutFields | Made::Dropped | Made::Liveness { .. } => vec![],
                // The rules send broadly; what no detection takes is no alert. Through
                // CloudWatch Logs, the subscription's own pattern chose the record: it is said.
                Made::NoDetection => {
                    unmatched += 1;
                    for body in &through_logs {
                        let message: Value = serde_json::from_str(body).unwrap();
                        assert!(
                            !message["tags"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .any(|tag| tag["key"] == "detection"),
                            "{body:.300}"
                        );
                    }
                    continue;
                }
            };

        assert_eq!(through_eventbridge, through_logs, "record {text:.300}");
        published += through_logs.len();
    }
    // A mapping that said nothing would pass above: most of the corpus is denials and
    // detections, compared byte for byte; the rest (ordinary calls) no detection takes.
    assert!(published > 400, "{published} Messages compared");
    assert!(published + unmatched > 1_800, "{published} + {unmatched}");
}

/// The EventBridge event of `record`, its detail the record's own text (escapes and all), as the
/// Logs source sees it.
fn with_raw_detail(record: &Value, text: &str) -> String {
    let mut envelope = eventbridge_api_call(record);
    envelope
        .as_object_mut()
        .expect("an event is an object")
        .remove("detail");
    let envelope = envelope.to_string();
    format!("{},\"detail\":{text}}}", &envelope[..envelope.len() - 1])
}
