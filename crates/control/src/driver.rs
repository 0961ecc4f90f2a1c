//! What every job driver shares: the job it owns, its durable writes, the `watch` channel it
//! publishes on, and the commands it takes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use tokio_util::sync::CancellationToken;

use super::registry::LiveJob;
use super::results::drain::DrainOutcome;
use super::savepoint::SavepointRequest;
use super::{CancelOptions, Controller, Limits};
use crate::error::Error;
use crate::metrics;
use flinkbroker_flink::jobmanager::JobManager;
use flinkbroker_flink::sql_gateway::SqlGateway;
use flinkbroker_model::job::{Job, JobState, LogEnd, LogSummary, SavepointRecord, StatementState};
use flinkbroker_runner::JobRunner;
use flinkbroker_store::{StatementUpdate, Store, StoreError};

/// Commands waiting for a driver; senders wait when it is full.
const COMMAND_BUFFER: usize = 16;
/// Attempts at one durable write before the driver gives the job up to the next start.
const STORE_ATTEMPTS: u32 = 5;

/// A command to a job's driver. Commands travel boxed: every live job's command channel holds
/// a block of slots from its start, a pointer each rather than the largest command each.
pub(super) enum Command {
    /// CancelJob: the driver answers with the job once it is CANCELING (or already over).
    Cancel {
        options: CancelOptions,
        reply: oneshot::Sender<Job>,
    },
    /// A query statement's drain ended: its results are logged (to their end or a result
    /// limit), it failed, or the gateway lost them.
    Drained { index: u32, outcome: DrainOutcome },
    /// TriggerSavepoint: the driver records a savepoint of each of the job's running Flink
    /// jobs and answers with their trigger ids (or why none can be taken).
    Savepoint {
        request: SavepointRequest,
        reply: oneshot::Sender<crate::error::Result<Vec<String>>>,
    },
    /// A triggered savepoint ended: its location, or why it failed.
    SavepointEnded {
        trigger_id: String,
        outcome: Result<String, String>,
    },
    /// The follower of the job's upgrade recorded a step: the driver records the lineage
    /// (and the note in the history while the job lives) and answers.
    SetLineage {
        lineage: flinkbroker_model::job::Lineage,
        note: Option<String>,
        reply: oneshot::Sender<crate::error::Result<()>>,
    },
}

/// Why a driver's work stopped before the job's end.
pub(super) enum Interrupt {
    /// CancelJob: the callers wait for the job once it is CANCELING.
    Cancel {
        options: CancelOptions,
        replies: Vec<oneshot::Sender<Job>>,
    },
    /// The job failed for this reason, which is true of the job.
    Failed(String),
    /// The broker shuts down: the job is resumed at the next start.
    Shutdown,
    /// The store cannot record the job's progress: the job is resumed later.
    Lost(Error),
    /// Something is in doubt (a submission went unanswered): the driver takes the job up
    /// again from what is recorded, as after a restart.
    Resume(String),
    /// The cluster refused a statement's Flink job at once, before any of its tasks ran
    /// (`cause`), and the statement may run again: the SQL driver retries it.
    Refused { index: u32, cause: String },
}

impl From<StoreError> for Interrupt {
    fn from(error: StoreError) -> Self {
        Interrupt::Lost(Error::Store(error))
    }
}

/// The part of a driver every kind of job shares.
pub(super) struct Core {
    pub controller: Arc<Controller>,
    /// The job as recorded; the driver changes it only through the methods below.
    pub job: Job,
    /// True when the driver took the job over from an earlier run of the broker.
    pub resuming: bool,
    /// Why the job is taken up again (for its history), e.g. "after a broker restart".
    pub resumed_because: String,
    published: watch::Sender<Job>,
    commands: mpsc::Receiver<Box<Command>>,
    /// Callers of CancelJob answered once the job is CANCELING.
    canceling: bool,
    /// True when the driver stopped without the job's end and the job must be taken up again.
    pub lost: bool,
    /// Cancelled at shutdown, and when this replica lost the job's lease.
    pub stop: CancellationToken,
    /// The driver's own command channel, for the tasks it starts (drains).
    pub to_self: mpsc::Sender<Box<Command>>,
    /// A job taken up again holds one of the replica's resume slots (`--resume-concurrency`)
    /// until it follows its job again ([`Core::settled`]), so that a restart or a takeover of
    /// many jobs sends the gateway and the JobManager a bounded burst.
    resume_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// True from the job's take-up until it follows its Flink jobs again.
    taking_up: bool,
}

impl Core {
    /// The store the job is recorded in.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.controller.store
    }

    /// The SQL Gateway the job's statements run in.
    pub(crate) fn gateway(&self) -> &Arc<dyn SqlGateway> {
        &self.controller.gateway
    }

    /// The JobManager that runs the job's Flink jobs.
    pub(crate) fn jobmanager(&self) -> &Arc<dyn JobManager> {
        &self.controller.jobmanager
    }

    /// The runner of Python submitters.
    pub(crate) fn runner(&self) -> &Arc<dyn JobRunner> {
        &self.controller.runner
    }

    /// The use cases' limits and pacing.
    pub(crate) fn limits(&self) -> &Limits {
        &self.controller.limits
    }

    /// Registers a job as live; None when it already has a driver. `resumed` says why a job
    /// an earlier driver left is taken up (None for a new job).
    pub(crate) fn register(
        controller: Arc<Controller>,
        job: Job,
        resumed: Option<String>,
    ) -> Option<Core> {
        let (commands_tx, commands) = mpsc::channel(COMMAND_BUFFER);
        let (published, job_rx) = watch::channel(job.clone());
        let stop = controller.shutdown.child_token();
        let live = LiveJob {
            commands: commands_tx.clone(),
            job: job_rx,
            stop: stop.clone(),
        };
        if !controller.live.insert(job.id, live) {
            return None;
        }
        Some(Core {
            controller,
            canceling: job.state == JobState::Canceling,
            lost: false,
            stop,
            to_self: commands_tx,
            job,
            resuming: resumed.is_some(),
            resumed_because: resumed.clone().unwrap_or_default(),
            published,
            commands,
            resume_slot: None,
            taking_up: resumed.is_some(),
        })
    }

    /// Waits for one of the replica's resume slots (a job taken up again); false at shutdown.
    pub(crate) async fn take_resume_slot(&mut self) -> bool {
        let slots = Arc::clone(&self.controller.resume_slots);
        tokio::select! {
            _ = self.stop.cancelled() => false,
            slot = slots.acquire_owned() => {
                self.resume_slot = slot.ok();
                true
            }
        }
    }

    /// The job taken up is followed again: its resume slot goes to the next job.
    pub(crate) fn settled(&mut self) {
        self.resume_slot = None;
        if std::mem::take(&mut self.taking_up) {
            metrics::job_resumed();
        }
    }

    /// The driver waits for a system that does not answer, sending nothing meanwhile: its
    /// resume slot goes to the next job.
    pub(crate) fn yield_resume_slot(&mut self) {
        self.resume_slot = None;
    }

    /// Publishes the job as it is now to GetJob, WatchJob and result streams.
    pub(crate) fn publish(&self) {
        self.published.send_replace(self.job.clone());
    }

    /// Runs one write to the store, again (a few times, with pauses) while the database
    /// fails; shutdown interrupts.
    pub(crate) async fn durably<T, F, Fut>(
        &self,
        what: &'static str,
        mut write: F,
    ) -> Result<T, Interrupt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match write().await {
                Ok(written) => return Ok(written),
                Err(StoreError::Database(message)) if attempt < STORE_ATTEMPTS => {
                    warn!(job_id = %self.job.id, %message, attempt, what, "cannot write to the store; retrying");
                    self.backoff(attempt).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Moves the job to `state`, durably, and publishes it.
    pub(crate) async fn transition(
        &mut self,
        state: JobState,
        reason: &str,
    ) -> Result<(), Interrupt> {
        let store = &self.store();
        let id = self.job.id;
        let job = self
            .durably("the job's state", || store.transition(id, state, reason))
            .await?;
        info!(job_id = %self.job.id, state = state.as_str(), reason, "job state changed");
        if self.job.state != state {
            metrics::job_transition(self.job.kind, state);
        }
        // The store reads statements back as written; the driver's copy is the same.
        self.job = job;
        self.canceling = state == JobState::Canceling;
        self.publish();
        Ok(())
    }

    /// Records a new reason in the job's current state (a resumption, say) in its history.
    pub(crate) async fn note(&mut self, reason: &str) -> Result<(), Interrupt> {
        let state = self.job.state;
        self.transition(state, reason).await
    }

    /// Changes one statement, durably, and publishes the job.
    pub(crate) async fn update_statement(
        &mut self,
        index: u32,
        update: StatementUpdate,
    ) -> Result<(), Interrupt> {
        let store = &self.store();
        let id = self.job.id;
        self.durably("a statement", || {
            store.update_statement(id, index, update.clone())
        })
        .await?;
        if let Some(flink_job_id) = &update.flink_job_id
            && self.job.statements.iter().all(|s| s.flink_job_id.is_none())
        {
            // The driver runs in its job's span, which names the first Flink job the job
            // starts (an exported attribute is set once; each request to the JobManager and
            // each statement's submission name their own).
            tracing::Span::current().record("flink.job_id", flink_job_id.as_str());
        }
        if let Some(statement) = self.job.statements.get_mut(index as usize) {
            if let Some(state) = update.state {
                statement.state = state;
            }
            if let Some(handle) = update.operation_handle {
                statement.operation_handle = Some(handle);
            }
            if let Some(flink_job_id) = update.flink_job_id {
                statement.flink_job_id = Some(flink_job_id);
            }
            if let Some(error) = update.error {
                statement.error = Some(error);
            }
            if let Some(is_query) = update.is_query {
                statement.is_query = is_query;
            }
            if let Some(attempt) = update.attempt {
                statement.attempt = attempt;
            }
        }
        self.publish();
        Ok(())
    }

    /// Records the gateway session the job runs in (None once closed), durably.
    pub(crate) async fn set_gateway_session(
        &mut self,
        session: Option<&str>,
    ) -> Result<(), Interrupt> {
        let store = &self.store();
        let id = self.job.id;
        self.durably("the gateway session", || {
            store.set_gateway_session(id, session)
        })
        .await?;
        self.job.gateway_session = session.map(str::to_owned);
        self.publish();
        Ok(())
    }

    /// Opens the result log of a query statement's attempt, durably.
    pub(crate) async fn open_log(
        &mut self,
        index: u32,
        attempt: u32,
        schema: Vec<u8>,
    ) -> Result<LogSummary, Interrupt> {
        let store = &self.store();
        let id = self.job.id;
        self.durably("the result log", || {
            store.open_log(id, index, attempt, schema.clone())
        })
        .await
    }

    /// Records the job's savepoints (and so its latest completed one's location), durably.
    pub(crate) async fn set_savepoints(
        &mut self,
        savepoints: Vec<SavepointRecord>,
    ) -> Result<(), Interrupt> {
        let store = &self.store();
        let id = self.job.id;
        self.durably("the savepoints", || store.set_savepoints(id, &savepoints))
            .await?;
        // As the store keeps it: a path recorded before savepoints were listed stays until one
        // completes.
        if let Some(latest) = flinkbroker_model::job::latest_savepoint_location(&savepoints) {
            self.job.savepoint_path = Some(latest.to_owned());
        }
        self.job.savepoints = savepoints;
        self.publish();
        Ok(())
    }

    /// Sets a statement's state, durably.
    pub(crate) async fn statement_state(
        &mut self,
        index: u32,
        state: StatementState,
    ) -> Result<(), Interrupt> {
        self.update_statement(
            index,
            StatementUpdate {
                state: Some(state),
                ..StatementUpdate::default()
            },
        )
        .await
    }

    /// Waits `pause`, taking commands meanwhile: returns early after a command changed
    /// something, and with the interrupt a cancel or shutdown is.
    pub(crate) async fn pause(&mut self, pause: Duration) -> Result<(), Interrupt> {
        self.wait_for(std::future::pending(), pause).await
    }

    /// Waits until `event` happens, at most `at_most`, taking commands meanwhile: returns
    /// early after a command changed something, and with the interrupt a cancel or shutdown
    /// is.
    pub(crate) async fn wait_for(
        &mut self,
        event: impl Future<Output = ()>,
        at_most: Duration,
    ) -> Result<(), Interrupt> {
        let sleep = tokio::time::sleep(at_most);
        tokio::pin!(sleep);
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Err(Interrupt::Shutdown),
            command = self.commands.recv() => match command {
                Some(command) => self.handle(command).await,
                // The registry holds a sender for as long as the driver runs.
                None => Ok(()),
            },
            _ = event => Ok(()),
            _ = &mut sleep => Ok(()),
        }
    }

    /// Waits all of `pause`, taking commands meanwhile; returns early only with the
    /// interrupt a cancel or shutdown is.
    pub(crate) async fn pause_fully(&mut self, pause: Duration) -> Result<(), Interrupt> {
        let until = tokio::time::Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.pause(left).await?;
        }
    }

    /// Takes every command already waiting, without waiting for more.
    pub(crate) async fn take_commands(&mut self) -> Result<(), Interrupt> {
        while let Ok(command) = self.commands.try_recv() {
            self.handle(command).await?;
        }
        if self.stop.is_cancelled() {
            return Err(Interrupt::Shutdown);
        }
        Ok(())
    }

    async fn handle(&mut self, command: Box<Command>) -> Result<(), Interrupt> {
        match *command {
            Command::Cancel { options, reply } => {
                if self.canceling || self.job.state.is_terminal() {
                    // A second cancel changes nothing.
                    let _ = reply.send(self.job.clone());
                    Ok(())
                } else {
                    Err(Interrupt::Cancel {
                        options,
                        replies: vec![reply],
                    })
                }
            }
            Command::Savepoint { request, reply } => {
                if self.canceling {
                    let _ = reply.send(Err(Error::FailedPrecondition(format!(
                        "job {} is CANCELING; only a RUNNING job's flink jobs can take a savepoint",
                        self.job.id
                    ))));
                    return Ok(());
                }
                Box::pin(self.begin_savepoints(request, reply)).await
            }
            Command::SavepointEnded {
                trigger_id,
                outcome,
            } => self.end_savepoint(trigger_id, outcome).await,
            Command::SetLineage {
                lineage,
                note,
                reply,
            } => {
                let recorded = self.set_lineage_noted(lineage, note).await;
                if let Err(interrupt) = recorded {
                    let _ = reply.send(Err(Error::Unavailable(
                        "the job's upgrade could not be recorded".into(),
                    )));
                    return Err(interrupt);
                }
                let _ = reply.send(Ok(()));
                Ok(())
            }
            Command::Drained { .. } if self.canceling => Ok(()),
            Command::Drained { index, outcome } => {
                let Some(statement) = self.job.statements.get(index as usize) else {
                    return Ok(());
                };
                if statement.state != StatementState::Running {
                    return Ok(());
                }
                match outcome {
                    DrainOutcome::Logged { end, rows } => {
                        self.statement_state(index, StatementState::Finished)
                            .await?;
                        if end != LogEnd::EndOfResults {
                            let limit = match end {
                                LogEnd::RowLimit => "max_rows",
                                _ => "max_duration",
                            };
                            self.note(&format!(
                                "statement {}: result limit {limit} reached after {rows} rows; its flink job was asked to stop",
                                index + 1
                            ))
                            .await?;
                        }
                        Ok(())
                    }
                    DrainOutcome::Failed(message, cause) => {
                        if let Some(cause) = self.refused(index).await {
                            return Err(Interrupt::Refused { index, cause });
                        }
                        metrics::statement_failed(cause);
                        self.update_statement(
                            index,
                            StatementUpdate {
                                state: Some(StatementState::Failed),
                                error: Some(message.clone()),
                                ..StatementUpdate::default()
                            },
                        )
                        .await?;
                        Err(Interrupt::Failed(format!(
                            "statement {} failed: {message}",
                            index + 1
                        )))
                    }
                    DrainOutcome::Lost(why) => {
                        Err(Interrupt::Resume(format!("statement {}: {why}", index + 1)))
                    }
                    DrainOutcome::StoreLost(error) => Err(Interrupt::Lost(error)),
                }
            }
        }
    }

    /// Answers the callers of CancelJob with the job as it is now.
    pub(crate) fn answer(&self, replies: Vec<oneshot::Sender<Job>>) {
        for reply in replies {
            let _ = reply.send(self.job.clone());
        }
    }

    /// Waits before another attempt at a write; shutdown interrupts.
    async fn backoff(&self, attempt: u32) -> Result<(), Interrupt> {
        let pause = Duration::from_millis(100 * u64::from(attempt));
        tokio::select! {
            _ = self.stop.cancelled() => Err(Interrupt::Shutdown),
            _ = tokio::time::sleep(pause) => Ok(()),
        }
    }

    /// Records the job's failure for `reason`.
    async fn fail(&mut self, reason: &str) {
        warn!(job_id = %self.job.id, reason = %reason, "job failed");
        if let Err(Interrupt::Lost(error)) = self.transition(JobState::Failed, reason).await {
            warn!(job_id = %self.job.id, %error, "cannot record the job's failure; it is resumed at the next start");
        }
    }

    /// Ends the driver's work on an interrupt that is not a cancel: records a failure, or
    /// leaves the job as it is for the next start.
    pub(crate) async fn conclude(&mut self, interrupt: Interrupt) {
        match interrupt {
            Interrupt::Failed(reason) => self.fail(&reason).await,
            // Only the SQL driver retries a refusal; anywhere else it is the job's failure.
            Interrupt::Refused { index, cause } => {
                self.fail(&format!("statement {} failed: {cause}", index + 1))
                    .await
            }
            Interrupt::Shutdown if self.controller.handovers.contains(self.job.id) => {
                info!(job_id = %self.job.id, state = self.job.state.as_str(), "driver stopped: the job is handed over to another replica (fair shares)");
            }
            Interrupt::Shutdown if !self.controller.shutdown.is_cancelled() => {
                info!(job_id = %self.job.id, state = self.job.state.as_str(), "driver stopped: this replica no longer holds the job's lease");
            }
            Interrupt::Shutdown => {
                info!(job_id = %self.job.id, state = self.job.state.as_str(), "broker shutting down; the job is resumed at the next start (or by another replica)");
            }
            Interrupt::Lost(error) => {
                warn!(job_id = %self.job.id, %error, "cannot record the job's progress; it is resumed later");
                self.lost = true;
            }
            Interrupt::Resume(why) => {
                // Drivers take the job up again themselves; reaching here is a driver's bug.
                warn!(job_id = %self.job.id, why = %why, "job left to be resumed later");
                self.lost = true;
            }
            Interrupt::Cancel { replies, .. } => {
                // Only reached when the cancel itself could not be recorded: the dropped
                // answers tell the callers.
                drop(replies);
            }
        }
    }
}
