//! `./dev.sh local`: the whole pipeline on this machine, as the stack runs it, with moto for
//! AWS and (unless the user gives a webhook) an HTTPS stand-in for Slack.
//!
//! CloudWatch Logs deliveries -> the source -> moto's SNS topic -> the Slack function's SQS
//! buffer queue (raw delivery) -> two instances of the Slack function fed by an event source
//! mapping (as the stack's MaximumConcurrency allows) -> Slack. Prints each step and, post by
//! post, what Slack received. With `--respond`, the responders act first (moto's EC2 and IAM).

use std::path::{Path, PathBuf};
use std::time::Duration;

use destination_slack::WEBHOOK_ENCRYPTION_CONTEXT;
use serde_json::{Value, json};
use source_heartbeat::coverage::Coverage;

use crate::events::sqs_record;
use crate::pipeline::{self, Flow, OtherDestination, Pipeline};
use crate::responders::{
    Accounts, Caller, MOTO_ACCOUNT, denial_message, denial_record, public_ingress_event,
};
use crate::{LambdaProcess, MotoServer, RateLimit, RuntimeApi, SlackSink, payloads};

/// What to send through the pipeline.
pub enum Input {
    /// One event file for a source: a CloudWatch Logs delivery, or an EventBridge event.
    Event(PathBuf),
    /// A permission-enumeration probe of about this many denials, in deliveries of 250.
    Flood(usize),
    /// The responses: a security group opened to the internet is closed (Revoke), and a user
    /// probing with 60 denials in a minute is quarantined, each said in Slack.
    Respond,
    /// The organisation's stack: events of two accounts in three regions through the central
    /// bus, a member region gone silent reported, a member account's open group closed.
    Org,
}

pub struct Options {
    pub input: Input,
    /// Where the function binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// The user's own webhook (from SLACK_WEBHOOK_URL, never the command line); the HTTPS
    /// stand-in otherwise.
    pub webhook_url: Option<String>,
    /// Teams, PagerDuty and email too, each from its own queue, to stand-ins on 127.0.0.1 and
    /// moto's SES.
    pub all_destinations: bool,
}

/// A lone event's batch gathers this long here, not the stack's window, so that the run ends
/// soon after it; a flood gathers for the stack's window.
const LONE_EVENT_WINDOW: Duration = Duration::from_secs(2);

fn step(text: &str) {
    println!("\n== {text}");
}

pub async fn run(options: Options) -> Result<(), String> {
    // A lone event gathers for LONE_EVENT_WINDOW; a flood for the stack's window.
    let (mut deliveries, window) = match &options.input {
        Input::Event(path) => (vec![read_event(path)?], Some(LONE_EVENT_WINDOW)),
        // The opening of a group, once the group exists in moto; the organisation's events.
        Input::Respond | Input::Org => (
            vec![json!({"detail-type": "made below"})],
            Some(LONE_EVENT_WINDOW),
        ),
        Input::Flood(denials) => {
            let repeats = denials.div_ceil(4 * 128).max(1);
            let probe = payloads::permission_probe(
                &["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"],
                repeats,
                4,
                2,
            );
            println!(
                "a permission-enumeration probe: {} denials by {} over {} actions in {} regions, and {} by {} other principals",
                probe.records.len() - probe.others.len() * 2,
                probe.attacker,
                probe.actions.len(),
                probe.regions.len(),
                probe.others.len() * 2,
                probe.others.len()
            );
            (payloads::deliveries(&probe.records, 250), None)
        }
    };

    // An EventBridge event goes to the EventBridge source, anything else to the Logs source.
    let source = if deliveries[0].get("detail-type").is_some() {
        ("source-eventbridge", "EventBridge event")
    } else {
        (
            "source-cloudtrail-cloudwatch-logs",
            "CloudWatch Logs deliver",
        )
    };
    let source_binary = options.bin_dir.join(source.0);
    let destination_binary = options.bin_dir.join("destination-slack");
    for binary in [&source_binary, &destination_binary] {
        if !binary.is_file() {
            return Err(format!("no function binary at {}", binary.display()));
        }
    }

    step("Starting moto (SNS, SQS, KMS, EC2, IAM) on 127.0.0.1");
    let moto = MotoServer::start();
    let pipeline = Pipeline::create(&moto, "Activity-Aware-IDS-Local").await;
    let key = moto.create_kms_key().await;
    println!(
        "topic {}\nbuffer queue {} (raw delivery)\nKMS key {key}",
        pipeline.topic, pipeline.queue.arn
    );

    let sink = match &options.webhook_url {
        Some(_) => {
            step("Posting to your SLACK_WEBHOOK_URL");
            None
        }
        None => {
            step(
                "Starting the HTTPS Slack stand-in on 127.0.0.1 (throwaway CA, Slack's 1 post/s limit)",
            );
            let sink = SlackSink::start();
            sink.enforce(RateLimit::slack());
            Some(sink)
        }
    };
    let webhook = match (&options.webhook_url, &sink) {
        (Some(url), _) => url.clone(),
        (None, Some(sink)) => sink.webhook_url(),
        (None, None) => unreachable!("a sink runs when no webhook is given"),
    };
    let ciphertext = moto
        .kms_encrypt(&key, &webhook, &WEBHOOK_ENCRYPTION_CONTEXT)
        .await;
    println!(
        "webhook URL encrypted with the KMS key for its purpose; the function gets only the ciphertext"
    );

    // Subscribed before anything is published, as in the stack.
    let (others, other_destinations) = match options.all_destinations {
        true => {
            let others = OtherWorld::start(&moto, &key).await;
            let destinations = others
                .destinations(&moto, &pipeline.topic, &options.bin_dir)
                .await?;
            (Some(others), destinations)
        }
        false => (None, Vec::new()),
    };

    let mut source_env = Vec::new();
    if matches!(options.input, Input::Respond) {
        deliveries = vec![respond(&moto, &pipeline.topic, &options.bin_dir).await?];
        step(
            "source-eventbridge takes the opening too, and says what it is; then Slack gets every Message",
        );
    }
    if matches!(options.input, Input::Org) {
        deliveries = org(&moto, &pipeline.topic, &options.bin_dir).await?;
        source_env.push(("STACK_NAME".to_owned(), STACK_NAME.to_owned()));
        step(
            "The central bus sends what it got to source-eventbridge: each event, from the account and region it happened in",
        );
        for event in &deliveries {
            println!(
                "{} {:<14} {}",
                event["account"].as_str().unwrap_or_default(),
                event["region"].as_str().unwrap_or_default(),
                event["detail-type"].as_str().unwrap_or_default()
            );
        }
    }
    let single = deliveries.len() == 1;
    let mut destination_env = vec![("SLACK_WEBHOOK_URL".to_owned(), ciphertext)];
    if let Ok(names) = std::env::var("ACCOUNT_NAMES") {
        destination_env.push(("ACCOUNT_NAMES".to_owned(), names));
    }
    if let Some(sink) = &sink {
        destination_env.push((
            "SSL_CERT_FILE".into(),
            sink.ca_file().to_string_lossy().into_owned(),
        ));
    }
    let mut flow = Flow::as_the_stack(
        source_binary,
        destination_binary,
        deliveries,
        destination_env,
    );
    flow.others = other_destinations;
    flow.source_env = source_env;
    let stack_window = flow.window;
    flow.window = window.unwrap_or(stack_window);
    step(&format!(
        "{} takes {} {}{}; destination-slack is fed from the queue as its event source mapping does: {} instances, batches of up to {} gathered for {} s (the stack: {} s)",
        source.0,
        flow.deliveries.len(),
        source.1,
        match (single, source.0) {
            (true, "source-eventbridge") => "",
            (false, "source-eventbridge") => "s",
            (true, _) => "y",
            (false, _) => "ies",
        },
        flow.instances,
        flow.batch_size,
        flow.window.as_secs(),
        stack_window.as_secs()
    ));
    let flowed = pipeline::run(&moto, &pipeline, flow).await?;
    if single {
        println!("{}", pretty(&flowed.summaries[0]));
    }
    if matches!(options.input, Input::Org) {
        report_org(&moto, &flowed.summaries).await;
    }
    print!("{}", flowed.source_output);
    for output in flowed
        .destination_outputs
        .iter()
        .chain(&flowed.other_outputs)
    {
        print!("{output}");
    }
    let slack_batches: Vec<&crate::Handled> = flowed
        .handled
        .iter()
        .filter(|batch| batch.function == "destination-slack")
        .collect();
    if single {
        for record in slack_batches.iter().flat_map(|batch| {
            batch.event["Records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }) {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            println!(
                "\nthe Message as published (the Message contract):\n{}",
                pretty(&body)
            );
        }
    }
    // The responders (and the heartbeat) published theirs before the source: count what the
    // queues gave Slack.
    let messages = if matches!(options.input, Input::Respond | Input::Org) {
        slack_batches.iter().map(|batch| batch.size as u64).sum()
    } else {
        flowed.published()
    };
    println!("\nthe topic took {messages} Message(s)");
    for (number, batch) in slack_batches.iter().enumerate() {
        let answer = match &batch.answer {
            Ok(answer) => answer.to_string(),
            Err(error) => format!("error: {error}"),
        };
        println!(
            "batch {}: {} Message(s), {} posted and deleted, {} back to the queue; answer {answer}",
            number + 1,
            batch.size,
            batch.settled.deleted.len(),
            batch.settled.returned.len()
        );
    }

    if let Some(sink) = &sink {
        let requests = sink.requests();
        let posts = sink.accepted();
        step(&format!(
            "What Slack received: {} post(s) for {} Message(s), the last {:.1} s after the first delivery ({} refused with 429)",
            posts.len(),
            messages,
            flowed.drained_after.as_secs_f64(),
            requests.len() - posts.len()
        ));
        for (number, post) in posts.iter().enumerate() {
            println!(
                "\n--- post {} of {}, as Slack shows it ---",
                number + 1,
                posts.len()
            );
            println!("{}", crate::block_kit::render(&post.body_json()));
            if single {
                println!(
                    "\n--- post {} of {}, as posted ---",
                    number + 1,
                    posts.len()
                );
                println!("{}", pretty(&post.body_json()));
            }
        }
    }
    if let Some(others) = &others {
        others.report(&moto, &flowed.handled, single).await;
    }
    Ok(())
}

/// Teams, PagerDuty and email beside Slack: HTTPS stand-ins on 127.0.0.1 (each its own
/// throwaway CA) for Teams and PagerDuty, moto's SES for email, each secret KMS-encrypted for
/// its purpose as the stack encrypts it.
struct OtherWorld {
    teams: SlackSink,
    pagerduty: SlackSink,
    teams_ciphertext: String,
    routing_key: String,
    routing_key_ciphertext: String,
}

/// The sender and recipients of the local world's emails (the sender verified in moto's SES).
const EMAIL_FROM: &str = "activity-aware-ids@example.com";
const EMAIL_TO: &str = "oncall@example.com,security@example.com";

impl OtherWorld {
    async fn start(moto: &MotoServer, key: &str) -> OtherWorld {
        step(
            "Starting HTTPS stand-ins for a Teams Workflows webhook (4 requests/s) and PagerDuty's Events API (2 events/s), and verifying the email sender in moto's SES",
        );
        let teams = SlackSink::start();
        teams.enforce(RateLimit::teams());
        let pagerduty = SlackSink::start();
        pagerduty.enforce(RateLimit::pagerduty());
        moto.verify_email_identity(EMAIL_FROM).await;
        let teams_ciphertext = moto
            .kms_encrypt(
                key,
                &teams.url("/workflows/local/triggers/manual/paths/invoke?sig=local"),
                &destination_teams::WEBHOOK_ENCRYPTION_CONTEXT,
            )
            .await;
        // A routing key of PagerDuty's shape, 32 characters, made for this run.
        let routing_key: String = pagerduty
            .secret()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .chain(std::iter::repeat('0'))
            .take(32)
            .collect();
        let routing_key_ciphertext = moto
            .kms_encrypt(
                key,
                &routing_key,
                &destination_pagerduty::ROUTING_KEY_ENCRYPTION_CONTEXT,
            )
            .await;
        println!(
            "Teams webhook URL and PagerDuty routing key encrypted with the KMS key, each for its purpose; email from {EMAIL_FROM} to {EMAIL_TO}"
        );
        OtherWorld {
            teams,
            pagerduty,
            teams_ciphertext,
            routing_key,
            routing_key_ciphertext,
        }
    }

    /// Each destination's queue on the topic, filtered by its minimum severity
    /// (TEAMS_MINIMUM_SEVERITY, PAGERDUTY_MINIMUM_SEVERITY, EMAIL_MINIMUM_SEVERITY, else the
    /// template's defaults), and its instances.
    async fn destinations(
        &self,
        moto: &MotoServer,
        topic: &str,
        bin_dir: &Path,
    ) -> Result<Vec<OtherDestination>, String> {
        let ca = |sink: &SlackSink| {
            (
                "SSL_CERT_FILE".to_owned(),
                sink.ca_file().to_string_lossy().into_owned(),
            )
        };
        let mut accounts = Vec::new();
        if let Ok(names) = std::env::var("ACCOUNT_NAMES") {
            accounts.push(("ACCOUNT_NAMES".to_owned(), names));
        }
        let settings = [
            (
                "destination-teams",
                "TEAMS_MINIMUM_SEVERITY",
                vec![
                    (
                        "TEAMS_WEBHOOK_URL".to_owned(),
                        self.teams_ciphertext.clone(),
                    ),
                    ca(&self.teams),
                ],
            ),
            (
                "destination-pagerduty",
                "PAGERDUTY_MINIMUM_SEVERITY",
                vec![
                    (
                        "PAGERDUTY_ROUTING_KEY".to_owned(),
                        self.routing_key_ciphertext.clone(),
                    ),
                    (
                        "PAGERDUTY_EVENTS_URL".to_owned(),
                        self.pagerduty.url("/v2/enqueue"),
                    ),
                    ca(&self.pagerduty),
                ],
            ),
            (
                "destination-email",
                "EMAIL_MINIMUM_SEVERITY",
                vec![
                    ("EMAIL_FROM".to_owned(), EMAIL_FROM.to_owned()),
                    ("EMAIL_TO".to_owned(), EMAIL_TO.to_owned()),
                ],
            ),
        ];
        let mut destinations = Vec::new();
        for (function, minimum_variable, mut env) in settings {
            let binary = bin_dir.join(function);
            if !binary.is_file() {
                return Err(format!("no function binary at {}", binary.display()));
            }
            if let Ok(minimum) = std::env::var(minimum_variable) {
                env.push(("MINIMUM_SEVERITY".to_owned(), minimum));
            }
            env.extend(accounts.iter().cloned());
            let destination =
                OtherDestination::as_the_stack(moto, topic, function, binary, env).await;
            println!(
                "{function}: its own queue, minimum severity {}, {} instances, batches of up to {}",
                destination
                    .env
                    .iter()
                    .find(|(name, _)| name == "MINIMUM_SEVERITY")
                    .map_or("", |(_, minimum)| minimum.as_str()),
                destination.lane.instances,
                destination.lane.batch_size
            );
            destinations.push(destination);
        }
        Ok(destinations)
    }

    /// What Teams, PagerDuty and SES received.
    async fn report(&self, moto: &MotoServer, handled: &[crate::Handled], single: bool) {
        let took = |function: &str| -> usize {
            handled
                .iter()
                .filter(|batch| batch.function == function)
                .map(|batch| batch.settled.deleted.len())
                .sum()
        };
        let cards = self.teams.accepted();
        step(&format!(
            "What Teams received: {} card(s) for {} Message(s) at or above its minimum (each checked against the Adaptive Card 1.4 schema)",
            cards.len(),
            took("destination-teams")
        ));
        for (number, card) in cards.iter().enumerate() {
            println!(
                "\n--- card {} of {}, as Teams shows it ---",
                number + 1,
                cards.len()
            );
            let body = card.body_json();
            println!("{}", render_card(&body["attachments"][0]["content"]));
            let problems = crate::adaptive_cards::problems(&body);
            if !problems.is_empty() {
                println!("NOT A VALID CARD: {problems:?}");
            }
        }
        let events = self.pagerduty.accepted();
        step(&format!(
            "What PagerDuty received: {} event(s) for {} Message(s) at or above its minimum",
            events.len(),
            took("destination-pagerduty")
        ));
        for (number, event) in events.iter().enumerate() {
            let mut event = event.body_json();
            if event["routing_key"] == self.routing_key.as_str() {
                event["routing_key"] =
                    json!("<the routing key, decrypted from its KMS ciphertext>");
            }
            println!("\n--- event {} of {} ---", number + 1, events.len());
            if single || number == 0 {
                println!("{}", pretty(&event));
            } else {
                println!(
                    "{} ({}, dedup_key {})",
                    event["payload"]["summary"].as_str().unwrap_or_default(),
                    event["payload"]["severity"].as_str().unwrap_or_default(),
                    event["dedup_key"].as_str().unwrap_or_default()
                );
            }
        }
        let emails = moto.sent_emails().await;
        step(&format!(
            "What SES sent: {} email(s) for {} Message(s) at or above its minimum",
            emails.len(),
            took("destination-email")
        ));
        for (number, email) in emails.iter().enumerate() {
            println!(
                "\n--- email {} of {}, its text part ---",
                number + 1,
                emails.len()
            );
            match mail_parser::MessageParser::default().parse(email.raw.as_bytes()) {
                Some(mail) => {
                    println!("Subject: {}", mail.subject().unwrap_or_default());
                    let to: Vec<&str> = mail
                        .to()
                        .into_iter()
                        .flat_map(|to| to.iter())
                        .filter_map(|to| to.address())
                        .collect();
                    println!("To: {}", to.join(", "));
                    println!("\n{}", mail.body_text(0).unwrap_or_default());
                }
                None => println!("(not a MIME message)\n{}", email.raw),
            }
        }
    }
}

/// An Adaptive Card as text: each block's runs on a line, buttons last.
fn render_card(card: &Value) -> String {
    fn blocks(items: &Value, lines: &mut Vec<String>) {
        for item in items.as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("Container") => {
                    lines.push("-".repeat(60));
                    blocks(&item["items"], lines);
                }
                _ => {
                    let runs: String = item["inlines"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|run| run["text"].as_str())
                        .collect();
                    lines.push(runs);
                }
            }
        }
    }
    let mut lines = Vec::new();
    blocks(&card["body"], &mut lines);
    for action in card["actions"].as_array().into_iter().flatten() {
        lines.push(format!(
            "[{}] -> {}",
            action["title"].as_str().unwrap_or_default(),
            action["url"].as_str().unwrap_or_default()
        ));
    }
    lines.join("\n")
}

/// Runs a function once with `event`, as the stack would, with moto, the topic and `env`; prints
/// what it logged and returns its answer.
async fn run_once(
    moto: &MotoServer,
    topic: &str,
    bin_dir: &Path,
    binary: &str,
    env: Vec<(String, String)>,
    event: Value,
) -> Result<Value, String> {
    let binary = bin_dir.join(binary);
    if !binary.is_file() {
        return Err(format!("no function binary at {}", binary.display()));
    }
    let mut full_env = moto.lambda_env();
    full_env.push(("SNS_TOPIC".into(), topic.to_owned()));
    full_env.extend(env);
    let api = RuntimeApi::start();
    let process = LambdaProcess::spawn(&binary, &api, full_env);
    let answer = api.invoke(event).await;
    let output = process.stop();
    print!("{output}");
    answer.map_err(|error| format!("{}: {error}", binary.display()))
}

/// The local stack's name: its liveness rules and member roles are named for it.
const STACK_NAME: &str = "Activity-Aware-IDS-Local";

/// The organisation: this (central) account and a member account, and the regions events come
/// from; one more member region that went silent.
const MEMBER_ACCOUNT: &str = "222233334444";
const SILENT_REGION: &str = "sa-east-1";
const MEMBER_REGIONS: [&str; 3] = ["us-east-1", "eu-west-3", "ap-southeast-2"];

/// A member stack's liveness event: EventBridge's scheduled event of its `<stack>-liveness`
/// rule, forwarded to the central bus.
fn liveness_event(account: &str, region: &str, minute: usize) -> Value {
    json!({
        "version": "0",
        "id": format!("00000000-0000-4000-8000-{account}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": format!("2026-12-07T10:{minute:02}:00Z"),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{account}:rule/{STACK_NAME}-liveness")],
        "detail": {}
    })
}

/// An event as if it had happened in `account` and `region`: every mention of its own
/// account and region (in ARNs, in a finding) becomes theirs.
fn rehomed_everywhere(event: &Value, account: &str, region: &str) -> Value {
    let from_account = event["account"].as_str().unwrap_or_default();
    let from_region = event["region"].as_str().unwrap_or_default();
    let text = event
        .to_string()
        .replace(from_account, account)
        .replace(from_region, region);
    serde_json::from_str(&text).expect("test-world: still JSON")
}

/// The organisation's world, against moto: a member account's region went silent 50 minutes
/// ago (its liveness remembered then, as the source remembers it), and the heartbeat's coverage
/// check says so; a group opened to the internet in the member account's eu-west-3 is closed
/// there by response-security-group as the member role. Both publish to the topic. Returns what
/// the central bus sends the EventBridge source: liveness events of the member account's three
/// regions and of the central account's other region, a root sign-in in the central account, a
/// GuardDuty finding in the member's ap-southeast-2, and the opening.
async fn org(moto: &MotoServer, topic: &str, bin_dir: &Path) -> Result<Vec<Value>, String> {
    let [home, europe, asia] = MEMBER_REGIONS;
    step(&format!(
        "The organisation: central account {MOTO_ACCOUNT} (the stack, in {home}), member account {MEMBER_ACCOUNT}, watched in {home}, {europe}, {asia} and {SILENT_REGION}"
    ));
    let table = moto.create_familiarity_table(pipeline::MEMORY_TABLE).await;
    let memory = activity_aware_memory::Memory::new(&moto.sdk_config().await, &table)
        .map_err(|error| error.to_string())?;
    let now = activity_aware_memory::now_s();
    memory
        .see(
            &activity_aware_memory::coverage_key(MEMBER_ACCOUNT, SILENT_REGION),
            now - 50 * 60,
            7 * 86_400,
        )
        .await
        .map_err(|error| error.to_string())?;
    println!(
        "{MEMBER_ACCOUNT} {SILENT_REGION}: its last liveness event was 50 minutes ago (its rules were deleted since)"
    );
    step("source-heartbeat's coverage check (every 15 minutes in the stack)");
    let memory_env = vec![
        ("STACK_NAME".to_owned(), STACK_NAME.to_owned()),
        ("FAMILIARITY_TABLE".to_owned(), table.clone()),
    ];
    let answer = run_once(
        moto,
        topic,
        bin_dir,
        "source-heartbeat",
        memory_env,
        json!({"coverage": true}),
    )
    .await?;
    println!("{}", pretty(&answer));

    step(&format!(
        "In member account {MEMBER_ACCOUNT}, {europe}: a security group opened to the internet on tcp/22 and tcp/443"
    ));
    let role = format!("{STACK_NAME}-responder");
    let member = Accounts::member(moto, MEMBER_ACCOUNT, europe, &role).await;
    let (group, opening) = open_web_group(&member).await;
    let opening = crate::responders::rehomed(&opening, MEMBER_ACCOUNT, europe);
    step(&format!(
        "response-security-group (Revoke) takes the event from the central bus and acts in {MEMBER_ACCOUNT}, {europe}, as {role}"
    ));
    let answer = run_once(
        moto,
        topic,
        bin_dir,
        "response-security-group",
        vec![
            ("RESPONSE_MODE".into(), "revoke".into()),
            ("ALLOWED_PUBLIC_PORTS".into(), "tcp:80,tcp:443".into()),
            ("MEMBER_RESPONDER_ROLE".into(), role.clone()),
            (
                "MEMBER_EXTERNAL_ID".into(),
                "0f0e0d0c-0000-4000-8000-000000000001".into(),
            ),
        ],
        opening.clone(),
    )
    .await?;
    println!("{}", pretty(&answer));
    println!(
        "{MEMBER_ACCOUNT} {europe} {group} now holds: {}",
        describe_rules(&member.ingress_rules(&group).await)
    );

    let mut events: Vec<Value> = MEMBER_REGIONS
        .iter()
        .enumerate()
        .map(|(minute, region)| liveness_event(MEMBER_ACCOUNT, region, minute))
        .collect();
    events.push(liveness_event(MOTO_ACCOUNT, europe, 3));
    events.push(payloads::eventbridge_sample("console-sign-in-root-success"));
    events.push(rehomed_everywhere(
        &payloads::eventbridge_sample("guardduty-iam-privilege-escalation-high"),
        MEMBER_ACCOUNT,
        asia,
    ));
    events.push(opening);
    Ok(events)
}

/// What the source made of each event, and which accounts and regions the memory says reported.
async fn report_org(moto: &MotoServer, summaries: &[Value]) {
    step("What source-eventbridge made of each");
    for summary in summaries {
        let what = match summary["liveness"].as_str() {
            Some(watched) => format!("liveness: {watched} is watched"),
            None => format!("published {}", summary["published"]),
        };
        println!(
            "{:<36} {what}",
            summary["detailType"].as_str().unwrap_or_default()
        );
    }
    // What the heartbeat's summary reads of them.
    let memory =
        activity_aware_memory::Memory::new(&moto.sdk_config().await, pipeline::MEMORY_TABLE)
            .map_err(|error| error.to_string());
    let now = activity_aware_memory::now_s();
    let coverage = match &memory {
        Ok(memory) => Coverage::read(memory, now)
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.clone()),
    };
    match coverage {
        Ok(coverage) => {
            let mut reporting: Vec<String> = coverage
                .reporting
                .iter()
                .map(|watched| format!("{} {}", watched.account, watched.region))
                .collect();
            reporting.sort();
            println!(
                "\ncoverage: {}; reporting: {}",
                coverage.said(),
                reporting.join(", ")
            );
        }
        Err(error) => println!("\ncoverage could not be read: {error}"),
    }
}

/// The responses, against moto: a group opened to the internet on tcp/22 (and tcp/443, which
/// the allowlist leaves) is closed by response-security-group in revoke mode; a user denied 60
/// times in a batch is quarantined by response-containment. Both publish to the topic, whose
/// queues the Slack function drains with the rest. Returns the opening's EventBridge event.
async fn respond(moto: &MotoServer, topic: &str, bin_dir: &Path) -> Result<Value, String> {
    let accounts = Accounts::of(moto).await;
    let run_once = |binary: &'static str, env: Vec<(String, String)>, event: Value| {
        run_once(moto, topic, bin_dir, binary, env, event)
    };

    step("A security group opened to the internet: tcp/22 and tcp/443 from 0.0.0.0/0");
    let (group, event) = open_web_group(&accounts).await;
    step(
        "response-security-group (OpenSecurityGroupResponse Revoke, AllowedPublicPorts tcp:80,tcp:443) takes the event",
    );
    let answer = run_once(
        "response-security-group",
        vec![
            ("RESPONSE_MODE".into(), "revoke".into()),
            ("ALLOWED_PUBLIC_PORTS".into(), "tcp:80,tcp:443".into()),
        ],
        event.clone(),
    )
    .await?;
    println!("{}", pretty(&answer));
    println!(
        "{group} now holds: {}",
        describe_rules(&accounts.ingress_rules(&group).await)
    );

    step(
        "A stolen key probing: 60 denied calls by user mallory in a minute (ProbeContainment Quarantine)",
    );
    accounts.create_user("mallory").await;
    let mallory = format!("arn:aws:iam::{MOTO_ACCOUNT}:user/mallory");
    let caller = Caller {
        arn: &mallory,
        access_key: "AKIAMALLORY000000001",
    };
    let denials: Vec<Value> = (0..60)
        .map(|i| {
            let event = [
                "ListUsers",
                "ListRoles",
                "ListBuckets",
                "GetAccountAuthorizationDetails",
            ][i % 4];
            denial_record(
                caller,
                event,
                "us-east-1",
                &format!("2026-12-03T10:00:{i:02}Z"),
                i,
            )
        })
        .collect();
    // CloudTrail recorded them: containment acts only on what its event history holds.
    moto.record_in_cloudtrail(&denials);
    let records: Vec<Value> = denials
        .iter()
        .enumerate()
        .map(|(i, record)| {
            sqs_record(
                &format!("denial-{i}"),
                &format!("receipt-{i}"),
                &denial_message(record),
                1_700_000_000_000,
                1,
            )
        })
        .collect();
    let policy = accounts
        .create_policy(
            "Activity-Aware-IDS-Dev-ContainedSessions",
            &crate::template::contained_sessions_policy_document(),
        )
        .await;
    let answer = run_once(
        "response-containment",
        vec![
            ("PROBE_CONTAINMENT_THRESHOLD".into(), "50".into()),
            ("CONTAINED_SESSIONS_POLICY_ARN".into(), policy),
        ],
        json!({"Records": records}),
    )
    .await?;
    println!("{}", pretty(&answer));
    println!(
        "mallory's managed policies now: {:?}",
        accounts.attached_policies("mallory").await
    );
    Ok(event)
}

/// A group `web` opened to the internet on tcp/22 and tcp/443 (printed), and the EventBridge
/// event of the call that opened it, naming its rules by ID.
async fn open_web_group(accounts: &Accounts) -> (String, Value) {
    let group = accounts.create_group("web").await;
    accounts.open(&group, "tcp", 22, "0.0.0.0/0").await;
    accounts.open(&group, "tcp", 443, "0.0.0.0/0").await;
    let rules = accounts.ingress_rules(&group).await;
    println!("{group} holds: {}", describe_rules(&rules));
    let opened: Vec<(Option<&str>, &str, i64, &str)> = rules
        .iter()
        .map(|(id, port, range)| (Some(id.as_str()), "tcp", *port, range.as_str()))
        .collect();
    let event = public_ingress_event(&group, &opened);
    (group, event)
}

fn describe_rules(rules: &[(String, i64, String)]) -> String {
    let described: Vec<String> = rules
        .iter()
        .map(|(id, port, range)| format!("{id} tcp/{port} from {range}"))
        .collect();
    if described.is_empty() {
        "no ingress rules".into()
    } else {
        described.join(", ")
    }
}

fn read_event(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
