//! Recall against a peer rule set, judged by its own unit tests: Panther's high and critical
//! CloudTrail rules (fixtures/recall/panther). A rule counts when every one of its tests that
//! is expected to alert is posted by the stack (to Slack, with the template's defaults, the
//! first time it is seen).

use source_eventbridge::noise::{measuring_detector, panther_recall};
use std::path::Path;

#[test]
fn panthers_high_and_critical_rules_are_alerted_on_their_own_tests() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let recall = panther_recall(&fixtures, &measuring_detector()).unwrap();
    for (rule, (expected, posted, missed)) in &recall.rules {
        if posted < expected {
            eprintln!("{rule}: {posted} of {expected} alerted; missed {missed:?}");
        }
    }
    eprintln!(
        "Panther's high and critical CloudTrail rules: {} of {} alerted on every test they expect to alert",
        recall.alerted(),
        recall.rules.len()
    );
    assert_eq!(recall.rules.len(), 34);
    assert!(recall.alerted() >= 31, "{recall:?}");
}
