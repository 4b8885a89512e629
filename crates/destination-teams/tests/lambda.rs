//! The real `destination-teams` binary, run through a local Lambda Runtime API, decrypting its
//! webhook URL with moto's KMS and posting to a local HTTPS stand-in for a Teams Workflows
//! webhook whose throwaway CA it trusts through SSL_CERT_FILE.

use std::time::Duration;

use destination_teams::{MAX_REQUEST_BYTES, WEBHOOK_ENCRYPTION_CONTEXT};
use serde_json::{Value, json};
use test_world::destinations::{DestinationBinary, DestinationWorld, env_of, failed_ids};
use test_world::{RuntimeApiOptions, SlackAnswer, SlackSink, adaptive_cards};

const TEAMS: DestinationBinary<'static> = DestinationBinary {
    binary: env!("CARGO_BIN_EXE_destination-teams"),
    secret_variable: "TEAMS_WEBHOOK_URL",
    encryption_context: &WEBHOOK_ENCRYPTION_CONTEXT,
};

/// A Workflows webhook URL on the stand-in: its `sig=` is the sink's secret.
fn workflow_url(sink: &SlackSink) -> String {
    sink.url(&format!(
        "/workflows/0123abcd/triggers/manual/paths/invoke?api-version=1&sig={}",
        sink.secret()
    ))
}

async fn start(env: &[(&str, &str)]) -> DestinationWorld {
    let env = env_of(env);
    DestinationWorld::start(TEAMS, workflow_url, RuntimeApiOptions::default(), |_| env).await
}

fn message(subject: &str, severity: &str, group: Option<&str>) -> String {
    let mut tags = vec![json!({"key": "severity", "value": severity})];
    if let Some(group) = group {
        tags.push(json!({"key": "digest-group", "value": group}));
    }
    json!({
        "subject": subject,
        "fields": [
            {"key": "Event", "value": subject},
            {"key": "Source", "value": "iam.amazonaws.com"},
            {"key": "Error Code", "value": "AccessDenied"},
            {"key": "Username", "value": format!("mallory-{subject}")},
            {"key": "Request Parameters", "value": {"userName": subject}},
            {"key": "CloudTrail Console", "value": "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1"},
        ],
        "metadata": {"sourceName": "Cloudtrail"},
        "tags": tags,
    })
    .to_string()
}

/// The value of the card's fact `name` (`Count: `): the run after the bold one.
fn fact(body: &Value, name: &str) -> String {
    body["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["inlines"][0]["text"] == name)
        .and_then(|block| block["inlines"][1]["text"].as_str())
        .unwrap_or_else(|| panic!("no fact {name:?} in {body}"))
        .to_owned()
}

#[tokio::test]
async fn a_card_per_group_each_valid_against_the_published_schema() {
    let teams = start(&[]).await;
    let mut batch: Vec<String> = (0..5)
        .map(|i| message(&format!("ListUsers{i}"), "low", Some("mallory")))
        .collect();
    batch.push(message("StopLogging", "critical", None));
    let answer = teams.invoke_batch(&batch).await.expect("delivered");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let posts = teams.sink.accepted();
    assert_eq!(posts.len(), 2, "one digest, one alone");
    for post in &posts {
        assert_eq!(post.method, "POST");
        assert!(post.path.contains("sig="), "{}", post.path);
        assert!(post.body.len() <= MAX_REQUEST_BYTES);
        adaptive_cards::assert_valid(&post.body_json());
    }
    // The critical one first, then the digest of five.
    let first = posts[0].body_json().to_string();
    assert!(
        first.contains("[Critical] mallory-StopLogging was denied"),
        "{first}"
    );
    let digest = posts[1].body_json().to_string();
    assert!(digest.contains("\"Count: \""), "{digest}");
    assert!(digest.contains("\"5\""), "{digest}");
    teams.finish();
}

#[tokio::test]
async fn a_flood_becomes_a_card_per_group_at_teams_pace() {
    let teams = start(&[]).await;
    let batch: Vec<String> = (0..300)
        .map(|i| {
            message(
                &format!("Call{i}"),
                "low",
                Some(&format!("principal-{}", i % 12)),
            )
        })
        .collect();
    let answer = teams.invoke_batch(&batch).await.expect("delivered");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let posts = teams.sink.accepted();
    assert_eq!(posts.len(), 12);
    // Never more than 4 requests within any second.
    for (i, post) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|later| {
                later.received_at.duration_since(post.received_at) < Duration::from_secs(1)
            })
            .count();
        assert!(within <= 4, "{within} requests within a second");
    }
    let counted: usize = posts
        .iter()
        .map(|post| fact(&post.body_json(), "Count: ").parse::<usize>().unwrap())
        .sum();
    assert_eq!(counted, 300, "every Message counted");
    teams.finish();
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_a_5xx_is_retried() {
    let teams = start(&[]).await;
    teams.sink.respond_with(vec![
        SlackAnswer::status(429, "").with_retry_after("2"),
        SlackAnswer::status(502, "bad gateway"),
        SlackAnswer::status(202, ""),
    ]);
    let answer = teams
        .invoke_batch(&[message("ListUsers", "high", None)])
        .await
        .expect("delivered in the end");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let requests = teams.sink.requests();
    assert_eq!(requests.len(), 3);
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].received_at);
    assert!(waited >= Duration::from_millis(1_900), "waited {waited:?}");
    teams.finish();
}

#[tokio::test]
async fn a_revoked_webhook_fails_loud_and_is_not_tried_again() {
    let teams = start(&[]).await;
    teams
        .sink
        .respond_with(vec![SlackAnswer::status(404, "workflow not found"); 5]);
    let batch = [
        message("ListUsers", "high", None),
        message("ListRoles", "medium", None),
    ];
    let error = teams
        .invoke_batch(&batch)
        .await
        .expect_err("nothing delivered");
    assert_eq!(error.error_type, "NotDelivered");
    assert!(
        error
            .to_string()
            .contains("Teams refused the message with 404 Not Found"),
        "{error}"
    );
    assert_eq!(teams.sink.requests().len(), 1, "the second is not tried");
    teams.finish();
}

#[tokio::test]
async fn below_the_minimum_severity_nothing_is_posted_and_nothing_comes_back() {
    let teams = start(&[("MINIMUM_SEVERITY", "high")]).await;
    let batch = [
        message("ListUsers", "low", None),
        message("StopLogging", "critical", None),
    ];
    let answer = teams.invoke_batch(&batch).await.expect("delivered");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let posts = teams.sink.accepted();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body_text().contains("StopLogging"));
    teams.finish();
}

#[tokio::test]
async fn a_webhook_url_that_is_not_https_is_refused_without_showing_it() {
    let http_url = |sink: &SlackSink| workflow_url(sink).replace("https://", "http://");
    let teams =
        DestinationWorld::start(TEAMS, http_url, RuntimeApiOptions::default(), |_| vec![]).await;
    let error = teams
        .invoke_batch(&[message("ListUsers", "high", None)])
        .await
        .expect_err("refused");
    assert_eq!(error.error_type, "Configuration");
    assert!(
        error
            .to_string()
            .contains("the decrypted TEAMS_WEBHOOK_URL must start with https://"),
        "{error}"
    );
    assert!(teams.sink.requests().is_empty());
    teams.finish();
}

#[tokio::test]
async fn the_handler_in_process_posts_what_meets_the_minimum_and_refuses_a_foreign_ciphertext() {
    use activity_aware_delivery::AccountNames;
    use activity_aware_message::Severity;
    use destination_teams::{Config, DEFAULT_PACE, Destination};
    use lambda_runtime::{Context, LambdaEvent};

    let moto = test_world::MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let config = |ciphertext: String| Config {
        encrypted_webhook_url: ciphertext,
        pace: DEFAULT_PACE,
        accounts: AccountNames::default(),
        minimum_severity: Severity::High,
    };
    let ciphertext = moto
        .kms_encrypt(&key, &workflow_url(&sink), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    let teams = Destination::new(config(ciphertext), kms.clone(), sink.trusting_client());
    let event = test_world::events::sqs_event(&[
        message("StopLogging", "critical", None),
        message("ListUsers", "low", None),
    ]);
    let answer = teams
        .handle(LambdaEvent::new(event.clone().into(), Context::default()))
        .await
        .expect("posted");
    assert_eq!(
        serde_json::to_value(answer).unwrap(),
        json!({"batchItemFailures": []})
    );
    let cards = sink.accepted();
    assert_eq!(cards.len(), 1, "the low Message is below the minimum");
    adaptive_cards::assert_valid(&cards[0].body_json());

    // The URL encrypted for another purpose (the Slack webhook's) does not decrypt here.
    let foreign = moto
        .kms_encrypt(
            &key,
            &workflow_url(&sink),
            &[("purpose", "activity-aware-ids/slack-webhook-url")],
        )
        .await;
    let error = Destination::new(config(foreign), kms, sink.trusting_client())
        .handle(LambdaEvent::new(event.into(), Context::default()))
        .await
        .expect_err("no webhook");
    assert!(
        error
            .to_string()
            .starts_with("KMS could not decrypt TEAMS_WEBHOOK_URL: "),
        "{error}"
    );
    assert!(!error.to_string().contains(sink.secret()));
    assert_eq!(sink.accepted().len(), 1);
}
