//! Prometheus metrics: every series the broker exports (one registry of names, [`METRICS`]),
//! one function per thing counted, and the `/metrics` endpoint.
//!
//! Counters and histograms are recorded where things happen (submissions, state changes,
//! result appends and streams, gateway and JobManager requests, quota refusals, lease
//! takeovers, audit events). What the database knows (jobs by kind and state, how long live
//! jobs went unchanged, jobs without a lease holder, the largest open result log) is read from
//! the store on every scrape, so it is true across restarts and replicas.
//!
//! Every label has a small, fixed set of values: no job, session or operation ids; endpoints
//! are path templates; tenants are named only when the tenant policy file names them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::metrics::{counter, gauge, histogram};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::audit::{AuditAction, code_name};
use crate::error::{Error, Result};
use crate::job::{JobKind, JobState, now_millis};
use crate::sql_gateway::GatewayError;
use crate::store::Store;
use crate::tenants::TenantPolicy;

/// Where the metrics endpoint listens: nowhere, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    On(SocketAddr),
}

/// Parses `--metrics-listen`: an address, or `""` / `off` for no endpoint.
pub fn parse_metrics_listen(text: &str) -> std::result::Result<MetricsListen, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    text.parse().map(MetricsListen::On).map_err(|e| {
        format!("invalid metrics address {text:?}: {e} (give host:port, or \"off\" for none)")
    })
}

/// What a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported series: its name, kind, labels and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const SUBMISSIONS: &str = "flinkbroker_submissions_total";
pub const SUBMISSION_DURATION: &str = "flinkbroker_submission_duration_seconds";
pub const JOB_TRANSITIONS: &str = "flinkbroker_job_transitions_total";
pub const JOBS: &str = "flinkbroker_jobs";
pub const JOBS_OLDEST_UNCHANGED: &str = "flinkbroker_jobs_oldest_unchanged_seconds";
pub const JOBS_WITHOUT_LEASE: &str = "flinkbroker_jobs_without_lease";
pub const STATEMENT_FAILURES: &str = "flinkbroker_statement_failures_total";
pub const RESULT_ROWS_LOGGED: &str = "flinkbroker_result_rows_logged_total";
pub const RESULT_BYTES_LOGGED: &str = "flinkbroker_result_bytes_logged_total";
pub const RESULT_ROWS_STREAMED: &str = "flinkbroker_result_rows_streamed_total";
pub const RESULT_BYTES_STREAMED: &str = "flinkbroker_result_bytes_streamed_total";
pub const RESULT_STREAMS_OPEN: &str = "flinkbroker_result_streams_open";
pub const RESULT_LOG_LARGEST_OPEN: &str = "flinkbroker_result_log_largest_open_bytes";
pub const RESULT_LOG_MAX: &str = "flinkbroker_result_log_max_bytes";
pub const GATEWAY_REQUEST_DURATION: &str = "flinkbroker_sql_gateway_request_duration_seconds";
pub const GATEWAY_REQUEST_ERRORS: &str = "flinkbroker_sql_gateway_request_errors_total";
pub const JOBMANAGER_REQUEST_DURATION: &str = "flinkbroker_jobmanager_request_duration_seconds";
pub const JOBMANAGER_REQUEST_ERRORS: &str = "flinkbroker_jobmanager_request_errors_total";
pub const DEPENDENCY_UP: &str = "flinkbroker_dependency_up";
pub const LEASE_TAKEOVERS: &str = "flinkbroker_lease_takeovers_total";
pub const QUOTA_REFUSALS: &str = "flinkbroker_quota_refusals_total";
pub const AUDIT_EVENTS: &str = "flinkbroker_audit_events_total";

/// Every series the broker exports.
pub const METRICS: &[Metric] = &[
    Metric {
        name: SUBMISSIONS,
        kind: MetricKind::Counter,
        labels: &["kind", "code"],
        help: "SubmitSql and SubmitPython calls past validation and authorization, by job kind and gRPC status code",
    },
    Metric {
        name: SUBMISSION_DURATION,
        kind: MetricKind::Histogram,
        labels: &["kind"],
        help: "Time to check and record a submission",
    },
    Metric {
        name: JOB_TRANSITIONS,
        kind: MetricKind::Counter,
        labels: &["kind", "state"],
        help: "Job state changes recorded by this replica, by the state entered",
    },
    Metric {
        name: JOBS,
        kind: MetricKind::Gauge,
        labels: &["kind", "state"],
        help: "Recorded jobs by kind and state (read from the store at each scrape)",
    },
    Metric {
        name: JOBS_OLDEST_UNCHANGED,
        kind: MetricKind::Gauge,
        labels: &["kind", "state"],
        help: "Live jobs: the longest any job in this state went without a recorded change",
    },
    Metric {
        name: JOBS_WITHOUT_LEASE,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Live jobs whose lease no replica holds (none taken, or expired)",
    },
    Metric {
        name: STATEMENT_FAILURES,
        kind: MetricKind::Counter,
        labels: &["cause"],
        help: "SQL statements that failed, by cause class",
    },
    Metric {
        name: RESULT_ROWS_LOGGED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Result rows appended to result logs",
    },
    Metric {
        name: RESULT_BYTES_LOGGED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Encoded result bytes appended to result logs",
    },
    Metric {
        name: RESULT_ROWS_STREAMED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Result rows sent by StreamOperationResults",
    },
    Metric {
        name: RESULT_BYTES_STREAMED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Encoded result bytes sent by StreamOperationResults",
    },
    Metric {
        name: RESULT_STREAMS_OPEN,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "StreamOperationResults calls open now",
    },
    Metric {
        name: RESULT_LOG_LARGEST_OPEN,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Bytes held by the largest result log of a live job still being written",
    },
    Metric {
        name: RESULT_LOG_MAX,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "The cap of one batch statement's result log (--result-log-max-bytes)",
    },
    Metric {
        name: GATEWAY_REQUEST_DURATION,
        kind: MetricKind::Histogram,
        labels: &["method", "endpoint"],
        help: "SQL Gateway REST requests, by method and path template",
    },
    Metric {
        name: GATEWAY_REQUEST_ERRORS,
        kind: MetricKind::Counter,
        labels: &["method", "endpoint", "error"],
        help: "SQL Gateway REST requests that failed: transport, or an http status class",
    },
    Metric {
        name: JOBMANAGER_REQUEST_DURATION,
        kind: MetricKind::Histogram,
        labels: &["method", "endpoint"],
        help: "JobManager REST requests, by method and path template",
    },
    Metric {
        name: JOBMANAGER_REQUEST_ERRORS,
        kind: MetricKind::Counter,
        labels: &["method", "endpoint", "error"],
        help: "JobManager REST requests that failed: transport, or an http status class",
    },
    Metric {
        name: DEPENDENCY_UP,
        kind: MetricKind::Gauge,
        labels: &["dependency"],
        help: "1 when the dependency answered its last probe (sql_gateway, jobmanager, store)",
    },
    Metric {
        name: LEASE_TAKEOVERS,
        kind: MetricKind::Counter,
        labels: &["from"],
        help: "Jobs this replica took up: from another replica, or its own after a restart",
    },
    Metric {
        name: QUOTA_REFUSALS,
        kind: MetricKind::Counter,
        labels: &["tenant", "quota"],
        help: "Submissions refused over a tenant quota (tenant: named in the tenant policy file, else _other)",
    },
    Metric {
        name: AUDIT_EVENTS,
        kind: MetricKind::Counter,
        labels: &["action"],
        help: "Audit events recorded, by action",
    },
];

/// The histogram buckets of every `_seconds` series.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Connections the endpoint serves at once; another one waits until one of them ends.
const MAX_CONNECTIONS: usize = 8;
/// The longest a scraper may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest the store may take to answer a scrape's questions.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// The tenant label of tenants the policy file does not name.
pub const OTHER_TENANT: &str = "_other";

/// The process's recorder, installed on first use.
static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> Result<PrometheusHandle> {
    let mut installed = RECORDER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let mut builder = PrometheusBuilder::new();
    for metric in METRICS.iter().filter(|m| m.kind == MetricKind::Histogram) {
        builder = builder
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(metric.name.to_owned()),
                SECONDS_BUCKETS,
            )
            .map_err(|e| Error::Internal(format!("cannot configure metrics buckets: {e}")))?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| Error::Internal(format!("cannot install the metrics recorder: {e}")))?;
    for metric in METRICS {
        match metric.kind {
            MetricKind::Counter => ::metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => ::metrics::describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => ::metrics::describe_histogram!(metric.name, metric.help),
        }
    }
    *installed = Some(handle.clone());
    Ok(handle)
}

/// What a scrape reads besides the recorded series.
#[derive(Clone)]
pub struct Scrape {
    pub handle: PrometheusHandle,
    pub store: Arc<dyn Store>,
    /// `--result-log-max-bytes`.
    pub result_log_max_bytes: u64,
}

/// Serves `GET /metrics` on `listener` until `shutdown`; at most [`MAX_CONNECTIONS`] at once,
/// each within [`CONNECTION_TIMEOUT`].
pub async fn serve(listener: TcpListener, scrape: Scrape, shutdown: CancellationToken) {
    match listener.local_addr() {
        Ok(local) => info!(listen = %local, "metrics served at /metrics"),
        Err(error) => warn!(%error, "metrics served at /metrics on an address that cannot be read"),
    }
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            // Histogram samples are folded into buckets even when nobody scrapes.
            _ = upkeep.tick() => {
                scrape.handle.run_upkeep();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // E.g. out of file descriptors: pause rather than spin.
                    warn!(%error, "cannot accept a metrics connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Beyond MAX_CONNECTIONS the accepted connection waits for one to end.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let scrape = scrape.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| answer(request, scrape.clone()));
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                served = tokio::time::timeout(CONNECTION_TIMEOUT, connection) => {
                    if let Ok(Err(error)) = served {
                        debug!(%error, "metrics connection failed");
                    }
                }
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    info!("metrics endpoint stopped");
}

async fn answer(
    request: Request<Incoming>,
    scrape: Scrape,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are served at /metrics\n".into(),
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ));
    }
    refresh_from_store(&scrape).await;
    Ok(reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        scrape.handle.render(),
    ))
}

/// Sets the gauges the store knows; a store that does not answer sets `store` down and leaves
/// them as they were.
async fn refresh_from_store(scrape: &Scrape) {
    gauge!(RESULT_LOG_MAX).set(scrape.result_log_max_bytes as f64);
    let now = now_millis();
    let read = tokio::time::timeout(STORE_TIMEOUT, scrape.store.job_metrics(now)).await;
    let snapshot = match read {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(error)) => {
            warn!(%error, "cannot read job counts for a metrics scrape");
            dependency_up("store", false);
            return;
        }
        Err(_) => {
            warn!("the store did not answer a metrics scrape in time");
            dependency_up("store", false);
            return;
        }
    };
    dependency_up("store", true);
    for kind in [JobKind::Sql, JobKind::Python] {
        for state in ALL_STATES {
            let count = snapshot
                .by_kind_and_state
                .iter()
                .find(|group| group.kind == kind && group.state == state);
            gauge!(JOBS, "kind" => kind_label(kind), "state" => state.as_str())
                .set(count.map_or(0, |group| group.jobs) as f64);
            if !state.is_terminal() {
                let age = count
                    .and_then(|group| group.oldest_change)
                    .map_or(0.0, |at| (now.saturating_sub(at)).max(0) as f64 / 1000.0);
                gauge!(JOBS_OLDEST_UNCHANGED, "kind" => kind_label(kind), "state" => state.as_str())
                    .set(age);
            }
        }
    }
    gauge!(JOBS_WITHOUT_LEASE).set(snapshot.live_without_lease as f64);
    gauge!(RESULT_LOG_LARGEST_OPEN).set(snapshot.largest_open_log_bytes as f64);
}

const ALL_STATES: [JobState; 7] = [
    JobState::Pending,
    JobState::Submitting,
    JobState::Running,
    JobState::Canceling,
    JobState::Finished,
    JobState::Failed,
    JobState::Canceled,
];

fn kind_label(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Sql => "sql",
        JobKind::Python => "python",
    }
}

/// Counts a submission and how long it took to answer.
pub fn submission<T>(kind: JobKind, started: Instant, outcome: &Result<T>) {
    let code = match outcome {
        Ok(_) => tonic::Code::Ok,
        Err(error) => error.code(),
    };
    counter!(SUBMISSIONS, "kind" => kind_label(kind), "code" => code_name(code)).increment(1);
    histogram!(SUBMISSION_DURATION, "kind" => kind_label(kind))
        .record(started.elapsed().as_secs_f64());
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

    pub fn as_str(self) -> &'static str {
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

/// A REST endpoint: its method and path template (never a path with ids in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
}

/// How a REST request failed, for the `error` label.
fn http_error_class(status: Option<u16>) -> &'static str {
    match status {
        None => "transport",
        Some(400..=499) => "http_4xx",
        Some(500..=599) => "http_5xx",
        Some(_) => "http_other",
    }
}

/// Records one SQL Gateway request: its duration, and its failure (None: it succeeded;
/// Some(None): no answer; Some(Some(status)): an unsuccessful status).
pub fn gateway_request(endpoint: Endpoint, started: Instant, failure: Option<Option<u16>>) {
    histogram!(GATEWAY_REQUEST_DURATION, "method" => endpoint.method, "endpoint" => endpoint.path)
        .record(started.elapsed().as_secs_f64());
    if let Some(status) = failure {
        counter!(GATEWAY_REQUEST_ERRORS, "method" => endpoint.method, "endpoint" => endpoint.path, "error" => http_error_class(status))
            .increment(1);
    }
}

/// Records one JobManager request, as [`gateway_request`] does.
pub fn jobmanager_request(endpoint: Endpoint, started: Instant, failure: Option<Option<u16>>) {
    histogram!(JOBMANAGER_REQUEST_DURATION, "method" => endpoint.method, "endpoint" => endpoint.path)
        .record(started.elapsed().as_secs_f64());
    if let Some(status) = failure {
        counter!(JOBMANAGER_REQUEST_ERRORS, "method" => endpoint.method, "endpoint" => endpoint.path, "error" => http_error_class(status))
            .increment(1);
    }
}

/// Sets whether a dependency answered its last probe.
pub fn dependency_up(dependency: &'static str, up: bool) {
    gauge!(DEPENDENCY_UP, "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}

/// Counts a job taken up: from another replica, or this replica's own after a restart.
pub fn lease_takeover(from_other_replica: bool) {
    let from = if from_other_replica {
        "other_replica"
    } else {
        "restart"
    };
    counter!(LEASE_TAKEOVERS, "from" => from).increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_listen_is_an_address_or_off() {
        assert_eq!(parse_metrics_listen(""), Ok(MetricsListen::Off));
        assert_eq!(parse_metrics_listen("off"), Ok(MetricsListen::Off));
        assert_eq!(
            parse_metrics_listen("127.0.0.1:9464"),
            Ok(MetricsListen::On("127.0.0.1:9464".parse().unwrap()))
        );
        assert!(parse_metrics_listen("localhost").is_err());
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a name is listed twice");
        for metric in METRICS {
            assert!(metric.name.starts_with("flinkbroker_"), "{}", metric.name);
            match metric.kind {
                MetricKind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
                MetricKind::Histogram => {
                    assert!(metric.name.ends_with("_seconds"), "{}", metric.name)
                }
                MetricKind::Gauge => assert!(!metric.name.ends_with("_total"), "{}", metric.name),
            }
            assert!(
                !metric.labels.iter().any(|l| l.contains("id")),
                "{}",
                metric.name
            );
        }
    }
}
