//! When each result log was opened for its attempt, so that a query's `max_duration` counts
//! from the start of its drain across restarts and takeovers, not from each resumption.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ResultLogs::Table)
                    .add_column(ColumnDef::new(ResultLogs::OpenedAt).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ResultLogs::Table)
                    .drop_column(ResultLogs::OpenedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ResultLogs {
    Table,
    OpenedAt,
}
