//! The Slack incoming webhook: its URL, a secret that must never be shown, and posting to it with
//! retries that fit inside the function's time.

use crate::pace::{PaceLimit, Pacer};
use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// The decrypted webhook URL. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct WebhookUrl(reqwest::Url);

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

impl WebhookUrl {
    /// Accepts only an absolute `https://` URL with a host.
    pub fn parse(plaintext: &str) -> Result<Self, UrlError> {
        let url = reqwest::Url::parse(plaintext.trim()).map_err(|_| UrlError::NotAUrl)?;
        if url.scheme() != "https" {
            return Err(UrlError::NotHttps);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NotAUrl);
        }
        Ok(WebhookUrl(url))
    }

    /// Whether two webhooks are the same one (and so share Slack's rate limit).
    pub fn same_as(&self, other: &WebhookUrl) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What is wrong with a webhook URL; never the URL itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL")]
    NotAUrl,
    #[error(
        "must start with https:// (Slack webhooks are https; anything else would send alerts in clear text)"
    )]
    NotHttps,
}

/// The secrets the function is given as KMS ciphertext, each encrypted for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// SLACK_WEBHOOK_URL: the stack's webhook.
    WebhookUrl,
    /// SLACK_WEBHOOK_ROUTES: webhooks of their own for some accounts and channels.
    WebhookRoutes,
}

impl Secret {
    pub fn variable(self) -> &'static str {
        match self {
            Secret::WebhookUrl => "SLACK_WEBHOOK_URL",
            Secret::WebhookRoutes => "SLACK_WEBHOOK_ROUTES",
        }
    }

    /// The encryption context it is encrypted with (by the stack's custom resource), and which
    /// the function's role requires to decrypt it: the ciphertext is good for nothing else.
    pub fn encryption_context(self) -> [(&'static str, &'static str); 1] {
        match self {
            Secret::WebhookUrl => WEBHOOK_ENCRYPTION_CONTEXT,
            Secret::WebhookRoutes => WEBHOOK_ROUTES_ENCRYPTION_CONTEXT,
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.variable())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "SLACK_WEBHOOK_URL is not set; it must hold the base64 KMS ciphertext of the webhook URL"
    )]
    Missing,
    #[error("{0} is not base64; it must hold base64 KMS ciphertext")]
    NotBase64(Secret),
    #[error("KMS could not decrypt {0}: {1}")]
    Decrypt(Secret, String),
    #[error("the decrypted {0} is not text")]
    NotText(Secret),
    #[error("the decrypted SLACK_WEBHOOK_URL {0}")]
    BadUrl(UrlError),
    #[error("SLACK_WEBHOOK_ROUTES, route {position}: {problem}")]
    BadRoute { position: usize, problem: String },
}

/// The encryption context of the stack's webhook URL.
pub const WEBHOOK_ENCRYPTION_CONTEXT: [(&str, &str); 1] =
    [("purpose", "activity-aware-ids/slack-webhook-url")];

/// The encryption context of the routes to webhooks of their own.
pub const WEBHOOK_ROUTES_ENCRYPTION_CONTEXT: [(&str, &str); 1] =
    [("purpose", "activity-aware-ids/slack-webhook-routes")];

/// Decrypts a secret held, KMS-encrypted and base64-encoded, in its variable.
pub async fn decrypt_secret(
    kms: &aws_sdk_kms::Client,
    secret: Secret,
    ciphertext_base64: &str,
) -> Result<String, ConfigError> {
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(ciphertext_base64.trim())
        .map_err(|_| ConfigError::NotBase64(secret))?;
    let output = kms
        .decrypt()
        .set_encryption_context(Some(
            secret
                .encryption_context()
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        ))
        .ciphertext_blob(ciphertext.into())
        .send()
        .await
        .map_err(|error| ConfigError::Decrypt(secret, aws_errors::summary(&error)))?;
    let plaintext = output.plaintext().ok_or(ConfigError::NotText(secret))?;
    let text = std::str::from_utf8(plaintext.as_ref()).map_err(|_| ConfigError::NotText(secret))?;
    Ok(text.to_owned())
}

/// Decrypts the webhook URL held, KMS-encrypted and base64-encoded, in SLACK_WEBHOOK_URL.
pub async fn decrypt_webhook_url(
    kms: &aws_sdk_kms::Client,
    ciphertext_base64: &str,
) -> Result<WebhookUrl, ConfigError> {
    if ciphertext_base64.trim().is_empty() {
        return Err(ConfigError::Missing);
    }
    let text = decrypt_secret(kms, Secret::WebhookUrl, ciphertext_base64).await?;
    WebhookUrl::parse(&text).map_err(ConfigError::BadUrl)
}

/// How hard to try before giving up on one post.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per post, counting the first.
    pub max_attempts: u32,
    /// Wait after the first 5xx or network failure; doubled after each later one.
    pub first_backoff: Duration,
    /// Longest wait for one answer from Slack.
    pub request_timeout: Duration,
    /// A post is only started with at least this long left before the deadline margin: one
    /// cut short after Slack took it would be reported failed and posted again.
    pub min_request_time: Duration,
    /// Time kept back before the function's deadline to report failure cleanly.
    pub deadline_margin: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(8),
            min_request_time: Duration::from_secs(3),
            deadline_margin: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error(
        "Slack refused the message with {status}{}; not retried",
        slack_reason(reason)
    )]
    Rejected { status: StatusCode, reason: String },
    #[error("Slack did not take the message after {attempts} tries; last answer: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("out of time before Slack took the message; {}", last_answer(last))]
    OutOfTime { last: String },
}

impl SlackError {
    /// Whether every later post to this webhook would be refused the same way: a revoked or
    /// disabled webhook (403, 404, 410), not a refusal of this one body (400).
    pub fn refuses_every_post(&self) -> bool {
        matches!(self, SlackError::Rejected { status, .. } if *status != StatusCode::BAD_REQUEST)
    }
}

fn last_answer(last: &str) -> String {
    if last.is_empty() {
        "nothing was sent: posting now would exceed Slack's rate limit".to_owned()
    } else {
        format!("last answer: {last}")
    }
}

fn slack_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// What to do about one answer from Slack.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Done,
    Retry { after: Option<Duration> },
    GiveUp,
}

fn next_step(status: StatusCode, retry_after: Option<Duration>) -> Next {
    if status.is_success() {
        Next::Done
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Next::Retry {
            after: retry_after.or(Some(Duration::from_secs(1))),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Next::Retry { after: None }
    } else {
        // 400 invalid_payload, 403 invalid_token, 404 no_service, 410 channel_is_archived...:
        // retrying cannot help.
        Next::GiveUp
    }
}

/// One incoming webhook, paced for the life of the container.
#[derive(Debug)]
pub struct SlackWebhook {
    http: reqwest::Client,
    url: WebhookUrl,
    policy: RetryPolicy,
    pacer: Pacer,
}

impl SlackWebhook {
    pub fn new(
        http: reqwest::Client,
        url: WebhookUrl,
        policy: RetryPolicy,
        pace: PaceLimit,
    ) -> Self {
        SlackWebhook {
            http,
            url,
            policy,
            pacer: Pacer::new(pace),
        }
    }

    /// A client that never follows redirects (the body must only ever go to the webhook).
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("activity-aware-ids/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initialises")
    }

    /// How many posts can still start before `deadline` at this webhook's pace, each with the
    /// time a post needs.
    pub fn posts_before(&self, deadline: Instant) -> usize {
        match deadline.checked_sub(self.policy.deadline_margin + self.policy.min_request_time) {
            Some(last_start) => self.pacer.slots_before(last_start),
            None => 0,
        }
    }

    /// POSTs `body` as JSON at the pace Slack takes, retrying what may succeed later, until
    /// `deadline`.
    pub async fn post(
        &self,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<(), SlackError> {
        let payload = serde_json::to_vec(body).expect("a JSON value always serialises");
        let last_start = deadline
            .checked_sub(self.policy.deadline_margin + self.policy.min_request_time)
            .unwrap_or_else(Instant::now);
        let mut backoff = self.policy.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.policy.max_attempts {
            if !self.pacer.wait_turn(last_start).await {
                return Err(SlackError::OutOfTime { last });
            }
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| left.checked_sub(self.policy.deadline_margin))
                .unwrap_or_default();
            let answer = self
                .http
                .post(self.url.0.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(self.policy.request_timeout.min(remaining))
                .body(payload.clone())
                .send()
                .await;
            let wait = match answer {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let reason = slack_error_text(response.text().await.unwrap_or_default());
                    match next_step(status, retry_after) {
                        Next::Done => return Ok(()),
                        Next::GiveUp => return Err(SlackError::Rejected { status, reason }),
                        Next::Retry { after } => {
                            last = format!("{status}{}", slack_reason(&reason));
                            if let Some(after) = after {
                                // Every later post waits too: the limit is the webhook's.
                                self.pacer.hold_for(after);
                            }
                            after.unwrap_or(backoff)
                        }
                    }
                }
                Err(error) => {
                    // reqwest errors carry the URL; it is a secret.
                    last = error_chain(&error.without_url());
                    backoff
                }
            };
            tracing::warn!(attempt, last = %last, wait_ms = wait.as_millis() as u64, "Slack did not take the message; retrying");
            if attempt == self.policy.max_attempts {
                break;
            }
            if Instant::now() + wait > last_start {
                return Err(SlackError::OutOfTime { last });
            }
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
        Err(SlackError::GaveUp {
            attempts: self.policy.max_attempts,
            last,
        })
    }
}

/// Slack answers errors with a short code such as `no_service`; keep it short and printable.
fn slack_error_text(body: String) -> String {
    let text: String = body.chars().filter(|c| !c.is_control()).take(120).collect();
    text.trim().to_owned()
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_are_accepted() {
        assert!(WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret").is_ok());
        assert!(WebhookUrl::parse("  https://hooks.slack.com/services/T0/B0/secret\n").is_ok());
        assert!(matches!(
            WebhookUrl::parse("http://hooks.slack.com/services/T0/B0/secret"),
            Err(UrlError::NotHttps)
        ));
        assert!(matches!(
            WebhookUrl::parse("hooks.slack.com/x"),
            Err(UrlError::NotAUrl)
        ));
        assert!(matches!(
            WebhookUrl::parse("\u{1}garbage"),
            Err(UrlError::NotAUrl)
        ));
    }

    #[test]
    fn the_url_never_shows_in_debug_or_errors() {
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/s3cr3t").unwrap();
        assert_eq!(format!("{url:?}"), "WebhookUrl(<redacted>)");
        for error in [
            ConfigError::BadUrl(UrlError::NotHttps),
            ConfigError::BadUrl(UrlError::NotAUrl),
            ConfigError::NotBase64(Secret::WebhookUrl),
        ] {
            assert!(!error.to_string().contains("s3cr3t"));
        }
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(next_step(StatusCode::OK, None), Next::Done);
        assert_eq!(next_step(StatusCode::NO_CONTENT, None), Next::Done);
        assert_eq!(
            next_step(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(3))),
            Next::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            next_step(StatusCode::TOO_MANY_REQUESTS, None),
            Next::Retry {
                after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(
            next_step(StatusCode::INTERNAL_SERVER_ERROR, None),
            Next::Retry { after: None }
        );
        assert_eq!(
            next_step(StatusCode::SERVICE_UNAVAILABLE, None),
            Next::Retry { after: None }
        );
        for permanent in [400, 403, 404, 410] {
            assert_eq!(
                next_step(StatusCode::from_u16(permanent).unwrap(), None),
                Next::GiveUp
            );
        }
    }

    #[test]
    fn errors_name_the_status_and_slacks_reason() {
        let error = SlackError::Rejected {
            status: StatusCode::NOT_FOUND,
            reason: "no_service".into(),
        };
        assert_eq!(
            error.to_string(),
            "Slack refused the message with 404 Not Found (no_service); not retried"
        );
        assert_eq!(
            slack_error_text("invalid_token\n\u{7}".into()),
            "invalid_token"
        );
    }
}
