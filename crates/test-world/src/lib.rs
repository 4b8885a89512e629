//! The local world the functions run in, for integration tests and `./dev.sh local`.
//! Everything listens on 127.0.0.1 only.
//!
//! - [`MotoServer`]: a `moto_server` process (SNS, SQS, KMS), with fixtures helpers and
//!   [`SnsCapture`] (an SQS queue subscribed with raw delivery to see what a topic published).
//! - [`RuntimeApi`]: an in-process Lambda Runtime API to run a real function binary.
//! - [`LambdaProcess`]: a function binary spawned against a [`RuntimeApi`], output captured.
//! - [`RefusingEndpoint`]: moto, except for the actions a policy would deny; [`responders`]:
//!   the groups, users and roles the responders act on, and the events that name them.
//! - [`SlackSink`]: an HTTPS Slack webhook stand-in with a throwaway CA (`SSL_CERT_FILE`).
//! - [`events`]: builders for CloudWatch Logs, SNS, SQS and CloudFormation custom resource
//!   events, and the ready events of `events/`; [`payloads`]: deliveries from the CloudTrail
//!   corpus, and permission-enumeration probes.
//! - [`QueuePoller`] and [`feed_until_drained`]: Lambda's SQS event source mapping.
//! - [`lambda_service`]: the Lambda Invoke API in front of moto, running the real binaries.
//! - [`custom_resource`]: Lambda's part for a stack's custom resource on moto.
//! - [`local`]: the whole pipeline, for `./dev.sh local`.
//! - [`template`]: the functions, as the stack template lists them; [`zip`]: what a Lambda zip
//!   holds; [`block_kit`]: Slack's rules for a post; [`adaptive_cards`]: Teams'.
//!
//! Every server and process is stopped when its value is dropped.

pub mod adaptive_cards;
pub mod block_kit;
pub mod custom_resource;
pub mod destinations;
mod esm;
pub mod events;
pub mod lambda_service;
pub mod local;
mod moto;
pub mod payloads;
pub mod pipeline;
mod process;
mod refusing;
pub mod responders;
mod runtime_api;
mod serve;
mod slack;
pub mod template;
pub mod zip;

pub use esm::{Batch, Handled, QueuePoller, Settled, feed_until_drained};
pub use moto::{
    DUMMY_SECRET_ACCESS_KEY, MotoServer, Queue, REGION, SentEmail, SnsCapture, moto_python,
};
pub use process::LambdaProcess;
pub use refusing::{Refusal, RefusingEndpoint};
pub use runtime_api::{InvocationError, RuntimeApi, RuntimeApiOptions};
pub use slack::{RateLimit, RecordedRequest, SlackAnswer, SlackSink};

/// Another function's binary, built beside the running test (`target/<profile>/<name>`), for
/// tests that run more than their own package's function. `cargo test --workspace` (what
/// `./dev.sh test` runs) builds every function first.
pub fn sibling_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test-world: the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test-world: the test runs from target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.is_file(),
        "test-world: no {name} binary at {}; build the workspace first (cargo test --workspace builds it)",
        binary.display()
    );
    binary
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("test-world: no free port on 127.0.0.1")
}

/// Panics if any of `secrets` occurs in `text` (`what` names the text in the message).
/// Empty secrets are ignored.
pub fn assert_no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if let Some(at) = text.find(secret) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            panic!(
                "secret {secret:?} leaked into {what} at byte {at}:\n...{}...",
                &text[start..(at + secret.len()).min(text.len())]
            );
        }
    }
}
