//! The reqwest client of the JobManager REST API.
//!
//! Paths and payloads follow what a Flink 1.20 JobManager sends on the wire. Flink reports
//! errors as `{"errors": [...]}` whose entries are whole Java stack traces; they are reduced to
//! the message of their innermost cause before they leave this module.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, debug, warn};

use super::{
    FlinkError, FlinkJobStatus, JobManager, JobOverview, JobProgress, SavepointFormat,
    SavepointStatus, TaskManagerMemory,
};
use crate::java_error::{MAX_MESSAGE_CHARS, innermost_cause, strip_server_side_wrapper, truncate};
use crate::metrics::{self, Endpoint};
use crate::trace;

/// What Flink's router answers (HTTP 404) for a path no handler serves, as opposed to a
/// handler's own "job not found".
const UNKNOWN_ROUTE_PREFIX: &str = "Not found: ";

/// The endpoints, as the metrics name them.
const OVERVIEW: Endpoint = Endpoint {
    method: "GET",
    path: "/overview",
};
const JOBS_OVERVIEW: Endpoint = Endpoint {
    method: "GET",
    path: "/jobs/overview",
};
const JOB: Endpoint = Endpoint {
    method: "GET",
    path: "/jobs/:jobid",
};
const JOB_EXCEPTIONS: Endpoint = Endpoint {
    method: "GET",
    path: "/jobs/:jobid/exceptions",
};
const CANCEL_JOB: Endpoint = Endpoint {
    method: "PATCH",
    path: "/jobs/:jobid",
};
const STOP_JOB: Endpoint = Endpoint {
    method: "POST",
    path: "/jobs/:jobid/stop",
};
const TRIGGER_SAVEPOINT: Endpoint = Endpoint {
    method: "POST",
    path: "/jobs/:jobid/savepoints",
};
const SAVEPOINT_STATUS: Endpoint = Endpoint {
    method: "GET",
    path: "/jobs/:jobid/savepoints/:triggerid",
};
const TASKMANAGERS: Endpoint = Endpoint {
    method: "GET",
    path: "/taskmanagers",
};
const TASKMANAGER_METRICS: Endpoint = Endpoint {
    method: "GET",
    path: "/taskmanagers/:taskmanagerid/metrics",
};

/// Every endpoint the client calls.
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    OVERVIEW,
    JOBS_OVERVIEW,
    JOB,
    JOB_EXCEPTIONS,
    CANCEL_JOB,
    STOP_JOB,
    TRIGGER_SAVEPOINT,
    SAVEPOINT_STATUS,
    TASKMANAGERS,
    TASKMANAGER_METRICS,
];

/// The TaskManager metrics [`TaskManagerMemory`] holds.
const HEAP_USED: &str = "Status.JVM.Memory.Heap.Used";
const HEAP_MAX: &str = "Status.JVM.Memory.Heap.Max";
const METASPACE_USED: &str = "Status.JVM.Memory.Metaspace.Used";
const METASPACE_MAX: &str = "Status.JVM.Memory.Metaspace.Max";

/// The JobManager REST client.
#[derive(Debug, Clone)]
pub struct RestJobManager {
    http: Client,
    base_url: Url,
}

impl RestJobManager {
    /// Creates a client of the JobManager REST API at `base_url`.
    ///
    /// `base_url` is e.g. `http://jobmanager:8081`; every request gives up after
    /// `request_timeout`.
    pub fn new(base_url: &str, request_timeout: Duration) -> Result<Self, FlinkError> {
        let invalid_url =
            |reason: String| FlinkError::Unreachable(format!("invalid url {base_url:?}: {reason}"));
        let mut parsed =
            Url::parse(base_url.trim()).map_err(|error| invalid_url(error.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(invalid_url("expected an http or https url".to_owned()));
        }
        parsed.set_query(None);
        parsed.set_fragment(None);
        let http = Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .build()
            .map_err(|error| {
                FlinkError::Unreachable(format!(
                    "cannot build http client: {}",
                    error_chain(&error)
                ))
            })?;
        Ok(Self {
            http,
            base_url: parsed,
        })
    }

    /// Builds the url of an endpoint; each segment is percent-encoded, so an id can never
    /// change which endpoint is called.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        // `new` rejected the urls that cannot have path segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request and reads the whole reply, in a span of its own (the Flink job id in
    /// its path an attribute). Every request to the JobManager passes here, and is counted
    /// under `endpoint`.
    async fn execute(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
    ) -> Result<Reply, FlinkError> {
        let started = Instant::now();
        let (http, request) = request.build_split();
        let request = request.map_err(transport_error)?;
        let span = trace::http_request_span("jobmanager", endpoint, request.url());
        let answer = async {
            let response = http.execute(request).await?;
            let status = response.status();
            response.text().await.map(|body| Reply { status, body })
        }
        .instrument(span.clone())
        .await;
        match answer {
            Ok(reply) => {
                // A 409 to a cancel says the job had already stopped: not a failure.
                let answered = reply.status.is_success()
                    || (endpoint == CANCEL_JOB && reply.status == StatusCode::CONFLICT);
                let failed = !answered;
                trace::record_http_status(&span, Some(reply.status.as_u16()), failed);
                metrics::jobmanager_request(
                    endpoint,
                    started,
                    failed.then_some(Some(reply.status.as_u16())),
                );
                Ok(reply)
            }
            Err(error) => {
                trace::record_http_status(&span, None, true);
                metrics::jobmanager_request(endpoint, started, Some(None));
                Err(transport_error(error))
            }
        }
    }

    /// Reads `GET /overview`.
    async fn overview(&self) -> Result<Overview, FlinkError> {
        let reply = self
            .execute(OVERVIEW, self.http.get(self.url(&["overview"])))
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(None));
        }
        reply.decode("GET /overview")
    }

    /// Sends an asynchronous savepoint operation's trigger (a stop or a savepoint) and returns
    /// the trigger id Flink answers with (the one asked for).
    async fn trigger(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        flink_job_id: &str,
        trigger_id: &str,
    ) -> Result<String, FlinkError> {
        let reply = self.execute(endpoint, request).await?;
        if !reply.status.is_success() {
            return Err(reply.failure(Some(flink_job_id)));
        }
        let accepted: TriggerAccepted = reply.decode(endpoint.path)?;
        if accepted.request_id != trigger_id {
            warn!(
                flink_job_id = %flink_job_id,
                trigger_id = %trigger_id,
                request_id = %accepted.request_id,
                path = endpoint.path,
                "flink answered a savepoint trigger with another trigger id"
            );
        }
        Ok(accepted.request_id)
    }
}

#[async_trait]
impl JobManager for RestJobManager {
    async fn ping(&self) -> Result<(), FlinkError> {
        let overview = self.overview().await?;
        debug!(
            flink_version = overview.flink_version.as_deref().unwrap_or("unknown"),
            "flink jobmanager answered"
        );
        Ok(())
    }

    async fn flink_version(&self) -> Result<String, FlinkError> {
        self.overview()
            .await?
            .flink_version
            .ok_or_else(|| FlinkError::Protocol("GET /overview names no flink-version".to_owned()))
    }

    async fn jobs_overview(&self) -> Result<Vec<JobOverview>, FlinkError> {
        let reply = self
            .execute(
                JOBS_OVERVIEW,
                self.http.get(self.url(&["jobs", "overview"])),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(None));
        }
        let overview: JobsOverview = reply.decode("GET /jobs/overview")?;
        overview
            .jobs
            .into_iter()
            .map(|job| {
                let status = FlinkJobStatus::parse(&job.state).ok_or_else(|| {
                    FlinkError::Protocol(format!(
                        "unknown flink job state {:?} of job {} in GET /jobs/overview",
                        job.state, job.jid
                    ))
                })?;
                Ok(JobOverview {
                    flink_job_id: job.jid,
                    status,
                    last_modification: job.last_modification,
                })
            })
            .collect()
    }

    async fn job_status(&self, flink_job_id: &str) -> Result<FlinkJobStatus, FlinkError> {
        Ok(self.job_progress(flink_job_id).await?.status)
    }

    async fn job_progress(&self, flink_job_id: &str) -> Result<JobProgress, FlinkError> {
        let reply = self
            .execute(JOB, self.http.get(self.url(&["jobs", flink_job_id])))
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(Some(flink_job_id)));
        }
        let details: JobDetails = reply.decode("GET /jobs/{jobid}")?;
        let status = FlinkJobStatus::parse(&details.state).ok_or_else(|| {
            FlinkError::Protocol(format!("unknown flink job state {:?}", details.state))
        })?;
        Ok(JobProgress {
            status,
            tasks_deployed: details.vertices.iter().any(|v| v.start_time > 0),
        })
    }

    async fn root_cause(&self, flink_job_id: &str) -> Result<Option<String>, FlinkError> {
        let reply = self
            .execute(
                JOB_EXCEPTIONS,
                self.http
                    .get(self.url(&["jobs", flink_job_id, "exceptions"])),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(Some(flink_job_id)));
        }
        let exceptions: JobExceptions = reply.decode("GET /jobs/{jobid}/exceptions")?;
        Ok(exceptions
            .latest_stack_trace()
            .map(innermost_cause)
            .filter(|message| !message.is_empty()))
    }

    async fn cancel(&self, flink_job_id: &str) -> Result<(), FlinkError> {
        let mut url = self.url(&["jobs", flink_job_id]);
        url.query_pairs_mut().append_pair("mode", "cancel");
        let reply = self.execute(CANCEL_JOB, self.http.patch(url)).await?;
        // Flink acknowledges cancelling a cancelled job with 202, and a job that finished or
        // failed on its own with 409: either way the job is no longer running.
        if reply.status.is_success() || reply.status == StatusCode::CONFLICT {
            debug!(flink_job_id = %flink_job_id, http_status = reply.status.as_u16(), "flink job cancel acknowledged");
            return Ok(());
        }
        Err(reply.failure(Some(flink_job_id)))
    }

    async fn stop_with_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        let request = StopWithSavepointRequest {
            trigger_id,
            drain: false,
            target_directory,
            format_type: format.as_str(),
        };
        let request = self
            .http
            .post(self.url(&["jobs", flink_job_id, "stop"]))
            .json(&request);
        self.trigger(STOP_JOB, request, flink_job_id, trigger_id)
            .await
    }

    async fn trigger_savepoint(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
        target_directory: Option<&str>,
        format: SavepointFormat,
    ) -> Result<String, FlinkError> {
        let request = TriggerSavepointRequest {
            trigger_id,
            cancel_job: false,
            target_directory,
            format_type: format.as_str(),
        };
        let request = self
            .http
            .post(self.url(&["jobs", flink_job_id, "savepoints"]))
            .json(&request);
        self.trigger(TRIGGER_SAVEPOINT, request, flink_job_id, trigger_id)
            .await
    }

    async fn savepoint_status(
        &self,
        flink_job_id: &str,
        trigger_id: &str,
    ) -> Result<SavepointStatus, FlinkError> {
        let reply = self
            .execute(
                SAVEPOINT_STATUS,
                self.http
                    .get(self.url(&["jobs", flink_job_id, "savepoints", trigger_id])),
            )
            .await?;
        if !reply.status.is_success() {
            // A 404 here names an unknown trigger id (or one Flink has forgotten), not a job.
            return Err(reply.failure(None));
        }
        let operation: SavepointOperation =
            reply.decode("GET /jobs/{jobid}/savepoints/{triggerid}")?;
        operation.into_status()
    }

    async fn taskmanagers(&self) -> Result<Vec<String>, FlinkError> {
        let reply = self
            .execute(TASKMANAGERS, self.http.get(self.url(&["taskmanagers"])))
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(None));
        }
        let list: TaskManagerList = reply.decode("GET /taskmanagers")?;
        Ok(list
            .taskmanagers
            .into_iter()
            .map(|taskmanager| taskmanager.id)
            .collect())
    }

    async fn taskmanager_memory(
        &self,
        taskmanager_id: &str,
    ) -> Result<TaskManagerMemory, FlinkError> {
        let mut url = self.url(&["taskmanagers", taskmanager_id, "metrics"]);
        url.query_pairs_mut().append_pair(
            "get",
            &[HEAP_USED, HEAP_MAX, METASPACE_USED, METASPACE_MAX].join(","),
        );
        let reply = self
            .execute(TASKMANAGER_METRICS, self.http.get(url))
            .await?;
        if !reply.status.is_success() {
            return Err(reply.failure(None));
        }
        let metrics: Vec<MetricValue> =
            reply.decode("GET /taskmanagers/{taskmanagerid}/metrics")?;
        let memory = memory_of(&metrics).map_err(|problem| {
            FlinkError::Protocol(format!(
                "GET /taskmanagers/{{taskmanagerid}}/metrics of taskmanager {taskmanager_id}: {problem}"
            ))
        })?;
        if memory == TaskManagerMemory::default() {
            debug!(taskmanager_id = %taskmanager_id, "the jobmanager has no memory metrics of the taskmanager yet");
        }
        Ok(memory)
    }
}

/// `GET /taskmanagers`, only the part the broker reads.
#[derive(Deserialize)]
struct TaskManagerList {
    taskmanagers: Vec<TaskManagerEntry>,
}

#[derive(Deserialize)]
struct TaskManagerEntry {
    id: String,
}

/// One entry of `GET /taskmanagers/{id}/metrics`: `{"id": "Status.JVM.Memory.Heap.Used",
/// "value": "34402096"}`; the value is a string, absent when the metric was not asked for.
#[derive(Deserialize)]
struct MetricValue {
    id: String,
    value: Option<String>,
}

/// Picks the memory metrics out of a metrics reply; a metric missing from it is None.
fn memory_of(metrics: &[MetricValue]) -> Result<TaskManagerMemory, String> {
    let bytes = |name: &str| -> Result<Option<u64>, String> {
        match metrics.iter().find(|metric| metric.id == name) {
            Some(MetricValue {
                value: Some(value), ..
            }) => parse_bytes(value)
                .map_err(|()| format!("{name} is {value:?}, not a number of bytes")),
            _ => Ok(None),
        }
    };
    Ok(TaskManagerMemory {
        heap_used: bytes(HEAP_USED)?,
        heap_max: bytes(HEAP_MAX)?,
        metaspace_used: bytes(METASPACE_USED)?,
        metaspace_max: bytes(METASPACE_MAX)?,
    })
}

/// Parses a byte count as Flink prints a JVM memory gauge (a Java long, `-1` for a limit the
/// JVM does not set, which is None).
fn parse_bytes(value: &str) -> Result<Option<u64>, ()> {
    let value = value.trim();
    if let Ok(bytes) = value.parse::<i64>() {
        return Ok(u64::try_from(bytes).ok());
    }
    match value.parse::<f64>() {
        Ok(bytes) if bytes.is_finite() && bytes >= 0.0 => Ok(Some(bytes as u64)),
        Ok(bytes) if bytes.is_finite() => Ok(None),
        _ => Err(()),
    }
}

/// A JobManager reply, read in full.
struct Reply {
    status: StatusCode,
    body: String,
}

impl Reply {
    /// Decodes the JSON body; `endpoint` names the call in the error.
    fn decode<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T, FlinkError> {
        serde_json::from_str(&self.body).map_err(|error| {
            FlinkError::Protocol(format!(
                "{endpoint} (http {}): {error}",
                self.status.as_u16()
            ))
        })
    }

    /// Turns an unsuccessful reply into an error. A 404 from a job's own endpoint means the
    /// JobManager does not know `flink_job_id`.
    fn failure(&self, flink_job_id: Option<&str>) -> FlinkError {
        let errors = serde_json::from_str::<ErrorBody>(&self.body)
            .map(|body| body.errors)
            .unwrap_or_default();
        if self.status == StatusCode::NOT_FOUND
            && let Some(flink_job_id) = flink_job_id
            && !errors.is_empty()
            && !errors
                .iter()
                .any(|error| error.starts_with(UNKNOWN_ROUTE_PREFIX))
        {
            return FlinkError::JobNotFound(flink_job_id.to_owned());
        }
        FlinkError::Server {
            status: self.status.as_u16(),
            message: error_message(&errors, &self.body),
        }
    }
}

/// `GET /overview`.
#[derive(Deserialize)]
struct Overview {
    #[serde(rename = "flink-version")]
    flink_version: Option<String>,
}

/// `GET /jobs/{jobid}`, only the part the broker reads.
#[derive(Deserialize)]
struct JobDetails {
    state: String,
    #[serde(default)]
    vertices: Vec<VertexDetails>,
}

/// `GET /jobs/overview`.
#[derive(Deserialize)]
struct JobsOverview {
    jobs: Vec<JobOverviewEntry>,
}

/// One job of `GET /jobs/overview`.
#[derive(Deserialize)]
struct JobOverviewEntry {
    jid: String,
    state: String,
    #[serde(rename = "last-modification", default)]
    last_modification: i64,
}

/// A vertex of `GET /jobs/{jobid}`: its `start-time` is the earliest time one of its tasks
/// was deployed, -1 while none was.
#[derive(Deserialize)]
struct VertexDetails {
    #[serde(rename = "start-time", default = "never")]
    start_time: i64,
}

fn never() -> i64 {
    -1
}

/// `GET /jobs/{jobid}/exceptions`.
#[derive(Deserialize)]
struct JobExceptions {
    #[serde(rename = "root-exception")]
    root_exception: Option<String>,
    #[serde(rename = "exceptionHistory")]
    exception_history: Option<ExceptionHistory>,
    #[serde(rename = "all-exceptions", default)]
    all_exceptions: Vec<TaskException>,
}

#[derive(Deserialize)]
struct ExceptionHistory {
    #[serde(default)]
    entries: Vec<ExceptionHistoryEntry>,
}

#[derive(Deserialize)]
struct ExceptionHistoryEntry {
    #[serde(rename = "exceptionName")]
    exception_name: Option<String>,
    stacktrace: Option<String>,
}

#[derive(Deserialize)]
struct TaskException {
    exception: Option<String>,
}

impl JobExceptions {
    /// Returns the stack trace of the failure that ended (or last restarted) the job.
    fn latest_stack_trace(&self) -> Option<&str> {
        let latest_entry = self
            .exception_history
            .as_ref()
            .and_then(|history| history.entries.first());
        non_blank(self.root_exception.as_deref())
            .or_else(|| latest_entry.and_then(|entry| non_blank(entry.stacktrace.as_deref())))
            .or_else(|| {
                self.all_exceptions
                    .iter()
                    .find_map(|task| non_blank(task.exception.as_deref()))
            })
            .or_else(|| latest_entry.and_then(|entry| non_blank(entry.exception_name.as_deref())))
    }
}

/// `POST /jobs/{jobid}/stop`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopWithSavepointRequest<'a> {
    trigger_id: &'a str,
    drain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_directory: Option<&'a str>,
    format_type: &'static str,
}

/// `POST /jobs/{jobid}/savepoints` (its fields are kebab-case but for the two camelCase ones,
/// as Flink's `SavepointTriggerRequestBody` names them).
#[derive(Serialize)]
struct TriggerSavepointRequest<'a> {
    #[serde(rename = "triggerId")]
    trigger_id: &'a str,
    #[serde(rename = "cancel-job")]
    cancel_job: bool,
    #[serde(rename = "target-directory", skip_serializing_if = "Option::is_none")]
    target_directory: Option<&'a str>,
    #[serde(rename = "formatType")]
    format_type: &'static str,
}

/// The 202 reply of an asynchronous operation's trigger.
#[derive(Deserialize)]
struct TriggerAccepted {
    #[serde(rename = "request-id")]
    request_id: String,
}

/// `GET /jobs/{jobid}/savepoints/{triggerid}`.
#[derive(Deserialize)]
struct SavepointOperation {
    status: OperationStatus,
    operation: Option<SavepointOutcome>,
}

#[derive(Deserialize)]
struct OperationStatus {
    id: String,
}

#[derive(Deserialize)]
struct SavepointOutcome {
    location: Option<String>,
    #[serde(rename = "failure-cause")]
    failure_cause: Option<FailureCause>,
}

/// Flink's serialized throwable; `serialized-throwable` (Java serialization) is ignored.
#[derive(Deserialize)]
struct FailureCause {
    class: Option<String>,
    #[serde(rename = "stack-trace")]
    stack_trace: Option<String>,
}

impl SavepointOperation {
    fn into_status(self) -> Result<SavepointStatus, FlinkError> {
        match self.status.id.as_str() {
            "IN_PROGRESS" => Ok(SavepointStatus::InProgress),
            "COMPLETED" => match self.operation {
                Some(SavepointOutcome {
                    location: Some(location),
                    ..
                }) => Ok(SavepointStatus::Completed { location }),
                Some(SavepointOutcome {
                    failure_cause: Some(cause),
                    ..
                }) => {
                    let message = non_blank(cause.stack_trace.as_deref())
                        .map(innermost_cause)
                        .filter(|message| !message.is_empty())
                        .or(cause.class)
                        .unwrap_or_else(|| "savepoint failed without a cause".to_owned());
                    Ok(SavepointStatus::Failed { cause: message })
                }
                _ => Err(FlinkError::Protocol(
                    "completed savepoint without location or failure cause".to_owned(),
                )),
            },
            other => Err(FlinkError::Protocol(format!(
                "unknown savepoint operation status {other:?}"
            ))),
        }
    }
}

/// Flink's error reply: `{"errors": ["...", ...]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

/// Reduces Flink's error entries to one short message; falls back to the raw body when it
/// is not Flink's error JSON.
fn error_message(errors: &[String], raw_body: &str) -> String {
    let mut messages: Vec<String> = Vec::new();
    for error in errors {
        let message = innermost_cause(strip_server_side_wrapper(error));
        if !message.is_empty() && !messages.contains(&message) {
            messages.push(message);
        }
    }
    if messages.is_empty() {
        let raw_body = raw_body.trim();
        return if raw_body.is_empty() {
            "empty response body".to_owned()
        } else {
            truncate(raw_body, MAX_MESSAGE_CHARS, "…")
        };
    }
    truncate(&messages.join("; "), MAX_MESSAGE_CHARS, "…")
}

/// Returns the text unless it is missing or blank.
fn non_blank(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.trim().is_empty())
}

/// Maps a failure to send a request or read its reply.
fn transport_error(error: reqwest::Error) -> FlinkError {
    FlinkError::Unreachable(error_chain(&error))
}

/// Joins an error's message with those of its sources ("connection refused" is a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.contains(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Flink 1.20.3 JobManager's answer to `GET /taskmanagers` with one TaskManager.
    const TASKMANAGERS_REPLY: &str = r#"{"taskmanagers":[{"id":"127.0.0.1:46122-cc51ab","path":"pekko.tcp://flink@127.0.0.1:46122/user/rpc/taskmanager_0","dataPort":45427,"jmxPort":-1,"timeSinceLastHeartbeat":1796401592436,"slotsNumber":4,"freeSlots":4,"totalResource":{"cpuCores":4.0,"taskHeapMemory":287,"taskOffHeapMemory":0,"managedMemory":435,"networkMemory":108,"extendedResources":{}},"freeResource":{"cpuCores":4.0,"taskHeapMemory":287,"taskOffHeapMemory":0,"managedMemory":435,"networkMemory":108,"extendedResources":{}},"hardware":{"cpuCores":2,"physicalMemory":25276203008,"freeMemory":436207616,"managedMemory":456340282},"memoryConfiguration":{"frameworkHeap":134217728,"taskHeap":301989880,"frameworkOffHeap":134217728,"taskOffHeap":0,"networkMemory":114085070,"managedMemory":456340282,"jvmMetaspace":268435456,"jvmOverhead":201326592,"totalFlinkMemory":1140850688,"totalProcessMemory":1610612736}}]}"#;

    /// Its answer to `GET /taskmanagers/{id}/metrics?get=...` once its metric fetcher ran.
    const MEMORY_REPLY: &str = r#"[{"id":"Status.JVM.Memory.Metaspace.Used","value":"38437336"},{"id":"Status.JVM.Memory.Metaspace.Max","value":"268435456"},{"id":"Status.JVM.Memory.Heap.Used","value":"34402096"},{"id":"Status.JVM.Memory.Heap.Max","value":"436207616"}]"#;

    #[test]
    fn taskmanager_ids_come_from_the_list() {
        let list: TaskManagerList = serde_json::from_str(TASKMANAGERS_REPLY).expect("list");
        let ids: Vec<String> = list.taskmanagers.into_iter().map(|tm| tm.id).collect();
        assert_eq!(ids, ["127.0.0.1:46122-cc51ab"]);
    }

    #[test]
    fn memory_metrics_are_read_by_name_in_any_order() {
        let metrics: Vec<MetricValue> = serde_json::from_str(MEMORY_REPLY).expect("metrics");
        assert_eq!(
            memory_of(&metrics),
            Ok(TaskManagerMemory {
                heap_used: Some(34_402_096),
                heap_max: Some(436_207_616),
                metaspace_used: Some(38_437_336),
                metaspace_max: Some(268_435_456),
            })
        );
    }

    #[test]
    fn memory_metrics_not_fetched_yet_or_unset_limits_are_none() {
        // Before its metric fetcher has run the JobManager answers an empty list; an unknown
        // TaskManager gets one too.
        let metrics: Vec<MetricValue> = serde_json::from_str("[]").expect("metrics");
        assert_eq!(memory_of(&metrics), Ok(TaskManagerMemory::default()));
        let metrics: Vec<MetricValue> = serde_json::from_str(
            r#"[{"id":"Status.JVM.Memory.Metaspace.Used","value":"38550688"},{"id":"Status.JVM.Memory.Metaspace.Max","value":"-1"}]"#,
        )
        .expect("metrics");
        assert_eq!(
            memory_of(&metrics),
            Ok(TaskManagerMemory {
                metaspace_used: Some(38_550_688),
                ..TaskManagerMemory::default()
            })
        );
    }

    #[test]
    fn a_memory_metric_that_is_no_number_names_itself() {
        let metrics: Vec<MetricValue> =
            serde_json::from_str(r#"[{"id":"Status.JVM.Memory.Heap.Used","value":"lots"}]"#)
                .expect("metrics");
        let problem = memory_of(&metrics).expect_err("not a number");
        assert!(problem.contains("Status.JVM.Memory.Heap.Used"), "{problem}");
        assert!(problem.contains("lots"), "{problem}");
        assert_eq!(parse_bytes("3.8550688E7"), Ok(Some(38_550_688)));
    }

    #[test]
    fn unwraps_unexpected_server_side_exceptions() {
        let errors = vec![
            "Internal server error.".to_owned(),
            "<Exception on server side:\njava.util.concurrent.CompletionException: x\n\tat A.b(A.java:1)\nCaused by: java.lang.IllegalStateException: bad state\n\tat C.d(C.java:2)\n\nEnd of exception on server side>".to_owned(),
        ];
        assert_eq!(
            error_message(&errors, ""),
            "Internal server error.; java.lang.IllegalStateException: bad state"
        );
    }
}
