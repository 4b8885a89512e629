//! Builders for the events Lambda hands to the functions.

use std::io::Write;

use activity_aware_cloudtrail::{Detector, RecordView, message_json_from_record};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use destination_slack::time::parse_rfc3339_ms;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::payloads::{cloudtrail_records, eventbridge_sample};

/// Gzips `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// `{"awslogs":{"data": data}}` with `data` as given (for undecodable payloads).
pub fn awslogs_event_with_data(data: &str) -> Value {
    json!({ "awslogs": { "data": data } })
}

/// A CloudWatch Logs subscription event carrying `payload`: base64(gzip(JSON)).
pub fn awslogs_event(payload: &Value) -> Value {
    let json = serde_json::to_vec(payload).expect("serialising the payload");
    awslogs_event_with_data(&BASE64.encode(gzip(&json)))
}

/// A `DATA_MESSAGE` payload of a CloudTrail log group whose log events carry `messages` (each
/// one CloudTrail record as JSON text, or anything else to test bad records).
pub fn data_message(messages: &[String]) -> Value {
    let log_events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            json!({
                "id": format!("{:056}", 38_000_000_000_000_000u64 + i as u64),
                "timestamp": 1_700_000_000_000u64 + i as u64,
                "message": message,
            })
        })
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "CloudTrail/DefaultLogGroup",
        "logStream": "123456789012_CloudTrail_us-east-1",
        "subscriptionFilters": ["Activity-Aware-IDS-Dev-CloudTrailSubscription"],
        "logEvents": log_events,
    })
}

/// The `CONTROL_MESSAGE` CloudWatch Logs sends when a subscription is created.
pub fn control_message() -> Value {
    json!({
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{
            "id": "",
            "timestamp": 1_700_000_000_000u64,
            "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose.",
        }],
    })
}

/// An SNS event with one record per Message text, as Lambda delivers a topic's messages.
pub fn sns_event(messages: &[String]) -> Value {
    let topic = "arn:aws:sns:us-east-1:123456789012:Activity-Aware-IDS-Dev-SNSTopic";
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            json!({
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{topic}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f{i:02}"),
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": "2024-01-01T00:00:00.000Z",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "MessageId": format!("95df01b4-ee98-5cb9-9903-4c221d41eb{i:02}"),
                    "Message": message,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "TopicArn": topic,
                    "Subject": null,
                },
            })
        })
        .collect();
    json!({ "Records": records })
}

/// An SQS batch as an event source mapping hands it to a function: one record per body, with
/// message IDs `message-0`, `message-1`, ... (what batch item failures name).
pub fn sqs_event(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            sqs_record(
                &format!("message-{i}"),
                &format!("receipt-{i}"),
                body,
                1_700_000_000_000 + i as u64,
                1,
            )
        })
        .collect();
    json!({ "Records": records })
}

/// One record of an SQS batch event.
pub fn sqs_record(
    message_id: &str,
    receipt_handle: &str,
    body: &str,
    sent_timestamp_ms: u64,
    receive_count: u32,
) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": sent_timestamp_ms.to_string(),
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": (sent_timestamp_ms + 50).to_string(),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:Activity-Aware-IDS-Dev-DestinationSlackQueue",
        "awsRegion": "us-east-1",
    })
}

/// A CloudFormation custom resource request. `request_type` is `Create`, `Update` or `Delete`;
/// Update and Delete carry a `PhysicalResourceId`, Update an `OldResourceProperties`.
pub fn cfn_request(request_type: &str, response_url: &str, properties: Value) -> Value {
    let mut request = json!({
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:kms-encryption",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Activity-Aware-IDS-Dev/5b4f3a10-0000-11ef-8000-0a1b2c3d4e5f",
        "RequestId": format!("request-{:08x}", fastrand::u32(..)),
        "LogicalResourceId": "SlackWebhookURLEncryption",
        "ResourceType": "Custom::KMSEncryption",
        "ResourceProperties": properties,
    });
    if request_type != "Create" {
        request["PhysicalResourceId"] = json!("kms-encryption-test-world-physical-id");
    }
    if request_type == "Update" {
        request["OldResourceProperties"] = request["ResourceProperties"].clone();
    }
    request
}

/// The ready invoke events of `events/`, by file name: what `./dev.sh invoke` and `./dev.sh
/// local` send, made from the CloudTrail corpus by the functions' own mapping.
pub fn ready_events() -> Vec<(&'static str, Value)> {
    let denial = corpus_denial();
    vec![
        (
            "source-cloudtrail-cloudwatch-logs.json",
            logs_delivery_of(&denial),
        ),
        ("destination-slack.json", destination_batch(&denial)),
        ("source-eventbridge.json", eventbridge_api_call(&denial)),
        (
            "source-eventbridge-console-sign-in.json",
            eventbridge_sample("console-sign-in-root-success"),
        ),
        (
            "source-eventbridge-guardduty.json",
            eventbridge_sample("guardduty-iam-privilege-escalation-high"),
        ),
    ]
}

/// What EventBridge hands a function for this CloudTrail record: an `AWS API Call via
/// CloudTrail` event, its envelope taken from the record as EventBridge fills it.
pub fn eventbridge_api_call(record: &Value) -> Value {
    let service = record["eventSource"]
        .as_str()
        .and_then(|source| source.split('.').next())
        .unwrap_or("unknown");
    json!({
        "version": "0",
        "id": "c7b3f0a5-21d6-4e3f-8a1b-000000000001",
        "detail-type": "AWS API Call via CloudTrail",
        "source": format!("aws.{service}"),
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    })
}

/// The corpus's first AccessDenied of an IAM user that carries an error message: a real
/// `lambda:ListFunctions` denial of an exposed user's key.
pub fn corpus_denial() -> Value {
    cloudtrail_records()
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).expect("corpus records are JSON"))
        .find(|record| {
            record["errorCode"]
                .as_str()
                .is_some_and(|code| code.starts_with("AccessDenied"))
                && record["errorMessage"].is_string()
                && record["userIdentity"]["type"] == "IAMUser"
        })
        .expect("the corpus holds an IAM user's AccessDenied")
}

/// The corpus's real opening of a security group to the internet: Stratus Red Team's
/// `ec2-security-group-open-port-22-ingress`, an IAM user's `AuthorizeSecurityGroupIngress` of
/// tcp/22 whose response names the new rule's ID.
pub fn corpus_public_ingress() -> Value {
    cloudtrail_records()
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).expect("corpus records are JSON"))
        .find(|record| {
            record["eventName"] == "AuthorizeSecurityGroupIngress"
                && record["responseElements"]["securityGroupRuleSet"].is_object()
                && record["userIdentity"]["type"] == "IAMUser"
        })
        .expect("the corpus holds Stratus Red Team's opening of port 22")
}

/// What CloudWatch Logs hands the source for this one record, delivered five minutes after it
/// happened (as CloudTrail's delivery to CloudWatch Logs lags).
pub fn logs_delivery_of(record: &Value) -> Value {
    let account = record["recipientAccountId"]
        .as_str()
        .unwrap_or("111122223333");
    let region = record["awsRegion"].as_str().unwrap_or("us-east-1");
    let happened_ms = record["eventTime"]
        .as_str()
        .and_then(parse_rfc3339_ms)
        .unwrap_or(0);
    awslogs_event(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": "CloudTrail/DefaultLogGroup",
        "logStream": format!("{account}_CloudTrail_{region}"),
        "subscriptionFilters": ["Activity-Aware-IDS-CloudWatchLogsSubscriptionFilter-1A2B3C4D5E6F"],
        "logEvents": [{
            // CloudWatch Logs event IDs are 56 digits; this one is made up.
            "id": "37813620348713217281838382364736583014812741256736833536",
            "timestamp": happened_ms + 300_000,
            "message": record.to_string(),
        }],
    }))
}

/// The Message JSON a source publishes for a CloudTrail record, with the catalogue and no
/// stack settings.
pub fn message_json_of_record(text: &str) -> Option<String> {
    static DETECTOR: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    let detector = DETECTOR.get_or_init(Detector::default);
    let view = RecordView::parse(text).expect("a CloudTrail record");
    message_json_from_record(&view, &detector.detect(&view))
}

/// What the buffer queue hands the Slack function: the Messages the source makes of this denial
/// and of two more by the same key (another action, another region), which become one digest.
pub fn destination_batch(record: &Value) -> Value {
    let mut second = record.clone();
    second["eventName"] = json!("ListUsers");
    second["eventSource"] = json!("iam.amazonaws.com");
    second["eventID"] = json!("57b719ad-f2fa-4d18-bd84-000000000002");
    second["eventTime"] = json!("2024-06-02T20:16:33Z");
    let mut third = record.clone();
    third["awsRegion"] = json!("eu-west-1");
    third["eventID"] = json!("57b719ad-f2fa-4d18-bd84-000000000003");
    third["eventTime"] = json!("2024-06-02T20:16:35Z");
    let records: Vec<Value> = [record, &second, &third]
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let text = record.to_string();
            let message = message_json_of_record(&text).expect("a denial has fields");
            let id = format!("059f36b4-87a3-44ab-83d2-66197510700{i}");
            let mut sqs = sqs_record(&id, &format!("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}"), &message, 1_717_359_392_000 + 300_000 + i as u64, 1);
            sqs["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:187901811700:Activity-Aware-IDS-DestinationSlackQueue-1A2B3C4D5E6F");
            sqs
        })
        .collect();
    json!({ "Records": records })
}
