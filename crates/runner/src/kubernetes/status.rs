//! Pure readings of what the API reports: a Job's state, its pod's exit code and log.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::resources::{FETCH_CONTAINER, SUBMITTER_CONTAINER};
use crate::SubmitterState;

/// Reads the submitter's state from its Job; a failure carries no exit code yet (see
/// [`failed_exit_code`]).
pub(super) fn submitter_state(job: &Job) -> SubmitterState {
    let status = job.status.as_ref();
    let count = |field: fn(&k8s_openapi::api::batch::v1::JobStatus) -> Option<i32>| {
        status.and_then(field).unwrap_or(0)
    };
    let true_condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if count(|s| s.succeeded) >= 1 || true_condition("Complete").is_some() {
        return SubmitterState::Succeeded;
    }
    // FailureTarget comes first: the controller has decided, and terminates the pod.
    let failure = true_condition("Failed").or_else(|| true_condition("FailureTarget"));
    if count(|s| s.failed) >= 1 || failure.is_some() {
        let reason = failure
            .map(|condition| {
                let reason = condition.reason.as_deref().unwrap_or("Failed");
                match condition.message.as_deref() {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason.to_string(),
                }
            })
            .unwrap_or_else(|| "the submitter pod failed".to_string());
        return SubmitterState::Failed {
            exit_code: None,
            reason,
        };
    }
    if count(|s| s.active) >= 1 {
        return SubmitterState::Running;
    }
    SubmitterState::Pending
}

/// Returns the newest pod, by creation time.
pub(super) fn newest_pod(pods: Vec<Pod>) -> Option<Pod> {
    pods.into_iter().max_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
    })
}

/// Returns the exit code of the container that failed: the init container when it exited
/// non-zero, else the submitter's.
pub(super) fn failed_exit_code(pod: &Pod) -> Option<i32> {
    let status = pod.status.as_ref()?;
    let init_failure = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| c.name == FETCH_CONTAINER)
        .find_map(terminated_exit_code)
        .filter(|code| *code != 0);
    init_failure.or_else(|| {
        status
            .container_statuses
            .iter()
            .flatten()
            .filter(|c| c.name == SUBMITTER_CONTAINER)
            .find_map(terminated_exit_code)
    })
}

/// Returns the container whose log tells what happened: the init container while it has not
/// completed successfully, else the submitter.
pub(super) fn log_container(pod: &Pod) -> &'static str {
    let fetch = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.name == FETCH_CONTAINER);
    match fetch {
        Some(status) if terminated_exit_code(status) != Some(0) => FETCH_CONTAINER,
        _ => SUBMITTER_CONTAINER,
    }
}

/// Decodes a log read with a byte limit: an incomplete character at the cut is dropped, other
/// invalid bytes become U+FFFD.
pub(super) fn decode_log(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let utf8_error = error.utf8_error();
            let mut bytes = error.into_bytes();
            if utf8_error.error_len().is_none() {
                bytes.truncate(utf8_error.valid_up_to());
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// Returns the last `max_bytes` bytes of `text` or fewer, starting on a character boundary.
pub(super) fn tail(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn terminated_exit_code(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": "flinkbroker-py-ab" },
            "status": status,
        }))
        .expect("job")
    }

    fn pod(name: &str, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "creationTimestamp": created },
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn job_counts_and_conditions_map_to_states() {
        assert_eq!(submitter_state(&job(json!({}))), SubmitterState::Pending);
        assert_eq!(
            submitter_state(&job(json!({ "active": 1 }))),
            SubmitterState::Running
        );
        assert_eq!(
            submitter_state(&job(json!({ "succeeded": 1, "conditions": [
                { "type": "SuccessCriteriaMet", "status": "True" },
                { "type": "Complete", "status": "True" },
            ]}))),
            SubmitterState::Succeeded
        );
        assert_eq!(
            submitter_state(&job(json!({ "failed": 1, "conditions": [
                { "type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                  "message": "Job has reached the specified backoff limit" },
                { "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                  "message": "Job has reached the specified backoff limit" },
            ]}))),
            SubmitterState::Failed {
                exit_code: None,
                reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            }
        );
        assert_eq!(
            submitter_state(&job(json!({ "active": 1, "conditions": [
                { "type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded" },
            ]}))),
            SubmitterState::Failed {
                exit_code: None,
                reason: "DeadlineExceeded".into(),
            }
        );
        assert_eq!(
            submitter_state(&job(json!({ "failed": 1 }))),
            SubmitterState::Failed {
                exit_code: None,
                reason: "the submitter pod failed".into(),
            }
        );
        assert_eq!(
            submitter_state(&job(json!({ "active": 1, "conditions": [
                { "type": "Failed", "status": "False" },
            ]}))),
            SubmitterState::Running
        );
    }

    #[test]
    fn newest_pod_wins() {
        let pods = vec![
            pod("a", "2026-11-23T10:00:00Z", json!({})),
            pod("c", "2026-11-23T10:05:00Z", json!({})),
            pod("b", "2026-11-23T10:01:00Z", json!({})),
        ];
        let newest = newest_pod(pods).expect("a pod");
        assert_eq!(newest.metadata.name.as_deref(), Some("c"));
        assert!(newest_pod(Vec::new()).is_none());
    }

    #[test]
    fn exit_code_and_log_come_from_the_container_that_failed() {
        let submitter_failed = pod(
            "p",
            "2026-11-23T10:00:00Z",
            json!({
                "initContainerStatuses": [{ "name": "fetch-program", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": { "terminated": { "exitCode": 0 } } }],
                "containerStatuses": [{ "name": "submitter", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": { "terminated": { "exitCode": 1, "reason": "Error" } } }],
            }),
        );
        assert_eq!(failed_exit_code(&submitter_failed), Some(1));
        assert_eq!(log_container(&submitter_failed), "submitter");

        let fetch_failed = pod(
            "p",
            "2026-11-23T10:00:00Z",
            json!({
                "initContainerStatuses": [{ "name": "fetch-program", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": { "terminated": { "exitCode": 1 } } }],
                "containerStatuses": [{ "name": "submitter", "image": "i", "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": { "waiting": { "reason": "PodInitializing" } } }],
            }),
        );
        assert_eq!(failed_exit_code(&fetch_failed), Some(1));
        assert_eq!(log_container(&fetch_failed), "fetch-program");

        let no_status = pod("p", "2026-11-23T10:00:00Z", json!({}));
        assert_eq!(failed_exit_code(&no_status), None);
        assert_eq!(log_container(&no_status), "submitter");
    }

    #[test]
    fn log_cut_inside_a_character_drops_the_partial_character() {
        let mut bytes = "ok é".as_bytes().to_vec();
        bytes.pop();
        assert_eq!(decode_log(bytes), "ok ");
        assert_eq!(decode_log(vec![b'a', 0xff, b'b']), "a\u{fffd}b");
    }

    #[test]
    fn tail_starts_on_a_character_boundary() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        // "é" is two bytes; a cut inside it moves forward.
        assert_eq!(tail("aébc", 4), "ébc");
        assert_eq!(tail("aébc", 3), "bc");
    }
}
