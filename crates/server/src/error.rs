//! The one place errors become gRPC statuses: every use case's error, and the server's own
//! refusals of a call without a valid credential or the role it needs.
//!
//! Bad input is INVALID_ARGUMENT, an unknown id NOT_FOUND, a request id reused with another
//! payload ALREADY_EXISTS, a wrong state FAILED_PRECONDITION, a dependency down UNAVAILABLE
//! and the broker's own bug INTERNAL.

use thiserror::Error;
use tonic::Code;

use flinkbroker_control::error::Error as ControlError;
use flinkbroker_flink::jobmanager::FlinkError;
use flinkbroker_flink::sql_gateway::GatewayError;
use flinkbroker_model::principal::PermissionDenied;
use flinkbroker_store::StoreError;

/// Everything a call can be refused or fail with.
#[derive(Debug, Error)]
pub(crate) enum Error {
    /// A use case failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The call carries no credential, or one the broker does not accept.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but lacks the role the call needs, or its certificate names no
    /// principal.
    #[error("{0}")]
    PermissionDenied(String),
}

/// The server's result type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<PermissionDenied> for Error {
    fn from(denied: PermissionDenied) -> Self {
        Error::PermissionDenied(denied.0)
    }
}

impl Error {
    /// The gRPC status code the error is answered with.
    pub(crate) fn code(&self) -> Code {
        match self {
            Error::Control(error) => control_code(error),
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
        }
    }
}

/// The status a use case's error (or the server's) is answered with.
pub(crate) fn status(error: impl Into<Error>) -> tonic::Status {
    tonic::Status::from(error.into())
}

/// The gRPC status code a use case's error is answered with.
pub(crate) fn control_code(error: &ControlError) -> Code {
    match error {
        ControlError::InvalidArgument { .. } => Code::InvalidArgument,
        ControlError::JobNotFound(_) => Code::NotFound,
        ControlError::RequestIdConflict { .. } => Code::AlreadyExists,
        ControlError::FailedPrecondition(_) => Code::FailedPrecondition,
        ControlError::OutOfRange(_) => Code::OutOfRange,
        ControlError::Unimplemented(_) => Code::Unimplemented,
        ControlError::PermissionDenied(_) => Code::PermissionDenied,
        ControlError::ResourceExhausted { .. } => Code::ResourceExhausted,
        ControlError::ShuttingDown | ControlError::Unavailable(_) => Code::Unavailable,
        ControlError::DeadlineExceeded(_) => Code::DeadlineExceeded,
        ControlError::Gateway(gateway) => match gateway {
            GatewayError::Unreachable(_) => Code::Unavailable,
            GatewayError::UnsupportedVersion { .. } => Code::FailedPrecondition,
            GatewayError::UnknownSession { .. } => Code::FailedPrecondition,
            GatewayError::UnknownOperation { .. } => Code::NotFound,
            GatewayError::StatementFailed { .. } => Code::InvalidArgument,
            GatewayError::InvalidToken { .. } => Code::OutOfRange,
            GatewayError::BadRequest { .. } => Code::Internal,
            GatewayError::Server { .. } => Code::FailedPrecondition,
            GatewayError::Protocol(_) => Code::Internal,
        },
        ControlError::Flink(flink) => match flink {
            FlinkError::Unreachable(_) => Code::Unavailable,
            FlinkError::JobNotFound(_) => Code::NotFound,
            FlinkError::Server { .. } => Code::Unavailable,
            FlinkError::Protocol(_) => Code::Internal,
        },
        ControlError::Store(store) => match store {
            StoreError::Database(_) => Code::Unavailable,
            StoreError::JobNotFound(_) => Code::NotFound,
            StoreError::TerminalState { .. } => Code::FailedPrecondition,
            StoreError::Corrupt { .. } => Code::Internal,
            StoreError::InvalidPageToken => Code::InvalidArgument,
            StoreError::StaleLog { .. } => Code::Aborted,
        },
        ControlError::Runner(_) => Code::Unavailable,
        ControlError::Aborted(_) => Code::Aborted,
        ControlError::Internal(_) => Code::Internal,
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        let message = match &error {
            Error::Control(ControlError::Store(StoreError::InvalidPageToken)) => {
                "page_token: invalid page token".into()
            }
            other => other.to_string(),
        };
        if let Error::Control(ControlError::ResourceExhausted {
            retry_after: Some(retry_after),
            ..
        }) = &error
        {
            use tonic_types::{ErrorDetails, StatusExt};
            return tonic::Status::with_error_details(
                code,
                message,
                ErrorDetails::with_retry_info(Some(*retry_after)),
            );
        }
        tonic::Status::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_map_to_distinct_codes() {
        let codes: Vec<tonic::Code> = [
            GatewayError::Unreachable("connection refused".into()),
            GatewayError::UnknownSession {
                session: "s".into(),
                message: "Session 's' does not exist.".into(),
            },
            GatewayError::UnknownOperation {
                operation: "o".into(),
                message: "Can not find the submitted operation".into(),
            },
            GatewayError::StatementFailed {
                message: "SQL parse failed.".into(),
            },
        ]
        .into_iter()
        .map(|e| status(ControlError::from(e)).code())
        .collect();
        let mut unique = codes.clone();
        unique.dedup();
        assert_eq!(codes.len(), unique.len(), "{codes:?}");
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = status(ControlError::invalid("script", "must not be empty"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "script: must not be empty");
    }
}
