//! A small client for AWS's Query protocol, which EC2 and IAM speak: an action and its
//! parameters as a form, signed with SigV4, and an XML answer.
//!
//! The responders make a handful of EC2 and IAM calls; the SDK crates for those services take
//! longer to build than the rest of the workspace together, so the calls go through here,
//! signed by AWS's own signer with the credentials the SDK's configuration provides.

mod xml;

pub use xml::Element;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// A service spoken to through the Query protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ec2,
    Iam,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Iam => "iam",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Iam => "2010-05-08",
        }
    }

    /// The service's own endpoint variable, which wins over `AWS_ENDPOINT_URL` as in the SDK.
    fn endpoint_variable(self) -> &'static str {
        match self {
            Service::Ec2 => "AWS_ENDPOINT_URL_EC2",
            Service::Iam => "AWS_ENDPOINT_URL_IAM",
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
            Service::Ec2 => (format!("https://ec2.{region}.{suffix}"), region.to_owned()),
            Service::Iam => (format!("https://{}", iam.0), iam.1.to_owned()),
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
    #[error("the answer is not the XML expected: {0}")]
    Answer(String),
    #[error("no region is configured (AWS_REGION)")]
    NoRegion,
}

/// Error codes that mean "later".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
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

/// A client of one service, built once per container.
#[derive(Debug, Clone)]
pub struct QueryClient {
    service: Service,
    http: reqwest::Client,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    endpoint: String,
    signing_region: String,
}

impl QueryClient {
    /// A client for `service` with the SDK configuration's region, credentials and endpoint
    /// (`AWS_ENDPOINT_URL_EC2`/`_IAM`, then `AWS_ENDPOINT_URL`, then the partition's own).
    pub fn new(config: &aws_config::SdkConfig, service: Service) -> Result<Self, QueryError> {
        let region = config
            .region()
            .map(|region| region.as_ref().to_owned())
            .ok_or(QueryError::NoRegion)?;
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
        Ok(QueryClient {
            service,
            http,
            credentials: config.credentials_provider(),
            endpoint: endpoint.trim_end_matches('/').to_owned() + "/",
            signing_region,
        })
    }

    /// Calls `action` with `parameters` (the Query protocol's flattened names: `GroupId`,
    /// `SecurityGroupRuleId.1`...), trying again when the answer says "later", and returns the
    /// answer's root element.
    pub async fn call(
        &self,
        action: &str,
        parameters: &[(String, String)],
    ) -> Result<Element, QueryError> {
        let mut attempt = 1;
        loop {
            match self.call_once(action, parameters).await {
                Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(action, attempt, error = %error, "trying again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    async fn call_once(
        &self,
        action: &str,
        parameters: &[(String, String)],
    ) -> Result<Element, QueryError> {
        let body = form(action, self.service.api_version(), parameters);
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
        const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            [("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|error| QueryError::Signing(error.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| QueryError::Signing(error.to_string()))?
            .into_parts();
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", CONTENT_TYPE);
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
        assert!(!service(400, "InvalidGroup.NotFound").is_transient());
        assert!(!service(403, "AccessDenied").is_transient());
        assert_eq!(service(404, "NoSuchEntity").code(), Some("NoSuchEntity"));
    }
}
