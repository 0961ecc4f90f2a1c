//! The audit trail's records: what an audited call did, who made it and how it was answered,
//! and which records `ListAuditEvents` returns.

use crate::job::{UnixMillis, now_millis};

/// The outcome of an answered call: the gRPC specification's name of the status code `OK`.
pub const OK_OUTCOME: &str = "OK";

/// What an audited call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A job submitted (SubmitSql, SubmitPython).
    Submit,
    /// A job cancelled (CancelJob).
    Cancel,
    /// A job's results read (StreamOperationResults).
    ReadResults,
    /// A savepoint taken (TriggerSavepoint).
    Savepoint,
    /// A job upgraded to a new revision (UpgradeJob).
    Upgrade,
    /// A call refused: no valid credential, a missing role or guardrail, or another
    /// tenant's job.
    Denied,
}

impl AuditAction {
    /// Returns the name the action is stored and shown under, e.g. `read_results`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Submit => "submit",
            AuditAction::Cancel => "cancel",
            AuditAction::ReadResults => "read_results",
            AuditAction::Savepoint => "savepoint",
            AuditAction::Upgrade => "upgrade",
            AuditAction::Denied => "denied",
        }
    }

    /// Returns the action named `text` (the inverse of [`AuditAction::as_str`]), if any.
    pub fn parse(text: &str) -> Option<AuditAction> {
        [
            AuditAction::Submit,
            AuditAction::Cancel,
            AuditAction::ReadResults,
            AuditAction::Savepoint,
            AuditAction::Upgrade,
            AuditAction::Denied,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }
}

/// One audited call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Grows with time: orders the trail.
    pub id: i64,
    /// When the call was answered.
    pub at: UnixMillis,
    /// Empty when the caller could not be identified.
    pub principal: String,
    /// The caller's tenant.
    pub tenant: String,
    /// What the call did.
    pub action: AuditAction,
    /// The gRPC method, e.g. `SubmitSql`.
    pub method: String,
    /// The job the call concerned, if any.
    pub job_id: Option<String>,
    /// The submission's request id, if it carried one.
    pub request_id: Option<String>,
    /// The gRPC status code name of the answer, e.g. `OK` or `PERMISSION_DENIED`.
    pub outcome: String,
    /// The message of a refusal or failure; empty for OK.
    pub detail: String,
}

/// An audited call to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// When the call was answered.
    pub at: UnixMillis,
    /// Empty when the caller could not be identified.
    pub principal: String,
    /// The caller's tenant.
    pub tenant: String,
    /// What the call did.
    pub action: AuditAction,
    /// The gRPC method, e.g. `SubmitSql`.
    pub method: String,
    /// The job the call concerned, if any.
    pub job_id: Option<String>,
    /// The submission's request id, if it carried one.
    pub request_id: Option<String>,
    /// The gRPC status code name of the answer, e.g. `OK` or `PERMISSION_DENIED`.
    pub outcome: String,
    /// The message of a refusal or failure; empty for OK.
    pub detail: String,
}

/// The event of a submission answered with `job_id` (recorded now, or found under its
/// request id).
pub fn submitted(
    method: &str,
    principal: &str,
    tenant: &str,
    job_id: &str,
    request_id: Option<&str>,
) -> NewAuditEvent {
    NewAuditEvent {
        at: now_millis(),
        principal: principal.to_owned(),
        tenant: tenant.to_owned(),
        action: if method == "UpgradeJob" {
            AuditAction::Upgrade
        } else {
            AuditAction::Submit
        },
        method: method.to_owned(),
        job_id: Some(job_id.to_owned()),
        request_id: request_id.map(str::to_owned),
        outcome: OK_OUTCOME.to_owned(),
        detail: String::new(),
    }
}

/// Which events ListAuditEvents returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events of this tenant (None: every tenant).
    pub tenant: Option<String>,
    /// Only events of this principal (None: every principal).
    pub principal: Option<String>,
    /// Only events of this action (None: any action).
    pub action: Option<AuditAction>,
    /// At or after this time.
    pub since: Option<UnixMillis>,
    /// Before this time.
    pub until: Option<UnixMillis>,
}

/// One page of ListAuditEvents, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events of the page, newest first.
    pub events: Vec<AuditEvent>,
    /// Opaque; None on the last page.
    pub next_page_token: Option<String>,
}
