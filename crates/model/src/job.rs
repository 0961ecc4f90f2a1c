//! The job model shared by the API, the use cases and the store.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sql_script::StatementKind;

/// Namespace for the Flink job ids the broker derives from its own job ids.
const FLINK_JOB_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_6b1e_2a8d_4c59_9d0e_5a3b_f1c2_7e44);

/// The broker's id of a job (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub Uuid);

impl JobId {
    /// Creates a fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Derives the Flink job id (32 lowercase hex) for the statement at `statement_index`.
    ///
    /// The same broker job and index always give the same id, so a retried submission can
    /// never start a second Flink job: Flink rejects a duplicate job id.
    pub fn flink_job_id_for_statement(&self, statement_index: u32) -> String {
        self.flink_job_id_for_statement_attempt(statement_index, 0)
    }

    /// Derives the Flink job id of one attempt at a statement. Attempt 0 is the first run;
    /// a query re-run after a broker restart gets the next attempt, and so a new id.
    pub fn flink_job_id_for_statement_attempt(&self, statement_index: u32, attempt: u32) -> String {
        if attempt == 0 {
            self.derive_flink_job_id(&format!("statement/{statement_index}"))
        } else {
            self.derive_flink_job_id(&format!("statement/{statement_index}/attempt/{attempt}"))
        }
    }

    /// Derives the Flink job id (32 lowercase hex) for a Python program.
    pub fn flink_job_id_for_program(&self) -> String {
        self.derive_flink_job_id("python-program")
    }

    fn derive_flink_job_id(&self, what: &str) -> String {
        let name = format!("{}/{}", self.0, what);
        Uuid::new_v5(&FLINK_JOB_ID_NAMESPACE, name.as_bytes())
            .simple()
            .to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    Sql,
    Python,
}

impl JobKind {
    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Sql => "SQL",
            JobKind::Python => "PYTHON",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SQL" => Some(JobKind::Sql),
            "PYTHON" => Some(JobKind::Python),
            _ => None,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    Pending,
    Submitting,
    Running,
    /// CancelJob was accepted; the job's Flink jobs are being stopped.
    Canceling,
    Finished,
    Failed,
    Canceled,
}

impl JobState {
    /// Returns true for FINISHED, FAILED and CANCELED.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Canceled
        )
    }

    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Submitting => "SUBMITTING",
            JobState::Running => "RUNNING",
            JobState::Canceling => "CANCELING",
            JobState::Finished => "FINISHED",
            JobState::Failed => "FAILED",
            JobState::Canceled => "CANCELED",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => JobState::Pending,
            "SUBMITTING" => JobState::Submitting,
            "RUNNING" => JobState::Running,
            "CANCELING" => JobState::Canceling,
            "FINISHED" => JobState::Finished,
            "FAILED" => JobState::Failed,
            "CANCELED" => JobState::Canceled,
            _ => return None,
        })
    }
}

/// Where one statement of a SQL job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatementState {
    Pending,
    Running,
    Finished,
    Failed,
    Canceled,
}

impl StatementState {
    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            StatementState::Pending => "PENDING",
            StatementState::Running => "RUNNING",
            StatementState::Finished => "FINISHED",
            StatementState::Failed => "FAILED",
            StatementState::Canceled => "CANCELED",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => StatementState::Pending,
            "RUNNING" => StatementState::Running,
            "FINISHED" => StatementState::Finished,
            "FAILED" => StatementState::Failed,
            "CANCELED" => StatementState::Canceled,
            _ => return None,
        })
    }
}

/// The execution mode of a SQL job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeMode {
    Streaming,
    Batch,
}

impl RuntimeMode {
    /// Returns the value of `execution.runtime-mode`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuntimeMode::Streaming => "streaming",
            RuntimeMode::Batch => "batch",
        }
    }
}

/// What a SQL job was asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlSpec {
    pub script: String,
    pub runtime_mode: RuntimeMode,
    pub properties: BTreeMap<String, String>,
    /// When the broker stops each query statement's results (unset: at their end).
    #[serde(default, skip_serializing_if = "ResultLimits::is_unlimited")]
    pub result_limits: ResultLimits,
}

/// How much of each query statement's results a SQL job logs before the broker stops the
/// query's Flink job: "the first 1 000 rows of this stream".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Counted from the query's first result page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<u64>,
}

impl ResultLimits {
    /// Returns true when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.max_rows.is_none() && self.max_duration_ms.is_none()
    }
}

/// Why a statement's result log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogEnd {
    /// The query's results ended: every row is logged.
    EndOfResults,
    /// `result_limits.max_rows` rows were logged; the query's Flink job was stopped.
    RowLimit,
    /// `result_limits.max_duration` passed; the query's Flink job was stopped.
    TimeLimit,
}

impl LogEnd {
    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogEnd::EndOfResults => "END_OF_RESULTS",
            LogEnd::RowLimit => "ROW_LIMIT",
            LogEnd::TimeLimit => "TIME_LIMIT",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "END_OF_RESULTS" => LogEnd::EndOfResults,
            "ROW_LIMIT" => LogEnd::RowLimit,
            "TIME_LIMIT" => LogEnd::TimeLimit,
            _ => return None,
        })
    }
}

/// How far a query statement's results are logged (the head of its result log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// The statement's attempt the logged rows come from.
    pub attempt: u32,
    /// Rows logged since row 0: the offset of the next row.
    pub rows_logged: u64,
    /// The first row still held; older rows were dropped by the sliding window.
    pub earliest_row: u64,
    pub bytes_held: u64,
    pub bytes_logged: u64,
    /// The SQL Gateway token of the next page to fetch (None once the log ended).
    pub next_token: Option<u64>,
    /// The token of the last fetch sent while earlier rows were still being appended (by a
    /// drain of an earlier version): when it is ahead of `next_token`, the gateway may have
    /// served a page that is not logged.
    pub fetch_sent: Option<u64>,
    pub end: Option<LogEnd>,
    pub updated_at: UnixMillis,
    /// When the retention janitor deleted the rows.
    pub deleted_at: Option<UnixMillis>,
    /// When the log was opened for its attempt: a query's `max_duration` counts from here.
    pub opened_at: Option<UnixMillis>,
}

/// What a Python job was asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonSpec {
    /// Inline source, when the program was given inline.
    pub script: Option<String>,
    /// Where the submitter downloads the program from, when given by URL.
    pub script_url: Option<String>,
    pub entry_module: Option<String>,
    pub py_files: Vec<String>,
    pub py_archives: Vec<String>,
    pub py_requirements: Option<String>,
    pub program_args: Vec<String>,
    pub parallelism: Option<u32>,
    pub flink_configuration: BTreeMap<String, String>,
    /// Small extra modules shipped next to the script: file name to source.
    #[serde(default)]
    pub inline_py_files: BTreeMap<String, String>,
}

impl PythonSpec {
    /// The parallelism the job runs with: its own, or its `parallelism.default` override,
    /// or Flink's default of 1.
    pub fn effective_parallelism(&self) -> u32 {
        self.parallelism
            .or_else(|| {
                self.flink_configuration
                    .get("parallelism.default")
                    .and_then(|value| value.trim().parse().ok())
            })
            .unwrap_or(1)
            .max(1)
    }
}

/// The payload of a job, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobSpec {
    Sql(SqlSpec),
    Python(PythonSpec),
}

impl JobSpec {
    /// Returns the kind of job this payload describes.
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Sql(_) => JobKind::Sql,
            JobSpec::Python(_) => JobKind::Python,
        }
    }
}

/// Milliseconds since the Unix epoch, as stored.
pub type UnixMillis = i64;

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_millis() -> UnixMillis {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// One statement of a SQL job as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRecord {
    pub index: u32,
    pub sql: String,
    pub state: StatementState,
    pub operation_handle: Option<String>,
    pub flink_job_id: Option<String>,
    pub error: Option<String>,
    /// True when the statement's results are part of the job's outcome (see
    /// [`StatementKind::is_result`]): the job waits until they were read to their end.
    pub is_query: bool,
    /// What the statement is, classified once when the job was submitted.
    pub kind: StatementKind,
    /// How many times the statement was re-run after a broker restart (its Flink job id
    /// follows the attempt).
    pub attempt: u32,
    /// Query statements: how far their results are logged.
    pub log: Option<LogSummary>,
}

/// One change of a job's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTransition {
    pub state: JobState,
    pub reason: String,
    pub at: UnixMillis,
}

/// A recorded job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub state: JobState,
    pub state_reason: String,
    pub request_id: Option<String>,
    /// The tenant the job belongs to, and the principal that submitted it.
    pub tenant: String,
    pub principal: String,
    pub labels: BTreeMap<String, String>,
    pub spec: JobSpec,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub ended_at: Option<UnixMillis>,
    /// The SQL Gateway session the job's statements run in.
    pub gateway_session: Option<String>,
    /// Python jobs: the Flink job id chosen for the program.
    pub flink_job_id: Option<String>,
    /// Python jobs: the tail of the submitter's output.
    pub submitter_output: Option<String>,
    /// Where the savepoint of a stop-with-savepoint was written.
    pub savepoint_path: Option<String>,
    /// The replica whose lease lets it drive the job.
    pub owner: Option<String>,
    /// A CancelJob recorded for the job's driver (JSON of the cancel's options).
    pub cancel_request: Option<String>,
    pub statements: Vec<StatementRecord>,
    pub history: Vec<StateTransition>,
}

/// A job to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub id: JobId,
    /// Unique per tenant when present.
    pub request_id: Option<String>,
    pub tenant: String,
    pub principal: String,
    pub labels: BTreeMap<String, String>,
    pub spec: JobSpec,
    /// The statements of a SQL job, all PENDING.
    pub statements: Vec<StatementRecord>,
    pub flink_job_id: Option<String>,
    pub created_at: UnixMillis,
    /// The replica that drives the job from the start, and until when its lease holds.
    pub lease: Option<(String, UnixMillis)>,
    /// The gRPC method submitting the job, when the submission is audited: the store records
    /// its audit event with the job, in the same transaction (and one for a repeated
    /// submission answered with the job already recorded).
    pub audited_as: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_job_ids_are_deterministic_lowercase_hex_and_distinct() {
        let id: JobId = "0b6f0a5e-3b7c-4d1e-9f00-1234567890ab".parse().unwrap();
        let a = id.flink_job_id_for_statement(0);
        assert_eq!(a, id.flink_job_id_for_statement(0));
        assert_ne!(a, id.flink_job_id_for_statement(1));
        assert_ne!(a, id.flink_job_id_for_program());
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }
}
