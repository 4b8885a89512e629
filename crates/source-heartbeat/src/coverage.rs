//! Which accounts and regions are watched. Every member stack (member.yaml) sends a liveness
//! event every 15 minutes through the central bus; the EventBridge source remembers each
//! account and region it hears from (`coverage` items of the stack's memory). Every 15 minutes
//! the heartbeat reads them: an account and region silent for 45 minutes (its rules deleted, its
//! stack instance removed, its region disabled) is told at high, once a silence; with
//! `ORGANIZATIONAL_UNIT_IDS`, an account of those units that never spoke an hour after it
//! joined is told too. The pipeline summary says how many accounts and regions reported.

use crate::SOURCE_NAME;
use activity_aware_memory::{COVERAGE, Item, Memory, SEPARATOR, Seen, key, rfc3339};
use activity_aware_message::{
    DIGEST_GROUP_TAG, Field, Message, Metadata, OutgoingMessage, SEVERITY_TAG, Severity, Tag,
};
use aws_query::QueryError;

/// Silent this long after its last liveness event (three missed), an account and region is
/// told: at most 60 minutes after it went quiet, with a check every 15.
pub const SILENT_AFTER_S: i64 = 45 * 60;

/// A new account is given this long to deploy its member stacks and speak.
pub const NEW_ACCOUNT_GRACE_S: i64 = 60 * 60;

/// How long a silence or an uncovered account already told is remembered.
const TOLD_KEEP_S: i64 = 30 * 86_400;

/// An account and region, and when it last said it is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub account: String,
    pub region: String,
    pub seen_at: i64,
}

/// What the coverage items say at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Heard from within [`SILENT_AFTER_S`].
    pub reporting: Vec<Watched>,
    /// Heard from before, and not since.
    pub silent: Vec<Watched>,
}

impl Coverage {
    /// Reads the memory's coverage items at `now_s`.
    pub async fn read(memory: &Memory, now_s: i64) -> Result<Coverage, QueryError> {
        let items = memory
            .items(&format!("{COVERAGE}{SEPARATOR}"), now_s)
            .await?;
        Ok(Coverage::of(&items, now_s))
    }

    /// What these coverage items say at `now_s`.
    pub fn of(items: &[Item], now_s: i64) -> Coverage {
        let mut coverage = Coverage::default();
        for item in items {
            let mut parts = item.key.split(SEPARATOR);
            let (Some(COVERAGE), Some(account), Some(region), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let watched = Watched {
                account: account.to_owned(),
                region: region.to_owned(),
                seen_at: item.seen_at,
            };
            if now_s - item.seen_at > SILENT_AFTER_S {
                coverage.silent.push(watched);
            } else {
                coverage.reporting.push(watched);
            }
        }
        coverage
            .silent
            .sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
        coverage
    }

    /// Accounts that reported (in any region).
    pub fn accounts(&self) -> usize {
        let mut accounts: Vec<&str> = self.reporting.iter().map(|w| w.account.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        accounts.len()
    }

    /// What the pipeline summary says of coverage.
    pub fn said(&self) -> String {
        format!(
            "{} account(s), {} account-region(s) reported in the last 45 minutes; {} silent",
            self.accounts(),
            self.reporting.len(),
            self.silent.len()
        )
    }
}

fn metadata() -> Metadata {
    Metadata {
        source_name: Some(SOURCE_NAME.into()),
        source_icon_url: None,
    }
}

/// The Message of an account and region that went silent.
pub fn silent_message(stack: &str, watched: &Watched) -> Message {
    Message {
        subject: format!(
            "Not watched any more: account {} in {} has been silent since {}",
            watched.account,
            watched.region,
            rfc3339(watched.seen_at)
        ),
        fields: vec![
            Field::text("Account", watched.account.clone()),
            Field::text("Region", watched.region.clone()),
            Field::text("Last Liveness Event", rfc3339(watched.seen_at)),
            Field::text(
                "Why It Matters",
                "What happens there reaches no alert: the member stack's rules were deleted or changed, its stack instance removed, or the region disabled.",
            ),
            Field::text(
                "What To Do",
                format!(
                    "In that account and region, look for the stack instance of the {stack}-organization (or {stack}-central-account) StackSet and its {stack}-liveness rule; CloudTrail says who removed them. Re-run the StackSet's instances to restore them."
                ),
            ),
        ],
        metadata: metadata(),
        tags: vec![
            Tag::new(SEVERITY_TAG, Severity::High.as_str()),
            Tag::new(DIGEST_GROUP_TAG, format!("coverage {stack}")),
        ],
    }
}

/// The Message of an account of the watched units that never said it is watched.
pub fn uncovered_message(stack: &str, account: &str) -> Message {
    Message {
        subject: format!("Not watched: account {account} has no member stack reporting"),
        fields: vec![
            Field::text("Account", account.to_owned()),
            Field::text(
                "Why It Matters",
                "The account is in the watched organizational units, joined more than an hour ago, and no region of it has sent a liveness event: nothing that happens in it is alerted.",
            ),
            Field::text(
                "What To Do",
                format!(
                    "Check the {stack}-organization StackSet's instances for the account (a failed instance says why); an account under the management account is covered by ./dev.sh org-management."
                ),
            ),
        ],
        metadata: metadata(),
        tags: vec![
            Tag::new(SEVERITY_TAG, Severity::High.as_str()),
            Tag::new(DIGEST_GROUP_TAG, format!("coverage {stack}")),
        ],
    }
}

/// The Messages to publish about coverage at `now_s`, each told once (a silence by when it
/// began, an uncovered account by its id): `accounts` are the watched units' active accounts
/// with when they joined, when they are known.
pub async fn messages(
    memory: &Memory,
    stack: &str,
    coverage: &Coverage,
    accounts: &[(String, i64)],
    now_s: i64,
) -> Result<Vec<OutgoingMessage>, QueryError> {
    let mut out = Vec::new();
    for watched in &coverage.silent {
        let since = watched.seen_at.to_string();
        let told = key(["silent", &watched.account, &watched.region, &since]);
        if memory.see(&told, now_s, TOLD_KEEP_S).await? == Seen::New {
            out.push(outgoing(
                format!("the silence of {} {}", watched.account, watched.region),
                silent_message(stack, watched),
            ));
        }
    }
    let heard: Vec<&str> = coverage
        .reporting
        .iter()
        .chain(&coverage.silent)
        .map(|w| w.account.as_str())
        .collect();
    for (account, joined) in accounts {
        if heard.contains(&account.as_str()) || now_s - joined < NEW_ACCOUNT_GRACE_S {
            continue;
        }
        let told = key(["uncovered", account]);
        if memory.see(&told, now_s, TOLD_KEEP_S).await? == Seen::New {
            out.push(outgoing(
                format!("the uncovered account {account}"),
                uncovered_message(stack, account),
            ));
        }
    }
    Ok(out)
}

fn outgoing(label: String, message: Message) -> OutgoingMessage {
    OutgoingMessage {
        label,
        body: message.to_json(),
        severity: Some(Severity::High),
        ..OutgoingMessage::default()
    }
}

pub use activity_aware_delivery::accounts::unit_accounts;

#[cfg(test)]
mod tests {
    use super::*;

    fn item(account: &str, region: &str, seen_at: i64) -> Item {
        Item {
            key: key(["coverage", account, region]),
            seen_at,
        }
    }

    #[test]
    fn an_account_and_region_silent_for_45_minutes_is_told_and_the_others_counted() {
        let now = 1_796_601_600;
        let items = [
            item("777788889999", "eu-west-3", now - 10 * 60),
            item("777788889999", "sa-east-1", now - 46 * 60),
            item("111122223333", "us-west-2", now - 44 * 60),
            // Not coverage, or not two parts: not read.
            Item {
                key: key(["told", "e1"]),
                seen_at: now,
            },
            Item {
                key: key(["coverage", "x"]),
                seen_at: now,
            },
        ];
        let coverage = Coverage::of(&items, now);
        assert_eq!(coverage.reporting.len(), 2);
        assert_eq!(coverage.accounts(), 2);
        assert_eq!(
            coverage.silent,
            [Watched {
                account: "777788889999".into(),
                region: "sa-east-1".into(),
                seen_at: now - 46 * 60
            }]
        );
        assert!(
            coverage
                .said()
                .starts_with("2 account(s), 2 account-region(s)")
        );
        let told = silent_message("ids", &coverage.silent[0]);
        assert!(
            told.subject.contains("777788889999 in sa-east-1"),
            "{}",
            told.subject
        );
        assert_eq!(told.tag(SEVERITY_TAG), Some("high"));
    }
}
