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

use flinkbroker_model::audit::{AuditAction, NewAuditEvent};
use flinkbroker_model::job::now_millis;
use flinkbroker_model::principal::Principal;
use flinkbroker_proto::code_name;
use flinkbroker_store::Store;

/// What the audit trail needs to know of one call, gathered while it is answered.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    /// The gRPC method, e.g. `SubmitSql`.
    pub(crate) method: &'static str,
    /// What the call does when allowed; None for calls audited only when refused (GetJob,
    /// ListJobs, WatchJob, ListAuditEvents).
    pub(crate) action: Option<AuditAction>,
    /// None until the caller is known.
    pub(crate) principal: Option<Arc<Principal>>,
    /// The job the call is about, once known.
    pub(crate) job_id: Option<String>,
    /// The request id of the submission the call is about, if any.
    pub(crate) request_id: Option<String>,
    /// The tenant of a job the caller may not see (the call is answered NOT_FOUND).
    pub(crate) hidden_tenant: Option<String>,
    /// The event was recorded already, with what the call changed (a submission's job).
    pub(crate) recorded: bool,
}

impl CallRecord {
    /// Creates the record of a call to `method`, its caller not known yet.
    pub(crate) fn new(method: &'static str, action: Option<AuditAction>) -> CallRecord {
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
pub(crate) struct Auditor {
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
    /// Creates the auditor over a store, recording at most `unauthenticated_per_second`
    /// unauthenticated calls a second.
    pub(crate) fn new(store: Arc<dyn Store>, unauthenticated_per_second: u32) -> Auditor {
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
    pub(crate) async fn answered(&self, call: CallRecord, outcome: Result<(), &tonic::Status>) {
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
    pub(crate) async fn unauthenticated(&self, path: &str, status: &tonic::Status) {
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
            Ok(()) => flinkbroker_control::metrics::audit_event(recorded_action),
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
