//! The durable result log: how fast the broker drains a query's results into it, how fast
//! readers stream them back out, and what an idle reader costs.
//!
//! The broker is the real `flinkbroker` binary (the bench profile's build), run as a child
//! process with its default flags, so that its CPU time and memory are read apart from the
//! stand-in's and the clients' (which run in this process). Every figure of the broker comes
//! from `/proc/<pid>`.
//!
//! 1. Drain: a plain reqwest client walks the SQL Gateway stand-in's pages of a 1 M-row ×
//!    5-column batch query and does nothing with them (the baseline), then the broker logs
//!    the same query: from SubmitSql until WatchJob shows the job FINISHED (its log is complete
//!    before it is). Both clocks start before the session is opened. Then the store's append alone: the logged pages appended again, one per
//!    transaction as the drain does, from this process (what the store allows the drain).
//!    On SQLite, on PostgreSQL as `flinkbroker_testkit::postgres` chooses it
//!    (`FLINKBROKER_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/test`, whose
//!    default `sslmode=prefer` uses TLS when the server offers it; the bench says whether it
//!    did), and on the same PostgreSQL with `sslmode=disable` (`postgres-notls`).
//! 2. Read: once the job FINISHED, this process reads the log straight from the same
//!    database with the store's own `read_log` and decodes the rows (the baseline), then one
//!    reader streams it over gRPC, then 64 concurrent readers over 4 HTTP/2 connections.
//! 3. Idle streams (SQLite): a streaming query that produces no rows runs, and 1 000
//!    StreamOperationResults streams wait at the live end of its log; the broker's VmRSS
//!    before and after, the cost per stream, and the broker's CPU while they wait.
//!
//! At the end a summary prints each target next to its figure: the SQLite drain against the
//! plain client (≥ 0.75), the broker's CPU per row drained on SQLite (≤ 1.0 µs), the
//! PostgreSQL drain against the plain client (≥ 0.6), PostgreSQL over TLS against
//! `sslmode=disable` (≥ 0.9), and the idle streams' CPU (≤ 3 % of a core) and memory
//! (≤ 64 KiB each).
//!
//! Environment: `BENCH_ROWS` (1000000), `BENCH_STORES` (`sqlite,postgres,postgres-notls`), `BENCH_READERS`
//! (64), `BENCH_READ_SECONDS` (20: the `max_duration` of each concurrent reader),
//! `BENCH_DRAIN_SECONDS` (300: how long a drain may take before it is reported unfinished),
//! `BENCH_APPEND_SECONDS` (10: the longest the store-append baseline runs),
//! `BENCH_IDLE_STREAMS` (1000), `BENCH_PARTS` (`drain,read,idle`).
//!
//! Run with `cargo bench --bench result_log`.

#[path = "support/gateway_pages.rs"]
mod gateway_pages;
#[path = "../tests/it/support/postgres.rs"]
mod postgres;
#[path = "support/process_broker.rs"]
mod process_broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flinkbroker_model::job::{JobId, JobSpec, NewJob, ResultLimits, SqlSpec, now_millis};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, RowBatch, RuntimeMode,
    StreamOperationResultsRequest, SubmitSqlRequest, WatchJobRequest,
};
use flinkbroker_store::{LogAppend, ResultLog, SeaStore, Store, pending_statements};
use gateway_pages::{Clock, plain_client_rows_per_second, standin_config, table_ddl};
use postgres::PostgresDatabase;
use process_broker::{ProcessBroker, load_average};
use prost::Message as _;
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::sync::{Barrier, watch};
use tonic::transport::Channel;

/// What the store reads per call, as the broker's reader does.
const READ_BATCHES: u64 = 16;
const READ_BYTES: u64 = 4 << 20;
/// HTTP/2 connections the concurrent readers share.
const READER_CONNECTIONS: usize = 4;
/// Idle streams per HTTP/2 connection (below the server's concurrent-stream limit).
const STREAMS_PER_CONNECTION: usize = 100;
/// How long idle streams wait before their memory is read: longer than the progress interval
/// (2 s) and the reader's poll (1 s), so that each has gone through its wait loop.
const IDLE_SETTLE: Duration = Duration::from_secs(5);
/// The window over which the broker's CPU is measured with the idle streams open.
const IDLE_CPU_WINDOW: Duration = Duration::from_secs(5);

struct Settings {
    rows: u64,
    stores: Vec<String>,
    readers: usize,
    read_seconds: u64,
    drain_limit: Duration,
    append_limit: Duration,
    idle_streams: usize,
    parts: Vec<String>,
}

impl Settings {
    fn from_env() -> Settings {
        use process_broker::env_number as number;
        fn list(name: &str, default: &str) -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }
        Settings {
            rows: number("BENCH_ROWS", 1_000_000),
            stores: list("BENCH_STORES", "sqlite,postgres,postgres-notls"),
            readers: number("BENCH_READERS", 64),
            read_seconds: number("BENCH_READ_SECONDS", 20),
            drain_limit: Duration::from_secs(number("BENCH_DRAIN_SECONDS", 300)),
            append_limit: Duration::from_secs(number("BENCH_APPEND_SECONDS", 10)),
            idle_streams: number("BENCH_IDLE_STREAMS", 1000),
            parts: list("BENCH_PARTS", "drain,read,idle"),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// A batch query the broker drained.
struct Drained {
    job_id: String,
    index: u32,
    rows_logged: u64,
    bytes_held: u64,
    /// Seconds from SubmitSql until the job was FINISHED, if it was.
    finished_secs: Option<f64>,
    elapsed_secs: f64,
}

/// The last query statement of a job.
fn query_statement(job: &Job) -> Option<&flinkbroker_proto::StatementStatus> {
    job.statements.iter().rev().find(|s| s.is_query)
}

/// The broker: SubmitSql, then WatchJob until the job FINISHED (its log is complete before
/// it is) or `limit` passed; then one GetJob reads the log's figures. Watching costs the broker
/// nothing while the drain runs (polling GetJob every 2 ms charged it 500 calls a second).
async fn broker_drain(broker: &ProcessBroker, name: &str, rows: u64, limit: Duration) -> Drained {
    let mut client = JobServiceClient::new(broker.channel().await);
    let started = Instant::now();
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: format!("{};\nSELECT * FROM {name};", table_ddl(name, rows)),
            runtime_mode: RuntimeMode::Batch as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner();
    let mut watched = client
        .watch_job(WatchJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("watch job")
        .into_inner();
    let deadline = tokio::time::Instant::now() + limit.saturating_sub(started.elapsed());
    let mut finished_secs = None;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, watched.message()).await else {
            break;
        };
        let Some(job) = next.expect("watch job") else {
            break;
        };
        if matches!(job.state(), JobState::Failed | JobState::Canceled) {
            panic!(
                "job {} ended {:?}: {}",
                job.id,
                job.state(),
                job.state_reason
            );
        }
        if job.state() == JobState::Finished {
            finished_secs = Some(started.elapsed().as_secs_f64());
            break;
        }
    }
    let elapsed_secs = started.elapsed().as_secs_f64();
    let job = client
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("get job")
        .into_inner();
    let statement = query_statement(&job).expect("a query statement");
    let log = statement.result_log.unwrap_or_default();
    Drained {
        job_id: job.id.clone(),
        index: statement.index,
        rows_logged: log.rows_logged,
        bytes_held: log.bytes_held,
        finished_secs,
        elapsed_secs,
    }
}

/// The append ceiling: the pages of `drained` as the broker logged them (already converted
/// and encoded), appended again one page per transaction, as the drain appends, to a new job's
/// log on the same database, until they run out or `limit` passed.
async fn store_append_rows_per_second(
    database_url: &str,
    drained: &Drained,
    limit: Duration,
) -> (u64, u64, f64) {
    let store = SeaStore::connect(database_url).await.expect("store");
    let source: JobId = drained.job_id.parse().expect("job id");
    let mut pages = Vec::new();
    let mut offset = 0u64;
    let schema = loop {
        let read = store
            .read_log(source, drained.index, offset, READ_BATCHES, READ_BYTES)
            .await
            .expect("read log")
            .expect("a log");
        if read.batches.is_empty() {
            break read.schema;
        }
        offset = read.batches.last().map_or(offset, |b| b.first_row + b.rows);
        pages.extend(read.batches);
    };
    let id = JobId::new_random();
    let script = "SELECT * FROM appended".to_owned();
    store
        .create_job(NewJob {
            id,
            request_id: None,
            tenant: "default".into(),
            principal: "anonymous".into(),
            labels: BTreeMap::new(),
            spec: JobSpec::Sql(SqlSpec {
                script: script.clone(),
                runtime_mode: flinkbroker_model::job::RuntimeMode::Batch,
                properties: BTreeMap::new(),
                result_limits: ResultLimits::default(),
                restore: None,
            }),
            statements: pending_statements(&[script]),
            flink_job_id: None,
            created_at: now_millis(),
            lease: None,
            audited_as: None,
            lineage: None,
        })
        .await
        .expect("create job");
    store.open_log(id, 0, 0, schema).await.expect("open log");
    let started = Instant::now();
    let (mut rows, mut appends) = (0u64, 0u64);
    for (token, page) in (1u64..).zip(pages) {
        rows += page.rows;
        appends += 1;
        store
            .append_log(
                id,
                0,
                LogAppend {
                    attempt: 0,
                    batches: vec![page],
                    next_token: Some(token),
                    end: None,
                    window_bytes: None,
                },
            )
            .await
            .expect("append");
        if started.elapsed() > limit {
            break;
        }
    }
    (rows, appends, started.elapsed().as_secs_f64())
}

/// The read baseline: the store's `read_log` on the same database, from this process, with
/// every row decoded.
async fn store_read_rows_per_second(database_url: &str, drained: &Drained) -> (u64, f64) {
    let store = SeaStore::connect(database_url).await.expect("store");
    let job_id: JobId = drained.job_id.parse().expect("job id");
    let started = Instant::now();
    let mut offset = 0u64;
    let mut count = 0u64;
    loop {
        let read = store
            .read_log(job_id, drained.index, offset, READ_BATCHES, READ_BYTES)
            .await
            .expect("read log")
            .expect("a log");
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            let decoded = RowBatch::decode(batch.data.as_slice()).expect("batch decodes");
            count += decoded.rows.len() as u64;
            offset = batch.first_row + batch.rows;
            std::hint::black_box(decoded);
        }
    }
    (count, started.elapsed().as_secs_f64())
}

/// One StreamOperationResults call read to its end: rows received and seconds.
async fn read_stream(
    mut client: JobServiceClient<Channel>,
    job_id: String,
    max_duration: Option<Duration>,
) -> (u64, f64) {
    let started = Instant::now();
    let mut stream = client
        .stream_operation_results(StreamOperationResultsRequest {
            job_id,
            max_duration: max_duration.map(|d| prost_types::Duration {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: 0,
            }),
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
    (count, started.elapsed().as_secs_f64())
}

/// `readers` concurrent streams over a few connections, started together: total rows and
/// the wall-clock seconds from the start to the last stream's end.
async fn concurrent_readers(
    broker: &ProcessBroker,
    job_id: &str,
    readers: usize,
    max_duration: Duration,
) -> (u64, f64) {
    let mut channels = Vec::new();
    for _ in 0..READER_CONNECTIONS.min(readers.max(1)) {
        channels.push(broker.channel().await);
    }
    let barrier = Arc::new(Barrier::new(readers + 1));
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let client = JobServiceClient::new(channels[reader % channels.len()].clone());
        let barrier = Arc::clone(&barrier);
        let job_id = job_id.to_owned();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            read_stream(client, job_id, Some(max_duration)).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut total = 0u64;
    for task in tasks {
        total += task.await.expect("reader").0;
    }
    (total, started.elapsed().as_secs_f64())
}

fn rate(rows: u64, secs: f64) -> f64 {
    rows as f64 / secs.max(f64::EPSILON)
}

/// CPU time of this process (the stand-in and the clients).
fn own_cpu_time() -> Duration {
    process_broker::process_cpu_time("/proc/self/stat").unwrap_or_default()
}

/// Where the CPU went during a phase: the broker's, and this process's (stand-in, clients).
fn cpu_note(broker: Duration, own: Duration, secs: f64, rows: u64) -> String {
    format!(
        "broker CPU {:.2} s = {:.2} cores, {:.2} µs per row; this process (stand-in, clients) {:.2} cores",
        broker.as_secs_f64(),
        broker.as_secs_f64() / secs.max(f64::EPSILON),
        broker.as_secs_f64() * 1e6 / rows.max(1) as f64,
        own.as_secs_f64() / secs.max(f64::EPSILON)
    )
}

/// What the drain of one store measured.
#[derive(Default, Clone, Copy)]
struct DrainFigures {
    /// Broker rows/s over plain-client rows/s.
    ratio: f64,
    /// Broker rows/s.
    rate: f64,
    /// Broker CPU per row drained, in µs.
    cpu_per_row_us: f64,
}

/// The PostgreSQL URL of a store name: as configured, or with TLS left out.
fn postgres_url(store: &str, url: &str) -> String {
    match store {
        "postgres-notls" => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}sslmode=disable")
        }
        _ => url.to_owned(),
    }
}

/// Whether a connection to `url` uses TLS (`pg_stat_ssl` of its own backend).
async fn postgres_uses_tls(url: &str) -> bool {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(url).await.expect("connect to PostgreSQL");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .expect("pg_stat_ssl");
    let tls = row
        .and_then(|row| row.try_get::<bool>("", "ssl").ok())
        .unwrap_or(false);
    let _ = db.close().await;
    tls
}

/// Parts 1 and 2 on one store.
async fn drain_and_read(settings: &Settings, store: &str) -> Option<DrainFigures> {
    let postgres = match store {
        "postgres" | "postgres-notls" => Some(PostgresDatabase::create("bench_result_log").await),
        _ => None,
    };
    let postgres_url = postgres.as_ref().map(|db| postgres_url(store, &db.url));
    let standin = Standin::spawn(standin_config()).await.expect("stand-in");
    let base = standin.base_url.clone();
    let broker = ProcessBroker::start_on(&base, postgres_url.as_deref(), &[]).await;
    let database_url = broker.database_url.clone();
    let rows = settings.rows;
    match &postgres_url {
        Some(url) => println!(
            "== {store} (broker pid {}; TLS in use: {})",
            broker.pid,
            if postgres_uses_tls(url).await {
                "yes"
            } else {
                "no"
            }
        ),
        None => println!("== {store} (broker pid {})", broker.pid),
    }
    let mut figures = None;

    let (plain_rows, plain_secs) =
        plain_client_rows_per_second(&base, "plain_big", rows, Clock::FromSubmission).await;
    assert_eq!(plain_rows, rows);
    let plain_rate = rate(plain_rows, plain_secs);
    println!(
        "drain  plain reqwest client (pages counted only): {plain_rate:>12.0} rows/s ({plain_secs:.2} s)"
    );
    let (broker_cpu, own_cpu) = (broker.cpu_time(), own_cpu_time());
    let drained = broker_drain(&broker, "broker_big", rows, settings.drain_limit).await;
    let (broker_cpu, own_cpu) = (
        broker.cpu_time().saturating_sub(broker_cpu),
        own_cpu_time().saturating_sub(own_cpu),
    );
    match drained.finished_secs {
        Some(secs) => {
            let drain_rate = rate(drained.rows_logged, secs);
            println!(
                "drain  broker into the log (until FINISHED):      {drain_rate:>12.0} rows/s ({secs:.2} s; {} rows, {:.1} MiB held)",
                drained.rows_logged,
                drained.bytes_held as f64 / (1u64 << 20) as f64,
            );
            println!(
                "drain  ratio broker / plain client:               {:>12.3}   (target >= {})",
                drain_rate / plain_rate,
                if store == "sqlite" { "0.75" } else { "0.6" }
            );
            figures = Some(DrainFigures {
                ratio: drain_rate / plain_rate,
                rate: drain_rate,
                cpu_per_row_us: broker_cpu.as_secs_f64() * 1e6 / drained.rows_logged.max(1) as f64,
            });
        }
        None => {
            let drain_rate = rate(drained.rows_logged, drained.elapsed_secs);
            println!(
                "drain  broker into the log: NOT COMPLETE after {:.1} s: {} of {rows} rows logged, {drain_rate:.0} rows/s so far",
                drained.elapsed_secs, drained.rows_logged
            );
            println!(
                "drain  ratio broker / plain client (so far):      {:>12.3}   (not complete)",
                drain_rate / plain_rate
            );
        }
    }
    println!(
        "drain  {}",
        cpu_note(
            broker_cpu,
            own_cpu,
            drained.elapsed_secs,
            drained.rows_logged
        )
    );

    if drained.finished_secs.is_some() {
        let (appended, appends, append_secs) =
            store_append_rows_per_second(&database_url, &drained, settings.append_limit).await;
        let append_rate = rate(appended, append_secs);
        println!(
            "drain  store append alone (logged pages re-appended, one per transaction, from this process): {append_rate:.0} rows/s ({appended} rows in {appends} appends, {:.2} ms per append; ratio to plain client {:.3})",
            append_secs * 1000.0 / appends.max(1) as f64,
            append_rate / plain_rate
        );
    }

    if settings.runs("read") && drained.finished_secs.is_some() {
        let (store_rows, store_secs) = store_read_rows_per_second(&database_url, &drained).await;
        assert_eq!(store_rows, rows);
        let store_rate = rate(store_rows, store_secs);
        println!(
            "read   store read_log + decode, no gRPC:          {store_rate:>12.0} rows/s ({store_secs:.2} s)"
        );
        let (broker_cpu, own_cpu) = (broker.cpu_time(), own_cpu_time());
        let client = JobServiceClient::new(broker.channel().await);
        let (read_rows, read_secs) = read_stream(client, drained.job_id.clone(), None).await;
        let (broker_cpu, own_cpu) = (
            broker.cpu_time().saturating_sub(broker_cpu),
            own_cpu_time().saturating_sub(own_cpu),
        );
        assert_eq!(read_rows, rows);
        let read_rate = rate(read_rows, read_secs);
        println!(
            "read   1 gRPC reader:                             {read_rate:>12.0} rows/s ({read_secs:.2} s)"
        );
        println!(
            "read   ratio 1 reader / store read:               {:>12.3}   (target: >= 1000000 rows/s, ratio to target {:.2})",
            read_rate / store_rate,
            read_rate / 1e6
        );
        println!(
            "read   {}",
            cpu_note(broker_cpu, own_cpu, read_secs, read_rows)
        );
        let rss_before = broker.rss_kib();
        let limit = Duration::from_secs(settings.read_seconds);
        let (broker_cpu, own_cpu) = (broker.cpu_time(), own_cpu_time());
        let (many_rows, many_secs) =
            concurrent_readers(&broker, &drained.job_id, settings.readers, limit).await;
        let (broker_cpu, own_cpu) = (
            broker.cpu_time().saturating_sub(broker_cpu),
            own_cpu_time().saturating_sub(own_cpu),
        );
        let many_rate = rate(many_rows, many_secs);
        println!(
            "read   {} gRPC readers, {READER_CONNECTIONS} connections (aggregate):  {many_rate:>12.0} rows/s ({many_secs:.2} s, {many_rows} rows; {:.0} rows/s per reader)",
            settings.readers,
            many_rate / settings.readers.max(1) as f64
        );
        println!(
            "read   ratio {} readers aggregate / 1 reader:     {:>12.3}",
            settings.readers,
            many_rate / read_rate
        );
        println!(
            "read   {}",
            cpu_note(broker_cpu, own_cpu, many_secs, many_rows)
        );
        println!(
            "read   broker VmRSS {} MiB before the {} readers, peak VmHWM {} MiB ({:.1} MiB per reader above the start); this process peak VmHWM {} MiB",
            rss_before / 1024,
            settings.readers,
            broker.peak_rss_kib() / 1024,
            broker.peak_rss_kib().saturating_sub(rss_before) as f64
                / 1024.0
                / settings.readers.max(1) as f64,
            process_broker::status_kib("/proc/self/status", "VmHWM:").unwrap_or(0) / 1024
        );
    } else if settings.runs("read") {
        println!("read   skipped: the drain did not finish");
    }
    broker.stop().await;
    standin.shutdown().await;
    drop(postgres);
    figures
}

/// A streaming query whose source emits one row every 1 000 s: its log stays at its live end.
fn idle_script() -> String {
    "CREATE TABLE idle_source (id BIGINT, name STRING) WITH ('connector'='datagen', 'rows-per-second'='0.001');\nSELECT * FROM idle_source;".to_owned()
}

/// Part 3: idle streams against the broker binary; returns the broker's share of a core while
/// they wait, in percent, and its memory per stream in KiB.
async fn idle_streams(settings: &Settings) -> (f64, f64) {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let broker = ProcessBroker::start(&standin.base_url, &[]).await;
    let mut client = JobServiceClient::new(broker.channel().await);
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: idle_script(),
            runtime_mode: RuntimeMode::Streaming as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner();
    // The log exists once the query produced its first (empty) page.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = client
            .get_job(GetJobRequest {
                job_id: job.id.clone(),
            })
            .await
            .expect("get job")
            .into_inner();
        if query_statement(&current).is_some_and(|s| s.result_log.is_some()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle query logged nothing within 60 s: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let count = settings.idle_streams;
    let connections = count.div_ceil(STREAMS_PER_CONNECTION).max(1);
    let mut channels = Vec::new();
    for _ in 0..connections {
        let channel = broker.channel().await;
        // A call on each, so that the connection is set up on both sides before the baseline.
        JobServiceClient::new(channel.clone())
            .get_job(GetJobRequest {
                job_id: job.id.clone(),
            })
            .await
            .expect("get job");
        channels.push(channel);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = broker.rss_kib();
    let client_before = process_broker::status_kib("/proc/self/status", "VmRSS:").unwrap_or(0);

    let (close, closed) = watch::channel(false);
    let progress = Arc::new(AtomicU64::new(0));
    let opened_at = Instant::now();
    let mut readers = Vec::new();
    for chunk in (0..count)
        .collect::<Vec<_>>()
        .chunks(STREAMS_PER_CONNECTION)
    {
        let mut opening = Vec::new();
        for &i in chunk {
            let mut client = JobServiceClient::new(channels[i % connections].clone());
            let job_id = job.id.clone();
            let mut closed = closed.clone();
            let progress = Arc::clone(&progress);
            let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
            readers.push(tokio::spawn(async move {
                let mut stream = client
                    .stream_operation_results(StreamOperationResultsRequest {
                        job_id,
                        ..StreamOperationResultsRequest::default()
                    })
                    .await
                    .expect("idle stream")
                    .into_inner();
                let mut ready = Some(ready);
                loop {
                    tokio::select! {
                        message = stream.message() => match message.expect("message") {
                            Some(message) => {
                                match message.message {
                                    // The schema comes first: the stream is set up.
                                    Some(Message::Schema(_)) => {
                                        if let Some(ready) = ready.take() {
                                            let _ = ready.send(());
                                        }
                                    }
                                    Some(Message::Progress(_)) => {
                                        progress.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Some(Message::End(end)) => panic!("an idle stream ended: {end:?}"),
                                    _ => {}
                                }
                            }
                            None => panic!("an idle stream closed"),
                        },
                        _ = closed.changed() => return,
                    }
                }
            }));
            opening.push(is_ready);
        }
        for ready in opening {
            ready.await.expect("an idle stream got its schema");
        }
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    tokio::time::sleep(IDLE_SETTLE).await;
    let rss_open = broker.rss_kib();
    let client_open = process_broker::status_kib("/proc/self/status", "VmRSS:").unwrap_or(0);
    let progress_before = progress.load(Ordering::Relaxed);
    let cpu_before = broker.cpu_time();
    let window = Instant::now();
    tokio::time::sleep(IDLE_CPU_WINDOW).await;
    let cpu_used = broker.cpu_time().saturating_sub(cpu_before);
    let window = window.elapsed();
    let progress_seen = progress.load(Ordering::Relaxed) - progress_before;
    let rss_open_later = broker.rss_kib();

    let _ = close.send(true);
    for reader in readers {
        reader.await.expect("idle reader");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_closed = broker.rss_kib();

    let per_stream = rss_open.saturating_sub(rss_before) as f64 / count.max(1) as f64;
    println!(
        "== idle streams (broker binary as a child process, pid {}, SQLite)",
        broker.pid
    );
    println!(
        "idle   {count} streams over {connections} HTTP/2 connections opened in {open_secs:.2} s"
    );
    println!(
        "idle   broker VmRSS: {rss_before} KiB with the connections open, {rss_open} KiB with {count} streams open ({rss_open_later} KiB {} s later), {rss_closed} KiB after they closed",
        IDLE_CPU_WINDOW.as_secs()
    );
    println!(
        "idle   per idle stream: {per_stream:.1} KiB   (target <= 64 KiB, ratio to target {:.2})",
        per_stream / 64.0
    );
    println!(
        "idle   broker CPU while the {count} streams wait: {:.1} % of one core ({:.2} s over {:.1} s; target <= 3 %); {progress_seen} progress messages received",
        100.0 * cpu_used.as_secs_f64() / window.as_secs_f64(),
        cpu_used.as_secs_f64(),
        window.as_secs_f64()
    );
    println!(
        "idle   client (this process) VmRSS: {client_before} KiB before, {client_open} KiB with the streams open"
    );

    let _ = client
        .cancel_job(CancelJobRequest {
            job_id: job.id.clone(),
            ..CancelJobRequest::default()
        })
        .await;
    drop(channels);
    broker.stop().await;
    standin.shutdown().await;
    (
        100.0 * cpu_used.as_secs_f64() / window.as_secs_f64(),
        per_stream,
    )
}

/// Every target next to its figure measured in this run.
fn summary(drains: &BTreeMap<String, DrainFigures>, idle: Option<(f64, f64)>) {
    println!("== summary (targets)");
    let verdict = |met: bool| if met { "met" } else { "missed" };
    if let Some(sqlite) = drains.get("sqlite") {
        println!(
            "summary SQLite drain / plain client:              {:>8.3}   target >= 0.75: {}",
            sqlite.ratio,
            verdict(sqlite.ratio >= 0.75)
        );
        println!(
            "summary broker CPU per row drained (SQLite):      {:>8.2} µs target <= 1.0 µs: {}",
            sqlite.cpu_per_row_us,
            verdict(sqlite.cpu_per_row_us <= 1.0)
        );
    }
    if let Some(postgres) = drains.get("postgres") {
        println!(
            "summary PostgreSQL drain / plain client:          {:>8.3}   target >= 0.6: {} ({:.2} µs of broker CPU per row)",
            postgres.ratio,
            verdict(postgres.ratio >= 0.6),
            postgres.cpu_per_row_us
        );
    }
    if let (Some(tls), Some(plain)) = (drains.get("postgres"), drains.get("postgres-notls")) {
        let ratio = tls.rate / plain.rate.max(f64::EPSILON);
        println!(
            "summary PostgreSQL as configured / sslmode=disable: {ratio:>6.3}   target >= 0.9: {}",
            verdict(ratio >= 0.9)
        );
    }
    if let Some((cpu, kib)) = idle {
        println!(
            "summary idle streams, broker CPU:                 {cpu:>8.1} % of a core, target <= 3 %: {}",
            verdict(cpu <= 3.0)
        );
        println!(
            "summary idle streams, memory per stream:          {kib:>8.1} KiB, target <= 64 KiB: {}",
            verdict(kib <= 64.0)
        );
    }
}

fn main() {
    // reqwest (the plain client) needs the process-wide TLS provider the broker installs.
    flinkbroker::install_crypto_provider();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let load_start = load_average();
    runtime.block_on(async {
        println!(
            "rows: {} (5 columns: BIGINT, STRING, DECIMAL(10,2), TIMESTAMP(3), BOOLEAN); {} cpus",
            settings.rows,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut drains = BTreeMap::new();
        if settings.runs("drain") || settings.runs("read") {
            for store in &settings.stores {
                if let Some(figures) = drain_and_read(&settings, store).await {
                    drains.insert(store.clone(), figures);
                }
            }
        }
        let idle = if settings.runs("idle") {
            Some(idle_streams(&settings).await)
        } else {
            None
        };
        summary(&drains, idle);
    });
    println!(
        "total {:.1} s; load average {} at the start, {} at the end",
        started.elapsed().as_secs_f64(),
        load_start,
        load_average()
    );
}
