//! Responder: a principal denied again and again is contained, as narrowly as stops it.
//!
//! Its queue takes the topic's Messages of denied calls (the `denied` attribute), batched over
//! the mapping's window. Those Messages are hints, nothing more: a principal of this account
//! reported denied at least `THRESHOLD` times in a batch is looked up in CloudTrail's own event
//! history (by the access key the Messages name), and only the denials CloudTrail recorded
//! count. When they reach the threshold:
//! - an IAM user gets AWS's `AWSCompromisedKeyQuarantineV3`, the policy AWS attaches to
//!   exposed keys;
//! - an assumed role's probing session, and no other, is denied: the role is tagged with that
//!   session's ID and given the stack's contained-session policy, which denies everything to
//!   the session its role's tag names. The role's other sessions (the rest of a fleet) work on.
//!
//! It acts at most once per principal per window (`CONTAINMENT_WINDOW_HOURS`): a principal it
//! acted on before, released since or probing again with another session, is told to a
//! person instead. Never the root user, another account's principal, the stack's own roles or
//! a principal of `NEVER_CONTAIN_PRINCIPAL_ARNS`. Every action is posted as critical, with how
//! to undo it. A containment that fails is said in a critical Message, and the principal's
//! Messages are reported as batch item failures, so that they are retried and then kept in the
//! failure queue.

pub mod history;
pub mod iam;
pub mod probe;

use activity_aware_detections::PrincipalList;
use activity_aware_message::time::{format_rfc3339, parse_rfc3339_ms};
use activity_aware_message::{
    Field, Message, MessagePublisher, OutgoingMessage, PublishError, Response, Severity, Topic,
    TopicError,
};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_query::QueryError;
use history::{CloudTrailHistory, Confirmed, confirmed_denials};
use iam::{
    CONTAINED_AT_TAG, CONTAINED_SESSION_TAG, Iam, Kind, is_missing, is_tag_value, is_unmodifiable,
    quarantine_policy_arn,
};
use lambda_runtime::Diagnostic;
use probe::{Hint, Reported, reported, top};
use std::collections::HashMap;

/// The response's name in its Messages' `response` tag.
pub const RESPONSE_NAME: &str = "containment";

/// Denials in a batch that make a probe, unless the stack says otherwise.
pub const DEFAULT_THRESHOLD: usize = 50;

/// Hours within which containment acts on a principal once at most, unless the stack says
/// otherwise.
pub const DEFAULT_WINDOW_HOURS: i64 = 24;

/// How long reported denials may take to appear in CloudTrail's event history: until then a
/// probe CloudTrail does not confirm yet comes back from the queue to be looked up again.
pub const CONFIRMATION_WAIT_MS: i64 = 15 * 60 * 1_000;

/// Receives of a batch after which what CloudTrail confirms is what counts.
pub const CONFIRMATION_RECEIVES: u32 = 4;

/// Minutes around the reported denials CloudTrail is asked about.
const LOOKUP_MARGIN_MS: i64 = 5 * 60 * 1_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("PROBE_CONTAINMENT_THRESHOLD must be a whole number from 5 to 10000, not {0:?}")]
    Threshold(String),
    #[error("CONTAINMENT_WINDOW_HOURS must be a whole number from 1 to 720, not {0:?}")]
    Window(String),
    #[error(
        "CONTAINED_SESSIONS_POLICY_ARN must be the ARN of the stack's contained-session policy in this account, not {0:?}"
    )]
    Policy(String),
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
    /// Containment acts on a principal at most once in this many milliseconds.
    pub window_ms: i64,
    /// The stack's managed policy that denies a role's contained session.
    pub contained_sessions_policy: String,
    pub never: PrincipalList,
    /// The stack's own roles.
    pub stack_roles: PrincipalList,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC`, `CONTAINED_SESSIONS_POLICY_ARN`, `PROBE_CONTAINMENT_THRESHOLD` (default
    /// 50), `CONTAINMENT_WINDOW_HOURS` (default 24), `NEVER_CONTAIN_PRINCIPAL_ARNS` and
    /// `STACK_ROLE_ARNS` (ARNs separated by commas).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let topic = Topic::from_lookup(&lookup)?;
        let threshold = match get("PROBE_CONTAINMENT_THRESHOLD") {
            None => DEFAULT_THRESHOLD,
            Some(text) => match text.parse::<usize>() {
                Ok(threshold) if (5..=10_000).contains(&threshold) => threshold,
                _ => return Err(ConfigError::Threshold(text)),
            },
        };
        let hours = match get("CONTAINMENT_WINDOW_HOURS") {
            None => DEFAULT_WINDOW_HOURS,
            Some(text) => match text.parse::<i64>() {
                Ok(hours) if (1..=720).contains(&hours) => hours,
                _ => return Err(ConfigError::Window(text)),
            },
        };
        let policy = get("CONTAINED_SESSIONS_POLICY_ARN").unwrap_or_default();
        let policy_prefix = format!("arn:{}:iam::{}:policy/", topic.partition, topic.account);
        if !policy.starts_with(&policy_prefix) || policy.len() == policy_prefix.len() {
            return Err(ConfigError::Policy(policy));
        }
        let list = |variable: &'static str| {
            PrincipalList::parse(&get(variable).unwrap_or_default())
                .map_err(|error| ConfigError::Principals { variable, error })
        };
        Ok(Config {
            threshold,
            window_ms: hours * 3_600_000,
            contained_sessions_policy: policy,
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

/// What containment decided for one reported principal, and did.
#[derive(Debug)]
pub enum Outcome {
    Quarantined {
        user: String,
    },
    /// The role's probing session is denied; its other sessions work on.
    SessionContained {
        role: String,
        session: String,
    },
    /// Already contained: its denials are the containment at work.
    AlreadyContained {
        redelivered: bool,
    },
    /// Containment acted on this principal within the window: a person decides now.
    AskingAPerson {
        reason: String,
        to_act: String,
    },
    NotContained {
        reason: String,
        critical: bool,
    },
    /// CloudTrail does not hold enough of the reported denials.
    NotConfirmed {
        reported: usize,
        confirmed: usize,
    },
    /// CloudTrail may not hold the denials yet: they come back from the queue later.
    Waiting,
    /// The user or role no longer exists.
    Gone,
    /// IAM refuses to change it (a service-linked or IAM Identity Center role).
    Unmodifiable {
        error: QueryError,
    },
    Failed {
        error: QueryError,
        doing: &'static str,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Quarantined { .. } => "quarantined",
            Outcome::SessionContained { .. } => "session-contained",
            Outcome::AlreadyContained { .. } => "already-contained",
            Outcome::AskingAPerson { .. } => "asking-a-person",
            Outcome::NotContained { .. } => "not-contained",
            Outcome::NotConfirmed { .. } => "not-confirmed",
            Outcome::Waiting => "waiting-for-cloudtrail",
            Outcome::Gone => "gone",
            Outcome::Unmodifiable { .. } => "unmodifiable",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// How much its Message matters; `None` when it says nothing.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Outcome::AlreadyContained { redelivered: false } | Outcome::Waiting => None,
            Outcome::AlreadyContained { redelivered: true } | Outcome::Gone => {
                Some(Severity::Medium)
            }
            Outcome::NotContained {
                critical: false, ..
            }
            | Outcome::NotConfirmed { .. } => Some(Severity::High),
            _ => Some(Severity::Critical),
        }
    }

    /// Its principal's Messages come back from the queue: to be tried, or looked up, again.
    pub fn retried(&self) -> bool {
        matches!(self, Outcome::Waiting | Outcome::Failed { .. })
    }
}

/// What CloudTrail confirmed of a reported probe.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub reported: usize,
    pub confirmed: Vec<Confirmed>,
}

impl Evidence {
    /// The session that probed: the principal ID most of the confirmed denials name.
    fn session(&self) -> Option<&str> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for denial in &self.confirmed {
            *counts.entry(denial.principal_id.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(session, _)| session)
    }

    fn span(&self) -> Option<(String, String)> {
        let first = self.confirmed.iter().map(|d| &d.event_time).min()?;
        let last = self.confirmed.iter().map(|d| &d.event_time).max()?;
        Some((first.clone(), last.clone()))
    }
}

/// What CloudTrail holds of the reported denials, and what to do when it holds too few.
async fn confirm(
    config: &Config,
    history: &CloudTrailHistory,
    reported: &Reported,
    receives: u32,
    now_ms: i64,
) -> Result<Evidence, Outcome> {
    let (first, last) = reported.span_ms().unwrap_or((now_ms, now_ms));
    let mut records = Vec::new();
    for (region, key) in reported.lookups() {
        match history
            .calls(
                &region,
                &key,
                first - LOOKUP_MARGIN_MS,
                last + LOOKUP_MARGIN_MS,
            )
            .await
        {
            Ok(found) => records.extend(found),
            Err(error) => {
                return Err(Outcome::Failed {
                    error,
                    doing: "asking CloudTrail for the reported denials",
                });
            }
        }
    }
    let evidence = Evidence {
        reported: reported.hints.len(),
        confirmed: confirmed_denials(&records, &reported.principal, &config.account),
    };
    if evidence.confirmed.len() >= config.threshold {
        return Ok(evidence);
    }
    if now_ms - last < CONFIRMATION_WAIT_MS && receives < CONFIRMATION_RECEIVES {
        return Err(Outcome::Waiting);
    }
    Err(Outcome::NotConfirmed {
        reported: evidence.reported,
        confirmed: evidence.confirmed.len(),
    })
}

/// Whether containment acted at `tagged` (RFC 3339) within the window before `now_ms`.
fn within_window(config: &Config, tagged: Option<&String>, now_ms: i64) -> Option<String> {
    let tagged = tagged?;
    let at = parse_rfc3339_ms(tagged)?;
    (now_ms - at < config.window_ms).then(|| tagged.clone())
}

/// Confirms the reported probe with CloudTrail, then contains its principal, unless it may not
/// be, already is, or was acted on within the window.
pub async fn contain(
    config: &Config,
    iam: &Iam,
    history: &CloudTrailHistory,
    reported: &Reported,
    receives: u32,
    now_ms: i64,
) -> (Outcome, Evidence) {
    let no_evidence = || Evidence {
        reported: reported.hints.len(),
        confirmed: Vec::new(),
    };
    let target = match verdict(config, &reported.principal) {
        Verdict::Contain(target) => target,
        Verdict::Never { reason, critical } => {
            return (Outcome::NotContained { reason, critical }, no_evidence());
        }
    };
    let evidence = match confirm(config, history, reported, receives, now_ms).await {
        Ok(evidence) => evidence,
        Err(outcome) => return (outcome, no_evidence()),
    };
    let outcome = act(config, iam, target, &evidence, receives > 1, now_ms).await;
    (outcome, evidence)
}

async fn act(
    config: &Config,
    iam: &Iam,
    target: Target,
    evidence: &Evidence,
    redelivered: bool,
    now_ms: i64,
) -> Outcome {
    let failed = |doing: &'static str| {
        move |error: QueryError| {
            if is_missing(&error) {
                Outcome::Gone
            } else if is_unmodifiable(&error) {
                Outcome::Unmodifiable { error }
            } else {
                Outcome::Failed { error, doing }
            }
        }
    };
    let now = format_rfc3339(now_ms);
    let hours = config.window_ms / 3_600_000;
    match target {
        Target::User(user) => {
            let policy = quarantine_policy_arn(&config.partition);
            match iam.user_has_policy(&user, &policy).await {
                Ok(true) => return Outcome::AlreadyContained { redelivered },
                Ok(false) => {}
                Err(error) => return failed("reading the user's policies")(error),
            }
            let tags = match iam.tags(Kind::User, &user).await {
                Ok(tags) => tags,
                Err(error) => return failed("reading the user's tags")(error),
            };
            if let Some(at) = within_window(config, tags.get(CONTAINED_AT_TAG), now_ms) {
                return Outcome::AskingAPerson {
                    reason: format!(
                        "containment quarantined this user at {at} and someone released it since; within {hours} h it does not act on the same principal twice"
                    ),
                    to_act: format!(
                        "aws iam attach-user-policy --user-name {user} --policy-arn {policy}"
                    ),
                };
            }
            if let Err(error) = iam.attach_user_policy(&user, &policy).await {
                return failed("attaching the quarantine policy")(error);
            }
            if let Err(error) = iam
                .tag(Kind::User, &user, &[(CONTAINED_AT_TAG, &now)])
                .await
            {
                tracing::warn!(%user, %error, "quarantined, but the time of it could not be tagged");
            }
            Outcome::Quarantined { user }
        }
        Target::Role(role) => {
            let Some(session) = evidence.session().map(str::to_owned) else {
                return Outcome::NotConfirmed {
                    reported: evidence.reported,
                    confirmed: 0,
                };
            };
            let revoke_all = format!(
                "revoke every session of the role in the IAM console (Roles, {role}, Revoke active sessions)"
            );
            if !is_tag_value(&session) {
                return Outcome::NotContained {
                    reason: format!(
                        "its session ID {session:?} holds characters an IAM tag cannot, so its session alone cannot be denied: {revoke_all}"
                    ),
                    critical: true,
                };
            }
            let tags = match iam.tags(Kind::Role, &role).await {
                Ok(tags) => tags,
                Err(error) => return failed("reading the role's tags")(error),
            };
            let contained_now = tags.get(CONTAINED_SESSION_TAG);
            if contained_now == Some(&session) {
                match iam
                    .role_has_policy(&role, &config.contained_sessions_policy)
                    .await
                {
                    Ok(true) => return Outcome::AlreadyContained { redelivered },
                    Ok(false) => {}
                    Err(error) => return failed("reading the role's policies")(error),
                }
            }
            if let Some(at) = within_window(config, tags.get(CONTAINED_AT_TAG), now_ms) {
                let before = match contained_now {
                    Some(other) if other != &session => format!("session {other} of this role"),
                    _ => "this session, and someone released it since".into(),
                };
                return Outcome::AskingAPerson {
                    reason: format!(
                        "containment contained {before} at {at}; within {hours} h it does not act on the same role twice"
                    ),
                    to_act: format!(
                        "to stop this session: aws iam tag-role --role-name {role} --tags Key={CONTAINED_SESSION_TAG},Value={session} && aws iam attach-role-policy --role-name {role} --policy-arn {}; to stop every session: {revoke_all}",
                        config.contained_sessions_policy
                    ),
                };
            }
            if let Err(error) = iam
                .tag(
                    Kind::Role,
                    &role,
                    &[(CONTAINED_SESSION_TAG, &session), (CONTAINED_AT_TAG, &now)],
                )
                .await
            {
                return failed("tagging the role with the contained session")(error);
            }
            if let Err(error) = iam
                .attach_role_policy(&role, &config.contained_sessions_policy)
                .await
            {
                return failed("attaching the contained-session policy")(error);
            }
            Outcome::SessionContained { role, session }
        }
    }
}

/// The Message an outcome is said in; `None` when there is nothing to say.
pub fn message(
    config: &Config,
    reported: &Reported,
    evidence: &Evidence,
    outcome: &Outcome,
) -> Option<Message> {
    let severity = outcome.severity()?;
    let principal = &reported.principal;
    let count = evidence.confirmed.len();
    let policy = quarantine_policy_arn(&config.partition);
    let contained_policy = &config.contained_sessions_policy;
    let (subject, response) = match outcome {
        Outcome::Quarantined { user } => (
            format!(
                "Contained {principal} after {count} denied calls: AWS's quarantine policy attached"
            ),
            format!("Attached AWSCompromisedKeyQuarantineV3 to user {user}"),
        ),
        Outcome::SessionContained { role, session } => (
            format!(
                "Contained {principal} after {count} denied calls: its session denied, the role's other sessions untouched"
            ),
            format!(
                "Denied everything to session {session} of role {role} (the role is tagged {CONTAINED_SESSION_TAG}={session} and has the stack's contained-session policy)"
            ),
        ),
        Outcome::AlreadyContained { .. } => (
            format!("Still contained: {principal}, {count} more denied calls"),
            "Nothing more to do: it was already contained (a retried delivery)".to_owned(),
        ),
        Outcome::AskingAPerson { reason, .. } => (
            format!("Probe by {principal}: {count} denied calls, left to a person"),
            format!("Not contained automatically: {reason}"),
        ),
        Outcome::NotContained { reason, .. } => (
            format!(
                "Probe by {principal}: {} denied calls, not contained",
                count.max(reported.hints.len())
            ),
            format!("Not contained: {reason}"),
        ),
        Outcome::NotConfirmed {
            reported: said,
            confirmed,
        } => (
            format!(
                "Reported probe by {principal} not confirmed by CloudTrail: {confirmed} of {said} denials found"
            ),
            format!(
                "Not contained: CloudTrail's event history holds {confirmed} of the {said} denials reported for it (ProbeContainmentThreshold: {}), and containment acts only on what CloudTrail recorded. Denials reported but not recorded may be forged: see who can publish to the topic, write to the trail's log group, or invoke containment",
                config.threshold
            ),
        ),
        Outcome::Waiting => return None,
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
        Outcome::Failed { error, doing } => (
            format!("Could not contain {principal} after {count} denied calls"),
            format!(
                "Containing it failed while {doing}: {error}. Contain it by hand; its denials are kept in the containment failure queue"
            ),
        ),
    };
    let text = Field::text;
    let mut fields = vec![
        text("Response", response),
        text("Principal", principal.clone()),
    ];
    if count > 0 {
        fields.push(text(
            "Denied Calls",
            format!(
                "{count} recorded by CloudTrail ({} reported; ProbeContainmentThreshold: {})",
                evidence.reported, config.threshold
            ),
        ));
        fields.push(text(
            "Denied Actions",
            top(evidence.confirmed.iter().map(|d| d.event_name.as_str()), 8),
        ));
        let sources = top(
            evidence
                .confirmed
                .iter()
                .filter_map(|d| d.source_ip.as_deref()),
            5,
        );
        if !sources.is_empty() {
            fields.push(text("Source IPs", sources));
        }
        if let Some((first, last)) = evidence.span() {
            fields.push(text("Denied Between", format!("{first} and {last}")));
        }
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
        Outcome::SessionContained { role, session } => {
            fields.push(text("What It Stops", format!("Every call of session {session} fails, from any address, as long as the role's tag names it; the role's other sessions (other instances or functions using it) work on.")));
            fields.push(text(
                "To Undo",
                format!("aws iam untag-role --role-name {role} --tag-keys {CONTAINED_SESSION_TAG} && aws iam detach-role-policy --role-name {role} --policy-arn {contained_policy}"),
            ));
            fields.push(text("Next", "Find where the session's credentials are used (an instance's or a function's credentials, or whoever assumed the role) and replace them; if the intruder can assume the role again, revoke every session of the role in the IAM console.".into()));
        }
        Outcome::AskingAPerson { to_act, .. } => {
            fields.push(text("To Act", to_act.clone()));
        }
        _ => {}
    }
    let last = evidence.span().map(|(_, last)| last);
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// One batch from the containment queue: count what is reported, confirm it with CloudTrail,
/// contain, say so. Records that are no Message, and the reports of a principal whose
/// containment failed or waits for CloudTrail, are the batch's item failures.
pub async fn handle(
    config: &Config,
    iam: &Iam,
    history: &CloudTrailHistory,
    publisher: &MessagePublisher,
    event: SqsEvent,
) -> Result<SqsBatchResponse, ContainmentError> {
    let mut response = SqsBatchResponse::default();
    let mut fail = |id: &str| {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id.to_owned();
        response.batch_item_failures.push(failure);
    };
    let mut hints = Vec::new();
    let mut receives: HashMap<String, u32> = HashMap::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        match Message::from_delivery_body(body) {
            Ok(message) => {
                if let Some(hint) = Hint::of(&id, &message) {
                    hints.push(hint);
                }
            }
            Err(error) => {
                tracing::error!(message_id = %id, error = %error, "not a Message");
                fail(&id);
            }
        }
        let count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or(1);
        receives.insert(id, count);
    }
    let now = now_ms();
    let mut outgoing = Vec::new();
    for reported in reported(hints)
        .into_iter()
        .filter(|reported| reported.hints.len() >= config.threshold)
        // The root user's every call is the root-activity detection, told on its own.
        .filter(|reported| !reported.principal.ends_with(":root"))
    {
        let received = reported
            .message_ids()
            .filter_map(|id| receives.get(id))
            .copied()
            .max()
            .unwrap_or(1);
        let (outcome, evidence) = contain(config, iam, history, &reported, received, now).await;
        tracing::info!(
            principal = %reported.principal,
            reported = reported.hints.len(),
            confirmed = evidence.confirmed.len(),
            outcome = outcome.name(),
            "probe"
        );
        if let Outcome::Failed { error, doing } = &outcome {
            tracing::error!(principal = %reported.principal, error = %error, doing, "containment failed");
        }
        if outcome.retried() {
            for id in reported.message_ids() {
                fail(id);
            }
        }
        if let Some(message) = message(config, &reported, &evidence, &outcome) {
            outgoing.push(OutgoingMessage {
                label: format!("the {} of {}", outcome.name(), reported.principal),
                body: message.to_json(),
                severity: outcome.severity(),
                ..OutgoingMessage::default()
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
            "CONTAINED_SESSIONS_POLICY_ARN" => {
                Some("arn:aws:iam::111122223333:policy/ids-ContainedSessions".into())
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
                key if key == name => Some(value.into()),
                "SNS_TOPIC" => Some("arn:aws:sns:us-east-1:111122223333:t".into()),
                "CONTAINED_SESSIONS_POLICY_ARN" => {
                    Some("arn:aws:iam::111122223333:policy/ids-ContainedSessions".into())
                }
                _ => None,
            })
        };
        let defaults = with("X", "").unwrap();
        assert_eq!(defaults.threshold, DEFAULT_THRESHOLD);
        assert_eq!(defaults.window_ms, 24 * 3_600_000);
        assert!(matches!(
            with("CONTAINMENT_WINDOW_HOURS", "0"),
            Err(ConfigError::Window(_))
        ));
        // The policy must be a policy of this account: nothing else is attached to roles.
        for policy in [
            "",
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws:iam::444455556666:policy/x",
        ] {
            assert!(
                matches!(
                    with("CONTAINED_SESSIONS_POLICY_ARN", policy),
                    Err(ConfigError::Policy(_))
                ),
                "{policy}"
            );
        }
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
