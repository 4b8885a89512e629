//! The secrets a destination is given as KMS ciphertext (a webhook URL, a routing key), each
//! encrypted for its own purpose, and the URL kind of secret, which never shows itself.

use base64::Engine;
use std::fmt;

/// One secret a destination reads from its environment, KMS-encrypted by the stack's custom
/// resource with the encryption context `purpose=<purpose>`, which the function's role requires
/// to decrypt it: the ciphertext is good for nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    /// The environment variable holding its base64 ciphertext: `SLACK_WEBHOOK_URL`.
    pub variable: &'static str,
    /// `activity-aware-ids/slack-webhook-url`.
    pub purpose: &'static str,
    /// What it is, for errors: `the webhook URL`.
    pub holds: &'static str,
}

impl Secret {
    pub const fn encryption_context(&self) -> [(&'static str, &'static str); 1] {
        [("purpose", self.purpose)]
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.variable)
    }
}

/// What is wrong with a destination's secrets; never the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set; it must hold the base64 KMS ciphertext of {holds}", holds = .0.holds)]
    Missing(Secret),
    #[error("{0} is not base64; it must hold base64 KMS ciphertext")]
    NotBase64(Secret),
    #[error("KMS could not decrypt {0}: {1}")]
    Decrypt(Secret, String),
    #[error("the decrypted {0} is not text")]
    NotText(Secret),
    #[error("the decrypted {0} {1}")]
    BadUrl(Secret, UrlError),
    /// The decrypted text is not what it should be: `SLACK_WEBHOOK_ROUTES, route 2: …`.
    #[error("{secret}, {problem}")]
    Invalid { secret: Secret, problem: String },
}

/// Decrypts a secret held, KMS-encrypted and base64-encoded, in its variable (`ciphertext`).
pub async fn decrypt_secret(
    kms: &aws_sdk_kms::Client,
    secret: Secret,
    ciphertext_base64: &str,
) -> Result<String, ConfigError> {
    if ciphertext_base64.trim().is_empty() {
        return Err(ConfigError::Missing(secret));
    }
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(ciphertext_base64.trim())
        .map_err(|_| ConfigError::NotBase64(secret))?;
    let output = kms
        .decrypt()
        .set_encryption_context(Some(
            secret
                .encryption_context()
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        ))
        .ciphertext_blob(ciphertext.into())
        .send()
        .await
        .map_err(|error| ConfigError::Decrypt(secret, aws_errors::summary(&error)))?;
    let plaintext = output.plaintext().ok_or(ConfigError::NotText(secret))?;
    let text = std::str::from_utf8(plaintext.as_ref()).map_err(|_| ConfigError::NotText(secret))?;
    Ok(text.to_owned())
}

/// Decrypts a secret that is an endpoint's URL.
pub async fn decrypt_secret_url(
    kms: &aws_sdk_kms::Client,
    secret: Secret,
    ciphertext_base64: &str,
) -> Result<SecretUrl, ConfigError> {
    let text = decrypt_secret(kms, secret, ciphertext_base64).await?;
    SecretUrl::parse(&text).map_err(|error| ConfigError::BadUrl(secret, error))
}

/// A URL that is a secret (a webhook's, whose path or `sig=` is its key). Its `Debug` never
/// shows it, and nothing here displays it.
#[derive(Clone)]
pub struct SecretUrl(reqwest::Url);

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(<redacted>)")
    }
}

impl SecretUrl {
    /// Accepts only an absolute `https://` URL with a host (any host: tests serve it on
    /// 127.0.0.1).
    pub fn parse(plaintext: &str) -> Result<Self, UrlError> {
        let url = reqwest::Url::parse(plaintext.trim()).map_err(|_| UrlError::NotAUrl)?;
        if url.scheme() != "https" {
            return Err(UrlError::NotHttps);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NotAUrl);
        }
        Ok(SecretUrl(url))
    }

    /// Whether two are the same endpoint (and so share its rate limit).
    pub fn same_as(&self, other: &SecretUrl) -> bool {
        self.0.as_str() == other.0.as_str()
    }

    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.0
    }
}

/// What is wrong with a URL; never the URL itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a URL")]
    NotAUrl,
    #[error("must start with https:// (anything else would send alerts in clear text)")]
    NotHttps,
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: Secret = Secret {
        variable: "TEAMS_WEBHOOK_URL",
        purpose: "activity-aware-ids/teams-webhook-url",
        holds: "the webhook URL",
    };

    #[test]
    fn only_https_urls_are_accepted() {
        assert!(SecretUrl::parse("https://hooks.slack.com/services/T0/B0/secret").is_ok());
        assert!(SecretUrl::parse("  https://127.0.0.1:8443/workflows?sig=x\n").is_ok());
        assert!(matches!(
            SecretUrl::parse("http://hooks.slack.com/services/T0/B0/secret"),
            Err(UrlError::NotHttps)
        ));
        assert!(matches!(
            SecretUrl::parse("hooks.slack.com/x"),
            Err(UrlError::NotAUrl)
        ));
        assert!(matches!(
            SecretUrl::parse("\u{1}garbage"),
            Err(UrlError::NotAUrl)
        ));
    }

    #[test]
    fn the_url_never_shows_in_debug_or_errors() {
        let url = SecretUrl::parse("https://x.logic.azure.com/workflows/1?sig=s3cr3t").unwrap();
        assert_eq!(format!("{url:?}"), "SecretUrl(<redacted>)");
        for error in [
            ConfigError::BadUrl(URL, UrlError::NotHttps),
            ConfigError::BadUrl(URL, UrlError::NotAUrl),
            ConfigError::NotBase64(URL),
            ConfigError::Missing(URL),
        ] {
            assert!(!error.to_string().contains("s3cr3t"));
        }
        assert_eq!(
            ConfigError::Missing(URL).to_string(),
            "TEAMS_WEBHOOK_URL is not set; it must hold the base64 KMS ciphertext of the webhook URL"
        );
        assert_eq!(
            URL.encryption_context(),
            [("purpose", "activity-aware-ids/teams-webhook-url")]
        );
    }
}
