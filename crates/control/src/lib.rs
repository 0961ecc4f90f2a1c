//! The use cases, one file per RPC, and the drivers that own each live job. Nothing here
//! speaks gRPC: the server decodes calls into the types here and maps [`error::Error`] to a
//! status.
//!
//! Every job that is not over has exactly one driver task in this process (`driver`,
//! `sql::driver`, `python::driver`). The driver owns the job's live state, writes every change
//! to the store for durability, publishes the current job on a `watch` channel, and takes
//! commands (cancel, results read to their end) over a channel. The store is never used to
//! coordinate tasks: GetJob, WatchJob and result streams of a live job read what its driver
//! publishes. After a restart (or a crash), `recover` starts a driver for every unfinished
//! job, and each driver resumes where the job was.
//!
//! One file per RPC:
//! - `sql/submit.rs`: SubmitSql. `python/submit.rs`: SubmitPython.
//! - `results/stream.rs`: StreamOperationResults.
//! - `get_job.rs`: GetJob. `list_jobs.rs`: ListJobs. `watch_job.rs`: WatchJob.
//!   `cancel_job.rs`: CancelJob. `list_audit.rs`: ListAuditEvents.
//!
//! And what they share:
//! - `driver.rs`: what every driver shares (durable writes, the published job, commands);
//!   `registry.rs`: the live jobs of this process.
//! - `admission.rs`: the limits a submission must stay within.
//! - `stop.rs`: stopping Flink jobs and waiting until the JobManager says they stopped.
//!
//! # Layout
//! - [`error`]: the use cases' error type.
//! - [`metrics`]: the series the drivers and use cases record.
//! - the modules above, private: the controller's methods are the API.

mod admission;
mod cancel_job;
mod driver;
mod ended_jobs;
pub mod error;
mod get_job;
mod list_audit;
mod list_jobs;
pub mod metrics;
mod observer;
mod python;
mod quotas;
mod registry;
mod replicas;
mod results;
mod retention;
mod savepoint;
mod sql;
mod stop;
mod trace;
mod upgrade;
mod validate;
mod watch_job;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

use crate::error::{Error, Result};
use flinkbroker_flink::jobmanager::JobManager;
use flinkbroker_flink::sql_gateway::SqlGateway;
use flinkbroker_model::job::{Job, JobKind, NewJob, RuntimeMode};
use flinkbroker_model::tenants::TenantPolicies;
use flinkbroker_runner::JobRunner;
use flinkbroker_store::{CreateOutcome, Store, StoreError};

pub use python::PythonSubmission;
pub use results::{ResultMessage, ResultRequest, StreamEndReason};
pub use savepoint::SavepointRequest;
pub use upgrade::{Revision, UpgradeRequest};
pub use validate::{ScriptPosition, StatementCheck, ValidateRequest, Verdict};

/// Limits and pacing of the use cases.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest script accepted, in bytes.
    pub max_script_bytes: usize,
    /// The most statements one script may hold.
    pub max_statements: usize,
    /// How often a live job's gateway session is kept alive.
    pub heartbeat_interval: Duration,
    /// How often operations and Flink jobs are polled.
    pub poll_interval: Duration,
    /// The longest pause between fetches of a result page that is not ready.
    pub max_fetch_backoff: Duration,
    /// The longest one result stream may stay open.
    pub max_stream_duration: Duration,
    /// Each tenant's guardrails (configuration keys, script URLs, parallelism) and quotas.
    pub tenants: TenantPolicies,
    /// How long a cancelled Flink job may take to stop before its job turns FAILED.
    pub cancel_timeout: Duration,
    /// Batch jobs: the most encoded result bytes logged per query statement.
    pub result_log_max_bytes: u64,
    /// Streaming jobs: the sliding window of encoded result bytes held per query statement.
    pub result_log_window_bytes: u64,
    /// How long result logs are kept after their job ended.
    pub result_retention: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// How long ended jobs are kept (with their statements, history and result logs) after
    /// they ended.
    pub job_retention: Duration,
    /// How often expired result logs (and audit events) are deleted.
    pub janitor_interval: Duration,
    /// The most encoded rows in one result stream message.
    pub max_message_bytes: u64,
    /// How often a result stream waiting for rows says how far the log is.
    pub progress_interval: Duration,
    /// How long a lease on a job lasts without renewal.
    pub lease_duration: Duration,
    /// How often the database is looked at for what other replicas changed.
    pub replica_poll_interval: Duration,
    /// How often a replica over its fair share of the live jobs hands some over.
    pub rebalance_interval: Duration,
    /// The most jobs a replica hands over at once (0: none; it keeps what it has).
    pub rebalance_batch: u64,
    /// How many times a statement whose Flink job the cluster refused at once (no slots,
    /// before any task ran) runs again before its job fails.
    pub refused_job_retries: u32,
    /// The pause before the first such retry; each next one waits twice as long, at most
    /// [`MAX_REFUSED_JOB_PAUSE`].
    pub refused_job_backoff: Duration,
    /// How long a savepoint may take before it is given up (a stop's Flink job runs on).
    pub savepoint_timeout: Duration,
    /// The most distinct rows one TABLE view of a statement's results holds.
    pub max_table_rows: u64,
    /// How long a revision made by UpgradeJob may take to run before it is cancelled and
    /// rolled back.
    pub upgrade_timeout: Duration,
    /// How long a new revision's Flink jobs must have run before its upgrade is done (a
    /// revision failing sooner is rolled back).
    pub upgrade_running_for: Duration,
    /// How many jobs taken up again (after a restart or a takeover) are resumed at once; the
    /// others wait until one follows its job again.
    pub resume_concurrency: usize,
}

/// The longest pause before a statement whose Flink job was refused runs again.
pub const MAX_REFUSED_JOB_PAUSE: Duration = Duration::from_secs(300);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_script_bytes: 1024 * 1024,
            max_statements: 1000,
            heartbeat_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            max_fetch_backoff: Duration::from_millis(500),
            max_stream_duration: Duration::from_secs(24 * 3600),
            tenants: TenantPolicies::default(),
            cancel_timeout: Duration::from_secs(60),
            result_log_max_bytes: 1 << 30,
            result_log_window_bytes: 256 << 20,
            result_retention: Duration::from_secs(24 * 3600),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            job_retention: Duration::from_secs(90 * 24 * 3600),
            janitor_interval: Duration::from_secs(60),
            max_message_bytes: 4 << 20,
            progress_interval: Duration::from_secs(2),
            lease_duration: Duration::from_secs(10),
            replica_poll_interval: Duration::from_millis(200),
            rebalance_interval: Duration::from_secs(5),
            rebalance_batch: 100,
            refused_job_retries: 3,
            refused_job_backoff: Duration::from_secs(2),
            savepoint_timeout: Duration::from_secs(300),
            max_table_rows: 1_000_000,
            upgrade_timeout: Duration::from_secs(300),
            upgrade_running_for: Duration::from_secs(10),
            resume_concurrency: 32,
        }
    }
}

/// A SQL submission, decoded and checked for shape by the API layer.
#[derive(Debug, Clone)]
pub struct SqlSubmission {
    /// The tenant the job belongs to and the principal submitting it.
    pub tenant: String,
    /// The principal submitting the job.
    pub principal: String,
    /// The SQL script, as submitted.
    pub script: String,
    /// Batch or streaming.
    pub runtime_mode: RuntimeMode,
    /// Flink configuration set in the job's gateway session.
    pub properties: BTreeMap<String, String>,
    /// The caller's idempotency key, if given.
    pub request_id: Option<String>,
    /// The caller's labels, for filtering ListJobs.
    pub labels: BTreeMap<String, String>,
    /// How much of each query's results is logged.
    pub result_limits: flinkbroker_model::job::ResultLimits,
    /// The savepoint the statements that start Flink jobs restore from.
    pub restore: Option<flinkbroker_model::job::Restore>,
    /// Validates the script first (as ValidateSql) and refuses it when a statement is
    /// invalid.
    pub validate_first: bool,
}

/// What CancelJob was asked to do (recorded as JSON for another replica's driver).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CancelOptions {
    /// Stops the Flink jobs with a savepoint instead of cancelling them.
    pub stop_with_savepoint: bool,
    /// Where the savepoint goes; None for the cluster's default.
    pub savepoint_directory: Option<String>,
    /// How the savepoint is written.
    #[serde(default)]
    pub savepoint_format: flinkbroker_model::job::SavepointFormat,
}

/// The use cases, over the external systems' traits.
pub struct Controller {
    store: Arc<dyn Store>,
    gateway: Arc<dyn SqlGateway>,
    jobmanager: Arc<dyn JobManager>,
    runner: Arc<dyn JobRunner>,
    limits: Limits,
    live: registry::Registry,
    ended: ended_jobs::EndedJobs,
    quotas: quotas::Quotas,
    /// Held while a submission is checked against the quotas and recorded.
    admission: tokio::sync::Mutex<()>,
    tails: results::Tails,
    /// This replica's name in the job leases.
    replica: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The cluster's Flink version, read from the JobManager the first time a job needs it
    /// (to restore from a savepoint).
    flink_version: tokio::sync::OnceCell<flinkbroker_model::flink_version::FlinkVersion>,
    /// The revisions whose start a follower task watches (UpgradeJob's last step).
    upgrade_followers: upgrade::Followers,
    /// The jobs this replica is handing over: their drivers stop, then their leases go.
    handovers: replicas::Handovers,
    /// The one reader of the cluster's jobs overview that every driver follows its Flink
    /// jobs through.
    observer: Arc<observer::Observer>,
    /// The slots of jobs being taken up again (`Limits::resume_concurrency`).
    resume_slots: Arc<tokio::sync::Semaphore>,
}

impl Controller {
    /// Creates the controller; `shutdown` ends its drivers and open streams.
    pub fn new(
        store: Arc<dyn Store>,
        gateway: Arc<dyn SqlGateway>,
        jobmanager: Arc<dyn JobManager>,
        runner: Arc<dyn JobRunner>,
        limits: Limits,
        replica: String,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let quotas = quotas::Quotas::new();
        let tasks = TaskTracker::new();
        let resume_concurrency = limits.resume_concurrency.max(1);
        let observer = observer::Observer::new(
            Arc::clone(&jobmanager),
            limits.poll_interval,
            shutdown.clone(),
            tasks.clone(),
        );
        Arc::new(Self {
            quotas,
            store,
            gateway,
            jobmanager,
            runner,
            limits,
            live: registry::Registry::default(),
            ended: ended_jobs::EndedJobs::default(),
            admission: tokio::sync::Mutex::new(()),
            tails: results::Tails::default(),
            replica,
            shutdown,
            tasks,
            flink_version: tokio::sync::OnceCell::new(),
            upgrade_followers: upgrade::Followers::default(),
            handovers: replicas::Handovers::default(),
            observer,
            resume_slots: Arc::new(tokio::sync::Semaphore::new(resume_concurrency)),
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

    /// Returns this replica's name in the job leases.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Records a new job, or finds the one recorded under the same request id; starts a
    /// driver for a job recorded now.
    async fn record(self: &Arc<Self>, mut new_job: NewJob) -> Result<Job> {
        // A repeated submission returns its job whatever the quotas say now.
        let repeated = match &new_job.request_id {
            Some(request_id) => self
                .store
                .job_for_request(&new_job.tenant, request_id)
                .await?
                .is_some(),
            None => false,
        };
        // One admission at a time on this replica, so that concurrent submissions of one
        // tenant cannot all pass the usage counts.
        let _admission = self.admission.lock().await;
        if !repeated {
            let policy = self.limits.tenants.policy(&new_job.tenant);
            self.quotas.take_submission(&new_job.tenant, &policy)?;
            self.quotas
                .check_usage(self.store.as_ref(), &new_job, &policy)
                .await?;
        }
        // Recorded with this replica's lease, so that no other replica takes it up first.
        new_job.lease = Some((self.replica.clone(), self.lease_until()));
        let request_id = new_job.request_id.clone();
        // The store writes the submission's audit event with the job.
        let audited = new_job.audited_as.is_some();
        match self.store.create_job(new_job).await? {
            CreateOutcome::Created(job) => {
                if audited {
                    crate::metrics::audit_event(flinkbroker_model::audit::AuditAction::Submit);
                }
                info!(job_id = %job.id, kind = job.kind.as_str(), statements = job.statements.len(), request_id = job.request_id.as_deref(), "job recorded");
                self.spawn_driver(job.clone(), None);
                Ok(job)
            }
            CreateOutcome::Existing(job) => {
                info!(job_id = %job.id, request_id = job.request_id.as_deref(), "repeated submission returns the existing job");
                Ok(self.live.current(job.id).unwrap_or(job))
            }
            CreateOutcome::Conflict(job) => Err(Error::RequestIdConflict {
                request_id: request_id.unwrap_or_default(),
                job_id: job.id,
            }),
            CreateOutcome::Replaced(successor) => Err(Error::Aborted(format!(
                "job {} was replaced already: its revision {} is job {}",
                successor
                    .lineage
                    .upgrade
                    .as_ref()
                    .map_or(successor.lineage.lineage_id, |u| u.previous_job_id),
                successor.lineage.revision,
                successor.id
            ))),
        }
    }

    /// Starts the one driver of a job, unless it already has one.
    fn spawn_driver(self: &Arc<Self>, job: Job, resumed: Option<String>) {
        let Some(core) = driver::Core::register(Arc::clone(self), job, resumed) else {
            return;
        };
        let this = Arc::clone(self);
        // In the trace of the current span: the call that submitted the job (its trace then
        // follows the job to its end), else whatever took the job up (none at a restart).
        let span = crate::trace::job_span(
            &core.job.id.to_string(),
            core.job.kind.as_str(),
            &core.job.tenant,
        );
        let driver = async move {
            let id = core.job.id;
            // The registry forgets the job however the driver ends, a panic included.
            let guard = registry::Registration::new(&this.live, id);
            let mut core = core;
            core.resume_savepoints();
            // A revision made by UpgradeJob first stops the revision it replaces (which
            // may itself wait for a resume slot: so the slot is taken after).
            let lost = if !Box::pin(core.prepare_upgrade()).await {
                core.lost
            } else if core.resuming && !core.take_resume_slot().await {
                // Shutdown: the job is taken up at the next start.
                false
            } else {
                match core.job.kind {
                    JobKind::Sql => sql::driver::run(core).await,
                    JobKind::Python => python::driver::run(core).await,
                }
            };
            drop(guard);
            if lost {
                Box::pin(this.take_up_again(id)).await;
            }
        };
        self.tasks.spawn(driver.instrument(span));
    }

    /// Starts a new driver for a job whose driver could not record its progress, once the
    /// store answers again (shutdown leaves it to the next start).
    async fn take_up_again(self: &Arc<Self>, id: flinkbroker_model::job::JobId) {
        let mut pause = LOST_JOB_FIRST_PAUSE;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            match self.store.get_job(id).await {
                Ok(job) if job.state.is_terminal() => return,
                Ok(job) if job.owner.as_deref() != Some(self.replica.as_str()) => {
                    info!(job_id = %id, owner = ?job.owner, "the job is driven by another replica now");
                    return;
                }
                // Handed over (or its lease ran out) meanwhile: another replica takes it up.
                Ok(_) if !self.may_take_up_again(id).await => return,
                Ok(job) => {
                    info!(job_id = %id, "taking up a job whose progress could not be recorded");
                    self.spawn_driver(job, Some("after its progress could not be recorded".into()));
                    return;
                }
                Err(error) => {
                    warn!(job_id = %id, %error, "cannot read the job to take it up again; retrying");
                    pause = (pause * 2).min(LOST_JOB_MAX_PAUSE);
                }
            }
        }
    }
}

/// The first and the longest pause before a job whose driver lost the store is taken up again.
const LOST_JOB_FIRST_PAUSE: Duration = Duration::from_secs(1);
const LOST_JOB_MAX_PAUSE: Duration = Duration::from_secs(30);

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
