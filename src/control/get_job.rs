//! GetJob and ListJobs.

use super::{Controller, not_found};
use crate::error::Result;
use crate::job::{Job, JobId};
use crate::store::{JobFilter, JobPage};

impl Controller {
    /// Reads one job: a live job as its driver publishes it, any other from the store.
    pub async fn get_job(&self, id: JobId) -> Result<Job> {
        match self.live.current(id) {
            Some(job) => Ok(job),
            None => self.store.get_job(id).await.map_err(not_found),
        }
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
}
