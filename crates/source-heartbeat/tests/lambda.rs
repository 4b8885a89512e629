//! The real `source-heartbeat` binary, run through a local Lambda Runtime API against moto
//! (SNS, SQS, CloudWatch): what it publishes is read back from an SQS queue subscribed to the
//! topic.

use std::time::Duration;

use serde_json::{Value, json};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, MotoServer, RuntimeApi, assert_no_secrets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_source-heartbeat");

fn tag<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    message["tags"]
        .as_array()?
        .iter()
        .find(|tag| tag["key"] == key)
        .and_then(|tag| tag["value"].as_str())
}

#[tokio::test]
async fn a_heartbeat_says_how_the_pipeline_is_and_what_waits_where() {
    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-SNSTopic").await;
    let capture = moto.capture_queue(&topic).await;
    let quiet = moto
        .create_queue("ids-SourceEventbridgeFailureQueue", Duration::from_secs(30))
        .await;
    let waiting = moto
        .create_queue("ids-DestinationSlackFailureQueue", Duration::from_secs(30))
        .await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    for number in 0..3 {
        sqs.send_message()
            .queue_url(&waiting.url)
            .message_body(format!(
                "{{\"subject\": \"kept {number}\", \"fields\": []}}"
            ))
            .send()
            .await
            .unwrap();
    }
    let api = RuntimeApi::start();
    let mut env = moto.lambda_env();
    env.push(("SNS_TOPIC".into(), topic));
    env.push(("STACK_NAME".into(), "ids".into()));
    env.push((
        "FAILURE_QUEUE_URLS".into(),
        format!(
            "source-eventbridge={},destination-slack={}",
            quiet.url, waiting.url
        ),
    ));
    let process = LambdaProcess::spawn(BINARY, &api, env);
    let scheduled = json!({"version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let answer = api.invoke(scheduled.clone()).await.expect("published");
    assert_eq!(
        answer,
        json!({"healthy": false, "waiting": 3, "published": 1})
    );
    let [body] = capture
        .receive(1, Duration::from_secs(30))
        .await
        .try_into()
        .expect("one heartbeat");
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        message["subject"],
        "Pipeline needs attention: 0 Messages in the last 24 h, 3 waiting in failure queues"
    );
    assert_eq!(tag(&message, "heartbeat"), Some("ids"));
    assert_eq!(tag(&message, "severity"), Some("high"));
    activity_aware_message::Message::from_json(&body).expect("a Message");

    // Drained: healthy, and info.
    sqs.purge_queue()
        .queue_url(&waiting.url)
        .send()
        .await
        .unwrap();
    let answer = api.invoke(scheduled).await.expect("published");
    assert_eq!(answer["healthy"], true, "{answer}");
    let [body] = capture
        .receive(1, Duration::from_secs(30))
        .await
        .try_into()
        .expect("one heartbeat");
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tag(&message, "severity"), Some("info"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with("Pipeline healthy: ")
    );
    let output = process.stop();
    assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
}
