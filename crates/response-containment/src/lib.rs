//! Responder: a principal denied again and again is contained.
//!
//! Its queue takes the topic's denial Messages (`detection` = `access-denied`), batched over
//! the mapping's window. A principal of this account denied at least `THRESHOLD` times in a
//! batch is what an enumeration tool looks like, and is contained:
//! - an IAM user gets AWS's `AWSCompromisedKeyQuarantineV3`, the policy AWS attaches to
//!   exposed keys;
//! - an assumed role's sessions issued until now are denied (an inline policy on
//!   `aws:TokenIssueTime`, as the console's "Revoke active sessions" writes).
//!
//! Never the root user, another account's principal, the stack's own roles or a principal of
//! `NEVER_CONTAIN_PRINCIPAL_ARNS`. Every action is posted as critical, with how to undo it. A
//! principal already contained is left alone (its quarantine keeps it denied, so its denials
//! keep coming). A containment that fails is said in a critical Message, and the principal's
//! Messages are reported as batch item failures, so that they are retried and then kept in the
//! failure queue.

pub mod iam;
pub mod probe;

use activity_aware_detections::PrincipalList;
use activity_aware_message::time::now_rfc3339;
use activity_aware_message::{
    Field, Message, MessagePublisher, OutgoingMessage, PublishError, Response, Severity, Topic,
    TopicError,
};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_query::QueryError;
use iam::{Iam, REVOKE_POLICY_NAME, is_missing, is_unmodifiable, quarantine_policy_arn};
use lambda_runtime::Diagnostic;
use probe::{Denial, Probe, is_before, probes};

/// The response's name in its Messages' `response` tag.
pub const RESPONSE_NAME: &str = "containment";

/// Denials in a batch that make a probe, unless the stack says otherwise.
pub const DEFAULT_THRESHOLD: usize = 50;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("PROBE_CONTAINMENT_THRESHOLD must be a whole number from 5 to 10000, not {0:?}")]
    Threshold(String),
    #[error("{variable}: {error}")]
    Principals {
        variable: &'static str,
        error: activity_aware_detections::PrincipalEntryError,
    },
}

/// What containment is told, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    pub partition: String,
    /// This account: only its principals are contained.
    pub account: String,
    pub threshold: usize,
    pub never: PrincipalList,
    /// The stack's own roles.
    pub stack_roles: PrincipalList,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC`, `PROBE_CONTAINMENT_THRESHOLD` (default 50),
    /// `NEVER_CONTAIN_PRINCIPAL_ARNS` and `STACK_ROLE_ARNS` (ARNs separated by commas).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).map(|value| value.trim().to_owned());
        let topic = Topic::from_lookup(&lookup)?;
        let threshold = match get("PROBE_CONTAINMENT_THRESHOLD").filter(|t| !t.is_empty()) {
            None => DEFAULT_THRESHOLD,
            Some(text) => match text.parse::<usize>() {
                Ok(threshold) if (5..=10_000).contains(&threshold) => threshold,
                _ => return Err(ConfigError::Threshold(text)),
            },
        };
        let list = |variable: &'static str| {
            PrincipalList::parse(&get(variable).unwrap_or_default())
                .map_err(|error| ConfigError::Principals { variable, error })
        };
        Ok(Config {
            threshold,
            never: list("NEVER_CONTAIN_PRINCIPAL_ARNS")?,
            stack_roles: list("STACK_ROLE_ARNS")?,
            topic_arn: topic.arn,
            partition: topic.partition,
            account: topic.account,
        })
    }
}

/// What a principal can be contained as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    User(String),
    Role(String),
}

/// Whether a principal may be contained, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Contain(Target),
    /// Never contained, and why.
    Never {
        reason: String,
        critical: bool,
    },
}

/// IAM names: letters, digits and `+=,.@_-`, at most 128 (64 for a role).
fn is_iam_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"+=,.@_-".contains(&byte))
}

/// What containment may do to the principal `arn`.
pub fn verdict(config: &Config, arn: &str) -> Verdict {
    let never = |reason: String| Verdict::Never {
        reason,
        critical: false,
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, service, _, account, resource] = parts[..] else {
        return never("it is not a principal's ARN".into());
    };
    if account != config.account {
        return never(format!(
            "it belongs to account {account}: only that account can contain it"
        ));
    }
    if service == "iam" && resource == "root" {
        return Verdict::Never {
            reason: "the root user is never contained: sign in as root, rotate its password and delete any root access keys".into(),
            critical: true,
        };
    }
    if let Some(entry) = config.stack_roles.entry_for(arn, None) {
        return never(format!(
            "it is this stack's own role ({entry}): fix its permissions instead"
        ));
    }
    if let Some(entry) = config.never.entry_for(arn, None) {
        return never(format!("NeverContainPrincipalArns names it ({entry})"));
    }
    match (service, resource.split_once('/')) {
        ("iam", Some(("user", path))) => match path.rsplit('/').next() {
            Some(name) if is_iam_name(name) => Verdict::Contain(Target::User(name.to_owned())),
            _ => never("its user name is not a plain IAM name".into()),
        },
        ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
            Some((role, _session)) if is_iam_name(role) => {
                Verdict::Contain(Target::Role(role.to_owned()))
            }
            _ => never("its role name is not a plain IAM name".into()),
        },
        _ => never(format!(
            "a {} cannot be contained by this stack: deny it where it comes from",
            resource.split('/').next().unwrap_or("principal")
        )),
    }
}

/// What containment decided for one probing principal, and did.
#[derive(Debug)]
pub enum Outcome {
    Quarantined {
        user: String,
    },
    SessionsRevoked {
        role: String,
        before: String,
    },
    /// Already contained: its denials are the containment at work.
    AlreadyContained {
        redelivered: bool,
    },
    NotContained {
        reason: String,
        critical: bool,
    },
    /// The user or role no longer exists.
    Gone,
    /// IAM refuses to change it (a service-linked or IAM Identity Center role).
    Unmodifiable {
        error: QueryError,
    },
    Failed {
        error: QueryError,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Quarantined { .. } => "quarantined",
            Outcome::SessionsRevoked { .. } => "sessions-revoked",
            Outcome::AlreadyContained { .. } => "already-contained",
            Outcome::NotContained { .. } => "not-contained",
            Outcome::Gone => "gone",
            Outcome::Unmodifiable { .. } => "unmodifiable",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// How much its Message matters; `None` when it says nothing.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Outcome::AlreadyContained { redelivered: false } => None,
            Outcome::AlreadyContained { redelivered: true } | Outcome::Gone => {
                Some(Severity::Medium)
            }
            Outcome::NotContained {
                critical: false, ..
            } => Some(Severity::High),
            _ => Some(Severity::Critical),
        }
    }
}

/// Contains the probing principal, unless it may not be or already is.
pub async fn contain(config: &Config, iam: &Iam, probe: &Probe, redelivered: bool) -> Outcome {
    let target = match verdict(config, &probe.principal) {
        Verdict::Contain(target) => target,
        Verdict::Never { reason, critical } => {
            return Outcome::NotContained { reason, critical };
        }
    };
    let failed = |error: QueryError| {
        if is_missing(&error) {
            Outcome::Gone
        } else if is_unmodifiable(&error) {
            Outcome::Unmodifiable { error }
        } else {
            Outcome::Failed { error }
        }
    };
    match target {
        Target::User(user) => {
            let policy = quarantine_policy_arn(&config.partition);
            match iam.user_has_policy(&user, &policy).await {
                Ok(None) => Outcome::Gone,
                Ok(Some(true)) => Outcome::AlreadyContained { redelivered },
                Ok(Some(false)) => match iam.attach_user_policy(&user, &policy).await {
                    Ok(()) => Outcome::Quarantined { user },
                    Err(error) => failed(error),
                },
                Err(error) => failed(error),
            }
        }
        Target::Role(role) => {
            let revoked = match iam.sessions_revoked_before(&role).await {
                Ok(revoked) => revoked,
                Err(error) => return failed(error),
            };
            // Denials of sessions the revoke already stopped are the revoke at work.
            let uncontained = match &revoked {
                Some(before) => probe.since(before).len(),
                None => probe.denials.len(),
            };
            if uncontained < config.threshold {
                return Outcome::AlreadyContained { redelivered };
            }
            let before = now_rfc3339();
            if revoked
                .as_deref()
                .is_some_and(|earlier| !is_before(earlier, &before))
            {
                return Outcome::AlreadyContained { redelivered };
            }
            match iam.revoke_sessions_before(&role, &before).await {
                Ok(()) => Outcome::SessionsRevoked { role, before },
                Err(error) => failed(error),
            }
        }
    }
}

/// The Message an outcome is said in; `None` when there is nothing to say.
pub fn message(config: &Config, probe: &Probe, outcome: &Outcome) -> Option<Message> {
    let severity = outcome.severity()?;
    let principal = &probe.principal;
    let count = probe.denials.len();
    let policy = quarantine_policy_arn(&config.partition);
    let (subject, response) = match outcome {
        Outcome::Quarantined { user } => (
            format!(
                "Contained {principal} after {count} denied calls: AWS's quarantine policy attached"
            ),
            format!("Attached AWSCompromisedKeyQuarantineV3 to user {user}"),
        ),
        Outcome::SessionsRevoked { role, before } => (
            format!(
                "Contained {principal} after {count} denied calls: role {role}'s sessions revoked"
            ),
            format!("Every session of role {role} issued before {before} is denied"),
        ),
        Outcome::AlreadyContained { .. } => (
            format!("Still contained: {principal}, {count} more denied calls"),
            "Nothing more to do: it was already contained (a retried delivery)".to_owned(),
        ),
        Outcome::NotContained { reason, .. } => (
            format!("Probe by {principal}: {count} denied calls, not contained"),
            format!("Not contained: {reason}"),
        ),
        Outcome::Gone => (
            format!("Probe by {principal}: {count} denied calls; the principal no longer exists"),
            "Nothing to contain: IAM no longer has this user or role".to_owned(),
        ),
        Outcome::Unmodifiable { error } => (
            format!("Could not contain {principal} after {count} denied calls"),
            format!(
                "IAM does not let this role be changed ({error}): contain it where it is managed (IAM Identity Center, the service that owns it)"
            ),
        ),
        Outcome::Failed { error } => (
            format!("Could not contain {principal} after {count} denied calls"),
            format!(
                "Containing it failed: {error}. Contain it by hand; its denials are kept in the containment failure queue"
            ),
        ),
    };
    let text = Field::text;
    let mut fields = vec![
        text("Response", response),
        text("Principal", principal.clone()),
        text(
            "Denied Calls",
            format!(
                "{count} in one batch (ProbeContainmentThreshold: {})",
                config.threshold
            ),
        ),
        text("Denied Actions", probe.top(|d| d.event.as_deref(), 8)),
    ];
    let sources = probe.top(|d| d.source_ip.as_deref(), 5);
    if !sources.is_empty() {
        fields.push(text("Source IPs", sources));
    }
    if let Some((first, last)) = probe.span() {
        fields.push(text("Denied Between", format!("{first} and {last}")));
    }
    match outcome {
        Outcome::Quarantined { user } => {
            fields.push(text("What It Stops", "The policy AWS attaches to exposed keys: it denies what an intruder does next (IAM changes, new keys and users, instances, Lambda functions, bucket policies...). The user's other permissions stay.".into()));
            fields.push(text(
                "To Undo",
                format!("aws iam detach-user-policy --user-name {user} --policy-arn {policy}"),
            ));
            fields.push(text("Next", format!("Rotate the user's access keys (aws iam list-access-keys --user-name {user}), then read what it did in CloudTrail.")));
        }
        Outcome::SessionsRevoked { role, .. } => {
            fields.push(text("What It Stops", "Every call of the role's sessions issued until now fails, the intruder's included; a new session (a fresh AssumeRole) still works.".into()));
            fields.push(text(
                "To Undo",
                format!("aws iam delete-role-policy --role-name {role} --policy-name {REVOKE_POLICY_NAME}"),
            ));
            fields.push(text("Next", "Find who could assume the role (its trust policy) and whose credentials did; the instance or function using it gets new sessions.".into()));
        }
        _ => {}
    }
    let last = probe.span().map(|(_, last)| last);
    let response = Response {
        name: RESPONSE_NAME,
        outcome: outcome.name(),
        principal,
        severity,
        event_time: last.as_deref(),
    };
    Some(response.message(subject, fields))
}

#[derive(Debug, thiserror::Error)]
pub enum ContainmentError {
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<ContainmentError> for Diagnostic {
    fn from(error: ContainmentError) -> Self {
        Diagnostic {
            error_type: "PublishFailed".into(),
            error_message: error.to_string(),
        }
    }
}

/// One batch from the containment queue: count, contain, say so. Records that are no Message,
/// and the denials of a principal whose containment failed, are the batch's item failures.
pub async fn handle(
    config: &Config,
    iam: &Iam,
    publisher: &MessagePublisher,
    event: SqsEvent,
) -> Result<SqsBatchResponse, ContainmentError> {
    let mut response = SqsBatchResponse::default();
    let mut fail = |id: &str| {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    };
    let mut denials = Vec::new();
    let mut redelivered_ids = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        match Message::from_delivery_body(body) {
            Ok(message) => {
                if let Some(denial) = Denial::of(&id, &message) {
                    denials.push(denial);
                }
            }
            Err(error) => {
                tracing::error!(message_id = %id, error = %error, "not a Message");
                fail(&id);
            }
        }
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or(1);
        if receives > 1 {
            redelivered_ids.push(id);
        }
    }
    let mut outgoing = Vec::new();
    for probe in probes(denials)
        .into_iter()
        .filter(|probe| probe.denials.len() >= config.threshold)
    {
        let redelivered = probe
            .denials
            .iter()
            .any(|denial| redelivered_ids.contains(&denial.message_id));
        let outcome = contain(config, iam, &probe, redelivered).await;
        tracing::info!(
            principal = %probe.principal,
            denials = probe.denials.len(),
            outcome = outcome.name(),
            "probe"
        );
        if let Outcome::Failed { error } = &outcome {
            tracing::error!(principal = %probe.principal, error = %error, "containment failed");
            for denial in &probe.denials {
                fail(&denial.message_id);
            }
        }
        if let Some(message) = message(config, &probe, &outcome) {
            outgoing.push(OutgoingMessage {
                label: format!("the {} of {}", outcome.name(), probe.principal),
                body: message.to_json(),
                severity: outcome.severity(),
                detection: None,
            });
        }
    }
    if !outgoing.is_empty() {
        publisher.publish_all(outgoing).await?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:ids-SNSTopic".into()),
            "NEVER_CONTAIN_PRINCIPAL_ARNS" => Some(
                "arn:aws:iam::111122223333:role/BreakGlass,arn:aws:iam::111122223333:user/ops"
                    .into(),
            ),
            "STACK_ROLE_ARNS" => {
                Some("arn:aws:iam::111122223333:role/ids-DestinationSlackRole-X".into())
            }
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn users_and_role_sessions_are_contained_and_nobody_else() {
        let config = config();
        let contain = |arn: &str| verdict(&config, arn);
        assert_eq!(
            contain("arn:aws:iam::111122223333:user/dev/bob"),
            Verdict::Contain(Target::User("bob".into()))
        );
        assert_eq!(
            contain("arn:aws:sts::111122223333:assumed-role/app/i-0abc"),
            Verdict::Contain(Target::Role("app".into()))
        );
        for (arn, why) in [
            (
                "arn:aws:iam::111122223333:root",
                "the root user is never contained",
            ),
            (
                "arn:aws:iam::444455556666:user/bob",
                "it belongs to account 444455556666",
            ),
            (
                "arn:aws:sts::111122223333:assumed-role/BreakGlass/alice",
                "NeverContainPrincipalArns names it",
            ),
            (
                "arn:aws:iam::111122223333:user/ops",
                "NeverContainPrincipalArns names it",
            ),
            (
                "arn:aws:sts::111122223333:assumed-role/ids-DestinationSlackRole-X/s",
                "this stack's own role",
            ),
            (
                "arn:aws:sts::111122223333:federated-user/bob",
                "a federated-user cannot be contained",
            ),
            ("arn:aws:iam::111122223333:user/<b>", "not a plain IAM name"),
        ] {
            match contain(arn) {
                Verdict::Never { reason, critical } => {
                    assert!(reason.contains(why), "{arn}: {reason}");
                    assert_eq!(critical, arn.ends_with(":root"), "{arn}");
                }
                other => panic!("{arn} would be contained: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let with = |name: &'static str, value: &'static str| {
            Config::from_lookup(move |key| match key {
                "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:t".into()),
                key if key == name => Some(value.into()),
                _ => None,
            })
        };
        assert_eq!(with("X", "").unwrap().threshold, DEFAULT_THRESHOLD);
        assert!(matches!(
            with("PROBE_CONTAINMENT_THRESHOLD", "3"),
            Err(ConfigError::Threshold(_))
        ));
        assert!(matches!(
            with("NEVER_CONTAIN_PRINCIPAL_ARNS", "bob"),
            Err(ConfigError::Principals { .. })
        ));
        assert!(matches!(
            Config::from_lookup(|_| None),
            Err(ConfigError::Topic(_))
        ));
    }
}
