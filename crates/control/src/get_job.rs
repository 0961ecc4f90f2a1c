//! GetJob.

use super::{Controller, not_found};
use crate::error::Result;
use flinkbroker_model::job::{Job, JobId};

impl Controller {
    /// Reads one job: a live job as its driver publishes it (with its result logs as they
    /// move), an ended one from memory once read, any other from the store.
    pub async fn get_job(&self, id: JobId) -> Result<Job> {
        match self.live.current(id) {
            Some(mut job) => {
                self.tails.overlay(&mut job);
                Ok(job)
            }
            None => {
                // A cached job is good until its logs or the job itself may be deleted.
                let retention = self.limits.result_retention.min(self.limits.job_retention);
                if let Some(job) = self.ended.get(id, retention) {
                    return Ok(job);
                }
                let job = self.store.get_job(id).await.map_err(not_found)?;
                self.ended.keep(&job, retention);
                Ok(job)
            }
        }
    }
}
