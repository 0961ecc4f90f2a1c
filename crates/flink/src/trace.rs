//! The spans of the REST requests to the SQL Gateway and the JobManager: one per request,
//! named after its endpoint's path template, with the ids in its path as attributes.

use tracing::field::Empty;
use tracing::{Span, info_span};

use crate::metrics::Endpoint;

/// Opens the span of one HTTP request to a dependency (`peer`: `sql_gateway` or
/// `jobmanager`), named after its endpoint (`POST /sessions/:session/statements`). The
/// session, operation and Flink job ids in the URL's path become attributes; the caller
/// records the answer's status with [`record_http_status`].
pub(crate) fn http_request_span(
    peer: &'static str,
    endpoint: Endpoint,
    url: &reqwest::Url,
) -> Span {
    let span = info_span!(
        "http request",
        otel.name = %format_args!("{} {}", endpoint.method, endpoint.path),
        otel.kind = "client",
        otel.status_code = Empty,
        peer.service = peer,
        http.request.method = endpoint.method,
        url.template = endpoint.path,
        url.full = %without_credentials(url),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        http.response.status_code = Empty,
        error.type = Empty,
        sql_gateway.session = Empty,
        sql_gateway.operation = Empty,
        flink.job_id = Empty,
    );
    if !span.is_disabled()
        && let Some(segments) = url.path_segments()
    {
        let segments: Vec<&str> = segments.collect();
        for pair in segments.windows(2) {
            let field = match pair[0] {
                "sessions" => "sql_gateway.session",
                "operations" => "sql_gateway.operation",
                "jobs" => "flink.job_id",
                _ => continue,
            };
            span.record(field, pair[1]);
        }
    }
    span
}

/// Records a request's HTTP status (`None`: no answer) on its span, marking the span failed
/// when the request was.
pub(crate) fn record_http_status(span: &Span, status: Option<u16>, failed: bool) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            if failed {
                span.record("error.type", status.to_string());
            }
        }
        None => {
            span.record("error.type", "transport");
        }
    }
    if failed || status.is_none() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The URL without user name and password, as traces may show it.
fn without_credentials(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    // Only URLs that cannot be a base refuse these, and the clients reject those.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_spans_lose_their_credentials() {
        let url = reqwest::Url::parse(
            "http://user:secret@gateway:8083/v3/sessions/s-1/operations/o-2/result/0",
        )
        .expect("url");
        assert_eq!(
            without_credentials(&url).as_str(),
            "http://gateway:8083/v3/sessions/s-1/operations/o-2/result/0"
        );
    }
}
