//! An in-process AWS Lambda Runtime API (the interface a `provided.al2023` bootstrap talks to).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

use crate::process::ProcessShared;
use crate::serve::{Received, Reply, Server, reply};

const PREFIX: &str = "/2018-06-01/runtime";

/// The error a function reported for an invocation (`/invocation/{id}/error`) or while
/// initialising (`/init/error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationError {
    /// `errorType` of the error body.
    pub error_type: String,
    /// `errorMessage` of the error body (the raw body when it was not the usual JSON).
    pub error_message: String,
    /// True when the function reported it through `/runtime/init/error`.
    pub during_init: bool,
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = if self.during_init {
            "init error"
        } else {
            "error"
        };
        write!(f, "{phase} {}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for InvocationError {}

/// Settings of a [`RuntimeApi`].
#[derive(Debug, Clone)]
pub struct RuntimeApiOptions {
    /// `AWS_LAMBDA_FUNCTION_NAME` given to spawned processes, and the name in the function ARN.
    pub function_name: String,
    /// The function timeout: `Lambda-Runtime-Deadline-Ms` = hand-out time + this.
    pub deadline: Duration,
    /// How long [`RuntimeApi::invoke`] waits for an answer before panicking.
    pub invoke_timeout: Duration,
}

impl Default for RuntimeApiOptions {
    fn default() -> Self {
        RuntimeApiOptions {
            function_name: "test-world-function".to_owned(),
            deadline: Duration::from_secs(30),
            invoke_timeout: Duration::from_secs(60),
        }
    }
}

enum Outcome {
    Response(Bytes),
    Error(InvocationError),
}

struct Queued {
    id: String,
    event: Bytes,
}

struct State {
    options: RuntimeApiOptions,
    function_arn: String,
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    waiters: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: OnceLock<Instant>,
    polls: AtomicUsize,
    handed_out: AtomicUsize,
    init_error: Mutex<Option<InvocationError>>,
    processes: Mutex<Vec<Weak<ProcessShared>>>,
    next_id: AtomicUsize,
}

/// A Lambda Runtime API on `127.0.0.1:<free port>`, served from its own thread until dropped.
///
/// Implements `GET /2018-06-01/runtime/invocation/next` (long poll), `POST
/// .../invocation/{id}/response`, `POST .../invocation/{id}/error` and `POST .../init/error`.
pub struct RuntimeApi {
    state: Arc<State>,
    server: Server,
}

impl RuntimeApi {
    /// Starts with [`RuntimeApiOptions::default`] (30 s deadline, 60 s invoke timeout).
    pub fn start() -> RuntimeApi {
        Self::start_with(RuntimeApiOptions::default())
    }

    /// Starts with the given options.
    pub fn start_with(options: RuntimeApiOptions) -> RuntimeApi {
        let function_arn = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            options.function_name
        );
        let state = Arc::new(State {
            options,
            function_arn,
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            polls: AtomicUsize::new(0),
            handed_out: AtomicUsize::new(0),
            init_error: Mutex::new(None),
            processes: Mutex::new(Vec::new()),
            next_id: AtomicUsize::new(1),
        });
        let handler_state = state.clone();
        let server = Server::start("runtime-api", None, move |req| {
            let state = handler_state.clone();
            async move { route(&state, req).await }
        });
        RuntimeApi { state, server }
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.addr().to_string()
    }

    /// The options it was started with.
    pub fn options(&self) -> &RuntimeApiOptions {
        &self.state.options
    }

    /// When a function first polled `/invocation/next` (for cold-start measurements).
    pub fn first_poll(&self) -> Option<Instant> {
        self.state.first_poll.get().copied()
    }

    /// Waits (bounded) until a function polls `/invocation/next`; panics after `timeout`.
    pub async fn wait_first_poll(&self, timeout: Duration) -> Instant {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(at) = self.first_poll() {
                return at;
            }
            self.panic_if_processes_exited("before polling /invocation/next");
            if Instant::now() >= give_up {
                panic!("test-world: no function polled /invocation/next within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// How many invocations were handed out to a function through `/invocation/next`.
    pub fn invocations(&self) -> usize {
        self.state.handed_out.load(Ordering::SeqCst)
    }

    /// How many times `/invocation/next` was called.
    pub fn polls(&self) -> usize {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// The error a function posted to `/init/error`, if any.
    pub fn init_error(&self) -> Option<InvocationError> {
        self.state.init_error.lock().unwrap().clone()
    }

    pub(crate) fn register_process(&self, process: &Arc<ProcessShared>) {
        self.state
            .processes
            .lock()
            .unwrap()
            .push(Arc::downgrade(process));
    }

    /// Queues `event` for the next `/invocation/next` poll and waits for the function's answer:
    /// `Ok(response JSON)` or `Err` with the posted error.
    ///
    /// Panics (with the function's captured output) when every process spawned on this API has
    /// exited before answering, when no answer comes within `invoke_timeout`, or when the
    /// response is not JSON.
    pub async fn invoke(&self, event: Value) -> Result<Value, InvocationError> {
        self.invoke_text(serde_json::to_string(&event).expect("test-world: serialising the event"))
            .await
    }

    /// [`Self::invoke`] with the event as JSON text, which may hold what a `Value` cannot (a
    /// lone surrogate escape, nesting past serde_json's limit), as Lambda would deliver it.
    pub async fn invoke_text(&self, event: String) -> Result<Value, InvocationError> {
        let id = format!(
            "00000000-test-world-{:04}",
            self.state.next_id.fetch_add(1, Ordering::SeqCst)
        );
        let (tx, mut rx) = oneshot::channel();
        self.state.waiters.lock().unwrap().insert(id.clone(), tx);
        if let Some(err) = self.init_error() {
            self.state.waiters.lock().unwrap().remove(&id);
            return Err(err);
        }
        self.state.queue.lock().unwrap().push_back(Queued {
            id: id.clone(),
            event: Bytes::from(event),
        });
        self.state.queued.notify_one();

        let timeout = self.state.options.invoke_timeout;
        let give_up = Instant::now() + timeout;
        let outcome = loop {
            match tokio::time::timeout(Duration::from_millis(100), &mut rx).await {
                Ok(Ok(outcome)) => break outcome,
                Ok(Err(_)) => panic!("test-world: the Runtime API dropped invocation {id}"),
                Err(_elapsed) => {}
            }
            if let Ok(outcome) = rx.try_recv() {
                break outcome;
            }
            self.panic_if_processes_exited(&format!("before answering invocation {id}"));
            if Instant::now() >= give_up {
                panic!(
                    "test-world: no answer to invocation {id} within {timeout:?} \
                     (polls of /invocation/next so far: {}){}",
                    self.polls(),
                    self.process_outputs()
                );
            }
        };
        match outcome {
            Outcome::Response(body) => Ok(serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "test-world: the response to {id} is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            })),
            Outcome::Error(err) => Err(err),
        }
    }

    fn live_processes(&self) -> Vec<Arc<ProcessShared>> {
        self.state
            .processes
            .lock()
            .unwrap()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    fn panic_if_processes_exited(&self, when: &str) {
        let processes = self.live_processes();
        if processes.is_empty() {
            return;
        }
        let statuses: Vec<_> = processes.iter().map(|p| p.exit_status()).collect();
        if statuses.iter().all(Option::is_some) {
            panic!(
                "test-world: the function process exited ({}) {when}{}",
                statuses
                    .iter()
                    .flatten()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.process_outputs()
            );
        }
    }

    fn process_outputs(&self) -> String {
        self.live_processes()
            .iter()
            .map(|p| format!("\n--- output of {} ---\n{}", p.name(), p.output()))
            .collect()
    }
}

async fn route(state: &State, req: Received) -> Reply {
    let Some(rest) = req.path.strip_prefix(PREFIX) else {
        return reply(404, &[], "not a Runtime API path");
    };
    let rest = rest.split('?').next().unwrap_or_default();
    match (req.method.as_str(), rest) {
        ("GET", "/invocation/next") => next_invocation(state).await,
        ("POST", "/init/error") => {
            let err = parse_error(&req, true);
            *state.init_error.lock().unwrap() = Some(err.clone());
            for (_, waiter) in state.waiters.lock().unwrap().drain() {
                let _ = waiter.send(Outcome::Error(err.clone()));
            }
            accepted()
        }
        ("POST", path) => {
            let Some(path) = path.strip_prefix("/invocation/") else {
                return reply(404, &[], "unknown Runtime API path");
            };
            let (id, outcome) = if let Some(id) = path.strip_suffix("/response") {
                (id, Outcome::Response(req.body.clone()))
            } else if let Some(id) = path.strip_suffix("/error") {
                (id, Outcome::Error(parse_error(&req, false)))
            } else {
                return reply(404, &[], "unknown Runtime API path");
            };
            let waiter = state.waiters.lock().unwrap().remove(id);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(outcome);
                    accepted()
                }
                None => reply(
                    400,
                    &[("content-type", "application/json")],
                    r#"{"errorMessage":"unknown or already answered request id","errorType":"InvalidRequestID"}"#,
                ),
            }
        }
        _ => reply(405, &[], "method not allowed"),
    }
}

async fn next_invocation(state: &State) -> Reply {
    state.first_poll.get_or_init(Instant::now);
    state.polls.fetch_add(1, Ordering::SeqCst);
    let queued = loop {
        if let Some(queued) = state.queue.lock().unwrap().pop_front() {
            break queued;
        }
        state.queued.notified().await;
    };
    state.handed_out.fetch_add(1, Ordering::SeqCst);
    let deadline = SystemTime::now() + state.options.deadline;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis()
        .to_string();
    let trace = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
    reply(
        200,
        &[
            ("content-type", "application/json"),
            ("lambda-runtime-aws-request-id", &queued.id),
            ("lambda-runtime-deadline-ms", &deadline_ms),
            ("lambda-runtime-invoked-function-arn", &state.function_arn),
            ("lambda-runtime-trace-id", trace),
        ],
        queued.event,
    )
}

fn accepted() -> Reply {
    reply(
        202,
        &[("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
}

fn parse_error(req: &Received, during_init: bool) -> InvocationError {
    let header_type = req
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("lambda-runtime-function-error-type"))
        .map(|(_, value)| value.clone());
    let raw = String::from_utf8_lossy(&req.body).into_owned();
    let parsed: Option<Value> = serde_json::from_slice(&req.body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    InvocationError {
        error_type: field("errorType")
            .or(header_type)
            .unwrap_or_else(|| "Unknown".to_owned()),
        error_message: field("errorMessage").unwrap_or(raw),
        during_init,
    }
}
