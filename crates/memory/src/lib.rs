//! What the stack remembers across invocations, in one DynamoDB table of its own (the
//! template's `FamiliarityTable`, on demand, with a TTL on `expires`): one item per key, holding
//! when it was last seen (`lastSeen`, RFC 3339, and `seenAt`, seconds) and until when it is
//! remembered. Keys are parts joined by U+001F, the first naming what is remembered:
//!
//! - a routine change a principal made (see `activity_aware_detections::routine`);
//! - an event already told (`told`), so that one event reaching the stack twice (GuardDuty's
//!   finding in the member account and in its administrator, a denial on both paths) is posted
//!   once;
//! - an account and region that said it is watched (`coverage`), and a silence already told.
//!
//! Only the stack's functions may write in the table (its resource policy); nothing else of a
//! record is kept.

use aws_query::{JsonClient, QueryError, Service};
use serde_json::{Value, json};

/// Separates the parts of a key.
pub const SEPARATOR: char = '\u{1f}';

/// The longest key remembered: DynamoDB keys are at most 2,048 bytes, and part of a key can be
/// a caller's text (a session name, an address).
pub const MAX_KEY_LEN: usize = 1_024;

/// The first part of the keys accounts and regions are remembered by as watched.
pub const COVERAGE: &str = "coverage";

/// The key `account` and `region` are remembered by as watched (a member stack's liveness).
pub fn coverage_key(account: &str, region: &str) -> String {
    key([COVERAGE, account, region])
}

/// A key of `parts`, cut to [`MAX_KEY_LEN`] on a character boundary.
pub fn key<'p>(parts: impl IntoIterator<Item = &'p str>) -> String {
    let mut key = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            key.push(SEPARATOR);
        }
        key.push_str(part);
    }
    if key.len() > MAX_KEY_LEN {
        let mut end = MAX_KEY_LEN;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
}

/// Whether a key was seen within its window before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    New,
    /// Seen before, last at this time (RFC 3339, UTC).
    Before(String),
}

/// A remembered key and when it was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    /// Seconds since 1970.
    pub seen_at: i64,
}

/// The stack's table.
#[derive(Debug, Clone)]
pub struct Memory {
    client: JsonClient,
    table: String,
}

impl Memory {
    /// With `FAMILIARITY_TABLE`; `None` without a table.
    pub fn from_lookup(
        config: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Memory>, QueryError> {
        let Some(table) = lookup("FAMILIARITY_TABLE")
            .map(|table| table.trim().to_owned())
            .filter(|table| !table.is_empty())
        else {
            return Ok(None);
        };
        Ok(Some(Memory::new(config, &table)?))
    }

    pub fn new(config: &aws_config::SdkConfig, table: &str) -> Result<Memory, QueryError> {
        Ok(Memory {
            client: JsonClient::new(config, Service::DynamoDb, None)?,
            table: table.to_owned(),
        })
    }

    /// Remembers `key` as seen at `now_s` for `keep_s` seconds, and says whether it was
    /// remembered before. One atomic write: of two at once, one is new and the other is not.
    pub async fn see(&self, key: &str, now_s: i64, keep_s: i64) -> Result<Seen, QueryError> {
        let answer = self
            .client
            .call(
                "UpdateItem",
                &json!({
                    "TableName": self.table,
                    "Key": {"key": {"S": key}},
                    "UpdateExpression": "SET expires = :expires, lastSeen = :now, seenAt = :at",
                    "ExpressionAttributeValues": {
                        ":expires": {"N": (now_s + keep_s).to_string()},
                        ":now": {"S": rfc3339(now_s)},
                        ":at": {"N": now_s.to_string()},
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

    /// Whether `key` is remembered at `now_s`, without remembering it (a consistent read).
    pub async fn holds(&self, key: &str, now_s: i64) -> Result<bool, QueryError> {
        let answer = self
            .client
            .call(
                "GetItem",
                &json!({
                    "TableName": self.table,
                    "Key": {"key": {"S": key}},
                    "ConsistentRead": true,
                    "ProjectionExpression": "expires",
                }),
            )
            .await?;
        Ok(answer
            .pointer("/Item/expires/N")
            .and_then(Value::as_str)
            .and_then(|expires| expires.parse::<i64>().ok())
            .is_some_and(|expires| expires > now_s))
    }

    /// The items whose key starts with `prefix` (a first part and its separator), unexpired at
    /// `now_s`. The table is small (what a stack remembers), so it is scanned.
    pub async fn items(&self, prefix: &str, now_s: i64) -> Result<Vec<Item>, QueryError> {
        let mut items = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut request = json!({
                "TableName": self.table,
                "FilterExpression": "begins_with(#key, :prefix) AND expires > :now",
                "ExpressionAttributeNames": {"#key": "key"},
                "ExpressionAttributeValues": {":prefix": {"S": prefix}, ":now": {"N": now_s.to_string()}},
                "ProjectionExpression": "#key, seenAt",
            });
            if let Some(start) = start.take() {
                request["ExclusiveStartKey"] = start;
            }
            let answer = self.client.call("Scan", &request).await?;
            for item in answer["Items"].as_array().into_iter().flatten() {
                let key = item.pointer("/key/S").and_then(Value::as_str);
                let seen_at = item
                    .pointer("/seenAt/N")
                    .and_then(Value::as_str)
                    .and_then(|at| at.parse().ok());
                if let (Some(key), Some(seen_at)) = (key, seen_at) {
                    items.push(Item {
                        key: key.to_owned(),
                        seen_at,
                    });
                }
            }
            match answer.get("LastEvaluatedKey") {
                Some(last) if !last.is_null() => start = Some(last.clone()),
                _ => return Ok(items),
            }
        }
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(seconds: i64) -> String {
    activity_aware_message::time::format_rfc3339(seconds.saturating_mul(1_000))
}

/// Seconds since 1970, now.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
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
    fn keys_join_their_parts_and_stay_within_dynamodbs_limit() {
        assert_eq!(key(["told", "e1"]), "told\u{1f}e1");
        let long = "é".repeat(2_000);
        let cut = key(["x", &long]);
        assert!(cut.len() <= MAX_KEY_LEN && cut.starts_with("x\u{1f}é"));
    }
}
