//! The local world the functions run in, for integration tests and `./dev.sh local`.
//! Everything listens on 127.0.0.1 only.
//!
//! - [`MotoServer`]: a `moto_server` process (SNS, SQS, KMS), with fixtures helpers and
//!   [`SnsCapture`] (an SQS queue subscribed with raw delivery to see what a topic published).
//! - [`RuntimeApi`]: an in-process Lambda Runtime API to run a real function binary.
//! - [`LambdaProcess`]: a function binary spawned against a [`RuntimeApi`], output captured.
//! - [`SlackSink`]: an HTTPS Slack webhook stand-in with a throwaway CA (`SSL_CERT_FILE`).
//! - [`events`]: builders for CloudWatch Logs, SNS and CloudFormation custom resource events.
//!
//! Every server and process is stopped when its value is dropped.

pub mod events;
mod moto;
pub mod payloads;
mod process;
mod runtime_api;
mod serve;
mod slack;

pub use moto::{DUMMY_SECRET_ACCESS_KEY, MotoServer, REGION, SnsCapture};
pub use process::LambdaProcess;
pub use runtime_api::{InvocationError, RuntimeApi, RuntimeApiOptions};
pub use slack::{RecordedRequest, SlackAnswer, SlackSink};

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
