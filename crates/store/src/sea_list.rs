//! Job listings on SQLite and PostgreSQL.
//!
//! ListJobs pages by keyset on (created_at, id), newest first; the page token is the
//! URL-safe base64 of `"<created_at>:<id>"` of the last job returned. Label filters run in SQL
//! (`json_each` on SQLite, `jsonb @>` on PostgreSQL), so every page is one bounded query.
//! Unfinished jobs are listed oldest first, for resuming them after a restart.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::job;
use super::sea::{db_error, load_jobs, rollback, unfinished};
use super::{JobFilter, JobPage, SeaStore, StoreError};
use flinkbroker_model::job::{Job, JobId, UnixMillis, UpgradeStep};

/// The page size used when the caller asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page ListJobs returns, whatever the caller asks for.
const MAX_PAGE_SIZE: u32 = 1000;

impl SeaStore {
    /// Lists one page of the jobs `filter` selects, newest first, after `page_token`.
    pub(super) async fn list_page(
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
        if let Some(lineage) = filter.lineage {
            let lineage = lineage.to_string();
            // Rows recorded before revisions have no lineage id: their lineage is their own.
            query = query.filter(
                Condition::any()
                    .add(job::Column::LineageId.eq(lineage.as_str()))
                    .add(
                        Condition::all()
                            .add(job::Column::LineageId.is_null())
                            .add(job::Column::Id.eq(lineage.as_str())),
                    ),
            );
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

    /// Lists every job not in a terminal state, oldest first.
    pub(super) async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_where(unfinished(), "cannot list unfinished jobs")
            .await
    }

    /// The revisions whose upgrade has a step left to take, oldest first.
    pub(super) async fn upgrading_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let steps = [UpgradeStep::StoppingPrevious, UpgradeStep::Starting];
        self.jobs_where(
            Condition::all()
                .add(job::Column::UpgradeStep.is_in(steps.iter().map(UpgradeStep::as_str))),
            "cannot list the upgrades in progress",
        )
        .await
    }

    /// The job that replaced `id`, if any.
    pub(super) async fn successor(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut jobs = self
            .jobs_where(
                Condition::all().add(job::Column::ReplacesJobId.eq(id.to_string())),
                "cannot read the job's successor",
            )
            .await?;
        Ok(jobs.pop())
    }

    /// The jobs matching `condition`, oldest first, read in one transaction.
    async fn jobs_where(
        &self,
        condition: Condition,
        what: &'static str,
    ) -> Result<Vec<Job>, StoreError> {
        let txn = self.begin_read().await?;
        let rows = job::Entity::find()
            .filter(condition)
            .order_by_asc(job::Column::CreatedAt)
            .order_by_asc(job::Column::Id)
            .all(&txn)
            .await
            .map_err(db_error(what));
        let jobs = match rows {
            Ok(rows) => load_jobs(&txn, rows).await,
            Err(error) => Err(error),
        };
        rollback(txn).await?;
        jobs
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
