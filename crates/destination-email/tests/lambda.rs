//! The real `destination-email` binary, run through a local Lambda Runtime API, sending
//! through moto's SES v2 (which sends only from verified identities, as SES does); the emails
//! it took are read back from moto and parsed as a mail client parses them. Throttling and
//! outages come from a stand-in in front of moto that answers as SES does.

use std::time::Duration;

use destination_email::{Config, Destination, parse_recipients};
use mail_parser::{Message as Mail, MessageParser, MimeHeaders};
use serde_json::{Value, json};
use test_world::destinations::failed_ids;
use test_world::{
    InvocationError, LambdaProcess, MotoServer, Refusal, RefusingEndpoint, RuntimeApi,
    RuntimeApiOptions, SentEmail, events,
};

const FROM: &str = "ids@example.com";
const TO: &str = "oncall@example.com,security@example.com";
/// Where SES v2 takes SendEmail.
const SEND_EMAIL_PATH: &str = "/v2/email/outbound-emails";

struct EmailWorld {
    // Dropped in this order: the function, its Runtime API, the stand-in, moto.
    process: LambdaProcess,
    api: RuntimeApi,
    ses: Option<RefusingEndpoint>,
    moto: MotoServer,
}

struct Setup<'a> {
    options: RuntimeApiOptions,
    env: &'a [(&'a str, &'a str)],
    /// What SES answers first, before it takes emails.
    refusals: Option<Vec<Refusal>>,
    verified: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            options: RuntimeApiOptions::default(),
            env: &[("EMAIL_SEND_INTERVAL_MS", "200")],
            refusals: None,
            verified: true,
        }
    }
}

impl EmailWorld {
    async fn start(setup: Setup<'_>) -> EmailWorld {
        let moto = MotoServer::start();
        if setup.verified {
            moto.verify_email_identity(FROM).await;
        }
        let ses = setup.refusals.map(|refusals| {
            RefusingEndpoint::start_rest(&moto.endpoint_url(), SEND_EMAIL_PATH, refusals)
        });
        let api = RuntimeApi::start_with(setup.options);
        let mut env = moto.lambda_env();
        if let Some(ses) = &ses {
            env.push(("AWS_ENDPOINT_URL_SESV2".to_owned(), ses.endpoint_url()));
        }
        env.extend([
            ("EMAIL_FROM".to_owned(), FROM.to_owned()),
            ("EMAIL_TO".to_owned(), TO.to_owned()),
        ]);
        env.extend(
            setup
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let process = LambdaProcess::spawn(env!("CARGO_BIN_EXE_destination-email"), &api, env);
        EmailWorld {
            process,
            api,
            ses,
            moto,
        }
    }

    async fn invoke_batch(&self, messages: &[String]) -> Result<Value, InvocationError> {
        self.api.invoke(events::sqs_event(messages)).await
    }

    async fn emails(&self) -> Vec<SentEmail> {
        self.moto.sent_emails().await
    }
}

fn message(event: &str, severity: Option<&str>, principal: &str) -> String {
    let mut tags = vec![
        json!({"key": "digest-group", "value": format!("arn:aws:iam::111122223333:user/{principal}")}),
    ];
    if let Some(severity) = severity {
        tags.push(json!({"key": "severity", "value": severity}));
    }
    json!({
        "subject": format!("Event: {event}"),
        "fields": [
            {"key": "Error Message", "value": format!("User: arn:aws:iam::111122223333:user/{principal} is not authorized to perform: iam:{event} <b>&</b>")},
            {"key": "Event", "value": event},
            {"key": "Source", "value": "iam.amazonaws.com"},
            {"key": "Error Code", "value": "AccessDenied"},
            {"key": "Recipient Account ID", "value": "111122223333"},
            {"key": "Username", "value": principal},
            {"key": "Request Parameters", "value": {"maxItems": 100}},
            {"key": "CloudTrail Console", "value": "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1"},
        ],
        "metadata": {"sourceName": "Cloudtrail"},
        "tags": tags,
    })
    .to_string()
}

fn parse(email: &SentEmail) -> Mail<'_> {
    MessageParser::default()
        .parse(email.raw.as_bytes())
        .unwrap_or_else(|| panic!("not a MIME message: {}", email.raw))
}

/// The text and HTML parts of an email, which must be its only two.
fn parts(mail: &Mail<'_>) -> (String, String) {
    let content_type = mail.content_type().expect("a Content-Type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(mail.text_body_count(), 1);
    assert_eq!(mail.html_body_count(), 1);
    assert_eq!(mail.attachment_count(), 0);
    (
        mail.body_text(0).expect("a text part").into_owned(),
        mail.body_html(0).expect("an HTML part").into_owned(),
    )
}

/// How many Messages an email stands for: its `Count`, or one.
fn count_of(text: &str) -> usize {
    text.lines()
        .find_map(|line| line.strip_prefix("Count: "))
        .map_or(1, |count| count.trim().parse().expect("a count"))
}

#[tokio::test]
async fn one_email_a_post_text_and_html_with_the_same_content() {
    let world = EmailWorld::start(Setup::default()).await;
    let mut batch: Vec<String> = Vec::new();
    for principal in ["mallory", "trudy", "eve", "oscar"] {
        batch.extend((0..10).map(|i| message(&format!("List{i}"), Some("medium"), principal)));
    }
    batch.push(message("StopLogging", Some("critical"), "mallory"));
    batch.push(message("GetCallerIdentity", Some("low"), "alice"));
    // Another publisher's Message without a severity counts as medium.
    batch.push(message("PutObject", None, "bob"));
    let answer = world.invoke_batch(&batch).await.expect("sent");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());

    let emails = world.emails().await;
    assert_eq!(
        emails.len(),
        6,
        "four digests, the critical and the untagged alone, the low one not at all"
    );
    let mut counted = 0;
    for email in &emails {
        assert_eq!(email.source, FROM);
        // (moto adds the To header's recipients to the request's: each is there twice)
        let mut destinations = email.destinations.clone();
        destinations.sort();
        destinations.dedup();
        assert_eq!(destinations, ["oncall@example.com", "security@example.com"]);
        let mail = parse(email);
        let from = mail.from().and_then(|from| from.first()).expect("a From");
        assert_eq!(from.address(), Some(FROM));
        assert_eq!(from.name(), Some("Activity Aware IDS"));
        assert_eq!(mail.to().map(|to| to.iter().count()), Some(2));
        assert_eq!(
            mail.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        let (text, html) = parts(&mail);
        let subject = mail.subject().expect("a subject");
        // The headline heads both bodies; the subject is it, with the count of a digest.
        let headline = text.lines().next().unwrap();
        assert!(subject.starts_with(headline), "{subject:?} / {headline:?}");
        assert!(html.contains("<h2 style=\"color: #"));
        for fact in ["Account: 111122223333", "Error Code: AccessDenied"] {
            assert!(text.contains(fact), "{fact} in {text}");
            let (label, value) = fact.split_once(": ").unwrap();
            assert!(
                html.contains(&format!(
                    ">{label}</th><td style=\"padding: 2px 0;\">{value}</td>"
                )),
                "{fact} in {html}"
            );
        }
        // Attacker text is text: escaped in HTML, and the console link is the one link.
        assert!(
            text.contains("iam:List")
                || text.contains("iam:StopLogging")
                || text.contains("iam:PutObject")
        );
        assert!(html.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{html}");
        assert_eq!(html.matches("<a href=").count(), 1, "{html}");
        assert!(text.contains(
            "Open in CloudTrail Console: https://us-east-1.console.aws.amazon.com/cloudtrailv2/home#/events/1"
        ));
        counted += count_of(&text);
    }
    assert_eq!(
        counted, 42,
        "every Message at or above medium, counted once"
    );
    let first = parse(&emails[0]);
    assert_eq!(
        first.subject(),
        Some("[Critical] mallory was denied iam:StopLogging"),
        "the most severe goes first"
    );
    let digests: Vec<String> = emails
        .iter()
        .filter_map(|email| parse(email).subject().map(str::to_owned))
        .filter(|subject| subject.ends_with("(×10)"))
        .collect();
    assert_eq!(digests.len(), 4, "{digests:?}");
    let output = world.process.stop();
    assert!(output.contains("delivered"), "{output}");
}

#[tokio::test]
async fn emails_go_at_the_pace_set_and_a_throttle_is_waited() {
    let world = EmailWorld::start(Setup {
        env: &[("EMAIL_SEND_INTERVAL_MS", "1000")],
        refusals: Some(vec![Refusal::new(429, "TooManyRequestsException")]),
        ..Setup::default()
    })
    .await;
    let batch: Vec<String> = ["mallory", "trudy", "eve"]
        .iter()
        .map(|principal| message("ListUsers", Some("high"), principal))
        .collect();
    let answer = world.invoke_batch(&batch).await.expect("sent");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    let ses = world.ses.as_ref().unwrap();
    assert_eq!(ses.refused(), 1);
    let passed = ses.passed();
    assert_eq!(passed.len(), 3);
    assert_eq!(world.emails().await.len(), 3);
    // One a second; the throttled try held the first back a second more.
    let span = passed[2].duration_since(passed[0]);
    assert!(span >= Duration::from_millis(1_800), "3 emails in {span:?}");
    world.process.stop();
}

#[tokio::test]
async fn ses_down_brings_the_batch_back_and_it_is_sent_later() {
    // Long enough that the retries give up before it, and that moto, however loaded, takes both
    // emails once SES is back (a send starts only with 4 s of the function's time left).
    let options = RuntimeApiOptions {
        deadline: Duration::from_secs(10),
        ..RuntimeApiOptions::default()
    };
    let world = EmailWorld::start(Setup {
        options,
        refusals: Some(vec![Refusal::new(503, "ServiceUnavailable"); 100]),
        ..Setup::default()
    })
    .await;
    let batch = [
        message("StopLogging", Some("critical"), "mallory"),
        message("DeleteTrail", Some("critical"), "trudy"),
    ];
    match world.invoke_batch(&batch).await {
        Ok(answer) => assert_eq!(failed_ids(&answer), ["message-0", "message-1"]),
        Err(error) => {
            assert_eq!(error.error_type, "NotDelivered", "{error}");
            assert!(error.to_string().contains("ServiceUnavailable"), "{error}");
        }
    }
    assert!(world.emails().await.is_empty());
    world.ses.as_ref().unwrap().stop_refusing();
    let answer = world.invoke_batch(&batch).await.expect("sent");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(world.emails().await.len(), 2);
    world.process.stop();
}

#[tokio::test]
async fn a_sender_ses_has_not_verified_fails_loud() {
    let world = EmailWorld::start(Setup {
        verified: false,
        ..Setup::default()
    })
    .await;
    let error = world
        .invoke_batch(&[
            message("StopLogging", Some("critical"), "mallory"),
            message("ListUsers", Some("high"), "trudy"),
        ])
        .await
        .expect_err("nothing can be sent");
    assert_eq!(error.error_type, "NotDelivered");
    assert!(
        error
            .error_message
            .starts_with("2 of 2 messages were not delivered to SES: "),
        "{error}"
    );
    assert!(error.to_string().contains("MessageRejected"), "{error}");
    assert!(world.emails().await.is_empty());
    world.process.stop();
}

#[tokio::test]
async fn the_handler_in_process_emails_what_meets_the_minimum() {
    let moto = MotoServer::start();
    moto.verify_email_identity("example.com").await;
    let config = Config {
        from: destination_email::Address::parse("alerts@example.com").unwrap(),
        to: parse_recipients("oncall@example.com").unwrap(),
        pace: destination_email::DEFAULT_PACE,
        accounts: activity_aware_delivery::AccountNames::parse("111122223333=prod").unwrap(),
        minimum_severity: activity_aware_message::Severity::High,
    };
    let ses = aws_sdk_sesv2::Client::new(&moto.sdk_config().await);
    let destination = Destination::new(config, ses);
    let event = events::sqs_event(&[
        message("StopLogging", Some("critical"), "mallory"),
        message("ListUsers", Some("medium"), "trudy"),
    ]);
    let answer = destination
        .handle(lambda_runtime::LambdaEvent::new(
            event.into(),
            lambda_runtime::Context::default(),
        ))
        .await
        .expect("sent");
    assert_eq!(
        serde_json::to_value(answer).unwrap(),
        json!({"batchItemFailures": []})
    );
    let emails = moto.sent_emails().await;
    assert_eq!(emails.len(), 1, "the medium one is below the minimum");
    let mail = parse(&emails[0]);
    let (text, _) = parts(&mail);
    assert!(text.contains("Account: prod (111122223333)"), "{text}");
    // An event that is neither SQS nor SNS is refused as such.
    let error = destination
        .handle(lambda_runtime::LambdaEvent::new(
            json!({"Records": [{"eventSource": "aws:s3"}]}).into(),
            lambda_runtime::Context::default(),
        ))
        .await
        .expect_err("not an SQS or SNS event");
    assert!(error.to_string().contains("aws:s3"), "{error}");
}
