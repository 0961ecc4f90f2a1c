//! A stateful stand-in for the Flink 1.20 SQL Gateway REST endpoint and, on the same port, the
//! JobManager REST API of the cluster behind it. [`StandinConfig::flink_release`] makes it
//! answer as a 1.19.3 or 2.1.3 gateway instead ([`FlinkRelease`]: the API versions it offers
//! and its version number; everything else the transcripts show is the same on all three).
//!
//! It answers the way the recorded transcripts of a real gateway do: sessions with their
//! properties, operations that go RUNNING -> FINISHED/ERROR/CANCELED, NOT_READY pages before the
//! first PAYLOAD page, empty PAYLOAD pages between data pages, result tokens where only the
//! current and the previous token may be fetched, errors that surface at status/fetch time as
//! HTTP 500 bodies with Java stack text, and Flink jobs started by SELECT and INSERT statements
//! (including a caller-chosen `$internal.pipeline.job-id`; a second submission of the same id
//! fails at status/fetch time, as Flink rejects it).
//!
//! The JobManager API answers `GET /config`, `/overview`, `/jobs`, `/jobs/overview`,
//! `/jobs/{id}`, `/jobs/{id}/exceptions`, `PATCH /jobs/{id}?mode=cancel`,
//! `POST /jobs/{id}/stop` (stop-with-savepoint under the client's `triggerId`) and
//! `GET /jobs/{id}/savepoints/{triggerId}` for those jobs, with the recorded bodies for unknown
//! and malformed ids, and `GET /taskmanagers` and `/taskmanagers/{id}/metrics` for the cluster's
//! one TaskManager. [`Standin::fail_flink_job`] makes a running job fail with a root cause.
//!
//! A small SQL front end understands literal SELECTs, `CREATE TABLE ... WITH (...)` for the
//! `datagen`, `print` and `blackhole` connectors, `CREATE [TEMPORARY] VIEW v AS SELECT ...` (a
//! projection or filter, read by later queries), `SELECT ... FROM t [WHERE ...] [GROUP BY ...]`,
//! `INSERT INTO ... SELECT/VALUES`, `EXECUTE STATEMENT SET`, `SET`/`RESET`, `STOP JOB`, `SHOW`
//! and `DESCRIBE`. Datagen rows are produced lazily, page by page, from a seeded generator.
//!
//! # Timing
//! A statement that submits a job (SELECT, INSERT, statement set) is RUNNING and answers
//! NOT_READY until it has served [`StandinConfig::not_ready_pages`] NOT_READY pages or
//! [`StandinConfig::submit_delay`] has passed. Datagen tables emit `rows-per-second` rows per
//! second (Flink's default 10 000) unless [`StandinConfig::honor_rows_per_second`] is off.
//! Bounded INSERT jobs end after `number-of-rows / rows-per-second`; unbounded ones run until
//! `STOP JOB`; SELECT jobs end with their last row or are canceled when their operation or
//! session closes.
//!
//! A cancel (`PATCH /jobs/{id}`, `STOP JOB`, closing a SELECT's operation) ends the job at once,
//! but `GET /jobs/{id}` keeps reporting RUNNING for [`StandinConfig::cancel_delay`], as a real
//! JobManager's cached view does; a stop with savepoint (`POST /jobs/{id}/stop`,
//! `STOP JOB ... WITH SAVEPOINT`) leaves the job RUNNING that long, then FINISHED. A very long
//! delay makes cancels never complete for a client polling `GET /jobs/{id}`.
//!
//! # Large results
//! For a fast stream of many rows, create a bounded datagen table with a high
//! `'rows-per-second'` (or turn `honor_rows_per_second` off), raise `rows_per_page` and turn
//! `empty_payload_pages` off:
//! `CREATE TABLE t (id BIGINT, name STRING, price DOUBLE, amount DECIMAL(12, 2), ts TIMESTAMP(3))
//! WITH ('connector'='datagen', 'number-of-rows'='1000000', 'rows-per-second'='1000000000',
//! 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='1000000')`, then
//! `SELECT * FROM t` in a batch session.
#![allow(dead_code)]

mod datagen;
mod exceptions;
mod gateway;
mod http;
mod jobmanager;
mod lexer;
mod parser;
mod pipeline;
mod planner;
mod release;
mod types;

pub use release::FlinkRelease;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use gateway::Gateway;

/// How the stand-in paces results.
#[derive(Clone, Debug)]
pub struct StandinConfig {
    /// NOT_READY pages served before a statement's first PAYLOAD page. The statement also turns
    /// ready once `submit_delay` has passed, whichever comes first.
    pub not_ready_pages: u32,
    /// Max rows per PAYLOAD page.
    pub rows_per_page: usize,
    /// Whether an empty PAYLOAD page precedes each page with rows (as in the datagen transcripts).
    pub empty_payload_pages: bool,
    /// How long a job-submitting statement stays RUNNING when nobody fetches its results.
    pub submit_delay: Duration,
    /// Whether datagen tables are throttled to their `rows-per-second` (default 10 000).
    pub honor_rows_per_second: bool,
    /// Sessions without any request for this long are closed (`sql-gateway.session.idle-timeout`).
    pub session_idle_timeout: Duration,
    /// How long `GET /jobs/{id}` keeps reporting a cancelled job RUNNING (about 1 s recorded),
    /// and how long a stop with savepoint takes.
    pub cancel_delay: Duration,
    /// The Flink release to answer as: its REST API versions and its version number.
    pub flink_release: FlinkRelease,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            not_ready_pages: 2,
            rows_per_page: 1000,
            empty_payload_pages: true,
            submit_delay: Duration::from_secs(1),
            honor_rows_per_second: true,
            session_idle_timeout: Duration::from_secs(600),
            cancel_delay: Duration::from_secs(1),
            flink_release: FlinkRelease::default(),
        }
    }
}

/// One `POST .../statements` request as the stand-in received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedStatement {
    /// The session handle from the request path.
    pub session_handle: String,
    /// The statement text (the raw body when the body did not parse).
    pub statement: String,
    /// The request's `executionConfig`.
    pub execution_config: BTreeMap<String, String>,
    /// The HTTP status the stand-in answered.
    pub http_status: u16,
    /// The operation handle returned, if any.
    pub operation_handle: Option<String>,
}

/// Requests the stand-in received, by API family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// SQL Gateway requests (heartbeats included).
    pub gateway: u64,
    /// JobManager REST API requests.
    pub jobmanager: u64,
}

/// A running stand-in server.
pub struct Standin {
    /// E.g. `http://127.0.0.1:41234`: the SQL Gateway and the JobManager REST API.
    pub base_url: String,
    pub addr: SocketAddr,
    gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Standin {
    /// Starts a stand-in on an ephemeral port of 127.0.0.1.
    pub async fn spawn(config: StandinConfig) -> std::io::Result<Standin> {
        Standin::spawn_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a stand-in on `addr`.
    pub async fn spawn_on(addr: SocketAddr, config: StandinConfig) -> std::io::Result<Standin> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let gateway = Arc::new(Gateway::new(config));
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(gateway.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Standin {
            base_url: format!("http://{addr}"),
            addr,
            gateway,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Requests received per URL version prefix (`v1` … `v4`; `-` for unversioned URLs).
    pub fn requests_by_api_version(&self) -> BTreeMap<String, usize> {
        self.gateway.requests_by_api_version()
    }

    /// Requests received so far, by API family.
    pub fn request_counts(&self) -> RequestCounts {
        self.gateway.request_counts()
    }

    /// The most requests of each API family received within one 100 ms slot (slots counted
    /// from the stand-in's start) among the slots from `from` to `to`; each family's peak on
    /// its own. Slots older than an hour are forgotten.
    pub fn peak_requests_per_100ms(&self, from: Instant, to: Instant) -> RequestCounts {
        self.gateway.peak_requests_per_slot(from, to)
    }

    /// How many of `flink_job_ids` the JobManager API reported the status of at or after
    /// `since`: by `GET /jobs/{id}`, or by listing every job (`GET /jobs`, `/jobs/overview`).
    pub fn flink_jobs_reported_since(&self, flink_job_ids: &[String], since: Instant) -> usize {
        self.gateway.flink_jobs_reported_since(flink_job_ids, since)
    }

    /// Sessions currently open.
    pub fn open_session_count(&self) -> usize {
        self.gateway.open_session_count()
    }

    /// Every `POST .../statements` received, in order; with their `executionConfig` these are
    /// also every submission of a pinned `$internal.pipeline.job-id`, rejected duplicates too.
    pub fn statements(&self) -> Vec<RecordedStatement> {
        self.gateway.statements()
    }

    /// Successful heartbeats received.
    pub fn heartbeats(&self) -> usize {
        self.gateway.heartbeats()
    }

    /// Operation handles that were canceled (cancel requests answered `CANCELED`), in order.
    pub fn canceled_operations(&self) -> Vec<String> {
        self.gateway.canceled_operations()
    }

    /// Jobs started by SELECT and INSERT statements: id and RUNNING/FINISHED/CANCELED/FAILED, as
    /// `/jobs/overview` reports them (a cancelled job at once, unlike `GET /jobs/{id}`).
    pub fn flink_jobs(&self) -> Vec<(String, String)> {
        self.gateway.flink_jobs()
    }

    /// Makes a running Flink job fail at once with `root_cause` (`class: message`, e.g.
    /// `java.lang.RuntimeException: boom`), which `/jobs/{id}/exceptions` then reports; false
    /// when no such job runs.
    pub fn fail_flink_job(&self, flink_job_id: &str, root_cause: &str) -> bool {
        self.gateway.fail_flink_job(flink_job_id, root_cause)
    }

    /// Makes the next `count` Flink jobs fail at once with `NoResourceAvailableException`, before
    /// any of their tasks is deployed, as a busy session cluster refuses jobs it has no slots
    /// for.
    pub fn refuse_next_flink_jobs(&self, count: u32) {
        self.gateway.refuse_next_flink_jobs(count);
    }

    /// Stops accepting requests and waits (briefly) for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
