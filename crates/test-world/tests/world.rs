//! The test world's own parts, checked against real clients: moto through the AWS SDK, the
//! Runtime API through HTTP, the Slack sink through reqwest over TLS, and the `test-world`
//! command through a shell-script function speaking the Runtime API with curl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_world::{
    InvocationError, MotoServer, RuntimeApi, RuntimeApiOptions, SlackAnswer, SlackSink, events,
};

/// reqwest is built without its `json` feature, like the functions'.
trait JsonBody {
    fn json_body(self, value: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).unwrap())
    }
}

fn client_trusting(sink: &SlackSink) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(sink.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

#[tokio::test]
async fn moto_captures_what_a_topic_publishes_and_roundtrips_kms() {
    let moto = MotoServer::start();
    assert!(moto.endpoint_url().starts_with("http://127.0.0.1:"));
    let env = moto.lambda_env();
    assert!(env.contains(&("AWS_ENDPOINT_URL".to_owned(), moto.endpoint_url())));
    assert!(env.iter().any(|(k, _)| k == "AWS_SECRET_ACCESS_KEY"));

    let topic = moto.create_topic("world-topic").await;
    let capture = moto.capture_queue(&topic).await;
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    for text in [r#"{"n":1}"#, r#"{"n":2}"#] {
        sns.publish()
            .topic_arn(&topic)
            .message(text)
            .send()
            .await
            .expect("publish");
    }
    let mut bodies = capture.receive(2, Duration::from_secs(30)).await;
    bodies.sort();
    assert_eq!(
        bodies,
        [r#"{"n":1}"#, r#"{"n":2}"#],
        "raw delivery keeps bodies as published"
    );
    capture.assert_quiet(Duration::from_secs(1)).await;

    let key = moto.create_kms_key().await;
    let ciphertext = moto
        .kms_encrypt(
            &key,
            "https://example.invalid/secret",
            &[("purpose", "test")],
        )
        .await;
    assert_ne!(ciphertext, "https://example.invalid/secret");
    assert_eq!(
        moto.kms_decrypt(&ciphertext, &[("purpose", "test")]).await,
        "https://example.invalid/secret"
    );
}

#[tokio::test]
#[should_panic(expected = "expected 1 messages on the SNS capture queue")]
async fn capture_panics_when_too_few_messages_arrive() {
    let moto = MotoServer::start();
    let topic = moto.create_topic("quiet-topic").await;
    let capture = moto.capture_queue(&topic).await;
    capture.receive(1, Duration::from_secs(2)).await;
}

/// A client playing the function's side of the Runtime API, over real HTTP.
async fn fake_function(api_address: String, answers: Vec<Result<Value, (String, String)>>) {
    let http = reqwest::Client::new();
    let base = format!("http://{api_address}/2018-06-01/runtime");
    for answer in answers {
        let next = http
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .expect("GET next");
        assert_eq!(next.status(), 200);
        let header = |name: &str| {
            next.headers()
                .get(name)
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let id = header("lambda-runtime-aws-request-id");
        let deadline_ms: u128 = header("lambda-runtime-deadline-ms").parse().unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            deadline_ms > now_ms + 5_000 && deadline_ms <= now_ms + 10_000,
            "deadline {deadline_ms} vs now {now_ms}"
        );
        assert!(header("lambda-runtime-invoked-function-arn").ends_with(":function:fake"));
        assert!(header("lambda-runtime-trace-id").starts_with("Root="));
        let event: Value =
            serde_json::from_slice(&next.bytes().await.expect("event body")).expect("event JSON");
        let posted = match answer {
            Ok(response) => {
                assert_eq!(event["echo"], response["echo"]);
                http.post(format!("{base}/invocation/{id}/response"))
                    .json_body(&response)
                    .send()
                    .await
            }
            Err((error_type, error_message)) => {
                http.post(format!("{base}/invocation/{id}/error"))
                    .header("lambda-runtime-function-error-type", "Unhandled")
                    .json_body(&json!({"errorType": error_type, "errorMessage": error_message}))
                    .send()
                    .await
            }
        }
        .expect("POST answer");
        assert_eq!(posted.status(), 202);
        let again = http
            .post(format!("{base}/invocation/{id}/response"))
            .body("{}")
            .send()
            .await
            .expect("POST again");
        assert_eq!(again.status(), 400, "a second answer must be refused");
    }
}

#[tokio::test]
async fn runtime_api_hands_out_events_and_returns_answers() {
    let api = RuntimeApi::start_with(RuntimeApiOptions {
        function_name: "fake".to_owned(),
        deadline: Duration::from_secs(8),
        ..RuntimeApiOptions::default()
    });
    assert_eq!(api.first_poll(), None);
    let before = Instant::now();
    let function = tokio::spawn(fake_function(
        api.address(),
        vec![
            Ok(json!({"echo": 1})),
            Err(("Boom".to_owned(), "it broke".to_owned())),
        ],
    ));
    let first = api.invoke(json!({"echo": 1})).await;
    assert_eq!(first, Ok(json!({"echo": 1})));
    let second = api.invoke(json!({"echo": 2})).await;
    assert_eq!(
        second,
        Err(InvocationError {
            error_type: "Boom".to_owned(),
            error_message: "it broke".to_owned(),
            during_init: false,
        })
    );
    function.await.expect("the fake function's checks");
    assert_eq!(api.invocations(), 2);
    assert!(api.first_poll().expect("first poll recorded") >= before);
    assert_eq!(api.init_error(), None);
}

#[tokio::test]
async fn runtime_api_reports_init_errors_to_waiting_invocations() {
    let api = RuntimeApi::start();
    let address = api.address();
    let poster = tokio::spawn(async move {
        let posted = reqwest::Client::new()
            .post(format!("http://{address}/2018-06-01/runtime/init/error"))
            .json_body(&json!({"errorType": "Runtime.ExitError", "errorMessage": "no config"}))
            .send()
            .await
            .expect("POST init/error");
        assert_eq!(posted.status(), 202);
    });
    let err = api.invoke(json!({})).await.expect_err("an init error");
    poster.await.unwrap();
    assert!(err.during_init);
    assert_eq!(err.error_type, "Runtime.ExitError");
    assert_eq!(err.error_message, "no config");
    assert_eq!(api.invocations(), 0);
}

#[tokio::test]
#[should_panic(expected = "no answer to invocation")]
async fn invoke_gives_up_when_nobody_answers() {
    let api = RuntimeApi::start_with(RuntimeApiOptions {
        invoke_timeout: Duration::from_millis(300),
        ..RuntimeApiOptions::default()
    });
    let _ = api.invoke(json!({})).await;
}

#[tokio::test]
async fn slack_sink_records_requests_and_answers_as_programmed() {
    let sink = SlackSink::start();
    assert!(sink.webhook_url().starts_with("https://127.0.0.1:"));
    assert!(sink.webhook_url().ends_with(sink.secret()));
    assert!(
        std::fs::read_to_string(sink.ca_file())
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    sink.respond_with(vec![
        SlackAnswer::rate_limited(7),
        SlackAnswer::status(404, "no_service"),
        SlackAnswer::ok().with_delay(Duration::from_millis(600)),
    ]);
    let client = client_trusting(&sink);
    let url = sink.webhook_url();

    let limited = client
        .post(&url)
        .json_body(&json!({"text": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(limited.text().await.unwrap(), "rate_limited");

    let gone = client
        .post(&url)
        .json_body(&json!({"text": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.text().await.unwrap(), "no_service");

    let started = Instant::now();
    let slow = client
        .post(&url)
        .json_body(&json!({"text": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(600));

    let put = client
        .put(sink.url("/cfn?X-Amz-Signature=abc"))
        .body("{\"Status\":\"SUCCESS\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "answers are used up: 200 ok");
    assert_eq!(put.text().await.unwrap(), "ok");

    let requests = sink.requests();
    let texts: Vec<Value> = requests[..3]
        .iter()
        .map(|r| r.body_json()["text"].clone())
        .collect();
    assert_eq!(texts, [json!("a"), json!("b"), json!("c")]);
    assert!(
        requests[..3]
            .iter()
            .all(|r| r.method == "POST" && r.path == sink.webhook_path())
    );
    assert_eq!(requests[0].header("Content-Type"), Some("application/json"));
    assert_eq!(requests[3].method, "PUT");
    assert_eq!(requests[3].path, "/cfn?X-Amz-Signature=abc");
    assert_eq!(requests[3].body_json()["Status"], "SUCCESS");
    assert!(requests[1].received_at >= requests[0].received_at);
}

/// Kills the child on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "test-world-{name}-{}-{:x}",
        std::process::id(),
        fastrand_seed()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_seed() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let give_up = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < give_up,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_slack_sink_command_writes_its_files_and_logs_bodies() {
    let dir = scratch_dir("sink-command");
    let (ca, url, log) = (dir.join("ca.pem"), dir.join("url"), dir.join("slack.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_test-world"))
        .arg("slack-sink")
        .arg("--ca-file")
        .arg(&ca)
        .arg("--url-file")
        .arg(&url)
        .arg("--log-file")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn test-world slack-sink");
    let mut guard = Guard(child);
    let url = wait_for_file(&url, Duration::from_secs(30))
        .trim()
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:") && url.contains("/services/"));
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let answer = client
        .post(&url)
        .json_body(&json!({"text": "hello", "color": "danger"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let expected = "{\n  \"text\": \"hello\",\n  \"color\": \"danger\"\n}\n";
    let give_up = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log).unwrap_or_default() != expected {
        assert!(
            Instant::now() < give_up,
            "log file holds {:?}",
            std::fs::read_to_string(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: the sink stops by itself and the pretty body was also on stdout.
    let terminated = Command::new("kill")
        .arg(guard.0.id().to_string())
        .status()
        .unwrap();
    assert!(terminated.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(guard.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, expected);
    let status = guard.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A function written in shell: polls /next with curl, echoes the event back (or reports an error
/// when the event says so), and prints what it can see of its environment.
const SHELL_FUNCTION: &str = r#"#!/bin/sh
set -eu
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
echo "function started as $AWS_LAMBDA_FUNCTION_NAME; key=${AWS_ACCESS_KEY_ID:-unset}; given=${GIVEN:-unset}" >&2
dir=$(mktemp -d)
while true; do
  curl -sS -D "$dir/headers" -o "$dir/event" "$api/invocation/next"
  id=$(tr -d '\r' < "$dir/headers" | awk -F': ' 'tolower($1) == "lambda-runtime-aws-request-id" { print $2 }')
  echo "handling $id"
  if grep -q '"fail"' "$dir/event"; then
    curl -sS -o /dev/null -X POST -d '{"errorType":"Boom","errorMessage":"asked to fail"}' "$api/invocation/$id/error"
  else
    curl -sS -o /dev/null -X POST --data-binary @"$dir/event" "$api/invocation/$id/response"
  fi
done
"#;

fn shell_function(dir: &Path) -> PathBuf {
    let path = dir.join("bootstrap");
    std::fs::write(&path, SHELL_FUNCTION).unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
    path
}

#[test]
fn the_invoke_command_runs_a_function_once() {
    let dir = scratch_dir("invoke-command").join("echo-function");
    std::fs::create_dir_all(&dir).unwrap();
    let function = shell_function(&dir);
    let event = dir.join("event.json");
    let run = |event_json: &str| {
        std::fs::write(&event, event_json).unwrap();
        Command::new(env!("CARGO_BIN_EXE_test-world"))
            .arg("invoke")
            .arg("--binary")
            .arg(&function)
            .arg("--event")
            .arg(&event)
            .args(["--env", "GIVEN=yes=really"])
            // Must not reach the function: only --env does.
            .env("AWS_ACCESS_KEY_ID", "leaked-from-parent")
            .output()
            .expect("run test-world invoke")
    };

    let ok = run(r#"{"echo": {"b": 1, "a": [true, null]}}"#);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    let answer: Value = serde_json::from_slice(&ok.stdout).expect("stdout is the JSON answer");
    assert_eq!(answer, json!({"echo": {"b": 1, "a": [true, null]}}));
    assert!(
        stderr.contains("function started as echo-function; key=unset; given=yes=really"),
        "{stderr}"
    );
    assert!(
        stderr.contains("handling 00000000-test-world-0001"),
        "{stderr}"
    );

    let failed = run(r#"{"fail": true}"#);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(failed.stdout.is_empty());
    assert!(stderr.contains("errorType: Boom"), "{stderr}");
    assert!(stderr.contains("errorMessage: asked to fail"), "{stderr}");

    let usage = Command::new(env!("CARGO_BIN_EXE_test-world"))
        .args(["invoke", "--event"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn events_decode_back_to_their_payloads() {
    use base64::Engine;
    use std::io::Read;
    let payload = events::data_message(&["{\"eventName\":\"A\"}".to_owned(), "x".to_owned()]);
    let event = events::awslogs_event(&payload);
    let data = event["awslogs"]["data"].as_str().unwrap();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut json)
        .unwrap();
    let decoded: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, payload);
    assert_eq!(decoded["logEvents"][1]["message"], "x");
    assert_eq!(decoded["logEvents"][0]["id"].as_str().unwrap().len(), 56);

    let sns = events::sns_event(&["m1".to_owned(), "m2".to_owned()]);
    assert_eq!(sns["Records"][1]["Sns"]["Message"], "m2");
    assert_eq!(sns["Records"][0]["EventSource"], "aws:sns");

    let delete = events::cfn_request("Delete", "https://x/y", json!({"KeyId": "k"}));
    assert!(delete["PhysicalResourceId"].is_string());
    let create = events::cfn_request("Create", "https://x/y", json!({}));
    assert!(create.get("PhysicalResourceId").is_none());
}
