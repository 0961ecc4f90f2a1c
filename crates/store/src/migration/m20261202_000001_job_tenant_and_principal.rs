//! Every job records the tenant it belongs to and the principal that submitted it; request ids
//! are unique per tenant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Jobs recorded before authentication existed belong to the anonymous caller.
        for column in [
            ColumnDef::new(Jobs::Tenant)
                .text()
                .not_null()
                .default("default")
                .to_owned(),
            ColumnDef::new(Jobs::Principal)
                .text()
                .not_null()
                .default("anonymous")
                .to_owned(),
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
            .drop_index(
                Index::drop()
                    .name("ux_jobs_request_id")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_tenant_request_id")
                    .table(Jobs::Table)
                    .col(Jobs::Tenant)
                    .col(Jobs::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_jobs_tenant_request_id")
                    .table(Jobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_request_id")
                    .table(Jobs::Table)
                    .col(Jobs::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for column in [Jobs::Principal, Jobs::Tenant] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    RequestId,
    Tenant,
    Principal,
}
