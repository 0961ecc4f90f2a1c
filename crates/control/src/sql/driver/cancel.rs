//! Cancelling the job, and stopping its Flink jobs after a failure: the job is CANCELED only
//! once the JobManager says each of its Flink jobs stopped.

use super::*;
use crate::CancelOptions;
use crate::savepoint::{StopOutcome, cancel_reason, savepoint_targets};
use flinkbroker_model::job::{SavepointKind, SavepointState};

impl SqlDriver {
    /// Moves the job to CANCELING (answering the callers), cancels its operations, stops its
    /// Flink jobs (with a savepoint each when asked), and records CANCELED once the JobManager
    /// says each stopped. Returns false when a stop with a savepoint failed and the job runs
    /// on (back in RUNNING, with the reason).
    pub(super) async fn cancel(
        &mut self,
        options: CancelOptions,
        replies: Vec<tokio::sync::oneshot::Sender<flinkbroker_model::job::Job>>,
    ) -> bool {
        if self.core.job.state != JobState::Canceling
            && let Err(interrupt) = self
                .core
                .transition(
                    JobState::Canceling,
                    &cancel_reason(&options, "the job's flink jobs"),
                )
                .await
        {
            // The callers learn from the dropped answer that the cancel was not recorded.
            drop(replies);
            self.core.conclude(interrupt).await;
            return true;
        }
        self.core.answer(replies);
        let mut canceled = "canceled by request; every flink job it started has stopped".to_owned();
        if options.stop_with_savepoint {
            match self.stop_with_savepoints(&options).await {
                Ok(None) => {}
                Ok(Some(StopOutcome::Stopped(locations))) => {
                    canceled = format!(
                        "stopped by request with savepoints ({}); every flink job it started has stopped",
                        locations.join(", ")
                    );
                }
                Ok(Some(StopOutcome::KeepsRunning(reason))) => {
                    return match self.core.transition(JobState::Running, &reason).await {
                        Ok(()) => false,
                        Err(interrupt) => {
                            self.core.conclude(interrupt).await;
                            true
                        }
                    };
                }
                Err(interrupt) => {
                    self.core.conclude(interrupt).await;
                    return true;
                }
            }
        }
        match self.stop_everything().await {
            Ok(Stopped::All) => {
                let open: Vec<u32> = self
                    .core
                    .job
                    .statements
                    .iter()
                    .filter(|s| {
                        matches!(s.state, StatementState::Running | StatementState::Pending)
                    })
                    .map(|s| s.index)
                    .collect();
                for index in open {
                    if let Err(interrupt) = self
                        .core
                        .statement_state(index, StatementState::Canceled)
                        .await
                    {
                        self.core.conclude(interrupt).await;
                        return true;
                    }
                }
                let ended = self.core.transition(JobState::Canceled, &canceled).await;
                match ended {
                    Ok(()) => self.close_session().await,
                    Err(interrupt) => self.core.conclude(interrupt).await,
                }
            }
            Ok(Stopped::StillRunning(flink_job_id)) => {
                let reason = format!(
                    "cancel failed: flink job {flink_job_id} did not stop within {} s (--cancel-timeout)",
                    self.core.limits().cancel_timeout.as_secs()
                );
                self.core.conclude(Interrupt::Failed(reason)).await;
                self.close_session().await;
            }
            Err(interrupt) => self.core.conclude(interrupt).await,
        }
        true
    }

    /// Stops the job's INSERT and statement set Flink jobs that still run with a savepoint
    /// each; None when none runs.
    async fn stop_with_savepoints(
        &mut self,
        options: &CancelOptions,
    ) -> Result<Option<StopOutcome>, Interrupt> {
        let mut running = Vec::new();
        for (flink_job_id, statement) in savepoint_targets(&self.core.job) {
            let recorded = self.core.job.savepoints.iter().any(|s| {
                s.kind == SavepointKind::Stop
                    && s.flink_job_id == flink_job_id
                    && s.state != SavepointState::Failed
            });
            match self.core.jobmanager().job_status(&flink_job_id).await {
                // A stop resumed after a restart: its Flink job may be over already.
                Ok(status) if status.is_terminal() && !recorded => {}
                Err(FlinkError::JobNotFound(_)) if !recorded => {}
                _ => running.push((flink_job_id, statement)),
            }
        }
        if running.is_empty() {
            return Ok(None);
        }
        self.core
            .stop_with_savepoints(&running, options)
            .await
            .map(Some)
    }

    /// Cancels running operations and asks the JobManager to stop every Flink job the job
    /// started; then waits until they stopped.
    pub(super) async fn stop_everything(&mut self) -> Result<Stopped, Interrupt> {
        let session = self
            .session
            .clone()
            .or_else(|| self.core.job.gateway_session.clone().map(SessionHandle));
        let gateway = self.core.gateway().clone();
        let in_flight = self.statement_in_doubt();
        if in_flight && let Some(session) = &session {
            // A statement whose operation is not known may still start a Flink job: closing
            // the session ends every operation in it first.
            if let Err(error) = gateway.close_session(session).await {
                warn!(job_id = %self.core.job.id, session = %session.0, %error, "cannot close the sql gateway session to stop a statement in flight");
            }
        }
        for statement in &self.core.job.statements {
            if statement.state == StatementState::Running
                && let (Some(session), Some(operation)) = (&session, &statement.operation_handle)
                && let Err(error) = gateway
                    .cancel_operation(session, &OperationHandle(operation.clone()))
                    .await
            {
                // A query's operation is FINISHED while its rows are read; its Flink job is
                // stopped below.
                info!(job_id = %self.core.job.id, statement = statement.index, %error, "operation not cancelled by the sql gateway");
            }
        }
        let flink_jobs = self.started_flink_jobs();
        for flink_job_id in &flink_jobs {
            self.ask_to_cancel(session.as_ref(), flink_job_id).await;
        }
        self.core.await_stopped(&flink_jobs, true).await
    }

    /// After a failure, asks the JobManager to stop the Flink jobs the job's other statements
    /// started (an INSERT before the failing statement, say): a failed job leaves nothing
    /// running. Not waited for.
    pub(super) async fn stop_after_failure(&mut self) {
        let session = self.session.clone();
        for flink_job_id in self.started_flink_jobs() {
            match self
                .core
                .controller
                .jobmanager
                .job_status(&flink_job_id)
                .await
            {
                Ok(status) if status.is_terminal() => {}
                Err(FlinkError::JobNotFound(_)) => {}
                _ => self.ask_to_cancel(session.as_ref(), &flink_job_id).await,
            }
        }
    }

    /// The Flink jobs the job's statements started (or were starting: the id is derived, so a
    /// statement whose submission was under way is covered too).
    pub(super) fn started_flink_jobs(&self) -> Vec<String> {
        self.core
            .job
            .statements
            .iter()
            .filter(|statement| {
                statement.kind.starts_flink_job()
                    && matches!(
                        statement.state,
                        StatementState::Running | StatementState::Finished
                    )
            })
            .map(|statement| {
                statement.flink_job_id.clone().unwrap_or_else(|| {
                    self.core
                        .job
                        .id
                        .flink_job_id_for_statement_attempt(statement.index, statement.attempt)
                })
            })
            .collect()
    }

    /// Asks the JobManager (or the gateway) to cancel one Flink job; a refusal is logged, and
    /// the wait that follows tells whether the job stopped. When the JobManager cannot cancel
    /// and the job holds no session (it was closed once every statement had its verdict), one
    /// is opened for `STOP JOB`.
    pub(super) async fn ask_to_cancel(
        &mut self,
        session: Option<&SessionHandle>,
        flink_job_id: &str,
    ) {
        let session = session.cloned().or_else(|| self.session.clone());
        let mut answer = self
            .core
            .controller
            .request_cancel(session.as_ref(), flink_job_id)
            .await;
        if answer.is_err() && session.is_none() {
            info!(job_id = %self.core.job.id, flink_job_id, "the jobmanager cannot cancel and the job holds no sql gateway session; opening one for STOP JOB");
            answer = match self.new_session().await {
                Ok(opened) => {
                    self.core
                        .controller
                        .request_cancel(Some(&opened), flink_job_id)
                        .await
                }
                Err(_) => answer,
            };
        }
        match answer {
            Ok(()) => {
                info!(job_id = %self.core.job.id, flink_job_id, "flink job cancel requested")
            }
            Err(error) => {
                warn!(job_id = %self.core.job.id, flink_job_id, %error, "cannot request the flink job's cancel")
            }
        }
    }
}
