//! A fake JobManager: the status of each Flink job by its id, set by the test (or by the fake
//! gateway when a statement starts a Flink job); cancels and stops are recorded and act as
//! [`OnCancel`] says. Its TaskManagers and their JVM memory are set by the test too (none
//! until it does).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Changes, Link, lock};
use flinkbroker_flink::jobmanager::{
    FlinkError, FlinkJobStatus, JobManager, JobOverview, JobProgress, SavepointFormat,
    SavepointStatus, TaskManagerMemory,
};

/// What a cancel (`PATCH /jobs/{id}?mode=cancel`) does to a running Flink job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCancel {
    /// The job is CANCELED at once.
    #[default]
    Cancel,
    /// The job is CANCELLING until the test sets its status (as a real job that takes a while
    /// to stop).
    Cancelling,
    /// Nothing changes: the job runs on (a cancel that is lost, or a job that does not stop).
    Ignore,
}

/// One call the fake JobManager answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobManagerCall {
    /// `ping`.
    Ping,
    /// `flink_version`.
    FlinkVersion,
    /// `jobs_overview`.
    Overview,
    /// `job_status` of this Flink job.
    Status(String),
    /// `root_cause` of this Flink job.
    RootCause(String),
    /// `job_progress` of this Flink job.
    Progress(String),
    /// `cancel` of this Flink job.
    Cancel(String),
    /// `stop_with_savepoint`.
    StopWithSavepoint {
        /// The Flink job.
        flink_job_id: String,
        /// The caller's trigger id.
        trigger_id: String,
        /// The target directory asked for.
        directory: Option<String>,
        /// The format asked for.
        format: SavepointFormat,
    },
    /// `trigger_savepoint`.
    TriggerSavepoint {
        /// The Flink job.
        flink_job_id: String,
        /// The caller's trigger id.
        trigger_id: String,
        /// The target directory asked for.
        directory: Option<String>,
        /// The format asked for.
        format: SavepointFormat,
    },
    /// `savepoint_status`.
    SavepointStatus {
        /// The Flink job.
        flink_job_id: String,
        /// The trigger id asked about.
        trigger_id: String,
    },
    /// `taskmanagers`.
    TaskManagers,
    /// `taskmanager_memory` of this TaskManager.
    TaskManagerMemory(String),
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<String, FlinkJobStatus>,
    root_causes: BTreeMap<String, String>,
    /// Flink jobs none of whose tasks was ever deployed.
    undeployed: std::collections::BTreeSet<String>,
    /// Completed savepoints (and stops with one): trigger id → location.
    savepoints: BTreeMap<String, String>,
    on_cancel: OnCancel,
    /// The version `flink_version` reports (1.20.3 unless the test sets another).
    flink_version: Option<String>,
    /// While true, savepoints stay IN_PROGRESS.
    savepoints_pending: bool,
    /// The registered TaskManagers, in the order `taskmanagers` lists them, with their memory.
    taskmanagers: Vec<(String, TaskManagerMemory)>,
    calls: Vec<JobManagerCall>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changes: Changes,
}

/// A fake JobManager, one handle of a shared one (see [`FakeJobManager::reconnect`]).
#[derive(Debug, Clone)]
pub struct FakeJobManager {
    shared: Arc<Shared>,
    link: Link,
}

impl Default for FakeJobManager {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeJobManager {
    /// A JobManager that knows no Flink job; cancels cancel at once.
    pub fn new() -> Self {
        FakeJobManager {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changes: Changes::new(),
            }),
            link: Link::new(),
        }
    }

    /// Another handle on the same JobManager, over a new link (for a restarted broker).
    pub fn reconnect(&self) -> Self {
        FakeJobManager {
            shared: Arc::clone(&self.shared),
            link: Link::new(),
        }
    }

    /// Keeps savepoints (and stops with one) IN_PROGRESS while `pending` is true (as a large state takes a
    /// while to write); they complete once it is false again.
    pub fn set_savepoints_pending(&self, pending: bool) {
        lock(&self.shared.state).savepoints_pending = pending;
        self.shared.changes.bump();
    }

    /// Makes `flink_version` report `version` (1.20.3 by default).
    pub fn set_flink_version(&self, version: &str) {
        lock(&self.shared.state).flink_version = Some(version.to_owned());
    }

    /// Cuts this handle's link: its calls, in flight or later, never answer.
    pub fn cut(&self) {
        self.link.cut();
    }

    /// Sets (or adds) a Flink job's status.
    pub fn set_status(&self, flink_job_id: &str, status: FlinkJobStatus) {
        lock(&self.shared.state)
            .jobs
            .insert(flink_job_id.to_owned(), status);
        self.shared.changes.bump();
    }

    /// Forgets a Flink job (as a JobManager whose history expired): `JobNotFound` from now on.
    pub fn forget(&self, flink_job_id: &str) {
        lock(&self.shared.state).jobs.remove(flink_job_id);
        self.shared.changes.bump();
    }

    /// A Flink job's status, None when the JobManager does not know it.
    pub fn status(&self, flink_job_id: &str) -> Option<FlinkJobStatus> {
        lock(&self.shared.state).jobs.get(flink_job_id).copied()
    }

    /// The ids of every Flink job the JobManager knows, with their statuses.
    pub fn jobs(&self) -> BTreeMap<String, FlinkJobStatus> {
        lock(&self.shared.state).jobs.clone()
    }

    /// Sets the root cause `root_cause` reports for a (failed) Flink job.
    pub fn set_root_cause(&self, flink_job_id: &str, cause: &str) {
        lock(&self.shared.state)
            .root_causes
            .insert(flink_job_id.to_owned(), cause.to_owned());
    }

    /// Fails a Flink job as a cluster without free slots does: at once, before any of its
    /// tasks was deployed, with `cause` as its root cause.
    pub fn refuse(&self, flink_job_id: &str, cause: &str) {
        let mut state = lock(&self.shared.state);
        state
            .jobs
            .insert(flink_job_id.to_owned(), FlinkJobStatus::Failed);
        state
            .root_causes
            .insert(flink_job_id.to_owned(), cause.to_owned());
        state.undeployed.insert(flink_job_id.to_owned());
        drop(state);
        self.shared.changes.bump();
    }

    /// Sets the TaskManagers registered from now on, in the order `taskmanagers` lists them,
    /// with the JVM memory `taskmanager_memory` reports of each.
    pub fn set_taskmanagers(&self, taskmanagers: Vec<(String, TaskManagerMemory)>) {
        lock(&self.shared.state).taskmanagers = taskmanagers;
        self.shared.changes.bump();
    }

    /// Sets what a cancel does from now on.
    pub fn set_on_cancel(&self, on_cancel: OnCancel) {
        lock(&self.shared.state).on_cancel = on_cancel;
    }

    /// Every call answered so far, in order, over any handle.
    pub fn calls(&self) -> Vec<JobManagerCall> {
        lock(&self.shared.state).calls.clone()
    }

    /// The Flink job ids of the cancels asked for, in order.
    pub fn cancels(&self) -> Vec<String> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter_map(|call| match call {
                JobManagerCall::Cancel(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// How many times a Flink job's status was read.
    pub fn status_reads(&self, flink_job_id: &str) -> usize {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter(|call| matches!(call, JobManagerCall::Status(id) if id == flink_job_id))
            .count()
    }

    /// How many times a Flink job's status was read after its first cancel (0 before it).
    pub fn status_reads_after_cancel(&self, flink_job_id: &str) -> usize {
        let state = lock(&self.shared.state);
        let Some(first) = state
            .calls
            .iter()
            .position(|call| matches!(call, JobManagerCall::Cancel(id) if id == flink_job_id))
        else {
            return 0;
        };
        state.calls[first..]
            .iter()
            .filter(|call| matches!(call, JobManagerCall::Status(id) if id == flink_job_id))
            .count()
    }

    /// Waits until `done` holds, looking again after each call and each change the test makes.
    pub async fn wait_until(&self, done: impl Fn(&FakeJobManager) -> bool) {
        self.shared.changes.wait_until(|| done(self)).await;
    }

    /// Starts a Flink job under `flink_job_id` as a submission would; false when the
    /// JobManager has a job under that id already (Flink refuses a duplicate).
    pub(crate) fn submit(&self, flink_job_id: &str, status: FlinkJobStatus) -> bool {
        let submitted = {
            let mut state = lock(&self.shared.state);
            if state.jobs.contains_key(flink_job_id) {
                false
            } else {
                state.jobs.insert(flink_job_id.to_owned(), status);
                true
            }
        };
        self.shared.changes.bump();
        submitted
    }

    /// Records a call and wakes up the waiters.
    fn record(&self, call: JobManagerCall) -> std::sync::MutexGuard<'_, State> {
        let mut state = lock(&self.shared.state);
        state.calls.push(call);
        self.shared.changes.bump();
        state
    }
}

#[async_trait]
impl JobManager for FakeJobManager {
    async fn ping(&self) -> Result<(), FlinkError> {
        self.link
            .call(async {
                drop(self.record(JobManagerCall::Ping));
                Ok(())
            })
            .await
    }

    async fn flink_version(&self) -> Result<String, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::FlinkVersion);
                Ok(state
                    .flink_version
                    .clone()
                    .unwrap_or_else(|| "1.20.3".to_owned()))
            })
            .await
    }

    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::Overview);
                Ok(state
                    .jobs
                    .iter()
                    .map(|(id, status)| JobOverview {
                        flink_job_id: id.clone(),
                        status: *status,
                        last_modification: 0,
                    })
                    .collect())
            })
            .await
    }

    async fn job_status(&self, flink_job_id: &str) -> Result<FlinkJobStatus, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::Status(flink_job_id.to_owned()));
                state
                    .jobs
                    .get(flink_job_id)
                    .copied()
                    .ok_or_else(|| FlinkError::JobNotFound(flink_job_id.to_owned()))
            })
            .await
    }

    async fn root_cause(&self, flink_job_id: &str) -> Result<Option<String>, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::RootCause(flink_job_id.to_owned()));
                if !state.jobs.contains_key(flink_job_id) {
                    return Err(FlinkError::JobNotFound(flink_job_id.to_owned()));
                }
                Ok(state.root_causes.get(flink_job_id).cloned())
            })
            .await
    }

    async fn job_progress(&self, flink_job_id: &str) -> Result<JobProgress, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::Progress(flink_job_id.to_owned()));
                let status = state
                    .jobs
                    .get(flink_job_id)
                    .copied()
                    .ok_or_else(|| FlinkError::JobNotFound(flink_job_id.to_owned()))?;
                Ok(JobProgress {
                    status,
                    tasks_deployed: !state.undeployed.contains(flink_job_id),
                })
            })
            .await
    }

    async fn cancel(&self, flink_job_id: &str) -> Result<(), FlinkError> {
        self.link
            .call(async {
                let mut state = self.record(JobManagerCall::Cancel(flink_job_id.to_owned()));
                let on_cancel = state.on_cancel;
                let Some(status) = state.jobs.get_mut(flink_job_id) else {
                    return Err(FlinkError::JobNotFound(flink_job_id.to_owned()));
                };
                if !status.is_terminal() {
                    match on_cancel {
                        OnCancel::Cancel => *status = FlinkJobStatus::Canceled,
                        OnCancel::Cancelling => *status = FlinkJobStatus::Cancelling,
                        OnCancel::Ignore => {}
                    }
                }
                Ok(())
            })
            .await
    }

    async fn trigger_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        self.link
            .call(async {
                let mut state = self.record(JobManagerCall::TriggerSavepoint {
                    flink_job_id: flink_job_id.to_owned(),
                    trigger_id: trigger_id.to_owned(),
                    directory: target_directory.map(str::to_owned),
                    format,
                });
                match state.jobs.get(flink_job_id) {
                    None => return Err(FlinkError::JobNotFound(flink_job_id.to_owned())),
                    Some(FlinkJobStatus::Running) => {}
                    Some(other) => {
                        return Err(FlinkError::Server {
                            status: 409,
                            message: format!("job {flink_job_id} is {}", other.as_str()),
                        });
                    }
                }
                // The savepoint completes at once; the job runs on.
                let location = format!(
                    "{}/savepoint-{}-{}",
                    target_directory.unwrap_or("file:///savepoints"),
                    &flink_job_id[..flink_job_id.len().min(6)],
                    &trigger_id[..trigger_id.len().min(12)]
                );
                state.savepoints.insert(trigger_id.to_owned(), location);
                Ok(trigger_id.to_owned())
            })
            .await
    }

    async fn stop_with_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        self.link
            .call(async {
                let mut state = self.record(JobManagerCall::StopWithSavepoint {
                    flink_job_id: flink_job_id.to_owned(),
                    trigger_id: trigger_id.to_owned(),
                    directory: target_directory.map(str::to_owned),
                    format,
                });
                let Some(status) = state.jobs.get_mut(flink_job_id) else {
                    return Err(FlinkError::JobNotFound(flink_job_id.to_owned()));
                };
                // The savepoint completes at once and the job finishes, as a stop does.
                *status = FlinkJobStatus::Finished;
                let location = format!(
                    "{}/savepoint-{}",
                    target_directory.unwrap_or("file:///savepoints"),
                    &flink_job_id[..flink_job_id.len().min(6)]
                );
                state.savepoints.insert(trigger_id.to_owned(), location);
                Ok(trigger_id.to_owned())
            })
            .await
    }

    async fn savepoint_status(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
    ) -> Result<SavepointStatus, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::SavepointStatus {
                    flink_job_id: flink_job_id.to_owned(),
                    trigger_id: trigger_id.to_owned(),
                });
                match state.savepoints.get(trigger_id) {
                    Some(_) if state.savepoints_pending => Ok(SavepointStatus::InProgress),
                    Some(location) => Ok(SavepointStatus::Completed {
                        location: location.clone(),
                    }),
                    None => Err(FlinkError::Server {
                        status: 404,
                        message: format!("no savepoint triggered as {trigger_id}"),
                    }),
                }
            })
            .await
    }

    async fn taskmanagers(&self) -> Result<Vec<String>, FlinkError> {
        self.link
            .call(async {
                let state = self.record(JobManagerCall::TaskManagers);
                Ok(state
                    .taskmanagers
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect())
            })
            .await
    }

    async fn taskmanager_memory(
        &self,
        taskmanager_id: &str,
    ) -> Result<TaskManagerMemory, FlinkError> {
        self.link
            .call(async {
                let state =
                    self.record(JobManagerCall::TaskManagerMemory(taskmanager_id.to_owned()));
                // A JobManager answers a TaskManager it does not know with no metrics at all.
                Ok(state
                    .taskmanagers
                    .iter()
                    .find(|(id, _)| id == taskmanager_id)
                    .map(|(_, memory)| *memory)
                    .unwrap_or_default())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taskmanagers_are_the_ones_the_test_set_and_unknown_ones_have_no_memory() {
        let jobmanager = FakeJobManager::new();
        assert_eq!(jobmanager.taskmanagers().await, Ok(Vec::new()));

        let memory = TaskManagerMemory {
            heap_used: Some(34_402_096),
            heap_max: Some(436_207_616),
            metaspace_used: Some(38_437_336),
            metaspace_max: None,
        };
        jobmanager.set_taskmanagers(vec![
            ("tm-b".to_owned(), memory),
            ("tm-a".to_owned(), TaskManagerMemory::default()),
        ]);
        assert_eq!(
            jobmanager.taskmanagers().await,
            Ok(vec!["tm-b".to_owned(), "tm-a".to_owned()])
        );
        assert_eq!(jobmanager.taskmanager_memory("tm-b").await, Ok(memory));
        assert_eq!(
            jobmanager.taskmanager_memory("tm-gone").await,
            Ok(TaskManagerMemory::default())
        );
        assert_eq!(
            jobmanager.calls(),
            vec![
                JobManagerCall::TaskManagers,
                JobManagerCall::TaskManagers,
                JobManagerCall::TaskManagerMemory("tm-b".to_owned()),
                JobManagerCall::TaskManagerMemory("tm-gone".to_owned()),
            ]
        );
    }
}
