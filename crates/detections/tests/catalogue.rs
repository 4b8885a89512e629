//! The catalogue as a whole: every detection's examples alert as it and its near misses do not;
//! its patterns agree with EventBridge's matcher (moto's) on the examples, the corpus and the
//! attack benchmark; what the catalogue says of itself holds.

use activity_aware_detections::{Catalogue, Detection, Settings, Severity, event_of_record};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Stdio;

/// The settings of a stack named `ids` in account 111122223333, with a honey bucket `honey`.
fn settings() -> Settings {
    let env = [
        (
            "SNS_TOPIC",
            "arn:aws:sns:us-east-1:111122223333:ids-SNSTopic-1",
        ),
        ("STACK_NAME", "ids"),
        (
            "STACK_KEY_ARN",
            "arn:aws:kms:us-east-1:111122223333:key/0f0e0d0c-0000-4000-8000-000000000001",
        ),
        ("CLOUDTRAIL_LOG_GROUP", "CloudTrail/DefaultLogGroup"),
        ("HONEY_BUCKET_NAME", "honey"),
        (
            "OPERATIONS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:111122223333:ids-OperationsTopic-1",
        ),
    ];
    Settings::from_lookup(|name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn catalogue() -> Catalogue {
    Catalogue::load(settings()).expect("the catalogue loads")
}

/// The detection the catalogue says an event is, fallbacks included, as a source reads it.
fn alerted_as(catalogue: &Catalogue, event: &Value) -> Option<String> {
    catalogue
        .classify(event)
        .or_else(|| catalogue.classify_fallback(event))
        .map(|found| found.detection.id.clone())
}

/// Whether this detection alone takes the event: its pattern, then its finer condition.
fn takes(catalogue: &Catalogue, detection: &Detection, event: &Value) -> bool {
    catalogue.evaluate(detection, event).is_some()
}

#[test]
fn every_detection_alerts_on_its_examples_and_not_on_its_near_misses() {
    let catalogue = catalogue();
    for detection in catalogue.detections() {
        if detection.id == "guardduty-finding" {
            // Its severity is a parameter; the GuardDuty mapping reads findings.
            continue;
        }
        assert!(
            !detection.examples.alert.is_empty(),
            "{}: no example to alert",
            detection.id
        );
        assert!(
            !detection.examples.quiet.is_empty(),
            "{}: no near miss",
            detection.id
        );
        for example in &detection.examples.alert {
            let event = catalogue.example_event(example);
            assert!(
                takes(&catalogue, detection, &event),
                "{}: does not alert on {example}",
                detection.id
            );
            let found = alerted_as(&catalogue, &event).expect("alerted");
            let best = catalogue.detection(&found).unwrap();
            assert!(
                best.id == detection.id || best.severity >= detection.severity,
                "{}: {example} alerts as {} instead",
                detection.id,
                best.id
            );
        }
        // A failed call of a high or critical detection is its attempt: high, saying so.
        assert!(
            detection.examples.attempt.is_empty() || detection.severity >= Severity::High,
            "{}: only high and critical detections have attempts",
            detection.id
        );
        for example in &detection.examples.attempt {
            let event = catalogue.example_event(example);
            assert!(
                !takes(&catalogue, detection, &event),
                "{}: an attempt is no success: {example}",
                detection.id
            );
            let found = catalogue
                .classify(&event)
                .unwrap_or_else(|| panic!("{}: attempt not alerted: {example}", detection.id));
            assert_eq!(found.detection.id, detection.id, "{example}");
            assert!(found.attempt.is_some(), "{example}");
            assert_eq!(found.severity, Severity::High, "{example}");
        }
        for example in &detection.examples.quiet {
            let event = catalogue.example_event(example);
            assert!(
                !takes(&catalogue, detection, &event),
                "{}: alerts on its near miss {example}",
                detection.id
            );
            assert_ne!(
                alerted_as(&catalogue, &event).as_deref(),
                Some(detection.id.as_str()),
                "{example}"
            );
        }
    }
}

#[test]
fn what_the_catalogue_says_of_itself_holds() {
    let catalogue = catalogue();
    let tactics = [
        "Initial Access",
        "Execution",
        "Persistence",
        "Privilege Escalation",
        "Defense Evasion",
        "Credential Access",
        "Discovery",
        "Lateral Movement",
        "Collection",
        "Exfiltration",
        "Impact",
        "Depends on the finding",
    ];
    let mut ids = BTreeSet::new();
    for detection in catalogue.detections() {
        assert!(ids.insert(&detection.id), "{} twice", detection.id);
        assert!(
            detection
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            detection.id
        );
        assert!(
            tactics.contains(&detection.tactic.as_str()),
            "{}: {}",
            detection.id,
            detection.tactic
        );
        assert!(
            !detection.title.is_empty() && detection.title.len() <= 72,
            "{}: title",
            detection.id
        );
        assert!(
            detection.why.ends_with('.') && detection.noise.ends_with('.'),
            "{}",
            detection.id
        );
        // Read-only calls reach only rules in the state that costs more: a detection says so
        // exactly when it needs them.
        // (BatchGet calls are read-only by their records' readOnly, the other reading.)
        let names = event_names(&detection.pattern);
        let read_only = names
            .iter()
            .any(|name| is_read_only(name) || name.starts_with("BatchGet"));
        // Console sign-ins are no API calls: every rule receives them, GetSigninToken too.
        let api_calls = detection
            .pattern
            .to_string()
            .contains("AWS API Call via CloudTrail");
        if !names.is_empty() && api_calls {
            assert_eq!(detection.reads, read_only, "{}: reads", detection.id);
        }
    }
    for family in catalogue.families() {
        assert!(
            catalogue
                .detections()
                .iter()
                .any(|d| d.family == family.name),
            "family {} has no detection",
            family.name
        );
    }
    assert!(catalogue.detections().iter().filter(|d| d.fallback).count() == 1);
}

/// A rule sends every call its detections' patterns match; where a finer condition then turns
/// one down (a private policy, a key of the account's own), another detection names it, so
/// the source never posts it as an unknown event. (Self-protection's refinements are about this
/// stack's own parts; the security group family's are the responder's.)
#[test]
fn what_a_refinement_turns_down_is_still_named() {
    let catalogue = catalogue();
    for detection in catalogue.detections() {
        if ["SelfProtection", "SecurityGroupChanges"].contains(&detection.family.as_str()) {
            continue;
        }
        for example in &detection.examples.quiet {
            let event = catalogue.example_event(example);
            let sent = catalogue
                .matching(&event)
                .iter()
                .any(|matched| matched.id == detection.id);
            if sent {
                assert!(
                    catalogue.classify(&event).is_some(),
                    "{}: its rule sends {example}, which no detection names",
                    detection.id
                );
            }
        }
    }
}

/// Every detection says which public rules or techniques it answers, its ATT&CK technique
/// first among them, each written the one way README's table reads.
#[test]
fn every_detection_answers_an_attack_technique() {
    let catalogue = catalogue();
    let kinds = [
        "ATT&CK T",
        "Sigma ",
        "Panther ",
        "Elastic: ",
        "Stratus aws.",
        "Datadog: ",
    ];
    for detection in catalogue.detections() {
        let answers = &detection.answers;
        assert!(
            answers.iter().any(|answer| answer.starts_with("ATT&CK T")),
            "{}: no ATT&CK technique among its answers",
            detection.id
        );
        let mut seen = BTreeSet::new();
        for answer in answers {
            assert!(
                kinds.iter().any(|kind| answer.starts_with(kind)),
                "{}: {answer:?} is none of {kinds:?}",
                detection.id
            );
            assert!(seen.insert(answer), "{}: {answer} twice", detection.id);
            if let Some(technique) = answer.strip_prefix("ATT&CK ") {
                let (id, sub) = technique.split_once('.').unwrap_or((technique, "000"));
                assert!(
                    id.len() == 5
                        && id[1..].bytes().all(|b| b.is_ascii_digit())
                        && sub.len() == 3
                        && sub.bytes().all(|b| b.is_ascii_digit()),
                    "{}: {answer} is no technique id",
                    detection.id
                );
            }
        }
    }
}

/// EventBridge takes a management event as read-only by its name.
fn is_read_only(name: &str) -> bool {
    (["Describe", "Get", "List"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && name != "GetFederationToken")
        || name == "Decrypt"
        // STS records the sessions it makes as reads.
        || name.starts_with("AssumeRole")
}

fn event_names(pattern: &Value) -> Vec<String> {
    let mut names = Vec::new();
    collect_names(pattern, &mut names);
    names
}

fn collect_names(node: &Value, names: &mut Vec<String>) {
    match node {
        Value::Object(fields) => {
            for (key, value) in fields {
                if key == "eventName" {
                    names.extend(
                        value
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned),
                    );
                } else {
                    collect_names(value, names);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_names(item, names)),
        _ => {}
    }
}

/// The benchmark's Stratus Red Team detonation records (fixtures/benchmarks/detection).
fn stratus() -> Vec<(String, Vec<Value>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/benchmarks/detection/stratus"
    );
    let mut techniques = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let technique: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let records = technique["records"].as_array().cloned().unwrap_or_default();
            techniques.push((technique["id"].as_str().unwrap().to_owned(), records));
        }
    }
    techniques.sort_by(|a, b| a.0.cmp(&b.0));
    techniques
}

/// Every pattern, with the stack's values, matches exactly what moto's EventBridge matcher
/// (tests/eventbridge.py) says it matches: on every example, every corpus record and every
/// benchmark record.
#[test]
fn patterns_agree_with_eventbridge() {
    let catalogue = catalogue();
    let mut events: Vec<Value> = catalogue
        .detections()
        .iter()
        .flat_map(|d| d.examples.alert.iter().chain(&d.examples.quiet))
        .map(|example| catalogue.example_event(example))
        .collect();
    for line in test_world::payloads::cloudtrail_records() {
        events.push(event_of_record(serde_json::from_str(line).unwrap()));
    }
    for (_, records) in stratus() {
        events.extend(records.into_iter().map(event_of_record));
    }
    let patterns: BTreeMap<String, Value> = catalogue
        .detections()
        .iter()
        .filter_map(|d| catalogue.resolved_pattern(d).map(|p| (d.id.clone(), p)))
        .collect();
    assert_eq!(
        patterns.len(),
        catalogue.detections().len() - 1,
        "all but GuardDuty's resolve"
    );
    let request = json!({"patterns": patterns, "events": events});
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/eventbridge.py");
    let mut child = test_world::moto_python()
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("moto's Python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "tests/eventbridge.py failed");
    let verdicts: Vec<Vec<String>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdicts.len(), events.len());
    let mut disagreements = Vec::new();
    for (event, moto) in events.iter().zip(&verdicts) {
        let ours: Vec<String> = catalogue
            .matching(event)
            .iter()
            .map(|d| d.id.clone())
            .collect();
        let mut ours = ours;
        ours.sort();
        if &ours != moto {
            disagreements.push(format!("{}: ours {ours:?}, moto {moto:?}", event["detail"]));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(5)].join("\n")
    );
    // The agreement means something: the events reach many detections.
    let reached: BTreeSet<&String> = verdicts.iter().flatten().collect();
    assert!(reached.len() + 1 >= patterns.len(), "{reached:?}");
}

/// The Stratus Red Team techniques whose detonation the catalogue alerts on, by the
/// technique's own calls: at least 33 of the 35 with a log.
#[test]
fn the_attack_benchmark_is_alerted() {
    let catalogue = catalogue();
    let mut alerted = Vec::new();
    let mut missed = Vec::new();
    for (technique, records) in stratus()
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
    {
        let by: BTreeSet<String> = records
            .into_iter()
            .map(event_of_record)
            .filter_map(|event| {
                catalogue
                    .classify(&event)
                    .map(|found| found.detection.id.clone())
            })
            .collect();
        if by.is_empty() {
            missed.push(technique);
        } else {
            alerted.push(format!("{technique}: {by:?}"));
        }
    }
    eprintln!("alerted:\n  {}\nmissed: {missed:?}", alerted.join("\n  "));
    assert_eq!(alerted.len() + missed.len(), 35);
    assert!(
        alerted.len() >= 33,
        "alerted {} of 35; missed {missed:?}",
        alerted.len()
    );
}

#[test]
fn expected_principals_make_a_change_info_and_may_drop_it() {
    let mut settings = settings();
    settings.expected = activity_aware_detections::ExpectedPrincipals::parse(
        "arn:aws:sts::111122223333:assumed-role/Deployer/*",
        true,
        false,
    )
    .unwrap();
    let catalogue = Catalogue::load(settings.clone()).unwrap();
    let example = json!({"detail": {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Deployer/ci-42"}}});
    let found = catalogue
        .classify(&catalogue.example_event(&example))
        .unwrap();
    assert_eq!(found.detection.severity, Severity::Critical);
    assert_eq!(found.severity, Severity::Info);
    assert!(
        found
            .expected
            .as_deref()
            .unwrap()
            .contains("assumed-role/Deployer/*")
    );
    assert!(!found.dropped());
    settings.expected.drop = true;
    let catalogue = Catalogue::load(settings).unwrap();
    assert!(
        catalogue
            .classify(&catalogue.example_event(&example))
            .unwrap()
            .dropped()
    );
    // Someone else's StopLogging is as critical as ever.
    let other =
        json!({"detail": {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}});
    let found = catalogue
        .classify(&catalogue.example_event(&other))
        .unwrap();
    assert_eq!(
        (found.severity, found.dropped()),
        (Severity::Critical, false)
    );
}

#[test]
fn a_detection_whose_value_the_stack_lacks_is_not_looked_for() {
    let catalogue = Catalogue::load(Settings::default()).unwrap();
    let honey = catalogue.detection("honey-bucket-touched").unwrap();
    let event = catalogue.example_event(&honey.examples.attempt[0]);
    assert!(!takes(&catalogue, honey, &event));
    // The same call is still a denial.
    assert_eq!(
        alerted_as(&catalogue, &event).as_deref(),
        Some("access-denied")
    );
}
