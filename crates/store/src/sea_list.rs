//! Job listings on SQLite and PostgreSQL.
//!
//! ListJobs pages by keyset on (created_at, id), newest first; the page token is the
//! URL-safe base64 of `"<created_at>:<id>"` of the last job returned. Every page is one
//! statement (jobs with their statements, history and log heads: `sea::read_jobs`) walking
//! one index that stops after the page: `(created_at, id)` behind the state, tenant or kind
//! filtered on, or for a label filter `job_labels` by (key, value, created_at, job_id); jobs
//! in several states are one walk per state, merged.
//! Unfinished jobs are listed oldest first, for resuming them after a restart.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, RelationTrait, Select,
};

use super::entities::{job, job_label};
use super::sea::{read_jobs, unfinished};
use super::{JobFilter, JobPage, SeaStore, StoreError};
use flinkbroker_model::job::{Job, JobId, JobState, UnixMillis, UpgradeStep};

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
        let mut jobs = self
            .page_jobs(filter, after, u64::from(page_size) + 1)
            .await?;
        let has_more = jobs.len() > page_size as usize;
        jobs.truncate(page_size as usize);
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

    /// The jobs matching `condition`, oldest first, read in one statement.
    async fn jobs_where(
        &self,
        condition: Condition,
        what: &'static str,
    ) -> Result<Vec<Job>, StoreError> {
        // One statement: a snapshot of its own.
        let select = job::Entity::find()
            .filter(condition)
            .order_by_asc(job::Column::CreatedAt)
            .order_by_asc(job::Column::Id);
        read_jobs(&self.db, select, None)
            .await
            .map_err(|error| match error {
                StoreError::Database(detail) => StoreError::Database(format!("{what}: {detail}")),
                other => other,
            })
    }

    /// Reads at most `limit` of the jobs `filter` selects after `after`, newest first.
    async fn page_jobs(
        &self,
        filter: &JobFilter,
        after: Option<(UnixMillis, JobId)>,
        limit: u64,
    ) -> Result<Vec<Job>, StoreError> {
        let mut states: Vec<JobState> = filter.states.clone();
        states.sort_by_key(|state| state.as_str());
        states.dedup();
        // One statement, a snapshot of its own, whatever the filter.
        let select = if states.len() > 1 && self.backend() == DbBackend::Postgres {
            // PostgreSQL reads jobs in any of several states newest first either by sorting
            // every job in those states (all the ended ones, say) or by walking every job
            // newest first; which one, it guesses. One walk per state instead, each stopping
            // after a page, merged by the statement. (SQLite walks an IN list this way itself.)
            let mut walks: Option<SelectStatement> = None;
            for (index, state) in states.iter().enumerate() {
                let walk = page_query(filter, std::slice::from_ref(state), after)
                    .select_only()
                    .column(job::Column::Id)
                    .limit(limit)
                    .into_query();
                let walk = Query::select()
                    .column(Alias::new("id"))
                    .from_subquery(walk, Alias::new(format!("walk_{index}")))
                    .to_owned();
                walks = Some(match walks {
                    None => walk,
                    Some(mut walks) => walks.union(UnionType::All, walk).to_owned(),
                });
            }
            let mut select = job::Entity::find();
            if let Some(walks) = walks {
                select = select.filter(job::Column::Id.in_subquery(walks));
            }
            select
                .order_by_desc(job::Column::CreatedAt)
                .order_by_desc(job::Column::Id)
        } else {
            page_query(filter, &states, after)
        };
        read_jobs(&self.db, select, Some(limit)).await
    }
}

/// The jobs `filter` selects in `states` (none: any), after `after`, newest first: a walk of
/// one index that stops after the page. Filtered by labels, the walk is of the first label's
/// rows in `job_labels` (its creation time and job id are the job's), and every other label
/// is looked up by the job's id.
fn page_query(
    filter: &JobFilter,
    states: &[JobState],
    after: Option<(UnixMillis, JobId)>,
) -> Select<job::Entity> {
    let mut query = job::Entity::find();
    match states {
        [] => {}
        [state] => query = query.filter(job::Column::State.eq(state.as_str())),
        states => {
            query = query.filter(job::Column::State.is_in(states.iter().map(JobState::as_str)))
        }
    }
    if let Some(tenant) = &filter.tenant
        && filter.labels.is_empty()
    {
        query = query.filter(job::Column::Tenant.eq(tenant.as_str()));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(job::Column::Kind.eq(kind.as_str()));
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
    let mut labels = filter.labels.iter();
    let (created_at, id) = match labels.next() {
        None => (
            Expr::col((job::Entity, job::Column::CreatedAt)),
            Expr::col((job::Entity, job::Column::Id)),
        ),
        Some((key, value)) => {
            query = query
                .join(JoinType::InnerJoin, job_label::Relation::Job.def().rev())
                .filter(job_label::Column::Key.eq(key.as_str()))
                .filter(job_label::Column::Value.eq(value.as_str()));
            // The label's row holds the job's tenant: filtered there only, so that the
            // planner does not count the same condition twice.
            if let Some(tenant) = &filter.tenant {
                query = query.filter(job_label::Column::Tenant.eq(tenant.as_str()));
            }
            for (key, value) in labels {
                query = query.filter(Expr::exists(label_of_the_job(key, value)));
            }
            (
                Expr::col((job_label::Entity, job_label::Column::CreatedAt)),
                Expr::col((job_label::Entity, job_label::Column::JobId)),
            )
        }
    };
    if let Some((after_created_at, after_id)) = after {
        // A row value, which both databases seek to in the index (an OR of the two
        // comparisons is read from the newest job on).
        query = query.filter(
            Expr::tuple([created_at.clone(), id.clone()]).lt(Expr::tuple([
                Expr::val(after_created_at),
                Expr::val(after_id.to_string()),
            ])),
        );
    }
    query.order_by_desc(created_at).order_by_desc(id)
}

/// `SELECT 1 FROM job_labels AS other_label WHERE` it is the job's label `key` with `value`.
fn label_of_the_job(key: &str, value: &str) -> SelectStatement {
    let other = Alias::new("other_label");
    Query::select()
        .expr(Expr::val(1))
        .from_as(job_label::Entity, other.clone())
        .and_where(
            Expr::col((other.clone(), job_label::Column::JobId))
                .equals((job::Entity, job::Column::Id)),
        )
        .and_where(Expr::col((other.clone(), job_label::Column::Key)).eq(key))
        .and_where(Expr::col((other, job_label::Column::Value)).eq(value))
        .to_owned()
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
