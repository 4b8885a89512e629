//! A stand-in for Slack's incoming webhooks (and for a pre-signed `ResponseURL`): HTTPS on
//! 127.0.0.1 with a certificate from a throwaway CA, recording every request.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

use crate::serve::{Received, Reply, Server, reply};

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `PUT`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request (headers and body) had arrived.
    pub received_at: Instant,
    /// The status the sink answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the sink took it (answered 2xx), as Slack takes a post.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "test-world: {} {} body is not JSON ({e}): {}",
                self.method,
                self.path,
                self.body_text()
            )
        })
    }
}

/// One programmed answer of the sink.
#[derive(Debug, Clone)]
pub struct SlackAnswer {
    pub status: u16,
    /// Value of a `Retry-After` header, when set.
    pub retry_after: Option<String>,
    pub body: String,
    /// Wait this long before answering (longer than the client's timeout simulates a timeout).
    pub delay: Option<Duration>,
    /// A `Location` header: with a 3xx status, a redirect.
    pub location: Option<String>,
}

impl SlackAnswer {
    /// `200 ok`, Slack's success answer.
    pub fn ok() -> SlackAnswer {
        SlackAnswer::status(200, "ok")
    }

    /// Any status with a body (Slack's are short texts: `no_service`, `invalid_token`, ...).
    pub fn status(status: u16, body: &str) -> SlackAnswer {
        SlackAnswer {
            status,
            retry_after: None,
            body: body.to_owned(),
            delay: None,
            location: None,
        }
    }

    /// `307` to `url`: a client that follows redirects sends its request there too.
    pub fn redirect(url: &str) -> SlackAnswer {
        SlackAnswer {
            location: Some(url.to_owned()),
            ..SlackAnswer::status(307, "")
        }
    }

    /// `429 rate_limited` with `Retry-After: seconds`.
    pub fn rate_limited(seconds: u64) -> SlackAnswer {
        SlackAnswer::status(429, "rate_limited").with_retry_after(seconds.to_string())
    }

    /// Adds a `Retry-After` header with this exact value.
    pub fn with_retry_after(mut self, value: impl Into<String>) -> SlackAnswer {
        self.retry_after = Some(value.into());
        self
    }

    /// Answers only after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> SlackAnswer {
        self.delay = Some(delay);
        self
    }
}

/// Slack's limit on one incoming webhook: about one post a second, short bursts allowed.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// One post per interval, sustained.
    pub interval: Duration,
    /// Posts that may come back to back after a quiet spell.
    pub burst: u32,
    /// The `Retry-After` (seconds) sent with each 429.
    pub retry_after_seconds: u64,
}

impl RateLimit {
    /// One post a second, two back to back, `Retry-After: 1`.
    pub fn slack() -> RateLimit {
        RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
            retry_after_seconds: 1,
        }
    }

    /// A Teams Workflows webhook: 4 requests a second.
    pub fn teams() -> RateLimit {
        RateLimit {
            interval: Duration::from_millis(250),
            burst: 4,
            retry_after_seconds: 1,
        }
    }

    /// PagerDuty's Events API: 120 events a minute per routing key.
    pub fn pagerduty() -> RateLimit {
        RateLimit {
            interval: Duration::from_millis(500),
            burst: 2,
            retry_after_seconds: 1,
        }
    }
}

#[derive(Default)]
struct SinkState {
    requests: Mutex<Vec<RecordedRequest>>,
    answers: Mutex<VecDeque<SlackAnswer>>,
    subscribers: Mutex<Vec<mpsc::Sender<RecordedRequest>>>,
    /// The limit, and when the next post would be due at its sustained rate.
    /// The limit, and when each webhook (path) may next be posted to at its sustained rate.
    rate: Mutex<Option<(RateLimit, HashMap<String, Instant>)>>,
}

/// The HTTPS stand-in for Slack. Every request (any method, any path) is recorded and answered
/// with the next programmed [`SlackAnswer`], then (once they are used up) `429 rate_limited`
/// when a [`RateLimit`] is set and exceeded, else `200 ok`. Refused posts do not count
/// against the limit, as with Slack.
pub struct SlackSink {
    state: Arc<SinkState>,
    server: Server,
    ca_pem: String,
    ca_dir: PathBuf,
    secret: String,
}

impl SlackSink {
    /// Generates a CA and a certificate for `127.0.0.1` and `localhost`, writes the CA PEM to a
    /// fresh temporary directory and starts serving on `127.0.0.1:<free port>`.
    pub fn start() -> SlackSink {
        let (ca_pem, chain, key) = certificates();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("test-world: rustls protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("test-world: rustls server certificate");
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        let ca_dir = std::env::temp_dir().join(format!(
            "test-world-slack-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&ca_dir)
            .unwrap_or_else(|e| panic!("test-world: creating {}: {e}", ca_dir.display()));
        std::fs::write(ca_dir.join("ca.pem"), &ca_pem).unwrap_or_else(|e| {
            panic!("test-world: writing the CA into {}: {e}", ca_dir.display())
        });

        let state = Arc::new(SinkState::default());
        let handler_state = state.clone();
        let server = Server::start("slack-sink", Some(Arc::new(config)), move |req| {
            let state = handler_state.clone();
            async move { answer(&state, req).await }
        });
        let secret: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect();
        SlackSink {
            state,
            server,
            ca_pem,
            ca_dir,
            secret: format!("XXXXsecret{secret}"),
        }
    }

    /// The CA certificate (PEM) to trust, e.g. as `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_dir.join("ca.pem")
    }

    /// An HTTPS client that trusts this stand-in's CA and follows no redirect, as the
    /// destinations' own: for their handlers called in-process, where SSL_CERT_FILE (read
    /// when a client is built) cannot differ from test to test.
    pub fn trusting_client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes())
            .expect("test-world: the stand-in's CA is PEM");
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(ca)
            .build()
            .expect("test-world: an HTTPS client")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.server.addr().port())
    }

    /// `base_url() + path` (e.g. a ResponseURL for a custom resource).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The path of the webhook: `/services/T0TESTWRLD/B0TESTWRLD/<secret>`.
    pub fn webhook_path(&self) -> String {
        format!("/services/T0TESTWRLD/B0TESTWRLD/{}", self.secret)
    }

    /// The distinctive secret last segment of the webhook path (grep for it in logs).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `https://127.0.0.1:PORT/services/T0TESTWRLD/B0TESTWRLD/XXXXsecret...`.
    pub fn webhook_url(&self) -> String {
        self.url(&self.webhook_path())
    }

    /// Answers 429 with Retry-After to posts beyond `limit`, as Slack does.
    pub fn enforce(&self, limit: RateLimit) {
        *self.state.rate.lock().unwrap() = Some((limit, HashMap::new()));
    }

    /// The requests the sink took (answered 2xx), in order.
    pub fn accepted(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::accepted)
            .collect()
    }

    /// Programs the next answers, used in order (after any not yet used), then `200 ok`.
    pub fn respond_with(&self, answers: Vec<SlackAnswer>) {
        self.state.answers.lock().unwrap().extend(answers);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// A channel receiving each request from now on, as it arrives.
    pub fn subscribe(&self) -> mpsc::Receiver<RecordedRequest> {
        let (tx, rx) = mpsc::channel();
        self.state.subscribers.lock().unwrap().push(tx);
        rx
    }
}

impl Drop for SlackSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.ca_dir);
    }
}

async fn answer(state: &SinkState, req: Received) -> Reply {
    let received_at = Instant::now();
    let programmed = state.answers.lock().unwrap().pop_front();
    let answer = programmed.unwrap_or_else(|| rate_limited(state, &req.path, received_at));
    let recorded = RecordedRequest {
        method: req.method,
        path: req.path,
        headers: req.headers,
        body: req.body.to_vec(),
        received_at,
        status: answer.status,
    };
    state.requests.lock().unwrap().push(recorded.clone());
    state
        .subscribers
        .lock()
        .unwrap()
        .retain(|tx| tx.send(recorded.clone()).is_ok());
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    let mut headers = vec![("content-type", "text/plain; charset=utf-8")];
    if let Some(retry_after) = &answer.retry_after {
        headers.push(("retry-after", retry_after.as_str()));
    }
    if let Some(location) = &answer.location {
        headers.push(("location", location.as_str()));
    }
    reply(answer.status, &headers, answer.body.clone())
}

/// `200 ok` within the rate limit (generic cell rate algorithm), else `429 rate_limited`.
/// Slack's limit is each webhook's own: posts to one path never count against another.
fn rate_limited(state: &SinkState, path: &str, now: Instant) -> SlackAnswer {
    let mut rate = state.rate.lock().unwrap();
    let Some((limit, due_by_path)) = rate.as_mut() else {
        return SlackAnswer::ok();
    };
    let due = due_by_path.entry(path.to_owned()).or_insert(now);
    let window = limit.interval * limit.burst.saturating_sub(1);
    if due
        .checked_sub(window)
        .is_some_and(|earliest| now < earliest)
    {
        return SlackAnswer::rate_limited(limit.retry_after_seconds);
    }
    *due = (*due).max(now) + limit.interval;
    SlackAnswer::ok()
}

fn certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut ca_params = CertificateParams::new(Vec::new()).expect("test-world: CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test-world throwaway CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("test-world: CA key");
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .expect("test-world: CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("test-world: leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("test-world: leaf key");
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("test-world: leaf certificate");

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (
        ca_cert.pem(),
        vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key,
    )
}
