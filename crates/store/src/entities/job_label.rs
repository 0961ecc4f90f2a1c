//! A row of `job_labels`: one label of a job, for ListJobs by label.

use sea_orm::entity::prelude::*;

/// One label of a job, with the job's tenant and creation time so that a listing by label
/// walks one index newest first (`jobs.labels_json` holds the labels as the job reads them).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_labels")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) job_id: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) key: String,
    #[sea_orm(column_type = "Text")]
    pub(crate) value: String,
    /// `jobs.tenant` of the job.
    #[sea_orm(column_type = "Text")]
    pub(crate) tenant: String,
    /// `jobs.created_at` of the job.
    pub(crate) created_at: i64,
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
