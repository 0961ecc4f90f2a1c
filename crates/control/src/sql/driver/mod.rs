//! Drives a SQL job: opens (or reuses) its gateway session, gives every statement its verdict
//! before submitting the next, follows the job to its end, and cancels it.
//!
//! A statement's verdict: DDL and SET finished; an INSERT or statement set submitted under its
//! pinned Flink job id; a query failed, or produced its first result page (its schema is known
//! and its Flink job started). The gateway never stops a script by itself, so nothing after a
//! statement without a verdict is submitted.
//!
//! Resuming after a restart: the recorded session is reused when it still answers; otherwise a
//! new one is opened and the statements that build session state are replayed. A statement that
//! may have started a Flink job is looked up by its pinned id on the JobManager and adopted
//! instead of being submitted again; a query whose results could not be delivered is cancelled
//! and re-run under the id of its next attempt.

mod cancel;
mod drain;
mod refusal;
mod session;
mod statement;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, info, warn};

use super::PIPELINE_JOB_ID_KEY;
use crate::driver::{Core, Interrupt};
use crate::metrics::{self, StatementFailure};
use crate::observer::{self, FlinkJobWatch, Observed};
use crate::results::drain::Drain;
use crate::stop::Stopped;
use flinkbroker_flink::jobmanager::{FlinkError, FlinkJobStatus};
use flinkbroker_flink::sql_gateway::{
    GatewayError, OperationHandle, OperationStatus, RawPage, ResultType, SessionHandle,
};
use flinkbroker_model::job::{
    JobSpec, JobState, LogEnd, LogSummary, ResultLimits, RuntimeMode, StatementRecord,
    StatementState,
};
use flinkbroker_model::sql_script::builds_session_state;
use flinkbroker_store::StatementUpdate;

const FIRST_POLL: Duration = Duration::from_millis(10);
/// Polls in a row that must find a submitted Flink job unknown before the job fails.
const UNKNOWN_FLINK_JOB_POLLS: u32 = 20;
/// The longest pause between attempts to reach an unreachable SQL Gateway.
const MAX_UNREACHABLE_PAUSE: Duration = Duration::from_secs(10);

/// Runs a SQL job's driver to the job's end (or the broker's shutdown).
/// Returns true when the job must be taken up again (its progress could not be recorded).
pub(crate) async fn run(core: Core) -> bool {
    let mut driver = SqlDriver {
        core,
        session: None,
        continued_session: false,
        heartbeat: None,
        drains: HashMap::new(),
    };
    loop {
        let mut driven = driver.drive().await;
        // A statement whose Flink job the cluster refused runs again, then the job goes on.
        while let Err(Interrupt::Refused { index, cause }) = driven {
            driven = match Box::pin(driver.rerun_refused(index, &cause)).await {
                Ok(()) => driver.drive().await,
                Err(interrupt) => Err(interrupt),
            };
        }
        match driven {
            Ok(()) => Box::pin(driver.finish()).await,
            Err(Interrupt::Cancel { options, replies }) => {
                if !Box::pin(driver.cancel(options, replies)).await {
                    // A stop with a savepoint failed: the job runs on, and is followed again.
                    continue;
                }
            }
            Err(Interrupt::Failed(reason)) => {
                Box::pin(driver.core.conclude(Interrupt::Failed(reason))).await;
                if driver.core.job.state == JobState::Failed {
                    Box::pin(driver.stop_after_failure()).await;
                }
                Box::pin(driver.close_session()).await;
            }
            Err(Interrupt::Resume(why)) => {
                // Take the job up again as after a restart, from what is recorded.
                info!(job_id = %driver.core.job.id, why = %why, "resuming the job");
                driver.drains.clear();
                driver.heartbeat = None;
                driver.session = None;
                driver.continued_session = false;
                driver.core.resuming = true;
                driver.core.resumed_because = "after an unanswered submission".into();
                continue;
            }
            Err(other) => Box::pin(driver.core.conclude(other)).await,
        }
        break;
    }
    driver.drains.clear();
    driver.heartbeat = None;
    // Readers follow the store from now on.
    driver.core.controller.tails.forget_job(driver.core.job.id);
    driver.core.lost
}

struct SqlDriver {
    core: Core,
    /// The session the statements run in.
    session: Option<SessionHandle>,
    /// True when `session` is the one recorded before the driver took the job up, so the
    /// operations recorded with the statements live in it.
    continued_session: bool,
    /// Stops the session's heartbeats when dropped.
    heartbeat: Option<DropGuard>,
    /// The drains logging the results of the job's queries, by statement.
    drains: HashMap<u32, AbortOnDropHandle<()>>,
}
impl SqlDriver {
    async fn drive(&mut self) -> Result<(), Interrupt> {
        if self.core.job.state == JobState::Canceling {
            // A cancel was under way when the broker stopped: finish it as it was asked.
            return Err(Interrupt::Cancel {
                options: crate::savepoint::options_from_reason(&self.core.job.state_reason),
                replies: Vec::new(),
            });
        }
        if self.core.job.state == JobState::Pending {
            self.core
                .transition(JobState::Submitting, "opening a sql gateway session")
                .await?;
        }
        // Each step's future is boxed: a live job's task then holds only what following it
        // needs.
        Box::pin(self.open_session()).await?;
        for index in 0..self.core.job.statements.len() {
            self.core.take_commands().await?;
            Box::pin(self.give_verdict(index)).await?;
        }
        if self.core.job.state != JobState::Running {
            let reason = running_reason(&self.core.job.statements);
            self.core.transition(JobState::Running, &reason).await?;
        }
        self.follow().await
    }

    /// Gives one statement its verdict, unless it has one.
    async fn give_verdict(&mut self, index: usize) -> Result<(), Interrupt> {
        let statement = self.core.job.statements[index].clone();
        match statement.state {
            StatementState::Finished => Ok(()),
            StatementState::Failed | StatementState::Canceled => Err(Interrupt::Failed(format!(
                "statement {} failed: {}",
                statement.index + 1,
                statement.error.unwrap_or_default()
            ))),
            StatementState::Running if self.drains.contains_key(&statement.index) => Ok(()),
            StatementState::Running => self.resume_statement(statement).await,
            StatementState::Pending => self.submit(statement.index, statement.attempt).await,
        }
    }

    /// Waits until every query's results were logged and every INSERT's Flink job ended,
    /// following the Flink jobs through the cluster's observer (`GET /jobs/:jobid` only for a
    /// job the overview does not list). The gateway session is closed as soon as no statement
    /// needs it.
    async fn follow(&mut self) -> Result<(), Interrupt> {
        let mut ended: HashSet<String> = HashSet::new();
        let mut unknown: HashMap<String, u32> = HashMap::new();
        let mut watches: Vec<FlinkJobWatch> = Vec::new();
        loop {
            self.core.take_commands().await?;
            self.release_idle_session().await;
            let statements = &self.core.job.statements;
            let mut waiting = statements
                .iter()
                .filter(|statement| {
                    statement.is_query && statement.state != StatementState::Finished
                })
                .count();
            // The Flink jobs to follow, taken apart from the job (its SQL text and all), which
            // every live job would otherwise copy at each change the observer publishes.
            let followed: Vec<(u32, String)> = statements
                .iter()
                .filter(|statement| statement.kind.runs_on_after_submission())
                .filter_map(|statement| Some((statement.index, statement.flink_job_id.clone()?)))
                .collect();
            for (index, flink_job_id) in followed {
                if ended.contains(&flink_job_id) {
                    continue;
                }
                let position = match watches
                    .iter()
                    .position(|watch| watch.flink_job_id() == flink_job_id)
                {
                    Some(position) => position,
                    None => {
                        watches.push(self.core.controller.observer.follow(&flink_job_id));
                        watches.len() - 1
                    }
                };
                let status = match watches[position].seen() {
                    Observed::Unseen => {
                        waiting += 1;
                        continue;
                    }
                    Observed::Listed(status) => Ok(status),
                    Observed::NotListed => {
                        self.core
                            .controller
                            .jobmanager
                            .job_status(&flink_job_id)
                            .await
                    }
                };
                match status {
                    Ok(FlinkJobStatus::Finished) => {
                        info!(job_id = %self.core.job.id, flink_job_id = %flink_job_id, "flink job finished");
                        watches.swap_remove(position);
                        ended.insert(flink_job_id);
                    }
                    Ok(_) if unknown.remove(&flink_job_id).is_some() => waiting += 1,
                    Ok(status) => {
                        if status == FlinkJobStatus::Failed
                            && let Some(cause) = self.core.refused(index).await
                        {
                            return Err(Interrupt::Refused { index, cause });
                        }
                        if let Some(reason) = self
                            .core
                            .controller
                            .flink_job_failure(&flink_job_id, status)
                            .await
                        {
                            return Err(Interrupt::Failed(format!(
                                "statement {}: {reason}",
                                index + 1
                            )));
                        }
                        waiting += 1;
                    }
                    Err(FlinkError::JobNotFound(_)) => {
                        let misses = unknown.entry(flink_job_id.clone()).or_insert(0);
                        *misses += 1;
                        if *misses >= UNKNOWN_FLINK_JOB_POLLS {
                            return Err(Interrupt::Failed(format!(
                                "statement {}: the jobmanager no longer knows flink job {flink_job_id} (its end is unknown; it may have ended and expired from the jobmanager's history)",
                                index + 1
                            )));
                        }
                        waiting += 1;
                    }
                    Err(error) => {
                        warn!(job_id = %self.core.job.id, flink_job_id = %flink_job_id, %error, "cannot read the flink job's status");
                        waiting += 1;
                    }
                }
            }
            if waiting == 0 {
                return Ok(());
            }
            self.core.settled();
            self.core
                .wait_for(
                    observer::any_changed(&mut watches),
                    observer::FOLLOW_RECHECK,
                )
                .await?;
        }
    }

    async fn finish(&mut self) {
        if let Err(interrupt) = self
            .core
            .transition(JobState::Finished, "all statements ran to their end")
            .await
        {
            self.core.conclude(interrupt).await;
            return;
        }
        self.close_session().await;
    }

    /// Calls the gateway until it answers: an unreachable gateway is waited for (with
    /// growing pauses, taking commands meanwhile), not a reason for the job to fail.
    async fn retrying<T, F, Fut>(
        &mut self,
        what: &'static str,
        mut call: F,
    ) -> Result<Result<T, GatewayError>, Interrupt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GatewayError>>,
    {
        let mut pause = Duration::from_millis(100);
        let mut noted = false;
        loop {
            match call().await {
                Err(error @ GatewayError::Unreachable(_)) => {
                    warn!(job_id = %self.core.job.id, what, %error, retry_ms = pause.as_millis() as u64, "sql gateway unreachable; waiting for it");
                    // Waiting sends nothing: the resume slot goes to another job.
                    self.core.yield_resume_slot();
                    if !noted {
                        noted = true;
                        self.core
                            .note(&format!("waiting for the sql gateway: {error}"))
                            .await?;
                    }
                    self.core.pause(pause).await?;
                    pause = (pause * 2).min(MAX_UNREACHABLE_PAUSE);
                }
                other => return Ok(other),
            }
        }
    }
}

/// Says what a job whose statements all have their verdict waits for.
fn running_reason(statements: &[StatementRecord]) -> String {
    let mut waiting = Vec::new();
    for statement in statements {
        if statement.is_query && statement.state != StatementState::Finished {
            waiting.push(format!(
                "the results of statement {} to be logged",
                statement.index + 1
            ));
        }
        if statement.kind.runs_on_after_submission()
            && let Some(flink_job_id) = &statement.flink_job_id
        {
            waiting.push(format!("flink job {flink_job_id} to end"));
        }
    }
    if waiting.is_empty() {
        "every statement ran".into()
    } else {
        format!(
            "every statement was submitted; waiting for {}",
            waiting.join(", ")
        )
    }
}

/// Returns true when Flink refused a job because one with the same id was submitted before.
fn is_duplicate_submission(error: &GatewayError) -> bool {
    let message = error.to_string();
    message.contains("DuplicateJobSubmission") || message.contains("has already been submitted")
}

/// Keeps a session alive until `stop` fires or the session is gone.
fn spawn_heartbeat(core: &Core, session: SessionHandle, stop: CancellationToken) {
    let gateway = core.gateway().clone();
    let interval = core.limits().heartbeat_interval;
    let job_id = core.job.id;
    core.controller.tasks.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match gateway.heartbeat(&session).await {
                Ok(()) => {}
                Err(error @ GatewayError::UnknownSession { .. }) => {
                    warn!(job_id = %job_id, session = %session.0, %error, "sql gateway session is gone; heartbeats stop");
                    return;
                }
                Err(error) => {
                    warn!(job_id = %job_id, session = %session.0, %error, "sql gateway heartbeat failed");
                }
            }
        }
    }
    .in_current_span());
}
