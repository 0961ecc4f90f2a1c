//! The metrics of the REST clients: how long each request to the SQL Gateway and the JobManager
//! took, and which failed, by method and path template (never a path with ids in it).

use std::time::Instant;

use flinkbroker_model::metric::{Metric, MetricKind};
use metrics::{counter, histogram};

/// The duration of each SQL Gateway request.
const GATEWAY_REQUEST_DURATION: &str = "flinkbroker_sql_gateway_request_duration_seconds";
/// The SQL Gateway requests that failed.
const GATEWAY_REQUEST_ERRORS: &str = "flinkbroker_sql_gateway_request_errors_total";
/// The duration of each JobManager request.
const JOBMANAGER_REQUEST_DURATION: &str = "flinkbroker_jobmanager_request_duration_seconds";
/// The JobManager requests that failed.
const JOBMANAGER_REQUEST_ERRORS: &str = "flinkbroker_jobmanager_request_errors_total";

/// The series this crate records.
pub const METRICS: &[Metric] = &[
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
];

/// A REST endpoint: its method and path template (never a path with ids in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The HTTP method (`GET`).
    pub(crate) method: &'static str,
    /// The path template (`/jobs/:jobid`).
    pub(crate) path: &'static str,
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
pub(crate) fn gateway_request(endpoint: Endpoint, started: Instant, failure: Option<Option<u16>>) {
    histogram!(GATEWAY_REQUEST_DURATION, "method" => endpoint.method, "endpoint" => endpoint.path)
        .record(started.elapsed().as_secs_f64());
    if let Some(status) = failure {
        counter!(GATEWAY_REQUEST_ERRORS, "method" => endpoint.method, "endpoint" => endpoint.path, "error" => http_error_class(status))
            .increment(1);
    }
}

/// Records one JobManager request, as [`gateway_request`] does.
pub(crate) fn jobmanager_request(
    endpoint: Endpoint,
    started: Instant,
    failure: Option<Option<u16>>,
) {
    histogram!(JOBMANAGER_REQUEST_DURATION, "method" => endpoint.method, "endpoint" => endpoint.path)
        .record(started.elapsed().as_secs_f64());
    if let Some(status) = failure {
        counter!(JOBMANAGER_REQUEST_ERRORS, "method" => endpoint.method, "endpoint" => endpoint.path, "error" => http_error_class(status))
            .increment(1);
    }
}
