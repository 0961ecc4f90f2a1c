//! The store at scale, on SQLite and PostgreSQL: 100 000 ended jobs and 1 000 live ones
//! seeded in bulk, the migrations timed on that database, then the real `flinkbroker` binary on
//! it (driving the live jobs against the stand-in) answering ListJobs (first page, filtered by
//! state and by a label), GetJob of ended jobs and a metrics scrape. Targets: ListJobs p99 <= 20
//! ms, GetJob of an ended job p99 <= 2 ms, a metrics scrape p99 <= 20 ms.
//!
//! Environment: `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_ENDED_JOBS` (100000),
//! `BENCH_LIVE_JOBS` (1000), `BENCH_CALLS` (500 per query), `BENCH_GET_CALLS` (5000 GetJob
//! calls, each of its own ended job), `BENCH_WARMUP_CALLS` (20),
//! `BENCH_ONLY` (parts of the call names to measure, comma-separated: `GetJob,label`).
//! SQLite: a file in a temporary directory (`BENCH_SQLITE_PATH`: this file instead, kept).
//! PostgreSQL: a fresh database on the server the tests use (`FLINKBROKER_TEST_POSTGRES_URL`,
//! else 127.0.0.1:5432), dropped afterwards (kept with `BENCH_KEEP_POSTGRES=1`).
//!
//! Run with `cargo bench --bench store_scale`.

#[path = "support/store_scale.rs"]
mod store_scale;

use std::time::Instant;

use flinkbroker_testkit::postgres::PostgresDatabase;
use store_scale::{ScaleSettings, load_average, measure, print};

fn main() {
    flinkbroker::install_crypto_provider();
    let settings = ScaleSettings::from_env();
    let backends: Vec<String> = std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned())
        .split(',')
        .map(|backend| backend.trim().to_owned())
        .filter(|backend| !backend.is_empty())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    println!(
        "store at scale: {settings:?}; {} cpus; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    runtime.block_on(async {
        for backend in &backends {
            let figures = match backend.as_str() {
                "sqlite" => {
                    let dir = tempfile::tempdir().expect("database dir");
                    let path = std::env::var("BENCH_SQLITE_PATH")
                        .map_or_else(|_| dir.path().join("scale.db"), std::path::PathBuf::from);
                    let _ = std::fs::remove_file(&path);
                    let url = format!("sqlite://{}?mode=rwc", path.display());
                    measure("sqlite", &url, &settings).await
                }
                "postgres" => {
                    let database = PostgresDatabase::create("fb_bench_scale").await;
                    let figures = measure("postgres", &database.url, &settings).await;
                    if std::env::var_os("BENCH_KEEP_POSTGRES").is_some() {
                        println!("kept the database {}", database.url);
                        std::mem::forget(database);
                    }
                    figures
                }
                other => panic!("unknown backend {other}: sqlite or postgres"),
            };
            print(&figures);
        }
    });
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
