//! Live jobs at scale: the real `flinkbroker` binary (the bench build, a child process on its
//! own SQLite file, with the default polling and heartbeat intervals) against the in-process
//! stand-in (SQL Gateway and JobManager REST API on one port), with 1 000 and then 5 000
//! streaming SQL INSERT jobs running (an unbounded datagen source into a blackhole sink, which
//! the stand-in runs until it is stopped).
//!
//! The jobs are submitted through SubmitSql, a bounded number at once, and waited for until
//! ListJobs shows them all RUNNING. After a settling pause it measures, over one window:
//! 1. the Flink requests a second the stand-in received (JobManager and SQL Gateway apart,
//!    heartbeats included; target at most 5/s whatever the number of jobs),
//! 2. the broker's CPU time over the window, as a share of one core (target at most 3 % at
//!    1 000 jobs),
//! 3. the resident memory each live job adds: VmRSS with the jobs minus VmRSS of the same
//!    process before the first job, over the number of jobs (target at most 32 KiB).
//!
//! Then it restarts the broker on the same database under the same `--replica-id`, after a
//! SIGKILL and then after a SIGTERM, and measures from the new process's start until it drives
//! every job again: the JobManager API reported every job's Flink job status after the
//! restart (by `GET /jobs/{id}`, or a listing of all jobs: what a driver must learn before it
//! drives a job), every job's history shows a "resumed … after a broker restart" note recorded
//! after the restart (the store records no note equal to the job's current reason, so a job
//! resumed the same way twice is noted the first time only: the harder restart, SIGKILL, comes
//! first), and the broker's `/metrics` counts every job taken up
//! (`flinkbroker_lease_takeovers_total{from="restart"}`) and, on a broker that has the series,
//! following its Flink jobs again (`flinkbroker_jobs_resumed_total`). Once the status of every
//! Flink job was read, the notes and counters are waited for only while they still move (a
//! broker counts nothing before it installs its metrics recorder, and may note nothing); the
//! figure is the time of the last that completed, and the line says which did not. It prints
//! the largest number of requests the stand-in got within 100 ms during each restart (from
//! the signal on), SQL Gateway and JobManager apart.
//!
//! Every figure is printed as `name: value (target …: met|MISSED)`, after the machine (cores,
//! CPU model, load average). Every wait has a deadline and panics naming what did not happen.
//!
//! Run with `cargo bench --bench live_jobs` (1 000, then 5 000 jobs), or name the counts:
//! `cargo bench --bench live_jobs -- 1000` (or `BENCH_LIVE_JOBS=1000,5000`).
//! Environment: `BENCH_SUBMIT_CONCURRENCY` (64: SubmitSql calls at once),
//! `BENCH_CONNECTIONS` (4: HTTP/2 connections they share), `BENCH_SETTLE_SECONDS` (5: the
//! pause between all jobs RUNNING and the window), `BENCH_WINDOW_SECONDS` (60: one default
//! `--heartbeat-interval`, so that whatever a job does once a minute is counted once),
//! `BENCH_RESTARTS` (`kill,term`: the order of the restarts; empty: none),
//! `BENCH_STORE_BACKENDS` (`sqlite,postgres`: the stores ListJobs, GetJob and a metrics scrape
//! are then measured on, with 100 000 ended and 1 000 live jobs, as `benches/store_scale.rs`
//! does, `BENCH_CALLS` and `BENCH_GET_CALLS` calls each; empty: none), `BENCH_FLINKBROKER_BIN`
//! (the broker binary to run instead of this build's, e.g. a copy that a build in the shared
//! target directory cannot replace between the restarts).

// The store's measure brings the process broker with it.
#[path = "support/store_scale.rs"]
mod store_scale;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{Job, JobState, ListJobsRequest, RuntimeMode, SubmitSqlRequest};
use flinkbroker_testkit::standin::{RequestCounts, Standin, StandinConfig};
use futures::StreamExt;
use store_scale::process_broker::{self, ProcessBroker, env_number};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// A streaming job that runs until it is stopped: the stand-in's datagen source without
/// `number-of-rows` is unbounded.
const SCRIPT: &str = "CREATE TABLE src (id BIGINT, name STRING) WITH ('connector'='datagen');\nCREATE TABLE snk (id BIGINT, name STRING) WITH ('connector'='blackhole');\nINSERT INTO snk SELECT * FROM src;";

const TARGET_FLINK_REQUESTS_PER_SECOND: f64 = 5.0;
const TARGET_IDLE_CPU_PERCENT: f64 = 3.0;
/// The number of jobs the idle CPU target is set for.
const TARGET_IDLE_CPU_JOBS: usize = 1000;
const TARGET_RSS_PER_JOB_KIB: f64 = 32.0;

/// The counter of jobs a broker took up, and its label value for its own jobs after a restart.
const TAKEOVERS: &str = "flinkbroker_lease_takeovers_total";
const TAKEOVERS_AFTER_RESTART: &str = "from=\"restart\"";
/// The counter of jobs taken up that follow their Flink jobs again (when the broker has it).
const JOBS_RESUMED: &str = "flinkbroker_jobs_resumed_total";
/// What the history note of a job resumed after a restart says.
const RESUMED_NOTE: &str = "after a broker restart";

/// The most jobs ListJobs returns a page.
const LIST_PAGE: i32 = 500;
/// How long one gRPC call or `/metrics` scrape may take.
const CALL_LIMIT: Duration = Duration::from_secs(60);
/// How long the broker is left alone after it started, before its memory is read.
const BASELINE_SETTLE: Duration = Duration::from_secs(2);
/// How often a restart reads the broker's `/metrics`.
const SCRAPE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a restart waits for history notes or counters that stopped moving.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// The replica id the broker runs under, before and after its restarts.
const REPLICA_ID: &str = "bench-live-jobs";

type Client = JobServiceClient<Channel>;

struct Settings {
    job_counts: Vec<usize>,
    submit_concurrency: usize,
    connections: usize,
    settle: Duration,
    window: Duration,
    restarts: Vec<Restart>,
}

impl Settings {
    fn from_env() -> Settings {
        // `cargo bench` passes `--bench`; numbers among the arguments are job counts.
        let mut job_counts: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|argument| argument.parse().ok())
            .collect();
        if job_counts.is_empty() {
            job_counts = std::env::var("BENCH_LIVE_JOBS")
                .unwrap_or_else(|_| "1000,5000".to_owned())
                .split(',')
                .map(|count| {
                    count
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("BENCH_LIVE_JOBS: {count:?} is not a count"))
                })
                .collect();
        }
        let restarts = std::env::var("BENCH_RESTARTS")
            .unwrap_or_else(|_| "kill,term".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| match name {
                "term" => Restart::Term,
                "kill" => Restart::Kill,
                other => panic!("BENCH_RESTARTS: unknown restart {other:?} (term or kill)"),
            })
            .collect();
        Settings {
            job_counts,
            submit_concurrency: env_number("BENCH_SUBMIT_CONCURRENCY", 64usize).max(1),
            connections: env_number("BENCH_CONNECTIONS", 4usize).max(1),
            settle: Duration::from_secs_f64(env_number("BENCH_SETTLE_SECONDS", 5.0f64)),
            window: Duration::from_secs_f64(env_number("BENCH_WINDOW_SECONDS", 60.0f64).max(1.0)),
            restarts,
        }
    }
}

/// How the broker is stopped before it is started again.
#[derive(Clone, Copy)]
enum Restart {
    /// SIGTERM: it stops its drivers and gives its leases up.
    Term,
    /// SIGKILL: it stops at once, its leases held.
    Kill,
}

impl Restart {
    fn signal(self) -> &'static str {
        match self {
            Restart::Term => "SIGTERM",
            Restart::Kill => "SIGKILL",
        }
    }
}

/// A live job: the Flink job ids its statements started.
struct LiveJob {
    flink_job_ids: Vec<String>,
}

/// One run: a stand-in, the database the broker's processes share, and the flags they share.
struct Bench<'a> {
    settings: &'a Settings,
    jobs: usize,
    standin: Standin,
    database_url: String,
    _database_dir: tempfile::TempDir,
}

impl Bench<'_> {
    /// Starts a broker process on the bench's database, with a `/metrics` endpoint of its own.
    async fn start_broker(&self) -> (ProcessBroker, SocketAddr) {
        let metrics = free_port();
        let metrics_listen = metrics.to_string();
        let flags = [
            "--replica-id",
            REPLICA_ID,
            "--metrics-listen",
            &metrics_listen,
            // The quotas are not what is measured.
            "--tenant-max-live-jobs",
            "10000000",
            "--tenant-submissions-per-minute",
            "10000000",
        ];
        let broker =
            ProcessBroker::start_on(&self.standin.base_url, Some(&self.database_url), &flags).await;
        (broker, metrics)
    }
}

fn main() {
    // The metrics scrapes of the store measure go through reqwest, which needs the
    // process-wide TLS provider the broker installs.
    flinkbroker::install_crypto_provider();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    print_machine();
    for &jobs in &settings.job_counts {
        runtime.block_on(run(&settings, jobs));
    }
    runtime.block_on(store_latencies());
}

/// ListJobs, GetJob and a metrics scrape with 100 000 ended and 1 000 live jobs in the store (the measure of
/// `benches/store_scale.rs`), on each of `BENCH_STORE_BACKENDS` (`sqlite,postgres`; empty:
/// none).
async fn store_latencies() {
    let settings = store_scale::ScaleSettings {
        ended_jobs: 100_000,
        live_jobs: 1_000,
        calls: env_number("BENCH_CALLS", 500usize).max(1),
        get_calls: env_number("BENCH_GET_CALLS", 5_000usize).max(1),
        warmup_calls: 20,
        only: Vec::new(),
    };
    let backends =
        std::env::var("BENCH_STORE_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        println!(
            "\n=== the store with {} ended and {} live jobs: {backend} ===",
            settings.ended_jobs, settings.live_jobs
        );
        let figures = match backend {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("database dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("scale.db").display()
                );
                store_scale::measure("sqlite", &url, &settings).await
            }
            "postgres" => {
                let database =
                    flinkbroker_testkit::postgres::PostgresDatabase::create("fb_bench_live").await;
                store_scale::measure("postgres", &database.url, &settings).await
            }
            other => panic!("unknown store backend {other}: sqlite or postgres"),
        };
        store_scale::print(&figures);
    }
}

/// Prints the machine the figures were measured on.
fn print_machine() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "machine: {cores} cores (nproc), {model}; load average {}",
        load_averages()
    );
}

/// The 1, 5 and 15 minute load averages.
fn load_averages() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(settings: &Settings, jobs: usize) {
    println!("\n=== {jobs} live jobs ===");
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("start the stand-in");
    let database_dir = tempfile::tempdir().expect("database dir");
    let database_url = format!(
        "sqlite://{}?mode=rwc",
        database_dir.path().join("broker.db").display()
    );
    let bench = Bench {
        settings,
        jobs,
        standin,
        database_url,
        _database_dir: database_dir,
    };
    let (broker, _metrics) = bench.start_broker().await;
    println!(
        "broker {} pid {} on {} (replica {REPLICA_ID}; default --poll-interval, --heartbeat-interval, --health-interval, --lease-duration)",
        process_broker::broker_binary(),
        broker.pid,
        broker.addr
    );
    tokio::time::sleep(BASELINE_SETTLE).await;
    let rss_before = broker.rss_kib();

    let mut channels = Vec::new();
    for _ in 0..settings.connections {
        channels.push(broker.channel().await);
    }
    let submitted_at = Instant::now();
    let broker_cpu = broker.cpu_time();
    let own_cpu = own_cpu_time();
    let ids = submit_all(&channels, &broker, jobs, settings.submit_concurrency).await;
    let submit_time = submitted_at.elapsed();
    println!(
        "submitted {jobs} jobs in {:.1} s ({:.0}/s, {} at once over {} connections; CPU meanwhile: broker {:.1} s, this process (client and stand-in) {:.1} s)",
        submit_time.as_secs_f64(),
        jobs as f64 / submit_time.as_secs_f64().max(f64::EPSILON),
        settings.submit_concurrency,
        settings.connections,
        broker.cpu_time().saturating_sub(broker_cpu).as_secs_f64(),
        own_cpu_time().saturating_sub(own_cpu).as_secs_f64(),
    );
    let mut client = client(channels[0].clone());
    let live = wait_all_running(&mut client, &broker, jobs, submitted_at).await;
    assert_eq!(
        live.len(),
        ids.len(),
        "ListJobs shows as many RUNNING jobs as were submitted"
    );
    println!(
        "all {jobs} jobs RUNNING {:.1} s after the first submission",
        submitted_at.elapsed().as_secs_f64()
    );
    drop(client);
    drop(channels);

    tokio::time::sleep(settings.settle).await;
    steady_state(&bench, &broker, rss_before).await;

    let mut broker = broker;
    for &how in &settings.restarts {
        broker = restart(&bench, broker, how, &live).await;
    }
    println!("load average {}", load_averages());
    broker.kill().await;
    bench.standin.shutdown().await;
}

/// Measures the steady state over the window: Flink requests, broker CPU, memory per job.
async fn steady_state(bench: &Bench<'_>, broker: &ProcessBroker, rss_before: u64) {
    let jobs = bench.jobs;
    let standin = &bench.standin;
    let requests_before = standin.request_counts();
    let heartbeats_before = standin.heartbeats();
    let cpu_before = broker.cpu_time();
    let started = Instant::now();
    tokio::time::sleep(bench.settings.window).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = broker.cpu_time().saturating_sub(cpu_before);
    let requests = difference(standin.request_counts(), requests_before);
    let heartbeats = standin.heartbeats().saturating_sub(heartbeats_before);
    let peak = standin.peak_requests_per_100ms(started, Instant::now());
    let rss_with_jobs = broker.rss_kib();

    let jobmanager_rate = requests.jobmanager as f64 / secs;
    let gateway_rate = requests.gateway as f64 / secs;
    let flink_rate = jobmanager_rate + gateway_rate;
    println!(
        "flink requests per second at steady state: {flink_rate:.1} over {secs:.1} s (target ≤ {TARGET_FLINK_REQUESTS_PER_SECOND} /s whatever the number of jobs: {})",
        verdict(flink_rate <= TARGET_FLINK_REQUESTS_PER_SECOND)
    );
    println!(
        "  JobManager requests per second: {jobmanager_rate:.1} (at most {} in 100 ms)",
        peak.jobmanager
    );
    println!(
        "  SQL Gateway requests per second: {gateway_rate:.1}, of which heartbeats {:.1} (at most {} in 100 ms)",
        heartbeats as f64 / secs,
        peak.gateway
    );

    let cpu_percent = cpu.as_secs_f64() / secs * 100.0;
    let cpu_target = if jobs == TARGET_IDLE_CPU_JOBS {
        verdict(cpu_percent <= TARGET_IDLE_CPU_PERCENT)
    } else {
        "not judged at this count"
    };
    println!(
        "broker CPU at idle: {cpu_percent:.2} % of one core ({:.2} s over {secs:.1} s) (target ≤ {TARGET_IDLE_CPU_PERCENT} % at {TARGET_IDLE_CPU_JOBS} jobs: {cpu_target})",
        cpu.as_secs_f64()
    );

    let per_job = rss_with_jobs.saturating_sub(rss_before) as f64 / jobs as f64;
    println!(
        "RSS per live job: {per_job:.1} KiB ({:.1} MiB with {jobs} jobs, {:.1} MiB before any; peak {:.1} MiB) (target ≤ {TARGET_RSS_PER_JOB_KIB} KiB: {})",
        rss_with_jobs as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        broker.peak_rss_kib() as f64 / 1024.0,
        verdict(per_job <= TARGET_RSS_PER_JOB_KIB)
    );
}

/// Stops the broker (`how`), starts it again on the same database, and measures until the
/// new process drives every job; returns the new process.
async fn restart(
    bench: &Bench<'_>,
    broker: ProcessBroker,
    how: Restart,
    live: &[LiveJob],
) -> ProcessBroker {
    let jobs = bench.jobs;
    let standin = &bench.standin;
    let flink_job_ids: Vec<String> = live
        .iter()
        .flat_map(|job| job.flink_job_ids.iter().cloned())
        .collect();
    let limit = Duration::from_secs(120) + Duration::from_millis(30) * jobs as u32;
    let requests_before = standin.request_counts();

    let stopping = Instant::now();
    match how {
        Restart::Term => broker.stop().await,
        Restart::Kill => broker.kill().await,
    }
    let stopped_in = stopping.elapsed();
    let restarted = Instant::now();
    let restarted_wall = SystemTime::now();
    let (broker, metrics) = bench.start_broker().await;
    let serving_after = restarted.elapsed();
    let mut client = client(broker.channel().await);

    let deadline = restarted + limit;
    let mut taken_up_after = None;
    let mut resumed_after = None;
    let mut reported_after = None;
    let mut noted_after = None;
    let mut progress = Resumption::default();
    let mut reported = 0;
    let mut noted = 0;
    let mut not_noted: Option<String> = None;
    let mut notes_read: Option<Instant> = None;
    let mut scraped: Option<Instant> = None;
    // When any of the figures last moved.
    let mut last_progress = (Instant::now(), (0.0, None, 0, 0));
    loop {
        let counted =
            taken_up_after.is_some() && (resumed_after.is_some() || progress.resumed.is_none());
        // Each scrape reads the store too: not more often than twice a second.
        if !counted && scraped.is_none_or(|at| at.elapsed() >= SCRAPE_INTERVAL) {
            scraped = Some(Instant::now());
            progress = match scrape(metrics).await {
                Ok(text) => Resumption::read(&text),
                Err(error) => panic!(
                    "cannot read {TAKEOVERS} on http://{metrics}/metrics: {error}\n{}",
                    broker.log_tail()
                ),
            };
            if taken_up_after.is_none() && progress.taken_up >= jobs as f64 {
                taken_up_after = Some(restarted.elapsed());
            }
            if resumed_after.is_none() && progress.resumed.is_some_and(|n| n >= jobs as f64) {
                resumed_after = Some(restarted.elapsed());
            }
        }
        if reported_after.is_none() {
            reported = standin.flink_jobs_reported_since(&flink_job_ids, restarted);
            if reported == flink_job_ids.len() {
                reported_after = Some(restarted.elapsed());
            }
        }
        if noted_after.is_none()
            && notes_read.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            notes_read = Some(Instant::now());
            (noted, not_noted) = resumed_since(&mut client, &broker, restarted_wall, jobs).await;
            if noted == jobs {
                noted_after = Some(restarted.elapsed());
            }
        }
        let figures = (progress.taken_up, progress.resumed, reported, noted);
        if figures != last_progress.1 {
            last_progress = (Instant::now(), figures);
        }
        let counted =
            taken_up_after.is_some() && (resumed_after.is_some() || progress.resumed.is_none());
        // The counters on /metrics miss what a broker did before it installed its recorder,
        // and a broker may note no resumption: once every Flink job's status was read, what
        // is still missing is waited for only while it moves.
        if reported_after.is_some()
            && ((noted_after.is_some() && counted) || last_progress.0.elapsed() > STALL_LIMIT)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the {} restart, the new broker did not drive every job within {limit:?}: {reported} of {} flink jobs' status read from the jobmanager since the restart, {noted} of {jobs} jobs noted \"resumed … {RESUMED_NOTE}\" ({} taken up in {TAKEOVERS}{{{TAKEOVERS_AFTER_RESTART}}}, {} in {JOBS_RESUMED})\n{}",
            how.signal(),
            flink_job_ids.len(),
            progress.taken_up,
            progress
                .resumed
                .map_or_else(|| "none counted".to_owned(), |n| n.to_string()),
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = Instant::now();
    let peak = standin.peak_requests_per_100ms(stopping, ended);
    let requests = difference(standin.request_counts(), requests_before);
    let Some(reported_after) = reported_after else {
        unreachable!("the loop ends once every flink job's status was read")
    };
    let all_running = [taken_up_after, resumed_after, noted_after]
        .into_iter()
        .flatten()
        .fold(reported_after, Duration::max);
    let when = |after: Option<Duration>, what: String, count: String| match after {
        Some(after) => format!("all {jobs} {what} after {:.2} s", after.as_secs_f64()),
        None => format!("only {count} of {jobs} {what} by the end"),
    };
    let taken_up = when(
        taken_up_after,
        format!("taken up ({TAKEOVERS}{{{TAKEOVERS_AFTER_RESTART}}})"),
        progress.taken_up.to_string(),
    );
    let resumed = match progress.resumed {
        Some(count) => when(
            resumed_after,
            format!("resumed ({JOBS_RESUMED})"),
            count.to_string(),
        ),
        None => format!("no {JOBS_RESUMED} on this broker"),
    };
    let mut notes = when(
        noted_after,
        format!("noted \"resumed … {RESUMED_NOTE}\""),
        noted.to_string(),
    );
    if let (None, Some(example)) = (noted_after, &not_noted) {
        notes.push_str(&format!(" (last history entry of {example}; a note equal to the job's current reason is not recorded again)"));
    }
    println!(
        "restart after {}: stopped in {:.2} s; serving {:.2} s after the new start; all {} flink jobs' status read after {:.2} s; {notes}; {taken_up}; {resumed}",
        how.signal(),
        stopped_in.as_secs_f64(),
        serving_after.as_secs_f64(),
        flink_job_ids.len(),
        reported_after.as_secs_f64(),
    );
    println!(
        "all jobs RUNNING on the new process after {}: {:.2} s from its start (no target)",
        how.signal(),
        all_running.as_secs_f64()
    );
    println!(
        "  peak requests per 100 ms during the {} restart: SQL Gateway {}, JobManager {} ({} and {} in all over {:.1} s)",
        how.signal(),
        peak.gateway,
        peak.jobmanager,
        requests.gateway,
        requests.jobmanager,
        (ended - stopping).as_secs_f64()
    );
    broker
}

/// Submits `jobs` jobs, `concurrency` at once spread over `channels`; returns their ids.
async fn submit_all(
    channels: &[Channel],
    broker: &ProcessBroker,
    jobs: usize,
    concurrency: usize,
) -> Vec<String> {
    let limit = Duration::from_secs(120) + Duration::from_millis(50) * jobs as u32;
    let submissions = futures::stream::iter(0..jobs)
        .map(|index| {
            let mut client = client(channels[index % channels.len()].clone());
            async move {
                let request = SubmitSqlRequest {
                    script: SCRIPT.to_owned(),
                    runtime_mode: RuntimeMode::Streaming as i32,
                    request_id: format!("live-jobs-{index}"),
                    ..SubmitSqlRequest::default()
                };
                match tokio::time::timeout(CALL_LIMIT, client.submit_sql(request)).await {
                    Ok(Ok(answer)) => Ok(answer.into_inner().id),
                    Ok(Err(status)) => Err(format!("job {index}: {status}")),
                    Err(_) => Err(format!("job {index}: no answer within {CALL_LIMIT:?}")),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>();
    let answers = tokio::time::timeout(limit, submissions)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{jobs} jobs were not submitted within {limit:?}\n{}",
                broker.log_tail()
            )
        });
    answers
        .into_iter()
        .map(|answer| {
            answer
                .unwrap_or_else(|error| panic!("SubmitSql failed: {error}\n{}", broker.log_tail()))
        })
        .collect()
}

/// Waits until ListJobs shows `jobs` jobs RUNNING; returns them.
async fn wait_all_running(
    client: &mut Client,
    broker: &ProcessBroker,
    jobs: usize,
    since: Instant,
) -> Vec<LiveJob> {
    let limit = Duration::from_secs(120) + Duration::from_millis(60) * jobs as u32;
    let deadline = since + limit;
    let mut reported = Instant::now();
    loop {
        let running = list_jobs(client, &[JobState::Running]).await;
        if running.len() >= jobs {
            return running
                .into_iter()
                .map(|job| LiveJob {
                    flink_job_ids: job
                        .statements
                        .iter()
                        .map(|statement| statement.flink_job_id.clone())
                        .filter(|id| !id.is_empty())
                        .collect(),
                })
                .collect();
        }
        let ended = list_jobs(
            client,
            &[JobState::Failed, JobState::Canceled, JobState::Finished],
        )
        .await;
        if let Some(job) = ended.first() {
            panic!(
                "{} jobs ended instead of running, e.g. {} {:?}: {}\n{}",
                ended.len(),
                job.id,
                job.state(),
                job.state_reason,
                broker.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {jobs} jobs RUNNING within {limit:?} of the first submission\n{}",
            running.len(),
            broker.log_tail()
        );
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            println!(
                "  {} of {jobs} jobs RUNNING after {:.0} s",
                running.len(),
                since.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How many jobs have a history note, recorded at or after `since`, that they were resumed
/// after a broker restart, and the last history entry of one that has none; panics when a job
/// is no longer RUNNING.
async fn resumed_since(
    client: &mut Client,
    broker: &ProcessBroker,
    since: SystemTime,
    jobs: usize,
) -> (usize, Option<String>) {
    let listed = list_jobs(client, &[]).await;
    assert_eq!(listed.len(), jobs, "ListJobs lists every job");
    let since = prost_types::Timestamp::from(since);
    let mut noted = 0;
    let mut example = None;
    for job in &listed {
        assert!(
            job.state() == JobState::Running,
            "job {} is {:?} after the restart: {}\n{}",
            job.id,
            job.state(),
            job.state_reason,
            broker.log_tail()
        );
        let resumed = job.history.iter().any(|entry| {
            entry.reason.starts_with("resumed")
                && entry.reason.contains(RESUMED_NOTE)
                && entry
                    .time
                    .is_some_and(|time| (time.seconds, time.nanos) >= (since.seconds, since.nanos))
        });
        noted += usize::from(resumed);
        if !resumed && example.is_none() {
            example = Some(match job.history.last() {
                Some(entry) => format!("job {}: {:?} {:?}", job.id, entry.state(), entry.reason),
                None => format!("job {}: no history", job.id),
            });
        }
    }
    (noted, example)
}

/// Every job in one of `states` (any state when empty), page by page.
async fn list_jobs(client: &mut Client, states: &[JobState]) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListJobsRequest {
            states: states.iter().map(|state| *state as i32).collect(),
            page_size: LIST_PAGE,
            page_token: page_token.clone(),
            ..ListJobsRequest::default()
        };
        let page = match tokio::time::timeout(CALL_LIMIT, client.list_jobs(request)).await {
            Ok(Ok(page)) => page.into_inner(),
            Ok(Err(status)) => panic!("ListJobs failed: {status}"),
            Err(_) => panic!("ListJobs did not answer within {CALL_LIMIT:?}"),
        };
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return jobs;
        }
        page_token = page.next_page_token;
    }
}

fn client(channel: Channel) -> Client {
    JobServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024)
}

/// The broker's `/metrics` text (HTTP/1.0: the body is not chunked).
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok(text)
    };
    tokio::time::timeout(CALL_LIMIT, read)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("no answer in time")))
}

/// What a restarted broker's `/metrics` says of the jobs it took up.
#[derive(Default)]
struct Resumption {
    /// Its own jobs it took up (drivers started).
    taken_up: f64,
    /// Jobs taken up that follow their Flink jobs again, when the broker counts them.
    resumed: Option<f64>,
}

impl Resumption {
    fn read(metrics: &str) -> Resumption {
        let value = |line: &str| line.split_whitespace().last()?.parse::<f64>().ok();
        let mut resumption = Resumption::default();
        for line in metrics.lines() {
            if line.starts_with(&format!("{TAKEOVERS}{{")) && line.contains(TAKEOVERS_AFTER_RESTART)
            {
                resumption.taken_up += value(line).unwrap_or(0.0);
            } else if line.starts_with(&format!("{JOBS_RESUMED} "))
                || line.starts_with(&format!("{JOBS_RESUMED}{{"))
            {
                *resumption.resumed.get_or_insert(0.0) += value(line).unwrap_or(0.0);
            }
        }
        resumption
    }
}

fn difference(after: RequestCounts, before: RequestCounts) -> RequestCounts {
    RequestCounts {
        gateway: after.gateway.saturating_sub(before.gateway),
        jobmanager: after.jobmanager.saturating_sub(before.jobmanager),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// CPU time this process (the client and the stand-in) used so far.
fn own_cpu_time() -> Duration {
    process_broker::process_cpu_time("/proc/self/stat").unwrap_or_default()
}

/// A loopback port nothing listens on right now.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}
