//! Request validation: every rejection names the offending field.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::auth::{Principal, Role};
use flinkbroker_control::error::{Error, Result};
use flinkbroker_control::{
    PythonSubmission, Revision, SqlSubmission, UpgradeRequest, ValidateRequest,
};
use flinkbroker_model::audit::{AuditAction, AuditFilter};
use flinkbroker_model::job::{
    ClaimMode, JobId, JobKind, JobState, PythonSpec, Restore, ResultLimits, RuntimeMode,
    SavepointFormat,
};
use flinkbroker_proto as proto;
use flinkbroker_store::JobFilter;

const MAX_REQUEST_ID_CHARS: usize = 128;
const MAX_PROPERTY_KEY_CHARS: usize = 256;
const MAX_PROPERTY_VALUE_BYTES: usize = 64 * 1024;
const MAX_LABELS: usize = 64;
const MAX_LABEL_VALUE_CHARS: usize = 256;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;
/// ListAuditEvents: the page size when the caller asks for 0, and the largest.
const DEFAULT_AUDIT_PAGE_SIZE: u32 = 100;
const MAX_AUDIT_PAGE_SIZE: u32 = 1000;

/// Parses a job id.
pub(super) fn job_id(text: &str) -> Result<JobId> {
    if text.is_empty() {
        return Err(Error::invalid("job_id", "is required"));
    }
    text.parse()
        .map_err(|_| Error::invalid("job_id", format!("{text:?} is not a valid job id (a UUID)")))
}

/// Checks an optional idempotency key: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub(super) fn request_id(text: &str) -> Result<Option<String>> {
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(Error::invalid(
            "request_id",
            format!("must be at most {MAX_REQUEST_ID_CHARS} characters"),
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(Error::invalid(
            "request_id",
            format!("character {bad:?} is not allowed; use A-Z, a-z, 0-9, '.', '_', ':' and '-'"),
        ));
    }
    Ok(Some(text.to_string()))
}

/// Checks Flink configuration keys and values (`properties`, `flink_configuration`).
pub(super) fn flink_properties(
    field: &str,
    properties: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>> {
    let mut checked = BTreeMap::new();
    for (key, value) in properties {
        let valid_key = !key.is_empty()
            && key.len() <= MAX_PROPERTY_KEY_CHARS
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '$')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'));
        if !valid_key {
            return Err(Error::invalid(
                field,
                format!(
                    "key {key:?} is not a valid flink configuration key (letters, digits, '.', '_', '-', '$'; at most {MAX_PROPERTY_KEY_CHARS} characters)"
                ),
            ));
        }
        if value.len() > MAX_PROPERTY_VALUE_BYTES {
            return Err(Error::invalid(
                field,
                format!("value of {key:?} exceeds {MAX_PROPERTY_VALUE_BYTES} bytes"),
            ));
        }
        if value.contains(['\n', '\r']) {
            return Err(Error::invalid(
                field,
                format!("value of {key:?} must not contain line breaks"),
            ));
        }
        checked.insert(key, value);
    }
    Ok(checked)
}

/// Checks labels: keys as Kubernetes label keys, values of limited length.
pub(super) fn labels(
    labels: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>> {
    let labels: BTreeMap<String, String> = labels.into_iter().collect();
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (key, value) in &labels {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        let prefix_ok = prefix.len() <= 253
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
        if !name_ok || !prefix_ok || (key.contains('/') && prefix.is_empty()) {
            return Err(Error::invalid(
                "labels",
                format!(
                    "key {key:?} is not a valid label key ([prefix/]name, name of at most 63 letters, digits, '-', '_', '.')"
                ),
            ));
        }
        if value.chars().count() > MAX_LABEL_VALUE_CHARS || value.contains(['\n', '\r']) {
            return Err(Error::invalid(
                "labels",
                format!(
                    "value of {key:?} must be one line of at most {MAX_LABEL_VALUE_CHARS} characters"
                ),
            ));
        }
    }
    Ok(labels)
}

/// Decodes and checks a SubmitSql request (the script itself is checked by the controller).
pub(super) fn sql_submission(
    request: proto::SubmitSqlRequest,
    caller: &Principal,
) -> Result<SqlSubmission> {
    let runtime_mode = match proto::RuntimeMode::try_from(request.runtime_mode) {
        Ok(proto::RuntimeMode::Unspecified | proto::RuntimeMode::Streaming) => {
            RuntimeMode::Streaming
        }
        Ok(proto::RuntimeMode::Batch) => RuntimeMode::Batch,
        Err(_) => {
            return Err(Error::invalid(
                "runtime_mode",
                format!(
                    "unknown value {}; use RUNTIME_MODE_STREAMING or RUNTIME_MODE_BATCH",
                    request.runtime_mode
                ),
            ));
        }
    };
    // Keys the caller may not set ($internal and the tenant's forbidden prefixes) are
    // refused by admission, as PERMISSION_DENIED.
    let properties = flink_properties("properties", request.properties)?;
    if let Some(mode) = properties.get("execution.runtime-mode")
        && request.runtime_mode != proto::RuntimeMode::Unspecified as i32
        && !mode.eq_ignore_ascii_case(runtime_mode.as_str())
    {
        return Err(Error::invalid(
            "properties",
            format!(
                "execution.runtime-mode {mode:?} contradicts runtime_mode {}",
                runtime_mode.as_str()
            ),
        ));
    }
    let runtime_mode = match properties
        .get("execution.runtime-mode")
        .map(|m| m.to_ascii_lowercase())
    {
        Some(mode) if mode == "batch" => RuntimeMode::Batch,
        Some(mode) if mode == "streaming" => RuntimeMode::Streaming,
        Some(mode) => {
            return Err(Error::invalid(
                "properties",
                format!("execution.runtime-mode {mode:?} must be streaming or batch"),
            ));
        }
        None => runtime_mode,
    };
    let result_limits = match &request.result_limits {
        Some(limits) => ResultLimits {
            max_rows: (limits.max_rows > 0).then_some(limits.max_rows),
            max_duration_ms: match &limits.max_duration {
                Some(d) => {
                    let d = duration("result_limits.max_duration", d)?;
                    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                    (!d.is_zero()).then_some(ms.max(1))
                }
                None => None,
            },
        },
        None => ResultLimits::default(),
    };
    Ok(SqlSubmission {
        tenant: caller.tenant.clone(),
        principal: caller.name.clone(),
        script: request.script,
        runtime_mode,
        properties,
        request_id: request_id(&request.request_id)?,
        labels: labels(request.labels)?,
        result_limits,
        restore: request.restore.map(restore).transpose()?,
        validate_first: request.validate_first,
    })
}

/// Decodes a ValidateSql request (the script is checked by the controller).
pub(super) fn validate_request(
    request: proto::ValidateSqlRequest,
    caller: &Principal,
) -> Result<ValidateRequest> {
    let submission = sql_submission(
        proto::SubmitSqlRequest {
            script: request.script,
            runtime_mode: request.runtime_mode,
            properties: request.properties,
            ..proto::SubmitSqlRequest::default()
        },
        caller,
    )?;
    Ok(ValidateRequest {
        tenant: submission.tenant,
        script: submission.script,
        runtime_mode: submission.runtime_mode,
        properties: submission.properties,
    })
}

/// Decodes a submission's `restore` (its path is checked against the tenant's prefixes by
/// admission).
/// Decodes an UpgradeJob: the new revision as SubmitSql or SubmitPython would take it (its
/// request id is the upgrade's), and how the running revision's state is carried.
pub(super) fn upgrade_request(
    request: proto::UpgradeJobRequest,
    caller: &Principal,
) -> Result<UpgradeRequest> {
    use proto::upgrade_job_request::Revision as R;
    let job_id = job_id(&request.job_id)?;
    let revision = match request.revision {
        Some(R::Sql(mut sql)) => {
            revision_fields("revision.sql", &sql.request_id, sql.restore.is_some())?;
            sql.request_id = request.request_id;
            Revision::Sql(sql_submission(sql, caller)?)
        }
        Some(R::Python(mut python)) => {
            revision_fields(
                "revision.python",
                &python.request_id,
                python.restore.is_some(),
            )?;
            python.request_id = request.request_id;
            Revision::Python(python_submission(python, caller)?)
        }
        None => {
            return Err(Error::invalid(
                "revision",
                "is required: the new script (sql) or program (python)",
            ));
        }
    };
    let claim_mode = claim_mode("claim_mode", request.claim_mode)?;
    Ok(UpgradeRequest {
        job_id,
        revision,
        savepoint_directory: (!request.savepoint_directory.is_empty())
            .then_some(request.savepoint_directory),
        savepoint_format: savepoint_format("savepoint_format", request.savepoint_format)?,
        allow_non_restored_state: request.allow_non_restored_state,
        claim_mode,
    })
}

/// Refuses the fields of a revision an upgrade sets itself.
fn revision_fields(field: &str, request_id: &str, has_restore: bool) -> Result<()> {
    if !request_id.is_empty() {
        return Err(Error::invalid(
            format!("{field}.request_id"),
            "must be empty: an upgrade's idempotency key is UpgradeJobRequest.request_id",
        ));
    }
    if has_restore {
        return Err(Error::invalid(
            format!("{field}.restore"),
            "must be empty: the new revision restores from the savepoint the upgrade takes",
        ));
    }
    Ok(())
}

/// Decodes a claim mode.
fn claim_mode(field: &str, value: i32) -> Result<ClaimMode> {
    match proto::ClaimMode::try_from(value) {
        Ok(proto::ClaimMode::Unspecified | proto::ClaimMode::NoClaim) => Ok(ClaimMode::NoClaim),
        Ok(proto::ClaimMode::Claim) => Ok(ClaimMode::Claim),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown value {value}; use CLAIM_MODE_NO_CLAIM or CLAIM_MODE_CLAIM"),
        )),
    }
}

fn restore(restore: proto::Restore) -> Result<Restore> {
    if restore.savepoint_path.is_empty() {
        return Err(Error::invalid(
            "restore.savepoint_path",
            "must name the savepoint to restore from",
        ));
    }
    let claim_mode = claim_mode("restore.claim_mode", restore.claim_mode)?;
    Ok(Restore {
        savepoint_path: restore.savepoint_path,
        allow_non_restored_state: restore.allow_non_restored_state,
        claim_mode,
    })
}

/// Decodes a savepoint format.
pub(super) fn savepoint_format(field: &str, value: i32) -> Result<SavepointFormat> {
    match proto::SavepointFormat::try_from(value) {
        Ok(proto::SavepointFormat::Unspecified | proto::SavepointFormat::Canonical) => {
            Ok(SavepointFormat::Canonical)
        }
        Ok(proto::SavepointFormat::Native) => Ok(SavepointFormat::Native),
        Err(_) => Err(Error::invalid(
            field,
            format!(
                "unknown value {value}; use SAVEPOINT_FORMAT_CANONICAL or SAVEPOINT_FORMAT_NATIVE"
            ),
        )),
    }
}

const MAX_REQUIREMENTS_BYTES: usize = 64 * 1024;
const MAX_INLINE_PY_FILES: usize = 32;
const MAX_PATH_CHARS: usize = 1024;
const MAX_PROGRAM_ARGS: usize = 256;
const MAX_PROGRAM_ARG_BYTES: usize = 8 * 1024;
const MAX_MODULE_CHARS: usize = 256;

/// Returns true for a dotted Python module path such as `recs.jobs.main`.
fn is_module_path(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_MODULE_CHARS
        && text.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn checked_list(field: &str, items: Vec<String>) -> Result<Vec<String>> {
    for item in &items {
        if item.is_empty() || item.len() > MAX_PATH_CHARS {
            return Err(Error::invalid(
                field,
                format!("entries must be 1 to {MAX_PATH_CHARS} characters"),
            ));
        }
        if item.contains([',', '\n', '\r', '\0']) {
            return Err(Error::invalid(
                field,
                format!("{item:?} must not contain commas or line breaks"),
            ));
        }
    }
    Ok(items)
}

/// Decodes and checks the shape of a SubmitPython request (the broker's limits are checked
/// on admission, in `control`).
pub(super) fn python_submission(
    request: proto::SubmitPythonRequest,
    caller: &Principal,
) -> Result<PythonSubmission> {
    use proto::submit_python_request::Program;
    let (script, script_url) = match request.program {
        Some(Program::Script(script)) => {
            if script.trim().is_empty() {
                return Err(Error::invalid("script", "must not be empty"));
            }
            (Some(script), None)
        }
        Some(Program::ScriptUrl(url)) => {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                return Err(Error::invalid(
                    "script_url",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            (None, Some(url))
        }
        None => {
            return Err(Error::invalid(
                "script",
                "must not be empty (give script or script_url)",
            ));
        }
    };
    let entry_module = if request.entry_module.is_empty() {
        None
    } else if is_module_path(&request.entry_module) {
        Some(request.entry_module)
    } else {
        return Err(Error::invalid(
            "entry_module",
            format!(
                "{:?} is not a python module path like package.module",
                request.entry_module
            ),
        ));
    };
    let mut inline_py_files = BTreeMap::new();
    if request.inline_py_files.len() > MAX_INLINE_PY_FILES {
        return Err(Error::invalid(
            "inline_py_files",
            format!("at most {MAX_INLINE_PY_FILES} files"),
        ));
    }
    for (name, source) in request.inline_py_files {
        let stem = name.strip_suffix(".py").unwrap_or("");
        if !is_module_path(stem) || stem.contains('.') {
            return Err(Error::invalid(
                "inline_py_files",
                format!("{name:?} is not a python file name like helpers.py"),
            ));
        }
        inline_py_files.insert(name, source);
    }
    if let Some(module) = &entry_module
        && inline_py_files.contains_key(&format!("{module}.py"))
    {
        return Err(Error::invalid(
            "inline_py_files",
            format!("{module}.py would replace the script"),
        ));
    }
    let py_requirements = if request.py_requirements.is_empty() {
        None
    } else if request.py_requirements.len() > MAX_REQUIREMENTS_BYTES {
        return Err(Error::invalid(
            "py_requirements",
            format!(
                "{} bytes exceeds the limit of {MAX_REQUIREMENTS_BYTES} bytes",
                request.py_requirements.len()
            ),
        ));
    } else {
        Some(request.py_requirements)
    };
    let parallelism = match request.parallelism {
        0 => None,
        p if p < 0 => {
            return Err(Error::invalid(
                "parallelism",
                format!("must be positive, got {p}"),
            ));
        }
        p => Some(p as u32),
    };
    let flink_configuration = flink_properties("flink_configuration", request.flink_configuration)?;
    if request.program_args.len() > MAX_PROGRAM_ARGS {
        return Err(Error::invalid(
            "program_args",
            format!("at most {MAX_PROGRAM_ARGS} arguments"),
        ));
    }
    if let Some(arg) = request
        .program_args
        .iter()
        .find(|a| a.len() > MAX_PROGRAM_ARG_BYTES || a.contains('\0'))
    {
        return Err(Error::invalid(
            "program_args",
            format!(
                "an argument of {} bytes is too long or contains NUL",
                arg.len()
            ),
        ));
    }
    let program = PythonSpec {
        script,
        script_url,
        entry_module,
        py_files: checked_list("py_files", request.py_files)?,
        py_archives: checked_list("py_archives", request.py_archives)?,
        py_requirements,
        program_args: request.program_args,
        parallelism,
        flink_configuration,
        inline_py_files,
        restore: request.restore.map(restore).transpose()?,
    };
    Ok(PythonSubmission {
        tenant: caller.tenant.clone(),
        principal: caller.name.clone(),
        program,
        request_id: request_id(&request.request_id)?,
        labels: labels(request.labels)?,
    })
}

/// Converts a protobuf duration, rejecting negative ones.
pub(super) fn duration(field: &str, duration: &prost_types::Duration) -> Result<Duration> {
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(Duration::new(
        duration.seconds as u64,
        duration.nanos as u32,
    ))
}

/// A page size asked for: 0 for the default, at most `max`.
fn page_size(asked: i32, default: u32, max: u32) -> Result<u32> {
    match asked {
        size if size < 0 => Err(Error::invalid(
            "page_size",
            format!("must not be negative, got {size}"),
        )),
        0 => Ok(default),
        size => Ok((size as u32).min(max)),
    }
}

/// Milliseconds since the epoch of a timestamp field.
fn timestamp_millis(field: &str, time: &prost_types::Timestamp) -> Result<i64> {
    if !(0..1_000_000_000).contains(&time.nanos) {
        return Err(Error::invalid(
            field,
            format!("nanos must be in 0..1e9, got {}", time.nanos),
        ));
    }
    time.seconds
        .checked_mul(1000)
        .and_then(|millis| millis.checked_add(i64::from(time.nanos / 1_000_000)))
        .ok_or_else(|| Error::invalid(field, format!("{} seconds is out of range", time.seconds)))
}

/// Decodes a ListAuditEvents request into a filter and a page size.
pub(super) fn audit_request(request: &proto::ListAuditEventsRequest) -> Result<(AuditFilter, u32)> {
    let action = match proto::AuditAction::try_from(request.action) {
        Ok(proto::AuditAction::Unspecified) => None,
        Ok(proto::AuditAction::Submit) => Some(AuditAction::Submit),
        Ok(proto::AuditAction::Cancel) => Some(AuditAction::Cancel),
        Ok(proto::AuditAction::ReadResults) => Some(AuditAction::ReadResults),
        Ok(proto::AuditAction::Savepoint) => Some(AuditAction::Savepoint),
        Ok(proto::AuditAction::Upgrade) => Some(AuditAction::Upgrade),
        Ok(proto::AuditAction::Denied) => Some(AuditAction::Denied),
        Err(_) => {
            return Err(Error::invalid(
                "action",
                format!("unknown audit action {}", request.action),
            ));
        }
    };
    let since = request
        .start_time
        .as_ref()
        .map(|t| timestamp_millis("start_time", t))
        .transpose()?;
    let until = request
        .end_time
        .as_ref()
        .map(|t| timestamp_millis("end_time", t))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(Error::invalid("end_time", "must not be before start_time"));
    }
    let filter = AuditFilter {
        tenant: (!request.tenant.is_empty()).then(|| request.tenant.clone()),
        principal: (!request.principal.is_empty()).then(|| request.principal.clone()),
        action,
        since,
        until,
    };
    Ok((
        filter,
        page_size(
            request.page_size,
            DEFAULT_AUDIT_PAGE_SIZE,
            MAX_AUDIT_PAGE_SIZE,
        )?,
    ))
}

/// Decodes a ListJobs request into a filter and a page size.
pub(super) fn list_request(
    request: &proto::ListJobsRequest,
    caller: &Principal,
) -> Result<(JobFilter, u32)> {
    let asked = (!request.tenant.is_empty()).then(|| request.tenant.clone());
    let tenant = if caller.has(Role::Admin) {
        asked
    } else {
        match asked {
            Some(other) if other != caller.tenant => {
                return Err(Error::PermissionDenied(format!(
                    "listing the jobs of tenant {other} needs the role admin; {} may list only tenant {}",
                    caller.name, caller.tenant
                )));
            }
            _ => Some(caller.tenant.clone()),
        }
    };
    let mut states = Vec::new();
    for value in &request.states {
        let state = match proto::JobState::try_from(*value) {
            Ok(proto::JobState::Pending) => JobState::Pending,
            Ok(proto::JobState::Submitting) => JobState::Submitting,
            Ok(proto::JobState::Running) => JobState::Running,
            Ok(proto::JobState::Canceling) => JobState::Canceling,
            Ok(proto::JobState::Finished) => JobState::Finished,
            Ok(proto::JobState::Failed) => JobState::Failed,
            Ok(proto::JobState::Canceled) => JobState::Canceled,
            Ok(proto::JobState::Unspecified) | Err(_) => {
                return Err(Error::invalid(
                    "states",
                    format!("unknown job state {value}"),
                ));
            }
        };
        states.push(state);
    }
    let kind = match proto::JobKind::try_from(request.kind) {
        Ok(proto::JobKind::Unspecified) => None,
        Ok(proto::JobKind::Sql) => Some(JobKind::Sql),
        Ok(proto::JobKind::Python) => Some(JobKind::Python),
        Err(_) => {
            return Err(Error::invalid(
                "kind",
                format!("unknown job kind {}", request.kind),
            ));
        }
    };
    let page_size = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let filter = JobFilter {
        tenant,
        states,
        kind,
        labels: request.labels.clone().into_iter().collect(),
        lineage: if request.lineage_id.is_empty() {
            None
        } else {
            Some(request.lineage_id.parse().map_err(|_| {
                Error::invalid(
                    "lineage_id",
                    format!(
                        "{:?} is not a valid lineage id (a job id)",
                        request.lineage_id
                    ),
                )
            })?)
        },
    };
    Ok((filter, page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert_eq!(request_id("").ok(), Some(None));
        assert_eq!(
            request_id("order-42:v1").ok(),
            Some(Some("order-42:v1".into()))
        );
        assert!(request_id("has space").is_err());
        assert!(request_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn property_keys_are_checked() {
        assert!(
            flink_properties("properties", [("parallelism.default".into(), "2".into())]).is_ok()
        );
        assert!(flink_properties("properties", [("bad key".into(), "2".into())]).is_err());
        assert!(flink_properties("properties", [("".into(), "2".into())]).is_err());
    }

    #[test]
    fn module_paths_are_checked() {
        assert!(is_module_path("recs.jobs.main"));
        assert!(is_module_path("_private"));
        assert!(!is_module_path("recs..main"));
        assert!(!is_module_path("1bad"));
        assert!(!is_module_path("recs/main"));
        assert!(!is_module_path(""));
    }

    #[test]
    fn labels_are_checked() {
        assert!(labels([("team".into(), "recs".into())]).is_ok());
        assert!(labels([("example.com/team".into(), "recs".into())]).is_ok());
        assert!(labels([("-bad".into(), "x".into())]).is_err());
        assert!(labels([("/x".into(), "x".into())]).is_err());
    }
}
