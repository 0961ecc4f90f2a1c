//! The series the use cases and drivers record: job state changes, statement failures,
//! result rows logged and streamed, open streams, lease takeovers and handovers, quota refusals
//! and audit events. Every label has a small, fixed set of values: no job, session or
//! operation ids; tenants are named only when the tenant policy file names them. Each series
//! is exported at zero from start-up under the label values it is known to take.

use flinkbroker_flink::sql_gateway::GatewayError;
use flinkbroker_model::audit::AuditAction;
use flinkbroker_model::job::{JobKind, JobState};
use flinkbroker_model::metric::{Exported, Metric, MetricKind, each_combination, no_labels};
use flinkbroker_model::tenants::TenantPolicy;
use metrics::{counter, gauge};

use crate::quotas::Quota;

/// The series `flinkbroker_job_transitions_total`.
pub const JOB_TRANSITIONS: &str = "flinkbroker_job_transitions_total";
/// The series `flinkbroker_statement_failures_total`.
pub const STATEMENT_FAILURES: &str = "flinkbroker_statement_failures_total";
/// The series `flinkbroker_result_rows_logged_total`.
pub const RESULT_ROWS_LOGGED: &str = "flinkbroker_result_rows_logged_total";
/// The series `flinkbroker_result_bytes_logged_total`.
pub const RESULT_BYTES_LOGGED: &str = "flinkbroker_result_bytes_logged_total";
/// The series `flinkbroker_result_rows_streamed_total`.
pub const RESULT_ROWS_STREAMED: &str = "flinkbroker_result_rows_streamed_total";
/// The series `flinkbroker_result_bytes_streamed_total`.
pub const RESULT_BYTES_STREAMED: &str = "flinkbroker_result_bytes_streamed_total";
/// The series `flinkbroker_result_streams_open`.
pub const RESULT_STREAMS_OPEN: &str = "flinkbroker_result_streams_open";
/// The series `flinkbroker_lease_takeovers_total`.
pub const LEASE_TAKEOVERS: &str = "flinkbroker_lease_takeovers_total";
/// The series `flinkbroker_lease_handovers_total`.
pub const LEASE_HANDOVERS: &str = "flinkbroker_lease_handovers_total";
/// The series `flinkbroker_jobs_resumed_total`.
pub const JOBS_RESUMED: &str = "flinkbroker_jobs_resumed_total";
/// The series `flinkbroker_quota_refusals_total`.
pub const QUOTA_REFUSALS: &str = "flinkbroker_quota_refusals_total";
/// The series `flinkbroker_audit_events_total`.
pub const AUDIT_EVENTS: &str = "flinkbroker_audit_events_total";
/// The series `flinkbroker_refused_job_retries_total`.
pub const REFUSED_JOB_RETRIES: &str = "flinkbroker_refused_job_retries_total";

/// The series this crate records.
pub const METRICS: &[Metric] = &[
    Metric {
        name: JOB_TRANSITIONS,
        kind: MetricKind::Counter,
        labels: &["kind", "state"],
        help: "Job state changes recorded by this replica, by the state entered",
        exported: Exported::AtZero(|| {
            each_combination(&[
                &JOB_KINDS.map(kind_label),
                &JOB_STATES.map(|state| state.as_str()),
            ])
        }),
    },
    Metric {
        name: STATEMENT_FAILURES,
        kind: MetricKind::Counter,
        labels: &["cause"],
        help: "SQL statements that failed, by cause class",
        exported: Exported::AtZero(|| {
            each_combination(&[&StatementFailure::ALL.map(StatementFailure::as_str)])
        }),
    },
    Metric {
        name: RESULT_ROWS_LOGGED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Result rows appended to result logs",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: RESULT_BYTES_LOGGED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Encoded result bytes appended to result logs",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: RESULT_ROWS_STREAMED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Result rows sent by StreamOperationResults",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: RESULT_BYTES_STREAMED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Encoded result bytes sent by StreamOperationResults",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: RESULT_STREAMS_OPEN,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "StreamOperationResults calls open now",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: LEASE_TAKEOVERS,
        kind: MetricKind::Counter,
        labels: &["from"],
        help: "Jobs this replica took up: from another replica, or its own after a restart",
        exported: Exported::AtZero(|| {
            each_combination(&[&[takeover_source(true), takeover_source(false)]])
        }),
    },
    Metric {
        name: LEASE_HANDOVERS,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Jobs this replica handed over to the others (over its fair share), each after its driver here ended",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: JOBS_RESUMED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Jobs taken up again (after a restart or a takeover) that follow their Flink jobs again",
        exported: Exported::AtZero(no_labels),
    },
    Metric {
        name: QUOTA_REFUSALS,
        kind: MetricKind::Counter,
        labels: &["tenant", "quota"],
        help: "Submissions refused over a tenant quota (tenant: named in the tenant policy file, else _other)",
        // Tenants the policy file names are exported once refused.
        exported: Exported::AtZero(|| {
            each_combination(&[&[OTHER_TENANT], &Quota::ALL.map(Quota::label)])
        }),
    },
    Metric {
        name: AUDIT_EVENTS,
        kind: MetricKind::Counter,
        labels: &["action"],
        help: "Audit events recorded, by action",
        exported: Exported::AtZero(|| each_combination(&[&AUDIT_ACTIONS.map(AuditAction::as_str)])),
    },
    Metric {
        name: REFUSED_JOB_RETRIES,
        kind: MetricKind::Counter,
        labels: &[],
        help: "SQL statements run again because the cluster refused their Flink job at once (no slots, before any task ran)",
        exported: Exported::AtZero(no_labels),
    },
];

/// The tenant label of tenants the policy file does not name.
pub const OTHER_TENANT: &str = "_other";

/// Every job kind, as the `kind` label names them.
pub const JOB_KINDS: [JobKind; 2] = [JobKind::Sql, JobKind::Python];

/// Every job state, as the `state` label names them.
pub const JOB_STATES: [JobState; 7] = [
    JobState::Pending,
    JobState::Submitting,
    JobState::Running,
    JobState::Canceling,
    JobState::Finished,
    JobState::Failed,
    JobState::Canceled,
];

/// Every audit action, as the `action` label names them.
const AUDIT_ACTIONS: [AuditAction; 6] = [
    AuditAction::Submit,
    AuditAction::Cancel,
    AuditAction::ReadResults,
    AuditAction::Savepoint,
    AuditAction::Upgrade,
    AuditAction::Denied,
];

/// The `kind` label of a job kind.
pub const fn kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Sql => "sql",
        JobKind::Python => "python",
    }
}

/// Counts a job state change this replica recorded.
pub fn job_transition(kind: JobKind, state: JobState) {
    counter!(JOB_TRANSITIONS, "kind" => kind_label(kind), "state" => state.as_str()).increment(1);
}

/// Why a SQL statement failed, in a few classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementFailure {
    /// The gateway ran the statement and reported it failed (bad SQL, a failed Flink job).
    Statement,
    /// The gateway could not be reached.
    GatewayUnreachable,
    /// The gateway forgot the statement's session or operation.
    GatewayLostState,
    /// Any other answer of the gateway the broker could not use.
    GatewayError,
    /// A result row could not be converted.
    ResultConversion,
    /// The results exceeded `--result-log-max-bytes`.
    ResultLogCap,
}

impl StatementFailure {
    /// Every cause class.
    pub const ALL: [StatementFailure; 6] = [
        StatementFailure::Statement,
        StatementFailure::GatewayUnreachable,
        StatementFailure::GatewayLostState,
        StatementFailure::GatewayError,
        StatementFailure::ResultConversion,
        StatementFailure::ResultLogCap,
    ];

    /// The cause class of a gateway error.
    pub fn of_gateway(error: &GatewayError) -> StatementFailure {
        match error {
            GatewayError::StatementFailed { .. } => StatementFailure::Statement,
            GatewayError::Unreachable(_) => StatementFailure::GatewayUnreachable,
            GatewayError::UnknownSession { .. } | GatewayError::UnknownOperation { .. } => {
                StatementFailure::GatewayLostState
            }
            GatewayError::UnsupportedVersion { .. }
            | GatewayError::InvalidToken { .. }
            | GatewayError::BadRequest { .. }
            | GatewayError::Server { .. }
            | GatewayError::Protocol(_) => StatementFailure::GatewayError,
        }
    }

    /// The `cause` label of the class.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatementFailure::Statement => "statement",
            StatementFailure::GatewayUnreachable => "gateway_unreachable",
            StatementFailure::GatewayLostState => "gateway_lost_state",
            StatementFailure::GatewayError => "gateway_error",
            StatementFailure::ResultConversion => "result_conversion",
            StatementFailure::ResultLogCap => "result_log_cap",
        }
    }
}

/// Counts a statement recorded as failed.
pub fn statement_failed(cause: StatementFailure) {
    counter!(STATEMENT_FAILURES, "cause" => cause.as_str()).increment(1);
}

/// Counts rows and encoded bytes appended to a result log.
pub fn result_logged(rows: u64, bytes: u64) {
    counter!(RESULT_ROWS_LOGGED).increment(rows);
    counter!(RESULT_BYTES_LOGGED).increment(bytes);
}

/// Counts rows and encoded bytes sent to a result stream.
pub fn result_streamed(rows: u64, bytes: u64) {
    counter!(RESULT_ROWS_STREAMED).increment(rows);
    counter!(RESULT_BYTES_STREAMED).increment(bytes);
}

/// Counts a result stream as open for as long as it is held.
pub struct OpenStream(());

impl OpenStream {
    /// Counts a stream as open until the value is dropped.
    pub fn new() -> OpenStream {
        gauge!(RESULT_STREAMS_OPEN).increment(1.0);
        OpenStream(())
    }
}

impl Default for OpenStream {
    fn default() -> Self {
        OpenStream::new()
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!(RESULT_STREAMS_OPEN).decrement(1.0);
    }
}

/// The `from` label of a job taken up: from another replica, or this replica's own after a
/// restart.
const fn takeover_source(from_other_replica: bool) -> &'static str {
    if from_other_replica {
        "other_replica"
    } else {
        "restart"
    }
}

/// Counts a job taken up: from another replica, or this replica's own after a restart.
pub fn lease_takeover(from_other_replica: bool) {
    counter!(LEASE_TAKEOVERS, "from" => takeover_source(from_other_replica)).increment(1);
}

/// Counts a job taken up again that follows its Flink jobs again.
pub fn job_resumed() {
    counter!(JOBS_RESUMED).increment(1);
}

/// Counts a job handed over to the other replicas (its lease given up after its driver ended).
pub fn lease_handover() {
    counter!(LEASE_HANDOVERS).increment(1);
}

/// Counts a submission refused over a quota. The tenant is named only when the tenant
/// policy file names it, so the label has at most one value per configured tenant.
pub fn quota_refused(tenant: &str, policy: &TenantPolicy, quota: &'static str) {
    let tenant = if policy.overridden.is_empty() {
        OTHER_TENANT.to_owned()
    } else {
        tenant.to_owned()
    };
    counter!(QUOTA_REFUSALS, "tenant" => tenant, "quota" => quota).increment(1);
}

/// Counts an audit event recorded.
pub fn audit_event(action: AuditAction) {
    counter!(AUDIT_EVENTS, "action" => action.as_str()).increment(1);
}

/// Counts a statement run again after the cluster refused its Flink job.
pub fn refused_job_retried() {
    counter!(REFUSED_JOB_RETRIES).increment(1);
}
