//! Sending through SES v2 `SendEmail` (raw content) at SES's sending rate, retried while SES
//! says "later", and told apart: an email SES refuses (its content) from a sender SES refuses
//! every email of (an account paused or suspended, a sender or recipient not verified).

use activity_aware_delivery::{
    Attempt, PaceLimit, PacedSender, PostError, RetryPolicy, StatusCode,
};
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use std::time::Duration;
use tokio::time::Instant;

use crate::SERVICE;
use crate::address::Address;

/// SES's error codes for a sender it takes nothing from now: every later email would be
/// refused the same way, so none is tried after one.
const REFUSING_CODES: &[&str] = &[
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "AccessDeniedException",
    "NotFoundException",
];

/// How long SES is left alone after it says a quota is spent (the daily quota, or too many
/// requests of another kind): the email comes back with the batch and is tried again later.
const QUOTA_PAUSE: Duration = Duration::from_secs(60);

/// The sender, its recipients and SES, paced for the life of the container.
#[derive(Debug)]
pub struct Mailer {
    ses: aws_sdk_sesv2::Client,
    from: Address,
    to: Vec<Address>,
    /// The recipients as SES takes them, made once.
    destination: Destination,
    sender: PacedSender,
}

impl Mailer {
    pub fn new(
        ses: aws_sdk_sesv2::Client,
        from: Address,
        to: Vec<Address>,
        policy: RetryPolicy,
        pace: PaceLimit,
    ) -> Self {
        let destination = Destination::builder()
            .set_to_addresses(Some(to.iter().map(|to| to.as_str().to_owned()).collect()))
            .build();
        Mailer {
            ses,
            from,
            to,
            destination,
            sender: PacedSender::new(SERVICE, policy, pace),
        }
    }

    pub fn from(&self) -> &Address {
        &self.from
    }

    pub fn to(&self) -> &[Address] {
        &self.to
    }

    /// How many emails can still start before `deadline` at SES's pace.
    pub fn posts_before(&self, deadline: Instant) -> usize {
        self.sender.posts_before(deadline)
    }

    /// Sends one raw MIME email to every recipient.
    pub async fn send(&self, raw: Vec<u8>, deadline: Instant) -> Result<(), PostError> {
        let content = match RawMessage::builder().data(Blob::new(raw)).build() {
            Ok(raw) => EmailContent::builder().raw(raw).build(),
            Err(error) => {
                return Err(PostError::Refusing {
                    service: SERVICE,
                    reason: error.to_string(),
                });
            }
        };
        self.sender
            .send(deadline, |timeout| self.send_once(content.clone(), timeout))
            .await
    }

    async fn send_once(&self, content: EmailContent, timeout: Duration) -> Attempt {
        let request = self
            .ses
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(self.destination.clone())
            .content(content)
            .send();
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Attempt::Again {
                after: None,
                last: format!("no answer within {} ms", timeout.as_millis()),
            },
            Ok(Ok(_)) => Attempt::Done,
            Ok(Err(error)) => attempt_of(&error),
        }
    }
}

/// What SES's error means for this email and the next.
fn attempt_of(error: &SdkError<SendEmailError>) -> Attempt {
    let said = aws_errors::summary(error);
    let code = error.code().unwrap_or_default();
    if code == "LimitExceededException" {
        return Attempt::Again {
            after: Some(QUOTA_PAUSE),
            last: said,
        };
    }
    if aws_errors::is_transient(error) {
        // Throttled (the sending rate): a second, as SES's rate is counted per second.
        let throttled = code.contains("TooManyRequests") || code.contains("Throttl");
        return Attempt::Again {
            after: throttled.then_some(Duration::from_secs(1)),
            last: said,
        };
    }
    // A sender or recipient SES has not verified is refused for every email alike.
    let unverified = code == "MessageRejected"
        && error
            .message()
            .is_some_and(|message| message.contains("not verified"));
    if REFUSING_CODES.contains(&code) || unverified || !matches!(error, SdkError::ServiceError(_)) {
        return Attempt::Refused(PostError::Refusing {
            service: SERVICE,
            reason: said,
        });
    }
    Attempt::Refused(PostError::Rejected {
        service: SERVICE,
        status: status_of(error),
        reason: said,
    })
}

/// The HTTP status SES answered with.
fn status_of(error: &SdkError<SendEmailError>) -> StatusCode {
    error
        .raw_response()
        .and_then(|response| StatusCode::from_u16(response.status().as_u16()).ok())
        .unwrap_or(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_smithy_runtime_api::http::{Response, StatusCode as HttpStatus};
    use aws_smithy_types::body::SdkBody;

    fn answered(status: u16, code: &str, message: &str) -> SdkError<SendEmailError> {
        let metadata = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(
            SendEmailError::generic(metadata),
            Response::new(HttpStatus::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn ses_answers_are_told_apart() {
        let throttled = attempt_of(&answered(
            429,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
        ));
        assert!(
            matches!(throttled, Attempt::Again { after: Some(after), .. } if after == Duration::from_secs(1))
        );
        let down = attempt_of(&answered(503, "ServiceUnavailable", "x"));
        assert!(matches!(down, Attempt::Again { after: None, .. }));
        let quota = attempt_of(&answered(
            400,
            "LimitExceededException",
            "Daily message quota exceeded.",
        ));
        assert!(matches!(quota, Attempt::Again { after: Some(after), .. } if after == QUOTA_PAUSE));

        let Attempt::Refused(paused) =
            attempt_of(&answered(400, "SendingPausedException", "paused"))
        else {
            panic!("a paused account is refused");
        };
        assert!(paused.refuses_every_post());
        let Attempt::Refused(unverified) = attempt_of(&answered(
            400,
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in region US-EAST-1: ids@example.com",
        )) else {
            panic!("an unverified sender is refused");
        };
        assert!(unverified.refuses_every_post());
        assert_eq!(
            unverified.to_string(),
            "SES refuses every message now: MessageRejected: Email address is not verified. The following identities failed the check in region US-EAST-1: ids@example.com; not retried"
        );
        // This email's content refused: the next may go.
        let Attempt::Refused(content) =
            attempt_of(&answered(400, "MessageRejected", "Illegal header"))
        else {
            panic!("a refused email is refused");
        };
        assert!(content.is_rejected() && !content.refuses_every_post());
        assert_eq!(content.rejected_status(), Some(StatusCode::BAD_REQUEST));
    }
}
