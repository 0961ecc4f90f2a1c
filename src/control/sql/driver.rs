//! Drives a SQL job: opens its session, submits its statements in order, follows it to its end.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CancelOptions, Controller, Stop};
use crate::error::{Error, Result};
use crate::flink::{FlinkError, FlinkJobStatus};
use crate::job::{Job, JobSpec, JobState, StatementRecord, StatementState};
use crate::sql_gateway::{GatewayError, OperationHandle, OperationStatus, SessionHandle};
use crate::sql_script::{self, StatementKind};
use crate::store::{StatementUpdate, StoreError};

/// How long a `STOP JOB` through the gateway may take.
const STOP_JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The executionConfig key that pins the Flink job id of a statement.
pub const PIPELINE_JOB_ID_KEY: &str = "$internal.pipeline.job-id";

/// Returns true when the statement's results are part of the job's outcome: queries, and a
/// last statement that returns rows. Such a statement stays RUNNING until read to its end.
pub(crate) fn is_result_statement(kind: StatementKind, index: usize, count: usize) -> bool {
    kind == StatementKind::Query || (kind.returns_rows() && index + 1 == count)
}

/// Returns true when the statement's Flink job runs on after submission (INSERT, statement sets).
fn is_followed_flink_job(kind: StatementKind) -> bool {
    matches!(kind, StatementKind::Insert | StatementKind::StatementSet)
}

impl Controller {
    /// Starts the task that submits and then follows a freshly recorded SQL job.
    pub(super) fn spawn_sql_job(self: &Arc<Self>, job: Job) {
        let (cancel, _) = self.register_active(job.id);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let outcome = match this.submit_statements(&job, &cancel).await {
                Ok(()) => this.follow(&job, &cancel).await,
                Err(stop) => Err(stop),
            };
            this.conclude(&job, outcome).await;
        });
    }

    /// Starts the task that follows an already submitted SQL job (after a restart).
    pub(super) fn spawn_sql_follow(self: &Arc<Self>, job: Job) {
        let (cancel, _) = self.register_active(job.id);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            if let Some(session) = job.gateway_session.clone() {
                this.spawn_heartbeat(&job, SessionHandle(session), &cancel);
            }
            let outcome = this.follow(&job, &cancel).await;
            this.conclude(&job, outcome).await;
        });
    }

    async fn conclude(&self, job: &Job, outcome: Result<(), Stop>) {
        match outcome {
            Ok(()) => {
                self.end_job(job, JobState::Finished, "all statements ran to their end")
                    .await
            }
            Err(Stop::Failed(reason)) => {
                warn!(job_id = %job.id, reason = %reason, "sql job failed");
                self.end_job(job, JobState::Failed, &reason).await;
            }
            Err(Stop::Cancelled) if self.shutdown.is_cancelled() => {
                info!(job_id = %job.id, "broker shutting down; the job is followed again at the next start");
                self.forget_active(job.id);
            }
            Err(Stop::Cancelled) => self.forget_active(job.id),
        }
    }

    /// Opens the session and submits every statement in order, stopping at the first failure.
    async fn submit_statements(&self, job: &Job, cancel: &CancellationToken) -> Result<(), Stop> {
        let JobSpec::Sql(spec) = &job.spec else {
            return Err(Stop::Failed("not a sql job".into()));
        };
        self.transition(
            job.id,
            JobState::Submitting,
            "opening a sql gateway session",
        )
        .await?;
        let mut properties = spec.properties.clone();
        properties.insert(
            "execution.runtime-mode".into(),
            spec.runtime_mode.as_str().into(),
        );
        let session = self
            .gateway
            .open_session(&format!("flinkbroker-{}", job.id), &properties)
            .await
            .map_err(|e| Stop::Failed(format!("cannot open a sql gateway session: {e}")))?;
        self.store
            .set_gateway_session(job.id, Some(&session.0))
            .await
            .map_err(Error::from)?;
        info!(job_id = %job.id, session = %session.0, "sql gateway session opened");
        self.spawn_heartbeat(job, session.clone(), cancel);

        let count = job.statements.len();
        for statement in &job.statements {
            if cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            self.submit_statement(job, &session, statement, count, cancel)
                .await?;
        }
        Ok(())
    }

    async fn submit_statement(
        &self,
        job: &Job,
        session: &SessionHandle,
        statement: &StatementRecord,
        count: usize,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        let index = statement.index;
        let kind = sql_script::classify(&statement.sql);
        let is_result = is_result_statement(kind, index as usize, count);
        let mut execution_config = BTreeMap::new();
        let flink_job_id = kind
            .starts_flink_job()
            .then(|| job.id.flink_job_id_for_statement(index));
        if let Some(id) = &flink_job_id {
            execution_config.insert(PIPELINE_JOB_ID_KEY.to_string(), id.clone());
        }
        self.store
            .update_statement(
                job.id,
                index,
                StatementUpdate {
                    state: Some(StatementState::Running),
                    is_query: Some(is_result),
                    flink_job_id: flink_job_id.clone(),
                    ..StatementUpdate::default()
                },
            )
            .await
            .map_err(Error::from)?;
        self.publish(job.id);
        let operation = match self
            .gateway
            .execute_statement(session, &statement.sql, &execution_config)
            .await
        {
            Ok(operation) => operation,
            Err(error) => return Err(self.statement_failed(job, index, &error).await),
        };
        info!(job_id = %job.id, statement = index, operation = %operation.0, flink_job_id = ?flink_job_id, "statement submitted");
        if cancel.is_cancelled() && !self.shutdown.is_cancelled() {
            // CancelJob ran while this statement was being submitted.
            if let Some(id) = &flink_job_id
                && let Err(error) = self.stop_flink_job(job, Some(session), id).await
            {
                warn!(job_id = %job.id, flink_job_id = %id, %error, "cannot stop the flink job of a statement submitted during cancel");
            }
            return Err(Stop::Cancelled);
        }
        self.store
            .update_statement(
                job.id,
                index,
                StatementUpdate {
                    operation_handle: Some(operation.0.clone()),
                    flink_job_id: flink_job_id.clone(),
                    ..StatementUpdate::default()
                },
            )
            .await
            .map_err(Error::from)?;
        self.publish(job.id);

        // Queries are accepted once they run; everything else once the gateway finished it
        // (for an INSERT: once its Flink job was submitted).
        let status = match self
            .wait_for_operation(session, &operation, is_result, cancel)
            .await
        {
            Ok(status) => status,
            Err(WaitError::Cancelled) => return Err(Stop::Cancelled),
            Err(WaitError::Gateway(error)) => {
                return Err(self.statement_failed(job, index, &error).await);
            }
        };
        if matches!(status, OperationStatus::Error) {
            // The cause is served at fetch time.
            let error = match self.gateway.fetch_results(session, &operation, 0).await {
                Err(error) => error,
                Ok(_) => GatewayError::StatementFailed {
                    message: "the sql gateway reported the statement as failed".into(),
                },
            };
            return Err(self.statement_failed(job, index, &error).await);
        }
        if matches!(
            status,
            OperationStatus::Canceled | OperationStatus::Closed | OperationStatus::Timeout
        ) {
            return Err(Stop::Failed(format!(
                "statement {} ended as {status:?} in the sql gateway",
                index + 1
            )));
        }
        if !is_result {
            self.store
                .update_statement(
                    job.id,
                    index,
                    StatementUpdate {
                        state: Some(StatementState::Finished),
                        ..StatementUpdate::default()
                    },
                )
                .await
                .map_err(Error::from)?;
            self.publish(job.id);
        }
        Ok(())
    }

    /// Records a failed statement and returns the job's failure.
    async fn statement_failed(&self, job: &Job, index: u32, error: &GatewayError) -> Stop {
        let message = error.to_string();
        if let Err(store_error) = self
            .store
            .update_statement(
                job.id,
                index,
                StatementUpdate {
                    state: Some(StatementState::Failed),
                    error: Some(message.clone()),
                    ..StatementUpdate::default()
                },
            )
            .await
        {
            warn!(job_id = %job.id, %store_error, "cannot record the failed statement");
        }
        self.publish(job.id);
        Stop::Failed(format!("statement {} failed: {message}", index + 1))
    }

    /// Polls an operation until it runs (`accept_running`) or reaches a terminal status.
    async fn wait_for_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        accept_running: bool,
        cancel: &CancellationToken,
    ) -> Result<OperationStatus, WaitError> {
        let mut pause = Duration::from_millis(10);
        loop {
            let status = self
                .gateway
                .operation_status(session, operation)
                .await
                .map_err(WaitError::Gateway)?;
            if status.is_terminal() || (accept_running && status == OperationStatus::Running) {
                return Ok(status);
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(WaitError::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.limits.poll_interval);
        }
    }

    fn spawn_heartbeat(&self, job: &Job, session: SessionHandle, cancel: &CancellationToken) {
        let gateway = Arc::clone(&self.gateway);
        let cancel = cancel.clone();
        let interval = self.limits.heartbeat_interval;
        let job_id = job.id;
        self.tasks.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
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
        });
    }

    /// Follows a submitted job until its results were read and its Flink jobs ended.
    async fn follow(&self, job: &Job, cancel: &CancellationToken) -> Result<(), Stop> {
        let wake = self
            .active
            .lock()
            .ok()
            .and_then(|active| active.get(&job.id).map(|a| a.wake.clone()));
        let mut announced_running = false;
        let mut ended_flink_jobs: HashSet<String> = HashSet::new();
        loop {
            let current = match self.get_job(job.id).await {
                Ok(current) => current,
                Err(Error::Store(error)) => {
                    // A database hiccup must not fail a running job: look again later.
                    warn!(job_id = %job.id, %error, "cannot read the job; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(Stop::Cancelled),
                        _ = tokio::time::sleep(self.limits.poll_interval) => continue,
                    }
                }
                Err(error) => return Err(error.into()),
            };
            if current.state.is_terminal() {
                return Err(Stop::Cancelled);
            }
            if let Some(failed) = current
                .statements
                .iter()
                .find(|s| s.state == StatementState::Failed)
            {
                return Err(Stop::Failed(format!(
                    "statement {} failed: {}",
                    failed.index + 1,
                    failed.error.clone().unwrap_or_default()
                )));
            }
            let mut waiting_for = Vec::new();
            for statement in &current.statements {
                if statement.is_query && statement.state != StatementState::Finished {
                    waiting_for.push(format!("results of statement {}", statement.index + 1));
                }
                let kind = sql_script::classify(&statement.sql);
                let Some(flink_job_id) = statement.flink_job_id.as_deref() else {
                    continue;
                };
                if !is_followed_flink_job(kind) || ended_flink_jobs.contains(flink_job_id) {
                    continue;
                }
                match self.jobmanager.job_status(flink_job_id).await {
                    Ok(FlinkJobStatus::Finished) => {
                        info!(job_id = %job.id, flink_job_id, "flink job finished");
                        ended_flink_jobs.insert(flink_job_id.to_string());
                    }
                    Ok(status) => {
                        if let Some(reason) = self.flink_job_failure(flink_job_id, status).await {
                            return Err(Stop::Failed(format!(
                                "statement {}: {reason}",
                                statement.index + 1
                            )));
                        }
                        waiting_for.push(format!("flink job {flink_job_id}"));
                    }
                    Err(FlinkError::JobNotFound(_)) => {
                        waiting_for.push(format!(
                            "flink job {flink_job_id} (not yet known to the jobmanager)"
                        ));
                    }
                    Err(error) => {
                        warn!(job_id = %job.id, flink_job_id, %error, "cannot read the flink job's status");
                        waiting_for.push(format!("flink job {flink_job_id}"));
                    }
                }
            }
            if waiting_for.is_empty() {
                return Ok(());
            }
            if !announced_running || current.state != JobState::Running {
                let reason = format!("waiting for {}", waiting_for.join(", "));
                match self.transition(job.id, JobState::Running, &reason).await {
                    Ok(_) => announced_running = true,
                    Err(Error::Store(StoreError::TerminalState { .. })) => {
                        return Err(Stop::Cancelled);
                    }
                    Err(error) => {
                        warn!(job_id = %job.id, %error, "cannot record the running state; retrying")
                    }
                }
            }
            let notified = async {
                match &wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
                _ = notified => {}
                _ = tokio::time::sleep(self.limits.poll_interval) => {}
            }
        }
    }

    /// Cancels a SQL job's operations and Flink jobs, then records it CANCELED.
    pub(super) async fn cancel_sql_job(
        self: &Arc<Self>,
        job: Job,
        _options: CancelOptions,
    ) -> Result<Job> {
        // Stop the job's task first, so that no further statement is submitted.
        if let Some(token) = self.active_cancel_token(job.id) {
            token.cancel();
        }
        let current = self.get_job(job.id).await?;
        if current.state.is_terminal() {
            return Ok(current);
        }
        if let Err(error) = self.stop_statements(&current).await {
            // The job goes on running: follow it again, so that a later CancelJob can retry.
            warn!(job_id = %job.id, %error, "cancel failed; the job is followed again");
            self.spawn_sql_follow(current);
            return Err(error);
        }
        self.end_job(&current, JobState::Canceled, "canceled by request")
            .await;
        self.get_job(job.id).await
    }

    /// Cancels the running operations of a SQL job and the Flink jobs its statements started.
    pub(super) async fn stop_statements(&self, job: &Job) -> Result<()> {
        let session = job.gateway_session.clone().map(SessionHandle);
        for statement in &job.statements {
            if statement.state == StatementState::Running
                && let (Some(session), Some(operation)) = (&session, &statement.operation_handle)
            {
                // A query's operation turns FINISHED while its rows are still being read, and
                // the gateway refuses to cancel a FINISHED operation: its Flink job is stopped
                // below, and closing the session releases the operation.
                match self
                    .gateway
                    .cancel_operation(session, &OperationHandle(operation.clone()))
                    .await
                {
                    Ok(_) => {}
                    Err(error @ GatewayError::Unreachable(_)) => return Err(error.into()),
                    Err(error) => {
                        info!(job_id = %job.id, statement = statement.index, %error, "operation not cancelled by the sql gateway");
                    }
                }
            }
            // The id is derived, so a statement whose submission was under way is covered too.
            let started = matches!(
                statement.state,
                StatementState::Running | StatementState::Finished
            );
            if started && sql_script::classify(&statement.sql).starts_flink_job() {
                let flink_job_id = statement
                    .flink_job_id
                    .clone()
                    .unwrap_or_else(|| job.id.flink_job_id_for_statement(statement.index));
                self.stop_flink_job(job, session.as_ref(), &flink_job_id)
                    .await?;
            }
            if matches!(
                statement.state,
                StatementState::Running | StatementState::Pending
            ) {
                self.store
                    .update_statement(
                        job.id,
                        statement.index,
                        StatementUpdate {
                            state: Some(StatementState::Canceled),
                            ..StatementUpdate::default()
                        },
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Cancels a Flink job through the JobManager, or with `STOP JOB` through the gateway
    /// when the JobManager cannot be reached.
    async fn stop_flink_job(
        &self,
        job: &Job,
        session: Option<&SessionHandle>,
        flink_job_id: &str,
    ) -> Result<()> {
        match self.jobmanager.cancel(flink_job_id).await {
            Ok(()) | Err(FlinkError::JobNotFound(_)) => {
                info!(job_id = %job.id, flink_job_id, "flink job cancelled");
                Ok(())
            }
            Err(error) => {
                let Some(session) = session else {
                    return Err(error.into());
                };
                warn!(job_id = %job.id, flink_job_id, %error, "jobmanager cannot cancel; trying STOP JOB through the sql gateway");
                let statement = format!("STOP JOB '{flink_job_id}'");
                let operation = self
                    .gateway
                    .execute_statement(session, &statement, &BTreeMap::new())
                    .await?;
                // Bounded, and interrupted by shutdown.
                let waited = tokio::time::timeout(
                    STOP_JOB_TIMEOUT,
                    self.wait_for_operation(session, &operation, false, &self.shutdown),
                )
                .await;
                match waited {
                    Ok(Ok(OperationStatus::Finished)) => {
                        info!(job_id = %job.id, flink_job_id, "flink job stopped through the sql gateway");
                        Ok(())
                    }
                    Ok(Ok(status)) => Err(Error::FailedPrecondition(format!(
                        "STOP JOB '{flink_job_id}' ended as {status:?} in the sql gateway; the flink job may still run"
                    ))),
                    Ok(Err(WaitError::Gateway(error))) => Err(error.into()),
                    Ok(Err(WaitError::Cancelled)) => Err(Error::ShuttingDown),
                    Err(_) => Err(Error::FailedPrecondition(format!(
                        "STOP JOB '{flink_job_id}' did not finish within {} s; the flink job may still run",
                        STOP_JOB_TIMEOUT.as_secs()
                    ))),
                }
            }
        }
    }
}

/// Why waiting for an operation stopped.
enum WaitError {
    Cancelled,
    Gateway(GatewayError),
}
