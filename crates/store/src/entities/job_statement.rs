//! A row of `job_statements`: one statement of a SQL job.

use sea_orm::entity::prelude::*;

/// One statement of a SQL job, keyed by job and position in the script.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_statements")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) job_id: String,
    /// The position in the script, from 0; wide enough for any `u32`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) idx: i64,
    #[sea_orm(column_type = "Text")]
    pub(crate) sql: String,
    /// `StatementState::as_str`.
    #[sea_orm(column_type = "Text")]
    pub(crate) state: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) operation_handle: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) flink_job_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) error: Option<String>,
    pub(crate) is_query: bool,
    /// `StatementKind::as_str`; absent on rows recorded before kinds were stored.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) kind: Option<String>,
    /// Re-runs after a broker restart.
    pub(crate) attempt: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::job::Entity",
        from = "Column::JobId",
        to = "super::job::Column::Id",
        on_delete = "Cascade"
    )]
    Job,
}

impl Related<super::job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Job.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
