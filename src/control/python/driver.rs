//! Drives a Python job: starts its submitter, follows the submitter and then the Flink job to
//! their end, keeps the submitter's output with the job.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CancelOptions, Controller, Stop};
use crate::error::{Error, Result};
use crate::flink::{FlinkError, FlinkJobStatus, SavepointStatus, savepoint_trigger_id};
use crate::job::{Job, JobId, JobSpec, JobState, NewJob, PythonSpec, now_millis};
use crate::runner::{SubmitterSpec, SubmitterState};

/// Lines of submitter output quoted in a failure reason.
const REASON_LINES: usize = 12;

/// A Python submission, decoded and checked by the API layer.
#[derive(Debug, Clone)]
pub struct PythonSubmission {
    pub program: PythonSpec,
    pub request_id: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Controller {
    /// Records a Python job and starts its submitter, or returns the job already recorded for
    /// its request id.
    pub async fn submit_python(self: &Arc<Self>, submission: PythonSubmission) -> Result<Job> {
        let id = JobId::new_random();
        let new_job = NewJob {
            id,
            request_id: submission.request_id.clone(),
            labels: submission.labels,
            spec: JobSpec::Python(submission.program),
            statements: Vec::new(),
            flink_job_id: Some(id.flink_job_id_for_program()),
            created_at: now_millis(),
        };
        let (job, created) = self.record(new_job).await?;
        if created {
            info!(job_id = %job.id, flink_job_id = ?job.flink_job_id, request_id = ?job.request_id, "python job recorded");
            self.spawn_python_job(job.clone(), true);
        }
        Ok(job)
    }

    /// Starts the task that drives a Python job; `start` false follows a submitter started by
    /// an earlier run of the broker.
    pub(super) fn spawn_python_job(self: &Arc<Self>, job: Job, start: bool) {
        let (cancel, _) = self.register_active(job.id);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let outcome = this.drive_python(&job, start, &cancel).await;
            match outcome {
                Ok(()) => {
                    this.end_job(&job, JobState::Finished, "the flink job finished")
                        .await;
                }
                Err(Stop::Failed(reason)) => {
                    warn!(job_id = %job.id, reason = %reason, "python job failed");
                    this.end_job(&job, JobState::Failed, &reason).await;
                }
                Err(Stop::Cancelled) => this.forget_active(job.id),
            }
        });
    }

    async fn drive_python(
        &self,
        job: &Job,
        start: bool,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        let JobSpec::Python(program) = &job.spec else {
            return Err(Stop::Failed("not a python job".into()));
        };
        let flink_job_id = program_flink_job_id(job);
        if start {
            self.transition(job.id, JobState::Submitting, "starting the submitter")
                .await?;
            let spec = SubmitterSpec {
                job_id: job.id,
                flink_job_id: flink_job_id.clone(),
                program: program.clone(),
            };
            self.runner
                .start(&spec)
                .await
                .map_err(|e| Stop::Failed(format!("cannot start the submitter: {e}")))?;
            info!(job_id = %job.id, flink_job_id = %flink_job_id, "submitter started");
        }

        // Until the Flink job is seen: watch the submitter and the JobManager.
        let mut submitter_done = false;
        let mut pause = Duration::from_millis(100);
        loop {
            if !submitter_done {
                match self.runner.state(job.id).await {
                    Ok(SubmitterState::Succeeded) => {
                        submitter_done = true;
                        self.keep_output(job.id).await;
                    }
                    Ok(SubmitterState::Failed { exit_code, reason }) => {
                        let output = self.keep_output(job.id).await;
                        // A detached submission whose job already exists (a retry) is fine.
                        if !self.flink_job_known(&flink_job_id).await {
                            let code = exit_code
                                .map(|c| format!(" (exit code {c})"))
                                .unwrap_or_default();
                            return Err(Stop::Failed(format!(
                                "the submitter failed{code}: {}",
                                meaningful_tail(&output).unwrap_or(reason)
                            )));
                        }
                        submitter_done = true;
                    }
                    Ok(SubmitterState::Missing) if !start => submitter_done = true,
                    Ok(SubmitterState::Missing) => {
                        return Err(Stop::Failed(
                            "the submitter disappeared before it reported an outcome".into(),
                        ));
                    }
                    Ok(SubmitterState::Pending | SubmitterState::Running) => {}
                    Err(error) => {
                        warn!(job_id = %job.id, %error, "cannot read the submitter's state");
                    }
                }
            }
            match self.jobmanager.job_status(&flink_job_id).await {
                Ok(_) => break,
                Err(FlinkError::JobNotFound(_)) if submitter_done => {
                    return Err(Stop::Failed(format!(
                        "the submitter finished but flink knows no job {flink_job_id}"
                    )));
                }
                Err(FlinkError::JobNotFound(_)) => {}
                Err(error) => {
                    warn!(job_id = %job.id, %error, "cannot read the flink job's status");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.limits.poll_interval);
        }

        self.transition(
            job.id,
            JobState::Running,
            &format!("flink job {flink_job_id} is running"),
        )
        .await?;
        loop {
            if !submitter_done
                && let Ok(SubmitterState::Succeeded | SubmitterState::Failed { .. }) =
                    self.runner.state(job.id).await
            {
                submitter_done = true;
                self.keep_output(job.id).await;
            }
            match self.jobmanager.job_status(&flink_job_id).await {
                Ok(FlinkJobStatus::Finished) => {
                    info!(job_id = %job.id, flink_job_id = %flink_job_id, "flink job finished");
                    if !submitter_done {
                        self.keep_output(job.id).await;
                    }
                    return Ok(());
                }
                Ok(status) => {
                    if let Some(reason) = self.flink_job_failure(&flink_job_id, status).await {
                        return Err(Stop::Failed(reason));
                    }
                }
                Err(error) => {
                    warn!(job_id = %job.id, flink_job_id = %flink_job_id, %error, "cannot read the flink job's status");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(self.limits.poll_interval) => {}
            }
        }
    }

    async fn flink_job_known(&self, flink_job_id: &str) -> bool {
        self.jobmanager.job_status(flink_job_id).await.is_ok()
    }

    /// Reads the submitter's output and records it with the job; returns it.
    async fn keep_output(&self, id: JobId) -> String {
        let output = match self.runner.output(id).await {
            Ok(output) => output,
            Err(error) => {
                warn!(job_id = %id, %error, "cannot read the submitter's output");
                return String::new();
            }
        };
        if let Err(error) = self.store.set_submitter_output(id, &output).await {
            warn!(job_id = %id, %error, "cannot record the submitter's output");
        }
        self.publish(id);
        output
    }

    /// Cancels a Python job: deletes its submitter and cancels (or stops with a savepoint) its
    /// Flink job.
    pub(super) async fn cancel_python_job(
        self: &Arc<Self>,
        job: Job,
        options: CancelOptions,
    ) -> Result<Job> {
        if let Some(token) = self.active_cancel_token(job.id) {
            token.cancel();
        }
        match self.stop_python(&job, &options).await {
            Ok(reason) => {
                self.end_job(&job, JobState::Canceled, &reason).await;
                self.get_job(job.id).await
            }
            Err(error) => {
                // The job goes on running: follow it again, so that a later CancelJob can retry.
                warn!(job_id = %job.id, %error, "cancel failed; the job is followed again");
                self.spawn_python_job(job, false);
                Err(error)
            }
        }
    }

    /// Deletes the submitter and cancels (or stops with a savepoint) the Flink job; returns
    /// the reason to record.
    async fn stop_python(&self, job: &Job, options: &CancelOptions) -> Result<String> {
        let output_before_delete = self.runner.output(job.id).await.ok();
        self.runner.delete(job.id).await?;
        if let Some(output) = output_before_delete.filter(|o| !o.is_empty())
            && let Err(error) = self.store.set_submitter_output(job.id, &output).await
        {
            warn!(job_id = %job.id, %error, "cannot record the submitter's output");
        }
        let flink_job_id = program_flink_job_id(job);
        let reason = match self.jobmanager.job_status(&flink_job_id).await {
            Err(FlinkError::JobNotFound(_)) => {
                "canceled by request before the flink job started".to_string()
            }
            Ok(status) if status.is_terminal() => {
                format!("canceled by request; the flink job had already ended as {status:?}")
            }
            Ok(_) if options.stop_with_savepoint => {
                self.stop_with_savepoint(job, &flink_job_id, options.savepoint_directory.as_deref())
                    .await?
            }
            Ok(_) => {
                match self.jobmanager.cancel(&flink_job_id).await {
                    Ok(()) | Err(FlinkError::JobNotFound(_)) => {}
                    Err(error) => return Err(error.into()),
                }
                info!(job_id = %job.id, flink_job_id = %flink_job_id, "flink job cancelled");
                "canceled by request".to_string()
            }
            Err(error) => return Err(error.into()),
        };
        Ok(reason)
    }

    async fn stop_with_savepoint(
        &self,
        job: &Job,
        flink_job_id: &str,
        directory: Option<&str>,
    ) -> Result<String> {
        let trigger = savepoint_trigger_id(flink_job_id);
        self.jobmanager
            .stop_with_savepoint(flink_job_id, &trigger, directory)
            .await?;
        info!(job_id = %job.id, flink_job_id, trigger_id = %trigger, "stop with savepoint triggered");
        let mut pause = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            match self
                .jobmanager
                .savepoint_status(flink_job_id, &trigger)
                .await?
            {
                SavepointStatus::Completed { location } => {
                    return Ok(format!("stopped by request with a savepoint at {location}"));
                }
                SavepointStatus::Failed { cause } => {
                    return Err(Error::FailedPrecondition(format!(
                        "stop with savepoint of flink job {flink_job_id} failed: {cause}; the job keeps running"
                    )));
                }
                SavepointStatus::InProgress => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::FailedPrecondition(format!(
                    "stop with savepoint of flink job {flink_job_id} did not complete within 5 minutes; retry CancelJob to keep waiting"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.limits.poll_interval);
        }
    }
}

/// Returns the Flink job id of a Python job: the one recorded, else the one derived from its id.
fn program_flink_job_id(job: &Job) -> String {
    job.flink_job_id
        .clone()
        .unwrap_or_else(|| job.id.flink_job_id_for_program())
}

/// Returns true for a Java stack frame line (`\tat …`, `\t... 14 more`).
fn is_java_frame(line: &str) -> bool {
    let trimmed = line.trim_start();
    let indented = line.starts_with(char::is_whitespace);
    let frame = trimmed.starts_with("at ");
    let elided = trimmed.starts_with("... ") && trimmed.ends_with(" more");
    elided || (indented && frame)
}

/// Returns the meaningful lines of a submitter's output: from the Python traceback (or the
/// launcher's "program finished with the following exception"), without Java stack frames,
/// blank lines and log noise; otherwise its last lines.
pub(crate) fn meaningful_tail(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !is_java_frame(line) && !line.starts_with("SLF4J:"))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines
        .iter()
        .rposition(|line| line.starts_with("Traceback (most recent call last)"))
        .or_else(|| {
            lines.iter().rposition(|line| {
                line.contains("The program finished with the following exception")
            })
        });
    let chosen = match start {
        Some(start) => &lines[start..(start + REASON_LINES).min(lines.len())],
        None => &lines[lines.len().saturating_sub(REASON_LINES)..],
    };
    Some(chosen.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::meaningful_tail;

    #[test]
    fn tail_prefers_the_python_traceback_end() {
        let output = "Some log\n\nTraceback (most recent call last):\n  File \"bad_driver.py\", line 1, in <module>\n    raise ValueError('boom')\nValueError: boom\norg.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process exits with code: 1\n";
        let tail = meaningful_tail(output).unwrap_or_default();
        assert!(tail.starts_with("Traceback"), "{tail}");
        assert!(tail.contains("ValueError: boom"), "{tail}");
        let recorded = "Traceback (most recent call last):\n  File \"/jobs/bad_driver.py\", line 1, in <module>\n    raise ValueError(\"broken driver: missing config\")\nValueError: broken driver: missing config\norg.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process exits with code: 1\n\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:134)\n\tat org.apache.flink.client.cli.CliFrontend.main(CliFrontend.java:1335)\nCaused by: java.lang.RuntimeException: Python process exits with code: 1\n\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:124)\n\t... 14 more\n";
        let tail = meaningful_tail(recorded).unwrap_or_default();
        assert!(!tail.contains("\tat "), "{tail}");
        assert!(
            tail.contains("ValueError: broken driver: missing config"),
            "{tail}"
        );
        assert!(
            tail.ends_with(
                "Caused by: java.lang.RuntimeException: Python process exits with code: 1"
            ),
            "{tail}"
        );
        assert_eq!(meaningful_tail("\n  \n"), None);
    }
}
