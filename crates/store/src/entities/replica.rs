//! A row of `replicas`: one replica sharing the database, and until when it is alive.

use sea_orm::entity::prelude::*;

/// One replica's heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "replicas")]
pub(crate) struct Model {
    /// The replica's id (`--replica-id`), as in the job leases.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) id: String,
    /// Until when the replica counts as alive unless it beats again (ms since the epoch).
    pub(crate) alive_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
