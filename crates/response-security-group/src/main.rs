use activity_aware_message::MessagePublisher;
use aws_query::{QueryClient, Service};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use response_security_group::ec2::Ec2;
use response_security_group::{Config, handle};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let ec2 = Ec2::new(QueryClient::new(&aws, Service::Ec2)?);
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    // Read as JSON: a record of any shape is refused with a clear error (and kept in the
    // failure queue), not the runtime's parse error.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&config, &ec2, &publisher, event.payload)
    }))
    .await
}
