//! Stopping the Flink jobs a job started, and waiting until the JobManager says they stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Controller;
use super::driver::{Core, Interrupt};
use crate::error::{Error, Result};
use flinkbroker_flink::jobmanager::{FlinkError, FlinkJobStatus};
use flinkbroker_flink::sql_gateway::{OperationStatus, SessionHandle};

/// How long a `STOP JOB` through the gateway may take to be accepted.
const STOP_JOB_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_POLL: Duration = Duration::from_millis(50);
/// Polls between two requests to cancel a Flink job that has not stopped yet.
const RESEND_EVERY_POLLS: u32 = 10;

/// How the Flink jobs a cancel stopped ended.
pub(super) enum Stopped {
    /// Each is over (or never started).
    All,
    /// This one still ran when the cancel timeout passed.
    StillRunning(String),
}

impl Controller {
    /// Asks the JobManager to cancel a Flink job (the cancel is asynchronous), or, when the
    /// JobManager cannot be reached and the job has a session, `STOP JOB` through the gateway.
    pub(super) async fn request_cancel(
        &self,
        session: Option<&SessionHandle>,
        flink_job_id: &str,
    ) -> Result<()> {
        match self.jobmanager.cancel(flink_job_id).await {
            Ok(()) | Err(FlinkError::JobNotFound(_)) => Ok(()),
            Err(error) => {
                let Some(session) = session else {
                    return Err(error.into());
                };
                warn!(flink_job_id, %error, "jobmanager cannot cancel; trying STOP JOB through the sql gateway");
                let statement = format!("STOP JOB '{flink_job_id}'");
                let operation = self
                    .gateway
                    .execute_statement(session, &statement, &BTreeMap::new())
                    .await?;
                let deadline = Instant::now() + STOP_JOB_TIMEOUT;
                let mut pause = FIRST_POLL;
                loop {
                    let status = self.gateway.operation_status(session, &operation).await?;
                    match status {
                        OperationStatus::Finished => return Ok(()),
                        status if status.is_terminal() => {
                            return Err(Error::FailedPrecondition(format!(
                                "STOP JOB '{flink_job_id}' ended as {status:?} in the sql gateway"
                            )));
                        }
                        _ => {}
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::FailedPrecondition(format!(
                            "STOP JOB '{flink_job_id}' did not finish within {} s",
                            STOP_JOB_TIMEOUT.as_secs()
                        )));
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(self.limits.poll_interval);
                }
            }
        }
    }

    /// Returns why a Flink job that ended without finishing ended (FAILED with its root cause,
    /// or CANCELED), or None while it runs or after it finished.
    pub(super) async fn flink_job_failure(
        &self,
        flink_job_id: &str,
        status: FlinkJobStatus,
    ) -> Option<String> {
        match status {
            FlinkJobStatus::Failed => {
                let cause = match self.jobmanager.root_cause(flink_job_id).await {
                    Ok(Some(cause)) => cause,
                    Ok(None) => "no root cause reported".into(),
                    Err(error) => format!("root cause unavailable: {error}"),
                };
                Some(format!("flink job {flink_job_id} failed: {cause}"))
            }
            FlinkJobStatus::Canceled => Some(format!(
                "flink job {flink_job_id} was canceled outside the broker"
            )),
            _ => None,
        }
    }
}

impl Core {
    /// Waits until the JobManager reports each Flink job over (or unknown), at most the cancel
    /// timeout; CancelJob calls meanwhile are answered with the CANCELING job. With `resend`,
    /// the cancel is asked for again now and then, so that one lost request does not decide.
    pub(super) async fn await_stopped(
        &mut self,
        flink_job_ids: &[String],
        resend: bool,
    ) -> Result<Stopped, Interrupt> {
        let deadline = Instant::now() + self.limits().cancel_timeout;
        let mut pending: Vec<String> = flink_job_ids.to_vec();
        let mut pause = FIRST_POLL;
        let mut polls: u32 = 0;
        loop {
            polls += 1;
            let mut still = Vec::new();
            for flink_job_id in pending {
                match self.jobmanager().job_status(&flink_job_id).await {
                    Ok(status) if status.is_terminal() => {
                        info!(job_id = %self.job.id, flink_job_id = %flink_job_id, ?status, "flink job stopped");
                    }
                    Err(FlinkError::JobNotFound(_)) => {}
                    Ok(_) => still.push(flink_job_id),
                    Err(error) => {
                        warn!(job_id = %self.job.id, flink_job_id = %flink_job_id, %error, "cannot read the flink job's status while it stops");
                        still.push(flink_job_id);
                    }
                }
            }
            let Some(first) = still.first() else {
                return Ok(Stopped::All);
            };
            if Instant::now() >= deadline {
                return Ok(Stopped::StillRunning(first.clone()));
            }
            if resend && polls.is_multiple_of(RESEND_EVERY_POLLS) {
                for flink_job_id in &still {
                    if let Err(error) = self.jobmanager().cancel(flink_job_id).await {
                        warn!(job_id = %self.job.id, flink_job_id = %flink_job_id, %error, "cannot ask for the flink job's cancel again");
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.pause(pause.min(left)).await?;
            pause = (pause * 2).min(self.limits().poll_interval);
            pending = still;
        }
    }
}
