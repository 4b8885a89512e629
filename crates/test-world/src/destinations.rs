//! A destination function (Teams, PagerDuty, ...) in the test world: the real binary through a
//! local Runtime API, its secret KMS-encrypted by moto for its purpose, posting to the HTTPS
//! stand-in whose throwaway CA it trusts through SSL_CERT_FILE. Every invocation error and the
//! function's output are checked for the secret.

use serde_json::Value;

use crate::{
    DUMMY_SECRET_ACCESS_KEY, InvocationError, LambdaProcess, MotoServer, RuntimeApi,
    RuntimeApiOptions, SlackSink, assert_no_secrets, events,
};

/// What a destination is given: its binary, the variable holding its secret, and the secret's
/// encryption context.
#[derive(Debug, Clone, Copy)]
pub struct DestinationBinary<'a> {
    pub binary: &'a str,
    pub secret_variable: &'a str,
    pub encryption_context: &'a [(&'a str, &'a str)],
}

pub struct DestinationWorld {
    // Dropped in this order: the function, its Runtime API, the sink, moto.
    pub process: LambdaProcess,
    pub api: RuntimeApi,
    pub sink: SlackSink,
    pub moto: MotoServer,
    /// The secret in plain text, and anything else that must never show.
    pub secrets: Vec<String>,
}

impl DestinationWorld {
    /// The function with its secret (made from the sink by `secret`) encrypted for its purpose,
    /// and the environment `env` makes from the sink besides.
    pub async fn start(
        destination: DestinationBinary<'_>,
        secret: impl FnOnce(&SlackSink) -> String,
        options: RuntimeApiOptions,
        env: impl FnOnce(&SlackSink) -> Vec<(String, String)>,
    ) -> DestinationWorld {
        let moto = MotoServer::start();
        let sink = SlackSink::start();
        let key = moto.create_kms_key().await;
        let plaintext = secret(&sink);
        let ciphertext = moto
            .kms_encrypt(&key, &plaintext, destination.encryption_context)
            .await;
        let api = RuntimeApi::start_with(options);
        let mut lambda_env = moto.lambda_env();
        lambda_env.extend(env(&sink));
        lambda_env.push((destination.secret_variable.to_owned(), ciphertext));
        lambda_env.push((
            "SSL_CERT_FILE".to_owned(),
            sink.ca_file().to_string_lossy().into_owned(),
        ));
        let process = LambdaProcess::spawn(destination.binary, &api, lambda_env);
        let secrets = vec![
            plaintext,
            sink.webhook_url(),
            sink.webhook_path(),
            sink.secret().to_owned(),
            DUMMY_SECRET_ACCESS_KEY.to_owned(),
        ];
        DestinationWorld {
            process,
            api,
            sink,
            moto,
            secrets,
        }
    }

    /// Invokes with an SQS batch of these Message texts (message IDs `message-0`, ...).
    pub async fn invoke_batch(&self, messages: &[String]) -> Result<Value, InvocationError> {
        self.invoke_event(events::sqs_event(messages)).await
    }

    /// Invokes with an SNS event of these Message texts.
    pub async fn invoke(&self, messages: &[String]) -> Result<Value, InvocationError> {
        self.invoke_event(events::sns_event(messages)).await
    }

    pub async fn invoke_event(&self, event: Value) -> Result<Value, InvocationError> {
        let answer = self.api.invoke(event).await;
        if let Err(error) = &answer {
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            assert_no_secrets("the invocation error", &error.to_string(), &secrets);
        }
        answer
    }

    /// Stops the function; checks that its output shows no secret; returns the output.
    pub fn finish(self) -> String {
        let output = self.process.stop();
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        assert_no_secrets("the function's output", &output, &secrets);
        output
    }
}

/// `NAME=value` pairs as an environment.
pub fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The IDs of the batch item failures an SQS answer reports.
pub fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .map(|failures| {
            failures
                .iter()
                .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
