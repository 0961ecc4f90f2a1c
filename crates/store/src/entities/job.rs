//! A row of `jobs`: one recorded job.

use sea_orm::entity::prelude::*;

/// A recorded job; enums are stored by name, the spec and labels as JSON text.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub(crate) struct Model {
    /// The job id, a hyphenated lowercase UUID.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) id: String,
    /// `JobKind::as_str`.
    #[sea_orm(column_type = "Text")]
    pub(crate) kind: String,
    /// `JobState::as_str`.
    #[sea_orm(column_type = "Text")]
    pub(crate) state: String,
    #[sea_orm(column_type = "Text")]
    pub(crate) state_reason: String,
    /// Unique per tenant when present.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) request_id: Option<String>,
    /// The tenant the job belongs to.
    #[sea_orm(column_type = "Text")]
    pub(crate) tenant: String,
    /// The principal that submitted the job.
    #[sea_orm(column_type = "Text")]
    pub(crate) principal: String,
    /// `JobSpec` as JSON.
    #[sea_orm(column_type = "Text")]
    pub(crate) spec_json: String,
    /// The labels as a JSON object of strings.
    #[sea_orm(column_type = "Text")]
    pub(crate) labels_json: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) ended_at: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) gateway_session: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) flink_job_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) submitter_output: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) savepoint_path: Option<String>,
    /// Every savepoint of the job's Flink jobs, as a JSON list of `SavepointRecord`.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) savepoints_json: Option<String>,
    /// The replica driving the job (its lease), and until when (ms since the epoch).
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) owner: Option<String>,
    pub(crate) lease_until: Option<i64>,
    /// A CancelJob recorded for the job's driver, as `CancelRequest` JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) cancel_request: Option<String>,
    /// The id every revision of the job shares (NULL in rows recorded before revisions: the
    /// job's own id).
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) lineage_id: Option<String>,
    /// The revision this one replaces (unique: a revision is replaced at most once).
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) replaces_job_id: Option<String>,
    /// `UpgradeStep::as_str` of the upgrade that made this revision.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) upgrade_step: Option<String>,
    /// `Lineage` as JSON (NULL: revision 1 of its own lineage).
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) lineage_json: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(has_many = "super::job_statement::Entity")]
    Statements,
    #[sea_orm(has_many = "super::job_state_transition::Entity")]
    StateTransitions,
}

impl Related<super::job_statement::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Statements.def()
    }
}

impl Related<super::job_state_transition::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StateTransitions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
