//! GetJob.

use super::{Controller, not_found};
use crate::error::Result;
use crate::job::{Job, JobId};

impl Controller {
    /// Reads one job: a live job as its driver publishes it (with its result logs as they
    /// move), any other from the store.
    pub async fn get_job(&self, id: JobId) -> Result<Job> {
        match self.live.current(id) {
            Some(mut job) => {
                self.tails.overlay(&mut job);
                Ok(job)
            }
            None => self.store.get_job(id).await.map_err(not_found),
        }
    }
}
