//! Crash testing: the real `flinkbroker` binary as a child process that a test kills with
//! SIGKILL and starts again on the same database, clients that retry every call until a broker
//! answers, a seeded random schedule and fresh databases.
//!
//! Use from a test file:
//! ```ignore
//! #[path = "support/crash.rs"]
//! mod crash;
//! use flinkbroker_testkit::standin as sql_gateway_standin;
//! ```
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::value::Kind;
use flinkbroker_proto::{
    GetJobRequest, Job, JobState, ListJobsRequest, StatementState, StreamOperationResultsRequest,
};
use tokio::process::{Child, Command};

use super::postgres_support::PostgresDatabase;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The variable that fixes the random schedule of a run (printed by every run).
pub const SEED_VAR: &str = "FLINKBROKER_TEST_CRASH_SEED";

/// Longest wait for one unary answer or one stream message from a live broker.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a freshly started broker may take to report SERVING.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest pause between two attempts of a call while no broker answers.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// Randomness

/// Returns the seed of this run: `FLINKBROKER_TEST_CRASH_SEED`, else one from the clock.
pub fn seed() -> u64 {
    if let Some(seed) = std::env::var(SEED_VAR)
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0x5eed)
}

/// A small seeded generator (SplitMix64): the same seed gives the same schedule.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        low + self.next_u64() % (high - low + 1)
    }

    /// Returns a duration in `low..=high`, to the millisecond.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        Duration::from_millis(self.between(low.as_millis() as u64, high.as_millis() as u64))
    }

    /// Returns true with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduling of the crash tests

/// Lets one crash test run at a time in this test binary: each one loads both cores, and its
/// timing bounds assume it has them.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free loopback port")
}

// ---------------------------------------------------------------------------------------------
// Databases

/// A database the broker records jobs in, kept for the test's duration.
pub enum TestDatabase {
    /// A SQLite file in a temporary directory.
    SqliteFile {
        url: String,
        _dir: tempfile::TempDir,
    },
    /// A fresh PostgreSQL database, dropped (with its connections) when this value is.
    Postgres(PostgresDatabase),
}

impl TestDatabase {
    /// Creates an empty SQLite file database.
    pub fn sqlite_file() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("flinkbroker-crash-db-")
            .tempdir()
            .expect("database directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("broker.db").display()
        );
        TestDatabase::SqliteFile { url, _dir: dir }
    }

    /// Creates a database of its own on the tests' PostgreSQL server.
    pub async fn postgres() -> Self {
        TestDatabase::Postgres(PostgresDatabase::create("crash").await)
    }

    pub fn url(&self) -> &str {
        match self {
            TestDatabase::SqliteFile { url, .. } => url,
            TestDatabase::Postgres(database) => &database.url,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The broker process

/// When to kill a broker that was just started.
#[derive(Clone, Copy, Debug)]
pub struct KillMoment {
    /// Count the delay from the broker reporting SERVING (else from its start, which may kill
    /// it while it still recovers).
    pub after_ready: bool,
    pub delay: Duration,
}

/// The `flinkbroker serve` binary run as a child process, started again after each kill on a
/// new free port; clients follow it through a [`Connector`]. Dropping it kills the broker and
/// whatever the broker started.
pub struct BrokerProcess {
    arguments: Vec<String>,
    log_dir: PathBuf,
    child: Option<Child>,
    /// Process groups of every broker started (each broker leads its own).
    groups: Vec<u32>,
    incarnation: u32,
    kills: u32,
    /// Brokers that had exited by themselves when they were to be killed: exit status and log.
    unexpected_exits: Vec<String>,
    channels: watch::Sender<Channel>,
    connector: Connector,
}

impl BrokerProcess {
    /// Starts `flinkbroker serve` with `arguments` (everything but `--listen`), logging each
    /// run's stderr to `broker-<n>.log` under `log_dir`, and waits until it serves.
    pub async fn start(arguments: Vec<String>, log_dir: &Path) -> Self {
        let placeholder = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let (channels, receiver) = watch::channel(placeholder);
        let mut broker = BrokerProcess {
            arguments,
            log_dir: log_dir.to_path_buf(),
            child: None,
            groups: Vec::new(),
            incarnation: 0,
            kills: 0,
            unexpected_exits: Vec::new(),
            channels,
            connector: Connector {
                channels: receiver,
                retries: Arc::new(AtomicU64::new(0)),
            },
        };
        broker.spawn();
        broker.wait_until_serving().await;
        broker
    }

    /// Returns a handle that clients connect through, whichever broker runs.
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// Kills made so far.
    pub fn kills(&self) -> u32 {
        self.kills
    }

    /// Brokers that exited by themselves before they were to be killed (a crash of its own).
    pub fn unexpected_exits(&self) -> &[String] {
        &self.unexpected_exits
    }

    /// Process ids of the current broker's children that still run (e.g. `flink run`).
    pub fn children_running(&self) -> Vec<u32> {
        let Some(broker) = self.groups.last() else {
            return Vec::new();
        };
        live_processes()
            .into_iter()
            .filter(|process| process.parent == *broker)
            .map(|process| process.pid)
            .collect()
    }

    /// Waits until no process started by a broker, directly or not, runs any more (submitters
    /// left behind by killed brokers included), at most until `deadline`; returns the pids
    /// still running then.
    pub async fn wait_for_descendants_to_exit(&self, deadline: Instant) -> Vec<u32> {
        loop {
            let current = self.groups.last().copied();
            let running: Vec<u32> = live_processes()
                .into_iter()
                .filter(|process| {
                    self.groups.contains(&process.group) && Some(process.pid) != current
                })
                .map(|process| process.pid)
                .collect();
            if running.is_empty() || Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the moment, kills the broker with SIGKILL (its children live on, as after a
    /// real crash), and starts a new one on the same database.
    pub async fn crash_and_restart(&mut self, moment: KillMoment) {
        if moment.after_ready {
            self.wait_until_serving().await;
        }
        tokio::time::sleep(moment.delay).await;
        if let Some(mut child) = self.child.take() {
            // SIGKILL; an exit before it (a failed start) is found in the log below.
            let _ = child.start_kill();
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("a killed broker exits")
                .expect("wait for the killed broker");
            if status.code().is_some() {
                self.unexpected_exits.push(format!(
                    "broker {} had exited by itself ({status}) before the kill:\n{}",
                    self.incarnation,
                    self.log_tail(20)
                ));
            }
        }
        self.kills += 1;
        self.spawn();
    }

    /// Waits until the running broker answers the health check with SERVING; a broker that
    /// exits first (a port taken in the meantime) is started again on another port.
    pub async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut failed_starts = 0;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                failed_starts += 1;
                let tail = self.log_tail(30);
                assert!(
                    failed_starts < 3 && tail.contains("cannot listen"),
                    "broker {} exited during start ({status}):\n{tail}",
                    self.incarnation
                );
                self.spawn();
                continue;
            }
            let channel = self.connector.channels.borrow().clone();
            let status = tokio::time::timeout(
                Duration::from_secs(2),
                HealthClient::new(channel).check(HealthCheckRequest {
                    service: String::new(),
                }),
            )
            .await;
            if let Ok(Ok(response)) = status
                && response.into_inner().status() == ServingStatus::Serving
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} not serving within {READY_TIMEOUT:?}:\n{}",
                self.incarnation,
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the last `lines` lines of the current broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(self.incarnation)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Counts the log lines of every broker run that contain `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> usize {
        (1..=self.incarnation)
            .map(|run| {
                std::fs::read_to_string(self.log_path(run))
                    .unwrap_or_default()
                    .lines()
                    .filter(|line| line.contains(needle))
                    .count()
            })
            .sum()
    }

    fn log_path(&self, incarnation: u32) -> PathBuf {
        self.log_dir.join(format!("broker-{incarnation}.log"))
    }

    fn spawn(&mut self) {
        self.incarnation += 1;
        let port = free_port();
        let log = std::fs::File::create(self.log_path(self.incarnation)).expect("broker log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_flinkbroker"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&self.arguments)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().expect("start the flinkbroker binary");
        if let Some(pid) = child.id() {
            self.groups.push(pid);
        }
        self.child = Some(child);
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("broker url")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        self.channels.send_replace(channel);
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // Submitters a killed broker left behind run on in its process group.
        for group in &self.groups {
            let pids = processes_in_group(*group);
            if pids.is_empty() {
                continue;
            }
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A live process as `/proc/<pid>/stat` shows it.
struct Process {
    pid: u32,
    parent: u32,
    group: u32,
}

/// Returns every live (not zombie) process.
fn live_processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the parenthesised command (which may hold spaces): state, ppid, pgrp.
            let (_, rest) = stat.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() < 3 || fields[0] == "Z" || fields[0] == "X" {
                return None;
            }
            Some(Process {
                pid,
                parent: fields[1].parse().ok()?,
                group: fields[2].parse().ok()?,
            })
        })
        .collect()
}

/// Returns the live processes whose process group is `group`.
fn processes_in_group(group: u32) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|process| process.group == group)
        .map(|process| process.pid)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Clients that outlive brokers

/// Connects clients to whichever broker runs now; retries calls until one answers.
#[derive(Clone)]
pub struct Connector {
    channels: watch::Receiver<Channel>,
    retries: Arc<AtomicU64>,
}

/// Returns true when the status says no broker answered (killed, starting, or shutting down),
/// as opposed to an answer of the API.
pub fn is_unanswered(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => true,
        Code::Internal => {
            let message = status.message().to_ascii_lowercase();
            message.contains("h2 protocol error")
                || message.contains("transport")
                || message.contains("connection")
        }
        _ => false,
    }
}

impl Connector {
    /// Returns a client of the broker running now.
    pub fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channels.borrow().clone())
    }

    /// Attempts made again because no broker answered.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Calls until a broker answers (any status but [`is_unanswered`] ones) or `deadline`
    /// passes; the error then says what was last seen.
    pub async fn call<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, Status>
    where
        F: FnMut(JobServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut pause = Duration::from_millis(10);
        loop {
            let last = match tokio::time::timeout(CALL_TIMEOUT, call(self.client())).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if !is_unanswered(&status) => return Err(status),
                Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
                Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
            };
            if Instant::now() + pause >= deadline {
                return Err(Status::deadline_exceeded(format!(
                    "{what}: no broker answered before the deadline (last: {last})"
                )));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Lists every job carrying `labels`, page by page.
    pub async fn list_jobs(
        &self,
        labels: &HashMap<String, String>,
        deadline: Instant,
    ) -> Result<Vec<Job>, Status> {
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListJobsRequest {
                labels: labels.clone(),
                page_size: 500,
                page_token: page_token.clone(),
                ..ListJobsRequest::default()
            };
            let page = self
                .call("ListJobs", deadline, |mut client| {
                    let request = request.clone();
                    async move { client.list_jobs(request).await }
                })
                .await?;
            jobs.extend(page.jobs);
            if page.next_page_token.is_empty() {
                return Ok(jobs);
            }
            page_token = page.next_page_token;
        }
    }

    /// Reads a job.
    pub async fn get_job(&self, job_id: &str, deadline: Instant) -> Result<Job, Status> {
        self.call("GetJob", deadline, |mut client| {
            let job_id = job_id.to_owned();
            async move { client.get_job(GetJobRequest { job_id }).await }
        })
        .await
    }

    /// Reads the results of a job's last query to their end, resuming after every broken
    /// stream from the number of rows received, until the stream ends or an answer says it
    /// cannot go on. The first column must be a BIGINT; its values are returned.
    pub async fn read_results(&self, job_id: &str, deadline: Instant) -> ResultRead {
        let mut read = ResultRead::default();
        let mut pause = Duration::from_millis(10);
        loop {
            if Instant::now() >= deadline {
                read.outcome = ReadOutcome::GaveUp(format!(
                    "the deadline passed while reading after {} rows, {} streams and {} interruptions (last: {})",
                    read.ids.len(),
                    read.streams,
                    read.interruptions,
                    read.last_interruption.as_deref().unwrap_or("none")
                ));
                return read;
            }
            let request = StreamOperationResultsRequest {
                job_id: job_id.to_owned(),
                resume_from_row: read.ids.len() as u64,
                attempt: read.attempt,
                ..StreamOperationResultsRequest::default()
            };
            let resumed = read.streams > 0;
            let opened = tokio::time::timeout(
                CALL_TIMEOUT,
                self.client().stream_operation_results(request),
            )
            .await;
            let interruption = match opened {
                Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
                Ok(Err(status)) if runs_again(&status) => {
                    read.restarted_from_zero += 1;
                    read.ids.clear();
                    read.attempt = None;
                    format!("{:?}: {}", status.code(), status.message())
                }
                Ok(Err(status)) if is_unanswered(&status) => {
                    format!("{:?}: {}", status.code(), status.message())
                }
                Ok(Err(status)) => {
                    read.outcome = self.refusal(job_id, status, resumed, deadline).await;
                    return read;
                }
                Ok(Ok(response)) => {
                    read.streams += 1;
                    if resumed {
                        read.resumes += 1;
                    }
                    pause = Duration::from_millis(10);
                    let mut stream = response.into_inner();
                    loop {
                        let message = match tokio::time::timeout(CALL_TIMEOUT, stream.message())
                            .await
                        {
                            Err(_) => break format!("no message within {CALL_TIMEOUT:?}"),
                            Ok(Ok(None)) => break "the stream ended without an end message".into(),
                            Ok(Err(status)) if is_unanswered(&status) => {
                                break format!("{:?}: {}", status.code(), status.message());
                            }
                            Ok(Err(status)) if runs_again(&status) => {
                                read.restarted_from_zero += 1;
                                read.ids.clear();
                                read.attempt = None;
                                break format!("{:?}: {}", status.code(), status.message());
                            }
                            Ok(Err(status)) => {
                                read.outcome =
                                    self.refusal(job_id, status, resumed, deadline).await;
                                return read;
                            }
                            Ok(Ok(Some(message))) => message,
                        };
                        match message.message {
                            Some(Message::Schema(_) | Message::Progress(_)) | None => {}
                            Some(Message::Arrow(_) | Message::Snapshot(_)) => {
                                panic!(
                                    "arrow batches or a table snapshot for a ROWS changelog request"
                                )
                            }
                            Some(Message::Rows(batch)) => {
                                if read.attempt.is_some_and(|a| a != batch.attempt) {
                                    read.offset_mismatches.push(format!(
                                        "rows of attempt {} after rows of attempt {:?}",
                                        batch.attempt, read.attempt
                                    ));
                                }
                                read.attempt = Some(batch.attempt);
                                if batch.first_row_offset != read.ids.len() as u64 {
                                    read.offset_mismatches.push(format!(
                                        "a batch starts at row {} after {} rows were received",
                                        batch.first_row_offset,
                                        read.ids.len()
                                    ));
                                }
                                for row in batch.rows {
                                    match row.values.first().and_then(|v| v.kind.clone()) {
                                        Some(Kind::IntValue(id)) => read.ids.push(id),
                                        other => {
                                            read.offset_mismatches.push(format!(
                                                "a row whose first value is {other:?}"
                                            ));
                                            read.ids.push(i64::MIN);
                                        }
                                    }
                                }
                            }
                            Some(Message::End(end)) => match end.reason() {
                                Reason::EndOfResults => {
                                    read.outcome = ReadOutcome::EndOfResults;
                                    return read;
                                }
                                // Not asked for: read on from where it stopped.
                                reason @ (Reason::RowLimitReached | Reason::TimeLimitReached) => {
                                    break format!("the stream ended with {reason:?}");
                                }
                                reason => {
                                    read.outcome =
                                        ReadOutcome::Ended(format!("{reason:?}: {}", end.error));
                                    return read;
                                }
                            },
                        }
                    }
                }
            };
            read.interruptions += 1;
            read.last_interruption = Some(interruption);
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Classifies an answer that ends reading: the results were read to their end already when
    /// the job says so and every row arrived, else the reading gave up.
    async fn refusal(
        &self,
        job_id: &str,
        status: Status,
        resumed: bool,
        deadline: Instant,
    ) -> ReadOutcome {
        let described = format!(
            "{}{:?}: {}",
            if resumed { "resuming: " } else { "" },
            status.code(),
            status.message()
        );
        if status.code() == Code::FailedPrecondition
            && let Ok(job) = self.get_job(job_id, deadline).await
            && job.statements.iter().any(|s| s.is_query)
            && job
                .statements
                .iter()
                .filter(|s| s.is_query)
                .all(|s| s.state() == StatementState::Finished)
        {
            return ReadOutcome::AlreadyRead(described);
        }
        ReadOutcome::GaveUp(described)
    }
}

/// What reading a job's results saw.
#[derive(Debug, Default)]
pub struct ResultRead {
    /// The first column of every row received, in order.
    pub ids: Vec<i64>,
    pub outcome: ReadOutcome,
    /// Streams opened.
    pub streams: u32,
    /// Streams opened with `resume_from_row` after a broken one.
    pub resumes: u32,
    /// Streams that broke or could not be opened, and why the last one did.
    pub interruptions: u32,
    pub last_interruption: Option<String>,
    /// Batches whose offsets disagree with the rows received before them.
    pub offset_mismatches: Vec<String>,
    /// Times the broker said the query runs again after a restart, so reading began anew.
    pub restarted_from_zero: u32,
    /// The statement's attempt the rows received came from.
    pub attempt: Option<u32>,
}

/// True for the broker's answer that a query runs again after a restart and its results start
/// again at row 0: a reader starts over.
fn runs_again(status: &Status) -> bool {
    matches!(status.code(), Code::OutOfRange | Code::Aborted)
        && status.message().contains("again at row 0")
}

/// How reading results ended.
#[derive(Debug, Default, Clone)]
pub enum ReadOutcome {
    #[default]
    NotStarted,
    /// The stream's end said END_OF_RESULTS.
    EndOfResults,
    /// An answer said the results were read to their end already (an end message lost with
    /// a killed broker) and the job agrees.
    AlreadyRead(String),
    /// The stream's end gave another reason (FAILED, CANCELED).
    Ended(String),
    /// An answer refused to go on, or the deadline passed.
    GaveUp(String),
}

impl ReadOutcome {
    /// Whether every row was delivered as far as the broker knows.
    pub fn completed(&self) -> bool {
        matches!(
            self,
            ReadOutcome::EndOfResults | ReadOutcome::AlreadyRead(_)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Reading outcomes

/// Returns true for FINISHED, FAILED and CANCELED.
pub fn is_terminal(job: &Job) -> bool {
    matches!(
        job.state(),
        JobState::Finished | JobState::Failed | JobState::Canceled
    )
}

/// Returns true when a reason of the job's history contains `word` (case-insensitive).
pub fn history_mentions(job: &Job, word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    job.history
        .iter()
        .any(|transition| transition.reason.to_ascii_lowercase().contains(&word))
        || job.state_reason.to_ascii_lowercase().contains(&word)
}

/// Returns `<state>: <reason>` with the reason shortened, for reports.
pub fn describe(job: &Job) -> String {
    let reason: String = job.state_reason.chars().take(300).collect();
    format!("{:?}: {reason}", job.state())
}

/// Counts jobs by state, for reports.
pub fn states_of(jobs: &[Job]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        *counts.entry(format!("{:?}", job.state())).or_insert(0) += 1;
    }
    counts
}

/// Groups reasons, most frequent first, with every word that holds a digit (ids, counts,
/// offsets) blurred, so that one cause is one line; each group keeps its first reason as an
/// example.
pub fn frequent_reasons<'a>(reasons: impl Iterator<Item = &'a str>) -> Vec<ReasonGroup> {
    let mut groups: Vec<ReasonGroup> = Vec::new();
    for reason in reasons {
        let mut words: Vec<&str> = Vec::new();
        for word in reason.split_whitespace() {
            let word = if word.chars().any(|c| c.is_ascii_digit()) {
                "…"
            } else {
                word
            };
            if !(word == "…" && words.last() == Some(&"…")) {
                words.push(word);
            }
        }
        let blurred: String = words.join(" ").chars().take(200).collect();
        match groups.iter_mut().find(|group| group.blurred == blurred) {
            Some(group) => group.count += 1,
            None => groups.push(ReasonGroup {
                count: 1,
                blurred,
                example: reason.chars().take(400).collect(),
            }),
        }
    }
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.blurred.cmp(&b.blurred))
    });
    groups
}

/// Reasons that differ only in ids and numbers.
#[derive(Debug)]
pub struct ReasonGroup {
    pub count: usize,
    pub blurred: String,
    pub example: String,
}

/// Checks that a request id has exactly one job, the one every answer to its submission
/// named; returns that job (the first of many, to check on), or None when none was recorded.
pub fn the_one_job<'a>(
    rpc: &str,
    request_id: &str,
    answered_ids: &[String],
    listed: &[&'a Job],
    problems: &mut Vec<String>,
) -> Option<&'a Job> {
    let distinct: std::collections::BTreeSet<&String> = answered_ids.iter().collect();
    if distinct.len() > 1 {
        problems.push(format!(
            "{request_id}: {rpc} answered different jobs: {distinct:?}"
        ));
    }
    let job = match listed {
        [job] => *job,
        [] => {
            problems.push(format!("{request_id}: no job recorded"));
            return None;
        }
        many => {
            problems.push(format!("{request_id}: {} jobs recorded", many.len()));
            many[0]
        }
    };
    if let Some(answered) = answered_ids.first()
        && *answered != job.id
    {
        problems.push(format!(
            "{request_id}: {rpc} answered {answered}, the recorded job is {}",
            job.id
        ));
    }
    Some(job)
}

/// The counts every crash test prints last.
#[derive(Debug, Default)]
pub struct Counts {
    pub jobs: usize,
    pub kills: u32,
    pub resumed: usize,
    pub adopted: usize,
    pub duplicates: usize,
}

impl Counts {
    pub fn print(&self) {
        eprintln!("jobs: {}", self.jobs);
        eprintln!("kills: {}", self.kills);
        eprintln!("resumed: {}", self.resumed);
        eprintln!("adopted: {}", self.adopted);
        eprintln!("duplicates: {}", self.duplicates);
    }
}
