//! Leases on SQLite and PostgreSQL: `jobs.owner` and `jobs.lease_until`, changed only by
//! compare-and-set updates, so two replicas can never both take a job; the replicas'
//! heartbeats (`replicas`), from which each replica computes its fair share of the live jobs;
//! and the cancel requests recorded for a job's driver (`jobs.cancel_request`).
//!
//! A lease handed over (or given up by a stopping replica) ends at the time it was given up,
//! not at 0: how long a job has gone unclaimed is `now - lease_until`, which tells a job
//! waiting for a replica under its share from one nobody took up for a whole lease.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{job, replica};
use super::sea::{commit, db_error, limited_tuples, rollback, unfinished, without_lease};
use super::{Census, Leases, SeaStore, StoreError};
use flinkbroker_model::job::{JobId, JobState, UnixMillis};

/// Commits `txn` when `outcome` is a success, else rolls it back; returns the outcome.
async fn finish<T>(
    txn: DatabaseTransaction,
    outcome: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match outcome {
        Ok(value) => {
            commit(txn).await?;
            Ok(value)
        }
        Err(error) => {
            rollback(txn).await?;
            Err(error)
        }
    }
}

/// The ids of the unfinished jobs whose lease `owner` holds at `now`.
async fn held_at<C: ConnectionTrait>(
    conn: &C,
    owner: &str,
    now: UnixMillis,
) -> Result<Vec<String>, StoreError> {
    job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::Owner.eq(owner))
        .filter(unfinished())
        .filter(job::Column::LeaseUntil.gt(now))
        .into_tuple::<String>()
        .all(conn)
        .await
        .map_err(db_error("cannot read the leases"))
}

fn parse_ids(ids: Vec<String>) -> Result<Vec<JobId>, StoreError> {
    ids.into_iter()
        .map(|id| {
            id.parse().map_err(|e| StoreError::Corrupt {
                job_id: id.clone(),
                detail: format!("id is not a uuid: {e}"),
            })
        })
        .collect()
}

#[async_trait]
impl Leases for SeaStore {
    async fn claim(
        &self,
        id: JobId,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<bool, StoreError> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::Owner, Expr::value(owner))
            .col_expr(job::Column::LeaseUntil, Expr::value(until))
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(unfinished())
            .filter(
                Condition::any()
                    .add(job::Column::Owner.is_null())
                    .add(job::Column::Owner.eq(owner))
                    .add(job::Column::LeaseUntil.is_null())
                    .add(job::Column::LeaseUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(db_error("cannot claim the job's lease"))?;
        Ok(result.rows_affected == 1)
    }

    async fn renew(&self, owner: &str, until: UnixMillis) -> Result<Vec<JobId>, StoreError> {
        job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Expr::value(until))
            .filter(job::Column::Owner.eq(owner))
            .filter(unfinished())
            .exec(&self.db)
            .await
            .map_err(db_error("cannot renew the leases"))?;
        let ids = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::Owner.eq(owner))
            .filter(unfinished())
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(db_error("cannot read the leases"))?;
        parse_ids(ids)
    }

    async fn claimable(&self, now: UnixMillis, limit: u64) -> Result<Vec<JobId>, StoreError> {
        let oldest_first = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(unfinished())
            .filter(without_lease(now))
            .order_by_asc(job::Column::CreatedAt);
        let ids: Vec<(String,)> = limited_tuples(&self.db, oldest_first, limit)
            .await
            .map_err(db_error("cannot find jobs to take over"))?;
        parse_ids(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Expr::value(0i64))
            .filter(job::Column::Owner.eq(owner))
            .filter(unfinished())
            .exec(&self.db)
            .await
            .map_err(db_error("cannot release the leases"))?;
        Ok(())
    }

    async fn extend(
        &self,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<JobId>, StoreError> {
        let txn = self.begin_write().await?;
        let extended = async {
            job::Entity::update_many()
                .col_expr(job::Column::LeaseUntil, Expr::value(until))
                .filter(job::Column::Owner.eq(owner))
                .filter(unfinished())
                .filter(job::Column::LeaseUntil.gt(now))
                .exec(&txn)
                .await
                .map_err(db_error("cannot extend the leases"))?;
            held_at(&txn, owner, now).await
        }
        .await;
        parse_ids(finish(txn, extended).await?)
    }

    async fn held(&self, owner: &str, now: UnixMillis) -> Result<Vec<JobId>, StoreError> {
        parse_ids(held_at(&self.db, owner, now).await?)
    }

    async fn hand_over(&self, id: JobId, owner: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::LeaseUntil, Expr::value(now))
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::Owner.eq(owner))
            .filter(unfinished())
            .filter(job::Column::LeaseUntil.gt(now))
            .exec(&self.db)
            .await
            .map_err(db_error("cannot hand the job's lease over"))?;
        Ok(result.rows_affected == 1)
    }

    async fn heartbeat(
        &self,
        replica: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let beaten = async {
            replica::Entity::insert(replica::ActiveModel {
                id: ActiveValue::Set(replica.to_owned()),
                alive_until: ActiveValue::Set(until),
            })
            .on_conflict(
                OnConflict::column(replica::Column::Id)
                    .update_column(replica::Column::AliveUntil)
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_error("cannot record the replica's heartbeat"))?;
            replica::Entity::delete_many()
                .filter(replica::Column::AliveUntil.lt(now))
                .filter(replica::Column::Id.ne(replica))
                .exec(&txn)
                .await
                .map_err(db_error("cannot forget replicas whose heartbeat ran out"))?;
            Ok(())
        }
        .await;
        finish(txn, beaten).await
    }

    async fn census(&self, now: UnixMillis) -> Result<Census, StoreError> {
        let txn = self.begin_read().await?;
        let census = async {
            let replicas = replica::Entity::find()
                .select_only()
                .column(replica::Column::Id)
                .filter(replica::Column::AliveUntil.gte(now))
                .order_by_asc(replica::Column::Id)
                .into_tuple::<String>()
                .all(&txn)
                .await
                .map_err(db_error("cannot read the replicas"))?;
            let unfinished_jobs = job::Entity::find()
                .filter(unfinished())
                .count(&txn)
                .await
                .map_err(db_error("cannot count the unfinished jobs"))?;
            let unclaimed_jobs = job::Entity::find()
                .filter(unfinished())
                .filter(without_lease(now))
                .count(&txn)
                .await
                .map_err(db_error("cannot count the jobs without a lease"))?;
            Ok(Census {
                replicas,
                unfinished_jobs,
                unclaimed_jobs,
            })
        }
        .await;
        rollback(txn).await?;
        census
    }

    async fn leave(
        &self,
        replica: &str,
        now: UnixMillis,
        still_driven: &[JobId],
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let left = async {
            replica::Entity::delete_by_id(replica.to_owned())
                .exec(&txn)
                .await
                .map_err(db_error("cannot forget the replica"))?;
            job::Entity::update_many()
                .col_expr(job::Column::LeaseUntil, Expr::value(now))
                .filter(job::Column::Owner.eq(replica))
                .filter(unfinished())
                .filter(job::Column::LeaseUntil.gt(now))
                .filter(job::Column::Id.is_not_in(still_driven.iter().map(ToString::to_string)))
                .exec(&txn)
                .await
                .map_err(db_error("cannot give the leases up"))?;
            Ok(())
        }
        .await;
        finish(txn, left).await
    }

    async fn request_cancel(&self, id: JobId, request: &str) -> Result<(), StoreError> {
        let result = job::Entity::update_many()
            .col_expr(job::Column::CancelRequest, Expr::value(request))
            .filter(job::Column::Id.eq(id.to_string()))
            .filter(job::Column::CancelRequest.is_null())
            .exec(&self.db)
            .await
            .map_err(db_error("cannot record the cancel"))?;
        if result.rows_affected == 0 {
            // Recorded before, or no such job: the caller reads the job either way.
            let exists = job::Entity::find_by_id(id.to_string())
                .one(&self.db)
                .await
                .map_err(db_error("cannot read the job"))?
                .is_some();
            if !exists {
                return Err(StoreError::JobNotFound(id));
            }
        }
        Ok(())
    }

    async fn cancel_requests(&self, owner: &str) -> Result<Vec<(JobId, String)>, StoreError> {
        let rows = job::Entity::find()
            .select_only()
            .columns([job::Column::Id, job::Column::CancelRequest])
            // The few jobs with a recorded cancel, by `idx_jobs_cancel_requested`.
            .filter(job::Column::Owner.eq(owner))
            .filter(job::Column::CancelRequest.is_not_null())
            // The states named (not "neither canceling nor ended"), so that the owner's jobs
            // are found through (owner, state) and not among all it ever drove.
            .filter(job::Column::State.is_in([
                JobState::Pending.as_str(),
                JobState::Submitting.as_str(),
                JobState::Running.as_str(),
            ]))
            .into_tuple::<(String, Option<String>)>()
            .all(&self.db)
            .await
            .map_err(db_error("cannot read recorded cancels"))?;
        let mut requests = Vec::with_capacity(rows.len());
        for (id, request) in rows {
            let parsed = parse_ids(vec![id])?;
            if let (Some(id), Some(request)) = (parsed.into_iter().next(), request) {
                requests.push((id, request));
            }
        }
        Ok(requests)
    }
}
