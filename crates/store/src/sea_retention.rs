//! Retention of ended jobs on SQLite and PostgreSQL: the oldest ended jobs, a batch at a time,
//! deleted with everything recorded under them (statements, history, labels, result logs and
//! their batches) in one transaction per batch. Audit events stay: they have a retention of
//! their own and name the job by id only.
//!
//! A revision another one replaces (`jobs.replaces_job_id`) stays while that successor is live
//! or its upgrade has a step left: the successor's driver reads it (to wait for its stop, or
//! to roll back to its spec). A revision whose own upgrade has a step left stays too (the
//! upgrade is resumed after a restart).

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{
    job, job_label, job_state_transition, job_statement, result_batch, result_log,
};
use super::sea::{commit, count_ended, db_error, live_states, rollback, terminal_states};
use super::{SeaStore, StoreError};
use flinkbroker_model::job::{UnixMillis, UpgradeStep};

/// The upgrade steps a revision still has to take.
const STEPS_LEFT: [UpgradeStep; 2] = [UpgradeStep::StoppingPrevious, UpgradeStep::Starting];

impl SeaStore {
    /// Deletes at most `limit` jobs that ended before `ended_before`, oldest first, in one
    /// transaction; returns how many were deleted.
    pub(super) async fn expire_ended_jobs(
        &self,
        ended_before: UnixMillis,
        limit: u64,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let txn = self.begin_write().await?;
        match delete_expired(&txn, ended_before, limit).await {
            Ok(deleted) => {
                commit(txn).await?;
                Ok(deleted)
            }
            Err(error) => {
                rollback(txn).await?;
                Err(db_error("cannot delete expired jobs")(error))
            }
        }
    }
}

/// Picks the expired jobs and deletes their rows, children first.
async fn delete_expired(
    txn: &DatabaseTransaction,
    ended_before: UnixMillis,
    limit: u64,
) -> Result<u64, DbErr> {
    // Walks the index on ended_at, oldest first, and stops after the batch: only a terminal
    // transition sets ended_at, and the state is checked below rather than in SQL, where
    // SQLite would rather read every ended job through the state index and sort them.
    let mut candidates = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::State, job::Column::Kind])
        .filter(job::Column::EndedAt.lt(ended_before))
        .filter(
            Condition::any()
                .add(job::Column::UpgradeStep.is_null())
                .add(job::Column::UpgradeStep.is_not_in(STEPS_LEFT.map(|step| step.as_str()))),
        )
        .filter(Expr::not_exists(successor_needing_it()))
        .order_by_asc(job::Column::EndedAt)
        .order_by_asc(job::Column::Id)
        .limit(limit);
    if txn.get_database_backend() == DbBackend::Postgres {
        // The janitors of other replicas take the next jobs instead of waiting for these.
        candidates = candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let candidates: Vec<(String, String, String)> = candidates.into_tuple().all(txn).await?;
    let terminal = terminal_states();
    let mut ended: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut ids: Vec<String> = Vec::new();
    for (id, state, kind) in candidates {
        if terminal.contains(&state.as_str()) {
            *ended.entry((kind, state)).or_default() += 1;
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let ids = || ids.iter().map(String::as_str);
    result_batch::Entity::delete_many()
        .filter(result_batch::Column::JobId.is_in(ids()))
        .exec(txn)
        .await?;
    result_log::Entity::delete_many()
        .filter(result_log::Column::JobId.is_in(ids()))
        .exec(txn)
        .await?;
    job_statement::Entity::delete_many()
        .filter(job_statement::Column::JobId.is_in(ids()))
        .exec(txn)
        .await?;
    job_state_transition::Entity::delete_many()
        .filter(job_state_transition::Column::JobId.is_in(ids()))
        .exec(txn)
        .await?;
    job_label::Entity::delete_many()
        .filter(job_label::Column::JobId.is_in(ids()))
        .exec(txn)
        .await?;
    let deleted = job::Entity::delete_many()
        .filter(job::Column::Id.is_in(ids()))
        .filter(job::Column::State.is_in(terminal_states()))
        .exec(txn)
        .await?;
    // The rows read above are these (locked on PostgreSQL, under the write lock on SQLite),
    // and an ended job never changes state: each counted once less.
    for ((kind, state), jobs) in ended {
        count_ended(txn, &kind, &state, -jobs).await?;
    }
    Ok(deleted.rows_affected)
}

/// `SELECT 1 FROM jobs AS successor WHERE successor.replaces_job_id = jobs.id AND (it is
/// live OR its upgrade has a step left)`.
fn successor_needing_it() -> sea_orm::sea_query::SelectStatement {
    let successor = Alias::new("successor");
    Query::select()
        .expr(Expr::val(1))
        .from_as(job::Entity, successor.clone())
        .and_where(
            Expr::col((successor.clone(), job::Column::ReplacesJobId))
                .equals((job::Entity, job::Column::Id)),
        )
        .cond_where(
            Condition::any()
                .add(Expr::col((successor.clone(), job::Column::State)).is_in(live_states()))
                .add(
                    Expr::col((successor, job::Column::UpgradeStep))
                        .is_in(STEPS_LEFT.map(|step| step.as_str())),
                ),
        )
        .to_owned()
}
