use activity_aware_message::MessagePublisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use response_security_group::{Config, Ec2Access, handle};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    // EC2 is reached per event: in the event's region, and in a member account as its role.
    let access = Ec2Access::new(aws);
    // Read as JSON: a record of any shape is refused with a clear error (and kept in the
    // failure queue), not the runtime's parse error.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&config, &access, &publisher, event.payload)
    }))
    .await
}
