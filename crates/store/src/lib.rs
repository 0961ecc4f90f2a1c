//! Durable job records: the `Store` trait and its sea-orm implementation (SQLite, PostgreSQL).
//!
//! Every method of [`Store`], [`ResultLog`], [`Leases`] and [`AuditTrail`] is atomic: work of
//! more than one statement runs in one transaction, reads in one snapshot, and a failed call
//! leaves nothing half-written. Failures are answered as [`StoreError`]s: a row the store
//! cannot read back is [`StoreError::Corrupt`], a state change out of a terminal state
//! [`StoreError::TerminalState`], an append of an attempt the result log no longer holds
//! [`StoreError::StaleLog`].
//!
//! # Layout
//! - `lib.rs`: the traits ([`Store`], [`ResultLog`], [`Leases`], [`AuditTrail`]), their
//!   argument and answer types, [`StoreError`] and [`pending_statements`].
//! - [`migration`]: the schema migrations, run by [`SeaStore::connect`].
//! - `entities`: the sea-orm entities of the tables the migrations create.
//! - `sea`: [`SeaStore`]: connecting, migrating, transactions, reading jobs back, and the
//!   `Store` impl, which hands the rest to the files below.
//! - `sea_jobs`: job writes: recording a job, transitions, statement and column updates.
//! - `sea_list`: ListJobs paging and the unfinished jobs.
//! - `sea_metrics`: a tenant's usage and the counts the metrics read.
//! - `sea_log`: the result log ([`ResultLog`]).
//! - `sea_lease`: leases, the replicas' heartbeats and recorded cancels ([`Leases`]).
//! - `sea_audit`: the audit trail ([`AuditTrail`]).
//! - `sea_retention`: the retention of ended jobs ([`Store::expire_jobs`]).

mod entities;
pub mod migration;
mod sea;
mod sea_audit;
mod sea_jobs;
mod sea_lease;
mod sea_list;
mod sea_log;
mod sea_log_sqlite;
mod sea_metrics;
mod sea_retention;
mod sea_wal;

use std::collections::BTreeMap;

use async_trait::async_trait;
use thiserror::Error;

use flinkbroker_model::audit::{AuditFilter, AuditPage, NewAuditEvent};
use flinkbroker_model::job::{
    Job, JobId, JobKind, JobState, Lineage, LogEnd, LogSummary, NewJob, Restore, SavepointRecord,
    StatementRecord, UnixMillis,
};

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
        /// The job asked to move.
        job_id: JobId,
        /// The terminal state it is in.
        from: JobState,
        /// The state it was asked to move to.
        to: JobState,
    },
    /// A stored row the store cannot read back.
    #[error("corrupt job record {job_id}: {detail}")]
    Corrupt {
        /// The id of the job the row belongs to, as stored (empty when it has none).
        job_id: String,
        /// What could not be read back.
        detail: String,
    },
    /// A malformed ListJobs page token.
    #[error("invalid page token")]
    InvalidPageToken,
    /// An append to a result log of an attempt the log no longer holds (the statement ran
    /// again, or another replica took the job over).
    #[error(
        "the result log of statement {index} of job {job_id} holds attempt {held}, not {appended}"
    )]
    StaleLog {
        /// The job of the statement.
        job_id: JobId,
        /// The statement's index in its script.
        index: u32,
        /// The attempt the log holds.
        held: u32,
        /// The attempt the append came from.
        appended: u32,
    },
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
    /// The revision the new job replaces was replaced already, by this job.
    Replaced(Job),
}

/// Which jobs ListJobs returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs of this tenant (None: every tenant).
    pub tenant: Option<String>,
    /// Any of these states (empty: any state).
    pub states: Vec<JobState>,
    /// Only jobs of this kind (None: any kind).
    pub kind: Option<JobKind>,
    /// Every one of these labels with this value.
    pub labels: BTreeMap<String, String>,
    /// Only revisions of this lineage (None: any).
    pub lineage: Option<JobId>,
}

/// One page of ListJobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The jobs of the page, newest first.
    pub jobs: Vec<Job>,
    /// Opaque; None on the last page.
    pub next_page_token: Option<String>,
}

/// Changes to a statement's record; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementUpdate {
    /// The statement's new state.
    pub state: Option<flinkbroker_model::job::StatementState>,
    /// The SQL Gateway operation handle the statement runs under.
    pub operation_handle: Option<String>,
    /// The Flink job id the statement is pinned to.
    pub flink_job_id: Option<String>,
    /// Why the statement failed.
    pub error: Option<String>,
    /// Whether the statement returns rows to stream.
    pub is_query: Option<bool>,
    /// The attempt the statement is on.
    pub attempt: Option<u32>,
}

/// Rows of a statement's results, `first_row..first_row + rows`, as one encoded protobuf
/// `RowBatch` (its `rows` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// The offset of the batch's first row in the statement's results.
    pub first_row: u64,
    /// How many rows the batch holds.
    pub rows: u64,
    /// The encoded `RowBatch`.
    pub data: Vec<u8>,
}

/// What one append adds to a result log, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend {
    /// The attempt the rows come from; an append of another attempt is `StaleLog`.
    pub attempt: u32,
    /// In order, the first starting at the log's `rows_logged`.
    pub batches: Vec<LogBatch>,
    /// The gateway token of the next page (None when the log ends with this append).
    pub next_token: Option<u64>,
    /// How the log ends, when it ends with this append.
    pub end: Option<LogEnd>,
    /// Streaming queries: the oldest batches are dropped while more than this many bytes
    /// are held (the sliding window).
    pub window_bytes: Option<u64>,
}

/// A read of a result log: its head, its schema and the batches asked for, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The log's head as of the read.
    pub head: LogSummary,
    /// The result columns as the SQL Gateway reports them (JSON).
    pub schema: Vec<u8>,
    /// Batches ending after the row asked for, in order.
    pub batches: Vec<LogBatch>,
}

/// The result log: every query statement's rows, durably, from any offset still held.
#[async_trait]
pub trait ResultLog: Send + Sync {
    /// Opens the log of a statement's attempt: the log recorded for that attempt as it is,
    /// or a new empty one (whatever an earlier attempt logged is deleted).
    async fn open_log(
        &self,
        job_id: JobId,
        index: u32,
        attempt: u32,
        schema: Vec<u8>,
    ) -> Result<LogSummary, StoreError>;

    /// Appends batches (and the next token, or the end) to a statement's log, dropping the
    /// oldest batches beyond the window; returns the log's new head.
    async fn append_log(
        &self,
        job_id: JobId,
        index: u32,
        append: LogAppend,
    ) -> Result<LogSummary, StoreError>;

    /// Reads a statement's log from `from_row`: at most `max_batches` batches, stopping
    /// after `max_bytes`. None when the statement has no log.
    async fn read_log(
        &self,
        job_id: JobId,
        index: u32,
        from_row: u64,
        max_batches: u64,
        max_bytes: u64,
    ) -> Result<Option<LogRead>, StoreError>;

    /// Deletes the rows of the logs of jobs that ended before `ended_before` (the head
    /// stays, marked deleted); returns how many logs were deleted. At most `limit` logs per call.
    async fn expire_logs(&self, ended_before: UnixMillis, limit: u64) -> Result<u64, StoreError>;
}

/// Leases: which replica drives each live job. A lease is held until a time; the holder
/// renews it, and another replica may claim it once that time passed.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease of an unfinished job for `owner` until `until`, when nobody holds it,
    /// it expired before `now`, or `owner` holds it already. True when taken.
    async fn claim(
        &self,
        id: JobId,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Extends every lease `owner` holds on an unfinished job to `until`; returns those jobs.
    async fn renew(&self, owner: &str, until: UnixMillis) -> Result<Vec<JobId>, StoreError>;

    /// Lists unfinished jobs whose lease nobody holds or expired before `now` (at most `limit`).
    async fn claimable(&self, now: UnixMillis, limit: u64) -> Result<Vec<JobId>, StoreError>;

    /// Gives up every lease `owner` holds (a replica stopping), so others claim them at once.
    async fn release(&self, owner: &str) -> Result<(), StoreError>;

    /// Extends to `until` the leases `owner` still holds at `now` (not expired, not handed
    /// over); returns those jobs. Unlike [`Leases::renew`], a lease that ran out stays out.
    async fn extend(
        &self,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<JobId>, StoreError>;

    /// The jobs whose lease `owner` holds at `now` (not expired, not handed over), read
    /// without extending them.
    async fn held(&self, owner: &str, now: UnixMillis) -> Result<Vec<JobId>, StoreError>;

    /// Hands one lease over (to whichever replica claims it next): only while `owner` holds it
    /// at `now`, it then ends at `now`; the owner stays recorded until the next claim, so the
    /// next owner knows whom it took the job from. True when handed over.
    async fn hand_over(&self, id: JobId, owner: &str, now: UnixMillis) -> Result<bool, StoreError>;

    /// Records that `replica` is alive until `until`, and forgets the replicas whose heartbeat
    /// ran out before `now`.
    async fn heartbeat(
        &self,
        replica: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<(), StoreError>;

    /// What fair shares are computed from, read in one snapshot: the replicas alive at `now`,
    /// the unfinished jobs and those of them nobody holds a lease on at `now`.
    async fn census(&self, now: UnixMillis) -> Result<Census, StoreError>;

    /// A replica stopping: forgets its heartbeat and ends at `now` every lease it holds, except
    /// those of `still_driven` jobs (their drivers had not ended; those leases run out).
    async fn leave(
        &self,
        replica: &str,
        now: UnixMillis,
        still_driven: &[JobId],
    ) -> Result<(), StoreError>;

    /// Records a CancelJob for the job's driver, unless one is recorded or the job ended.
    async fn request_cancel(&self, id: JobId, request: &str) -> Result<(), StoreError>;

    /// Lists the jobs `owner` drives with a cancel recorded that their driver did not act
    /// on yet (still not CANCELING), with the recorded request.
    async fn cancel_requests(&self, owner: &str) -> Result<Vec<(JobId, String)>, StoreError>;
}

/// The replicas alive and the jobs they share, as one snapshot read them ([`Leases::census`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// The ids of the replicas whose heartbeat had not run out, sorted.
    pub replicas: Vec<String>,
    /// Jobs not in a terminal state.
    pub unfinished_jobs: u64,
    /// Unfinished jobs whose lease nobody held (never claimed, expired or handed over).
    pub unclaimed_jobs: u64,
}

/// The audit trail: appended, listed, and deleted only once older than its retention.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Appends one event.
    async fn record_audit(&self, event: NewAuditEvent) -> Result<(), StoreError>;

    /// Lists events, newest first, one page at a time.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<AuditPage, StoreError>;

    /// Deletes the oldest events recorded before `before`, at most `limit`; returns how many.
    async fn expire_audit(&self, before: UnixMillis, limit: u64) -> Result<u64, StoreError>;
}

/// What a tenant holds now, for its quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Jobs not in a terminal state.
    pub live_jobs: u64,
    /// The parallelism of its live Python jobs, summed (a job that names none counts its
    /// `parallelism.default` override, or 1).
    pub python_parallelism: u64,
    /// Encoded result bytes its jobs' result logs hold.
    pub result_log_bytes: u64,
}

/// The jobs of one kind in one state, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobGroup {
    /// The kind of the jobs.
    pub kind: JobKind,
    /// The state of the jobs.
    pub state: JobState,
    /// How many jobs the group holds.
    pub jobs: u64,
    /// The oldest last change of a job in the group; read for the live states only.
    pub oldest_change: Option<UnixMillis>,
}

/// What the metrics read from the store at each scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobMetrics {
    /// Every (kind, state) that holds a job.
    pub by_kind_and_state: Vec<JobGroup>,
    /// Live jobs whose lease nobody holds or expired.
    pub live_without_lease: u64,
    /// Bytes held by the largest result log of a live job that is still being written.
    pub largest_open_log_bytes: u64,
}

/// Durable job records. Every method is atomic.
#[async_trait]
pub trait Store: ResultLog + Leases + AuditTrail + Send + Sync {
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

    /// Records the savepoints of a job's Flink jobs (the whole list, oldest first), and the
    /// latest completed one's location as the job's savepoint path.
    async fn set_savepoints(
        &self,
        id: JobId,
        savepoints: &[SavepointRecord],
    ) -> Result<(), StoreError>;

    /// Lists the jobs not in a terminal state (for reconciling after a restart).
    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError>;

    /// Records where a revision's upgrade is (its lineage as a whole), and the restore its
    /// Flink jobs start with once the savepoint is known (written into its spec).
    async fn set_lineage(
        &self,
        id: JobId,
        lineage: &Lineage,
        restore: Option<&Restore>,
    ) -> Result<(), StoreError>;

    /// The revision that replaced a job (by an upgrade or a rollback), if any.
    async fn successor_of(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// The revisions whose upgrade has a step left to take, ended jobs included (a revision
    /// that failed to start and is not rolled back yet).
    async fn upgrades_in_progress(&self) -> Result<Vec<Job>, StoreError>;

    /// What a tenant's jobs hold now: live jobs, live Python parallelism, result-log bytes.
    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError>;

    /// Counts jobs by kind and state, the live jobs without a lease holder and the largest
    /// open result log (for the metrics), as of `now`.
    async fn job_metrics(&self, now: UnixMillis) -> Result<JobMetrics, StoreError>;

    /// The job recorded under a tenant's request id, if any.
    async fn job_for_request(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<Job>, StoreError>;

    /// Deletes at most `limit` jobs that ended (a terminal state) before `ended_before`,
    /// oldest first, with their statements, history, labels and result logs, in one
    /// transaction; returns how many were deleted. Their audit events stay (they expire with
    /// the audit trail's own retention). A revision stays while the revision replacing it is
    /// live or its upgrade has a step left, and so does a revision whose own upgrade has a
    /// step left.
    async fn expire_jobs(&self, ended_before: UnixMillis, limit: u64) -> Result<u64, StoreError>;
}

/// Returns the statements of a job in the shape `NewJob` wants, all PENDING, each classified
/// once here.
pub fn pending_statements(statements: &[String]) -> Vec<StatementRecord> {
    let count = statements.len();
    statements
        .iter()
        .enumerate()
        .map(|(index, sql)| {
            let kind = flinkbroker_model::sql_script::classify(sql);
            StatementRecord {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                sql: sql.clone(),
                state: flinkbroker_model::job::StatementState::Pending,
                operation_handle: None,
                flink_job_id: None,
                error: None,
                is_query: kind.is_result(index, count),
                kind,
                attempt: 0,
                log: None,
            }
        })
        .collect()
}
