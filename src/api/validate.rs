//! Request validation: every rejection names the offending field.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::control::SqlSubmission;
use crate::error::{Error, Result};
use crate::job::{JobId, JobKind, JobState, RuntimeMode};
use crate::proto;
use crate::store::JobFilter;

const MAX_REQUEST_ID_CHARS: usize = 128;
const MAX_PROPERTY_KEY_CHARS: usize = 256;
const MAX_PROPERTY_VALUE_BYTES: usize = 64 * 1024;
const MAX_LABELS: usize = 64;
const MAX_LABEL_VALUE_CHARS: usize = 256;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// Parses a job id.
pub fn job_id(text: &str) -> Result<JobId> {
    if text.is_empty() {
        return Err(Error::invalid("job_id", "is required"));
    }
    text.parse()
        .map_err(|_| Error::invalid("job_id", format!("{text:?} is not a valid job id (a UUID)")))
}

/// Checks an optional idempotency key: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn request_id(text: &str) -> Result<Option<String>> {
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
pub fn flink_properties(
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
pub fn labels(
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
pub fn sql_submission(request: proto::SubmitSqlRequest) -> Result<SqlSubmission> {
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
    Ok(SqlSubmission {
        script: request.script,
        runtime_mode,
        properties,
        request_id: request_id(&request.request_id)?,
        labels: labels(request.labels)?,
    })
}

/// Converts a protobuf duration, rejecting negative ones.
pub fn duration(field: &str, duration: &prost_types::Duration) -> Result<Duration> {
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(Duration::new(
        duration.seconds as u64,
        duration.nanos as u32,
    ))
}

/// Decodes a ListJobs request into a filter and a page size.
pub fn list_request(request: &proto::ListJobsRequest) -> Result<(JobFilter, u32)> {
    let mut states = Vec::new();
    for value in &request.states {
        let state = match proto::JobState::try_from(*value) {
            Ok(proto::JobState::Pending) => JobState::Pending,
            Ok(proto::JobState::Submitting) => JobState::Submitting,
            Ok(proto::JobState::Running) => JobState::Running,
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
    let page_size = match request.page_size {
        size if size < 0 => {
            return Err(Error::invalid(
                "page_size",
                format!("must not be negative, got {size}"),
            ));
        }
        0 => DEFAULT_PAGE_SIZE,
        size => (size as u32).min(MAX_PAGE_SIZE),
    };
    let filter = JobFilter {
        states,
        kind,
        labels: request.labels.clone().into_iter().collect(),
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
    fn labels_are_checked() {
        assert!(labels([("team".into(), "recs".into())]).is_ok());
        assert!(labels([("example.com/team".into(), "recs".into())]).is_ok());
        assert!(labels([("-bad".into(), "x".into())]).is_err());
        assert!(labels([("/x".into(), "x".into())]).is_err());
    }
}
