//! Several replicas on one PostgreSQL database: the real `flinkbroker` binary run three times
//! (two for the cancel test) with distinct `--replica-id`s against one SQL Gateway stand-in.
//! Exactly one replica drives each live job; every replica answers for every job; a replica
//! killed with SIGKILL while it drains query results has its jobs taken over once their
//! leases expire, and readers and watchers on the other replicas see every row once and the
//! job's true end, with no Flink job submitted twice.
//!
//! Needs the PostgreSQL server of `FLINKBROKER_TEST_POSTGRES_URL` (see `support/postgres.rs`).

#[path = "support/crash.rs"]
mod crash;
#[path = "support/postgres.rs"]
mod postgres_support;
#[path = "support/sql_gateway_standin/mod.rs"]
mod sql_gateway_standin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flinkbroker::proto::job_service_client::JobServiceClient;
use flinkbroker::proto::stream_end::Reason;
use flinkbroker::proto::stream_operation_results_response::Message;
use flinkbroker::proto::value::Kind;
use flinkbroker::proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, ListJobsRequest, RuntimeMode,
    StreamOperationResultsRequest, SubmitSqlRequest, WatchJobRequest,
};
use postgres_support::PostgresDatabase;
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The executionConfig key that pins a statement's Flink job id.
const PINNED_JOB_ID: &str = "$internal.pipeline.job-id";
/// Short leases, so that a takeover comes within seconds of a kill.
const LEASE_DURATION: &str = "2s";
const REPLICA_POLL_INTERVAL: &str = "100ms";
/// Longest wait for one unary answer or one stream message from a live replica.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a replica may take to report SERVING after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the other replicas may take to drive the killed replica's jobs.
const TAKEOVER_BOUND: Duration = Duration::from_secs(30);
/// Pause between two looks at a condition being waited for.
const POLL: Duration = Duration::from_millis(50);
/// Streams a reader opens at most (one is expected: its replica never dies).
const MAX_STREAMS: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Replicas

/// One `flinkbroker serve` child process listening on a port the kernel chose. Dropping it
/// kills it.
struct Replica {
    id: String,
    child: Child,
    log_path: PathBuf,
    address: String,
    channel: Channel,
}

impl Replica {
    /// Starts the binary with `arguments` and `--replica-id id` on `127.0.0.1:0`, logging to
    /// `<id>.log` under `log_dir`, and waits until it reports SERVING.
    async fn start(id: &str, arguments: &[String], log_dir: &Path) -> Replica {
        let log_path = log_dir.join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).expect("replica log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--replica-id", id])
            .args(arguments)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("replica log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start the flinkbroker binary");
        let deadline = Instant::now() + READY_TIMEOUT;
        // The address the replica bound, from its "flinkbroker serving listen=..." line.
        let address = loop {
            let log = read_log(&log_path);
            if let Some(address) = log
                .lines()
                .filter(|line| line.contains("flinkbroker serving"))
                .find_map(|line| line.split("listen=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
            {
                break address.to_string();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("replica {id} exited during start ({status}):\n{}", tail(&log, 30));
            }
            assert!(
                Instant::now() < deadline,
                "replica {id} did not listen within {READY_TIMEOUT:?}:\n{}",
                tail(&log, 30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .expect("replica url")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        loop {
            let answer = tokio::time::timeout(
                Duration::from_secs(2),
                HealthClient::new(channel.clone()).check(HealthCheckRequest {
                    service: String::new(),
                }),
            )
            .await;
            if let Ok(Ok(response)) = answer
                && response.into_inner().status() == ServingStatus::Serving
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "replica {id} exited during start ({status}):\n{}",
                    tail(&read_log(&log_path), 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "replica {id} not serving within {READY_TIMEOUT:?}:\n{}",
                tail(&read_log(&log_path), 30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Replica {
            id: id.to_string(),
            child,
            log_path,
            address,
            channel,
        }
    }

    fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel.clone())
    }

    /// Kills the replica with SIGKILL; panics when it had exited by itself before.
    async fn kill(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "replica {} had exited by itself ({status}) before the kill:\n{}",
                self.id,
                tail(&self.log(), 30)
            );
        }
        self.child.start_kill().expect("SIGKILL the replica");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("a killed replica exits")
            .expect("wait for the killed replica");
    }

    /// Returns None while the replica runs, else how it exited and its last log lines.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!(
                "replica {} exited by itself ({status}):\n{}",
                self.id,
                tail(&self.log(), 20)
            )),
            Err(error) => Some(format!("replica {}: cannot wait: {error}", self.id)),
        }
    }

    fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The log lines that contain every one of `needles`.
    fn log_lines_containing(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_string)
            .collect()
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, String> {
        let request = GetJobRequest {
            job_id: job_id.to_string(),
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.client().get_job(request)).await {
            Ok(Ok(job)) => Ok(job.into_inner()),
            Ok(Err(status)) => Err(format!(
                "GetJob {job_id} on {}: {:?}: {}",
                self.id,
                status.code(),
                status.message()
            )),
            Err(_) => Err(format!(
                "GetJob {job_id} on {}: no answer within {CALL_TIMEOUT:?}",
                self.id
            )),
        }
    }

    async fn submit_sql(&self, request: SubmitSqlRequest) -> Job {
        tokio::time::timeout(CALL_TIMEOUT, self.client().submit_sql(request))
            .await
            .unwrap_or_else(|_| panic!("SubmitSql on {}: no answer", self.id))
            .unwrap_or_else(|status| panic!("SubmitSql on {}: {status}", self.id))
            .into_inner()
    }

    async fn list_jobs(&self, labels: &HashMap<String, String>) -> Vec<Job> {
        let request = ListJobsRequest {
            labels: labels.clone(),
            page_size: 500,
            ..ListJobsRequest::default()
        };
        let page = tokio::time::timeout(CALL_TIMEOUT, self.client().list_jobs(request))
            .await
            .unwrap_or_else(|_| panic!("ListJobs on {}: no answer", self.id))
            .unwrap_or_else(|status| panic!("ListJobs on {}: {status}", self.id))
            .into_inner();
        assert!(page.next_page_token.is_empty(), "one page holds the jobs");
        page.jobs
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A log's text, with any terminal colour codes removed.
fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The stand-in, a fresh database and the `serve` flags every replica shares.
struct Service {
    standin: Standin,
    arguments: Vec<String>,
    work_dir: tempfile::TempDir,
    _database: PostgresDatabase,
}

impl Service {
    async fn start(name: &str) -> Service {
        let standin = Standin::spawn(StandinConfig {
            not_ready_pages: 1,
            rows_per_page: 200,
            submit_delay: Duration::from_millis(20),
            honor_rows_per_second: true,
            cancel_delay: Duration::from_millis(200),
            ..StandinConfig::default()
        })
        .await
        .expect("stand-in starts");
        let database = PostgresDatabase::create(name).await;
        let work_dir = tempfile::Builder::new()
            .prefix(&format!("flinkbroker-{name}-"))
            .tempdir()
            .expect("work directory");
        let submitters = work_dir.path().join("submitters").display().to_string();
        let arguments = [
            "--database-url",
            &database.url,
            "--sql-gateway-url",
            &standin.base_url,
            // The stand-in also plays the JobManager of the Flink jobs its statements start.
            "--jobmanager-url",
            &standin.base_url,
            "--lease-duration",
            LEASE_DURATION,
            "--replica-poll-interval",
            REPLICA_POLL_INTERVAL,
            "--poll-interval",
            "100ms",
            "--max-fetch-backoff",
            "100ms",
            "--heartbeat-interval",
            "1s",
            "--health-interval",
            "200ms",
            "--http-timeout",
            "5s",
            "--shutdown-grace",
            "1s",
            "--progress-interval",
            "500ms",
            "--submitter-work-dir",
            &submitters,
        ]
        .iter()
        .map(|argument| argument.to_string())
        .collect();
        Service {
            standin,
            arguments,
            work_dir,
            _database: database,
        }
    }

    /// Starts the replicas: the first alone (it migrates the fresh database), then the others
    /// together.
    async fn replicas(&self, ids: &[&str]) -> Vec<Replica> {
        let (first, others) = ids.split_first().expect("at least one replica");
        let mut replicas = vec![Replica::start(first, &self.arguments, self.work_dir.path()).await];
        let starts = others
            .iter()
            .map(|id| Replica::start(id, &self.arguments, self.work_dir.path()));
        replicas.extend(futures::future::join_all(starts).await);
        replicas
    }
}
