//! An AWS endpoint that refuses some actions: it passes every request on to moto except those
//! whose Query-protocol `Action` is listed, which it answers as AWS answers a call that a
//! policy (an SCP, a permissions boundary) denies. For the responders' failure paths: moto
//! itself allows everything.

use crate::serve::{Received, Reply, Server, reply};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A refusing endpoint in front of moto; stops when dropped.
pub struct RefusingEndpoint {
    server: Server,
    refused: Arc<AtomicUsize>,
    /// When each request the endpoint watches was passed on.
    passed: Arc<Mutex<Vec<Instant>>>,
    /// The refusals still to answer with (`start_rest`).
    pending: Arc<Mutex<VecDeque<Refusal>>>,
}

/// An error a REST-JSON service (SES v2) answers with.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    /// The error's code: `TooManyRequestsException`.
    pub code: String,
}

impl Refusal {
    pub fn new(status: u16, code: &str) -> Refusal {
        Refusal {
            status,
            code: code.to_owned(),
        }
    }
}

impl RefusingEndpoint {
    /// Forwards to `upstream` (moto's endpoint URL) everything but `refused_actions`, which get
    /// a 403 with the error `code` in the XML shape of EC2 (`Response/Errors/Error`) and IAM
    /// (`ErrorResponse/Error`) alike, or, for the JSON protocol (SSM, KMS, CloudTrail), a 400
    /// with the code as its `__type`.
    pub fn start(upstream: &str, refused_actions: &[&str], code: &str) -> RefusingEndpoint {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let actions: Vec<String> = refused_actions.iter().map(|a| (*a).to_owned()).collect();
        let code = code.to_owned();
        let refused = Arc::new(AtomicUsize::new(0));
        let count = refused.clone();
        let http = reqwest::Client::new();
        let server = Server::start("refusing-endpoint", None, move |request: Received| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            // The Query protocol names the action in the form, the JSON protocol in a header.
            let target = request
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
                .and_then(|(_, value)| value.rsplit('.').next())
                .map(str::to_owned);
            let action = target.clone().unwrap_or_else(|| {
                body.split('&')
                    .find_map(|pair| pair.strip_prefix("Action="))
                    .unwrap_or_default()
                    .to_owned()
            });
            let refuse = actions.contains(&action);
            let json = target.is_some();
            let upstream = upstream.clone();
            let code = code.clone();
            let http = http.clone();
            let count = count.clone();
            async move {
                if refuse && json {
                    count.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "{{\"__type\": \"{code}\", \"message\": \"refused by the test world\"}}"
                    );
                    return reply(
                        400,
                        &[("content-type", "application/x-amz-json-1.1")],
                        answer,
                    );
                }
                if refuse {
                    count.fetch_add(1, Ordering::SeqCst);
                    let xml = format!(
                        "<ErrorResponse><Response><Errors><Error><Code>{code}</Code><Message>refused by the test world</Message></Error></Errors></Response></ErrorResponse>"
                    );
                    return reply(403, &[("content-type", "text/xml")], xml);
                }
                forward(&http, &upstream, request).await
            }
        });
        RefusingEndpoint {
            server,
            refused,
            passed: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// Forwards to `upstream` everything, except that the requests to paths starting with
    /// `path` are answered with `refusals`, one each in order, before the next are passed on:
    /// in the shape of a REST-JSON service (the error's code in `x-amzn-ErrorType` and the
    /// body), as SES v2 answers when it throttles, is down or refuses.
    pub fn start_rest(upstream: &str, path: &str, refusals: Vec<Refusal>) -> RefusingEndpoint {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let path = path.to_owned();
        let pending = Arc::new(Mutex::new(VecDeque::from(refusals)));
        let refusals = pending.clone();
        let refused = Arc::new(AtomicUsize::new(0));
        let passed: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let (count, times) = (refused.clone(), passed.clone());
        let http = reqwest::Client::new();
        let server = Server::start("refusing-endpoint", None, move |request: Received| {
            let watched = request.path.starts_with(&path);
            let refusal = watched
                .then(|| refusals.lock().expect("not poisoned").pop_front())
                .flatten();
            let (upstream, http, count, times) =
                (upstream.clone(), http.clone(), count.clone(), times.clone());
            async move {
                if let Some(Refusal { status, code }) = refusal {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = format!(
                        "{{\"__type\":\"{code}\",\"message\":\"refused by the test world\"}}"
                    );
                    return reply(
                        status,
                        &[
                            ("content-type", "application/json"),
                            ("x-amzn-errortype", &code),
                        ],
                        body,
                    );
                }
                if watched {
                    times.lock().expect("not poisoned").push(Instant::now());
                }
                forward(&http, &upstream, request).await
            }
        });
        RefusingEndpoint {
            server,
            refused,
            passed,
            pending,
        }
    }

    /// The service is back: the refusals not yet answered with are dropped.
    pub fn stop_refusing(&self) {
        self.pending.lock().expect("not poisoned").clear();
    }

    /// When each watched request was passed on, in order (`start_rest`).
    pub fn passed(&self) -> Vec<Instant> {
        self.passed.lock().expect("not poisoned").clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// How many requests it refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn forward(http: &reqwest::Client, upstream: &str, request: Received) -> Reply {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut outgoing = http.request(method, format!("{upstream}{}", request.path));
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.body(request.body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("text/xml")
                .to_owned();
            let body = response.bytes().await.unwrap_or_default();
            reply(status, &[("content-type", &content_type)], body)
        }
        Err(error) => reply(
            502,
            &[],
            format!("test-world: moto did not answer: {error}"),
        ),
    }
}
