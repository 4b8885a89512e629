//! The Slack incoming webhook: its URL, a secret that must never be shown, posted to through
//! the delivery core's [`Endpoint`].

use activity_aware_delivery::{
    ConfigError, Endpoint, PaceLimit, PostError, RetryPolicy, Secret, SecretUrl, decrypt_secret_url,
};

/// The decrypted webhook URL. Its `Debug` never shows it.
pub type WebhookUrl = SecretUrl;

/// One incoming webhook, paced for the life of the container.
pub type SlackWebhook = Endpoint;

/// Why one post did not reach Slack.
pub type SlackError = PostError;

/// What logs and errors call Slack.
pub const SERVICE: &str = "Slack";

/// SLACK_WEBHOOK_URL: the stack's webhook.
pub const WEBHOOK_URL: Secret = Secret {
    variable: "SLACK_WEBHOOK_URL",
    purpose: "activity-aware-ids/slack-webhook-url",
    holds: "the webhook URL",
};

/// SLACK_WEBHOOK_URL of the operations relay: the same webhook, encrypted with the operations
/// key for a purpose of its own, so that the health path shares no key with what it watches.
pub const OPERATIONS_WEBHOOK_URL: Secret = Secret {
    variable: "SLACK_WEBHOOK_URL",
    purpose: "activity-aware-ids/operations-slack-webhook-url",
    holds: "the webhook URL",
};

/// SLACK_WEBHOOK_ROUTES: webhooks of their own for some accounts and channels.
pub const WEBHOOK_ROUTES: Secret = Secret {
    variable: "SLACK_WEBHOOK_ROUTES",
    purpose: "activity-aware-ids/slack-webhook-routes",
    holds: "the webhook routes",
};

/// The encryption context of the stack's webhook URL.
pub const WEBHOOK_ENCRYPTION_CONTEXT: [(&str, &str); 1] = WEBHOOK_URL.encryption_context();

/// The encryption context of the operations relay's webhook URL.
pub const OPERATIONS_WEBHOOK_ENCRYPTION_CONTEXT: [(&str, &str); 1] =
    OPERATIONS_WEBHOOK_URL.encryption_context();

/// The encryption context of the routes to webhooks of their own.
pub const WEBHOOK_ROUTES_ENCRYPTION_CONTEXT: [(&str, &str); 1] =
    WEBHOOK_ROUTES.encryption_context();

/// A webhook posted to at `pace`.
pub fn slack_webhook(
    http: reqwest::Client,
    url: WebhookUrl,
    policy: RetryPolicy,
    pace: PaceLimit,
) -> SlackWebhook {
    Endpoint::new(SERVICE, http, url, policy, pace)
}

/// Decrypts the webhook URL held, KMS-encrypted and base64-encoded, in SLACK_WEBHOOK_URL (for
/// the purpose of `secret`: the stack's webhook, or the operations relay's).
pub async fn decrypt_webhook_url(
    kms: &aws_sdk_kms::Client,
    secret: Secret,
    ciphertext_base64: &str,
) -> Result<WebhookUrl, ConfigError> {
    decrypt_secret_url(kms, secret, ciphertext_base64).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_secret_has_its_own_purpose() {
        assert_eq!(
            WEBHOOK_ENCRYPTION_CONTEXT,
            [("purpose", "activity-aware-ids/slack-webhook-url")]
        );
        assert_eq!(
            WEBHOOK_ROUTES_ENCRYPTION_CONTEXT,
            [("purpose", "activity-aware-ids/slack-webhook-routes")]
        );
        assert_eq!(
            ConfigError::Missing(WEBHOOK_URL).to_string(),
            "SLACK_WEBHOOK_URL is not set; it must hold the base64 KMS ciphertext of the webhook URL"
        );
    }
}
