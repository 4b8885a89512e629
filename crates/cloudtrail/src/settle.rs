//! What a source does to its Messages after making them and before publishing them: events
//! already told and routine changes are looked up in what the stack remembers, and heartbeat
//! legs are signed. Both need
//! AWS calls, so both happen here, on the way out, not while records are read.

use crate::familiar::{Familiarity, FamiliarityError};
use crate::heartbeat::HeartbeatSigner;
use activity_aware_message::OutgoingMessage;
use aws_query::QueryError;

/// How long an account and region is remembered as watched after its last liveness event.
pub const COVERAGE_KEEP_S: i64 = 30 * 86_400;

#[derive(Default)]
pub struct BeforePublishing {
    /// What the stack remembers of routine changes (`FAMILIARITY_TABLE`).
    pub familiarity: Option<Familiarity>,
    /// The heartbeat key (`HEARTBEAT_KEY_ARN`).
    pub signer: Option<HeartbeatSigner>,
}

#[derive(Debug, thiserror::Error)]
pub enum BeforePublishingError {
    #[error(transparent)]
    Familiarity(#[from] FamiliarityError),
    #[error("the heartbeat key: {0}")]
    Signer(#[from] QueryError),
}

impl BeforePublishing {
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, BeforePublishingError> {
        Ok(BeforePublishing {
            familiarity: Familiarity::from_env(config)?,
            signer: HeartbeatSigner::from_env(config)?,
        })
    }

    /// Drops what was told already, settles routine changes, then signs heartbeat legs, in
    /// place. Returns how many were dropped as told already.
    pub async fn settle(&self, outgoing: &mut Vec<OutgoingMessage>) -> usize {
        let already_told = match &self.familiarity {
            Some(familiarity) => familiarity.settle_all(outgoing).await,
            // Nothing remembered: every routine change is news, every event is posted.
            None => {
                outgoing.iter_mut().for_each(|message| {
                    message.familiar = None;
                    message.once = None;
                });
                0
            }
        };
        if let Some(signer) = &self.signer {
            signer.sign_all(outgoing).await;
        }
        already_told
    }

    /// Remembers that `account` and `region` said they are watched (a member stack's liveness
    /// event). Without a table there is nothing to remember it in.
    pub async fn remember_coverage(&self, account: &str, region: &str) {
        let Some(familiarity) = &self.familiarity else {
            tracing::warn!(
                account,
                region,
                "a liveness event, and no table to remember it in"
            );
            return;
        };
        let key = activity_aware_memory::coverage_key(account, region);
        let now = activity_aware_memory::now_s();
        if let Err(error) = familiarity.memory().see(&key, now, COVERAGE_KEEP_S).await {
            tracing::error!(%error, account, region, "a liveness event could not be remembered");
        }
    }

    /// After publishing: the events of the Messages SNS took (`published`, their `once` keys)
    /// are remembered as told. A Message that failed is not, so its retry is posted.
    pub async fn after_publishing(&self, published: Vec<String>) {
        if let Some(familiarity) = &self.familiarity
            && !published.is_empty()
        {
            familiarity.remember_told(published).await;
        }
    }
}
