//! The use cases: submit SQL, follow jobs, stream results, cancel, watch.
//!
//! `Controller` depends only on the `Store`, `SqlGateway` and `JobManager` traits. Each SQL job
//! is driven by one background task (`sql_job`) that submits its statements and then follows
//! it to its end; result streams (`results`) read query statements page by page.

mod python_job;
mod results;
mod sql_job;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::flink::{FlinkJobStatus, JobManager};
use crate::job::{Job, JobId, JobSpec, JobState, NewJob, RuntimeMode, SqlSpec, now_millis};
use crate::runner::JobRunner;
use crate::sql_gateway::{SessionHandle, SqlGateway};
use crate::sql_script;
use crate::store::{CreateOutcome, JobFilter, JobPage, Store, StoreError, pending_statements};

pub use python_job::PythonSubmission;
pub use results::{ResultMessage, ResultRequest, StreamEndReason};

/// Limits and pacing of the use cases.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_script_bytes: usize,
    pub max_statements: usize,
    pub heartbeat_interval: Duration,
    pub poll_interval: Duration,
    pub max_fetch_backoff: Duration,
    pub max_stream_duration: Duration,
    /// Highest parallelism a Python job may ask for.
    pub max_parallelism: u32,
    /// URL prefixes a Python script may be downloaded from.
    pub script_url_prefixes: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_script_bytes: 1024 * 1024,
            max_statements: 1000,
            heartbeat_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            max_fetch_backoff: Duration::from_millis(500),
            max_stream_duration: Duration::from_secs(24 * 3600),
            max_parallelism: 64,
            script_url_prefixes: Vec::new(),
        }
    }
}

/// A SQL submission, decoded and checked for shape by the API layer.
#[derive(Debug, Clone)]
pub struct SqlSubmission {
    pub script: String,
    pub runtime_mode: RuntimeMode,
    pub properties: BTreeMap<String, String>,
    pub request_id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What CancelJob was asked to do.
#[derive(Debug, Clone, Default)]
pub struct CancelOptions {
    pub stop_with_savepoint: bool,
    pub savepoint_directory: Option<String>,
}

/// Why a job's driving task stopped before the job's end.
enum Stop {
    /// CancelJob or shutdown: the canceller records the state.
    Cancelled,
    /// The job failed for this reason.
    Failed(String),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Failed(error.to_string())
    }
}

/// A job this process drives: the token that stops its task, and a bell that wakes it.
struct ActiveJob {
    cancel: CancellationToken,
    wake: Arc<Notify>,
}

/// The use cases, over the external systems' traits.
pub struct Controller {
    store: Arc<dyn Store>,
    gateway: Arc<dyn SqlGateway>,
    jobmanager: Arc<dyn JobManager>,
    runner: Arc<dyn JobRunner>,
    limits: Limits,
    events: broadcast::Sender<JobId>,
    active: Mutex<HashMap<JobId, ActiveJob>>,
    cursors: results::Cursors,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Controller {
    /// Creates the controller; `shutdown` ends its background tasks and open streams.
    pub fn new(
        store: Arc<dyn Store>,
        gateway: Arc<dyn SqlGateway>,
        jobmanager: Arc<dyn JobManager>,
        runner: Arc<dyn JobRunner>,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            store,
            gateway,
            jobmanager,
            runner,
            limits,
            events,
            active: Mutex::new(HashMap::new()),
            cursors: results::Cursors::default(),
            shutdown,
            tasks: TaskTracker::new(),
        })
    }

    /// Returns the limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waits until every background task has stopped (after shutdown), at most `grace`.
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                grace_ms = grace.as_millis() as u64,
                "background tasks still running after the shutdown grace period"
            );
        }
    }

    /// Picks up the jobs a previous run of the broker left unfinished.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        for job in self.store.list_unfinished().await? {
            match (job.kind, job.state) {
                (crate::job::JobKind::Sql, JobState::Pending) => {
                    info!(job_id = %job.id, "resuming a job recorded before the broker restarted");
                    self.spawn_sql_job(job);
                }
                (crate::job::JobKind::Sql, JobState::Submitting) => {
                    // Statements already submitted may have started Flink jobs: stop them, so
                    // that submitting again cannot leave duplicates running.
                    if let Err(error) = self.stop_statements(&job).await {
                        warn!(job_id = %job.id, %error, "cannot stop what the interrupted submission started");
                    }
                    let done = job
                        .statements
                        .iter()
                        .filter(|s| s.operation_handle.is_some())
                        .count();
                    let reason = format!(
                        "the broker restarted while submitting statement {} of {}; submit the job again",
                        done.max(1),
                        job.statements.len()
                    );
                    self.end_job(&job, JobState::Failed, &reason).await;
                }
                (crate::job::JobKind::Sql, JobState::Running) => {
                    info!(job_id = %job.id, "following a running job again after a restart");
                    self.spawn_sql_follow(job);
                }
                (crate::job::JobKind::Python, JobState::Pending) => {
                    info!(job_id = %job.id, "starting a python job recorded before the broker restarted");
                    self.spawn_python_job(job, true);
                }
                (crate::job::JobKind::Python, _) => {
                    info!(job_id = %job.id, "following a python job again after a restart");
                    self.spawn_python_job(job, false);
                }
                (crate::job::JobKind::Sql, state) => {
                    warn!(job_id = %job.id, ?state, "unfinished sql job in an unexpected state");
                }
            }
        }
        Ok(())
    }

    /// Records a SQL job and starts it, or returns the job already recorded for its request id.
    pub async fn submit_sql(self: &Arc<Self>, submission: SqlSubmission) -> Result<Job> {
        if submission.script.trim().is_empty() {
            return Err(Error::invalid("script", "must not be empty"));
        }
        if submission.script.len() > self.limits.max_script_bytes {
            return Err(Error::invalid(
                "script",
                format!(
                    "{} bytes exceeds the limit of {} bytes",
                    submission.script.len(),
                    self.limits.max_script_bytes
                ),
            ));
        }
        let statements = sql_script::split_statements(&submission.script)
            .map_err(|e| Error::invalid("script", e.to_string()))?;
        if statements.is_empty() {
            return Err(Error::invalid(
                "script",
                "contains no statements (only comments or semicolons)",
            ));
        }
        if statements.len() > self.limits.max_statements {
            return Err(Error::invalid(
                "script",
                format!(
                    "{} statements exceeds the limit of {}",
                    statements.len(),
                    self.limits.max_statements
                ),
            ));
        }
        let texts: Vec<String> = statements.into_iter().map(|s| s.text).collect();
        let spec = JobSpec::Sql(SqlSpec {
            script: submission.script,
            runtime_mode: submission.runtime_mode,
            properties: submission.properties,
        });
        let new_job = NewJob {
            id: JobId::new_random(),
            request_id: submission.request_id.clone(),
            labels: submission.labels,
            spec,
            statements: pending_statements(&texts),
            flink_job_id: None,
            created_at: now_millis(),
        };
        let (job, created) = self.record(new_job).await?;
        if created {
            info!(job_id = %job.id, statements = job.statements.len(), request_id = ?job.request_id, "sql job recorded");
            self.spawn_sql_job(job.clone());
        }
        Ok(job)
    }

    /// Records a new job, or finds the one recorded under the same request id; true when the
    /// job was recorded now and must be started.
    async fn record(&self, new_job: NewJob) -> Result<(Job, bool)> {
        let request_id = new_job.request_id.clone();
        match self.store.create_job(new_job).await? {
            CreateOutcome::Created(job) => {
                self.publish(job.id);
                Ok((job, true))
            }
            CreateOutcome::Existing(job) => {
                info!(job_id = %job.id, request_id = ?job.request_id, "repeated submission returns the existing job");
                Ok((job, false))
            }
            CreateOutcome::Conflict(job) => Err(Error::RequestIdConflict {
                request_id: request_id.unwrap_or_default(),
                job_id: job.id,
            }),
        }
    }

    /// Reads one job.
    pub async fn get_job(&self, id: JobId) -> Result<Job> {
        self.store.get_job(id).await.map_err(not_found)
    }

    /// Lists jobs.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<JobPage> {
        Ok(self.store.list_jobs(filter, page_size, page_token).await?)
    }

    /// Cancels a job: its running operations and the Flink jobs it started. A job that has
    /// already ended is returned as it is.
    pub async fn cancel_job(self: &Arc<Self>, id: JobId, options: CancelOptions) -> Result<Job> {
        let job = self.get_job(id).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        match job.kind {
            crate::job::JobKind::Sql => self.cancel_sql_job(job, options).await,
            crate::job::JobKind::Python => self.cancel_python_job(job, options).await,
        }
    }

    fn publish(&self, id: JobId) {
        // No receiver is not an error: nobody watches.
        let _ = self.events.send(id);
    }

    fn register_active(&self, id: JobId) -> (CancellationToken, Arc<Notify>) {
        let cancel = self.shutdown.child_token();
        let wake = Arc::new(Notify::new());
        if let Ok(mut active) = self.active.lock() {
            active.insert(
                id,
                ActiveJob {
                    cancel: cancel.clone(),
                    wake: wake.clone(),
                },
            );
        }
        (cancel, wake)
    }

    fn active_cancel_token(&self, id: JobId) -> Option<CancellationToken> {
        self.active
            .lock()
            .ok()
            .and_then(|active| active.get(&id).map(|a| a.cancel.clone()))
    }

    fn wake(&self, id: JobId) {
        if let Ok(active) = self.active.lock()
            && let Some(job) = active.get(&id)
        {
            job.wake.notify_one();
        }
    }

    /// Forgets the task of a job once it stopped; a task registered since (after a failed
    /// cancel) holds a live token and stays.
    fn forget_active(&self, id: JobId) {
        if let Ok(mut active) = self.active.lock()
            && active.get(&id).is_some_and(|a| a.cancel.is_cancelled())
        {
            active.remove(&id);
        }
    }

    /// Moves a job to a state, tells watchers, and logs it.
    async fn transition(&self, id: JobId, state: JobState, reason: &str) -> Result<Job> {
        let job = self.store.transition(id, state, reason).await?;
        info!(job_id = %id, state = state.as_str(), reason, "job state changed");
        self.publish(id);
        Ok(job)
    }

    /// Ends a job: records the terminal state, closes its gateway session, stops its task.
    async fn end_job(&self, job: &Job, state: JobState, reason: &str) {
        match self.transition(job.id, state, reason).await {
            Ok(_) | Err(Error::Store(StoreError::TerminalState { .. })) => {}
            Err(error) => {
                warn!(job_id = %job.id, %error, "cannot record the end of the job");
            }
        }
        if let Some(token) = self.active_cancel_token(job.id) {
            token.cancel();
        }
        self.forget_active(job.id);
        self.close_session_of(job).await;
        self.cursors.forget_job(job.id);
    }

    /// Returns why a Flink job that ended without finishing ended (FAILED with its root cause,
    /// or CANCELED), or None while it runs or after it finished.
    async fn flink_job_failure(
        &self,
        flink_job_id: &str,
        status: FlinkJobStatus,
    ) -> Option<String> {
        match status {
            FlinkJobStatus::Failed => {
                let cause = match self.jobmanager.root_cause(flink_job_id).await {
                    Ok(Some(cause)) => cause,
                    Ok(None) => "no root cause reported".into(),
                    Err(error) => format!("root cause unavailable: {error}"),
                };
                Some(format!("flink job {flink_job_id} failed: {cause}"))
            }
            FlinkJobStatus::Canceled => Some(format!(
                "flink job {flink_job_id} was canceled outside the broker"
            )),
            _ => None,
        }
    }

    async fn close_session_of(&self, job: &Job) {
        let session = match self.store.get_job(job.id).await {
            Ok(current) => current.gateway_session,
            Err(_) => job.gateway_session.clone(),
        };
        let Some(session) = session else { return };
        match self
            .gateway
            .close_session(&SessionHandle(session.clone()))
            .await
        {
            Ok(()) => info!(job_id = %job.id, session = %session, "sql gateway session closed"),
            Err(error) => {
                warn!(job_id = %job.id, session = %session, %error, "cannot close the sql gateway session")
            }
        }
        if let Err(error) = self.store.set_gateway_session(job.id, None).await {
            warn!(job_id = %job.id, %error, "cannot record the closed session");
        }
    }
}

/// Sends one message unless the receiver is gone or does not take it within `limit`.
async fn send_within<T>(tx: &tokio::sync::mpsc::Sender<T>, message: T, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, tx.send(message)).await,
        Ok(Ok(()))
    )
}

/// Maps the store's not-found to the crate's, so the message names the job.
fn not_found(error: StoreError) -> Error {
    match error {
        StoreError::JobNotFound(id) => Error::JobNotFound(id),
        other => Error::Store(other),
    }
}
