//! The Flink JobManager REST API: job status, root causes, cancel and stop-with-savepoint, and
//! the TaskManagers' JVM memory.

mod client;

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

pub(crate) use client::ENDPOINTS;
pub use client::RestJobManager;
pub use flinkbroker_model::job::SavepointFormat;

/// Namespace of the name-based UUIDs that serve as stop-with-savepoint trigger ids.
const SAVEPOINT_TRIGGER_NAMESPACE: Uuid =
    Uuid::from_u128(0x5f1c_2b8e_7d4a_4c39_9e61_0a3b_f7d2_c845);

/// Derives the stop-with-savepoint trigger id of a Flink job.
///
/// The id is 32 lowercase hex digits, the format of Flink's `TriggerId`. The same job id
/// always gives the same trigger id, so a stop request repeated after a retry or a restart
/// joins the savepoint already under way instead of starting another.
pub fn savepoint_trigger_id(flink_job_id: &str) -> String {
    let name = format!(
        "stop-with-savepoint:{}",
        flink_job_id.trim().to_ascii_lowercase()
    );
    Uuid::new_v5(&SAVEPOINT_TRIGGER_NAMESPACE, name.as_bytes())
        .simple()
        .to_string()
}

/// A fresh trigger id for a savepoint (32 lowercase hex, the format of Flink's `TriggerId`),
/// to be recorded before the savepoint is asked for.
pub fn new_savepoint_trigger_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// The trigger id of the `attempt`-th retry of a savepoint first asked for as `trigger_id`:
/// Flink keeps a trigger's failure, so a savepoint asked for again needs another id; derived,
/// so that a retry repeated after a restart joins the one Flink is taking.
pub fn retry_trigger_id(trigger_id: &str, attempt: u32) -> String {
    let name = format!("savepoint-retry:{trigger_id}:{attempt}");
    Uuid::new_v5(&SAVEPOINT_TRIGGER_NAMESPACE, name.as_bytes())
        .simple()
        .to_string()
}

/// Returns true when Flink failed a savepoint only because the job was not ready for one yet
/// (its JobMaster still initializing, or some of its tasks not running yet): asking again
/// once the job runs may succeed.
pub fn savepoint_not_ready_yet(cause: &str) -> bool {
    cause.contains("while the JobManager is initializing")
        || cause.contains("Not all required tasks are currently running")
}

/// A Flink job's status (`GET /jobs/{id}` → `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlinkJobStatus {
    /// Received, waiting for its JobMaster to be created (`INITIALIZING`).
    Initializing,
    /// Created, no task started yet (`CREATED`).
    Created,
    /// Running (`RUNNING`).
    Running,
    /// Failed, waiting for its cleanup to complete (`FAILING`).
    Failing,
    /// Failed for good (`FAILED`).
    Failed,
    /// Being canceled (`CANCELLING`).
    Cancelling,
    /// Canceled (`CANCELED`).
    Canceled,
    /// Finished (`FINISHED`).
    Finished,
    /// Restarting after a failure (`RESTARTING`).
    Restarting,
    /// Stopped without ending, kept for another JobManager to recover (`SUSPENDED`).
    Suspended,
    /// Recovering the state of its tasks after a JobManager failover (`RECONCILING`).
    Reconciling,
}

impl FlinkJobStatus {
    /// Parses Flink's state name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INITIALIZING" => FlinkJobStatus::Initializing,
            "CREATED" => FlinkJobStatus::Created,
            "RUNNING" => FlinkJobStatus::Running,
            "FAILING" => FlinkJobStatus::Failing,
            "FAILED" => FlinkJobStatus::Failed,
            "CANCELLING" => FlinkJobStatus::Cancelling,
            "CANCELED" => FlinkJobStatus::Canceled,
            "FINISHED" => FlinkJobStatus::Finished,
            "RESTARTING" => FlinkJobStatus::Restarting,
            "SUSPENDED" => FlinkJobStatus::Suspended,
            "RECONCILING" => FlinkJobStatus::Reconciling,
            _ => return None,
        })
    }

    /// Returns Flink's state name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FlinkJobStatus::Initializing => "INITIALIZING",
            FlinkJobStatus::Created => "CREATED",
            FlinkJobStatus::Running => "RUNNING",
            FlinkJobStatus::Failing => "FAILING",
            FlinkJobStatus::Failed => "FAILED",
            FlinkJobStatus::Cancelling => "CANCELLING",
            FlinkJobStatus::Canceled => "CANCELED",
            FlinkJobStatus::Finished => "FINISHED",
            FlinkJobStatus::Restarting => "RESTARTING",
            FlinkJobStatus::Suspended => "SUSPENDED",
            FlinkJobStatus::Reconciling => "RECONCILING",
        }
    }

    /// Returns true for globally terminal states (FINISHED, FAILED, CANCELED).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            FlinkJobStatus::Finished | FlinkJobStatus::Failed | FlinkJobStatus::Canceled
        )
    }
}

/// How far a Flink job got (`GET /jobs/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    /// The job's status.
    pub status: FlinkJobStatus,
    /// Whether any of its tasks was ever deployed; false for a job the cluster failed before
    /// it could run anything.
    pub tasks_deployed: bool,
}

/// One job of `GET /jobs/overview`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOverview {
    /// The Flink job id (`jid`).
    pub flink_job_id: String,
    /// Its state.
    pub status: FlinkJobStatus,
    /// When its state last changed (`last-modification`, ms since the epoch).
    pub last_modification: i64,
}

/// Where a savepoint (or a stop-with-savepoint) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointStatus {
    /// The savepoint is being taken.
    InProgress,
    /// The savepoint was taken (and, for a stop, the job stopped).
    Completed {
        /// Where the savepoint is.
        location: String,
    },
    /// The savepoint failed.
    Failed {
        /// The failure's root cause.
        cause: String,
    },
}

/// A TaskManager's JVM memory in bytes, as its `Status.JVM.Memory.*` metrics report it. A
/// value is None when the JobManager has none (yet): it fetches TaskManager metrics in the
/// background, and answers a TaskManager it has not heard from with none at all. A limit the
/// JVM does not set (reported as -1) is None too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskManagerMemory {
    /// Heap in use (`Status.JVM.Memory.Heap.Used`).
    pub heap_used: Option<u64>,
    /// The most heap the JVM may take (`Status.JVM.Memory.Heap.Max`).
    pub heap_max: Option<u64>,
    /// Metaspace in use (`Status.JVM.Memory.Metaspace.Used`).
    pub metaspace_used: Option<u64>,
    /// The most metaspace the JVM may take (`Status.JVM.Memory.Metaspace.Max`, Flink's
    /// `taskmanager.memory.jvm-metaspace.size`).
    pub metaspace_max: Option<u64>,
}

/// What went wrong talking to the JobManager.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FlinkError {
    /// The JobManager could not be reached or did not answer in time.
    #[error("flink jobmanager unreachable: {0}")]
    Unreachable(String),
    /// The JobManager knows no job with this id.
    #[error("flink job {0} not found")]
    JobNotFound(String),
    /// The JobManager answered with an error.
    #[error("flink jobmanager error (http {status}): {message}")]
    Server {
        /// The HTTP status of the answer.
        status: u16,
        /// The error's message, reduced to its root cause.
        message: String,
    },
    /// An answer the broker could not understand.
    #[error("unexpected flink jobmanager response: {0}")]
    Protocol(String),
}

/// The JobManager REST endpoints the broker uses.
#[async_trait]
pub trait JobManager: Send + Sync {
    /// Checks that the JobManager answers (`GET /overview`).
    async fn ping(&self) -> Result<(), FlinkError>;

    /// Reads the cluster's Flink version (`GET /overview` → `flink-version`), e.g. `1.20.3`.
    async fn flink_version(&self) -> Result<String, FlinkError>;

    /// Reads the state of every job the cluster knows, running or kept in its history
    /// (`GET /jobs/overview`): one request for all of them, however many there are.
    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, FlinkError>;

    /// Reads a job's status (`GET /jobs/{id}`); `JobNotFound` for an unknown id.
    async fn job_status(&self, flink_job_id: &str) -> Result<FlinkJobStatus, FlinkError>;

    /// Reads a job's status and whether any of its tasks was ever deployed (`GET /jobs/{id}`:
    /// a vertex with a `start-time`); `JobNotFound` for an unknown id.
    async fn job_progress(&self, flink_job_id: &str) -> Result<JobProgress, FlinkError>;

    /// Reads the root cause of a failed job (`GET /jobs/{id}/exceptions`).
    ///
    /// The cause is reduced to its first meaningful line.
    async fn root_cause(&self, flink_job_id: &str) -> Result<Option<String>, FlinkError>;

    /// Cancels a job (`PATCH /jobs/{id}?mode=cancel`); cancelling an ended job is not an error.
    async fn cancel(&self, flink_job_id: &str) -> Result<(), FlinkError>;

    /// Triggers stop-with-savepoint (`POST /jobs/{id}/stop`) and returns the trigger id.
    ///
    /// The caller chooses the trigger id, so a repeated request is idempotent.
    async fn stop_with_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError>;

    /// Triggers a savepoint that leaves the job running (`POST /jobs/{id}/savepoints` with
    /// `cancel-job: false`) and returns the trigger id; the caller chooses it, as for a stop.
    async fn trigger_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError>;

    /// Reads a savepoint's (or a stop-with-savepoint's) status
    /// (`GET /jobs/{id}/savepoints/{trigger}`).
    async fn savepoint_status(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
    ) -> Result<SavepointStatus, FlinkError>;

    /// Lists the ids of the TaskManagers registered with the JobManager (`GET /taskmanagers`).
    async fn taskmanagers(&self) -> Result<Vec<String>, FlinkError>;

    /// Reads a TaskManager's JVM memory use and limits
    /// (`GET /taskmanagers/{id}/metrics?get=Status.JVM.Memory...`).
    ///
    /// The JobManager answers an id it does not know as one it has no metrics of yet: every
    /// value None, not an error.
    async fn taskmanager_memory(
        &self,
        taskmanager_id: &str,
    ) -> Result<TaskManagerMemory, FlinkError>;
}
