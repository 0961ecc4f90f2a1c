//! Conversions between the job model and the protobuf messages.

use flinkbroker_control::{
    ResultMessage, ScriptPosition, StatementCheck, StreamEndReason, Verdict,
};
use std::time::Duration;

use flinkbroker_model::job::{
    ClaimMode, Job, JobKind, JobSpec, JobState, LogSummary, Restore, SavepointFormat,
    SavepointKind, SavepointRecord, SavepointState, StateTransition, StatementRecord,
    StatementState, UnixMillis, Upgrade, UpgradeKind, UpgradeStep,
};
use flinkbroker_proto as proto;

/// Converts milliseconds since the epoch into a protobuf timestamp.
fn timestamp(millis: UnixMillis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// Converts an audit event.
pub(super) fn audit_event(event: &flinkbroker_model::audit::AuditEvent) -> proto::AuditEvent {
    use flinkbroker_model::audit::AuditAction;
    proto::AuditEvent {
        id: event.id,
        time: Some(timestamp(event.at)),
        principal: event.principal.clone(),
        tenant: event.tenant.clone(),
        action: match event.action {
            AuditAction::Submit => proto::AuditAction::Submit,
            AuditAction::Cancel => proto::AuditAction::Cancel,
            AuditAction::ReadResults => proto::AuditAction::ReadResults,
            AuditAction::Savepoint => proto::AuditAction::Savepoint,
            AuditAction::Upgrade => proto::AuditAction::Upgrade,
            AuditAction::Denied => proto::AuditAction::Denied,
        } as i32,
        method: event.method.clone(),
        job_id: event.job_id.clone().unwrap_or_default(),
        request_id: event.request_id.clone().unwrap_or_default(),
        outcome: event.outcome.clone(),
        detail: event.detail.clone(),
    }
}

/// Converts a job state.
fn job_state(state: JobState) -> proto::JobState {
    match state {
        JobState::Pending => proto::JobState::Pending,
        JobState::Submitting => proto::JobState::Submitting,
        JobState::Running => proto::JobState::Running,
        JobState::Canceling => proto::JobState::Canceling,
        JobState::Finished => proto::JobState::Finished,
        JobState::Failed => proto::JobState::Failed,
        JobState::Canceled => proto::JobState::Canceled,
    }
}

/// Converts a job kind.
fn job_kind(kind: JobKind) -> proto::JobKind {
    match kind {
        JobKind::Sql => proto::JobKind::Sql,
        JobKind::Python => proto::JobKind::Python,
    }
}

fn statement_state(state: StatementState) -> proto::StatementState {
    match state {
        StatementState::Pending => proto::StatementState::Pending,
        StatementState::Running => proto::StatementState::Running,
        StatementState::Finished => proto::StatementState::Finished,
        StatementState::Failed => proto::StatementState::Failed,
        StatementState::Canceled => proto::StatementState::Canceled,
    }
}

fn result_log(
    log: &LogSummary,
    ended_at: Option<UnixMillis>,
    retention: Duration,
) -> proto::ResultLogStatus {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    proto::ResultLogStatus {
        rows_logged: log.rows_logged,
        earliest_row_offset: log.earliest_row,
        bytes_held: log.bytes_held,
        complete: log.end.is_some(),
        expire_time: ended_at.map(|ended| timestamp(ended.saturating_add(retention))),
        deleted: log.deleted_at.is_some(),
    }
}

fn statement(
    record: &StatementRecord,
    ended_at: Option<UnixMillis>,
    retention: Duration,
) -> proto::StatementStatus {
    proto::StatementStatus {
        index: record.index,
        sql: record.sql.clone(),
        state: statement_state(record.state) as i32,
        operation_handle: record.operation_handle.clone().unwrap_or_default(),
        flink_job_id: record.flink_job_id.clone().unwrap_or_default(),
        error: record.error.clone().unwrap_or_default(),
        is_query: record.is_query,
        attempt: record.attempt,
        result_log: record
            .log
            .as_ref()
            .map(|log| result_log(log, ended_at, retention)),
    }
}

fn transition(entry: &StateTransition) -> proto::StateTransition {
    proto::StateTransition {
        state: job_state(entry.state) as i32,
        reason: entry.reason.clone(),
        time: Some(timestamp(entry.at)),
    }
}

/// Converts a job; `retention` is how long result logs are kept after a job ends.
pub(super) fn job(job: &Job, retention: Duration) -> proto::Job {
    proto::Job {
        id: job.id.to_string(),
        kind: job_kind(job.kind) as i32,
        state: job_state(job.state) as i32,
        state_reason: job.state_reason.clone(),
        request_id: job.request_id.clone().unwrap_or_default(),
        labels: job.labels.clone().into_iter().collect(),
        create_time: Some(timestamp(job.created_at)),
        update_time: Some(timestamp(job.updated_at)),
        end_time: job.ended_at.map(timestamp),
        statements: job
            .statements
            .iter()
            .map(|s| statement(s, job.ended_at, retention))
            .collect(),
        flink_job_id: job.flink_job_id.clone().unwrap_or_default(),
        savepoint_path: job.savepoint_path.clone().unwrap_or_default(),
        submitter_output: job.submitter_output.clone().unwrap_or_default(),
        history: job.history.iter().map(transition).collect(),
        tenant: job.tenant.clone(),
        principal: job.principal.clone(),
        driven_by: if job.state.is_terminal() {
            String::new()
        } else {
            job.owner.clone().unwrap_or_default()
        },
        savepoints: job.savepoints.iter().map(savepoint).collect(),
        restore: match &job.spec {
            JobSpec::Sql(spec) => spec.restore.as_ref(),
            JobSpec::Python(spec) => spec.restore.as_ref(),
        }
        .map(restore),
        lineage_id: job.lineage.lineage_id.to_string(),
        revision: job.lineage.revision,
        savepoint_chain: job.lineage.savepoint_chain.clone(),
        upgrade: job.lineage.upgrade.as_ref().map(upgrade),
    }
}

/// Converts a savepoint format.
fn savepoint_format(format: SavepointFormat) -> proto::SavepointFormat {
    match format {
        SavepointFormat::Canonical => proto::SavepointFormat::Canonical,
        SavepointFormat::Native => proto::SavepointFormat::Native,
    }
}

/// Converts the upgrade that made a revision.
fn upgrade(upgrade: &Upgrade) -> proto::Upgrade {
    use proto::upgrade::{Kind, Step};
    proto::Upgrade {
        kind: match upgrade.kind {
            UpgradeKind::Upgrade => Kind::Upgrade,
            UpgradeKind::Rollback => Kind::Rollback,
        } as i32,
        previous_job_id: upgrade.previous_job_id.to_string(),
        step: match upgrade.step {
            UpgradeStep::StoppingPrevious => Step::StoppingPrevious,
            UpgradeStep::Starting => Step::Starting,
            UpgradeStep::Done => Step::Done,
            UpgradeStep::RolledBack => Step::RolledBack,
            UpgradeStep::Abandoned => Step::Abandoned,
        } as i32,
        savepoint_path: upgrade.savepoint_path.clone().unwrap_or_default(),
        rollback_job_id: upgrade
            .rollback_job_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        note: upgrade.note.clone().unwrap_or_default(),
        savepoint_directory: upgrade.savepoint_directory.clone().unwrap_or_default(),
        savepoint_format: savepoint_format(upgrade.savepoint_format) as i32,
    }
}

/// Converts a script's validation.
pub(super) fn validation(checks: &[StatementCheck]) -> proto::ValidateSqlResponse {
    use proto::statement_validation::Verdict as V;
    let position = |p: &ScriptPosition| proto::ScriptPosition {
        line: p.line,
        column: p.column,
    };
    let statements: Vec<proto::StatementValidation> = checks
        .iter()
        .map(|check| {
            let mut out = proto::StatementValidation {
                index: check.index,
                sql: check.sql.clone(),
                kind: check.kind.as_str().to_owned(),
                start: Some(position(&check.start)),
                ..proto::StatementValidation::default()
            };
            match &check.verdict {
                Verdict::Valid { plan } => {
                    out.verdict = V::Valid as i32;
                    out.plan = plan.clone().unwrap_or_default();
                }
                Verdict::Invalid {
                    message,
                    start,
                    end,
                } => {
                    out.verdict = V::Invalid as i32;
                    out.error = message.clone();
                    out.error_start = start.as_ref().map(position);
                    out.error_end = end.as_ref().map(position);
                }
                Verdict::NotChecked(note) => {
                    out.verdict = V::NotChecked as i32;
                    out.note = note.clone();
                }
            }
            out
        })
        .collect();
    proto::ValidateSqlResponse {
        valid: statements.iter().all(|s| s.verdict != V::Invalid as i32),
        statements,
    }
}

/// Converts one savepoint record.
fn savepoint(record: &SavepointRecord) -> proto::Savepoint {
    use proto::savepoint::{Kind, State};
    proto::Savepoint {
        trigger_id: record.trigger_id.clone(),
        flink_job_id: record.flink_job_id.clone(),
        statement_index: record.statement_index,
        kind: match record.kind {
            SavepointKind::Triggered => Kind::Triggered,
            SavepointKind::Stop => Kind::Stop,
        } as i32,
        format: savepoint_format(record.format) as i32,
        directory: record.directory.clone().unwrap_or_default(),
        state: match record.state {
            SavepointState::InProgress => State::InProgress,
            SavepointState::Completed => State::Completed,
            SavepointState::Failed => State::Failed,
        } as i32,
        location: record.location.clone().unwrap_or_default(),
        error: record.error.clone().unwrap_or_default(),
        create_time: Some(timestamp(record.created_at)),
        end_time: record.ended_at.map(timestamp),
    }
}

/// Converts the savepoint a job restored from.
fn restore(restore: &Restore) -> proto::Restore {
    proto::Restore {
        savepoint_path: restore.savepoint_path.clone(),
        allow_non_restored_state: restore.allow_non_restored_state,
        claim_mode: match restore.claim_mode {
            ClaimMode::NoClaim => proto::ClaimMode::NoClaim,
            ClaimMode::Claim => proto::ClaimMode::Claim,
        } as i32,
    }
}

/// Converts one message of a result stream.
pub(super) fn result_message(message: ResultMessage) -> proto::StreamOperationResultsResponse {
    use proto::stream_operation_results_response::Message;
    let message = match message {
        ResultMessage::Schema(schema) => Message::Schema(schema),
        ResultMessage::Rows {
            rows,
            first_row_offset,
            attempt,
        } => Message::Rows(proto::RowBatch {
            rows,
            first_row_offset,
            attempt,
        }),
        ResultMessage::Snapshot {
            rows,
            as_of_row_offset,
            last,
        } => Message::Snapshot(proto::TableSnapshot {
            rows,
            as_of_row_offset,
            last,
        }),
        ResultMessage::Progress {
            rows_logged,
            earliest_row_offset,
            flink_job_status,
        } => Message::Progress(proto::StreamProgress {
            rows_logged,
            earliest_row_offset,
            flink_job_status,
        }),
        ResultMessage::End {
            reason,
            error,
            rows_sent,
            next_row_offset,
        } => Message::End(proto::StreamEnd {
            reason: end_reason(reason) as i32,
            error: error.unwrap_or_default(),
            rows_sent,
            next_row_offset,
        }),
    };
    proto::StreamOperationResultsResponse {
        message: Some(message),
    }
}

fn end_reason(reason: StreamEndReason) -> proto::stream_end::Reason {
    use proto::stream_end::Reason;
    match reason {
        StreamEndReason::EndOfResults => Reason::EndOfResults,
        StreamEndReason::RowLimitReached => Reason::RowLimitReached,
        StreamEndReason::TimeLimitReached => Reason::TimeLimitReached,
        StreamEndReason::Canceled => Reason::Canceled,
        StreamEndReason::Failed => Reason::Failed,
    }
}
