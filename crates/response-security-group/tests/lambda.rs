//! The real `response-security-group` binary, run through a local Lambda Runtime API against
//! moto's EC2 and SNS: groups and rules are made in moto, the call that opened them is the
//! corpus's real CloudTrail record rewritten to name them (test-world's responders), and what
//! the responder published is read back from a queue subscribed to the topic.

use std::time::Duration;

use serde_json::json;
use test_world::responders::MOTO_ACCOUNT;
use test_world::responders::{
    Accounts, ResponderWorld, field, public_ingress_event as opened, rehomed, tag,
};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, RefusingEndpoint, RuntimeApi, assert_no_secrets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_response-security-group");

/// A member account of the organisation, its region, and the role member.yaml makes there.
const MEMBER: &str = "222233334444";
const MEMBER_REGION: &str = "eu-west-3";
const MEMBER_ROLE: &str = "ids-responder";

/// The responder's world, with its own ways of running the function.
struct World(ResponderWorld);

impl std::ops::Deref for World {
    type Target = ResponderWorld;

    fn deref(&self) -> &ResponderWorld {
        &self.0
    }
}

impl World {
    async fn start() -> World {
        World(ResponderWorld::start().await)
    }

    /// A function process in `mode`, with moto's EC2 or another EC2 endpoint.
    fn responder(&self, mode: &str, ec2_endpoint: Option<String>) -> (RuntimeApi, LambdaProcess) {
        let mut env = vec![
            ("RESPONSE_MODE".into(), mode.into()),
            ("ALLOWED_PUBLIC_PORTS".into(), "tcp:80,tcp:443".into()),
        ];
        if let Some(endpoint) = ec2_endpoint {
            env.push(("AWS_ENDPOINT_URL_EC2".into(), endpoint));
        }
        self.spawn(BINARY, env)
    }

    /// The responder of an organisation's stack: member accounts through `MEMBER_ROLE`.
    fn central_responder(&self, sts_endpoint: Option<String>) -> (RuntimeApi, LambdaProcess) {
        let mut env = vec![
            ("RESPONSE_MODE".into(), "revoke".into()),
            ("MEMBER_RESPONDER_ROLE".into(), MEMBER_ROLE.into()),
            (
                "MEMBER_EXTERNAL_ID".into(),
                "5e7a1c2e-0000-4000-8000-0000000000aa".into(),
            ),
        ];
        if let Some(endpoint) = sts_endpoint {
            env.push(("AWS_ENDPOINT_URL_STS".into(), endpoint));
        }
        self.spawn(BINARY, env)
    }

    async fn group(&self, name: &str) -> String {
        self.accounts.create_group(name).await
    }

    async fn open(&self, group: &str, protocol: &str, port: i64, range: &str) {
        self.accounts.open(group, protocol, port, range).await
    }

    async fn rules(&self, group: &str) -> Vec<(String, i64, String)> {
        self.accounts.ingress_rules(group).await
    }
}

fn id_of<'a>(rules: &'a [(String, i64, String)], port: i64, range: &str) -> &'a str {
    &rules
        .iter()
        .find(|(_, p, r)| *p == port && r == range)
        .expect("the rule exists")
        .0
}

#[tokio::test]
async fn revoke_closes_exactly_the_public_rules_off_the_allowlist_and_a_replay_only_says_so() {
    let world = World::start().await;
    let group = world.group("web").await;
    world.open(&group, "tcp", 22, "0.0.0.0/0").await;
    world.open(&group, "tcp", 22, "10.0.0.0/8").await;
    world.open(&group, "tcp", 443, "0.0.0.0/0").await;
    world.open(&group, "tcp", 3389, "::/0").await;
    let before = world.rules(&group).await;
    let ssh = id_of(&before, 22, "0.0.0.0/0").to_owned();
    let rdp = id_of(&before, 3389, "::/0").to_owned();
    let event = opened(
        &group,
        &[
            (Some(&ssh), "tcp", 22, "0.0.0.0/0"),
            (
                Some(id_of(&before, 443, "0.0.0.0/0")),
                "tcp",
                443,
                "0.0.0.0/0",
            ),
            (Some(&rdp), "tcp", 3389, "::/0"),
        ],
    );
    let (api, process) = world.responder("revoke", None);

    let answer = api.invoke(event.clone()).await.expect("responded");
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    let mut revoked: Vec<String> = serde_json::from_value(answer["rules"].clone()).unwrap();
    revoked.sort();
    let mut expected = vec![ssh.clone(), rdp.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    // The private range and the allowlisted port stay; nothing else was touched.
    let after: Vec<(i64, String)> = world
        .rules(&group)
        .await
        .into_iter()
        .map(|(_, port, range)| (port, range))
        .collect();
    assert_eq!(
        after,
        [(22, "10.0.0.0/8".to_owned()), (443, "0.0.0.0/0".to_owned())]
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("high"));
    assert_eq!(tag(&message, "response"), Some("open-security-group"));
    let subject = message["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!(
            "Closed tcp/22 from 0.0.0.0/0, tcp/3389 from ::/0 on {group}"
        )),
        "{subject}"
    );
    assert!(subject.ends_with("by arn:aws:iam::032092706103:user/christophe"));
    assert_eq!(
        field(&message, "Left Open"),
        Some("tcp/443 from 0.0.0.0/0 (AllowedPublicPorts: tcp:80,tcp:443)")
    );
    let undo = field(&message, "To Undo").unwrap();
    assert!(
        undo.contains(&format!(
            "aws ec2 authorize-security-group-ingress --region us-east-1 --group-id {group} --ip-permissions 'IpProtocol=tcp,FromPort=3389,ToPort=3389,Ipv6Ranges=[{{CidrIpv6=::/0}}]'"
        )),
        "{undo}"
    );
    assert!(
        field(&message, "To Allow It On Purpose")
            .unwrap()
            .contains("Key=activity-aware-ids:public-ingress,Value=allowed")
    );
    activity_aware_message::Message::from_value(message).expect("a Message");

    // EventBridge delivers again: nothing is left to revoke, which succeeds and says so.
    let replay = api.invoke(event).await.expect("a replay succeeds");
    assert_eq!(replay["outcome"], "already-closed", "{replay}");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("medium"));
    assert_eq!(world.rules(&group).await.len(), 2);

    let output = process.stop();
    assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
}

#[tokio::test]
async fn alert_mode_changes_nothing_and_a_record_naming_no_rule_is_not_acted_on() {
    let world = World::start().await;
    let group = world.group("db").await;
    world.open(&group, "tcp", 5432, "::/0").await;
    let before = world.rules(&group).await;
    let (api, process) = world.responder("alert", None);
    let event = opened(&group, &[(Some(&before[0].0), "tcp", 5432, "::/0")]);
    let answer = api.invoke(event).await.expect("responded");
    assert_eq!(answer["outcome"], "would-revoke", "{answer}");
    assert_eq!(answer["rules"], json!([id_of(&before, 5432, "::/0")]));
    assert_eq!(
        world.rules(&group).await.len(),
        1,
        "alert mode revokes nothing"
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("high"));
    assert!(
        field(&message, "Response")
            .unwrap()
            .contains("OpenSecurityGroupResponse is Alert, so nothing was changed")
    );
    assert_eq!(field(&message, "To Undo"), None);
    // The request's shape only (older records name no rule): the response acts by the IDs AWS
    // recorded, or not at all.
    let (api, process2) = world.responder("revoke", None);
    let event = opened(&group, &[(None, "tcp", 5432, "::/0")]);
    let answer = api.invoke(event).await.expect("responded");
    assert_eq!(answer["outcome"], "nothing-to-close", "{answer}");
    assert_eq!(world.rules(&group).await.len(), 1);
    process.stop();
    process2.stop();
}

#[tokio::test]
async fn the_allowlist_and_the_exempt_tag_leave_a_group_open() {
    let world = World::start().await;
    let web = world.group("web").await;
    world.open(&web, "tcp", 443, "0.0.0.0/0").await;
    let bastion = world.group("bastion").await;
    world.open(&bastion, "tcp", 22, "0.0.0.0/0").await;
    world
        .accounts
        .tag_group(&bastion, "activity-aware-ids:public-ingress", "allowed")
        .await;
    let (api, process) = world.responder("revoke", None);

    let web_rule = world.rules(&web).await[0].0.clone();
    let allowlisted = opened(&web, &[(Some(&web_rule), "tcp", 443, "0.0.0.0/0")]);
    let answer = api.invoke(allowlisted).await.expect("responded");
    assert_eq!(answer["outcome"], "nothing-to-close", "{answer}");
    assert_eq!(answer["published"], 0);

    let bastion_rule = world.rules(&bastion).await[0].0.clone();
    let exempt = opened(&bastion, &[(Some(&bastion_rule), "tcp", 22, "0.0.0.0/0")]);
    let answer = api.invoke(exempt).await.expect("responded");
    assert_eq!(answer["outcome"], "exempt", "{answer}");
    assert_eq!(
        world.rules(&bastion).await.len(),
        1,
        "an exempt group keeps its rule"
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("info"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with("Left open on purpose")
    );
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    process.stop();
}

#[tokio::test]
async fn the_internet_cut_in_halves_or_behind_a_prefix_list_is_closed_as_ec2_describes_it() {
    let world = World::start().await;
    let group = world.group("halves").await;
    world.open(&group, "tcp", 22, "0.0.0.0/1").await;
    world.open(&group, "tcp", 22, "128.0.0.0/1").await;
    let list = world
        .accounts
        .create_prefix_list("everyone", &["0.0.0.0/1", "128.0.0.0/1"])
        .await;
    world
        .accounts
        .open_to_prefix_list(&group, "tcp", 3389, &list)
        .await;
    world.open(&group, "tcp", 5432, "10.0.0.0/8").await;
    let rules = world.rules(&group).await;
    assert_eq!(rules.len(), 4, "{rules:?}");
    let id = |port: i64, range: &str| id_of(&rules, port, range).to_owned();
    // The record says what the call opened; EC2 says what the group holds. The record of the
    // 5432 rule claims 0.0.0.0/0, but EC2 says 10.0.0.0/8: EC2's word is what counts.
    let event = opened(
        &group,
        &[
            (Some(&id(22, "0.0.0.0/1")), "tcp", 22, "0.0.0.0/1"),
            (Some(&id(22, "128.0.0.0/1")), "tcp", 22, "128.0.0.0/1"),
            (Some(&id(3389, &list)), "tcp", 3389, "10.1.0.0/16"),
            (Some(&id(5432, "10.0.0.0/8")), "tcp", 5432, "0.0.0.0/0"),
        ],
    );
    let (api, process) = world.responder("revoke", None);
    let answer = api.invoke(event).await.expect("responded");
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    let left: Vec<(i64, String)> = world
        .rules(&group)
        .await
        .into_iter()
        .map(|(_, port, range)| (port, range))
        .collect();
    assert_eq!(left, [(5432, "10.0.0.0/8".to_owned())]);
    let [message] = world.published(1).await.try_into().expect("one Message");
    let undo = field(&message, "To Undo").unwrap();
    assert!(
        undo.contains(&format!("PrefixListIds=[{{PrefixListId={list}}}]")),
        "{undo}"
    );
    process.stop();
}

#[tokio::test]
async fn events_that_are_not_this_accounts_own_aws_events_are_refused_and_change_nothing() {
    let world = World::start().await;
    let group = world.group("web").await;
    world.open(&group, "tcp", 22, "0.0.0.0/0").await;
    let rule = world.rules(&group).await[0].0.clone();
    let genuine = opened(&group, &[(Some(&rule), "tcp", 22, "0.0.0.0/0")]);
    let (api, process) = world.responder("revoke", None);
    // Another account's event (a member account's, forwarded): only that account's own
    // response may act on it. A custom source: what events:PutEvents or an invoke can send.
    let mut other_account = genuine.clone();
    other_account["account"] = json!("444455556666");
    other_account["detail"]["recipientAccountId"] = json!("444455556666");
    let mut forged = genuine.clone();
    forged["source"] = json!("my.ec2");
    for event in [other_account, forged] {
        let error = api.invoke(event).await.expect_err("refused");
        assert_eq!(error.error_type, "UnrecognisedEvent", "{error:?}");
    }
    assert_eq!(world.rules(&group).await.len(), 1, "nothing was revoked");
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    // The genuine event is still acted on.
    let answer = api.invoke(genuine).await.expect("responded");
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    process.stop();
}

#[tokio::test]
async fn a_vanished_group_is_said_once_and_not_retried() {
    let world = World::start().await;
    let event = opened(
        "sg-0123456789abcdef0",
        &[(Some("sgr-1"), "tcp", 22, "0.0.0.0/0")],
    );
    let (api, process) = world.responder("revoke", None);
    let answer = api
        .invoke(event)
        .await
        .expect("a vanished group is no failure");
    assert_eq!(answer["outcome"], "group-gone", "{answer}");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(
        message["subject"],
        "Security group sg-0123456789abcdef0 is gone: tcp/22 from 0.0.0.0/0 needs no closing"
    );
    process.stop();
}

#[tokio::test]
async fn a_refused_revoke_fails_the_invocation_and_says_so_critically() {
    let world = World::start().await;
    let group = world.group("web").await;
    world.open(&group, "tcp", 22, "0.0.0.0/0").await;
    let rules = world.rules(&group).await;
    let event = opened(&group, &[(Some(&rules[0].0), "tcp", 22, "0.0.0.0/0")]);
    let refusing = RefusingEndpoint::start(
        &world.moto.endpoint_url(),
        &["RevokeSecurityGroupIngress"],
        "UnauthorizedOperation",
    );
    let (api, process) = world.responder("revoke", Some(refusing.endpoint_url()));
    let error = api
        .invoke(event)
        .await
        .expect_err("a refused revoke fails the invocation");
    assert_eq!(error.error_type, "RevokeFailed", "{error:?}");
    assert!(
        error.error_message.contains("UnauthorizedOperation"),
        "{error:?}"
    );
    assert_eq!(
        refusing.refused(),
        1,
        "a refusal is not retried as if it were throttling"
    );
    assert_eq!(world.rules(&group).await.len(), 1, "still open");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with("Could not close tcp/22 from 0.0.0.0/0")
    );
    assert!(
        field(&message, "Response")
            .unwrap()
            .contains("Close it by hand")
    );
    process.stop();
}

#[tokio::test]
async fn the_handler_in_process_revokes_the_public_rule_says_so_and_refuses_what_is_no_call() {
    use activity_aware_message::MessagePublisher;
    use response_security_group::{Config, Ec2Access, handle};

    let world = World::start().await;
    let group = world.group("web").await;
    world.open(&group, "tcp", 22, "0.0.0.0/0").await;
    let rules = world.rules(&group).await;
    let config = Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some(world.topic.clone()),
        "RESPONSE_MODE" => Some("revoke".into()),
        _ => None,
    })
    .expect("the responder's settings");
    let aws = world.moto.sdk_config().await;
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    let ec2 = Ec2Access::new(aws);

    let event = opened(&group, &[(Some(&rules[0].0), "tcp", 22, "0.0.0.0/0")]);
    let summary = handle(&config, &ec2, &publisher, event)
        .await
        .expect("responded");
    assert_eq!(
        serde_json::to_value(&summary).unwrap(),
        json!({"outcome": "revoked", "mode": "revoke", "account": MOTO_ACCOUNT, "region": "us-east-1",
            "group": group, "rules": [rules[0].0], "published": 1})
    );
    assert_eq!(world.rules(&group).await, [], "closed");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("high"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Closed tcp/22 from 0.0.0.0/0 on {group}")),
        "{message}"
    );

    let error = handle(
        &config,
        &ec2,
        &publisher,
        json!({"detail-type": "Scheduled Event"}),
    )
    .await
    .expect_err("no API call");
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "UnrecognisedEvent");
    world.capture.assert_quiet(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_member_accounts_group_is_closed_in_its_account_and_region_as_its_role_and_said_so() {
    let world = World::start().await;
    let member = Accounts::member(&world.moto, MEMBER, MEMBER_REGION, MEMBER_ROLE).await;
    let group = member.create_group("web").await;
    member.open(&group, "tcp", 22, "0.0.0.0/0").await;
    member.open(&group, "tcp", 443, "0.0.0.0/0").await;
    let rules = member.ingress_rules(&group).await;
    let ssh = id_of(&rules, 22, "0.0.0.0/0").to_owned();
    // A group of the same name in the central account, open the same way: not this event's.
    let central_group = world.group("web").await;
    world.open(&central_group, "tcp", 22, "0.0.0.0/0").await;
    let event = rehomed(
        &opened(&group, &[(Some(&ssh), "tcp", 22, "0.0.0.0/0")]),
        MEMBER,
        MEMBER_REGION,
    );
    let (api, process) = world.central_responder(None);
    let answer = api.invoke(event.clone()).await.expect("responded");
    assert_eq!(answer["outcome"], "revoked", "{answer}");
    assert_eq!(
        (answer["account"].as_str(), answer["region"].as_str()),
        (Some(MEMBER), Some(MEMBER_REGION))
    );
    assert_eq!(answer["rules"], json!([ssh]));
    let left: Vec<i64> = member
        .ingress_rules(&group)
        .await
        .iter()
        .map(|rule| rule.1)
        .collect();
    assert_eq!(left, [443], "only the member's public SSH rule was revoked");
    assert_eq!(
        world.rules(&central_group).await.len(),
        1,
        "the central account's group is untouched"
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(field(&message, "Account"), Some(MEMBER));
    assert_eq!(field(&message, "Region"), Some(MEMBER_REGION));
    let response = field(&message, "Response").unwrap();
    assert!(
        response.ends_with(&format!(
            "in account {MEMBER}, {MEMBER_REGION}, as its {MEMBER_ROLE} role"
        )),
        "{response}"
    );
    let undo = field(&message, "To Undo").unwrap();
    assert!(
        undo.starts_with(&format!("As a principal of account {MEMBER}:\n")),
        "{undo}"
    );
    assert!(
        undo.contains(&format!("--region {MEMBER_REGION} --group-id {group}")),
        "{undo}"
    );

    // The same event claiming the central account in its record, or another region: the event
    // and its record must agree on where, or nothing is done anywhere.
    for (key, value) in [
        ("recipientAccountId", MOTO_ACCOUNT),
        ("awsRegion", "us-east-1"),
    ] {
        let mut disagreeing = event.clone();
        disagreeing["detail"][key] = json!(value);
        let error = api.invoke(disagreeing).await.expect_err("refused");
        assert_eq!(error.error_type, "UnrecognisedEvent", "{error:?}");
    }
    assert_eq!(world.rules(&central_group).await.len(), 1);
    process.stop();
}

#[tokio::test]
async fn a_member_role_that_cannot_be_assumed_fails_the_invocation_and_changes_nothing() {
    let world = World::start().await;
    let member = Accounts::member(&world.moto, MEMBER, MEMBER_REGION, MEMBER_ROLE).await;
    let group = member.create_group("web").await;
    member.open(&group, "tcp", 22, "0.0.0.0/0").await;
    let rule = member.ingress_rules(&group).await[0].0.clone();
    let event = rehomed(
        &opened(&group, &[(Some(&rule), "tcp", 22, "0.0.0.0/0")]),
        MEMBER,
        MEMBER_REGION,
    );
    // STS refuses, as it does when the role is gone, or its trust or external ID do not match.
    let refusing =
        RefusingEndpoint::start(&world.moto.endpoint_url(), &["AssumeRole"], "AccessDenied");
    let (api, process) = world.central_responder(Some(refusing.endpoint_url()));
    let error = api.invoke(event).await.expect_err("kept for a retry");
    assert_eq!(error.error_type, "AssumeRoleFailed", "{error:?}");
    assert!(
        error
            .error_message
            .contains(&format!("arn:aws:iam::{MEMBER}:role/{MEMBER_ROLE}")),
        "{error:?}"
    );
    assert_eq!(
        member.ingress_rules(&group).await.len(),
        1,
        "nothing was revoked"
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(
        message["subject"],
        format!(
            "Could not check {group} in account {MEMBER}, {MEMBER_REGION}: it may still be open to the internet"
        )
    );
    assert_eq!(field(&message, "Opened"), Some("tcp/22 from 0.0.0.0/0"));
    process.stop();
}
