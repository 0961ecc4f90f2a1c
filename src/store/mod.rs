//! Durable job records: the `Store` trait and its sea-orm implementation (SQLite, PostgreSQL).

pub mod entities;
pub mod migration;
pub mod sea;

use std::collections::BTreeMap;

use async_trait::async_trait;
use thiserror::Error;

use crate::job::{Job, JobId, JobKind, JobState, NewJob, StatementRecord};

pub use sea::SeaStore;

/// What went wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or failed.
    #[error("database error: {0}")]
    Database(String),
    /// A job id the store does not hold.
    #[error("job {0} not found")]
    JobNotFound(JobId),
    /// A state change out of a terminal state.
    #[error("job {job_id} is already {from:?}; cannot move it to {to:?}")]
    TerminalState {
        job_id: JobId,
        from: JobState,
        to: JobState,
    },
    /// A stored row the store cannot read back.
    #[error("corrupt job record {job_id}: {detail}")]
    Corrupt { job_id: String, detail: String },
    /// A malformed ListJobs page token.
    #[error("invalid page token")]
    InvalidPageToken,
}

/// The outcome of recording a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The job was recorded now.
    Created(Job),
    /// A job with the same `request_id` and the same payload (spec and labels) exists.
    Existing(Job),
    /// A job with the same `request_id` but a different payload exists.
    Conflict(Job),
}

/// Which jobs ListJobs returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Any of these states (empty: any state).
    pub states: Vec<JobState>,
    pub kind: Option<JobKind>,
    /// Every one of these labels with this value.
    pub labels: BTreeMap<String, String>,
}

/// One page of ListJobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Opaque; None on the last page.
    pub next_page_token: Option<String>,
}

/// Changes to a statement's record; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementUpdate {
    pub state: Option<crate::job::StatementState>,
    pub operation_handle: Option<String>,
    pub flink_job_id: Option<String>,
    pub error: Option<String>,
    pub is_query: Option<bool>,
    pub attempt: Option<u32>,
}

/// Durable job records. Every method is atomic.
#[async_trait]
pub trait Store: Send + Sync {
    /// Records a new job (state PENDING, with its statements and a first history entry), or
    /// finds the job already recorded under the same `request_id`.
    async fn create_job(&self, job: NewJob) -> Result<CreateOutcome, StoreError>;

    /// Reads a job with its statements and history.
    async fn get_job(&self, id: JobId) -> Result<Job, StoreError>;

    /// Lists jobs, newest first (by creation time, then id), one page at a time.
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<JobPage, StoreError>;

    /// Moves a job to `state` with `reason`, appending to its history. A job in a terminal
    /// state cannot move (`TerminalState`); moving to the live state it is in with a new reason
    /// records that reason in the history too (the same reason changes nothing; a terminal
    /// state's history stays as it is).
    /// Sets `ended_at` when the new state is terminal.
    async fn transition(&self, id: JobId, state: JobState, reason: &str)
    -> Result<Job, StoreError>;

    /// Updates one statement of a SQL job.
    async fn update_statement(
        &self,
        id: JobId,
        index: u32,
        update: StatementUpdate,
    ) -> Result<(), StoreError>;

    /// Records the gateway session a SQL job runs in (None once it is closed).
    async fn set_gateway_session(&self, id: JobId, session: Option<&str>)
    -> Result<(), StoreError>;

    /// Records the tail of a Python job's submitter output.
    async fn set_submitter_output(&self, id: JobId, output: &str) -> Result<(), StoreError>;

    /// Records where a stop-with-savepoint wrote the savepoint.
    async fn set_savepoint_path(&self, id: JobId, path: &str) -> Result<(), StoreError>;

    /// Lists the jobs not in a terminal state (for reconciling after a restart).
    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError>;
}

/// Returns the statements of a job in the shape `NewJob` wants, all PENDING, each classified
/// once here.
pub fn pending_statements(statements: &[String]) -> Vec<StatementRecord> {
    let count = statements.len();
    statements
        .iter()
        .enumerate()
        .map(|(index, sql)| {
            let kind = crate::sql_script::classify(sql);
            StatementRecord {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                sql: sql.clone(),
                state: crate::job::StatementState::Pending,
                operation_handle: None,
                flink_job_id: None,
                error: None,
                is_query: kind.is_result(index, count),
                kind,
                attempt: 0,
            }
        })
        .collect()
}
