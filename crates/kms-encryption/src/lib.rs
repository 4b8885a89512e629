//! A CloudFormation custom resource that encrypts a value with a KMS key.
//!
//! Properties `KeyId`, `PlainText` and, optionally, `EncryptionContext` (a map of strings that
//! decrypting will need); attribute `CipherText` (base64). Create and Update encrypt, Delete has
//! nothing to undo. Every request, even a malformed one, is answered at its
//! pre-signed `ResponseURL`, so a stack never waits an hour for an answer that will not come.

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use base64::Engine;
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// CloudFormation shows at most this much of a failure reason.
const MAX_REASON_CHARS: usize = 1_000;
const PUT_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptProperties {
    key_id: String,
    plain_text: String,
    #[serde(default)]
    encryption_context: Option<HashMap<String, String>>,
}

/// What was answered, returned as the function's result (without the data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Answered {
    pub status: String,
    pub physical_resource_id: String,
}

/// Where answers may go: CloudFormation's pre-signed S3 URLs (https, an `amazonaws.com` host),
/// or, for a local test world, the prefixes `ALLOWED_RESPONSE_URL_PREFIXES` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    response_url_prefixes: Vec<String>,
}

impl Config {
    pub fn from_env() -> Config {
        Config::with_response_url_prefixes(
            &std::env::var("ALLOWED_RESPONSE_URL_PREFIXES").unwrap_or_default(),
        )
    }

    /// Answers go only to URLs starting with one of these (comma-separated); none: AWS's.
    pub fn with_response_url_prefixes(prefixes: &str) -> Config {
        Config {
            response_url_prefixes: prefixes
                .split(',')
                .map(str::trim)
                .filter(|prefix| !prefix.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether an answer may be sent to `url`: nothing else ever receives the ciphertext.
    pub fn allows_response_url(&self, url: &str) -> bool {
        if !self.response_url_prefixes.is_empty() {
            return self
                .response_url_prefixes
                .iter()
                .any(|prefix| url.starts_with(prefix.as_str()));
        }
        let Ok(url) = reqwest::Url::parse(url) else {
            return false;
        };
        let host = url.host_str().unwrap_or_default();
        url.scheme() == "https"
            && url.username().is_empty()
            && url.password().is_none()
            && url.port().is_none_or(|port| port == 443)
            && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
    }

    /// A client that follows no redirect: the answer goes to the URL given, or nowhere.
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend initialises")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CustomResourceError {
    #[error("the request has no ResponseURL, so it cannot be answered")]
    NoResponseUrl,
    #[error(
        "the ResponseURL is not CloudFormation's (an https URL of an amazonaws.com host), so nothing was answered"
    )]
    ResponseUrlRefused,
    #[error("could not deliver the answer to the ResponseURL after {PUT_ATTEMPTS} tries: {0}")]
    AnswerNotDelivered(String),
}

impl From<CustomResourceError> for Diagnostic {
    fn from(error: CustomResourceError) -> Self {
        Diagnostic {
            error_type: "CustomResourceNotAnswered".into(),
            error_message: error.to_string(),
        }
    }
}

/// The outcome of a request, before it is sent.
#[derive(Debug)]
struct Outcome {
    physical_resource_id: String,
    result: Result<Option<String>, String>,
}

pub async fn handle(
    kms: &aws_sdk_kms::Client,
    http: &reqwest::Client,
    config: &Config,
    request: Value,
) -> Result<Answered, CustomResourceError> {
    let response_url = request
        .get("ResponseURL")
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
        .ok_or(CustomResourceError::NoResponseUrl)?
        .to_owned();
    if !config.allows_response_url(&response_url) {
        return Err(CustomResourceError::ResponseUrlRefused);
    }
    let text = |key: &str| {
        request
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (stack_id, request_id, logical_resource_id) = (
        text("StackId"),
        text("RequestId"),
        text("LogicalResourceId"),
    );
    let request_type = text("RequestType");

    let outcome = match serde_json::from_value::<CloudFormationCustomResourceRequest>(request) {
        Ok(CloudFormationCustomResourceRequest::Create(create)) => Outcome {
            physical_resource_id: format!("{}-{}", create.logical_resource_id, create.request_id),
            result: encrypt(kms, create.resource_properties).await.map(Some),
        },
        Ok(CloudFormationCustomResourceRequest::Update(update)) => Outcome {
            physical_resource_id: update.physical_resource_id,
            result: encrypt(kms, update.resource_properties).await.map(Some),
        },
        Ok(CloudFormationCustomResourceRequest::Delete(delete)) => Outcome {
            physical_resource_id: delete.physical_resource_id,
            result: Ok(None),
        },
        Ok(_) | Err(_) => Outcome {
            physical_resource_id: fallback_physical_id(&logical_resource_id, &request_id),
            result: Err(format!(
                "not a CloudFormation custom resource request this resource understands (RequestType {request_type:?})"
            )),
        },
    };

    let mut response = CloudFormationCustomResourceResponse::default();
    response.physical_resource_id = outcome.physical_resource_id;
    response.stack_id = stack_id;
    response.request_id = request_id;
    response.logical_resource_id = logical_resource_id.clone();
    response.no_echo = true;
    let status = match outcome.result {
        Ok(cipher_text) => {
            response.status = CloudFormationCustomResourceResponseStatus::Success;
            if let Some(cipher_text) = cipher_text {
                response.data.insert("CipherText".into(), cipher_text);
            }
            "SUCCESS"
        }
        Err(reason) => {
            response.status = CloudFormationCustomResourceResponseStatus::Failed;
            response.reason = Some(reason.chars().take(MAX_REASON_CHARS).collect());
            "FAILED"
        }
    };
    tracing::info!(%request_type, %logical_resource_id, status, reason = response.reason.as_deref().unwrap_or(""), "answering");
    put_answer(http, &response_url, &response).await?;
    Ok(Answered {
        status: status.into(),
        physical_resource_id: response.physical_resource_id,
    })
}

/// A failed Create has no resource yet, but CloudFormation still needs an ID in the answer.
fn fallback_physical_id(logical_resource_id: &str, request_id: &str) -> String {
    match (logical_resource_id, request_id) {
        ("", "") => "kms-encryption".into(),
        (logical, request) => format!("{logical}-{request}"),
    }
}

async fn encrypt(kms: &aws_sdk_kms::Client, properties: Value) -> Result<String, String> {
    let properties: EncryptProperties = serde_json::from_value(properties).map_err(|_| {
        "the properties KeyId and PlainText are both required, as strings, and EncryptionContext, when given, must map strings to strings".to_owned()
    })?;
    let output = kms
        .encrypt()
        .key_id(&properties.key_id)
        .set_encryption_context(properties.encryption_context)
        .plaintext(properties.plain_text.into_bytes().into())
        .send()
        .await
        .map_err(|error| {
            format!(
                "KMS could not encrypt with key {}: {}",
                properties.key_id,
                aws_errors::summary(&error)
            )
        })?;
    let blob = output
        .ciphertext_blob()
        .ok_or_else(|| "KMS returned no ciphertext".to_owned())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
}

/// PUTs the answer to the pre-signed S3 URL. The signature covers no content type, so none is sent.
async fn put_answer(
    http: &reqwest::Client,
    response_url: &str,
    response: &CloudFormationCustomResourceResponse,
) -> Result<(), CustomResourceError> {
    let body = serde_json::to_vec(response).expect("the answer always serialises");
    let mut last = String::new();
    let mut backoff = Duration::from_millis(250);
    for attempt in 1..=PUT_ATTEMPTS {
        let sent = http
            .put(response_url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .timeout(Duration::from_secs(10))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) => last = format!("answered {}", answer.status()),
            // The pre-signed URL carries credentials: keep it out of errors.
            Err(error) => last = error.without_url().to_string(),
        }
        tracing::warn!(attempt, %last, "the answer did not go through");
        if attempt < PUT_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(CustomResourceError::AnswerNotDelivered(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_has_the_custom_resource_protocol_shape() {
        let mut response = CloudFormationCustomResourceResponse::default();
        response.status = CloudFormationCustomResourceResponseStatus::Success;
        response.physical_resource_id = "p".into();
        response.stack_id = "s".into();
        response.request_id = "r".into();
        response.logical_resource_id = "l".into();
        response.no_echo = true;
        response.data.insert("CipherText".into(), "Y2lwaGVy".into());
        let json: Value = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Status": "SUCCESS", "Reason": null, "PhysicalResourceId": "p", "StackId": "s",
                "RequestId": "r", "LogicalResourceId": "l", "NoEcho": true, "Data": {"CipherText": "Y2lwaGVy"}
            })
        );
    }

    #[test]
    fn answers_go_to_cloudformations_urls_only() {
        let aws = Config::default();
        for url in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3A...?X-Amz-Signature=x",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/a",
        ] {
            assert!(aws.allows_response_url(url), "{url}");
        }
        for url in [
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a",
            "https://attacker.example/a",
            "https://s3.amazonaws.com.attacker.example/a",
            "https://user:pass@bucket.s3.amazonaws.com/a",
            "https://bucket.s3.amazonaws.com:8443/a",
            "https://127.0.0.1/a",
            "not a url",
        ] {
            assert!(!aws.allows_response_url(url), "{url}");
        }
        let local =
            Config::with_response_url_prefixes("https://127.0.0.1:4443/, http://127.0.0.1:5000/");
        assert!(local.allows_response_url("http://127.0.0.1:5000/cfn"));
        assert!(!local.allows_response_url("https://bucket.s3.amazonaws.com/a"));
    }

    #[test]
    fn failed_creates_still_get_a_physical_id() {
        assert_eq!(
            fallback_physical_id("Encrypted", "req-1"),
            "Encrypted-req-1"
        );
        assert_eq!(fallback_physical_id("", ""), "kms-encryption");
    }

    #[test]
    fn properties_must_name_a_key_and_a_plain_text() {
        let parsed: Result<EncryptProperties, _> = serde_json::from_value(
            serde_json::json!({"ServiceToken": "arn", "KeyId": "k", "PlainText": "p"}),
        );
        assert_eq!(parsed.unwrap().key_id, "k");
        let missing: Result<EncryptProperties, _> =
            serde_json::from_value(serde_json::json!({"KeyId": "k"}));
        assert!(missing.is_err());
        let with_context: EncryptProperties = serde_json::from_value(serde_json::json!(
            {"KeyId": "k", "PlainText": "p", "EncryptionContext": {"purpose": "x"}}
        ))
        .unwrap();
        assert_eq!(with_context.encryption_context.unwrap()["purpose"], "x");
        let bad_context: Result<EncryptProperties, _> = serde_json::from_value(
            serde_json::json!({"KeyId": "k", "PlainText": "p", "EncryptionContext": ["x"]}),
        );
        assert!(bad_context.is_err());
    }
}
