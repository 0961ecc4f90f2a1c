//! CancelJob.

use tokio::sync::oneshot;
use tracing::info;

use super::driver::Command;
use super::{CancelOptions, Controller, not_found};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobState};

impl Controller {
    /// Cancels a job: its driver moves it to CANCELING and answers at once, then stops what
    /// the job started. A job that is CANCELING or over is returned as it is.
    pub async fn cancel_job(&self, id: JobId, options: CancelOptions) -> Result<Job> {
        if let Some(live) = self.live.get(id) {
            let (reply, answer) = oneshot::channel();
            if live
                .commands
                .send(Command::Cancel { options, reply })
                .await
                .is_ok()
                && let Ok(job) = answer.await
            {
                return Ok(job);
            }
            // The driver ended meanwhile: the store holds how.
        }
        let job = self.store.get_job(id).await.map_err(not_found)?;
        if job.state.is_terminal() || job.state == JobState::Canceling {
            return Ok(job);
        }
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        info!(job_id = %id, state = job.state.as_str(), "cancel of a job no driver of this broker holds");
        Err(Error::Unavailable(format!(
            "job {id} is {} but not driven by this broker right now; retry shortly",
            job.state.as_str()
        )))
    }
}
