//! GetJob under load: 64 concurrent callers over 4 HTTP/2 connections against the real
//! `flinkbroker` binary on SQLite (a child process, so that its CPU time is its own), calling
//! GetJob of a live job (a streaming SQL job that keeps running) and of an ended job
//! (FINISHED), next to the cheapest call on the same server, the gRPC health Check (the
//! baseline). Prints req/s, p50/p99/p99.9 latency, the CPU each side used, and the ratios.
//!
//! Each phase runs a warm-up, then until `BENCH_CALLS` calls or `BENCH_SECONDS` passed, twice:
//! with every caller calling as fast as it can (saturation: the machine's two cores are shared
//! by the broker and this load generator, and the latency is mostly the callers' own queue),
//! then with the callers together offering `BENCH_RATE` calls a second, on which the target
//! (>= 30 k req/s with p99 < 5 ms) is judged.
//! Environment: `BENCH_CALLERS` (64), `BENCH_CONNECTIONS` (4), `BENCH_CALLS` (1000000),
//! `BENCH_RATE` (32000), `BENCH_CLIENT_THREADS` (2: the load generator's worker threads),
//! `BENCH_SECONDS` (10), `BENCH_WARMUP_SECONDS` (1), `BENCH_PHASES` (`health,live,ended`).
//! The broker's pid is printed first, for `perf record -p`.
//!
//! Run with `cargo bench --bench get_job_load`.

#[path = "support/process_broker.rs"]
mod process_broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, RuntimeMode, SubmitSqlRequest,
};
use process_broker::{ProcessBroker, load_average};
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::sync::Barrier;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TARGET_RATE: f64 = 30_000.0;
const TARGET_P99: Duration = Duration::from_millis(5);

struct Settings {
    callers: usize,
    connections: usize,
    /// Worker threads of the load generator's runtime.
    client_threads: usize,
    /// Calls a second offered in the paced phases.
    rate: f64,
    calls: u64,
    duration: Duration,
    warmup: Duration,
    phases: Vec<String>,
}

impl Settings {
    fn from_env() -> Settings {
        use process_broker::env_number as number;
        Settings {
            callers: number("BENCH_CALLERS", 64usize).max(1),
            connections: number("BENCH_CONNECTIONS", 4usize).max(1),
            client_threads: number("BENCH_CLIENT_THREADS", 2usize).max(1),
            rate: number("BENCH_RATE", 32_000.0f64).max(1.0),
            calls: number("BENCH_CALLS", 1_000_000),
            duration: Duration::from_secs_f64(number("BENCH_SECONDS", 10.0)),
            warmup: Duration::from_secs_f64(number("BENCH_WARMUP_SECONDS", 1.0)),
            phases: std::env::var("BENCH_PHASES")
                .unwrap_or_else(|_| "health,live,ended".to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// What each caller calls.
#[derive(Clone)]
enum Call {
    Health,
    GetJob(String),
}

/// The figures of one phase.
struct Phase {
    calls: u64,
    errors: u64,
    secs: f64,
    /// Sorted latencies, in microseconds.
    latencies: Vec<u32>,
    broker_cpu: Duration,
    client_cpu: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs.max(f64::EPSILON)
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        Duration::from_micros(u64::from(self.latencies[rank]))
    }
}

/// Runs `settings.callers` callers, spread over `channels`, until `calls` calls were made or
/// `duration` passed: each as fast as it can (`rate` None), or together offering `rate`
/// calls a second (each caller sends on its own schedule, at once when it is behind; the
/// latency is counted from the send).
async fn run_phase(
    channels: &[Channel],
    callers: usize,
    call: &Call,
    calls: u64,
    duration: Duration,
    rate: Option<f64>,
    broker: &ProcessBroker,
) -> Phase {
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(callers + 1));
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let channel = channels[caller % channels.len()].clone();
        let call = call.clone();
        let issued = Arc::clone(&issued);
        let errors = Arc::clone(&errors);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut health = HealthClient::new(channel.clone());
            let mut jobs = JobServiceClient::new(channel);
            let mut latencies: Vec<u32> = Vec::with_capacity(16 * 1024);
            barrier.wait().await;
            let begun = Instant::now();
            let deadline = begun + duration;
            // Each caller's share of the offered rate, its first send spread over one period.
            let period = rate.map(|rate| Duration::from_secs_f64(callers as f64 / rate));
            let mut next_send =
                period.map(|period| begun + period.mul_f64(caller as f64 / callers as f64));
            while issued.fetch_add(1, Ordering::Relaxed) < calls && Instant::now() < deadline {
                if let (Some(period), Some(at)) = (period, next_send.as_mut()) {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(*at)).await;
                    *at += period;
                }
                let started = Instant::now();
                let ok = match &call {
                    Call::Health => health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .is_ok(),
                    Call::GetJob(id) => jobs
                        .get_job(GetJobRequest { job_id: id.clone() })
                        .await
                        .is_ok(),
                };
                let micros = started.elapsed().as_micros();
                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let broker_cpu = broker.cpu_time();
    let client_cpu = process_broker::process_cpu_time("/proc/self/stat").unwrap_or_default();
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("caller"));
    }
    let secs = started.elapsed().as_secs_f64();
    let broker_cpu = broker.cpu_time().saturating_sub(broker_cpu);
    let client_cpu = process_broker::process_cpu_time("/proc/self/stat")
        .unwrap_or_default()
        .saturating_sub(client_cpu);
    latencies.sort_unstable();
    Phase {
        calls: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        secs,
        latencies,
        broker_cpu,
        client_cpu,
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Prints a phase; `judged` says whether the target is judged on it (the paced phase: the
/// target is a rate with a latency, so it is judged at that rate offered, not at saturation,
/// where the latency is the queue the callers build).
fn print_phase(name: &str, phase: &Phase, baseline: Option<&Phase>, judged: bool) {
    let p99 = phase.percentile(0.99);
    println!(
        "{name:<22} {:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  p99.9 {:>6.3} ms  ({} calls in {:.2} s, {} errors; broker CPU {:.2} cores, client CPU {:.2} cores; broker {:.1} µs CPU/call)",
        phase.rate(),
        millis(phase.percentile(0.5)),
        millis(p99),
        millis(phase.percentile(0.999)),
        phase.calls,
        phase.secs,
        phase.errors,
        phase.broker_cpu.as_secs_f64() / phase.secs,
        phase.client_cpu.as_secs_f64() / phase.secs,
        phase.broker_cpu.as_secs_f64() * 1e6 / phase.calls.max(1) as f64,
    );
    if let Some(baseline) = baseline {
        println!(
            "{:<22} ratio to health Check: {:.3} req/s, {:.2}× p99",
            "",
            phase.rate() / baseline.rate(),
            millis(p99) / millis(baseline.percentile(0.99)).max(f64::EPSILON),
        );
    }
    if judged {
        println!(
            "{:<22} target >= {TARGET_RATE:.0} req/s with p99 < {} ms: {}",
            "",
            TARGET_P99.as_millis(),
            if phase.rate() >= TARGET_RATE && p99 < TARGET_P99 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

async fn submit(client: &mut JobServiceClient<Channel>, script: &str, mode: RuntimeMode) -> String {
    client
        .submit_sql(SubmitSqlRequest {
            script: script.to_owned(),
            runtime_mode: mode as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner()
        .id
}

/// Polls GetJob until `ready` accepts the job (60 s at most).
async fn wait_for(
    client: &mut JobServiceClient<Channel>,
    id: &str,
    what: &str,
    ready: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = client
            .get_job(GetJobRequest {
                job_id: id.to_owned(),
            })
            .await
            .expect("get job")
            .into_inner();
        if ready(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not {what} within 60 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let load_start = load_average();
    runtime.block_on(async {
        let standin = Standin::spawn(StandinConfig::default())
            .await
            .expect("stand-in");
        let broker = ProcessBroker::start(&standin.base_url, &[]).await;
        println!(
            "broker pid {} on {}; {} callers over {} connections; {} cpus",
            broker.pid,
            broker.addr,
            settings.callers,
            settings.connections,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut client = JobServiceClient::new(broker.channel().await);
        // A streaming query that keeps running: one row a second, forever.
        let live = submit(
            &mut client,
            "CREATE TABLE ticks (id BIGINT, name STRING) WITH ('connector'='datagen', 'rows-per-second'='1');\nSELECT * FROM ticks;",
            RuntimeMode::Streaming,
        )
        .await;
        let ended = submit(
            &mut client,
            "CREATE TABLE few (id BIGINT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='100');\nSELECT * FROM few;",
            RuntimeMode::Batch,
        )
        .await;
        let live_job = wait_for(&mut client, &live, "RUNNING with a result log", |job| {
            job.state() == JobState::Running
                && job.statements.iter().any(|s| s.result_log.is_some())
        })
        .await;
        let ended_job = wait_for(&mut client, &ended, "FINISHED", |job| {
            job.state() == JobState::Finished
        })
        .await;
        println!(
            "live job {live} ({:?}, {} statements; GetJob reply {} bytes), ended job {ended} ({:?}, {} statements, {} history entries; GetJob reply {} bytes)",
            live_job.state(),
            live_job.statements.len(),
            prost::Message::encoded_len(&live_job),
            ended_job.state(),
            ended_job.statements.len(),
            ended_job.history.len(),
            prost::Message::encoded_len(&ended_job),
        );

        let mut channels = Vec::new();
        for _ in 0..settings.connections {
            channels.push(broker.channel().await);
        }
        let mut baseline: Option<(Phase, Phase)> = None;
        for name in &settings.phases {
            let (label, call) = match name.as_str() {
                "health" => ("health Check", Call::Health),
                "live" => ("GetJob live job", Call::GetJob(live.clone())),
                "ended" => ("GetJob ended job", Call::GetJob(ended.clone())),
                other => panic!("unknown phase {other}: health, live or ended"),
            };
            run_phase(
                &channels,
                settings.callers,
                &call,
                u64::MAX,
                settings.warmup,
                None,
                &broker,
            )
            .await;
            let saturated = run_phase(
                &channels,
                settings.callers,
                &call,
                settings.calls,
                settings.duration,
                None,
                &broker,
            )
            .await;
            let paced = run_phase(
                &channels,
                settings.callers,
                &call,
                settings.calls,
                settings.duration,
                Some(settings.rate),
                &broker,
            )
            .await;
            let paced_label = format!("{label} @{:.0}/s", settings.rate);
            match &call {
                Call::Health => {
                    print_phase(label, &saturated, None, false);
                    print_phase(&paced_label, &paced, None, false);
                    baseline = Some((saturated, paced));
                }
                Call::GetJob(_) => {
                    print_phase(label, &saturated, baseline.as_ref().map(|b| &b.0), false);
                    print_phase(&paced_label, &paced, baseline.as_ref().map(|b| &b.1), true);
                }
            }
        }

        let _ = client
            .cancel_job(CancelJobRequest {
                job_id: live.clone(),
                ..CancelJobRequest::default()
            })
            .await;
        drop(channels);
        broker.stop().await;
        standin.shutdown().await;
    });
    println!(
        "total {:.1} s; load average {} at the start, {} at the end",
        started.elapsed().as_secs_f64(),
        load_start,
        load_average()
    );
}
