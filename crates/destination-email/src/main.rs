// The delivery future (batches, retries, SES) nests deeper than the default 128 levels.
#![recursion_limit = "256"]

use activity_aware_delivery::DestinationEvent;
use aws_sdk_sesv2::config::retry::RetryConfig;
use destination_email::{Config, Destination};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    // The delivery core retries, at SES's pace and within the function's time; the SDK does not.
    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&aws)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let destination = Destination::new(config, ses);
    lambda_runtime::run(service_fn(|event: LambdaEvent<DestinationEvent>| {
        destination.handle(event)
    }))
    .await
}
