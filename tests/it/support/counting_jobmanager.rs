//! The stand-in's JobManager, counting the calls the broker makes by endpoint, able to make a
//! Flink job vanish as a JobManager whose history expired does (first from
//! `GET /jobs/overview`, then, when forgotten, from `GET /jobs/{id}` too), and, when asked,
//! failing cancel requests as if it could not be reached.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use flinkbroker_flink::jobmanager::{
    FlinkError, FlinkJobStatus, JobManager, JobOverview, JobProgress, RestJobManager,
    SavepointFormat, SavepointStatus, TaskManagerMemory,
};

/// A JobManager endpoint the broker called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Call {
    Overview,
    /// `GET /jobs/{id}` (status or progress).
    Job,
    Exceptions,
    Other,
}

#[derive(Default)]
struct State {
    calls: BTreeMap<Call, u64>,
    /// Not listed by the overview.
    unlisted: HashSet<String>,
    /// Not known by id either.
    forgotten: HashSet<String>,
}

/// The wrapper; see the module docs.
pub(crate) struct CountingJobManager {
    inner: RestJobManager,
    refuse_cancels: bool,
    state: Mutex<State>,
}

impl CountingJobManager {
    pub(crate) fn new(inner: RestJobManager, refuse_cancels: bool) -> Self {
        Self {
            inner,
            refuse_cancels,
            state: Mutex::new(State::default()),
        }
    }

    /// How many calls of `call` the broker made so far.
    pub(crate) fn calls(&self, call: Call) -> u64 {
        self.lock().calls.get(&call).copied().unwrap_or(0)
    }

    /// The overview stops listing the job; `GET /jobs/{id}` still answers for it.
    pub(crate) fn unlist(&self, flink_job_id: &str) {
        self.lock().unlisted.insert(flink_job_id.to_owned());
    }

    /// The JobManager no longer knows the job at all.
    pub(crate) fn forget(&self, flink_job_id: &str) {
        let mut state = self.lock();
        state.unlisted.insert(flink_job_id.to_owned());
        state.forgotten.insert(flink_job_id.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("counting jobmanager state")
    }

    fn count(&self, call: Call) {
        *self.lock().calls.entry(call).or_insert(0) += 1;
    }

    fn forgotten(&self, flink_job_id: &str) -> Result<(), FlinkError> {
        if self.lock().forgotten.contains(flink_job_id) {
            return Err(FlinkError::JobNotFound(flink_job_id.to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl JobManager for CountingJobManager {
    async fn ping(&self) -> Result<(), FlinkError> {
        self.count(Call::Other);
        self.inner.ping().await
    }

    async fn flink_version(&self) -> Result<String, FlinkError> {
        self.count(Call::Other);
        self.inner.flink_version().await
    }

    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, FlinkError> {
        self.count(Call::Overview);
        let jobs = self.inner.jobs_overview().await?;
        let state = self.lock();
        Ok(jobs
            .into_iter()
            .filter(|job| !state.unlisted.contains(&job.flink_job_id))
            .collect())
    }

    async fn job_status(&self, flink_job_id: &str) -> Result<FlinkJobStatus, FlinkError> {
        self.count(Call::Job);
        self.forgotten(flink_job_id)?;
        self.inner.job_status(flink_job_id).await
    }

    async fn job_progress(&self, flink_job_id: &str) -> Result<JobProgress, FlinkError> {
        self.count(Call::Job);
        self.forgotten(flink_job_id)?;
        self.inner.job_progress(flink_job_id).await
    }

    async fn root_cause(&self, flink_job_id: &str) -> Result<Option<String>, FlinkError> {
        self.count(Call::Exceptions);
        self.forgotten(flink_job_id)?;
        self.inner.root_cause(flink_job_id).await
    }

    async fn cancel(&self, flink_job_id: &str) -> Result<(), FlinkError> {
        self.count(Call::Other);
        if self.refuse_cancels {
            return Err(FlinkError::Unreachable("connection refused".into()));
        }
        self.inner.cancel(flink_job_id).await
    }

    async fn stop_with_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        self.count(Call::Other);
        self.inner
            .stop_with_savepoint(flink_job_id, trigger_id, target_directory, format)
            .await
    }

    async fn trigger_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        self.count(Call::Other);
        self.inner
            .trigger_savepoint(flink_job_id, trigger_id, target_directory, format)
            .await
    }

    async fn savepoint_status(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
    ) -> Result<SavepointStatus, FlinkError> {
        self.count(Call::Other);
        self.inner.savepoint_status(flink_job_id, trigger_id).await
    }

    async fn taskmanagers(&self) -> Result<Vec<String>, FlinkError> {
        self.count(Call::Other);
        self.inner.taskmanagers().await
    }

    async fn taskmanager_memory(
        &self,
        taskmanager_id: &str,
    ) -> Result<TaskManagerMemory, FlinkError> {
        self.count(Call::Other);
        self.inner.taskmanager_memory(taskmanager_id).await
    }
}
