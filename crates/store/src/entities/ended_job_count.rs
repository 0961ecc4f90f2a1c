//! A row of `ended_job_counts`: how many jobs of a kind ended in a state and are still kept.

use sea_orm::entity::prelude::*;

/// The ended jobs of one kind in one terminal state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ended_job_counts")]
pub(crate) struct Model {
    /// The jobs' kind (`jobs.kind`).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) kind: String,
    /// The terminal state (`jobs.state`).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) state: String,
    /// How many such jobs the store keeps.
    pub(crate) jobs: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
