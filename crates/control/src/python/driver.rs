//! Drives a Python job: starts its submitter (`flink run -d` with the pinned Flink job id),
//! follows the submitter and then the Flink job to their end, keeps the submitter's output
//! with the job, and cancels or stops it with a savepoint.
//!
//! Resuming after a restart: a Flink job under the pinned id is adopted and followed; when
//! there is none and the submitter is gone, the submitter starts again with the same id (Flink
//! refuses a second job under one id, and that refusal means "already submitted").

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::super::CancelOptions;
use super::super::driver::{Core, Interrupt};
use super::super::observer::{self, Observed};
use super::super::savepoint::{StopOutcome, cancel_reason, options_from_reason};
use super::super::stop::Stopped;
use flinkbroker_flink::jobmanager::{FlinkError, FlinkJobStatus};
use flinkbroker_model::job::{Job, JobSpec, JobState};
use flinkbroker_runner::{SubmitterSpec, SubmitterState};

const FIRST_POLL: Duration = Duration::from_millis(100);
/// Attempts at starting a submitter (0.1 s, 0.4 s, 1.6 s, 6.4 s apart) before the job fails.
const SUBMITTER_START_ATTEMPTS: u32 = 5;

/// Runs a Python job's driver to the job's end (or the broker's shutdown).
/// Returns true when the job must be taken up again (its progress could not be recorded).
pub(crate) async fn run(core: Core) -> bool {
    let flink_job_id = program_flink_job_id(&core.job);
    // Pinned before the program runs: the job's span has it from the start.
    tracing::Span::current().record("flink.job_id", flink_job_id.as_str());
    let mut driver = PythonDriver {
        flink_job_id,
        core,
        submitter_done: false,
    };
    loop {
        match driver.drive().await {
            Ok(()) => {
                if let Err(interrupt) = driver
                    .core
                    .transition(JobState::Finished, "the flink job finished")
                    .await
                {
                    Box::pin(driver.core.conclude(interrupt)).await;
                }
                return driver.core.lost;
            }
            Err(Interrupt::Cancel { options, replies }) => {
                if Box::pin(driver.cancel(options, replies)).await == AfterCancel::Ended {
                    return driver.core.lost;
                }
            }
            Err(other) => {
                Box::pin(driver.core.conclude(other)).await;
                return driver.core.lost;
            }
        }
    }
}

/// What follows a cancel.
#[derive(PartialEq, Eq)]
enum AfterCancel {
    /// The job ended (or the driver stopped).
    Ended,
    /// The stop with a savepoint failed and the Flink job runs on: follow it again.
    KeepsRunning,
}

struct PythonDriver {
    core: Core,
    flink_job_id: String,
    /// True once the submitter exited (or is known to be gone).
    submitter_done: bool,
}

impl PythonDriver {
    async fn drive(&mut self) -> Result<(), Interrupt> {
        if self.core.job.state == JobState::Canceling {
            // A cancel was under way when the broker stopped: finish it as it was asked.
            return Err(Interrupt::Cancel {
                options: options_from_reason(&self.core.job.state_reason),
                replies: Vec::new(),
            });
        }
        if self.core.job.state == JobState::Pending {
            self.core
                .transition(JobState::Submitting, "starting the submitter")
                .await?;
            Box::pin(self.start_submitter()).await?;
        } else if self.core.resuming {
            self.core.resuming = false;
            Box::pin(self.resume()).await?;
        }
        Box::pin(self.await_flink_job()).await?;
        if self.core.job.state != JobState::Running {
            let reason = format!("flink job {} is running", self.flink_job_id);
            self.core.transition(JobState::Running, &reason).await?;
        }
        self.follow().await
    }

    /// Takes over a job an earlier run of the broker started.
    async fn resume(&mut self) -> Result<(), Interrupt> {
        let flink_job_id = self.flink_job_id.clone();
        // Only a clear answer decides: a JobManager that cannot be reached is waited for.
        let known = self.look_up(None).await?;
        if let Some(status) = known {
            self.submitter_done = true;
            return self
                .core
                .note(&format!(
                    "resumed {}: adopted flink job {flink_job_id} ({status:?})",
                    self.core.resumed_because
                ))
                .await;
        }
        if self.core.job.state == JobState::Running {
            // The Flink job was seen before: submitting again would run the program twice.
            return Err(Interrupt::Failed(format!(
                "the jobmanager no longer knows flink job {flink_job_id} (its end is unknown; it may have ended and expired from the jobmanager's history)"
            )));
        }
        let submitter = loop {
            match self.core.runner().state(self.core.job.id).await {
                Ok(state) => break state,
                Err(error) => {
                    warn!(job_id = %self.core.job.id, %error, "cannot read the submitter's state while resuming; retrying");
                    self.core.pause(self.core.limits().poll_interval).await?;
                }
            }
        };
        match submitter {
            SubmitterState::Pending | SubmitterState::Running => {
                self.core
                    .note(&format!(
                        "resumed {}: the submitter of flink job {flink_job_id} still runs",
                        self.core.resumed_because
                    ))
                    .await
            }
            SubmitterState::Succeeded => {
                // `flink run -d` said it submitted the job; the JobManager is asked again.
                self.submitter_done = true;
                self.core
                    .note(&format!(
                        "resumed {}: the submitter of flink job {flink_job_id} succeeded",
                        self.core.resumed_because
                    ))
                    .await
            }
            SubmitterState::Missing | SubmitterState::Failed { .. } => {
                // Gone, or ended without the job being seen: submit again under the same id;
                // flink refuses a second job under it.
                if let Err(error) = self.core.runner().delete(self.core.job.id).await {
                    warn!(job_id = %self.core.job.id, %error, "cannot remove the earlier submitter");
                }
                self.core
                    .note(&format!(
                        "resumed {}: flink job {flink_job_id} was not seen; the submitter starts again",
                        self.core.resumed_because
                    ))
                    .await?;
                self.start_submitter().await
            }
        }
    }

    /// Asks the JobManager for the Flink job's status (None: it knows no such job), again
    /// while it cannot be reached: until `deadline` (then the job fails), or without end.
    async fn look_up(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<FlinkJobStatus>, Interrupt> {
        loop {
            // The overview answers for every job taken up at once; a job it does not list is
            // asked about by its id.
            let status = match self
                .core
                .controller
                .observer
                .current(&self.flink_job_id)
                .await
            {
                Ok(Observed::Listed(status)) => Ok(status),
                Ok(Observed::Unseen | Observed::NotListed) => {
                    self.core
                        .controller
                        .jobmanager
                        .job_status(&self.flink_job_id)
                        .await
                }
                Err(error) => Err(error),
            };
            match status {
                Ok(status) => return Ok(Some(status)),
                Err(FlinkError::JobNotFound(_)) => return Ok(None),
                Err(error) if deadline.is_some_and(|deadline| Instant::now() >= deadline) => {
                    return Err(Interrupt::Failed(format!(
                        "cancel failed: the jobmanager could not be asked about flink job {} within {} s (--cancel-timeout): {error}",
                        self.flink_job_id,
                        self.core.limits().cancel_timeout.as_secs()
                    )));
                }
                Err(error) => {
                    warn!(job_id = %self.core.job.id, flink_job_id = %self.flink_job_id, %error, "cannot read the flink job's status; asking again");
                    self.core.yield_resume_slot();
                    self.core.pause(self.core.limits().poll_interval).await?;
                }
            }
        }
    }

    async fn start_submitter(&mut self) -> Result<(), Interrupt> {
        let JobSpec::Python(program) = &self.core.job.spec else {
            return Err(Interrupt::Failed("not a python job".into()));
        };
        let program = program.clone();
        let restore_arguments = match self.core.cluster_version_for_restore().await? {
            Some((version, restore)) => version.restore_arguments(&restore),
            None => Vec::new(),
        };
        let spec = SubmitterSpec {
            job_id: self.core.job.id,
            tenant: self.core.job.tenant.clone(),
            flink_job_id: self.flink_job_id.clone(),
            program,
            restore_arguments,
        };
        // The Kubernetes API (or the local file system) may refuse for a moment: a few
        // attempts, then the refusal is the job's.
        let mut attempt = 1;
        let mut pause = FIRST_POLL;
        loop {
            match self.core.runner().start(&spec).await {
                Ok(()) => break,
                Err(error) if attempt < SUBMITTER_START_ATTEMPTS => {
                    warn!(job_id = %self.core.job.id, %error, attempt, "cannot start the submitter; retrying");
                    self.core.pause(pause).await?;
                    pause *= 4;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(Interrupt::Failed(format!(
                        "cannot start the submitter ({attempt} attempts): {error}"
                    )));
                }
            }
        }
        self.submitter_done = false;
        info!(job_id = %self.core.job.id, flink_job_id = %self.flink_job_id, "submitter started");
        Ok(())
    }

    /// Watches the submitter and the JobManager until the Flink job is seen.
    async fn await_flink_job(&mut self) -> Result<(), Interrupt> {
        let mut pause = FIRST_POLL;
        loop {
            self.core.take_commands().await?;
            if !self.submitter_done {
                self.check_submitter().await?;
            }
            match self
                .core
                .controller
                .jobmanager
                .job_status(&self.flink_job_id)
                .await
            {
                Ok(_) => return Ok(()),
                Err(FlinkError::JobNotFound(_)) if self.submitter_done => {
                    return Err(Interrupt::Failed(format!(
                        "the submitter finished but flink knows no job {}",
                        self.flink_job_id
                    )));
                }
                Err(FlinkError::JobNotFound(_)) => {}
                Err(error) => {
                    warn!(job_id = %self.core.job.id, %error, "cannot read the flink job's status");
                }
            }
            self.core.pause(pause).await?;
            pause = (pause * 2).min(self.core.limits().poll_interval);
        }
    }

    /// Reads the submitter's state; a failure is the job's unless Flink already has the job.
    async fn check_submitter(&mut self) -> Result<(), Interrupt> {
        match self.core.runner().state(self.core.job.id).await {
            Ok(SubmitterState::Succeeded) => {
                self.submitter_done = true;
                self.keep_output().await;
            }
            Ok(SubmitterState::Failed { exit_code, reason }) => {
                let output = self.keep_output().await;
                self.submitter_done = true;
                let known = self
                    .core
                    .controller
                    .jobmanager
                    .job_status(&self.flink_job_id)
                    .await
                    .is_ok();
                if known || output.contains("DuplicateJobSubmissionException") {
                    // A submission under an id Flink already has: the job was submitted.
                    info!(job_id = %self.core.job.id, flink_job_id = %self.flink_job_id, "flink already has the job; the submitter's refusal is not a failure");
                    return Ok(());
                }
                let code = exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default();
                return Err(Interrupt::Failed(format!(
                    "the submitter failed{code}: {}",
                    flinkbroker_flink::java_error::submitter_failure(&output).unwrap_or(reason)
                )));
            }
            Ok(SubmitterState::Missing) => {
                // Removed after it ended; the JobManager tells whether it submitted.
                self.submitter_done = true;
            }
            Ok(SubmitterState::Pending | SubmitterState::Running) => {}
            Err(error) => {
                warn!(job_id = %self.core.job.id, %error, "cannot read the submitter's state");
            }
        }
        Ok(())
    }

    /// Follows the Flink job to its end through the cluster's observer (`GET /jobs/:jobid`
    /// only while the overview does not list it).
    async fn follow(&mut self) -> Result<(), Interrupt> {
        let mut watch = self.core.controller.observer.follow(&self.flink_job_id);
        loop {
            self.core.take_commands().await?;
            if !self.submitter_done
                && let Ok(SubmitterState::Succeeded | SubmitterState::Failed { .. }) =
                    self.core.runner().state(self.core.job.id).await
            {
                self.submitter_done = true;
                self.keep_output().await;
            }
            let status = match watch.seen() {
                Observed::Unseen => None,
                Observed::Listed(status) => Some(Ok(status)),
                Observed::NotListed => Some(
                    self.core
                        .controller
                        .jobmanager
                        .job_status(&self.flink_job_id)
                        .await,
                ),
            };
            match status {
                Some(Ok(FlinkJobStatus::Finished)) => {
                    info!(job_id = %self.core.job.id, flink_job_id = %self.flink_job_id, "flink job finished");
                    if !self.submitter_done {
                        self.keep_output().await;
                    }
                    return Ok(());
                }
                Some(Ok(status)) => {
                    if let Some(reason) = self
                        .core
                        .controller
                        .flink_job_failure(&self.flink_job_id, status)
                        .await
                    {
                        return Err(Interrupt::Failed(reason));
                    }
                }
                Some(Err(error)) => {
                    warn!(job_id = %self.core.job.id, flink_job_id = %self.flink_job_id, %error, "cannot read the flink job's status");
                }
                None => {}
            }
            self.core.settled();
            // The submitter (while it runs) is looked at every poll; the Flink job when the
            // observer sees it change.
            let recheck = if self.submitter_done {
                observer::FOLLOW_RECHECK
            } else {
                self.core.limits().poll_interval
            };
            self.core.wait_for(watch.changed(), recheck).await?;
        }
    }

    /// Reads the submitter's output and records it with the job; returns it.
    async fn keep_output(&mut self) -> String {
        let id = self.core.job.id;
        let output = match self.core.runner().output(id).await {
            Ok(output) => output,
            Err(error) => {
                warn!(job_id = %id, %error, "cannot read the submitter's output");
                return String::new();
            }
        };
        if output.is_empty() {
            return output;
        }
        match self
            .core
            .controller
            .store
            .set_submitter_output(id, &output)
            .await
        {
            Ok(()) => {
                self.core.job.submitter_output = Some(output.clone());
                self.core.publish();
            }
            Err(error) => warn!(job_id = %id, %error, "cannot record the submitter's output"),
        }
        output
    }

    /// Moves the job to CANCELING (answering the callers), removes the submitter, and stops
    /// the Flink job; CANCELED once the JobManager says it stopped.
    async fn cancel(
        &mut self,
        options: CancelOptions,
        replies: Vec<oneshot::Sender<Job>>,
    ) -> AfterCancel {
        if self.core.job.state != JobState::Canceling {
            let reason = cancel_reason(&options, "the flink job");
            if let Err(interrupt) = self.core.transition(JobState::Canceling, &reason).await {
                // The callers learn from the dropped answer that the cancel was not recorded.
                drop(replies);
                self.core.conclude(interrupt).await;
                return AfterCancel::Ended;
            }
        }
        self.core.answer(replies);
        match self.stop(&options).await {
            Ok(Ok(reason)) => {
                if let Err(interrupt) = self.core.transition(JobState::Canceled, &reason).await {
                    self.core.conclude(interrupt).await;
                }
                AfterCancel::Ended
            }
            Ok(Err(KeepsRunning(reason))) => {
                match self.core.transition(JobState::Running, &reason).await {
                    Ok(()) => AfterCancel::KeepsRunning,
                    Err(interrupt) => {
                        self.core.conclude(interrupt).await;
                        AfterCancel::Ended
                    }
                }
            }
            Err(interrupt) => {
                self.core.conclude(interrupt).await;
                AfterCancel::Ended
            }
        }
    }

    /// Removes the submitter and cancels (or stops with a savepoint) the Flink job; returns
    /// the reason to record once it stopped.
    async fn stop(
        &mut self,
        options: &CancelOptions,
    ) -> Result<Result<String, KeepsRunning>, Interrupt> {
        let id = self.core.job.id;
        if !self.submitter_done {
            self.keep_output().await;
        }
        let flink_job_id = self.flink_job_id.clone();
        let deadline = Instant::now() + self.core.limits().cancel_timeout;
        // A submission under way must be over before "the flink job never started" is true.
        loop {
            match self.core.runner().delete(id).await {
                Ok(()) => match self.core.runner().state(id).await {
                    Ok(SubmitterState::Pending | SubmitterState::Running) => {}
                    Ok(_) => break,
                    Err(error) => warn!(job_id = %id, %error, "cannot read the submitter's state"),
                },
                Err(error) => warn!(job_id = %id, %error, "cannot remove the submitter"),
            }
            if Instant::now() >= deadline {
                return Err(Interrupt::Failed(format!(
                    "cancel failed: the submitter of flink job {flink_job_id} could not be removed within {} s (--cancel-timeout)",
                    self.core.limits().cancel_timeout.as_secs()
                )));
            }
            self.core.pause(FIRST_POLL).await?;
        }
        let status = self.look_up(Some(deadline)).await?;
        let reason = match status {
            None => return Ok(Ok("canceled by request before the flink job started".into())),
            Some(status) if status.is_terminal() => {
                return Ok(Ok(format!(
                    "canceled by request; flink job {flink_job_id} had already ended as {status:?}"
                )));
            }
            Some(_) if options.stop_with_savepoint => {
                let target = [(flink_job_id.clone(), None)];
                match self.core.stop_with_savepoints(&target, options).await? {
                    StopOutcome::Stopped(locations) => format!(
                        "stopped by request with a savepoint at {}",
                        locations.join(", ")
                    ),
                    StopOutcome::KeepsRunning(reason) => return Ok(Err(KeepsRunning(reason))),
                }
            }
            Some(_) => {
                if let Err(error) = self
                    .core
                    .controller
                    .request_cancel(None, &flink_job_id)
                    .await
                {
                    warn!(job_id = %id, flink_job_id = %flink_job_id, %error, "cannot request the flink job's cancel");
                }
                format!("canceled by request; flink job {flink_job_id} stopped")
            }
        };
        match self
            .core
            .await_stopped(
                std::slice::from_ref(&flink_job_id),
                !options.stop_with_savepoint,
            )
            .await?
        {
            Stopped::All => Ok(Ok(reason)),
            Stopped::StillRunning(flink_job_id) => Err(Interrupt::Failed(format!(
                "cancel failed: flink job {flink_job_id} did not stop within {} s (--cancel-timeout)",
                self.core.limits().cancel_timeout.as_secs()
            ))),
        }
    }
}

/// Why a stop with a savepoint did not stop the Flink job (it runs on).
struct KeepsRunning(String);

/// Returns the Flink job id of a Python job: the one recorded, else the one derived from its id.
fn program_flink_job_id(job: &Job) -> String {
    job.flink_job_id
        .clone()
        .unwrap_or_else(|| job.id.flink_job_id_for_program())
}
