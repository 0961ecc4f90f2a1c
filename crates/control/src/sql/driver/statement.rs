//! One statement's way to its verdict: submitted under its pinned Flink job id, resumed after
//! a restart (adopted when the JobManager knows its job), or failed with its root cause.

use super::*;

impl SqlDriver {
    /// Resumes a statement an earlier run of the broker submitted (or was submitting).
    pub(super) async fn resume_statement(
        &mut self,
        statement: StatementRecord,
    ) -> Result<(), Interrupt> {
        let index = statement.index;
        let id = self.core.job.id;
        let pinned = statement
            .flink_job_id
            .clone()
            .unwrap_or_else(|| id.flink_job_id_for_statement_attempt(index, statement.attempt));
        if statement.is_query {
            // Its results are logged: the drain goes on from the logged position while the
            // gateway still serves it.
            let why = match self.continue_drain(&statement).await? {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            // Otherwise stop the earlier run's Flink job and run the query again.
            let mut attempt = statement.attempt;
            if let (Some(operation), Some(session), true) = (
                &statement.operation_handle,
                &self.session,
                self.continued_session,
            ) {
                // Closing the earlier run's operation ends its Flink job, started or not yet.
                let operation = OperationHandle(operation.clone());
                if let Err(error) = self
                    .core
                    .controller
                    .gateway
                    .close_operation(session, &operation)
                    .await
                {
                    info!(job_id = %id, statement = index, %error, "the earlier run's operation was not closed");
                }
            }
            if statement.kind.starts_flink_job() {
                if let Err(error) = self
                    .core
                    .controller
                    .request_cancel(self.session.as_ref(), &pinned)
                    .await
                {
                    warn!(job_id = %id, statement = index, flink_job_id = %pinned, %error, "cannot cancel the earlier run of the query");
                }
                attempt += 1;
            }
            self.core
                .note(&format!(
                    "resumed {}: statement {} runs again (attempt {}) and its result log starts again at row 0: {why}",
                    self.core.resumed_because,
                    index + 1,
                    attempt + 1
                ))
                .await?;
            return self.submit(index, attempt).await;
        }
        if statement.kind.starts_flink_job() {
            match self.core.jobmanager().job_status(&pinned).await {
                Ok(status) => {
                    self.core
                        .update_statement(
                            index,
                            StatementUpdate {
                                state: Some(StatementState::Finished),
                                flink_job_id: Some(pinned.clone()),
                                ..StatementUpdate::default()
                            },
                        )
                        .await?;
                    return self
                        .core
                        .note(&format!(
                            "resumed {}: adopted flink job {pinned} of statement {} ({status:?})",
                            self.core.resumed_because,
                            index + 1
                        ))
                        .await;
                }
                Err(FlinkError::JobNotFound(_)) => {}
                Err(error) => {
                    // Submitting again is safe: flink refuses a second job under the same id.
                    warn!(job_id = %id, statement = index, flink_job_id = %pinned, %error, "cannot look the flink job up; submitting again");
                }
            }
        }
        // An operation in the session this driver continues can still give its verdict.
        if let (Some(operation), Some(session), true) = (
            &statement.operation_handle,
            &self.session,
            self.continued_session,
        ) {
            let operation = OperationHandle(operation.clone());
            let session = session.clone();
            let gateway = self.core.gateway().clone();
            if self
                .retrying("status", || gateway.operation_status(&session, &operation))
                .await?
                .is_ok()
            {
                self.core
                    .note(&format!(
                        "resumed {}: statement {} is still in the sql gateway",
                        self.core.resumed_because,
                        index + 1
                    ))
                    .await?;
                return self.await_verdict(index, operation).await;
            }
        }
        self.core
            .note(&format!(
                "resumed {}: statement {} is submitted again",
                self.core.resumed_because,
                index + 1
            ))
            .await?;
        self.submit(index, statement.attempt).await
    }

    /// Submits a statement (recorded RUNNING first, with its pinned Flink job id) and waits
    /// for its verdict.
    pub(super) async fn submit(&mut self, index: u32, attempt: u32) -> Result<(), Interrupt> {
        let statement = self.core.job.statements[index as usize].clone();
        let pinned = statement.kind.starts_flink_job().then(|| {
            self.core
                .job
                .id
                .flink_job_id_for_statement_attempt(index, attempt)
        });
        let mut execution_config = BTreeMap::new();
        if let Some(id) = &pinned {
            execution_config.insert(PIPELINE_JOB_ID_KEY.to_string(), id.clone());
        }
        // Only the statements whose Flink jobs run on restore state: a query started later in
        // the same session does not (the keys go with this statement, not the session).
        if statement.kind.runs_on_after_submission()
            && let Some((version, restore)) = self.core.cluster_version_for_restore().await?
        {
            for (key, value) in version.restore_configuration(&restore) {
                execution_config.insert(key.to_owned(), value);
            }
        }
        self.core
            .update_statement(
                index,
                StatementUpdate {
                    state: Some(StatementState::Running),
                    flink_job_id: pinned.clone(),
                    attempt: Some(attempt),
                    ..StatementUpdate::default()
                },
            )
            .await?;
        let session = self.require_session()?;
        let gateway = self.core.gateway().clone();
        let submitted = gateway
            .execute_statement(&session, &statement.sql, &execution_config)
            .await;
        let operation = match submitted {
            Ok(operation) => operation,
            Err(error @ GatewayError::Unreachable(_)) => {
                // The gateway may or may not have taken the statement: it is in doubt, and is
                // taken up as after a restart once the gateway answers again.
                warn!(job_id = %self.core.job.id, statement = index, %error, "statement submission unanswered");
                self.retrying("heartbeat", || gateway.heartbeat(&session))
                    .await?
                    .ok();
                return Err(Interrupt::Resume(format!(
                    "the submission of statement {} went unanswered: {error}",
                    index + 1
                )));
            }
            Err(error) => return Err(self.statement_failed(index, &error).await),
        };
        info!(job_id = %self.core.job.id, statement = index, operation = %operation.0, flink_job_id = ?pinned, "statement submitted");
        self.core
            .update_statement(
                index,
                StatementUpdate {
                    operation_handle: Some(operation.0.clone()),
                    ..StatementUpdate::default()
                },
            )
            .await?;
        self.await_verdict(index, operation).await
    }

    /// Polls a statement's operation until it has its verdict.
    pub(super) async fn await_verdict(
        &mut self,
        index: u32,
        operation: OperationHandle,
    ) -> Result<(), Interrupt> {
        let statement = self.core.job.statements[index as usize].clone();
        let session = self.require_session()?;
        let gateway = self.core.gateway().clone();
        let mut pause = FIRST_POLL;
        loop {
            let status = match self
                .retrying("status", || gateway.operation_status(&session, &operation))
                .await?
            {
                Ok(status) => status,
                Err(error) => return Err(self.statement_failed(index, &error).await),
            };
            match status {
                OperationStatus::Error => {
                    // The cause is served at fetch time.
                    let error = match self
                        .retrying("fetch", || gateway.fetch_results(&session, &operation, 0))
                        .await?
                    {
                        Err(error) => error,
                        Ok(_) => GatewayError::StatementFailed {
                            message: "the sql gateway reported the statement as failed".into(),
                        },
                    };
                    // A query's rows belong to its own operation: a duplicate is no result.
                    if statement.kind.runs_on_after_submission() && is_duplicate_submission(&error)
                    {
                        return self.adopt_duplicate(index).await;
                    }
                    return Err(self.statement_failed(index, &error).await);
                }
                OperationStatus::Canceled | OperationStatus::Closed | OperationStatus::Timeout => {
                    let error = GatewayError::StatementFailed {
                        message: format!("the sql gateway reports the statement {status:?}"),
                    };
                    return Err(self.statement_failed(index, &error).await);
                }
                OperationStatus::Finished if !statement.is_query => {
                    return self
                        .core
                        .statement_state(index, StatementState::Finished)
                        .await;
                }
                OperationStatus::Running | OperationStatus::Finished if statement.is_query => {
                    return self.first_page(index, session, operation).await;
                }
                _ => {}
            }
            self.core.pause(pause).await?;
            pause = (pause * 2).min(self.core.limits().poll_interval);
        }
    }

    /// Flink refused a second job under the statement's pinned id: the first one is followed.
    pub(super) async fn adopt_duplicate(&mut self, index: u32) -> Result<(), Interrupt> {
        let flink_job_id = self.core.job.statements[index as usize]
            .flink_job_id
            .clone()
            .unwrap_or_default();
        self.core
            .statement_state(index, StatementState::Finished)
            .await?;
        self.core
            .note(&format!(
                "resumed {}: adopted flink job {flink_job_id} of statement {} (already submitted)",
                self.core.resumed_because,
                index + 1
            ))
            .await
    }

    /// Records a failed statement and returns the job's failure (or, when the cluster
    /// refused its Flink job at once, the refusal that runs it again).
    pub(super) async fn statement_failed(&mut self, index: u32, error: &GatewayError) -> Interrupt {
        if let Some(cause) = self.core.refused(index).await {
            return Interrupt::Refused { index, cause };
        }
        metrics::statement_failed(StatementFailure::of_gateway(error));
        let message = error.to_string();
        let recorded = self
            .core
            .update_statement(
                index,
                StatementUpdate {
                    state: Some(StatementState::Failed),
                    error: Some(message.clone()),
                    ..StatementUpdate::default()
                },
            )
            .await;
        if let Err(interrupt) = recorded {
            return interrupt;
        }
        Interrupt::Failed(format!("statement {} failed: {message}", index + 1))
    }

    /// Returns true when a statement was (or was being) submitted without its operation
    /// recorded: it may run in the recorded session without the broker knowing it.
    pub(super) fn statement_in_doubt(&self) -> bool {
        self.core
            .job
            .statements
            .iter()
            .any(|s| s.state == StatementState::Running && s.operation_handle.is_none())
    }
}
