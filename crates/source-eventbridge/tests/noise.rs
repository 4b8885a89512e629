//! The noise figure on real ordinary activity: the `real` records of fixtures/noise and the
//! CloudTrail corpus's dashboards-observability sample. At most 1% of the records that are not
//! denials post to Slack with the template's defaults, and at most 0.1% at high or critical.
//! The noise corpus's documentation examples and rule sets' negative test cases are measured
//! too, and told: they were written to show security-relevant calls, so they are no measure of
//! ordinary work.

use serde_json::Value;
use source_eventbridge::Detector;
use source_eventbridge::noise::{self, Noise, measure};
use std::path::Path;

fn corpus() -> Vec<(String, Value)> {
    noise::corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")).unwrap()
}

fn detector() -> Detector {
    noise::measuring_detector()
}

fn told(name: &str, noise: &Noise) {
    eprintln!(
        "{name}: {} of {} records that are not denials posted ({:.2}%; {} published, info included; {} sent to the source), {} at high or critical ({:.2}%): {:?} {:?}",
        noise.posted,
        noise.others(),
        noise.posted_percent(),
        noise.published,
        noise.sent,
        noise.urgent(),
        noise.urgent_percent(),
        noise.by_severity,
        noise.by_detection
    );
    for line in &noise.posted_records {
        eprintln!("  {line}");
    }
}

#[test]
fn ordinary_activity_is_rarely_posted_and_never_urgently() {
    let corpus = corpus();
    let detector = detector();
    let real: Vec<&Value> = corpus
        .iter()
        .filter(|(class, _)| class == "real")
        .map(|(_, record)| record)
        .collect();
    assert!(real.len() > 1_500, "{}", real.len());
    let noise = measure(real, &detector);
    told("real", &noise);
    assert!(noise.posted_percent() <= 1.0, "{noise:?}");
    assert!(noise.urgent_percent() <= 0.1, "{noise:?}");

    let written = measure(
        corpus
            .iter()
            .filter(|(class, _)| class != "real")
            .map(|(_, record)| record),
        &detector,
    );
    told("documentation examples and negative test cases", &written);
    assert!(written.records > 250, "{written:?}");
}

#[test]
fn a_routine_change_is_posted_the_first_time_only() {
    let change = |user: &str| {
        serde_json::json!({
            "eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
            "eventName": "CreateSecurityGroup", "awsRegion": "eu-west-1",
            "eventTime": "2026-12-01T10:00:00Z", "recipientAccountId": "111122223333",
            "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"groupName": "web", "groupDescription": "web"},
            "userIdentity": {"type": "IAMUser", "userName": user,
                "arn": format!("arn:aws:iam::111122223333:user/{user}"),
                "accountId": "111122223333"},
        })
    };
    let records = [change("alice"), change("alice"), change("bob")];
    let noise = measure(&records, &detector());
    // Alice's second is told for the record; Bob's first is news.
    assert_eq!((noise.published, noise.posted), (3, 2), "{noise:?}");
    // Terraform's is routine at once.
    let mut terraform = change("deployer");
    terraform["userAgent"] =
        serde_json::json!("APN/1.0 HashiCorp/1.0 Terraform/1.6.2 (+https://www.terraform.io)");
    let noise = measure([&terraform], &detector());
    assert_eq!((noise.published, noise.posted), (1, 0), "{noise:?}");
}
