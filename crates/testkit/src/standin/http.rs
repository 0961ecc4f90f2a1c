//! HTTP routing of the SQL Gateway REST API (`/v1`, `/v2`, `/v3` and unversioned paths) onto the
//! gateway, including the REST layer's own 400 and 404 answers, and of the JobManager REST API
//! (`/config`, `/overview`, `/jobs/...`) onto the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value as Json;
use uuid::Uuid;

use super::exceptions::{self, ErrorBody};
use super::gateway::{ApiVersion, Gateway, Reply, RowFormat, StatementRequest};

const MAX_BODY: usize = 64 * 1024 * 1024;

/// The single handler behind every path.
pub async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let uri = parts.uri.clone();
    let reply = route(&gateway, &parts.method, uri.path(), uri.query(), &body);
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn not_found(path: &str, query: Option<&str>) -> Reply {
    let uri = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    Reply::error(ErrorBody::not_found(&uri))
}

fn parse_uuid(parameter: &str, value: &str) -> Result<Uuid, Reply> {
    Uuid::parse_str(value)
        .ok()
        .filter(|_| value.len() == 36)
        .ok_or_else(|| Reply::error(exceptions::bad_path_parameter(parameter, value)))
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Dispatches one request.
pub fn route(
    gateway: &Gateway,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if matches!(
        segments.first(),
        Some(&("config" | "overview" | "jobs" | "taskmanagers"))
    ) && let Some(reply) = gateway.jobmanager(method, &segments, query, body)
    {
        return reply;
    }
    let release = gateway.release();
    let (version, rest) = match segments.first() {
        Some(first)
            if first.len() >= 2
                && first.starts_with('v')
                && first[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            gateway.note_api_version(first);
            // Only the versions the release offers exist; V4 (2.1.3) answers as V3 does for
            // everything the transcripts cover.
            let version = match first[1..].parse::<u32>() {
                Ok(n) if n > release.latest_api() => return not_found(path, query),
                Ok(1) => ApiVersion::V1,
                Ok(2) => ApiVersion::V2,
                Ok(3 | 4) => ApiVersion::V3,
                _ => return not_found(path, query),
            };
            (version, &segments[1..])
        }
        _ => {
            gateway.note_api_version("-");
            let latest = if release.latest_api() >= 3 {
                ApiVersion::V3
            } else {
                ApiVersion::V2
            };
            (latest, &segments[..])
        }
    };
    let result = match (method, rest) {
        (&Method::GET, ["api_versions"]) => Ok(Reply::ok(
            serde_json::json!({ "versions": release.api_versions() }).to_string(),
        )),
        (&Method::GET, ["info"]) => Ok(Reply::ok(format!(
            "{{\"productName\":\"Apache Flink\",\"version\":\"{}\"}}",
            release.version()
        ))),
        (&Method::POST, ["sessions"]) => open_session(gateway, body),
        (&Method::GET, ["sessions", s]) => {
            parse_uuid("session_handle", s).map(|s| gateway.get_session(s))
        }
        (&Method::DELETE, ["sessions", s]) => {
            parse_uuid("session_handle", s).map(|s| gateway.close_session(s))
        }
        (&Method::POST, ["sessions", s, "heartbeat"]) => {
            parse_uuid("session_handle", s).map(|s| gateway.heartbeat(s))
        }
        (&Method::POST, ["sessions", s, "configure-session"]) if version != ApiVersion::V1 => {
            configure_session(gateway, s, body)
        }
        (&Method::GET, ["sessions", s, "complete-statement"]) if version != ApiVersion::V1 => {
            complete_statement(gateway, s, body)
        }
        (&Method::POST, ["sessions", s, "statements"]) => execute_statement(gateway, s, body),
        (&Method::GET, ["sessions", s, "operations", o, "status"]) => {
            parse_uuid("session_handle", s).and_then(|s| {
                parse_uuid("operation_handle", o).map(|o| gateway.operation_status(s, o))
            })
        }
        (&Method::POST, ["sessions", s, "operations", o, "cancel"]) => {
            parse_uuid("session_handle", s).and_then(|s| {
                parse_uuid("operation_handle", o).map(|o| gateway.cancel_operation(s, o))
            })
        }
        (&Method::DELETE, ["sessions", s, "operations", o, "close"]) => {
            parse_uuid("session_handle", s).and_then(|s| {
                parse_uuid("operation_handle", o).map(|o| gateway.close_operation(s, o))
            })
        }
        (&Method::GET, ["sessions", s, "operations", o, "result", token]) => {
            fetch(gateway, version, s, o, token, query)
        }
        _ => Err(not_found(path, query)),
    };
    result.unwrap_or_else(|reply| reply)
}

fn fetch(
    gateway: &Gateway,
    version: ApiVersion,
    session: &str,
    operation: &str,
    token: &str,
    query: Option<&str>,
) -> Result<Reply, Reply> {
    let session = parse_uuid("session_handle", session)?;
    let operation = parse_uuid("operation_handle", operation)?;
    let token: i64 = token
        .parse()
        .map_err(|_| Reply::error(exceptions::bad_path_parameter("token", token)))?;
    let format = if version == ApiVersion::V1 {
        RowFormat::Json
    } else {
        match query_param(query, "rowFormat") {
            None => RowFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("JSON") => RowFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("PLAIN_TEXT") => RowFormat::PlainText,
            Some(v) => {
                return Err(Reply::error(exceptions::bad_query_parameter(
                    "rowFormat",
                    v,
                )));
            }
        }
    };
    Ok(gateway.fetch(session, operation, token, version, format))
}

/// Binds a request body the way Flink's REST layer does (an empty body is `{}`).
fn parse_body(body: &[u8], class: &str) -> Result<serde_json::Map<String, Json>, Reply> {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err(bad_body(class)),
    }
}

/// A JSON scalar as Jackson coerces it into a `String` field.
fn scalar_string(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn bad_body(class: &str) -> Reply {
    Reply::error(exceptions::bad_request_body(class))
}

fn string_map(value: Option<&Json>, class: &str) -> Result<BTreeMap<String, String>, Reply> {
    match value {
        None | Some(Json::Null) => Ok(BTreeMap::new()),
        Some(Json::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                scalar_string(v)
                    .map(|s| (k.clone(), s))
                    .ok_or_else(|| bad_body(class))
            })
            .collect(),
        Some(_) => Err(bad_body(class)),
    }
}

fn open_session(gateway: &Gateway, body: &[u8]) -> Result<Reply, Reply> {
    let class = "OpenSessionRequestBody";
    let map = parse_body(body, class)?;
    let properties = string_map(map.get("properties"), class)?;
    Ok(gateway.open_session(properties.into_iter().collect()))
}

fn execute_statement(gateway: &Gateway, session: &str, body: &[u8]) -> Result<Reply, Reply> {
    let class = "ExecuteStatementRequestBody";
    let raw = String::from_utf8_lossy(body).to_string();
    let reject = |reply: Reply| {
        gateway.record_rejected(session, &raw, reply.status);
        reply
    };
    let session_id = parse_uuid("session_handle", session).map_err(reject)?;
    let map = parse_body(body, class).map_err(reject)?;
    let statement = match map.get("statement") {
        None | Some(Json::Null) => String::new(),
        Some(v) => scalar_string(v).ok_or_else(|| reject(bad_body(class)))?,
    };
    let execution_config = string_map(map.get("executionConfig"), class).map_err(reject)?;
    let execution_timeout = match map.get("executionTimeout") {
        None | Some(Json::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| reject(bad_body(class)))?,
        ),
    };
    Ok(gateway.execute_statement(
        session_id,
        StatementRequest {
            statement,
            execution_config,
            execution_timeout,
        },
    ))
}

fn configure_session(gateway: &Gateway, session: &str, body: &[u8]) -> Result<Reply, Reply> {
    let session = parse_uuid("session_handle", session)?;
    let map = parse_body(body, "ConfigureSessionRequestBody")?;
    let statement = map
        .get("statement")
        .and_then(scalar_string)
        .unwrap_or_default();
    Ok(gateway.configure_session(session, &statement))
}

fn complete_statement(gateway: &Gateway, session: &str, body: &[u8]) -> Result<Reply, Reply> {
    let session = parse_uuid("session_handle", session)?;
    let map = parse_body(body, "CompleteStatementRequestBody")?;
    let statement = map
        .get("statement")
        .and_then(scalar_string)
        .unwrap_or_default();
    let position = map
        .get("position")
        .and_then(|v| v.as_u64())
        .map(|p| p as usize)
        .unwrap_or_else(|| statement.chars().count());
    Ok(gateway.complete_statement(session, &statement, position))
}
