//! The durable result log (one head per query statement, its rows in encoded batches) and the
//! lease by which one replica drives each live job.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ResultLogs::Table)
                    .col(ColumnDef::new(ResultLogs::JobId).text().not_null())
                    .col(ColumnDef::new(ResultLogs::Idx).big_integer().not_null())
                    .col(ColumnDef::new(ResultLogs::Attempt).big_integer().not_null())
                    .col(ColumnDef::new(ResultLogs::Schema).blob().not_null())
                    .col(
                        ColumnDef::new(ResultLogs::RowsLogged)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ResultLogs::EarliestRow)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ResultLogs::BytesHeld)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ResultLogs::BytesLogged)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ResultLogs::NextToken).big_integer().null())
                    .col(ColumnDef::new(ResultLogs::FetchSent).big_integer().null())
                    .col(ColumnDef::new(ResultLogs::EndReason).text().null())
                    .col(
                        ColumnDef::new(ResultLogs::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ResultLogs::DeletedAt).big_integer().null())
                    .primary_key(Index::create().col(ResultLogs::JobId).col(ResultLogs::Idx))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ResultLogs::Table, ResultLogs::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ResultBatches::Table)
                    .col(ColumnDef::new(ResultBatches::JobId).text().not_null())
                    .col(ColumnDef::new(ResultBatches::Idx).big_integer().not_null())
                    .col(
                        ColumnDef::new(ResultBatches::EndRow)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ResultBatches::FirstRow)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ResultBatches::Bytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ResultBatches::Data).blob().not_null())
                    .primary_key(
                        Index::create()
                            .col(ResultBatches::JobId)
                            .col(ResultBatches::Idx)
                            .col(ResultBatches::EndRow),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ResultBatches::Table, ResultBatches::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite takes one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Jobs::Owner).text().null().to_owned(),
            ColumnDef::new(Jobs::LeaseUntil)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Jobs::CancelRequest).text().null().to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("jobs_ended_at")
                    .table(Jobs::Table)
                    .col(Jobs::EndedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("jobs_ended_at")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Jobs::CancelRequest, Jobs::LeaseUntil, Jobs::Owner] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ResultBatches::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ResultLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    EndedAt,
    Owner,
    LeaseUntil,
    CancelRequest,
}

#[derive(DeriveIden)]
enum ResultLogs {
    Table,
    JobId,
    Idx,
    Attempt,
    Schema,
    RowsLogged,
    EarliestRow,
    BytesHeld,
    BytesLogged,
    NextToken,
    FetchSent,
    EndReason,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum ResultBatches {
    Table,
    JobId,
    Idx,
    EndRow,
    FirstRow,
    Bytes,
    Data,
}
