//! CancelJob.

use tokio::sync::oneshot;
use tracing::info;

use super::driver::Command;
use super::{CancelOptions, Controller, admission, not_found};
use crate::error::{Error, Result};
use flinkbroker_model::job::{Job, JobId, JobState};

/// How long CancelJob waits for a driver busy with a call to the gateway or the JobManager.
const CANCEL_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Controller {
    /// Cancels a job: its driver moves it to CANCELING and answers at once, then stops what
    /// the job started. A job that is CANCELING or over is returned as it is. A job another
    /// replica drives gets the cancel recorded in the database for that replica's driver.
    pub async fn cancel_job(&self, id: JobId, options: CancelOptions) -> Result<Job> {
        if let Some(live) = self.live.get(id) {
            self.check_savepoint_directory(&live.job.borrow().tenant, &options)?;
            let (reply, answer) = oneshot::channel();
            let command = Command::Cancel {
                options: options.clone(),
                reply,
            };
            let asked = async {
                live.commands.send(Box::new(command)).await.ok()?;
                answer.await.ok()
            };
            match tokio::time::timeout(CANCEL_ANSWER_TIMEOUT, asked).await {
                Ok(Some(job)) => return Ok(job),
                // The driver ended meanwhile, or could not record the cancel: the store tells.
                Ok(None) => {}
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "job {id} did not take the cancel within {} s; retry",
                        CANCEL_ANSWER_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        let job = self.store.get_job(id).await.map_err(not_found)?;
        if job.state.is_terminal() || job.state == JobState::Canceling {
            return Ok(job);
        }
        self.check_savepoint_directory(&job.tenant, &options)?;
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        // Another replica drives the job (or will take it up): record the cancel for its
        // driver, and wait until the job is CANCELING.
        let request = serde_json::to_string(&options)
            .map_err(|e| Error::Internal(format!("cannot record the cancel: {e}")))?;
        self.store
            .request_cancel(id, &request)
            .await
            .map_err(not_found)?;
        info!(job_id = %id, owner = ?job.owner, "cancel recorded for the replica that drives the job");
        let deadline = tokio::time::Instant::now() + CANCEL_ANSWER_TIMEOUT;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
                _ = tokio::time::sleep(self.limits.replica_poll_interval) => {}
            }
            let job = self.store.get_job(id).await.map_err(not_found)?;
            if job.state.is_terminal() || job.state == JobState::Canceling {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "the cancel of job {id} is recorded, but the replica driving it ({}) has not acted on it within {} s; it is carried out when that replica, or one taking the job over, does",
                    job.owner.as_deref().unwrap_or("none yet"),
                    CANCEL_ANSWER_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// Checks the directory of a stop with a savepoint against the tenant's allowed prefixes.
    fn check_savepoint_directory(&self, tenant: &str, options: &CancelOptions) -> Result<()> {
        match &options.savepoint_directory {
            Some(directory) if options.stop_with_savepoint => {
                let policy = self.limits.tenants.policy(tenant);
                admission::savepoint_path(&policy, "savepoint_directory", directory)
            }
            _ => Ok(()),
        }
    }
}
