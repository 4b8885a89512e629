//! What both sources are told, read and checked once at start: the topic they publish to and
//! the catalogue compiled with the stack's settings.

use crate::detect::{Detector, DetectorError};
use activity_aware_message::{Topic, TopicError};

#[derive(Debug, thiserror::Error)]
pub enum SourceConfigError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Detector(#[from] DetectorError),
}

/// A source's settings: where it publishes, and what it detects.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub topic_arn: String,
    pub detector: Detector,
}

impl SourceConfig {
    pub fn from_env() -> Result<SourceConfig, SourceConfigError> {
        SourceConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC`, then the stack's settings (see `Settings::from_lookup`).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SourceConfig, SourceConfigError> {
        let topic = Topic::from_lookup(&lookup)?;
        let detector = Detector::from_lookup(&lookup)?;
        Ok(SourceConfig {
            topic_arn: topic.arn,
            detector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SourceConfig, SourceConfigError> {
        SourceConfig::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_topic_and_the_stacks_settings_are_read_together() {
        let topic = ("SNS_TOPIC", "arn:aws:sns:eu-west-1:111122223333:ids");
        let config = config(&[topic, ("STACK_NAME", "ids")]).unwrap();
        assert_eq!(config.topic_arn, topic.1);
        assert_eq!(
            config
                .detector
                .catalogue()
                .settings()
                .placeholders
                .get("AWS::StackName")
                .map(String::as_str),
            Some("ids")
        );
    }

    #[test]
    fn a_missing_topic_or_a_bad_setting_is_a_clear_error() {
        for missing in [&[][..], &[("SNS_TOPIC", " ")][..]] {
            assert_eq!(
                config(missing).unwrap_err().to_string(),
                "SNS_TOPIC must be set to the ARN of the topic to publish to"
            );
        }
        let error = config(&[
            ("SNS_TOPIC", "arn:aws:sns:eu-west-1:111122223333:ids"),
            ("EXPECTED_CHANGES", "hide"),
        ])
        .unwrap_err();
        assert!(
            matches!(error, SourceConfigError::Detector(_))
                && error.to_string().contains("EXPECTED_CHANGES"),
            "{error}"
        );
    }
}
