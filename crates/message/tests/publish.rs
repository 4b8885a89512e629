//! MessagePublisher against moto's SNS, read back through an SQS queue with raw delivery.

use activity_aware_message::{MessagePublisher, OutgoingMessage, PublishError, PublishOptions};
use std::collections::BTreeSet;
use std::time::Duration;
use test_world::MotoServer;

fn outgoing(label: &str, body: String) -> OutgoingMessage {
    OutgoingMessage {
        label: label.to_owned(),
        body,
        ..OutgoingMessage::default()
    }
}

fn quick_retries() -> PublishOptions {
    PublishOptions {
        first_backoff: Duration::from_millis(5),
        ..PublishOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_once_across_batches() {
    let moto = MotoServer::start();
    let topic = moto.create_topic("publish-all").await;
    let capture = moto.capture_queue(&topic).await;
    let client = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    let publisher = MessagePublisher::with_options(client, topic, quick_retries());

    let messages: Vec<OutgoingMessage> = (0..35)
        .map(|i| {
            outgoing(
                &format!("m{i}"),
                format!("{{\"subject\":\"message {i}\",\"fields\":[]}}"),
            )
        })
        .collect();
    let expected: BTreeSet<String> = messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(publisher.publish_all(messages).await.unwrap(), 35);

    let received: BTreeSet<String> = capture
        .receive(35, Duration::from_secs(60))
        .await
        .into_iter()
        .collect();
    assert_eq!(received, expected);
    capture.assert_quiet(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_sns_refuses_is_named_and_its_batch_neighbours_still_arrive() {
    let moto = MotoServer::start();
    let topic = moto.create_topic("publish-refused").await;
    let capture = moto.capture_queue(&topic).await;
    let client = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    let publisher = MessagePublisher::with_options(client, topic, quick_retries());

    let too_big = format!(
        "{{\"subject\":\"{}\",\"fields\":[]}}",
        "x".repeat(300 * 1024)
    );
    let messages = vec![
        outgoing("first", "{\"subject\":\"first\",\"fields\":[]}".into()),
        outgoing("too big", too_big),
        outgoing("last", "{\"subject\":\"last\",\"fields\":[]}".into()),
    ];
    let PublishError::NotPublished { failed, total } =
        publisher.publish_all(messages).await.unwrap_err();
    assert_eq!(total, 3);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].label, "too big");
    assert!(
        failed[0].reason.starts_with("InvalidParameter"),
        "{}",
        failed[0].reason
    );

    let received = capture.receive(2, Duration::from_secs(60)).await;
    assert!(received.iter().any(|body| body.contains("\"first\"")));
    assert!(received.iter().any(|body| body.contains("\"last\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_does_not_exist_fails_every_message_after_retries() {
    let moto = MotoServer::start();
    let client = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    let publisher = MessagePublisher::with_options(
        client,
        "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        quick_retries(),
    );
    let messages = (0..12)
        .map(|i| outgoing(&format!("log event {i}"), "{}".into()))
        .collect();
    let error = publisher.publish_all(messages).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("12 of 12 messages were not published to SNS: log event 0 (NotFound"),
        "{text}"
    );
    assert!(text.contains("log event 11 ("), "{text}");
}
