//! The real `response-containment` binary, run through a local Lambda Runtime API against
//! moto's IAM, SNS and CloudTrail event history. Its batches hold the Messages the sources
//! publish for the corpus's real denial, rewritten to name moto's users and roles
//! (test-world's responders); what CloudTrail recorded is what the test says it recorded, and
//! what the function published is read back from a queue subscribed to the topic.

use std::time::Duration;

use response_containment::iam::{CONTAINED_AT_TAG, CONTAINED_SESSION_TAG};
use serde_json::{Value, json};
use test_world::events::sqs_record;
use test_world::responders::{
    Caller, MOTO_ACCOUNT as ACCOUNT, ResponderWorld, denial_message, denial_record, field, tag,
};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, RefusingEndpoint, RuntimeApi, assert_no_secrets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_response-containment");
const QUARANTINE: &str = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3";

/// The responder's world, with its own ways of running the function.
struct World {
    world: ResponderWorld,
    /// The stack's contained-session policy, in moto.
    policy: String,
}

impl std::ops::Deref for World {
    type Target = ResponderWorld;

    fn deref(&self) -> &ResponderWorld {
        &self.world
    }
}

impl World {
    async fn start() -> World {
        let world = ResponderWorld::start().await;
        let policy = world
            .accounts
            .create_policy(
                "ids-ContainedSessions",
                &test_world::template::contained_sessions_policy_document(),
            )
            .await;
        World { world, policy }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PROBE_CONTAINMENT_THRESHOLD".into(), "50".into()),
            (
                "NEVER_CONTAIN_PRINCIPAL_ARNS".into(),
                format!("arn:aws:iam::{ACCOUNT}:user/break-glass"),
            ),
            (
                "STACK_ROLE_ARNS".into(),
                format!("arn:aws:iam::{ACCOUNT}:role/ids-DestinationSlackRole-1"),
            ),
            ("CONTAINED_SESSIONS_POLICY_ARN".into(), self.policy.clone()),
        ]
    }

    fn responder(&self, iam_endpoint: Option<String>) -> (RuntimeApi, LambdaProcess) {
        let mut env = self.env();
        if let Some(endpoint) = iam_endpoint {
            env.push(("AWS_ENDPOINT_URL_IAM".into(), endpoint));
        }
        self.spawn(BINARY, env)
    }

    async fn user(&self, name: &str) {
        self.accounts.create_user(name).await
    }

    async fn role(&self, name: &str) {
        self.accounts.create_role(name).await
    }

    async fn attached(&self, user: &str) -> Vec<String> {
        self.accounts.attached_policies(user).await
    }

    /// `count` denials by `caller`, as CloudTrail recorded them (when `recorded`) and as the
    /// batch's records starting at `first`; made at `minute` past 10 on 2026-12-03, or now.
    fn probe(
        &self,
        caller: Caller<'_>,
        count: usize,
        first: usize,
        receives: u32,
        recorded: bool,
        time: Option<&str>,
    ) -> Vec<Value> {
        let records: Vec<Value> = (0..count)
            .map(|i| {
                let event = ["ListUsers", "ListRoles", "GetAccountAuthorizationDetails"][i % 3];
                let time = time.map_or_else(
                    || format!("2026-12-03T10:{:02}:{:02}Z", i / 60 % 60, i % 60),
                    str::to_owned,
                );
                denial_record(caller, event, "us-east-1", &time, first + i)
            })
            .collect();
        if recorded {
            self.moto.record_in_cloudtrail(&records);
        }
        records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                sqs_record(
                    &format!("message-{}", first + i),
                    &format!("receipt-{}", first + i),
                    &denial_message(record),
                    1_700_000_000_000,
                    receives,
                )
            })
            .collect()
    }
}

fn batch(records: Vec<Vec<Value>>) -> Value {
    json!({"Records": records.concat()})
}

fn failures(answer: &Value) -> Vec<String> {
    let mut failed: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    failed.sort();
    failed
}

fn tag_value(tags: &[(String, String)], key: &str) -> Option<String> {
    tags.iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.clone())
}

#[tokio::test]
async fn a_probing_user_is_quarantined_once_and_a_quiet_one_is_left_alone() {
    let world = World::start().await;
    world.user("bob").await;
    world.user("eve").await;
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let eve = format!("arn:aws:iam::{ACCOUNT}:user/eve");
    let bob_key = Caller {
        arn: &bob,
        access_key: "AKIABOB0000000000001",
    };
    let (api, process) = world.responder(None);
    let probe = batch(vec![
        world.probe(bob_key, 60, 0, 1, true, None),
        world.probe(
            Caller {
                arn: &eve,
                access_key: "AKIAEVE0000000000001",
            },
            49,
            60,
            1,
            true,
            None,
        ),
    ]);

    let answer = api.invoke(probe.clone()).await.expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(world.attached("bob").await, [QUARANTINE]);
    assert_eq!(
        world.attached("eve").await,
        Vec::<String>::new(),
        "49 denials are no probe"
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(tag(&message, "response"), Some("containment"));
    assert_eq!(
        message["subject"],
        format!("Contained {bob} after 60 denied calls: AWS's quarantine policy attached")
    );
    assert_eq!(
        field(&message, "To Undo"),
        Some(
            format!("aws iam detach-user-policy --user-name bob --policy-arn {QUARANTINE}")
                .as_str()
        )
    );
    assert_eq!(
        field(&message, "Denied Actions"),
        Some("GetAccountAuthorizationDetails (20), ListRoles (20), ListUsers (20)")
    );
    assert_eq!(
        field(&message, "Denied Calls"),
        Some("60 recorded by CloudTrail (60 reported; ProbeContainmentThreshold: 50)")
    );
    activity_aware_message::Message::from_value(message).expect("a Message");
    let tags = world.accounts.tags("user", "bob").await;
    assert!(tag_value(&tags, CONTAINED_AT_TAG).is_some(), "{tags:?}");

    // The quarantine keeps it denied, so its denials keep coming: nothing more is done or said.
    let answer = api.invoke(probe).await.expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    // Unless the batch is a retried delivery (the first may have acted and not said so).
    let retried = batch(vec![world.probe(bob_key, 50, 0, 2, false, None)]);
    api.invoke(retried).await.expect("handled");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("medium"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with("Still contained")
    );

    // Someone released it; it probes again within the window: a person decides, not the tool.
    world.accounts.detach_user_policy("bob", QUARANTINE).await;
    api.invoke(batch(vec![world.probe(bob_key, 50, 200, 1, true, None)]))
        .await
        .expect("handled");
    assert_eq!(world.attached("bob").await, Vec::<String>::new());
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert!(
        field(&message, "Response")
            .unwrap()
            .contains("someone released it since"),
        "{message}"
    );
    assert_eq!(
        field(&message, "To Act"),
        Some(
            format!("aws iam attach-user-policy --user-name bob --policy-arn {QUARANTINE}")
                .as_str()
        )
    );

    let output = process.stop();
    assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
}

#[tokio::test]
async fn denials_cloudtrail_did_not_record_contain_nobody_however_they_arrive() {
    let world = World::start().await;
    world.user("oncall").await;
    world.user("mallory").await;
    let oncall = format!("arn:aws:iam::{ACCOUNT}:user/oncall");
    let mallory = format!("arn:aws:iam::{ACCOUNT}:user/mallory");
    let (api, process) = world.responder(None);

    // Forged Messages naming the on-call engineer (published to the topic, sent to the queue,
    // written into the trail's log group, or handed straight to the function): CloudTrail has
    // none of those calls. Recent ones may still be on their way into CloudTrail: they come
    // back later, and nothing is done or said yet.
    let now = activity_aware_message::time::now_rfc3339();
    let recent = batch(vec![world.probe(
        Caller {
            arn: &oncall,
            access_key: "AKIAONCALL0000000001",
        },
        60,
        0,
        1,
        false,
        Some(&now),
    )]);
    let answer = api.invoke(recent).await.expect("handled");
    assert_eq!(failures(&answer).len(), 60);
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    // Older, or looked up enough times: not contained, and said to be suspicious.
    let old = batch(vec![world.probe(
        Caller {
            arn: &oncall,
            access_key: "AKIAONCALL0000000001",
        },
        60,
        0,
        1,
        false,
        None,
    )]);
    let answer = api.invoke(old).await.expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(world.attached("oncall").await, Vec::<String>::new());
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("high"));
    assert_eq!(
        message["subject"],
        format!("Reported probe by {oncall} not confirmed by CloudTrail: 0 of 60 denials found")
    );
    assert!(
        field(&message, "Response")
            .unwrap()
            .contains("may be forged")
    );
    assert_eq!(
        field(&message, "Denied Actions"),
        None,
        "nothing the forger chose is repeated"
    );

    // The attacker's own real denials, reported as the on-call engineer's: CloudTrail says
    // whose they are.
    world.probe(
        Caller {
            arn: &mallory,
            access_key: "AKIAMALLORY000000001",
        },
        60,
        100,
        1,
        true,
        None,
    );
    let mut relabelled = world.probe(
        Caller {
            arn: &oncall,
            access_key: "AKIAMALLORY000000001",
        },
        60,
        100,
        1,
        false,
        None,
    );
    relabelled.truncate(60);
    api.invoke(batch(vec![relabelled])).await.expect("handled");
    assert_eq!(world.attached("oncall").await, Vec::<String>::new());
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .contains("0 of 60 denials found")
    );
    process.stop();
}

#[tokio::test]
async fn a_probing_session_of_a_shared_role_is_denied_and_its_fleet_works_on() {
    let world = World::start().await;
    world.role("app").await;
    let probing = format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/i-0abc");
    let probing = Caller {
        arn: &probing,
        access_key: "ASIAPROBING000000001",
    };
    let (api, process) = world.responder(None);

    let answer = api
        .invoke(batch(vec![world.probe(probing, 55, 0, 1, true, None)]))
        .await
        .expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    let tags = world.accounts.tags("role", "app").await;
    assert_eq!(
        tag_value(&tags, CONTAINED_SESSION_TAG),
        Some(probing.principal_id())
    );
    assert!(tag_value(&tags, CONTAINED_AT_TAG).is_some());
    assert_eq!(
        world.accounts.attached_role_policies("app").await,
        std::slice::from_ref(&world.policy)
    );
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(
        message["subject"],
        format!(
            "Contained {} after 55 denied calls: its session denied, the role's other sessions untouched",
            probing.arn
        )
    );
    assert_eq!(
        field(&message, "To Undo"),
        Some(format!(
            "aws iam untag-role --role-name app --tag-keys {CONTAINED_SESSION_TAG} && aws iam detach-role-policy --role-name app --policy-arn {}",
            world.policy
        )
        .as_str())
    );

    // The intruder takes a fresh session and probes again: not contained automatically a
    // second time (that is how a fleet's role would be taken down again and again).
    let fresh = format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/fresh");
    let fresh = Caller {
        arn: &fresh,
        access_key: "ASIAFRESH00000000001",
    };
    api.invoke(batch(vec![world.probe(fresh, 50, 100, 1, true, None)]))
        .await
        .expect("handled");
    let tags_after = world.accounts.tags("role", "app").await;
    assert_eq!(tags_after, tags, "the contained session stays the first");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .ends_with("left to a person")
    );
    let to_act = field(&message, "To Act").unwrap();
    assert!(
        to_act.contains(&format!("Value={}", fresh.principal_id()))
            && to_act.contains("Revoke active sessions"),
        "{to_act}"
    );
    process.stop();
}

#[tokio::test]
async fn root_other_accounts_the_stacks_roles_and_the_never_list_are_never_contained_and_say_why() {
    let world = World::start().await;
    world.user("break-glass").await;
    world.role("ids-DestinationSlackRole-1").await;
    let (api, process) = world.responder(None);
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let listed = format!("arn:aws:iam::{ACCOUNT}:user/break-glass");
    let stack_role = format!("arn:aws:sts::{ACCOUNT}:assumed-role/ids-DestinationSlackRole-1/s");
    let elsewhere = "arn:aws:iam::444455556666:user/bob".to_owned();
    let caller = |arn| Caller {
        arn,
        access_key: "AKIAANYONE0000000001",
    };
    let answer = api
        .invoke(batch(vec![
            world.probe(caller(&root), 50, 0, 1, true, None),
            world.probe(caller(&listed), 50, 50, 1, true, None),
            world.probe(caller(&stack_role), 50, 100, 1, true, None),
            world.probe(caller(&elsewhere), 50, 150, 1, true, None),
        ]))
        .await
        .expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(world.attached("break-glass").await, Vec::<String>::new());
    assert_eq!(
        world
            .accounts
            .attached_role_policies("ids-DestinationSlackRole-1")
            .await,
        Vec::<String>::new()
    );
    // The root user's calls are the root-activity detection (critical on their own), never
    // denials to count: nothing is said of root here, and nothing done.
    let messages = world.published(3).await;
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    assert!(
        messages
            .iter()
            .all(|m| field(m, "Principal") != Some(root.as_str()))
    );
    let said = |principal: &str| {
        messages
            .iter()
            .find(|m| field(m, "Principal") == Some(principal))
            .unwrap_or_else(|| panic!("nothing said of {principal}"))
    };
    assert!(
        field(said(&listed), "Response")
            .unwrap()
            .contains("NeverContainPrincipalArns names it")
    );
    assert!(
        field(said(&stack_role), "Response")
            .unwrap()
            .contains("this stack's own role")
    );
    assert!(
        field(said(&elsewhere), "Response")
            .unwrap()
            .contains("account 444455556666")
    );
    for principal in [&listed, &stack_role, &elsewhere] {
        assert_eq!(
            tag(said(principal), "severity"),
            Some("high"),
            "{principal}"
        );
    }
    process.stop();
}

#[tokio::test]
async fn a_refused_containment_fails_its_denials_and_says_so_and_a_bad_record_fails_alone() {
    let world = World::start().await;
    world.user("bob").await;
    let refusing = RefusingEndpoint::start(
        &world.moto.endpoint_url(),
        &["AttachUserPolicy"],
        "AccessDenied",
    );
    let (api, process) = world.responder(Some(refusing.endpoint_url()));
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let mut records = world.probe(
        Caller {
            arn: &bob,
            access_key: "AKIABOB0000000000001",
        },
        50,
        0,
        1,
        true,
        None,
    );
    records.push(sqs_record(
        "message-bad",
        "receipt-bad",
        "not a Message",
        1_700_000_000_000,
        1,
    ));
    let answer = api
        .invoke(json!({"Records": records}))
        .await
        .expect("handled");
    let mut expected: Vec<String> = (0..50).map(|i| format!("message-{i}")).collect();
    expected.push("message-bad".into());
    expected.sort();
    assert_eq!(failures(&answer), expected);
    assert_eq!(world.attached("bob").await, Vec::<String>::new());
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(
        message["subject"],
        format!("Could not contain {bob} after 50 denied calls")
    );
    assert!(
        field(&message, "Response")
            .unwrap()
            .contains("AccessDenied")
    );
    process.stop();
}

#[tokio::test]
async fn the_handler_in_process_quarantines_a_prober_and_fails_only_a_record_that_is_no_message() {
    use activity_aware_message::MessagePublisher;
    use aws_query::{QueryClient, Service};
    use response_containment::history::CloudTrailHistory;
    use response_containment::iam::Iam;
    use response_containment::{Config, handle};

    let world = World::start().await;
    world.user("bob").await;
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let env = world.env();
    let config = Config::from_lookup(|name| match name {
        "SNS_TOPIC" => Some(world.topic.clone()),
        _ => env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone()),
    })
    .expect("the responder's settings");
    assert_eq!(config.account, ACCOUNT);
    let aws = world.moto.sdk_config().await;
    let iam = Iam::new(QueryClient::new(&aws, Service::Iam).unwrap());
    let history = CloudTrailHistory::new(aws.clone());
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());

    let mut records = world.probe(
        Caller {
            arn: &bob,
            access_key: "AKIABOB0000000000001",
        },
        50,
        0,
        1,
        true,
        None,
    );
    records.push(sqs_record(
        "message-bad",
        "receipt-bad",
        "not a Message",
        1_700_000_000_000,
        1,
    ));
    let event = serde_json::from_value(json!({"Records": records})).expect("an SQS event");
    let answer = handle(&config, &iam, &history, &publisher, event)
        .await
        .expect("handled");
    assert_eq!(
        failures(&serde_json::to_value(&answer).unwrap()),
        ["message-bad"]
    );
    assert_eq!(world.attached("bob").await, [QUARANTINE]);
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(
        message["subject"],
        format!("Contained {bob} after 50 denied calls: AWS's quarantine policy attached")
    );
}
