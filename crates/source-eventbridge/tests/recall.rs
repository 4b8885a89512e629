//! Recall against a peer rule set, judged by its own unit tests: Panther's high and critical
//! CloudTrail rules (fixtures/recall/panther). A rule counts when every one of its tests that
//! is expected to alert is posted by the stack (to Slack, with the template's defaults, the
//! first time it is seen).

use serde_json::Value;
use source_eventbridge::Detector;
use source_eventbridge::noise::measure;
use std::collections::BTreeMap;

#[test]
fn panthers_high_and_critical_rules_are_alerted_on_their_own_tests() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/recall/panther/tests.jsonl"
    ))
    .unwrap();
    let detector = Detector::from_lookup(|name| match name {
        "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:ids-SNSTopic-1".into()),
        "STACK_NAME" => Some("ids".into()),
        _ => None,
    })
    .unwrap();
    // Rule -> (tests expected to alert, those posted, the names of those missed).
    let mut rules: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        let test: Value = serde_json::from_str(line).unwrap();
        let rule = rules
            .entry(test["rule"].as_str().unwrap().to_owned())
            .or_default();
        if test["expected"] != Value::Bool(true) {
            continue;
        }
        let mut record = test["log"].clone();
        // Panther's events are case-insensitive, and a few tests lean on it.
        for (lower, camel) in [
            ("eventname", "eventName"),
            ("eventsource", "eventSource"),
            ("useridentity", "userIdentity"),
        ] {
            if let Some(value) = record.get(lower).cloned() {
                record[camel] = value;
            }
        }
        rule.0 += 1;
        if measure([&record], &detector).posted > 0 {
            rule.1 += 1;
        } else {
            rule.2
                .push(test["test"].as_str().unwrap_or_default().to_owned());
        }
    }
    let alerted = rules
        .values()
        .filter(|(expected, posted, _)| expected == posted)
        .count();
    for (rule, (expected, posted, missed)) in &rules {
        if posted < expected {
            eprintln!("{rule}: {posted} of {expected} alerted; missed {missed:?}");
        }
    }
    eprintln!(
        "Panther's high and critical CloudTrail rules: {alerted} of {} alerted on every test they expect to alert",
        rules.len()
    );
    assert_eq!(rules.len(), 34);
    assert!(alerted >= 31, "{alerted}");
}
