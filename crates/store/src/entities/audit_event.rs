//! A row of `audit_events`: one audited call.

use sea_orm::entity::prelude::*;

/// One audited call; `id` grows with time, so it orders the trail.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub(crate) id: i64,
    /// When the call was answered (ms since the epoch).
    pub(crate) at: i64,
    #[sea_orm(column_type = "Text")]
    pub(crate) principal: String,
    #[sea_orm(column_type = "Text")]
    pub(crate) tenant: String,
    /// `AuditAction::as_str`.
    #[sea_orm(column_type = "Text")]
    pub(crate) action: String,
    /// The gRPC method called, e.g. `SubmitSql`.
    #[sea_orm(column_type = "Text")]
    pub(crate) method: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) job_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) request_id: Option<String>,
    /// The gRPC status code name of the answer (`OK`, `PERMISSION_DENIED`, …).
    #[sea_orm(column_type = "Text")]
    pub(crate) outcome: String,
    /// The answer's message for a refusal or failure (empty for OK).
    #[sea_orm(column_type = "Text")]
    pub(crate) detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
