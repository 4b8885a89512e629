//! A permission-enumeration probe, end to end through the real binaries: CloudWatch Logs
//! deliveries -> the CloudTrail source -> moto SNS -> the destination's SQS buffer queue -> two
//! destination instances fed as the event source mapping feeds them -> an HTTPS Slack stand-in
//! enforcing Slack's one post a second with 429 and Retry-After.

use std::collections::BTreeMap;
use std::time::Duration;

use destination_slack::WEBHOOK_ENCRYPTION_CONTEXT;
use test_world::pipeline::{self, Flow, Pipeline};
use test_world::{MotoServer, RateLimit, SlackSink, block_kit, payloads, sibling_binary};

const DESTINATION: &str = env!("CARGO_BIN_EXE_destination-slack");

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
    let pipeline = Pipeline::create(&moto, "Activity-Aware-IDS-Flood").await;
    let key = moto.create_kms_key().await;
    let ciphertext = moto
        .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;

    // Deliveries of 250 log events, half a second apart, while the queue is polled as the
    // stack's event source mapping polls it (two instances, batches of up to 1,000 gathered for
    // 20 s, each instance posting at most once every 2 s).
    let flowed = pipeline::run(
        &moto,
        &pipeline,
        Flow::as_the_stack(
            sibling_binary("source-cloudtrail-cloudwatch-logs"),
            DESTINATION.into(),
            payloads::deliveries(&probe.records, 250),
            vec![
                ("SLACK_WEBHOOK_URL".into(), ciphertext),
                (
                    "SSL_CERT_FILE".into(),
                    sink.ca_file().to_string_lossy().into_owned(),
                ),
            ],
        ),
    )
    .await
    .expect("the pipeline ran");
    for output in &flowed.destination_outputs {
        assert!(
            !output.contains(sink.secret()),
            "the webhook leaked into the destination's log"
        );
    }

    // Nothing undelivered: every Message was deleted from the queue after its post.
    let deleted: usize = flowed
        .handled
        .iter()
        .map(|handled| handled.settled.deleted.len())
        .sum();
    let returned: usize = flowed
        .handled
        .iter()
        .map(|handled| handled.settled.returned.len())
        .sum();
    assert_eq!(
        (flowed.published() as usize, deleted, returned),
        (probe.records.len(), probe.records.len(), 0),
        "batch sizes: {:?}",
        flowed
            .handled
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
        "{} denials -> {} batches -> {} posts ({} refused with 429), drained {:?} after the first delivery",
        probe.records.len(),
        flowed.handled.len(),
        posts.len(),
        sink.requests().len() - posts.len(),
        flowed.drained_after
    );
    assert!(
        posts.len() <= 12,
        "{} posts:\n{}",
        posts.len(),
        texts.join("\n-----\n")
    );

    // Whose posts: each names one principal only, and the counts add up to the probe.
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
