//! The topic the sources and responders publish to, as the template names it to each of them:
//! `SNS_TOPIC`, read and checked once at start.

/// The variable holding the topic's ARN.
pub const TOPIC_VARIABLE: &str = "SNS_TOPIC";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("SNS_TOPIC must be set to the ARN of the topic to publish to")]
    Missing,
    #[error("SNS_TOPIC must be a topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME), not {0:?}")]
    NotAnArn(String),
}

/// A topic's ARN, and what it names: the partition, region and account it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

impl Topic {
    /// `SNS_TOPIC` of the environment.
    pub fn from_env() -> Result<Topic, TopicError> {
        Topic::from_lookup(|name| std::env::var(name).ok())
    }

    /// `SNS_TOPIC` of `lookup`: set, not blank, and a topic's ARN.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Topic, TopicError> {
        let arn = lookup(TOPIC_VARIABLE).unwrap_or_default();
        match arn.trim() {
            "" => Err(TopicError::Missing),
            arn => Topic::parse(arn),
        }
    }

    /// `arn:PARTITION:sns:REGION:ACCOUNT:NAME`, every part there, the account 12 digits.
    pub fn parse(arn: &str) -> Result<Topic, TopicError> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts[..] {
            ["arn", partition, "sns", region, account, name]
                if !partition.is_empty()
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|byte| byte.is_ascii_digit())
                    && !name.is_empty() =>
            {
                Ok(Topic {
                    arn: arn.to_owned(),
                    partition: partition.to_owned(),
                    region: region.to_owned(),
                    account: account.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(TopicError::NotAnArn(arn.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(value: Option<&str>) -> Result<Topic, TopicError> {
        Topic::from_lookup(|name| {
            assert_eq!(name, TOPIC_VARIABLE);
            value.map(str::to_owned)
        })
    }

    #[test]
    fn a_topic_arn_names_its_partition_region_account_and_name() {
        let topic = topic(Some(
            " arn:aws-cn:sns:cn-north-1:111122223333:ids-SNSTopic-1 ",
        ))
        .unwrap();
        assert_eq!(
            topic,
            Topic {
                arn: "arn:aws-cn:sns:cn-north-1:111122223333:ids-SNSTopic-1".into(),
                partition: "aws-cn".into(),
                region: "cn-north-1".into(),
                account: "111122223333".into(),
                name: "ids-SNSTopic-1".into(),
            }
        );
    }

    #[test]
    fn a_missing_blank_or_malformed_topic_is_a_clear_error() {
        assert_eq!(topic(None), Err(TopicError::Missing));
        assert_eq!(topic(Some("  ")), Err(TopicError::Missing));
        for arn in [
            "my-topic",
            "arn:aws:sqs:us-east-1:111122223333:queue",
            "arn:aws:sns:us-east-1:1111:ids",
            "arn:aws:sns:us-east-1:11112222333x:ids",
            "arn:aws:sns::111122223333:ids",
            "arn::sns:us-east-1:111122223333:ids",
            "arn:aws:sns:us-east-1:111122223333:",
            "arn:aws:sns:us-east-1:111122223333:ids:extra",
        ] {
            assert_eq!(
                topic(Some(arn)),
                Err(TopicError::NotAnArn(arn.into())),
                "{arn}"
            );
        }
        assert_eq!(
            TopicError::Missing.to_string(),
            "SNS_TOPIC must be set to the ARN of the topic to publish to"
        );
    }
}
