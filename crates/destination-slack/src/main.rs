// The delivery future (batches, endpoints, retries) nests deeper than the default 128 levels.
#![recursion_limit = "256"]

use activity_aware_delivery::DestinationEvent;
use destination_slack::{Config, Destination};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let organizations = config
        .organization_names
        .then(|| aws_sdk_organizations::Client::new(&aws));
    let operations = config.operations;
    let kms = aws_sdk_kms::Client::new(&aws);
    let mut destination = Destination::from_config(
        config,
        kms.clone(),
        organizations,
        activity_aware_delivery::http_client(),
    )
    .with_heartbeats(destination_slack::HeartbeatVerifier::from_env(kms));
    if operations {
        destination = destination.as_operations_relay(source_eventbridge::Detector::from_env()?);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<DestinationEvent>| {
        destination.handle(event)
    }))
    .await
}
