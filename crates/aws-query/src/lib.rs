//! A small client for AWS's Query protocol, which EC2, IAM and STS speak (an action and its
//! parameters as a form, signed with SigV4, and an XML answer), and for the JSON protocol
//! CloudTrail speaks (an operation named in `X-Amz-Target`, a JSON body and answer).
//!
//! The responders make a handful of EC2, IAM, STS and CloudTrail calls; the SDK crates for
//! those services take longer to build than the rest of the workspace together, so the calls go
//! through here, signed by AWS's own signer with the credentials the SDK's configuration
//! provides (or those of a role the responder assumed).

mod xml;

pub use xml::Element;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// A service spoken to through this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Iam,
    Sts,
    /// JSON protocol: [`JsonClient`].
    CloudTrail,
    /// JSON protocol: [`JsonClient`].
    Kms,
    /// JSON protocol: [`JsonClient`].
    Ssm,
    /// JSON protocol (1.0): [`JsonClient`].
    DynamoDb,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::CloudTrail => "cloudtrail",
            Service::Kms => "kms",
            Service::Ssm => "ssm",
            Service::DynamoDb => "dynamodb",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
            Service::CloudTrail => "2013-11-01",
            Service::Kms => "2014-11-01",
            Service::Ssm => "2014-11-06",
            Service::DynamoDb => "2012-08-10",
        }
    }

    /// The service's own endpoint variable, which wins over `AWS_ENDPOINT_URL` as in the SDK.
    fn endpoint_variable(self) -> &'static str {
        match self {
            Service::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Service::Iam => "AWS_ENDPOINT_URL_IAM",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
            Service::CloudTrail => "AWS_ENDPOINT_URL_CLOUDTRAIL",
            Service::Kms => "AWS_ENDPOINT_URL_KMS",
            Service::Ssm => "AWS_ENDPOINT_URL_SSM",
            Service::DynamoDb => "AWS_ENDPOINT_URL_DYNAMODB",
        }
    }

    /// The endpoint and signing region in `region`'s partition. IAM is global: one endpoint
    /// per partition, signed for that partition's first region.
    fn endpoint(self, region: &str) -> (String, String) {
        let (suffix, iam) = if region.starts_with("cn-") {
            (
                "amazonaws.com.cn",
                ("iam.cn-north-1.amazonaws.com.cn", "cn-north-1"),
            )
        } else if region.starts_with("us-gov-") {
            (
                "amazonaws.com",
                ("iam.us-gov.amazonaws.com", "us-gov-west-1"),
            )
        } else {
            ("amazonaws.com", ("iam.amazonaws.com", "us-east-1"))
        };
        match self {
            Service::Iam => (format!("https://{}", iam.0), iam.1.to_owned()),
            regional => (
                format!("https://{}.{region}.{suffix}", regional.signing_name()),
                region.to_owned(),
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The service answered with an error.
    #[error("{code}: {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: the connection failed or timed out.
    #[error("no answer from {service}: {reason}")]
    Transport {
        service: &'static str,
        reason: String,
    },
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("the request could not be signed: {0}")]
    Signing(String),
    #[error("the answer is not what was expected: {0}")]
    Answer(String),
    #[error("no region is configured (AWS_REGION)")]
    NoRegion,
}

/// Error codes that mean "later".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
];

impl QueryError {
    /// The service's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            QueryError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            QueryError::Transport { .. } => true,
            QueryError::Service { status, code, .. } => {
                *status >= 500 || *status == 429 || TRANSIENT_CODES.contains(&code.as_str())
            }
            _ => false,
        }
    }
}

/// Attempts of one call when the answer says "later".
const ATTEMPTS: u32 = 3;

/// Where and as whom requests to one service in one region go, signed.
#[derive(Debug, Clone)]
struct Signer {
    service: Service,
    http: reqwest::Client,
    credentials: Option<SharedCredentialsProvider>,
    endpoint: String,
    signing_region: String,
}

impl Signer {
    /// `service` in `region` (the SDK configuration's when `None`), with the configuration's
    /// credentials and endpoint (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then
    /// the partition's own).
    fn new(
        config: &aws_config::SdkConfig,
        service: Service,
        region: Option<&str>,
    ) -> Result<Signer, QueryError> {
        let region = match region {
            Some(region) => region.to_owned(),
            None => config
                .region()
                .map(|region| region.as_ref().to_owned())
                .ok_or(QueryError::NoRegion)?,
        };
        let (default_endpoint, signing_region) = service.endpoint(&region);
        let endpoint = std::env::var(service.endpoint_variable())
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| config.endpoint_url().map(str::to_owned))
            .unwrap_or(default_endpoint);
        let signing_region = match service {
            // A stand-in endpoint signs for the configured region, as the SDK does.
            Service::Iam if endpoint.contains("amazonaws.com") => signing_region,
            _ => region,
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("activity-aware-ids/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| QueryError::Transport {
                service: service.signing_name(),
                reason: error.to_string(),
            })?;
        Ok(Signer {
            service,
            http,
            credentials: config.credentials_provider(),
            endpoint: endpoint.trim_end_matches('/').to_owned() + "/",
            signing_region,
        })
    }

    /// Signs and sends a POST of `body`; the answer's status and text.
    async fn send(
        &self,
        content_type: &str,
        target: Option<&str>,
        body: String,
    ) -> Result<(u16, String), QueryError> {
        let identity = self.identity().await?;
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.signing_region)
            .name(self.service.signing_name())
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|error| QueryError::Signing(error.to_string()))?
            .into();
        let mut headers = vec![("content-type", content_type)];
        if let Some(target) = target {
            headers.push(("x-amz-target", target));
        }
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|error| QueryError::Signing(error.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| QueryError::Signing(error.to_string()))?
            .into_parts();
        let mut request = self.http.post(&self.endpoint);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let transport = |error: reqwest::Error| QueryError::Transport {
            service: self.service.signing_name(),
            // Without the URL: it names only the endpoint, but errors stay short.
            reason: error.without_url().to_string(),
        };
        let response = request.body(body).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        Ok((status, text))
    }

    async fn identity(&self) -> Result<Identity, QueryError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| QueryError::Credentials("no credentials provider".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|error| QueryError::Credentials(error.to_string()))?;
        Ok(credentials.into())
    }
}

/// Calls `once` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times.
async fn with_retries<T, F, Fut>(operation: &str, once: F) -> Result<T, QueryError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let mut attempt = 1;
    loop {
        match once().await {
            Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(operation, attempt, error = %error, "trying again");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

/// A client of one Query-protocol service in one region, built once per container (or per
/// account and region a responder acts in).
#[derive(Debug, Clone)]
pub struct QueryClient {
    signer: Signer,
}

impl QueryClient {
    /// A client for `service` with the SDK configuration's region, credentials and endpoint
    /// (`AWS_ENDPOINT_URL_EC2`/`_IAM`/`_STS`, then `AWS_ENDPOINT_URL`, then the partition's own).
    pub fn new(config: &aws_config::SdkConfig, service: Service) -> Result<Self, QueryError> {
        Ok(QueryClient {
            signer: Signer::new(config, service, None)?,
        })
    }

    /// The same, in `region`.
    pub fn in_region(
        config: &aws_config::SdkConfig,
        service: Service,
        region: &str,
    ) -> Result<Self, QueryError> {
        Ok(QueryClient {
            signer: Signer::new(config, service, Some(region))?,
        })
    }

    /// The same client, calling as whoever these credentials are.
    pub fn with_credentials(mut self, credentials: SharedCredentialsProvider) -> Self {
        self.signer.credentials = Some(credentials);
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.signer.signing_region
    }

    /// Calls `action` with `parameters` (the Query protocol's flattened names: `GroupId`,
    /// `SecurityGroupRuleId.1`...), trying again when the answer says "later", and returns the
    /// answer's root element.
    pub async fn call(
        &self,
        action: &str,
        parameters: &[(String, String)],
    ) -> Result<Element, QueryError> {
        with_retries(action, || self.call_once(action, parameters)).await
    }

    async fn call_once(
        &self,
        action: &str,
        parameters: &[(String, String)],
    ) -> Result<Element, QueryError> {
        let body = form(action, self.signer.service.api_version(), parameters);
        let (status, text) = self
            .signer
            .send(
                "application/x-www-form-urlencoded; charset=utf-8",
                None,
                body,
            )
            .await?;
        let root = Element::parse(&text).map_err(|error| {
            if status >= 400 {
                QueryError::Service {
                    status,
                    code: format!("HTTP {status}"),
                    message: "the answer is no XML".into(),
                }
            } else {
                QueryError::Answer(error)
            }
        })?;
        if status >= 400 {
            let error = root.find("Error");
            let text_of = |name: &str| {
                error
                    .and_then(|error| error.child(name))
                    .map(|child| child.text().to_owned())
            };
            return Err(QueryError::Service {
                status,
                code: text_of("Code").unwrap_or_else(|| format!("HTTP {status}")),
                message: text_of("Message").unwrap_or_else(|| "no message".into()),
            });
        }
        Ok(root)
    }
}

/// How long an assumed role's credentials last: one response takes seconds.
const ASSUMED_FOR_SECONDS: &str = "900";

/// Credentials of `role_arn`, assumed through STS in `region` with `external_id`, named
/// `session_name` in the account's CloudTrail. They last 15 minutes and are not refreshed.
pub async fn assume_role(
    config: &aws_config::SdkConfig,
    region: &str,
    role_arn: &str,
    external_id: &str,
    session_name: &str,
) -> Result<SharedCredentialsProvider, QueryError> {
    let sts = QueryClient::in_region(config, Service::Sts, region)?;
    let answer = sts
        .call(
            "AssumeRole",
            &[
                ("RoleArn".into(), role_arn.into()),
                ("RoleSessionName".into(), session_name.into()),
                ("ExternalId".into(), external_id.into()),
                ("DurationSeconds".into(), ASSUMED_FOR_SECONDS.into()),
            ],
        )
        .await?;
    let credentials = answer
        .find("Credentials")
        .ok_or_else(|| QueryError::Answer("AssumeRole answered without credentials".into()))?;
    let part = |name: &str| {
        credentials
            .child_text(name)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| QueryError::Answer(format!("AssumeRole answered without {name}")))
    };
    Ok(SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new(
            part("AccessKeyId")?,
            part("SecretAccessKey")?,
            Some(part("SessionToken")?),
            None,
            "sts-assume-role",
        ),
    ))
}

/// A client of one JSON-protocol service (CloudTrail) in one region.
#[derive(Debug, Clone)]
pub struct JsonClient {
    signer: Signer,
}

impl JsonClient {
    /// A client for `service` in `region` (the SDK configuration's when `None`).
    pub fn new(
        config: &aws_config::SdkConfig,
        service: Service,
        region: Option<&str>,
    ) -> Result<Self, QueryError> {
        Ok(JsonClient {
            signer: Signer::new(config, service, region)?,
        })
    }

    /// The same client, calling as whoever these credentials are.
    pub fn with_credentials(mut self, credentials: SharedCredentialsProvider) -> Self {
        self.signer.credentials = Some(credentials);
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.signer.signing_region
    }

    /// Calls `operation` with `body`, trying again when the answer says "later".
    pub async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, QueryError> {
        with_retries(operation, || self.call_once(operation, body)).await
    }

    async fn call_once(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, QueryError> {
        let target = format!("{}.{operation}", json_target_prefix(self.signer.service));
        let (status, text) = self
            .signer
            .send(
                json_content_type(self.signer.service),
                Some(&target),
                body.to_string(),
            )
            .await?;
        let answer: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            if status >= 400 {
                QueryError::Service {
                    status,
                    code: format!("HTTP {status}"),
                    message: "the answer is no JSON".into(),
                }
            } else {
                QueryError::Answer("the answer is no JSON".into())
            }
        })?;
        if status >= 400 {
            let text_of = |name: &str| answer.get(name).and_then(serde_json::Value::as_str);
            // `__type` may carry a namespace: `com.amazonaws...#ThrottlingException`.
            let code = text_of("__type")
                .map(|kind| kind.rsplit('#').next().unwrap_or(kind).to_owned())
                .unwrap_or_else(|| format!("HTTP {status}"));
            let message = text_of("message")
                .or_else(|| text_of("Message"))
                .unwrap_or("no message")
                .to_owned();
            return Err(QueryError::Service {
                status,
                code,
                message,
            });
        }
        Ok(answer)
    }
}

/// The JSON protocol's version a service speaks.
fn json_content_type(service: Service) -> &'static str {
    match service {
        Service::DynamoDb => "application/x-amz-json-1.0",
        _ => "application/x-amz-json-1.1",
    }
}

/// The `X-Amz-Target` prefix of a JSON-protocol service.
fn json_target_prefix(service: Service) -> &'static str {
    match service {
        Service::CloudTrail => "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
        Service::Kms => "TrentService",
        Service::Ssm => "AmazonSSM",
        Service::DynamoDb => "DynamoDB_20120810",
        _ => "",
    }
}

/// The form body: `Action`, `Version`, then the parameters, each percent-encoded.
fn form(action: &str, version: &str, parameters: &[(String, String)]) -> String {
    let mut body = format!("Action={}&Version={}", encode(action), encode(version));
    for (name, value) in parameters {
        body.push('&');
        body.push_str(&encode(name));
        body.push('=');
        body.push_str(&encode(value));
    }
    body
}

/// Percent-encoding as the Query protocol wants it: everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_encodes_every_value() {
        let body = form(
            "PutRolePolicy",
            "2010-05-08",
            &[
                ("RoleName".into(), "a b/c".into()),
                ("PolicyDocument".into(), "{\"x\":\"&=\"}".into()),
            ],
        );
        assert_eq!(
            body,
            "Action=PutRolePolicy&Version=2010-05-08&RoleName=a%20b%2Fc&PolicyDocument=%7B%22x%22%3A%22%26%3D%22%7D"
        );
    }

    #[test]
    fn endpoints_follow_the_partition() {
        assert_eq!(
            Service::Ec2.endpoint("eu-west-1"),
            (
                "https://ec2.eu-west-1.amazonaws.com".into(),
                "eu-west-1".into()
            )
        );
        assert_eq!(
            Service::Iam.endpoint("eu-west-1"),
            ("https://iam.amazonaws.com".into(), "us-east-1".into())
        );
        assert_eq!(
            Service::Iam.endpoint("cn-northwest-1").1,
            "cn-north-1".to_owned()
        );
        assert_eq!(
            Service::Ec2.endpoint("cn-north-1").0,
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            Service::CloudTrail.endpoint("eu-west-3").0,
            "https://cloudtrail.eu-west-3.amazonaws.com"
        );
        assert_eq!(
            Service::Iam.endpoint("us-gov-east-1"),
            (
                "https://iam.us-gov.amazonaws.com".into(),
                "us-gov-west-1".into()
            )
        );
    }

    #[test]
    fn later_is_throttling_and_5xx_only() {
        let service = |status, code: &str| QueryError::Service {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(service(503, "Unavailable").is_transient());
        assert!(service(400, "RequestLimitExceeded").is_transient());
        assert!(service(400, "Throttling").is_transient());
        assert!(service(400, "ThrottlingException").is_transient());
        assert!(!service(400, "InvalidGroup.NotFound").is_transient());
        assert!(!service(403, "AccessDenied").is_transient());
        assert_eq!(service(404, "NoSuchEntity").code(), Some("NoSuchEntity"));
    }
}
