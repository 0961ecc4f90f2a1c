//! Flink's fast refusals. On a busy session cluster Flink can fail a job at once with
//! `NoResourceAvailableException` ("Could not acquire the minimum required resources"),
//! before any of its tasks was deployed. Such a job never processed a row, so its statement
//! runs again, under the pinned Flink job id of its next attempt, after a pause that doubles
//! from `--refused-job-backoff` (at most [`MAX_REFUSED_JOB_PAUSE`]), at most
//! `--refused-job-retries` times; each retry is recorded in the job's history. After the
//! last one the job fails with the refusal as its cause. A job any of whose tasks was
//! deployed is never run again.

use super::*;
use crate::MAX_REFUSED_JOB_PAUSE;
use crate::driver::Core;

/// The exception Flink fails a job with when the cluster has no slots for it.
const REFUSAL: &str = "NoResourceAvailableException";

impl Core {
    /// The cause, when statement `index`'s Flink job was refused at once (FAILED with
    /// [`REFUSAL`] as its root cause, none of its tasks ever deployed) and the statement may
    /// run again; None otherwise, or when the JobManager cannot tell.
    pub(crate) async fn refused(&mut self, index: u32) -> Option<String> {
        let statement = self.job.statements.get(index as usize)?;
        if !statement.kind.starts_flink_job() {
            return None;
        }
        let flink_job_id = statement.flink_job_id.clone()?;
        let attempt = statement.attempt;
        let jobmanager = self.jobmanager().clone();
        let progress = match jobmanager.job_progress(&flink_job_id).await {
            Ok(progress) => progress,
            Err(error) => {
                warn!(job_id = %self.job.id, statement = index, %flink_job_id, %error, "cannot tell whether the flink job ran any task; it is not run again");
                return None;
            }
        };
        if progress.status != FlinkJobStatus::Failed {
            return None;
        }
        let cause = jobmanager.root_cause(&flink_job_id).await.ok()??;
        if !cause.contains(REFUSAL) {
            return None;
        }
        if progress.tasks_deployed {
            info!(job_id = %self.job.id, statement = index, %flink_job_id, %cause, "flink job failed for want of resources after some of its tasks ran; it is not run again");
            return None;
        }
        let retries = self.limits().refused_job_retries;
        if attempt >= retries {
            let note = format!(
                "statement {}: flink refused job {flink_job_id} at once ({cause}); it ran {} times, the most --refused-job-retries allows",
                index + 1,
                attempt + 1
            );
            if let Err(Interrupt::Lost(error)) = self.note(&note).await {
                warn!(job_id = %self.job.id, %error, "cannot record the last refusal");
            }
            return None;
        }
        Some(format!("flink refused job {flink_job_id} at once: {cause}"))
    }
}

impl SqlDriver {
    /// Runs statement `index` again after its Flink job was refused: records why, waits
    /// the backoff (taking commands meanwhile) and submits the next attempt.
    pub(super) async fn rerun_refused(&mut self, index: u32, cause: &str) -> Result<(), Interrupt> {
        let attempt = self.core.job.statements[index as usize].attempt;
        let pause = refused_job_pause(self.core.limits().refused_job_backoff, attempt);
        // A query's drain (if any) ended with the refusal; its log starts again.
        self.drains.remove(&index);
        metrics::refused_job_retried();
        warn!(job_id = %self.core.job.id, statement = index, %cause, attempt = attempt + 2, pause_ms = pause.as_millis() as u64, "flink refused the statement's job; running it again");
        self.core
            .note(&format!(
                "statement {}: {cause}; no task of it ran, so it runs again as attempt {} in {} ms",
                index + 1,
                attempt + 2,
                pause.as_millis()
            ))
            .await?;
        self.core.pause_fully(pause).await?;
        // The session may have been closed once every statement had its verdict.
        self.reopen_session().await?;
        self.submit(index, attempt + 1).await
    }
}

/// The pause before the retry that follows attempt `attempt` (0 for the first): `backoff`
/// doubled for each earlier retry, at most [`MAX_REFUSED_JOB_PAUSE`].
fn refused_job_pause(backoff: Duration, attempt: u32) -> Duration {
    backoff
        .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .min(MAX_REFUSED_JOB_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_bound() {
        let second = Duration::from_secs(1);
        assert_eq!(refused_job_pause(second, 0), second);
        assert_eq!(refused_job_pause(second, 1), 2 * second);
        assert_eq!(refused_job_pause(second, 3), 8 * second);
        assert_eq!(refused_job_pause(second, 40), MAX_REFUSED_JOB_PAUSE);
        assert_eq!(refused_job_pause(Duration::ZERO, 5), Duration::ZERO);
    }
}
