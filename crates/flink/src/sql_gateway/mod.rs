//! The Flink SQL Gateway: the `SqlGateway` trait, its REST client and the wire models.
//!
//! The trait speaks in the gateway's own terms (sessions, operations, result pages with
//! tokens); the fetch loop, backoff and time limits live in `control`.

mod client;
mod error;
pub mod wire;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub(crate) use client::ENDPOINTS;
pub use client::RestSqlGateway;
pub use error::GatewayError;
pub use wire::{
    ColumnInfo, LogicalTypeJson, RawPage, ResultPage, ResultType, RowData, RowKindJson,
};

/// The executionConfig key that pins the Flink job id of a statement.
pub const PIPELINE_JOB_ID_KEY: &str = "$internal.pipeline.job-id";

/// A gateway session handle (a UUID chosen by the gateway).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionHandle(pub String);

/// A gateway operation handle (a UUID chosen by the gateway).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OperationHandle(pub String);

/// The REST API version the client talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    /// REST API version 2, the oldest the broker speaks.
    V2,
    /// REST API version 3.
    V3,
}

impl ApiVersion {
    /// Returns the URL path segment (`v2`, `v3`).
    pub(crate) fn path_segment(&self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }
}

/// The status of an operation as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    /// Created, not yet submitted (`INITIALIZED`).
    Initialized,
    /// Submitted, waiting to run (`PENDING`).
    Pending,
    /// Running (`RUNNING`).
    Running,
    /// Done; its results, if any, can be fetched (`FINISHED`).
    Finished,
    /// Canceled (`CANCELED`).
    Canceled,
    /// Closed, its resources released (`CLOSED`).
    Closed,
    /// Failed (`ERROR`).
    Error,
    /// Ran out of its execution time (`TIMEOUT`).
    Timeout,
}

impl OperationStatus {
    /// Parses the gateway's status name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INITIALIZED" => OperationStatus::Initialized,
            "PENDING" => OperationStatus::Pending,
            "RUNNING" => OperationStatus::Running,
            "FINISHED" => OperationStatus::Finished,
            "CANCELED" => OperationStatus::Canceled,
            "CLOSED" => OperationStatus::Closed,
            "ERROR" => OperationStatus::Error,
            "TIMEOUT" => OperationStatus::Timeout,
            _ => return None,
        })
    }

    /// Returns true when the operation will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OperationStatus::Finished
                | OperationStatus::Canceled
                | OperationStatus::Closed
                | OperationStatus::Error
                | OperationStatus::Timeout
        )
    }
}

/// The Flink SQL Gateway REST API, one method per endpoint the broker uses.
#[async_trait]
pub trait SqlGateway: Send + Sync {
    /// Negotiates the API version (`GET /api_versions`); V2 or newer is required.
    async fn negotiate_version(&self) -> Result<ApiVersion, GatewayError>;

    /// Opens a session with the given properties (`POST /sessions`).
    async fn open_session(
        &self,
        session_name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<SessionHandle, GatewayError>;

    /// Keeps a session alive (`POST /sessions/{s}/heartbeat`).
    async fn heartbeat(&self, session: &SessionHandle) -> Result<(), GatewayError>;

    /// Closes a session (`DELETE /sessions/{s}`).
    async fn close_session(&self, session: &SessionHandle) -> Result<(), GatewayError>;

    /// Submits one statement (`POST /sessions/{s}/statements`).
    ///
    /// The request carries `executionTimeout` 0 and the given per-statement
    /// `executionConfig`.
    async fn execute_statement(
        &self,
        session: &SessionHandle,
        statement: &str,
        execution_config: &BTreeMap<String, String>,
    ) -> Result<OperationHandle, GatewayError>;

    /// Reads an operation's status (`GET /sessions/{s}/operations/{o}/status`).
    async fn operation_status(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError>;

    /// Cancels an operation (`POST /sessions/{s}/operations/{o}/cancel`).
    async fn cancel_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError>;

    /// Closes an operation (`DELETE /sessions/{s}/operations/{o}/close`).
    async fn close_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError>;

    /// Fetches one result page (`GET /sessions/{s}/operations/{o}/result/{token}?rowFormat=JSON`).
    async fn fetch_results(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<ResultPage, GatewayError>;

    /// Fetches one result page like `fetch_results`, its rows written in the result log's
    /// encoding as the page is read (`rows::convert_page`), for the result log's drain to
    /// append as they are.
    async fn fetch_page(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<RawPage, GatewayError>;
}
