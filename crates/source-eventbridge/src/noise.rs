//! The noise figure: of real records of ordinary activity that are not denials, how many the
//! stack would post to Slack with the template's defaults (a rule sends the event, a detection
//! keeps it, and it is at least low), and how severe. A team mutes a channel that cries wolf
//! on every deploy; this is the number that says it does not. Routine changes are remembered
//! across the corpus as the sources' table remembers them: news the first time.

use crate::{Detector, Made, message_json, parse_event};
use activity_aware_cloudtrail::is_denial_code;
use activity_aware_detections::Severity;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Slack's default minimum severity (SlackMinimumSeverity): what is told for the record (info)
/// is published on the topic but not posted.
pub const POSTED_AT: Severity = Severity::Low;

/// What a corpus of ordinary activity makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Noise {
    /// Records read.
    pub records: usize,
    /// Records that are denials (told by design: the CloudWatch Logs subscription's pattern).
    pub denials: usize,
    /// Records that are not denials and that a rule sends to the source (an invocation each).
    pub sent: usize,
    /// Records that are not denials and would be published on the topic (info included).
    pub published: usize,
    /// Of those, the ones posted to Slack (at least [`POSTED_AT`]).
    pub posted: usize,
    /// Of the posted, how many at each severity.
    pub by_severity: BTreeMap<String, usize>,
    /// Of those, how many of each detection.
    pub by_detection: BTreeMap<String, usize>,
    /// Each posted record in a line: its place in the corpus, detection, severity, event,
    /// caller, agent.
    pub posted_records: Vec<String>,
}

impl Noise {
    /// Records that are not denials.
    pub fn others(&self) -> usize {
        self.records - self.denials
    }

    /// Posted at high or critical.
    pub fn urgent(&self) -> usize {
        ["high", "critical"]
            .iter()
            .map(|severity| self.by_severity.get(*severity).copied().unwrap_or(0))
            .sum()
    }

    /// `posted` as a share of the records that are not denials, in percent.
    pub fn posted_percent(&self) -> f64 {
        100.0 * self.posted as f64 / self.others().max(1) as f64
    }

    pub fn urgent_percent(&self) -> f64 {
        100.0 * self.urgent() as f64 / self.others().max(1) as f64
    }
}

/// What the stack makes of each record: the EventBridge path, as the template's rules and the
/// source decide (a read-only call reaches only a detection that reads).
pub fn measure<'r>(records: impl IntoIterator<Item = &'r Value>, detector: &Detector) -> Noise {
    let mut noise = Noise::default();
    let mut remembered = HashSet::new();
    for (index, record) in records.into_iter().enumerate() {
        noise.records += 1;
        if record
            .get("errorCode")
            .and_then(Value::as_str)
            .is_some_and(is_denial_code)
        {
            noise.denials += 1;
            continue;
        }
        let source = record
            .get("eventSource")
            .and_then(Value::as_str)
            .and_then(|source| source.split('.').next())
            .unwrap_or_default();
        let detail_type = match record.get("eventType").and_then(Value::as_str) {
            Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
            Some("AwsServiceEvent") => continue,
            _ => "AWS API Call via CloudTrail",
        };
        let event = serde_json::json!({
            "version": "0", "id": "noise", "detail-type": detail_type, "source": format!("aws.{source}"),
            "account": record.get("recipientAccountId"), "time": record.get("eventTime"),
            "region": record.get("awsRegion"), "resources": [], "detail": record,
        })
        .to_string();
        // What the template's rules send: a read-only call only to a rule that reads.
        let read_only = record.get("readOnly") == Some(&Value::Bool(true));
        if let Ok(whole) = serde_json::from_str::<Value>(&event)
            && detector
                .catalogue()
                .matching(&whole)
                .iter()
                .any(|detection| !read_only || detection.reads)
        {
            noise.sent += 1;
        }
        let Ok(parsed) = parse_event(&event) else {
            continue;
        };
        let Made::Message {
            severity,
            detection,
            familiar,
            ..
        } = message_json(&parsed, detector)
        else {
            continue;
        };
        let detection = detection.unwrap_or_default();
        // A read-only call reaches a rule only when its detection needs read-only calls.
        let reads = detector
            .catalogue()
            .detection(&detection)
            .is_some_and(|found| found.reads);
        if read_only && !reads && detail_type != "AWS Console Sign In via CloudTrail" {
            continue;
        }
        noise.published += 1;
        let severity = match familiar.map(|key| remembered.insert(key)) {
            // Remembered: told for the record.
            Some(false) => Severity::Info,
            _ => severity,
        };
        if severity < POSTED_AT {
            continue;
        }
        let text = |pointer: &str| {
            record
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("-")
        };
        noise.posted_records.push(format!(
            "{index} {detection} {} {} {} {} {}",
            severity.as_str(),
            text("/eventName"),
            text("/userIdentity/type"),
            text("/userIdentity/invokedBy"),
            text("/userAgent"),
        ));
        noise.posted += 1;
        *noise
            .by_severity
            .entry(severity.as_str().to_owned())
            .or_default() += 1;
        *noise.by_detection.entry(detection).or_default() += 1;
    }
    noise
}

/// The repository's noise corpus, each record with its class: `real` (fixtures/noise's real
/// records and the CloudTrail corpus's dashboards-observability sample), `doc-example` or
/// `test-negative` (written to show a call, or to miss a rule).
pub fn corpus(fixtures: &std::path::Path) -> Result<Vec<(String, Value)>, String> {
    let read = |path: &str| {
        std::fs::read_to_string(fixtures.join(path))
            .map_err(|error| format!("{}: {error}", fixtures.join(path).display()))
    };
    let parse = |line: &str| {
        serde_json::from_str::<Value>(line).map_err(|error| format!("a corpus record: {error}"))
    };
    let index = read("noise/records.index.tsv")?;
    let mut corpus = Vec::new();
    for (line, row) in read("noise/records.jsonl")?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .zip(index.lines())
    {
        let note = row.split('\t').nth(5).unwrap_or_default();
        let class = note.split(';').next().unwrap_or_default().trim().to_owned();
        corpus.push((class, parse(line)?));
    }
    let index = read("cloudtrail/records.index.tsv")?;
    let sources = index
        .lines()
        .skip(1)
        .map(|line| line.split('\t').nth(1).unwrap_or_default());
    for (line, source) in read("cloudtrail/records.jsonl")?.lines().zip(sources) {
        if source == "dashboards-observability" {
            corpus.push(("real".into(), parse(line)?));
        }
    }
    Ok(corpus)
}

/// A peer rule set's rules, judged by their own unit tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recall {
    /// Rule -> (tests expected to alert, those posted, the names of those missed).
    pub rules: BTreeMap<String, (usize, usize, Vec<String>)>,
}

impl Recall {
    /// Rules every test of which that expects an alert is posted.
    pub fn alerted(&self) -> usize {
        self.rules
            .values()
            .filter(|(expected, posted, _)| expected == posted)
            .count()
    }
}

/// Panther's high and critical CloudTrail rules' unit tests (fixtures/recall/panther), through
/// the stack: a test expected to alert counts when its record is posted.
pub fn panther_recall(fixtures: &std::path::Path, detector: &Detector) -> Result<Recall, String> {
    let path = fixtures.join("recall/panther/tests.jsonl");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut recall = Recall::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let test: Value =
            serde_json::from_str(line).map_err(|error| format!("a Panther test: {error}"))?;
        let rule = recall
            .rules
            .entry(test["rule"].as_str().unwrap_or_default().to_owned())
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
        if measure([&record], detector).posted > 0 {
            rule.1 += 1;
        } else {
            rule.2
                .push(test["test"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(recall)
}

/// The settings of a stack named `ids`, as the measures judge with them.
pub fn measuring_detector() -> Detector {
    Detector::from_lookup(|name| match name {
        "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:ids-SNSTopic-1".into()),
        "STACK_NAME" => Some("ids".into()),
        _ => None,
    })
    .expect("the catalogue compiled into the binary loads")
}
