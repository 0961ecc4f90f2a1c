//! Aggregate reads on SQLite and PostgreSQL, each from one snapshot: what a tenant's jobs
//! hold now (for its quotas), and the job counts the metrics read at each scrape.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use super::entities::{ended_job_count, job, result_log};
use super::sea::{db_error, rollback, unfinished, without_lease};
use super::{JobGroup, JobMetrics, SeaStore, StoreError, TenantUsage};
use flinkbroker_model::job::{JobKind, JobSpec, JobState, UnixMillis};

impl SeaStore {
    /// Sums what a tenant's jobs hold now: live jobs, live Python parallelism, result-log
    /// bytes.
    pub(super) async fn usage_of(&self, tenant: &str) -> Result<TenantUsage, StoreError> {
        let txn = self.begin_read().await?;
        let usage = async {
            // Counted, not read: a submission's check costs the same however many live SQL
            // jobs the tenant has. Only live Python jobs' specs are read, for their parallelism.
            let live_jobs = job::Entity::find()
                .filter(job::Column::Tenant.eq(tenant))
                .filter(unfinished())
                .count(&txn)
                .await
                .map_err(db_error("cannot count a tenant's live jobs"))?;
            let python_specs = job::Entity::find()
                .select_only()
                .column(job::Column::SpecJson)
                .filter(job::Column::Tenant.eq(tenant))
                .filter(job::Column::Kind.eq(JobKind::Python.as_str()))
                .filter(unfinished())
                .into_tuple::<String>()
                .all(&txn)
                .await
                .map_err(db_error("cannot read a tenant's live python jobs"))?;
            let mut usage = TenantUsage {
                live_jobs,
                ..TenantUsage::default()
            };
            for spec in python_specs {
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

    /// Counts jobs by kind and state, the live jobs without a lease as of `now`, and the
    /// largest open result log.
    pub(super) async fn metrics_at(&self, now: UnixMillis) -> Result<JobMetrics, StoreError> {
        let txn = self.begin_read().await?;
        let metrics = async {
            // The live jobs (a few, by the live states) counted from their rows, with their
            // oldest change; the ended ones read from `ended_job_counts`, which the
            // transactions that end and delete jobs keep, instead of counted at each scrape.
            let live = job::Entity::find()
                .select_only()
                .column(job::Column::Kind)
                .column(job::Column::State)
                .expr(Expr::cust("CAST(COUNT(*) AS BIGINT)"))
                .expr(Expr::cust(r#"MIN("jobs"."updated_at")"#))
                .filter(unfinished())
                .group_by(job::Column::Kind)
                .group_by(job::Column::State)
                .into_tuple::<(String, String, i64, i64)>()
                .all(&txn)
                .await
                .map_err(db_error("cannot count the live jobs by kind and state"))?;
            let ended = ended_job_count::Entity::find()
                .filter(ended_job_count::Column::Jobs.gt(0))
                .all(&txn)
                .await
                .map_err(db_error("cannot read the ended jobs' counts"))?;
            let counts = live
                .into_iter()
                .map(|(kind, state, jobs, oldest)| (kind, state, jobs, Some(oldest)))
                .chain(
                    ended
                        .into_iter()
                        .map(|count| (count.kind, count.state, count.jobs, None)),
                );
            let mut by_kind_and_state = Vec::new();
            for (kind, state, jobs, oldest_change) in counts {
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
            by_kind_and_state.sort_by_key(|group| (group.kind.as_str(), group.state.as_str()));
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
                // The open logs alone, by `idx_result_logs_open`.
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
}
