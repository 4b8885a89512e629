//! The real `source-cloudtrail-cloudwatch-logs` binary, run through a local Lambda Runtime API
//! against moto: what it publishes is read back from an SQS queue subscribed to the topic with
//! raw delivery.

use std::time::Duration;

use serde_json::{Value, json};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, MotoServer, RuntimeApi, SnsCapture, assert_no_secrets,
    events,
};

const BINARY: &str = env!("CARGO_BIN_EXE_source-cloudtrail-cloudwatch-logs");
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(60);
const NINE_LABELS: [&str; 9] = [
    "Error Message",
    "Event",
    "Source",
    "Recipient Account ID",
    "User Account ID",
    "Username",
    "User ARN",
    "Source IP",
    "Request Parameters",
];
const SNS_LIMIT_BYTES: usize = 256 * 1024;

struct Source {
    // Dropped in this order: the function, then its Runtime API, then moto.
    process: LambdaProcess,
    api: RuntimeApi,
    capture: Option<SnsCapture>,
    moto: MotoServer,
}

impl Source {
    /// moto with a topic and a capture queue, and the function publishing to that topic.
    async fn start() -> Source {
        let moto = MotoServer::start();
        let topic = moto.create_topic("ids-topic").await;
        let capture = moto.capture_queue(&topic).await;
        Self::spawn(moto, &topic, Some(capture))
    }

    fn spawn(moto: MotoServer, topic_arn: &str, capture: Option<SnsCapture>) -> Source {
        let api = RuntimeApi::start();
        let mut env = moto.lambda_env();
        env.push(("SNS_TOPIC".to_owned(), topic_arn.to_owned()));
        let process = LambdaProcess::spawn(BINARY, &api, env);
        Source {
            process,
            api,
            capture,
            moto,
        }
    }

    fn capture(&self) -> &SnsCapture {
        self.capture
            .as_ref()
            .expect("this world has a capture queue")
    }

    async fn invoke_records(
        &self,
        messages: &[String],
    ) -> Result<Value, test_world::InvocationError> {
        self.api
            .invoke(events::awslogs_event(&events::data_message(messages)))
            .await
    }

    /// Published Messages, parsed, sorted by subject.
    async fn published(&self, expected: usize) -> Vec<Value> {
        let mut messages: Vec<Value> = self
            .capture()
            .receive(expected, RECEIVE_TIMEOUT)
            .await
            .iter()
            .map(|body| {
                serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("published Message is not JSON ({e}): {body}"))
            })
            .collect();
        messages.sort_by_key(|m| m["subject"].as_str().unwrap_or_default().to_owned());
        messages
    }

    /// Stops the function; checks that its output shows no secret; returns the output.
    fn finish(self) -> String {
        let output = self.process.stop();
        assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
        assert_no_secrets(
            "moto's log",
            &self.moto.output(),
            &[DUMMY_SECRET_ACCESS_KEY],
        );
        output
    }
}

fn iam_user_denial() -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEPRINCIPAL",
            "arn": "arn:aws:iam::111122223333:user/mallory",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEKEY",
            "userName": "mallory"
        },
        "eventTime": "2024-03-01T12:34:56Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "errorCode": "AccessDenied",
        "errorMessage": "Access Denied",
        "requestParameters": {"bucketName": "payroll", "key": "2024/salaries.csv", "Host": "payroll.s3.amazonaws.com"},
        "responseElements": null,
        "requestID": "EXAMPLE0REQUEST0ID",
        "eventID": "3d8f0c8e-5b1f-4a52-9c3a-2f4b7f6e9d10",
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "recipientAccountId": "111122223333"
    })
}

fn assumed_role_denial() -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEROLEID:build-42",
            "arn": "arn:aws:sts::111122223333:assumed-role/ci-deployer/build-42",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLEKEY",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEROLEID",
                    "arn": "arn:aws:iam::111122223333:role/ci-deployer",
                    "accountId": "111122223333",
                    "userName": "ci-deployer"
                },
                "attributes": {"creationDate": "2024-03-01T12:00:00Z", "mfaAuthenticated": "false"}
            }
        },
        "eventTime": "2024-03-01T12:40:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "CreateUser",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.20",
        "errorCode": "AccessDenied",
        "errorMessage": "User: arn:aws:sts::111122223333:assumed-role/ci-deployer/build-42 is not authorized to perform: iam:CreateUser",
        "requestParameters": null,
        "eventID": "a1b2c3d4-0000-4000-8000-000000000001",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    })
}

fn labels(message: &Value) -> Vec<String> {
    message["fields"]
        .as_array()
        .expect("fields is an array")
        .iter()
        .map(|f| f["key"].as_str().expect("field key is a string").to_owned())
        .collect()
}

fn field<'a>(message: &'a Value, label: &str) -> Option<&'a Value> {
    message["fields"]
        .as_array()?
        .iter()
        .find(|f| f["key"] == label)
        .map(|f| &f["value"])
}

fn tag_values<'a>(message: &'a Value, key: &str) -> Vec<&'a str> {
    message["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|tag| tag["key"] == key)
        .filter_map(|tag| tag["value"].as_str())
        .collect()
}

/// The Message contract: key order, metadata, tags.
fn assert_message_shape(message: &Value) {
    let keys: Vec<&str> = message
        .as_object()
        .expect("Message is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["subject", "fields", "metadata", "tags"], "{message}");
    assert_eq!(message["metadata"]["sourceName"], "Cloudtrail");
    let icon = message["metadata"]["sourceIconUrl"].as_str().unwrap();
    assert!(icon.starts_with("https://"), "{icon}");
    // Tags let a destination combine one principal's denials into a digest, and say how severe
    // the Message is, which detection it is, and who acted since when (for the responders).
    let tags = message["tags"].as_array().expect("tags is an array");
    for tag in tags {
        let key = tag["key"].as_str().unwrap();
        assert!(
            [
                "digest-group",
                "digest-field",
                "event-time",
                "severity",
                "detection",
                "principal",
                "session-issued",
                "access-key"
            ]
            .contains(&key),
            "{tag}"
        );
        assert!(!tag["value"].as_str().unwrap().is_empty(), "{tag}");
    }
    assert_eq!(
        tag_values(message, "digest-field"),
        ["Event", "Source", "Region", "Source IP", "Error Code"]
    );
    for f in message["fields"].as_array().unwrap() {
        let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["key", "value"], "{f}");
    }
}

#[tokio::test]
async fn publishes_one_message_per_record_in_the_original_shape() {
    let source = Source::start().await;
    let records = [iam_user_denial(), assumed_role_denial()];
    let summary = source
        .invoke_records(&records.iter().map(Value::to_string).collect::<Vec<_>>())
        .await
        .expect("the invocation succeeds");
    assert_eq!(summary["logEvents"], 2, "{summary}");
    assert_eq!(summary["published"], 2, "{summary}");
    assert_eq!(summary["notJson"], 0, "{summary}");

    let messages = source.published(2).await;
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    // Sorted by subject: "Error Message: Access Denied" < "Error Message: User: ...".
    let (iam, role) = (&messages[0], &messages[1]);
    for message in &messages {
        assert_message_shape(message);
    }

    assert_eq!(iam["subject"], "Error Message: Access Denied");
    assert_eq!(
        tag_values(iam, "digest-group"),
        ["arn:aws:iam::111122223333:user/mallory"]
    );
    assert_eq!(
        tag_values(role, "digest-group"),
        [assumed_role_denial()["userIdentity"]["arn"]
            .as_str()
            .unwrap()]
    );
    assert_eq!(
        tag_values(iam, "event-time"),
        [iam_user_denial()["eventTime"].as_str().unwrap()]
    );
    let iam_labels = labels(iam);
    assert_eq!(iam_labels[..9], NINE_LABELS, "{iam}");
    let values: Vec<&Value> = iam["fields"].as_array().unwrap()[..9]
        .iter()
        .map(|f| &f["value"])
        .collect();
    assert_eq!(
        values,
        [
            &json!("Access Denied"),
            &json!("GetObject"),
            &json!("s3.amazonaws.com"),
            &json!("111122223333"),
            &json!("111122223333"),
            &json!("mallory"),
            &json!("arn:aws:iam::111122223333:user/mallory"),
            &json!("203.0.113.7"),
            &iam_user_denial()["requestParameters"],
        ]
    );
    let parameter_keys: Vec<&String> = values[8].as_object().unwrap().keys().collect();
    assert_eq!(
        parameter_keys,
        ["bucketName", "key", "Host"],
        "key order kept"
    );
    // Context after the original nine: where, when, which event, and a console link.
    let context = &iam["fields"].as_array().unwrap()[9..];
    assert!(
        context
            .iter()
            .all(|f| !NINE_LABELS.contains(&f["key"].as_str().unwrap())),
        "no original label repeated: {iam}"
    );
    assert_eq!(field(iam, "Region"), Some(&json!("us-east-1")), "{iam}");
    assert!(field(iam, "Event Time").is_some(), "{iam}");
    assert_eq!(
        field(iam, "Event ID"),
        Some(&json!("3d8f0c8e-5b1f-4a52-9c3a-2f4b7f6e9d10")),
        "{iam}"
    );
    let link = field(iam, "CloudTrail Console")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no console link: {iam}"));
    assert!(
        link.starts_with("https://") && link.contains("3d8f0c8e-5b1f-4a52-9c3a-2f4b7f6e9d10"),
        "{link}"
    );
    assert!(
        field(iam, "Role").is_none(),
        "an IAM user has no role: {iam}"
    );

    // AssumedRole: no userName, null requestParameters left out, the role named.
    let role_labels = labels(role);
    assert_eq!(
        role_labels[..6],
        [
            "Error Message",
            "Event",
            "Source",
            "Recipient Account ID",
            "User Account ID",
            "User ARN"
        ],
        "{role}"
    );
    assert_eq!(role_labels[6], "Source IP", "{role}");
    assert!(!role_labels.contains(&"Username".to_owned()), "{role}");
    assert!(
        !role_labels.contains(&"Request Parameters".to_owned()),
        "{role}"
    );
    assert_eq!(field(role, "Role"), Some(&json!("ci-deployer")), "{role}");
    assert!(
        role["subject"]
            .as_str()
            .unwrap()
            .starts_with("Error Message: User: arn:aws:sts::111122223333:assumed-role/ci-deployer")
    );
    source.finish();
}

#[tokio::test]
async fn denied_calls_reach_containments_subscription_with_their_access_key_and_nothing_else_does()
{
    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-topic").await;
    let denied = moto
        .capture_queue_filtered(&topic, Some(r#"{"denied": ["true"]}"#))
        .await;
    let source = Source::spawn(moto, &topic, None);
    let mut denial = assumed_role_denial();
    denial["userIdentity"]["accessKeyId"] = json!("ASIAEXAMPLE000000042");
    let mut created = assumed_role_denial();
    for key in ["errorCode", "errorMessage"] {
        created.as_object_mut().unwrap().remove(key);
    }
    created["eventID"] = json!("a1b2c3d4-0000-4000-8000-000000000002");
    // A denied attempt of a detection counts as much as a plain denial.
    let mut denied_detection = created.clone();
    denied_detection["eventName"] = json!("LeaveOrganization");
    denied_detection["eventSource"] = json!("organizations.amazonaws.com");
    denied_detection["errorCode"] = json!("AccessDenied");
    denied_detection["eventID"] = json!("a1b2c3d4-0000-4000-8000-000000000003");
    source
        .invoke_records(&[
            denial.to_string(),
            created.to_string(),
            denied_detection.to_string(),
        ])
        .await
        .expect("the invocation succeeds");
    let mut bodies: Vec<Value> = denied
        .receive(2, RECEIVE_TIMEOUT)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    denied.assert_quiet(Duration::from_secs(1)).await;
    bodies.sort_by_key(|m| tag_values(m, "detection").concat());
    assert_eq!(tag_values(&bodies[0], "detection"), ["access-denied"]);
    assert_eq!(
        tag_values(&bodies[0], "access-key"),
        ["ASIAEXAMPLE000000042"]
    );
    assert_eq!(tag_values(&bodies[1], "detection"), ["organization-left"]);
    source.finish();
}

#[tokio::test]
async fn falsy_values_are_left_out_and_records_without_fields_publish_nothing() {
    let source = Source::start().await;
    let sparse = json!({
        "errorMessage": "",
        "eventName": "DescribeRegions",
        "eventSource": "ec2.amazonaws.com",
        "recipientAccountId": 0,
        "userIdentity": {"accountId": null, "userName": false, "arn": "arn:aws:iam::111122223333:user/eve"},
        "sourceIPAddress": "",
        "requestParameters": null,
        "awsRegion": "eu-west-1",
        "eventID": "b0000000-0000-4000-8000-00000000000b"
    });
    // None of the nine fields: nothing to say.
    let empty = json!({"awsRegion": "eu-west-1", "eventID": "c0000000-0000-4000-8000-00000000000c", "errorMessage": null});
    let summary = source
        .invoke_records(&[sparse.to_string(), empty.to_string()])
        .await
        .expect("the invocation succeeds");
    assert_eq!(summary["published"], 1, "{summary}");
    assert_eq!(summary["withoutFields"], 1, "{summary}");
    let messages = source.published(1).await;
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    let message = &messages[0];
    assert_message_shape(message);
    assert_eq!(message["subject"], "Event: DescribeRegions");
    assert_eq!(
        labels(message)[..3],
        ["Event", "Source", "User ARN"],
        "{message}"
    );
    source.finish();
}

#[tokio::test]
async fn a_record_that_is_not_json_is_skipped_and_the_others_published() {
    let source = Source::start().await;
    let summary = source
        .invoke_records(&[
            "this is not { json".to_owned(),
            iam_user_denial().to_string(),
            "[1, 2".to_owned(),
        ])
        .await
        .expect("a bad record does not fail the invocation");
    assert_eq!(summary["logEvents"], 3, "{summary}");
    assert_eq!(summary["notJson"], 2, "{summary}");
    assert_eq!(summary["published"], 1, "{summary}");
    let messages = source.published(1).await;
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    assert_eq!(messages[0]["subject"], "Error Message: Access Denied");
    source.finish();
}

#[tokio::test]
async fn crafted_records_never_stop_a_delivery() {
    let source = Source::start().await;
    let poison = test_world::payloads::poison_records();
    let mut records = vec![assumed_role_denial().to_string()];
    records.extend(poison.iter().cloned());
    records.push(iam_user_denial().to_string());
    let summary = source
        .invoke_records(&records)
        .await
        .expect("no record stops the delivery");
    assert_eq!(summary["published"], 5, "{summary}");
    let messages = source.published(5).await;
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    for message in &messages {
        // What a destination reads back: every Message, whole.
        activity_aware_message::Message::from_json(&message.to_string())
            .unwrap_or_else(|error| panic!("{error}: {message}"));
        assert_message_shape(message);
    }
    let subjects: Vec<&str> = messages
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    // The lone surrogate is shown as the record's raw text.
    assert!(
        subjects.contains(&r#"Error Message: "lone \ud800 surrogate""#),
        "{subjects:?}"
    );
    let deep = messages
        .iter()
        .find(|m| m.to_string().contains("[[[[[[[[[["))
        .expect("the deeply nested record was published");
    let parameters = deep["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|field| field["key"] == "Request Parameters")
        .unwrap();
    assert!(parameters["value"].is_string(), "{parameters}");
    source.finish();
}

#[tokio::test]
async fn control_messages_publish_nothing() {
    let source = Source::start().await;
    let summary = source
        .api
        .invoke(events::awslogs_event(&events::control_message()))
        .await
        .expect("a control message is accepted");
    assert_eq!(summary["published"], 0, "{summary}");
    source.capture().assert_quiet(Duration::from_secs(2)).await;
    source.finish();
}

#[tokio::test]
async fn undecodable_payloads_fail_the_invocation_and_the_process_keeps_serving() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let source = Source::start().await;
    let cases = [
        (
            "not base64",
            events::awslogs_event_with_data("%%% not base64 %%%"),
            "base64",
        ),
        (
            "not gzip",
            events::awslogs_event_with_data(&b64(b"plain text, not gzip")),
            "gunzip",
        ),
        (
            "not JSON",
            events::awslogs_event_with_data(&b64(&events::gzip(b"<xml>not json</xml>"))),
            "payload",
        ),
    ];
    for (what, event, mentions) in cases {
        let error = source
            .api
            .invoke(event)
            .await
            .expect_err(&format!("{what}: the invocation must fail"));
        assert!(!error.during_init, "{what}: {error}");
        assert!(
            error.error_message.contains("awslogs.data") && error.error_message.contains(mentions),
            "{what}: the error should say what is wrong with awslogs.data ({mentions}): {error}"
        );
        assert!(source.process.is_running(), "{what}: the process died");
    }
    let summary = source
        .invoke_records(&[iam_user_denial().to_string()])
        .await
        .expect("the next good invocation is served");
    assert_eq!(summary["published"], 1, "{summary}");
    source.published(1).await;
    assert_eq!(source.api.invocations(), 4);
    source.finish();
}

#[tokio::test]
async fn json_that_is_not_a_logs_payload_fails_the_invocation() {
    use base64::Engine;
    let source = Source::start().await;
    // No messageType, no logEvents: accepting it as "0 log events" would hide a format change.
    let data =
        base64::engine::general_purpose::STANDARD.encode(events::gzip(br#"{"hello": "world"}"#));
    let error = source
        .api
        .invoke(events::awslogs_event_with_data(&data))
        .await
        .expect_err("a JSON object that is not a CloudWatch Logs payload must fail");
    assert!(
        error.error_message.contains("awslogs.data") && error.error_message.contains("payload"),
        "{error}"
    );
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    source.finish();
}

#[tokio::test]
async fn an_oversized_message_is_shrunk_and_still_published() {
    let source = Source::start().await;
    let mut record = iam_user_denial();
    let huge = "A".repeat(400 * 1024);
    record["requestParameters"] = json!({"policyDocument": huge, "policyName": "keep-me"});
    let summary = source
        .invoke_records(&[record.to_string(), assumed_role_denial().to_string()])
        .await
        .expect("the invocation succeeds");
    assert_eq!(summary["published"], 2, "{summary}");
    assert_eq!(summary["truncated"], 1, "{summary}");
    let bodies = source.capture().receive(2, RECEIVE_TIMEOUT).await;
    let big = bodies
        .iter()
        .find(|b| b.contains("Access Denied"))
        .expect("the oversized record's Message arrived");
    assert!(big.len() <= SNS_LIMIT_BYTES, "{} bytes", big.len());
    assert!(
        big.len() > 100 * 1024,
        "shrunk too much: {} bytes",
        big.len()
    );
    assert!(big.contains("… [truncated: "), "no truncation mark");
    let message: Value = serde_json::from_str(big).expect("still JSON");
    assert_message_shape(&message);
    assert_eq!(message["subject"], "Error Message: Access Denied");
    assert_eq!(labels(&message)[..9], NINE_LABELS);
    source.finish();
}

#[tokio::test]
async fn every_record_of_a_large_batch_is_published() {
    // More records than are mapped ahead of publishing, and than are published in one round.
    let source = Source::start().await;
    let records: Vec<String> = (0..1_234)
        .map(|i| {
            let mut record = iam_user_denial();
            record["errorMessage"] = json!(format!("denied #{i:04}"));
            record["eventID"] = json!(format!("00000000-0000-4000-8000-{i:012}"));
            record.to_string()
        })
        .collect();
    let summary = source
        .invoke_records(&records)
        .await
        .expect("the invocation succeeds");
    assert_eq!(summary["published"], 1_234, "{summary}");
    let messages = source.published(1_234).await;
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    let subjects: Vec<String> = messages
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..1_234)
        .map(|i| format!("Error Message: denied #{i:04}"))
        .collect();
    assert_eq!(subjects, expected);
    source.finish();
}

#[tokio::test]
async fn markup_unicode_and_large_numbers_pass_through_unchanged() {
    let source = Source::start().await;
    let mut record = iam_user_denial();
    let hostile = "<!channel> <!here> <@U024BE7LH> <https://evil.example|click> & Zoë 🚀 日本";
    record["errorMessage"] = json!(hostile);
    record["userIdentity"]["userName"] = json!("<@U0000ADMIN>");
    // 2^70 and a long decimal: must not be rounded through f64.
    let raw = record.to_string().replace(
        "\"requestParameters\":{",
        "\"requestParameters\":{\"big\":1180591620717411303424,\"precise\":0.1000000000000000055511151231257827,",
    );
    let summary = source
        .invoke_records(&[raw])
        .await
        .expect("the invocation succeeds");
    assert_eq!(summary["published"], 1, "{summary}");
    let bodies = source.capture().receive(1, RECEIVE_TIMEOUT).await;
    let body = &bodies[0];
    assert!(body.contains("1180591620717411303424"), "{body}");
    assert!(
        body.contains("0.1000000000000000055511151231257827"),
        "{body}"
    );
    let message: Value = serde_json::from_str(body).unwrap();
    assert_eq!(message["subject"], format!("Error Message: {hostile}"));
    assert_eq!(field(&message, "Username"), Some(&json!("<@U0000ADMIN>")));
    source.finish();
}

#[tokio::test]
async fn sns_failures_fail_the_invocation_and_say_how_many_did_not_go() {
    let moto = MotoServer::start();
    let missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let source = Source::spawn(moto, missing, None);
    // More than one round of publishing: every round is tried and every failure named.
    let records: Vec<String> = (0..450)
        .map(|i| {
            let mut record = iam_user_denial();
            record["errorMessage"] = json!(format!("denied {i}"));
            record.to_string()
        })
        .collect();
    let error = source
        .invoke_records(&records)
        .await
        .expect_err("publishing to a missing topic must fail the invocation");
    assert!(!error.during_init, "{error}");
    assert!(
        error
            .error_message
            .starts_with("450 of 450 messages were not published to SNS: log event "),
        "the error should say how many messages did not go: {}",
        &error.error_message[..200.min(error.error_message.len())]
    );
    // The first are named, the rest counted: the error, and the failure record that carries
    // it with its event, stay small.
    assert_eq!(error.error_message.matches("log event ").count(), 20);
    assert!(
        error.error_message.ends_with("; and 430 more"),
        "{}",
        error.error_message
    );
    assert!(source.process.is_running());
    source.finish();
}

#[tokio::test]
async fn a_delivery_that_breaks_off_fails_saying_what_was_published_before_the_break() {
    use base64::Engine;
    let source = Source::start().await;
    // The second log event's id is a number: not a CloudWatch Logs payload from there on.
    let mut payload =
        events::data_message(&[iam_user_denial().to_string(), iam_user_denial().to_string()]);
    payload["logEvents"][1]["id"] = json!(42);
    let data = base64::engine::general_purpose::STANDARD
        .encode(events::gzip(payload.to_string().as_bytes()));
    let error = source
        .api
        .invoke(events::awslogs_event_with_data(&data))
        .await
        .expect_err("the delivery breaks off");
    assert_eq!(error.error_type, "UndecodablePayload", "{error}");
    assert!(
        error.error_message.starts_with("awslogs.data does not hold a CloudWatch Logs payload: ")
            && error
                .error_message
                .contains("; it broke off after 1 Message(s) of the log events before the break were published"),
        "{error}"
    );
    assert_eq!(source.published(1).await.len(), 1);
    source.capture().assert_quiet(Duration::from_secs(1)).await;
    assert!(source.process.is_running());
    source.finish();
}

#[tokio::test]
async fn the_handler_in_process_publishes_each_record_and_refuses_an_undecodable_payload() {
    use activity_aware_message::MessagePublisher;
    use source_cloudtrail_cloudwatch_logs::{CloudWatchLogsEvent, Config, handle};

    let moto = MotoServer::start();
    let topic = moto.create_topic("ids-topic").await;
    let capture = moto.capture_queue(&topic).await;
    let config = Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some(topic.clone()),
        "STACK_NAME" => Some("ids".into()),
        "HEARTBEAT_ROLE_ARN" => {
            Some("arn:aws:iam::111122223333:role/ids-SourceHeartbeatRole-H1".into())
        }
        _ => None,
    })
    .expect("the topic is all a source needs");
    let publisher = MessagePublisher::new(
        aws_sdk_sns::Client::new(&moto.sdk_config().await),
        config.topic_arn.clone(),
    );
    let key = moto.create_kms_hmac_key().await;
    let before_publishing = activity_aware_cloudtrail::BeforePublishing {
        signer: Some(
            activity_aware_cloudtrail::heartbeat::HeartbeatSigner::new(
                &moto.sdk_config().await,
                &key,
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    let event = |payload: Value| -> CloudWatchLogsEvent {
        serde_json::from_value(payload).expect("a CloudWatch Logs event")
    };

    // The heartbeat's hourly canary call, denied as its role's policy says, as CloudTrail
    // records it.
    let mut canary = assumed_role_denial();
    canary["eventSource"] = json!("ssm.amazonaws.com");
    canary["eventName"] = json!("PutParameter");
    canary["eventID"] = json!("a1b2c3d4-0000-4000-8000-0000000000ca");
    canary["requestParameters"] =
        json!({"name": "/activity-aware-ids/ids/heartbeat", "type": "String", "overwrite": true});
    canary["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] =
        json!("ids-SourceHeartbeatRole-H1");
    let records = [
        iam_user_denial().to_string(),
        "not { json".to_owned(),
        assumed_role_denial().to_string(),
        canary.to_string(),
    ];
    let summary = handle(
        &publisher,
        &config.detector,
        &before_publishing,
        event(events::awslogs_event(&events::data_message(&records))),
    )
    .await
    .expect("published");
    assert_eq!(
        (summary.log_events, summary.published, summary.not_json),
        (4, 3, 1),
        "{summary:?}"
    );
    let mut messages: Vec<Value> = capture
        .receive(3, RECEIVE_TIMEOUT)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).expect("a Message is JSON"))
        .collect();
    // The canary is no alert but a heartbeat leg, signed with the heartbeat key.
    let position = messages
        .iter()
        .position(|m| m["subject"] == "Heartbeat through the CloudWatch Logs source")
        .expect("a heartbeat leg");
    let leg = messages.remove(position);
    assert_eq!(tag_values(&leg, "heartbeat-path"), ["cloudwatch-logs"]);
    let [mac] = tag_values(&leg, "heartbeat-mac")[..] else {
        panic!("one MAC: {leg}")
    };
    let covered = activity_aware_message::heartbeat_mac_text(
        "ids",
        "cloudwatch-logs",
        "a1b2c3d4-0000-4000-8000-0000000000ca",
        "2024-03-01T12:40:00Z",
    );
    assert!(moto.kms_verify_mac(&key, &covered, mac).await, "{leg}");
    assert!(
        !moto
            .kms_verify_mac(&key, &covered.replace("ids", "idz"), mac)
            .await
    );
    let mut subjects: Vec<String> = messages
        .iter()
        .map(|message| {
            assert_message_shape(message);
            message["subject"].as_str().unwrap().to_owned()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects[0], "Error Message: Access Denied");
    assert!(
        subjects[1].starts_with("Error Message: User: arn:aws:sts::111122223333:assumed-role/"),
        "{subjects:?}"
    );

    let error = handle(
        &publisher,
        &config.detector,
        &activity_aware_cloudtrail::BeforePublishing::default(),
        event(events::awslogs_event_with_data("%%% not base64 %%%")),
    )
    .await
    .expect_err("undecodable");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "UndecodablePayload");
    assert!(
        diagnostic.error_message.contains("awslogs.data")
            && diagnostic.error_message.contains("base64"),
        "{}",
        diagnostic.error_message
    );
    capture.assert_quiet(Duration::from_secs(1)).await;
}
