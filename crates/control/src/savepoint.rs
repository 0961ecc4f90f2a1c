//! TriggerSavepoint, and the savepoints a stop with a savepoint takes.
//!
//! Every savepoint is recorded with the job before the JobManager is asked for it, under a
//! trigger id the broker chose: asking again after a retry or a restart joins the savepoint
//! under way instead of starting another. A job's driver owns its savepoint records. A
//! triggered savepoint is followed by a task of its own that reports the outcome back to the
//! driver, so the job is followed (and can be cancelled) meanwhile; a stop's savepoint is
//! waited for by the cancel itself.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{Instrument, info, warn};

use super::driver::{Command, Core, Interrupt};
use super::{CancelOptions, Controller, admission, not_found};
use crate::error::{Error, Result};
use flinkbroker_flink::jobmanager::{
    FlinkError, JobManager, SavepointStatus, new_savepoint_trigger_id, retry_trigger_id,
    savepoint_not_ready_yet, savepoint_trigger_id,
};
use flinkbroker_model::flink_version::FlinkVersion;
use flinkbroker_model::job::{
    Job, JobId, JobKind, JobSpec, JobState, Restore, SavepointFormat, SavepointKind,
    SavepointRecord, SavepointState, StatementState, now_millis,
};

/// How long TriggerSavepoint waits for a driver busy with a call to the gateway or the
/// JobManager to take the request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_POLL: Duration = Duration::from_millis(50);
/// Attempts at triggering a savepoint while the JobManager cannot be reached.
const TRIGGER_ATTEMPTS: u32 = 5;
/// The CANCELING reason of a stop with a savepoint; a resumed cancel reads its options back.
const STOP_WITH_SAVEPOINT: &str = "stop with a savepoint requested";
const SAVEPOINT_FORMAT: &str = "; format: ";
const SAVEPOINT_DIRECTORY: &str = "; directory: ";

/// What TriggerSavepoint asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavepointRequest {
    /// Where the savepoints go; None for the cluster's default directory.
    pub directory: Option<String>,
    /// How they are written.
    pub format: SavepointFormat,
}

/// How a stop with a savepoint ended.
pub(super) enum StopOutcome {
    /// Every Flink job stopped with its savepoint: where each was written, in order.
    Stopped(Vec<String>),
    /// A savepoint was refused or failed (the reason says which), and its Flink job runs on.
    KeepsRunning(String),
}

impl Controller {
    /// Takes a savepoint of every running Flink job of a job (a Python job's program; a SQL
    /// job's INSERTs and statement sets) and leaves them running. Returns the job once each
    /// savepoint completed; a savepoint Flink refuses or fails is FAILED_PRECONDITION with
    /// its cause, and one still under way after `--savepoint-timeout` DEADLINE_EXCEEDED (it
    /// is recorded with the job when it ends).
    pub async fn trigger_savepoint(&self, id: JobId, request: SavepointRequest) -> Result<Job> {
        let Some(live) = self.live.get(id) else {
            let job = self.store.get_job(id).await.map_err(not_found)?;
            if job.state.is_terminal() {
                return Err(not_running(&job));
            }
            return Err(Error::Unavailable(format!(
                "job {id} is driven by replica {}; ask that replica (or retry once this one has taken the job over)",
                job.owner.as_deref().unwrap_or("none yet")
            )));
        };
        if let Some(directory) = &request.directory {
            let tenant = live.job.borrow().tenant.clone();
            let policy = self.limits.tenants.policy(&tenant);
            admission::savepoint_path(&policy, "directory", directory)?;
        }
        let (reply, answer) = oneshot::channel();
        let asked = async {
            live.commands
                .send(Box::new(Command::Savepoint { request, reply }))
                .await
                .ok()?;
            answer.await.ok()
        };
        let triggers = match tokio::time::timeout(ANSWER_TIMEOUT, asked).await {
            Ok(Some(answer)) => answer?,
            Ok(None) => {
                let job = self.store.get_job(id).await.map_err(not_found)?;
                return Err(not_running(&job));
            }
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "job {id} did not take the savepoint request within {} s; retry",
                    ANSWER_TIMEOUT.as_secs()
                )));
            }
        };
        let mut job = live.job.clone();
        let deadline = Instant::now() + self.limits.savepoint_timeout + ANSWER_TIMEOUT;
        loop {
            let current = job.borrow_and_update().clone();
            let ours: Vec<&SavepointRecord> = current
                .savepoints
                .iter()
                .filter(|savepoint| triggers.contains(&savepoint.trigger_id))
                .collect();
            if let Some(failed) = ours.iter().find(|s| s.state == SavepointState::Failed) {
                return Err(Error::FailedPrecondition(format!(
                    "the savepoint of flink job {} failed: {}; the flink job keeps running",
                    failed.flink_job_id,
                    failed.error.as_deref().unwrap_or("no cause reported")
                )));
            }
            if ours.iter().all(|s| s.state == SavepointState::Completed) {
                return Ok(current);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::DeadlineExceeded(format!(
                        "the savepoints of job {id} are still being taken after {} s (--savepoint-timeout); GetJob shows them when they end",
                        self.limits.savepoint_timeout.as_secs()
                    )));
                }
                changed = job.changed() => {
                    if changed.is_err() {
                        // The driver ended (the job ended, or this replica stopped driving it).
                        let ended = self.store.get_job(id).await.map_err(not_found)?;
                        let done = ended.savepoints.iter().filter(|s| triggers.contains(&s.trigger_id));
                        if done.clone().count() == triggers.len() && done.clone().all(|s| s.state == SavepointState::Completed) {
                            return Ok(ended);
                        }
                        return Err(Error::Unavailable(format!(
                            "job {id} is {} and its driver stopped before the savepoints ended; GetJob shows them",
                            ended.state.as_str()
                        )));
                    }
                }
            }
        }
    }
}

/// A job that cannot take a savepoint because it is not running.
fn not_running(job: &Job) -> Error {
    Error::FailedPrecondition(format!(
        "job {} is {}; only a RUNNING job's flink jobs can take a savepoint",
        job.id,
        job.state.as_str()
    ))
}

/// The Flink jobs of a job that can take a savepoint: a Python job's program, a SQL job's
/// submitted INSERTs and statement sets (by statement).
pub(super) fn savepoint_targets(job: &Job) -> Vec<(String, Option<u32>)> {
    match job.kind {
        JobKind::Python => vec![(
            job.flink_job_id
                .clone()
                .unwrap_or_else(|| job.id.flink_job_id_for_program()),
            None,
        )],
        JobKind::Sql => job
            .statements
            .iter()
            .filter(|s| s.kind.runs_on_after_submission() && s.state == StatementState::Finished)
            .filter_map(|s| Some((s.flink_job_id.clone()?, Some(s.index))))
            .collect(),
    }
}

impl Core {
    /// TriggerSavepoint: records a savepoint of each Flink job the job runs, starts a task
    /// following each, and answers with their trigger ids (or why none can be taken).
    pub(super) async fn begin_savepoints(
        &mut self,
        request: SavepointRequest,
        reply: oneshot::Sender<Result<Vec<String>>>,
    ) -> Result<(), Interrupt> {
        if self.job.state != JobState::Running {
            let _ = reply.send(Err(not_running(&self.job)));
            return Ok(());
        }
        let targets = savepoint_targets(&self.job);
        if targets.is_empty() {
            let _ = reply.send(Err(Error::FailedPrecondition(format!(
                "job {} runs no flink job a savepoint can be taken of (only INSERT and statement set jobs keep state to restore)",
                self.job.id
            ))));
            return Ok(());
        }
        let mut records = Vec::new();
        for (flink_job_id, statement_index) in targets {
            records.push(SavepointRecord {
                trigger_id: new_savepoint_trigger_id(),
                flink_job_id,
                statement_index,
                kind: SavepointKind::Triggered,
                format: request.format,
                directory: request.directory.clone(),
                state: SavepointState::InProgress,
                location: None,
                error: None,
                created_at: now_millis(),
                ended_at: None,
            });
        }
        let mut savepoints = self.job.savepoints.clone();
        savepoints.extend(records.iter().cloned());
        self.set_savepoints(savepoints).await?;
        for record in &records {
            info!(job_id = %self.job.id, flink_job_id = %record.flink_job_id, trigger_id = %record.trigger_id, format = record.format.as_str(), "savepoint recorded; triggering it");
            self.follow_savepoint(record.clone());
        }
        let _ = reply.send(Ok(records.into_iter().map(|r| r.trigger_id).collect()));
        Ok(())
    }

    /// Follows again the triggered savepoints an earlier driver left under way.
    pub(super) fn resume_savepoints(&self) {
        for record in &self.job.savepoints {
            if record.kind == SavepointKind::Triggered && record.state == SavepointState::InProgress
            {
                info!(job_id = %self.job.id, flink_job_id = %record.flink_job_id, trigger_id = %record.trigger_id, "following a savepoint recorded before the job was taken up");
                self.follow_savepoint(record.clone());
            }
        }
    }

    /// Starts the task that triggers a recorded savepoint and waits for its outcome, which it
    /// sends back to the driver.
    fn follow_savepoint(&self, record: SavepointRecord) {
        let jobmanager = self.jobmanager().clone();
        let store = self.store().clone();
        let job_id = self.job.id;
        let to_driver = self.to_self.clone();
        let stop = self.stop.clone();
        let timeout = self.limits().savepoint_timeout;
        let poll = self.limits().poll_interval;
        self.controller.tasks.spawn(
            async move {
                let outcome = tokio::select! {
                    _ = stop.cancelled() => return,
                    outcome = take_savepoint(jobmanager.as_ref(), &record, timeout, poll) => outcome,
                };
                let ended = Command::SavepointEnded {
                    trigger_id: record.trigger_id.clone(),
                    outcome: outcome.clone(),
                };
                if to_driver.send(Box::new(ended)).await.is_err() {
                    // The job ended meanwhile (a cancel, say) and no driver owns it any more:
                    // the outcome is recorded here.
                    record_after_the_job(store.as_ref(), job_id, &record.trigger_id, outcome).await;
                }
            }
            .in_current_span(),
        );
    }

    /// Records how a triggered savepoint ended, with a note in the job's history.
    pub(super) async fn end_savepoint(
        &mut self,
        trigger_id: String,
        outcome: std::result::Result<String, String>,
    ) -> Result<(), Interrupt> {
        if let Some(note) = self.settle_recorded(&trigger_id, outcome).await?
            && !self.job.state.is_terminal()
        {
            self.note(&note).await?;
        }
        Ok(())
    }

    /// Completes or fails the recorded savepoint under `trigger_id` while it is in progress,
    /// durably; returns the note for the job's history (None when none was in progress).
    async fn settle_recorded(
        &mut self,
        trigger_id: &str,
        outcome: std::result::Result<String, String>,
    ) -> Result<Option<String>, Interrupt> {
        let mut savepoints = self.job.savepoints.clone();
        let Some(record) = savepoints
            .iter_mut()
            .find(|s| s.trigger_id == trigger_id && s.state == SavepointState::InProgress)
        else {
            return Ok(None);
        };
        let note = settle(record, outcome);
        self.set_savepoints(savepoints).await?;
        Ok(Some(note))
    }

    /// Stops Flink jobs with a savepoint each, recorded with the job before each stop is
    /// asked for (a stop resumed after a restart joins the one recorded), and waits until each
    /// savepoint is taken or one fails.
    pub(super) async fn stop_with_savepoints(
        &mut self,
        targets: &[(String, Option<u32>)],
        options: &CancelOptions,
    ) -> Result<StopOutcome, Interrupt> {
        let mut savepoints = self.job.savepoints.clone();
        let mut records = Vec::new();
        for (flink_job_id, statement_index) in targets {
            // A stop that failed before (its Flink job ran on) is asked for again under the
            // next derived id: Flink keeps a trigger's failure.
            let first = savepoint_trigger_id(flink_job_id);
            let mut trigger_id = first.clone();
            let mut attempt = 0;
            while savepoints
                .iter()
                .any(|s| s.trigger_id == trigger_id && s.state == SavepointState::Failed)
            {
                attempt += 1;
                trigger_id = retry_trigger_id(&first, attempt);
            }
            if let Some(existing) = savepoints.iter().find(|s| s.trigger_id == trigger_id) {
                records.push(existing.clone());
                continue;
            }
            let record = SavepointRecord {
                trigger_id,
                flink_job_id: flink_job_id.clone(),
                statement_index: *statement_index,
                kind: SavepointKind::Stop,
                format: options.savepoint_format,
                directory: options.savepoint_directory.clone(),
                state: SavepointState::InProgress,
                location: None,
                error: None,
                created_at: now_millis(),
                ended_at: None,
            };
            savepoints.push(record.clone());
            records.push(record);
        }
        if savepoints != self.job.savepoints {
            self.set_savepoints(savepoints).await?;
        }
        let jobmanager = self.jobmanager().clone();
        let mut pending = Vec::new();
        for record in &records {
            if record.state != SavepointState::InProgress {
                continue;
            }
            match trigger(jobmanager.as_ref(), record).await {
                Ok(()) => {
                    info!(job_id = %self.job.id, flink_job_id = %record.flink_job_id, trigger_id = %record.trigger_id, "stop with savepoint triggered");
                    pending.push(record.trigger_id.clone());
                }
                Err(cause) => {
                    self.settle_stop(&record.trigger_id, Err(cause)).await?;
                }
            }
        }
        let deadline = Instant::now() + self.limits().savepoint_timeout;
        let mut pause = FIRST_POLL;
        while !pending.is_empty() {
            let mut still = Vec::new();
            for trigger_id in pending {
                let Some(record) = self
                    .job
                    .savepoints
                    .iter()
                    .find(|s| s.trigger_id == trigger_id)
                    .cloned()
                else {
                    continue;
                };
                match jobmanager
                    .savepoint_status(&record.flink_job_id, &trigger_id)
                    .await
                {
                    Ok(SavepointStatus::Completed { location }) => {
                        self.settle_stop(&trigger_id, Ok(location)).await?;
                    }
                    Ok(SavepointStatus::Failed { cause }) => {
                        self.settle_stop(&trigger_id, Err(cause)).await?;
                    }
                    Ok(SavepointStatus::InProgress) => still.push(trigger_id),
                    Err(error) => {
                        warn!(job_id = %self.job.id, flink_job_id = %record.flink_job_id, %error, "cannot read the savepoint's status");
                        still.push(trigger_id);
                    }
                }
            }
            if !still.is_empty() && Instant::now() >= deadline {
                for trigger_id in &still {
                    let cause = format!(
                        "it did not complete within {} s (--savepoint-timeout)",
                        self.limits().savepoint_timeout.as_secs()
                    );
                    self.settle_stop(trigger_id, Err(cause)).await?;
                }
                break;
            }
            pending = still;
            if !pending.is_empty() {
                self.pause(pause).await?;
                pause = (pause * 2).min(self.limits().poll_interval);
            }
        }
        let ours: Vec<&SavepointRecord> = self
            .job
            .savepoints
            .iter()
            .filter(|s| records.iter().any(|r| r.trigger_id == s.trigger_id))
            .collect();
        let failed: Vec<String> = ours
            .iter()
            .filter(|s| s.state != SavepointState::Completed)
            .map(|s| {
                format!(
                    "the stop with a savepoint of flink job {} failed: {}",
                    s.flink_job_id,
                    s.error.as_deref().unwrap_or("no cause reported")
                )
            })
            .collect();
        if !failed.is_empty() {
            return Ok(StopOutcome::KeepsRunning(format!(
                "{}; the flink job keeps running",
                failed.join("; ")
            )));
        }
        Ok(StopOutcome::Stopped(
            ours.iter()
                .map(|s| {
                    let location = s.location.clone().unwrap_or_default();
                    match s.statement_index {
                        Some(index) => format!("statement {}: {location}", index + 1),
                        None => location,
                    }
                })
                .collect(),
        ))
    }

    /// Records the outcome of a stop's savepoint.
    async fn settle_stop(
        &mut self,
        trigger_id: &str,
        outcome: std::result::Result<String, String>,
    ) -> Result<(), Interrupt> {
        if let Some(note) = self.settle_recorded(trigger_id, outcome).await? {
            info!(job_id = %self.job.id, note = %note, "stop with savepoint ended");
        }
        Ok(())
    }
}

/// Records how a savepoint ended once its job has ended and no driver owns the job: a job that
/// is not over has a driver (here or on another replica), which follows the savepoint again.
async fn record_after_the_job(
    store: &dyn flinkbroker_store::Store,
    job_id: JobId,
    trigger_id: &str,
    outcome: std::result::Result<String, String>,
) {
    let job = match store.get_job(job_id).await {
        Ok(job) if job.state.is_terminal() => job,
        Ok(_) => return,
        Err(error) => {
            warn!(job_id = %job_id, trigger_id, %error, "cannot read the job to record its savepoint");
            return;
        }
    };
    let mut savepoints = job.savepoints;
    let Some(record) = savepoints
        .iter_mut()
        .find(|s| s.trigger_id == trigger_id && s.state == SavepointState::InProgress)
    else {
        return;
    };
    let note = settle(record, outcome);
    match store.set_savepoints(job_id, &savepoints).await {
        Ok(()) => info!(job_id = %job_id, note = %note, "savepoint recorded after its job ended"),
        Err(error) => {
            warn!(job_id = %job_id, trigger_id, %error, "cannot record the savepoint of an ended job")
        }
    }
}

/// Completes or fails a savepoint record; returns the note for the job's history.
fn settle(record: &mut SavepointRecord, outcome: std::result::Result<String, String>) -> String {
    record.ended_at = Some(now_millis());
    let of = match record.statement_index {
        Some(index) => format!(
            "statement {} (flink job {})",
            index + 1,
            record.flink_job_id
        ),
        None => format!("flink job {}", record.flink_job_id),
    };
    match outcome {
        Ok(location) => {
            record.state = SavepointState::Completed;
            let note = format!("savepoint of {of} written to {location}");
            record.location = Some(location);
            note
        }
        Err(cause) => {
            record.state = SavepointState::Failed;
            let note = format!("savepoint of {of} failed: {cause}");
            record.error = Some(cause);
            note
        }
    }
}

/// Asks the JobManager for a recorded savepoint (a stop or a savepoint that leaves the job
/// running, by its kind), again while it cannot be reached; the error is Flink's refusal.
async fn trigger(
    jobmanager: &dyn JobManager,
    record: &SavepointRecord,
) -> std::result::Result<(), String> {
    let mut pause = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let directory = record.directory.as_deref();
        let asked = match record.kind {
            SavepointKind::Stop => {
                jobmanager
                    .stop_with_savepoint(
                        &record.flink_job_id,
                        &record.trigger_id,
                        directory,
                        record.format,
                    )
                    .await
            }
            SavepointKind::Triggered => {
                jobmanager
                    .trigger_savepoint(
                        &record.flink_job_id,
                        &record.trigger_id,
                        directory,
                        record.format,
                    )
                    .await
            }
        };
        match asked {
            Ok(_) => return Ok(()),
            Err(FlinkError::Unreachable(message)) if attempt < TRIGGER_ATTEMPTS => {
                warn!(flink_job_id = %record.flink_job_id, %message, attempt, "jobmanager unreachable; asking for the savepoint again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(FlinkError::JobNotFound(flink_job_id)) => {
                return Err(format!("the jobmanager knows no flink job {flink_job_id}"));
            }
            Err(error) => return Err(format!("refused: {error}")),
        }
    }
}

/// Triggers a recorded savepoint and waits for its outcome, at most `timeout`: its location,
/// or why it failed. A savepoint Flink fails because the job is not ready for one yet (still
/// initializing, tasks not all running) is asked for again, under a derived trigger id.
async fn take_savepoint(
    jobmanager: &dyn JobManager,
    record: &SavepointRecord,
    timeout: Duration,
    poll: Duration,
) -> std::result::Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut attempt = record.clone();
    let mut retries = 0;
    loop {
        match await_savepoint(jobmanager, &attempt, deadline, poll).await {
            Err(cause) if savepoint_not_ready_yet(&cause) && Instant::now() < deadline => {
                retries += 1;
                attempt.trigger_id = retry_trigger_id(&record.trigger_id, retries);
                info!(flink_job_id = %record.flink_job_id, trigger_id = %attempt.trigger_id, %cause, "the flink job was not ready for a savepoint; asking again");
                tokio::time::sleep(poll.min(Duration::from_secs(1))).await;
            }
            outcome => return outcome,
        }
    }
}

/// Triggers one savepoint and waits for its outcome until `deadline`.
async fn await_savepoint(
    jobmanager: &dyn JobManager,
    record: &SavepointRecord,
    deadline: Instant,
    poll: Duration,
) -> std::result::Result<String, String> {
    trigger(jobmanager, record).await?;
    let mut pause = FIRST_POLL;
    loop {
        match jobmanager
            .savepoint_status(&record.flink_job_id, &record.trigger_id)
            .await
        {
            Ok(SavepointStatus::Completed { location }) => {
                info!(flink_job_id = %record.flink_job_id, trigger_id = %record.trigger_id, %location, "savepoint completed");
                return Ok(location);
            }
            Ok(SavepointStatus::Failed { cause }) => return Err(cause),
            Ok(SavepointStatus::InProgress) => {}
            Err(error) => {
                warn!(flink_job_id = %record.flink_job_id, trigger_id = %record.trigger_id, %error, "cannot read the savepoint's status");
            }
        }
        if Instant::now() >= deadline {
            return Err("it did not complete within --savepoint-timeout".to_owned());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll);
    }
}

impl Core {
    /// The cluster's Flink version and the savepoint the job's Flink jobs restore from (its
    /// version decides the keys and options that say so); None for a job that does not
    /// restore. The version is read from the JobManager once per process, waiting for it while
    /// it cannot be reached.
    pub(super) async fn cluster_version_for_restore(
        &mut self,
    ) -> Result<Option<(FlinkVersion, Restore)>, Interrupt> {
        let restore = match &self.job.spec {
            JobSpec::Sql(spec) => spec.restore.clone(),
            JobSpec::Python(spec) => spec.restore.clone(),
        };
        let Some(restore) = restore else {
            return Ok(None);
        };
        let mut pause = Duration::from_millis(200);
        loop {
            if let Some(version) = self.controller.flink_version.get() {
                return Ok(Some((*version, restore)));
            }
            match self.jobmanager().flink_version().await {
                Ok(text) => match text.parse::<FlinkVersion>() {
                    Ok(version) => {
                        info!(flink_version = %text, "the cluster's flink version, for restore options");
                        let _ = self.controller.flink_version.set(version);
                    }
                    Err(error) => {
                        return Err(Interrupt::Failed(format!(
                            "cannot restore from {}: the jobmanager reports flink version {error}",
                            restore.savepoint_path
                        )));
                    }
                },
                Err(error) => {
                    warn!(job_id = %self.job.id, %error, "cannot read the cluster's flink version to restore from a savepoint; asking again");
                    self.pause(pause).await?;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The CANCELING reason recorded for a cancel, from which a resumed cancel reads its options.
pub(super) fn cancel_reason(options: &CancelOptions, what: &str) -> String {
    if !options.stop_with_savepoint {
        return format!("cancel requested; stopping {what}");
    }
    let mut reason = format!(
        "{STOP_WITH_SAVEPOINT}{SAVEPOINT_FORMAT}{}",
        options.savepoint_format.as_str()
    );
    if let Some(directory) = &options.savepoint_directory {
        reason.push_str(SAVEPOINT_DIRECTORY);
        reason.push_str(directory);
    }
    reason
}

/// Reads the options of a cancel back from its CANCELING reason.
pub(super) fn options_from_reason(reason: &str) -> CancelOptions {
    let Some(rest) = reason.strip_prefix(STOP_WITH_SAVEPOINT) else {
        return CancelOptions::default();
    };
    let (format, rest) = match rest.strip_prefix(SAVEPOINT_FORMAT) {
        Some(rest) => match rest.split_once(SAVEPOINT_DIRECTORY) {
            Some((format, directory)) => (format, Some(directory)),
            None => (rest, None),
        },
        None => ("", rest.strip_prefix(SAVEPOINT_DIRECTORY)),
    };
    CancelOptions {
        stop_with_savepoint: true,
        savepoint_directory: rest.map(str::to_owned),
        savepoint_format: if format == SavepointFormat::Native.as_str() {
            SavepointFormat::Native
        } else {
            SavepointFormat::Canonical
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_cancel_reads_its_options_back_from_the_reason() {
        for options in [
            CancelOptions::default(),
            CancelOptions {
                stop_with_savepoint: true,
                savepoint_directory: None,
                savepoint_format: SavepointFormat::Canonical,
            },
            CancelOptions {
                stop_with_savepoint: true,
                savepoint_directory: Some("file:///savepoints/recs".into()),
                savepoint_format: SavepointFormat::Native,
            },
        ] {
            let back = options_from_reason(&cancel_reason(&options, "the flink job"));
            assert_eq!(back.stop_with_savepoint, options.stop_with_savepoint);
            assert_eq!(back.savepoint_directory, options.savepoint_directory);
            assert_eq!(back.savepoint_format, options.savepoint_format);
        }
    }

    #[test]
    fn a_cancel_recorded_before_formats_reads_back_as_canonical() {
        let back = options_from_reason("stop with a savepoint requested; directory: s3://sp");
        assert!(back.stop_with_savepoint);
        assert_eq!(back.savepoint_directory.as_deref(), Some("s3://sp"));
        assert_eq!(back.savepoint_format, SavepointFormat::Canonical);
    }
}
