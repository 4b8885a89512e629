//! What the sources remember of routine changes (see [`activity_aware_detections::routine`]):
//! one DynamoDB item per key (a detection and who made it, or where), whose `expires` slides
//! forward each time it is seen. A routine change is news when its key is not remembered, and
//! told for the record (info) when it is. Nothing else is stored: no record, no value beyond
//! the key and when it was last seen.

use crate::detect::ROUTINE_LABEL;
use crate::record::CONSOLE_LINK_LABEL;
use activity_aware_message::{
    Field, MESSAGE_BODY_LIMIT_BYTES, Message, OutgoingMessage, SEVERITY_TAG, Severity, Tag,
};
use aws_query::{JsonClient, QueryError, Service};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashSet;

/// How long a routine change is remembered after it was last seen, unless the stack says
/// (`FAMILIARITY_DAYS`).
pub const DEFAULT_FAMILIARITY_DAYS: u32 = 90;

/// The DynamoDB table of routine changes seen, and how long they are remembered.
pub struct Familiarity {
    client: JsonClient,
    table: String,
    days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FamiliarityError {
    #[error("FAMILIARITY_DAYS: {0:?} is not a number of days from 1 to 3650")]
    Days(String),
    #[error(transparent)]
    Client(#[from] QueryError),
}

/// Whether a routine change was seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not within the window: news.
    New,
    /// Seen within the window, last at this time (RFC 3339, UTC).
    Before(String),
}

impl Familiarity {
    /// With `FAMILIARITY_TABLE` (and `FAMILIARITY_DAYS`); `None` without a table: every
    /// routine change is then news.
    pub fn from_env(
        config: &aws_config::SdkConfig,
    ) -> Result<Option<Familiarity>, FamiliarityError> {
        Familiarity::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Familiarity>, FamiliarityError> {
        let Some(table) = lookup("FAMILIARITY_TABLE")
            .map(|table| table.trim().to_owned())
            .filter(|table| !table.is_empty())
        else {
            return Ok(None);
        };
        let days = match lookup("FAMILIARITY_DAYS").map(|days| days.trim().to_owned()) {
            None => DEFAULT_FAMILIARITY_DAYS,
            Some(days) if days.is_empty() => DEFAULT_FAMILIARITY_DAYS,
            Some(days) => days
                .parse()
                .ok()
                .filter(|days| (1..=3650).contains(days))
                .ok_or(FamiliarityError::Days(days))?,
        };
        Ok(Some(Familiarity {
            client: JsonClient::new(config, Service::DynamoDb, None)?,
            table,
            days,
        }))
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    /// Remembers `key` as seen now, and says whether it was seen within the window before.
    /// One atomic write: of two identical changes at once, one is news and the other is not.
    pub async fn see(&self, key: &str, now_s: i64) -> Result<Seen, QueryError> {
        let expires = now_s + i64::from(self.days) * 86_400;
        let answer = self
            .client
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": {"key": {"S": key}},
                    "UpdateExpression": "SET expires = :expires, lastSeen = :now",
                    "ExpressionAttributeValues": {
                        ":expires": {"N": expires.to_string()},
                        ":now": {"S": rfc3339(now_s)},
                    },
                    "ReturnValues": "ALL_OLD",
                }),
            )
            .await?;
        let old = |name: &str| answer.pointer(&format!("/Attributes/{name}"));
        // DynamoDB deletes expired items late (within days): an item past its time is gone.
        let remembered = old("expires")
            .and_then(|value| value.get("N"))
            .and_then(Value::as_str)
            .and_then(|expires| expires.parse::<i64>().ok())
            .is_some_and(|expires| expires > now_s);
        if !remembered {
            return Ok(Seen::New);
        }
        let last = old("lastSeen")
            .and_then(|value| value.get("S"))
            .and_then(Value::as_str)
            .unwrap_or("within the window")
            .to_owned();
        Ok(Seen::Before(last))
    }

    /// Settles each routine change (`familiar`) in place: remembered ones become info and say
    /// so. One that cannot be looked up stays news (it is posted at its severity): a table
    /// that fails never hides an alert. Each key is asked once a batch, several at once; the
    /// same change again in the batch is told for the record beside the first.
    pub async fn settle_all(&self, outgoing: &mut [OutgoingMessage]) {
        let now_s = now_s();
        let mut asked = HashSet::new();
        let mut asks = Vec::new();
        let mut repeats = Vec::new();
        for (index, message) in outgoing.iter_mut().enumerate() {
            let Some(key) = message.familiar.take() else {
                continue;
            };
            if asked.insert(key.clone()) {
                asks.push((index, key));
            } else {
                repeats.push(index);
            }
        }
        let answers: Vec<(usize, Result<Seen, QueryError>)> = futures::stream::iter(asks)
            .map(|(index, key)| async move { (index, self.see(&key, now_s).await) })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect()
            .await;
        for (index, answer) in answers {
            let message = &mut outgoing[index];
            match answer {
                Ok(Seen::New) => {}
                Ok(Seen::Before(last)) => told(
                    message,
                    &format!(
                        "made before (last seen at {last}), within the {} days the stack remembers: a routine change, told for the record",
                        self.days
                    ),
                ),
                Err(error) => {
                    tracing::error!(%error, label = %message.label, "a routine change could not be looked up; it is posted as news");
                }
            }
        }
        for index in repeats {
            told(
                &mut outgoing[index],
                "made again in the same delivery, beside the first: a routine change, told for the record",
            );
        }
    }
}

/// Lookups of one batch in flight at once.
const CONCURRENT_LOOKUPS: usize = 16;

/// Tells `message` for the record, saying why.
fn told(message: &mut OutgoingMessage, said: &str) {
    if let Some(body) = told_for_the_record(&message.body, said) {
        message.body = body;
        message.severity = Some(Severity::Info);
    }
}

/// The Message at info, saying why; `None` when the body is no Message (it is then left as
/// it is, at its severity).
fn told_for_the_record(body: &str, said: &str) -> Option<String> {
    let mut message = Message::from_json(body).ok()?;
    message.tags.retain(|tag| tag.key != SEVERITY_TAG);
    message
        .tags
        .push(Tag::new(SEVERITY_TAG, Severity::Info.as_str()));
    let at = message
        .fields
        .iter()
        .position(|field| field.key == CONSOLE_LINK_LABEL)
        .unwrap_or(message.fields.len());
    message.fields.insert(at, Field::text(ROUTINE_LABEL, said));
    Some(message.to_json_within(MESSAGE_BODY_LIMIT_BYTES).0)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_601_600 + 3_661), "2026-12-07T01:01:01Z");
    }

    #[test]
    fn a_remembered_change_is_info_and_says_why_before_its_console_link() {
        let body = Message {
            subject: "Security group changed".into(),
            fields: vec![
                Field::text("Event Name", "CreateSecurityGroup"),
                Field::text(CONSOLE_LINK_LABEL, "https://console.aws.amazon.com/"),
            ],
            metadata: Default::default(),
            tags: vec![Tag::new(SEVERITY_TAG, "low"), Tag::new("detection", "sg")],
        }
        .to_json();
        let told = Message::from_json(&told_for_the_record(&body, "seen before").unwrap()).unwrap();
        let severities: Vec<_> = told
            .tags
            .iter()
            .filter(|tag| tag.key == SEVERITY_TAG)
            .map(|tag| tag.value.as_str())
            .collect();
        assert_eq!(severities, ["info"]);
        assert!(told.tags.iter().any(|tag| tag.key == "detection"));
        let keys: Vec<_> = told.fields.iter().map(|field| field.key.as_str()).collect();
        assert_eq!(keys, ["Event Name", ROUTINE_LABEL, CONSOLE_LINK_LABEL]);
        assert_eq!(told_for_the_record("not a message", "x"), None);
    }
}
