//! Checks the seam the Slack destination depends on: a reqwest 0.13 client built with the
//! workspace's features (`rustls`: platform verifier, native roots on Linux) trusts the
//! SlackSink's throwaway CA when SSL_CERT_FILE names it, and refuses the sink without it.
//!
//! SSL_CERT_FILE is read at client build time from the process environment, so each check runs
//! in a child process (this same binary, `harness = false`) with its own environment.

use std::process::Command;
use std::time::Duration;

use test_world::{SlackAnswer, SlackSink};

const PROBE_URL: &str = "TEST_WORLD_TLS_PROBE_URL";

fn main() {
    if let Ok(url) = std::env::var(PROBE_URL) {
        probe(&url);
        return;
    }
    let sink = SlackSink::start();
    sink.respond_with(vec![SlackAnswer::status(200, "probe-ok")]);
    let url = sink.webhook_url();

    let trusted = run_probe(&url, Some(&sink.ca_file()));
    assert!(
        trusted.status.success(),
        "reqwest did not trust the sink's CA given as SSL_CERT_FILE:\n{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&trusted.stdout).trim(),
        "200 probe-ok"
    );
    let requests = sink.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, sink.webhook_path());
    assert_eq!(requests[0].body_json()["text"], "probe");

    let untrusted = run_probe(&url, None);
    assert!(
        !untrusted.status.success(),
        "reqwest accepted the sink's certificate without SSL_CERT_FILE: {}",
        String::from_utf8_lossy(&untrusted.stdout)
    );
    let error = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        error.contains("certificate") || error.contains("Unknown") || error.contains("issuer"),
        "expected a certificate error, got: {error}"
    );
    assert_eq!(
        sink.requests().len(),
        1,
        "the refused client reached the handler"
    );
    println!("tls_trust: 2 passed, 0 failed");
}

fn run_probe(url: &str, ca_file: Option<&std::path::Path>) -> std::process::Output {
    let mut command = Command::new(std::env::current_exe().expect("current_exe"));
    command
        .env_clear()
        .env(PROBE_URL, url)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(ca_file) = ca_file {
        command.env("SSL_CERT_FILE", ca_file);
    }
    command.output().expect("running the probe child")
}

/// The child: one POST with the same client features as destination-slack.
fn probe(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("building the reqwest client");
        match client
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"text":"probe"}"#)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                println!("{status} {body}");
            }
            Err(e) => {
                let mut message = format!("{e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message.push_str(&format!(": {s}"));
                    source = s.source();
                }
                eprintln!("{message}");
                std::process::exit(1);
            }
        }
    });
}
