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
    /// A Flink SQL script, run through the SQL Gateway.
    Sql,
    /// A PyFlink program, run with `flink run -py`.
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
    /// Recorded; nothing was sent to Flink yet.
    Pending,
    /// Being submitted: statements are being run, or the submitter is starting the program.
    Submitting,
    /// Submitted; its Flink jobs and result drains are being followed.
    Running,
    /// CancelJob was accepted; the job's Flink jobs are being stopped.
    Canceling,
    /// Everything ran to its end.
    Finished,
    /// A statement, the submitter or a Flink job failed; the state reason says why.
    Failed,
    /// Canceled by CancelJob.
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
    /// Not submitted yet.
    Pending,
    /// Submitted to the SQL Gateway; no verdict yet.
    Running,
    /// Ran to its end.
    Finished,
    /// Failed; the statement's error says why.
    Failed,
    /// Stopped, or never run, because the job was canceled.
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
    /// Flink's streaming execution mode.
    Streaming,
    /// Flink's batch execution mode.
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
    /// The SQL script, as submitted.
    pub script: String,
    /// The execution mode the statements run in.
    pub runtime_mode: RuntimeMode,
    /// Session properties, as with `SET 'key' = 'value'`.
    pub properties: BTreeMap<String, String>,
    /// When the broker stops each query statement's results (unset: at their end).
    #[serde(default, skip_serializing_if = "ResultLimits::is_unlimited")]
    pub result_limits: ResultLimits,
    /// The savepoint the statements that start Flink jobs restore from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
}

/// How much of each query statement's results a SQL job logs before the broker stops the
/// query's Flink job: "the first 1 000 rows of this stream".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLimits {
    /// Rows logged per query statement.
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
    /// Bytes of encoded rows held now.
    pub bytes_held: u64,
    /// Bytes of encoded rows logged since row 0, dropped ones included.
    pub bytes_logged: u64,
    /// The SQL Gateway token of the next page to fetch (None once the log ended).
    pub next_token: Option<u64>,
    /// The token of the last fetch sent while earlier rows were still being appended (by a
    /// drain of an earlier version): when it is ahead of `next_token`, the gateway may have
    /// served a page that is not logged.
    pub fetch_sent: Option<u64>,
    /// Why the log ended (None while it is being written).
    pub end: Option<LogEnd>,
    /// When the log last changed.
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
    /// The module to run as (`-pym`) instead of a file.
    pub entry_module: Option<String>,
    /// Extra Python files or directories the submitter can read (`-pyfs`).
    pub py_files: Vec<String>,
    /// Python archives (`-pyarch`).
    pub py_archives: Vec<String>,
    /// The text of a requirements.txt (`-pyreq`).
    pub py_requirements: Option<String>,
    /// Arguments passed to the program.
    pub program_args: Vec<String>,
    /// The job's parallelism (`-p`); None keeps the cluster default.
    pub parallelism: Option<u32>,
    /// Flink configuration overrides, each passed as `-D key=value`.
    pub flink_configuration: BTreeMap<String, String>,
    /// Small extra modules shipped next to the script: file name to source.
    #[serde(default)]
    pub inline_py_files: BTreeMap<String, String>,
    /// The savepoint the program's Flink job restores from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
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
    /// A SQL job's script and settings.
    Sql(SqlSpec),
    /// A Python job's program and settings.
    Python(PythonSpec),
}

impl JobSpec {
    /// The savepoint the job's Flink jobs restore from.
    pub fn restore(&self) -> Option<&Restore> {
        match self {
            JobSpec::Sql(spec) => spec.restore.as_ref(),
            JobSpec::Python(spec) => spec.restore.as_ref(),
        }
    }

    /// Sets the savepoint the job's Flink jobs restore from.
    pub fn set_restore(&mut self, restore: Option<Restore>) {
        match self {
            JobSpec::Sql(spec) => spec.restore = restore,
            JobSpec::Python(spec) => spec.restore = restore,
        }
    }

    /// The payload without its restore (a revision's is set once its savepoint is taken).
    pub fn without_restore(&self) -> JobSpec {
        let mut spec = self.clone();
        spec.set_restore(None);
        spec
    }

    /// Returns the kind of job this payload describes.
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Sql(_) => JobKind::Sql,
            JobSpec::Python(_) => JobKind::Python,
        }
    }
}

/// How a savepoint is written (Flink's `SavepointFormatType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointFormat {
    /// The state backend-independent format every Flink version can restore.
    #[default]
    Canonical,
    /// The state backend's own format: faster to take and restore, tied to the backend.
    Native,
}

impl SavepointFormat {
    /// Returns Flink's name of the format (`formatType` in the REST API).
    pub fn as_str(&self) -> &'static str {
        match self {
            SavepointFormat::Canonical => "CANONICAL",
            SavepointFormat::Native => "NATIVE",
        }
    }
}

/// Why a savepoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointKind {
    /// TriggerSavepoint: the Flink job runs on.
    Triggered,
    /// CancelJob with a savepoint: the Flink job stops once it is taken.
    Stop,
}

/// Where a savepoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointState {
    /// Recorded; triggered (or about to be) and not done yet.
    InProgress,
    /// Written; `location` says where.
    Completed,
    /// Refused or failed; `error` says why.
    Failed,
}

/// One savepoint of one of a job's Flink jobs, recorded before it is triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavepointRecord {
    /// The trigger id the JobManager knows the savepoint by (32 lowercase hex): chosen by the
    /// broker before it asks, so that asking again joins the savepoint under way.
    pub trigger_id: String,
    /// The Flink job the savepoint is of.
    pub flink_job_id: String,
    /// SQL jobs: the statement that started the Flink job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_index: Option<u32>,
    /// Why it was taken.
    pub kind: SavepointKind,
    /// How it is written.
    pub format: SavepointFormat,
    /// The directory asked for (None: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Where it is.
    pub state: SavepointState,
    /// Where it was written, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was recorded.
    pub created_at: UnixMillis,
    /// When it completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<UnixMillis>,
}

/// Where the latest completed of a job's savepoints (oldest first) was written: the job's
/// savepoint path.
pub fn latest_savepoint_location(savepoints: &[SavepointRecord]) -> Option<&str> {
    savepoints
        .iter()
        .rev()
        .find(|savepoint| savepoint.state == SavepointState::Completed)
        .and_then(|savepoint| savepoint.location.as_deref())
}

/// Whether a job restored from a savepoint owns it (Flink's claim mode, `RestoreMode` before
/// Flink 2.0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimMode {
    /// The job does not own the savepoint: its first checkpoint is a full one, and the
    /// savepoint can be restored again or deleted by its owner (Flink's default).
    #[default]
    NoClaim,
    /// The job owns the savepoint and may delete it once later checkpoints subsume it.
    Claim,
}

impl ClaimMode {
    /// Returns Flink's name of the mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClaimMode::NoClaim => "NO_CLAIM",
            ClaimMode::Claim => "CLAIM",
        }
    }
}

/// Where a job's Flink jobs restore their state from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// The savepoint (or retained checkpoint) to restore.
    pub savepoint_path: String,
    /// Starts even when the savepoint holds state no operator of the new job takes.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// Who owns the savepoint afterwards.
    #[serde(default)]
    pub claim_mode: ClaimMode,
}

/// How a revision of a job came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpgradeKind {
    /// UpgradeJob: a new script or program replacing the running revision.
    Upgrade,
    /// A revision that failed to start replaced by the revision before it, restored from the
    /// same savepoint.
    Rollback,
}

impl UpgradeKind {
    /// Returns the name shown to callers.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpgradeKind::Upgrade => "UPGRADE",
            UpgradeKind::Rollback => "ROLLBACK",
        }
    }
}

/// Where the upgrade that made a revision is. Each step is recorded before it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpgradeStep {
    /// The previous revision is being stopped with a savepoint (a rollback: its Flink jobs
    /// are being waited for until the JobManager says they stopped).
    StoppingPrevious,
    /// The previous revision stopped; this one is being submitted, restoring from the
    /// savepoint, and watched until its Flink jobs run.
    Starting,
    /// This revision's Flink jobs run: the upgrade is done.
    Done,
    /// This revision failed to start; the revision before it runs again (`rollback_job_id`).
    RolledBack,
    /// The upgrade did not happen or was given up; `note` says why.
    Abandoned,
}

impl UpgradeStep {
    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpgradeStep::StoppingPrevious => "STOPPING_PREVIOUS",
            UpgradeStep::Starting => "STARTING",
            UpgradeStep::Done => "DONE",
            UpgradeStep::RolledBack => "ROLLED_BACK",
            UpgradeStep::Abandoned => "ABANDONED",
        }
    }

    /// Returns true while the upgrade still has a step to take.
    pub fn in_progress(&self) -> bool {
        matches!(self, UpgradeStep::StoppingPrevious | UpgradeStep::Starting)
    }
}

/// The upgrade (or rollback) that made a revision: the revision it replaces, how that one is
/// stopped and what this one restores from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgrade {
    /// An upgrade or a rollback.
    pub kind: UpgradeKind,
    /// The revision this one replaces (the running one for an upgrade, the one that failed
    /// to start for a rollback).
    pub previous_job_id: JobId,
    /// Where the upgrade is.
    pub step: UpgradeStep,
    /// Where the previous revision's savepoint is written (None: the cluster's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_directory: Option<String>,
    /// How the previous revision's savepoint is written.
    #[serde(default)]
    pub savepoint_format: SavepointFormat,
    /// Passed on to the restore: starts even when the savepoint holds state no operator of
    /// this revision takes.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// Passed on to the restore.
    #[serde(default)]
    pub claim_mode: ClaimMode,
    /// The savepoint this revision restores from, once the previous revision stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    /// The revision that replaced this one after it failed to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_job_id: Option<JobId>,
    /// Why the upgrade was rolled back or given up; or, while this revision is canceled to
    /// roll back, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Upgrade {
    /// The restore this revision's Flink jobs start with, once the savepoint is known.
    pub fn restore(&self) -> Option<Restore> {
        self.savepoint_path.as_ref().map(|path| Restore {
            savepoint_path: path.clone(),
            allow_non_restored_state: self.allow_non_restored_state,
            claim_mode: self.claim_mode,
        })
    }
}

/// Where a job stands among the revisions of one streaming job: every upgrade records a new
/// job (a revision) sharing the first one's lineage id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Shared by every revision: the id of the first.
    pub lineage_id: JobId,
    /// 1 for a job as submitted; each upgrade or rollback adds one.
    pub revision: u32,
    /// The savepoints handed from each revision to the next, oldest first (the last one is
    /// what this revision restored from, for a revision made by an upgrade).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub savepoint_chain: Vec<String>,
    /// How this revision came to be (None for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Upgrade>,
}

impl Lineage {
    /// The lineage of a job submitted on its own: revision 1 of its own lineage.
    pub fn first(id: JobId) -> Self {
        Self {
            lineage_id: id,
            revision: 1,
            savepoint_chain: Vec::new(),
            upgrade: None,
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
    /// The statement's position in the script, from 0.
    pub index: u32,
    /// The statement's text.
    pub sql: String,
    /// Where the statement is.
    pub state: StatementState,
    /// The SQL Gateway operation the statement runs as, once submitted.
    pub operation_handle: Option<String>,
    /// The Flink job id pinned for the statement, once it is recorded RUNNING.
    pub flink_job_id: Option<String>,
    /// Why the statement failed.
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
    /// The state the job moved to.
    pub state: JobState,
    /// Why it moved.
    pub reason: String,
    /// When it moved.
    pub at: UnixMillis,
}

/// A recorded job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The broker's id of the job.
    pub id: JobId,
    /// What the job runs.
    pub kind: JobKind,
    /// Where the job is in its life.
    pub state: JobState,
    /// Why the job is in its state (for FAILED: the root cause).
    pub state_reason: String,
    /// The caller's idempotency key, if one was given.
    pub request_id: Option<String>,
    /// The tenant the job belongs to.
    pub tenant: String,
    /// The principal that submitted the job.
    pub principal: String,
    /// The caller's free-form labels.
    pub labels: BTreeMap<String, String>,
    /// What the job was asked to run.
    pub spec: JobSpec,
    /// When the job was recorded.
    pub created_at: UnixMillis,
    /// When the job last changed.
    pub updated_at: UnixMillis,
    /// When the job reached a terminal state.
    pub ended_at: Option<UnixMillis>,
    /// The SQL Gateway session the job's statements run in.
    pub gateway_session: Option<String>,
    /// Python jobs: the Flink job id chosen for the program.
    pub flink_job_id: Option<String>,
    /// Python jobs: the tail of the submitter's output.
    pub submitter_output: Option<String>,
    /// Where the job's latest completed savepoint was written.
    pub savepoint_path: Option<String>,
    /// Every savepoint taken of the job's Flink jobs, oldest first.
    pub savepoints: Vec<SavepointRecord>,
    /// The replica whose lease lets it drive the job.
    pub owner: Option<String>,
    /// A CancelJob recorded for the job's driver (JSON of the cancel's options).
    pub cancel_request: Option<String>,
    /// SQL jobs: the statements, by index.
    pub statements: Vec<StatementRecord>,
    /// Every change of the job's state, oldest first.
    pub history: Vec<StateTransition>,
    /// The job's revision among the revisions of one streaming job, and the upgrade that
    /// made it.
    pub lineage: Lineage,
}

/// A job to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The id chosen for the job.
    pub id: JobId,
    /// Unique per tenant when present.
    pub request_id: Option<String>,
    /// The tenant the job belongs to.
    pub tenant: String,
    /// The principal submitting the job.
    pub principal: String,
    /// The caller's free-form labels.
    pub labels: BTreeMap<String, String>,
    /// What the job is asked to run.
    pub spec: JobSpec,
    /// The statements of a SQL job, all PENDING.
    pub statements: Vec<StatementRecord>,
    /// Python jobs: the Flink job id pinned for the program at admission.
    pub flink_job_id: Option<String>,
    /// When the job is recorded.
    pub created_at: UnixMillis,
    /// The replica that drives the job from the start, and until when its lease holds.
    pub lease: Option<(String, UnixMillis)>,
    /// The gRPC method submitting the job, when the submission is audited: the store records
    /// its audit event with the job, in the same transaction (and one for a repeated
    /// submission answered with the job already recorded).
    pub audited_as: Option<&'static str>,
    /// A revision made by an upgrade or a rollback; None: revision 1 of its own lineage.
    pub lineage: Option<Lineage>,
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
