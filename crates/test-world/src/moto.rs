//! A moto server (fake AWS: SNS, SQS, KMS) on 127.0.0.1, and helpers for the tests' fixtures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::process::ProcessShared;

/// The region every client and function uses against moto.
pub const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "AKIATESTWORLD0000000";
/// The dummy secret access key given to clients and functions: distinctive, so tests can check
/// that no output ever shows it.
pub const DUMMY_SECRET_ACCESS_KEY: &str = "TestWorldDummySecretAccessKey0000000000x";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `moto_server -H 127.0.0.1 -p <free port>`, killed on drop.
///
/// The server is `$MOTO_SERVER` when set, else the repository's pinned one (`.venv/`, made by
/// `./dev.sh`) when it exists, else `moto_server` from `PATH`. When it is a Python
/// script (as pip installs it), it runs through `moto_server.py` with the same interpreter: the
/// same server with a faster clock, so that queues of thousands of messages stay usable.
pub struct MotoServer {
    process: Arc<ProcessShared>,
    port: u16,
    /// CloudTrail's event history here: what [`MotoServer::record_in_cloudtrail`] wrote.
    history: std::path::PathBuf,
}

const LAUNCHER: &str = include_str!("moto_server.py");

/// The Python interpreter moto is installed in (the one its `moto_server` script names), for
/// tests that use moto as a library: `python3` when moto_server is no Python script.
pub fn moto_python() -> Command {
    moto_interpreter().unwrap_or_else(|_| Command::new("python3"))
}

/// The command that starts moto: its Python with the launcher, or the binary as it is.
fn moto_command() -> Command {
    let mut command = match moto_interpreter() {
        Ok(mut python) => {
            python.args(["-c", LAUNCHER]);
            python
        }
        Err(binary) => Command::new(binary),
    };
    // AWS's managed policies exist, as in an account (the containment response attaches one).
    command.env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true");
    command
}

/// moto's Python (with the shebang's arguments), or the moto_server binary when it is none.
fn moto_interpreter() -> Result<Command, String> {
    let pinned = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/moto_server");
    let binary = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        if std::path::Path::new(pinned).is_file() {
            pinned.to_owned()
        } else {
            "moto_server".to_owned()
        }
    });
    let path = if binary.contains('/') {
        Some(std::path::PathBuf::from(&binary))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&binary))
                .find(|candidate| candidate.is_file())
        })
    };
    let interpreter = path
        .as_deref()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| {
            let first = bytes.split(|&b| b == b'\n').next()?.to_vec();
            let line = String::from_utf8(first).ok()?;
            let interpreter = line.strip_prefix("#!")?.trim().to_owned();
            interpreter.contains("python").then_some(interpreter)
        });
    match interpreter {
        // A shebang may carry arguments ("/usr/bin/env python3").
        Some(interpreter) => {
            let mut parts = interpreter.split_whitespace();
            let mut command = Command::new(parts.next().expect("a shebang names a program"));
            command.args(parts);
            Ok(command)
        }
        None => Err(binary),
    }
}

impl MotoServer {
    /// Starts moto and waits (bounded) until it answers HTTP. Panics with moto's output if it
    /// does not come up.
    pub fn start() -> MotoServer {
        let mut last_failure = String::new();
        // The free port may be taken between our probe and moto's bind: try a few ports.
        for _attempt in 0..3 {
            let port = crate::free_port();
            let history = std::env::temp_dir().join(format!(
                "test-world-cloudtrail-{}-{port}",
                std::process::id()
            ));
            std::fs::create_dir_all(&history)
                .expect("test-world: a directory for CloudTrail's event history");
            let mut command = moto_command();
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command.env("ACTIVITY_AWARE_CLOUDTRAIL_HISTORY", &history);
            let process = ProcessShared::spawn("moto_server", command).unwrap_or_else(|e| {
                panic!("test-world: cannot run moto_server (set MOTO_SERVER or put moto_server on PATH; `pip install 'moto[server]'`): {e}")
            });
            let give_up = Instant::now() + STARTUP_TIMEOUT;
            loop {
                if moto_answers(port) {
                    return MotoServer {
                        process,
                        port,
                        history,
                    };
                }
                if let Some(status) = process.exit_status() {
                    process.kill_and_collect();
                    last_failure = format!("exited ({status}):\n{}", process.output());
                    break;
                }
                if Instant::now() >= give_up {
                    process.kill_and_collect();
                    panic!(
                        "test-world: moto_server did not answer on 127.0.0.1:{port} within {STARTUP_TIMEOUT:?}:\n{}",
                        process.output()
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("test-world: moto_server failed to start three times; last: {last_failure}");
    }

    /// Says CloudTrail recorded these records: its event history (LookupEvents, in each
    /// record's `awsRegion`) holds them from now on.
    pub fn record_in_cloudtrail(&self, records: &[serde_json::Value]) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.history.join("records.jsonl"))
            .expect("test-world: CloudTrail's event history opens");
        for record in records {
            writeln!(file, "{record}")
                .expect("test-world: CloudTrail's event history takes a record");
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What moto printed so far (its request log).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// An SDK config for moto: region us-east-1, static dummy credentials, moto's endpoint.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                DUMMY_SECRET_ACCESS_KEY,
                None,
                None,
                "test-world",
            ))
            .endpoint_url(self.endpoint_url())
            .load()
            .await
    }

    /// The environment a function needs to reach this moto as if it were AWS: `AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, dummy `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, and
    /// `AWS_EC2_METADATA_DISABLED=true` (nothing ever leaves 127.0.0.1).
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Creates an SNS topic; returns its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        let sns = aws_sdk_sns::Client::new(&self.sdk_config().await);
        let out = sns
            .create_topic()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto CreateTopic {name}: {e:?}"));
        out.topic_arn
            .expect("test-world: CreateTopic returned no TopicArn")
    }

    /// Subscribes a fresh SQS queue to `topic_arn` with `RawMessageDelivery=true`, so each
    /// queue message body is exactly one published SNS Message.
    pub async fn capture_queue(&self, topic_arn: &str) -> SnsCapture {
        self.capture_queue_filtered(topic_arn, None).await
    }

    /// The same, for what passes a subscription filter policy on message attributes.
    pub async fn capture_queue_filtered(
        &self,
        topic_arn: &str,
        filter_policy: Option<&str>,
    ) -> SnsCapture {
        let queue = self
            .create_queue(
                &format!("capture-{}", fastrand::u64(..)),
                Duration::from_secs(30),
            )
            .await;
        self.subscribe_queue_filtered(topic_arn, &queue, filter_policy)
            .await;
        SnsCapture {
            sqs: aws_sdk_sqs::Client::new(&self.sdk_config().await),
            queue_url: queue.url,
        }
    }

    /// Creates an SQS queue whose received messages come back after `visibility_timeout`.
    pub async fn create_queue(&self, name: &str, visibility_timeout: Duration) -> Queue {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.as_secs().to_string(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto CreateQueue {name}: {e:?}"))
            .queue_url
            .expect("test-world: CreateQueue returned no QueueUrl");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto GetQueueAttributes: {e:?}"))
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("test-world: GetQueueAttributes returned no QueueArn");
        Queue { url, arn }
    }

    /// Subscribes `queue` to `topic_arn` with raw message delivery, as the stack subscribes
    /// the Slack destination's buffer queue.
    pub async fn subscribe_queue(&self, topic_arn: &str, queue: &Queue) {
        self.subscribe_queue_filtered(topic_arn, queue, None).await;
    }

    /// As [`Self::subscribe_queue`], with a filter policy on the Messages' attributes.
    pub async fn subscribe_queue_filtered(
        &self,
        topic_arn: &str,
        queue: &Queue,
        filter_policy: Option<&str>,
    ) {
        let sns = aws_sdk_sns::Client::new(&self.sdk_config().await);
        let mut subscribe = sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue.arn)
            .attributes("RawMessageDelivery", "true");
        if let Some(policy) = filter_policy {
            subscribe = subscribe
                .attributes("FilterPolicy", policy)
                .attributes("FilterPolicyScope", "MessageAttributes");
        }
        subscribe
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto Subscribe sqs to {topic_arn}: {e:?}"));
    }

    /// Creates an HMAC-SHA-256 KMS key (the heartbeat's); returns its key id.
    pub async fn create_kms_hmac_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        kms.create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
            .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto CreateKey HMAC: {e:?}"))
            .key_metadata()
            .map(|metadata| metadata.key_id().to_owned())
            .expect("test-world: a key id")
    }

    /// The sources' table of routine changes, as the template makes it (a string `key`, TTL on
    /// `expires`), unless this moto has it already; returns its name.
    pub async fn create_familiarity_table(&self, name: &str) -> String {
        let dynamodb = aws_query::JsonClient::new(
            &self.sdk_config().await,
            aws_query::Service::DynamoDb,
            None,
        )
        .expect("test-world: a DynamoDB client");
        let call = |operation: &'static str, body: serde_json::Value| {
            let dynamodb = dynamodb.clone();
            async move {
                match dynamodb.call(operation, &body).await {
                    Ok(_) => {}
                    // Made before in this moto: the same table.
                    Err(aws_query::QueryError::Service { code, .. })
                        if code == "ResourceInUseException" => {}
                    Err(e) => panic!("test-world: moto {operation}: {e}"),
                }
            }
        };
        call(
            "CreateTable",
            serde_json::json!({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "key", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}]}),
        )
        .await;
        call(
            "UpdateTimeToLive",
            serde_json::json!({"TableName": name,
                "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": true}}),
        )
        .await;
        name.to_owned()
    }

    /// The key's HMAC-SHA-256 of `text` (KMS GenerateMac), hex.
    pub async fn kms_generate_mac(&self, key: &str, text: &str) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        let answer = kms
            .generate_mac()
            .key_id(key)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_sdk_kms::primitives::Blob::new(text.as_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto GenerateMac: {e:?}"));
        answer
            .mac()
            .map(|mac| mac.as_ref().iter().map(|b| format!("{b:02x}")).collect())
            .expect("test-world: a MAC")
    }

    /// Whether `mac_hex` is the key's HMAC-SHA-256 of `text` (KMS VerifyMac).
    pub async fn kms_verify_mac(&self, key: &str, text: &str, mac_hex: &str) -> bool {
        let Some(mac) = (0..mac_hex.len())
            .step_by(2)
            .map(|at| {
                mac_hex
                    .get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        kms.verify_mac()
            .key_id(key)
            .mac_algorithm(aws_sdk_kms::types::MacAlgorithmSpec::HmacSha256)
            .message(aws_sdk_kms::primitives::Blob::new(text.as_bytes()))
            .mac(aws_sdk_kms::primitives::Blob::new(mac))
            .send()
            .await
            .is_ok_and(|answer| answer.mac_valid())
    }

    /// Creates a symmetric KMS key; returns its key id.
    pub async fn create_kms_key(&self) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        kms.create_key()
            .description("test-world")
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto CreateKey: {e:?}"))
            .key_metadata
            .expect("test-world: CreateKey returned no KeyMetadata")
            .key_id
    }

    /// Encrypts `plaintext` with `key_id` and an encryption context (which decrypting it will
    /// need); returns the base64 ciphertext blob.
    pub async fn kms_encrypt(
        &self,
        key_id: &str,
        plaintext: &str,
        context: &[(&str, &str)],
    ) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        let blob = kms
            .encrypt()
            .key_id(key_id)
            .set_encryption_context(encryption_context(context))
            .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext.as_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto Encrypt: {e:?}"))
            .ciphertext_blob
            .expect("test-world: Encrypt returned no CiphertextBlob");
        BASE64.encode(blob.as_ref())
    }

    /// Decrypts a base64 ciphertext blob made with `context`; returns the plaintext (panics if
    /// it is not UTF-8).
    pub async fn kms_decrypt(&self, ciphertext_base64: &str, context: &[(&str, &str)]) -> String {
        let kms = aws_sdk_kms::Client::new(&self.sdk_config().await);
        let blob = BASE64
            .decode(ciphertext_base64)
            .unwrap_or_else(|e| panic!("test-world: ciphertext is not base64 ({e})"));
        let plaintext = kms
            .decrypt()
            .set_encryption_context(encryption_context(context))
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto Decrypt: {e:?}"))
            .plaintext
            .expect("test-world: Decrypt returned no Plaintext");
        String::from_utf8(plaintext.into_inner()).expect("test-world: plaintext is not UTF-8")
    }
}

/// An email moto's SES took, as it was sent (raw MIME).
#[derive(Debug, Clone)]
pub struct SentEmail {
    /// The sender the request named (SES v2's FromEmailAddress).
    pub source: String,
    /// Every recipient SES would deliver it to.
    pub destinations: Vec<String>,
    /// The whole message: headers and MIME parts.
    pub raw: String,
}

impl MotoServer {
    /// Verifies an SES identity (an address or a domain), as its owner does by clicking the
    /// link SES mails: moto's SES sends only from verified identities, as SES does.
    pub async fn verify_email_identity(&self, identity: &str) {
        let ses = aws_sdk_sesv2::Client::new(&self.sdk_config().await);
        ses.create_email_identity()
            .email_identity(identity)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto CreateEmailIdentity {identity}: {e:?}"));
    }

    /// The emails moto's SES took, oldest first (its raw sends; moto keeps no other record of
    /// them than its model data).
    pub async fn sent_emails(&self) -> Vec<SentEmail> {
        let text = reqwest::get(format!("{}/moto-api/data.json", self.endpoint_url()))
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("test-world: moto's model data: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto's model data: {e}"));
        let data: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("test-world: moto's model data is not JSON: {e}"));
        data["ses"]["RawMessage"]
            .as_array()
            .map(|sent| {
                sent.iter()
                    .map(|email| SentEmail {
                        source: email["source"].as_str().unwrap_or_default().to_owned(),
                        destinations: email["destinations"]
                            .as_array()
                            .map(|to| {
                                to.iter()
                                    .filter_map(|t| t.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        raw: email["raw_data"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.process.kill_and_collect();
        let _ = std::fs::remove_dir_all(&self.history);
    }
}

fn encryption_context(pairs: &[(&str, &str)]) -> Option<std::collections::HashMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// Whether moto answers on 127.0.0.1:`port`: its API answers 200. Anything else there (another
/// test's server that took the port between the probe and moto's bind answers 404) is not moto,
/// and moto, unable to bind, exits and is started on another port.
fn moto_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[8..] == b" 200"
}

/// An SQS queue made on moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

/// An SQS queue subscribed (raw delivery) to an SNS topic: what the topic published.
pub struct SnsCapture {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SnsCapture {
    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives (and deletes) messages until exactly `expected` have arrived; returns their raw
    /// bodies in arrival order. Panics if fewer arrive within `timeout` or if more arrive.
    pub async fn receive(&self, expected: usize, timeout: Duration) -> Vec<String> {
        let give_up = Instant::now() + timeout;
        let mut bodies = Vec::new();
        while bodies.len() < expected {
            if Instant::now() >= give_up {
                panic!(
                    "test-world: expected {expected} messages on the SNS capture queue within {timeout:?}, got {}: {bodies:#?}",
                    bodies.len()
                );
            }
            bodies.extend(self.receive_batch(1).await);
        }
        assert!(
            bodies.len() == expected,
            "test-world: expected exactly {expected} messages on the SNS capture queue, got {}: {bodies:#?}",
            bodies.len()
        );
        bodies
    }

    /// Asserts that no message arrives during `window` (long-polls the whole window).
    pub async fn assert_quiet(&self, window: Duration) {
        let give_up = Instant::now() + window;
        let mut bodies = Vec::new();
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left.as_secs().clamp(1, 20) as i32;
            bodies.extend(self.receive_batch(wait).await);
            if !bodies.is_empty() {
                break;
            }
        }
        assert!(
            bodies.is_empty(),
            "test-world: expected no message on the SNS capture queue, got {}: {bodies:#?}",
            bodies.len()
        );
    }

    async fn receive_batch(&self, wait_seconds: i32) -> Vec<String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto ReceiveMessage: {e:?}"));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Vec::new();
        }
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        self.sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto DeleteMessageBatch: {e:?}"));
        messages.into_iter().filter_map(|m| m.body).collect()
    }
}
