//! The real `source-eventbridge` binary, run through a local Lambda Runtime API against moto:
//! every EventBridge sample of the fixtures is published as its Message, read back from an SQS
//! queue subscribed to the topic with raw delivery.

use std::time::Duration;

use activity_aware_cloudtrail::{BeforePublishing, Detector, RecordView, message_json_from_record};
use activity_aware_detections::Settings;
use serde_json::{Value, json};
use test_world::payloads::EVENTBRIDGE_SAMPLES;
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, MotoServer, RuntimeApi, SnsCapture, assert_no_secrets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_source-eventbridge");
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);

struct Source {
    // Dropped in this order: the function, then its Runtime API, then moto.
    process: LambdaProcess,
    api: RuntimeApi,
    capture: SnsCapture,
    moto: MotoServer,
    topic: String,
    /// The catalogue with the settings the function has (its topic).
    detector: Detector,
}

impl Source {
    async fn start() -> Source {
        Source::start_with(&[]).await
    }

    /// The function with these variables besides its topic, as the template sets them.
    async fn start_with(variables: &[(&str, &str)]) -> Source {
        Source::start_in(MotoServer::start(), variables).await
    }

    /// The same, in a moto of the test's own.
    async fn start_in(moto: MotoServer, variables: &[(&str, &str)]) -> Source {
        let topic = moto.create_topic("ids-topic").await;
        let capture = moto.capture_queue(&topic).await;
        let api = RuntimeApi::start();
        let lookup = |name: &str| {
            (name == "SNS_TOPIC").then(|| topic.clone()).or_else(|| {
                variables
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            })
        };
        let detector = Detector::new(Settings::from_lookup(lookup).unwrap()).unwrap();
        let mut env = moto.lambda_env();
        env.extend(
            variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env.push(("SNS_TOPIC".to_owned(), topic.clone()));
        let process = LambdaProcess::spawn(BINARY, &api, env);
        Source {
            process,
            api,
            capture,
            moto,
            topic,
            detector,
        }
    }

    /// Invokes the function with `event`; returns its answer and the one Message it published.
    async fn publish(&self, event: Value) -> (Value, Value) {
        let answer = self
            .api
            .invoke(event.clone())
            .await
            .unwrap_or_else(|error| panic!("{error}: {event:.300}"));
        let [body] = self
            .capture
            .receive(1, RECEIVE_TIMEOUT)
            .await
            .try_into()
            .expect("one Message");
        (
            answer,
            serde_json::from_str(&body).expect("a Message is JSON"),
        )
    }

    fn finish(self) -> String {
        let output = self.process.stop();
        assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
        assert_no_secrets(
            "moto's log",
            &self.moto.output(),
            &[DUMMY_SECRET_ACCESS_KEY],
        );
        output
    }
}

fn field<'a>(message: &'a Value, label: &str) -> Option<&'a str> {
    message["fields"]
        .as_array()?
        .iter()
        .find(|f| f["key"] == label)
        .and_then(|f| f["value"].as_str())
}

fn tag_values<'a>(message: &'a Value, key: &str) -> Vec<&'a str> {
    message["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|tag| tag["key"] == key)
        .filter_map(|tag| tag["value"].as_str())
        .collect()
}

#[tokio::test]
async fn every_sample_event_is_published_as_the_message_of_its_kind() {
    let source = Source::start().await;
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for (name, text) in EVENTBRIDGE_SAMPLES {
        let event: Value = serde_json::from_str(text).unwrap();
        let (answer, message) = source.publish(event.clone()).await;
        assert_eq!(answer["published"], 1, "{name}: {answer}");
        assert_eq!(answer["detailType"], event["detail-type"], "{name}");
        let subject = message["subject"].as_str().unwrap();
        let keys: Vec<&str> = message
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["subject", "fields", "metadata", "tags"], "{name}");
        assert_eq!(
            tag_values(&message, "digest-group").len(),
            1,
            "{name}: {message}"
        );
        let detail = &event["detail"];
        let kind = name.split('-').next().unwrap();
        *kinds.entry(kind).or_default() += 1;
        match kind {
            "api" => {
                let record = detail.to_string();
                let view = RecordView::parse(&record).unwrap();
                let expected = message_json_from_record(&view, &source.detector.detect(&view))
                    .expect("the sample records have fields");
                assert_eq!(
                    message,
                    serde_json::from_str::<Value>(&expected).unwrap(),
                    "{name}"
                );
            }
            "console" => {
                let root = detail["userIdentity"]["type"] == "Root";
                let failed = detail["responseElements"]["ConsoleLogin"] != "Success";
                let without_mfa = detail["additionalEventData"]["MFAUsed"] == "No";
                let lower = subject.to_lowercase();
                assert_eq!(lower.contains("root"), root, "{name}: {subject}");
                assert_eq!(lower.starts_with("failed"), failed, "{name}: {subject}");
                assert_eq!(
                    lower.contains("without mfa"),
                    without_mfa && !failed,
                    "{name}: {subject}"
                );
                assert_eq!(
                    field(&message, "Source IP"),
                    detail["sourceIPAddress"].as_str(),
                    "{name}"
                );
            }
            "guardduty" => {
                let severity = detail["severity"].as_f64().unwrap();
                let label = match severity {
                    s if s >= 9.0 => "Critical",
                    s if s >= 7.0 => "High",
                    s if s >= 4.0 => "Medium",
                    _ => "Low",
                };
                assert!(subject.contains(label), "{name}: {subject}");
                assert!(
                    subject.contains(detail["title"].as_str().unwrap()),
                    "{name}: {subject}"
                );
                assert_eq!(
                    field(&message, "Finding Type"),
                    detail["type"].as_str(),
                    "{name}"
                );
                assert_eq!(
                    field(&message, "Account"),
                    detail["accountId"].as_str(),
                    "{name}"
                );
                assert_eq!(
                    field(&message, "Resource").is_some(),
                    detail["resource"]["resourceType"].is_string(),
                    "{name}: {message}"
                );
                let link = field(&message, source_eventbridge::guardduty::CONSOLE_LINK_LABEL)
                    .unwrap_or_else(|| panic!("{name}: no link to the finding: {message}"));
                assert!(
                    link.contains(detail["id"].as_str().unwrap()),
                    "{name}: {link}"
                );
            }
            _ => {
                assert!(
                    subject.contains(event["detail-type"].as_str().unwrap()),
                    "{name}: {subject}"
                );
                let text = message.to_string();
                for part in ["source", "account", "region"] {
                    assert!(
                        text.contains(event[part].as_str().unwrap()),
                        "{name}: {part}"
                    );
                }
            }
        }
    }
    assert_eq!(
        kinds.keys().copied().collect::<Vec<_>>(),
        ["api", "console", "guardduty", "other"]
    );
    source.finish();
}

#[tokio::test]
async fn a_malformed_event_fails_the_invocation_and_an_unreadable_detail_is_still_published() {
    let source = Source::start().await;
    let not_an_event = json!({"awslogs": {"data": "H4sI"}});
    let error = source
        .api
        .invoke(not_an_event)
        .await
        .expect_err("must fail");
    assert!(!error.during_init, "{error}");
    assert_eq!(error.error_type, "UnrecognisedEvent", "{error}");
    assert!(
        error.error_message.contains("not an EventBridge event"),
        "{error}"
    );

    assert!(source.process.is_running());
    source.capture.assert_quiet(Duration::from_secs(1)).await;

    // An event whose detail is not what its detail-type carries is still an alert.
    let mut bad_detail: Value = serde_json::from_str(EVENTBRIDGE_SAMPLES[0].1).unwrap();
    bad_detail["detail-type"] = json!("GuardDuty Finding");
    bad_detail["detail"] = json!({"title": "no severity"});
    let (answer, message) = source.publish(bad_detail).await;
    assert_eq!(answer["published"], 1);
    let problem = field(&message, "Problem").unwrap();
    assert!(
        problem.starts_with("not read as a \"GuardDuty Finding\" event:"),
        "{problem}"
    );
    source.finish();
}

#[tokio::test]
async fn a_missing_topic_fails_the_invocation() {
    let moto = MotoServer::start();
    let api = RuntimeApi::start();
    let mut env = moto.lambda_env();
    env.push((
        "SNS_TOPIC".to_owned(),
        "arn:aws:sns:us-east-1:123456789012:no-such-topic".to_owned(),
    ));
    let process = LambdaProcess::spawn(BINARY, &api, env);
    let error = api
        .invoke(serde_json::from_str(EVENTBRIDGE_SAMPLES[0].1).unwrap())
        .await
        .expect_err("publishing to a missing topic must fail");
    assert_eq!(error.error_type, "PublishFailed", "{error}");
    assert!(error.error_message.contains("NotFound"), "{error}");
    drop(process);
}

/// Crafted details (a lone surrogate escape, nesting past serde_json's limit) as EventBridge
/// would deliver them: each event is still published, as a Message every reader takes back.
#[tokio::test]
async fn crafted_details_are_published_and_read_back() {
    let source = Source::start().await;
    let envelope = |detail_type: &str, detail: &str| {
        format!(
            r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"{detail_type}","source":"aws.iam","account":"111122223333","time":"2024-06-02T20:16:32Z","region":"us-east-1","resources":[],"detail":{detail}}}"#
        )
    };
    let deep = format!("{}0{}", "[".repeat(300), "]".repeat(300));
    for poison in test_world::payloads::poison_records() {
        let answer = source
            .api
            .invoke_text(envelope("AWS API Call via CloudTrail", &poison))
            .await
            .expect("published");
        assert_eq!(answer["published"], 1, "{answer}");
    }
    for (detail_type, detail) in [
        (
            "AWS Console Sign In via CloudTrail",
            r#"{"userIdentity":{"type":"IAMUser"},"responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"\ud800"}"#.to_owned(),
        ),
        (
            "GuardDuty Finding",
            format!(r#"{{"severity":8,"d":{deep}}}"#),
        ),
        ("Custom Event", deep.clone()),
    ] {
        let answer = source
            .api
            .invoke_text(envelope(detail_type, &detail))
            .await
            .unwrap_or_else(|error| panic!("{detail_type}: {error}"));
        assert_eq!(answer["published"], 1, "{detail_type}: {answer}");
    }
    let bodies = source.capture.receive(6, RECEIVE_TIMEOUT).await;
    for body in &bodies {
        activity_aware_message::Message::from_json(body)
            .unwrap_or_else(|error| panic!("{error}: {body:.300}"));
    }
    source.finish();
}

/// Tampering with the stack's own parts is critical, said in seconds, whatever form names them;
/// the same change made by CloudFormation to the stack's own part (the stack's own update) is
/// expected, and info. The catalogue's examples are of account 111122223333, the stack's here is
/// moto's.
#[tokio::test]
async fn tampering_with_the_stack_itself_is_critical() {
    const MOTO: &str = "123456789012";
    let key = format!("arn:aws:kms:us-east-1:{MOTO}:key/0f0e0d0c-0000-4000-8000-000000000001");
    let operations = format!("arn:aws:sns:us-east-1:{MOTO}:ids-OperationsTopic-1");
    let stack = [
        ("STACK_NAME", "ids"),
        ("STACK_KEY_ARN", key.as_str()),
        ("CLOUDTRAIL_LOG_GROUP", "CloudTrail/DefaultLogGroup"),
        ("OPERATIONS_TOPIC_ARN", operations.as_str()),
    ];
    let source = Source::start_with(&stack).await;
    let catalogue = source.detector.catalogue();
    let detections = [
        "ids-key-tampered",
        "ids-cloudtrail-feed-cut",
        "ids-rules-tampered",
        "ids-functions-tampered",
        "ids-queues-tampered",
        "ids-alarms-tampered",
        "ids-stack-deleted",
    ];
    for id in detections {
        let detection = catalogue.detection(id).unwrap();
        for example in &detection.examples.alert {
            let example: Value =
                serde_json::from_str(&example.to_string().replace("111122223333", MOTO)).unwrap();
            let mut event = catalogue.example_event(&example);
            event["id"] = json!("6a7e8feb-b491-4cf7-a9f1-bf3703467718");
            event["account"] = json!("111122223333");
            let (answer, message) = source.publish(event.clone()).await;
            assert_eq!(answer["published"], 1, "{id}");
            assert_eq!(tag_values(&message, "detection"), [id], "{message}");
            assert_eq!(tag_values(&message, "severity"), ["critical"], "{id}");
            assert_eq!(field(&message, "Detection"), Some(detection.title.as_str()));
            // The same call made by CloudFormation for someone: expected, info, and saying so.
            event["detail"]["userIdentity"]["invokedBy"] = json!("cloudformation.amazonaws.com");
            let (_, expected) = source.publish(event.clone()).await;
            assert_eq!(tag_values(&expected, "severity"), ["info"], "{id}");
            assert!(
                field(&expected, "Expected")
                    .unwrap()
                    .contains("CloudFormation"),
                "{expected}"
            );
        }
    }
    // Any other stack's change is no update of this one: an intruder's stack stopping the
    // trail is as critical as the intruder doing it by hand.
    let stopped = catalogue.detection("cloudtrail-stopped").unwrap();
    let mut event = catalogue.example_event(&stopped.examples.alert[0]);
    event["id"] = json!("6a7e8feb-b491-4cf7-a9f1-bf3703467719");
    event["detail"]["userIdentity"]["invokedBy"] = json!("cloudformation.amazonaws.com");
    let (_, message) = source.publish(event).await;
    assert_eq!(tag_values(&message, "severity"), ["critical"], "{message}");
    assert_eq!(field(&message, "Expected"), None);
    source.finish();
}

/// A key with no rights calling LeaveOrganization in a loop: its first attempt is told high,
/// the rest low, so the priority lane (the template's filter policy, as SNS applies it) takes
/// one of them, and the real StopLogging among them goes straight through.
#[tokio::test]
async fn a_flood_of_failed_attempts_never_buries_a_success_in_the_priority_lane() {
    let source = Source::start().await;
    let (_, priority_policy) = test_world::template::lane_filter_policies();
    let priority = source
        .moto
        .capture_queue_filtered(&source.topic, Some(&priority_policy))
        .await;
    let catalogue = source.detector.catalogue();
    let leave = catalogue.detection("organization-left").unwrap();
    let stopped = catalogue.detection("cloudtrail-stopped").unwrap();
    for i in 0..30 {
        let mut event = catalogue.example_event(&leave.examples.attempt[0]);
        event["id"] = json!(format!("6a7e8feb-b491-4cf7-a9f1-{i:012}"));
        event["detail"]["eventID"] = json!(format!("attempt-{i}"));
        let (_, message) = source.publish(event).await;
        let severity = if i == 0 { "high" } else { "low" };
        assert_eq!(tag_values(&message, "severity"), [severity], "attempt {i}");
        assert_eq!(tag_values(&message, "detection"), ["organization-left"]);
        if i == 0 {
            assert!(
                field(&message, "Detection")
                    .unwrap()
                    .starts_with("Attempted: "),
                "{message}"
            );
        }
    }
    let mut event = catalogue.example_event(&stopped.examples.alert[0]);
    event["id"] = json!("6a7e8feb-b491-4cf7-a9f1-bf3703467799");
    source.publish(event).await;
    let mut lane: Vec<Value> = priority
        .receive(2, RECEIVE_TIMEOUT)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    priority.assert_quiet(Duration::from_secs(1)).await;
    lane.sort_by_key(|m| tag_values(m, "severity").concat());
    assert_eq!(tag_values(&lane[0], "detection"), ["cloudtrail-stopped"]);
    assert_eq!(tag_values(&lane[1], "detection"), ["organization-left"]);
    source.finish();
}

/// The heartbeat's canary call, as EventBridge delivers it, is a signed heartbeat leg, never an
/// alert; the same call by anyone else is what it is.
#[tokio::test]
async fn the_heartbeats_canary_call_is_a_signed_leg_and_nothing_else() {
    let moto = MotoServer::start();
    let key = moto.create_kms_hmac_key().await;
    let vars = [
        ("STACK_NAME", "ids"),
        (
            "HEARTBEAT_ROLE_ARN",
            "arn:aws:iam::111122223333:role/ids-SourceHeartbeatRole-H1",
        ),
        ("HEARTBEAT_KEY_ARN", key.as_str()),
    ];
    let source = Source::start_in(moto, &vars).await;
    let record = json!({
        "eventVersion": "1.09", "eventTime": "2026-12-03T10:00:00Z", "eventSource": "ssm.amazonaws.com",
        "eventName": "PutParameter", "awsRegion": "us-east-1", "sourceIPAddress": "54.1.2.3",
        "errorCode": "AccessDenied", "errorMessage": "explicit deny", "eventID": "canary-1",
        "requestParameters": {"name": "/activity-aware-ids/ids/heartbeat", "type": "String", "overwrite": true},
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/ids-SourceHeartbeatRole-H1/ids-SourceHeartbeatLambda-X",
            "accountId": "111122223333", "principalId": "AROAHB:ids-SourceHeartbeatLambda-X", "accessKeyId": "ASIAHEARTBEAT0000001",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ids-SourceHeartbeatRole-H1",
                "arn": "arn:aws:iam::111122223333:role/ids-SourceHeartbeatRole-H1"}}}
    });
    let (_, leg) = source
        .publish(test_world::events::eventbridge_api_call(&record))
        .await;
    assert_eq!(leg["subject"], "Heartbeat through the EventBridge source");
    assert_eq!(tag_values(&leg, "heartbeat-path"), ["eventbridge"]);
    assert_eq!(tag_values(&leg, "detection"), Vec::<&str>::new());
    let [mac] = tag_values(&leg, "heartbeat-mac")[..] else {
        panic!("signed: {leg}")
    };
    let covered = activity_aware_message::heartbeat_mac_text(
        "ids",
        "eventbridge",
        "canary-1",
        "2026-12-03T10:00:00Z",
    );
    assert!(source.moto.kms_verify_mac(&key, &covered, mac).await);
    // Anyone else writing the same parameter: a denial like any other.
    let mut other = record.clone();
    other["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] = json!("PowerUser");
    other["eventID"] = json!("canary-2");
    let (_, denial) = source
        .publish(test_world::events::eventbridge_api_call(&other))
        .await;
    assert_eq!(tag_values(&denial, "heartbeat-path"), Vec::<&str>::new());
    assert_eq!(tag_values(&denial, "detection"), ["access-denied"]);
    source.finish();
}

/// One of the stack's own alarms going off reaches Slack too, high, saying what to do.
#[tokio::test]
async fn the_stacks_alarms_are_posted_high() {
    let source = Source::start().await;
    let alarm = json!({
        "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:cloudwatch:us-east-1:111122223333:alarm:ids-HeartbeatMissing"],
        "detail": {"alarmName": "ids-HeartbeatMissing",
            "state": {"value": "ALARM", "reason": "Threshold Crossed: no datapoints were received for 25 periods", "timestamp": "2026-01-01T00:00:00.000+0000"},
            "previousState": {"value": "OK"},
            "configuration": {"description": "No heartbeat has reached Slack for longer than HeartbeatHours."}}
    });
    let (answer, message) = source.publish(alarm).await;
    assert_eq!(answer["published"], 1);
    assert_eq!(
        message["subject"],
        "Alarm ids-HeartbeatMissing: No heartbeat has reached Slack for longer than HeartbeatHours."
    );
    assert_eq!(tag_values(&message, "severity"), ["high"]);
    assert_eq!(tag_values(&message, "detection"), ["stack-alarm"]);
    source.finish();
}

/// The handler with a Config read as at start (the stack drops expected changes): a tampering
/// call is published critical, the same call made by CloudFormation is dropped, and an event
/// that is no EventBridge event is refused as such.
#[tokio::test]
async fn the_handler_in_process_publishes_tampering_and_drops_what_is_expected() {
    use activity_aware_message::MessagePublisher;
    use serde_json::value::RawValue;
    use source_eventbridge::{Config, handle};

    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-topic").await;
    let capture = moto.capture_queue(&topic).await;
    let variables = [("STACK_NAME", "ids"), ("EXPECTED_CHANGES", "drop")];
    let config = Config::from_lookup(|name| {
        (name == "SNS_TOPIC").then(|| topic.clone()).or_else(|| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    })
    .expect("the source's settings");
    let publisher = MessagePublisher::new(
        aws_sdk_sns::Client::new(&moto.sdk_config().await),
        config.topic_arn.clone(),
    );
    let raw = |event: &Value| RawValue::from_string(event.to_string()).unwrap();

    let catalogue = config.detector.catalogue();
    let detection = catalogue.detection("ids-stack-deleted").unwrap();
    let mut event = catalogue.example_event(&detection.examples.alert[0]);
    event["id"] = json!("6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    event["account"] = json!("111122223333");
    let summary = handle(
        &publisher,
        &config.detector,
        &BeforePublishing::default(),
        raw(&event),
    )
    .await
    .expect("published");
    assert_eq!(
        (summary.published, summary.dropped),
        (1, false),
        "{summary:?}"
    );
    let [body] = capture
        .receive(1, RECEIVE_TIMEOUT)
        .await
        .try_into()
        .expect("one Message");
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tag_values(&message, "detection"), ["ids-stack-deleted"]);
    assert_eq!(tag_values(&message, "severity"), ["critical"]);

    event["detail"]["userIdentity"]["invokedBy"] = json!("cloudformation.amazonaws.com");
    let summary = handle(
        &publisher,
        &config.detector,
        &BeforePublishing::default(),
        raw(&event),
    )
    .await
    .expect("dropped");
    assert_eq!(
        (summary.published, summary.dropped),
        (0, true),
        "{summary:?}"
    );

    let error = handle(
        &publisher,
        &config.detector,
        &BeforePublishing::default(),
        raw(&json!({"awslogs": {"data": "H4sI"}})),
    )
    .await
    .expect_err("not an EventBridge event");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "UnrecognisedEvent");
    assert!(
        diagnostic
            .error_message
            .contains("not an EventBridge event"),
        "{}",
        diagnostic.error_message
    );
    capture.assert_quiet(Duration::from_secs(1)).await;
}

/// A routine change through the real binary and moto's DynamoDB: posted the first time its
/// principal makes it, told for the record (info, saying why) the next; made by Terraform, told
/// for the record at once; with no table to ask, posted.
#[tokio::test]
async fn a_routine_change_is_news_once_then_told_for_the_record() {
    let moto = MotoServer::start();
    let table = moto.create_familiarity_table("ids-familiarity").await;
    let source = Source::start_in(moto, &[("FAMILIARITY_TABLE", &table)]).await;
    // Each change its own call, with its own event ID (one event is told once, see below).
    let calls = std::sync::atomic::AtomicU32::new(0);
    let change = |agent: &str| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({"version": "0", "id": "5b1c2d3e-0000-4000-8000-00000000000a",
            "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
            "account": "111122223333", "time": "2026-12-01T10:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {
                "eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
                "eventName": "CreateSecurityGroup", "awsRegion": "eu-west-1",
                "eventTime": "2026-12-01T10:00:00Z", "recipientAccountId": "111122223333",
                "sourceIPAddress": "203.0.113.9", "userAgent": agent,
                "eventID": format!("5b1c2d3e-0000-4000-8000-{call:012}"),
                "requestParameters": {"groupName": "web", "groupDescription": "web"},
                "userIdentity": {"type": "IAMUser", "userName": "alice",
                    "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"}}})
    };
    let (answer, first) = source.publish(change("aws-cli/2.15.0")).await;
    assert_eq!(answer["published"], 1, "{answer}");
    assert_eq!(tag_values(&first, "detection"), ["security-group-changed"]);
    assert_eq!(tag_values(&first, "severity"), ["low"]);
    assert_eq!(field(&first, "Routine"), None);

    let (_, again) = source.publish(change("aws-cli/2.15.0")).await;
    assert_eq!(tag_values(&again, "severity"), ["info"]);
    let routine = field(&again, "Routine").expect("says why it is told for the record");
    assert!(
        routine.contains("made before") && routine.contains("90 days"),
        "{routine}"
    );

    let (_, by_code) = source
        .publish(change(
            "APN/1.0 HashiCorp/1.0 Terraform/1.6.2 (+https://www.terraform.io)",
        ))
        .await;
    assert_eq!(tag_values(&by_code, "severity"), ["info"]);
    assert!(
        field(&by_code, "Routine")
            .unwrap()
            .contains("made by Terraform")
    );
    source.finish();

    // The table cannot be asked: the change is posted as news, and the invocation succeeds.
    let source = Source::start_with(&[("FAMILIARITY_TABLE", "no-such-table")]).await;
    let (answer, posted) = source.publish(change("aws-cli/2.15.0")).await;
    assert_eq!(answer["published"], 1, "{answer}");
    assert_eq!(tag_values(&posted, "severity"), ["low"]);
    let output = source.finish();
    assert!(output.contains("memory could not be asked"), "{output}");
}

/// The organisation's paths through the real binary and moto's DynamoDB: a member stack's
/// liveness event is remembered and publishes nothing; one GuardDuty finding that reaches the
/// stack twice (the member account's and its administrator's) is posted once; a scheduled
/// event of another rule is no liveness.
#[tokio::test]
async fn liveness_is_remembered_and_one_finding_is_posted_once() {
    let moto = MotoServer::start();
    let table = moto.create_familiarity_table("ids-familiarity").await;
    let aws = moto.sdk_config().await;
    let source = Source::start_in(
        moto,
        &[("FAMILIARITY_TABLE", &table), ("STACK_NAME", "ids")],
    )
    .await;
    let scheduled = |rule: &str| {
        json!({"version": "0", "id": "0e4f0b1c-0000-4000-8000-000000000001",
            "detail-type": "Scheduled Event", "source": "aws.events", "account": "777788889999",
            "time": "2026-12-07T10:00:00Z", "region": "sa-east-1",
            "resources": [format!("arn:aws:events:sa-east-1:777788889999:rule/{rule}")], "detail": {}})
    };
    let answer = source.api.invoke(scheduled("ids-liveness")).await.unwrap();
    assert_eq!(
        (answer["published"].clone(), answer["liveness"].clone()),
        (json!(0), json!("777788889999 sa-east-1"))
    );
    let memory = activity_aware_memory::Memory::new(&aws, &table).unwrap();
    let items = memory
        .items("coverage\u{1f}", activity_aware_memory::now_s())
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].key, "coverage\u{1f}777788889999\u{1f}sa-east-1");
    // Another stack's liveness rule, or any other schedule, is not this stack's coverage.
    for other in ["other-liveness", "ids-liveness-backup", "nightly"] {
        let answer = source.api.invoke(scheduled(other)).await.unwrap();
        assert_eq!(answer["liveness"], Value::Null, "{other}");
        assert_eq!(answer["published"], 0, "{other}");
    }

    let finding =
        test_world::payloads::eventbridge_sample("guardduty-iam-privilege-escalation-high");
    let (answer, posted) = source.publish(finding.clone()).await;
    assert_eq!(answer["published"], 1, "{answer}");
    assert!(
        posted["subject"]
            .as_str()
            .unwrap()
            .starts_with("GuardDuty finding")
    );
    // The same finding again (its administrator's copy): told already.
    let again = source.api.invoke(finding).await.unwrap();
    assert_eq!(again["published"], 0, "{again}");
    source.capture.assert_quiet(Duration::from_secs(2)).await;
    source.finish();
}
