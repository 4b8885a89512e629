//! The measurements that need the functions running: the real release binaries, spawned against
//! an in-process Lambda Runtime API (test-world), talking to moto and to an HTTPS Slack
//! stand-in, everything on 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_sns::types::PublishBatchRequestEntry;
use serde_json::{Value, json};
use source_cloudtrail_cloudwatch_logs::{Detector, decode_and_transform};
use test_world::payloads::{self, BuiltEvent};
use test_world::pipeline::{self, Flow, Pipeline};
use test_world::{
    LambdaProcess, MotoServer, RateLimit, RuntimeApi, RuntimeApiOptions, SlackSink, events,
};

pub const SOURCE: &str = "source-cloudtrail-cloudwatch-logs";
pub const DESTINATION: &str = "destination-slack";
pub const KMS_ENCRYPTION: &str = "kms-encryption";

/// How long a function may take to first poll the Runtime API before the run is abandoned.
const FIRST_POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on reading back what a topic published (verification only, not timed).
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on one pass of one-awaited-publish-per-record (moto answers each in milliseconds).
const PER_RECORD_PASS_TIMEOUT: Duration = Duration::from_secs(300);
/// The plaintext the KMS custom resource encrypts (a made-up webhook URL).
const PLAIN_TEXT: &str =
    "https://hooks.slack.com/services/T00000000/B00000000/bench0000000000000000";

/// The environment every function gets, the Slack stand-in, and a KMS key in moto.
pub struct World {
    pub moto: MotoServer,
    pub sink: SlackSink,
    pub kms_key: String,
    /// `SLACK_WEBHOOK_URL` for the destination: the sink's webhook URL encrypted with `kms_key`.
    pub webhook_ciphertext: String,
}

impl World {
    pub async fn start() -> World {
        let moto = MotoServer::start();
        let sink = SlackSink::start();
        let kms_key = moto.create_kms_key().await;
        let webhook_ciphertext = moto
            .kms_encrypt(
                &kms_key,
                &sink.webhook_url(),
                &destination_slack::WEBHOOK_ENCRYPTION_CONTEXT,
            )
            .await;
        World {
            moto,
            sink,
            kms_key,
            webhook_ciphertext,
        }
    }

    /// What `function` needs in its environment to start and to handle an event here.
    /// `topic_arn` is the source's `SNS_TOPIC`.
    pub fn env(&self, function: &str, topic_arn: &str) -> Vec<(String, String)> {
        let mut env = self.moto.lambda_env();
        let ca = self.sink.ca_file().to_string_lossy().into_owned();
        match function {
            // Every source and responder publishes to the topic.
            publisher if publisher.starts_with("source-") || publisher.starts_with("response-") => {
                env.push(("SNS_TOPIC".to_owned(), topic_arn.to_owned()))
            }
            // The email destination checks its addresses at start.
            "destination-email" => env.extend([
                ("EMAIL_FROM".to_owned(), "ids@example.com".to_owned()),
                ("EMAIL_TO".to_owned(), "oncall@example.com".to_owned()),
            ]),
            DESTINATION => {
                env.push((
                    "SLACK_WEBHOOK_URL".to_owned(),
                    self.webhook_ciphertext.clone(),
                ));
                env.push(("SSL_CERT_FILE".to_owned(), ca));
            }
            _ => env.push(("SSL_CERT_FILE".to_owned(), ca)),
        }
        env
    }
}

/// A Runtime API whose function name is `function`, with room for the slowest invocation here
/// (the largest payload published to moto).
fn runtime_api(function: &str) -> RuntimeApi {
    RuntimeApi::start_with(RuntimeApiOptions {
        function_name: function.to_owned(),
        deadline: Duration::from_secs(900),
        invoke_timeout: Duration::from_secs(600),
    })
}

/// Figure (3): process start to first `/invocation/next` poll, once per fresh process.
pub async fn cold_starts(
    binary: &Path,
    env: &[(String, String)],
    runs: usize,
) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let api = RuntimeApi::start();
        let process = LambdaProcess::spawn(binary, &api, env.iter().cloned());
        let polled = api.wait_first_poll(FIRST_POLL_TIMEOUT).await;
        samples.push(polled.saturating_duration_since(process.started()));
        if let Some(error) = api.init_error() {
            return Err(format!("init error: {error}"));
        }
        process.stop();
    }
    Ok(samples)
}

/// Figure (1)'s timings.
pub struct BatchVsPerRecord {
    /// Messages in the 1,000-record delivery (one per record).
    pub messages: usize,
    /// Invoke latency of the source binary, warm, per run.
    pub invoke: Vec<Duration>,
    /// One awaited `Publish` per Message, per pass.
    pub per_record: Vec<Duration>,
    /// One awaited `PublishBatch` of 10 per call, per pass: what batching alone buys against
    /// this endpoint, without the binary's concurrency (tells what dominates the ratio).
    pub sequential_batches: Vec<Duration>,
}

/// Figure (1): a 1,000-record delivery through the source binary (PublishBatch with bounded
/// concurrency) next to the same Message bodies published one awaited `Publish` at a time, the
/// original function's way, against the same moto.
///
/// First checks, on a topic with an SQS capture, that the binary publishes exactly the bodies
/// the baseline sends; the timed runs then use a topic without subscribers so that neither side
/// pays for moto's synchronous delivery to SQS.
pub async fn batch_vs_per_record(
    world: &World,
    binary: &Path,
    records: usize,
    invoke_runs: usize,
    per_record_runs: usize,
) -> Result<BatchVsPerRecord, String> {
    let event = payloads::cloudtrail_event(records);
    let data = event["awslogs"]["data"]
        .as_str()
        .ok_or("the event has no awslogs.data")?
        .to_owned();
    let mut bodies: Vec<String> = decode_and_transform(data, &Detector::default())
        .map_err(|e| format!("decoding the delivery: {e}"))?
        .outgoing
        .into_iter()
        .map(|m| m.body)
        .collect();

    // Same Messages on both sides.
    let verify_topic = world.moto.create_topic("bench-verify").await;
    let capture = world.moto.capture_queue(&verify_topic).await;
    {
        let api = runtime_api(SOURCE);
        let process = LambdaProcess::spawn(binary, &api, world.env(SOURCE, &verify_topic));
        invoke_expecting(&api, event.clone(), bodies.len()).await?;
        let mut published = capture.receive(bodies.len(), CAPTURE_TIMEOUT).await;
        process.stop();
        published.sort();
        bodies.sort();
        if published != bodies {
            return Err(
                "the binary published other Message bodies than decode_and_transform returned"
                    .to_owned(),
            );
        }
    }

    let topic = world.moto.create_topic("bench-timed").await;

    let api = runtime_api(SOURCE);
    let process = LambdaProcess::spawn(binary, &api, world.env(SOURCE, &topic));
    // The first invocation builds the HTTP connection pool: warm, as Lambda's later calls are.
    invoke_expecting(&api, event.clone(), bodies.len()).await?;
    let mut invoke = Vec::with_capacity(invoke_runs);
    for _ in 0..invoke_runs {
        let started = Instant::now();
        invoke_expecting(&api, event.clone(), bodies.len()).await?;
        invoke.push(started.elapsed());
    }
    process.stop();

    let sns = aws_sdk_sns::Client::new(&world.moto.sdk_config().await);
    publish_one(&sns, &topic, &bodies[0]).await?; // warm the connection likewise
    let mut per_record = Vec::with_capacity(per_record_runs);
    for _ in 0..per_record_runs {
        let started = Instant::now();
        tokio::time::timeout(PER_RECORD_PASS_TIMEOUT, async {
            for body in &bodies {
                publish_one(&sns, &topic, body).await?;
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|_| {
            format!("one pass of per-record publishing took over {PER_RECORD_PASS_TIMEOUT:?}")
        })??;
        per_record.push(started.elapsed());
    }

    let mut sequential_batches = Vec::with_capacity(per_record_runs);
    for _ in 0..per_record_runs {
        let started = Instant::now();
        tokio::time::timeout(PER_RECORD_PASS_TIMEOUT, async {
            for batch in bodies.chunks(10) {
                publish_batch(&sns, &topic, batch).await?;
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|_| {
            format!("one pass of sequential batches took over {PER_RECORD_PASS_TIMEOUT:?}")
        })??;
        sequential_batches.push(started.elapsed());
    }

    Ok(BatchVsPerRecord {
        messages: bodies.len(),
        invoke,
        per_record,
        sequential_batches,
    })
}

async fn publish_batch(
    sns: &aws_sdk_sns::Client,
    topic: &str,
    bodies: &[String],
) -> Result<(), String> {
    let entries = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(body)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = sns
        .publish_batch()
        .topic_arn(topic)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await
        .map_err(|e| {
            format!(
                "PublishBatch: {}",
                aws_sdk_sns::error::DisplayErrorContext(e)
            )
        })?;
    match out.failed() {
        [] => Ok(()),
        failed => Err(format!("PublishBatch refused {} entries", failed.len())),
    }
}

async fn publish_one(sns: &aws_sdk_sns::Client, topic: &str, body: &str) -> Result<(), String> {
    sns.publish()
        .topic_arn(topic)
        .message(body)
        .send()
        .await
        .map(drop)
        .map_err(|e| format!("Publish: {}", aws_sdk_sns::error::DisplayErrorContext(e)))
}

/// Invokes the source and checks that it reports `expected` Messages published.
async fn invoke_expecting(api: &RuntimeApi, event: Value, expected: usize) -> Result<(), String> {
    let summary = api
        .invoke(event)
        .await
        .map_err(|e| format!("the source failed: {e}"))?;
    match summary["published"].as_u64() {
        Some(n) if n as usize == expected => Ok(()),
        _ => Err(format!(
            "expected {expected} published, the source answered {summary}"
        )),
    }
}

/// Figure (4) for the source: its peak RSS after handling the largest delivery Lambda accepts.
pub struct SourcePeak {
    pub payload: BuiltEvent,
    /// Messages made of the payload, and the bytes of their bodies: with the decompressed
    /// payload, what the function must hold while it publishes.
    pub messages: usize,
    pub message_bytes: usize,
    pub vm_hwm_bytes: u64,
    pub invoke: Duration,
}

pub async fn source_peak_rss(world: &World, binary: &Path) -> Result<SourcePeak, String> {
    let payload = payloads::largest_cloudtrail_event();
    let data = payload.event["awslogs"]["data"]
        .as_str()
        .ok_or("the event has no awslogs.data")?;
    let outgoing = decode_and_transform(data.to_owned(), &Detector::default())
        .map_err(|e| format!("decoding the largest payload: {e}"))?
        .outgoing;
    let (messages, message_bytes) = (outgoing.len(), outgoing.iter().map(|m| m.body.len()).sum());
    drop(outgoing);
    let topic = world.moto.create_topic("bench-largest").await;
    let api = runtime_api(SOURCE);
    let process = LambdaProcess::spawn(binary, &api, world.env(SOURCE, &topic));
    let started = Instant::now();
    let summary = api
        .invoke(payload.event.clone())
        .await
        .map_err(|e| format!("the source failed on the largest payload: {e}"))?;
    let invoke = started.elapsed();
    if summary["published"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("the source published nothing: {summary}"));
    }
    let vm_hwm_bytes = process.peak_rss_bytes()?;
    process.stop();
    Ok(SourcePeak {
        payload,
        messages,
        message_bytes,
        vm_hwm_bytes,
        invoke,
    })
}

/// Figure (4) for the destination: peak RSS after posting one real Message to the Slack
/// stand-in (which includes decrypting the webhook URL with KMS).
pub async fn destination_peak_rss(
    world: &World,
    binary: &Path,
    message: String,
) -> Result<u64, String> {
    let api = runtime_api(DESTINATION);
    let process = LambdaProcess::spawn(binary, &api, world.env(DESTINATION, ""));
    let posted_before = world.sink.requests().len();
    api.invoke(events::sns_event(&[message]))
        .await
        .map_err(|e| format!("the destination failed: {e}"))?;
    if world.sink.requests().len() <= posted_before {
        return Err("the destination posted nothing to the Slack stand-in".to_owned());
    }
    let peak = process.peak_rss_bytes()?;
    process.stop();
    Ok(peak)
}

/// Figure (4) for the custom resource: peak RSS after one `Create` request (KMS Encrypt, then
/// the answer PUT to the ResponseURL on the stand-in).
pub async fn kms_encryption_peak_rss(world: &World, binary: &Path) -> Result<u64, String> {
    let api = runtime_api(KMS_ENCRYPTION);
    let process = LambdaProcess::spawn(binary, &api, world.env(KMS_ENCRYPTION, ""));
    let answered_before = world.sink.requests().len();
    let request = events::cfn_request(
        "Create",
        &world
            .sink
            .url("/cloudformation-response?X-Amz-Signature=bench"),
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:kms-encryption",
            "KeyId": world.kms_key,
            "PlainText": PLAIN_TEXT,
        }),
    );
    api.invoke(request)
        .await
        .map_err(|e| format!("kms-encryption failed: {e}"))?;
    let answers = world.sink.requests();
    let answer = answers
        .get(answered_before)
        .ok_or("kms-encryption sent no answer to the ResponseURL")?;
    if !answer.body_text().contains("\"SUCCESS\"") {
        return Err(format!(
            "kms-encryption answered: {}",
            answer.body_text().chars().take(300).collect::<String>()
        ));
    }
    let peak = process.peak_rss_bytes()?;
    process.stop();
    Ok(peak)
}

/// A real Message for the destination: the first one the source makes of the corpus.
pub fn sample_message() -> Result<String, String> {
    let event = payloads::cloudtrail_event(1);
    let data = event["awslogs"]["data"].as_str().unwrap_or_default();
    decode_and_transform(data.to_owned(), &Detector::default())
        .map_err(|e| e.to_string())?
        .outgoing
        .into_iter()
        .next()
        .map(|m| m.body)
        .ok_or_else(|| "the corpus's first record makes no Message".to_owned())
}

/// What a flood became on its way to Slack.
pub struct Flood {
    pub records: usize,
    pub published: usize,
    /// Deleted from the buffer queue after their post, and returned to it.
    pub deleted: usize,
    pub returned: usize,
    pub batches: usize,
    /// Posts Slack took, and requests it refused with 429.
    pub posts: usize,
    pub refused: usize,
    /// The sum of the posts' `Count`s (1 for a post of a single Message).
    pub counted: usize,
    pub published_after: Duration,
    pub drained_after: Duration,
    /// The larger of the two Slack function instances' peaks.
    pub destination_peak_rss: u64,
}

impl Flood {
    /// Every record published, posted and deleted, none returned, and the posts count them all.
    pub fn nothing_lost(&self) -> bool {
        self.published == self.records
            && self.deleted == self.records
            && self.returned == 0
            && self.counted == self.records
    }
}

/// A permission-enumeration probe of about `denials` denials through the source, moto's SNS and
/// SQS, and two Slack function instances fed as the stack's event source mapping feeds them
/// (batches of up to 1,000 gathered for 20 s, one post every 2 s each), to a Slack stand-in
/// that enforces Slack's limit.
pub async fn flood(world: &World, bin_dir: &Path, denials: usize) -> Result<Flood, String> {
    let regions = ["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"];
    let per_pass = payloads::permission_probe(&regions, 1, 0, 0).records.len();
    let probe = payloads::permission_probe(&regions, denials.div_ceil(per_pass).max(1), 4, 2);
    let sink = SlackSink::start();
    sink.enforce(RateLimit::slack());
    let ciphertext = world
        .moto
        .kms_encrypt(
            &world.kms_key,
            &sink.webhook_url(),
            &destination_slack::WEBHOOK_ENCRYPTION_CONTEXT,
        )
        .await;
    let pipeline = Pipeline::create(&world.moto, &format!("bench-flood-{denials}")).await;
    let flowed = pipeline::run(
        &world.moto,
        &pipeline,
        Flow::as_the_stack(
            bin_dir.join(SOURCE),
            bin_dir.join(DESTINATION),
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
    .await?;
    let posts = sink.accepted();
    let counted = posts
        .iter()
        .map(|post| {
            post.body_json()["text"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .find_map(|line| line.strip_prefix("Count: "))
                .and_then(|count| count.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum();
    Ok(Flood {
        records: probe.records.len(),
        published: flowed.published() as usize,
        deleted: flowed.handled.iter().map(|h| h.settled.deleted.len()).sum(),
        returned: flowed
            .handled
            .iter()
            .map(|h| h.settled.returned.len())
            .sum(),
        batches: flowed.handled.len(),
        posts: posts.len(),
        refused: sink.requests().len() - posts.len(),
        counted,
        published_after: flowed.published_after,
        drained_after: flowed.drained_after,
        destination_peak_rss: flowed
            .destination_peak_rss
            .iter()
            .copied()
            .max()
            .unwrap_or(0),
    })
}
