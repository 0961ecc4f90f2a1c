//! The Flink cluster behind the gateway: the jobs its statements start, how each ends (on its
//! own, cancelled, stopped with a savepoint, failed), and the JobManager REST API over them
//! (`/config`, `/overview`, `/jobs/...`, and `/taskmanagers/...` of its one TaskManager) on the
//! gateway's port.
//!
//! A cancel is acknowledged at once and takes effect at once, but `GET /jobs/{id}` keeps
//! reporting RUNNING for [`StandinConfig::cancel_delay`](super::StandinConfig::cancel_delay), as
//! the JobManager's execution graph cache does (`/jobs/overview` is not cached). A
//! stop-with-savepoint is IN_PROGRESS for that long, then the job is FINISHED; a savepoint
//! (`POST /jobs/{id}/savepoints`) is IN_PROGRESS as long and leaves the job running. Error bodies
//! reuse the recorded ones (`tests/fixtures/jobmanager/`).

use std::time::{Duration, Instant, SystemTime};

use axum::http::Method;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::exceptions::{self, Throwable};
use super::gateway::Reply;
use super::types::epoch_millis;

mod taskmanagers;

const JOB_NOT_FOUND: &str =
    include_str!("../../../../tests/fixtures/jobmanager/job-not-found.json");
const JOB_ID_MALFORMED: &str =
    include_str!("../../../../tests/fixtures/jobmanager/job-id-malformed.json");
const FAILED_JOB_EXCEPTIONS: &str =
    include_str!("../../../../tests/fixtures/jobmanager/exceptions-failed-job.json");
/// The job id and the path value named by those recordings.
const RECORDED_JOB_ID: &str = "ffffffffffffffffffffffffffffffff";
const RECORDED_BAD_JOB_ID: &str = "not-a-job-id";
const FLINK_COMMIT: &str = "01e3a6d";
const FLINK_REVISION: &str = "01e3a6d @ 2025-09-20T02:22:05+02:00";
const SLOTS: i64 = 4;
/// How Flink fails a job it cannot find slots for (seen on a busy standalone session cluster).
const NO_RESOURCES: &str = "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could not acquire the minimum required resources.";
/// Vertex ids are hashes of the job graph; the recordings show the same ones across jobs.
const VERTEX_ID: &str = "bc764cd8ddf7a0cff126f51c16239658";
const SLOT_SHARING_GROUP: &str = "d71d00db8b9acbfc196d42a856bf019d";
const TASK_STATES: [&str; 10] = [
    "INITIALIZING",
    "FINISHED",
    "CANCELED",
    "RUNNING",
    "RECONCILING",
    "FAILED",
    "SCHEDULED",
    "CREATED",
    "DEPLOYING",
    "CANCELING",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Finished,
    Canceled,
    Failed,
}

impl JobStatus {
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// A cancel or stop that was acknowledged; the job ends as `to` at `at`.
struct Ending {
    at: Instant,
    to: JobStatus,
}

pub struct Job {
    pub id: String,
    pub name: String,
    pub status: JobStatus,
    pub start_wall: SystemTime,
    started: Instant,
    streaming: bool,
    /// When a bounded job finishes by itself.
    natural_end: Option<Instant>,
    ending: Option<Ending>,
    ended: Option<Instant>,
    /// Until then `GET /jobs/{id}` shows the job as it was before its cancel.
    stale_until: Option<Instant>,
    root_cause: Option<String>,
    /// False for a job refused at once: none of its tasks was deployed.
    deployed: bool,
}

impl Job {
    /// The status and end `GET /jobs/{id}` reports at `now`.
    fn shown(&self, now: Instant) -> (JobStatus, Option<Instant>) {
        match self.stale_until {
            Some(until) if now < until => (JobStatus::Running, None),
            _ => (self.status, self.ended),
        }
    }

    /// The wall-clock time of `at`, in milliseconds since the epoch.
    fn millis(&self, at: Instant) -> i64 {
        let offset = at.saturating_duration_since(self.started).as_millis() as i64;
        epoch_millis(self.start_wall) + offset
    }
}

/// Which asynchronous savepoint operation a trigger starts.
#[derive(Clone, Copy)]
enum SavepointKind {
    /// `POST /jobs/{id}/stop`.
    Stop,
    /// `POST /jobs/{id}/savepoints`.
    Savepoint,
}

impl SavepointKind {
    /// The request body class Flink names when it cannot read one.
    fn request_body(self) -> &'static str {
        match self {
            SavepointKind::Stop => "StopWithSavepointRequestBody",
            SavepointKind::Savepoint => "SavepointTriggerRequestBody",
        }
    }

    /// The field naming the target directory (camelCase for a stop, kebab-case otherwise).
    fn directory_field(self) -> &'static str {
        match self {
            SavepointKind::Stop => "targetDirectory",
            SavepointKind::Savepoint => "target-directory",
        }
    }
}

/// A savepoint or a stop-with-savepoint, by the client's trigger id.
struct Savepoint {
    job_id: String,
    trigger_id: String,
    ready_at: Instant,
    /// The savepoint's location, or the class and message of why it failed.
    outcome: Result<String, (&'static str, String)>,
}

/// The cluster's jobs.
pub struct Cluster {
    jobs: Vec<Job>,
    savepoints: Vec<Savepoint>,
    cancel_delay: Duration,
    /// Jobs still to be refused at once, as a cluster without free slots does.
    refusals: u32,
}

/// A job id as Flink parses it (32 hex digits), lower-cased.
pub fn parse_job_id(text: &str) -> Option<String> {
    (text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

fn new_job_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Where a savepoint of `job_id` goes in `directory`, written the way Flink's `Path` prints it.
pub fn savepoint_location(directory: &str, job_id: &str) -> String {
    let directory = directory.trim_end_matches('/');
    let directory = match directory.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => format!("file:{path}"),
        _ if directory.starts_with('/') => format!("file:{directory}"),
        _ => directory.to_string(),
    };
    format!(
        "{directory}/savepoint-{}-{}",
        &job_id[..6],
        &new_job_id()[..12]
    )
}

impl Cluster {
    pub fn new(cancel_delay: Duration) -> Cluster {
        Cluster {
            jobs: Vec::new(),
            savepoints: Vec::new(),
            cancel_delay,
            refusals: 0,
        }
    }

    /// Applies what happened up to `now`: bounded jobs finishing, cancels and stops surfacing.
    pub fn refresh(&mut self, now: Instant) {
        for job in self.jobs.iter_mut() {
            if job.status != JobStatus::Running {
                continue;
            }
            match &job.ending {
                Some(ending) if ending.at <= now => {
                    job.status = ending.to;
                    job.ended = Some(ending.at);
                }
                None if job.natural_end.is_some_and(|end| end <= now) => {
                    job.status = JobStatus::Finished;
                    job.ended = job.natural_end;
                }
                _ => {}
            }
        }
    }

    /// Every job, as the JobManager reports it at `now`.
    pub fn jobs(&mut self, now: Instant) -> &[Job] {
        self.refresh(now);
        &self.jobs
    }

    pub fn status(&mut self, id: &str, now: Instant) -> Option<JobStatus> {
        self.refresh(now);
        self.jobs.iter().find(|j| j.id == id).map(|j| j.status)
    }

    /// Submits a job, under the caller's `$internal.pipeline.job-id` if given; Flink rejects an
    /// id it has seen before, running or not.
    pub fn start(
        &mut self,
        name: &str,
        pinned: Option<String>,
        duration: Option<Duration>,
        streaming: bool,
        now: Instant,
    ) -> Result<String, Vec<Throwable>> {
        self.refresh(now);
        let id = match pinned {
            Some(pinned) => {
                let Some(pinned_id) = parse_job_id(&pinned) else {
                    return Err(exceptions::table_failure(
                        "Failed to execute sql",
                        &[(
                            "java.lang.IllegalArgumentException",
                            format!(
                                "Cannot parse JobID from \"{pinned}\". The expected format is [0-9a-fA-F]{{32}}, e.g. fd72014d4c864993a2e5a9287b4a9c5d."
                            ),
                        )],
                    ));
                };
                if let Some(existing) = self.jobs.iter().find(|j| j.id == pinned_id) {
                    return Err(exceptions::duplicate_job_failure(
                        name,
                        existing.status != JobStatus::Running,
                    ));
                }
                pinned_id
            }
            None => new_job_id(),
        };
        if self.refusals > 0 {
            // No slot for it: Flink fails the job at once, before deploying any task.
            self.refusals -= 1;
            self.jobs.push(Job {
                id: id.clone(),
                name: name.to_string(),
                status: JobStatus::Failed,
                start_wall: SystemTime::now(),
                started: now,
                streaming,
                natural_end: None,
                ending: None,
                ended: Some(now),
                stale_until: None,
                root_cause: Some(NO_RESOURCES.to_owned()),
                deployed: false,
            });
            return Ok(id);
        }
        self.jobs.push(Job {
            id: id.clone(),
            name: name.to_string(),
            status: JobStatus::Running,
            start_wall: SystemTime::now(),
            started: now,
            streaming,
            natural_end: duration.map(|d| now + d),
            ending: None,
            ended: None,
            stale_until: None,
            root_cause: None,
            deployed: true,
        });
        Ok(id)
    }

    /// Asks a job to end as `to`: CANCELED for a cancel (at once, shown by `GET /jobs/{id}`
    /// after the cancel delay), FINISHED for a stop with savepoint (once the savepoint is taken,
    /// after the cancel delay); returns its status when asked, `None` for an unknown job.
    pub fn end(&mut self, id: &str, to: JobStatus, now: Instant) -> Option<JobStatus> {
        self.refresh(now);
        let delay = self.cancel_delay;
        let job = self.jobs.iter_mut().find(|j| j.id == id)?;
        let status = job.status;
        if status == JobStatus::Running && job.ending.is_none() {
            let at = if to == JobStatus::Canceled {
                job.stale_until = Some(now + delay);
                now
            } else {
                now + delay
            };
            job.ending = Some(Ending { at, to });
        }
        self.refresh(now);
        Some(status)
    }

    /// Ends a SELECT's job once its collect sink has handed out the last row.
    pub fn drained(&mut self, id: &str, now: Instant) {
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id)
            && job.status == JobStatus::Running
            && job.ending.is_none()
            && job.natural_end.is_some()
        {
            job.status = JobStatus::Finished;
            job.ended = Some(now);
        }
    }

    /// Fails a running job with `root_cause` (`class: message`); false when it does not run.
    pub fn fail(&mut self, id: &str, root_cause: &str, now: Instant) -> bool {
        self.refresh(now);
        match self.jobs.iter_mut().find(|j| j.id == id) {
            Some(job) if job.status == JobStatus::Running => {
                job.status = JobStatus::Failed;
                job.ended = Some(now);
                job.ending = None;
                job.root_cause = Some(root_cause.to_string());
                true
            }
            _ => false,
        }
    }

    /// Refuses the next `count` jobs submitted as a busy cluster does: each fails at once with
    /// `NoResourceAvailableException`, before any of its tasks is deployed.
    pub fn refuse_next(&mut self, count: u32) {
        self.refusals = count;
    }

    /// The root cause a failed job was given.
    pub fn root_cause(&self, id: &str) -> Option<&str> {
        let job = self.jobs.iter().find(|j| j.id == id)?;
        job.root_cause.as_deref()
    }

    // ------------------------------------------------------------------ REST

    /// Answers a JobManager REST request; `None` when the path is not one of its.
    pub fn handle(
        &mut self,
        method: &Method,
        segments: &[&str],
        query: Option<&str>,
        body: &[u8],
        flink_version: &str,
        now: Instant,
    ) -> Option<Reply> {
        self.refresh(now);
        let reply = match (method, segments) {
            (&Method::GET, ["config"]) => ok(json!({
                "refresh-interval": 3000,
                "timezone-name": "Coordinated Universal Time",
                "timezone-offset": 0,
                "flink-version": flink_version,
                "flink-revision": FLINK_REVISION,
                "features": {
                    "web-submit": true, "web-cancel": true,
                    "web-rescale": false, "web-history": false,
                },
            })),
            (&Method::GET, ["overview"]) => self.overview(flink_version),
            (&Method::GET, ["jobs"]) => {
                let jobs = self.jobs.iter();
                let jobs: Vec<Json> = jobs
                    .map(|j| json!({"id": j.id, "status": j.status.name()}))
                    .collect();
                ok(json!({ "jobs": jobs }))
            }
            (&Method::GET, ["jobs", "overview"]) => {
                let jobs: Vec<Json> = self
                    .jobs
                    .iter()
                    .rev()
                    .map(|j| job_overview(j, now))
                    .collect();
                ok(json!({ "jobs": jobs }))
            }
            (&Method::GET, ["jobs", id]) => {
                with_job_id(id, |id| self.with_job(id, |job| ok(job_details(job, now))))
            }
            (&Method::GET, ["jobs", id, "exceptions"]) => {
                with_job_id(id, |id| self.with_job(id, |job| ok(job_exceptions(job))))
            }
            (&Method::PATCH, ["jobs", id]) => with_job_id(id, |id| self.cancel(id, query, now)),
            (&Method::POST, ["jobs", id, "stop"]) => with_job_id(id, |id| self.stop(id, body, now)),
            (&Method::POST, ["jobs", id, "savepoints"]) => {
                with_job_id(id, |id| self.trigger_savepoint(id, body, now))
            }
            (&Method::GET, ["jobs", id, "savepoints", trigger]) => {
                with_job_id(id, |id| self.savepoint(id, trigger, now))
            }
            (&Method::GET, ["taskmanagers"]) => taskmanagers::list(SLOTS, self.running()),
            (&Method::GET, ["taskmanagers", id, "metrics"]) => {
                taskmanagers::metrics(id, query, self.jobs.len() as u64, self.running() as u64)
            }
            _ => return None,
        };
        Some(reply)
    }

    fn with_job(&self, id: &str, render: impl FnOnce(&Job) -> Reply) -> Reply {
        match self.jobs.iter().find(|j| j.id == id) {
            Some(job) => render(job),
            None => rest_error(
                404,
                &format!("org.apache.flink.runtime.rest.NotFoundException: Job {id} not found"),
                Some(&format!(
                    "org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({id})"
                )),
                id,
            ),
        }
    }

    /// The jobs running now.
    fn running(&self) -> i64 {
        self.jobs
            .iter()
            .filter(|job| job.status == JobStatus::Running)
            .count() as i64
    }

    fn overview(&self, flink_version: &str) -> Reply {
        let count =
            |status: JobStatus| self.jobs.iter().filter(|j| j.status == status).count() as i64;
        let running = count(JobStatus::Running);
        ok(json!({
            "taskmanagers": 1,
            "slots-total": SLOTS,
            "slots-available": (SLOTS - running).max(0),
            "jobs-running": running,
            "jobs-finished": count(JobStatus::Finished),
            "jobs-cancelled": count(JobStatus::Canceled),
            "jobs-failed": count(JobStatus::Failed),
            "flink-version": flink_version,
            "flink-commit": FLINK_COMMIT,
        }))
    }

    /// `PATCH /jobs/{id}?mode=cancel`: 202 at once, also for a job already cancelled.
    fn cancel(&mut self, id: &str, query: Option<&str>, now: Instant) -> Reply {
        let mode = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("mode="))
            .unwrap_or("cancel");
        if mode != "cancel" {
            return rest_error(
                400,
                &format!(
                    "org.apache.flink.runtime.rest.handler.RestHandlerException: Bad request, could not parse parameters: Cannot resolve query parameter (mode) from value \"{mode}\"."
                ),
                None,
                id,
            );
        }
        match self.end(id, JobStatus::Canceled, now) {
            Some(JobStatus::Running | JobStatus::Canceled) => Reply {
                status: 202,
                body: "{}".into(),
            },
            Some(other) => rest_error(
                409,
                &format!(
                    "org.apache.flink.runtime.rest.handler.RestHandlerException: Job cancellation failed because the job has already reached another terminal state ({}).",
                    other.name()
                ),
                Some(&format!(
                    "org.apache.flink.runtime.messages.FlinkJobTerminatedWithoutCancellationException: Flink job ({id}) was not canceled, but instead {}.",
                    other.name()
                )),
                id,
            ),
            None => rest_error(
                404,
                "org.apache.flink.runtime.rest.handler.RestHandlerException: Job could not be found.",
                Some(&format!(
                    "org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({id})"
                )),
                id,
            ),
        }
    }

    /// `POST /jobs/{id}/stop`: triggers a stop-with-savepoint under the client's trigger id (a
    /// repeated trigger id joins the first request); failures show in the savepoint's status.
    fn stop(&mut self, id: &str, body: &[u8], now: Instant) -> Reply {
        self.trigger(id, body, now, SavepointKind::Stop)
    }

    /// `POST /jobs/{id}/savepoints`: triggers a savepoint that leaves the job running (or, with
    /// `cancel-job`, cancels it once taken), under the client's trigger id like a stop.
    fn trigger_savepoint(&mut self, id: &str, body: &[u8], now: Instant) -> Reply {
        self.trigger(id, body, now, SavepointKind::Savepoint)
    }

    fn trigger(&mut self, id: &str, body: &[u8], now: Instant, kind: SavepointKind) -> Reply {
        let bad_body = || {
            rest_error(
                400,
                &format!(
                    "org.apache.flink.runtime.rest.handler.RestHandlerException: Request did not match expected format {}.",
                    kind.request_body()
                ),
                None,
                id,
            )
        };
        let request: Json = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(body) {
                Ok(value @ Json::Object(_)) => value,
                _ => return bad_body(),
            }
        };
        let trigger_id = match request.get("triggerId") {
            None | Some(Json::Null) => new_job_id(),
            Some(Json::String(t)) => match parse_job_id(t) {
                Some(t) => t,
                None => return bad_body(),
            },
            Some(_) => return bad_body(),
        };
        match request.get("formatType") {
            None | Some(Json::Null) => {}
            Some(Json::String(format)) if format == "CANONICAL" || format == "NATIVE" => {}
            Some(_) => return bad_body(),
        }
        let cancel_job = match kind {
            SavepointKind::Stop => true,
            SavepointKind::Savepoint => match request.get("cancel-job") {
                None | Some(Json::Null) => false,
                Some(Json::Bool(cancel)) => *cancel,
                Some(_) => return bad_body(),
            },
        };
        let Some(directory) = request.get(kind.directory_field()).and_then(Json::as_str) else {
            return rest_error(
                400,
                &format!(
                    "org.apache.flink.runtime.rest.handler.RestHandlerException: Config key [execution.checkpointing.savepoint-dir] is not set. Property [{}] must be provided.",
                    kind.directory_field()
                ),
                None,
                id,
            );
        };
        let known = self
            .savepoints
            .iter()
            .any(|s| s.job_id == id && s.trigger_id == trigger_id);
        if !known {
            let outcome = match self.status(id, now) {
                Some(JobStatus::Running)
                    if self.jobs.iter().any(|j| j.id == id && j.ending.is_none()) =>
                {
                    if cancel_job {
                        let to = match kind {
                            SavepointKind::Stop => JobStatus::Finished,
                            SavepointKind::Savepoint => JobStatus::Canceled,
                        };
                        self.end(id, to, now);
                    }
                    Ok(savepoint_location(directory, id))
                }
                Some(JobStatus::Running) => Err((
                    "org.apache.flink.runtime.checkpoint.CheckpointException",
                    "Failed to trigger savepoint. Failure reason: Not all required tasks are currently running.".to_string(),
                )),
                _ => Err((
                    "org.apache.flink.runtime.messages.FlinkJobNotFoundException",
                    format!("Could not find Flink job ({id})"),
                )),
            };
            self.savepoints.push(Savepoint {
                job_id: id.to_string(),
                trigger_id: trigger_id.clone(),
                ready_at: if outcome.is_ok() {
                    now + self.cancel_delay
                } else {
                    now
                },
                outcome,
            });
        }
        Reply {
            status: 202,
            body: json!({ "request-id": trigger_id }).to_string(),
        }
    }

    /// `GET /jobs/{id}/savepoints/{trigger}`.
    fn savepoint(&self, id: &str, trigger: &str, now: Instant) -> Reply {
        let found = parse_job_id(trigger).and_then(|trigger| {
            self.savepoints
                .iter()
                .find(|s| s.job_id == id && s.trigger_id == trigger)
        });
        let Some(savepoint) = found else {
            return rest_error(
                404,
                &format!(
                    "org.apache.flink.runtime.rest.NotFoundException: Operation not found under key: org.apache.flink.runtime.rest.handler.job.AsynchronousJobOperationKey@{}",
                    &trigger.get(..8).unwrap_or(trigger)
                ),
                None,
                id,
            );
        };
        if savepoint.ready_at > now {
            return ok(json!({"status": {"id": "IN_PROGRESS"}}));
        }
        let operation = match &savepoint.outcome {
            Ok(location) => json!({ "location": location }),
            Err((class, message)) => json!({"failure-cause": {
                "class": "java.util.concurrent.CompletionException",
                "stack-trace": format!(
                    "java.util.concurrent.CompletionException: {class}: {message}\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: {class}: {message}\n\tat org.apache.flink.runtime.dispatcher.Dispatcher.performOperationOnJobMasterGateway(Dispatcher.java:1473)\n\t... 1 more\n"
                ),
            }}),
        };
        ok(json!({"status": {"id": "COMPLETED"}, "operation": operation}))
    }
}

/// Runs `handler` with the job id of the path, or answers the recorded 400 for a malformed one.
fn with_job_id(value: &str, handler: impl FnOnce(&str) -> Reply) -> Reply {
    match parse_job_id(value) {
        Some(id) => handler(&id),
        None => bad_job_id(value),
    }
}

fn ok(body: Json) -> Reply {
    Reply::ok(body.to_string())
}

/// A handler failure in a recorded layout (of a bad request for 400, else of "job not found")
/// with another message and cause.
fn rest_error(status: u16, header: &str, cause: Option<&str>, job_id: &str) -> Reply {
    let template = if status == 400 {
        JOB_ID_MALFORMED
    } else {
        JOB_NOT_FOUND
    };
    let recorded: Json = serde_json::from_str(template).unwrap_or_default();
    let stack = recorded["errors"][0].as_str().unwrap_or_default();
    let (own, recorded_cause) = stack.split_once("Caused by: ").unwrap_or((stack, ""));
    let frames = own.split_once('\n').map_or("", |(_, frames)| frames);
    let mut text = format!("{header}\n{frames}");
    if let Some(cause) = cause {
        let cause_frames = recorded_cause.split_once('\n').map_or("", |(_, f)| f);
        text.push_str(&format!("Caused by: {cause}\n{cause_frames}"));
    }
    Reply {
        status,
        body: json!({ "errors": [text.replace(RECORDED_JOB_ID, job_id)] }).to_string(),
    }
}

/// The recorded 400 for a path value that is no job id.
fn bad_job_id(value: &str) -> Reply {
    let escaped = serde_json::to_string(value).unwrap_or_default();
    Reply {
        status: 400,
        body: JOB_ID_MALFORMED
            .trim()
            .replace(RECORDED_BAD_JOB_ID, &escaped[1..escaped.len() - 1]),
    }
}

fn task_counts(state: &str, count: i64) -> Json {
    Json::Object(
        TASK_STATES
            .iter()
            .map(|s| (s.to_string(), json!(if *s == state { count } else { 0 })))
            .collect(),
    )
}

fn job_overview(job: &Job, now: Instant) -> Json {
    let start = epoch_millis(job.start_wall);
    let end = job.ended.map(|t| job.millis(t));
    let lower = |key: &str| key.to_ascii_lowercase();
    let mut tasks = serde_json::Map::new();
    for state in TASK_STATES {
        let count = i64::from(state == job.status.name());
        tasks.insert(lower(state), json!(count));
    }
    tasks.insert("total".into(), json!(1));
    json!({
        "jid": job.id,
        "name": job.name,
        "start-time": start,
        "end-time": end.unwrap_or(-1),
        "duration": end.unwrap_or_else(|| job.millis(now)) - start,
        "state": job.status.name(),
        "last-modification": end.unwrap_or(start + 10),
        "tasks": tasks,
    })
}

fn job_details(job: &Job, now: Instant) -> Json {
    let (status, ended) = job.shown(now);
    let start = epoch_millis(job.start_wall);
    let end = ended.map(|t| job.millis(t));
    let now_millis = job.millis(now);
    let at = |of: JobStatus| match end {
        Some(end) if status == of => end,
        _ => 0,
    };
    let job_type = if job.streaming { "STREAMING" } else { "BATCH" };
    let state = status.name();
    let metrics = json!({
        "read-bytes": 0, "read-bytes-complete": true, "write-bytes": 0,
        "write-bytes-complete": true, "read-records": 0, "read-records-complete": true,
        "write-records": 0, "write-records-complete": true,
        "accumulated-backpressured-time": 0, "accumulated-idle-time": 0,
        "accumulated-busy-time": "NaN",
    });
    json!({
        "jid": job.id,
        "name": job.name,
        "isStoppable": false,
        "state": state,
        "job-type": job_type,
        "start-time": start,
        "end-time": end.unwrap_or(-1),
        "duration": end.unwrap_or(now_millis) - start,
        "maxParallelism": -1,
        "now": now_millis,
        "timestamps": {
            "INITIALIZING": start, "CREATED": start + 4, "RUNNING": start + 10,
            "RESTARTING": 0, "RECONCILING": 0, "SUSPENDED": 0,
            "FAILING": at(JobStatus::Failed), "FAILED": at(JobStatus::Failed),
            "CANCELLING": at(JobStatus::Canceled), "CANCELED": at(JobStatus::Canceled),
            "FINISHED": at(JobStatus::Finished),
        },
        "vertices": [{
            "id": VERTEX_ID,
            "slotSharingGroupId": SLOT_SHARING_GROUP,
            "name": job.name,
            "maxParallelism": 128,
            "parallelism": 1,
            "status": state,
            "start-time": if job.deployed { start + 100 } else { -1 },
            "end-time": if job.deployed { end.unwrap_or(-1) } else { -1 },
            "duration": if job.deployed { end.unwrap_or(now_millis) - start - 100 } else { -1 },
            "tasks": task_counts(state, 1),
            "metrics": metrics,
        }],
        "status-counts": task_counts(state, 1),
        "plan": {
            "jid": job.id,
            "name": job.name,
            "type": job_type,
            "nodes": [{
                "id": VERTEX_ID, "parallelism": 1, "operator": "", "operator_strategy": "",
                "description": format!("{}<br/>", job.name), "optimizer_properties": {},
            }],
        },
    })
}

/// `GET /jobs/{id}/exceptions`: empty unless the job failed, then the recorded layout with the
/// job's root cause under Flink's "Recovery is suppressed" wrapper.
fn job_exceptions(job: &Job) -> Json {
    let (Some(cause), Some(ended)) = (&job.root_cause, job.ended) else {
        return json!({
            "root-exception": null, "timestamp": null, "all-exceptions": [], "truncated": false,
            "exceptionHistory": {"entries": [], "truncated": false},
        });
    };
    let recorded: Json = serde_json::from_str(FAILED_JOB_EXCEPTIONS).unwrap_or_default();
    let recorded_root = recorded["root-exception"].as_str().unwrap_or_default();
    let wrapper = recorded_root
        .split_once("Caused by: ")
        .map_or(recorded_root, |(wrapper, _)| wrapper);
    if !job.deployed {
        // Failed by the scheduler: no task, no TaskManager.
        let root = format!(
            "{wrapper}Caused by: java.util.concurrent.CompletionException: {cause}\n\tat org.apache.flink.runtime.scheduler.DefaultExecutionDeployer.lambda$assignResource$4(DefaultExecutionDeployer.java:226)\n\t... 40 more\nCaused by: {cause}\n\t... 38 more\n"
        );
        return failed_job_exceptions(
            &root,
            job.millis(ended),
            json!([]),
            json!({
                "taskName": null, "location": null, "endpoint": null, "taskManagerId": null,
                "concurrentExceptions": [],
            }),
        );
    }
    let task_failure = format!(
        "{cause}\n\tat org.apache.flink.streaming.runtime.tasks.StreamTask.invoke(StreamTask.java:932)\n\tat org.apache.flink.runtime.taskmanager.Task.doRun(Task.java:751)\n\tat org.apache.flink.runtime.taskmanager.Task.run(Task.java:566)\n\tat java.base/java.lang.Thread.run(Thread.java:840)\n"
    );
    let root = format!("{wrapper}Caused by: {task_failure}");
    let timestamp = job.millis(ended);
    let task = format!("{} (1/1)", job.name);
    failed_job_exceptions(
        &root,
        timestamp,
        json!([{
            "exception": task_failure, "task": task, "location": "localhost:37327",
            "endpoint": "localhost:37327", "timestamp": timestamp,
            "taskManagerId": "127.0.0.1:6122-a86532",
        }]),
        json!({
            "concurrentExceptions": [{
                "exceptionName": cause.split(':').next().unwrap_or_default(),
                "stacktrace": task_failure, "timestamp": timestamp, "failureLabels": {},
                "taskName": format!("{task} - execution #0"), "location": "localhost:37327",
                "endpoint": "localhost:37327", "taskManagerId": "127.0.0.1:6122-a86532",
            }],
        }),
    )
}

/// The exceptions of a failed job whose root exception is `root`, thrown at `timestamp`: the
/// tasks' exceptions `all_exceptions`, and one history entry for the root, whose fields after
/// the standard ones are `entry_rest` (where the failure happened, the concurrent exceptions).
fn failed_job_exceptions(
    root: &str,
    timestamp: i64,
    all_exceptions: Json,
    entry_rest: Json,
) -> Json {
    let mut entry = json!({
        "exceptionName": "org.apache.flink.runtime.JobException",
        "stacktrace": root,
        "timestamp": timestamp,
        "failureLabels": {},
    });
    if let (Some(entry), Json::Object(rest)) = (entry.as_object_mut(), entry_rest) {
        entry.extend(rest);
    }
    json!({
        "root-exception": root,
        "timestamp": timestamp,
        "all-exceptions": all_exceptions,
        "truncated": false,
        "exceptionHistory": {"entries": [entry], "truncated": false},
    })
}
