//! ListJobs.

use super::Controller;
use crate::error::Result;
use flinkbroker_store::{JobFilter, JobPage};

impl Controller {
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
