use kms_encryption::Config;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env();
    let aws = aws_config::load_from_env().await;
    let kms = aws_sdk_kms::Client::new(&aws);
    let http = Config::http_client();
    // Read as JSON, not a typed request: even a request missing its fields is answered at its
    // ResponseURL, so that CloudFormation never waits on it.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        kms_encryption::handle(&kms, &http, &config, event.payload)
    }))
    .await
}
