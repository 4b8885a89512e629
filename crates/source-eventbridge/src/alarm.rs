//! `CloudWatch Alarm State Change`: one of the stack's own alarms (its health path) went off or
//! came back, posted to Slack too when Slack works. What it watches, its state and why.

use crate::{digest_tags, text};
use activity_aware_cloudtrail::is_safe_region;
use activity_aware_message::{Field, Message, Metadata, Severity};
use serde_json::Value;
use serde_json::value::RawValue;

pub const SOURCE_NAME: &str = "CloudWatch";
pub const CONSOLE_LINK_LABEL: &str = "CloudWatch Console";
const DIGEST_FIELDS: [&str; 1] = ["State"];

/// The alarm in the CloudWatch console, when its region and name can go into a URL.
pub fn console_link(region: &str, name: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    (is_safe_region(region) && !name.is_empty() && name.len() <= 255 && name.chars().all(plain))
        .then(|| {
            format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/{name}")
        })
}

/// The alarm's Message and how severe it is: an alarm going off is high, coming back info.
pub fn message(detail: &RawValue, region: Option<&str>) -> Result<(Message, Severity), String> {
    let alarm: Value = serde_json::from_str(detail.get()).map_err(|error| error.to_string())?;
    let name = text(&alarm, &["alarmName"]).ok_or("an alarm state change names its alarm")?;
    let state = text(&alarm, &["state", "value"]).unwrap_or_else(|| "UNKNOWN".into());
    let previous = text(&alarm, &["previousState", "value"]);
    let description = text(&alarm, &["configuration", "description"]);
    // A recovery is good to know (low, which Slack posts by default).
    let severity = if state == "ALARM" {
        Severity::High
    } else {
        Severity::Low
    };
    let subject = match (state.as_str(), &description) {
        ("ALARM", Some(description)) => format!("Alarm {name}: {description}"),
        ("ALARM", None) => format!("Alarm {name} is in ALARM"),
        (_, _) => format!("Alarm {name} is {state} again"),
    };
    let mut fields = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push(Field::text(key, value));
        }
    };
    push("Alarm", Some(name.clone()));
    push("State", Some(state));
    push("Previous State", previous);
    push("Description", description);
    push("Reason", text(&alarm, &["state", "reason"]));
    push("Time", text(&alarm, &["state", "timestamp"]));
    push(
        CONSOLE_LINK_LABEL,
        region.and_then(|region| console_link(region, &name)),
    );
    let message = Message {
        subject,
        fields,
        metadata: Metadata {
            source_name: Some(SOURCE_NAME.into()),
            source_icon_url: None,
        },
        tags: digest_tags(Some(format!("alarm {name}")), &DIGEST_FIELDS, None),
    };
    Ok((message, severity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(state: &str) -> Box<RawValue> {
        RawValue::from_string(
            json!({
                "alarmName": "ids-DestinationSlackFailureQueue-waiting",
                "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [3.0] was >= 1.0", "timestamp": "2026-01-01T00:00:00.000+0000"},
                "previousState": {"value": "OK"},
                "configuration": {"description": "Messages Slack never took wait in the Slack function's failure queue: ./dev.sh redrive destination-slack once Slack works."}
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn an_alarm_going_off_is_high_and_says_what_to_do() {
        let (alarm, severity) = message(&change("ALARM"), Some("us-east-1")).unwrap();
        assert_eq!(severity, Severity::High);
        assert!(alarm.subject.starts_with(
            "Alarm ids-DestinationSlackFailureQueue-waiting: Messages Slack never took"
        ));
        let link = alarm
            .fields
            .iter()
            .find(|f| f.key == CONSOLE_LINK_LABEL)
            .unwrap();
        assert_eq!(
            link.value,
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/ids-DestinationSlackFailureQueue-waiting"
        );
        let (back, severity) = message(&change("OK"), None).unwrap();
        assert_eq!(severity, Severity::Low);
        assert_eq!(
            back.subject,
            "Alarm ids-DestinationSlackFailureQueue-waiting is OK again"
        );
        assert!(console_link("us-east-1", "a name with spaces").is_none());
    }
}
