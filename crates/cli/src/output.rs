//! What the client side prints: jobs as tables or JSON, result rows as an aligned table, CSV,
//! a JSON array or JSON lines.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Value as Json, json};

use super::CliError;
use super::values;
use flinkbroker_proto as proto;

/// How results and jobs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// CSV with a header line (results only).
    Csv,
    /// One JSON document.
    Json,
    /// One JSON object a line (results only).
    Jsonl,
}

fn io(error: std::io::Error) -> CliError {
    CliError::Failed(format!("cannot write the output: {error}"))
}

fn table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// The protobuf enum name without its type prefix: `JOB_STATE_RUNNING` → `RUNNING`.
pub(crate) fn state_name(state: i32) -> &'static str {
    match proto::JobState::try_from(state) {
        Ok(proto::JobState::Pending) => "PENDING",
        Ok(proto::JobState::Submitting) => "SUBMITTING",
        Ok(proto::JobState::Running) => "RUNNING",
        Ok(proto::JobState::Canceling) => "CANCELING",
        Ok(proto::JobState::Finished) => "FINISHED",
        Ok(proto::JobState::Failed) => "FAILED",
        Ok(proto::JobState::Canceled) => "CANCELED",
        _ => "UNSPECIFIED",
    }
}

fn statement_state_name(state: i32) -> String {
    proto::StatementState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("STATEMENT_STATE_")
                .to_owned()
        })
        .unwrap_or_else(|_| state.to_string())
}

fn kind_name(kind: i32) -> &'static str {
    match proto::JobKind::try_from(kind) {
        Ok(proto::JobKind::Sql) => "sql",
        Ok(proto::JobKind::Python) => "python",
        _ => "unspecified",
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(|t| {
            values::text(&proto::Value {
                kind: Some(proto::value::Kind::InstantValue(*t)),
            })
        })
        .unwrap_or_default()
}

fn labels(job: &proto::Job) -> String {
    let mut pairs: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// A job as JSON.
pub(crate) fn job_json(job: &proto::Job) -> Json {
    json!({
        "id": job.id,
        "kind": kind_name(job.kind),
        "state": state_name(job.state),
        "state_reason": job.state_reason,
        "request_id": job.request_id,
        "tenant": job.tenant,
        "principal": job.principal,
        "labels": job.labels,
        "create_time": time(&job.create_time),
        "end_time": time(&job.end_time),
        "flink_job_id": job.flink_job_id,
        "statements": job.statements.iter().map(|s| json!({
            "index": s.index,
            "state": statement_state_name(s.state),
            "sql": s.sql,
            "error": s.error,
            "flink_job_id": s.flink_job_id,
            "is_query": s.is_query,
            "rows_logged": s.result_log.as_ref().map(|l| l.rows_logged),
        })).collect::<Vec<_>>(),
        "history": job.history.iter().map(|h| json!({
            "state": state_name(h.state),
            "reason": h.reason,
            "time": time(&h.time),
        })).collect::<Vec<_>>(),
        "savepoint_path": job.savepoint_path,
        "savepoints": job.savepoints.iter().map(savepoint_json).collect::<Vec<_>>(),
        "lineage_id": job.lineage_id,
        "revision": job.revision,
        "savepoint_chain": job.savepoint_chain,
        "upgrade": job.upgrade.as_ref().map(|u| json!({
            "kind": proto::upgrade::Kind::try_from(u.kind)
                .map(|k| k.as_str_name().trim_start_matches("KIND_").to_owned())
                .unwrap_or_default(),
            "previous_job_id": u.previous_job_id,
            "step": upgrade_step_name(u.step),
            "savepoint_path": u.savepoint_path,
            "rollback_job_id": u.rollback_job_id,
            "note": u.note,
        })),
        "restore": job.restore.as_ref().map(|r| json!({
            "savepoint_path": r.savepoint_path,
            "allow_non_restored_state": r.allow_non_restored_state,
            "claim_mode": proto::ClaimMode::try_from(r.claim_mode)
                .map(|m| m.as_str_name().trim_start_matches("CLAIM_MODE_").to_owned())
                .unwrap_or_default(),
        })),
    })
}

/// An upgrade step's name, e.g. `DONE`.
fn upgrade_step_name(step: i32) -> String {
    proto::upgrade::Step::try_from(step)
        .map(|s| s.as_str_name().trim_start_matches("STEP_").to_owned())
        .unwrap_or_default()
}

/// `2` for a revision made by an upgrade; empty for a job as submitted.
fn revision(job: &proto::Job) -> String {
    if job.revision > 1 {
        job.revision.to_string()
    } else {
        String::new()
    }
}

/// `ROLLBACK of <job> · DONE · <note>`, for a revision made by an upgrade or a rollback.
fn upgrade_text(job: &proto::Job) -> String {
    let Some(upgrade) = &job.upgrade else {
        return String::new();
    };
    let kind = proto::upgrade::Kind::try_from(upgrade.kind)
        .map(|k| k.as_str_name().trim_start_matches("KIND_").to_owned())
        .unwrap_or_default();
    let mut text = format!(
        "{kind} of {} · {}",
        upgrade.previous_job_id,
        upgrade_step_name(upgrade.step)
    );
    if !upgrade.rollback_job_id.is_empty() {
        text.push_str(&format!(" · rolled back to {}", upgrade.rollback_job_id));
    }
    if !upgrade.note.is_empty() {
        text.push_str(" · ");
        text.push_str(upgrade.note.lines().next().unwrap_or_default());
    }
    text
}

/// One statement's validation as JSON.
fn validation_json(s: &proto::StatementValidation) -> Json {
    let position = |p: &Option<proto::ScriptPosition>| {
        p.as_ref()
            .map(|p| json!({"line": p.line, "column": p.column}))
    };
    json!({
        "index": s.index,
        "kind": s.kind,
        "sql": s.sql,
        "start": position(&s.start),
        "verdict": verdict_name(s.verdict),
        "error": s.error,
        "error_start": position(&s.error_start),
        "error_end": position(&s.error_end),
        "plan": s.plan,
        "note": s.note,
    })
}

fn verdict_name(verdict: i32) -> String {
    proto::statement_validation::Verdict::try_from(verdict)
        .map(|v| v.as_str_name().trim_start_matches("VERDICT_").to_owned())
        .unwrap_or_default()
}

/// Prints a script's validation: a line per statement (verdict, where it starts, the error
/// or why it was not checked), or JSON.
pub(crate) fn validation(
    out: &mut dyn Write,
    checked: &proto::ValidateSqlResponse,
    format: Format,
) -> Result<(), CliError> {
    if matches!(format, Format::Json | Format::Jsonl) {
        let all: Vec<Json> = checked.statements.iter().map(validation_json).collect();
        return writeln!(
            out,
            "{}",
            json!({"valid": checked.valid, "statements": all})
        )
        .map_err(io);
    }
    let mut lines = table(
        ["#", "LINE", "KIND", "VERDICT", "STATEMENT", "DETAIL"]
            .map(str::to_owned)
            .to_vec(),
    );
    for s in &checked.statements {
        let at = |p: &Option<proto::ScriptPosition>| {
            p.as_ref()
                .map(|p| format!("{}:{}", p.line, p.column))
                .unwrap_or_default()
        };
        let detail = if !s.error.is_empty() {
            format!(
                "{} {}",
                at(&s.error_start),
                s.error.lines().next().unwrap_or_default()
            )
        } else {
            s.note.clone()
        };
        lines.add_row(vec![
            s.index.to_string(),
            at(&s.start),
            s.kind.clone(),
            verdict_name(s.verdict),
            s.sql.lines().next().unwrap_or_default().to_owned(),
            detail.trim().to_owned(),
        ]);
    }
    writeln!(out, "{lines}").map_err(io)
}

/// Prints the plans of a script's queries, INSERTs and statement sets, or JSON.
pub(crate) fn plans(
    out: &mut dyn Write,
    checked: &proto::ValidateSqlResponse,
    format: Format,
) -> Result<(), CliError> {
    if matches!(format, Format::Json | Format::Jsonl) {
        return validation(out, checked, format);
    }
    for s in checked.statements.iter().filter(|s| !s.plan.is_empty()) {
        writeln!(
            out,
            "-- statement {} ({}): {}\n{}",
            s.index,
            s.kind,
            s.sql.lines().next().unwrap_or_default(),
            s.plan.trim_end()
        )
        .map_err(io)?;
    }
    Ok(())
}

/// One savepoint as JSON.
pub(crate) fn savepoint_json(s: &proto::Savepoint) -> Json {
    json!({
        "trigger_id": s.trigger_id,
        "flink_job_id": s.flink_job_id,
        "statement_index": s.statement_index,
        "kind": proto::savepoint::Kind::try_from(s.kind)
            .map(|k| k.as_str_name().trim_start_matches("KIND_").to_owned())
            .unwrap_or_default(),
        "format": savepoint_format_name(s.format),
        "state": savepoint_state_name(s.state),
        "location": s.location,
        "error": s.error,
        "create_time": time(&s.create_time),
        "end_time": time(&s.end_time),
    })
}

fn savepoint_format_name(format: i32) -> String {
    proto::SavepointFormat::try_from(format)
        .ok()
        .filter(|f| *f != proto::SavepointFormat::Unspecified)
        .map_or("CANONICAL".to_owned(), |f| {
            f.as_str_name()
                .trim_start_matches("SAVEPOINT_FORMAT_")
                .to_owned()
        })
}

fn savepoint_state_name(state: i32) -> String {
    proto::savepoint::State::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("STATE_").to_owned())
        .unwrap_or_default()
}

/// Prints savepoints: one line each (`statement N` for a SQL job's, the location or the
/// error), or a JSON array.
pub(crate) fn savepoints(
    out: &mut dyn Write,
    savepoints: &[&proto::Savepoint],
    format: Format,
) -> Result<(), CliError> {
    if matches!(format, Format::Json | Format::Jsonl) {
        let all: Vec<Json> = savepoints.iter().map(|s| savepoint_json(s)).collect();
        return writeln!(out, "{}", Json::Array(all)).map_err(io);
    }
    let mut lines = table(
        ["STATEMENT", "FLINK JOB", "STATE", "LOCATION"]
            .map(str::to_owned)
            .to_vec(),
    );
    for s in savepoints {
        lines.add_row(vec![
            s.statement_index.map(|i| i.to_string()).unwrap_or_default(),
            s.flink_job_id.clone(),
            savepoint_state_name(s.state),
            if s.error.is_empty() {
                s.location.clone()
            } else {
                s.error.lines().next().unwrap_or_default().to_owned()
            },
        ]);
    }
    writeln!(out, "{lines}").map_err(io)
}

/// Prints jobs: a table of one line each, or a JSON array.
pub(crate) fn jobs(
    out: &mut dyn Write,
    jobs: &[proto::Job],
    format: Format,
) -> Result<(), CliError> {
    match format {
        Format::Json | Format::Jsonl => {
            let all: Vec<Json> = jobs.iter().map(job_json).collect();
            writeln!(out, "{}", Json::Array(all)).map_err(io)
        }
        Format::Table | Format::Csv => {
            let mut t = table(
                ["ID", "KIND", "STATE", "REV", "TENANT", "CREATED", "LABELS"]
                    .map(str::to_owned)
                    .to_vec(),
            );
            for job in jobs {
                t.add_row(vec![
                    job.id.clone(),
                    kind_name(job.kind).to_owned(),
                    state_name(job.state).to_owned(),
                    job.revision.max(1).to_string(),
                    job.tenant.clone(),
                    time(&job.create_time),
                    labels(job),
                ]);
            }
            writeln!(out, "{t}").map_err(io)
        }
    }
}

/// Prints one job: its fields, statements and history, or JSON.
pub(crate) fn job(out: &mut dyn Write, job: &proto::Job, format: Format) -> Result<(), CliError> {
    if matches!(format, Format::Json | Format::Jsonl) {
        return writeln!(out, "{}", job_json(job)).map_err(io);
    }
    let mut fields = table(vec!["FIELD".into(), "VALUE".into()]);
    for (name, value) in [
        ("id", job.id.clone()),
        ("kind", kind_name(job.kind).to_owned()),
        ("state", state_name(job.state).to_owned()),
        ("reason", job.state_reason.clone()),
        ("tenant", job.tenant.clone()),
        ("principal", job.principal.clone()),
        ("request id", job.request_id.clone()),
        ("labels", labels(job)),
        ("created", time(&job.create_time)),
        ("ended", time(&job.end_time)),
        ("flink job", job.flink_job_id.clone()),
        (
            "restored from",
            job.restore
                .as_ref()
                .map(|r| r.savepoint_path.clone())
                .unwrap_or_default(),
        ),
        ("savepoint", job.savepoint_path.clone()),
        ("revision", revision(job)),
        ("lineage", job.lineage_id.clone()),
        ("upgrade", upgrade_text(job)),
        ("savepoint chain", job.savepoint_chain.join(" → ")),
    ] {
        if !value.is_empty() {
            fields.add_row(vec![name.to_owned(), value]);
        }
    }
    writeln!(out, "{fields}").map_err(io)?;
    if !job.statements.is_empty() {
        let mut statements = table(
            ["#", "STATE", "ROWS", "STATEMENT", "ERROR"]
                .map(str::to_owned)
                .to_vec(),
        );
        for s in &job.statements {
            statements.add_row(vec![
                s.index.to_string(),
                statement_state_name(s.state),
                s.result_log
                    .as_ref()
                    .map(|l| l.rows_logged.to_string())
                    .unwrap_or_default(),
                s.sql.lines().next().unwrap_or_default().to_owned(),
                s.error.lines().next().unwrap_or_default().to_owned(),
            ]);
        }
        writeln!(out, "{statements}").map_err(io)?;
    }
    if !job.savepoints.is_empty() {
        let all: Vec<&proto::Savepoint> = job.savepoints.iter().collect();
        savepoints(out, &all, format)?;
    }
    if !job.submitter_output.is_empty() {
        writeln!(out, "submitter output:\n{}", job.submitter_output).map_err(io)?;
    }
    Ok(())
}

/// One CSV record, quoted as CSV needs.
fn csv_line<'a>(fields: impl IntoIterator<Item = &'a str>) -> Result<Vec<u8>, CliError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(fields)
        .map_err(|e| CliError::Failed(format!("cannot write CSV: {e}")))?;
    writer
        .into_inner()
        .map_err(|e| CliError::Failed(format!("cannot write CSV: {e}")))
}

/// Writes result rows in a format as they arrive; a table is printed when they ended.
pub(crate) struct RowWriter<'a> {
    out: &'a mut dyn Write,
    format: Format,
    columns: Vec<String>,
    /// Whether the rows carry changes (a changelog): the table then shows each row's kind.
    table: Option<Table>,
    rows: u64,
    /// Whether a table shows each row's kind (not for a materialized table's rows).
    kinds: bool,
}

impl<'a> RowWriter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write, format: Format) -> RowWriter<'a> {
        RowWriter {
            out,
            format,
            columns: Vec::new(),
            table: None,
            rows: 0,
            kinds: true,
        }
    }

    /// A writer of a table's rows (all INSERT): a table shows no row kind column.
    pub(crate) fn without_kinds(mut self) -> Self {
        self.kinds = false;
        self
    }

    /// Starts the output with the result's columns.
    pub(crate) fn schema(&mut self, schema: &proto::ResultSchema) -> Result<(), CliError> {
        self.columns = schema.columns.iter().map(|c| c.name.clone()).collect();
        match self.format {
            Format::Table => {
                let mut header = if self.kinds {
                    vec!["op".to_owned()]
                } else {
                    Vec::new()
                };
                header.extend(self.columns.iter().cloned());
                self.table = Some(table(header));
            }
            Format::Csv => {
                let line = csv_line(self.columns.iter().map(String::as_str))?;
                self.out.write_all(&line).map_err(io)?;
            }
            Format::Json => write!(self.out, "[").map_err(io)?,
            Format::Jsonl => {}
        }
        Ok(())
    }

    /// Adds a batch of rows.
    pub(crate) fn rows(&mut self, rows: &[proto::Row]) -> Result<(), CliError> {
        for row in rows {
            match self.format {
                Format::Table => {
                    if let Some(table) = self.table.as_mut() {
                        let mut cells = if self.kinds {
                            vec![values::row_kind(row.kind).to_owned()]
                        } else {
                            Vec::new()
                        };
                        cells.extend(row.values.iter().map(values::text));
                        table.add_row(cells);
                    }
                }
                Format::Csv => {
                    let cells: Vec<String> = row.values.iter().map(values::text).collect();
                    let line = csv_line(cells.iter().map(String::as_str))?;
                    self.out.write_all(&line).map_err(io)?;
                }
                Format::Json => {
                    let separator = if self.rows == 0 { "" } else { "," };
                    write!(
                        self.out,
                        "{separator}{}",
                        values::json_row(&self.columns, row)
                    )
                    .map_err(io)?;
                }
                Format::Jsonl => {
                    writeln!(self.out, "{}", values::json_row(&self.columns, row)).map_err(io)?
                }
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// Ends the output; returns the rows written.
    pub(crate) fn finish(mut self) -> Result<u64, CliError> {
        match self.format {
            Format::Table => {
                if let Some(table) = self.table.take() {
                    writeln!(self.out, "{table}").map_err(io)?;
                }
            }
            Format::Json => {
                if self.columns.is_empty() && self.rows == 0 {
                    write!(self.out, "[").map_err(io)?;
                }
                writeln!(self.out, "]").map_err(io)?;
            }
            Format::Csv | Format::Jsonl => {}
        }
        self.out.flush().map_err(io)?;
        Ok(self.rows)
    }
}

/// A materialized table as an aligned table's text (for a live view), at most `max_rows` rows
/// (the rest counted in a last line).
pub(crate) fn table_text(columns: &[String], rows: &[proto::Row], max_rows: usize) -> String {
    let mut shown = table(columns.to_vec());
    for row in rows.iter().take(max_rows) {
        shown.add_row(row.values.iter().map(values::text).collect::<Vec<_>>());
    }
    let mut text = shown.to_string();
    if rows.len() > max_rows {
        text.push_str(&format!("\n… and {} more rows", rows.len() - max_rows));
    }
    text
}
