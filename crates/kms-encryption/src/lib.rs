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

/// Where answers may go, and for which stack. In AWS: CloudFormation's own response bucket of
/// this function's region (`cloudformation-custom-resource-response-<region>`, https, its own
/// key naming the stack), for this stack's requests only; so a direct invoke cannot make the
/// function encrypt for someone else, or send a ciphertext to a bucket of theirs. For a local
/// test world: the prefixes `ALLOWED_RESPONSE_URL_PREFIXES` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    response_url_prefixes: Vec<String>,
    /// `AWS_REGION`: the region whose response bucket answers go to.
    region: String,
    /// `STACK_ID`: the stack whose requests are answered; any other's are refused.
    stack_id: Option<String>,
}

impl Config {
    pub fn from_env() -> Config {
        let get = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Config {
            region: get("AWS_REGION").unwrap_or_default(),
            stack_id: get("STACK_ID"),
            ..Config::with_response_url_prefixes(
                &get("ALLOWED_RESPONSE_URL_PREFIXES").unwrap_or_default(),
            )
        }
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
            ..Config::default()
        }
    }

    /// The same, for this region and stack.
    pub fn for_stack(mut self, region: &str, stack_id: Option<&str>) -> Config {
        self.region = region.to_owned();
        self.stack_id = stack_id.map(str::to_owned);
        self
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
        if url.scheme() != "https"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.port().is_some_and(|port| port != 443)
        {
            return false;
        }
        let region = self.region.as_str();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return false;
        }
        let bucket = format!(
            "cloudformation-custom-resource-response-{}",
            region.replace('-', "")
        );
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let host = url.host_str().unwrap_or_default();
        let allowed = [
            format!("{bucket}.s3.{suffix}"),
            format!("{bucket}.s3.{region}.{suffix}"),
            format!("{bucket}.s3-{region}.{suffix}"),
        ];
        if !allowed.iter().any(|name| name == host) {
            return false;
        }
        // The object's key names the stack and the resource: `<stack ARN>|<resource>|<request>`.
        match &self.stack_id {
            Some(stack) => percent_decoded(url.path())
                .strip_prefix('/')
                .is_some_and(|key| key.starts_with(&format!("{stack}|"))),
            None => true,
        }
    }

    /// Whether the request is this stack's (when the function knows its stack).
    pub fn serves_stack(&self, stack_id: &str) -> bool {
        self.stack_id.as_deref().is_none_or(|own| own == stack_id)
    }

    /// A client that follows no redirect: the answer goes to the URL given, or nowhere.
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend initialises")
    }
}

/// `%3A` as `:` and so on, as S3 keys are written in URLs.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|byte| (*byte as char).to_digit(16))
                .map(|digit| digit as u8)
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum CustomResourceError {
    #[error("the request has no ResponseURL, so it cannot be answered")]
    NoResponseUrl,
    #[error(
        "the ResponseURL is not CloudFormation's response bucket of this region for this stack, so nothing was answered"
    )]
    ResponseUrlRefused,
    #[error("the request is not this stack's, so nothing was answered")]
    StackRefused,
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
    let stack = request
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !config.serves_stack(stack) {
        return Err(CustomResourceError::StackRefused);
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
    fn answers_go_to_cloudformations_bucket_of_this_region_for_this_stack_only() {
        let stack = "arn:aws:cloudformation:eu-west-1:111122223333:stack/ids/5b4f3a10-0000-11ef-8000-0a1b2c3d4e5f";
        let key = "arn%3Aaws%3Acloudformation%3Aeu-west-1%3A111122223333%3Astack/ids/5b4f3a10-0000-11ef-8000-0a1b2c3d4e5f%7CEncryptedSlackWebhookURL%7Crequest-1";
        let aws = Config::default().for_stack("eu-west-1", Some(stack));
        for host in [
            "cloudformation-custom-resource-response-euwest1.s3.amazonaws.com",
            "cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com",
            "cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com",
        ] {
            let url = format!("https://{host}/{key}?X-Amz-Signature=x");
            assert!(aws.allows_response_url(&url), "{url}");
        }
        let china = Config::default().for_stack("cn-north-1", None);
        assert!(china.allows_response_url(
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/a"
        ));
        for url in [
            format!("http://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/{key}"),
            // Another region's bucket: anyone may own a bucket of that name for a region that
            // is not this one.
            format!("https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/{key}"),
            format!("https://cloudformation-custom-resource-response-euwest1x.s3.amazonaws.com/{key}"),
            format!("https://attacker-bucket.s3.amazonaws.com/{key}"),
            // Another stack's response (an attacker's own stack, say).
            "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/arn%3Aaws%3Acloudformation%3Aeu-west-1%3A444455556666%3Astack/evil/1%7CR%7Cq".to_owned(),
            "https://attacker.example/a".into(),
            "https://s3.amazonaws.com.attacker.example/a".into(),
            format!("https://user:pass@cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/{key}"),
            format!("https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com:8443/{key}"),
            "not a url".into(),
        ] {
            assert!(!aws.allows_response_url(&url), "{url}");
        }
        assert!(
            aws.serves_stack(stack)
                && !aws.serves_stack("arn:aws:cloudformation:eu-west-1:111122223333:stack/other/1")
        );
        assert!(
            !Config::default().allows_response_url(&format!(
                "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/{key}"
            )),
            "no region known: nowhere"
        );
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
