//! Streams a large result (1 M rows × 5 mixed columns by default, `BENCH_ROWS` to change) from
//! the SQL Gateway stand-in through StreamOperationResults, next to a plain reqwest client
//! fetching the same pages, and prints rows/s of both and their ratio; then rows/s of the
//! JSON page to protobuf conversion alone; then the finished job's logged results read again
//! with encoding ROWS and with encoding ARROW (converted as the log is read), and their ratio;
//! and the process's peak memory.
//!
//! Run with `cargo bench --bench stream_results`.

#[path = "../tests/it/support/broker.rs"]
mod broker;
#[path = "../tests/it/support/counting_jobmanager.rs"]
mod counting_jobmanager;
#[path = "support/gateway_pages.rs"]
mod gateway_pages;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::time::{Duration, Instant};

use broker::TestBroker;
use flinkbroker_flink::rows;
use flinkbroker_flink::sql_gateway::wire::FetchResultsBody;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    ResultEncoding, RuntimeMode, StreamOperationResultsRequest, SubmitSqlRequest,
};
use gateway_pages::{Clock, plain_client_rows_per_second, standin_config, start_query, table_ddl};

/// The broker: SubmitSql, then StreamOperationResults to the end.
async fn broker_rows_per_second(broker: &TestBroker, rows: u64) -> (String, u64, f64) {
    let mut client = broker.client().await;
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: format!(
                "{};\nSELECT * FROM broker_big;",
                table_ddl("broker_big", rows)
            ),
            runtime_mode: RuntimeMode::Batch as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner();
    let started = Instant::now();
    let mut stream = client
        .stream_operation_results(StreamOperationResultsRequest {
            job_id: job.id.clone(),
            ..StreamOperationResultsRequest::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut count = 0u64;
    while let Some(message) = stream.message().await.expect("message") {
        match message.message {
            Some(Message::Rows(batch)) => count += batch.rows.len() as u64,
            Some(Message::End(end)) => {
                assert_eq!(end.rows_sent, count, "{}", end.error);
                break;
            }
            _ => {}
        }
    }
    (job.id, count, started.elapsed().as_secs_f64())
}

/// A finished job's logged results read again to their end in `encoding`.
async fn logged_rows_per_second(
    broker: &TestBroker,
    job_id: &str,
    encoding: ResultEncoding,
) -> (u64, f64) {
    let mut client = broker.client().await;
    let started = Instant::now();
    let mut stream = client
        .stream_operation_results(StreamOperationResultsRequest {
            job_id: job_id.to_owned(),
            encoding: encoding as i32,
            ..StreamOperationResultsRequest::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut count = 0u64;
    while let Some(message) = stream.message().await.expect("message") {
        match message.message {
            Some(Message::Rows(batch)) => count += batch.rows.len() as u64,
            Some(Message::Arrow(batch)) => count += batch.row_count,
            Some(Message::End(end)) => {
                assert_eq!(end.rows_sent, count, "{}", end.error);
                break;
            }
            _ => {}
        }
    }
    (count, started.elapsed().as_secs_f64())
}

/// Rows/s of JSON page parsing plus conversion to protobuf, without any I/O.
async fn conversion_rows_per_second(base: &str, rows: u64) -> (u64, f64) {
    // One real page from the stand-in, converted over and over.
    let http = reqwest::Client::new();
    let mut uri = start_query(&http, base, "page_big", 5000).await;
    let page = loop {
        let body = http
            .get(format!("{base}{uri}"))
            .send()
            .await
            .expect("fetch")
            .bytes()
            .await
            .expect("body");
        let page: FetchResultsBody = serde_json::from_slice(&body).expect("page");
        if page.results.as_ref().is_some_and(|r| !r.data.is_empty()) {
            break body;
        }
        uri = page.next_result_uri.expect("next page");
    };
    let started = Instant::now();
    let mut count = 0u64;
    while count < rows {
        let parsed: FetchResultsBody = serde_json::from_slice(&page).expect("page");
        let results = parsed.results.expect("results");
        for row in &results.data {
            std::hint::black_box(rows::convert_row(row, &results.columns).expect("row converts"));
        }
        count += results.data.len() as u64;
    }
    (count, started.elapsed().as_secs_f64())
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let broker = TestBroker::start_with(standin_config(), &[]).await;
        let base = broker.standin.base_url.clone();
        let rss_before = peak_rss_kib();

        let (plain_rows, plain_secs) =
            plain_client_rows_per_second(&base, "plain_big", rows, Clock::FromFirstPage).await;
        let (job_id, broker_rows, broker_secs) = broker_rows_per_second(&broker, rows).await;
        assert_eq!(plain_rows, rows);
        assert_eq!(broker_rows, rows);
        let plain_rate = plain_rows as f64 / plain_secs;
        let broker_rate = broker_rows as f64 / broker_secs;
        println!("rows: {rows} (5 columns: BIGINT, STRING, DECIMAL(10,2), TIMESTAMP(3), BOOLEAN)");
        println!("plain reqwest client:          {plain_rate:>12.0} rows/s ({plain_secs:.2} s)");
        println!("broker StreamOperationResults: {broker_rate:>12.0} rows/s ({broker_secs:.2} s)");
        println!(
            "ratio broker / plain client:   {:>12.2}",
            broker_rate / plain_rate
        );

        let (converted, convert_secs) = conversion_rows_per_second(&base, rows).await;
        println!(
            "JSON page -> protobuf alone:   {:>12.0} rows/s ({convert_secs:.2} s)",
            converted as f64 / convert_secs
        );
        let (logged_rows, rows_secs) =
            logged_rows_per_second(&broker, &job_id, ResultEncoding::Rows).await;
        let (arrow_rows, arrow_secs) =
            logged_rows_per_second(&broker, &job_id, ResultEncoding::Arrow).await;
        assert_eq!(logged_rows, rows);
        assert_eq!(arrow_rows, rows);
        let rows_rate = logged_rows as f64 / rows_secs;
        let arrow_rate = arrow_rows as f64 / arrow_secs;
        println!("the log read again, ROWS:      {rows_rate:>12.0} rows/s ({rows_secs:.2} s)");
        println!("the log read again, ARROW:     {arrow_rate:>12.0} rows/s ({arrow_secs:.2} s)");
        println!(
            "ratio ARROW / ROWS:            {:>12.2}",
            arrow_rate / rows_rate
        );
        if let (Some(before), Some(after)) = (rss_before, peak_rss_kib()) {
            println!(
                "peak RSS: {} MiB before streaming, {} MiB after (all three runs in one process)",
                before / 1024,
                after / 1024
            );
        }
        tokio::time::timeout(Duration::from_secs(30), broker.stop())
            .await
            .ok();
    });
}
