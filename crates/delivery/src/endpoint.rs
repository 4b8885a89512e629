//! Posting to one HTTPS endpoint (a Slack or Teams webhook, PagerDuty's Events API) at the
//! pace it takes, with retries that fit inside the function's time: 2xx is success; 429 waits
//! for Retry-After (every later post too); 5xx, 408 and network failures are retried with
//! backoff; anything else is refused and not retried. Errors name the status, never the URL.

use crate::pace::{PaceLimit, Pacer};
use crate::secret::SecretUrl;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
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
        matches!(self, PostError::Rejected { status, .. }
            if *status != StatusCode::BAD_REQUEST && *status != StatusCode::PAYLOAD_TOO_LARGE)
    }

    /// Whether the endpoint refused this body (not a failure of the endpoint or of time).
    pub fn is_rejected(&self) -> bool {
        matches!(self, PostError::Rejected { .. })
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

/// One endpoint, paced for the life of the container.
#[derive(Debug)]
pub struct Endpoint {
    service: &'static str,
    http: reqwest::Client,
    url: SecretUrl,
    policy: RetryPolicy,
    pacer: Pacer,
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
            service,
            http,
            url,
            policy,
            pacer: Pacer::new(pace),
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
        self.service
    }

    pub fn url(&self) -> &SecretUrl {
        &self.url
    }

    /// How many posts can still start before `deadline` at this endpoint's pace, each with the
    /// time a post needs.
    pub fn posts_before(&self, deadline: Instant) -> usize {
        match deadline.checked_sub(self.policy.deadline_margin + self.policy.min_request_time) {
            Some(last_start) => self.pacer.slots_before(last_start),
            None => 0,
        }
    }

    /// POSTs `body` as JSON at the endpoint's pace, retrying what may succeed later, until
    /// `deadline`.
    pub async fn post(&self, body: &serde_json::Value, deadline: Instant) -> Result<(), PostError> {
        let payload = serde_json::to_vec(body).expect("a JSON value always serialises");
        self.post_bytes(payload, deadline).await
    }

    /// POSTs a JSON document already serialised (to measure it against a size limit first).
    pub async fn post_bytes(&self, payload: Vec<u8>, deadline: Instant) -> Result<(), PostError> {
        let service = self.service;
        let last_start = deadline
            .checked_sub(self.policy.deadline_margin + self.policy.min_request_time)
            .unwrap_or_else(Instant::now);
        let mut backoff = self.policy.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.policy.max_attempts {
            if !self.pacer.wait_turn(last_start).await {
                return Err(PostError::OutOfTime { service, last });
            }
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| left.checked_sub(self.policy.deadline_margin))
                .unwrap_or_default();
            let answer = self
                .http
                .post(self.url.url().clone())
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
                    let reason = self.hide(answer_text(response.text().await.unwrap_or_default()));
                    match next_step(status, retry_after) {
                        Next::Done => return Ok(()),
                        Next::GiveUp => {
                            return Err(PostError::Rejected {
                                service,
                                status,
                                reason,
                            });
                        }
                        Next::Retry { after } => {
                            last = format!("{status}{}", reason_text(&reason));
                            if let Some(after) = after {
                                // Every later post waits too: the limit is the endpoint's.
                                self.pacer.hold_for(after);
                            }
                            after.unwrap_or(backoff)
                        }
                    }
                }
                Err(error) => {
                    // reqwest errors carry the URL; it is a secret.
                    last = self.hide(error_chain(&error.without_url()));
                    backoff
                }
            };
            tracing::warn!(attempt, service, last = %last, wait_ms = wait.as_millis() as u64, "the endpoint did not take the message; retrying");
            if attempt == self.policy.max_attempts {
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
