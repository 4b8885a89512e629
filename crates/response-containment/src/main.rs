use activity_aware_message::MessagePublisher;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_query::{QueryClient, Service};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use response_containment::history::CloudTrailHistory;
use response_containment::iam::Iam;
use response_containment::{Config, handle};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let iam = Iam::new(QueryClient::new(&aws, Service::Iam)?);
    let history = CloudTrailHistory::new(aws.clone());
    let publisher = MessagePublisher::new(aws_sdk_sns::Client::new(&aws), config.topic_arn.clone());
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handle(&config, &iam, &history, &publisher, event.payload)
    }))
    .await
}
