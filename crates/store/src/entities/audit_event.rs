//! A row of `audit_events`: one audited call.

use sea_orm::entity::prelude::*;

/// One audited call; `id` grows with time, so it orders the trail.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When the call was answered (ms since the epoch).
    pub at: i64,
    #[sea_orm(column_type = "Text")]
    pub principal: String,
    #[sea_orm(column_type = "Text")]
    pub tenant: String,
    /// `AuditAction::as_str`.
    #[sea_orm(column_type = "Text")]
    pub action: String,
    /// The gRPC method called, e.g. `SubmitSql`.
    #[sea_orm(column_type = "Text")]
    pub method: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub job_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub request_id: Option<String>,
    /// The gRPC status code name of the answer (`OK`, `PERMISSION_DENIED`, …).
    #[sea_orm(column_type = "Text")]
    pub outcome: String,
    /// The answer's message for a refusal or failure (empty for OK).
    #[sea_orm(column_type = "Text")]
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
