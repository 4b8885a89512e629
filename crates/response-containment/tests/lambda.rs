//! The real `response-containment` binary, run through a local Lambda Runtime API against
//! moto's IAM and SNS. Its batches hold the Messages the CloudWatch Logs source publishes for
//! the corpus's real denial, rewritten to name moto's users and roles (test-world's
//! responders); what it published is read back from a queue subscribed to the topic.

use std::time::Duration;

use response_containment::iam::{REVOKE_POLICY_NAME, percent_decoded as decode};
use serde_json::{Value, json};
use test_world::events::sqs_record;
use test_world::responders::{
    MOTO_ACCOUNT as ACCOUNT, ResponderWorld, denial_message as denial, field, tag,
};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, LambdaProcess, RefusingEndpoint, RuntimeApi, assert_no_secrets,
};

const BINARY: &str = env!("CARGO_BIN_EXE_response-containment");
const QUARANTINE: &str = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3";

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

    fn responder(&self, iam_endpoint: Option<String>) -> (RuntimeApi, LambdaProcess) {
        let mut env = vec![
            ("PROBE_CONTAINMENT_THRESHOLD".into(), "50".into()),
            (
                "NEVER_CONTAIN_PRINCIPAL_ARNS".into(),
                format!("arn:aws:iam::{ACCOUNT}:user/break-glass"),
            ),
            (
                "STACK_ROLE_ARNS".into(),
                format!("arn:aws:iam::{ACCOUNT}:role/ids-DestinationSlackRole-1"),
            ),
        ];
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

    async fn revoke_policy(&self, role: &str) -> Option<String> {
        self.accounts.role_policy(role, REVOKE_POLICY_NAME).await
    }
}

/// `count` denials by `arn`, as a batch's records starting at `first`.
fn denials(
    arn: &str,
    issued: Option<&str>,
    count: usize,
    first: usize,
    receives: u32,
) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let event = ["ListUsers", "ListRoles", "GetAccountAuthorizationDetails"][i % 3];
            let body = denial(
                arn,
                issued,
                event,
                &format!("2026-12-03T10:{:02}:00Z", i % 60),
            );
            sqs_record(
                &format!("message-{}", first + i),
                &format!("receipt-{}", first + i),
                &body,
                1_700_000_000_000,
                receives,
            )
        })
        .collect()
}

fn batch(records: Vec<Vec<Value>>) -> Value {
    json!({"Records": records.concat()})
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_probing_user_is_quarantined_once_and_a_quiet_one_is_left_alone() {
    let world = World::start().await;
    world.user("bob").await;
    world.user("eve").await;
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let eve = format!("arn:aws:iam::{ACCOUNT}:user/eve");
    let (api, process) = world.responder(None);
    let probe = batch(vec![
        denials(&bob, None, 60, 0, 1),
        denials(&eve, None, 49, 60, 1),
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
    activity_aware_message::Message::from_value(message).expect("a Message");

    // The quarantine keeps it denied, so its denials keep coming: nothing more is done or said.
    let answer = api.invoke(probe).await.expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    // Unless the batch is a retried delivery (the first may have acted and not said so).
    let retried = batch(vec![denials(&bob, None, 50, 0, 2)]);
    api.invoke(retried).await.expect("handled");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("medium"));
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .starts_with("Still contained")
    );
    assert_eq!(world.attached("bob").await, [QUARANTINE]);

    let output = process.stop();
    assert_no_secrets("the function's output", &output, &[DUMMY_SECRET_ACCESS_KEY]);
}

#[tokio::test]
async fn a_probing_roles_sessions_are_revoked_and_only_newer_sessions_revoke_again() {
    let world = World::start().await;
    world.role("app").await;
    let session = format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/i-0abc");
    let (api, process) = world.responder(None);
    let old_session = Some("2026-12-03T09:00:00Z");

    let answer = api
        .invoke(batch(vec![denials(&session, old_session, 55, 0, 1)]))
        .await
        .expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    let policy = world.revoke_policy("app").await.expect("a revoke policy");
    let policy: Value = serde_json::from_str(&decode(&policy)).unwrap();
    let before = policy["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        (
            &policy["Statement"][0]["Effect"],
            &policy["Statement"][0]["Action"]
        ),
        (&json!("Deny"), &json!("*"))
    );
    assert!(before.as_str() > "2026-12-03T09:00:00Z", "{before}");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert_eq!(tag(&message, "severity"), Some("critical"));
    assert_eq!(
        field(&message, "Response"),
        Some(format!("Every session of role app issued before {before} is denied").as_str())
    );
    assert_eq!(
        field(&message, "To Undo"),
        Some(
            "aws iam delete-role-policy --role-name app --policy-name ActivityAwareIdsRevokedSessions"
        )
    );

    // The old session, denied by the revoke itself: already contained, nothing done or said.
    let first = world.revoke_policy("app").await;
    api.invoke(batch(vec![denials(&session, old_session, 55, 0, 1)]))
        .await
        .expect("handled");
    world.capture.assert_quiet(Duration::from_secs(1)).await;
    assert_eq!(world.revoke_policy("app").await, first);
    // A session issued after the revoke, probing again: revoked again, later.
    api.invoke(batch(vec![denials(
        &session,
        Some("2099-01-01T00:00:00Z"),
        50,
        0,
        1,
    )]))
    .await
    .expect("handled");
    let [message] = world.published(1).await.try_into().expect("one Message");
    assert!(
        message["subject"]
            .as_str()
            .unwrap()
            .contains("role app's sessions revoked")
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
    let answer = api
        .invoke(batch(vec![
            denials(&root, None, 50, 0, 1),
            denials(&listed, None, 50, 50, 1),
            denials(&stack_role, Some("2026-12-03T09:00:00Z"), 50, 100, 1),
            denials(&elsewhere, None, 50, 150, 1),
        ]))
        .await
        .expect("handled");
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(world.attached("break-glass").await, Vec::<String>::new());
    assert_eq!(
        world.revoke_policy("ids-DestinationSlackRole-1").await,
        None
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
    let mut records = denials(&bob, None, 50, 0, 1);
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
    let mut failed = failures(&answer);
    failed.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("message-{i}")).collect();
    expected.push("message-bad".into());
    expected.sort();
    assert_eq!(failed, expected);
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
    use response_containment::iam::Iam;
    use response_containment::{Config, handle};

    let world = World::start().await;
    world.user("bob").await;
    let bob = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    let config = Config::from_lookup(|name| (name == "SNS_TOPIC").then(|| world.topic.clone()))
        .expect("the responder's settings");
    assert_eq!(config.account, ACCOUNT);
    let aws = world.moto.sdk_config().await;
    let iam = Iam::new(QueryClient::new(&aws, Service::Iam).unwrap());
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());

    let mut records = denials(&bob, None, 50, 0, 1);
    records.push(sqs_record(
        "message-bad",
        "receipt-bad",
        "not a Message",
        1_700_000_000_000,
        1,
    ));
    let event = serde_json::from_value(json!({"Records": records})).expect("an SQS event");
    let answer = handle(&config, &iam, &publisher, event)
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
