//! The store at scale: a database holding 100 000 ended jobs and 1 000 live ones (SQLite file
//! or PostgreSQL), seeded with bulk inserts at the schema before `m20261207_000001_jobs_at_scale`;
//! then the time the pending migrations take on it, and the latency of ListJobs (filtered by
//! state, by a label, with and without a tenant) and GetJob of ended jobs through gRPC against
//! the real `flinkbroker` binary, once the live jobs it drives against the stand-in settled.
//! Each call's figures come with the broker's CPU time per call, which other load on the
//! machine does not move as it moves latencies, and with two references measured alike: GetJob
//! of an ended job the broker holds in memory, and the gRPC health Check. On PostgreSQL the
//! database is vacuumed and analysed after the migrations, as autovacuum would be soon after.
//!
//! [`measure`] returns the figures, [`print`] prints them against the targets. A bench includes
//! this file with `#[path = "support/store_scale.rs"] mod store_scale;`.
#![allow(dead_code)]

#[path = "process_broker.rs"]
pub(crate) mod process_broker;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use flinkbroker_model::job::{JobId, JobSpec, PythonSpec, RuntimeMode, SqlSpec, now_millis};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{GetJobRequest, JobState, ListJobsRequest};
use flinkbroker_store::{SeaStore, pending_statements};
use flinkbroker_testkit::standin::{Standin, StandinConfig};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;
use tonic::transport::Channel;

pub(crate) use process_broker::{env_number, load_average};

/// The first migration this bench's seed is older than: it is timed on the seeded database.
pub(crate) const TIMED_MIGRATION: &str = "m20261207_000001_jobs_at_scale";
/// The replica id the broker runs under, and the owner the live jobs are seeded with, so
/// that the broker takes them all up at once when it starts.
const REPLICA: &str = "bench-broker";
/// ListJobs p99 target.
pub(crate) const LIST_TARGET: Duration = Duration::from_millis(20);
/// GetJob (ended job) p99 target.
pub(crate) const GET_TARGET: Duration = Duration::from_millis(2);
/// Metrics scrape p99 target: a scrape counts the jobs by kind and state, ended ones too,
/// and stays within a page of ListJobs however many ended jobs the store holds.
pub(crate) const SCRAPE_TARGET: Duration = Duration::from_millis(20);
/// Tenants the jobs are spread over.
const TENANTS: usize = 10;
/// Jobs per bulk INSERT statement.
const ROWS_PER_INSERT: usize = 500;
/// Jobs per seeding transaction.
const JOBS_PER_TRANSACTION: usize = 10_000;
/// How long the broker's CPU use is sampled with nobody calling.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);
/// How long the live jobs may take to settle (none PENDING or SUBMITTING).
const SETTLE_LIMIT: Duration = Duration::from_secs(600);
const DAY_MS: i64 = 24 * 3600 * 1000;

/// How big the database is and how many calls are measured.
#[derive(Debug, Clone)]
pub(crate) struct ScaleSettings {
    /// Ended jobs (FINISHED, FAILED, CANCELED) seeded.
    pub ended_jobs: usize,
    /// Live jobs seeded (PENDING, owned by the broker's replica, driven once it starts).
    pub live_jobs: usize,
    /// Calls measured per query (after `warmup_calls`).
    pub calls: usize,
    /// GetJob calls measured (after `warmup_calls`), each of its own ended job.
    pub get_calls: usize,
    /// Calls made before measuring.
    pub warmup_calls: usize,
    /// Only the calls whose name contains one of these (empty: every call).
    pub only: Vec<String>,
}

impl ScaleSettings {
    /// `BENCH_ENDED_JOBS` (100 000), `BENCH_LIVE_JOBS` (1 000), `BENCH_CALLS` (500),
    /// `BENCH_GET_CALLS` (5 000), `BENCH_WARMUP_CALLS` (20), `BENCH_ONLY` (comma-separated parts of call names, e.g.
    /// `GetJob,label`; unset: every call).
    pub(crate) fn from_env() -> ScaleSettings {
        ScaleSettings {
            ended_jobs: env_number("BENCH_ENDED_JOBS", 100_000usize),
            live_jobs: env_number("BENCH_LIVE_JOBS", 1_000usize),
            calls: env_number("BENCH_CALLS", 500usize).max(1),
            get_calls: env_number("BENCH_GET_CALLS", 5_000usize).max(1),
            warmup_calls: env_number("BENCH_WARMUP_CALLS", 20usize),
            only: std::env::var("BENCH_ONLY")
                .unwrap_or_default()
                .split(',')
                .map(|part| part.trim().to_owned())
                .filter(|part| !part.is_empty())
                .collect(),
        }
    }

    /// True when the call named `name` is measured.
    fn measures(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|part| name.contains(part.as_str()))
    }
}

/// Latencies of one call, measured through gRPC.
#[derive(Debug, Clone)]
pub(crate) struct CallFigures {
    /// What was called.
    pub name: String,
    /// The p99 it should stay within.
    pub target: Duration,
    pub calls: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Jobs in the first answer (ListJobs), to show the filter matched something.
    pub jobs_returned: usize,
    /// The broker's CPU time (user + system) per call, its background work included: what a
    /// call costs whatever else runs on the machine.
    pub broker_cpu_per_call: Duration,
}

impl CallFigures {
    /// True when the p99 is within the target and no call failed.
    pub(crate) fn met(&self) -> bool {
        self.errors == 0 && self.p99 <= self.target
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub(crate) struct ScaleFigures {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub ended_jobs: usize,
    pub live_jobs: usize,
    /// Rows written by the seed, all tables together.
    pub seeded_rows: usize,
    /// Seeding (bulk inserts) took this long.
    pub seed: Duration,
    /// The migrations pending on the seeded database (from [`TIMED_MIGRATION`] on), as the
    /// broker runs them when it connects; their names.
    pub migrations: Vec<String>,
    pub migration_time: Duration,
    /// From the broker's start until no live job was PENDING or SUBMITTING.
    pub settle: Duration,
    /// Live jobs RUNNING once settled.
    pub running: usize,
    /// The broker's CPU use with nobody calling, in cores.
    pub background_cpu: f64,
    pub calls: Vec<CallFigures>,
    /// The 1-minute load average before and after the calls.
    pub load: (String, String),
}

/// Seeds `database_url` (a SQLite file URL, or an empty PostgreSQL database), times the
/// migrations, starts the broker binary on it against a stand-in and measures the calls.
pub(crate) async fn measure(
    backend: &str,
    database_url: &str,
    settings: &ScaleSettings,
) -> ScaleFigures {
    let db = raw_connection(database_url).await;
    let migrations = flinkbroker_store::migration::Migrator::migrations();
    let before_timed = migrations
        .iter()
        .position(|migration| migration.name() == TIMED_MIGRATION)
        .unwrap_or(migrations.len());
    let pending: Vec<String> = migrations[before_timed..]
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    flinkbroker_store::migration::Migrator::up(
        &db,
        Some(u32::try_from(before_timed).expect("migration count")),
    )
    .await
    .expect("migrate to the schema before the timed migration");

    let started = Instant::now();
    let seed = seed(&db, settings).await;
    let seed_time = started.elapsed();
    if db.get_database_backend() == DbBackend::Postgres {
        // A database that has been in use has its statistics (the migrations read them); a
        // bulk load has none yet.
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    }
    db.close().await.expect("close the seeding connection");

    let started = Instant::now();
    let store = SeaStore::connect(database_url)
        .await
        .expect("connect and migrate");
    let migration_time = started.elapsed();
    drop(store);
    if backend == "postgres" {
        // What autovacuum does in the first minutes after a bulk load (and after the
        // migration's backfill), done before measuring rather than during.
        let db = raw_connection(database_url).await;
        db.execute_unprepared("VACUUM ANALYZE")
            .await
            .expect("vacuum analyze");
        db.close().await.expect("close the vacuuming connection");
    }

    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let metrics_addr = process_broker::free_port().to_string();
    let broker = process_broker::ProcessBroker::start_on(
        &standin.base_url,
        Some(database_url),
        &["--replica-id", REPLICA, "--metrics-listen", &metrics_addr],
    )
    .await;
    let mut client = JobServiceClient::new(broker.channel().await);
    let started = Instant::now();
    let running = settle(&mut client, settings.live_jobs, &broker).await;
    let settle_time = started.elapsed();

    // What the broker spends with nobody calling (its live jobs, leases, janitor), counted in
    // each call's CPU figure too.
    let idle_cpu = broker.cpu_time();
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE_SAMPLE).await;
    let background_cpu = broker.cpu_time().saturating_sub(idle_cpu).as_secs_f64()
        / idle_started.elapsed().as_secs_f64();
    let load_before = load_average();
    let mut calls = Vec::new();
    let state_running = vec![JobState::Running as i32];
    let ended_states = vec![JobState::Finished as i32, JobState::Failed as i32];
    let list = |name: &str, request: ListJobsRequest| (name.to_owned(), request);
    let lists = [
        list(
            "ListJobs state=RUNNING",
            ListJobsRequest {
                states: state_running.clone(),
                ..page_request()
            },
        ),
        list(
            "ListJobs state=FAILED",
            ListJobsRequest {
                states: vec![JobState::Failed as i32],
                ..page_request()
            },
        ),
        list(
            "ListJobs states=FINISHED,FAILED",
            ListJobsRequest {
                states: ended_states,
                ..page_request()
            },
        ),
        list(
            "ListJobs tenant+state=RUNNING",
            ListJobsRequest {
                states: state_running,
                tenant: tenant(3),
                ..page_request()
            },
        ),
        list(
            "ListJobs label team=team-7",
            ListJobsRequest {
                labels: [("team".to_owned(), "team-7".to_owned())].into(),
                ..page_request()
            },
        ),
        list(
            "ListJobs label app=app-123",
            ListJobsRequest {
                labels: [("app".to_owned(), "app-123".to_owned())].into(),
                ..page_request()
            },
        ),
        list(
            "ListJobs tenant+label team=team-7",
            ListJobsRequest {
                labels: [("team".to_owned(), "team-7".to_owned())].into(),
                // Team 7 belongs to tenant 3 (see `seed`).
                tenant: tenant(3),
                ..page_request()
            },
        ),
    ];
    let cpu_per_call = |before: Duration, measured: usize| {
        let made = u32::try_from(settings.warmup_calls + measured).unwrap_or(u32::MAX);
        broker.cpu_time().saturating_sub(before) / made.max(1)
    };
    for (name, request) in lists {
        if !settings.measures(&name) {
            continue;
        }
        let cpu = broker.cpu_time();
        let mut figures = measure_list(&mut client, &name, request, settings).await;
        figures.broker_cpu_per_call = cpu_per_call(cpu, figures.calls);
        calls.push(figures);
    }
    if settings.measures("GetJob") {
        // A p99 within 2 ms wants more samples than a p99 within 20 ms: the 50 slowest of
        // 5 000 calls rather than the 5 slowest of 500.
        let settings = &ScaleSettings {
            calls: settings.get_calls,
            ..settings.clone()
        };
        let cpu = broker.cpu_time();
        let mut figures = measure_get(&mut client, &seed.ended_ids, settings).await;
        figures.broker_cpu_per_call = cpu_per_call(cpu, figures.calls);
        calls.push(figures);
        let cpu = broker.cpu_time();
        let mut figures = measure_get_cached(&mut client, &seed.ended_ids, settings).await;
        figures.broker_cpu_per_call = cpu_per_call(cpu, figures.calls);
        calls.push(figures);
    }
    if settings.measures("metrics") {
        let cpu = broker.cpu_time();
        let mut figures = measure_scrape(&metrics_addr, settings).await;
        figures.broker_cpu_per_call = cpu_per_call(cpu, figures.calls);
        calls.push(figures);
    }
    let cpu = broker.cpu_time();
    let mut figures = measure_health(&broker, settings).await;
    figures.broker_cpu_per_call = cpu_per_call(cpu, figures.calls);
    calls.push(figures);
    let load_after = load_average();

    drop(client);
    broker.stop().await;
    standin.shutdown().await;
    ScaleFigures {
        backend: backend.to_owned(),
        ended_jobs: settings.ended_jobs,
        live_jobs: settings.live_jobs,
        seeded_rows: seed.rows,
        seed: seed_time,
        migrations: pending,
        migration_time,
        settle: settle_time,
        running,
        background_cpu,
        calls,
        load: (load_before, load_after),
    }
}

/// Prints one run's figures against the targets.
pub(crate) fn print(figures: &ScaleFigures) {
    println!(
        "[{}] {} ended + {} live jobs: seeded {} rows in {:.1} s",
        figures.backend,
        figures.ended_jobs,
        figures.live_jobs,
        figures.seeded_rows,
        figures.seed.as_secs_f64()
    );
    println!(
        "[{}] migrations {} on the seeded database: {:.0} ms",
        figures.backend,
        if figures.migrations.is_empty() {
            "(none pending)".to_owned()
        } else {
            figures.migrations.join(", ")
        },
        millis(figures.migration_time)
    );
    println!(
        "[{}] live jobs settled in {:.1} s ({} RUNNING); broker idle CPU {:.1} % of a core; load average {} before the calls, {} after",
        figures.backend,
        figures.settle.as_secs_f64(),
        figures.running,
        figures.background_cpu * 100.0,
        figures.load.0,
        figures.load.1
    );
    for call in &figures.calls {
        println!(
            "[{}] {:<37} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  broker CPU {:>6.0} µs/call  ({} calls, {} errors, {} jobs a page)  target p99 <= {} ms: {}",
            figures.backend,
            call.name,
            millis(call.p50),
            millis(call.p99),
            millis(call.max),
            call.broker_cpu_per_call.as_secs_f64() * 1e6,
            call.calls,
            call.errors,
            call.jobs_returned,
            call.target.as_millis(),
            if call.met() { "met" } else { "MISSED" }
        );
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn tenant(index: usize) -> String {
    format!("tenant-{index}")
}

/// The first page of 50 jobs.
fn page_request() -> ListJobsRequest {
    ListJobsRequest {
        page_size: 50,
        ..ListJobsRequest::default()
    }
}

async fn raw_connection(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30));
    Database::connect(options).await.expect("connect to seed")
}

// ---------------------------------------------------------------------------------------------
// Calls

async fn measure_list(
    client: &mut JobServiceClient<Channel>,
    name: &str,
    request: ListJobsRequest,
    settings: &ScaleSettings,
) -> CallFigures {
    let mut jobs_returned = 0;
    let mut latencies = Vec::with_capacity(settings.calls);
    let mut errors = 0;
    for call in 0..settings.warmup_calls + settings.calls {
        let started = Instant::now();
        let answer = client.list_jobs(request.clone()).await;
        let elapsed = started.elapsed();
        match answer {
            Ok(answer) if call == 0 => jobs_returned = answer.into_inner().jobs.len(),
            Ok(_) => {}
            Err(error) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("{name}: {error}");
                }
            }
        }
        if call >= settings.warmup_calls {
            latencies.push(elapsed);
        }
    }
    figures(name, LIST_TARGET, latencies, errors, jobs_returned)
}

/// GetJob of distinct ended jobs, each read once (none is in the broker's ended-jobs cache).
async fn measure_get(
    client: &mut JobServiceClient<Channel>,
    ended_ids: &[JobId],
    settings: &ScaleSettings,
) -> CallFigures {
    let wanted = settings.warmup_calls + settings.calls;
    let step = (ended_ids.len() / wanted.max(1)).max(1);
    let mut latencies = Vec::with_capacity(settings.calls);
    let mut errors = 0;
    for (call, id) in ended_ids.iter().step_by(step).take(wanted).enumerate() {
        let started = Instant::now();
        let answer = client
            .get_job(GetJobRequest {
                job_id: id.to_string(),
            })
            .await;
        let elapsed = started.elapsed();
        if let Err(error) = answer {
            errors += 1;
            if errors == 1 {
                eprintln!("GetJob {id}: {error}");
            }
        }
        if call >= settings.warmup_calls {
            latencies.push(elapsed);
        }
    }
    figures(
        "GetJob ended job (uncached)",
        GET_TARGET,
        latencies,
        errors,
        1,
    )
}

/// GetJob of one ended job again and again: answered from the broker's ended-jobs cache, so
/// what the call costs without the store.
async fn measure_get_cached(
    client: &mut JobServiceClient<Channel>,
    ended_ids: &[JobId],
    settings: &ScaleSettings,
) -> CallFigures {
    let id = ended_ids
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut latencies = Vec::with_capacity(settings.calls);
    let mut errors = 0;
    for call in 0..settings.warmup_calls + settings.calls {
        let started = Instant::now();
        let answer = client.get_job(GetJobRequest { job_id: id.clone() }).await;
        let elapsed = started.elapsed();
        if answer.is_err() {
            errors += 1;
        }
        if call >= settings.warmup_calls {
            latencies.push(elapsed);
        }
    }
    figures(
        "GetJob ended job (cached; reference)",
        GET_TARGET,
        latencies,
        errors,
        1,
    )
}

/// `GET /metrics` on the broker's metrics endpoint, as Prometheus scrapes it: each scrape
/// reads the job counts from the store.
async fn measure_scrape(metrics_addr: &str, settings: &ScaleSettings) -> CallFigures {
    let http = reqwest::Client::new();
    let url = format!("http://{metrics_addr}/metrics");
    let mut latencies = Vec::with_capacity(settings.calls);
    let mut errors = 0;
    for call in 0..settings.warmup_calls + settings.calls {
        let started = Instant::now();
        let scraped = match http.get(&url).send().await {
            Ok(response) if response.status().is_success() => response.text().await.ok(),
            _ => None,
        };
        let elapsed = started.elapsed();
        // A scrape the store did not answer in time reports it down instead of the counts.
        if scraped
            .is_none_or(|text| !text.contains(r#"flinkbroker_dependency_up{dependency="store"} 1"#))
        {
            errors += 1;
        }
        if call >= settings.warmup_calls {
            latencies.push(elapsed);
        }
    }
    figures("metrics scrape", SCRAPE_TARGET, latencies, errors, 0)
}

/// The gRPC health Check on the same broker: the floor any call stands on.
async fn measure_health(
    broker: &process_broker::ProcessBroker,
    settings: &ScaleSettings,
) -> CallFigures {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let mut health = HealthClient::new(broker.channel().await);
    let mut latencies = Vec::with_capacity(settings.calls);
    let mut errors = 0;
    for call in 0..settings.warmup_calls + settings.calls {
        let started = Instant::now();
        let answer = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        let elapsed = started.elapsed();
        if answer.is_err() {
            errors += 1;
        }
        if call >= settings.warmup_calls {
            latencies.push(elapsed);
        }
    }
    figures("health Check (reference)", GET_TARGET, latencies, errors, 0)
}

fn figures(
    name: &str,
    target: Duration,
    mut latencies: Vec<Duration>,
    errors: usize,
    jobs_returned: usize,
) -> CallFigures {
    latencies.sort_unstable();
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[rank]
    };
    CallFigures {
        name: name.to_owned(),
        target,
        calls: latencies.len(),
        errors,
        p50: percentile(0.5),
        p99: percentile(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        jobs_returned,
        broker_cpu_per_call: Duration::ZERO,
    }
}

/// Waits until no live job is PENDING or SUBMITTING; returns how many are RUNNING.
async fn settle(
    client: &mut JobServiceClient<Channel>,
    live_jobs: usize,
    broker: &process_broker::ProcessBroker,
) -> usize {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let starting = count(
            client,
            vec![JobState::Pending as i32, JobState::Submitting as i32],
        )
        .await;
        let running = count(client, vec![JobState::Running as i32]).await;
        if starting == 0 && (running > 0 || live_jobs == 0) {
            return running;
        }
        if Instant::now() > deadline {
            eprintln!(
                "live jobs not settled within {SETTLE_LIMIT:?}: {starting} starting, {running} of {live_jobs} running\n{}",
                broker.log_tail()
            );
            return running;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts the jobs in `states`, paging through ListJobs.
async fn count(client: &mut JobServiceClient<Channel>, states: Vec<i32>) -> usize {
    let mut total = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_jobs(ListJobsRequest {
                states: states.clone(),
                page_size: 500,
                page_token: page_token.clone(),
                ..ListJobsRequest::default()
            })
            .await
            .expect("list jobs")
            .into_inner();
        total += page.jobs.len();
        if page.next_page_token.is_empty() {
            return total;
        }
        page_token = page.next_page_token;
    }
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// What the seed wrote.
struct Seeded {
    rows: usize,
    /// The ended jobs, oldest first.
    ended_ids: Vec<JobId>,
}

/// One table's bulk INSERT being built.
struct Insert {
    head: &'static str,
    sql: String,
    rows: usize,
}

impl Insert {
    fn new(head: &'static str) -> Insert {
        Insert {
            head,
            sql: String::new(),
            rows: 0,
        }
    }

    fn row(&mut self, values: &[Value]) {
        self.sql
            .push_str(if self.rows == 0 { self.head } else { "," });
        self.sql.push('(');
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                self.sql.push(',');
            }
            value.write(&mut self.sql);
        }
        self.sql.push(')');
        self.rows += 1;
    }

    /// Runs the statement built so far; returns the rows it inserted.
    async fn flush(&mut self, db: &impl ConnectionTrait) -> usize {
        if self.rows == 0 {
            return 0;
        }
        db.execute_unprepared(&self.sql)
            .await
            .unwrap_or_else(|error| panic!("bulk insert ({}…): {error}", self.head));
        self.sql.clear();
        std::mem::take(&mut self.rows)
    }
}

/// A literal of a bulk INSERT.
enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Null,
    /// SQLite `X'…'`, PostgreSQL `'\x…'` (bytea).
    Blob(DbBackend, Vec<u8>),
}

impl Value {
    fn text(text: impl Into<String>) -> Value {
        Value::Text(text.into())
    }

    fn opt(text: Option<String>) -> Value {
        text.map_or(Value::Null, Value::Text)
    }

    fn write(&self, sql: &mut String) {
        match self {
            Value::Text(text) => {
                sql.push('\'');
                sql.push_str(&text.replace('\'', "''"));
                sql.push('\'');
            }
            Value::Int(value) => {
                let _ = write!(sql, "{value}");
            }
            Value::Bool(value) => sql.push_str(if *value { "TRUE" } else { "FALSE" }),
            Value::Null => sql.push_str("NULL"),
            Value::Blob(backend, bytes) => {
                sql.push_str(if *backend == DbBackend::Postgres {
                    "'\\x"
                } else {
                    "X'"
                });
                for byte in bytes {
                    let _ = write!(sql, "{byte:02x}");
                }
                sql.push('\'');
            }
        }
    }
}

/// One seeded job's shape, derived from its number.
struct SeedJob {
    number: usize,
    id: JobId,
    live: bool,
    python: bool,
    state: &'static str,
    created_at: i64,
    ended_at: Option<i64>,
}

const SQL_SCRIPT: [&str; 3] = [
    "CREATE TABLE orders (order_id BIGINT, customer STRING, amount DECIMAL(12, 2), ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '1000')",
    "INSERT INTO order_totals SELECT customer, SUM(amount) FROM orders GROUP BY customer",
    "SELECT customer, COUNT(*) AS orders, SUM(amount) AS total FROM orders GROUP BY customer",
];

const LIVE_SCRIPT: [&str; 3] = [
    "CREATE TABLE ticks (id BIGINT, name STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '1')",
    "CREATE TABLE sink (id BIGINT, name STRING) WITH ('connector' = 'blackhole')",
    "INSERT INTO sink SELECT id, name FROM ticks",
];

/// Writes the jobs: ended ones spread over the last 60 days (within the default job
/// retention), live ones created in the last hour, in transactions of 10 000 jobs.
async fn seed(db: &DatabaseConnection, settings: &ScaleSettings) -> Seeded {
    let backend = db.get_database_backend();
    let now = now_millis();
    let total = settings.ended_jobs + settings.live_jobs;
    let span = 60 * DAY_MS;
    let mut jobs = Vec::with_capacity(total);
    for number in 0..total {
        let live = number >= settings.ended_jobs;
        let (created_at, ended_at, state) = if live {
            let created_at = now - 3_600_000 + (number - settings.ended_jobs) as i64 * 1000;
            (created_at, None, "PENDING")
        } else {
            let created_at = now - span + number as i64 * (span / settings.ended_jobs as i64);
            let state = match mix(number, 5) % 10 {
                0..=6 => "FINISHED",
                7 | 8 => "FAILED",
                _ => "CANCELED",
            };
            (created_at, Some(created_at + 5 * 60 * 1000), state)
        };
        jobs.push(SeedJob {
            number,
            id: JobId::new_random(),
            live,
            python: !live && mix(number, 6).is_multiple_of(5),
            state,
            created_at,
            ended_at,
        });
    }
    let sql_spec = spec_json(false, RuntimeMode::Batch);
    let live_spec = spec_json(true, RuntimeMode::Streaming);
    let python_spec = python_spec_json();
    let schema = br#"[{"name":"customer","logicalType":{"type":"VARCHAR","nullable":true,"length":2147483647}},{"name":"orders","logicalType":{"type":"BIGINT","nullable":false}},{"name":"total","logicalType":{"type":"DECIMAL","nullable":true,"precision":38,"scale":2}}]"#.to_vec();
    let batch = vec![0x5a_u8; 1024];

    let mut rows = 0;
    for chunk in jobs.chunks(JOBS_PER_TRANSACTION) {
        use sea_orm::TransactionTrait;
        let txn = db.begin().await.expect("begin");
        for part in chunk.chunks(ROWS_PER_INSERT) {
            let mut job_rows = Insert::new(
                "INSERT INTO jobs (id, kind, state, state_reason, request_id, spec_json, labels_json, created_at, updated_at, ended_at, gateway_session, flink_job_id, submitter_output, savepoint_path, owner, lease_until, cancel_request, tenant, principal, savepoints_json, lineage_id, replaces_job_id, upgrade_step, lineage_json) VALUES ",
            );
            let mut statements = Insert::new(
                "INSERT INTO job_statements (job_id, idx, sql, state, operation_handle, flink_job_id, error, is_query, kind, attempt) VALUES ",
            );
            let mut history = Insert::new(
                "INSERT INTO job_state_transitions (job_id, state, reason, at) VALUES ",
            );
            let mut logs = Insert::new(
                "INSERT INTO result_logs (job_id, idx, attempt, schema, rows_logged, earliest_row, bytes_held, bytes_logged, next_token, fetch_sent, end_reason, updated_at, deleted_at, opened_at) VALUES ",
            );
            let mut batches = Insert::new(
                "INSERT INTO result_batches (job_id, idx, end_row, first_row, bytes, data) VALUES ",
            );
            for job in part {
                let id = job.id.to_string();
                let n = job.number;
                // Spread independently, except that each team belongs to one tenant (teams
                // 2t and 2t + 1 to tenant t), as in life.
                let tenant_index = mix(n, 1) % TENANTS as u64;
                let labels: BTreeMap<&str, String> = [
                    ("app", format!("app-{}", mix(n, 4) % 500)),
                    (
                        "env",
                        ["prod", "staging", "dev"][(mix(n, 3) % 3) as usize].to_owned(),
                    ),
                    ("team", format!("team-{}", tenant_index * 2 + mix(n, 2) % 2)),
                ]
                .into();
                let labels = serde_json::to_string(&labels).expect("labels json");
                let reason = match job.state {
                    "PENDING" => "job recorded".to_owned(),
                    "FINISHED" => "every statement finished".to_owned(),
                    "FAILED" => "statement 2 failed: org.apache.flink.table.api.ValidationException: Column 'total' not found in any table".to_owned(),
                    _ => "canceled by CancelJob".to_owned(),
                };
                let spec = if job.live {
                    &live_spec
                } else if job.python {
                    &python_spec
                } else {
                    &sql_spec
                };
                let updated_at = job.ended_at.unwrap_or(job.created_at);
                job_rows.row(&[
                    Value::text(&id),
                    Value::text(if job.python { "PYTHON" } else { "SQL" }),
                    Value::text(job.state),
                    Value::text(reason),
                    Value::opt(n.is_multiple_of(2).then(|| format!("request-{n}"))),
                    Value::text(spec.as_str()),
                    Value::text(labels),
                    Value::Int(job.created_at),
                    Value::Int(updated_at),
                    job.ended_at.map_or(Value::Null, Value::Int),
                    Value::Null,
                    Value::opt(job.python.then(|| job.id.flink_job_id_for_program())),
                    Value::opt(job.python.then(|| {
                        "Job has been submitted with JobID 3f1c9a7e0b2d4c6e8f0a1b2c3d4e5f60\nProgram execution finished".to_owned()
                    })),
                    Value::Null,
                    Value::text(if job.live { REPLICA } else { "replica-gone" }),
                    Value::Int(if job.live { 0 } else { updated_at }),
                    Value::Null,
                    Value::text(tenant(tenant_index as usize)),
                    Value::text(format!("user-{}", n % 37)),
                    Value::Null,
                    Value::text(&id),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]);
                // History: recorded, then (ended jobs) submitting, running and the end.
                history.row(&[
                    Value::text(&id),
                    Value::text("PENDING"),
                    Value::text("job recorded"),
                    Value::Int(job.created_at),
                ]);
                if let Some(ended_at) = job.ended_at {
                    for (state, reason, at) in [
                        ("SUBMITTING", "submitting", job.created_at + 20),
                        ("RUNNING", "every statement submitted", job.created_at + 900),
                        (job.state, "the job ended", ended_at),
                    ] {
                        history.row(&[
                            Value::text(&id),
                            Value::text(state),
                            Value::text(reason),
                            Value::Int(at),
                        ]);
                    }
                }
                if job.python {
                    continue;
                }
                let script = if job.live { LIVE_SCRIPT } else { SQL_SCRIPT };
                let records = pending_statements(&script.map(str::to_owned));
                for record in &records {
                    let state = match (job.state, record.index) {
                        ("PENDING", _) => "PENDING",
                        ("FAILED", 2) => "FAILED",
                        ("CANCELED", _) => "CANCELED",
                        _ => "FINISHED",
                    };
                    let started = !job.live && record.index > 0;
                    statements.row(&[
                        Value::text(&id),
                        Value::Int(i64::from(record.index)),
                        Value::text(record.sql.as_str()),
                        Value::text(state),
                        Value::opt(started.then(|| uuid_text(job.id, record.index))),
                        Value::opt(
                            started.then(|| job.id.flink_job_id_for_statement(record.index)),
                        ),
                        Value::opt((state == "FAILED").then(|| {
                            "org.apache.flink.table.api.ValidationException: Column 'total' not found in any table".to_owned()
                        })),
                        Value::Bool(record.is_query),
                        Value::text(record.kind.as_str()),
                        Value::Int(0),
                    ]);
                    if !record.is_query || job.live {
                        continue;
                    }
                    let ended_at = job.ended_at.unwrap_or(job.created_at);
                    // Logs of jobs that ended more than a day ago (--result-retention) are
                    // deleted; younger ones hold one batch.
                    let deleted = ended_at < now - DAY_MS;
                    logs.row(&[
                        Value::text(&id),
                        Value::Int(i64::from(record.index)),
                        Value::Int(0),
                        Value::Blob(backend, schema.clone()),
                        Value::Int(40),
                        Value::Int(if deleted { 40 } else { 0 }),
                        Value::Int(if deleted { 0 } else { batch.len() as i64 }),
                        Value::Int(batch.len() as i64),
                        Value::Null,
                        Value::Null,
                        Value::text("END_OF_RESULTS"),
                        Value::Int(ended_at),
                        if deleted {
                            Value::Int(ended_at + DAY_MS)
                        } else {
                            Value::Null
                        },
                        Value::Int(job.created_at + 900),
                    ]);
                    if !deleted {
                        batches.row(&[
                            Value::text(&id),
                            Value::Int(i64::from(record.index)),
                            Value::Int(40),
                            Value::Int(0),
                            Value::Int(batch.len() as i64),
                            Value::Blob(backend, batch.clone()),
                        ]);
                    }
                }
            }
            rows += job_rows.flush(&txn).await;
            rows += statements.flush(&txn).await;
            rows += history.flush(&txn).await;
            rows += logs.flush(&txn).await;
            rows += batches.flush(&txn).await;
        }
        txn.commit().await.expect("commit the seed");
    }
    Seeded {
        rows,
        ended_ids: jobs
            .iter()
            .filter(|job| !job.live)
            .map(|job| job.id)
            .collect(),
    }
}

/// A well-mixed number from `number` and `salt` (splitmix64), so that the seeded columns do
/// not go together by accident.
fn mix(number: usize, salt: u64) -> u64 {
    let mut x = (number as u64).wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable operation handle for a seeded statement.
fn uuid_text(job: JobId, index: u32) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{job}/{index}").as_bytes(),
    )
    .to_string()
}

fn spec_json(live: bool, runtime_mode: RuntimeMode) -> String {
    let script = if live { LIVE_SCRIPT } else { SQL_SCRIPT };
    let spec = JobSpec::Sql(SqlSpec {
        script: script.join(";\n"),
        runtime_mode,
        properties: [("parallelism.default".to_owned(), "2".to_owned())].into(),
        result_limits: Default::default(),
        restore: None,
    });
    serde_json::to_string(&spec).expect("spec json")
}

fn python_spec_json() -> String {
    let spec = JobSpec::Python(PythonSpec {
        script: None,
        script_url: Some("s3://artifacts/jobs/wordcount.py".into()),
        entry_module: None,
        py_files: vec!["s3://artifacts/jobs/lib.zip".into()],
        py_archives: vec![],
        py_requirements: Some("requirements.txt".into()),
        program_args: vec!["--input".into(), "s3://data/in".into()],
        parallelism: Some(4),
        flink_configuration: [("taskmanager.numberOfTaskSlots".to_owned(), "2".to_owned())].into(),
        inline_py_files: Default::default(),
        restore: None,
    });
    serde_json::to_string(&spec).expect("spec json")
}
