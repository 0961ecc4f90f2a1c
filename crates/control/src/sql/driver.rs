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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, info, warn};

use super::super::driver::{Core, Interrupt};
use super::super::results::drain::Drain;
use super::super::stop::Stopped;
use super::PIPELINE_JOB_ID_KEY;
use crate::metrics::{self, StatementFailure};
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
        match driver.drive().await {
            Ok(()) => driver.finish().await,
            Err(Interrupt::Cancel { replies, .. }) => driver.cancel(replies).await,
            Err(Interrupt::Failed(reason)) => {
                driver.core.conclude(Interrupt::Failed(reason)).await;
                if driver.core.job.state == JobState::Failed {
                    driver.stop_after_failure().await;
                }
                driver.close_session().await;
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
            Err(other) => driver.core.conclude(other).await,
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
            // A cancel was under way when the broker stopped: finish it.
            return Err(Interrupt::Cancel {
                options: Default::default(),
                replies: Vec::new(),
            });
        }
        if self.core.job.state == JobState::Pending {
            self.core
                .transition(JobState::Submitting, "opening a sql gateway session")
                .await?;
        }
        self.open_session().await?;
        for index in 0..self.core.job.statements.len() {
            self.core.take_commands().await?;
            self.give_verdict(index).await?;
        }
        if self.core.job.state != JobState::Running {
            let reason = running_reason(&self.core.job.statements);
            self.core.transition(JobState::Running, &reason).await?;
        }
        self.follow().await
    }

    /// Reuses the recorded session when it still answers; otherwise opens one and, when the
    /// job is resumed, replays the statements that build session state.
    async fn open_session(&mut self) -> Result<(), Interrupt> {
        let gateway = self.core.controller.gateway.clone();
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
        let needs_session = self
            .core
            .job
            .statements
            .iter()
            .any(|s| s.state != StatementState::Finished);
        if !needs_session {
            // Every statement has its verdict: the rest is followed on the JobManager.
            return Ok(());
        }
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
        let replay: Vec<StatementRecord> = self
            .core
            .job
            .statements
            .iter()
            .filter(|s| s.state == StatementState::Finished && builds_session_state(s.kind, &s.sql))
            .cloned()
            .collect();
        if self.core.resuming {
            for statement in &replay {
                self.replay(&handle, statement).await?;
            }
            self.core
                .note(&format!(
                    "resumed {}: the sql gateway session was gone; opened session {} and replayed {} statement(s) that build session state",
                    self.core.resumed_because,
                    handle.0,
                    replay.len()
                ))
                .await?;
        }
        Ok(())
    }

    fn use_session(&mut self, handle: SessionHandle) {
        let token = self.core.controller.shutdown.child_token();
        spawn_heartbeat(&self.core, handle.clone(), token.clone());
        self.heartbeat = Some(token.drop_guard());
        self.session = Some(handle);
    }

    /// Runs a statement that built session state again in a new session. Its failure is
    /// logged, not the job's: the statements after it fail on their own if they needed it.
    async fn replay(
        &mut self,
        session: &SessionHandle,
        statement: &StatementRecord,
    ) -> Result<(), Interrupt> {
        let gateway = self.core.controller.gateway.clone();
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
            pause = (pause * 2).min(self.core.controller.limits.poll_interval);
        }
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

    /// Resumes a statement an earlier run of the broker submitted (or was submitting).
    async fn resume_statement(&mut self, statement: StatementRecord) -> Result<(), Interrupt> {
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
            match self.core.controller.jobmanager.job_status(&pinned).await {
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
            let gateway = self.core.controller.gateway.clone();
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
    async fn submit(&mut self, index: u32, attempt: u32) -> Result<(), Interrupt> {
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
        let gateway = self.core.controller.gateway.clone();
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
    async fn await_verdict(
        &mut self,
        index: u32,
        operation: OperationHandle,
    ) -> Result<(), Interrupt> {
        let statement = self.core.job.statements[index as usize].clone();
        let session = self.require_session()?;
        let gateway = self.core.controller.gateway.clone();
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
            pause = (pause * 2).min(self.core.controller.limits.poll_interval);
        }
    }

    /// Fetches a query's first result page: its failure, or its schema and first rows, which
    /// are kept for the result streams.
    async fn first_page(
        &mut self,
        index: u32,
        session: SessionHandle,
        operation: OperationHandle,
    ) -> Result<(), Interrupt> {
        let gateway = self.core.controller.gateway.clone();
        let mut pause = FIRST_POLL;
        loop {
            let page = match self
                .retrying("fetch", || gateway.fetch_page(&session, &operation, 0))
                .await?
            {
                Ok(page) => page,
                Err(error) => return Err(self.statement_failed(index, &error).await),
            };
            if page.result_type != ResultType::NotReady {
                let rows = page.rows;
                let attempt = self.core.job.statements[index as usize].attempt;
                let schema = serde_json::to_vec(&page.columns).map_err(|e| {
                    Interrupt::Failed(format!("cannot record the result schema: {e}"))
                })?;
                let head = self.core.open_log(index, attempt, schema).await?;
                info!(job_id = %self.core.job.id, statement = index, rows, "query produced its first result page; logging its results");
                self.start_drain(index, session, operation, head, Some(page));
                // Result streams waiting for the verdict look again.
                self.core.publish();
                return Ok(());
            }
            self.core.pause(pause).await?;
            pause = (pause * 2).min(self.core.controller.limits.max_fetch_backoff);
        }
    }

    /// Goes on logging a query's results from where its log stands, when the gateway still
    /// serves them there; Err(why) when the query must run again.
    async fn continue_drain(
        &mut self,
        statement: &StatementRecord,
    ) -> Result<Result<(), String>, Interrupt> {
        let index = statement.index;
        let id = self.core.job.id;
        let read = self
            .core
            .controller
            .store
            .read_log(id, index, u64::MAX, 1, 0)
            .await?;
        let Some(read) = read else {
            return Ok(Err("it had not produced its first result page".into()));
        };
        let head = read.head;
        if head.attempt != statement.attempt {
            return Ok(Err(format!(
                "its result log holds attempt {}",
                head.attempt + 1
            )));
        }
        if let Some(end) = head.end {
            // Every row it gives was logged before the restart.
            if end != LogEnd::EndOfResults
                && let Some(flink_job_id) = &statement.flink_job_id
                && let Err(error) = self
                    .core
                    .controller
                    .request_cancel(self.session.as_ref(), flink_job_id)
                    .await
            {
                warn!(job_id = %id, statement = index, %flink_job_id, %error, "cannot stop the query's flink job");
            }
            self.core
                .statement_state(index, StatementState::Finished)
                .await?;
            return self
                .core
                .note(&format!(
                    "resumed {}: the results of statement {} were logged to their end ({} rows)",
                    self.core.resumed_because,
                    index + 1,
                    head.rows_logged
                ))
                .await
                .map(Ok);
        }
        // A page that carried rows was being appended when the page after it was asked for
        // (`fetch_sent`). That page is at the logged token, or at the one after it when the
        // empty page at the logged token was passed over unrecorded. The gateway still serves
        // it again as its previous token, unless the page after it ended the results and the
        // gateway let its pages go: only a page that comes back with rows is taken for it.
        let rows_page = match (head.fetch_sent, head.next_token) {
            (Some(sent), Some(next)) if sent == next + 1 || sent == next + 2 => Some(sent - 1),
            (Some(sent), Some(next)) if sent > next + 2 => {
                return Ok(Err(format!(
                    "the sql gateway had moved past its results after row {} (token {sent} was asked for before the page at token {next} was logged)",
                    head.rows_logged
                )));
            }
            _ => None,
        };
        let (Some(operation), Some(session), true, Some(token)) = (
            statement.operation_handle.clone(),
            self.session.clone(),
            self.continued_session,
            head.next_token,
        ) else {
            return Ok(Err(format!(
                "the sql gateway session its results were read from is gone ({} rows had been logged)",
                head.rows_logged
            )));
        };
        let operation = OperationHandle(operation);
        let gateway = self.core.controller.gateway.clone();
        let mut head = head;
        let lost = |error: GatewayError, rows: u64| {
            format!("the sql gateway no longer serves its results after row {rows} ({error})")
        };
        let gone = |page: &RawPage, at: u64, rows: u64| {
            format!(
                "the sql gateway no longer serves the page at token {at} whose rows were being logged after row {rows} (it answers {:?} with {} rows)",
                page.result_type, page.rows
            )
        };
        let carries_rows =
            |page: &RawPage| page.result_type == ResultType::Payload && page.rows > 0;
        let page = match self
            .retrying("fetch", || gateway.fetch_page(&session, &operation, token))
            .await?
        {
            // The page with rows is this one.
            Ok(page) if rows_page == Some(token) && !carries_rows(&page) => {
                return Ok(Err(gone(&page, token, head.rows_logged)));
            }
            // An end of results here would pass over the page with rows after it.
            Ok(page) if rows_page.is_some() && page.result_type == ResultType::Eos => {
                return Ok(Err(gone(&page, token, head.rows_logged)));
            }
            Ok(page) => page,
            // The gateway may be one page past the log: fetched while an append without rows
            // was in flight, or past the empty page passed over before a page with rows.
            Err(GatewayError::InvalidToken { .. }) if rows_page != Some(token) => match self
                .retrying("fetch", || {
                    gateway.fetch_page(&session, &operation, token + 1)
                })
                .await?
            {
                Ok(page) if rows_page == Some(token + 1) && !carries_rows(&page) => {
                    return Ok(Err(gone(&page, token + 1, head.rows_logged)));
                }
                Ok(page) => {
                    head.next_token = Some(token + 1);
                    page
                }
                Err(error) => return Ok(Err(lost(error, head.rows_logged))),
            },
            Err(error) => return Ok(Err(lost(error, head.rows_logged))),
        };
        let rows = head.rows_logged;
        self.start_drain(index, session, operation, head, Some(page));
        self.core
            .note(&format!(
                "resumed {}: the results of statement {} are logged on from row {rows}",
                self.core.resumed_because,
                index + 1
            ))
            .await
            .map(Ok)
    }

    /// Starts the drain that logs a query's results from `head` on; `first` is the page at
    /// the log's next token, already fetched.
    fn start_drain(
        &mut self,
        index: u32,
        session: SessionHandle,
        operation: OperationHandle,
        head: LogSummary,
        first: Option<RawPage>,
    ) {
        let statement = &self.core.job.statements[index as usize];
        let (bounded, limits) = match &self.core.job.spec {
            JobSpec::Sql(spec) => (spec.runtime_mode == RuntimeMode::Batch, spec.result_limits),
            JobSpec::Python(_) => (true, ResultLimits::default()),
        };
        let drain = Drain {
            controller: self.core.controller.clone(),
            job_id: self.core.job.id,
            index,
            attempt: statement.attempt,
            session,
            operation,
            flink_job_id: statement
                .kind
                .starts_flink_job()
                .then(|| statement.flink_job_id.clone())
                .flatten(),
            head: head.clone(),
            bounded,
            limits,
            driver: self.core.to_self.clone(),
        };
        self.core
            .controller
            .tails
            .publish(self.core.job.id, index, head);
        self.drains.insert(index, drain.spawn(first));
    }

    /// Flink refused a second job under the statement's pinned id: the first one is followed.
    async fn adopt_duplicate(&mut self, index: u32) -> Result<(), Interrupt> {
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

    /// Records a failed statement and returns the job's failure.
    async fn statement_failed(&mut self, index: u32, error: &GatewayError) -> Interrupt {
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

    /// Waits until every query's results were logged and every INSERT's Flink job ended.
    async fn follow(&mut self) -> Result<(), Interrupt> {
        let mut ended: HashSet<String> = HashSet::new();
        let mut unknown: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        loop {
            self.core.take_commands().await?;
            let mut waiting = 0;
            for statement in self.core.job.statements.clone() {
                if statement.is_query && statement.state != StatementState::Finished {
                    waiting += 1;
                }
                if !statement.kind.runs_on_after_submission() {
                    continue;
                }
                let Some(flink_job_id) = statement.flink_job_id else {
                    continue;
                };
                if ended.contains(&flink_job_id) {
                    continue;
                }
                match self
                    .core
                    .controller
                    .jobmanager
                    .job_status(&flink_job_id)
                    .await
                {
                    Ok(FlinkJobStatus::Finished) => {
                        info!(job_id = %self.core.job.id, flink_job_id = %flink_job_id, "flink job finished");
                        ended.insert(flink_job_id);
                    }
                    Ok(_) if unknown.remove(&flink_job_id).is_some() => waiting += 1,
                    Ok(status) => {
                        if let Some(reason) = self
                            .core
                            .controller
                            .flink_job_failure(&flink_job_id, status)
                            .await
                        {
                            return Err(Interrupt::Failed(format!(
                                "statement {}: {reason}",
                                statement.index + 1
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
                                statement.index + 1
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
            self.core
                .pause(self.core.controller.limits.poll_interval)
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

    /// Moves the job to CANCELING (answering the callers), cancels its operations, stops its
    /// Flink jobs, and records CANCELED once the JobManager says each stopped.
    async fn cancel(
        &mut self,
        replies: Vec<tokio::sync::oneshot::Sender<flinkbroker_model::job::Job>>,
    ) {
        if self.core.job.state != JobState::Canceling
            && let Err(interrupt) = self
                .core
                .transition(
                    JobState::Canceling,
                    "cancel requested; stopping the job's flink jobs",
                )
                .await
        {
            // The callers learn from the dropped answer that the cancel was not recorded.
            drop(replies);
            self.core.conclude(interrupt).await;
            return;
        }
        self.core.answer(replies);
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
                        return;
                    }
                }
                let ended = self
                    .core
                    .transition(
                        JobState::Canceled,
                        "canceled by request; every flink job it started has stopped",
                    )
                    .await;
                match ended {
                    Ok(()) => self.close_session().await,
                    Err(interrupt) => self.core.conclude(interrupt).await,
                }
            }
            Ok(Stopped::StillRunning(flink_job_id)) => {
                let reason = format!(
                    "cancel failed: flink job {flink_job_id} did not stop within {} s (--cancel-timeout)",
                    self.core.controller.limits.cancel_timeout.as_secs()
                );
                self.core.conclude(Interrupt::Failed(reason)).await;
                self.close_session().await;
            }
            Err(interrupt) => self.core.conclude(interrupt).await,
        }
    }

    /// Cancels running operations and asks the JobManager to stop every Flink job the job
    /// started; then waits until they stopped.
    async fn stop_everything(&mut self) -> Result<Stopped, Interrupt> {
        let session = self
            .session
            .clone()
            .or_else(|| self.core.job.gateway_session.clone().map(SessionHandle));
        let gateway = self.core.controller.gateway.clone();
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
    async fn stop_after_failure(&mut self) {
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
    fn started_flink_jobs(&self) -> Vec<String> {
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
    /// the wait that follows tells whether the job stopped.
    async fn ask_to_cancel(&self, session: Option<&SessionHandle>, flink_job_id: &str) {
        match self
            .core
            .controller
            .request_cancel(session, flink_job_id)
            .await
        {
            Ok(()) => {
                info!(job_id = %self.core.job.id, flink_job_id, "flink job cancel requested")
            }
            Err(error) => {
                warn!(job_id = %self.core.job.id, flink_job_id, %error, "cannot request the flink job's cancel")
            }
        }
    }

    /// Closes the job's gateway session (the session's operations end with it).
    async fn close_session(&mut self) {
        self.heartbeat = None;
        let session = self
            .session
            .take()
            .or_else(|| self.core.job.gateway_session.clone().map(SessionHandle));
        let Some(session) = session else { return };
        match self.core.controller.gateway.close_session(&session).await {
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

    /// Returns true when a statement was (or was being) submitted without its operation
    /// recorded: it may run in the recorded session without the broker knowing it.
    fn statement_in_doubt(&self) -> bool {
        self.core
            .job
            .statements
            .iter()
            .any(|s| s.state == StatementState::Running && s.operation_handle.is_none())
    }

    fn require_session(&self) -> Result<SessionHandle, Interrupt> {
        self.session.clone().ok_or_else(|| {
            Interrupt::Lost(crate::error::Error::Internal(
                "no sql gateway session to submit in".into(),
            ))
        })
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
    let gateway = core.controller.gateway.clone();
    let interval = core.controller.limits.heartbeat_interval;
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
