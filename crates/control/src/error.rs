//! What a use case can fail with, in the terms of the broker's domain. The server maps each
//! variant to a gRPC status code in one place; nothing here knows gRPC.

use thiserror::Error;

use flinkbroker_flink::jobmanager::FlinkError;
use flinkbroker_flink::sql_gateway::GatewayError;
use flinkbroker_model::job::JobId;
use flinkbroker_runner::RunnerError;
use flinkbroker_store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A request field is malformed; the message names the field.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The request field, e.g. `script` or `statements[2]`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No job has this id.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// The `request_id` was used before with a different payload.
    #[error("request_id {request_id:?} was already used for job {job_id} with a different payload")]
    RequestIdConflict {
        /// The reused request id.
        request_id: String,
        /// The job recorded under it.
        job_id: JobId,
    },
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
    /// The request's work did not end in the time the broker allows it; it goes on, and
    /// the job shows its outcome.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The broker cannot serve the request right now; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The SQL Gateway failed or refused a request.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The JobManager failed or refused a request.
    #[error(transparent)]
    Flink(#[from] FlinkError),
    /// The store failed, or holds no such job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runner of Python submitters failed.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The request conflicts with another one in flight; retrying later may succeed.
    #[error("{0}")]
    Aborted(String),
    /// A quota of the caller's tenant is used up; waiting `retry_after` may help.
    #[error("{message}")]
    ResourceExhausted {
        /// Which quota, its limit and where the limit comes from.
        message: String,
        /// When a submission may succeed again, if that is known.
        retry_after: Option<std::time::Duration>,
    },
    /// The caller is known but lacks the role the call needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// The broker's own bug.
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

impl From<flinkbroker_model::principal::PermissionDenied> for Error {
    fn from(denied: flinkbroker_model::principal::PermissionDenied) -> Self {
        Error::PermissionDenied(denied.0)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
