//! The audit trail: who submitted, cancelled and read what, and every call refused for want of
//! a credential or a permission. One row per audited call, appended to the store and never
//! changed; `ListAuditEvents` reads it.
//!
//! Audited are SubmitSql and SubmitPython (`submit`), CancelJob (`cancel`),
//! StreamOperationResults (`read_results`), whatever their outcome, and every call of any
//! method refused as UNAUTHENTICATED or PERMISSION_DENIED, or answered NOT_FOUND because the
//! job belongs to another tenant (`denied`). Unauthenticated calls are recorded at most
//! `--audit-unauthenticated-per-second` a second, so that a flood of them cannot fill the
//! database; those beyond are counted in the log instead.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Code;
use tracing::{error, warn};

use crate::auth::Principal;
use crate::job::{UnixMillis, now_millis};
use crate::store::Store;

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
        outcome: code_name(Code::Ok).to_owned(),
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

/// The name of a gRPC status code as the gRPC specification spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// What the audit trail needs to know of one call, gathered while it is answered.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The gRPC method, e.g. `SubmitSql`.
    pub method: &'static str,
    /// What the call does when allowed; None for calls audited only when refused (GetJob,
    /// ListJobs, WatchJob, ListAuditEvents).
    pub action: Option<AuditAction>,
    /// None until the caller is known.
    pub principal: Option<Arc<Principal>>,
    pub job_id: Option<String>,
    pub request_id: Option<String>,
    /// The tenant of a job the caller may not see (the call is answered NOT_FOUND).
    pub hidden_tenant: Option<String>,
    /// The event was recorded already, with what the call changed (a submission's job).
    pub recorded: bool,
}

impl CallRecord {
    pub fn new(method: &'static str, action: Option<AuditAction>) -> CallRecord {
        CallRecord {
            method,
            action,
            principal: None,
            job_id: None,
            request_id: None,
            hidden_tenant: None,
            recorded: false,
        }
    }
}

/// Records audit events in the store.
pub struct Auditor {
    store: Arc<dyn Store>,
    unauthenticated: Mutex<UnauthenticatedBudget>,
    unauthenticated_per_second: u32,
}

#[derive(Debug)]
struct UnauthenticatedBudget {
    second: Instant,
    recorded: u32,
    skipped: u64,
}

impl Auditor {
    pub fn new(store: Arc<dyn Store>, unauthenticated_per_second: u32) -> Auditor {
        Auditor {
            store,
            unauthenticated: Mutex::new(UnauthenticatedBudget {
                second: Instant::now(),
                recorded: 0,
                skipped: 0,
            }),
            unauthenticated_per_second,
        }
    }

    /// Records the answer to a call, if it is audited: a refusal of the credential or the
    /// permission, or a job of another tenant, as `denied`; otherwise the call's own action,
    /// whatever its outcome.
    pub async fn answered(&self, call: CallRecord, outcome: Result<(), &tonic::Status>) {
        if call.recorded {
            return;
        }
        let (action, outcome, detail) = match outcome {
            Err(status)
                if matches!(
                    status.code(),
                    Code::PermissionDenied | Code::Unauthenticated
                ) =>
            {
                (
                    AuditAction::Denied,
                    status.code(),
                    status.message().to_owned(),
                )
            }
            Err(status) if status.code() == Code::NotFound && call.hidden_tenant.is_some() => (
                AuditAction::Denied,
                status.code(),
                format!(
                    "the job belongs to tenant {}",
                    call.hidden_tenant.as_deref().unwrap_or_default()
                ),
            ),
            Err(status) => match call.action {
                Some(action) => (action, status.code(), status.message().to_owned()),
                None => return,
            },
            Ok(()) => match call.action {
                Some(action) => (action, Code::Ok, String::new()),
                None => return,
            },
        };
        let (principal, tenant) = match &call.principal {
            Some(principal) => (principal.name.clone(), principal.tenant.clone()),
            None => (String::new(), String::new()),
        };
        self.append(NewAuditEvent {
            at: now_millis(),
            principal,
            tenant,
            action,
            method: call.method.to_owned(),
            job_id: call.job_id,
            request_id: call.request_id,
            outcome: code_name(outcome).to_owned(),
            detail,
        })
        .await;
    }

    /// Records a call refused before its caller was known (no or an invalid credential),
    /// within the budget of unauthenticated records a second.
    pub async fn unauthenticated(&self, path: &str, status: &tonic::Status) {
        if !self.take_unauthenticated_budget() {
            return;
        }
        let method = path.rsplit('/').next().unwrap_or(path);
        self.append(NewAuditEvent {
            at: now_millis(),
            principal: String::new(),
            tenant: String::new(),
            action: AuditAction::Denied,
            method: method.to_owned(),
            job_id: None,
            request_id: None,
            outcome: code_name(status.code()).to_owned(),
            detail: status.message().to_owned(),
        })
        .await;
    }

    fn take_unauthenticated_budget(&self) -> bool {
        let mut budget = self
            .unauthenticated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if now.duration_since(budget.second) >= Duration::from_secs(1) {
            if budget.skipped > 0 {
                warn!(
                    skipped = budget.skipped,
                    limit = self.unauthenticated_per_second,
                    "unauthenticated calls beyond --audit-unauthenticated-per-second were refused without an audit record"
                );
            }
            *budget = UnauthenticatedBudget {
                second: now,
                recorded: 0,
                skipped: 0,
            };
        }
        if budget.recorded < self.unauthenticated_per_second {
            budget.recorded += 1;
            true
        } else {
            budget.skipped += 1;
            false
        }
    }

    async fn append(&self, event: NewAuditEvent) {
        let action = event.action.as_str();
        let recorded_action = event.action;
        match self.store.record_audit(event.clone()).await {
            Ok(()) => crate::metrics::audit_event(recorded_action),
            Err(failure) => {
                // The call was answered; its record is in the log at least.
                error!(
                    error = %failure,
                    action,
                    method = %event.method,
                    principal = %event.principal,
                    tenant = %event.tenant,
                    job_id = ?event.job_id,
                    outcome = %event.outcome,
                    "cannot record an audit event"
                );
            }
        }
    }
}
