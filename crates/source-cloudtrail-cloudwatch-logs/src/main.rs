use activity_aware_message::MessagePublisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use source_cloudtrail_cloudwatch_logs::{CloudWatchLogsEvent, Detector, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let topic_arn = std::env::var("SNS_TOPIC")
        .map_err(|_| "SNS_TOPIC must be set to the ARN of the topic to publish to")?;
    let detector = Detector::from_env()?;
    let config = aws_config::load_from_env().await;
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&config), topic_arn);
    lambda_runtime::run(service_fn(|event: LambdaEvent<CloudWatchLogsEvent>| {
        handle(&publisher, &detector, event.payload)
    }))
    .await
}
