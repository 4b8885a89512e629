//! A permission-enumeration probe, end to end through the real binaries: CloudWatch Logs
//! deliveries -> the CloudTrail source -> moto SNS -> the destination's SQS buffer queue -> two
//! destination instances fed as the event source mapping feeds them -> an HTTPS Slack stand-in
//! enforcing Slack's one post a second with 429 and Retry-After.

use std::collections::BTreeMap;
use std::time::Duration;

use destination_slack::WEBHOOK_ENCRYPTION_CONTEXT;
use test_world::pipeline::{self, Flow, Pipeline};
use test_world::{MotoServer, RateLimit, SlackSink, block_kit, payloads, sibling_binary};

/// One flood at a time: how a flood folds depends on how fast the sources publish it against
/// the Slack function's batching window, which is what these tests measure, not the machine's
/// load from another flood beside it.
static ONE_FLOOD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DESTINATION: &str = env!("CARGO_BIN_EXE_destination-slack");

fn count_of(text: &str) -> usize {
    text.lines()
        .find_map(|line| line.strip_prefix("Count: "))
        .map_or(1, |count| count.parse().expect("Count is a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_probe_of_a_thousand_denials_reaches_slack_as_a_handful_of_digests() {
    let _alone = ONE_FLOOD_AT_A_TIME.lock().await;
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

/// One role assumed under 600 session names, 1,200 denials, with the attacker's own successful
/// StopLogging and a GuardDuty finding of severity 8 in the middle, through both sources, the
/// topic's two lanes and the Slack function as the stack runs it: a few dozen posts, the
/// StopLogging and the finding each on a post of its own at their first try, every denial
/// counted, and nothing received more than the five times the failure queue allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_over_many_principals_never_buries_the_break_in() {
    let _alone = ONE_FLOOD_AT_A_TIME.lock().await;
    let base = test_world::events::corpus_denial();
    let account = base["recipientAccountId"].as_str().unwrap().to_owned();
    let role = format!("arn:aws:sts::{account}:assumed-role/probe");
    let session = |number: usize| {
        let name = format!("enum-{number:03}");
        serde_json::json!({
            "type": "AssumedRole", "principalId": format!("AROAPROBE:{name}"),
            "arn": format!("{role}/{name}"), "accountId": account,
            "accessKeyId": format!("ASIAPROBE{number:05}"),
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "probe",
                "arn": format!("arn:aws:iam::{account}:role/probe")}}
        })
    };
    let mut records = Vec::new();
    for number in 0..1_200 {
        let mut denial = base.clone();
        denial["userIdentity"] = session(number % 600);
        denial["eventName"] = serde_json::json!(if number % 3 == 0 {
            "GetPolicy"
        } else {
            "ListUsers"
        });
        denial["eventID"] = serde_json::json!(format!("6f0c1d2e-0000-4000-8000-{number:012}"));
        records.push(denial.to_string());
    }
    let mut stop_logging = base.clone();
    stop_logging["userIdentity"] = session(17);
    stop_logging["eventSource"] = serde_json::json!("cloudtrail.amazonaws.com");
    stop_logging["eventName"] = serde_json::json!("StopLogging");
    stop_logging["requestParameters"] = serde_json::json!({"name": "main"});
    for key in ["errorCode", "errorMessage"] {
        stop_logging.as_object_mut().unwrap().remove(key);
    }
    let mut finding =
        test_world::payloads::eventbridge_sample("guardduty-iam-privilege-escalation-high");
    finding["detail"]["severity"] = serde_json::json!(8);

    let moto = MotoServer::start();
    let sink = SlackSink::start();
    sink.enforce(RateLimit::slack());
    let pipeline = Pipeline::create(&moto, "Activity-Aware-IDS-Principals").await;
    let key = moto.create_kms_key().await;
    let ciphertext = moto
        .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    let flowed = pipeline::run(
        &moto,
        &pipeline,
        Flow::as_the_stack(
            sibling_binary("source-cloudtrail-cloudwatch-logs"),
            DESTINATION.into(),
            payloads::deliveries(&records, 240),
            vec![
                ("SLACK_WEBHOOK_URL".into(), ciphertext),
                (
                    "SSL_CERT_FILE".into(),
                    sink.ca_file().to_string_lossy().into_owned(),
                ),
            ],
        )
        .with_events(
            sibling_binary("source-eventbridge"),
            vec![
                (2, test_world::events::eventbridge_api_call(&stop_logging)),
                (3, finding),
            ],
        ),
    )
    .await
    .expect("the pipeline ran");

    let posts = sink.accepted();
    let bodies: Vec<serde_json::Value> = posts.iter().map(|post| post.body_json()).collect();
    for body in &bodies {
        block_kit::assert_valid(body);
    }
    let header = |body: &serde_json::Value| {
        body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    eprintln!(
        "1,200 denials by 600 sessions + StopLogging + a finding -> {} batches -> {} posts, drained {:?}:\n{}",
        flowed.handled.len(),
        posts.len(),
        flowed.drained_after,
        bodies.iter().map(header).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(flowed.published(), 1_202);
    assert!(posts.len() <= 40, "{} posts", posts.len());

    // Nothing reaches the failure queue: every Message was deleted, none received a sixth time.
    let receives = flowed
        .handled
        .iter()
        .flat_map(|handled| handled.event["Records"].as_array().unwrap().clone())
        .map(|record| {
            record["attributes"]["ApproximateReceiveCount"]
                .as_str()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!(receives <= 5, "a Message was received {receives} times");
    let deleted: usize = flowed.handled.iter().map(|h| h.settled.deleted.len()).sum();
    assert_eq!(deleted, 1_202);

    // The break-in, each on a post of its own, from the priority lane at its first try.
    let alone = |prefix: &str| {
        let found: Vec<&serde_json::Value> = bodies
            .iter()
            .filter(|body| header(body).starts_with(prefix))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{prefix}: {:?}",
            bodies.iter().map(header).collect::<Vec<_>>()
        );
        assert_eq!(
            count_of(found[0]["text"].as_str().unwrap()),
            1,
            "{prefix} is in a digest"
        );
    };
    alone("[Critical] CloudTrail logging stopped: ");
    alone("[High] GuardDuty finding");
    let priority: Vec<&test_world::Handled> = flowed
        .handled
        .iter()
        .filter(|h| {
            h.event["Records"][0]["eventSourceARN"]
                .as_str()
                .unwrap()
                .contains("PriorityQueue")
        })
        .collect();
    assert_eq!(
        priority
            .iter()
            .map(|h| h.settled.deleted.len())
            .sum::<usize>(),
        2
    );
    assert!(priority.iter().all(|h| h.settled.returned.is_empty()));

    // Every denial is counted, in a digest or a summary.
    let counted: usize = bodies
        .iter()
        .filter(|body| {
            !header(body).starts_with("[Critical]") && !header(body).starts_with("[High]")
        })
        .map(|body| count_of(body["text"].as_str().unwrap()))
        .sum();
    assert_eq!(counted, 1_200);
}
