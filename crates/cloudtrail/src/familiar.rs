//! What the sources ask the stack's memory (see `activity_aware_memory`) before publishing: a
//! routine change (see [`activity_aware_detections::routine`]) is news when its key is not
//! remembered, and told for the record (info) when it is; an event already told is not posted
//! again.

use crate::detect::ROUTINE_LABEL;
use crate::record::CONSOLE_LINK_LABEL;
use activity_aware_memory::{Memory, Seen, now_s};
use activity_aware_message::{
    Field, MESSAGE_BODY_LIMIT_BYTES, Message, OutgoingMessage, SEVERITY_TAG, Severity, Tag,
};
use aws_query::QueryError;
use futures::StreamExt;
use std::collections::HashSet;

/// How long a routine change is remembered after it was last seen, unless the stack says
/// (`FAMILIARITY_DAYS`).
pub const DEFAULT_FAMILIARITY_DAYS: u32 = 90;

/// How long an event already told is remembered: long enough for every path that carries it
/// (CloudWatch Logs' batches take minutes, EventBridge's retries hours).
pub const TOLD_KEEP_S: i64 = 24 * 3_600;

/// What the sources remember, and how long routine changes are remembered.
pub struct Familiarity {
    memory: Memory,
    days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FamiliarityError {
    #[error("FAMILIARITY_DAYS: {0:?} is not a number of days from 1 to 3650")]
    Days(String),
    #[error(transparent)]
    Client(#[from] QueryError),
}

impl Familiarity {
    /// With `FAMILIARITY_TABLE` (and `FAMILIARITY_DAYS`); `None` without a table: every
    /// routine change is then news, and every event is posted however often it comes.
    pub fn from_env(
        config: &aws_config::SdkConfig,
    ) -> Result<Option<Familiarity>, FamiliarityError> {
        Familiarity::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Familiarity>, FamiliarityError> {
        let Some(memory) = Memory::from_lookup(config, &lookup)? else {
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
        Ok(Some(Familiarity { memory, days }))
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Settles each Message in place: one whose event was already told (`once`) is dropped;
    /// a remembered routine change (`familiar`) becomes info and says so. What cannot be looked
    /// up is posted as it is: a table that fails never hides an alert (at worst, one is posted
    /// twice). Each key is asked once a batch, several at once; the same change again in the
    /// batch is told for the record beside the first, the same event again is dropped. Returns
    /// how many were dropped as told already.
    pub async fn settle_all(&self, outgoing: &mut Vec<OutgoingMessage>) -> usize {
        let now_s = now_s();
        let keep_s = i64::from(self.days) * 86_400;
        let mut asked = HashSet::new();
        let mut asks = Vec::new();
        let mut repeats = Vec::new();
        for (index, message) in outgoing.iter_mut().enumerate() {
            // The event's key stays on the Message: it is remembered once it is published.
            for (kind, key) in [
                (Ask::Told, message.once.clone()),
                (Ask::Routine, message.familiar.take()),
            ] {
                let Some(key) = key else { continue };
                if asked.insert(key.clone()) {
                    asks.push((index, kind, key));
                } else {
                    repeats.push((index, kind));
                }
            }
        }
        let answers: Vec<(usize, Ask, Result<Seen, QueryError>)> = futures::stream::iter(asks)
            .map(|(index, kind, key)| async move {
                let answer = match kind {
                    // Asked only: an event is remembered as told once it is published, so a
                    // publish that fails and is tried again is never taken for told.
                    Ask::Told => match self.memory.holds(&key, now_s).await {
                        Ok(true) => Ok(Seen::Before("already told".into())),
                        Ok(false) => Ok(Seen::New),
                        Err(error) => Err(error),
                    },
                    Ask::Routine => self.memory.see(&key, now_s, keep_s).await,
                };
                (index, kind, answer)
            })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect()
            .await;
        let mut dropped = HashSet::new();
        for (index, kind, answer) in answers {
            let message = &mut outgoing[index];
            match (kind, answer) {
                (_, Ok(Seen::New)) => {}
                (Ask::Told, Ok(Seen::Before(last))) => {
                    tracing::info!(label = %message.label, %last, "already told: not published again");
                    dropped.insert(index);
                }
                (Ask::Routine, Ok(Seen::Before(last))) => told(
                    message,
                    &format!(
                        "made before (last seen at {last}), within the {} days the stack remembers: a routine change, told for the record",
                        self.days
                    ),
                ),
                (_, Err(error)) => {
                    tracing::error!(%error, label = %message.label, "the stack's memory could not be asked; the Message is posted as it is");
                }
            }
        }
        for (index, kind) in repeats {
            match kind {
                Ask::Told => {
                    dropped.insert(index);
                }
                Ask::Routine => told(
                    &mut outgoing[index],
                    "made again in the same delivery, beside the first: a routine change, told for the record",
                ),
            }
        }
        if !dropped.is_empty() {
            let mut index = 0;
            outgoing.retain(|_| {
                index += 1;
                !dropped.contains(&(index - 1))
            });
        }
        dropped.len()
    }

    /// Remembers the events of Messages now published (their `once` keys) as told.
    pub async fn remember_told(&self, keys: Vec<String>) {
        let now_s = now_s();
        let written: Vec<Result<Seen, QueryError>> = futures::stream::iter(keys)
            .map(|key| async move { self.memory.see(&key, now_s, TOLD_KEEP_S).await })
            .buffer_unordered(CONCURRENT_LOOKUPS)
            .collect()
            .await;
        for error in written.into_iter().filter_map(Result::err) {
            tracing::error!(%error, "a published event could not be remembered as told; another path's copy may be posted too");
        }
    }
}

/// The key of an event told: CloudTrail's event ID (the same on every path that carries the
/// record), or a finding's ID and update time.
pub fn told_key<'p>(parts: impl IntoIterator<Item = &'p str>) -> String {
    activity_aware_memory::key(std::iter::once("told").chain(parts))
}

/// The key of a record's Message, from its event ID, when it has one.
pub fn record_told_key(view: &crate::RecordView<'_>) -> Option<String> {
    view.known_text("eventID")
        .flatten()
        .filter(|id| !id.is_empty())
        .map(|id| told_key([id.as_str()]))
}

/// What a key is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// An event: posted once.
    Told,
    /// A routine change: news once.
    Routine,
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

#[cfg(test)]
mod tests {
    use super::*;

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
