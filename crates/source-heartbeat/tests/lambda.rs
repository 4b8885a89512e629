//! The real `source-heartbeat` binary, run through a local Lambda Runtime API against moto
//! (SNS, SQS, CloudWatch): what it publishes is read back from an SQS queue subscribed to the
//! topic.

use std::time::Duration;

use serde_json::{Value, json};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, MotoServer, RefusingEndpoint, RuntimeApi,
    assert_no_secrets,
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
    // The canary call is denied, as the heartbeat role's policy says (moto allows everything).
    let denying = RefusingEndpoint::start(
        &moto.endpoint_url(),
        &["PutParameter"],
        "AccessDeniedException",
    );
    let api = RuntimeApi::start();
    let mut env = moto.lambda_env();
    env.push(("AWS_ENDPOINT_URL_SSM".into(), denying.endpoint_url()));
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
        json!({"canary": "denied", "healthy": false, "waiting": 3, "published": 1})
    );
    assert_eq!(denying.refused(), 1, "one canary call an hour");
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
    // The summary is no heartbeat leg: nothing counts it as one.
    assert_eq!(tag(&message, "heartbeat"), None);
    assert_eq!(tag(&message, "severity"), Some("high"));
    activity_aware_message::Message::from_json(&body).expect("a Message");

    // Drained: healthy, and no summary until it is due (daily, at midnight UTC).
    sqs.purge_queue()
        .queue_url(&waiting.url)
        .send()
        .await
        .unwrap();
    let answer = api.invoke(scheduled).await.expect("the canary");
    assert_eq!(answer["healthy"], true, "{answer}");
    assert_eq!(answer["canary"], "denied", "{answer}");
    let due = source_heartbeat::Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:123456789012:t".into()),
        "STACK_NAME" => Some("ids".into()),
        _ => None,
    })
    .unwrap()
    .summary_due(source_heartbeat::now_s());
    assert_eq!(answer["published"], u8::from(due), "{answer}");
    let output = process.stop();
    assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
}

#[tokio::test]
async fn the_handler_in_process_counts_what_waits_and_fails_when_the_heartbeat_cannot_go() {
    use activity_aware_message::MessagePublisher;
    use source_heartbeat::{Config, Readers, Run, handle};

    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-SNSTopic").await;
    let capture = moto.capture_queue(&topic).await;
    let waiting = moto
        .create_queue("ids-DestinationSlackFailureQueue", Duration::from_secs(30))
        .await;
    let aws = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    for number in 0..2 {
        sqs.send_message()
            .queue_url(&waiting.url)
            .message_body(format!(
                "{{\"subject\": \"kept {number}\", \"fields\": []}}"
            ))
            .send()
            .await
            .unwrap();
    }
    let queues = format!("destination-slack={}", waiting.url);
    let config = Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some(topic.clone()),
        "STACK_NAME" => Some("ids".into()),
        "FAILURE_QUEUE_URLS" => Some(queues.clone()),
        _ => None,
    })
    .expect("the heartbeat's settings");
    let readers = Readers {
        sqs,
        cloudwatch: aws_sdk_cloudwatch::Client::new(&aws),
        ssm: source_heartbeat::ssm_client(&aws).unwrap(),
        memory: None,
        organizations: None,
    };
    let sns = aws_sdk_sns::Client::new(&aws);
    let publisher = MessagePublisher::new(sns.clone(), config.topic_arn.clone());

    // An hour when no summary is due: still published, because something waits.
    let not_due = 1_764_979_200 + 3_600;
    let summary = handle(&config, &readers, &publisher, not_due, Run::Heartbeat)
        .await
        .expect("published");
    assert_eq!(
        serde_json::to_value(&summary).unwrap(),
        json!({"canary": "made", "healthy": false, "waiting": 2, "published": 1})
    );
    let [body] = capture
        .receive(1, Duration::from_secs(30))
        .await
        .try_into()
        .expect("one heartbeat");
    let message = activity_aware_message::Message::from_json(&body).expect("a Message");
    assert_eq!(message.tag("severity"), Some("high"));
    let field = |key: &str| {
        message
            .fields
            .iter()
            .find(|field| field.key == key)
            .map(|field| field.value.clone())
    };
    assert_eq!(field("Failure Queue Of destination-slack"), Some(json!(2)));
    assert!(field("What To Do").is_some(), "{body}");

    // A topic that is gone: the heartbeat cannot go, and the invocation fails saying so.
    let gone = MessagePublisher::new(sns, "arn:aws:sns:us-east-1:123456789012:no-such-topic");
    let error = handle(&config, &readers, &gone, not_due, Run::Heartbeat)
        .await
        .expect_err("not published");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "PublishFailed");
    assert!(
        diagnostic.error_message.contains("the pipeline summary"),
        "{}",
        diagnostic.error_message
    );
}

/// Coverage, against moto's DynamoDB: an account and region silent for 45 minutes is told at
/// high, once; the summary says how many reported.
#[tokio::test]
async fn a_silent_account_and_region_is_told_once_and_the_summary_counts_the_others() {
    use activity_aware_memory::{Memory, key};
    use activity_aware_message::MessagePublisher;
    use source_heartbeat::{Config, Readers, Run, handle};

    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-SNSTopic").await;
    let capture = moto.capture_queue(&topic).await;
    let table = moto.create_familiarity_table("ids-familiarity").await;
    let aws = moto.sdk_config().await;
    let memory = Memory::new(&aws, &table).unwrap();
    let now = 1_764_979_200;
    let remember = |region: &'static str, at: i64| {
        let memory = memory.clone();
        async move {
            memory
                .see(&key(["coverage", "777788889999", region]), at, 30 * 86_400)
                .await
                .unwrap();
        }
    };
    remember("eu-west-3", now - 5 * 60).await;
    remember("sa-east-1", now - 50 * 60).await;
    let config = Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some(topic.clone()),
        "STACK_NAME" => Some("ids".into()),
        _ => None,
    })
    .unwrap();
    let readers = Readers {
        sqs: aws_sdk_sqs::Client::new(&aws),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&aws),
        ssm: source_heartbeat::ssm_client(&aws).unwrap(),
        memory: Some(memory.clone()),
        organizations: None,
    };
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());

    let summary = handle(&config, &readers, &publisher, now as u64, Run::Coverage)
        .await
        .unwrap();
    assert_eq!(summary.published, 1);
    let [body] = capture
        .receive(1, Duration::from_secs(30))
        .await
        .try_into()
        .expect("one silence told");
    let message = activity_aware_message::Message::from_json(&body).unwrap();
    assert!(
        message.subject.contains("777788889999 in sa-east-1"),
        "{}",
        message.subject
    );
    assert_eq!(message.tag("severity"), Some("high"));
    // Told once a silence.
    let again = handle(
        &config,
        &readers,
        &publisher,
        now as u64 + 900,
        Run::Coverage,
    )
    .await
    .unwrap();
    assert_eq!(again.published, 0);
    // The region speaks again, then falls silent again: a new silence is told.
    remember("sa-east-1", now + 60).await;
    let later = now + 60 + 46 * 60;
    let third = handle(&config, &readers, &publisher, later as u64, Run::Coverage)
        .await
        .unwrap();
    assert_eq!(third.published, 2, "both regions are silent by now");
    capture.receive(2, Duration::from_secs(30)).await;

    // The summary (due at midnight) says how many reported: both regions, ten minutes after
    // sa-east-1 spoke again.
    let summary = handle(
        &config,
        &readers,
        &publisher,
        now as u64 + 600,
        Run::Heartbeat,
    )
    .await
    .unwrap();
    assert_eq!(summary.published, 1);
    let [body] = capture
        .receive(1, Duration::from_secs(30))
        .await
        .try_into()
        .expect("the summary");
    let message = activity_aware_message::Message::from_json(&body).unwrap();
    let watched = message
        .fields
        .iter()
        .find(|field| field.key == "Accounts And Regions Watched")
        .map(|field| field.value.clone());
    assert!(
        watched
            .as_ref()
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.starts_with("1 account(s), 2 account-region(s)")),
        "{watched:?}"
    );
    assert_eq!(
        source_heartbeat::Run::of(&json!({"coverage": true})),
        Run::Coverage
    );
    assert_eq!(
        source_heartbeat::Run::of(&json!({"id": "x"})),
        Run::Heartbeat
    );
}
