//! CancelJob.

use tokio::sync::oneshot;
use tracing::info;

use super::driver::Command;
use super::{CancelOptions, Controller, not_found};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobKind, JobState};

/// How long CancelJob waits for a driver busy with a call to the gateway or the JobManager.
const CANCEL_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Controller {
    /// Cancels a job: its driver moves it to CANCELING and answers at once, then stops what
    /// the job started. A job that is CANCELING or over is returned as it is.
    pub async fn cancel_job(&self, id: JobId, options: CancelOptions) -> Result<Job> {
        if let Some(live) = self.live.get(id) {
            savepoint_allowed(&options, live.job.borrow().kind)?;
            let (reply, answer) = oneshot::channel();
            let command = Command::Cancel {
                options: options.clone(),
                reply,
            };
            let asked = async {
                live.commands.send(command).await.ok()?;
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
        savepoint_allowed(&options, job.kind)?;
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

/// Refuses a stop with a savepoint for a SQL job: only a Python job's Flink job has one.
fn savepoint_allowed(options: &CancelOptions, kind: JobKind) -> Result<()> {
    if options.stop_with_savepoint && kind == JobKind::Sql {
        return Err(Error::invalid(
            "stop_with_savepoint",
            "only python jobs can be stopped with a savepoint",
        ));
    }
    Ok(())
}
