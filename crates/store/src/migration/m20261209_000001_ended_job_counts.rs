//! `ended_job_counts`: how many jobs of each kind ended in each terminal state, kept by the
//! transaction that ends a job (one more) and by the one that deletes it at retention (one
//! less), so that a metrics scrape reads a few rows instead of counting every ended job. The
//! live jobs, a few, are still counted from their rows. Filled here from the jobs as they are.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// The terminal states as this migration knows them.
const TERMINAL_STATES: [&str; 3] = ["FINISHED", "FAILED", "CANCELED"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EndedJobCounts::Table)
                    .col(ColumnDef::new(EndedJobCounts::Kind).text().not_null())
                    .col(ColumnDef::new(EndedJobCounts::State).text().not_null())
                    .col(
                        ColumnDef::new(EndedJobCounts::Jobs)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(EndedJobCounts::Kind)
                            .col(EndedJobCounts::State),
                    )
                    .to_owned(),
            )
            .await?;
        let counts = Query::select()
            .column(Jobs::Kind)
            .column(Jobs::State)
            .expr(Expr::col(Jobs::Id).count())
            .from(Jobs::Table)
            .and_where(Expr::col(Jobs::State).is_in(TERMINAL_STATES))
            .group_by_col(Jobs::Kind)
            .group_by_col(Jobs::State)
            .to_owned();
        let fill = Query::insert()
            .into_table(EndedJobCounts::Table)
            .columns([
                EndedJobCounts::Kind,
                EndedJobCounts::State,
                EndedJobCounts::Jobs,
            ])
            .select_from(counts)
            .map_err(|e| DbErr::Migration(format!("cannot count the ended jobs: {e}")))?
            .to_owned();
        manager.exec_stmt(fill).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EndedJobCounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EndedJobCounts {
    Table,
    Kind,
    State,
    Jobs,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    State,
}
