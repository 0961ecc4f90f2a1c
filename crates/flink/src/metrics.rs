//! The metrics of the REST clients: how long each request to the SQL Gateway and the JobManager
//! took, and which failed, by method and path template (never a path with ids in it). Every
//! endpoint a client calls is exported from start-up, at zero.

use std::time::Instant;

use flinkbroker_model::metric::{Exported, LabelSets, Metric, MetricKind};
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
        exported: Exported::AtZero(|| endpoint_label_sets(crate::sql_gateway::ENDPOINTS)),
    },
    Metric {
        name: GATEWAY_REQUEST_ERRORS,
        kind: MetricKind::Counter,
        labels: &["method", "endpoint", "error"],
        help: "SQL Gateway REST requests that failed: transport, or an http status class",
        exported: Exported::AtZero(|| endpoint_error_label_sets(crate::sql_gateway::ENDPOINTS)),
    },
    Metric {
        name: JOBMANAGER_REQUEST_DURATION,
        kind: MetricKind::Histogram,
        labels: &["method", "endpoint"],
        help: "JobManager REST requests, by method and path template",
        exported: Exported::AtZero(|| endpoint_label_sets(crate::jobmanager::ENDPOINTS)),
    },
    Metric {
        name: JOBMANAGER_REQUEST_ERRORS,
        kind: MetricKind::Counter,
        labels: &["method", "endpoint", "error"],
        help: "JobManager REST requests that failed: transport, or an http status class",
        exported: Exported::AtZero(|| endpoint_error_label_sets(crate::jobmanager::ENDPOINTS)),
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

/// Every value of the `error` label: one status of each class [`http_error_class`] tells apart.
const HTTP_ERROR_CLASSES: [&str; 4] = [
    http_error_class(None),
    http_error_class(Some(400)),
    http_error_class(Some(500)),
    http_error_class(Some(300)),
];

/// The `method` and `endpoint` label values of each endpoint.
fn endpoint_label_sets(endpoints: &[Endpoint]) -> LabelSets {
    endpoints
        .iter()
        .map(|endpoint| vec![endpoint.method, endpoint.path])
        .collect()
}

/// The `method`, `endpoint` and `error` label values of each endpoint and way to fail.
fn endpoint_error_label_sets(endpoints: &[Endpoint]) -> LabelSets {
    endpoints
        .iter()
        .flat_map(|endpoint| {
            HTTP_ERROR_CLASSES.map(|error| vec![endpoint.method, endpoint.path, error])
        })
        .collect()
}

/// How a REST request failed, for the `error` label.
const fn http_error_class(status: Option<u16>) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_and_error_class_is_exported_once() {
        for endpoints in [crate::sql_gateway::ENDPOINTS, crate::jobmanager::ENDPOINTS] {
            let mut label_sets = endpoint_error_label_sets(endpoints);
            assert_eq!(label_sets.len(), endpoints.len() * HTTP_ERROR_CLASSES.len());
            label_sets.sort_unstable();
            label_sets.dedup();
            assert_eq!(
                label_sets.len(),
                endpoints.len() * HTTP_ERROR_CLASSES.len(),
                "an endpoint is listed twice"
            );
        }
        for status in [None, Some(404), Some(503), Some(302), Some(101)] {
            assert!(HTTP_ERROR_CLASSES.contains(&http_error_class(status)));
        }
    }
}
