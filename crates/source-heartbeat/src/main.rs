use activity_aware_message::MessagePublisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use source_heartbeat::{Config, Readers, Run, handle, now_s, ssm_client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let readers = Readers {
        sqs: aws_sdk_sqs::Client::new(&aws),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&aws),
        ssm: ssm_client(&aws)?,
        memory: activity_aware_memory::Memory::from_lookup(&aws, |name| std::env::var(name).ok())?,
        organizations: (!config.organizational_units.is_empty())
            .then(|| aws_sdk_organizations::Client::new(&aws)),
    };
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    // The hourly schedule's event starts a heartbeat; the coverage schedule's says so.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(
            &config,
            &readers,
            &publisher,
            now_s(),
            Run::of(&event.payload),
        )
    }))
    .await
}
