//! Job writes on SQLite and PostgreSQL: a new job is recorded with its statements, its labels
//! (`job_labels`), its first history entry and its audit event in one transaction; a transition is a compare-and-set
//! update (`WHERE state = <the state read>`), tried again when another writer changed the job
//! first; statements and a job's bookkeeping columns are updated in place.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, SqlErr,
};

use super::entities::{job, job_label, job_state_transition, job_statement};
use super::sea::{commit, count_ended, db_error, job_row, load_job, parse_job_state, rollback};
use super::sea_audit::insert_audit;
use super::{CreateOutcome, SeaStore, StatementUpdate, Store, StoreError};
use flinkbroker_model::job::{
    Job, JobId, JobState, Lineage, NewJob, Restore, SavepointRecord, StateTransition, UnixMillis,
    UpgradeStep, latest_savepoint_location, now_millis,
};

/// The reason recorded with the first history entry of every job.
const CREATED_REASON: &str = "job recorded";
/// How often a transition retries after losing a race before reporting an error.
const TRANSITION_ATTEMPTS: usize = 8;

impl SeaStore {
    /// Records a new job (PENDING, with its statements, first history entry and audit event),
    /// or answers with the job already recorded under its `request_id`.
    pub(super) async fn record_job(&self, new_job: NewJob) -> Result<CreateOutcome, StoreError> {
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
            if let Some(upgrade) = new_job.lineage.as_ref().and_then(|l| l.upgrade.as_ref())
                && let Some(successor) = self.successor(upgrade.previous_job_id).await?
            {
                return Ok(CreateOutcome::Replaced(successor));
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

    /// Moves a job to `state` with `reason`, trying again while other writers win the race.
    pub(super) async fn transition_job(
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

    /// Applies the set fields of `update` to one statement of a job.
    pub(super) async fn update_statement_row(
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

    /// Records the gateway session of a SQL job, or clears it.
    pub(super) async fn record_gateway_session(
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

    /// Records the tail of a Python job's submitter output.
    pub(super) async fn record_submitter_output(
        &self,
        id: JobId,
        output: &str,
    ) -> Result<(), StoreError> {
        let update = job::Entity::update_many()
            .col_expr(job::Column::SubmitterOutput, Expr::value(output))
            .col_expr(job::Column::UpdatedAt, updated_now());
        self.update_job_columns(id, "cannot record the submitter output", update)
            .await
    }

    /// Records a job's savepoints, and the latest completed one's location as its path (a
    /// path recorded before savepoints were listed stays until a savepoint completes).
    pub(super) async fn record_savepoints(
        &self,
        id: JobId,
        savepoints: &[SavepointRecord],
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(savepoints).map_err(|e| {
            StoreError::Database(format!("cannot encode the savepoints of job {id}: {e}"))
        })?;
        let latest = latest_savepoint_location(savepoints).map(str::to_owned);
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::SavepointsJson, Expr::value(json))
            .col_expr(job::Column::UpdatedAt, updated_now());
        if let Some(latest) = latest {
            update = update.col_expr(job::Column::SavepointPath, Expr::value(latest));
        }
        self.update_job_columns(id, "cannot record the savepoints", update)
            .await
    }

    /// Records a revision's lineage, and the restore written into its spec.
    pub(super) async fn record_lineage(
        &self,
        id: JobId,
        lineage: &Lineage,
        restore: Option<&Restore>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(lineage).map_err(|e| {
            StoreError::Database(format!("cannot encode the lineage of job {id}: {e}"))
        })?;
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::LineageJson, Expr::value(json))
            .col_expr(
                job::Column::UpgradeStep,
                Expr::value(lineage.upgrade.as_ref().map(|u| u.step.as_str())),
            )
            .col_expr(job::Column::UpdatedAt, updated_now());
        if lineage
            .upgrade
            .as_ref()
            .is_some_and(|upgrade| upgrade.step == UpgradeStep::Abandoned)
        {
            // An abandoned upgrade replaced nothing: the revision it meant to replace (which
            // may run on) can be upgraded again.
            update = update.col_expr(job::Column::ReplacesJobId, Expr::value(None::<String>));
        }
        if let Some(restore) = restore {
            let mut spec = self.get_job(id).await?.spec;
            spec.set_restore(Some(restore.clone()));
            let spec_json = serde_json::to_string(&spec).map_err(|e| {
                StoreError::Database(format!("cannot encode the spec of job {id}: {e}"))
            })?;
            update = update.col_expr(job::Column::SpecJson, Expr::value(spec_json));
        }
        self.update_job_columns(id, "cannot record the job's upgrade", update)
            .await
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
        // A revision's restore is written into its spec once its savepoint is taken.
        let same_spec = if new_job.lineage.is_some() {
            existing.spec.without_restore() == new_job.spec.without_restore()
        } else {
            existing.spec == new_job.spec
        };
        let same_payload = same_spec && existing.labels == new_job.labels;
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
            savepoints_json: ActiveValue::Set(None),
            owner: ActiveValue::Set(new_job.lease.as_ref().map(|(owner, _)| owner.clone())),
            lease_until: ActiveValue::Set(new_job.lease.as_ref().map(|(_, until)| *until)),
            cancel_request: ActiveValue::Set(None),
            lineage_id: ActiveValue::Set(Some(
                new_job
                    .lineage
                    .as_ref()
                    .map_or(new_job.id, |lineage| lineage.lineage_id)
                    .to_string(),
            )),
            replaces_job_id: ActiveValue::Set(
                new_job
                    .lineage
                    .as_ref()
                    .and_then(|lineage| lineage.upgrade.as_ref())
                    .map(|upgrade| upgrade.previous_job_id.to_string()),
            ),
            upgrade_step: ActiveValue::Set(
                new_job
                    .lineage
                    .as_ref()
                    .and_then(|lineage| lineage.upgrade.as_ref())
                    .map(|upgrade| upgrade.step.as_str().to_owned()),
            ),
            lineage_json: ActiveValue::Set(match &new_job.lineage {
                Some(lineage) => {
                    Some(serde_json::to_string(lineage).map_err(|e| {
                        DbErr::Custom(format!("cannot encode the job's lineage: {e}"))
                    })?)
                }
                None => None,
            }),
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
        if !new_job.labels.is_empty() {
            // ListJobs by label walks these rows (the job reads its labels from labels_json).
            let labels = new_job
                .labels
                .iter()
                .map(|(key, value)| job_label::ActiveModel {
                    job_id: ActiveValue::Set(id.clone()),
                    key: ActiveValue::Set(key.clone()),
                    value: ActiveValue::Set(value.clone()),
                    tenant: ActiveValue::Set(new_job.tenant.clone()),
                    created_at: ActiveValue::Set(new_job.created_at),
                });
            job_label::Entity::insert_many(labels)
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
    let row = job_row(txn, id).await?;
    let current = parse_job_state(&row.id, &row.state)?;
    if current.is_terminal() && current != state {
        return Err(StoreError::TerminalState {
            job_id: id,
            from: current,
            to: state,
        });
    }
    if current == state && row.state_reason == reason {
        return load_job(txn, id).await.map(Some);
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
    if current != state && state.is_terminal() {
        count_ended(txn, &row.kind, state.as_str(), 1)
            .await
            .map_err(db_error("cannot count the ended job"))?;
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
        savepoints: Vec::new(),
        owner: new_job.lease.as_ref().map(|(owner, _)| owner.clone()),
        cancel_request: None,
        statements,
        history: vec![StateTransition {
            state: JobState::Pending,
            reason: CREATED_REASON.to_owned(),
            at: new_job.created_at,
        }],
        lineage: new_job
            .lineage
            .unwrap_or_else(|| Lineage::first(new_job.id)),
    }
}
