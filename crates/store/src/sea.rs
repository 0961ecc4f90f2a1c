//! The sea-orm `Store` for SQLite and PostgreSQL.
//!
//! Every method is atomic: work of more than one statement runs in one transaction, reads in
//! one snapshot. Writes on SQLite begin `IMMEDIATE`, so a writer holds the write lock from its
//! first read and never fails half-way with `SQLITE_BUSY`; state changes are compare-and-set
//! updates (`WHERE state = <the state read>`), so two racing transitions on PostgreSQL cannot
//! both leave the same state.
//!
//! ListJobs pages by keyset on (created_at, id), newest first; the page token is the
//! URL-safe base64 of `"<created_at>:<id>"` of the last job returned. Label filters run in SQL
//! (`json_each` on SQLite, `jsonb @>` on PostgreSQL), so every page is one bounded query.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::Expr;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ActiveValue, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RuntimeErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use super::entities::{job, job_state_transition, job_statement, result_log};
use super::migration::Migrator;
use super::sea_audit::insert_audit;
use super::{
    CreateOutcome, JobFilter, JobGroup, JobMetrics, JobPage, StatementUpdate, Store, StoreError,
    TenantUsage,
};
use flinkbroker_model::job::{
    Job, JobId, JobKind, JobSpec, JobState, LogEnd, LogSummary, NewJob, StateTransition,
    StatementRecord, StatementState, UnixMillis, now_millis,
};
use flinkbroker_model::sql_script::StatementKind;

/// The page size used when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page ListJobs returns, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 1000;

/// The reason recorded with the first history entry of every job.
pub const CREATED_REASON: &str = "job recorded";

/// Connections of a file-backed SQLite pool; WAL lets readers run beside the one writer.
const SQLITE_FILE_MAX_CONNECTIONS: u32 = 4;
/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Serialises migrations of brokers that start at the same time against one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x666c_696e_6b62_726b;
/// Ids per `IN (...)` list when loading statements and history of many jobs.
const LOAD_CHUNK: usize = 500;
/// How often a transition retries after losing a race before reporting an error.
const TRANSITION_ATTEMPTS: usize = 8;

/// The sea-orm store (SQLite file or memory, PostgreSQL).
#[derive(Debug, Clone)]
pub struct SeaStore {
    pub(super) db: DatabaseConnection,
    /// SQLite: the result log's frequent writers take turns here, in order, instead of
    /// meeting on SQLite's write lock, whose busy handler sleeps in steps of milliseconds.
    pub(super) log_writers: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
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
        options.acquire_timeout(ACQUIRE_TIMEOUT);
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
                // WAL with synchronous NORMAL: a commit survives the process being killed at
                // any moment (the WAL is in the OS's hands); only an OS crash or power loss can
                // lose the last commits. PostgreSQL is the store for that.
                options.map_sqlx_sqlite_opts(|sqlite| {
                    sqlite
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
            }
            Target::Postgres => {
                options.max_connections(POSTGRES_MAX_CONNECTIONS);
            }
        }
        let db = Database::connect(options)
            .await
            .map_err(db_error("cannot connect to the database"))?;
        let log_writers = match target {
            Target::Postgres => None,
            Target::SqliteMemory | Target::SqliteFile(_) => {
                Some(std::sync::Arc::new(tokio::sync::Mutex::new(())))
            }
        };
        let store = SeaStore { db, log_writers };
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

    /// Finds the job recorded under `request_id` and compares its payload with `new_job`.
    async fn existing_for_request(
        &self,
        request_id: &str,
        new_job: &NewJob,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let Some(existing) = self.job_for_request(&new_job.tenant, request_id).await? else {
            return Ok(None);
        };
        let same_payload = existing.spec == new_job.spec && existing.labels == new_job.labels;
        Ok(Some(if same_payload {
            CreateOutcome::Existing(existing)
        } else {
            CreateOutcome::Conflict(existing)
        }))
    }

    /// Records the audit event of a repeated submission answered with the job already
    /// recorded (a conflicting one is audited with its refusal by the caller).
    async fn audit_existing(
        &self,
        new_job: &NewJob,
        outcome: CreateOutcome,
    ) -> Result<CreateOutcome, StoreError> {
        if let CreateOutcome::Existing(existing) = &outcome
            && let Some(event) = submission_event(new_job, existing.id)
        {
            insert_audit(&self.db, event)
                .await
                .map_err(db_error("cannot record the audit event"))?;
        }
        Ok(outcome)
    }

    /// Tells whether a job with this id is recorded.
    async fn job_exists(&self, id: JobId) -> Result<bool, StoreError> {
        job::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map(|row| row.is_some())
            .map_err(db_error("cannot read the job"))
    }

    /// Inserts the job, its statements and its first history entry.
    async fn insert_job(txn: &DatabaseTransaction, new_job: &NewJob) -> Result<(), DbErr> {
        let id = new_job.id.to_string();
        let spec_json = serde_json::to_string(&new_job.spec)
            .map_err(|e| DbErr::Custom(format!("cannot encode the job spec: {e}")))?;
        let labels_json = serde_json::to_string(&new_job.labels)
            .map_err(|e| DbErr::Custom(format!("cannot encode the job labels: {e}")))?;
        job::Entity::insert(job::ActiveModel {
            id: ActiveValue::Set(id.clone()),
            kind: ActiveValue::Set(new_job.spec.kind().as_str().to_owned()),
            state: ActiveValue::Set(JobState::Pending.as_str().to_owned()),
            state_reason: ActiveValue::Set(CREATED_REASON.to_owned()),
            request_id: ActiveValue::Set(new_job.request_id.clone()),
            tenant: ActiveValue::Set(new_job.tenant.clone()),
            principal: ActiveValue::Set(new_job.principal.clone()),
            spec_json: ActiveValue::Set(spec_json),
            labels_json: ActiveValue::Set(labels_json),
            created_at: ActiveValue::Set(new_job.created_at),
            updated_at: ActiveValue::Set(new_job.created_at),
            ended_at: ActiveValue::Set(None),
            gateway_session: ActiveValue::Set(None),
            flink_job_id: ActiveValue::Set(new_job.flink_job_id.clone()),
            submitter_output: ActiveValue::Set(None),
            savepoint_path: ActiveValue::Set(None),
            owner: ActiveValue::Set(new_job.lease.as_ref().map(|(owner, _)| owner.clone())),
            lease_until: ActiveValue::Set(new_job.lease.as_ref().map(|(_, until)| *until)),
            cancel_request: ActiveValue::Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        if !new_job.statements.is_empty() {
            let statements =
                new_job
                    .statements
                    .iter()
                    .map(|statement| job_statement::ActiveModel {
                        job_id: ActiveValue::Set(id.clone()),
                        idx: ActiveValue::Set(i64::from(statement.index)),
                        sql: ActiveValue::Set(statement.sql.clone()),
                        state: ActiveValue::Set(statement.state.as_str().to_owned()),
                        operation_handle: ActiveValue::Set(statement.operation_handle.clone()),
                        flink_job_id: ActiveValue::Set(statement.flink_job_id.clone()),
                        error: ActiveValue::Set(statement.error.clone()),
                        is_query: ActiveValue::Set(statement.is_query),
                        kind: ActiveValue::Set(Some(statement.kind.as_str().to_owned())),
                        attempt: ActiveValue::Set(i64::from(statement.attempt)),
                    });
            job_statement::Entity::insert_many(statements)
                .exec_without_returning(txn)
                .await?;
        }
        insert_history(
            txn,
            &id,
            JobState::Pending,
            CREATED_REASON,
            new_job.created_at,
        )
        .await
    }

    /// Updates one column set of a job row, or reports the job unknown.
    async fn update_job_columns(
        &self,
        id: JobId,
        what: &'static str,
        update: sea_orm::UpdateMany<job::Entity>,
    ) -> Result<(), StoreError> {
        let result = update
            .filter(job::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_error(what))?;
        if result.rows_affected == 0 {
            return Err(StoreError::JobNotFound(id));
        }
        Ok(())
    }

    /// Makes one attempt at a transition; `None` when another writer changed the job first.
    async fn try_transition(
        &self,
        id: JobId,
        state: JobState,
        reason: &str,
    ) -> Result<Option<Job>, StoreError> {
        let txn = self.begin_write().await?;
        match transition_in(&txn, id, state, reason).await {
            Ok(Some(job)) => {
                commit(txn).await?;
                Ok(Some(job))
            }
            Ok(None) => {
                rollback(txn).await?;
                Ok(None)
            }
            Err(error) => {
                rollback(txn).await?;
                Err(error)
            }
        }
    }
}

/// Moves a job within `txn`; `None` when another writer changed the job after it was read.
async fn transition_in(
    txn: &DatabaseTransaction,
    id: JobId,
    state: JobState,
    reason: &str,
) -> Result<Option<Job>, StoreError> {
    let row = job::Entity::find_by_id(id.to_string())
        .one(txn)
        .await
        .map_err(db_error("cannot read the job"))?
        .ok_or(StoreError::JobNotFound(id))?;
    let current = parse_job_state(&row.id, &row.state)?;
    if current.is_terminal() && current != state {
        return Err(StoreError::TerminalState {
            job_id: id,
            from: current,
            to: state,
        });
    }
    if current == state && row.state_reason == reason {
        return Ok(load_jobs(txn, vec![row]).await?.pop());
    }
    // The clock may step back; a job's timestamps must not.
    let now = Ord::max(now_millis(), row.updated_at);
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::StateReason, Expr::value(reason))
        .col_expr(job::Column::UpdatedAt, Expr::value(now));
    if current != state {
        update = update.col_expr(job::Column::State, Expr::value(state.as_str()));
        if state.is_terminal() {
            update = update.col_expr(job::Column::EndedAt, Expr::value(now));
        }
    }
    let result = update
        .filter(job::Column::Id.eq(row.id.as_str()))
        .filter(job::Column::State.eq(row.state.as_str()))
        .exec(txn)
        .await
        .map_err(db_error("cannot update the job state"))?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    // A new reason in the same live state (a resumption, say) is history too; an ended job's
    // history stays as it ended.
    if current != state || !state.is_terminal() {
        insert_history(txn, &row.id, state, reason, now)
            .await
            .map_err(db_error("cannot record the state change"))?;
    }
    load_job(txn, id).await.map(Some)
}

#[async_trait]
impl Store for SeaStore {
    async fn create_job(&self, new_job: NewJob) -> Result<CreateOutcome, StoreError> {
        if let Some(request_id) = &new_job.request_id
            && let Some(outcome) = self.existing_for_request(request_id, &new_job).await?
        {
            return self.audit_existing(&new_job, outcome).await;
        }
        let txn = self.begin_write().await?;
        let inserted = match Self::insert_job(&txn, &new_job).await {
            Ok(()) => match submission_event(&new_job, new_job.id) {
                Some(event) => insert_audit(&txn, event).await,
                None => Ok(()),
            },
            Err(error) => Err(error),
        };
        let error = match inserted {
            Ok(()) => {
                commit(txn).await?;
                return Ok(CreateOutcome::Created(created_job(new_job)));
            }
            Err(error) => error,
        };
        rollback(txn).await?;
        if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            // Another create with the same request id committed between the look-up above and
            // the insert: the unique index stopped this one, which now answers as if it had
            // come second.
            if let Some(request_id) = &new_job.request_id
                && let Some(outcome) = self.existing_for_request(request_id, &new_job).await?
            {
                return self.audit_existing(&new_job, outcome).await;
            }
            if self.job_exists(new_job.id).await? {
                return Err(StoreError::Database(format!(
                    "job {} is already recorded",
                    new_job.id
                )));
            }
        }
        Err(db_error("cannot record the job")(error))
    }

    async fn get_job(&self, id: JobId) -> Result<Job, StoreError> {
        let txn = self.begin_read().await?;
        let job = load_job(&txn, id).await;
        rollback(txn).await?;
        job
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let after = page_token.map(decode_page_token).transpose()?;
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => Ord::min(size, MAX_PAGE_SIZE),
        };
        let mut query = job::Entity::find();
        if !filter.states.is_empty() {
            query = query
                .filter(job::Column::State.is_in(filter.states.iter().map(|state| state.as_str())));
        }
        if let Some(tenant) = &filter.tenant {
            query = query.filter(job::Column::Tenant.eq(tenant.as_str()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(job::Column::Kind.eq(kind.as_str()));
        }
        if !filter.labels.is_empty() {
            query = query.filter(labels_condition(self.backend(), &filter.labels)?);
        }
        if let Some((created_at, id)) = after {
            query = query.filter(
                Condition::any()
                    .add(job::Column::CreatedAt.lt(created_at))
                    .add(
                        Condition::all()
                            .add(job::Column::CreatedAt.eq(created_at))
                            .add(job::Column::Id.lt(id.to_string())),
                    ),
            );
        }
        let txn = self.begin_read().await?;
        let rows = query
            .order_by_desc(job::Column::CreatedAt)
            .order_by_desc(job::Column::Id)
            .limit(u64::from(page_size) + 1)
            .all(&txn)
            .await
            .map_err(db_error("cannot list jobs"));
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => {
                rollback(txn).await?;
                return Err(error);
            }
        };
        let has_more = rows.len() > page_size as usize;
        let rows: Vec<job::Model> = rows.into_iter().take(page_size as usize).collect();
        let jobs = load_jobs(&txn, rows).await;
        rollback(txn).await?;
        let jobs = jobs?;
        let next_page_token = match jobs.last() {
            Some(last) if has_more => Some(encode_page_token(last.created_at, last.id)),
            _ => None,
        };
        Ok(JobPage {
            jobs,
            next_page_token,
        })
    }

    async fn transition(
        &self,
        id: JobId,
        state: JobState,
        reason: &str,
    ) -> Result<Job, StoreError> {
        for _ in 0..TRANSITION_ATTEMPTS {
            if let Some(job) = self.try_transition(id, state, reason).await? {
                return Ok(job);
            }
        }
        Err(StoreError::Database(format!(
            "job {id} kept changing while moving it to {}; try again",
            state.as_str()
        )))
    }

    async fn update_statement(
        &self,
        id: JobId,
        index: u32,
        update: StatementUpdate,
    ) -> Result<(), StoreError> {
        let StatementUpdate {
            state,
            operation_handle,
            flink_job_id,
            error,
            is_query,
            attempt,
        } = update;
        let mut query = job_statement::Entity::update_many();
        let mut changes = 0;
        if let Some(state) = state {
            query = query.col_expr(job_statement::Column::State, Expr::value(state.as_str()));
            changes += 1;
        }
        if let Some(handle) = operation_handle {
            query = query.col_expr(job_statement::Column::OperationHandle, Expr::value(handle));
            changes += 1;
        }
        if let Some(flink_job_id) = flink_job_id {
            query = query.col_expr(job_statement::Column::FlinkJobId, Expr::value(flink_job_id));
            changes += 1;
        }
        if let Some(error) = error {
            query = query.col_expr(job_statement::Column::Error, Expr::value(error));
            changes += 1;
        }
        if let Some(is_query) = is_query {
            query = query.col_expr(job_statement::Column::IsQuery, Expr::value(is_query));
            changes += 1;
        }
        if let Some(attempt) = attempt {
            query = query.col_expr(
                job_statement::Column::Attempt,
                Expr::value(i64::from(attempt)),
            );
            changes += 1;
        }
        let statement_key = Condition::all()
            .add(job_statement::Column::JobId.eq(id.to_string()))
            .add(job_statement::Column::Idx.eq(i64::from(index)));
        let found = if changes == 0 {
            job_statement::Entity::find()
                .filter(statement_key)
                .one(&self.db)
                .await
                .map_err(db_error("cannot read the statement"))?
                .is_some()
        } else {
            query
                .filter(statement_key)
                .exec(&self.db)
                .await
                .map_err(db_error("cannot update the statement"))?
                .rows_affected
                > 0
        };
        if found {
            Ok(())
        } else {
            // No variant names a missing statement; the job, as the caller knows it, is unknown.
            Err(StoreError::JobNotFound(id))
        }
    }

    async fn set_gateway_session(
        &self,
        id: JobId,
        session: Option<&str>,
    ) -> Result<(), StoreError> {
        let update = job::Entity::update_many().col_expr(
            job::Column::GatewaySession,
            Expr::value(session.map(str::to_owned)),
        );
        // Bookkeeping of the broker's own, not a change of the job a caller sees: the job's
        // update time stays (so an ended job reads the same before and after its session
        // is closed).
        self.update_job_columns(id, "cannot record the gateway session", update)
            .await
    }

    async fn set_submitter_output(&self, id: JobId, output: &str) -> Result<(), StoreError> {
        let update = job::Entity::update_many()
            .col_expr(job::Column::SubmitterOutput, Expr::value(output))
            .col_expr(job::Column::UpdatedAt, updated_now());
        self.update_job_columns(id, "cannot record the submitter output", update)
            .await
    }

    async fn set_savepoint_path(&self, id: JobId, path: &str) -> Result<(), StoreError> {
        let update = job::Entity::update_many()
            .col_expr(job::Column::SavepointPath, Expr::value(path))
            .col_expr(job::Column::UpdatedAt, updated_now());
        self.update_job_columns(id, "cannot record the savepoint path", update)
            .await
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError> {
        let txn = self.begin_read().await?;
        let usage = async {
            let live = job::Entity::find()
                .select_only()
                .columns([job::Column::Kind, job::Column::SpecJson])
                .filter(job::Column::Tenant.eq(tenant))
                .filter(unfinished())
                .into_tuple::<(String, String)>()
                .all(&txn)
                .await
                .map_err(db_error("cannot read a tenant's live jobs"))?;
            let mut usage = TenantUsage {
                live_jobs: live.len() as u64,
                ..TenantUsage::default()
            };
            for (kind, spec) in live {
                if kind != JobKind::Python.as_str() {
                    continue;
                }
                // A spec that does not parse is reported where the job is read; here it
                // counts as parallelism 1.
                usage.python_parallelism += serde_json::from_str::<JobSpec>(&spec)
                    .ok()
                    .and_then(|spec| match spec {
                        JobSpec::Python(python) => Some(u64::from(python.effective_parallelism())),
                        JobSpec::Sql(_) => None,
                    })
                    .unwrap_or(1);
            }
            let of_tenant = sea_orm::sea_query::Query::select()
                .column(job::Column::Id)
                .from(job::Entity)
                .and_where(job::Column::Tenant.eq(tenant))
                .to_owned();
            // PostgreSQL sums BIGINT into NUMERIC: cast back for both databases.
            let bytes: Option<i64> = result_log::Entity::find()
                .select_only()
                .expr(Expr::cust(
                    r#"CAST(COALESCE(SUM("result_logs"."bytes_held"), 0) AS BIGINT)"#,
                ))
                .filter(result_log::Column::JobId.in_subquery(of_tenant))
                .into_tuple::<i64>()
                .one(&txn)
                .await
                .map_err(db_error("cannot sum a tenant's result-log bytes"))?;
            usage.result_log_bytes = bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0));
            Ok(usage)
        }
        .await;
        rollback(txn).await?;
        usage
    }

    async fn job_metrics(&self, now: UnixMillis) -> Result<JobMetrics, StoreError> {
        let txn = self.begin_read().await?;
        let metrics = async {
            let groups = job::Entity::find()
                .select_only()
                .column(job::Column::Kind)
                .column(job::Column::State)
                .expr(Expr::cust("CAST(COUNT(*) AS BIGINT)"))
                .expr(Expr::cust(r#"MIN("jobs"."updated_at")"#))
                .group_by(job::Column::Kind)
                .group_by(job::Column::State)
                .into_tuple::<(String, String, i64, Option<i64>)>()
                .all(&txn)
                .await
                .map_err(db_error("cannot count jobs by kind and state"))?;
            let mut by_kind_and_state = Vec::with_capacity(groups.len());
            for (kind, state, jobs, oldest_change) in groups {
                // A row the store cannot read is reported where the job is read.
                let (Some(kind), Some(state)) = (JobKind::parse(&kind), JobState::parse(&state))
                else {
                    continue;
                };
                by_kind_and_state.push(JobGroup {
                    kind,
                    state,
                    jobs: u64::try_from(jobs).unwrap_or(0),
                    oldest_change,
                });
            }
            let live_without_lease = job::Entity::find()
                .filter(unfinished())
                .filter(without_lease(now))
                .count(&txn)
                .await
                .map_err(db_error("cannot count jobs without a lease"))?;
            let live = sea_orm::sea_query::Query::select()
                .column(job::Column::Id)
                .from(job::Entity)
                .cond_where(unfinished())
                .to_owned();
            let largest: Option<i64> = result_log::Entity::find()
                .select_only()
                .expr(Expr::cust(
                    r#"CAST(COALESCE(MAX("result_logs"."bytes_held"), 0) AS BIGINT)"#,
                ))
                .filter(result_log::Column::EndReason.is_null())
                .filter(result_log::Column::DeletedAt.is_null())
                .filter(result_log::Column::JobId.in_subquery(live))
                .into_tuple::<i64>()
                .one(&txn)
                .await
                .map_err(db_error("cannot find the largest open result log"))?;
            Ok(JobMetrics {
                by_kind_and_state,
                live_without_lease,
                largest_open_log_bytes: largest.map_or(0, |b| u64::try_from(b).unwrap_or(0)),
            })
        }
        .await;
        rollback(txn).await?;
        metrics
    }

    async fn job_for_request(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<Job>, StoreError> {
        let txn = self.begin_read().await?;
        let existing = find_by_request_id(&txn, tenant, request_id).await;
        rollback(txn).await?;
        existing
    }

    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError> {
        let txn = self.begin_read().await?;
        let rows = job::Entity::find()
            .filter(unfinished())
            .order_by_asc(job::Column::CreatedAt)
            .order_by_asc(job::Column::Id)
            .all(&txn)
            .await
            .map_err(db_error("cannot list unfinished jobs"));
        let jobs = match rows {
            Ok(rows) => load_jobs(&txn, rows).await,
            Err(error) => Err(error),
        };
        rollback(txn).await?;
        jobs
    }
}

/// The audit event of an audited submission answered with `job_id`.
fn submission_event(
    new_job: &NewJob,
    job_id: JobId,
) -> Option<flinkbroker_model::audit::NewAuditEvent> {
    new_job.audited_as.map(|method| {
        flinkbroker_model::audit::submitted(
            method,
            &new_job.principal,
            &new_job.tenant,
            &job_id.to_string(),
            new_job.request_id.as_deref(),
        )
    })
}

/// The states of a job that is not over.
pub(super) fn unfinished() -> Condition {
    Condition::all().add(job::Column::State.is_not_in([
        JobState::Finished.as_str(),
        JobState::Failed.as_str(),
        JobState::Canceled.as_str(),
    ]))
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

/// The condition "the job carries every one of `labels`".
fn labels_condition(
    backend: DbBackend,
    labels: &BTreeMap<String, String>,
) -> Result<Condition, StoreError> {
    match backend {
        DbBackend::Postgres => {
            let wanted = serde_json::to_string(labels).map_err(|e| {
                StoreError::Database(format!("cannot encode the label filter: {e}"))
            })?;
            Ok(Condition::all().add(Expr::cust_with_values(
                r#"CAST("jobs"."labels_json" AS jsonb) @> CAST($1 AS jsonb)"#,
                [wanted],
            )))
        }
        _ => Ok(labels
            .iter()
            .fold(Condition::all(), |condition, (key, value)| {
                condition.add(Expr::cust_with_values(
                    r#"EXISTS (SELECT 1 FROM json_each("jobs"."labels_json") AS "label" WHERE "label"."key" = ? AND "label"."value" = ?)"#,
                    [key.clone(), value.clone()],
                ))
            })),
    }
}

/// Encodes the position after a job as an opaque page token.
fn encode_page_token(created_at: UnixMillis, id: JobId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// Decodes a page token into the (created_at, id) of the last job of the previous page.
fn decode_page_token(token: &str) -> Result<(UnixMillis, JobId), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| StoreError::InvalidPageToken)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidPageToken)?;
    let (created_at, id) = text.split_once(':').ok_or(StoreError::InvalidPageToken)?;
    let created_at = created_at
        .parse::<UnixMillis>()
        .map_err(|_| StoreError::InvalidPageToken)?;
    let id = id
        .parse::<JobId>()
        .map_err(|_| StoreError::InvalidPageToken)?;
    Ok((created_at, id))
}

/// The value of `updated_at` for a write that does not read the row first.
fn updated_now() -> Expr {
    Expr::value(now_millis())
}

/// Appends one history entry.
async fn insert_history<C: ConnectionTrait>(
    conn: &C,
    job_id: &str,
    state: JobState,
    reason: &str,
    at: UnixMillis,
) -> Result<(), DbErr> {
    job_state_transition::Entity::insert(job_state_transition::ActiveModel {
        id: ActiveValue::NotSet,
        job_id: ActiveValue::Set(job_id.to_owned()),
        state: ActiveValue::Set(state.as_str().to_owned()),
        reason: ActiveValue::Set(reason.to_owned()),
        at: ActiveValue::Set(at),
    })
    .exec_without_returning(conn)
    .await
    .map(|_| ())
}

/// Builds the job `create_job` just recorded, as `get_job` would read it back.
fn created_job(new_job: NewJob) -> Job {
    let mut statements = new_job.statements;
    statements.sort_by_key(|statement| statement.index);
    Job {
        id: new_job.id,
        kind: new_job.spec.kind(),
        state: JobState::Pending,
        state_reason: CREATED_REASON.to_owned(),
        request_id: new_job.request_id,
        tenant: new_job.tenant,
        principal: new_job.principal,
        labels: new_job.labels,
        spec: new_job.spec,
        created_at: new_job.created_at,
        updated_at: new_job.created_at,
        ended_at: None,
        gateway_session: None,
        flink_job_id: new_job.flink_job_id,
        submitter_output: None,
        savepoint_path: None,
        owner: new_job.lease.as_ref().map(|(owner, _)| owner.clone()),
        cancel_request: None,
        statements,
        history: vec![StateTransition {
            state: JobState::Pending,
            reason: CREATED_REASON.to_owned(),
            at: new_job.created_at,
        }],
    }
}

/// Reads the job recorded under a tenant's request id, if any.
async fn find_by_request_id<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    request_id: &str,
) -> Result<Option<Job>, StoreError> {
    let row = job::Entity::find()
        .filter(job::Column::Tenant.eq(tenant))
        .filter(job::Column::RequestId.eq(request_id))
        .one(conn)
        .await
        .map_err(db_error("cannot read the job of a request id"))?;
    match row {
        Some(row) => Ok(load_jobs(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Reads one job with its statements and history.
async fn load_job<C: ConnectionTrait>(conn: &C, id: JobId) -> Result<Job, StoreError> {
    let row = job::Entity::find_by_id(id.to_string())
        .one(conn)
        .await
        .map_err(db_error("cannot read the job"))?
        .ok_or(StoreError::JobNotFound(id))?;
    load_jobs(conn, vec![row])
        .await?
        .pop()
        .ok_or(StoreError::JobNotFound(id))
}

/// Completes job rows with their statements (by index) and history (oldest first).
async fn load_jobs<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<job::Model>,
) -> Result<Vec<Job>, StoreError> {
    let mut statements: HashMap<String, Vec<job_statement::Model>> = HashMap::new();
    let mut history: HashMap<String, Vec<job_state_transition::Model>> = HashMap::new();
    let mut logs: HashMap<String, Vec<result_log::Model>> = HashMap::new();
    for chunk in rows.chunks(LOAD_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|row| row.id.as_str()).collect();
        let statement_rows = job_statement::Entity::find()
            .filter(job_statement::Column::JobId.is_in(ids.iter().copied()))
            .order_by_asc(job_statement::Column::JobId)
            .order_by_asc(job_statement::Column::Idx)
            .all(conn)
            .await
            .map_err(db_error("cannot read job statements"))?;
        for statement in statement_rows {
            statements
                .entry(statement.job_id.clone())
                .or_default()
                .push(statement);
        }
        let history_rows = job_state_transition::Entity::find()
            .filter(job_state_transition::Column::JobId.is_in(ids.iter().copied()))
            .order_by_asc(job_state_transition::Column::JobId)
            .order_by_asc(job_state_transition::Column::Id)
            .all(conn)
            .await
            .map_err(db_error("cannot read job history"))?;
        for entry in history_rows {
            history.entry(entry.job_id.clone()).or_default().push(entry);
        }
        let sql_ids: Vec<&str> = chunk
            .iter()
            .filter(|row| row.kind == JobKind::Sql.as_str())
            .map(|row| row.id.as_str())
            .collect();
        if !sql_ids.is_empty() {
            let log_rows = result_log::Entity::find()
                .select_only()
                .columns([
                    result_log::Column::JobId,
                    result_log::Column::Idx,
                    result_log::Column::Attempt,
                    result_log::Column::RowsLogged,
                    result_log::Column::EarliestRow,
                    result_log::Column::BytesHeld,
                    result_log::Column::BytesLogged,
                    result_log::Column::NextToken,
                    result_log::Column::FetchSent,
                    result_log::Column::EndReason,
                    result_log::Column::UpdatedAt,
                    result_log::Column::DeletedAt,
                    result_log::Column::OpenedAt,
                ])
                .expr_as(Expr::value(Vec::<u8>::new()), "schema")
                .filter(result_log::Column::JobId.is_in(sql_ids))
                .all(conn)
                .await
                .map_err(db_error("cannot read result logs"))?;
            for log in log_rows {
                logs.entry(log.job_id.clone()).or_default().push(log);
            }
        }
    }
    rows.into_iter()
        .map(|row| {
            let statements = statements.remove(&row.id).unwrap_or_default();
            let history = history.remove(&row.id).unwrap_or_default();
            let logs = logs.remove(&row.id).unwrap_or_default();
            job_from_rows(row, statements, history, logs)
        })
        .collect()
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
        owner: row.owner,
        cancel_request: row.cancel_request,
        statements,
        history,
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

fn parse_job_state(job_id: &str, stored: &str) -> Result<JobState, StoreError> {
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

    #[test]
    fn page_tokens_round_trip() {
        let id = JobId::new_random();
        let token = encode_page_token(-5, id);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_page_token(&token).ok(), Some((-5, id)));
        assert!(matches!(
            decode_page_token("%%%"),
            Err(StoreError::InvalidPageToken)
        ));
    }
}
