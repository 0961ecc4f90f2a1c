//! `RestSqlGateway` against a mock gateway serving the bodies of the recorded transcripts.

use std::collections::BTreeMap;
use std::time::Duration;

use flinkbroker_flink::rows;
use flinkbroker_flink::sql_gateway::{
    ApiVersion, GatewayError, OperationHandle, OperationStatus, RestSqlGateway, ResultType,
    SessionHandle, SqlGateway,
};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SESSION: &str = "33e72d1b-2fe3-4f0c-9a0d-46506f63e313";
const OPERATION: &str = "fa9b933b-7020-4fed-b1c4-3fc0f294f3f5";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/gateway-bodies/", $name, ".json"))
    };
}

fn json_response(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json; charset=UTF-8")
}

fn client(uri: &str, timeout: Duration) -> RestSqlGateway {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match RestSqlGateway::new(uri, timeout) {
        Ok(gateway) => gateway,
        Err(e) => panic!("cannot build the client: {e}"),
    }
}

/// A mock gateway that offers `versions` (expected to be asked `negotiations` times).
async fn gateway_offering(versions: &str, negotiations: u64) -> (MockServer, RestSqlGateway) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api_versions"))
        .respond_with(json_response(200, versions))
        .expect(negotiations)
        .mount(&server)
        .await;
    let gateway = client(&server.uri(), Duration::from_secs(5));
    (server, gateway)
}

fn session() -> SessionHandle {
    SessionHandle(SESSION.to_owned())
}

fn operation() -> OperationHandle {
    OperationHandle(OPERATION.to_owned())
}

fn operation_path(action: &str) -> String {
    format!("/v3/sessions/{SESSION}/operations/{OPERATION}/{action}")
}

async fn mount_fetch(server: &MockServer, token: u64, body: &str, times: u64) {
    Mock::given(method("GET"))
        .and(path(operation_path(&format!("result/{token}"))))
        .and(query_param("rowFormat", "JSON"))
        .respond_with(json_response(200, body))
        .up_to_n_times(times)
        .expect(times)
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Version negotiation.

#[tokio::test]
async fn negotiates_the_highest_version_once_and_caches_it() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(200, fixture!("heartbeat")))
        .expect(3)
        .mount(&server)
        .await;
    for _ in 0..3 {
        assert_eq!(gateway.heartbeat(&session()).await, Ok(()));
    }
}

#[tokio::test]
async fn negotiate_version_asks_the_gateway_each_time() {
    let (_server, gateway) = gateway_offering(fixture!("api-versions"), 2).await;
    assert_eq!(gateway.negotiate_version().await, Ok(ApiVersion::V3));
    assert_eq!(gateway.negotiate_version().await, Ok(ApiVersion::V3));
}

#[tokio::test]
async fn speaks_v2_to_a_gateway_without_v3() {
    let (server, gateway) = gateway_offering(r#"{"versions":["V1","V2"]}"#, 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(200, "{}"))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(gateway.negotiate_version().await, Ok(ApiVersion::V2));
    assert_eq!(gateway.heartbeat(&session()).await, Ok(()));
}

#[tokio::test]
async fn v1_only_gateway_is_unsupported() {
    let (_server, gateway) = gateway_offering(r#"{"versions":["V1"]}"#, 2).await;
    let expected = GatewayError::UnsupportedVersion {
        offered: vec!["V1".to_owned()],
    };
    assert_eq!(gateway.negotiate_version().await, Err(expected.clone()));
    let opened = gateway.open_session("s", &BTreeMap::new()).await;
    assert_eq!(opened, Err(expected));
}

#[tokio::test]
async fn renegotiates_after_a_failed_negotiation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api_versions"))
        .respond_with(json_response(
            500,
            r#"{"errors":["Internal server error."]}"#,
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api_versions"))
        .respond_with(json_response(200, fixture!("api-versions")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(200, "{}"))
        .expect(2)
        .mount(&server)
        .await;
    let gateway = client(&server.uri(), Duration::from_secs(5));
    assert!(matches!(
        gateway.heartbeat(&session()).await,
        Err(GatewayError::Server { status: 500, .. })
    ));
    assert_eq!(gateway.heartbeat(&session()).await, Ok(()));
    assert_eq!(gateway.heartbeat(&session()).await, Ok(()));
}

#[tokio::test]
async fn renegotiates_after_an_unknown_path() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 2).await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(404, fixture!("error-not-found-version")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(200, "{}"))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        gateway.heartbeat(&session()).await,
        Err(GatewayError::Server {
            status: 404,
            message: "Not found: /v9/info".to_owned(),
        })
    );
    assert_eq!(gateway.heartbeat(&session()).await, Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Sessions and statements.

#[tokio::test]
async fn opens_a_session_with_its_name_and_properties() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path("/v3/sessions"))
        .and(body_json(json!({
            "sessionName": "transcript-streaming",
            "properties": {"execution.runtime-mode": "streaming"}
        })))
        .respond_with(json_response(200, fixture!("open-session")))
        .expect(1)
        .mount(&server)
        .await;
    let properties =
        BTreeMap::from([("execution.runtime-mode".to_owned(), "streaming".to_owned())]);
    let handle = gateway
        .open_session("transcript-streaming", &properties)
        .await;
    assert_eq!(
        handle,
        Ok(SessionHandle(
            "fc3e479a-f205-4ee1-8fd0-3be79ee661d0".to_owned()
        ))
    );
}

#[tokio::test]
async fn closes_a_session() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("DELETE"))
        .and(path(format!("/v3/sessions/{SESSION}")))
        .respond_with(json_response(200, fixture!("close-session")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(gateway.close_session(&session()).await, Ok(()));
}

#[tokio::test]
async fn executes_with_execution_timeout_zero_and_the_execution_config() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/statements")))
        .and(body_json(json!({
            "statement": "INSERT INTO snk15 SELECT x FROM src15",
            "executionTimeout": 0,
            "executionConfig": {"$internal.pipeline.job-id": "0000000000000000000000000000f15a"}
        })))
        .respond_with(json_response(200, fixture!("execute-statement")))
        .expect(1)
        .mount(&server)
        .await;
    let config = BTreeMap::from([(
        "$internal.pipeline.job-id".to_owned(),
        "0000000000000000000000000000f15a".to_owned(),
    )]);
    let handle = gateway
        .execute_statement(&session(), "INSERT INTO snk15 SELECT x FROM src15", &config)
        .await;
    assert_eq!(
        handle,
        Ok(OperationHandle(
            "d1cff0ba-7289-4f94-8a37-b7dd914d530a".to_owned()
        ))
    );
    let requests = server.received_requests().await.unwrap_or_default();
    let sent = requests
        .iter()
        .find(|r| r.url.path().ends_with("/statements"))
        .map(|r| r.headers.get("content-type").cloned());
    assert_eq!(
        sent.flatten().as_ref().and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}

#[tokio::test]
async fn omits_an_empty_execution_config() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/statements")))
        .and(body_json(
            json!({"statement": "SELECT 1", "executionTimeout": 0}),
        ))
        .respond_with(json_response(200, fixture!("execute-statement")))
        .expect(1)
        .mount(&server)
        .await;
    let handle = gateway
        .execute_statement(&session(), "SELECT 1", &BTreeMap::new())
        .await;
    assert!(handle.is_ok(), "{handle:?}");
    let requests = server.received_requests().await.unwrap_or_default();
    let body = requests
        .iter()
        .find(|r| r.url.path().ends_with("/statements"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    assert_eq!(
        body.as_deref(),
        Some(r#"{"statement":"SELECT 1","executionTimeout":0}"#)
    );
}

#[tokio::test]
async fn reads_cancels_and_closes_operations() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("GET"))
        .and(path(operation_path("status")))
        .respond_with(json_response(200, fixture!("status-running")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(operation_path("status")))
        .respond_with(json_response(200, fixture!("status-error")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(operation_path("cancel")))
        .respond_with(json_response(200, fixture!("cancel-operation")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(operation_path("close")))
        .respond_with(json_response(200, fixture!("close-operation")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        gateway.operation_status(&session(), &operation()).await,
        Ok(OperationStatus::Running)
    );
    assert_eq!(
        gateway.operation_status(&session(), &operation()).await,
        Ok(OperationStatus::Error)
    );
    assert_eq!(
        gateway.cancel_operation(&session(), &operation()).await,
        Ok(OperationStatus::Canceled)
    );
    assert_eq!(
        gateway.close_operation(&session(), &operation()).await,
        Ok(OperationStatus::Closed)
    );
}

#[tokio::test]
async fn unknown_status_names_are_protocol_errors() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("GET"))
        .and(path(operation_path("status")))
        .respond_with(json_response(200, r#"{"status":"SLEEPING"}"#))
        .mount(&server)
        .await;
    assert!(matches!(
        gateway.operation_status(&session(), &operation()).await,
        Err(GatewayError::Protocol(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Result pages.

#[tokio::test]
async fn fetch_reads_not_ready_payload_and_eos_pages_with_their_tokens() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    // As recorded: NOT_READY on token 0, then the columns on token 0, the row on token 1, EOS.
    mount_fetch(&server, 0, fixture!("fetch-not-ready"), 1).await;
    mount_fetch(&server, 0, fixture!("fetch-all-types-columns"), 1).await;
    mount_fetch(&server, 1, fixture!("fetch-all-types-row"), 1).await;
    mount_fetch(&server, 2, fixture!("fetch-all-types-eos"), 1).await;

    let page = match gateway.fetch_results(&session(), &operation(), 0).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.result_type, ResultType::NotReady);
    assert_eq!(page.next_token, Some(0));
    assert!(page.columns.is_empty() && page.data.is_empty());

    let page = match gateway.fetch_results(&session(), &operation(), 0).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.result_type, ResultType::Payload);
    assert_eq!(page.next_token, Some(1));
    assert_eq!(page.columns.len(), 15);
    assert!(page.data.is_empty());
    assert_eq!(page.is_query_result, Some(true));
    assert_eq!(
        page.job_id.as_deref(),
        Some("0e4fa65d19e73c29107752b73b519645")
    );
    assert_eq!(page.result_kind.as_deref(), Some("SUCCESS_WITH_CONTENT"));

    let page = match gateway.fetch_results(&session(), &operation(), 1).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.result_type, ResultType::Payload);
    assert_eq!(page.next_token, Some(2));
    assert_eq!(page.data.len(), 1);
    let row = rows::convert_row(&page.data[0], &page.columns);
    assert!(row.is_ok(), "{row:?}");

    let page = match gateway.fetch_results(&session(), &operation(), 2).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.result_type, ResultType::Eos);
    assert_eq!(page.next_token, None);
    assert!(page.data.is_empty());
}

#[tokio::test]
async fn fetch_reads_row_kinds_and_job_ids() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    mount_fetch(&server, 3, fixture!("fetch-streaming-aggregation"), 1).await;
    mount_fetch(&server, 4, fixture!("fetch-insert-job-id"), 1).await;

    let page = match gateway.fetch_results(&session(), &operation(), 3).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    let kinds: Vec<i32> = page
        .data
        .iter()
        .filter_map(|row| rows::convert_row(row, &page.columns).ok())
        .map(|row| row.kind)
        .collect();
    assert_eq!(kinds.len(), page.data.len());
    assert!(kinds.contains(&(flinkbroker_proto::RowKind::UpdateBefore as i32)));
    assert!(kinds.contains(&(flinkbroker_proto::RowKind::UpdateAfter as i32)));

    let page = match gateway.fetch_results(&session(), &operation(), 4).await {
        Ok(page) => page,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(page.is_query_result, Some(false));
    assert_eq!(
        page.job_id.as_deref(),
        Some("0000000000000000000000000000f15a")
    );
    assert_eq!(page.columns[0].name, "job id");
}

#[tokio::test]
async fn fetch_reads_next_uris_without_a_query() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    mount_fetch(&server, 0, fixture!("fetch-v1-payload"), 1).await;
    let page = gateway.fetch_results(&session(), &operation(), 0).await;
    assert_eq!(page.map(|p| p.next_token), Ok(Some(1)));
}

#[tokio::test]
async fn fetch_without_a_next_uri_has_no_next_token() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    mount_fetch(
        &server,
        0,
        r#"{"resultType":"PAYLOAD","results":{"columns":[],"data":[]}}"#,
        1,
    )
    .await;
    mount_fetch(
        &server,
        1,
        r#"{"resultType":"PAYLOAD","nextResultUri":"/v3/nonsense"}"#,
        1,
    )
    .await;
    let page = gateway.fetch_results(&session(), &operation(), 0).await;
    assert_eq!(page.map(|p| p.next_token), Ok(None));
    let page = gateway.fetch_results(&session(), &operation(), 1).await;
    assert!(matches!(page, Err(GatewayError::Protocol(_))), "{page:?}");
}

// ---------------------------------------------------------------------------------------------
// Error classes.

#[tokio::test]
async fn unknown_session_is_reported_as_such() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/heartbeat")))
        .respond_with(json_response(
            500,
            fixture!("error-heartbeat-unknown-session"),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v3/sessions/{SESSION}/statements")))
        .respond_with(json_response(
            500,
            fixture!("error-execute-unknown-session"),
        ))
        .mount(&server)
        .await;
    let expected = Err(GatewayError::UnknownSession {
        session: "00000000-0000-0000-0000-000000000000".to_owned(),
        message: "Session '00000000-0000-0000-0000-000000000000' does not exist.".to_owned(),
    });
    assert_eq!(gateway.heartbeat(&session()).await, expected);
    let executed = gateway
        .execute_statement(&session(), "SELECT 1", &BTreeMap::new())
        .await;
    assert_eq!(executed.map(|_| ()), expected);
}

#[tokio::test]
async fn unknown_operation_is_reported_as_such() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("GET"))
        .and(path(operation_path("status")))
        .respond_with(json_response(
            500,
            fixture!("error-status-unknown-operation"),
        ))
        .mount(&server)
        .await;
    let status = gateway.operation_status(&session(), &operation()).await;
    assert_eq!(
        status,
        Err(GatewayError::UnknownOperation {
            operation: "768cb8c8-c44d-4ea4-bf92-302b9ef018ae".to_owned(),
            message: "Can not find the submitted operation in the OperationManager with the 768cb8c8-c44d-4ea4-bf92-302b9ef018ae.".to_owned(),
        })
    );
}

#[tokio::test]
async fn bad_sql_fails_the_statement_at_fetch_time() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    mount_fetch_error(&server, 0, 500, fixture!("error-bad-syntax")).await;
    mount_fetch_error(&server, 1, 500, fixture!("error-unknown-table")).await;
    assert_eq!(
        gateway
            .fetch_results(&session(), &operation(), 0)
            .await
            .map(|_| ()),
        Err(GatewayError::StatementFailed {
            message: "SQL parse failed. Non-query expression encountered in illegal context"
                .to_owned(),
        })
    );
    assert_eq!(
        gateway.fetch_results(&session(), &operation(), 1).await.map(|_| ()),
        Err(GatewayError::StatementFailed {
            message: "SQL validation failed. From line 1, column 15 to line 1, column 27: Object 'no_such_table' not found"
                .to_owned(),
        })
    );
}

#[tokio::test]
async fn tokens_the_gateway_does_not_serve_are_invalid() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    mount_fetch_error(&server, 5, 500, fixture!("error-token-ahead")).await;
    let fetched = gateway.fetch_results(&session(), &operation(), 5).await;
    assert_eq!(
        fetched.map(|_| ()),
        Err(GatewayError::InvalidToken {
            token: 5,
            message: "Expecting token to be 1 or 0, but found 5.".to_owned(),
        })
    );
}

#[tokio::test]
async fn malformed_requests_are_bad_requests() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("GET"))
        .and(path(operation_path("status")))
        .respond_with(json_response(400, fixture!("error-bad-operation-handle")))
        .mount(&server)
        .await;
    let status = gateway.operation_status(&session(), &operation()).await;
    assert!(
        matches!(status, Err(GatewayError::BadRequest { ref message }) if message.contains("Cannot resolve path parameter (operation_handle)")),
        "{status:?}"
    );
}

#[tokio::test]
async fn other_failures_are_server_errors_with_their_root_cause() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path(operation_path("cancel")))
        .respond_with(json_response(500, fixture!("error-cancel-finished")))
        .mount(&server)
        .await;
    let cancelled = gateway.cancel_operation(&session(), &operation()).await;
    assert_eq!(
        cancelled,
        Err(GatewayError::Server {
            status: 500,
            message: "Failed to convert the Operation Status from FINISHED to CANCELED for 768cb8c8-c44d-4ea4-bf92-302b9ef018ae.".to_owned(),
        })
    );
}

#[tokio::test]
async fn undecodable_answers_are_protocol_errors() {
    let (server, gateway) = gateway_offering(fixture!("api-versions"), 1).await;
    Mock::given(method("POST"))
        .and(path("/v3/sessions"))
        .respond_with(json_response(200, "<html>proxy</html>"))
        .mount(&server)
        .await;
    let opened = gateway.open_session("s", &BTreeMap::new()).await;
    assert!(
        matches!(opened, Err(GatewayError::Protocol(_))),
        "{opened:?}"
    );
}

async fn mount_fetch_error(server: &MockServer, token: u64, status: u16, body: &str) {
    Mock::given(method("GET"))
        .and(path(operation_path(&format!("result/{token}"))))
        .and(query_param("rowFormat", "JSON"))
        .respond_with(json_response(status, body))
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Transport failures.

#[tokio::test]
async fn unreachable_gateway_is_unreachable() {
    let port = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => match listener.local_addr() {
            Ok(address) => address.port(),
            Err(e) => panic!("{e}"),
        },
        Err(e) => panic!("{e}"),
    };
    // The listener is dropped: nothing listens on the port any more.
    let gateway = client(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5));
    let negotiated = gateway.negotiate_version().await;
    assert!(
        matches!(negotiated, Err(GatewayError::Unreachable(ref m)) if m.contains(&port.to_string())),
        "{negotiated:?}"
    );
    let heartbeat = gateway.heartbeat(&session()).await;
    assert!(
        matches!(heartbeat, Err(GatewayError::Unreachable(_))),
        "{heartbeat:?}"
    );
}

#[tokio::test]
async fn slow_gateway_is_unreachable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api_versions"))
        .respond_with(
            json_response(200, fixture!("api-versions")).set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let gateway = client(&server.uri(), Duration::from_millis(200));
    let negotiated = gateway.negotiate_version().await;
    assert!(
        matches!(negotiated, Err(GatewayError::Unreachable(ref m)) if m.contains("did not answer")),
        "{negotiated:?}"
    );
}
