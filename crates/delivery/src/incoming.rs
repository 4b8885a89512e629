//! What an invocation brings: Messages from the stack's SQS buffer queue (raw SNS delivery, read
//! by an event source mapping), or straight from an SNS subscription.

use activity_aware_message::{Message, MessageError};
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Where the Messages came from, which decides how failures are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An SQS batch: each failure is a batch item failure, and SQS brings it back.
    Sqs,
    /// An SNS event: any failure fails the invocation, and Lambda retries it.
    Sns,
}

/// One Message of the event, with what identifies it to its queue or topic.
#[derive(Debug)]
pub struct Item {
    /// The SQS messageId (what a batch item failure names) or the SNS MessageId.
    pub id: String,
    /// When the topic or queue took it, in milliseconds since 1970, when known.
    pub sent_at_ms: Option<u64>,
    /// How many times the queue has handed it out, this time included (1 from SNS).
    pub receive_count: u32,
    pub message: Result<Message, ItemError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("the SQS record has no body")]
    NoBody,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is neither an SQS batch nor an SNS event: {0}")]
    Unrecognised(String),
}

/// What a destination is invoked with: a batch from its SQS queue (as the stack invokes it),
/// or an SNS event (a function subscribed to a topic itself). Anything else is kept with what is
/// wrong with it, so that the invocation fails saying so rather than with a parse error.
#[derive(Debug, Clone)]
pub enum DestinationEvent {
    Sqs(SqsEvent),
    Sns(SnsEvent),
    Unrecognised(String),
}

impl From<Value> for DestinationEvent {
    fn from(event: Value) -> Self {
        let first_source = event
            .get("Records")
            .and_then(Value::as_array)
            .and_then(|records| records.first())
            .map(|record| {
                record
                    .get("eventSource")
                    .or_else(|| record.get("EventSource"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            });
        let unrecognised =
            |error: serde_json::Error| DestinationEvent::Unrecognised(error.to_string());
        match first_source.as_deref() {
            // No records at all: nothing to deliver, whatever the origin.
            None if event.get("Records").is_some_and(Value::is_array) => {
                DestinationEvent::Sqs(SqsEvent::default())
            }
            Some("aws:sqs") => {
                serde_json::from_value(event).map_or_else(unrecognised, DestinationEvent::Sqs)
            }
            Some("aws:sns") => {
                serde_json::from_value(event).map_or_else(unrecognised, DestinationEvent::Sns)
            }
            Some(other) => DestinationEvent::Unrecognised(format!(
                "records come from {other:?}, not aws:sqs or aws:sns"
            )),
            None => DestinationEvent::Unrecognised("it has no Records array".into()),
        }
    }
}

impl<'de> Deserialize<'de> for DestinationEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(DestinationEvent::from)
    }
}

/// Reads the Messages of an event, in order; one bad Message does not hide the others.
pub fn read_event(event: impl Into<DestinationEvent>) -> Result<(Origin, Vec<Item>), EventError> {
    match event.into() {
        DestinationEvent::Sqs(event) => Ok((
            Origin::Sqs,
            event.records.into_iter().map(sqs_item).collect(),
        )),
        DestinationEvent::Sns(event) => {
            let items = event
                .records
                .into_iter()
                .map(|record| Item {
                    sent_at_ms: Some(record.sns.timestamp.timestamp_millis().max(0) as u64),
                    receive_count: 1,
                    message: Message::from_json(&record.sns.message).map_err(ItemError::from),
                    id: record.sns.message_id,
                })
                .collect();
            Ok((Origin::Sns, items))
        }
        DestinationEvent::Unrecognised(reason) => Err(EventError::Unrecognised(reason)),
    }
}

fn sqs_item(record: aws_lambda_events::event::sqs::SqsMessage) -> Item {
    let sent_at_ms = record
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse().ok());
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let message = match record.body.as_deref() {
        None => Err(ItemError::NoBody),
        Some(body) => message_of_body(body),
    };
    Item {
        id: record.message_id.unwrap_or_default(),
        sent_at_ms,
        receive_count,
        message,
    }
}

/// With raw message delivery the body is the Message; without it, SNS wraps the Message in its
/// JSON notification, which is unwrapped so either subscription works.
fn message_of_body(body: &str) -> Result<Message, ItemError> {
    Ok(Message::from_delivery_body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sqs_record(id: &str, body: &str) -> Value {
        json!({
            "messageId": id,
            "receiptHandle": format!("handle-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1717359392000",
                "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1717359392500"},
            "messageAttributes": {},
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:queue",
            "awsRegion": "us-east-1"
        })
    }

    const MESSAGE: &str =
        r#"{"subject":"s","fields":[{"key":"k","value":"v"}],"metadata":{},"tags":[]}"#;

    #[test]
    fn reads_sqs_batches_keeping_ids_times_and_bad_bodies() {
        let event = json!({"Records": [
            sqs_record("m-1", MESSAGE),
            sqs_record("m-2", "{not json"),
            sqs_record("m-3", r#"{"fields": []}"#),
        ]});
        let (origin, items) = read_event(event).unwrap();
        assert_eq!(origin, Origin::Sqs);
        let ids: Vec<&str> = items.iter().map(|item| item.id.as_str()).collect();
        assert_eq!(ids, ["m-1", "m-2", "m-3"]);
        assert_eq!(items[0].sent_at_ms, Some(1_717_359_392_000));
        assert_eq!(items[0].receive_count, 1);
        assert_eq!(items[0].message.as_ref().unwrap().subject, "s");
        assert!(items[1].message.is_err());
        assert_eq!(
            items[2].message.as_ref().unwrap_err().to_string(),
            "Missing Required Parameter 'subject'"
        );
    }

    #[test]
    fn unwraps_sns_notifications_delivered_without_raw_delivery() {
        let notification = json!({
            "Type": "Notification", "MessageId": "n-1",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:topic",
            "Message": MESSAGE, "Timestamp": "2024-06-02T20:16:32.000Z"
        })
        .to_string();
        let (_, items) =
            read_event(json!({"Records": [sqs_record("m-1", &notification)]})).unwrap();
        assert_eq!(items[0].message.as_ref().unwrap().fields[0].key, "k");
    }

    #[test]
    fn reads_sns_events() {
        let event = json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:111122223333:topic:sub",
            "Sns": {"Type": "Notification", "MessageId": "sns-1",
                "TopicArn": "arn:aws:sns:us-east-1:111122223333:topic", "Subject": null,
                "Message": MESSAGE, "Timestamp": "2024-06-02T20:16:32.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x",
                "UnsubscribeUrl": "https://x", "MessageAttributes": {}}
        }]});
        let (origin, items) = read_event(event).unwrap();
        assert_eq!(origin, Origin::Sns);
        assert_eq!(items[0].id, "sns-1");
        assert_eq!(items[0].sent_at_ms, Some(1_717_359_392_000));
    }

    #[test]
    fn other_events_are_clear_errors() {
        let error = read_event(json!({"awslogs": {"data": "x"}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the event is neither an SQS batch nor an SNS event: it has no Records array"
        );
        let error = read_event(json!({"Records": [{"eventSource": "aws:s3"}]})).unwrap_err();
        assert!(error.to_string().contains("\"aws:s3\""), "{error}");
        let (_, items) = read_event(json!({"Records": []})).unwrap();
        assert!(items.is_empty());
    }
}
