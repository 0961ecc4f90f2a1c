//! The sea-orm `Store` for SQLite and PostgreSQL.
//!
//! Every method is atomic: work of more than one statement runs in one transaction, reads in
//! one snapshot. Writes on SQLite begin `IMMEDIATE`, so a writer holds the write lock from its
//! first read and never fails half-way with `SQLITE_BUSY`; state changes are compare-and-set
//! updates (`WHERE state = <the state read>`), so two racing transitions on PostgreSQL cannot
//! both leave the same state.
//!
//! This file connects, migrates, begins transactions and reads jobs back. The `Store` impl
//! here hands job writes and transitions to `sea_jobs`, listings to `sea_list` and aggregate
//! reads to `sea_metrics`; the other traits are implemented in `sea_log`, `sea_lease` and
//! `sea_audit`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult,
    IsolationLevel, QueryFilter, QueryResult, QuerySelect, QueryTrait, RuntimeErr, Select,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, TryGetableMany,
};
use sea_orm_migration::MigratorTrait;

use super::sea_log_sqlite::LogWriter;
use super::sea_wal::{CHECKPOINT_INTERVAL, JOURNAL_SIZE_LIMIT, WalCheckpoints};

use super::entities::{ended_job_count, job, job_state_transition, job_statement, result_log};
use super::migration::Migrator;
use super::{
    CreateOutcome, JobFilter, JobMetrics, JobPage, StatementUpdate, Store, StoreError, TenantUsage,
};
use flinkbroker_model::job::{
    Job, JobId, JobKind, JobSpec, JobState, Lineage, LogEnd, LogSummary, NewJob, Restore,
    SavepointRecord, StateTransition, StatementRecord, StatementState, UnixMillis,
};
use flinkbroker_model::sql_script::StatementKind;

/// Connections of a file-backed SQLite pool; WAL lets readers run beside the one writer.
const SQLITE_FILE_MAX_CONNECTIONS: u32 = 4;
/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle this long is pinged before it is handed out (one that was used
/// since is not: a ping per transaction was a round trip per result-log append).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);
/// Serialises migrations of brokers that start at the same time against one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x666c_696e_6b62_726b;

/// The sea-orm store (SQLite file or memory, PostgreSQL).
#[derive(Debug, Clone)]
pub struct SeaStore {
    pub(super) db: DatabaseConnection,
    /// SQLite: the result log's frequent writers take turns here, in order, instead of
    /// meeting on SQLite's write lock, whose busy handler sleeps in steps of milliseconds.
    pub(super) log_writers: Option<std::sync::Arc<tokio::sync::Mutex<LogWriter>>>,
    /// SQLite file: the WAL's checkpoints, taken off the writers' time.
    pub(super) wal: Option<std::sync::Arc<WalCheckpoints>>,
}

/// The settings of every connection to a SQLite file.
///
/// WAL with synchronous NORMAL: a commit survives the process being killed at any moment (the
/// WAL is in the OS's hands); only an OS crash or power loss can lose the last commits.
/// PostgreSQL is the store for that. No commit checkpoints the WAL: a task of the store's
/// does (`sea_wal`).
fn sqlite_file_options(sqlite: SqliteConnectOptions) -> SqliteConnectOptions {
    sqlite
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
}

/// Which database a URL names, and what connecting to it needs.
enum Target {
    SqliteMemory,
    /// The path of the database file.
    SqliteFile(PathBuf),
    Postgres,
}

impl SeaStore {
    /// Connects to `database_url` and brings its schema up to date.
    ///
    /// Accepts `sqlite://path/to/file.db?mode=rwc` (the parent directory is created when
    /// missing), `sqlite::memory:` (one connection, kept open for the life of the store) and
    /// `postgres://` or `postgresql://` URLs.
    pub async fn connect(database_url: &str) -> Result<SeaStore, StoreError> {
        let target = classify(database_url)?;
        let mut options = ConnectOptions::new(database_url);
        options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
        match &target {
            Target::SqliteMemory => {
                // Each connection of an in-memory database sees its own database, and the
                // database dies with its last connection: exactly one, never recycled.
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                options.map_sqlx_sqlite_opts(|sqlite| sqlite.foreign_keys(true));
            }
            Target::SqliteFile(path) => {
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        StoreError::Database(format!(
                            "cannot create the database directory {}: {}",
                            parent.display(),
                            e.to_string().to_lowercase()
                        ))
                    })?;
                }
                options
                    .max_connections(SQLITE_FILE_MAX_CONNECTIONS)
                    .min_connections(1);
                options.map_sqlx_sqlite_opts(sqlite_file_options);
            }
            Target::Postgres => {
                options.max_connections(POSTGRES_MAX_CONNECTIONS);
            }
        }
        let db = Database::connect(options)
            .await
            .map_err(db_error("cannot connect to the database"))?;
        let log_writer = |writer| Some(std::sync::Arc::new(tokio::sync::Mutex::new(writer)));
        let log_writers = match target {
            Target::Postgres => None,
            Target::SqliteMemory => log_writer(LogWriter::new(None)),
            Target::SqliteFile(_) => {
                let appender = SqliteConnectOptions::from_str(database_url).map_err(|e| {
                    StoreError::Database(format!("invalid sqlite database url: {e}"))
                })?;
                log_writer(LogWriter::new(Some(sqlite_file_options(appender))))
            }
        };
        let wal = match target {
            Target::SqliteFile(_) => Some(std::sync::Arc::new(WalCheckpoints::start(
                db.clone(),
                CHECKPOINT_INTERVAL,
            ))),
            Target::Postgres | Target::SqliteMemory => None,
        };
        let store = SeaStore {
            db,
            log_writers,
            wal,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .ping()
            .await
            .map_err(db_error("the database does not answer"))
    }

    /// Returns the backend this store talks to.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Applies the pending migrations in one transaction.
    async fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .map_err(db_error("cannot lock the schema for migration"))?;
        }
        Migrator::up(&txn, None)
            .await
            .map_err(db_error("cannot migrate the database schema"))?;
        txn.commit()
            .await
            .map_err(db_error("cannot commit the schema migration"))
    }

    /// Begins a transaction that writes; on SQLite it takes the write lock at once.
    pub(super) async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = match self.backend() {
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            _ => TransactionOptions::default(),
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(db_error("cannot begin a transaction"))
    }

    /// Begins a transaction that reads one consistent snapshot.
    pub(super) async fn begin_read(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = match self.backend() {
            DbBackend::Postgres => TransactionOptions {
                isolation_level: Some(IsolationLevel::RepeatableRead),
                access_mode: Some(AccessMode::ReadOnly),
                ..TransactionOptions::default()
            },
            // A SQLite transaction reads one snapshot already; it accepts no options.
            _ => TransactionOptions::default(),
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(db_error("cannot begin a transaction"))
    }
}

#[async_trait]
impl Store for SeaStore {
    async fn create_job(&self, new_job: NewJob) -> Result<CreateOutcome, StoreError> {
        self.record_job(new_job).await
    }

    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        // One statement: a snapshot of its own, no transaction needed.
        load_job(&self.db, id).await
    }
    async fn list_jobs(
        &self,
        filter: &JobFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        self.list_page(filter, page_size, page_token).await
    }

    async fn transition(
        &self,
        id: JobId,
        state: JobState,
        reason: &str,
    ) -> Result<Job, StoreError> {
        self.transition_job(id, state, reason).await
    }

    async fn update_statement(
        &self,
        id: JobId,
        index: u32,
        update: StatementUpdate,
    ) -> Result<(), StoreError> {
        self.update_statement_row(id, index, update).await
    }

    async fn set_gateway_session(
        &self,
        id: JobId,
        session: Option<&str>,
    ) -> Result<(), StoreError> {
        self.record_gateway_session(id, session).await
    }

    async fn set_submitter_output(&self, id: JobId, output: &str) -> Result<(), StoreError> {
        self.record_submitter_output(id, output).await
    }

    async fn set_savepoints(
        &self,
        id: JobId,
        savepoints: &[SavepointRecord],
    ) -> Result<(), StoreError> {
        self.record_savepoints(id, savepoints).await
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError> {
        self.usage_of(tenant).await
    }

    async fn job_metrics(&self, now: UnixMillis) -> Result<JobMetrics, StoreError> {
        self.metrics_at(now).await
    }

    async fn job_for_request(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<Job>, StoreError> {
        find_by_request_id(&self.db, tenant, request_id).await
    }
    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError> {
        self.unfinished_jobs().await
    }

    async fn set_lineage(
        &self,
        id: JobId,
        lineage: &Lineage,
        restore: Option<&Restore>,
    ) -> Result<(), StoreError> {
        self.record_lineage(id, lineage, restore).await
    }

    async fn successor_of(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.successor(id).await
    }

    async fn upgrades_in_progress(&self) -> Result<Vec<Job>, StoreError> {
        self.upgrading_jobs().await
    }

    async fn expire_jobs(&self, ended_before: UnixMillis, limit: u64) -> Result<u64, StoreError> {
        self.expire_ended_jobs(ended_before, limit).await
    }
}

/// The states of a job that is not over, as stored.
pub(super) fn live_states() -> [&'static str; 4] {
    [
        JobState::Pending.as_str(),
        JobState::Submitting.as_str(),
        JobState::Running.as_str(),
        JobState::Canceling.as_str(),
    ]
}

/// The terminal states, as stored.
pub(super) fn terminal_states() -> [&'static str; 3] {
    [
        JobState::Finished.as_str(),
        JobState::Failed.as_str(),
        JobState::Canceled.as_str(),
    ]
}

/// Changes by `change` the count of the ended jobs of `kind` in `state` (`ended_job_counts`),
/// within the transaction that ends or deletes them.
pub(super) async fn count_ended<C: ConnectionTrait>(
    conn: &C,
    kind: &str,
    state: &str,
    change: i64,
) -> Result<(), DbErr> {
    let row = ended_job_count::ActiveModel {
        kind: sea_orm::ActiveValue::Set(kind.to_owned()),
        state: sea_orm::ActiveValue::Set(state.to_owned()),
        jobs: sea_orm::ActiveValue::Set(change),
    };
    // Qualified: PostgreSQL would find a bare `jobs` ambiguous beside `excluded.jobs`.
    let counted = Expr::col((ended_job_count::Entity, ended_job_count::Column::Jobs)).add(change);
    ended_job_count::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                ended_job_count::Column::Kind,
                ended_job_count::Column::State,
            ])
            .value(ended_job_count::Column::Jobs, counted)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// The states of a job that is not over. Named one by one rather than as "not terminal": an
/// IN list walks the indexes that lead with the state, where NOT IN reads every job, and the
/// ended jobs outnumber the live ones by far.
pub(super) fn unfinished() -> Condition {
    Condition::all().add(job::Column::State.is_in(live_states()))
}

/// Jobs no replica holds a live lease on: never claimed, or their lease has lapsed at `now`.
pub(super) fn without_lease(now: UnixMillis) -> Condition {
    Condition::any()
        .add(job::Column::Owner.is_null())
        .add(job::Column::LeaseUntil.is_null())
        .add(job::Column::LeaseUntil.lt(now))
}

/// Works out which database a URL names.
fn classify(database_url: &str) -> Result<Target, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        // Checked here so that no error message ever repeats the URL and its password.
        PgConnectOptions::from_str(database_url).map_err(|e| {
            StoreError::Database(format!(
                "invalid postgres database url: {}",
                e.to_string().to_lowercase()
            ))
        })?;
        return Ok(Target::Postgres);
    }
    if let Some(rest) = database_url.strip_prefix("sqlite:") {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = path.trim_start_matches("//");
        let in_memory = path.is_empty()
            || path == ":memory:"
            || query.split('&').any(|pair| pair == "mode=memory");
        if in_memory {
            return Ok(Target::SqliteMemory);
        }
        let options = SqliteConnectOptions::from_str(database_url).map_err(|e| {
            StoreError::Database(format!(
                "invalid sqlite database url: {}",
                e.to_string().to_lowercase()
            ))
        })?;
        return Ok(Target::SqliteFile(options.get_filename().to_path_buf()));
    }
    let scheme = database_url
        .split_once(':')
        .map_or("", |(scheme, _)| scheme);
    Err(StoreError::Database(format!(
        "unsupported database url scheme {scheme:?}; expected sqlite: or postgres:"
    )))
}

/// Reads the job recorded under a tenant's request id, if any.
async fn find_by_request_id<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    request_id: &str,
) -> Result<Option<Job>, StoreError> {
    // Unique per tenant: at most one row.
    let select = job::Entity::find()
        .filter(job::Column::Tenant.eq(tenant))
        .filter(job::Column::RequestId.eq(request_id));
    Ok(read_jobs(conn, select, None).await?.pop())
}

/// Reads one job with its statements and history.
pub(super) async fn load_job<C: ConnectionTrait>(conn: &C, id: JobId) -> Result<Job, StoreError> {
    // The statement is the same for every job: built once per backend, the id bound.
    static POSTGRES: OnceLock<String> = OnceLock::new();
    static SQLITE: OnceLock<String> = OnceLock::new();
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    }
    .get_or_init(|| {
        with_children(backend, job::Entity::find_by_id(String::new()))
            .build(backend)
            .sql
    });
    let statement = Statement::from_sql_and_values(backend, sql.as_str(), [id.to_string().into()]);
    read_statement(conn, statement)
        .await?
        .pop()
        .ok_or(StoreError::JobNotFound(id))
}

/// Reads one job's row, or reports the job unknown.
pub(super) async fn job_row<C: ConnectionTrait>(
    conn: &C,
    id: JobId,
) -> Result<job::Model, StoreError> {
    // By its key: at most one row, read without a LIMIT (see `read_jobs`).
    job::Entity::find_by_id(id.to_string())
        .all(conn)
        .await
        .map_err(db_error("cannot read the job"))?
        .pop()
        .ok_or(StoreError::JobNotFound(id))
}

/// The columns of `job_statements` a job is read with.
const STATEMENT_FIELDS: [&str; 9] = [
    "idx",
    "sql",
    "state",
    "operation_handle",
    "flink_job_id",
    "error",
    "is_query",
    "kind",
    "attempt",
];
/// The columns of `job_state_transitions` a job is read with.
const HISTORY_FIELDS: [&str; 4] = ["id", "state", "reason", "at"];
/// The columns of `result_logs` a job is read with: the heads, without the schema.
const LOG_FIELDS: [&str; 12] = [
    "idx",
    "attempt",
    "rows_logged",
    "earliest_row",
    "bytes_held",
    "bytes_logged",
    "next_token",
    "fetch_sent",
    "end_reason",
    "updated_at",
    "deleted_at",
    "opened_at",
];

/// A JSON array of the rows of `table` that belong to the job of the outer query's row, with
/// `fields`, built by the database (NULL or `[]` when there is none).
fn child_rows_json(backend: DbBackend, table: &str, fields: &[&str]) -> String {
    let pairs = fields
        .iter()
        .map(|field| format!(r#"'{field}', "child"."{field}""#))
        .collect::<Vec<_>>()
        .join(", ");
    let (aggregate, close) = match backend {
        DbBackend::Postgres => ("CAST(json_agg(json_build_object(", ")) AS TEXT)"),
        _ => ("json_group_array(json_object(", "))"),
    };
    format!(
        r#"(SELECT {aggregate}{pairs}{close} FROM "{table}" AS "child" WHERE "child"."job_id" = "jobs"."id")"#
    )
}

/// Reads the jobs `select` selects (in its order, at most `limit`), each with its statements,
/// history and result log heads, in one statement: one round trip and one snapshot, however
/// many jobs. The children come as JSON arrays the database builds per job, where reading
/// them as rows of their own took three more round trips, and a row each.
///
/// The limit is written into the SQL rather than bound ([`limited`]): planning again at every
/// execution cost more than running the query.
pub(super) async fn read_jobs<C: ConnectionTrait>(
    conn: &C,
    select: Select<job::Entity>,
    limit: Option<u64>,
) -> Result<Vec<Job>, StoreError> {
    let backend = conn.get_database_backend();
    let select = with_children(backend, select);
    let statement = match limit {
        Some(limit) => limited(backend, select, limit),
        None => select.build(backend),
    };
    read_statement(conn, statement).await
}

/// `select` with each job's statements, history and result log heads as JSON columns.
fn with_children(backend: DbBackend, select: Select<job::Entity>) -> Select<job::Entity> {
    select
        .column_as(
            Expr::cust(child_rows_json(
                backend,
                "job_statements",
                &STATEMENT_FIELDS,
            )),
            "statements_json",
        )
        .column_as(
            Expr::cust(child_rows_json(
                backend,
                "job_state_transitions",
                &HISTORY_FIELDS,
            )),
            "history_json",
        )
        .column_as(
            Expr::cust(child_rows_json(backend, "result_logs", &LOG_FIELDS)),
            "logs_json",
        )
}

/// Runs a statement of [`with_children`] and reads its jobs.
async fn read_statement<C: ConnectionTrait>(
    conn: &C,
    statement: Statement,
) -> Result<Vec<Job>, StoreError> {
    let rows = conn
        .query_all_raw(statement)
        .await
        .map_err(db_error("cannot read jobs"))?;
    rows.iter().map(job_from_result).collect()
}

/// `select` (without OFFSET or locking) with `limit` written into its SQL rather than bound:
/// the SQLite linked here (3.51) plans a query whose LIMIT is a bound parameter for that
/// parameter's value, and so parses and plans it again at every execution.
pub(super) fn limited<Q: QueryTrait>(backend: DbBackend, select: Q, limit: u64) -> Statement {
    let mut statement = select.build(backend);
    // LIMIT is the last clause of a SELECT without OFFSET or locking.
    statement.sql.push_str(&format!(" LIMIT {limit}"));
    statement
}

/// The first `limit` rows `select` selects, as tuples of its columns in order (see
/// [`limited`]).
pub(super) async fn limited_tuples<T, C, Q>(
    conn: &C,
    select: Q,
    limit: u64,
) -> Result<Vec<T>, DbErr>
where
    T: TryGetableMany,
    C: ConnectionTrait,
    Q: QueryTrait,
{
    let rows = conn
        .query_all_raw(limited(conn.get_database_backend(), select, limit))
        .await?;
    rows.iter()
        .map(|row| T::try_get_many_by_index(row).map_err(DbErr::from))
        .collect()
}

/// The first `limit` models `select` selects (see [`limited`]).
pub(super) async fn limited_models<M, C, Q>(
    conn: &C,
    select: Q,
    limit: u64,
) -> Result<Vec<M>, DbErr>
where
    M: FromQueryResult,
    C: ConnectionTrait,
    Q: QueryTrait,
{
    let rows = conn
        .query_all_raw(limited(conn.get_database_backend(), select, limit))
        .await?;
    rows.iter()
        .map(|row| M::from_query_result(row, ""))
        .collect()
}

/// Converts one row of `read_jobs` into a `Job`.
fn job_from_result(result: &QueryResult) -> Result<Job, StoreError> {
    let row = job::Model::from_query_result(result, "").map_err(db_error("cannot read a job"))?;
    let mut statements =
        children::<StatementChild>(result, &row.id, "statements_json", "a statement")?
            .into_iter()
            .map(|child| job_statement::Model {
                job_id: row.id.clone(),
                idx: child.idx,
                sql: child.sql,
                state: child.state,
                operation_handle: child.operation_handle,
                flink_job_id: child.flink_job_id,
                error: child.error,
                is_query: child.is_query.0,
                kind: child.kind,
                attempt: child.attempt,
            })
            .collect::<Vec<_>>();
    statements.sort_by_key(|statement| statement.idx);
    let mut history = children::<HistoryChild>(result, &row.id, "history_json", "a history entry")?
        .into_iter()
        .map(|child| job_state_transition::Model {
            id: child.id,
            job_id: row.id.clone(),
            state: child.state,
            reason: child.reason,
            at: child.at,
        })
        .collect::<Vec<_>>();
    history.sort_by_key(|entry| entry.id);
    let logs = children::<LogChild>(result, &row.id, "logs_json", "a result log")?
        .into_iter()
        .map(|child| result_log::Model {
            job_id: row.id.clone(),
            idx: child.idx,
            attempt: child.attempt,
            schema: Vec::new(),
            rows_logged: child.rows_logged,
            earliest_row: child.earliest_row,
            bytes_held: child.bytes_held,
            bytes_logged: child.bytes_logged,
            next_token: child.next_token,
            fetch_sent: child.fetch_sent,
            end_reason: child.end_reason,
            updated_at: child.updated_at,
            deleted_at: child.deleted_at,
            opened_at: child.opened_at,
        })
        .collect();
    job_from_rows(row, statements, history, logs)
}

/// The child rows of a job in `column` (a JSON array the database built, NULL for none),
/// decoded into `T` (whose fields are [`STATEMENT_FIELDS`], [`HISTORY_FIELDS`] or
/// [`LOG_FIELDS`]); one that does not decode makes the job corrupt, naming `what` it is.
fn children<T: serde::de::DeserializeOwned>(
    result: &QueryResult,
    job_id: &str,
    column: &str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let json: Option<String> = result
        .try_get("", column)
        .map_err(db_error("cannot read a job"))?;
    match json {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
            job_id: job_id.to_owned(),
            detail: format!("{what}: {column} does not parse: {e}"),
        }),
    }
}

/// A row of `job_statements` as [`child_rows_json`] builds it.
#[derive(serde::Deserialize)]
struct StatementChild {
    idx: i64,
    sql: String,
    state: String,
    operation_handle: Option<String>,
    flink_job_id: Option<String>,
    error: Option<String>,
    is_query: Flag,
    kind: Option<String>,
    attempt: i64,
}

/// A row of `job_state_transitions` as [`child_rows_json`] builds it.
#[derive(serde::Deserialize)]
struct HistoryChild {
    id: i64,
    state: String,
    reason: String,
    at: i64,
}

/// The head of a `result_logs` row as [`child_rows_json`] builds it.
#[derive(serde::Deserialize)]
struct LogChild {
    idx: i64,
    attempt: i64,
    rows_logged: i64,
    earliest_row: i64,
    bytes_held: i64,
    bytes_logged: i64,
    next_token: Option<i64>,
    fetch_sent: Option<i64>,
    end_reason: Option<String>,
    updated_at: i64,
    deleted_at: Option<i64>,
    opened_at: Option<i64>,
}

/// A boolean column in JSON: `true`/`false` from PostgreSQL, 1/0 from SQLite.
struct Flag(bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Flag;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a boolean, or 0 or 1")
            }
            fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<Flag, E> {
                Ok(Flag(flag))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Flag, E> {
                match number {
                    0 => Ok(Flag(false)),
                    1 => Ok(Flag(true)),
                    _ => Err(E::invalid_value(
                        serde::de::Unexpected::Unsigned(number),
                        &self,
                    )),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Flag, E> {
                match u64::try_from(number) {
                    Ok(number) => self.visit_u64(number),
                    Err(_) => Err(E::invalid_value(
                        serde::de::Unexpected::Signed(number),
                        &self,
                    )),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Converts stored rows into a `Job`, refusing anything it cannot read back.
fn job_from_rows(
    row: job::Model,
    statements: Vec<job_statement::Model>,
    history: Vec<job_state_transition::Model>,
    logs: Vec<result_log::Model>,
) -> Result<Job, StoreError> {
    let mut logs: HashMap<i64, result_log::Model> =
        logs.into_iter().map(|log| (log.idx, log)).collect();
    let corrupt = |detail: String| StoreError::Corrupt {
        job_id: row.id.clone(),
        detail,
    };
    let id = row
        .id
        .parse::<JobId>()
        .map_err(|e| corrupt(format!("id is not a uuid: {e}")))?;
    let kind = JobKind::parse(&row.kind).ok_or_else(|| corrupt(format!("kind {:?}", row.kind)))?;
    let state = parse_job_state(&row.id, &row.state)?;
    let spec: JobSpec = serde_json::from_str(&row.spec_json)
        .map_err(|e| corrupt(format!("spec_json does not parse: {e}")))?;
    if spec.kind() != kind {
        return Err(corrupt(format!(
            "kind {} but a {} spec",
            kind.as_str(),
            spec.kind().as_str()
        )));
    }
    let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels_json)
        .map_err(|e| corrupt(format!("labels_json does not parse: {e}")))?;
    let statement_count = statements.len();
    let statements = statements
        .into_iter()
        .map(|statement| {
            // Rows recorded before kinds were stored are classified here, as at submission.
            let (kind, is_query) = match statement.kind.as_deref() {
                Some(stored) => (
                    StatementKind::parse(stored).ok_or_else(|| {
                        corrupt(format!("statement {} kind {stored:?}", statement.idx))
                    })?,
                    statement.is_query,
                ),
                None => {
                    let kind = flinkbroker_model::sql_script::classify(&statement.sql);
                    let index = usize::try_from(statement.idx).unwrap_or(usize::MAX);
                    (kind, kind.is_result(index, statement_count))
                }
            };
            Ok(StatementRecord {
                index: u32::try_from(statement.idx)
                    .map_err(|_| corrupt(format!("statement index {}", statement.idx)))?,
                state: StatementState::parse(&statement.state).ok_or_else(|| {
                    corrupt(format!(
                        "statement {} state {:?}",
                        statement.idx, statement.state
                    ))
                })?,
                kind,
                attempt: u32::try_from(statement.attempt)
                    .map_err(|_| corrupt(format!("statement attempt {}", statement.attempt)))?,
                sql: statement.sql,
                operation_handle: statement.operation_handle,
                flink_job_id: statement.flink_job_id,
                error: statement.error,
                is_query,
                log: match logs.remove(&statement.idx) {
                    Some(log) => Some(log_summary(&log).map_err(&corrupt)?),
                    None => None,
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let history = history
        .into_iter()
        .map(|entry| {
            Ok(StateTransition {
                state: parse_job_state(&row.id, &entry.state)?,
                reason: entry.reason,
                at: entry.at,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Job {
        id,
        kind,
        state,
        state_reason: row.state_reason,
        request_id: row.request_id,
        tenant: row.tenant,
        principal: row.principal,
        labels,
        spec,
        created_at: row.created_at,
        updated_at: row.updated_at,
        ended_at: row.ended_at,
        gateway_session: row.gateway_session,
        flink_job_id: row.flink_job_id,
        submitter_output: row.submitter_output,
        savepoint_path: row.savepoint_path,
        savepoints: match &row.savepoints_json {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| corrupt(format!("savepoints_json does not parse: {e}")))?,
            None => Vec::new(),
        },
        owner: row.owner,
        cancel_request: row.cancel_request,
        statements,
        history,
        lineage: match &row.lineage_json {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| corrupt(format!("lineage_json does not parse: {e}")))?,
            None => Lineage::first(id),
        },
    })
}

/// Reads a result log's head back.
pub(super) fn log_summary(log: &result_log::Model) -> Result<LogSummary, String> {
    let count = |name: &str, value: i64| {
        u64::try_from(value)
            .map_err(|_| format!("result log of statement {}: {name} {value}", log.idx))
    };
    Ok(LogSummary {
        attempt: u32::try_from(log.attempt).map_err(|_| {
            format!(
                "result log of statement {}: attempt {}",
                log.idx, log.attempt
            )
        })?,
        rows_logged: count("rows_logged", log.rows_logged)?,
        earliest_row: count("earliest_row", log.earliest_row)?,
        bytes_held: count("bytes_held", log.bytes_held)?,
        bytes_logged: count("bytes_logged", log.bytes_logged)?,
        next_token: log.next_token.map(|t| count("next_token", t)).transpose()?,
        fetch_sent: log.fetch_sent.map(|t| count("fetch_sent", t)).transpose()?,
        end: match &log.end_reason {
            Some(end) => Some(LogEnd::parse(end).ok_or_else(|| {
                format!("result log of statement {}: end reason {end:?}", log.idx)
            })?),
            None => None,
        },
        updated_at: log.updated_at,
        deleted_at: log.deleted_at,
        opened_at: log.opened_at,
    })
}

/// Reads a stored job state back, or reports the row corrupt.
pub(super) fn parse_job_state(job_id: &str, stored: &str) -> Result<JobState, StoreError> {
    JobState::parse(stored).ok_or_else(|| StoreError::Corrupt {
        job_id: job_id.to_owned(),
        detail: format!("state {stored:?}"),
    })
}

pub(super) async fn commit(txn: DatabaseTransaction) -> Result<(), StoreError> {
    txn.commit()
        .await
        .map_err(db_error("cannot commit the transaction"))
}

pub(super) async fn rollback(txn: DatabaseTransaction) -> Result<(), StoreError> {
    txn.rollback()
        .await
        .map_err(db_error("cannot roll back the transaction"))
}

/// Maps a `DbErr` to `StoreError::Database` with a lowercase message saying what failed.
pub(super) fn db_error(what: &'static str) -> impl Fn(DbErr) -> StoreError {
    move |error| {
        let detail = match &error {
            DbErr::Conn(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e)) => e.to_string(),
            DbErr::Conn(RuntimeErr::Internal(e))
            | DbErr::Exec(RuntimeErr::Internal(e))
            | DbErr::Query(RuntimeErr::Internal(e)) => e.clone(),
            other => other.to_string(),
        };
        StoreError::Database(format!("{what}: {}", detail.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_by_scheme_and_mode() {
        for memory in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:",
            "sqlite://shared.db?mode=memory",
        ] {
            assert!(
                matches!(classify(memory), Ok(Target::SqliteMemory)),
                "{memory}"
            );
        }
        match classify("sqlite://data/flinkbroker.db?mode=rwc") {
            Ok(Target::SqliteFile(path)) => {
                assert_eq!(path, PathBuf::from("data/flinkbroker.db"));
            }
            _ => panic!("a relative file url"),
        }
        match classify("sqlite:///var/lib/flinkbroker/jobs.db") {
            Ok(Target::SqliteFile(path)) => {
                assert_eq!(path, PathBuf::from("/var/lib/flinkbroker/jobs.db"));
            }
            _ => panic!("an absolute file url"),
        }
        assert!(matches!(
            classify("postgresql://u@localhost/db"),
            Ok(Target::Postgres)
        ));
        assert!(matches!(
            classify("mysql://localhost/db"),
            Err(StoreError::Database(_))
        ));
    }
}
