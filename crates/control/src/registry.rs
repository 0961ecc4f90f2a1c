//! The live jobs of this process: for each, the channel to its driver and the job it publishes.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, watch};

use super::driver::Command;
use flinkbroker_model::job::{Job, JobId};

/// What the rest of the broker holds of a live job.
#[derive(Clone)]
pub(super) struct LiveJob {
    /// Commands to the job's driver.
    pub commands: mpsc::Sender<Box<Command>>,
    /// The job as its driver last published it.
    pub job: watch::Receiver<Job>,
    /// Stops the driver (this replica lost the job's lease).
    pub stop: tokio_util::sync::CancellationToken,
}

/// The live jobs, by id. A job is here from its driver's start to its driver's end.
#[derive(Default)]
pub(super) struct Registry {
    jobs: Mutex<HashMap<JobId, LiveJob>>,
}

impl Registry {
    /// Adds a live job; false when the job already has a driver.
    pub(crate) fn insert(&self, id: JobId, live: LiveJob) -> bool {
        match self.jobs.lock() {
            Ok(mut jobs) if !jobs.contains_key(&id) => {
                jobs.insert(id, live);
                true
            }
            _ => false,
        }
    }

    /// Returns the live job, if its driver runs in this process.
    pub(crate) fn get(&self, id: JobId) -> Option<LiveJob> {
        self.jobs.lock().ok()?.get(&id).cloned()
    }

    /// Returns the job as its driver last published it.
    pub(crate) fn current(&self, id: JobId) -> Option<Job> {
        self.get(id).map(|live| live.job.borrow().clone())
    }

    /// The ids of the live jobs.
    pub(crate) fn ids(&self) -> Vec<JobId> {
        self.jobs
            .lock()
            .map(|jobs| jobs.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets a job whose driver ended.
    pub(crate) fn remove(&self, id: JobId) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(&id);
        }
    }
}

/// Removes a job from the registry when dropped.
pub(super) struct Registration<'a> {
    registry: &'a Registry,
    id: JobId,
}

impl<'a> Registration<'a> {
    pub(crate) fn new(registry: &'a Registry, id: JobId) -> Self {
        Registration { registry, id }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}
