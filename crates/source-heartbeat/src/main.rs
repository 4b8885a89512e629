use activity_aware_message::MessagePublisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use source_heartbeat::{Config, Readers, handle, now_s, ssm_client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let readers = Readers {
        sqs: aws_sdk_sqs::Client::new(&aws),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&aws),
        ssm: ssm_client(&aws)?,
    };
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    // The schedule's event says nothing the heartbeat needs: any event starts one.
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde::de::IgnoredAny>| {
        handle(&config, &readers, &publisher, now_s())
    }))
    .await
}
