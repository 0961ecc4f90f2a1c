//! The `/metrics` endpoint: the Prometheus recorder, with every series the broker exports
//! registered ([`METRICS`]: the REST clients', the use cases' and the server's own), the
//! series only the server records, and the scrape that reads the store and the JobManager.
//!
//! Counters and histograms are recorded where things happen (submissions, state changes,
//! result appends and streams, gateway and JobManager requests, quota refusals, lease
//! takeovers, audit events), and exported at zero from start-up under every label set their
//! descriptions list ([`Exported::AtZero`]), so that Prometheus sees their first increment.
//! What the database knows (jobs by kind and state, how long live jobs went unchanged, jobs
//! without a lease holder, the largest open result log) is read from the store on every
//! scrape, so it is true across restarts and replicas. The TaskManagers' JVM memory is read
//! from the JobManager on every scrape too (one request for the list, one per TaskManager,
//! whatever the number of jobs), and exported only for the TaskManagers it answered for.
//!
//! Every label has a small, fixed set of values: no job, session or operation ids; endpoints
//! are path templates; tenants are named only when the tenant policy file names them; the
//! only ids are those of the TaskManagers registered at the scrape.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use ::metrics::{Label, counter, gauge, histogram};
use futures::StreamExt as _;
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

use anyhow::{Context as _, Result};
use flinkbroker_control::error::Error as ControlError;
use flinkbroker_control::metrics::{JOB_KINDS, JOB_STATES, kind_label};
use flinkbroker_flink::jobmanager::{JobManager, TaskManagerMemory};
use flinkbroker_model::job::{JobKind, now_millis};
use flinkbroker_model::metric::each_combination;
pub use flinkbroker_model::metric::{Exported, Metric, MetricKind};
use flinkbroker_proto::code_name;
use flinkbroker_store::Store;

use crate::error::control_code;

/// Where the metrics endpoint listens: nowhere, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// No metrics endpoint (`--metrics-listen off`).
    Off,
    /// The endpoint listens on this address.
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

/// SubmitSql and SubmitPython calls, by job kind and gRPC status code.
const SUBMISSIONS: &str = "flinkbroker_submissions_total";
/// The time to check and record a submission, by job kind.
const SUBMISSION_DURATION: &str = "flinkbroker_submission_duration_seconds";
/// Recorded jobs by kind and state, read from the store at each scrape.
const JOBS: &str = "flinkbroker_jobs";
/// The longest a live job in each kind and state went without a recorded change.
const JOBS_OLDEST_UNCHANGED: &str = "flinkbroker_jobs_oldest_unchanged_seconds";
/// Live jobs whose lease no replica holds.
const JOBS_WITHOUT_LEASE: &str = "flinkbroker_jobs_without_lease";
/// The bytes held by the largest result log still being written.
const RESULT_LOG_LARGEST_OPEN: &str = "flinkbroker_result_log_largest_open_bytes";
/// The cap of one batch statement's result log (`--result-log-max-bytes`).
const RESULT_LOG_MAX: &str = "flinkbroker_result_log_max_bytes";
/// Whether each dependency answered its last probe.
const DEPENDENCY_UP: &str = "flinkbroker_dependency_up";
/// The JVM memory each TaskManager uses, read from the JobManager at each scrape.
const TASKMANAGER_MEMORY_USED: &str = "flinkbroker_taskmanager_memory_used_bytes";
/// The most JVM memory each TaskManager may use, read from the JobManager at each scrape.
const TASKMANAGER_MEMORY_MAX: &str = "flinkbroker_taskmanager_memory_max_bytes";

/// The codes a submission is exported under from start-up: its success and the refusals and
/// failures worth alerting on. Another code is exported once a submission answers it.
const SUBMISSION_CODES: [tonic::Code; 8] = [
    tonic::Code::Ok,
    tonic::Code::InvalidArgument,
    tonic::Code::AlreadyExists,
    tonic::Code::PermissionDenied,
    tonic::Code::ResourceExhausted,
    tonic::Code::FailedPrecondition,
    tonic::Code::Unavailable,
    tonic::Code::Internal,
];

/// Every series the broker exports: the REST clients', the use cases' and the server's.
pub static METRICS: LazyLock<Vec<Metric>> = LazyLock::new(|| {
    [
        flinkbroker_flink::metrics::METRICS,
        flinkbroker_control::metrics::METRICS,
        SERVER_METRICS,
    ]
    .concat()
});

/// The series the server records.
const SERVER_METRICS: &[Metric] = &[
    Metric {
        name: SUBMISSIONS,
        kind: MetricKind::Counter,
        labels: &["kind", "code"],
        help: "SubmitSql and SubmitPython calls past validation and authorization, by job kind and gRPC status code",
        exported: Exported::AtZero(|| {
            each_combination(&[&JOB_KINDS.map(kind_label), &SUBMISSION_CODES.map(code_name)])
        }),
    },
    Metric {
        name: SUBMISSION_DURATION,
        kind: MetricKind::Histogram,
        labels: &["kind"],
        help: "Time to check and record a submission",
        exported: Exported::AtZero(|| each_combination(&[&JOB_KINDS.map(kind_label)])),
    },
    Metric {
        name: JOBS,
        kind: MetricKind::Gauge,
        labels: &["kind", "state"],
        help: "Recorded jobs by kind and state (read from the store at each scrape)",
        exported: Exported::OnceSet,
    },
    Metric {
        name: JOBS_OLDEST_UNCHANGED,
        kind: MetricKind::Gauge,
        labels: &["kind", "state"],
        help: "Live jobs: the longest any job in this state went without a recorded change",
        exported: Exported::OnceSet,
    },
    Metric {
        name: JOBS_WITHOUT_LEASE,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Live jobs whose lease no replica holds (none taken, or expired)",
        exported: Exported::OnceSet,
    },
    Metric {
        name: RESULT_LOG_LARGEST_OPEN,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Bytes held by the largest result log of a live job still being written",
        exported: Exported::OnceSet,
    },
    Metric {
        name: RESULT_LOG_MAX,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "The cap of one batch statement's result log (--result-log-max-bytes)",
        exported: Exported::OnceSet,
    },
    Metric {
        name: DEPENDENCY_UP,
        kind: MetricKind::Gauge,
        labels: &["dependency"],
        help: "1 when the dependency answered its last probe (sql_gateway, jobmanager, store)",
        exported: Exported::OnceSet,
    },
    Metric {
        name: TASKMANAGER_MEMORY_USED,
        kind: MetricKind::Gauge,
        labels: &["taskmanager", "area"],
        help: "JVM memory a Flink TaskManager uses (area: heap, metaspace), read from the JobManager at each scrape",
        exported: Exported::OnceSet,
    },
    Metric {
        name: TASKMANAGER_MEMORY_MAX,
        kind: MetricKind::Gauge,
        labels: &["taskmanager", "area"],
        help: "The most JVM memory a Flink TaskManager may use (area: heap, metaspace), read from the JobManager at each scrape",
        exported: Exported::OnceSet,
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
/// The longest the store, and the JobManager about the TaskManagers, may take to answer a
/// scrape's questions.
const SCRAPE_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The TaskManagers whose memory a scrape reads at once.
const TASKMANAGER_READS_AT_ONCE: usize = 4;
/// The pause after a failed accept.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub(crate) fn install() -> Result<PrometheusHandle> {
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
            .context("cannot configure the metrics buckets")?;
    }
    let handle = builder
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    for metric in METRICS.iter() {
        match metric.kind {
            MetricKind::Counter => ::metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => ::metrics::describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => ::metrics::describe_histogram!(metric.name, metric.help),
        }
        export_at_zero(metric);
    }
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Exports a series under the label sets its description lists for start-up; recording
/// nothing, this leaves a series already recorded as it is.
fn export_at_zero(metric: &Metric) {
    for label_set in metric.initial_label_sets() {
        let labels: Vec<Label> = metric
            .labels
            .iter()
            .zip(label_set)
            .map(|(name, value)| Label::new(*name, value))
            .collect();
        match metric.kind {
            MetricKind::Counter => counter!(metric.name, labels).increment(0),
            MetricKind::Gauge => gauge!(metric.name, labels).increment(0.0),
            // A histogram is exported, without samples, as soon as it is registered.
            MetricKind::Histogram => drop(histogram!(metric.name, labels)),
        }
    }
}

/// What a scrape reads besides the recorded series.
#[derive(Clone)]
pub(crate) struct Scrape {
    /// The recorder's handle, which renders the recorded series.
    pub(crate) handle: PrometheusHandle,
    /// The store the job gauges are read from.
    pub(crate) store: Arc<dyn Store>,
    /// The JobManager the TaskManagers' memory is read from.
    pub(crate) jobmanager: Arc<dyn JobManager>,
    /// `--result-log-max-bytes`.
    pub(crate) result_log_max_bytes: u64,
}

/// Serves `GET /metrics` on `listener` until `shutdown`; at most [`MAX_CONNECTIONS`] at once,
/// each within [`CONNECTION_TIMEOUT`].
pub(crate) async fn serve(listener: TcpListener, scrape: Scrape, shutdown: CancellationToken) {
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
    let ((), taskmanagers) = tokio::join!(
        refresh_from_store(&scrape),
        read_taskmanagers(scrape.jobmanager.as_ref())
    );
    let mut body = scrape.handle.render();
    render_taskmanagers(&mut body, &taskmanagers);
    Ok(reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        body,
    ))
}

/// Sets the gauges the store knows; a store that does not answer sets `store` down and leaves
/// them as they were.
async fn refresh_from_store(scrape: &Scrape) {
    gauge!(RESULT_LOG_MAX).set(scrape.result_log_max_bytes as f64);
    let now = now_millis();
    let read = tokio::time::timeout(SCRAPE_READ_TIMEOUT, scrape.store.job_metrics(now)).await;
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
    for kind in JOB_KINDS {
        for state in JOB_STATES {
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

/// Reads the JVM memory of every TaskManager the JobManager lists, a few at a time, within
/// [`SCRAPE_READ_TIMEOUT`]; sorted by TaskManager id. A TaskManager whose read fails is left
/// out, and all of them when the JobManager does not list them (in time).
async fn read_taskmanagers(jobmanager: &dyn JobManager) -> Vec<(String, TaskManagerMemory)> {
    let read = async {
        let ids = match jobmanager.taskmanagers().await {
            Ok(ids) => ids,
            Err(error) => {
                debug!(%error, "cannot list the taskmanagers for a metrics scrape");
                return Vec::new();
            }
        };
        let mut read: Vec<(String, TaskManagerMemory)> = futures::stream::iter(ids)
            .map(|id| async move {
                let memory = jobmanager.taskmanager_memory(&id).await;
                (id, memory)
            })
            .buffer_unordered(TASKMANAGER_READS_AT_ONCE)
            .filter_map(|(id, memory)| async move {
                match memory {
                    Ok(memory) => Some((id, memory)),
                    Err(error) => {
                        debug!(taskmanager_id = %id, %error, "cannot read a taskmanager's memory for a metrics scrape");
                        None
                    }
                }
            })
            .collect()
            .await;
        read.sort_by(|left, right| left.0.cmp(&right.0));
        read
    };
    match tokio::time::timeout(SCRAPE_READ_TIMEOUT, read).await {
        Ok(read) => read,
        Err(_) => {
            warn!("the jobmanager did not answer a metrics scrape's taskmanager reads in time");
            Vec::new()
        }
    }
}

/// Appends the TaskManager memory gauges to a rendered scrape: each value a TaskManager
/// reported, nothing for one it did not.
fn render_taskmanagers(body: &mut String, taskmanagers: &[(String, TaskManagerMemory)]) {
    type Areas = fn(&TaskManagerMemory) -> [(&'static str, Option<u64>); 2];
    let families: [(&str, Areas); 2] = [
        (TASKMANAGER_MEMORY_USED, |memory| {
            [
                ("heap", memory.heap_used),
                ("metaspace", memory.metaspace_used),
            ]
        }),
        (TASKMANAGER_MEMORY_MAX, |memory| {
            [
                ("heap", memory.heap_max),
                ("metaspace", memory.metaspace_max),
            ]
        }),
    ];
    for (name, areas) in families {
        let mut samples = String::new();
        for (id, memory) in taskmanagers {
            for (area, bytes) in areas(memory) {
                if let Some(bytes) = bytes {
                    let _ = writeln!(
                        samples,
                        "{name}{{taskmanager=\"{}\",area=\"{area}\"}} {bytes}",
                        escape_label_value(id)
                    );
                }
            }
        }
        if samples.is_empty() {
            continue;
        }
        let help = METRICS
            .iter()
            .find(|metric| metric.name == name)
            .map_or("", |metric| metric.help);
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        let _ = write!(
            body,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{samples}\n"
        );
    }
}

/// Escapes a label value for the text exposition format.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts a submission and how long it took to answer.
pub(crate) fn submission<T>(kind: JobKind, started: Instant, outcome: &Result<T, ControlError>) {
    let code = match outcome {
        Ok(_) => tonic::Code::Ok,
        Err(error) => control_code(error),
    };
    counter!(SUBMISSIONS, "kind" => kind_label(kind), "code" => code_name(code)).increment(1);
    histogram!(SUBMISSION_DURATION, "kind" => kind_label(kind))
        .record(started.elapsed().as_secs_f64());
}

/// Sets whether a dependency answered its last probe.
pub(crate) fn dependency_up(dependency: &'static str, up: bool) {
    gauge!(DEPENDENCY_UP, "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
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
        for metric in METRICS.iter() {
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

    #[test]
    fn every_counter_and_histogram_starts_at_zero_under_well_formed_label_sets() {
        for metric in METRICS.iter() {
            let label_sets = metric.initial_label_sets();
            if metric.kind != MetricKind::Gauge {
                assert!(
                    !label_sets.is_empty(),
                    "{} is not exported from start-up",
                    metric.name
                );
            }
            for label_set in &label_sets {
                assert_eq!(
                    label_set.len(),
                    metric.labels.len(),
                    "{}: {label_set:?} does not give one value per label {:?}",
                    metric.name,
                    metric.labels
                );
            }
            let mut distinct = label_sets.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), label_sets.len(), "{}", metric.name);
        }
    }

    #[test]
    fn taskmanager_gauges_show_what_each_taskmanager_reported() {
        let mut body = "flinkbroker_jobs_without_lease 0\n".to_owned();
        render_taskmanagers(
            &mut body,
            &[
                (
                    "127.0.0.1:6122-a86532".to_owned(),
                    TaskManagerMemory {
                        heap_used: Some(34_402_096),
                        heap_max: Some(436_207_616),
                        metaspace_used: Some(38_437_336),
                        metaspace_max: Some(268_435_456),
                    },
                ),
                (
                    "odd\"id\\".to_owned(),
                    TaskManagerMemory {
                        metaspace_used: Some(1),
                        ..TaskManagerMemory::default()
                    },
                ),
                // The JobManager has not fetched this one's metrics yet.
                (
                    "10.0.0.7:6122-ffffff".to_owned(),
                    TaskManagerMemory::default(),
                ),
            ],
        );
        let expected = "flinkbroker_jobs_without_lease 0\n\
# HELP flinkbroker_taskmanager_memory_used_bytes JVM memory a Flink TaskManager uses (area: heap, metaspace), read from the JobManager at each scrape\n\
# TYPE flinkbroker_taskmanager_memory_used_bytes gauge\n\
flinkbroker_taskmanager_memory_used_bytes{taskmanager=\"127.0.0.1:6122-a86532\",area=\"heap\"} 34402096\n\
flinkbroker_taskmanager_memory_used_bytes{taskmanager=\"127.0.0.1:6122-a86532\",area=\"metaspace\"} 38437336\n\
flinkbroker_taskmanager_memory_used_bytes{taskmanager=\"odd\\\"id\\\\\",area=\"metaspace\"} 1\n\
\n\
# HELP flinkbroker_taskmanager_memory_max_bytes The most JVM memory a Flink TaskManager may use (area: heap, metaspace), read from the JobManager at each scrape\n\
# TYPE flinkbroker_taskmanager_memory_max_bytes gauge\n\
flinkbroker_taskmanager_memory_max_bytes{taskmanager=\"127.0.0.1:6122-a86532\",area=\"heap\"} 436207616\n\
flinkbroker_taskmanager_memory_max_bytes{taskmanager=\"127.0.0.1:6122-a86532\",area=\"metaspace\"} 268435456\n\
\n";
        assert_eq!(body, expected);

        let mut body = String::new();
        render_taskmanagers(&mut body, &[]);
        assert_eq!(body, "");
    }
}
