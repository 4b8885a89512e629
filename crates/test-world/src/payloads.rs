//! CloudWatch Logs deliveries built from the real CloudTrail corpus, for tests and benchmarks.

use crate::events::{awslogs_event, data_message};
use serde_json::Value;

/// Lambda refuses a synchronous invocation request larger than 6 MB; nothing larger can reach
/// a function.
pub const LAMBDA_MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

const RECORDS: &str = include_str!("../../../fixtures/cloudtrail/records.jsonl");

/// The corpus's 1,916 real CloudTrail records, one JSON text each.
pub fn cloudtrail_records() -> Vec<&'static str> {
    RECORDS.lines().filter(|line| !line.is_empty()).collect()
}

/// A delivery of `count` records, cycling through the corpus.
pub fn cloudtrail_event(count: usize) -> Value {
    build(count).event
}

#[derive(Debug, Clone)]
pub struct BuiltEvent {
    pub event: Value,
    pub records: usize,
    /// Size of the event's JSON text, as Lambda receives it.
    pub event_bytes: usize,
    /// Size of the decompressed CloudWatch Logs payload inside it.
    pub decompressed_bytes: usize,
}

fn build(count: usize) -> BuiltEvent {
    let records = cloudtrail_records();
    let messages: Vec<String> = records
        .iter()
        .cycle()
        .take(count)
        .map(|record| record.to_string())
        .collect();
    let payload = data_message(&messages);
    let decompressed_bytes = payload.to_string().len();
    let event = awslogs_event(&payload);
    BuiltEvent {
        event_bytes: event.to_string().len(),
        event,
        records: count,
        decompressed_bytes,
    }
}

/// The largest delivery of corpus records whose event still fits Lambda's payload limit.
pub fn largest_cloudtrail_event() -> BuiltEvent {
    let mut count = 2_000;
    let mut best: Option<BuiltEvent> = None;
    // Size grows almost linearly with the record count: a few proportional steps get close,
    // then small steps settle on the largest count that fits.
    for _ in 0..6 {
        let built = build(count);
        let ratio = LAMBDA_MAX_PAYLOAD_BYTES as f64 / built.event_bytes as f64;
        if built.event_bytes <= LAMBDA_MAX_PAYLOAD_BYTES
            && best.as_ref().is_none_or(|b| b.records < built.records)
        {
            best = Some(built);
        }
        let next = ((count as f64) * ratio * 0.999) as usize;
        if next.abs_diff(count) <= count / 500 {
            break;
        }
        count = next;
    }
    let mut best = best.unwrap_or_else(|| build(1));
    loop {
        let step = (best.records / 200).max(1);
        let bigger = build(best.records + step);
        if bigger.event_bytes > LAMBDA_MAX_PAYLOAD_BYTES {
            return best;
        }
        best = bigger;
    }
}
