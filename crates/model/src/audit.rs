//! The audit trail's records: what an audited call did, who made it and how it was answered,
//! and which records `ListAuditEvents` returns.

use crate::job::{UnixMillis, now_millis};

/// The outcome of an answered call: the gRPC specification's name of the status code `OK`.
pub const OK_OUTCOME: &str = "OK";

/// What an audited call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Submit,
    Cancel,
    ReadResults,
    /// A call refused: no valid credential, a missing role or guardrail, or another
    /// tenant's job.
    Denied,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Submit => "submit",
            AuditAction::Cancel => "cancel",
            AuditAction::ReadResults => "read_results",
            AuditAction::Denied => "denied",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        [
            AuditAction::Submit,
            AuditAction::Cancel,
            AuditAction::ReadResults,
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
    pub at: UnixMillis,
    /// Empty when the caller could not be identified.
    pub principal: String,
    pub tenant: String,
    pub action: AuditAction,
    /// The gRPC method, e.g. `SubmitSql`.
    pub method: String,
    pub job_id: Option<String>,
    pub request_id: Option<String>,
    /// The gRPC status code name of the answer, e.g. `OK` or `PERMISSION_DENIED`.
    pub outcome: String,
    /// The message of a refusal or failure; empty for OK.
    pub detail: String,
}

/// An audited call to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub at: UnixMillis,
    pub principal: String,
    pub tenant: String,
    pub action: AuditAction,
    pub method: String,
    pub job_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
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
        action: AuditAction::Submit,
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
    pub tenant: Option<String>,
    pub principal: Option<String>,
    pub action: Option<AuditAction>,
    /// At or after this time.
    pub since: Option<UnixMillis>,
    /// Before this time.
    pub until: Option<UnixMillis>,
}

/// One page of ListAuditEvents, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Opaque; None on the last page.
    pub next_page_token: Option<String>,
}
