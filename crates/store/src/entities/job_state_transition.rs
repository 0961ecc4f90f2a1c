//! A row of `job_state_transitions`: one entry of a job's history.

use sea_orm::entity::prelude::*;

/// One change of a job's state; `id` grows with time, so it orders the history.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_state_transitions")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub(crate) id: i64,
    #[sea_orm(column_type = "Text")]
    pub(crate) job_id: String,
    /// `JobState::as_str`.
    #[sea_orm(column_type = "Text")]
    pub(crate) state: String,
    #[sea_orm(column_type = "Text")]
    pub(crate) reason: String,
    pub(crate) at: i64,
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
