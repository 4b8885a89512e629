//! The real `destination-slack` binary, run through a local Lambda Runtime API, decrypting its
//! webhook URL with moto's KMS and posting to a local HTTPS Slack stand-in whose throwaway CA it
//! trusts through SSL_CERT_FILE.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, InvocationError, LambdaProcess, MotoServer, RateLimit,
    RecordedRequest, RuntimeApi, RuntimeApiOptions, SlackAnswer, SlackSink, assert_no_secrets,
    block_kit, events,
};

use destination_slack::{WEBHOOK_ENCRYPTION_CONTEXT, WEBHOOK_ROUTES_ENCRYPTION_CONTEXT};

const BINARY: &str = env!("CARGO_BIN_EXE_destination-slack");

struct Destination {
    // Dropped in this order: the function, its Runtime API, the sink, moto.
    process: LambdaProcess,
    api: RuntimeApi,
    sink: SlackSink,
    moto: Option<MotoServer>,
    /// Extra strings that must never show (e.g. a refused http:// URL).
    secrets: Vec<String>,
}

impl Destination {
    /// The function with SLACK_WEBHOOK_URL = KMS ciphertext of the sink's webhook URL.
    async fn start() -> Destination {
        Self::start_with(RuntimeApiOptions::default(), &[]).await
    }

    /// As [`Self::start`], with a function timeout and extra environment.
    async fn start_with(options: RuntimeApiOptions, env: &[(&str, &str)]) -> Destination {
        let moto = MotoServer::start();
        let sink = SlackSink::start();
        let key = moto.create_kms_key().await;
        let ciphertext = moto
            .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
            .await;
        Self::spawn_with(moto, sink, &ciphertext, options, env)
    }

    fn spawn(moto: MotoServer, sink: SlackSink, slack_webhook_url: &str) -> Destination {
        Self::spawn_with(
            moto,
            sink,
            slack_webhook_url,
            RuntimeApiOptions::default(),
            &[],
        )
    }

    fn spawn_with(
        moto: MotoServer,
        sink: SlackSink,
        slack_webhook_url: &str,
        options: RuntimeApiOptions,
        extra_env: &[(&str, &str)],
    ) -> Destination {
        let api = RuntimeApi::start_with(options);
        let mut env = moto.lambda_env();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("SLACK_WEBHOOK_URL".to_owned(), slack_webhook_url.to_owned()));
        env.push((
            "SSL_CERT_FILE".to_owned(),
            sink.ca_file().to_string_lossy().into_owned(),
        ));
        let process = LambdaProcess::spawn(BINARY, &api, env);
        Destination {
            process,
            api,
            sink,
            moto: Some(moto),
            secrets: Vec::new(),
        }
    }

    /// The function with webhooks of their own besides the stack's: SLACK_WEBHOOK_ROUTES holds
    /// `routes` (made with the sink's URLs) encrypted for their purpose; the routes, and each
    /// `route_secrets`, must never show.
    async fn start_routed(
        routes: impl FnOnce(&SlackSink) -> String,
        route_secrets: &[&str],
        env: &[(&str, &str)],
    ) -> Destination {
        Self::start_routed_in(MotoServer::start(), routes, route_secrets, env).await
    }

    /// The same, in a moto already set up (its organisation made).
    async fn start_routed_in(
        moto: MotoServer,
        routes: impl FnOnce(&SlackSink) -> String,
        route_secrets: &[&str],
        env: &[(&str, &str)],
    ) -> Destination {
        let sink = SlackSink::start();
        let key = moto.create_kms_key().await;
        let webhook = moto
            .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
            .await;
        let routes = routes(&sink);
        let encrypted_routes = moto
            .kms_encrypt(&key, &routes, &WEBHOOK_ROUTES_ENCRYPTION_CONTEXT)
            .await;
        let mut env = env.to_vec();
        env.push(("SLACK_WEBHOOK_ROUTES", &encrypted_routes));
        let mut destination =
            Self::spawn_with(moto, sink, &webhook, RuntimeApiOptions::default(), &env);
        destination.secrets.push(routes.clone());
        destination
            .secrets
            .extend(route_secrets.iter().map(|secret| secret.to_string()));
        destination
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            self.sink.webhook_url(),
            self.sink.webhook_path(),
            self.sink.secret().to_owned(),
            DUMMY_SECRET_ACCESS_KEY.to_owned(),
        ];
        secrets.extend(self.secrets.iter().cloned());
        secrets
    }

    /// Invokes with an SNS event of these Message texts; checks that an error shows no secret.
    async fn invoke(&self, messages: &[String]) -> Result<Value, InvocationError> {
        self.invoke_event(events::sns_event(messages)).await
    }

    /// Invokes with an SQS batch of these Message texts (message IDs `message-0`, ...).
    async fn invoke_batch(&self, messages: &[String]) -> Result<Value, InvocationError> {
        self.invoke_event(events::sqs_event(messages)).await
    }

    async fn invoke_event(&self, event: Value) -> Result<Value, InvocationError> {
        let answer = self.api.invoke(event).await;
        if let Err(error) = &answer {
            let secrets = self.secrets();
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            assert_no_secrets("the invocation error", &error.to_string(), &secrets);
        }
        answer
    }

    /// Stops the function; checks that its output shows no secret; returns the output.
    fn finish(self) -> String {
        let output = self.process.stop();
        let secrets = self.secrets();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_no_secrets("the function's output", &output, &secrets);
        output
    }
}

fn message(subject: &str, fields: Value, metadata: Value, tags: Value) -> String {
    json!({"subject": subject, "fields": fields, "metadata": metadata, "tags": tags}).to_string()
}

fn cloudtrail_metadata() -> Value {
    json!({"sourceName": "Cloudtrail", "sourceIconUrl": "https://example.com/AWS-CloudTrail.png"})
}

/// A plain Message, told apart by its subject.
fn simple(subject: &str) -> String {
    message(
        subject,
        json!([{"key": "Event", "value": subject}]),
        cloudtrail_metadata(),
        json!([]),
    )
}

/// A Message of one field, from a publisher that says how severe it is.
fn with_severity(subject: &str, severity: &str) -> String {
    message(
        subject,
        json!([{"key": "Detail", "value": subject}]),
        json!({"sourceName": "my-app"}),
        json!([{"key": "severity", "value": severity}]),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn assert_is_webhook_post(sink: &SlackSink, request: &RecordedRequest) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, sink.webhook_path());
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
}

fn gap(requests: &[RecordedRequest], i: usize) -> Duration {
    requests[i + 1]
        .received_at
        .duration_since(requests[i].received_at)
}

#[tokio::test]
async fn posts_the_original_slack_body_for_every_record() {
    let destination = Destination::start().await;
    let spec_example = message(
        "AKey: SomeValue",
        json!([
            {"key": "AKey", "value": "SomeValue"},
            {"key": "AnotherKey", "value": {"SomeSubKey": "SomeSubValue"}}
        ]),
        cloudtrail_metadata(),
        json!([{"key": "slack-preferred-channel", "value": "#security-alerts"}]),
    );
    let value_kinds = message(
        "Count: 42",
        json!([
            {"key": "Count", "value": 42},
            {"key": "Enabled", "value": true},
            {"key": "Nothing", "value": null},
            {"key": "List", "value": [1, "two"]},
            {"key": "Ordered", "value": {"z": 1, "a": {"y": 2, "b": 3}}}
        ]),
        json!({}),
        json!([]),
    );
    let answer = destination
        .invoke(&[spec_example, value_kinds])
        .await
        .expect("both records are delivered");
    assert_eq!(answer, json!({"delivered": 2}));

    let requests = destination.sink.requests();
    assert_eq!(requests.len(), 2, "one POST per record: {requests:#?}");
    for request in &requests {
        assert_is_webhook_post(&destination.sink, request);
    }
    let first = requests[0].body_json();
    assert_eq!(first["username"], "Cloudtrail");
    assert_eq!(first["icon_url"], "https://example.com/AWS-CloudTrail.png");
    assert_eq!(first["color"], "danger");
    assert_eq!(
        first["text"],
        "AKey: SomeValue\nAnotherKey: {\n  \"SomeSubKey\": \"SomeSubValue\"\n}"
    );
    assert_eq!(first["channel"], "#security-alerts");
    assert!(
        first["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "{first}"
    );

    let second = requests[1].body_json();
    assert_eq!(second["color"], "danger");
    assert_eq!(
        second["text"],
        "Count: 42\nEnabled: true\nNothing: null\nList: [\n  1,\n  \"two\"\n]\nOrdered: {\n  \"z\": 1,\n  \"a\": {\n    \"y\": 2,\n    \"b\": 3\n  }\n}"
    );
    for absent in ["username", "icon_url", "channel"] {
        assert!(
            second.get(absent).is_none(),
            "{absent} without metadata/tag: {second}"
        );
    }
    destination.finish();
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

#[tokio::test]
async fn slack_markup_is_escaped_everywhere_and_unicode_and_numbers_pass_through() {
    let destination = Destination::start().await;
    let hostile = "<!channel> <!here> <@U024BE7LH> <https://evil.example|click me> & Zoë 🚀 日本";
    let raw = format!(
        r#"{{"subject":{subject},"fields":[{{"key":"Error Message","value":{subject}}},{{"key":"<!here> & key","value":"x"}},{{"key":"Request Parameters","value":{{"policy":{subject},"big":1180591620717411303424}}}}],"metadata":{{"sourceName":"Cloudtrail"}},"tags":[]}}"#,
        subject = serde_json::to_string(hostile).unwrap()
    );
    destination
        .invoke(&[raw])
        .await
        .expect("the record is delivered");
    let requests = destination.sink.requests();
    assert_eq!(requests.len(), 1);
    let body_text = requests[0].body_text();
    let body = requests[0].body_json();

    let expected_text = escape(&format!(
        "Error Message: {hostile}\n<!here> & key: x\nRequest Parameters: {{\n  \"policy\": {},\n  \"big\": 1180591620717411303424\n}}",
        serde_json::to_string(hostile).unwrap()
    ));
    assert_eq!(body["text"], expected_text.as_str());
    assert!(body_text.contains("1180591620717411303424"), "{body_text}");
    assert!(
        body_text.contains("Zoë 🚀 日本") || body_text.contains("Zo\\u00eb"),
        "{body_text}"
    );

    let mut all = Vec::new();
    strings(&body, &mut all);
    for text in &all {
        // A `>` starting a line is the post's own quote marker; any other is markup let through.
        let unquoted: String = text
            .lines()
            .map(|line| line.strip_prefix('>').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !unquoted.contains('<') && !unquoted.contains('>'),
            "unescaped markup posted to Slack: {text:?}"
        );
        let mut rest = text.as_str();
        while let Some(at) = rest.find('&') {
            rest = &rest[at..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "a bare & posted to Slack: {text:?}"
            );
            rest = &rest[1..];
        }
    }
    let blocks = body["blocks"].to_string();
    assert!(
        blocks.contains("&lt;!channel&gt;") && blocks.contains("&amp;"),
        "the blocks carry the escaped values: {blocks}"
    );
    destination.finish();
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_slack_asks() {
    let destination = Destination::start().await;
    destination
        .sink
        .respond_with(vec![SlackAnswer::rate_limited(2), SlackAnswer::ok()]);
    let answer = destination
        .invoke(&[simple("rate limited once")])
        .await
        .expect("delivered after the wait");
    assert_eq!(answer, json!({"delivered": 1}));
    let requests = destination.sink.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same body is retried"
    );
    assert!(
        gap(&requests, 0) >= Duration::from_millis(1_900),
        "Retry-After: 2 was not honoured: retried after {:?}",
        gap(&requests, 0)
    );
    destination.finish();
}

#[tokio::test]
async fn a_retry_after_too_long_for_the_function_fails_at_once_naming_429() {
    let destination = Destination::start().await;
    destination
        .sink
        .respond_with(vec![SlackAnswer::rate_limited(3_600)]);
    let started = Instant::now();
    let error = destination
        .invoke(&[simple("rate limited for an hour")])
        .await
        .expect_err("cannot wait an hour");
    assert!(error.error_message.contains("429"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(destination.sink.requests().len(), 1);
    destination.finish();
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let destination = Destination::start().await;
    destination.sink.respond_with(vec![
        SlackAnswer::status(500, "internal_error"),
        SlackAnswer::status(503, "service_unavailable"),
        SlackAnswer::ok(),
    ]);
    let answer = destination
        .invoke(&[simple("flaky slack")])
        .await
        .expect("delivered on the third try");
    assert_eq!(answer, json!({"delivered": 1}));
    let requests = destination.sink.requests();
    assert_eq!(requests.len(), 3);
    for i in 0..2 {
        assert!(
            gap(&requests, i) >= Duration::from_millis(200),
            "retry {} came after only {:?}",
            i + 1,
            gap(&requests, i)
        );
    }
    destination.finish();
}

#[tokio::test]
async fn a_slack_that_keeps_failing_is_given_up_after_a_handful_of_tries() {
    let destination = Destination::start().await;
    destination
        .sink
        .respond_with(vec![SlackAnswer::status(500, "internal_error"); 20]);
    let started = Instant::now();
    let error = destination
        .invoke(&[simple("slack is down")])
        .await
        .expect_err("never delivered");
    assert_eq!(error.error_type, "NotDelivered", "{error}");
    assert!(error.error_message.contains("500"), "{error}");
    let tries = destination.sink.requests().len();
    assert!((2..=6).contains(&tries), "{tries} tries");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "must end within the function's 30 s: {:?}",
        started.elapsed()
    );
    destination.finish();
}

#[tokio::test]
async fn a_slack_that_does_not_answer_in_time_is_retried() {
    let destination = Destination::start().await;
    destination.sink.respond_with(vec![
        SlackAnswer::ok().with_delay(Duration::from_secs(60)),
        SlackAnswer::ok(),
    ]);
    let answer = destination
        .invoke(&[simple("slow slack")])
        .await
        .expect("delivered on the retry after the timeout");
    assert_eq!(answer, json!({"delivered": 1}));
    assert_eq!(destination.sink.requests().len(), 2);
    destination.finish();
}

#[tokio::test]
async fn permanent_client_errors_fail_at_once_naming_the_status() {
    let destination = Destination::start().await;
    let cases = [
        (403, "invalid_token"),
        (404, "no_service"),
        (410, "channel_is_archived"),
    ];
    for (round, (status, reason)) in cases.into_iter().enumerate() {
        destination
            .sink
            .respond_with(vec![SlackAnswer::status(status, reason)]);
        let error = destination
            .invoke(&[simple(&format!("revoked webhook {status}"))])
            .await
            .expect_err("a permanent error fails the invocation");
        assert_eq!(error.error_type, "NotDelivered", "{error}");
        assert!(error.error_message.contains(&status.to_string()), "{error}");
        assert_eq!(
            destination.sink.requests().len(),
            round + 1,
            "{status} must not be retried"
        );
    }
    assert!(destination.process.is_running());
    destination.finish();
}

/// With Lambda's JSON log format (the template's), every line the function writes is one JSON
/// object: a subject with newlines in it cannot forge a log line. In the text format the
/// subject is written quoted, its newlines escaped.
#[tokio::test]
async fn an_attackers_newlines_never_forge_a_log_line() {
    let forged = "denied\nERROR the webhook is https://evil.example (forged)";
    for json_format in [true, false] {
        let env: &[(&str, &str)] = if json_format {
            &[("AWS_LAMBDA_LOG_FORMAT", "JSON")]
        } else {
            &[]
        };
        let destination = Destination::start_with(RuntimeApiOptions::default(), env).await;
        destination.invoke(&[simple(forged)]).await.expect("posted");
        let output = destination.finish();
        assert!(
            output.contains("delivered") && output.contains("Slack"),
            "{output}"
        );
        for line in output.lines().filter(|line| !line.trim().is_empty()) {
            assert!(
                !line.starts_with("ERROR the webhook"),
                "a forged line: {output}"
            );
            if json_format {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
                assert!(entry.is_object(), "{line}");
            }
        }
    }
}

/// The heartbeat's legs (its canary call, through each source, signed with the heartbeat key)
/// are counted in the stack's HeartbeatsDelivered metric of their path, one embedded-metric
/// line each, and posted nowhere. A leg without the key's signature (someone who may publish to
/// the topic, hiding a dead source), or another stack's, or an old one, is not counted, and is
/// posted as what it is.
#[tokio::test]
async fn heartbeat_legs_are_counted_by_path_and_a_forged_one_is_told_not_counted() {
    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let heartbeat_key = moto.create_kms_hmac_key().await;
    let ciphertext = moto
        .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    let now = activity_aware_message::time::now_rfc3339();
    let leg = |stack: &str, path: &str, id: &str, time: &str, mac: Option<&str>| {
        let mut tags = vec![
            json!({"key": "heartbeat", "value": stack}),
            json!({"key": "heartbeat-path", "value": path}),
            json!({"key": "severity", "value": "info"}),
            json!({"key": "event-time", "value": time}),
        ];
        if let Some(mac) = mac {
            tags.push(json!({"key": "heartbeat-mac", "value": mac}));
        }
        message(
            &format!("Heartbeat through the {path} source"),
            json!([{"key": "Path", "value": path}, {"key": "Event ID", "value": id}, {"key": "Event Time", "value": time}]),
            json!({"sourceName": "Activity Aware IDS"}),
            Value::Array(tags),
        )
    };
    let sign = |path: &str, id: &str, time: &str| {
        let text = activity_aware_message::heartbeat_mac_text("ids", path, id, time);
        let moto = &moto;
        let heartbeat_key = heartbeat_key.clone();
        async move { moto.kms_generate_mac(&heartbeat_key, &text).await }
    };
    let through_eventbridge = sign("eventbridge", "e-1", &now).await;
    let through_logs = sign("cloudwatch-logs", "e-2", &now).await;
    let old_time = "2026-01-01T00:00:00Z";
    let old = sign("eventbridge", "e-3", old_time).await;
    let batch = [
        leg(
            "ids",
            "eventbridge",
            "e-1",
            &now,
            Some(&through_eventbridge),
        ),
        leg("ids", "cloudwatch-logs", "e-2", &now, Some(&through_logs)),
        // Forged: no signature, a signature of another leg, another stack, an old call.
        leg("ids", "cloudwatch-logs", "e-9", &now, None),
        leg("ids", "cloudwatch-logs", "e-9", &now, Some(&through_logs)),
        leg(
            "other",
            "eventbridge",
            "e-1",
            &now,
            Some(&through_eventbridge),
        ),
        leg("ids", "eventbridge", "e-3", old_time, Some(&old)),
        simple("not a heartbeat"),
    ];
    let env = [("HEARTBEAT_KEY_ARN", heartbeat_key.as_str())];
    let destination =
        Destination::spawn_with(moto, sink, &ciphertext, RuntimeApiOptions::default(), &env);
    destination.invoke(&batch).await.expect("posted");
    let posted: Vec<String> = destination
        .sink
        .accepted()
        .iter()
        .map(|post| post.body_json()["text"].as_str().unwrap().to_owned())
        .collect();
    let forged = posted
        .iter()
        .filter(|text| text.starts_with("Why: Not counted: "))
        .count();
    assert_eq!(forged, 4, "{posted:#?}");
    assert!(posted.iter().any(|text| text.contains("not a heartbeat")));
    assert_eq!(
        posted.len(),
        5,
        "the two genuine legs are posted nowhere: {posted:#?}"
    );
    let output = destination.finish();
    let metrics: Vec<Value> = output
        .lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| serde_json::from_str(line).expect("a metric line is JSON"))
        .collect();
    let mut paths: Vec<&str> = metrics
        .iter()
        .map(|metric| {
            assert_eq!(
                (&metric["HeartbeatsDelivered"], &metric["Stack"]),
                (&json!(1), &json!("ids"))
            );
            assert_eq!(
                metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([["Stack", "Path"]])
            );
            metric["Path"].as_str().unwrap()
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["cloudwatch-logs", "eventbridge"], "{output}");
}

/// Slack refusing a post's blocks (400) does not lose the alert: its text goes alone.
#[tokio::test]
async fn a_refused_post_is_posted_again_as_text_alone() {
    let destination = Destination::start().await;
    destination
        .sink
        .respond_with(vec![SlackAnswer::status(400, "invalid_blocks")]);
    let answer = destination
        .invoke(&[simple("blocks Slack refuses")])
        .await
        .expect("posted as text");
    assert_eq!(answer["delivered"], 1, "{answer}");
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 2);
    let (first, second) = (posts[0].body_json(), posts[1].body_json());
    assert!(first.get("blocks").is_some());
    assert!(second.get("blocks").is_none(), "{second}");
    assert_eq!(second["text"], first["text"]);
    assert_eq!(second["unfurl_links"], false);
    // Refused as text too: the invocation fails, naming the status.
    destination.sink.respond_with(vec![
        SlackAnswer::status(400, "invalid_blocks"),
        SlackAnswer::status(400, "invalid_payload"),
    ]);
    let error = destination
        .invoke(&[simple("refused twice")])
        .await
        .expect_err("not delivered");
    assert!(error.error_message.contains("400"), "{error}");
    assert_eq!(destination.sink.requests().len(), 4);
    destination.finish();
}

#[tokio::test]
async fn a_malformed_message_fails_the_invocation_but_not_its_neighbours() {
    let destination = Destination::start().await;
    let error = destination
        .invoke(&[
            simple("first neighbour"),
            "this is not JSON".to_owned(),
            json!({"fields": [{"key": "a", "value": "b"}]}).to_string(),
            simple("second neighbour"),
        ])
        .await
        .expect_err("two records could not be delivered");
    assert!(
        error
            .error_message
            .contains("Missing Required Parameter 'subject'"),
        "{error}"
    );
    let texts: Vec<Value> = destination
        .sink
        .requests()
        .iter()
        .map(|r| r.body_json()["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("Event: first neighbour"),
            json!("Event: second neighbour")
        ]
    );
    let output = destination.finish();
    for delivered in ["first neighbour", "second neighbour"] {
        assert!(
            output.contains(delivered),
            "the log should show that {delivered:?} went out:\n{output}"
        );
    }
}

#[tokio::test]
async fn a_rejected_record_does_not_hide_the_delivered_one() {
    let destination = Destination::start().await;
    // Refused with its blocks and as text alone.
    destination.sink.respond_with(vec![
        SlackAnswer::status(400, "invalid_payload"),
        SlackAnswer::status(400, "invalid_payload"),
        SlackAnswer::ok(),
    ]);
    let error = destination
        .invoke(&[simple("rejected one"), simple("delivered one")])
        .await
        .expect_err("one record was not delivered");
    assert!(error.error_message.contains("400"), "{error}");
    assert_eq!(destination.sink.requests().len(), 3);
    let output = destination.finish();
    assert!(output.contains("delivered one"), "{output}");
    assert!(output.contains("400"), "{output}");
}

#[tokio::test]
async fn the_webhook_is_decrypted_once_per_container() {
    let mut destination = Destination::start().await;
    destination
        .invoke(&[simple("before moto stops")])
        .await
        .expect("delivered");
    // No KMS from now on: only a URL kept from the cold start can deliver.
    drop(destination.moto.take());
    destination
        .invoke(&[simple("after moto stopped")])
        .await
        .expect("delivered with the URL decrypted at the first invocation");
    assert_eq!(destination.sink.requests().len(), 2);
    destination.finish();
}

#[tokio::test]
async fn a_ciphertext_kms_cannot_decrypt_fails_clearly() {
    use base64::Engine;
    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let garbage =
        base64::engine::general_purpose::STANDARD.encode(b"not a KMS ciphertext blob at all");
    let destination = Destination::spawn(moto, sink, &garbage);
    let error = destination
        .invoke(&[simple("never sent")])
        .await
        .expect_err("the URL cannot be decrypted");
    let text = error.to_string().to_lowercase();
    assert!(text.contains("kms") && text.contains("decrypt"), "{error}");
    assert!(
        destination.process.is_running(),
        "a bad ciphertext must not kill the container"
    );
    assert!(destination.sink.requests().is_empty());
    destination.finish();
}

#[tokio::test]
async fn a_ciphertext_that_is_not_base64_fails_clearly() {
    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let destination = Destination::spawn(moto, sink, "%%% not base64 %%%");
    let error = destination
        .invoke(&[simple("never sent")])
        .await
        .expect_err("the setting is not base64");
    assert!(error.error_message.contains("base64"), "{error}");
    assert!(destination.sink.requests().is_empty());
    destination.finish();
}

#[tokio::test]
async fn a_plain_http_webhook_is_refused() {
    let moto = MotoServer::start();
    let sink = SlackSink::start();
    // A plain TCP listener the function must never connect to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let http_url = format!(
        "http://127.0.0.1:{}/services/T0TESTWRLD/B0TESTWRLD/XXXXplainhttpSecretPath",
        listener.local_addr().unwrap().port()
    );
    let key = moto.create_kms_key().await;
    let ciphertext = moto
        .kms_encrypt(&key, &http_url, &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    let mut destination = Destination::spawn(moto, sink, &ciphertext);
    destination.secrets.push(http_url.clone());
    destination
        .secrets
        .push("XXXXplainhttpSecretPath".to_owned());
    let error = destination
        .invoke(&[simple("never sent")])
        .await
        .expect_err("an http:// webhook is refused");
    assert!(error.error_message.contains("https"), "{error}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the function connected to the http:// URL"
    );
    destination.finish();
}

// --- From the stack's buffer queue: SQS batches, digests, pacing, batch item failures ---

/// A denial by `principal`, as the CloudTrail source publishes it (tags included).
fn denial(principal: &str, action: &str, region: &str, second: u32) -> String {
    message(
        &format!("Error Message: {principal} is not authorized to perform: {action}"),
        json!([
            {"key": "Error Message", "value": format!("{principal} is not authorized to perform: {action}")},
            {"key": "Event", "value": action},
            {"key": "User ARN", "value": principal},
            {"key": "Region", "value": region},
        ]),
        cloudtrail_metadata(),
        json!([
            {"key": "digest-group", "value": principal},
            {"key": "digest-field", "value": "Event"},
            {"key": "digest-field", "value": "Region"},
            {"key": "event-time", "value": format!("2024-06-02T20:16:{second:02}Z")},
        ]),
    )
}

fn batch_failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_becomes_one_post_per_principal() {
    let destination = Destination::start().await;
    let mallory = "arn:aws:iam::111122223333:user/mallory";
    let alice = "arn:aws:iam::111122223333:user/alice";
    let batch = [
        denial(mallory, "ListUsers", "us-east-1", 1),
        denial(alice, "GetObject", "eu-west-1", 2),
        denial(mallory, "ListRoles", "us-east-1", 3),
        denial(mallory, "ListRoles", "eu-west-1", 4),
        denial(mallory, "GetPolicy", "us-east-1", 9),
    ];
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 2, "one post per principal");
    let digest = posts[0].body_json();
    block_kit::assert_valid(&digest);
    let text = digest["text"].as_str().unwrap();
    for line in [
        "Count: 4",
        "Time Span: 2024-06-02T20:16:01Z to 2024-06-02T20:16:09Z (8 s)",
        "Event (3 distinct): ListRoles ×2, ListUsers ×1, GetPolicy ×1",
        "Region (2 distinct): us-east-1 ×3, eu-west-1 ×1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    assert!(
        !text.contains("alice"),
        "another principal joined the digest"
    );
    // A group of one is the single Message it is.
    let single = posts[1].body_json();
    let alone: Value = serde_json::from_str(&batch[1]).unwrap();
    assert_eq!(
        single["text"],
        escape(&format!(
            "Error Message: {alice} is not authorized to perform: GetObject\nEvent: GetObject\nUser ARN: {alice}\nRegion: eu-west-1"
        ))
    );
    assert_eq!(single["blocks"][0]["text"]["text"], alone["subject"]);
    destination.finish();
}

/// A record as the CloudTrail sources publish it: mallory's call, denied or not.
fn mallorys(event_source: &str, event_name: &str, second: u32, denied: bool) -> String {
    let mut record = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAMALLORY", "arn": "arn:aws:iam::111122223333:user/mallory",
            "accountId": "111122223333", "userName": "mallory"},
        "eventTime": format!("2024-06-02T20:16:{second:02}Z"), "eventSource": event_source, "eventName": event_name,
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "requestParameters": {"name": "main"},
        "eventID": format!("0e6c2d0e-0000-4000-8000-0000000000{second:02}"), "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    if denied {
        record["errorCode"] = json!("AccessDenied");
        record["errorMessage"] =
            json!(format!("mallory is not authorized to perform {event_name}"));
    }
    events::message_json_of_record(&record.to_string()).expect("a Message")
}

/// The attacker's own StopLogging amid their denials: a post of its own, first, headed by what
/// they did, never one counted line of the denials' digest.
#[tokio::test]
async fn a_detection_is_never_hidden_in_a_digest_of_denials() {
    let destination = Destination::start().await;
    let mut batch: Vec<String> = (1..=6)
        .map(|second| mallorys("iam.amazonaws.com", "ListUsers", second, true))
        .collect();
    batch.insert(
        3,
        mallorys("cloudtrail.amazonaws.com", "StopLogging", 30, false),
    );
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 2, "the detection and the denials' digest");
    let headers: Vec<String> = posts
        .iter()
        .map(|post| {
            post.body_json()["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        headers,
        [
            "[Critical] CloudTrail logging stopped: mallory called cloudtrail:StopLogging",
            "[Low] mallory was denied iam:ListUsers",
        ]
    );
    let digest = posts[1].body_json();
    assert!(
        digest["text"]
            .as_str()
            .unwrap()
            .lines()
            .any(|line| line == "Count: 6")
    );
    assert!(!digest.to_string().contains("StopLogging"));
    let alert = posts[0].body_json().to_string();
    for said in ["Why It Matters", "Defense Evasion", "trail main"] {
        assert!(alert.contains(said), "{said} not in {alert}");
    }
    destination.finish();
}

/// Another publisher's Messages of one group but two severities are two posts.
#[tokio::test]
async fn a_digest_never_mixes_severities() {
    let destination = Destination::start().await;
    let tagged = |severity: &str, subject: &str| {
        message(
            subject,
            json!([{"key": "Detail", "value": subject}]),
            json!({"sourceName": "my-app"}),
            json!([{"key": "digest-group", "value": "deploys"}, {"key": "severity", "value": severity}]),
        )
    };
    let batch = [
        tagged("low", "deploy 1"),
        tagged("low", "deploy 2"),
        tagged("high", "deploy 3 rolled back"),
        tagged("low", "deploy 4"),
    ];
    destination.invoke_batch(&batch).await.expect("posted");
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].body_json()["blocks"][0]["text"]["text"],
        "[High] deploy 3 rolled back"
    );
    assert!(
        posts[1].body_json()["text"]
            .as_str()
            .unwrap()
            .contains("Count: 3")
    );
    destination.finish();
}

#[tokio::test]
async fn a_bad_message_comes_back_and_its_neighbours_are_posted() {
    let destination = Destination::start().await;
    let answer = destination
        .invoke_batch(&[simple("first"), "not JSON".into(), simple("third")])
        .await
        .expect("a partial batch response");
    assert_eq!(batch_failures(&answer), ["message-1"]);
    assert_eq!(destination.sink.requests().len(), 2);
    let output = destination.finish();
    assert!(
        output.contains("message-1"),
        "the log names the bad message: {output}"
    );
}

#[tokio::test]
async fn what_the_deadline_leaves_unposted_comes_back_and_nothing_is_posted_twice() {
    // A 9 s function posting one a second: about five posts fit before it must stop. High
    // alerts are never folded into a summary: what does not fit comes back.
    let options = RuntimeApiOptions {
        deadline: Duration::from_secs(9),
        ..RuntimeApiOptions::default()
    };
    let destination = Destination::start_with(options, &[("SLACK_POST_INTERVAL_MS", "1000")]).await;
    let batch: Vec<String> = (0..12)
        .map(|i| with_severity(&format!("alert {i}"), "high"))
        .collect();
    let answer = destination
        .invoke_batch(&batch)
        .await
        .expect("a partial batch response");
    let failed = batch_failures(&answer);
    let posted = destination.sink.requests();
    assert!((3..=8).contains(&posted.len()), "{} posts", posted.len());
    assert_eq!(posted.len() + failed.len(), 12);
    // The first ones went; exactly the rest come back.
    let expected: Vec<String> = (posted.len()..12).map(|i| format!("message-{i}")).collect();
    assert_eq!(failed, expected);
    // Sent a second apart; they arrive less apart only by the first connection's handshake.
    for i in 0..posted.len() - 1 {
        assert!(
            gap(&posted, i) >= Duration::from_millis(850),
            "posts {i} and {} {:?} apart",
            i + 1,
            gap(&posted, i)
        );
    }
    // SQS brings the rest back: each is posted once, and no earlier one again.
    let again: Vec<String> = failed
        .iter()
        .map(|id| batch[id.trim_start_matches("message-").parse::<usize>().unwrap()].clone())
        .collect();
    let mut rounds = 0;
    let mut pending = again;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds < 5, "never drained");
        let answer = destination
            .invoke_batch(&pending)
            .await
            .expect("a partial batch response");
        let failed = batch_failures(&answer);
        pending = failed
            .iter()
            .map(|id| pending[id.trim_start_matches("message-").parse::<usize>().unwrap()].clone())
            .collect();
    }
    let texts: Vec<String> = destination
        .sink
        .requests()
        .iter()
        .map(|r| r.body_json()["text"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = texts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 12, "every alert exactly once: {texts:?}");
    assert_eq!(texts.len(), 12);
    destination.finish();
}

/// More groups than fit before the deadline: the least severe are folded into one summary
/// that counts them all, the severe keep posts of their own, first, and nothing comes back.
#[tokio::test]
async fn more_groups_than_fit_are_folded_into_a_summary_and_none_comes_back() {
    let options = RuntimeApiOptions {
        deadline: Duration::from_secs(9),
        ..RuntimeApiOptions::default()
    };
    let destination = Destination::start_with(options, &[("SLACK_POST_INTERVAL_MS", "1000")]).await;
    let mut batch: Vec<String> = (0..40)
        .flat_map(|session| {
            let arn = format!("arn:aws:sts::111122223333:assumed-role/probe/session-{session}");
            [
                denial(&arn, "ListUsers", "us-east-1", 1),
                denial(&arn, "GetPolicy", "us-east-1", 2),
            ]
        })
        .collect();
    batch.insert(17, with_severity("the attacker's StopLogging", "critical"));
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "nothing comes back"
    );
    let posts = destination.sink.requests();
    assert!((3..=8).contains(&posts.len()), "{} posts", posts.len());
    let headers: Vec<String> = posts
        .iter()
        .map(|post| {
            post.body_json()["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(headers[0], "[Critical] the attacker's StopLogging");
    let summary = posts.last().unwrap().body_json();
    block_kit::assert_valid(&summary);
    let text = summary["text"].as_str().unwrap();
    let folded = count_of(text);
    // Every denial is counted: in its own digest or in the summary.
    let digests = posts.len() - 2;
    assert_eq!(digests * 2 + folded, 80, "{text}");
    assert!(
        text.contains(&format!(
            "arn:aws:sts::111122223333:assumed-role/probe/* ({} sessions) ×{folded}: GetPolicy ×{}, ListUsers ×{}",
            folded / 2,
            folded / 2,
            folded / 2
        )),
        "{text}"
    );
    destination.finish();
}

/// The `Count: N` of a post's text (1 for a single Message).
fn count_of(text: &str) -> usize {
    text.lines()
        .find_map(|line| line.strip_prefix("Count: "))
        .map_or(1, |count| count.parse().unwrap())
}

#[tokio::test]
async fn a_revoked_webhook_fails_the_whole_batch_at_once() {
    let destination = Destination::start().await;
    destination
        .sink
        .respond_with(vec![SlackAnswer::status(404, "no_service")]);
    let started = Instant::now();
    let error = destination
        .invoke_batch(&[simple("a"), simple("b"), simple("c")])
        .await
        .expect_err("nothing could be posted: the invocation fails, loudly");
    assert_eq!(error.error_type, "NotDelivered");
    assert!(
        error
            .error_message
            .starts_with("3 of 3 messages were not delivered"),
        "{error}"
    );
    assert!(
        error.error_message.contains("404 Not Found (no_service)"),
        "{error}"
    );
    assert_eq!(
        destination.sink.requests().len(),
        1,
        "a revoked webhook is not hammered"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    destination.finish();
}

#[tokio::test]
async fn a_slack_outage_midway_returns_only_what_was_not_posted() {
    let destination = Destination::start().await;
    let mut answers = vec![SlackAnswer::ok()];
    answers.extend(vec![SlackAnswer::status(503, "service_unavailable"); 10]);
    destination.sink.respond_with(answers);
    let answer = destination
        .invoke_batch(&[
            simple("posted"),
            simple("outage"),
            simple("after the outage"),
        ])
        .await
        .expect("a partial batch response");
    assert_eq!(batch_failures(&answer), ["message-1", "message-2"]);
    let requests = destination.sink.requests();
    assert!(
        requests
            .iter()
            .all(|r| !r.body_text().contains("after the outage")),
        "nothing is tried after Slack gave up"
    );
    destination.finish();
}

#[tokio::test]
async fn retry_after_holds_every_later_post() {
    // Posting faster than Slack takes (as two instances with too short an interval would):
    // Slack answers 429, and every post waits as it asks.
    let destination = Destination::start_with(
        RuntimeApiOptions::default(),
        &[("SLACK_POST_INTERVAL_MS", "100"), ("SLACK_POST_BURST", "5")],
    )
    .await;
    destination.sink.enforce(RateLimit {
        interval: Duration::from_secs(1),
        burst: 1,
        retry_after_seconds: 2,
    });
    let batch: Vec<String> = (0..4).map(|i| simple(&format!("alert {i}"))).collect();
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(batch_failures(&answer), Vec::<String>::new());
    let requests = destination.sink.requests();
    let accepted = destination.sink.accepted();
    assert_eq!(accepted.len(), 4);
    let refused = requests.len() - accepted.len();
    assert!(
        refused >= 1,
        "Slack never had to refuse: the test shows nothing"
    );
    // After each 429, nothing came back before its Retry-After.
    for (i, request) in requests.iter().enumerate() {
        if request.status == 429 && i + 1 < requests.len() {
            assert!(
                gap(&requests, i) >= Duration::from_millis(1_900),
                "request {} came {:?} after a 429",
                i + 1,
                gap(&requests, i)
            );
        }
    }
    destination.finish();
}

#[tokio::test]
async fn a_webhook_encrypted_without_its_purpose_is_refused() {
    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    // Ciphertext of the right URL, but made for something else: not to be replayed here.
    let ciphertext = moto
        .kms_encrypt(&key, &sink.webhook_url(), &[("purpose", "something-else")])
        .await;
    let destination = Destination::spawn(moto, sink, &ciphertext);
    let error = destination
        .invoke(&[simple("never posted")])
        .await
        .expect_err("the webhook cannot be decrypted");
    assert_eq!(error.error_type, "Configuration", "{error}");
    assert!(
        error
            .error_message
            .starts_with("KMS could not decrypt SLACK_WEBHOOK_URL"),
        "{error}"
    );
    assert!(destination.sink.requests().is_empty());
    destination.finish();
}

#[tokio::test]
async fn accounts_are_shown_by_name_and_the_text_stays_the_originals() {
    let record = events::corpus_denial();
    let account = record["recipientAccountId"].as_str().unwrap().to_owned();
    let names = format!("{account}=prod,444455556666=staging");
    let destination =
        Destination::start_with(RuntimeApiOptions::default(), &[("ACCOUNT_NAMES", &names)]).await;
    let answer = destination
        .invoke_event(events::destination_batch(&record))
        .await
        .expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 1, "three denials by one key: one digest");
    let body = posts[0].body_json();
    block_kit::assert_valid(&body);
    let user = record["userIdentity"]["userName"].as_str().unwrap();
    let action = format!(
        "{}:{}",
        record["eventSource"]
            .as_str()
            .unwrap()
            .trim_end_matches(".amazonaws.com"),
        record["eventName"].as_str().unwrap()
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        format!("[Low] {user} was denied {action}")
    );
    let blocks = body["blocks"].to_string();
    assert!(
        blocks.contains(&format!("*Account*\\n`prod ({account})`")),
        "{blocks}"
    );
    let text = body["text"].as_str().unwrap();
    assert!(text.contains(&format!("Recipient Account ID: {account}")));
    assert!(!text.contains("prod ("), "the text is the original's");
    // The console button leads to the event.
    let event_id = record["eventID"].as_str().unwrap();
    assert!(blocks.contains("\"type\":\"button\"") && blocks.contains(event_id));
    destination.finish();
}

#[tokio::test]
async fn unreadable_account_names_stop_the_function_at_start_saying_why() {
    let destination = Destination::start_with(
        RuntimeApiOptions::default(),
        &[("ACCOUNT_NAMES", "111122223333=prod,staging")],
    )
    .await;
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while destination.process.is_running() && std::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !destination.process.is_running(),
        "the function kept running"
    );
    let output = destination.finish();
    assert!(
        output.contains("ACCOUNT_NAMES: ")
            && output.contains("staging")
            && output.contains("is not account-id=name"),
        "{output}"
    );
}

// --- Webhooks of their own for accounts and channels ---

/// A denial in `account`, as the CloudTrail source publishes it.
fn denial_in(account: &str, principal: &str, action: &str, tags: Value) -> String {
    message(
        &format!("Error Message: {principal} is not authorized to perform: {action}"),
        json!([
            {"key": "Event", "value": action},
            {"key": "Recipient Account ID", "value": account},
            {"key": "User ARN", "value": principal},
        ]),
        cloudtrail_metadata(),
        tags,
    )
}

/// One user's denial of ListUsers in account 111122223333.
fn a_denial_in_111122223333() -> String {
    denial_in(
        "111122223333",
        "arn:aws:iam::1:user/a",
        "ListUsers",
        json!([]),
    )
}

#[tokio::test]
async fn a_routed_accounts_posts_reach_its_own_webhook_and_no_other() {
    let prod_path = "/services/T0ROUTED/B0PROD/XXXXprodRouteSecret";
    let oncall_path = "/services/T0ROUTED/B0ONCALL/XXXXoncallRouteSecret";
    let destination = Destination::start_routed(
        |sink| {
            format!(
                "account:111122223333={},channel:#oncall={}",
                sink.url(prod_path),
                sink.url(oncall_path)
            )
        },
        &["XXXXprodRouteSecret", "XXXXoncallRouteSecret"],
        &[("SLACK_POST_INTERVAL_MS", "3000")],
    )
    .await;
    // Each webhook takes about one post a second, on its own.
    destination.sink.enforce(RateLimit::slack());
    let mallory = "arn:aws:iam::111122223333:user/mallory";
    let untagged = json!([{"key": "digest-group", "value": mallory}]);
    let batch = [
        denial_in("111122223333", mallory, "ListUsers", untagged.clone()),
        denial_in(
            "444455556666",
            "arn:aws:iam::444455556666:user/bob",
            "GetObject",
            json!([]),
        ),
        denial_in(
            "111122223333",
            "arn:aws:iam::111122223333:user/carol",
            "DeleteTrail",
            json!([{"key": "slack-preferred-channel", "value": "#oncall"}]),
        ),
        denial_in("111122223333", mallory, "ListRoles", untagged),
    ];
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));

    let requests = destination.sink.requests();
    assert!(
        requests.iter().all(RecordedRequest::accepted),
        "{requests:#?}"
    );
    let posted_to = |path: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|request| request.path == path)
            .map(RecordedRequest::body_json)
            .collect()
    };
    let prod = posted_to(prod_path);
    assert_eq!(
        prod.len(),
        1,
        "mallory's two denials: one digest, to prod's webhook"
    );
    assert!(
        prod[0]["text"].as_str().unwrap().contains("Count: 2"),
        "{}",
        prod[0]
    );
    let oncall = posted_to(oncall_path);
    assert_eq!(
        oncall.len(),
        1,
        "the #oncall Message, to its channel's webhook"
    );
    assert!(oncall[0]["text"].as_str().unwrap().contains("DeleteTrail"));
    assert_eq!(
        oncall[0]["channel"], "#oncall",
        "the tag keeps its meaning for legacy webhooks"
    );
    let default = posted_to(&destination.sink.webhook_path());
    assert_eq!(
        default.len(),
        1,
        "the unrouted account's denial, to the stack's webhook"
    );
    assert!(
        default[0]["text"]
            .as_str()
            .unwrap()
            .contains("444455556666")
    );
    assert_eq!(requests.len(), 3, "no post went anywhere twice");
    for body in prod.iter().chain(&oncall).chain(&default) {
        block_kit::assert_valid(body);
    }
    // Each webhook is paced on its own: one post each every 3 s, so the three went without
    // waiting for one another (one pace for all would have spaced them 3 s apart).
    let first = requests.iter().map(|r| r.received_at).min().unwrap();
    let last = requests.iter().map(|r| r.received_at).max().unwrap();
    assert!(
        last.duration_since(first) < Duration::from_millis(2_500),
        "posts to three webhooks were spaced {:?}",
        last.duration_since(first)
    );
    let output = destination.finish();
    assert!(
        output.contains("the webhook of account:111122223333"),
        "logs name a route by its selector: {output}"
    );
}

#[tokio::test]
async fn unusable_routes_send_everything_to_the_stacks_webhook_after_a_notice_naming_no_url() {
    let plain_http = "http://hooks.example.com/services/T0/B0/XXXXplainRouteSecret";
    let destination = Destination::start_routed(
        |_| format!("account:111122223333={plain_http}"),
        &[plain_http, "XXXXplainRouteSecret"],
        &[],
    )
    .await;
    let answer = destination
        .invoke_batch(&[a_denial_in_111122223333()])
        .await
        .expect("posted to the stack's webhook");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    for post in &posts {
        assert_is_webhook_post(&destination.sink, post);
        block_kit::assert_valid(&post.body_json());
    }
    let notice = posts[0].body_json();
    assert_eq!(
        notice["blocks"][0]["text"]["text"],
        "Activity Aware IDS: webhook routes not in use; what they would route is posted here"
    );
    assert!(
        notice["text"].as_str().unwrap().contains(
            "Problem: SLACK_WEBHOOK_ROUTES, route 1: the webhook of account:111122223333 must start with https://"
        ),
        "{notice}"
    );
    assert!(posts[1].body_text().contains("ListUsers"));
    // Told once per container.
    destination
        .invoke_batch(&[simple("later")])
        .await
        .expect("posted");
    assert_eq!(destination.sink.requests().len(), 3);
    let output = destination.finish();
    assert!(output.contains("webhook routes not in use"), "{output}");
}

// --- Account names from AWS Organizations ---

/// moto's organisation, made.
async fn organisation(moto: &MotoServer) -> aws_sdk_organizations::Client {
    let organizations = aws_sdk_organizations::Client::new(&moto.sdk_config().await);
    organizations
        .create_organization()
        .send()
        .await
        .expect("moto makes an organisation");
    organizations
}

/// A new account of the organisation, named; its ID.
async fn new_account(organizations: &aws_sdk_organizations::Client, name: &str) -> String {
    organizations
        .create_account()
        .account_name(name)
        .email(format!("{}@example.com", name.to_lowercase()))
        .send()
        .await
        .expect("moto makes an account");
    organizations
        .list_accounts()
        .send()
        .await
        .unwrap()
        .accounts()
        .iter()
        .find(|account| account.name() == Some(name))
        .and_then(|account| account.id())
        .unwrap_or_else(|| panic!("moto lists no {name}"))
        .to_owned()
}

#[tokio::test]
async fn accounts_are_named_as_the_organisation_names_them_unless_named_here() {
    let moto = MotoServer::start();
    let organizations = organisation(&moto).await;
    let production = new_account(&organizations, "Production").await;
    let staging = new_account(&organizations, "Staging").await;
    let given = format!("{staging}=stage");

    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let webhook = moto
        .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    let destination = Destination::spawn_with(
        moto,
        sink,
        &webhook,
        RuntimeApiOptions::default(),
        &[
            ("ACCOUNT_NAMES_FROM_ORGANIZATIONS", "true"),
            ("ACCOUNT_NAMES", &given),
        ],
    );
    let batch = [
        denial_in(&production, "arn:aws:iam::1:user/a", "ListUsers", json!([])),
        denial_in(&staging, "arn:aws:iam::1:user/b", "ListRoles", json!([])),
        denial_in(
            "999988887777",
            "arn:aws:iam::1:user/c",
            "GetPolicy",
            json!([]),
        ),
    ];
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let accounts_shown: Vec<String> = destination
        .sink
        .requests()
        .iter()
        .map(|request| {
            let body = request.body_json();
            block_kit::assert_valid(&body);
            let blocks = body["blocks"].to_string();
            let at = blocks.find("*Account*\\n`").expect("an Account fact") + "*Account*\\n`".len();
            blocks[at..].split('`').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        accounts_shown,
        [
            format!("Production ({production})"),
            format!("stage ({staging})"),
            "999988887777".to_owned()
        ]
    );
    destination.finish();
}

#[tokio::test]
async fn a_units_accounts_reach_its_webhook_as_the_organisation_says_and_an_account_route_wins() {
    let moto = MotoServer::start();
    let organizations = organisation(&moto).await;
    let root = organizations.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    let unit = |name: &'static str, parent: String| {
        let organizations = organizations.clone();
        async move {
            organizations
                .create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .expect("moto makes a unit")
                .organizational_unit()
                .and_then(|unit| unit.id())
                .unwrap()
                .to_owned()
        }
    };
    let workloads = unit("Workloads", root.clone()).await;
    // A unit inside the routed one: its accounts are the routed unit's too.
    let production = unit("Production", workloads.clone()).await;
    let mut ids = Vec::new();
    for (name, parent) in [
        ("web", &production),
        ("data", &production),
        ("sandbox", &root),
        ("tools", &workloads),
    ] {
        let id = new_account(&organizations, name).await;
        if parent != &root {
            organizations
                .move_account()
                .account_id(&id)
                .source_parent_id(&root)
                .destination_parent_id(parent)
                .send()
                .await
                .expect("moto moves the account");
        }
        ids.push(id);
    }
    let [web, data, sandbox, tools] = ids.try_into().expect("four accounts");
    let unit_path = "/services/T0ROUTED/B0UNIT/XXXXunitRouteSecret";
    let inner_path = "/services/T0ROUTED/B0INNER/XXXXinnerRouteSecret";
    let own_path = "/services/T0ROUTED/B0OWN/XXXXownRouteSecret";
    // The outer unit routed first: the inner unit still keeps its accounts.
    let routes = {
        let (workloads, production, data) = (workloads.clone(), production.clone(), data.clone());
        move |sink: &SlackSink| {
            format!(
                "ou:{workloads}={},ou:{production}={},account:{data}={}",
                sink.url(unit_path),
                sink.url(inner_path),
                sink.url(own_path)
            )
        }
    };
    let destination = Destination::start_routed_in(
        moto,
        routes,
        &[
            "XXXXunitRouteSecret",
            "XXXXinnerRouteSecret",
            "XXXXownRouteSecret",
        ],
        &[("ACCOUNT_NAMES_FROM_ORGANIZATIONS", "true")],
    )
    .await;
    let batch = [
        denial_in(&web, "arn:aws:iam::1:user/a", "ListUsers", json!([])),
        denial_in(&data, "arn:aws:iam::1:user/b", "ListRoles", json!([])),
        denial_in(&sandbox, "arn:aws:iam::1:user/c", "GetPolicy", json!([])),
        denial_in(&tools, "arn:aws:iam::1:user/d", "GetRole", json!([])),
    ];
    let answer = destination.invoke_batch(&batch).await.expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let requests = destination.sink.requests();
    let posted_to = |path: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|request| request.path == path)
            .map(|request| request.body_json()["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let to_unit = posted_to(unit_path);
    assert_eq!(to_unit.len(), 1, "{requests:#?}");
    assert!(to_unit[0].contains("GetRole"), "{to_unit:?}");
    let to_inner = posted_to(inner_path);
    assert_eq!(to_inner.len(), 1, "{requests:#?}");
    assert!(to_inner[0].contains("ListUsers"), "{to_inner:?}");
    let to_own = posted_to(own_path);
    assert_eq!(to_own.len(), 1, "{requests:#?}");
    assert!(to_own[0].contains("ListRoles"), "{to_own:?}");
    let to_stack = posted_to(&destination.sink.webhook_path());
    assert_eq!(to_stack.len(), 1, "{requests:#?}");
    assert!(to_stack[0].contains("GetPolicy"), "{to_stack:?}");
    let output = destination.finish();
    assert!(output.contains("unit route"), "{output}");
}

#[tokio::test]
async fn a_unit_route_without_the_organisation_posts_to_the_stacks_webhook_after_a_notice() {
    let destination = Destination::start_routed(
        |sink| {
            format!(
                "ou:ou-ab12-prod0001={}",
                sink.url("/services/T0/B0/XXXXunitSecret")
            )
        },
        &["XXXXunitSecret"],
        &[],
    )
    .await;
    let answer = destination
        .invoke_batch(&[a_denial_in_111122223333()])
        .await
        .expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let requests = destination.sink.requests();
    assert_eq!(
        requests.len(),
        2,
        "the notice, then the denial: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.path == destination.sink.webhook_path())
    );
    let notice = requests[0].body_text();
    assert!(
        notice.contains(
            "the routes of ou:ou-ab12-prod0001 need AccountNamesFromOrganizations Enabled"
        ),
        "{notice}"
    );
    destination.finish();
}

#[tokio::test]
async fn a_failed_organisation_lookup_is_logged_and_posts_go_on_with_ids() {
    // Organizations cannot be reached (nothing listens there).
    let destination = Destination::start_with(
        RuntimeApiOptions::default(),
        &[
            ("ACCOUNT_NAMES_FROM_ORGANIZATIONS", "true"),
            ("AWS_ENDPOINT_URL_ORGANIZATIONS", "http://127.0.0.1:9"),
        ],
    )
    .await;
    let answer = destination
        .invoke_batch(&[a_denial_in_111122223333()])
        .await
        .expect("posted without names");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let posts = destination.sink.requests();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body_text().contains("*Account*\\n`111122223333`"));
    let output = destination.finish();
    assert!(
        output.contains("could not look up the organisation's account names")
            && output.contains("ListAccounts"),
        "{output}"
    );
}

#[tokio::test]
async fn messages_received_before_are_posted_first() {
    let destination = Destination::start().await;
    // The last record came back from an earlier invocation that ran out of time for it.
    let records: Vec<Value> = [("fresh one", 1), ("fresh two", 1), ("kept back twice", 3)]
        .iter()
        .enumerate()
        .map(|(i, (subject, receives))| {
            events::sqs_record(
                &format!("message-{i}"),
                &format!("handle-{i}"),
                &simple(subject),
                1_717_359_392_000,
                *receives,
            )
        })
        .collect();
    let answer = destination
        .invoke_event(json!({ "Records": records }))
        .await
        .expect("posted");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let order: Vec<String> = destination
        .sink
        .requests()
        .iter()
        .map(|request| request.body_json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        [
            "Event: kept back twice",
            "Event: fresh one",
            "Event: fresh two"
        ]
    );
    destination.finish();
}

#[tokio::test]
async fn the_handler_in_process_posts_one_digest_a_principal_and_fails_an_unreadable_event() {
    use destination_slack::{Config, PaceLimit, layout::AccountNames};
    use lambda_runtime::{Context, LambdaEvent};

    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let config = Config {
        encrypted_webhook_url: moto
            .kms_encrypt(&key, &sink.webhook_url(), &WEBHOOK_ENCRYPTION_CONTEXT)
            .await,
        encrypted_webhook_routes: String::new(),
        pace: PaceLimit::default(),
        accounts: AccountNames::default(),
        organization_names: false,
        minimum_severity: activity_aware_message::Severity::Info,
        operations: false,
    };
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let slack =
        destination_slack::Destination::from_config(config, kms, None, sink.trusting_client());
    let mallory = "arn:aws:iam::111122223333:user/mallory";
    let batch = [
        denial(mallory, "ListUsers", "us-east-1", 1),
        denial(mallory, "ListRoles", "us-east-1", 2),
        denial(
            "arn:aws:iam::111122223333:user/alice",
            "GetObject",
            "eu-west-1",
            3,
        ),
    ];
    let answer = slack
        .handle(LambdaEvent::new(
            events::sqs_event(&batch).into(),
            Context::default(),
        ))
        .await
        .expect("posted");
    assert_eq!(
        serde_json::to_value(answer).unwrap(),
        json!({"batchItemFailures": []})
    );
    let posts = sink.accepted();
    assert_eq!(posts.len(), 2, "one digest for mallory, one post for alice");
    for post in &posts {
        assert_is_webhook_post(&sink, post);
        block_kit::assert_valid(&post.body_json());
    }
    assert!(
        posts[0].body_json()["text"]
            .as_str()
            .unwrap()
            .contains("Count: 2")
    );

    let error = slack
        .handle(LambdaEvent::new(
            json!({"awslogs": {"data": "H4sI"}}).into(),
            Context::default(),
        ))
        .await
        .expect_err("not a destination's event");
    assert_eq!(
        error.to_string(),
        "the event is neither an SQS batch nor an SNS event: it has no Records array"
    );
    assert_eq!(sink.accepted().len(), 2);
}

/// The operations relay: subscribed to the operations topic, which the stack's key does not
/// encrypt, it posts CloudWatch's alarm notifications and the self-protection rules' raw events
/// with a webhook encrypted for its own purpose (with the operations key, in the stack): the
/// path that still tells when the topic, its queues or the stack key are cut.
#[tokio::test]
async fn the_operations_relay_posts_alarms_and_self_protection_events_with_its_own_secret() {
    use destination_slack::{Config, OPERATIONS_WEBHOOK_URL, PaceLimit, layout::AccountNames};
    use lambda_runtime::{Context, LambdaEvent};

    let moto = MotoServer::start();
    let sink = SlackSink::start();
    let key = moto.create_kms_key().await;
    let relay = |context: [(&'static str, &'static str); 1]| {
        let moto = &moto;
        let sink = &sink;
        let key = key.clone();
        async move {
            let config = Config {
                encrypted_webhook_url: moto.kms_encrypt(&key, &sink.webhook_url(), &context).await,
                encrypted_webhook_routes: String::new(),
                pace: PaceLimit::default(),
                accounts: AccountNames::default(),
                organization_names: false,
                minimum_severity: activity_aware_message::Severity::Info,
                operations: true,
            };
            let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
            destination_slack::Destination::from_config(config, kms, None, sink.trusting_client())
                .as_operations_relay(source_eventbridge::Detector::default())
        }
    };
    let alarm = json!({
        "AlarmName": "ids-SourceEventbridgeThrottles", "AlarmDescription": "The EventBridge source was throttled.",
        "NewStateValue": "ALARM", "NewStateReason": "Threshold Crossed", "StateChangeTime": "2026-12-03T10:00:00.000+0000",
        "OldStateValue": "OK", "AlarmArn": "arn:aws:cloudwatch:us-east-1:111122223333:alarm:ids-SourceEventbridgeThrottles"
    });
    let stopped = json!({"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
        "account": "111122223333", "time": "2026-12-03T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging", "awsRegion": "us-east-1",
            "eventTime": "2026-12-03T10:00:00Z", "requestParameters": {"name": "main"},
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory", "accountId": "111122223333"}}});
    let event = || -> destination_slack::DestinationEvent {
        events::sns_event(&[alarm.to_string(), stopped.to_string()]).into()
    };
    // The stack's own webhook ciphertext (the Slack function's purpose) is no use to it.
    let wrong = relay(WEBHOOK_ENCRYPTION_CONTEXT).await;
    assert!(
        wrong
            .handle(LambdaEvent::new(event(), Context::default()))
            .await
            .is_err()
    );
    assert_eq!(sink.accepted().len(), 0);
    let relay = relay(OPERATIONS_WEBHOOK_URL.encryption_context()).await;
    relay
        .handle(LambdaEvent::new(event(), Context::default()))
        .await
        .expect("posted");
    let posts = sink.accepted();
    assert_eq!(posts.len(), 2);
    let headers: Vec<String> = posts
        .iter()
        .map(|post| {
            let body = post.body_json();
            block_kit::assert_valid(&body);
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("[Critical] CloudTrail logging stopped")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.contains("ids-SourceEventbridgeThrottles")),
        "{headers:?}"
    );
}
