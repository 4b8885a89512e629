//! `./dev.sh local`: the whole pipeline on this machine, as the stack runs it, with moto for
//! AWS and (unless the user gives a webhook) an HTTPS stand-in for Slack.
//!
//! CloudWatch Logs deliveries -> the source -> moto's SNS topic -> the Slack function's SQS
//! buffer queue (raw delivery) -> two instances of the Slack function fed by an event source
//! mapping (as the stack's MaximumConcurrency allows) -> Slack. Prints each step and, post by
//! post, what Slack received.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use destination_slack::WEBHOOK_ENCRYPTION_CONTEXT;
use serde_json::Value;

use crate::{
    LambdaProcess, MotoServer, QueuePoller, RateLimit, RuntimeApi, RuntimeApiOptions, SlackSink,
    feed_until_drained, payloads,
};

/// What to send through the pipeline.
pub enum Input {
    /// One event file for the source (a CloudWatch Logs delivery).
    Event(PathBuf),
    /// A permission-enumeration probe of about this many denials, in deliveries of 250.
    Flood(usize),
}

pub struct Options {
    pub input: Input,
    /// Where the function binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// The user's own webhook (from SLACK_WEBHOOK_URL, never the command line); the HTTPS
    /// stand-in otherwise.
    pub webhook_url: Option<String>,
}

/// As the stack configures the Slack function (infrastructure/cloudformation.yaml, SlackPace).
const INSTANCES: usize = 2;
const POST_INTERVAL_MS: &str = "2000";
const BATCH_SIZE: usize = 1_000;

fn step(text: &str) {
    println!("\n== {text}");
}

pub async fn run(options: Options) -> Result<(), String> {
    let source_binary = options.bin_dir.join("source-cloudtrail-cloudwatch-logs");
    let destination_binary = options.bin_dir.join("destination-slack");
    for binary in [&source_binary, &destination_binary] {
        if !binary.is_file() {
            return Err(format!("no function binary at {}", binary.display()));
        }
    }
    let (deliveries, window) = match &options.input {
        Input::Event(path) => (vec![read_event(path)?], Duration::from_secs(2)),
        Input::Flood(denials) => {
            let repeats = denials.div_ceil(4 * 128).max(1);
            let probe = payloads::permission_probe(
                &["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"],
                repeats,
                4,
                2,
            );
            println!(
                "a permission-enumeration probe: {} denials by {} over {} actions in {} regions, and {} by {} other principals",
                probe.records.len() - probe.others.len() * 2,
                probe.attacker,
                probe.actions.len(),
                probe.regions.len(),
                probe.others.len() * 2,
                probe.others.len()
            );
            (
                payloads::deliveries(&probe.records, 250),
                Duration::from_secs(10),
            )
        }
    };

    step("Starting moto (SNS, SQS, KMS) on 127.0.0.1");
    let moto = MotoServer::start();
    let topic = moto.create_topic("Activity-Aware-IDS-Local").await;
    let queue = moto
        .create_queue(
            "Activity-Aware-IDS-Local-DestinationSlackQueue",
            Duration::from_secs(360),
        )
        .await;
    moto.subscribe_queue(&topic, &queue).await;
    let key = moto.create_kms_key().await;
    println!(
        "topic {topic}\nbuffer queue {} (raw delivery)\nKMS key {key}",
        queue.arn
    );

    let sink = match &options.webhook_url {
        Some(_) => {
            step("Posting to your SLACK_WEBHOOK_URL");
            None
        }
        None => {
            step(
                "Starting the HTTPS Slack stand-in on 127.0.0.1 (throwaway CA, Slack's 1 post/s limit)",
            );
            let sink = SlackSink::start();
            sink.enforce(RateLimit::slack());
            Some(sink)
        }
    };
    let webhook = match (&options.webhook_url, &sink) {
        (Some(url), _) => url.clone(),
        (None, Some(sink)) => sink.webhook_url(),
        (None, None) => unreachable!("a sink runs when no webhook is given"),
    };
    let ciphertext = moto
        .kms_encrypt(&key, &webhook, &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    println!(
        "webhook URL encrypted with the KMS key for its purpose; the function gets only the ciphertext"
    );

    step(&format!(
        "Invoking source-cloudtrail-cloudwatch-logs with {} CloudWatch Logs deliver{}",
        deliveries.len(),
        if deliveries.len() == 1 { "y" } else { "ies" }
    ));
    let source_api = RuntimeApi::start_with(RuntimeApiOptions {
        function_name: "source-cloudtrail-cloudwatch-logs".into(),
        ..RuntimeApiOptions::default()
    });
    let mut source_env = moto.lambda_env();
    source_env.push(("SNS_TOPIC".into(), topic.clone()));
    let source = LambdaProcess::spawn(&source_binary, &source_api, source_env);
    let single = deliveries.len() == 1;
    let mut published = 0;
    for delivery in deliveries {
        let summary = source_api
            .invoke(delivery)
            .await
            .map_err(|error| format!("the source failed: {error}"))?;
        published += summary["published"].as_u64().unwrap_or(0);
        if single {
            println!("{}", pretty(&summary));
        }
    }
    print!("{}", source.stop());
    println!("the topic took {published} Message(s)");

    step(&format!(
        "Feeding destination-slack from the queue as its event source mapping does: {INSTANCES} instances, batches of up to {BATCH_SIZE} gathered for {} s (the stack: 20 s)",
        window.as_secs()
    ));
    let mut env = moto.lambda_env();
    env.push(("SLACK_WEBHOOK_URL".into(), ciphertext));
    env.push(("SLACK_POST_INTERVAL_MS".into(), POST_INTERVAL_MS.into()));
    if let Some(sink) = &sink {
        env.push((
            "SSL_CERT_FILE".into(),
            sink.ca_file().to_string_lossy().into_owned(),
        ));
    }
    let started = Instant::now();
    let mut instances = Vec::new();
    let mut processes = Vec::new();
    // Kept until the processes stop, so that none sees its Runtime API vanish.
    let mut apis: Vec<Arc<RuntimeApi>> = Vec::new();
    for _ in 0..INSTANCES {
        let api = Arc::new(RuntimeApi::start_with(RuntimeApiOptions {
            function_name: "destination-slack".into(),
            deadline: Duration::from_secs(60),
            invoke_timeout: Duration::from_secs(90),
        }));
        processes.push(LambdaProcess::spawn(&destination_binary, &api, env.clone()));
        apis.push(api.clone());
        instances.push((
            api,
            QueuePoller::new(&moto, queue.clone(), BATCH_SIZE, window).await,
        ));
    }
    let handled = feed_until_drained(instances, || true).await;
    for process in processes {
        print!("{}", process.stop());
    }
    drop(apis);
    if single {
        for record in handled.iter().flat_map(|batch| {
            batch.event["Records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }) {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            println!(
                "\nthe Message as published (the Message contract):\n{}",
                pretty(&body)
            );
        }
    }
    for (number, batch) in handled.iter().enumerate() {
        let answer = match &batch.answer {
            Ok(answer) => answer.to_string(),
            Err(error) => format!("error: {error}"),
        };
        println!(
            "batch {}: {} Message(s), {} posted and deleted, {} back to the queue; answer {answer}",
            number + 1,
            batch.size,
            batch.settled.deleted.len(),
            batch.settled.returned.len()
        );
    }

    if let Some(sink) = &sink {
        let requests = sink.requests();
        let posts = sink.accepted();
        step(&format!(
            "What Slack received: {} post(s) for {published} Message(s) in {:.1} s ({} refused with 429)",
            posts.len(),
            started.elapsed().as_secs_f64(),
            requests.len() - posts.len()
        ));
        for (number, post) in posts.iter().enumerate() {
            if single {
                println!("{}", pretty(&post.body_json()));
            } else {
                println!("\n--- post {} of {} ---", number + 1, posts.len());
                println!("{}", post.body_json()["text"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

fn read_event(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
