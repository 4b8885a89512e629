use aws_lambda_events::event::sns::SnsEvent;
use destination_slack::{Destination, RetryPolicy};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Decrypted on the first invocation and kept for the container's life; an error there fails
    // that invocation (and is retried) instead of killing the container.
    let encrypted_webhook_url = std::env::var("SLACK_WEBHOOK_URL").unwrap_or_default();
    let config = aws_config::load_from_env().await;
    let destination = Destination::new(
        aws_sdk_kms::Client::new(&config),
        encrypted_webhook_url,
        RetryPolicy::default(),
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<SnsEvent>| {
        destination.handle(event)
    }))
    .await
}
