//! The replicas that share the database: each one's heartbeat (alive until a time), from which
//! every replica computes its fair share of the live jobs. (The leases' reads by owner use
//! `idx_jobs_owner_state`.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Replicas::Table)
                    .col(ColumnDef::new(Replicas::Id).text().not_null().primary_key())
                    .col(
                        ColumnDef::new(Replicas::AliveUntil)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Replicas::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    Id,
    AliveUntil,
}
