//! Revisions of a streaming job (UpgradeJob): the lineage every revision shares, the revision
//! each one replaces (unique, so that two upgrades of one revision cannot both be recorded),
//! where its upgrade is (to finish upgrades after a restart), and the revision's lineage as
//! JSON (its number, the savepoint chain and the upgrade).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Jobs::LineageId).text().null().to_owned(),
            ColumnDef::new(Jobs::ReplacesJobId).text().null().to_owned(),
            ColumnDef::new(Jobs::UpgradeStep).text().null().to_owned(),
            ColumnDef::new(Jobs::LineageJson).text().null().to_owned(),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("jobs_replaces_job_id")
                    .table(Jobs::Table)
                    .col(Jobs::ReplacesJobId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_lineage_id")
                    .table(Jobs::Table)
                    .col(Jobs::LineageId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_upgrade_step")
                    .table(Jobs::Table)
                    .col(Jobs::UpgradeStep)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in [
            "jobs_replaces_job_id",
            "jobs_lineage_id",
            "jobs_upgrade_step",
        ] {
            manager
                .drop_index(Index::drop().name(index).table(Jobs::Table).to_owned())
                .await?;
        }
        for column in [
            Jobs::LineageId,
            Jobs::ReplacesJobId,
            Jobs::UpgradeStep,
            Jobs::LineageJson,
        ] {
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
    LineageId,
    ReplacesJobId,
    UpgradeStep,
    LineageJson,
}
