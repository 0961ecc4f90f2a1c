//! Leases on SQLite and PostgreSQL: `jobs.owner` and `jobs.lease_until`, changed only by
//! compare-and-set updates, so two replicas can never both take a job; and the cancel
//! requests recorded for a job's driver (`jobs.cancel_request`).

use async_trait::async_trait;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::job;
use super::sea::{db_error, unfinished, without_lease};
use super::{Leases, SeaStore, StoreError};
use flinkbroker_model::job::{JobId, JobState, UnixMillis};

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
        let ids = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(unfinished())
            .filter(without_lease(now))
            .order_by_asc(job::Column::CreatedAt)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(db_error("cannot find jobs to take over"))?;
        parse_ids(ids)
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
            .filter(job::Column::Owner.eq(owner))
            .filter(job::Column::CancelRequest.is_not_null())
            .filter(job::Column::State.is_not_in([
                JobState::Canceling.as_str(),
                JobState::Finished.as_str(),
                JobState::Failed.as_str(),
                JobState::Canceled.as_str(),
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
