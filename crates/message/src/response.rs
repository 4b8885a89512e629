//! What a responder says: a Message about what it saw and did, tagged so that destinations
//! treat it as the response it is.

use crate::{
    DIGEST_GROUP_TAG, EVENT_TIME_TAG, Field, Message, Metadata, SEVERITY_TAG, Severity, Tag,
};

/// Tag naming the response a Message tells (`open-security-group`, `containment`).
pub const RESPONSE_TAG: &str = "response";

/// The name the responders' Messages are posted under.
pub const RESPONDER_SOURCE_NAME: &str = "Activity Aware IDS response";

/// One response to one principal's doing.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The response (`open-security-group`).
    pub name: &'a str,
    /// What became of it (`revoked`, `quarantined`...): Messages of one principal, response
    /// and outcome may be digested together, never with others.
    pub outcome: &'a str,
    pub principal: &'a str,
    pub severity: Severity,
    /// When what it responds to happened.
    pub event_time: Option<&'a str>,
}

impl Response<'_> {
    /// The Message saying it.
    pub fn message(&self, subject: String, fields: Vec<Field>) -> Message {
        let mut tags = vec![
            Tag::new(SEVERITY_TAG, self.severity.as_str()),
            Tag::new(RESPONSE_TAG, self.name),
            Tag::new(
                DIGEST_GROUP_TAG,
                format!("{} · {} · {}", self.principal, self.name, self.outcome),
            ),
        ];
        if let Some(time) = self.event_time {
            tags.push(Tag::new(EVENT_TIME_TAG, time));
        }
        Message {
            subject,
            fields,
            metadata: Metadata {
                source_name: Some(RESPONDER_SOURCE_NAME.into()),
                source_icon_url: None,
            },
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_tagged_with_its_severity_and_digested_only_with_its_like() {
        let response = Response {
            name: "containment",
            outcome: "quarantined",
            principal: "arn:aws:iam::1:user/bob",
            severity: Severity::Critical,
            event_time: Some("2026-12-03T10:00:00Z"),
        };
        let message = response.message(
            "Contained bob".into(),
            vec![Field::text("Response", "done")],
        );
        let tags: Vec<(&str, &str)> = message
            .tags
            .iter()
            .map(|tag| (tag.key.as_str(), tag.value.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("severity", "critical"),
                ("response", "containment"),
                (
                    "digest-group",
                    "arn:aws:iam::1:user/bob · containment · quarantined"
                ),
                ("event-time", "2026-12-03T10:00:00Z"),
            ]
        );
        assert_eq!(
            message.metadata.source_name.as_deref(),
            Some(RESPONDER_SOURCE_NAME)
        );
        assert_eq!(message.fields[0].value, serde_json::json!("done"));
    }
}
