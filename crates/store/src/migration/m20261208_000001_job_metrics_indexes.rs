//! What a metrics scrape and a replica's rounds read, without reading every job:
//!
//! - `idx_jobs_kind_state`: the jobs counted by kind and state, the ended ones too. With this
//!   index the count of ended jobs reads the index alone, in its order, instead of every row
//!   of `jobs` (specs and all); the live jobs' oldest change is read from their rows, which
//!   the live states narrow to a few. It leads with the kind so that no query filtering by
//!   state alone takes it: ListJobs by states walks `idx_jobs_state_created_at_id` (or the
//!   creation order) and stops after a page, where an index leading with the state tempted
//!   SQLite to read every ended job in those states and sort them.
//! - `idx_result_logs_open`, partial: the largest open result log among the live jobs, from
//!   the open logs alone instead of every log ever kept.
//! - `idx_jobs_cancel_requested`, partial: the cancels recorded for a replica's jobs, which it
//!   looks for every `--replica-poll-interval`, from the few jobs with a recorded cancel
//!   instead of every live job it drives.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_kind_state")
                    .table(Jobs::Table)
                    .col(Jobs::Kind)
                    .col(Jobs::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_result_logs_open")
                    .table(ResultLogs::Table)
                    .col(ResultLogs::JobId)
                    .and_where(Expr::col(ResultLogs::EndReason).is_null())
                    .and_where(Expr::col(ResultLogs::DeletedAt).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_cancel_requested")
                    .table(Jobs::Table)
                    .col(Jobs::Owner)
                    .and_where(Expr::col(Jobs::CancelRequest).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let indexes = [
            Index::drop()
                .name("idx_jobs_cancel_requested")
                .table(Jobs::Table)
                .to_owned(),
            Index::drop()
                .name("idx_result_logs_open")
                .table(ResultLogs::Table)
                .to_owned(),
            Index::drop()
                .name("idx_jobs_kind_state")
                .table(Jobs::Table)
                .to_owned(),
        ];
        for index in indexes {
            manager.drop_index(index).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    State,
    Kind,
    Owner,
    CancelRequest,
}

#[derive(DeriveIden)]
enum ResultLogs {
    Table,
    JobId,
    EndReason,
    DeletedAt,
}
