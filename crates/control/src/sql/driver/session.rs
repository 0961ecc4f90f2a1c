//! The job's gateway session: reused when it still answers, else opened anew with the
//! statements that build session state replayed; kept alive by heartbeats; closed at the end.

use super::*;

impl SqlDriver {
    /// Reuses the recorded session when it still answers; otherwise opens one and, when the
    /// job is resumed, replays the statements that build session state.
    pub(super) async fn open_session(&mut self) -> Result<(), Interrupt> {
        let gateway = self.core.gateway().clone();
        if !self.needs_session() {
            // Every statement has its verdict: the rest is followed on the JobManager, and a
            // session left from before is closed.
            if self.core.resuming {
                self.core
                    .note(&format!(
                        "resumed {}: every statement has its verdict; following its flink jobs",
                        self.core.resumed_because
                    ))
                    .await?;
            }
            self.release_idle_session().await;
            return Ok(());
        }
        // A statement submitted without its operation recorded (the broker stopped in
        // between) may have run in the recorded session: submitting it there again could
        // collide with itself (`CREATE TABLE` twice). A new session starts clean.
        let in_doubt = self.statement_in_doubt();
        if let Some(recorded) = self.core.job.gateway_session.clone()
            && !in_doubt
        {
            let handle = SessionHandle(recorded.clone());
            match self
                .retrying("heartbeat", || gateway.heartbeat(&handle))
                .await?
            {
                Ok(()) => {
                    if self.core.resuming {
                        self.core
                            .note(&format!(
                                "resumed {}: continuing in sql gateway session {recorded}",
                                self.core.resumed_because
                            ))
                            .await?;
                    }
                    self.use_session(handle);
                    self.continued_session = true;
                    return Ok(());
                }
                Err(error) => {
                    info!(job_id = %self.core.job.id, session = %recorded, %error, "the recorded sql gateway session is gone");
                }
            }
        }
        if in_doubt && let Some(recorded) = self.core.job.gateway_session.clone() {
            // Its operations end with it; the Flink jobs they started are adopted by their ids.
            if let Err(error) = gateway
                .close_session(&SessionHandle(recorded.clone()))
                .await
            {
                info!(job_id = %self.core.job.id, session = %recorded, %error, "the earlier sql gateway session was not closed");
            }
        }
        let handle = self.new_session().await?;
        if self.core.resuming {
            let replayed = self.replay_session_state(&handle).await?;
            self.core
                .note(&format!(
                    "resumed {}: the sql gateway session was gone; opened session {} and replayed {replayed} statement(s) that build session state",
                    self.core.resumed_because, handle.0,
                ))
                .await?;
        }
        Ok(())
    }

    /// Opens a session with the job's properties, records it and keeps it alive.
    pub(super) async fn new_session(&mut self) -> Result<SessionHandle, Interrupt> {
        let gateway = self.core.gateway().clone();
        let JobSpec::Sql(spec) = &self.core.job.spec else {
            return Err(Interrupt::Failed("not a sql job".into()));
        };
        let mut properties = spec.properties.clone();
        properties.insert(
            "execution.runtime-mode".into(),
            spec.runtime_mode.as_str().into(),
        );
        let name = format!("flinkbroker-{}", self.core.job.id);
        let handle = self
            .retrying("open session", || gateway.open_session(&name, &properties))
            .await?
            .map_err(|e| Interrupt::Failed(format!("cannot open a sql gateway session: {e}")))?;
        self.core.set_gateway_session(Some(&handle.0)).await?;
        info!(job_id = %self.core.job.id, session = %handle.0, "sql gateway session opened");
        self.use_session(handle.clone());
        Ok(handle)
    }

    /// Runs the finished statements that build session state again in `handle`; returns how
    /// many.
    async fn replay_session_state(&mut self, handle: &SessionHandle) -> Result<usize, Interrupt> {
        let replay: Vec<StatementRecord> = self
            .core
            .job
            .statements
            .iter()
            .filter(|s| s.state == StatementState::Finished && builds_session_state(s.kind, &s.sql))
            .cloned()
            .collect();
        for statement in &replay {
            self.replay(handle, statement).await?;
        }
        Ok(replay.len())
    }

    /// Closes the session once no statement needs it: every statement has its verdict and
    /// every query's results are logged. The job's Flink jobs are followed on the JobManager
    /// from then on; a statement that must run again (a refused Flink job) opens a new
    /// session (`reopen_session`).
    pub(super) async fn release_idle_session(&mut self) {
        let recorded = self.session.is_some() || self.core.job.gateway_session.is_some();
        if !recorded || self.needs_session() {
            return;
        }
        info!(job_id = %self.core.job.id, "every statement has its verdict and every query's results are logged: the sql gateway session is no longer needed");
        self.close_session().await;
        self.continued_session = false;
    }

    /// Opens a session again when the job has none (it was closed once no statement needed
    /// it), replaying the statements that build session state.
    pub(super) async fn reopen_session(&mut self) -> Result<(), Interrupt> {
        if self.session.is_some() {
            return Ok(());
        }
        let handle = self.new_session().await?;
        let replayed = self.replay_session_state(&handle).await?;
        self.core
            .note(&format!(
                "opened sql gateway session {} again and replayed {replayed} statement(s) that build session state",
                handle.0
            ))
            .await
    }

    /// True while a statement has no verdict yet or a query's results are still logged.
    fn needs_session(&self) -> bool {
        self.core
            .job
            .statements
            .iter()
            .any(|s| s.state != StatementState::Finished)
    }

    pub(super) fn use_session(&mut self, handle: SessionHandle) {
        let token = self.core.controller.shutdown.child_token();
        spawn_heartbeat(&self.core, handle.clone(), token.clone());
        self.heartbeat = Some(token.drop_guard());
        self.session = Some(handle);
    }

    /// Runs a statement that built session state again in a new session. Its failure is
    /// logged, not the job's: the statements after it fail on their own if they needed it.
    pub(super) async fn replay(
        &mut self,
        session: &SessionHandle,
        statement: &StatementRecord,
    ) -> Result<(), Interrupt> {
        let gateway = self.core.gateway().clone();
        let sql = statement.sql.clone();
        let none = BTreeMap::new();
        let operation = match self
            .retrying("replay", || gateway.execute_statement(session, &sql, &none))
            .await?
        {
            Ok(operation) => operation,
            Err(error) => {
                warn!(job_id = %self.core.job.id, statement = statement.index, %error, "statement not replayed in the new session");
                return Ok(());
            }
        };
        let mut pause = FIRST_POLL;
        loop {
            match self
                .retrying("status", || gateway.operation_status(session, &operation))
                .await?
            {
                Ok(OperationStatus::Finished) => {
                    info!(job_id = %self.core.job.id, statement = statement.index, "statement replayed in the new session");
                    return Ok(());
                }
                Ok(status) if status.is_terminal() => {
                    warn!(job_id = %self.core.job.id, statement = statement.index, ?status, "statement not replayed in the new session");
                    return Ok(());
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(job_id = %self.core.job.id, statement = statement.index, %error, "statement not replayed in the new session");
                    return Ok(());
                }
            }
            self.core.pause(pause).await?;
            pause = (pause * 2).min(self.core.limits().poll_interval);
        }
    }

    /// Closes the job's gateway session (the session's operations end with it).
    pub(super) async fn close_session(&mut self) {
        self.heartbeat = None;
        let session = self
            .session
            .take()
            .or_else(|| self.core.job.gateway_session.clone().map(SessionHandle));
        let Some(session) = session else { return };
        match self.core.gateway().close_session(&session).await {
            Ok(()) => {
                info!(job_id = %self.core.job.id, session = %session.0, "sql gateway session closed")
            }
            Err(error) => {
                warn!(job_id = %self.core.job.id, session = %session.0, %error, "cannot close the sql gateway session")
            }
        }
        if let Err(Interrupt::Lost(error)) = self.core.set_gateway_session(None).await {
            warn!(job_id = %self.core.job.id, %error, "cannot record the closed session");
        }
    }

    pub(super) fn require_session(&self) -> Result<SessionHandle, Interrupt> {
        self.session.clone().ok_or_else(|| {
            Interrupt::Lost(crate::error::Error::Internal(
                "no sql gateway session to submit in".into(),
            ))
        })
    }
}
