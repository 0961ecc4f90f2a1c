//! Creates `jobs`, `job_statements` and `job_state_transitions` with their indexes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Jobs::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Jobs::Kind).text().not_null())
                    .col(ColumnDef::new(Jobs::State).text().not_null())
                    .col(
                        ColumnDef::new(Jobs::StateReason)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .col(ColumnDef::new(Jobs::RequestId).text().null())
                    .col(ColumnDef::new(Jobs::SpecJson).text().not_null())
                    .col(ColumnDef::new(Jobs::LabelsJson).text().not_null())
                    .col(ColumnDef::new(Jobs::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::UpdatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::EndedAt).big_integer().null())
                    .col(ColumnDef::new(Jobs::GatewaySession).text().null())
                    .col(ColumnDef::new(Jobs::FlinkJobId).text().null())
                    .col(ColumnDef::new(Jobs::SubmitterOutput).text().null())
                    .to_owned(),
            )
            .await?;

        // NULLs never collide in a unique index (SQLite and PostgreSQL alike), so jobs
        // submitted without a request id are unconstrained.
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_request_id")
                    .table(Jobs::Table)
                    .col(Jobs::RequestId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // ListJobs walks (created_at, id) newest first, optionally narrowed by state or kind.
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_created_at_id")
                    .table(Jobs::Table)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_state_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_kind_created_at_id")
                    .table(Jobs::Table)
                    .col(Jobs::Kind)
                    .col((Jobs::CreatedAt, IndexOrder::Desc))
                    .col((Jobs::Id, IndexOrder::Desc))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobStatements::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(JobStatements::JobId).text().not_null())
                    .col(ColumnDef::new(JobStatements::Idx).big_integer().not_null())
                    .col(ColumnDef::new(JobStatements::Sql).text().not_null())
                    .col(ColumnDef::new(JobStatements::State).text().not_null())
                    .col(ColumnDef::new(JobStatements::OperationHandle).text().null())
                    .col(ColumnDef::new(JobStatements::FlinkJobId).text().null())
                    .col(ColumnDef::new(JobStatements::Error).text().null())
                    .col(
                        ColumnDef::new(JobStatements::IsQuery)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .primary_key(
                        Index::create()
                            .name("pk_job_statements")
                            .col(JobStatements::JobId)
                            .col(JobStatements::Idx),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_job_statements_job_id")
                            .from(JobStatements::Table, JobStatements::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JobStateTransitions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(JobStateTransitions::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(JobStateTransitions::JobId).text().not_null())
                    .col(ColumnDef::new(JobStateTransitions::State).text().not_null())
                    .col(
                        ColumnDef::new(JobStateTransitions::Reason)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(JobStateTransitions::At)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_job_state_transitions_job_id")
                            .from(JobStateTransitions::Table, JobStateTransitions::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_job_state_transitions_job_id_id")
                    .table(JobStateTransitions::Table)
                    .col(JobStateTransitions::JobId)
                    .col(JobStateTransitions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(JobStateTransitions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(JobStatements::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Jobs::Table).if_exists().to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        // SQLite has transactional DDL too: a failed migration leaves no half-made schema.
        Some(true)
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    State,
    StateReason,
    RequestId,
    SpecJson,
    LabelsJson,
    CreatedAt,
    UpdatedAt,
    EndedAt,
    GatewaySession,
    FlinkJobId,
    SubmitterOutput,
}

#[derive(DeriveIden)]
enum JobStatements {
    Table,
    JobId,
    Idx,
    Sql,
    State,
    OperationHandle,
    FlinkJobId,
    Error,
    IsQuery,
}

#[derive(DeriveIden)]
enum JobStateTransitions {
    Table,
    Id,
    JobId,
    State,
    Reason,
    At,
}
