use destination_slack::layout::AccountNames;
use destination_slack::{Destination, PaceLimit, RetryPolicy};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Decrypted on the first invocation and kept for the container's life; an error there fails
    // that invocation (and is retried) instead of killing the container.
    let encrypted_webhook_url = std::env::var("SLACK_WEBHOOK_URL").unwrap_or_default();
    let pace = pace_from_env()?;
    // ACCOUNT_NAMES: `111122223333=prod,444455556666=staging`, shown as `prod (111122223333)`.
    let accounts = AccountNames::parse(&std::env::var("ACCOUNT_NAMES").unwrap_or_default())
        .map_err(|error| format!("ACCOUNT_NAMES: {error}"))?;
    let config = aws_config::load_from_env().await;
    let mut destination = Destination::new(
        aws_sdk_kms::Client::new(&config),
        encrypted_webhook_url,
        RetryPolicy::default(),
        pace,
    )
    .with_account_names(accounts)
    // SLACK_WEBHOOK_ROUTES: base64 KMS ciphertext of `account:ID=URL,channel:NAME=URL` pairs.
    .with_webhook_routes(std::env::var("SLACK_WEBHOOK_ROUTES").unwrap_or_default());
    if flag_from_env("ACCOUNT_NAMES_FROM_ORGANIZATIONS")? {
        destination = destination
            .with_organization_account_names(aws_sdk_organizations::Client::new(&config));
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        destination.handle(event)
    }))
    .await
}

/// `true` or `false`; unset is false.
fn flag_from_env(name: &str) -> Result<bool, Error> {
    match std::env::var(name).as_deref() {
        Err(_) | Ok("") | Ok("false") => Ok(false),
        Ok("true") => Ok(true),
        Ok(other) => Err(format!("{name} must be true or false, not {other:?}").into()),
    }
}

/// SLACK_POST_INTERVAL_MS (sustained: one post per interval; the stack sets it to 1 s times the
/// number of instances that may post at once) and SLACK_POST_BURST.
fn pace_from_env() -> Result<PaceLimit, Error> {
    let mut pace = PaceLimit::default();
    if let Ok(text) = std::env::var("SLACK_POST_INTERVAL_MS") {
        let ms: u64 = text.parse().map_err(|_| {
            format!("SLACK_POST_INTERVAL_MS must be a number of milliseconds, not {text:?}")
        })?;
        pace.interval = Duration::from_millis(ms);
    }
    if let Ok(text) = std::env::var("SLACK_POST_BURST") {
        pace.burst = text
            .parse()
            .ok()
            .filter(|&burst| burst >= 1)
            .ok_or_else(|| {
                format!(
                    "SLACK_POST_BURST must be a whole number of posts, at least 1, not {text:?}"
                )
            })?;
    }
    Ok(pace)
}
