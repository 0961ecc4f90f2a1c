//! The gateway's state: sessions and their catalogs, operations with their status machine and
//! result fetchers, and the cluster's jobs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::Method;
use uuid::Uuid;

use super::exceptions::{
    self, Endpoint, ErrorBody, ExecuteStatementRoot, FetchFailure, ServiceFailure, Throwable,
};
use super::jobmanager::{Cluster, JobStatus, parse_job_id, savepoint_location};
use super::lexer::split_statements;
use super::parser::{self, Insert, ParseError, ShowKind, Statement};
use super::pipeline::{Fetcher, Page, Row, StaticRows, source_for};
use super::planner::{self, Column, PlanContext, PlanError, QueryPlan, TableDef, ViewDef};
use super::types::{
    DataType, LogicalType, Timestamp, Value, epoch_millis, plain_text, write_json_string,
    write_json_value,
};
use super::{FlinkRelease, RecordedStatement, RequestCounts, StandinConfig};

const SESSION_PROPERTIES: &str =
    include_str!("../../../../tests/fixtures/sql-gateway/session-properties.json");
/// The hints the recorded gateway gave (`complete-statement`, transcript 11); anything else gets
/// none.
const RECORDED_COMPLETIONS: [(&str, usize, &[&str]); 2] =
    [("SELECT * FR", 11, &["FROM"]), ("SHOW TAB", 8, &["TABLES"])];
const JOB_ID_KEY: &str = "$internal.pipeline.job-id";
/// The span over which requests are counted for their peaks.
const REQUEST_SLOT: Duration = Duration::from_millis(100);
/// Slots kept (an hour's).
const REQUEST_SLOTS_KEPT: usize = 36_000;

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
        }
    }

    pub fn error(error: ErrorBody) -> Reply {
        Reply {
            status: error.status,
            body: error.to_json(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
    V3,
}

impl ApiVersion {
    pub fn name(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    Json,
    PlainText,
}

impl RowFormat {
    pub fn name(self) -> &'static str {
        match self {
            RowFormat::Json => "JSON",
            RowFormat::PlainText => "PLAIN_TEXT",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpStatus {
    Running,
    Finished,
    Error,
    Canceled,
}

impl OpStatus {
    fn name(self) -> &'static str {
        match self {
            OpStatus::Running => "RUNNING",
            OpStatus::Finished => "FINISHED",
            OpStatus::Error => "ERROR",
            OpStatus::Canceled => "CANCELED",
        }
    }
}

/// A statement's result: schema, kind and the fetcher over its rows.
struct ResultSet {
    columns: Vec<Column>,
    is_query: bool,
    with_content: bool,
    job_id: Option<String>,
    fetcher: Fetcher,
}

impl ResultSet {
    fn rows(columns: Vec<Column>, rows: Vec<Vec<Value>>, with_content: bool) -> ResultSet {
        ResultSet {
            columns,
            is_query: false,
            with_content,
            job_id: None,
            fetcher: Fetcher::new(
                Box::new(StaticRows::new(rows.into_iter().map(Row::insert).collect())),
                usize::MAX,
                false,
            ),
        }
    }

    fn ok() -> ResultSet {
        ResultSet::rows(
            vec![Column {
                name: "result".into(),
                ty: DataType::string(),
            }],
            vec![vec![Value::Str("OK".into())]],
            false,
        )
    }

    fn job_submitted(job_id: &str) -> ResultSet {
        let mut rs = ResultSet::rows(
            vec![Column {
                name: "job id".into(),
                ty: DataType::string(),
            }],
            vec![vec![Value::Str(job_id.to_string())]],
            true,
        );
        rs.job_id = Some(job_id.to_string());
        rs
    }
}

/// Work that needs the cluster: run when the operation turns ready.
enum Work {
    Query {
        plan: QueryPlan,
        pinned: Option<String>,
    },
    Modify {
        job_name: String,
        pinned: Option<String>,
        duration: Option<Duration>,
        sync: bool,
        streaming: bool,
    },
}

struct Operation {
    status: OpStatus,
    submitted: Instant,
    not_ready_served: u32,
    work: Option<Work>,
    result: Option<ResultSet>,
    error: Option<Vec<Throwable>>,
    job_id: Option<String>,
    /// SELECT and synchronous INSERT jobs live and die with their operation.
    owns_job: bool,
    awaiting_job: bool,
}

impl Operation {
    fn finished(result: ResultSet, now: Instant) -> Operation {
        Operation {
            status: OpStatus::Finished,
            submitted: now,
            not_ready_served: 0,
            work: None,
            result: Some(result),
            error: None,
            job_id: None,
            owns_job: false,
            awaiting_job: false,
        }
    }

    fn failed(error: Vec<Throwable>, now: Instant) -> Operation {
        Operation {
            status: OpStatus::Error,
            submitted: now,
            not_ready_served: 0,
            work: None,
            result: None,
            error: Some(error),
            job_id: None,
            owns_job: false,
            awaiting_job: false,
        }
    }

    fn pending(work: Work, now: Instant) -> Operation {
        Operation {
            status: OpStatus::Running,
            submitted: now,
            not_ready_served: 0,
            work: Some(work),
            result: None,
            error: None,
            job_id: None,
            owns_job: false,
            awaiting_job: false,
        }
    }
}

struct Session {
    properties: Vec<(String, String)>,
    tables: BTreeMap<String, TableDef>,
    operations: HashMap<Uuid, Operation>,
    last_access: Instant,
}

impl Session {
    fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set_property(&mut self, key: &str, value: &str) {
        match self.properties.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.properties.push((key.to_string(), value.to_string())),
        }
    }
}

struct State {
    sessions: HashMap<Uuid, Session>,
    cluster: Cluster,
    statements: Vec<RecordedStatement>,
    heartbeats: usize,
    canceled: Vec<String>,
    /// Requests per URL version prefix (`-` for unversioned URLs).
    api_versions: BTreeMap<String, usize>,
    /// Requests per API family since the start.
    requests: RequestCounts,
    /// Requests per API family in each `REQUEST_SLOT`, the last `REQUEST_SLOTS_KEPT` of them;
    /// the front one is slot `first_request_slot` since the start.
    request_slots: VecDeque<RequestCounts>,
    first_request_slot: usize,
    /// When `GET /jobs/{id}` last answered for each Flink job.
    status_reads: HashMap<String, Instant>,
    /// When `GET /jobs` or `/jobs/overview` last listed every job.
    jobs_listed_at: Option<Instant>,
}

/// Which API a request went to.
#[derive(Clone, Copy)]
enum Api {
    Gateway,
    JobManager,
}

/// The parsed body of `POST .../statements`.
#[derive(Clone, Debug, Default)]
pub struct StatementRequest {
    pub statement: String,
    pub execution_config: BTreeMap<String, String>,
    pub execution_timeout: Option<i64>,
}

/// The stand-in gateway.
pub struct Gateway {
    config: StandinConfig,
    /// Where request slots are counted from.
    started: Instant,
    base_properties: Vec<(String, String)>,
    state: Mutex<State>,
}

impl Gateway {
    pub fn new(config: StandinConfig) -> Gateway {
        let base: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(SESSION_PROPERTIES).unwrap_or_default();
        let base_properties = base
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect();
        let cluster = Cluster::new(config.cancel_delay);
        Gateway {
            config,
            started: Instant::now(),
            base_properties,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                cluster,
                statements: Vec::new(),
                heartbeats: 0,
                canceled: Vec::new(),
                api_versions: BTreeMap::new(),
                requests: RequestCounts::default(),
                request_slots: VecDeque::new(),
                first_request_slot: 0,
                status_reads: HashMap::new(),
                jobs_listed_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops sessions idle for longer than the idle timeout (closing their operations).
    fn evict(&self, sessions: &mut HashMap<Uuid, Session>, cluster: &mut Cluster, now: Instant) {
        let timeout = self.config.session_idle_timeout;
        let expired: Vec<Uuid> = sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_access) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(session) = sessions.remove(&id) {
                close_operations(session, cluster, now);
            }
        }
    }

    fn default_properties(&self, session: &Uuid) -> Vec<(String, String)> {
        self.base_properties
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{session}", &session.to_string())))
            .collect()
    }

    /// The Flink release the stand-in answers as.
    pub fn release(&self) -> FlinkRelease {
        self.config.flink_release
    }

    /// Counts a request under its URL's version prefix.
    pub fn note_api_version(&self, prefix: &str) {
        let mut state = self.lock();
        *state.api_versions.entry(prefix.to_owned()).or_default() += 1;
        self.count_request(&mut state, Api::Gateway, Instant::now());
    }

    /// The slot `at` falls in, counted from the start.
    fn request_slot(&self, at: Instant) -> usize {
        let since = at.saturating_duration_since(self.started);
        usize::try_from(since.as_nanos() / REQUEST_SLOT.as_nanos()).unwrap_or(usize::MAX)
    }

    fn count_request(&self, state: &mut State, api: Api, now: Instant) {
        let add = |counts: &mut RequestCounts| match api {
            Api::Gateway => counts.gateway += 1,
            Api::JobManager => counts.jobmanager += 1,
        };
        add(&mut state.requests);
        let slot = self.request_slot(now);
        if slot < state.first_request_slot {
            return;
        }
        while state.first_request_slot + state.request_slots.len() <= slot {
            state.request_slots.push_back(RequestCounts::default());
        }
        while state.request_slots.len() > REQUEST_SLOTS_KEPT {
            state.request_slots.pop_front();
            state.first_request_slot += 1;
        }
        if let Some(counts) = state.request_slots.get_mut(slot - state.first_request_slot) {
            add(counts);
        }
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.lock().requests
    }

    pub fn peak_requests_per_slot(&self, from: Instant, to: Instant) -> RequestCounts {
        let (from, to) = (self.request_slot(from), self.request_slot(to));
        let state = self.lock();
        let mut peak = RequestCounts::default();
        for (index, counts) in state.request_slots.iter().enumerate() {
            let slot = state.first_request_slot + index;
            if slot < from || slot > to {
                continue;
            }
            peak.gateway = peak.gateway.max(counts.gateway);
            peak.jobmanager = peak.jobmanager.max(counts.jobmanager);
        }
        peak
    }

    pub fn flink_jobs_reported_since(&self, flink_job_ids: &[String], since: Instant) -> usize {
        let state = self.lock();
        if state.jobs_listed_at.is_some_and(|at| at >= since) {
            return flink_job_ids.len();
        }
        flink_job_ids
            .iter()
            .filter(|id| {
                state
                    .status_reads
                    .get(&id.to_ascii_lowercase())
                    .is_some_and(|at| *at >= since)
            })
            .count()
    }

    pub fn requests_by_api_version(&self) -> BTreeMap<String, usize> {
        self.lock().api_versions.clone()
    }

    // ------------------------------------------------------------------ inspection

    pub fn open_session_count(&self) -> usize {
        let mut state = self.lock();
        let state = &mut *state;
        self.evict(&mut state.sessions, &mut state.cluster, Instant::now());
        state.sessions.len()
    }

    pub fn statements(&self) -> Vec<RecordedStatement> {
        self.lock().statements.clone()
    }

    pub fn heartbeats(&self) -> usize {
        self.lock().heartbeats
    }

    pub fn canceled_operations(&self) -> Vec<String> {
        self.lock().canceled.clone()
    }

    pub fn flink_jobs(&self) -> Vec<(String, String)> {
        self.lock()
            .cluster
            .jobs(Instant::now())
            .iter()
            .map(|j| (j.id.clone(), j.status.name().to_string()))
            .collect()
    }

    pub fn fail_flink_job(&self, flink_job_id: &str, root_cause: &str) -> bool {
        let id = flink_job_id.to_ascii_lowercase();
        self.lock().cluster.fail(&id, root_cause, Instant::now())
    }

    pub fn refuse_next_flink_jobs(&self, count: u32) {
        self.lock().cluster.refuse_next(count);
    }

    /// Answers a JobManager REST request; `None` when the path is not the JobManager's.
    pub fn jobmanager(
        &self,
        method: &Method,
        segments: &[&str],
        query: Option<&str>,
        body: &[u8],
    ) -> Option<Reply> {
        let now = Instant::now();
        let mut state = self.lock();
        let reply = state.cluster.handle(
            method,
            segments,
            query,
            body,
            self.config.flink_release.version(),
            now,
        )?;
        self.count_request(&mut state, Api::JobManager, now);
        if method == Method::GET {
            match segments {
                ["jobs"] | ["jobs", "overview"] => state.jobs_listed_at = Some(now),
                ["jobs", id] if reply.status == 200 => {
                    state.status_reads.insert(id.to_ascii_lowercase(), now);
                }
                _ => {}
            }
        }
        Some(reply)
    }

    // ------------------------------------------------------------------ sessions

    pub fn open_session(&self, properties: Vec<(String, String)>) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        self.evict(&mut state.sessions, &mut state.cluster, now);
        let id = Uuid::new_v4();
        let mut session = Session {
            properties: self.default_properties(&id),
            tables: BTreeMap::new(),
            operations: HashMap::new(),
            last_access: now,
        };
        for (k, v) in properties {
            session.set_property(&k, &v);
        }
        state.sessions.insert(id, session);
        Reply::ok(format!("{{\"sessionHandle\":\"{id}\"}}"))
    }

    fn touch<'a>(
        &self,
        sessions: &'a mut HashMap<Uuid, Session>,
        cluster: &mut Cluster,
        session: Uuid,
        now: Instant,
    ) -> Option<&'a mut Session> {
        self.evict(sessions, cluster, now);
        let s = sessions.get_mut(&session)?;
        s.last_access = now;
        Some(s)
    }

    pub fn get_session(&self, session: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::GetSessionConfig,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        let mut body = String::from("{\"properties\":{");
        for (i, (k, v)) in s.properties.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            write_json_string(&mut body, k);
            body.push(':');
            write_json_string(&mut body, v);
        }
        body.push_str("}}");
        Reply::ok(body)
    }

    pub fn heartbeat(&self, session: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        if self
            .touch(&mut state.sessions, &mut state.cluster, session, now)
            .is_none()
        {
            return Reply::error(exceptions::handler_failure(
                Endpoint::Heartbeat,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        }
        state.heartbeats += 1;
        Reply::ok("{}")
    }

    pub fn close_session(&self, session: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        self.evict(&mut state.sessions, &mut state.cluster, now);
        match state.sessions.remove(&session) {
            Some(s) => {
                close_operations(s, &mut state.cluster, now);
                Reply::ok("{\"status\":\"CLOSED\"}")
            }
            None => Reply::error(exceptions::handler_failure(
                Endpoint::CloseSession,
                &ServiceFailure::SessionNotFound(session.to_string()),
            )),
        }
    }

    pub fn configure_session(&self, session: Uuid, statement: &str) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::ConfigureSession,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        let parsed = match parser::parse_statement(statement) {
            Ok(p) => p,
            Err(e) => {
                return Reply::error(exceptions::handler_failure(
                    Endpoint::ConfigureSession,
                    &ServiceFailure::Chain(parse_error_chain(&e)),
                ));
            }
        };
        let allowed = matches!(
            parsed,
            Statement::Set(_)
                | Statement::Reset(_)
                | Statement::CreateTable(_)
                | Statement::CreateView { .. }
                | Statement::Drop { .. }
        );
        if !allowed {
            return Reply::error(exceptions::handler_failure(
                Endpoint::ConfigureSession,
                &ServiceFailure::Chain(exceptions::execution_failure(
                    &format!(
                        "Unsupported statement for configuring session:{statement}\nThe configureSession API only supports to execute statement of type CREATE TABLE, DROP TABLE, ALTER TABLE, CREATE DATABASE, DROP DATABASE, ALTER DATABASE, CREATE FUNCTION, DROP FUNCTION, ALTER FUNCTION, CREATE CATALOG, DROP CATALOG, USE CATALOG, USE [CATALOG.]DATABASE, CREATE VIEW, DROP VIEW, LOAD MODULE, UNLOAD MODULE, USE MODULE, ADD JAR."
                    ),
                    &[],
                )),
            ));
        }
        let base = self.default_properties(&session);
        match self.run_statement(
            s,
            &mut state.cluster,
            parsed,
            statement,
            &BTreeMap::new(),
            &base,
            now,
        ) {
            Outcome::Failed(chain) => Reply::error(exceptions::handler_failure(
                Endpoint::ConfigureSession,
                &ServiceFailure::Chain(chain),
            )),
            _ => Reply::ok("{}"),
        }
    }

    pub fn complete_statement(&self, session: Uuid, statement: &str, position: usize) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::CompleteStatement,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        let _ = s;
        let hints = RECORDED_COMPLETIONS
            .iter()
            .find(|(text, at, _)| *text == statement && *at == position)
            .map_or(&[][..], |(_, _, hints)| hints);
        Reply::ok(serde_json::json!({ "candidates": hints }).to_string())
    }

    // ------------------------------------------------------------------ statements

    /// Records a request to `POST .../statements` that failed before reaching the service.
    pub fn record_rejected(&self, session: &str, statement: &str, status: u16) {
        self.lock().statements.push(RecordedStatement {
            session_handle: session.to_string(),
            statement: statement.to_string(),
            execution_config: BTreeMap::new(),
            http_status: status,
            operation_handle: None,
        });
    }

    pub fn execute_statement(&self, session: Uuid, request: StatementRequest) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let (reply, operation) = self.execute_statement_locked(state, session, &request, now);
        state.statements.push(RecordedStatement {
            session_handle: session.to_string(),
            statement: request.statement.clone(),
            execution_config: request.execution_config.clone(),
            http_status: reply.status,
            operation_handle: operation.map(|o| o.to_string()),
        });
        reply
    }

    fn execute_statement_locked(
        &self,
        state: &mut State,
        session: Uuid,
        request: &StatementRequest,
        now: Instant,
    ) -> (Reply, Option<Uuid>) {
        if request.execution_timeout.is_some_and(|t| t > 0) {
            return (
                Reply::error(exceptions::execute_statement_failure(
                    ExecuteStatementRoot::TimeoutUnsupported,
                )),
                None,
            );
        }
        let base = self.default_properties(&session);
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return (
                Reply::error(exceptions::execute_statement_failure(
                    ExecuteStatementRoot::SessionNotFound(session.to_string()),
                )),
                None,
            );
        };
        let text = request.statement.as_str();
        let outcome = if split_statements(text).len() != 1 {
            Outcome::Failed(exceptions::single_statement_failure())
        } else {
            match parser::parse_statement(text) {
                Ok(parsed) => self.run_statement(
                    s,
                    &mut state.cluster,
                    parsed,
                    text,
                    &request.execution_config,
                    &base,
                    now,
                ),
                Err(e) => Outcome::Failed(parse_error_chain(&e)),
            }
        };
        let mut operation = match outcome {
            Outcome::Done(result) => Operation::finished(result, now),
            Outcome::Failed(chain) => Operation::failed(chain, now),
            Outcome::Job(work) => Operation::pending(work, now),
        };
        advance(&self.config, &mut operation, &mut state.cluster, now);
        let handle = Uuid::new_v4();
        s.operations.insert(handle, operation);
        (
            Reply::ok(format!("{{\"operationHandle\":\"{handle}\"}}")),
            Some(handle),
        )
    }

    /// Validates and executes a statement; DDL and configuration take effect at once.
    #[allow(clippy::too_many_arguments)]
    fn run_statement(
        &self,
        session: &mut Session,
        cluster: &mut Cluster,
        statement: Statement,
        text: &str,
        execution_config: &BTreeMap<String, String>,
        base: &[(String, String)],
        now: Instant,
    ) -> Outcome {
        let effective = |key: &str| -> Option<String> {
            execution_config
                .get(key)
                .cloned()
                .or_else(|| session.property(key).map(str::to_string))
        };
        let streaming =
            !effective("execution.runtime-mode").is_some_and(|m| m.eq_ignore_ascii_case("batch"));
        let pinned = effective(JOB_ID_KEY);
        let sync = effective("table.dml-sync").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let pipeline_name = effective("pipeline.name");
        let ctx = PlanContext {
            tables: &session.tables,
            streaming,
            text,
        };
        match statement {
            Statement::Query(query) => match planner::plan_query(&query, &ctx) {
                Ok(mut plan) => {
                    if let Some(name) = pipeline_name {
                        plan.job_name = name;
                    }
                    Outcome::Job(Work::Query { plan, pinned })
                }
                Err(e) => Outcome::Failed(plan_error_chain(&e)),
            },
            Statement::Insert(insert) => match plan_insert(&insert, &ctx) {
                Ok(duration) => Outcome::Job(Work::Modify {
                    job_name: pipeline_name.unwrap_or_else(|| {
                        format!(
                            "insert-into_default_catalog.default_database.{}",
                            insert.table.name
                        )
                    }),
                    pinned,
                    duration,
                    sync,
                    streaming,
                }),
                Err(e) => Outcome::Failed(plan_error_chain(&e)),
            },
            Statement::InsertSet(inserts) => {
                let mut longest: Option<Duration> = Some(Duration::ZERO);
                for insert in &inserts {
                    match plan_insert(insert, &ctx) {
                        Ok(duration) => longest = longest.zip(duration).map(|(a, b)| a.max(b)),
                        Err(e) => return Outcome::Failed(plan_error_chain(&e)),
                    }
                }
                if inserts.is_empty() {
                    return Outcome::Done(ResultSet::ok());
                }
                let names: Vec<&str> = inserts.iter().map(|i| i.table.name.as_str()).collect();
                let mut seen: HashMap<&str, usize> = HashMap::new();
                let sinks: Vec<String> = names
                    .iter()
                    .map(|n| {
                        let nth = seen.entry(n).or_default();
                        *nth += 1;
                        if names.iter().filter(|m| *m == n).count() > 1 {
                            format!("default_catalog.default_database.{n}_{nth}")
                        } else {
                            format!("default_catalog.default_database.{n}")
                        }
                    })
                    .collect();
                Outcome::Job(Work::Modify {
                    job_name: pipeline_name
                        .unwrap_or_else(|| format!("insert-into_{}", sinks.join(","))),
                    pinned,
                    duration: longest,
                    sync,
                    streaming,
                })
            }
            Statement::CreateTable(create) => {
                if let Some(existing) = exists(session, &create.name.name, create.if_not_exists) {
                    return existing;
                }
                session.tables.insert(
                    create.name.name.clone(),
                    TableDef {
                        name: create.name.name.clone(),
                        columns: create.columns,
                        options: create.options,
                        view: None,
                    },
                );
                Outcome::Done(ResultSet::ok())
            }
            Statement::CreateView {
                name,
                query,
                if_not_exists,
            } => {
                if let Some(existing) = exists(session, &name.name, if_not_exists) {
                    return existing;
                }
                let plan = match planner::plan_query(&query, &ctx) {
                    Ok(plan) => plan,
                    Err(e) => return Outcome::Failed(plan_error_chain(&e)),
                };
                let columns = plan.columns.into_iter().map(|c| (c.name, c.ty)).collect();
                let view = Some(ViewDef {
                    query,
                    text: text.to_string(),
                });
                session.tables.insert(
                    name.name.clone(),
                    TableDef {
                        name: name.name,
                        columns,
                        options: vec![],
                        view,
                    },
                );
                Outcome::Done(ResultSet::ok())
            }
            Statement::Drop {
                name,
                if_exists,
                view,
            } => {
                if session.tables.remove(&name.name).is_none() && !if_exists {
                    let what = if view { "View" } else { "Table" };
                    return Outcome::Failed(exceptions::operation_failure(
                        "org.apache.flink.table.api.ValidationException",
                        &format!(
                            "{what} with identifier 'default_catalog.default_database.{}' does not exist.",
                            name.name
                        ),
                        &[],
                    ));
                }
                Outcome::Done(ResultSet::ok())
            }
            Statement::Set(Some((key, value))) => {
                session.set_property(&key, &value);
                Outcome::Done(ResultSet::ok())
            }
            Statement::Set(None) => {
                let mut props = session.properties.clone();
                props.sort();
                Outcome::Done(ResultSet::rows(
                    vec![
                        Column {
                            name: "key".into(),
                            ty: DataType::string(),
                        },
                        Column {
                            name: "value".into(),
                            ty: DataType::string(),
                        },
                    ],
                    props
                        .into_iter()
                        .map(|(k, v)| vec![Value::Str(k), Value::Str(v)])
                        .collect(),
                    true,
                ))
            }
            Statement::Reset(Some(key)) => {
                match base.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => session.set_property(&key, v),
                    None => session.properties.retain(|(k, _)| *k != key),
                }
                Outcome::Done(ResultSet::ok())
            }
            Statement::Reset(None) => {
                session.properties = base.to_vec();
                Outcome::Done(ResultSet::ok())
            }
            Statement::StopJob {
                job_id, savepoint, ..
            } => stop_job(session, cluster, &job_id, savepoint, now),
            Statement::Show(kind) => Outcome::Done(show(session, cluster, kind, now)),
            Statement::Explain(inner) => {
                let planned = match *inner {
                    Statement::Query(query) => planner::plan_query(&query, &ctx)
                        .map(|plan| explain_plan("LogicalProject", &plan.job_name, streaming)),
                    Statement::Insert(insert) => plan_insert(&insert, &ctx)
                        .map(|_| explain_plan("LogicalSink", &insert.table.name, streaming)),
                    Statement::InsertSet(inserts) => inserts
                        .iter()
                        .map(|insert| {
                            plan_insert(insert, &ctx)
                                .map(|_| explain_plan("LogicalSink", &insert.table.name, streaming))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(|plans| plans.join("\n")),
                    _ => return Outcome::Failed(parse_error_chain(&ParseError::NonQuery)),
                };
                match planned {
                    // One row, one VARCHAR column `result`, and no Flink job (as recorded).
                    Ok(plan) => Outcome::Done(ResultSet::rows(
                        vec![Column {
                            name: "result".into(),
                            ty: DataType::string(),
                        }],
                        vec![vec![Value::Str(plan)]],
                        true,
                    )),
                    Err(e) => Outcome::Failed(plan_error_chain(&e)),
                }
            }
            Statement::Describe(name) => match session.tables.get(&name.name) {
                Some(table) => Outcome::Done(describe(table)),
                None => Outcome::Failed(exceptions::operation_failure(
                    "org.apache.flink.table.api.ValidationException",
                    &format!(
                        "Tables or views with the identifier 'default_catalog.default_database.{}' doesn't exist.",
                        name.name
                    ),
                    &[],
                )),
            },
        }
    }

    // ------------------------------------------------------------------ operations

    pub fn operation_status(&self, session: Uuid, operation: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::OperationStatus,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        let Some(op) = s.operations.get_mut(&operation) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::OperationStatus,
                &ServiceFailure::OperationNotFound(operation.to_string()),
            ));
        };
        advance(&self.config, op, &mut state.cluster, now);
        Reply::ok(format!("{{\"status\":\"{}\"}}", op.status.name()))
    }

    pub fn cancel_operation(&self, session: Uuid, operation: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::CancelOperation,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        let Some(op) = s.operations.get_mut(&operation) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::CancelOperation,
                &ServiceFailure::OperationNotFound(operation.to_string()),
            ));
        };
        advance(&self.config, op, &mut state.cluster, now);
        if op.status != OpStatus::Running {
            return Reply::error(exceptions::handler_failure(
                Endpoint::CancelOperation,
                &ServiceFailure::InvalidTransition {
                    operation: operation.to_string(),
                    from: op.status.name(),
                    to: "CANCELED",
                },
            ));
        }
        op.status = OpStatus::Canceled;
        op.work = None;
        op.awaiting_job = false;
        if op.owns_job
            && let Some(job) = &op.job_id
        {
            state.cluster.end(job, JobStatus::Canceled, now);
        }
        state.canceled.push(operation.to_string());
        Reply::ok("{\"status\":\"CANCELED\"}")
    }

    pub fn close_operation(&self, session: Uuid, operation: Uuid) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::handler_failure(
                Endpoint::CloseOperation,
                &ServiceFailure::SessionNotFound(session.to_string()),
            ));
        };
        if let Some(op) = s.operations.remove(&operation) {
            close_operation(op, &mut state.cluster, now);
        }
        Reply::ok("{\"status\":\"CLOSED\"}")
    }

    pub fn fetch(
        &self,
        session: Uuid,
        operation: Uuid,
        token: i64,
        version: ApiVersion,
        format: RowFormat,
    ) -> Reply {
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        let Some(s) = self.touch(&mut state.sessions, &mut state.cluster, session, now) else {
            return Reply::error(exceptions::fetch_failure(&FetchFailure::SessionNotFound(
                session.to_string(),
            )));
        };
        let Some(op) = s.operations.get_mut(&operation) else {
            return Reply::error(exceptions::fetch_failure(&FetchFailure::OperationNotFound(
                operation.to_string(),
            )));
        };
        advance(&self.config, op, &mut state.cluster, now);
        let next_uri = |next: i64| -> String {
            match version {
                ApiVersion::V1 => {
                    format!("/v1/sessions/{session}/operations/{operation}/result/{next}")
                }
                v => format!(
                    "/{}/sessions/{session}/operations/{operation}/result/{next}?rowFormat={}",
                    v.name(),
                    format.name()
                ),
            }
        };
        match op.status {
            OpStatus::Running => {
                op.not_ready_served += 1;
                advance(&self.config, op, &mut state.cluster, now);
                let mut body = String::from("{\"resultType\":\"NOT_READY\",\"nextResultUri\":");
                write_json_string(&mut body, &next_uri(token));
                body.push('}');
                Reply::ok(body)
            }
            OpStatus::Error => {
                Reply::error(exceptions::fetch_failure(&FetchFailure::OperationFailed {
                    operation: operation.to_string(),
                    causes: op.error.clone().unwrap_or_default(),
                }))
            }
            OpStatus::Canceled => {
                Reply::error(exceptions::fetch_failure(&FetchFailure::WrongStatus {
                    operation: operation.to_string(),
                    status: "CANCELED",
                }))
            }
            OpStatus::Finished => {
                let Some(result) = op.result.as_mut() else {
                    return Reply::error(exceptions::fetch_failure(&FetchFailure::WrongStatus {
                        operation: operation.to_string(),
                        status: "FINISHED",
                    }));
                };
                if result.is_query
                    && !result.fetcher.finished()
                    && let Some(job) = &result.job_id
                    && let Some(status @ (JobStatus::Failed | JobStatus::Canceled)) =
                        state.cluster.status(job, now)
                {
                    // the collect sink lost its job
                    let mut causes = vec![
                        Throwable::new("java.lang.RuntimeException", "Failed to fetch next result")
                            .more(16),
                        Throwable::new(
                            "java.io.IOException",
                            "Failed to fetch job execution result",
                        )
                        .more(16),
                    ];
                    causes.extend(job_end_chain(&state.cluster, job, status));
                    return Reply::error(exceptions::fetch_failure(
                        &FetchFailure::OperationFailed {
                            operation: operation.to_string(),
                            causes,
                        },
                    ));
                }
                let page = result.fetcher.fetch(token, now);
                if result.fetcher.finished()
                    && result.is_query
                    && let Some(job) = &result.job_id
                {
                    // the collect sink drained: the job is over
                    state.cluster.drained(job, now);
                }
                match page {
                    Page::BadToken(message) => {
                        Reply::error(exceptions::fetch_failure(&FetchFailure::Token(message)))
                    }
                    Page::Eos => Reply::ok(render_page(result, "EOS", &[], format, None)),
                    Page::Payload { next } => {
                        let uri = next_uri(next as i64);
                        Reply::ok(render_page(
                            result,
                            "PAYLOAD",
                            result.fetcher.page(),
                            format,
                            Some(&uri),
                        ))
                    }
                }
            }
        }
    }
}

enum Outcome {
    Done(ResultSet),
    Failed(Vec<Throwable>),
    Job(Work),
}

/// What `CREATE TABLE` or `CREATE VIEW` of a name the catalog already holds results in.
fn exists(session: &Session, name: &str, if_not_exists: bool) -> Option<Outcome> {
    if !session.tables.contains_key(name) {
        return None;
    }
    if if_not_exists {
        return Some(Outcome::Done(ResultSet::ok()));
    }
    Some(Outcome::Failed(exceptions::operation_failure(
        "org.apache.flink.table.api.ValidationException",
        &format!(
            "Could not execute CreateTable in path `default_catalog`.`default_database`.`{name}`"
        ),
        &[(
            "org.apache.flink.table.catalog.exceptions.TableAlreadyExistException",
            format!(
                "Table (or view) default_database.{name} already exists in Catalog default_catalog."
            ),
        )],
    )))
}

fn close_operation(op: Operation, cluster: &mut Cluster, now: Instant) {
    if op.owns_job
        && let Some(job) = &op.job_id
    {
        cluster.end(job, JobStatus::Canceled, now);
    }
}

fn close_operations(session: Session, cluster: &mut Cluster, now: Instant) {
    for (_, op) in session.operations {
        close_operation(op, cluster, now);
    }
}

/// Moves an operation along: runs its work once ready, follows a synchronous job.
fn advance(config: &StandinConfig, op: &mut Operation, cluster: &mut Cluster, now: Instant) {
    if op.status != OpStatus::Running {
        return;
    }
    let ready = op.not_ready_served >= config.not_ready_pages
        || now.saturating_duration_since(op.submitted) >= config.submit_delay;
    if ready && let Some(work) = op.work.take() {
        run_work(config, op, work, cluster, now);
    }
    if op.awaiting_job
        && let Some(id) = op.job_id.clone()
    {
        let status = cluster.status(&id, now).unwrap_or(JobStatus::Failed);
        match status {
            JobStatus::Running => {}
            JobStatus::Finished => {
                op.awaiting_job = false;
                op.status = OpStatus::Finished;
                op.result = Some(ResultSet::job_submitted(&id));
            }
            JobStatus::Canceled | JobStatus::Failed => {
                op.awaiting_job = false;
                op.status = OpStatus::Error;
                let mut chain = exceptions::execution_failure("Failed to wait job finish", &[]);
                chain.extend(job_end_chain(cluster, &id, status));
                op.error = Some(chain);
            }
        }
    }
}

/// The causes a client of a job sees once the job was cancelled or failed.
fn job_end_chain(cluster: &Cluster, job_id: &str, status: JobStatus) -> Vec<Throwable> {
    let cause = |class: &str, message: String| Throwable::new(class, message).more(16);
    if status == JobStatus::Canceled {
        return vec![
            cause(
                "java.util.concurrent.ExecutionException",
                "org.apache.flink.runtime.client.JobCancellationException: Job was cancelled."
                    .into(),
            ),
            cause(
                "org.apache.flink.runtime.client.JobCancellationException",
                "Job was cancelled.".into(),
            ),
        ];
    }
    let failed = format!("Job failed (JobID: {job_id})");
    let root = cluster
        .root_cause(job_id)
        .unwrap_or("java.lang.RuntimeException");
    let (class, message) = root.split_once(": ").unwrap_or((root, ""));
    vec![
        cause(
            "java.util.concurrent.ExecutionException",
            format!("org.apache.flink.client.program.ProgramInvocationException: {failed}"),
        ),
        cause(
            "org.apache.flink.client.program.ProgramInvocationException",
            failed,
        ),
        cause(
            "org.apache.flink.runtime.client.JobExecutionException",
            "Job execution failed.".into(),
        ),
        cause(
            "org.apache.flink.runtime.JobException",
            "Recovery is suppressed by NoRestartBackoffTimeStrategy".into(),
        ),
        cause(class, message.to_string()),
    ]
}

fn run_work(
    config: &StandinConfig,
    op: &mut Operation,
    work: Work,
    cluster: &mut Cluster,
    now: Instant,
) {
    match work {
        Work::Query { plan, pinned } => {
            let duration = plan.duration(config.honor_rows_per_second);
            match cluster.start(&plan.job_name, pinned, duration, plan.streaming, now) {
                Ok(id) => {
                    let source = source_for(
                        &plan,
                        config.honor_rows_per_second,
                        now,
                        epoch_millis(SystemTime::now()),
                    );
                    op.result = Some(ResultSet {
                        columns: plan.columns.clone(),
                        is_query: true,
                        with_content: true,
                        job_id: Some(id.clone()),
                        fetcher: Fetcher::new(
                            source,
                            config.rows_per_page,
                            config.empty_payload_pages,
                        ),
                    });
                    op.job_id = Some(id);
                    op.owns_job = true;
                    op.status = OpStatus::Finished;
                }
                Err(chain) => {
                    op.error = Some(chain);
                    op.status = OpStatus::Error;
                }
            }
        }
        Work::Modify {
            job_name,
            pinned,
            duration,
            sync,
            streaming,
        } => {
            let duration = if config.honor_rows_per_second {
                duration
            } else {
                duration.map(|_| Duration::ZERO)
            };
            match cluster.start(&job_name, pinned, duration, streaming, now) {
                Ok(id) => {
                    op.job_id = Some(id.clone());
                    if sync {
                        op.owns_job = true;
                        op.awaiting_job = true;
                    } else {
                        op.result = Some(ResultSet::job_submitted(&id));
                        op.status = OpStatus::Finished;
                    }
                }
                Err(chain) => {
                    op.error = Some(chain);
                    op.status = OpStatus::Error;
                }
            }
        }
    }
}

/// Validates an INSERT; returns how long its job runs (`None`: unbounded).
fn plan_insert(insert: &Insert, ctx: &PlanContext) -> Result<Option<Duration>, PlanError> {
    let sink = ctx
        .tables
        .get(&insert.table.name)
        .ok_or_else(|| PlanError::Validation {
            span: Some(insert.table.span),
            message: format!("Object '{}' not found", insert.table.name),
        })?;
    planner::check_sink(sink)?;
    let plan = planner::plan_query(&insert.source, ctx)?;
    let expected: Vec<&(String, DataType)> = match &insert.columns {
        Some(cols) => {
            let mut picked = Vec::new();
            for c in cols {
                match sink.columns.iter().find(|(n, _)| *n == c.name) {
                    Some(col) => picked.push(col),
                    None => {
                        return Err(PlanError::Validation {
                            span: Some(c.span),
                            message: format!("Unknown target column '{}'", c.name),
                        });
                    }
                }
            }
            picked
        }
        None => sink.columns.iter().collect(),
    };
    if expected.len() != plan.columns.len() {
        let schema = |cols: Vec<(String, String)>| {
            format!(
                "[{}]",
                cols.iter()
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(PlanError::Planner {
            message: format!(
                "Column types of query result and sink for '{}' do not match.\nCause: Different number of columns.\n\nQuery schema: {}\nSink schema:  {}",
                sink.path(),
                schema(
                    plan.columns
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.sql()))
                        .collect()
                ),
                schema(
                    sink.columns
                        .iter()
                        .map(|(n, t)| (n.clone(), t.sql()))
                        .collect()
                ),
            ),
            causes: vec![],
        });
    }
    Ok(plan.duration(true))
}

fn stop_job(
    session: &Session,
    cluster: &mut Cluster,
    job_id: &str,
    savepoint: bool,
    now: Instant,
) -> Outcome {
    let failure = |cause: (&str, String)| {
        Outcome::Failed(exceptions::execution_failure(
            &format!("Could not stop job {job_id}"),
            &[cause],
        ))
    };
    let Some(id) = parse_job_id(job_id) else {
        return Outcome::Failed(exceptions::operation_failure(
            "java.lang.IllegalArgumentException",
            &format!(
                "Cannot parse JobID from \"{job_id}\". The expected format is [0-9a-fA-F]{{32}}, e.g. fd72014d4c864993a2e5a9287b4a9c5d."
            ),
            &[],
        ));
    };
    let directory = session
        .property("execution.checkpointing.savepoint-dir")
        .or_else(|| session.property("state.savepoints.dir"));
    if savepoint && directory.is_none() && cluster.status(&id, now) == Some(JobStatus::Running) {
        return failure((
            "java.lang.IllegalStateException",
            "No savepoint directory configured. You can either specify a directory while cancelling via -s :targetDirectory or configure a cluster-wide default via key 'execution.checkpointing.savepoint-dir'.".to_string(),
        ));
    }
    let to = if savepoint {
        JobStatus::Finished
    } else {
        JobStatus::Canceled
    };
    match cluster.end(&id, to, now) {
        None => failure((
            "org.apache.flink.runtime.messages.FlinkJobNotFoundException",
            format!("Could not find Flink job ({job_id})"),
        )),
        Some(JobStatus::Running) => match directory.filter(|_| savepoint) {
            Some(directory) => Outcome::Done(ResultSet::rows(
                vec![Column {
                    name: "savepoint path".into(),
                    ty: DataType::string(),
                }],
                vec![vec![Value::Str(savepoint_location(directory, &id))]],
                true,
            )),
            None => Outcome::Done(ResultSet::ok()),
        },
        Some(status) => failure((
            "org.apache.flink.runtime.messages.FlinkJobTerminatedWithoutCancellationException",
            format!(
                "Flink job ({job_id}) was not canceled, but instead {}.",
                status.name()
            ),
        )),
    }
}

/// The text of an EXPLAIN, in the three sections Flink prints (the stand-in's own plan).
fn explain_plan(root: &str, name: &str, streaming: bool) -> String {
    let exchange = if streaming {
        "StreamExchange"
    } else {
        "BatchExchange"
    };
    format!(
        "== Abstract Syntax Tree ==\n{root}(table=[[default_catalog, default_database, {name}]])\n\n== Optimized Physical Plan ==\n{exchange}(distribution=[single])\n\n== Optimized Execution Plan ==\n{exchange}(distribution=[single])\n"
    )
}

fn show(session: &Session, cluster: &mut Cluster, kind: ShowKind, now: Instant) -> ResultSet {
    let single = |name: &str, rows: Vec<String>| {
        ResultSet::rows(
            vec![Column {
                name: name.to_string(),
                ty: DataType::string(),
            }],
            rows.into_iter().map(|r| vec![Value::Str(r)]).collect(),
            true,
        )
    };
    match kind {
        ShowKind::Tables => single("table name", session.tables.keys().cloned().collect()),
        ShowKind::Views => single(
            "view name",
            session
                .tables
                .values()
                .filter(|t| t.view.is_some())
                .map(|t| t.name.clone())
                .collect(),
        ),
        ShowKind::Jobs => ResultSet::rows(
            vec![
                Column {
                    name: "job id".into(),
                    ty: DataType::string(),
                },
                Column {
                    name: "job name".into(),
                    ty: DataType::string(),
                },
                Column {
                    name: "status".into(),
                    ty: DataType::string(),
                },
                Column {
                    name: "start time".into(),
                    ty: DataType::nullable(LogicalType::TimestampLtz(6)),
                },
            ],
            cluster
                .jobs(now)
                .iter()
                .map(|j| {
                    vec![
                        Value::Str(j.id.clone()),
                        Value::Str(j.name.clone()),
                        Value::Str(j.status.name().to_string()),
                        Value::TimestampLtz(Timestamp {
                            millis: epoch_millis(j.start_wall),
                            nanos: 0,
                        }),
                    ]
                })
                .collect(),
            true,
        ),
    }
}

fn describe(table: &TableDef) -> ResultSet {
    let string = DataType::string();
    let columns = ["name", "type", "null", "key", "extras", "watermark"]
        .iter()
        .enumerate()
        .map(|(i, n)| Column {
            name: n.to_string(),
            ty: if i == 2 {
                DataType::nullable(LogicalType::Boolean)
            } else {
                string.clone()
            },
        })
        .collect();
    ResultSet::rows(
        columns,
        table
            .columns
            .iter()
            .map(|(name, ty)| {
                vec![
                    Value::Str(name.clone()),
                    Value::Str(ty.with_nullable(true).sql()),
                    Value::Bool(ty.nullable),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]
            })
            .collect(),
        true,
    )
}

fn parse_error_chain(e: &ParseError) -> Vec<Throwable> {
    match e {
        ParseError::NonQuery => exceptions::parse_failure(&e.message(), true),
        ParseError::Unexpected { .. } | ParseError::Lexical(_) => {
            exceptions::parse_failure(&e.message(), false)
        }
        ParseError::Unsupported(m) => {
            exceptions::table_failure(&format!("Unsupported query: {m}"), &[])
        }
    }
}

fn plan_error_chain(e: &PlanError) -> Vec<Throwable> {
    match e {
        PlanError::Validation { span, message } => {
            exceptions::validation_failure(&span.map(|s| s.context()).unwrap_or_default(), message)
        }
        PlanError::Planner { message, causes } => {
            let causes: Vec<&str> = causes.iter().map(String::as_str).collect();
            exceptions::planner_validation_failure(message, &causes)
        }
        PlanError::Table(message) => exceptions::table_failure(message, &[]),
    }
}

fn render_page(
    result: &ResultSet,
    result_type: &str,
    rows: &[Row],
    format: RowFormat,
    next_uri: Option<&str>,
) -> String {
    let mut out = String::with_capacity(256 + rows.len() * 64);
    let _ = write!(
        out,
        "{{\"resultType\":\"{result_type}\",\"isQueryResult\":{}",
        result.is_query
    );
    if let Some(job) = &result.job_id {
        let _ = write!(out, ",\"jobID\":\"{job}\"");
    }
    let _ = write!(
        out,
        ",\"resultKind\":\"{}\",\"results\":{{\"columns\":[",
        if result.with_content {
            "SUCCESS_WITH_CONTENT"
        } else {
            "SUCCESS"
        }
    );
    for (i, column) in result.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        write_json_string(&mut out, &column.name);
        out.push_str(",\"logicalType\":");
        column.ty.write_json(&mut out);
        out.push_str(",\"comment\":null}");
    }
    let _ = write!(out, "],\"rowFormat\":\"{}\",\"data\":[", format.name());
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"kind\":\"{}\",\"fields\":[", row.kind.name());
        for (j, value) in row.fields.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let ty = &result.columns[j.min(result.columns.len().saturating_sub(1))].ty;
            match format {
                RowFormat::Json => write_json_value(&mut out, value, ty),
                RowFormat::PlainText => write_json_string(&mut out, &plain_text(value, ty)),
            }
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    if let Some(uri) = next_uri {
        out.push_str(",\"nextResultUri\":");
        write_json_string(&mut out, uri);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::super::http::route;
    use super::*;

    #[test]
    fn requests_are_counted_by_api_family() {
        let gateway = Gateway::new(StandinConfig::default());
        let started = Instant::now();
        let job = "0123456789abcdef0123456789abcdef".to_owned();
        assert_eq!(
            gateway.flink_jobs_reported_since(std::slice::from_ref(&job), started),
            0
        );
        route(&gateway, &Method::GET, "/v3/info", None, b"");
        route(&gateway, &Method::POST, "/v1/sessions", None, b"{}");
        route(&gateway, &Method::GET, "/jobs/overview", None, b"");
        assert_eq!(
            gateway.request_counts(),
            RequestCounts {
                gateway: 2,
                jobmanager: 1
            }
        );
        // The three requests fall in one or two slots.
        let peak = gateway.peak_requests_per_slot(started, Instant::now());
        assert!((1..=2).contains(&peak.gateway), "{peak:?}");
        assert_eq!(peak.jobmanager, 1);
        // A listing of every job reports each job's status.
        assert_eq!(gateway.flink_jobs_reported_since(&[job], started), 1);
    }
}
