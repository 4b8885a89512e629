//! What reaches the operations topic, as Messages: CloudWatch's own alarm notifications (the
//! health path's alarm actions) and the self-protection rules' events, which the operations
//! relay posts to Slack without the stack's topic, queues or key: the path that still works
//! when someone has cut those.

use crate::alarm;
use crate::{Detector, Made, message_json, parse_event};
use activity_aware_message::{Message, Tag};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The Message a body on the operations topic stands for: `None` when it is a Message already
/// (or nothing this path reads, which the destination then refuses with the reason).
pub fn operations_message(body: &str, detector: &Detector) -> Option<String> {
    if Message::from_json(body).is_ok() {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    if value.get("AlarmName").is_some() && value.get("NewStateValue").is_some() {
        return alarm_notification(&value);
    }
    if value.get("detail-type").is_some() {
        return match message_json(&parse_event(body).ok()?, detector) {
            Made::Message { body, .. } => Some(body),
            Made::WithoutFields | Made::Dropped | Made::NoDetection | Made::Liveness { .. } => None,
        };
    }
    None
}

/// A CloudWatch alarm notification (SNS) as the alarm state change EventBridge carries.
fn alarm_notification(notification: &Value) -> Option<String> {
    let text = |key: &str| notification.get(key).and_then(Value::as_str);
    let region = text("AlarmArn").and_then(|arn| arn.split(':').nth(3));
    let detail = json!({
        "alarmName": text("AlarmName")?,
        "state": {"value": text("NewStateValue"), "reason": text("NewStateReason"),
            "timestamp": text("StateChangeTime")},
        "previousState": {"value": text("OldStateValue")},
        "configuration": {"description": text("AlarmDescription")},
    });
    let detail = RawValue::from_string(detail.to_string()).ok()?;
    let (mut message, severity) = alarm::message(&detail, region).ok()?;
    message.tags.push(Tag::new(
        activity_aware_message::SEVERITY_TAG,
        severity.as_str(),
    ));
    message.tags.push(Tag::new(
        activity_aware_message::DETECTION_TAG,
        crate::ALARM_DETECTION,
    ));
    Some(message.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_and_self_protection_events_become_messages_and_messages_stay_as_they_are() {
        let detector = Detector::default();
        let notification = json!({
            "AlarmName": "ids-SourceEventbridgeThrottles", "AlarmDescription": "The EventBridge source was throttled.",
            "NewStateValue": "ALARM", "NewStateReason": "Threshold Crossed", "StateChangeTime": "2026-12-03T10:00:00.000+0000",
            "OldStateValue": "OK", "Region": "US East (N. Virginia)",
            "AlarmArn": "arn:aws:cloudwatch:us-east-1:111122223333:alarm:ids-SourceEventbridgeThrottles"
        });
        let message =
            Message::from_json(&operations_message(&notification.to_string(), &detector).unwrap())
                .unwrap();
        assert_eq!(
            message.subject,
            "Alarm ids-SourceEventbridgeThrottles: The EventBridge source was throttled."
        );
        assert_eq!(message.tag("severity"), Some("high"));
        let event = json!({"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
            "account": "111122223333", "time": "2026-12-03T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging", "awsRegion": "us-east-1",
                "eventTime": "2026-12-03T10:00:00Z", "requestParameters": {"name": "main"},
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory", "accountId": "111122223333"}}});
        let message =
            Message::from_json(&operations_message(&event.to_string(), &detector).unwrap())
                .unwrap();
        assert_eq!(message.tag("detection"), Some("cloudtrail-stopped"));
        assert_eq!(message.tag("severity"), Some("critical"));
        let already = Message::new("s", vec![]).to_json();
        assert_eq!(operations_message(&already, &detector), None);
        assert_eq!(operations_message("not json", &detector), None);
    }
}
