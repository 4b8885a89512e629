//! A permission-enumeration probe, end to end through the real binaries: CloudWatch Logs
//! deliveries -> the CloudTrail source -> moto SNS -> the destination's SQS buffer queue -> two
//! destination instances fed as the event source mapping feeds them -> an HTTPS Slack stand-in
//! enforcing Slack's one post a second with 429 and Retry-After.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_world::{
    LambdaProcess, MotoServer, QueuePoller, RateLimit, RuntimeApi, RuntimeApiOptions, SlackSink,
    block_kit, feed_until_drained, payloads, sibling_binary,
};

use destination_slack::WEBHOOK_ENCRYPTION_CONTEXT;

const DESTINATION: &str = env!("CARGO_BIN_EXE_destination-slack");

/// Both instances together stay at Slack's one post a second, as the stack configures them.
const INSTANCES: usize = 2;
const POST_INTERVAL_MS: &str = "2000";

fn count_of(text: &str) -> usize {
    text.lines()
        .find_map(|line| line.strip_prefix("Count: "))
        .map_or(1, |count| count.parse().expect("Count is a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_probe_of_a_thousand_denials_reaches_slack_as_a_handful_of_digests() {
    let probe = payloads::permission_probe(
        &["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"],
        2,
        4,
        2,
    );
    let denials_by = |arn: &str| {
        probe
            .records
            .iter()
            .filter(|record| record.contains(&format!("\"arn\":\"{arn}\"")))
            .count()
    };
    let attacker_denials = denials_by(&probe.attacker);
    assert!(attacker_denials >= 1_000 && probe.actions.len() >= 100);

    let moto = MotoServer::start();
    let sink = SlackSink::start();
    sink.enforce(RateLimit::slack());
    let topic = moto.create_topic("Activity-Aware-IDS-Flood").await;
    let queue = moto
        // As in the stack: far longer than a batch's window and invocation together.
        .create_queue(
            "Activity-Aware-IDS-Flood-DestinationSlackQueue",
            Duration::from_secs(360),
        )
        .await;
    moto.subscribe_queue(&topic, &queue).await;
    let key = moto.create_kms_key().await;
    let ciphertext = moto
        .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;

    // The source, fed CloudWatch Logs deliveries of 250 log events while the queue is polled.
    let source_api = RuntimeApi::start();
    let mut source_env = moto.lambda_env();
    source_env.push(("SNS_TOPIC".into(), topic.clone()));
    let source = LambdaProcess::spawn(
        sibling_binary("source-cloudtrail-cloudwatch-logs"),
        &source_api,
        source_env,
    );
    let deliveries = payloads::deliveries(&probe.records, 250);
    let delivered = deliveries.len();
    let source_api = Arc::new(source_api);
    let feeding = Arc::new({
        let api = source_api.clone();
        tokio::spawn(async move {
            for delivery in deliveries {
                api.invoke(delivery)
                    .await
                    .expect("the source publishes the delivery");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });

    // Two destination instances, each polled as the event source mapping would: batches of up
    // to 1,000 gathered for 20 s, as the stack configures it, answers applied to the queue.
    let mut env = moto.lambda_env();
    env.push(("SLACK_WEBHOOK_URL".into(), ciphertext));
    env.push((
        "SSL_CERT_FILE".into(),
        sink.ca_file().to_string_lossy().into_owned(),
    ));
    env.push(("SLACK_POST_INTERVAL_MS".into(), POST_INTERVAL_MS.into()));
    let started = Instant::now();
    let mut instances = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..INSTANCES {
        let api = Arc::new(RuntimeApi::start_with(RuntimeApiOptions {
            deadline: Duration::from_secs(60),
            invoke_timeout: Duration::from_secs(90),
            ..RuntimeApiOptions::default()
        }));
        processes.push(LambdaProcess::spawn(DESTINATION, &api, env.clone()));
        let poller = QueuePoller::new(&moto, queue.clone(), 1_000, Duration::from_secs(20)).await;
        instances.push((api, poller));
    }
    let source_done = {
        let feeding = feeding.clone();
        move || feeding.is_finished()
    };
    let batches = feed_until_drained(instances, source_done).await;
    for process in processes {
        let output = process.stop();
        assert!(
            !output.contains(sink.secret()),
            "the webhook leaked into the destination's log"
        );
    }
    Arc::try_unwrap(feeding)
        .expect("the feeding task is only watched elsewhere")
        .await
        .expect("the source was fed every delivery");
    let elapsed = started.elapsed();
    drop(source);

    // Nothing undelivered: every Message was deleted from the queue after its post.
    let deleted: usize = batches
        .iter()
        .map(|handled| handled.settled.deleted.len())
        .sum();
    let returned: usize = batches
        .iter()
        .map(|handled| handled.settled.returned.len())
        .sum();
    assert_eq!(
        (deleted, returned),
        (probe.records.len(), 0),
        "batch sizes: {:?}",
        batches
            .iter()
            .map(|handled| handled.size)
            .collect::<Vec<_>>()
    );

    let posts = sink.accepted();
    let texts: Vec<String> = posts
        .iter()
        .map(|post| {
            let body = post.body_json();
            block_kit::assert_valid(&body);
            body["text"].as_str().unwrap().to_owned()
        })
        .collect();
    eprintln!(
        "{} denials in {delivered} deliveries -> {} batches -> {} posts ({} refused with 429) in {elapsed:?}",
        probe.records.len(),
        batches.len(),
        posts.len(),
        sink.requests().len() - posts.len()
    );
    assert!(
        posts.len() <= 12,
        "{} posts:\n{}",
        posts.len(),
        texts.join("\n-----\n")
    );

    // Whose posts: each names one principal only, and the attacker's add up to the probe.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let principals: Vec<&String> = std::iter::once(&probe.attacker)
        .chain(&probe.others)
        .collect();
    for text in &texts {
        let named: Vec<&&String> = principals
            .iter()
            .filter(|arn| text.contains(arn.as_str()))
            .collect();
        assert_eq!(
            named.len(),
            1,
            "a post names {} principals:\n{text}",
            named.len()
        );
        *counts.entry(named[0].to_string()).or_default() += count_of(text);
    }
    assert_eq!(
        (counts[&probe.attacker], counts.values().sum::<usize>()),
        (attacker_denials, probe.records.len()),
        "{counts:?}"
    );
    for other in &probe.others {
        assert_eq!(counts[other], denials_by(other), "{other}: {counts:?}");
    }
    let attacker_text: String = texts
        .iter()
        .filter(|text| text.contains(&probe.attacker))
        .cloned()
        .collect();
    for action in &probe.actions {
        assert!(
            attacker_text.contains(action.as_str()),
            "{action} is named in no post"
        );
    }
    // Slack's limit held: never more than a second's posts plus its burst in any 10 s.
    for (i, post) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|later| later.received_at < post.received_at + Duration::from_secs(10))
            .count();
        assert!(within <= 11, "{within} posts within 10 s");
    }
}
