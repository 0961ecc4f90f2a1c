//! Behaviour of the SQL Gateway stand-in, checked against responses recorded from a real
//! Flink 1.20.3 gateway and JobManager (`tests/fixtures/`); its JobManager REST API is also
//! driven through the broker's own client.

use flinkbroker_testkit::standin as sql_gateway_standin;

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use flinkbroker_flink::jobmanager::{
    FlinkError, FlinkJobStatus, JobManager, RestJobManager, SavepointFormat, SavepointStatus,
};
use sql_gateway_standin::{Standin, StandinConfig};

const RECORDED: &str = include_str!("../fixtures/sql-gateway/recorded-responses.json");
const JOB_NOT_FOUND: &str = include_str!("../fixtures/jobmanager/job-not-found.json");
const JOB_ID_MALFORMED: &str = include_str!("../fixtures/jobmanager/job-id-malformed.json");
const EXCEPTIONS_NONE: &str = include_str!("../fixtures/jobmanager/exceptions-none.json");
/// The job id of those recordings.
const RECORDED_UNKNOWN_JOB: &str = "ffffffffffffffffffffffffffffffff";

/// A configuration where only fetches make statements ready, so page sequences are exact, and
/// cancels land at once.
fn paced_by_fetches() -> StandinConfig {
    StandinConfig {
        submit_delay: Duration::from_secs(3600),
        honor_rows_per_second: false,
        cancel_delay: Duration::ZERO,
        ..StandinConfig::default()
    }
}

/// Polls `probe` until it answers, failing the test after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The broker's JobManager client, pointed at the stand-in.
fn jobmanager(standin: &Standin) -> RestJobManager {
    let _ = rustls::crypto::ring::default_provider().install_default();
    RestJobManager::new(&standin.base_url, Duration::from_secs(5)).expect("client builds")
}

fn recorded(name: &str) -> (u16, Value) {
    let all: Value = serde_json::from_str(RECORDED).expect("recorded responses parse");
    let entry = &all[name];
    (
        entry["status"].as_u64().expect("recorded status") as u16,
        entry["body"].clone(),
    )
}

/// Replaces every UUID in `text` by `ID`, so bodies from different runs compare.
fn mask_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_uuid = |s: &[u8]| {
        s.len() == 36
            && s.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            out.push_str("ID");
            i += 36;
        } else {
            let ch = text[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn assert_recorded(name: &str, status: u16, body: &Value) {
    let (want_status, want_body) = recorded(name);
    assert_eq!(status, want_status, "{name}: HTTP status");
    assert_eq!(
        mask_ids(&want_body.to_string()),
        mask_ids(&body.to_string()),
        "{name}: body"
    );
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(standin: &Standin) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::builder().build().expect("http client"),
            base: standin.base_url.clone(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        assert_eq!(content_type, "application/json; charset=UTF-8");
        let text = response.text().await.expect("body read");
        (status, serde_json::from_str(&text).expect("JSON body"))
    }

    async fn open_session(&self, mode: &str) -> String {
        let body = json!({"sessionName": "test", "properties": {"execution.runtime-mode": mode}});
        let (status, reply) = self
            .call(Method::POST, "/v2/sessions", Some(&body.to_string()))
            .await;
        assert_eq!(status, 200);
        reply["sessionHandle"]
            .as_str()
            .expect("session handle")
            .to_string()
    }

    async fn submit_body(&self, session: &str, body: Value) -> String {
        let (status, reply) = self
            .call(
                Method::POST,
                &format!("/v2/sessions/{session}/statements"),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 200, "submission of {body}: {reply}");
        reply["operationHandle"]
            .as_str()
            .expect("operation handle")
            .to_string()
    }

    async fn submit(&self, session: &str, statement: &str) -> String {
        self.submit_body(session, json!({ "statement": statement }))
            .await
    }

    async fn status(&self, session: &str, op: &str) -> (u16, Value) {
        self.call(
            Method::GET,
            &format!("/v2/sessions/{session}/operations/{op}/status"),
            None,
        )
        .await
    }

    async fn fetch(&self, session: &str, op: &str, token: i64) -> (u16, Value) {
        self.call(
            Method::GET,
            &format!("/v2/sessions/{session}/operations/{op}/result/{token}?rowFormat=JSON"),
            None,
        )
        .await
    }

    /// Follows `nextResultUri` until EOS (or an error); returns every page.
    async fn fetch_all(&self, session: &str, op: &str) -> Vec<(u16, Value)> {
        let mut pages = Vec::new();
        let mut uri = format!("/v2/sessions/{session}/operations/{op}/result/0?rowFormat=JSON");
        for _ in 0..100_000 {
            let (status, page) = self.call(Method::GET, &uri, None).await;
            let next = page["nextResultUri"].as_str().map(str::to_string);
            let end = status != 200 || page["resultType"] == "EOS";
            pages.push((status, page));
            match next {
                Some(next) if !end => uri = next,
                _ => return pages,
            }
        }
        panic!("no EOS after 100000 pages");
    }

    /// Runs a statement to the end and returns its rows.
    async fn run(&self, session: &str, statement: &str) -> Vec<Value> {
        let op = self.submit(session, statement).await;
        let pages = self.fetch_all(session, &op).await;
        let (status, last) = pages.last().expect("a page");
        assert_eq!(*status, 200, "{statement}: {last}");
        rows_of(&pages)
    }
}

fn rows_of(pages: &[(u16, Value)]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|(_, p)| p["results"]["data"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn error_text(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn api_versions_and_info_answer_like_flink_1_20() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("spawn");
    let client = Client::new(&standin);
    let (status, body) = client.call(Method::GET, "/api_versions", None).await;
    assert_eq!(
        (status, body),
        (200, json!({"versions": ["V1", "V2", "V3"]}))
    );
    for version in ["v1", "v2", "v3"] {
        let (status, body) = client
            .call(Method::GET, &format!("/{version}/info"), None)
            .await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"productName": "Apache Flink", "version": "1.20.3"})
            )
        );
    }
    let (status, body) = client.call(Method::GET, "/v9/info", None).await;
    assert_eq!(
        (status, body),
        (404, json!({"errors": ["Not found: /v9/info"]}))
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn sessions_report_their_properties_and_close() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    assert_eq!(standin.open_session_count(), 1);
    let (status, body) = client
        .call(Method::GET, &format!("/v2/sessions/{session}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["properties"]["execution.runtime-mode"], "batch");
    assert_eq!(body["properties"]["rest.port"], "8081");
    assert_eq!(
        body["properties"]["table.resources.download-dir"],
        format!("/opt/flink-local/rt-tmp/sql-gateway-{session}")
    );
    let (status, body) = client
        .call(Method::DELETE, &format!("/v2/sessions/{session}"), None)
        .await;
    assert_eq!((status, body), (200, json!({"status": "CLOSED"})));
    assert_eq!(standin.open_session_count(), 0);
    let (status, body) = client
        .call(Method::GET, &format!("/v2/sessions/{session}"), None)
        .await;
    assert_recorded("unknown-session-get", status, &body);
    standin.shutdown().await;
}

#[tokio::test]
async fn heartbeats_are_counted_and_answer_an_empty_object() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    for _ in 0..3 {
        let (status, body) = client
            .call(
                Method::POST,
                &format!("/v2/sessions/{session}/heartbeat"),
                None,
            )
            .await;
        assert_eq!((status, body), (200, json!({})));
    }
    assert_eq!(standin.heartbeats(), 3);
    standin.shutdown().await;
}

#[tokio::test]
async fn unknown_session_fails_on_every_endpoint_like_the_recording() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("spawn");
    let client = Client::new(&standin);
    let zero = "00000000-0000-0000-0000-000000000000";
    let (s, b) = client
        .call(Method::GET, &format!("/v2/sessions/{zero}"), None)
        .await;
    assert_recorded("unknown-session-get", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{zero}/statements"),
            Some(r#"{"statement":"SELECT 1"}"#),
        )
        .await;
    assert_recorded("unknown-session-statement", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{zero}/heartbeat"),
            None,
        )
        .await;
    assert_recorded("unknown-session-heartbeat", s, &b);
    let (s, b) = client
        .call(Method::DELETE, &format!("/v2/sessions/{zero}"), None)
        .await;
    assert_recorded("unknown-session-close", s, &b);
    let (s, b) = client
        .call(
            Method::GET,
            &format!("/v2/sessions/{zero}/operations/{zero}/status"),
            None,
        )
        .await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains(&format!("Session '{zero}' does not exist.")));
    standin.shutdown().await;
}

#[tokio::test]
async fn malformed_handles_and_bodies_are_rejected_with_400_like_the_recording() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("spawn");
    let client = Client::new(&standin);
    let (s, b) = client
        .call(Method::GET, "/v2/sessions/not-a-uuid", None)
        .await;
    assert_recorded("malformed-session-handle", s, &b);
    let (s, b) = client
        .call(Method::POST, "/v2/sessions", Some("{bad json"))
        .await;
    assert_recorded("malformed-open-session-body", s, &b);
    let session = client.open_session("batch").await;
    let (s, b) = client
        .call(
            Method::GET,
            &format!("/v2/sessions/{session}/operations/not-a-uuid/status"),
            None,
        )
        .await;
    assert_recorded("malformed-operation-handle", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/statements"),
            Some("not json"),
        )
        .await;
    assert_recorded("malformed-statement-body", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v1/sessions/{session}/configure-session"),
            Some(r#"{"statement":"SET 'a'='b'"}"#),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(
        b,
        json!({"errors": [format!("Not found: /v1/sessions/{session}/configure-session")]})
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn fetch_retries_not_ready_pages_then_payload_then_eos() {
    let config = StandinConfig {
        not_ready_pages: 3,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let op = client.submit(&session, "SELECT 1").await;
    assert_eq!(
        client.status(&session, &op).await,
        (200, json!({"status": "RUNNING"}))
    );
    let pages = client.fetch_all(&session, &op).await;
    let kinds: Vec<(&str, usize)> = pages
        .iter()
        .map(|(_, p)| {
            (
                p["resultType"].as_str().unwrap_or_default(),
                p["results"]["data"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("NOT_READY", 0),
            ("NOT_READY", 0),
            ("NOT_READY", 0),
            ("PAYLOAD", 0),
            ("PAYLOAD", 1),
            ("EOS", 0)
        ]
    );
    let not_ready = &pages[0].1;
    assert_eq!(
        not_ready,
        &json!({
            "resultType": "NOT_READY",
            "nextResultUri": format!("/v2/sessions/{session}/operations/{op}/result/0?rowFormat=JSON")
        })
    );
    let payload = &pages[4].1;
    assert_eq!(payload["isQueryResult"], true);
    assert_eq!(payload["resultKind"], "SUCCESS_WITH_CONTENT");
    assert_eq!(
        payload["results"]["columns"],
        json!([{"name": "EXPR$0", "logicalType": {"type": "INTEGER", "nullable": false}, "comment": null}])
    );
    assert_eq!(
        payload["results"]["data"],
        json!([{"kind": "INSERT", "fields": [1]}])
    );
    let job = payload["jobID"].as_str().expect("jobID");
    assert_eq!(job.len(), 32);
    assert_eq!(pages[5].1["jobID"], job);
    assert!(pages[5].1.get("nextResultUri").is_none());
    assert_eq!(
        client.status(&session, &op).await,
        (200, json!({"status": "FINISHED"}))
    );
    assert!(standin.flink_jobs().iter().any(|(id, _)| id == job));
    standin.shutdown().await;
}

#[tokio::test]
async fn status_turns_finished_after_the_submit_delay_without_fetches() {
    let config = StandinConfig {
        submit_delay: Duration::ZERO,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let op = client.submit(&session, "SELECT 42 AS answer").await;
    assert_eq!(
        client.status(&session, &op).await,
        (200, json!({"status": "FINISHED"}))
    );
    let rows = rows_of(&client.fetch_all(&session, &op).await);
    assert_eq!(rows, vec![json!({"kind": "INSERT", "fields": [42]})]);
    standin.shutdown().await;
}

#[tokio::test]
async fn select_of_every_type_matches_the_recording() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    let op = client
        .submit(
            &session,
            "SELECT 1 AS c_int, 'a' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool, CAST(7 AS BIGINT) AS c_bigint, ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date, TIME '03:04:05' AS c_time, TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts, TO_TIMESTAMP_LTZ(0, 3) AS c_ltz, CAST(1.5 AS DECIMAL(10,2)) AS c_dec, CAST(2.5 AS DOUBLE) AS c_double, X'CAFE' AS c_bytes",
        )
        .await;
    let pages = client.fetch_all(&session, &op).await;
    let data_page = pages
        .iter()
        .find(|(_, p)| {
            p["results"]["data"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
        })
        .expect("a page with the row");
    let (_, want) = recorded("all-types-page");
    assert_eq!(data_page.1["results"], want["results"]);
    assert_eq!(data_page.1["isQueryResult"], want["isQueryResult"]);
    assert_eq!(data_page.1["resultKind"], want["resultKind"]);
    standin.shutdown().await;
}

#[tokio::test]
async fn bad_sql_is_accepted_then_fails_at_status_and_fetch_like_the_recording() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let op = client.submit(&session, "SELEC 1").await;
    assert_eq!(
        client.status(&session, &op).await,
        (200, json!({"status": "ERROR"}))
    );
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_recorded("parse-error-fetch", s, &b);
    let (s, b) = client
        .call(
            Method::DELETE,
            &format!("/v2/sessions/{session}/operations/{op}/close"),
            None,
        )
        .await;
    assert_eq!((s, b), (200, json!({"status": "CLOSED"})));

    let op = client.submit(&session, "SELECT * FROM no_such_table").await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_recorded("validation-error-fetch", s, &b);

    let op = client.submit(&session, "SELECT a FROM\n  WHERE").await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_eq!(s, 500);
    let text = error_text(&b);
    assert!(
        text.contains(
            "SqlParserException: SQL parse failed. Encountered \"WHERE\" at line 2, column 3."
        ),
        "{text}"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn token_rules_allow_only_the_current_and_the_previous_token() {
    let config = StandinConfig {
        not_ready_pages: 0,
        empty_payload_pages: false,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    let op = client
        .submit(
            &session,
            "SELECT * FROM (VALUES (1,'a'),(2,'b'),(3,'c')) AS t(id, name)",
        )
        .await;
    let three = json!([
        {"kind": "INSERT", "fields": [1, "a"]},
        {"kind": "INSERT", "fields": [2, "b"]},
        {"kind": "INSERT", "fields": [3, "c"]}
    ]);
    let (_, first) = client.fetch(&session, &op, 0).await;
    assert_eq!(first["results"]["data"], three);
    let (_, again) = client.fetch(&session, &op, 0).await;
    assert_eq!(
        again["results"]["data"], three,
        "the current page can be fetched again"
    );
    let (s, b) = client.fetch(&session, &op, 5).await;
    assert_recorded("fetch-token-ahead", s, &b);
    let (_, eos) = client.fetch(&session, &op, 1).await;
    assert_eq!(eos["resultType"], "EOS");
    let (_, previous) = client.fetch(&session, &op, 0).await;
    assert_eq!(previous["resultType"], "PAYLOAD");
    assert_eq!(previous["results"]["data"], json!([]));
    let (_, eos) = client.fetch(&session, &op, 1).await;
    assert_eq!(eos["resultType"], "EOS");
    let (s, b) = client.fetch(&session, &op, 9).await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains("Expecting token to be 1 or 0, but found 9."));
    standin.shutdown().await;
}

#[tokio::test]
async fn two_statements_and_execution_timeouts_are_rejected_like_the_recording() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    let op = client.submit(&session, "SELECT 1; SELECT 2").await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_recorded("fetch-multiple-statements", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/statements"),
            Some(r#"{"statement":"SELECT 1","executionTimeout":5000}"#),
        )
        .await;
    assert_recorded("execution-timeout-rejected", s, &b);
    let recorded: Vec<u16> = standin.statements().iter().map(|r| r.http_status).collect();
    assert_eq!(recorded, vec![200, 500]);
    standin.shutdown().await;
}

const GEN_2500: &str = "CREATE TABLE gen (id BIGINT, name STRING, price DOUBLE, amount DECIMAL(10, 2), ts TIMESTAMP(3), ok BOOLEAN) WITH ('connector'='datagen', 'number-of-rows'='2500', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='2500', 'fields.name.length'='6', 'fields.price.min'='1', 'fields.price.max'='100')";

#[tokio::test]
async fn bounded_datagen_select_streams_every_row_in_pages() {
    let config = StandinConfig {
        rows_per_page: 1000,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    let created = client.run(&session, GEN_2500).await;
    assert_eq!(created, vec![json!({"kind": "INSERT", "fields": ["OK"]})]);
    let op = client.submit(&session, "SELECT * FROM gen").await;
    let pages = client.fetch_all(&session, &op).await;
    let sizes: Vec<usize> = pages
        .iter()
        .filter(|(_, p)| p["resultType"] == "PAYLOAD")
        .map(|(_, p)| p["results"]["data"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![0, 1000, 0, 1000, 0, 500]);
    let rows = rows_of(&pages);
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["fields"][0].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
    for row in &rows {
        assert_eq!(row["kind"], "INSERT");
        let name = row["fields"][1].as_str().expect("name");
        assert_eq!(name.len(), 6);
        let price = row["fields"][2].as_f64().expect("price");
        assert!((1.0..=100.0).contains(&price), "{price}");
        assert!(row["fields"][5].is_boolean());
    }
    let job = pages
        .iter()
        .find_map(|(_, p)| p["jobID"].as_str())
        .expect("jobID")
        .to_string();
    assert_eq!(
        standin.flink_jobs(),
        vec![(job, "FINISHED".to_string())],
        "the job ends with the last page"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn datagen_values_are_deterministic_per_table() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let strip_time = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut r| {
                r["fields"][4] = Value::Null;
                r
            })
            .collect()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let session = client.open_session("batch").await;
        client.run(&session, GEN_2500).await;
        runs.push(strip_time(
            client
                .run(&session, "SELECT * FROM gen WHERE id <= 10")
                .await,
        ));
    }
    assert_eq!(runs[0].len(), 10);
    assert_eq!(runs[0], runs[1]);
    standin.shutdown().await;
}

const GEN_KEYS: &str = "CREATE TABLE gen_keys (k INT, v INT) WITH ('connector'='datagen', 'rows-per-second'='10', 'number-of-rows'='30', 'fields.k.min'='1', 'fields.k.max'='3', 'fields.v.min'='1', 'fields.v.max'='9')";

#[tokio::test]
async fn streaming_group_by_emits_update_before_and_update_after() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client.run(&session, GEN_KEYS).await;
    let op = client
        .submit(
            &session,
            "SELECT k, COUNT(*) AS cnt, SUM(v) AS total FROM gen_keys GROUP BY k",
        )
        .await;
    let pages = client.fetch_all(&session, &op).await;
    let columns = &pages
        .iter()
        .find(|(_, p)| p["resultType"] == "PAYLOAD")
        .expect("payload")
        .1["results"]["columns"];
    assert_eq!(
        columns,
        &json!([
            {"name": "k", "logicalType": {"type": "INTEGER", "nullable": true}, "comment": null},
            {"name": "cnt", "logicalType": {"type": "BIGINT", "nullable": false}, "comment": null},
            {"name": "total", "logicalType": {"type": "INTEGER", "nullable": true}, "comment": null}
        ])
    );
    let rows = rows_of(&pages);
    let count = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).count();
    let keys = count("INSERT");
    assert!((1..=3).contains(&keys));
    assert_eq!(count("UPDATE_BEFORE"), 30 - keys);
    assert_eq!(count("UPDATE_AFTER"), 30 - keys);
    let final_counts: i64 = (1..=3)
        .filter_map(|k| {
            rows.iter()
                .rev()
                .find(|r| r["fields"][0] == k && r["kind"] != "UPDATE_BEFORE")
                .and_then(|r| r["fields"][1].as_i64())
        })
        .sum();
    assert_eq!(final_counts, 30);
    standin.shutdown().await;
}

#[tokio::test]
async fn batch_group_by_emits_only_final_rows() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    client.run(&session, GEN_KEYS).await;
    let rows = client
        .run(
            &session,
            "SELECT k, COUNT(*) AS cnt, SUM(v) AS total FROM gen_keys GROUP BY k",
        )
        .await;
    assert!(rows.iter().all(|r| r["kind"] == "INSERT"));
    let total: i64 = rows
        .iter()
        .map(|r| r["fields"][1].as_i64().expect("cnt"))
        .sum();
    assert_eq!(total, 30);
    standin.shutdown().await;
}

#[tokio::test]
async fn insert_returns_its_job_id_and_runs_a_flink_job() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(
            &session,
            "CREATE TABLE src (id INT) WITH ('connector'='datagen')",
        )
        .await;
    client
        .run(
            &session,
            "CREATE TABLE print_sink (id INT) WITH ('connector'='print')",
        )
        .await;
    let op = client
        .submit(&session, "INSERT INTO print_sink SELECT * FROM src")
        .await;
    let pages = client.fetch_all(&session, &op).await;
    let payload = &pages
        .iter()
        .find(|(_, p)| p["resultType"] == "PAYLOAD")
        .expect("payload")
        .1;
    let job = payload["jobID"].as_str().expect("jobID").to_string();
    assert_eq!(payload["isQueryResult"], false);
    assert_eq!(payload["resultKind"], "SUCCESS_WITH_CONTENT");
    assert_eq!(payload["results"]["columns"][0]["name"], "job id");
    assert_eq!(
        payload["results"]["data"],
        json!([{"kind": "INSERT", "fields": [job]}])
    );
    assert_eq!(
        client.status(&session, &op).await.1,
        json!({"status": "FINISHED"})
    );
    assert_eq!(
        standin.flink_jobs(),
        vec![(job.clone(), "RUNNING".to_string())]
    );

    let stop = client.run(&session, &format!("STOP JOB '{job}'")).await;
    assert_eq!(stop, vec![json!({"kind": "INSERT", "fields": ["OK"]})]);
    assert_eq!(
        standin.flink_jobs(),
        vec![(job.clone(), "CANCELED".to_string())]
    );
    let op = client.submit(&session, &format!("STOP JOB '{job}'")).await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains("was not canceled, but instead CANCELED."));
    standin.shutdown().await;
}

#[tokio::test]
async fn pinned_job_id_becomes_the_job_id_and_cannot_be_reused() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(
            &session,
            "CREATE TABLE src15 (x INT) WITH ('connector'='datagen','number-of-rows'='10')",
        )
        .await;
    client
        .run(
            &session,
            "CREATE TABLE snk15 (x INT) WITH ('connector'='blackhole')",
        )
        .await;
    let pinned = "0000000000000000000000000000f15a";
    let body = json!({
        "statement": "INSERT INTO snk15 SELECT x FROM src15",
        "executionConfig": {"$internal.pipeline.job-id": pinned}
    });
    let op = client.submit_body(&session, body.clone()).await;
    let rows = rows_of(&client.fetch_all(&session, &op).await);
    assert_eq!(rows, vec![json!({"kind": "INSERT", "fields": [pinned]})]);

    let op = client.submit_body(&session, body).await;
    let pages = client.fetch_all(&session, &op).await;
    let (s, b) = pages.last().expect("a page");
    assert_eq!(*s, 500);
    let text = error_text(b);
    assert!(text.contains("DuplicateJobSubmissionException: Job has already been submitted."));
    assert!(text.contains(
        "Caused by: org.apache.flink.util.FlinkException: Failed to execute job 'insert-into_default_catalog.default_database.snk15'."
    ));
    let (_, recorded_body) = recorded("duplicate-job-id-fetch");
    assert_eq!(
        recorded_body["errors"][1]
            .as_str()
            .map(|t| t.lines().count()),
        b["errors"][1].as_str().map(|t| t.lines().count())
    );
    assert_eq!(
        client.status(&session, &op).await.1,
        json!({"status": "ERROR"})
    );

    let recorded = standin.statements();
    let last = recorded.last().expect("recorded");
    assert_eq!(
        last.execution_config
            .get("$internal.pipeline.job-id")
            .map(String::as_str),
        Some(pinned)
    );
    assert_eq!(last.http_status, 200);
    assert_eq!(last.session_handle, session);
    assert_eq!(last.operation_handle.as_deref(), Some(op.as_str()));
    assert_eq!(
        standin
            .flink_jobs()
            .iter()
            .filter(|(id, _)| id == pinned)
            .count(),
        1
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn cancel_of_a_running_sync_insert_cancels_its_job() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(&session, "CREATE TABLE gen_unbounded (id INT) WITH ('connector'='datagen', 'rows-per-second'='2')")
        .await;
    client
        .run(
            &session,
            "CREATE TABLE bh_sink (id INT) WITH ('connector'='blackhole')",
        )
        .await;
    let op = client
        .submit_body(
            &session,
            json!({"statement": "INSERT INTO bh_sink SELECT * FROM gen_unbounded", "executionConfig": {"table.dml-sync": "true"}}),
        )
        .await;
    for _ in 0..5 {
        let (_, page) = client.fetch(&session, &op, 0).await;
        assert_eq!(
            page["resultType"], "NOT_READY",
            "a sync INSERT waits for its job"
        );
    }
    assert_eq!(
        client.status(&session, &op).await.1,
        json!({"status": "RUNNING"})
    );
    let jobs = standin.flink_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, "RUNNING");
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/operations/{op}/cancel"),
            None,
        )
        .await;
    assert_eq!((s, b), (200, json!({"status": "CANCELED"})));
    assert_eq!(
        client.status(&session, &op).await.1,
        json!({"status": "CANCELED"})
    );
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains(&format!(
        "Can not fetch results from the {op} in CANCELED status."
    )));
    assert_eq!(standin.flink_jobs()[0].1, "CANCELED");
    assert_eq!(standin.canceled_operations(), vec![op]);
    standin.shutdown().await;
}

#[tokio::test]
async fn cancel_and_close_of_a_finished_select_follow_the_recording() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(&session, "CREATE TABLE gen_unbounded (id INT) WITH ('connector'='datagen', 'rows-per-second'='2')")
        .await;
    let op = client.submit(&session, "SELECT * FROM gen_unbounded").await;
    let mut token = 0;
    let mut rows = 0;
    while rows < 10 {
        let (s, page) = client.fetch(&session, &op, token).await;
        assert_eq!(s, 200);
        if page["resultType"] == "PAYLOAD" {
            token += 1;
            rows += page["results"]["data"].as_array().map_or(0, Vec::len);
        }
    }
    assert_eq!(
        client.status(&session, &op).await.1,
        json!({"status": "FINISHED"})
    );
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/operations/{op}/cancel"),
            None,
        )
        .await;
    assert_recorded("cancel-finished-operation", s, &b);
    assert_eq!(standin.flink_jobs()[0].1, "RUNNING");
    let (s, b) = client
        .call(
            Method::DELETE,
            &format!("/v2/sessions/{session}/operations/{op}/close"),
            None,
        )
        .await;
    assert_eq!((s, b), (200, json!({"status": "CLOSED"})));
    assert_eq!(
        standin.flink_jobs()[0].1,
        "CANCELED",
        "closing a SELECT cancels its job"
    );
    let (s, b) = client.status(&session, &op).await;
    assert_recorded("status-closed-operation", s, &b);
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/operations/{op}/cancel"),
            None,
        )
        .await;
    assert_recorded("cancel-closed-operation", s, &b);
    let (s, b) = client.fetch(&session, &op, token).await;
    assert_recorded("fetch-closed-operation", s, &b);
    assert!(standin.canceled_operations().is_empty());
    standin.shutdown().await;
}

#[tokio::test]
async fn set_and_reset_change_the_session_configuration() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/configure-session"),
            Some(r#"{"statement":"SET 'table.local-time-zone' = 'UTC'"}"#),
        )
        .await;
    assert_eq!((s, b), (200, json!({})));
    let ok = vec![json!({"kind": "INSERT", "fields": ["OK"]})];
    assert_eq!(client.run(&session, "SET 'k' = 'v'").await, ok);
    let listing = client.run(&session, "SET").await;
    let keys: Vec<&str> = listing
        .iter()
        .filter_map(|r| r["fields"][0].as_str())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(listing.contains(&json!({"kind": "INSERT", "fields": ["k", "v"]})));
    assert!(
        listing.contains(&json!({"kind": "INSERT", "fields": ["table.local-time-zone", "UTC"]}))
    );
    let (_, props) = client
        .call(Method::GET, &format!("/v2/sessions/{session}"), None)
        .await;
    assert_eq!(props["properties"]["k"], "v");
    assert_eq!(client.run(&session, "RESET 'k'").await, ok);
    let (_, props) = client
        .call(Method::GET, &format!("/v2/sessions/{session}"), None)
        .await;
    assert!(props["properties"].get("k").is_none());
    assert_eq!(props["properties"]["table.local-time-zone"], "UTC");
    standin.shutdown().await;
}

#[tokio::test]
async fn v1_and_plain_text_fetches_follow_the_recording() {
    let config = StandinConfig {
        not_ready_pages: 0,
        empty_payload_pages: false,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let op = client
        .submit(&session, "SELECT 1 AS c_int, 'x' AS c_str")
        .await;
    let (_, page) = client
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}/operations/{op}/result/0"),
            None,
        )
        .await;
    assert_eq!(page["results"]["rowFormat"], "JSON");
    assert_eq!(
        page["nextResultUri"],
        format!("/v1/sessions/{session}/operations/{op}/result/1")
    );
    let op = client
        .submit(&session, "SELECT 1 AS c_int, 'x' AS c_str")
        .await;
    let (_, page) = client
        .call(
            Method::GET,
            &format!("/v2/sessions/{session}/operations/{op}/result/0?rowFormat=PLAIN_TEXT"),
            None,
        )
        .await;
    assert_eq!(page["results"]["rowFormat"], "PLAIN_TEXT");
    assert_eq!(
        page["results"]["data"],
        json!([{"kind": "INSERT", "fields": ["1", "x"]}])
    );
    assert_eq!(
        page["nextResultUri"],
        format!("/v2/sessions/{session}/operations/{op}/result/1?rowFormat=PLAIN_TEXT")
    );
    let (_, page) = client
        .call(
            Method::GET,
            &format!("/sessions/{session}/operations/{op}/result/0?rowFormat=JSON"),
            None,
        )
        .await;
    assert_eq!(
        page["nextResultUri"],
        format!("/v3/sessions/{session}/operations/{op}/result/1?rowFormat=JSON")
    );
    let (s, b) = client
        .call(
            Method::GET,
            &format!("/v2/sessions/{session}/complete-statement"),
            Some(r#"{"statement":"SELECT * FR","position":11}"#),
        )
        .await;
    assert_eq!((s, b), (200, json!({"candidates": ["FROM"]})));
    let (s, b) = client
        .call(
            Method::GET,
            &format!("/v3/sessions/{session}/complete-statement"),
            Some(r#"{"statement":"SHOW TAB","position":8}"#),
        )
        .await;
    assert_eq!((s, b), (200, json!({"candidates": ["TABLES"]})));
    standin.shutdown().await;
}

#[tokio::test]
async fn statement_set_runs_one_job_listed_by_show_jobs() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(
            &session,
            "CREATE TABLE src15 (x INT) WITH ('connector'='datagen','number-of-rows'='10')",
        )
        .await;
    client
        .run(
            &session,
            "CREATE TABLE snk15 (x INT) WITH ('connector'='blackhole')",
        )
        .await;
    let rows = client
        .run(
            &session,
            "EXECUTE STATEMENT SET BEGIN INSERT INTO snk15 SELECT x FROM src15; INSERT INTO snk15 SELECT x + 1 FROM src15; END",
        )
        .await;
    let job = rows[0]["fields"][0].as_str().expect("job id").to_string();
    let jobs = client.run(&session, "SHOW JOBS").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["fields"][0], job);
    assert_eq!(
        jobs[0]["fields"][1],
        "insert-into_default_catalog.default_database.snk15_1,default_catalog.default_database.snk15_2"
    );
    assert_eq!(jobs[0]["fields"][2], "FINISHED");
    assert!(
        jobs[0]["fields"][3]
            .as_str()
            .expect("start time")
            .ends_with('Z')
    );
    let tables = client.run(&session, "SHOW TABLES").await;
    assert_eq!(
        tables,
        vec![
            json!({"kind": "INSERT", "fields": ["snk15"]}),
            json!({"kind": "INSERT", "fields": ["src15"]})
        ]
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn sources_and_sinks_are_checked_like_flink() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    client
        .run(
            &session,
            "CREATE TABLE print_sink (id INT) WITH ('connector'='print')",
        )
        .await;
    client
        .run(
            &session,
            "CREATE TABLE forever (id INT) WITH ('connector'='datagen')",
        )
        .await;
    for (statement, message) in [
        (
            "SELECT * FROM print_sink",
            "Connector 'print' can only be used as a sink. It cannot be used as a source.",
        ),
        (
            "SELECT * FROM forever",
            "Querying an unbounded table 'default_catalog.default_database.forever' in batch mode is not allowed.",
        ),
        (
            "INSERT INTO forever SELECT 1",
            "Connector 'datagen' can only be used as a source. It cannot be used as a sink.",
        ),
        (
            "SELECT nope FROM print_sink",
            "From line 1, column 8 to line 1, column 11: Column 'nope' not found in any table",
        ),
    ] {
        let op = client.submit(&session, statement).await;
        let pages = client.fetch_all(&session, &op).await;
        let (s, b) = pages.last().expect("a page");
        assert_eq!(*s, 500, "{statement}");
        assert!(
            error_text(b).contains(message),
            "{statement}: {}",
            error_text(b)
        );
    }
    standin.shutdown().await;
}

#[tokio::test]
async fn closing_a_session_cancels_its_select_jobs() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    client
        .run(
            &session,
            "CREATE TABLE forever (id INT) WITH ('connector'='datagen')",
        )
        .await;
    let op = client.submit(&session, "SELECT id FROM forever").await;
    while client.fetch(&session, &op, 0).await.1["resultType"] == "NOT_READY" {}
    assert_eq!(standin.flink_jobs()[0].1, "RUNNING");
    let (s, _) = client
        .call(Method::DELETE, &format!("/v2/sessions/{session}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(standin.flink_jobs()[0].1, "CANCELED");
    assert_eq!(standin.open_session_count(), 0);
    standin.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let config = StandinConfig {
        session_idle_timeout: Duration::ZERO,
        ..paced_by_fetches()
    };
    let standin = Standin::spawn(config).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("streaming").await;
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/v2/sessions/{session}/heartbeat"),
            None,
        )
        .await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains(&format!("Session '{session}' does not exist.")));
    assert_eq!(standin.open_session_count(), 0);
    assert_eq!(standin.heartbeats(), 0);
    standin.shutdown().await;
}

#[tokio::test]
async fn failing_query_in_a_script_errors_at_fetch_while_the_next_statement_runs() {
    let standin = Standin::spawn(StandinConfig {
        submit_delay: Duration::from_millis(50),
        ..StandinConfig::default()
    })
    .await
    .expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    let view = client
        .submit(&session, "CREATE TEMPORARY VIEW ok AS SELECT 1 AS x")
        .await;
    assert_eq!(
        client.status(&session, &view).await,
        (200, json!({"status": "FINISHED"}))
    );
    let failing = client.submit(&session, "SELECT * FROM no_such_table").await;
    let after = client
        .submit(&session, "SELECT 'submitted right after'")
        .await;

    assert_eq!(
        client.status(&session, &failing).await,
        (200, json!({"status": "ERROR"}))
    );
    let (status, body) = client.fetch(&session, &failing, 0).await;
    assert_recorded("validation-error-fetch", status, &body);
    let text = error_text(&body);
    assert!(text.contains(
        "Caused by: org.apache.calcite.sql.validate.SqlValidatorException: Object 'no_such_table' not found"
    ));
    assert!(text.contains("From line 1, column 15 to line 1, column 27"));

    let finished = eventually(Duration::from_secs(10), || async {
        let (_, body) = client.status(&session, &after).await;
        (body["status"] != "RUNNING").then_some(body)
    })
    .await;
    assert_eq!(finished, json!({"status": "FINISHED"}));
    let pages = client.fetch_all(&session, &after).await;
    let first = &pages[0].1;
    assert_eq!(
        first["results"]["columns"],
        json!([{"name": "EXPR$0", "logicalType": {"type": "CHAR", "nullable": false, "length": 21}, "comment": null}])
    );
    assert!(first["jobID"].is_string());
    assert_eq!(
        rows_of(&pages),
        vec![json!({"kind": "INSERT", "fields": ["submitted right after"]})]
    );
    assert_eq!(
        client.run(&session, "SELECT x FROM ok").await,
        vec![json!({"kind": "INSERT", "fields": [1]})]
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn temporary_views_are_read_like_tables() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let session = client.open_session("batch").await;
    client
        .run(
            &session,
            "CREATE TABLE seq (id BIGINT) WITH ('connector'='datagen', 'number-of-rows'='6', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='6')",
        )
        .await;
    client
        .run(
            &session,
            "CREATE TEMPORARY VIEW big AS SELECT id, id * 10 AS tens FROM seq WHERE id > 2",
        )
        .await;
    assert_eq!(
        client
            .run(&session, "SELECT tens FROM big WHERE id < 5")
            .await,
        vec![
            json!({"kind": "INSERT", "fields": [30]}),
            json!({"kind": "INSERT", "fields": [40]})
        ]
    );
    assert_eq!(
        client
            .run(
                &session,
                "SELECT COUNT(*) AS n, SUM(tens) AS total FROM big"
            )
            .await,
        vec![json!({"kind": "INSERT", "fields": [4, 180]})]
    );
    assert_eq!(
        client
            .run(
                &session,
                "SELECT tens FROM (SELECT id * 10 AS tens FROM seq) WHERE tens > 50"
            )
            .await,
        vec![json!({"kind": "INSERT", "fields": [60]})]
    );
    assert_eq!(
        client.run(&session, "SHOW VIEWS").await,
        vec![json!({"kind": "INSERT", "fields": ["big"]})]
    );
    let described = client.run(&session, "DESCRIBE big").await;
    assert_eq!(described[1]["fields"][0], "tens");
    assert_eq!(described[1]["fields"][1], "BIGINT");

    let op = client
        .submit(&session, "CREATE TEMPORARY VIEW big AS SELECT 1")
        .await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_eq!(s, 500);
    assert!(
        error_text(&b).contains("already exists"),
        "{}",
        error_text(&b)
    );
    let op = client
        .submit(
            &session,
            "CREATE TEMPORARY VIEW broken AS SELECT nope FROM seq",
        )
        .await;
    let (s, b) = client.fetch(&session, &op, 0).await;
    assert_eq!(s, 500);
    assert!(error_text(&b).contains("Column 'nope' not found in any table"));
    client.run(&session, "DROP TEMPORARY VIEW big").await;
    assert!(client.run(&session, "SHOW VIEWS").await.is_empty());
    standin.shutdown().await;
}

/// Creates an unbounded source and a sink, then starts an INSERT whose Flink job id is `pinned`.
async fn start_pinned_insert(client: &Client, session: &str, pinned: &str) {
    client
        .run(
            session,
            "CREATE TABLE IF NOT EXISTS src (x INT) WITH ('connector'='datagen', 'rows-per-second'='5')",
        )
        .await;
    client
        .run(
            session,
            "CREATE TABLE IF NOT EXISTS snk (x INT) WITH ('connector'='blackhole')",
        )
        .await;
    let op = client
        .submit_body(
            session,
            json!({
                "statement": "INSERT INTO snk SELECT x FROM src",
                "executionConfig": {"$internal.pipeline.job-id": pinned}
            }),
        )
        .await;
    let rows = rows_of(&client.fetch_all(session, &op).await);
    assert_eq!(rows, vec![json!({"kind": "INSERT", "fields": [pinned]})]);
}

#[tokio::test]
async fn jobmanager_reports_gateway_jobs_under_their_pinned_ids() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let pinned = "c0ffee00000000000000000000000016";
    start_pinned_insert(&client, &session, pinned).await;

    flink.ping().await.expect("ping");
    assert_eq!(flink.job_status(pinned).await, Ok(FlinkJobStatus::Running));
    assert_eq!(flink.root_cause(pinned).await, Ok(None));
    let (s, exceptions) = client
        .call(Method::GET, &format!("/jobs/{pinned}/exceptions"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        exceptions,
        serde_json::from_str::<Value>(EXCEPTIONS_NONE).unwrap()
    );
    let (s, details) = client
        .call(Method::GET, &format!("/jobs/{pinned}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(details["jid"], pinned);
    assert_eq!(
        details["name"],
        "insert-into_default_catalog.default_database.snk"
    );
    assert_eq!(details["state"], "RUNNING");
    assert_eq!(details["job-type"], "STREAMING");
    assert_eq!(details["end-time"], -1);
    let (_, overview) = client.call(Method::GET, "/jobs/overview", None).await;
    assert_eq!(overview["jobs"][0]["jid"], pinned);
    assert_eq!(overview["jobs"][0]["state"], "RUNNING");
    let (_, cluster) = client.call(Method::GET, "/overview", None).await;
    assert_eq!(cluster["jobs-running"], 1);
    assert_eq!(cluster["flink-version"], "1.20.3");
    let (_, config) = client.call(Method::GET, "/config", None).await;
    assert_eq!(config["flink-version"], "1.20.3");

    // Flink rejects the id a second time; the error shows at fetch time.
    let again = client
        .submit_body(
            &session,
            json!({
                "statement": "INSERT INTO snk SELECT x FROM src",
                "executionConfig": {"$internal.pipeline.job-id": pinned}
            }),
        )
        .await;
    let pages = client.fetch_all(&session, &again).await;
    let (s, b) = pages.last().expect("a page");
    assert_eq!(*s, 500);
    assert!(error_text(b).contains("DuplicateJobSubmissionException"));
    let attempts: Vec<String> = standin
        .statements()
        .iter()
        .filter_map(|s| s.execution_config.get("$internal.pipeline.job-id").cloned())
        .collect();
    assert_eq!(attempts, vec![pinned.to_string(), pinned.to_string()]);
    assert_eq!(
        standin.flink_jobs(),
        vec![(pinned.to_string(), "RUNNING".to_string())]
    );
    let (_, overview) = client.call(Method::GET, "/jobs/overview", None).await;
    assert_eq!(overview["jobs"].as_array().map(Vec::len), Some(1));
    standin.shutdown().await;
}

#[tokio::test]
async fn jobmanager_answers_unknown_and_malformed_job_ids_like_the_recording() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let (s, b) = client
        .call(Method::GET, &format!("/jobs/{RECORDED_UNKNOWN_JOB}"), None)
        .await;
    assert_eq!((s, b), (404, serde_json::from_str(JOB_NOT_FOUND).unwrap()));
    let (s, b) = client.call(Method::GET, "/jobs/not-a-job-id", None).await;
    assert_eq!(
        (s, b),
        (400, serde_json::from_str(JOB_ID_MALFORMED).unwrap())
    );

    let unknown = "0123456789abcdef0123456789abcdef";
    for result in [
        flink.job_status(unknown).await.map(|_| ()),
        flink.root_cause(unknown).await.map(|_| ()),
        flink.cancel(unknown).await,
    ] {
        assert_eq!(result, Err(FlinkError::JobNotFound(unknown.to_string())));
    }
    let (s, b) = client.call(Method::GET, "/jobs/overview/extra", None).await;
    assert_eq!(
        (s, b),
        (404, json!({"errors": ["Not found: /jobs/overview/extra"]}))
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn cancel_is_acknowledged_at_once_and_lands_after_the_cancel_delay() {
    let cancel_delay = Duration::from_millis(300);
    let standin = Standin::spawn(StandinConfig {
        cancel_delay,
        ..paced_by_fetches()
    })
    .await
    .expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let pinned = "c0ffee00000000000000000000000020";
    start_pinned_insert(&client, &session, pinned).await;

    let asked = Instant::now();
    let (s, b) = client
        .call(Method::PATCH, &format!("/jobs/{pinned}?mode=cancel"), None)
        .await;
    assert_eq!((s, b), (202, json!({})));
    assert_eq!(
        flink.job_status(pinned).await,
        Ok(FlinkJobStatus::Running),
        "the cancel is asynchronous"
    );
    let (_, overview) = client.call(Method::GET, "/jobs/overview", None).await;
    assert_eq!(
        overview["jobs"][0]["state"], "CANCELED",
        "the overview is not cached"
    );
    flink.cancel(pinned).await.expect("a second cancel");
    eventually(Duration::from_secs(10), || async {
        (flink.job_status(pinned).await == Ok(FlinkJobStatus::Canceled)).then_some(())
    })
    .await;
    assert!(asked.elapsed() >= cancel_delay);
    let (s, b) = client
        .call(Method::PATCH, &format!("/jobs/{pinned}?mode=cancel"), None)
        .await;
    assert_eq!((s, b), (202, json!({})), "cancelling a cancelled job");
    let (_, details) = client
        .call(Method::GET, &format!("/jobs/{pinned}"), None)
        .await;
    assert_ne!(details["timestamps"]["CANCELLING"], 0);
    assert_eq!(details["timestamps"]["CANCELED"], details["end-time"]);
    assert_eq!(flink.root_cause(pinned).await, Ok(None));
    assert_eq!(
        standin.flink_jobs(),
        vec![(pinned.to_string(), "CANCELED".to_string())]
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn a_long_cancel_delay_keeps_cancelled_jobs_running() {
    let standin = Standin::spawn(StandinConfig {
        cancel_delay: Duration::from_secs(3600),
        ..paced_by_fetches()
    })
    .await
    .expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let by_jobmanager = "c0ffee00000000000000000000000021";
    let by_gateway = "c0ffee00000000000000000000000022";
    start_pinned_insert(&client, &session, by_jobmanager).await;
    start_pinned_insert(&client, &session, by_gateway).await;
    flink.cancel(by_jobmanager).await.expect("cancel");
    client
        .run(&session, &format!("STOP JOB '{by_gateway}'"))
        .await;
    for _ in 0..20 {
        for job in [by_jobmanager, by_gateway] {
            assert_eq!(flink.job_status(job).await, Ok(FlinkJobStatus::Running));
        }
    }
    standin.shutdown().await;
}

#[tokio::test]
async fn failed_job_reports_its_root_cause() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let pinned = "0000000000000000000000000000dead";
    start_pinned_insert(&client, &session, pinned).await;
    let select = client.submit(&session, "SELECT x FROM src").await;
    while client.fetch(&session, &select, 0).await.1["resultType"] == "NOT_READY" {}
    let select_job = standin
        .flink_jobs()
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| id != pinned)
        .expect("the SELECT's job");

    assert!(standin.fail_flink_job(pinned, "java.lang.RuntimeException: row 3 is poison"));
    assert!(!standin.fail_flink_job(pinned, "java.lang.RuntimeException: twice"));
    assert_eq!(flink.job_status(pinned).await, Ok(FlinkJobStatus::Failed));
    assert_eq!(
        flink.root_cause(pinned).await,
        Ok(Some(
            "java.lang.RuntimeException: row 3 is poison".to_string()
        ))
    );
    let (_, exceptions) = client
        .call(Method::GET, &format!("/jobs/{pinned}/exceptions"), None)
        .await;
    assert!(
        exceptions["root-exception"]
            .as_str()
            .expect("root exception")
            .starts_with("org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy")
    );
    assert_eq!(
        exceptions["exceptionHistory"]["entries"][0]["exceptionName"],
        "org.apache.flink.runtime.JobException"
    );
    let (s, b) = client
        .call(Method::PATCH, &format!("/jobs/{pinned}?mode=cancel"), None)
        .await;
    assert_eq!(s, 409);
    assert!(error_text(&b).contains("already reached another terminal state (FAILED)"));
    flink
        .cancel(pinned)
        .await
        .expect("the client accepts a job that already ended");

    // A SELECT whose job fails reports the cause at its next fetch.
    assert!(standin.fail_flink_job(&select_job, "java.lang.IllegalStateException: sink gone"));
    let (s, b) = client.fetch(&session, &select, 1).await;
    assert_eq!(s, 500);
    let text = error_text(&b);
    assert!(
        text.contains(
            "org.apache.flink.runtime.client.JobExecutionException: Job execution failed."
        )
    );
    assert!(text.contains("Caused by: java.lang.IllegalStateException: sink gone"));
    standin.shutdown().await;
}

#[tokio::test]
async fn stop_with_savepoint_is_idempotent_and_finishes_the_job() {
    let standin = Standin::spawn(StandinConfig {
        cancel_delay: Duration::from_millis(200),
        ..paced_by_fetches()
    })
    .await
    .expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let pinned = "0000000000000000000000000000a017";
    start_pinned_insert(&client, &session, pinned).await;
    let trigger = "1234567890abcdef1234567890abcdef";
    let target = Some("file:///opt/flink-local/rt-tmp/savepoints");

    assert_eq!(
        flink
            .stop_with_savepoint(pinned, trigger, target, SavepointFormat::Canonical)
            .await,
        Ok(trigger.to_string())
    );
    assert_eq!(
        flink
            .stop_with_savepoint(pinned, trigger, target, SavepointFormat::Canonical)
            .await,
        Ok(trigger.to_string()),
        "the same trigger id joins the first stop"
    );
    assert_eq!(
        flink.savepoint_status(pinned, trigger).await,
        Ok(SavepointStatus::InProgress)
    );
    assert_eq!(flink.job_status(pinned).await, Ok(FlinkJobStatus::Running));
    let location = eventually(Duration::from_secs(10), || async {
        match flink.savepoint_status(pinned, trigger).await {
            Ok(SavepointStatus::Completed { location }) => Some(location),
            Ok(SavepointStatus::InProgress) => None,
            other => panic!("savepoint status {other:?}"),
        }
    })
    .await;
    assert!(
        location.starts_with("file:/opt/flink-local/rt-tmp/savepoints/savepoint-000000-"),
        "{location}"
    );
    assert_eq!(flink.job_status(pinned).await, Ok(FlinkJobStatus::Finished));

    let unknown_trigger = "ffffffffffffffffffffffffffffffff";
    assert!(matches!(
        flink.savepoint_status(pinned, unknown_trigger).await,
        Err(FlinkError::Server { status: 404, .. })
    ));
    // A stop of a job that no longer runs is accepted; its savepoint fails.
    let late = "00000000000000000000000000000bad";
    flink
        .stop_with_savepoint(pinned, late, target, SavepointFormat::Canonical)
        .await
        .expect("accepted");
    match flink.savepoint_status(pinned, late).await {
        Ok(SavepointStatus::Failed { cause }) => assert_eq!(
            cause,
            format!(
                "org.apache.flink.runtime.messages.FlinkJobNotFoundException: Could not find Flink job ({pinned})"
            )
        ),
        other => panic!("savepoint status {other:?}"),
    }
    let (s, b) = client
        .call(
            Method::POST,
            &format!("/jobs/{pinned}/stop"),
            Some(r#"{"drain":false}"#),
        )
        .await;
    assert_eq!(s, 400);
    assert!(error_text(&b).contains("Property [targetDirectory] must be provided."));
    standin.shutdown().await;
}

#[tokio::test]
async fn stop_job_through_the_gateway_stops_the_job_the_jobmanager_reports() {
    let standin = Standin::spawn(paced_by_fetches()).await.expect("spawn");
    let client = Client::new(&standin);
    let flink = jobmanager(&standin);
    let session = client.open_session("streaming").await;
    let pinned = "c0ffee00000000000000000000000010";
    start_pinned_insert(&client, &session, pinned).await;
    let rows = client.run(&session, &format!("STOP JOB '{pinned}'")).await;
    assert_eq!(rows, vec![json!({"kind": "INSERT", "fields": ["OK"]})]);
    assert_eq!(flink.job_status(pinned).await, Ok(FlinkJobStatus::Canceled));

    let savepointed = "c0ffee00000000000000000000000011";
    start_pinned_insert(&client, &session, savepointed).await;
    client
        .run(
            &session,
            "SET 'execution.checkpointing.savepoint-dir' = 'file:///tmp/savepoints'",
        )
        .await;
    let rows = client
        .run(
            &session,
            &format!("STOP JOB '{savepointed}' WITH SAVEPOINT"),
        )
        .await;
    let path = rows[0]["fields"][0].as_str().expect("savepoint path");
    assert!(
        path.starts_with("file:/tmp/savepoints/savepoint-c0ffee-"),
        "{path}"
    );
    assert_eq!(
        flink.job_status(savepointed).await,
        Ok(FlinkJobStatus::Finished)
    );
    standin.shutdown().await;
}
