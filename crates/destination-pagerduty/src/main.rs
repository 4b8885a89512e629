// The delivery future (batches, endpoints, retries) nests deeper than the default 128 levels.
#![recursion_limit = "256"]

use activity_aware_delivery::DestinationEvent;
use destination_pagerduty::{Config, Destination};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let destination = Destination::new(
        config,
        aws_sdk_kms::Client::new(&aws),
        activity_aware_delivery::http_client(),
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<DestinationEvent>| {
        destination.handle(event)
    }))
    .await
}
