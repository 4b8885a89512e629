//! AWS SDK errors, as every function reports them: one line, and whether trying again can help.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes that mean "later": AWS throttling and its services' internal failures.
const TRANSIENT_CODES: &[&str] = &[
    "Throttled",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "KMSThrottling",
    "KMSThrottlingException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// An AWS error in one line: the service's code and message when it answered, otherwise what
/// went wrong on the way (the full context includes the raw response, too noisy for a reason).
pub fn summary<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.code() {
        Some(code) => format!("{code}: {}", error.message().unwrap_or("no message")),
        None => DisplayErrorContext(error).to_string(),
    }
}

/// Whether the same request may succeed later: timeouts, network failures, throttling and 5xx
/// answers. An answer such as NotFound or AuthorizationError will be the same next time.
pub fn is_transient<E>(error: &SdkError<E, Response>) -> bool
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500
                || status == 429
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::PublishError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(status: u16, code: &str) -> SdkError<PublishError, Response> {
        let metadata = ErrorMetadata::builder()
            .code(code)
            .message("said the service")
            .build();
        SdkError::service_error(
            PublishError::generic(metadata),
            Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn a_service_answer_is_its_code_and_message() {
        assert_eq!(
            summary(&service_error(404, "NotFound")),
            "NotFound: said the service"
        );
    }

    #[test]
    fn answers_that_will_not_change_are_not_transient() {
        for (status, code) in [
            (404, "NotFound"),
            (403, "AuthorizationError"),
            (400, "InvalidParameter"),
            (400, "KMSDisabled"),
        ] {
            assert!(!is_transient(&service_error(status, code)), "{code}");
        }
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for (status, code) in [
            (400, "Throttling"),
            (400, "KMSThrottling"),
            (429, "Anything"),
            (500, "InternalError"),
            (503, "Unavailable"),
        ] {
            assert!(is_transient(&service_error(status, code)), "{code}");
        }
        let timeout: SdkError<PublishError, Response> = SdkError::timeout_error("took too long");
        assert!(is_transient(&timeout));
        let construction: SdkError<PublishError, Response> =
            SdkError::construction_failure("bad input");
        assert!(!is_transient(&construction));
    }
}
