//! Builders for the events Lambda hands to the functions.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

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
