//! A fake runner of Python submitters: `start` records the spec and leaves a submitter
//! RUNNING; from then on its state and output are what the test sets. Nothing is submitted to
//! Flink by itself: the test sets the Flink job on the [`super::FakeJobManager`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Changes, Link, lock};
use flinkbroker_model::job::JobId;
use flinkbroker_runner::{JobRunner, RunnerError, SubmitterSpec, SubmitterState};

/// One call the fake runner answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerCall {
    /// `start` with this spec.
    Start(Box<SubmitterSpec>),
    /// `state` of a job's submitter.
    State(JobId),
    /// `output` of a job's submitter.
    Output(JobId),
    /// `delete` of a job's submitter.
    Delete(JobId),
}

#[derive(Debug, Clone)]
struct Submitter {
    state: SubmitterState,
    output: String,
}

#[derive(Debug, Default)]
struct State {
    submitters: BTreeMap<JobId, Submitter>,
    /// Starts refused with this error, one per start, before any is accepted.
    refusals: Vec<RunnerError>,
    calls: Vec<RunnerCall>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changes: Changes,
}

/// A fake `JobRunner`, one handle of a shared one (see [`FakeRunner::reconnect`]).
#[derive(Debug, Clone)]
pub struct FakeRunner {
    shared: Arc<Shared>,
    link: Link,
}

impl Default for FakeRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRunner {
    /// A runner with no submitter.
    pub fn new() -> Self {
        FakeRunner {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changes: Changes::new(),
            }),
            link: Link::new(),
        }
    }

    /// Another handle on the same runner, over a new link (for a restarted broker).
    pub fn reconnect(&self) -> Self {
        FakeRunner {
            shared: Arc::clone(&self.shared),
            link: Link::new(),
        }
    }

    /// Cuts this handle's link: its calls, in flight or later, never answer.
    pub fn cut(&self) {
        self.link.cut();
    }

    /// Sets a job's submitter state (adding the submitter when there is none).
    pub fn set_state(&self, job_id: JobId, state: SubmitterState) {
        lock(&self.shared.state)
            .submitters
            .entry(job_id)
            .or_insert_with(|| Submitter {
                state: SubmitterState::Pending,
                output: String::new(),
            })
            .state = state;
        self.shared.changes.bump();
    }

    /// Sets what a job's submitter printed.
    pub fn set_output(&self, job_id: JobId, output: &str) {
        if let Some(submitter) = lock(&self.shared.state).submitters.get_mut(&job_id) {
            submitter.output = output.to_owned();
        }
        self.shared.changes.bump();
    }

    /// Refuses the next starts, one per error, in order.
    pub fn refuse_starts(&self, errors: Vec<RunnerError>) {
        lock(&self.shared.state).refusals = errors;
    }

    /// A job's submitter state as the runner would report it.
    pub fn state(&self, job_id: JobId) -> SubmitterState {
        lock(&self.shared.state)
            .submitters
            .get(&job_id)
            .map_or(SubmitterState::Missing, |s| s.state.clone())
    }

    /// Every call answered so far, in order, over any handle.
    pub fn calls(&self) -> Vec<RunnerCall> {
        lock(&self.shared.state).calls.clone()
    }

    /// The specs of every start asked for (refused ones included), in order.
    pub fn starts(&self) -> Vec<SubmitterSpec> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter_map(|call| match call {
                RunnerCall::Start(spec) => Some(SubmitterSpec::clone(spec)),
                _ => None,
            })
            .collect()
    }

    /// The jobs whose submitter was deleted, in order.
    pub fn deletes(&self) -> Vec<JobId> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter_map(|call| match call {
                RunnerCall::Delete(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Waits until `done` holds, looking again after each call and each change the test makes.
    pub async fn wait_until(&self, done: impl Fn(&FakeRunner) -> bool) {
        self.shared.changes.wait_until(|| done(self)).await;
    }

    fn record(&self, call: RunnerCall) -> std::sync::MutexGuard<'_, State> {
        let mut state = lock(&self.shared.state);
        state.calls.push(call);
        self.shared.changes.bump();
        state
    }
}

#[async_trait]
impl JobRunner for FakeRunner {
    async fn start(&self, spec: &SubmitterSpec) -> Result<(), RunnerError> {
        self.link
            .call(async {
                let mut state = self.record(RunnerCall::Start(Box::new(spec.clone())));
                if !state.refusals.is_empty() {
                    return Err(state.refusals.remove(0));
                }
                // Starting one that exists adopts it.
                state
                    .submitters
                    .entry(spec.job_id)
                    .or_insert_with(|| Submitter {
                        state: SubmitterState::Running,
                        output: String::new(),
                    });
                Ok(())
            })
            .await
    }

    async fn state(&self, job_id: JobId) -> Result<SubmitterState, RunnerError> {
        self.link
            .call(async {
                let state = self.record(RunnerCall::State(job_id));
                Ok(state
                    .submitters
                    .get(&job_id)
                    .map_or(SubmitterState::Missing, |s| s.state.clone()))
            })
            .await
    }

    async fn output(&self, job_id: JobId) -> Result<String, RunnerError> {
        self.link
            .call(async {
                let state = self.record(RunnerCall::Output(job_id));
                Ok(state
                    .submitters
                    .get(&job_id)
                    .map(|s| s.output.clone())
                    .unwrap_or_default())
            })
            .await
    }

    async fn delete(&self, job_id: JobId) -> Result<(), RunnerError> {
        self.link
            .call(async {
                let mut state = self.record(RunnerCall::Delete(job_id));
                state.submitters.remove(&job_id);
                Ok(())
            })
            .await
    }
}
