//! The crate error and its one mapping to `tonic::Status`.

use thiserror::Error;

use crate::flink::FlinkError;
use crate::job::JobId;
use crate::runner::RunnerError;
use crate::sql_gateway::GatewayError;
use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A request field is malformed; the message names the field.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// No job has this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The `request_id` was used before with a different payload.
    #[error("request_id {request_id:?} was already used for job {job_id} with a different payload")]
    RequestIdConflict { request_id: String, job_id: JobId },
    /// The job or statement is not in a state that allows the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A resume offset outside what can be served again.
    #[error("{0}")]
    OutOfRange(String),
    /// A capability this broker was not configured for.
    #[error("{0}")]
    Unimplemented(String),
    /// The broker is shutting down.
    #[error("flinkbroker is shutting down")]
    ShuttingDown,
    /// The broker cannot serve the request right now; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Flink(#[from] FlinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The request conflicts with another one in flight; retrying later may succeed.
    #[error("{0}")]
    Aborted(String),
    /// The call carries no credential, or one the broker does not accept.
    #[error("{0}")]
    Unauthenticated(String),
    /// A quota of the caller's tenant is used up; waiting `retry_after` may help.
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The caller is known but lacks the role the call needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The broker's own bug or an unusable configuration.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Creates an `InvalidArgument` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The gRPC status code the error is answered with.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::JobNotFound(_) => Code::NotFound,
            Error::RequestIdConflict { .. } => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::OutOfRange(_) => Code::OutOfRange,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::ShuttingDown | Error::Unavailable(_) => Code::Unavailable,
            Error::Gateway(gateway) => match gateway {
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
            Error::Flink(flink) => match flink {
                FlinkError::Unreachable(_) => Code::Unavailable,
                FlinkError::JobNotFound(_) => Code::NotFound,
                FlinkError::Server { .. } => Code::Unavailable,
                FlinkError::Protocol(_) => Code::Internal,
            },
            Error::Store(store) => match store {
                StoreError::Database(_) => Code::Unavailable,
                StoreError::JobNotFound(_) => Code::NotFound,
                StoreError::TerminalState { .. } => Code::FailedPrecondition,
                StoreError::Corrupt { .. } => Code::Internal,
                StoreError::InvalidPageToken => Code::InvalidArgument,
                StoreError::StaleLog { .. } => Code::Aborted,
            },
            Error::Runner(_) => Code::Unavailable,
            Error::Aborted(_) => Code::Aborted,
            Error::Internal(_) => Code::Internal,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        let message = match &error {
            Error::Store(StoreError::InvalidPageToken) => "page_token: invalid page token".into(),
            other => other.to_string(),
        };
        if let Error::ResourceExhausted {
            retry_after: Some(retry_after),
            ..
        } = &error
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
        .map(|e| tonic::Status::from(Error::from(e)).code())
        .collect();
        let mut unique = codes.clone();
        unique.dedup();
        assert_eq!(codes.len(), unique.len(), "{codes:?}");
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = tonic::Status::from(Error::invalid("script", "must not be empty"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "script: must not be empty");
    }
}
