//! What a source does to its Messages after making them and before publishing them: routine
//! changes are looked up in what the stack remembers, and heartbeat legs are signed. Both need
//! AWS calls, so both happen here, on the way out, not while records are read.

use crate::familiar::{Familiarity, FamiliarityError};
use crate::heartbeat::HeartbeatSigner;
use activity_aware_message::OutgoingMessage;
use aws_query::QueryError;

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

    /// Settles routine changes, then signs heartbeat legs, in place.
    pub async fn settle(&self, outgoing: &mut [OutgoingMessage]) {
        match &self.familiarity {
            Some(familiarity) => familiarity.settle_all(outgoing).await,
            // Nothing remembered: every routine change is news.
            None => outgoing
                .iter_mut()
                .for_each(|message| message.familiar = None),
        }
        if let Some(signer) = &self.signer {
            signer.sign_all(outgoing).await;
        }
    }
}
