//! The audit trail: one row per submission, cancellation, result read and refused call,
//! appended and never changed (the janitor deletes rows older than the audit retention).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditEvents::At).big_integer().not_null())
                    .col(ColumnDef::new(AuditEvents::Principal).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Tenant).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Action).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Method).text().not_null())
                    .col(ColumnDef::new(AuditEvents::JobId).text().null())
                    .col(ColumnDef::new(AuditEvents::RequestId).text().null())
                    .col(ColumnDef::new(AuditEvents::Outcome).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Detail).text().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ix_audit_events_at", vec![AuditEvents::At]),
            (
                "ix_audit_events_tenant_id",
                vec![AuditEvents::Tenant, AuditEvents::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditEvents::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Principal,
    Tenant,
    Action,
    Method,
    JobId,
    RequestId,
    Outcome,
    Detail,
}
