//! Posting to one HTTPS endpoint (a Slack or Teams webhook, PagerDuty's Events API) at the
//! pace it takes, with retries that fit inside the function's time: 2xx is success; 429 waits
//! for Retry-After (every later post too); 5xx, 408 and network failures are retried with
//! backoff; anything else is refused and not retried. Errors name the status, never the URL.

use crate::pace::{PaceLimit, Pacer};
use crate::secret::SecretUrl;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How hard to try before giving up on one post.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries per post, counting the first.
    pub max_attempts: u32,
    /// Wait after the first 5xx or network failure; doubled after each later one.
    pub first_backoff: Duration,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
    /// A post is only started with at least this long left before the deadline margin: one
    /// cut short after the endpoint took it would be reported failed and posted again.
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

/// Why one post did not get through. `service` names the endpoint's kind: `Slack`.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(
        "{service} refused the message with {status}{}; not retried",
        reason_text(reason)
    )]
    Rejected {
        service: &'static str,
        status: StatusCode,
        reason: String,
    },
    /// The service takes nothing from this sender now (an account suspended, a sender not
    /// verified): every later message would be refused the same way.
    #[error("{service} refuses every message now: {reason}; not retried")]
    Refusing {
        service: &'static str,
        reason: String,
    },
    #[error("{service} did not take the message after {attempts} tries; last answer: {last}")]
    GaveUp {
        service: &'static str,
        attempts: u32,
        last: String,
    },
    #[error(
        "out of time before {service} took the message; {}",
        last_answer(service, last)
    )]
    OutOfTime { service: &'static str, last: String },
}

impl PostError {
    /// Whether every later post to this endpoint would be refused the same way: a revoked or
    /// disabled endpoint (401, 403, 404, 410), not a refusal of this one body (400, 413).
    pub fn refuses_every_post(&self) -> bool {
        match self {
            PostError::Rejected { status, .. } => {
                *status != StatusCode::BAD_REQUEST && *status != StatusCode::PAYLOAD_TOO_LARGE
            }
            PostError::Refusing { .. } => true,
            PostError::GaveUp { .. } | PostError::OutOfTime { .. } => false,
        }
    }

    /// Whether the endpoint refused this body (not a failure of the endpoint or of time).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            PostError::Rejected { .. } | PostError::Refusing { .. }
        )
    }

    /// The status the endpoint refused the body with.
    pub fn rejected_status(&self) -> Option<StatusCode> {
        match self {
            PostError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn last_answer(service: &str, last: &str) -> String {
    if last.is_empty() {
        format!("nothing was sent: posting now would exceed {service}'s rate limit")
    } else {
        format!("last answer: {last}")
    }
}

fn reason_text(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// What to do about one answer.
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
        // 400 invalid_payload, 403 invalid_token, 404 no_service, 410 channel_is_archived,
        // 413 too large...: retrying cannot help.
        Next::GiveUp
    }
}

/// A client that never follows redirects (the body must only ever go to the endpoint).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("activity-aware-ids/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// What became of one try, as the retry loop reads it.
#[derive(Debug)]
pub enum Attempt {
    Done,
    /// Worth trying again: after `after` when the service said when (every later post waits
    /// too, the limit being the service's), otherwise after the backoff. `last` says what the
    /// service answered, for errors and logs.
    Again {
        after: Option<Duration>,
        last: String,
    },
    /// Refused: trying again cannot help.
    Refused(PostError),
}

/// Deliveries to one service, at its pace and within the function's time, retried while the
/// service says "later": the part every destination shares, whatever it speaks (HTTPS, SES).
#[derive(Debug)]
pub struct PacedSender {
    service: &'static str,
    policy: RetryPolicy,
    pacer: Pacer,
}

impl PacedSender {
    pub fn new(service: &'static str, policy: RetryPolicy, pace: PaceLimit) -> Self {
        PacedSender {
            service,
            policy,
            pacer: Pacer::new(pace),
        }
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// How many deliveries can still start before `deadline` at this pace, each with the time
    /// one needs.
    pub fn posts_before(&self, deadline: Instant) -> usize {
        self.last_start(deadline)
            .map_or(0, |last_start| self.pacer.slots_before(last_start))
    }

    /// The last moment a delivery may start and still have the time one needs before
    /// `deadline`.
    fn last_start(&self, deadline: Instant) -> Option<Instant> {
        deadline.checked_sub(self.policy.deadline_margin + self.policy.min_request_time)
    }

    /// Makes tries with `attempt` (given the longest it may take) at the pace, retrying what may
    /// succeed later with backoff or the service's Retry-After, until `deadline`.
    pub async fn send<F, Fut>(&self, deadline: Instant, mut attempt: F) -> Result<(), PostError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Attempt>,
    {
        let service = self.service;
        let last_start = self.last_start(deadline).unwrap_or_else(Instant::now);
        let mut backoff = self.policy.first_backoff;
        let mut last = String::new();
        for try_number in 1..=self.policy.max_attempts {
            if !self.pacer.wait_turn(last_start).await {
                return Err(PostError::OutOfTime { service, last });
            }
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| left.checked_sub(self.policy.deadline_margin))
                .unwrap_or_default();
            let wait = match attempt(self.policy.request_timeout.min(remaining)).await {
                Attempt::Done => return Ok(()),
                Attempt::Refused(error) => return Err(error),
                Attempt::Again { after, last: said } => {
                    last = said;
                    if let Some(after) = after {
                        self.pacer.hold_for(after);
                    }
                    after.unwrap_or(backoff)
                }
            };
            tracing::warn!(attempt = try_number, service, last = %last, wait_ms = wait.as_millis() as u64, "the endpoint did not take the message; retrying");
            if try_number == self.policy.max_attempts {
                break;
            }
            if Instant::now() + wait > last_start {
                return Err(PostError::OutOfTime { service, last });
            }
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
        Err(PostError::GaveUp {
            service,
            attempts: self.policy.max_attempts,
            last,
        })
    }
}

/// One HTTPS endpoint, paced for the life of the container.
#[derive(Debug)]
pub struct Endpoint {
    http: reqwest::Client,
    url: SecretUrl,
    sender: PacedSender,
    /// A secret the body carries (a routing key): an answer that repeats it never carries it
    /// into an error or a log.
    hidden: Option<String>,
}

impl Endpoint {
    pub fn new(
        service: &'static str,
        http: reqwest::Client,
        url: SecretUrl,
        policy: RetryPolicy,
        pace: PaceLimit,
    ) -> Self {
        Endpoint {
            http,
            url,
            sender: PacedSender::new(service, policy, pace),
            hidden: None,
        }
    }

    /// Posts bodies that carry `secret`, which no answer may carry further.
    pub fn hiding(mut self, secret: impl Into<String>) -> Self {
        self.hidden = Some(secret.into()).filter(|secret: &String| !secret.is_empty());
        self
    }

    /// `text` with the hidden secret replaced.
    fn hide(&self, text: String) -> String {
        match &self.hidden {
            Some(secret) if text.contains(secret.as_str()) => {
                text.replace(secret.as_str(), "<redacted>")
            }
            _ => text,
        }
    }

    pub fn service(&self) -> &'static str {
        self.sender.service()
    }

    pub fn url(&self) -> &SecretUrl {
        &self.url
    }

    /// How many posts can still start before `deadline` at this endpoint's pace, each with the
    /// time a post needs.
    pub fn posts_before(&self, deadline: Instant) -> usize {
        self.sender.posts_before(deadline)
    }

    /// POSTs `body` as JSON at the endpoint's pace, retrying what may succeed later, until
    /// `deadline`.
    pub async fn post(&self, body: &serde_json::Value, deadline: Instant) -> Result<(), PostError> {
        let payload = serde_json::to_vec(body).expect("a JSON value always serialises");
        self.post_bytes(payload, deadline).await
    }

    /// POSTs a JSON document already serialised (to measure it against a size limit first).
    pub async fn post_bytes(&self, payload: Vec<u8>, deadline: Instant) -> Result<(), PostError> {
        let payload = bytes::Bytes::from(payload);
        self.sender
            .send(deadline, |timeout| self.post_once(payload.clone(), timeout))
            .await
    }

    async fn post_once(&self, payload: bytes::Bytes, timeout: Duration) -> Attempt {
        let service = self.service();
        let answer = self
            .http
            .post(self.url.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(payload)
            .send()
            .await;
        match answer {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let reason = self.hide(answer_text(response.text().await.unwrap_or_default()));
                match next_step(status, retry_after) {
                    Next::Done => Attempt::Done,
                    Next::GiveUp => Attempt::Refused(PostError::Rejected {
                        service,
                        status,
                        reason,
                    }),
                    Next::Retry { after } => Attempt::Again {
                        after,
                        last: format!("{status}{}", reason_text(&reason)),
                    },
                }
            }
            // reqwest errors carry the URL; it is a secret.
            Err(error) => Attempt::Again {
                after: None,
                last: self.hide(error_chain(&error.without_url())),
            },
        }
    }
}

/// An endpoint's answer to an error (Slack's `no_service`, PagerDuty's `{"status":"invalid
/// event",…}`): short and printable, so it cannot forge a log line.
fn answer_text(body: String) -> String {
    let text: String = body.chars().filter(|c| !c.is_control()).take(160).collect();
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
    fn answers_are_classified() {
        assert_eq!(next_step(StatusCode::OK, None), Next::Done);
        assert_eq!(next_step(StatusCode::ACCEPTED, None), Next::Done);
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
        for permanent in [400, 401, 403, 404, 410, 413] {
            assert_eq!(
                next_step(StatusCode::from_u16(permanent).unwrap(), None),
                Next::GiveUp
            );
        }
    }

    #[test]
    fn a_secret_the_body_carries_never_comes_back_in_an_answer() {
        let url = SecretUrl::parse("https://events.example/v2/enqueue").unwrap();
        let endpoint = Endpoint::new(
            "PagerDuty",
            http_client(),
            url,
            RetryPolicy::default(),
            PaceLimit::default(),
        )
        .hiding("SECRETKEY");
        let shown = endpoint.hide("invalid routing_key SECRETKEY".into());
        assert_eq!(shown, "invalid routing_key <redacted>");
        assert_eq!(endpoint.hide("no secret here".into()), "no secret here");
    }

    #[test]
    fn errors_name_the_service_the_status_and_its_reason() {
        let error = PostError::Rejected {
            service: "Slack",
            status: StatusCode::NOT_FOUND,
            reason: "no_service".into(),
        };
        assert_eq!(
            error.to_string(),
            "Slack refused the message with 404 Not Found (no_service); not retried"
        );
        assert!(error.refuses_every_post());
        let too_large = PostError::Rejected {
            service: "Teams",
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: String::new(),
        };
        assert!(!too_large.refuses_every_post());
        assert_eq!(
            PostError::OutOfTime {
                service: "PagerDuty",
                last: String::new()
            }
            .to_string(),
            "out of time before PagerDuty took the message; nothing was sent: posting now would exceed PagerDuty's rate limit"
        );
        assert_eq!(answer_text("invalid_token\n\u{7}".into()), "invalid_token");
    }
}
