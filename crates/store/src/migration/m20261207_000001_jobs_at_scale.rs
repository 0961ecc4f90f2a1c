//! The job store at scale (100 000 ended jobs beside the live ones): every hot query walks an
//! index instead of the whole `jobs` table.
//!
//! - `job_labels`: one row per label of a job, with the job's tenant and creation time, so
//!   that ListJobs by a label walks `(key, value, created_at DESC, job_id DESC)` newest first
//!   and stops after a page, instead of parsing the JSON labels of every job (`json_each` on
//!   SQLite, a `jsonb` cast per row on PostgreSQL). Filled from `jobs.labels_json` here; the
//!   labels of a job never change after it is recorded.
//! - `idx_jobs_tenant_created_at_id`, `idx_jobs_tenant_state_created_at_id`: ListJobs of a
//!   caller that is not an administrator always names its tenant, with or without states.
//! - `idx_jobs_owner_state`: a replica renews, releases and looks for recorded cancels of the
//!   live jobs it owns several times a second; its ended jobs keep its name.
//! - `idx_jobs_live_created_at_id`, partial (live jobs only): the live jobs oldest first
//!   (claimable leases, the unfinished jobs, their count), without walking past the ended ones
//!   (PostgreSQL otherwise walks `created_at` from the oldest job, ended ones included).
//! - PostgreSQL: extended statistics on `job_labels (tenant, key, value)`, whose values go
//!   together (a team label belongs to one tenant): without them the planner multiplies their
//!   selectivities, expects a handful of rows, and sorts every match instead of walking the
//!   index newest first.
//!
//! The index on `jobs.ended_at` (`m20261201`) serves the retention of ended jobs and logs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use flinkbroker_model::job::JobState;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobLabels::Table)
                    .col(ColumnDef::new(JobLabels::JobId).text().not_null())
                    .col(ColumnDef::new(JobLabels::Key).text().not_null())
                    .col(ColumnDef::new(JobLabels::Value).text().not_null())
                    .col(ColumnDef::new(JobLabels::Tenant).text().not_null())
                    .col(
                        ColumnDef::new(JobLabels::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("pk_job_labels")
                            .col(JobLabels::JobId)
                            .col(JobLabels::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_job_labels_job_id")
                            .from(JobLabels::Table, JobLabels::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Filled before its indexes are built: one sort per index instead of a b-tree insert
        // per row.
        let backfill = match manager.get_database_backend() {
            DbBackend::Postgres => {
                r#"INSERT INTO "job_labels" ("job_id", "key", "value", "tenant", "created_at")
                   SELECT "jobs"."id", "label"."key", "label"."value", "jobs"."tenant", "jobs"."created_at"
                   FROM "jobs" CROSS JOIN LATERAL jsonb_each_text(CAST("jobs"."labels_json" AS jsonb)) AS "label""#
            }
            _ => {
                r#"INSERT INTO "job_labels" ("job_id", "key", "value", "tenant", "created_at")
                   SELECT "jobs"."id", "label"."key", "label"."value", "jobs"."tenant", "jobs"."created_at"
                   FROM "jobs", json_each("jobs"."labels_json") AS "label""#
            }
        };
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_job_labels_key_value_created_at")
                    .table(JobLabels::Table)
                    .col(JobLabels::Key)
                    .col(JobLabels::Value)
                    .col((JobLabels::CreatedAt, IndexOrder::Desc))
                    .col((JobLabels::JobId, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_job_labels_tenant_key_value_created_at")
                    .table(JobLabels::Table)
                    .col(JobLabels::Tenant)
                    .col(JobLabels::Key)
                    .col(JobLabels::Value)
                    .col((JobLabels::CreatedAt, IndexOrder::Desc))
                    .col((JobLabels::JobId, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_tenant_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::Tenant)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_tenant_state_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::Tenant)
                    .col(Jobs::State)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_owner_state")
                    .table(Jobs::Table)
                    .col(Jobs::Owner)
                    .col(Jobs::State)
                    .to_owned(),
            )
            .await?;
        // The same list, in the same order, as the store's queries of the unfinished jobs
        // (`sea::live_states`): both databases use a partial index only for a query whose
        // condition implies the index's.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_live_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::CreatedAt)
                    .col(Jobs::Id)
                    .and_where(Expr::col(Jobs::State).is_in([
                        JobState::Pending.as_str(),
                        JobState::Submitting.as_str(),
                        JobState::Running.as_str(),
                        JobState::Canceling.as_str(),
                    ]))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let connection = manager.get_connection();
            connection
                .execute_unprepared(
                    r#"CREATE STATISTICS "job_labels_tenant_key_value" (dependencies, mcv) ON "tenant", "key", "value" FROM "job_labels""#,
                )
                .await?;
            // The planner's statistics of the new table, before autovacuum gets to it.
            connection
                .execute_unprepared(r#"ANALYZE "job_labels""#)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in [
            "idx_jobs_tenant_created_at_id",
            "idx_jobs_tenant_state_created_at_id",
            "idx_jobs_owner_state",
            "idx_jobs_live_created_at_id",
        ] {
            manager
                .drop_index(Index::drop().name(index).table(Jobs::Table).to_owned())
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(r#"DROP STATISTICS IF EXISTS "job_labels_tenant_key_value""#)
                .await?;
        }
        manager
            .drop_table(Table::drop().table(JobLabels::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Tenant,
    State,
    CreatedAt,
    Owner,
}

#[derive(DeriveIden)]
enum JobLabels {
    Table,
    JobId,
    Key,
    Value,
    Tenant,
    CreatedAt,
}
