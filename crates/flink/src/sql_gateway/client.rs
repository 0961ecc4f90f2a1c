//! The reqwest client of the SQL Gateway REST API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Url};
use serde::de::{DeserializeOwned, IgnoredAny};
use tracing::{Instrument, Span, info, warn};

use crate::metrics::{self, Endpoint};
use crate::rows;
use crate::sql_gateway::PIPELINE_JOB_ID_KEY;
use crate::sql_gateway::error::GatewayError;
use crate::sql_gateway::wire::{
    ApiVersionsBody, ExecuteStatementBody, ExecuteStatementResponse, FetchResultsBody,
    OpenSessionBody, OpenSessionResponse, OperationStatusBody, PageHeader, RawPage, ResultPage,
    ResultType,
};
use crate::sql_gateway::{ApiVersion, OperationHandle, OperationStatus, SessionHandle, SqlGateway};
use crate::trace;

/// No version negotiated yet (or the last one was forgotten after a failure).
const VERSION_UNKNOWN: u8 = 0;

/// The most characters of an unparsable response quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// The endpoints, as the metrics name them (the version prefix left out).
const API_VERSIONS: Endpoint = Endpoint {
    method: "GET",
    path: "/api_versions",
};
const OPEN_SESSION: Endpoint = Endpoint {
    method: "POST",
    path: "/sessions",
};
const HEARTBEAT: Endpoint = Endpoint {
    method: "POST",
    path: "/sessions/:session/heartbeat",
};
const CLOSE_SESSION: Endpoint = Endpoint {
    method: "DELETE",
    path: "/sessions/:session",
};
const EXECUTE_STATEMENT: Endpoint = Endpoint {
    method: "POST",
    path: "/sessions/:session/statements",
};
const OPERATION_STATUS: Endpoint = Endpoint {
    method: "GET",
    path: "/sessions/:session/operations/:operation/status",
};
const CANCEL_OPERATION: Endpoint = Endpoint {
    method: "POST",
    path: "/sessions/:session/operations/:operation/cancel",
};
const CLOSE_OPERATION: Endpoint = Endpoint {
    method: "DELETE",
    path: "/sessions/:session/operations/:operation/close",
};
const FETCH_RESULTS: Endpoint = Endpoint {
    method: "GET",
    path: "/sessions/:session/operations/:operation/result/:token",
};

/// Every endpoint the client calls.
pub(crate) const ENDPOINTS: &[Endpoint] = &[
    API_VERSIONS,
    OPEN_SESSION,
    HEARTBEAT,
    CLOSE_SESSION,
    EXECUTE_STATEMENT,
    OPERATION_STATUS,
    CANCEL_OPERATION,
    CLOSE_OPERATION,
    FETCH_RESULTS,
];

/// The SQL Gateway REST client.
///
/// The API version is negotiated on first use and cached; it is forgotten (and negotiated
/// again on the next call) when the gateway cannot be reached or answers 404, since a
/// restarted gateway may speak other versions.
pub struct RestSqlGateway {
    http: reqwest::Client,
    base_url: Url,
    request_timeout: Duration,
    /// `VERSION_UNKNOWN`, or the negotiated version's number.
    version: AtomicU8,
    /// Held while negotiating, so concurrent first calls negotiate once.
    negotiation: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RestSqlGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestSqlGateway")
            .field("base_url", &self.base_url.as_str())
            .field("request_timeout", &self.request_timeout)
            .field("version", &self.cached_version())
            .finish()
    }
}

impl RestSqlGateway {
    /// Creates a client of the gateway at `base_url`.
    ///
    /// `base_url` is e.g. `http://127.0.0.1:8083`; every request must complete within
    /// `request_timeout`.
    pub fn new(base_url: &str, request_timeout: Duration) -> Result<Self, GatewayError> {
        let base_url = Url::parse(base_url).map_err(|e| {
            GatewayError::Protocol(format!("invalid sql gateway url {base_url:?}: {e}"))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(GatewayError::Protocol(format!(
                "invalid sql gateway url {:?}: expected http:// or https://",
                base_url.as_str()
            )));
        }
        // reqwest is built without a default crypto provider and panics without one; the
        // binary installs ring at startup, this covers every other caller. Installing twice
        // is a harmless error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .build()
            .map_err(|e| GatewayError::Protocol(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            http,
            base_url,
            request_timeout,
            version: AtomicU8::new(VERSION_UNKNOWN),
            negotiation: tokio::sync::Mutex::new(()),
        })
    }

    fn cached_version(&self) -> Option<ApiVersion> {
        match self.version.load(Ordering::Acquire) {
            2 => Some(ApiVersion::V2),
            3 => Some(ApiVersion::V3),
            _ => None,
        }
    }

    fn remember_version(&self, version: ApiVersion) {
        let number = match version {
            ApiVersion::V2 => 2,
            ApiVersion::V3 => 3,
        };
        self.version.store(number, Ordering::Release);
    }

    fn forget_version(&self) {
        self.version.store(VERSION_UNKNOWN, Ordering::Release);
    }

    /// The version to talk: the cached one, or a fresh negotiation.
    async fn version(&self) -> Result<ApiVersion, GatewayError> {
        if let Some(version) = self.cached_version() {
            return Ok(version);
        }
        let _negotiating = self.negotiation.lock().await;
        if let Some(version) = self.cached_version() {
            return Ok(version);
        }
        self.fetch_version().await
    }

    async fn fetch_version(&self) -> Result<ApiVersion, GatewayError> {
        let url = self.url(None, &["api_versions"])?;
        let span = request_span(API_VERSIONS, &url);
        let body: ApiVersionsBody = self
            .call(span, API_VERSIONS, self.http.get(url), None)
            .await?;
        match pick_version(&body.versions) {
            Some(version) => {
                info!(version = version.path_segment(), offered = ?body.versions, "sql gateway api version negotiated");
                self.remember_version(version);
                Ok(version)
            }
            None => {
                warn!(offered = ?body.versions, "sql gateway offers no supported api version");
                self.forget_version();
                Err(GatewayError::UnsupportedVersion {
                    offered: body.versions,
                })
            }
        }
    }

    /// Builds `base/[v{n}/]segments...`, each segment percent-encoded.
    fn url(&self, version: Option<ApiVersion>, segments: &[&str]) -> Result<Url, GatewayError> {
        let mut url = self.base_url.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                GatewayError::Protocol(format!("cannot extend url {}", self.base_url))
            })?;
            path.pop_if_empty();
            if let Some(version) = version {
                path.push(version.path_segment());
            }
            path.extend(segments);
        }
        Ok(url)
    }

    async fn versioned_url(&self, segments: &[&str]) -> Result<Url, GatewayError> {
        let version = self.version().await?;
        self.url(Some(version), segments)
    }

    /// Sends a request and decodes its JSON answer, mapping every failure to a
    /// `GatewayError`. `requested_token` names the result token of a fetch.
    async fn call<T: DeserializeOwned>(
        &self,
        span: Span,
        endpoint: Endpoint,
        request: RequestBuilder,
        requested_token: Option<u64>,
    ) -> Result<T, GatewayError> {
        let (status, body) = self
            .call_raw(span, endpoint, request, requested_token)
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            GatewayError::Protocol(format!(
                "cannot decode the answer (http {}): {e}: {}",
                status.as_u16(),
                excerpt(&String::from_utf8_lossy(&body))
            ))
        })
    }

    /// Sends a request within its `span` (see [`request_span`]); the body of a successful
    /// answer, or the gateway's error. Every request to the gateway passes here, and is
    /// counted under `endpoint`.
    async fn call_raw(
        &self,
        span: Span,
        endpoint: Endpoint,
        request: RequestBuilder,
        requested_token: Option<u64>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), GatewayError> {
        let started = Instant::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            response.bytes().await.map(|body| (status, body))
        }
        .instrument(span.clone())
        .await;
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                trace::record_http_status(&span, None, true);
                metrics::gateway_request(endpoint, started, Some(None));
                return Err(self.transport_error(&error));
            }
        };
        trace::record_http_status(&span, Some(status.as_u16()), !status.is_success());
        let failure = (!status.is_success()).then_some(Some(status.as_u16()));
        metrics::gateway_request(endpoint, started, failure);
        if !status.is_success() {
            let error = GatewayError::from_response(status.as_u16(), &body, requested_token);
            if status == reqwest::StatusCode::NOT_FOUND
                || matches!(error, GatewayError::Unreachable(_))
            {
                self.forget_version();
            }
            return Err(error);
        }
        Ok((status, Vec::from(body)))
    }

    /// The URL of a result page.
    async fn result_url(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<reqwest::Url, GatewayError> {
        let token_text = token.to_string();
        let mut url = self
            .versioned_url(&[
                "sessions",
                &session.0,
                "operations",
                &operation.0,
                "result",
                &token_text,
            ])
            .await?;
        url.set_query(Some("rowFormat=JSON"));
        Ok(url)
    }

    fn transport_error(&self, error: &reqwest::Error) -> GatewayError {
        self.forget_version();
        let target = error
            .url()
            .map(|u| format!("{} ", u.as_str()))
            .unwrap_or_default();
        if error.is_timeout() {
            return GatewayError::Unreachable(format!(
                "{target}did not answer within {:?}",
                self.request_timeout
            ));
        }
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        GatewayError::Unreachable(format!("{target}failed: {cause}"))
    }

    async fn operation_call(
        &self,
        method: Method,
        endpoint: Endpoint,
        session: &SessionHandle,
        operation: &OperationHandle,
        action: &str,
    ) -> Result<OperationStatus, GatewayError> {
        let url = self
            .versioned_url(&["sessions", &session.0, "operations", &operation.0, action])
            .await?;
        let span = request_span(endpoint, &url);
        let body: OperationStatusBody = self
            .call(span, endpoint, self.http.request(method, url), None)
            .await?;
        parse_status(&body.status)
    }
}

/// Opens the span of one request to the gateway (its session and operation handles are
/// read from `url`).
fn request_span(endpoint: Endpoint, url: &Url) -> Span {
    trace::http_request_span("sql_gateway", endpoint, url)
}

/// Picks the highest API version the client knows among those offered.
fn pick_version(offered: &[String]) -> Option<ApiVersion> {
    let offers = |name: &str| offered.iter().any(|v| v.trim().eq_ignore_ascii_case(name));
    if offers("V3") {
        Some(ApiVersion::V3)
    } else if offers("V2") {
        Some(ApiVersion::V2)
    } else {
        None
    }
}

fn parse_status(status: &str) -> Result<OperationStatus, GatewayError> {
    OperationStatus::parse(status)
        .ok_or_else(|| GatewayError::Protocol(format!("unknown operation status {status:?}")))
}

/// Reads the token out of a `nextResultUri` such as
/// `/v2/sessions/{s}/operations/{o}/result/7?rowFormat=JSON`.
fn next_token_from_uri(uri: &str) -> Option<u64> {
    let path = uri.split(['?', '#']).next()?;
    let (_, token) = path.trim_end_matches('/').rsplit_once("/result/")?;
    token.parse().ok()
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_BODY_CHARS) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// The token of the next page: none at EOS or without `nextResultUri`.
fn next_token(result_type: ResultType, uri: Option<&str>) -> Result<Option<u64>, GatewayError> {
    match (result_type, uri) {
        (ResultType::Eos, _) | (_, None) => Ok(None),
        (_, Some(uri)) => next_token_from_uri(uri).map(Some).ok_or_else(|| {
            GatewayError::Protocol(format!("cannot read the next token of {uri:?}"))
        }),
    }
}

fn into_page(body: FetchResultsBody) -> Result<ResultPage, GatewayError> {
    let next_token = next_token(body.result_type, body.next_result_uri.as_deref())?;
    let results = body.results.unwrap_or_default();
    Ok(ResultPage {
        result_type: body.result_type,
        is_query_result: body.is_query_result,
        job_id: body.job_id,
        result_kind: body.result_kind,
        columns: results.columns,
        data: results.data,
        next_token,
    })
}

#[async_trait]
impl SqlGateway for RestSqlGateway {
    /// Asks the gateway for its versions every time it is called (a cheap liveness probe) and
    /// caches the answer for the other calls.
    async fn negotiate_version(&self) -> Result<ApiVersion, GatewayError> {
        let _negotiating = self.negotiation.lock().await;
        self.fetch_version().await
    }

    async fn open_session(
        &self,
        session_name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<SessionHandle, GatewayError> {
        let url = self.versioned_url(&["sessions"]).await?;
        let span = request_span(OPEN_SESSION, &url);
        let body = OpenSessionBody {
            session_name,
            properties,
        };
        let response: OpenSessionResponse = self
            .call(
                span.clone(),
                OPEN_SESSION,
                self.http.post(url).json(&body),
                None,
            )
            .await?;
        span.record("sql_gateway.session", response.session_handle.as_str());
        Ok(SessionHandle(response.session_handle))
    }

    async fn heartbeat(&self, session: &SessionHandle) -> Result<(), GatewayError> {
        let url = self
            .versioned_url(&["sessions", &session.0, "heartbeat"])
            .await?;
        let span = request_span(HEARTBEAT, &url);
        let _: IgnoredAny = self
            .call(span, HEARTBEAT, self.http.post(url), None)
            .await?;
        Ok(())
    }

    async fn close_session(&self, session: &SessionHandle) -> Result<(), GatewayError> {
        let url = self.versioned_url(&["sessions", &session.0]).await?;
        let span = request_span(CLOSE_SESSION, &url);
        let _: IgnoredAny = self
            .call(span, CLOSE_SESSION, self.http.delete(url), None)
            .await?;
        Ok(())
    }

    async fn execute_statement(
        &self,
        session: &SessionHandle,
        statement: &str,
        execution_config: &BTreeMap<String, String>,
    ) -> Result<OperationHandle, GatewayError> {
        let url = self
            .versioned_url(&["sessions", &session.0, "statements"])
            .await?;
        // The gateway rejects any positive executionTimeout; 0 means none (time limits are
        // enforced by the broker).
        let body = ExecuteStatementBody {
            statement,
            execution_timeout: 0,
            execution_config,
        };
        let span = request_span(EXECUTE_STATEMENT, &url);
        if let Some(pinned) = execution_config.get(PIPELINE_JOB_ID_KEY) {
            span.record("flink.job_id", pinned.as_str());
        }
        let response: ExecuteStatementResponse = self
            .call(
                span.clone(),
                EXECUTE_STATEMENT,
                self.http.post(url).json(&body),
                None,
            )
            .await?;
        span.record("sql_gateway.operation", response.operation_handle.as_str());
        Ok(OperationHandle(response.operation_handle))
    }

    async fn operation_status(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.operation_call(Method::GET, OPERATION_STATUS, session, operation, "status")
            .await
    }

    async fn cancel_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.operation_call(Method::POST, CANCEL_OPERATION, session, operation, "cancel")
            .await
    }

    async fn close_operation(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
    ) -> Result<OperationStatus, GatewayError> {
        self.operation_call(Method::DELETE, CLOSE_OPERATION, session, operation, "close")
            .await
    }

    async fn fetch_results(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<ResultPage, GatewayError> {
        let url = self.result_url(session, operation, token).await?;
        let span = request_span(FETCH_RESULTS, &url);
        let body: FetchResultsBody = self
            .call(span, FETCH_RESULTS, self.http.get(url), Some(token))
            .await?;
        into_page(body)
    }

    async fn fetch_page(
        &self,
        session: &SessionHandle,
        operation: &OperationHandle,
        token: u64,
    ) -> Result<RawPage, GatewayError> {
        let url = self.result_url(session, operation, token).await?;
        let span = request_span(FETCH_RESULTS, &url);
        let (status, body) = self
            .call_raw(span, FETCH_RESULTS, self.http.get(url), Some(token))
            .await?;
        let protocol = |e: &dyn std::fmt::Display| {
            GatewayError::Protocol(format!(
                "cannot decode the answer (http {}): {e}: {}",
                status.as_u16(),
                excerpt(&String::from_utf8_lossy(&body))
            ))
        };
        // One pass reads the page and converts its rows; a page whose rows do not convert is
        // still a page, and its header says where the results go on.
        let (result_type, next_result_uri, columns, rows, data) = match rows::convert_page(&body) {
            Ok(page) => {
                let columns = page.body.results.map(|r| r.columns).unwrap_or_default();
                let count = page.rows.len();
                (
                    page.body.result_type,
                    page.body.next_result_uri,
                    columns,
                    count,
                    Ok(page.rows),
                )
            }
            Err(error) => {
                let header: PageHeader = serde_json::from_slice(&body).map_err(|e| protocol(&e))?;
                let (columns, count) = match header.results {
                    Some(results) => (results.columns, results.data.len()),
                    None => (Vec::new(), 0),
                };
                (
                    header.result_type,
                    header.next_result_uri,
                    columns,
                    count,
                    Err(error.to_string()),
                )
            }
        };
        let next_token = next_token(result_type, next_result_uri.as_deref())?;
        Ok(RawPage {
            result_type,
            columns,
            rows,
            next_token,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokens_out_of_next_result_uris() {
        assert_eq!(
            next_token_from_uri(
                "/v2/sessions/fc3e479a-f205-4ee1-8fd0-3be79ee661d0/operations/d1cff0ba-7289-4f94-8a37-b7dd914d530a/result/2?rowFormat=JSON"
            ),
            Some(2)
        );
        assert_eq!(
            next_token_from_uri("/v1/sessions/s/operations/o/result/17"),
            Some(17)
        );
        assert_eq!(
            next_token_from_uri("/v3/sessions/s/operations/o/result/"),
            None
        );
        assert_eq!(
            next_token_from_uri("/v3/sessions/s/operations/o/status"),
            None
        );
        assert_eq!(
            next_token_from_uri("/v3/sessions/s/operations/o/result/x"),
            None
        );
    }

    #[test]
    fn picks_the_highest_known_version() {
        let offered = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            pick_version(&offered(&["V1", "V2", "V3"])),
            Some(ApiVersion::V3)
        );
        assert_eq!(pick_version(&offered(&["V1", "V2"])), Some(ApiVersion::V2));
        // Flink 2.1.3 offers V4; the broker speaks up to V3.
        assert_eq!(
            pick_version(&offered(&["V1", "V2", "V3", "V4"])),
            Some(ApiVersion::V3)
        );
        assert_eq!(pick_version(&offered(&["V2", "V4"])), Some(ApiVersion::V2));
        assert_eq!(pick_version(&offered(&["V1"])), None);
        assert_eq!(pick_version(&[]), None);
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(RestSqlGateway::new("not a url", Duration::from_secs(1)).is_err());
        assert!(RestSqlGateway::new("ftp://host/", Duration::from_secs(1)).is_err());
        assert!(RestSqlGateway::new("http://127.0.0.1:8083", Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn builds_urls_under_a_path_prefix() {
        let gateway = match RestSqlGateway::new("http://proxy/gateway/", Duration::from_secs(1)) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        let url = gateway.url(Some(ApiVersion::V3), &["sessions", "a b"]);
        assert_eq!(
            url.map(|u| u.to_string()),
            Ok("http://proxy/gateway/v3/sessions/a%20b".to_owned())
        );
    }
}
