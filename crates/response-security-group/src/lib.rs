//! Responder: a security group opened to the internet is closed again.
//!
//! An EventBridge rule sends every successful `AuthorizeSecurityGroupIngress` and
//! `ModifySecurityGroupRules` call of AWS's own (`source` `aws.ec2`), from this account's
//! regions and, through the central bus, from the organisation's member accounts. The responder
//! acts in the account and region the event and its record agree on: this account's with its
//! own role, a member account's only through the role `member.yaml` makes there (assumed with
//! the stack's external ID), and no other. It acts only on the rules the call's record names by
//! ID, and only on what EC2
//! itself says of them: each that is open to the internet (alone, or with the group's other
//! rules on the same ports; a prefix list by its entries), on a port or protocol not in
//! `ALLOWED_PUBLIC_PORTS`, in a group not tagged `activity-aware-ids:public-ingress=allowed`:
//! in `revoke` mode it revokes exactly those rules by their rule IDs, in `alert` mode it says
//! what it would revoke. Either way it publishes a Message saying what was opened, by whom,
//! what was (or would be) done, and how to undo it or allow it on purpose.
//!
//! EventBridge delivers at least once: a rule already gone counts as closed, a group gone is
//! said and not retried. A revoke that fails is said in a critical Message and fails the
//! invocation, so the retries and then the failure queue keep it.

pub mod ec2;
mod plan;

pub use plan::{Call, Decision, GroupRef, Outcome, decide, is_account_id, is_region, read_call};

use activity_aware_cloudtrail::cloudtrail_event_link;
use activity_aware_detections::PublicPorts;
use activity_aware_detections::ingress::{AddedRule, exposed};
use activity_aware_message::{
    Field, Message, MessagePublisher, OutgoingMessage, PublishError, Response, Severity, Topic,
    TopicError,
};
use aws_query::{QueryClient, QueryError, Service};
use ec2::{Ec2, Group, is_group_gone, is_rule_gone};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// The tag that exempts a group: its public rules are meant.
pub const EXEMPT_TAG_KEY: &str = "activity-aware-ids:public-ingress";
pub const EXEMPT_TAG_VALUE: &str = "allowed";

/// The response's name in its Messages' `response` tag.
pub const RESPONSE_NAME: &str = "open-security-group";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Say what would be revoked; change nothing.
    Alert,
    /// Revoke, then say so.
    Revoke,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("RESPONSE_MODE must be alert or revoke, not {0:?}")]
    Mode(String),
    #[error(transparent)]
    Ports(#[from] activity_aware_detections::ports::PortsError),
    #[error("MEMBER_RESPONDER_ROLE and MEMBER_EXTERNAL_ID go together: one is set, the other not")]
    HalfAMemberRole,
    #[error("MEMBER_RESPONDER_ROLE must be a role's name, not {0:?}")]
    MemberRoleName(String),
}

/// The role `member.yaml` makes in each member account for the central stack's responders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    pub name: String,
    pub external_id: String,
}

/// The responder's settings, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub topic_arn: String,
    /// This account, acted on with the function's own role.
    pub account: String,
    /// The topic's partition (`aws`, `aws-cn`...), the member roles' too.
    pub partition: String,
    /// Member accounts are acted on through this role; without it, only this account is.
    pub member_role: Option<MemberRole>,
    pub mode: Mode,
    pub ports: PublicPorts,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC`, `RESPONSE_MODE` (`alert`, the default, or `revoke`),
    /// `ALLOWED_PUBLIC_PORTS` (default `tcp:80,tcp:443`), and for an organisation's stack
    /// `MEMBER_RESPONDER_ROLE` with `MEMBER_EXTERNAL_ID`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let topic = Topic::from_lookup(&lookup)?;
        let mode = match get("RESPONSE_MODE").map(|mode| mode.to_ascii_lowercase()) {
            None => Mode::Alert,
            Some(mode) if mode == "alert" => Mode::Alert,
            Some(mode) if mode == "revoke" => Mode::Revoke,
            Some(other) => return Err(ConfigError::Mode(other)),
        };
        let ports = match get("ALLOWED_PUBLIC_PORTS") {
            Some(text) => PublicPorts::parse(&text)?,
            None => PublicPorts::default(),
        };
        let member_role = match (get("MEMBER_RESPONDER_ROLE"), get("MEMBER_EXTERNAL_ID")) {
            (None, None) => None,
            (Some(name), Some(external_id)) => {
                let valid = name.len() <= 64
                    && name
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"+=,.@_-".contains(&byte));
                if !valid {
                    return Err(ConfigError::MemberRoleName(name));
                }
                Some(MemberRole { name, external_id })
            }
            _ => return Err(ConfigError::HalfAMemberRole),
        };
        let partition = topic.arn.split(':').nth(1).unwrap_or("aws").to_owned();
        Ok(Config {
            topic_arn: topic.arn,
            account: topic.account,
            partition,
            member_role,
            mode,
            ports,
        })
    }

    /// The role to assume to act in `account`: `None` for this account (the function's own
    /// role), an error for an account the stack does not act in.
    pub fn role_in(&self, account: &str) -> Result<Option<String>, ResponseError> {
        if account == self.account {
            return Ok(None);
        }
        match &self.member_role {
            Some(role) => Ok(Some(format!(
                "arn:{}:iam::{account}:role/{}",
                self.partition, role.name
            ))),
            None => Err(ResponseError::NotOurs(format!(
                "the event is of account {account}, not this one ({}), and this stack acts in no member account (OrganizationalUnitIds is empty)",
                self.account
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("not a CloudTrail API call event: {0}")]
    NotACall(String),
    #[error("not this stack's to act on: {0}")]
    NotOurs(String),
    /// The member account's role could not be assumed; EventBridge tries again.
    #[error("could not act in account {account}: assuming {role} failed: {error}")]
    AssumeRole {
        account: String,
        role: String,
        error: QueryError,
    },
    /// The group could not be read, so nothing could be decided; EventBridge tries again.
    #[error("could not read security group {group}: {error}")]
    Describe { group: String, error: QueryError },
    /// Said in a critical Message too.
    #[error("could not revoke {rules} on {group}: {error}")]
    Revoke {
        group: String,
        rules: String,
        error: QueryError,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<ResponseError> for Diagnostic {
    fn from(error: ResponseError) -> Self {
        let error_type = match &error {
            ResponseError::NotACall(_) | ResponseError::NotOurs(_) => "UnrecognisedEvent",
            ResponseError::AssumeRole { .. } => "AssumeRoleFailed",
            ResponseError::Describe { .. } => "DescribeFailed",
            ResponseError::Revoke { .. } => "RevokeFailed",
            ResponseError::Publish(_) => "PublishFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What one invocation did, returned as the function's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub outcome: &'static str,
    pub mode: Mode,
    pub account: String,
    pub region: String,
    pub group: Option<String>,
    /// Rule IDs revoked (revoke mode) or that would be (alert mode).
    pub rules: Vec<String>,
    pub published: usize,
}

/// EC2 in the account and region a call happened in, as the responder may act there.
pub struct Ec2Access {
    aws: aws_config::SdkConfig,
}

impl Ec2Access {
    pub fn new(aws: aws_config::SdkConfig) -> Ec2Access {
        Ec2Access { aws }
    }

    /// EC2 in `call`'s region, as the function's own role in this account, or as the member
    /// role (assumed for this call alone) in a member account.
    pub async fn for_call(&self, config: &Config, call: &Call) -> Result<Ec2, ResponseError> {
        let role = config.role_in(&call.account)?;
        let client =
            QueryClient::in_region(&self.aws, Service::Ec2, &call.region).map_err(|error| {
                ResponseError::Describe {
                    group: call.group.to_string(),
                    error,
                }
            })?;
        let (Some(role), Some(member)) = (role, &config.member_role) else {
            return Ok(Ec2::new(client));
        };
        // STS of the function's own region: enabled wherever the function runs, and its
        // credentials are good in every region.
        let sts_region = self
            .aws
            .region()
            .map_or(call.region.as_str(), |region| region.as_ref());
        let credentials = aws_query::assume_role(
            &self.aws,
            sts_region,
            &role,
            &member.external_id,
            "activity-aware-ids-open-security-group",
        )
        .await
        .map_err(|error| ResponseError::AssumeRole {
            account: call.account.clone(),
            role: role.clone(),
            error,
        })?;
        Ok(Ec2::new(client.with_credentials(credentials)))
    }
}

/// One event: read the call, look at the group where it is, act, say it.
pub async fn handle(
    config: &Config,
    access: &Ec2Access,
    publisher: &MessagePublisher,
    event: Value,
) -> Result<Summary, ResponseError> {
    let call = read_call(&event).map_err(ResponseError::NotACall)?;
    let ec2 = match access.for_call(config, &call).await {
        Ok(ec2) => ec2,
        Err(error @ ResponseError::AssumeRole { .. }) => {
            // Nothing could be looked at: the group may still be open. Said critically, and
            // the event is kept (retries, then the failure queue).
            let message = could_not_act_message(&call, &error);
            publisher
                .publish_all(vec![OutgoingMessage {
                    label: "the could-not-act response".into(),
                    body: message.to_json(),
                    severity: Some(Severity::Critical),
                    ..OutgoingMessage::default()
                }])
                .await?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    let (outcome, decision) = respond(config, &ec2, &call).await?;
    let mut summary = Summary {
        outcome: outcome.name(),
        mode: config.mode,
        account: call.account.clone(),
        region: call.region.clone(),
        group: outcome.group_id().map(str::to_owned),
        rules: outcome.rule_ids(),
        published: 0,
    };
    tracing::info!(
        outcome = outcome.name(),
        account = %summary.account,
        region = %summary.region,
        group = ?summary.group,
        rules = ?summary.rules,
        "responded"
    );
    if let Some(message) = message(config, &call, &decision, &outcome) {
        let severity = outcome.severity().unwrap_or(Severity::High);
        summary.published = publisher
            .publish_all(vec![OutgoingMessage {
                label: format!("the {} response", outcome.name()),
                body: message.to_json(),
                severity: Some(severity),
                ..OutgoingMessage::default()
            }])
            .await?;
    }
    if let Outcome::CouldNotRevoke {
        group,
        rules,
        error,
    } = outcome
    {
        return Err(ResponseError::Revoke {
            group: group.id,
            rules: ids(&rules).join(", "),
            error,
        });
    }
    Ok(summary)
}

/// Decides from EC2's own description of the group and (in revoke mode) acts; every EC2
/// answer that decides nothing is an error.
async fn respond(
    config: &Config,
    ec2: &Ec2,
    call: &Call,
) -> Result<(Outcome, Decision), ResponseError> {
    let nothing = Ok((Outcome::NothingToClose, Decision::default()));
    // A call that added no rule with an ID (it failed, or it opened nothing by range) has
    // nothing the response may act on: it revokes by the IDs AWS recorded, or not at all.
    if call.rule_ids.is_empty() {
        return nothing;
    }
    let describe_error = |error: QueryError| ResponseError::Describe {
        group: call.group.to_string(),
        error,
    };
    let group = match &call.group {
        GroupRef::Id(id) => ec2.group(id).await,
        GroupRef::Name(name) => ec2.group_named(name).await,
        GroupRef::Unknown => Ok(None),
    }
    .map_err(describe_error)?;
    let Some(group) = group else {
        return Ok((
            Outcome::GroupGone {
                group: call.group.to_string(),
            },
            Decision::default(),
        ));
    };
    let existing = match ec2.ingress_rules(&group.id).await {
        Err(error) if is_group_gone(&error) => {
            return Ok((Outcome::GroupGone { group: group.id }, Decision::default()));
        }
        existing => existing.map_err(describe_error)?,
    };
    let mut entries = HashMap::new();
    for list in existing.iter().filter_map(AddedRule::prefix_list) {
        if !entries.contains_key(list) {
            let ranges = ec2
                .prefix_list_entries(list)
                .await
                .map_err(describe_error)?;
            entries.insert(list.to_owned(), ranges);
        }
    }
    let decision = decide(call, &existing, &entries, &config.ports);
    if decision.to_close.is_empty() {
        // What the record says it opened that EC2 no longer holds: closed already (by this
        // response, for a replayed event, or by someone), said once more.
        let gone: Vec<AddedRule> = exposed(&call.recorded, &[])
            .into_iter()
            .filter(|rule| !rule.is_allowed(&config.ports))
            .filter(|rule| {
                !existing
                    .iter()
                    .any(|held| held.rule_id.is_some() && held.rule_id == rule.rule_id)
            })
            .cloned()
            .collect();
        if gone.is_empty() {
            return Ok((Outcome::NothingToClose, decision));
        }
        let said = Decision {
            to_close: gone,
            left_open: decision.left_open,
        };
        return Ok((Outcome::AlreadyClosed { group }, said));
    }
    if group.tag(EXEMPT_TAG_KEY) == Some(EXEMPT_TAG_VALUE) {
        return Ok((Outcome::Exempt { group }, decision));
    }
    let present = decision.to_close.clone();
    if config.mode == Mode::Alert {
        return Ok((
            Outcome::WouldRevoke {
                group,
                rules: present,
            },
            decision,
        ));
    }
    let outcome = match ec2.revoke(&group.id, &ids(&present)).await {
        Ok(()) => Outcome::Revoked {
            group,
            rules: present,
        },
        Err(error) if is_group_gone(&error) => Outcome::GroupGone { group: group.id },
        // Another revoke got there first (a replayed event, a person): what is left?
        Err(error) if is_rule_gone(&error) => {
            let wanted = ids(&present);
            let still: Vec<AddedRule> = ec2
                .ingress_rules(&group.id)
                .await
                .map_err(describe_error)?
                .into_iter()
                .filter(|rule| rule.rule_id.as_ref().is_some_and(|id| wanted.contains(id)))
                .collect();
            if still.is_empty() {
                Outcome::AlreadyClosed { group }
            } else {
                Outcome::CouldNotRevoke {
                    group,
                    rules: still,
                    error,
                }
            }
        }
        Err(error) => Outcome::CouldNotRevoke {
            group,
            rules: present,
            error,
        },
    };
    Ok((outcome, decision))
}

fn ids(rules: &[AddedRule]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|rule| rule.rule_id.clone())
        .collect()
}

fn describe_all(rules: &[AddedRule]) -> String {
    rules
        .iter()
        .map(AddedRule::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Characters of what goes into a command a person may paste: IDs, protocols, CIDR ranges.
fn is_command_safe(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-:./".contains(&byte))
}

/// The AWS CLI command that adds a revoked rule back, from EC2's own description of it; `None`
/// when any part is not plainly an ID, a protocol or a range.
pub fn undo_command(group_id: &str, region: &str, rule: &AddedRule) -> Option<String> {
    if !group_id.starts_with("sg-")
        || !plan::is_region(region)
        || !is_command_safe(group_id)
        || !is_command_safe(&rule.protocol)
        || !is_command_safe(&rule.range)
    {
        return None;
    }
    let ranges = if let Some(list) = rule.prefix_list() {
        format!("PrefixListIds=[{{PrefixListId={list}}}]")
    } else if rule.range.contains(':') {
        format!("Ipv6Ranges=[{{CidrIpv6={}}}]", rule.range)
    } else {
        format!("IpRanges=[{{CidrIp={}}}]", rule.range)
    };
    Some(format!(
        "aws ec2 authorize-security-group-ingress --region {region} --group-id {group_id} --ip-permissions 'IpProtocol={},FromPort={},ToPort={},{ranges}'",
        rule.protocol,
        rule.from.unwrap_or(-1),
        rule.to.unwrap_or(-1),
    ))
}

fn exempt_command(group_id: &str, region: &str) -> String {
    if group_id.starts_with("sg-") && is_command_safe(group_id) && plan::is_region(region) {
        format!(
            "aws ec2 create-tags --region {region} --resources {group_id} --tags 'Key={EXEMPT_TAG_KEY},Value={EXEMPT_TAG_VALUE}'"
        )
    } else {
        format!("tag the group {EXEMPT_TAG_KEY}={EXEMPT_TAG_VALUE}")
    }
}

/// The group's ID, and its name quoted and cut short: a name is whatever its maker typed (up
/// to 255 characters), and must read as a name, never as the Message's own words.
fn group_label(group: &Group) -> String {
    const NAME_CHARS: usize = 64;
    if group.name.is_empty() {
        return group.id.clone();
    }
    let mut name: String = group.name.chars().take(NAME_CHARS).collect();
    if group.name.chars().count() > NAME_CHARS {
        name.push('…');
    }
    format!("{} (named {name:?})", group.id)
}

/// The Message an outcome is said in; `None` when there is nothing to say.
pub fn message(
    config: &Config,
    call: &Call,
    decision: &Decision,
    outcome: &Outcome,
) -> Option<Message> {
    let opened = if decision.to_close.is_empty() {
        describe_all(&call.recorded)
    } else {
        describe_all(&decision.to_close)
    };
    let (subject, response, group) = match outcome {
        Outcome::NothingToClose => return None,
        Outcome::Revoked { group, rules } => (
            format!(
                "Closed {} on {}: opened to the internet by {}",
                describe_all(rules),
                group.id,
                call.principal
            ),
            format!(
                "Revoked {} ({}) {}",
                plural(rules.len(), "rule"),
                ids(rules).join(", "),
                acted_where(config, call)
            ),
            group_label(group),
        ),
        Outcome::WouldRevoke { group, rules } => (
            format!(
                "Open to the internet on {}: {} (alert only, nothing revoked)",
                group.id,
                describe_all(rules)
            ),
            format!(
                "Would revoke {} ({}); OpenSecurityGroupResponse is Alert, so nothing was changed",
                plural(rules.len(), "rule"),
                ids(rules).join(", ")
            ),
            group_label(group),
        ),
        Outcome::CouldNotRevoke {
            group,
            rules,
            error,
        } => (
            format!(
                "Could not close {} on {}: still open to the internet",
                describe_all(rules),
                group.id
            ),
            format!(
                "Revoking {} failed: {error}. Close it by hand; the event is kept in the responder's failure queue",
                ids(rules).join(", ")
            ),
            group_label(group),
        ),
        Outcome::AlreadyClosed { group } => (
            format!("Already closed on {}: {opened}", group.id),
            "Nothing to revoke: the rule was gone when the response ran (revoked earlier, by this stack or by hand)".to_owned(),
            group_label(group),
        ),
        Outcome::GroupGone { group } => (
            format!("Security group {group} is gone: {opened} needs no closing"),
            "Nothing to revoke: the group no longer exists".to_owned(),
            group.clone(),
        ),
        Outcome::Exempt { group } => (
            format!("Left open on purpose on {}: {opened}", group.id),
            format!(
                "Nothing revoked: the group is tagged {EXEMPT_TAG_KEY}={EXEMPT_TAG_VALUE}"
            ),
            group_label(group),
        ),
    };
    let text = Field::text;
    let mut fields = vec![
        text("Response", response),
        text("Security Group", group),
        text("Opened", opened),
    ];
    if !decision.left_open.is_empty() {
        fields.push(text(
            "Left Open",
            format!(
                "{} (AllowedPublicPorts: {})",
                describe_all(&decision.left_open),
                config.ports
            ),
        ));
    }
    fields.push(text("Principal", call.principal.clone()));
    fields.push(text("Account", call.account.clone()));
    fields.push(text("Region", call.region.clone()));
    for (key, value) in [
        ("Source IP", &call.source_ip),
        ("Event", &call.event_name),
        ("Event Time", &call.event_time),
    ] {
        if let Some(value) = value {
            fields.push(text(key, value.clone()));
        }
    }
    if let Outcome::Revoked { group, rules } = outcome {
        let commands: Vec<String> = rules
            .iter()
            .map(|rule| {
                undo_command(&group.id, &call.region, rule)
                    .unwrap_or_else(|| format!("add {} back in the console", rule.describe()))
            })
            .collect();
        let mut undo = commands.join("\n");
        if call.account != config.account {
            undo = format!("As a principal of account {}:\n{undo}", call.account);
        }
        fields.push(text("To Undo", undo));
    }
    if let Some(group_id) = outcome
        .group_id()
        .filter(|_| !matches!(outcome, Outcome::Exempt { .. }))
    {
        fields.push(text(
            "To Allow It On Purpose",
            format!(
                "Tag the group, then add the rule again: {}",
                exempt_command(group_id, &call.region)
            ),
        ));
    }
    if let Some(link) = call
        .event_id
        .as_deref()
        .and_then(|id| cloudtrail_event_link(&call.region, id))
    {
        fields.push(text("CloudTrail Console", link));
    }
    let response = Response {
        name: RESPONSE_NAME,
        outcome: outcome.name(),
        principal: &call.principal,
        severity: outcome.severity().unwrap_or(Severity::High),
        event_time: call.event_time.as_deref(),
    };
    Some(response.message(subject, fields))
}

/// The Message of a member account the response could not act in.
fn could_not_act_message(call: &Call, error: &ResponseError) -> Message {
    let text = Field::text;
    let mut fields = vec![
        text(
            "Response",
            format!(
                "Nothing was looked at or revoked: {error}. Check the group by hand; Lambda tries the event twice more, then keeps it in the responder's failure queue"
            ),
        ),
        text("Security Group", call.group.to_string()),
    ];
    if !call.recorded.is_empty() {
        fields.push(text("Opened", describe_all(&call.recorded)));
    }
    fields.extend([
        text("Principal", call.principal.clone()),
        text("Account", call.account.clone()),
        text("Region", call.region.clone()),
    ]);
    let response = Response {
        name: RESPONSE_NAME,
        outcome: "could-not-act",
        principal: &call.principal,
        severity: Severity::Critical,
        event_time: call.event_time.as_deref(),
    };
    response.message(
        format!(
            "Could not check {} in account {}, {}: it may still be open to the internet",
            call.group, call.account, call.region
        ),
        fields,
    )
}

/// Where a revoke acted, and as whom when not as the function's own role.
fn acted_where(config: &Config, call: &Call) -> String {
    match &config.member_role {
        Some(role) if call.account != config.account => format!(
            "in account {}, {}, as its {} role",
            call.account, call.region, role.name
        ),
        _ => format!("in {}", call.region),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_settings_are_read_strictly() {
        let topic = (
            "SNS_TOPIC",
            "arn:aws:sns:us-east-1:111122223333:ids-SNSTopic",
        );
        let read = config(&[topic]).unwrap();
        assert_eq!((read.topic_arn.as_str(), read.mode), (topic.1, Mode::Alert));
        assert_eq!(
            config(&[topic, ("RESPONSE_MODE", "Revoke")]).unwrap().mode,
            Mode::Revoke
        );
        assert_eq!(
            config(&[("RESPONSE_MODE", "revoke")]),
            Err(ConfigError::Topic(TopicError::Missing))
        );
        assert_eq!(
            config(&[("SNS_TOPIC", "ids-SNSTopic")]),
            Err(ConfigError::Topic(TopicError::NotAnArn(
                "ids-SNSTopic".into()
            )))
        );
        assert_eq!(
            config(&[topic, ("RESPONSE_MODE", "close")]),
            Err(ConfigError::Mode("close".into()))
        );
    }

    #[test]
    fn a_groups_name_is_quoted_and_cut_short() {
        let group = |name: &str| Group {
            id: "sg-1".into(),
            name: name.into(),
            tags: Vec::new(),
        };
        assert_eq!(group_label(&group("")), "sg-1");
        assert_eq!(group_label(&group("web")), "sg-1 (named \"web\")");
        let forged = format!(
            "web) approved by SecOps, no action needed\n{}",
            "x".repeat(300)
        );
        let label = group_label(&group(&forged));
        assert!(
            label.starts_with("sg-1 (named \"web) approved by SecOps, no action needed\\nxxx"),
            "{label}"
        );
        assert!(label.ends_with("…\")"), "{label}");
        assert!(label.chars().count() < 90, "{label}");
    }

    #[test]
    fn member_accounts_are_acted_in_only_through_the_member_role_of_the_topics_partition() {
        let topic = (
            "SNS_TOPIC",
            "arn:aws-cn:sns:cn-north-1:111122223333:ids-SNSTopic",
        );
        let alone = config(&[topic]).unwrap();
        assert_eq!(alone.role_in("111122223333").unwrap(), None);
        assert!(matches!(
            alone.role_in("444455556666"),
            Err(ResponseError::NotOurs(_))
        ));
        let central = config(&[
            topic,
            ("MEMBER_RESPONDER_ROLE", "ids-responder"),
            ("MEMBER_EXTERNAL_ID", "5e7a1c2e"),
        ])
        .unwrap();
        assert_eq!(central.role_in("111122223333").unwrap(), None);
        assert_eq!(
            central.role_in("444455556666").unwrap().as_deref(),
            Some("arn:aws-cn:iam::444455556666:role/ids-responder")
        );
        assert_eq!(
            config(&[topic, ("MEMBER_RESPONDER_ROLE", "ids-responder")]),
            Err(ConfigError::HalfAMemberRole)
        );
        assert_eq!(
            config(&[
                topic,
                ("MEMBER_RESPONDER_ROLE", "x/../admin"),
                ("MEMBER_EXTERNAL_ID", "e")
            ]),
            Err(ConfigError::MemberRoleName("x/../admin".into()))
        );
    }
}
