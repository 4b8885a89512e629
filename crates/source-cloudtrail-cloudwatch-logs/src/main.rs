use activity_aware_cloudtrail::BeforePublishing;
use activity_aware_message::MessagePublisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use source_cloudtrail_cloudwatch_logs::{CloudWatchLogsEvent, Config, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    let before_publishing = BeforePublishing::from_env(&aws)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<CloudWatchLogsEvent>| {
        handle(
            &publisher,
            &config.detector,
            &before_publishing,
            event.payload,
        )
    }))
    .await
}
