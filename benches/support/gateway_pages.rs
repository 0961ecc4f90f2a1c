//! The stand-in's pages as a plain HTTP client sees them: the table the benchmarks query, and
//! the plain reqwest client they measure the broker against.
#![allow(dead_code)]

use std::time::Instant;

use flinkbroker_flink::sql_gateway::wire::{FetchResultsBody, ResultType};

use super::sql_gateway_standin::StandinConfig;

pub(crate) fn table_ddl(name: &str, rows: u64) -> String {
    format!(
        "CREATE TABLE {name} (id BIGINT, name STRING, price DECIMAL(10, 2), ts TIMESTAMP(3), flag BOOLEAN) WITH ('connector'='datagen', 'number-of-rows'='{rows}', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{rows}', 'fields.name.length'='12')"
    )
}

pub(crate) fn standin_config() -> StandinConfig {
    StandinConfig {
        honor_rows_per_second: false,
        ..StandinConfig::default()
    }
}

/// Opens a batch session, creates a `rows`-row table `name` and starts `SELECT * FROM name`;
/// returns the URI of the first result page.
pub(crate) async fn start_query(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    rows: u64,
) -> String {
    let session: serde_json::Value = http
        .post(format!("{base}/v2/sessions"))
        .json(&serde_json::json!({"properties": {"execution.runtime-mode": "batch"}}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("open session")
        .json()
        .await
        .expect("session json");
    let session = session["sessionHandle"]
        .as_str()
        .expect("session handle")
        .to_string();
    let mut operation = String::new();
    for statement in [table_ddl(name, rows), format!("SELECT * FROM {name}")] {
        let answer: serde_json::Value = http
            .post(format!("{base}/v2/sessions/{session}/statements"))
            .json(&serde_json::json!({"statement": statement, "executionTimeout": 0}))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("statement")
            .json()
            .await
            .expect("statement json");
        operation = answer["operationHandle"]
            .as_str()
            .expect("operation")
            .to_string();
    }
    format!("/v2/sessions/{session}/operations/{operation}/result/0?rowFormat=JSON")
}

/// When the baseline's clock starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Before the session is opened (as a job's clock starts at SubmitSql).
    FromSubmission,
    /// At the first page.
    FromFirstPage,
}

/// The baseline: a plain reqwest client opening the session, submitting the query and
/// following `nextResultUri` back to back, parsing each page only to count its rows.
pub(crate) async fn plain_client_rows_per_second(
    base: &str,
    name: &str,
    rows: u64,
    clock: Clock,
) -> (u64, f64) {
    let http = reqwest::Client::new();
    let mut started = Instant::now();
    let mut uri = start_query(&http, base, name, rows).await;
    if clock == Clock::FromFirstPage {
        started = Instant::now();
    }
    let mut count = 0u64;
    loop {
        let body = http
            .get(format!("{base}{uri}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("fetch")
            .bytes()
            .await
            .expect("body");
        let page: FetchResultsBody = serde_json::from_slice(&body).expect("page json");
        count += page.results.map(|r| r.data.len() as u64).unwrap_or(0);
        match (page.result_type, page.next_result_uri) {
            (ResultType::Eos, _) | (_, None) => break,
            (_, Some(next)) => uri = next,
        }
    }
    (count, started.elapsed().as_secs_f64())
}
