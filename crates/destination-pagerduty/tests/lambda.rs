//! The real `destination-pagerduty` binary, run through a local Lambda Runtime API, decrypting
//! its routing key with moto's KMS and sending to a local HTTPS stand-in for PagerDuty's Events
//! API (PAGERDUTY_EVENTS_URL) whose throwaway CA it trusts through SSL_CERT_FILE.

use std::time::Duration;

use destination_pagerduty::ROUTING_KEY_ENCRYPTION_CONTEXT;
use serde_json::{Value, json};
use test_world::destinations::{DestinationBinary, DestinationWorld, env_of, failed_ids};
use test_world::{RuntimeApiOptions, SlackAnswer, SlackSink};

const PAGERDUTY: DestinationBinary<'static> = DestinationBinary {
    binary: env!("CARGO_BIN_EXE_destination-pagerduty"),
    secret_variable: "PAGERDUTY_ROUTING_KEY",
    encryption_context: &ROUTING_KEY_ENCRYPTION_CONTEXT,
};

/// The routing key is the sink's distinctive secret, so that any leak of it is found.
fn routing_key(sink: &SlackSink) -> String {
    sink.secret().to_owned()
}

async fn start_with(options: RuntimeApiOptions, env: &[(&str, &str)]) -> DestinationWorld {
    let mut env = env_of(env);
    DestinationWorld::start(PAGERDUTY, routing_key, options, |sink| {
        env.push(("PAGERDUTY_EVENTS_URL".to_owned(), sink.url("/v2/enqueue")));
        env
    })
    .await
}

async fn start(env: &[(&str, &str)]) -> DestinationWorld {
    start_with(RuntimeApiOptions::default(), env).await
}

fn message(subject: &str, severity: &str, group: Option<&str>) -> String {
    let mut tags = vec![
        json!({"key": "severity", "value": severity}),
        json!({"key": "detection", "value": "access-denied"}),
    ];
    if let Some(group) = group {
        tags.push(json!({"key": "digest-group", "value": group}));
    }
    json!({
        "subject": subject,
        "fields": [
            {"key": "Event", "value": subject},
            {"key": "Source", "value": "iam.amazonaws.com"},
            {"key": "Error Code", "value": "AccessDenied"},
            {"key": "Recipient Account ID", "value": "111122223333"},
            {"key": "Username", "value": "mallory"},
            {"key": "CloudTrail Console", "value": "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1"},
        ],
        "metadata": {"sourceName": "Cloudtrail"},
        "tags": tags,
    })
    .to_string()
}

/// What the Events API v2 requires of a trigger, and its limits.
fn assert_is_trigger(event: &Value, key: &str) {
    assert_eq!(event["routing_key"], key);
    assert_eq!(event["event_action"], "trigger");
    let dedup_key = event["dedup_key"].as_str().expect("a dedup_key");
    assert!(!dedup_key.is_empty() && dedup_key.len() <= 255);
    let payload = &event["payload"];
    let summary = payload["summary"].as_str().expect("a summary");
    assert!(!summary.is_empty() && summary.chars().count() <= 1_024);
    assert!(
        payload["source"]
            .as_str()
            .is_some_and(|source| !source.is_empty())
    );
    assert!(
        ["critical", "error", "warning", "info"].contains(&payload["severity"].as_str().unwrap()),
        "{payload}"
    );
    assert!(payload["custom_details"].is_object());
    assert!(serde_json::to_vec(event).unwrap().len() < 512 * 1024);
}

#[tokio::test]
async fn a_probe_is_one_incident_and_only_high_and_above_page() {
    let pagerduty = start(&[]).await;
    let mut batch: Vec<String> = (0..30)
        .map(|i| {
            message(
                &format!("List{i}"),
                "high",
                Some("arn:aws:iam::111122223333:user/mallory"),
            )
        })
        .collect();
    batch.push(message("GetCallerIdentity", "medium", None));
    batch.push(message("StopLogging", "critical", None));
    let answer = pagerduty.invoke_batch(&batch).await.expect("sent");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let events = pagerduty.sink.accepted();
    assert_eq!(
        events.len(),
        2,
        "the probe as one event, the critical one alone, the medium not at all"
    );
    let key = pagerduty.sink.secret().to_owned();
    for request in &events {
        assert_eq!(request.path, "/v2/enqueue");
        assert_is_trigger(&request.body_json(), &key);
    }
    let critical = events[0].body_json();
    assert_eq!(critical["payload"]["severity"], "critical");
    assert_eq!(
        critical["links"][0]["href"],
        "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1"
    );
    let probe = events[1].body_json();
    assert_eq!(probe["payload"]["severity"], "error");
    assert_eq!(probe["payload"]["custom_details"]["Count"], 30);
    assert!(
        probe["payload"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("(×30)")
    );

    // The same probe again is the same incident.
    let again: Vec<String> = (30..35)
        .map(|i| {
            message(
                &format!("List{i}"),
                "high",
                Some("arn:aws:iam::111122223333:user/mallory"),
            )
        })
        .collect();
    pagerduty.invoke_batch(&again).await.expect("sent");
    let later = pagerduty.sink.accepted();
    assert_eq!(later.len(), 3);
    assert_eq!(later[2].body_json()["dedup_key"], probe["dedup_key"]);
    pagerduty.finish();
}

#[tokio::test]
async fn events_go_at_most_two_a_second() {
    let pagerduty = start(&[]).await;
    let batch: Vec<String> = (0..6)
        .map(|i| message(&format!("Call{i}"), "high", Some(&format!("principal-{i}"))))
        .collect();
    pagerduty.invoke_batch(&batch).await.expect("sent");
    let events = pagerduty.sink.accepted();
    assert_eq!(events.len(), 6);
    // One every 500 ms, sustained (a single gap may shrink by the network's jitter).
    let span = events[5].received_at.duration_since(events[0].received_at);
    assert!(span >= Duration::from_millis(2_300), "6 events in {span:?}");
    pagerduty.finish();
}

#[tokio::test]
async fn a_429_is_sent_again_later_never_dropped() {
    // A 429 that outlasts the invocation: the event comes back (a batch item failure), and is
    // sent when PagerDuty takes it again.
    let options = RuntimeApiOptions {
        deadline: Duration::from_secs(6),
        ..RuntimeApiOptions::default()
    };
    let pagerduty = start_with(options, &[]).await;
    pagerduty.sink.respond_with(vec![
        SlackAnswer::status(429, "{\"status\":\"throttle event\"}").with_retry_after("3"),
    ]);
    let batch = [
        message("StopLogging", "critical", None),
        message("DeleteTrail", "critical", None),
    ];
    match pagerduty.invoke_batch(&batch).await {
        Ok(answer) => assert_eq!(failed_ids(&answer), ["message-0", "message-1"]),
        Err(error) => assert_eq!(error.error_type, "NotDelivered", "{error}"),
    }
    assert_eq!(pagerduty.sink.accepted().len(), 0);
    // Redelivered once Retry-After has passed, both go.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answer = pagerduty.invoke_batch(&batch).await.expect("sent");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(pagerduty.sink.accepted().len(), 2);
    pagerduty.finish();
}

#[tokio::test]
async fn a_5xx_is_retried_and_a_400_fails_loud_without_the_key() {
    let pagerduty = start(&[]).await;
    let key = pagerduty.sink.secret().to_owned();
    pagerduty.sink.respond_with(vec![
        SlackAnswer::status(503, ""),
        SlackAnswer::status(202, "{\"status\":\"success\"}"),
        SlackAnswer::status(
            400,
            &format!("{{\"status\":\"invalid event\",\"errors\":[\"routing_key {key} unknown\"]}}"),
        ),
    ]);
    let answer = pagerduty
        .invoke_batch(&[message("StopLogging", "critical", None)])
        .await
        .expect("sent after a retry");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let error = pagerduty
        .invoke_batch(&[message("DeleteTrail", "critical", None)])
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("PagerDuty refused the message with 400 Bad Request"),
        "{error}"
    );
    pagerduty.finish();
}

#[tokio::test]
async fn the_handler_in_process_sends_one_event_a_group_with_the_decrypted_key() {
    use activity_aware_delivery::{AccountNames, SecretUrl};
    use activity_aware_message::Severity;
    use destination_pagerduty::{
        Config, DEFAULT_PACE, Destination, ROUTING_KEY_ENCRYPTION_CONTEXT,
    };
    use lambda_runtime::{Context, LambdaEvent};

    let moto = test_world::MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let routing_key = routing_key(&sink);
    let config = Config {
        encrypted_routing_key: moto
            .kms_encrypt(&key, &routing_key, &ROUTING_KEY_ENCRYPTION_CONTEXT)
            .await,
        events_url: SecretUrl::parse(&sink.url("/v2/enqueue")).unwrap(),
        pace: DEFAULT_PACE,
        accounts: AccountNames::parse("111122223333=prod").unwrap(),
        minimum_severity: Severity::High,
    };
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let pagerduty = Destination::new(config, kms, sink.trusting_client());
    let probe: Vec<String> = (0..5)
        .map(|i| {
            message(
                &format!("List{i}"),
                "high",
                Some("arn:aws:iam::111122223333:user/mallory"),
            )
        })
        .chain([message("GetCallerIdentity", "medium", None)])
        .collect();
    let answer = pagerduty
        .handle(LambdaEvent::new(
            test_world::events::sqs_event(&probe).into(),
            Context::default(),
        ))
        .await
        .expect("sent");
    assert_eq!(
        failed_ids(&serde_json::to_value(answer).unwrap()),
        Vec::<String>::new()
    );
    let events = pagerduty_events(&sink);
    assert_eq!(
        events.len(),
        1,
        "the probe is one event; the medium one does not page"
    );
    assert_is_trigger(&events[0], &routing_key);
    assert_eq!(events[0]["payload"]["custom_details"]["Count"], 5);
    assert_eq!(
        events[0]["payload"]["source"],
        "AWS account prod (111122223333)"
    );
}

fn pagerduty_events(sink: &SlackSink) -> Vec<Value> {
    sink.accepted()
        .iter()
        .map(|request| request.body_json())
        .collect()
}
