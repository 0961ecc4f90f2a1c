//! A fake SQL Gateway: sessions, operations and result pages in memory, each statement
//! answering as the test scripted it ([`StatementScript`], matched by a piece of its text) or,
//! unscripted, as a statement that finishes at once (a query with no rows).
//!
//! A statement submitted with a pinned `$internal.pipeline.job-id` that starts a Flink job
//! starts it on the [`FakeJobManager`] the gateway was made with; a second submission under
//! the same id fails the way Flink refuses a duplicate ([`duplicate_submission`]). Every call
//! is recorded when the gateway answers it; a call stopped by a [`Hold`] before the gateway
//! takes it and then cut off never arrived, and is not recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Changes, FakeJobManager, Hold, Link, lock};
use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_flink::sql_gateway::{
    ApiVersion, ColumnInfo, GatewayError, LogicalTypeJson, OperationHandle, OperationStatus,
    PIPELINE_JOB_ID_KEY, RawPage, ResultPage, ResultType, SessionHandle, SqlGateway,
};
use flinkbroker_model::sql_script::{StatementKind, classify};

/// The error a second submission under a pinned Flink job id gets (served at fetch time, as the
/// gateway reports a duplicate `DuplicateJobSubmissionException`).
pub fn duplicate_submission() -> GatewayError {
    GatewayError::StatementFailed {
        message: "Job has already been submitted.".into(),
    }
}

/// How the gateway answers one statement.
#[derive(Debug, Clone)]
pub struct StatementScript {
    /// `execute_statement` fails with this error; no operation is created.
    pub refusal: Option<GatewayError>,
    /// The operation's status, one per `operation_status` call; the last one repeats.
    pub statuses: Vec<OperationStatus>,
    /// What fetching the results of the operation in ERROR fails with.
    pub failure: Option<GatewayError>,
    /// The result pages, page `n` at token `n`; the last is the end of results.
    pub pages: Vec<Page>,
    /// The status a Flink job started under the statement's pinned id starts in; None when the
    /// statement starts no Flink job even with a pinned id (it fails first).
    pub flink_job: Option<FlinkJobStatus>,
}

impl StatementScript {
    /// FINISHED at the first poll; starts its Flink job (RUNNING) when it has a pinned id.
    pub fn finishes() -> Self {
        StatementScript {
            refusal: None,
            statuses: vec![OperationStatus::Finished],
            failure: None,
            pages: vec![Page::Eos],
            flink_job: Some(FlinkJobStatus::Running),
        }
    }

    /// RUNNING at every poll (the verdict never comes until the test changes the status);
    /// starts its Flink job when it has a pinned id.
    pub fn keeps_running() -> Self {
        StatementScript {
            statuses: vec![OperationStatus::Running],
            ..Self::finishes()
        }
    }

    /// RUNNING at the first poll, then ERROR; fetching its results fails with
    /// `StatementFailed { message }`. Starts no Flink job.
    pub fn fails(message: &str) -> Self {
        StatementScript {
            refusal: None,
            statuses: vec![OperationStatus::Running, OperationStatus::Error],
            failure: Some(GatewayError::StatementFailed {
                message: message.to_owned(),
            }),
            pages: Vec::new(),
            flink_job: None,
        }
    }

    /// Refused at submission with `error`.
    pub fn refused(error: GatewayError) -> Self {
        StatementScript {
            refusal: Some(error),
            statuses: vec![OperationStatus::Error],
            failure: None,
            pages: Vec::new(),
            flink_job: None,
        }
    }

    /// A query serving `pages` (an end of results is added when the last is not one); RUNNING
    /// while its results are read; starts its Flink job, which finishes when the end of its
    /// results is served.
    pub fn query(mut pages: Vec<Page>) -> Self {
        if !matches!(pages.last(), Some(Page::Eos)) {
            pages.push(Page::Eos);
        }
        StatementScript {
            refusal: None,
            statuses: vec![OperationStatus::Running],
            failure: None,
            pages,
            flink_job: Some(FlinkJobStatus::Running),
        }
    }

    /// The same script with these statuses, one per poll, the last repeating.
    pub fn with_statuses(mut self, statuses: Vec<OperationStatus>) -> Self {
        self.statuses = statuses;
        self
    }

    /// The columns of the first page with rows (the end of results repeats them).
    fn columns(&self) -> Vec<ColumnInfo> {
        self.pages
            .iter()
            .find_map(|page| match page {
                Page::Rows { columns, .. } => Some(columns.clone()),
                Page::Eos => None,
            })
            .unwrap_or_default()
    }

    /// How a statement the test did not script answers.
    fn unscripted(statement: &str) -> Self {
        match classify(statement) {
            StatementKind::Query => Self::query(Vec::new()),
            _ => Self::finishes(),
        }
    }
}

/// One result page of a query.
#[derive(Debug, Clone)]
pub enum Page {
    /// A page of rows (`PAYLOAD`).
    Rows {
        /// The result columns.
        columns: Vec<ColumnInfo>,
        /// Each row's fields as JSON, in column order (all rows are INSERTs).
        rows: Vec<Vec<Value>>,
    },
    /// The end of results (`EOS`).
    Eos,
}

impl Page {
    /// A page of rows; `columns` are (name, Flink type root such as `INTEGER`), see [`column`].
    pub fn rows(columns: &[(&str, &str)], rows: Vec<Vec<Value>>) -> Page {
        Page::Rows {
            columns: columns
                .iter()
                .map(|(name, type_root)| column(name, type_root))
                .collect(),
            rows,
        }
    }
}

/// A nullable result column of a Flink type root (`INTEGER`, `BIGINT`, `BOOLEAN`, …; a
/// `VARCHAR` is of the longest length, as `STRING` is).
pub fn column(name: &str, type_root: &str) -> ColumnInfo {
    ColumnInfo {
        name: name.to_owned(),
        logical_type: LogicalTypeJson {
            type_root: type_root.to_owned(),
            nullable: true,
            length: (type_root == "VARCHAR").then_some(i32::MAX),
            precision: None,
            scale: None,
            element_type: None,
            key_type: None,
            value_type: None,
            fields: None,
        },
        comment: None,
    }
}

/// A point where the gateway can hold a call (see [`FakeSqlGateway::hold`]); statements are
/// matched by a piece of their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayPoint {
    /// `open_session`, before the session exists.
    OpenSession,
    /// `execute_statement` of a matching statement, before the gateway took it.
    BeforeExecute(String),
    /// `execute_statement` of a matching statement, after the gateway took it (its operation
    /// exists and its Flink job started), before the answer.
    AfterExecute(String),
    /// `operation_status` of a matching statement's operation, before the answer.
    Status(String),
    /// `fetch_page` or `fetch_results` of a matching statement's operation, before the answer.
    Fetch(String),
}

/// One call the fake gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayCall {
    /// `negotiate_version`.
    NegotiateVersion,
    /// `open_session`; `session` is the handle it answered.
    OpenSession {
        /// The session name asked for.
        name: String,
        /// The session properties asked for.
        properties: BTreeMap<String, String>,
        /// The handle of the session opened.
        session: String,
    },
    /// `heartbeat`.
    Heartbeat {
        /// The session.
        session: String,
    },
    /// `close_session`.
    CloseSession {
        /// The session.
        session: String,
    },
    /// `execute_statement` (see [`FakeSqlGateway::executed`] for the operation it created).
    Execute {
        /// The session.
        session: String,
        /// The statement text.
        statement: String,
        /// The per-statement configuration (the pinned Flink job id among it).
        execution_config: BTreeMap<String, String>,
    },
    /// `operation_status`.
    Status {
        /// The session.
        session: String,
        /// The operation.
        operation: String,
    },
    /// `cancel_operation`.
    CancelOperation {
        /// The session.
        session: String,
        /// The operation.
        operation: String,
    },
    /// `close_operation`.
    CloseOperation {
        /// The session.
        session: String,
        /// The operation.
        operation: String,
    },
    /// `fetch_page` or `fetch_results`.
    Fetch {
        /// The session.
        session: String,
        /// The operation.
        operation: String,
        /// The result token asked for.
        token: u64,
    },
}

/// A statement the gateway was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The session it was sent in.
    pub session: String,
    /// Its text.
    pub statement: String,
    /// Its per-statement configuration.
    pub execution_config: BTreeMap<String, String>,
    /// The operation it created; None when it was refused.
    pub operation: Option<String>,
}

impl Executed {
    /// The Flink job id it was pinned to (`$internal.pipeline.job-id`), if any.
    pub fn pinned_job_id(&self) -> Option<&str> {
        self.execution_config
            .get(PIPELINE_JOB_ID_KEY)
            .map(String::as_str)
    }
}

#[derive(Debug)]
struct Operation {
    session: String,
    statement: String,
    script: StatementScript,
    /// Status polls answered so far.
    polls: usize,
    /// A status set since (cancel, or the test): it replaces the script's.
    forced: Option<OperationStatus>,
    failure: Option<GatewayError>,
    flink_job_id: Option<String>,
}

impl Operation {
    fn status(&self) -> OperationStatus {
        if let Some(status) = self.forced {
            return status;
        }
        let at = self.polls.min(self.script.statuses.len().saturating_sub(1));
        self.script
            .statuses
            .get(at)
            .copied()
            .unwrap_or(OperationStatus::Finished)
    }
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Every session by handle; true while open.
    sessions: BTreeMap<String, bool>,
    operations: BTreeMap<String, Operation>,
    scripts: Vec<(String, StatementScript)>,
    holds: Vec<(GatewayPoint, Hold)>,
    calls: Vec<GatewayCall>,
    executed: Vec<Executed>,
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn script_for(&self, statement: &str) -> StatementScript {
        self.scripts
            .iter()
            .find(|(text, _)| statement.contains(text.as_str()))
            .map(|(_, script)| script.clone())
            .unwrap_or_else(|| StatementScript::unscripted(statement))
    }

    fn open_session(&self, session: &SessionHandle) -> Result<(), GatewayError> {
        if self.sessions.get(&session.0) == Some(&true) {
            Ok(())
        } else {
            Err(GatewayError::UnknownSession {
                session: session.0.clone(),
                message: format!("Session '{}' does not exist.", session.0),
            })
        }
    }

    fn operation(
        &mut self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<&mut Operation, GatewayError> {
        self.open_session(session)?;
        match self.operations.get_mut(&operation.0) {
            Some(found) if found.session == session.0 => Ok(found),
            _ => Err(GatewayError::UnknownOperation {
                operation: operation.0.clone(),
                message: format!(
                    "Can not find the submitted operation in the OperationManager with the {}.",
                    operation.0
                ),
            }),
        }
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changes: Changes,
    /// Where statements start their Flink jobs.
    jobmanager: FakeJobManager,
}

/// A fake SQL Gateway, one handle of a shared one (see [`FakeSqlGateway::reconnect`]).
#[derive(Debug, Clone)]
pub struct FakeSqlGateway {
    shared: Arc<Shared>,
    link: Link,
}

impl FakeSqlGateway {
    /// A gateway without sessions whose statements start their Flink jobs on `jobmanager`.
    pub fn new(jobmanager: &FakeJobManager) -> Self {
        FakeSqlGateway {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changes: Changes::new(),
                jobmanager: jobmanager.clone(),
            }),
            link: Link::new(),
        }
    }

    /// Another handle on the same gateway, over a new link (for a restarted broker).
    pub fn reconnect(&self) -> Self {
        FakeSqlGateway {
            shared: Arc::clone(&self.shared),
            link: Link::new(),
        }
    }

    /// Cuts this handle's link: its calls, in flight or later, never answer.
    pub fn cut(&self) {
        self.link.cut();
    }

    /// Scripts how statements containing `text` answer (the first script that matches wins).
    pub fn script(&self, text: &str, script: StatementScript) {
        lock(&self.shared.state)
            .scripts
            .push((text.to_owned(), script));
    }

    /// Holds the next call that reaches `point` until the test releases it (or cuts the link).
    pub fn hold(&self, point: GatewayPoint) -> Hold {
        let hold = Hold::new();
        lock(&self.shared.state).holds.push((point, hold.clone()));
        hold
    }

    /// Forces the status of the operations of statements containing `text`.
    pub fn set_status(&self, text: &str, status: OperationStatus) {
        let mut state = lock(&self.shared.state);
        for operation in state.operations.values_mut() {
            if operation.statement.contains(text) {
                operation.forced = Some(status);
            }
        }
        drop(state);
        self.shared.changes.bump();
    }

    /// Every call answered so far, in order, over any handle.
    pub fn calls(&self) -> Vec<GatewayCall> {
        lock(&self.shared.state).calls.clone()
    }

    /// Every statement the gateway took, in order (refused ones included).
    pub fn executed(&self) -> Vec<Executed> {
        lock(&self.shared.state).executed.clone()
    }

    /// The texts of the statements the gateway took, in order.
    pub fn statements(&self) -> Vec<String> {
        self.executed().into_iter().map(|e| e.statement).collect()
    }

    /// The pinned Flink job ids of the statements the gateway took, in order.
    pub fn pinned_job_ids(&self) -> Vec<String> {
        self.executed()
            .iter()
            .filter_map(|e| e.pinned_job_id().map(str::to_owned))
            .collect()
    }

    /// How many times statements containing `text` were taken.
    pub fn times_executed(&self, text: &str) -> usize {
        lock(&self.shared.state)
            .executed
            .iter()
            .filter(|e| e.statement.contains(text))
            .count()
    }

    /// The operation of the last statement taken that contains `text`.
    pub fn operation_of(&self, text: &str) -> Option<String> {
        lock(&self.shared.state)
            .executed
            .iter()
            .rev()
            .find(|e| e.statement.contains(text))
            .and_then(|e| e.operation.clone())
    }

    /// How many status polls the operations of statements containing `text` were answered.
    pub fn status_polls(&self, text: &str) -> usize {
        let state = lock(&self.shared.state);
        let operations: Vec<&String> = state
            .executed
            .iter()
            .filter(|e| e.statement.contains(text))
            .filter_map(|e| e.operation.as_ref())
            .collect();
        state
            .calls
            .iter()
            .filter(|call| {
                matches!(call, GatewayCall::Status { operation, .. } if operations.contains(&operation))
            })
            .count()
    }

    /// The handles of the sessions opened, in order.
    pub fn sessions_opened(&self) -> Vec<String> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter_map(|call| match call {
                GatewayCall::OpenSession { session, .. } => Some(session.clone()),
                _ => None,
            })
            .collect()
    }

    /// The handles of the sessions closed (by `close_session`), in order.
    pub fn sessions_closed(&self) -> Vec<String> {
        lock(&self.shared.state)
            .calls
            .iter()
            .filter_map(|call| match call {
                GatewayCall::CloseSession { session } => Some(session.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until `done` holds, looking again after each call and each change the test makes.
    pub async fn wait_until(&self, done: impl Fn(&FakeSqlGateway) -> bool) {
        self.shared.changes.wait_until(|| done(self)).await;
    }

    /// Takes the hold waiting at a point `matches` accepts, if any.
    fn take_hold(&self, matches: impl Fn(&GatewayPoint) -> bool) -> Option<Hold> {
        let mut state = lock(&self.shared.state);
        let at = state.holds.iter().position(|(point, _)| matches(point))?;
        Some(state.holds.remove(at).1)
    }

    /// The statement of an operation ("" when unknown), for matching holds.
    fn statement_of(&self, operation: &OperationHandle) -> String {
        lock(&self.shared.state)
            .operations
            .get(&operation.0)
            .map(|o| o.statement.clone())
            .unwrap_or_default()
    }

    /// Holds a call on an operation when a hold of this kind matches its statement.
    async fn hold_on(
        &self,
        operation: &OperationHandle,
        kind: fn(&GatewayPoint) -> Option<&String>,
    ) {
        let statement = self.statement_of(operation);
        let hold = self
            .take_hold(|point| kind(point).is_some_and(|text| statement.contains(text.as_str())));
        if let Some(hold) = hold {
            hold.wait().await;
        }
    }

    /// Records a call (and wakes up the waiters) and returns the state, locked.
    fn record(&self, call: GatewayCall) -> std::sync::MutexGuard<'_, State> {
        let mut state = lock(&self.shared.state);
        state.calls.push(call);
        self.shared.changes.bump();
        state
    }

    /// Takes a statement: records it, creates its operation and starts its Flink job.
    fn take_statement(
        &self,
        session: &SessionHandle,
        statement: &str,
        execution_config: &BTreeMap<String, String>,
    ) -> Result<OperationHandle, GatewayError> {
        let mut state = self.record(GatewayCall::Execute {
            session: session.0.clone(),
            statement: statement.to_owned(),
            execution_config: execution_config.clone(),
        });
        let mut executed = Executed {
            session: session.0.clone(),
            statement: statement.to_owned(),
            execution_config: execution_config.clone(),
            operation: None,
        };
        if let Err(error) = state.open_session(session) {
            state.executed.push(executed);
            return Err(error);
        }
        let script = state.script_for(statement);
        if let Some(error) = script.refusal.clone() {
            state.executed.push(executed);
            return Err(error);
        }
        let handle = format!("fake-operation-{}", state.next_id());
        let pinned = executed.pinned_job_id().map(str::to_owned);
        let mut forced = None;
        let mut failure = script.failure.clone();
        if let (Some(pinned), Some(status)) = (&pinned, script.flink_job)
            && !self.shared.jobmanager.submit(pinned, status)
        {
            // Flink refuses a second job under one id.
            forced = Some(OperationStatus::Error);
            failure = Some(duplicate_submission());
        }
        state.operations.insert(
            handle.clone(),
            Operation {
                session: session.0.clone(),
                statement: statement.to_owned(),
                script,
                polls: 0,
                forced,
                failure,
                flink_job_id: pinned,
            },
        );
        executed.operation = Some(handle.clone());
        state.executed.push(executed);
        Ok(OperationHandle(handle))
    }

    /// A fetch as the gateway answers it: the page and its body.
    async fn fetch_page_and_body(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<(RawPage, Vec<u8>), GatewayError> {
        self.link
            .call(async {
                self.hold_on(operation, |point| match point {
                    GatewayPoint::Fetch(text) => Some(text),
                    _ => None,
                })
                .await;
                self.page(session, operation, token)
            })
            .await
    }

    /// Serves the page at `token` of an operation, as the gateway would.
    fn page(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<(RawPage, Vec<u8>), GatewayError> {
        let mut state = self.record(GatewayCall::Fetch {
            session: session.0.clone(),
            operation: operation.0.clone(),
            token,
        });
        let found = state.operation(session, operation)?;
        match found.status() {
            OperationStatus::Error => {
                return Err(found.failure.clone().unwrap_or_else(|| {
                    GatewayError::StatementFailed {
                        message: "the statement failed".into(),
                    }
                }));
            }
            status @ (OperationStatus::Canceled | OperationStatus::Closed) => {
                return Err(GatewayError::Server {
                    status: 500,
                    message: format!(
                        "Can not fetch results from the {} in {status:?} status.",
                        operation.0
                    ),
                });
            }
            _ => {}
        }
        let index = usize::try_from(token).unwrap_or(usize::MAX);
        let Some(page) = found.script.pages.get(index).cloned() else {
            return Err(GatewayError::InvalidToken {
                token,
                message: format!(
                    "Expecting token to be {} or less, but found {token}.",
                    found.script.pages.len().saturating_sub(1)
                ),
            });
        };
        let columns = found.script.columns();
        let flink_job_id = found.flink_job_id.clone();
        let uri = |next: u64| {
            format!(
                "/v3/sessions/{}/operations/{}/result/{next}?rowFormat=JSON",
                session.0, operation.0
            )
        };
        let (result_type, rows, next_token, body) = match &page {
            Page::Rows { columns, rows } => {
                let data: Vec<Value> = rows
                    .iter()
                    .map(|fields| json!({ "kind": "INSERT", "fields": fields }))
                    .collect();
                let body = json!({
                    "resultType": "PAYLOAD",
                    "isQueryResult": true,
                    "jobID": flink_job_id,
                    "resultKind": "SUCCESS_WITH_CONTENT",
                    "results": { "columns": columns, "rowFormat": "JSON", "data": data },
                    "nextResultUri": uri(token + 1),
                });
                (ResultType::Payload, rows.len(), Some(token + 1), body)
            }
            Page::Eos => {
                let body = json!({
                    "resultType": "EOS",
                    "isQueryResult": true,
                    "jobID": flink_job_id,
                    "resultKind": "SUCCESS_WITH_CONTENT",
                    "results": { "columns": columns, "rowFormat": "JSON", "data": [] },
                });
                (ResultType::Eos, 0, None, body)
            }
        };
        drop(state);
        if result_type == ResultType::Eos
            && let Some(id) = &flink_job_id
            && self.shared.jobmanager.status(id) == Some(FlinkJobStatus::Running)
        {
            // A query's Flink job ends with its results.
            self.shared
                .jobmanager
                .set_status(id, FlinkJobStatus::Finished);
        }
        let columns = match &page {
            Page::Rows { columns, .. } => columns.clone(),
            Page::Eos => columns,
        };
        let body = body.to_string().into_bytes();
        let data = flinkbroker_flink::rows::convert_page(&body)
            .map(|page| page.rows)
            .map_err(|e| e.to_string());
        Ok((
            RawPage {
                result_type,
                columns,
                rows,
                next_token,
                data,
            },
            body,
        ))
    }
}

#[async_trait]
impl SqlGateway for FakeSqlGateway {
    async fn negotiate_version(&self) -> Result<ApiVersion, GatewayError> {
        self.link
            .call(async {
                drop(self.record(GatewayCall::NegotiateVersion));
                Ok(ApiVersion::V3)
            })
            .await
    }

    async fn open_session(
        &self,
        session_name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<SessionHandle, GatewayError> {
        self.link
            .call(async {
                if let Some(hold) = self.take_hold(|point| *point == GatewayPoint::OpenSession) {
                    hold.wait().await;
                }
                let mut state = lock(&self.shared.state);
                let handle = format!("fake-session-{}", state.next_id());
                state.sessions.insert(handle.clone(), true);
                state.calls.push(GatewayCall::OpenSession {
                    name: session_name.to_owned(),
                    properties: properties.clone(),
                    session: handle.clone(),
                });
                self.shared.changes.bump();
                Ok(SessionHandle(handle))
            })
            .await
    }

    async fn heartbeat(&self, session: &SessionHandle) -> Result<(), GatewayError> {
        self.link
            .call(async {
                let state = self.record(GatewayCall::Heartbeat {
                    session: session.0.clone(),
                });
                state.open_session(session)
            })
            .await
    }

    async fn close_session(&self, session: &SessionHandle) -> Result<(), GatewayError> {
        self.link
            .call(async {
                let mut state = self.record(GatewayCall::CloseSession {
                    session: session.0.clone(),
                });
                state.open_session(session)?;
                state.sessions.insert(session.0.clone(), false);
                // Its operations end with it.
                state.operations.retain(|_, o| o.session != session.0);
                Ok(())
            })
            .await
    }

    async fn execute_statement(
        &self,
        session: &SessionHandle,
        statement: &str,
        execution_config: &BTreeMap<String, String>,
    ) -> Result<OperationHandle, GatewayError> {
        self.link
            .call(async {
                let before = self.take_hold(|point| {
                    matches!(point, GatewayPoint::BeforeExecute(text) if statement.contains(text.as_str()))
                });
                if let Some(hold) = before {
                    hold.wait().await;
                }
                let taken = self.take_statement(session, statement, execution_config);
                let after = self.take_hold(|point| {
                    matches!(point, GatewayPoint::AfterExecute(text) if statement.contains(text.as_str()))
                });
                if let Some(hold) = after {
                    hold.wait().await;
                }
                taken
            })
            .await
    }

    async fn operation_status(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.link
            .call(async {
                self.hold_on(operation, |point| match point {
                    GatewayPoint::Status(text) => Some(text),
                    _ => None,
                })
                .await;
                let mut state = self.record(GatewayCall::Status {
                    session: session.0.clone(),
                    operation: operation.0.clone(),
                });
                let found = state.operation(session, operation)?;
                let status = found.status();
                found.polls += 1;
                Ok(status)
            })
            .await
    }

    async fn cancel_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.link
            .call(async {
                let mut state = self.record(GatewayCall::CancelOperation {
                    session: session.0.clone(),
                    operation: operation.0.clone(),
                });
                let found = state.operation(session, operation)?;
                let status = found.status();
                if status.is_terminal() {
                    return Err(GatewayError::Server {
                        status: 500,
                        message: format!(
                            "Failed to convert the Operation Status from {status:?} to CANCELED for {}.",
                            operation.0
                        ),
                    });
                }
                found.forced = Some(OperationStatus::Canceled);
                Ok(OperationStatus::Canceled)
            })
            .await
    }

    async fn close_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.link
            .call(async {
                let mut state = self.record(GatewayCall::CloseOperation {
                    session: session.0.clone(),
                    operation: operation.0.clone(),
                });
                state.operation(session, operation)?;
                // A closed operation is forgotten.
                state.operations.remove(&operation.0);
                Ok(OperationStatus::Closed)
            })
            .await
    }

    async fn fetch_results(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<ResultPage, GatewayError> {
        let (page, body) = self.fetch_page_and_body(session, operation, token).await?;
        let body: flinkbroker_flink::sql_gateway::wire::FetchResultsBody =
            serde_json::from_slice(&body)
                .map_err(|e| GatewayError::Protocol(format!("fake page: {e}")))?;
        let results = body.results.unwrap_or_default();
        Ok(ResultPage {
            result_type: body.result_type,
            is_query_result: body.is_query_result,
            job_id: body.job_id,
            result_kind: body.result_kind,
            columns: results.columns,
            data: results.data,
            next_token: page.next_token,
        })
    }

    async fn fetch_page(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<RawPage, GatewayError> {
        self.fetch_page_and_body(session, operation, token)
            .await
            .map(|(page, _)| page)
    }
}
