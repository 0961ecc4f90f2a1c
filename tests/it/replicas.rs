//! Several replicas on one PostgreSQL database: the real `flinkbroker` binary run three times
//! (two for the cancel test) with distinct `--replica-id`s against one SQL Gateway stand-in.
//! Exactly one replica drives each live job; every replica answers for every job; a replica
//! killed with SIGKILL while it drains query results has its jobs taken over once their
//! leases expire, and readers and watchers on the other replicas see every row once and the
//! job's true end, with no Flink job submitted twice.
//!
//! Needs PostgreSQL (see `flinkbroker_testkit::postgres`).

use crate::support::broker_binary::{listen_address, read_log};
use crate::support::crash;
use crate::support::postgres as postgres_support;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    CancelJobRequest, GetJobRequest, Job, JobState, ListJobsRequest, RuntimeMode,
    StreamOperationResultsRequest, SubmitSqlRequest, WatchJobRequest,
};
use postgres_support::PostgresDatabase;
use sea_orm::{ConnectionTrait, TransactionTrait};
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::process::{Child, Command};
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
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);
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
pub(crate) struct Replica {
    pub(crate) id: String,
    pub(crate) child: Child,
    log_path: PathBuf,
    pub(crate) address: String,
    channel: Channel,
}

impl Replica {
    /// Starts the binary with `arguments` and `--replica-id id` on `127.0.0.1:0`, logging to
    /// `<id>.log` under `log_dir`, and waits until it reports SERVING.
    pub(crate) async fn start(id: &str, arguments: &[String], log_dir: &Path) -> Replica {
        let log_path = log_dir.join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).expect("replica log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--replica-id", id])
            .args(["--metrics-listen", "127.0.0.1:0"])
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
                .find_map(|line| listen_address(line, "flinkbroker serving"))
            {
                break address.to_string();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "replica {id} exited during start ({status}):\n{}",
                    tail(&log, 30)
                );
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

    pub(crate) fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel.clone())
    }

    /// Kills the replica with SIGKILL; panics when it had exited by itself before.
    pub(crate) async fn kill(&mut self) {
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
    pub(crate) fn exited(&mut self) -> Option<String> {
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

    pub(crate) fn log(&self) -> String {
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

    pub(crate) async fn submit_sql(&self, request: SubmitSqlRequest) -> Job {
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

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The stand-in, a fresh database and the `serve` flags every replica shares.
pub(crate) struct Service {
    pub(crate) standin: Standin,
    pub(crate) arguments: Vec<String>,
    pub(crate) work_dir: tempfile::TempDir,
    pub(crate) database: PostgresDatabase,
}

impl Service {
    pub(crate) async fn start(name: &str) -> Service {
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
            database,
        }
    }

    /// Prints every problem and fails the test when there is one, keeping the replicas' logs.
    pub(crate) fn assert_no_problems(&mut self, problems: &[String], replicas: &[&Replica]) {
        for problem in problems {
            eprintln!("problem: {problem}");
        }
        if !problems.is_empty() {
            self.keep_logs(replicas);
        }
        // The panic message names the problems too: it is what a failing run shows last.
        assert!(
            problems.is_empty(),
            "{} problems; the first: {}",
            problems.len(),
            problems
                .iter()
                .take(3)
                .map(|problem| problem.chars().take(600).collect::<String>())
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }

    /// Keeps the replicas' logs after the test and prints where they are and how they end.
    fn keep_logs(&mut self, replicas: &[&Replica]) {
        self.work_dir.disable_cleanup(true);
        for replica in replicas {
            eprintln!(
                "--- last lines of {} ({}):\n{}",
                replica.id,
                replica.log_path.display(),
                tail(&replica.log(), 25)
            );
        }
    }

    /// Starts the replicas: the first alone (it migrates the fresh database), then the others
    /// together.
    pub(crate) async fn replicas(&self, ids: &[&str]) -> Vec<Replica> {
        let (first, others) = ids.split_first().expect("at least one replica");
        let mut replicas = vec![Replica::start(first, &self.arguments, self.work_dir.path()).await];
        let starts = others
            .iter()
            .map(|id| Replica::start(id, &self.arguments, self.work_dir.path()));
        replicas.extend(futures::future::join_all(starts).await);
        replicas
    }
}

/// Sets a flag's value in a `serve` argument list (replacing the value given before).
pub(crate) fn set_flag(arguments: &mut Vec<String>, flag: &str, value: &str) {
    match arguments.iter().position(|argument| argument == flag) {
        Some(at) if at + 1 < arguments.len() => arguments[at + 1] = value.to_owned(),
        _ => arguments.extend([flag.to_owned(), value.to_owned()]),
    }
}

/// Waits for `condition` to hold, looking every [`POLL`], until `deadline`; returns whether
/// it held.
async fn wait_until(deadline: Instant, mut condition: impl AsyncFnMut() -> bool) -> bool {
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Readers and watchers

/// What a reader of one job's results saw.
#[derive(Debug, Default)]
struct ResultReading {
    /// The first column of every row received, in order.
    ids: Vec<i64>,
    /// Batches whose `first_row_offset` disagrees with the rows received before them.
    offset_mismatches: Vec<String>,
    /// The end message's reason and error, if one came.
    end: Option<(Reason, String)>,
    /// Streams that broke or could not be opened (none is expected: the replica never dies).
    breaks: Vec<String>,
    streams: u32,
}

/// Reads the results of a job's last query through one replica until an end message,
/// resuming after a broken stream (which is recorded) from the rows received. Counts the rows
/// received in `received` as they come.
async fn read_results(
    mut client: JobServiceClient<Channel>,
    job_id: String,
    received: Arc<AtomicU64>,
    deadline: Instant,
) -> ResultReading {
    let mut reading = ResultReading::default();
    while reading.streams < MAX_STREAMS && Instant::now() < deadline {
        reading.streams += 1;
        let request = StreamOperationResultsRequest {
            job_id: job_id.clone(),
            resume_from_row: reading.ids.len() as u64,
            ..StreamOperationResultsRequest::default()
        };
        let mut stream = match tokio::time::timeout(
            CALL_TIMEOUT,
            client.stream_operation_results(request),
        )
        .await
        {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                reading.breaks.push(format!(
                    "opening at row {}: {:?}: {}",
                    reading.ids.len(),
                    status.code(),
                    status.message()
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                reading
                    .breaks
                    .push(format!("opening: no answer within {CALL_TIMEOUT:?}"));
                continue;
            }
        };
        loop {
            // Progress messages come every half second while no rows flow; the deadline ends
            // a stream that never ends by itself.
            let wait = (Instant::now() + CALL_TIMEOUT).min(deadline);
            let message = match tokio::time::timeout_at(wait, stream.message()).await {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => {
                    reading
                        .breaks
                        .push("the stream ended without an end message".into());
                    break;
                }
                Ok(Err(status)) => {
                    reading.breaks.push(format!(
                        "after row {}: {:?}: {}",
                        reading.ids.len(),
                        status.code(),
                        status.message()
                    ));
                    break;
                }
                Err(_) => {
                    reading.breaks.push(format!(
                        "after row {}: no message within {CALL_TIMEOUT:?}, or the test's deadline passed",
                        reading.ids.len()
                    ));
                    break;
                }
            };
            match message.message {
                Some(Message::Schema(_) | Message::Progress(_)) | None => {}
                Some(Message::Arrow(_) | Message::Snapshot(_)) => {
                    panic!("arrow batches or a table snapshot for a ROWS changelog request")
                }
                Some(Message::Rows(batch)) => {
                    if batch.first_row_offset != reading.ids.len() as u64 {
                        reading.offset_mismatches.push(format!(
                            "a batch starts at row {} after {} rows were received",
                            batch.first_row_offset,
                            reading.ids.len()
                        ));
                    }
                    for row in batch.rows {
                        match row.values.first().and_then(|value| value.kind.clone()) {
                            Some(Kind::IntValue(id)) => reading.ids.push(id),
                            other => {
                                reading
                                    .offset_mismatches
                                    .push(format!("a row whose first value is {other:?}"));
                                reading.ids.push(i64::MIN);
                            }
                        }
                    }
                    received.store(reading.ids.len() as u64, Ordering::Relaxed);
                }
                Some(Message::End(end)) => {
                    reading.end = Some((end.reason(), end.error));
                    return reading;
                }
            }
        }
    }
    reading
}

/// What a watcher of one job saw.
#[derive(Debug, Default)]
struct Watching {
    /// The states the stream reported, without repeats.
    states: Vec<JobState>,
    /// The replicas the stream named as the job's driver, without repeats.
    drivers: Vec<String>,
    /// The stream ended after its last message (as it does once the job is over).
    ended: bool,
    /// Why the stream broke, if it did.
    error: Option<String>,
    /// For each change after the first message: how long after the driving replica recorded
    /// it (the job's update time) the watcher received it, in milliseconds.
    lags_ms: Vec<i64>,
}

/// Follows WatchJob through one replica until the stream ends, breaks or `deadline` passes.
async fn watch_job(
    mut client: JobServiceClient<Channel>,
    job_id: String,
    deadline: Instant,
) -> Watching {
    let mut watching = Watching::default();
    let request = WatchJobRequest { job_id };
    let mut stream = match tokio::time::timeout(CALL_TIMEOUT, client.watch_job(request)).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => {
            watching.error = Some(format!("{:?}: {}", status.code(), status.message()));
            return watching;
        }
        Err(_) => {
            watching.error = Some(format!("no answer within {CALL_TIMEOUT:?}"));
            return watching;
        }
    };
    let mut first = true;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(job))) => {
                if !first && let Some(updated) = &job.update_time {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    let updated_ms = updated.seconds * 1000 + i64::from(updated.nanos / 1_000_000);
                    let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
                    watching.lags_ms.push(now_ms - updated_ms);
                }
                first = false;
                if watching.states.last() != Some(&job.state()) {
                    watching.states.push(job.state());
                }
                if !job.driven_by.is_empty() && watching.drivers.last() != Some(&job.driven_by) {
                    watching.drivers.push(job.driven_by.clone());
                }
            }
            Ok(Ok(None)) => {
                watching.ended = true;
                return watching;
            }
            Ok(Err(status)) => {
                watching.error = Some(format!("{:?}: {}", status.code(), status.message()));
                return watching;
            }
            Err(_) => {
                watching.error = Some("the deadline passed".into());
                return watching;
            }
        }
    }
}

/// The SQL statements of the stand-in that started (or would start) a Flink job and contain
/// `table`: their pinned Flink job ids, one per submission (an empty id for an unpinned one).
fn pinned_submissions(standin: &Standin, table: &str) -> Vec<String> {
    standin
        .statements()
        .into_iter()
        .filter(|sent| {
            let text = sent.statement.trim_start().to_ascii_uppercase();
            (text.starts_with("SELECT") || text.starts_with("INSERT"))
                && sent.statement.contains(table)
        })
        .map(|sent| {
            sent.execution_config
                .get(PINNED_JOB_ID)
                .map(|pin| pin.to_ascii_lowercase())
                .unwrap_or_default()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Takeover of a killed replica's jobs

/// Query jobs submitted through the replica that is killed.
const TAKEOVER_JOBS: usize = 3;
/// Rows of each job's query, and how fast the stand-in produces them: 8 s of rows, so the
/// drain still runs when the replica is killed and through the takeover.
const TAKEOVER_ROWS: u64 = 6000;
const TAKEOVER_ROWS_PER_SECOND: u64 = 750;
/// Every job ends within this after the kill.
const END_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_jobs_and_a_killed_owner_is_taken_over() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("replicas_takeover").await;
    let replicas = service
        .replicas(&["replica-a", "replica-b", "replica-c"])
        .await;
    let Ok([mut a, mut b, mut c]) = <[Replica; 3]>::try_from(replicas) else {
        unreachable!("three replicas were started")
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    eprintln!(
        "replicas serving on {}, {}, {}; logs in {}",
        a.address,
        b.address,
        c.address,
        service.work_dir.path().display()
    );

    // Submit through A; read every job through C and watch every job through B at once.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut job_ids = Vec::new();
    let mut readers = Vec::new();
    let mut watchers = Vec::new();
    let mut received = Vec::new();
    for index in 0..TAKEOVER_JOBS {
        let table = format!("gen_{index}");
        let script = format!(
            "CREATE TABLE {table} (id BIGINT, name STRING) WITH ('connector'='datagen', \
             'number-of-rows'='{TAKEOVER_ROWS}', 'rows-per-second'='{TAKEOVER_ROWS_PER_SECOND}', \
             'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{TAKEOVER_ROWS}', \
             'fields.name.length'='8');\nSELECT id, name FROM {table};"
        );
        let job = a
            .submit_sql(SubmitSqlRequest {
                script,
                runtime_mode: RuntimeMode::Batch as i32,
                request_id: format!("takeover-{index}"),
                labels: HashMap::from([("run".to_string(), run.clone())]),
                ..SubmitSqlRequest::default()
            })
            .await;
        let counter = Arc::new(AtomicU64::new(0));
        readers.push(tokio::spawn(read_results(
            c.client(),
            job.id.clone(),
            counter.clone(),
            deadline,
        )));
        watchers.push(tokio::spawn(watch_job(
            b.client(),
            job.id.clone(),
            deadline,
        )));
        received.push(counter);
        job_ids.push(job.id);
    }

    // Kill A once every job has a driver, every drain is under way and every reader on C has
    // rows: mid-way through every drain. A drives the jobs submitted through it, except one
    // another replica happened to claim between its recording and A's claim (the product
    // allows that; such a job just goes on where it is).
    let mut at_kill: Vec<Job> = Vec::new();
    let mid_drain = wait_until(started + Duration::from_secs(60), async || {
        at_kill.clear();
        for (job_id, counter) in job_ids.iter().zip(&received) {
            let Ok(job) = a.get_job(job_id).await else {
                return false;
            };
            let log = query_log(&job);
            assert!(
                !log.complete,
                "the drain of job {job_id} ended before the kill ({} rows logged): the stand-in produced its rows faster than this test expects",
                log.rows_logged
            );
            if job.driven_by.is_empty()
                || log.rows_logged == 0
                || counter.load(Ordering::Relaxed) == 0
            {
                return false;
            }
            at_kill.push(job);
        }
        true
    })
    .await;
    assert!(
        mid_drain,
        "the jobs were not all driven with rows logged and read within 60 s: {:?}",
        at_kill
            .iter()
            .map(|job| (&job.driven_by, crash::describe(job)))
            .collect::<Vec<_>>()
    );
    let drivers_at_kill: Vec<&str> = at_kill.iter().map(|job| job.driven_by.as_str()).collect();
    // A job is recorded with the lease of the replica it was submitted through.
    assert!(
        drivers_at_kill.iter().all(|driver| *driver == "replica-a"),
        "every job submitted through replica-a is driven by it: {drivers_at_kill:?}"
    );
    let read_at_kill: Vec<u64> = received
        .iter()
        .map(|counter| counter.load(Ordering::Relaxed))
        .collect();
    a.kill().await;
    let killed = Instant::now();
    eprintln!(
        "replica-a killed {:.1}s after the submissions; rows logged then: {:?}; rows read on replica-c: {read_at_kill:?}",
        (killed - started).as_secs_f64(),
        at_kill
            .iter()
            .map(|job| query_log(job).rows_logged)
            .collect::<Vec<_>>()
    );

    let mut problems: Vec<String> = Vec::new();
    let mut lags_ms: Vec<i64> = Vec::new();

    // Another replica drives each job, within the bound.
    let mut new_drivers: BTreeMap<String, (String, Duration)> = BTreeMap::new();
    let mut ended_unseen: BTreeSet<String> = BTreeSet::new();
    wait_until(killed + TAKEOVER_BOUND, async || {
        for job_id in &job_ids {
            if new_drivers.contains_key(job_id) || ended_unseen.contains(job_id) {
                continue;
            }
            match b.get_job(job_id).await {
                Ok(job) if job.driven_by == "replica-b" || job.driven_by == "replica-c" => {
                    new_drivers.insert(job_id.clone(), (job.driven_by, killed.elapsed()));
                }
                Ok(job) if crash::is_terminal(&job) => {
                    ended_unseen.insert(job_id.clone());
                }
                Ok(_) => {}
                Err(error) => problems.push(error),
            }
        }
        new_drivers.len() + ended_unseen.len() == job_ids.len()
    })
    .await;
    for job_id in &job_ids {
        if ended_unseen.contains(job_id) {
            problems.push(format!(
                "job {job_id} ended before replica-b or replica-c was seen driving it"
            ));
        } else if !new_drivers.contains_key(job_id) {
            problems.push(format!(
                "job {job_id}: neither replica-b nor replica-c drives it {TAKEOVER_BOUND:?} after replica-a was killed"
            ));
        }
    }

    // Every job ends.
    let mut finals: Vec<Job> = Vec::new();
    let all_ended = wait_until(killed + END_BOUND, async || {
        finals.clear();
        for job_id in &job_ids {
            match c.get_job(job_id).await {
                Ok(job) if crash::is_terminal(&job) => finals.push(job),
                _ => return false,
            }
        }
        true
    })
    .await;
    let ended_after = killed.elapsed();
    if !all_ended {
        problems.push(format!(
            "not every job ended within {END_BOUND:?} of the kill"
        ));
    }
    let mut readings = Vec::new();
    for reader in readers {
        readings.push(reader.await.expect("reader task"));
    }
    let mut watchings = Vec::new();
    for watcher in watchers {
        watchings.push(watcher.await.expect("watcher task"));
    }

    // -- Checks --------------------------------------------------------------------------------
    let expected_ids: Vec<i64> = (1..=TAKEOVER_ROWS as i64).collect();
    let flink_jobs: HashMap<String, String> = service.standin.flink_jobs().into_iter().collect();
    let mut attributed: BTreeSet<String> = BTreeSet::new();
    let mut takeover_lines = Vec::new();
    for (index, job_id) in job_ids.iter().enumerate() {
        if let Some(job) = finals.iter().find(|job| &job.id == job_id) {
            if job.state() != JobState::Finished {
                problems.push(format!(
                    "job {job_id}: not FINISHED: {}",
                    crash::describe(job)
                ));
            }
            if !job.driven_by.is_empty() {
                problems.push(format!(
                    "job {job_id} is over yet names a driver: {}",
                    job.driven_by
                ));
            }
            if !crash::history_mentions(job, "after taking the job over from replica replica-a") {
                problems.push(format!(
                    "job {job_id}: its history does not say it was resumed: {:?}",
                    job.history.iter().map(|t| &t.reason).collect::<Vec<_>>()
                ));
            }
            let query = job.statements.last().expect("a query statement");
            let log = query_log(job);
            if query.attempt != 0 {
                problems.push(format!(
                    "job {job_id}: its query ran again after the takeover (attempt {})",
                    query.attempt + 1
                ));
            }
            if !log.complete || log.rows_logged != TAKEOVER_ROWS {
                problems.push(format!(
                    "job {job_id}: result log {} rows, complete {}; expected {TAKEOVER_ROWS}, complete",
                    log.rows_logged, log.complete
                ));
            }

            // The query's Flink job was submitted once, under its pinned id, and ran to its end.
            let pins = pinned_submissions(&service.standin, &format!("gen_{index}"));
            let distinct: BTreeSet<&String> = pins.iter().collect();
            if pins.len() != 1 || distinct.len() != 1 {
                problems.push(format!(
                    "job {job_id}: its query was submitted {} times under pinned ids {distinct:?}",
                    pins.len()
                ));
            }
            if pins.iter().any(String::is_empty) {
                problems.push(format!(
                    "job {job_id}: its query was sent without a pinned flink job id"
                ));
            }
            let recorded = query.flink_job_id.to_ascii_lowercase();
            if !distinct.contains(&recorded) {
                problems.push(format!(
                    "job {job_id} records flink job {recorded:?}, the stand-in got {distinct:?}"
                ));
            }
            match flink_jobs.get(&recorded).map(String::as_str) {
                Some("FINISHED") => {}
                other => problems.push(format!(
                    "job {job_id}: its flink job {recorded} is {other:?} in the stand-in"
                )),
            }
            attributed.extend(pins);
        }

        // The reader on C got every row once, in order, through one stream.
        let reading = &readings[index];
        match &reading.end {
            Some((Reason::EndOfResults, _)) => {}
            other => problems.push(format!(
                "job {job_id}: the reader on replica-c ended with {other:?} after {} rows",
                reading.ids.len()
            )),
        }
        if reading.ids != expected_ids {
            let first_wrong = reading
                .ids
                .iter()
                .zip(&expected_ids)
                .position(|(got, want)| got != want);
            problems.push(format!(
                "job {job_id}: the reader on replica-c received {} rows (first out of place at {first_wrong:?}), expected ids 1..={TAKEOVER_ROWS} in order",
                reading.ids.len()
            ));
        }
        for mismatch in reading.offset_mismatches.iter().take(3) {
            problems.push(format!("job {job_id}: reader on replica-c: {mismatch}"));
        }
        for broken in &reading.breaks {
            problems.push(format!(
                "job {job_id}: the result stream on replica-c broke: {broken}"
            ));
        }

        // The watcher on B followed the job to its end.
        let watching = &watchings[index];
        lags_ms.extend(watching.lags_ms.iter().copied());
        if watching.states.last() != Some(&JobState::Finished) || !watching.ended {
            problems.push(format!(
                "job {job_id}: WatchJob on replica-b saw {:?} (ended: {}, error: {:?})",
                watching.states, watching.ended, watching.error
            ));
        }

        // Exactly one replica took the job up: two never drove it at once.
        let lines: Vec<String> = [&b, &c]
            .iter()
            .flat_map(|replica| replica.log_lines_containing(&["taking the job up", job_id]))
            .collect();
        if lines.len() != 1 {
            problems.push(format!(
                "job {job_id}: {} takeovers logged by replica-b and replica-c: {lines:#?}",
                lines.len()
            ));
        }
        takeover_lines.extend(lines);
    }
    let strays: Vec<&String> = flink_jobs
        .keys()
        .filter(|id| !attributed.contains(*id))
        .collect();
    if !strays.is_empty() {
        problems.push(format!("flink jobs that belong to no query: {strays:?}"));
    }
    for replica in [&mut b, &mut c] {
        problems.extend(replica.exited());
    }

    // -- Report --------------------------------------------------------------------------------
    eprintln!(
        "takeover: new drivers {:?}; every job ended {:.1}s after the kill, states {:?}",
        new_drivers
            .iter()
            .map(|(job, (replica, after))| format!(
                "{job}: {replica} after {:.1}s",
                after.as_secs_f64()
            ))
            .collect::<Vec<_>>(),
        ended_after.as_secs_f64(),
        crash::states_of(&finals)
    );
    for (index, (reading, watching)) in readings.iter().zip(&watchings).enumerate() {
        eprintln!(
            "job {index}: reader on replica-c got {} rows in {} stream(s), {} at the kill; watcher on replica-b saw states {:?}, drivers {:?}",
            reading.ids.len(),
            reading.streams,
            read_at_kill[index],
            watching.states,
            watching.drivers
        );
    }
    for line in &takeover_lines {
        eprintln!("  {line}");
    }
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    eprintln!(
        "test took {:.1}s after the replicas served",
        started.elapsed().as_secs_f64()
    );
    lags_ms.sort_unstable();
    if let (Some(median), Some(max)) = (lags_ms.get(lags_ms.len() / 2), lags_ms.last()) {
        eprintln!(
            "WatchJob on a replica that does not drive the job (store read every 100 ms): {} changes, lag after the change was recorded: median {median} ms, max {max} ms",
            lags_ms.len()
        );
    }
    if !problems.is_empty() {
        service.keep_logs(&[&a, &b, &c]);
    }
    assert!(
        problems.is_empty(),
        "{} problems; see the lines above and the replica logs",
        problems.len()
    );
}

/// The result log of a job's last statement (its query), or an empty one.
fn query_log(job: &Job) -> flinkbroker_proto::ResultLogStatus {
    job.statements
        .last()
        .and_then(|statement| statement.result_log)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Cancels and reads through any replica

/// An unbounded INSERT: its Flink job runs until it is cancelled.
pub(crate) fn unbounded_insert(table: &str) -> String {
    format!(
        "CREATE TABLE src_{table} (id BIGINT) WITH ('connector'='datagen', 'rows-per-second'='5');\n\
         CREATE TABLE snk_{table} (id BIGINT) WITH ('connector'='blackhole');\n\
         INSERT INTO snk_{table} SELECT id FROM src_{table};"
    )
}

pub(crate) fn streaming_request(script: String, request_id: &str, run: &str) -> SubmitSqlRequest {
    SubmitSqlRequest {
        script,
        runtime_mode: RuntimeMode::Streaming as i32,
        request_id: request_id.to_string(),
        labels: HashMap::from([("run".to_string(), run.to_string())]),
        ..SubmitSqlRequest::default()
    }
}

/// The Flink job id of a job's last statement, lowercase ("" before it started one).
pub(crate) fn last_flink_job_id(job: &Job) -> String {
    job.statements
        .last()
        .map(|statement| statement.flink_job_id.to_ascii_lowercase())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_a_replica_that_does_not_drive_the_job() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("replicas_cancel").await;
    let mut replicas = service.replicas(&["replica-a", "replica-b"]).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let run = uuid::Uuid::new_v4().simple().to_string();

    // An unbounded INSERT and an unbounded query, submitted through A (which drives them,
    // unless B claimed one first).
    let insert = replicas[0]
        .submit_sql(streaming_request(
            unbounded_insert("insert"),
            "cancel-insert",
            &run,
        ))
        .await;
    let query = replicas[0]
        .submit_sql(streaming_request(
            "CREATE TABLE ticks (id BIGINT) WITH ('connector'='datagen', 'rows-per-second'='20', \
             'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\n\
             SELECT id FROM ticks;"
                .to_string(),
            "cancel-query",
            &run,
        ))
        .await;
    let job_ids = [insert.id.clone(), query.id.clone()];
    let mut running: Vec<Job> = Vec::new();
    let all_running = wait_until(started + Duration::from_secs(30), async || {
        running.clear();
        for job_id in &job_ids {
            let Ok(job) = replicas[0].get_job(job_id).await else {
                return false;
            };
            let ready = job.state() == JobState::Running
                && !job.driven_by.is_empty()
                && !last_flink_job_id(&job).is_empty();
            running.push(job);
            if !ready {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        all_running,
        "the jobs were not RUNNING with a driver within 30 s: {:?}",
        running
            .iter()
            .map(|job| (job.driven_by.clone(), crash::describe(job)))
            .collect::<Vec<_>>()
    );
    let flink_job_ids: Vec<String> = running.iter().map(last_flink_job_id).collect();
    // Each job's driver, and the replica that does not drive it.
    let mut driver_of: Vec<usize> = Vec::new();
    for job in &running {
        let driver = replicas
            .iter()
            .position(|replica| replica.id == job.driven_by)
            .unwrap_or_else(|| panic!("job {} is driven by {:?}", job.id, job.driven_by));
        assert_eq!(
            driver, 0,
            "job {} submitted through replica-a is driven by {}",
            job.id, job.driven_by
        );
        driver_of.push(driver);
    }
    let bystander_of = |index: usize| &replicas[1 - driver_of[index]];

    // The query's results read through the replica that does not drive it.
    let received = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(read_results(
        bystander_of(1).client(),
        query.id.clone(),
        received.clone(),
        deadline,
    ));
    let reading_started = wait_until(started + Duration::from_secs(30), async || {
        received.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(
        reading_started,
        "no row of the query reached its reader on {} within 30 s",
        bystander_of(1).id
    );

    // Cancel each through the replica that does not drive it.
    let mut problems: Vec<String> = Vec::new();
    let cancel_started = Instant::now();
    for (index, job_id) in job_ids.iter().enumerate() {
        let bystander = bystander_of(index);
        let request = CancelJobRequest {
            job_id: job_id.clone(),
            ..CancelJobRequest::default()
        };
        match tokio::time::timeout(CALL_TIMEOUT * 4, bystander.client().cancel_job(request)).await {
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                if answer.state() != JobState::Canceling {
                    problems.push(format!(
                        "job {job_id}: CancelJob on {} answered {}, not CANCELING",
                        bystander.id,
                        crash::describe(&answer)
                    ));
                }
            }
            Ok(Err(status)) => problems.push(format!(
                "job {job_id}: CancelJob on {}: {:?}: {}",
                bystander.id,
                status.code(),
                status.message()
            )),
            Err(_) => problems.push(format!(
                "job {job_id}: CancelJob on {}: no answer",
                bystander.id
            )),
        }
    }
    let answered_after = cancel_started.elapsed();

    // Both end CANCELED, as both replicas tell.
    let mut finals: Vec<Job> = Vec::new();
    let all_ended = wait_until(cancel_started + Duration::from_secs(30), async || {
        finals.clear();
        for (index, job_id) in job_ids.iter().enumerate() {
            match bystander_of(index).get_job(job_id).await {
                Ok(job) if crash::is_terminal(&job) => finals.push(job),
                _ => return false,
            }
        }
        true
    })
    .await;
    let ended_after = cancel_started.elapsed();
    if !all_ended {
        problems.push("the jobs did not end within 30 s of the cancel".into());
    }
    for job in &finals {
        if job.state() != JobState::Canceled {
            problems.push(format!(
                "job {}: ended {} instead of CANCELED",
                job.id,
                crash::describe(job)
            ));
        }
    }
    for (index, job_id) in job_ids.iter().enumerate() {
        let (driver, bystander) = (&replicas[driver_of[index]], bystander_of(index));
        match driver.get_job(job_id).await {
            Ok(job) if job.state() == JobState::Canceled => {}
            Ok(job) => problems.push(format!(
                "job {job_id}: its driver {} says {}",
                driver.id,
                crash::describe(&job)
            )),
            Err(error) => problems.push(error),
        }
        // The cancel went to the driver: the other replica never took the job up.
        let taken_up = bystander.log_lines_containing(&["taking the job up", job_id]);
        if !taken_up.is_empty() {
            problems.push(format!(
                "job {job_id}: {} took it up: {taken_up:?}",
                bystander.id
            ));
        }
        // Cancelling again changes nothing.
        let request = CancelJobRequest {
            job_id: job_id.clone(),
            ..CancelJobRequest::default()
        };
        match tokio::time::timeout(CALL_TIMEOUT, bystander.client().cancel_job(request)).await {
            Ok(Ok(answer)) if answer.get_ref().state() == JobState::Canceled => {}
            other => problems.push(format!(
                "job {job_id}: a second CancelJob on {} answered {:?}",
                bystander.id,
                other.map(|answer| answer.map(|job| crash::describe(job.get_ref())))
            )),
        }
    }

    // The stand-in stopped both Flink jobs, each submitted once.
    let flink_jobs: HashMap<String, String> = service.standin.flink_jobs().into_iter().collect();
    for flink_job_id in &flink_job_ids {
        match flink_jobs.get(flink_job_id).map(String::as_str) {
            Some("CANCELED") => {}
            other => problems.push(format!(
                "flink job {flink_job_id} is {other:?} in the stand-in, not CANCELED"
            )),
        }
    }
    for table in ["_insert", "ticks"] {
        let pins = pinned_submissions(&service.standin, table);
        if pins.len() != 1 {
            problems.push(format!(
                "the statement reading {table} was submitted {} times",
                pins.len()
            ));
        }
    }

    // The reader saw rows 1.. in order, then the cancel.
    let reading = reader.await.expect("reader task");
    match &reading.end {
        Some((Reason::Canceled, _)) => {}
        other => problems.push(format!(
            "the reader on {} ended with {other:?} after {} rows",
            bystander_of(1).id,
            reading.ids.len()
        )),
    }
    let expected: Vec<i64> = (1..=reading.ids.len() as i64).collect();
    if reading.ids != expected || !reading.offset_mismatches.is_empty() {
        problems.push(format!(
            "the reader received {} rows not numbered 1.. in order: {:?}",
            reading.ids.len(),
            reading.offset_mismatches
        ));
    }
    problems.extend(
        reading
            .breaks
            .iter()
            .map(|broken| format!("the result stream broke: {broken}")),
    );
    for replica in replicas.iter_mut() {
        problems.extend(replica.exited());
    }

    eprintln!(
        "cancel through the replica that does not drive the job: answered after {:.2}s, CANCELED after {:.2}s; the reader there got {} rows; test took {:.1}s",
        answered_after.as_secs_f64(),
        ended_after.as_secs_f64(),
        reading.ids.len(),
        started.elapsed().as_secs_f64()
    );
    service.assert_no_problems(&problems, &replicas.iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_answers_get_and_list() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("replicas_everywhere").await;
    let mut replicas = service
        .replicas(&["replica-a", "replica-b", "replica-c"])
        .await;
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();

    // One job submitted through each replica.
    let mut submitted: Vec<(Job, String)> = Vec::new();
    for (index, replica) in replicas.iter().enumerate() {
        let request = streaming_request(
            unbounded_insert(&format!("everywhere_{index}")),
            &format!("everywhere-{index}"),
            &run,
        );
        let job = replica.submit_sql(request).await;
        submitted.push((job, replica.id.clone()));
    }
    let mut problems: Vec<String> = Vec::new();

    // The same request through the other replicas returns the same job.
    for replica in &replicas[1..] {
        let request = streaming_request(unbounded_insert("everywhere_0"), "everywhere-0", &run);
        let again = replica.submit_sql(request).await;
        if again.id != submitted[0].0.id {
            problems.push(format!(
                "SubmitSql of request everywhere-0 again on {} answered job {}, not {}",
                replica.id, again.id, submitted[0].0.id
            ));
        }
    }

    // Every replica tells every job alike: RUNNING, driven by one replica.
    let mut last_seen: Vec<String> = Vec::new();
    let mut driver_of: BTreeMap<String, String> = BTreeMap::new();
    let agreed = wait_until(started + Duration::from_secs(30), async || {
        last_seen.clear();
        let mut all = true;
        for (job, _) in &submitted {
            let mut drivers = BTreeSet::new();
            for replica in &replicas {
                match replica.get_job(&job.id).await {
                    Ok(seen) => {
                        let same = seen.id == job.id
                            && seen.request_id == job.request_id
                            && seen.labels == job.labels
                            && seen.statements.len() == job.statements.len();
                        all &= same && seen.state() == JobState::Running;
                        drivers.insert(seen.driven_by.clone());
                        last_seen.push(format!(
                            "{} on {}: {} driven by {:?}{}",
                            job.request_id,
                            replica.id,
                            crash::describe(&seen),
                            seen.driven_by,
                            if same { "" } else { " (differs)" }
                        ));
                    }
                    Err(error) => {
                        all = false;
                        last_seen.push(error);
                    }
                }
            }
            all &= drivers.len() == 1
                && drivers.iter().all(|driver| {
                    ["replica-a", "replica-b", "replica-c"].contains(&driver.as_str())
                });
            if let Some(driver) = drivers.into_iter().next() {
                driver_of.insert(job.id.clone(), driver);
            }
        }
        all
    })
    .await;
    if !agreed {
        problems.push(format!(
            "the replicas did not all tell every job RUNNING with one driver within 30 s: {last_seen:#?}"
        ));
    }

    // Every replica lists the three jobs, and knows none it was not given.
    let labels = HashMap::from([("run".to_string(), run.clone())]);
    let expected: BTreeSet<&str> = submitted.iter().map(|(job, _)| job.id.as_str()).collect();
    for replica in &replicas {
        let listed = replica.list_jobs(&labels).await;
        let ids: BTreeSet<&str> = listed.iter().map(|job| job.id.as_str()).collect();
        if ids != expected || listed.len() != expected.len() {
            problems.push(format!(
                "ListJobs on {} lists {ids:?}, expected {expected:?}",
                replica.id
            ));
        }
        for job in &listed {
            if job.state() != JobState::Running || driver_of.get(&job.id) != Some(&job.driven_by) {
                problems.push(format!(
                    "ListJobs on {} lists {} as {} driven by {:?}; GetJob said RUNNING driven by {:?}",
                    replica.id,
                    job.id,
                    crash::describe(job),
                    job.driven_by,
                    driver_of.get(&job.id)
                ));
            }
        }
        let unknown = uuid::Uuid::new_v4().to_string();
        match tokio::time::timeout(
            CALL_TIMEOUT,
            replica.client().get_job(GetJobRequest {
                job_id: unknown.clone(),
            }),
        )
        .await
        {
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {}
            other => problems.push(format!(
                "GetJob of unknown job {unknown} on {} answered {:?}",
                replica.id,
                other.map(|answer| answer.map(|job| job.into_inner().id))
            )),
        }
    }
    // Each job's Flink job was submitted once, whichever replica drives it.
    for index in 0..submitted.len() {
        let pins = pinned_submissions(&service.standin, &format!("snk_everywhere_{index}"));
        if pins.len() != 1 {
            problems.push(format!(
                "the INSERT of everywhere-{index} was submitted {} times",
                pins.len()
            ));
        }
    }
    for replica in replicas.iter_mut() {
        problems.extend(replica.exited());
    }
    eprintln!(
        "every replica answers for every job: {:?}; test took {:.1}s",
        submitted
            .iter()
            .map(|(job, through)| format!(
                "{} submitted through {through}, driven by {:?}",
                job.request_id,
                driver_of.get(&job.id)
            ))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    service.assert_no_problems(&problems, &replicas.iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_driving_replica_is_dead_is_carried_out_by_the_one_taking_over() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("replicas_dead_cancel").await;
    let mut replicas = service
        .replicas(&["replica-a", "replica-b", "replica-c"])
        .await;
    let started = Instant::now();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let job = replicas[0]
        .submit_sql(streaming_request(
            unbounded_insert("dead"),
            "dead-cancel",
            &run,
        ))
        .await;
    let mut seen: Option<Job> = None;
    let running = wait_until(started + Duration::from_secs(30), async || {
        seen = replicas[0].get_job(&job.id).await.ok();
        seen.as_ref().is_some_and(|job| {
            job.state() == JobState::Running
                && !job.driven_by.is_empty()
                && !last_flink_job_id(job).is_empty()
        })
    })
    .await;
    let seen = seen.expect("the job was read");
    assert!(
        running,
        "the job was not RUNNING with a driver within 30 s: {:?} {}",
        seen.driven_by,
        crash::describe(&seen)
    );
    let flink_job_id = last_flink_job_id(&seen);
    // Kill the job's driver (replica-a, unless another replica claimed the job first); cancel
    // through the next replica, follow the job through the last.
    let driver = replicas
        .iter()
        .position(|replica| replica.id == seen.driven_by)
        .unwrap_or_else(|| panic!("the job is driven by {:?}", seen.driven_by));
    let canceller = (driver + 1) % 3;
    let observer = (driver + 2) % 3;
    replicas[driver].kill().await;
    let killed = Instant::now();

    // The cancel is recorded at once; the answer waits until a replica drives the job again.
    let mut problems: Vec<String> = Vec::new();
    let request = CancelJobRequest {
        job_id: job.id.clone(),
        ..CancelJobRequest::default()
    };
    let canceller_id = replicas[canceller].id.clone();
    match tokio::time::timeout(
        TAKEOVER_BOUND + CALL_TIMEOUT,
        replicas[canceller].client().cancel_job(request),
    )
    .await
    {
        Ok(Ok(answer)) => {
            let answer = answer.into_inner();
            if !matches!(answer.state(), JobState::Canceling | JobState::Canceled) {
                problems.push(format!(
                    "CancelJob on {canceller_id} answered {}",
                    crash::describe(&answer)
                ));
            }
        }
        Ok(Err(status)) => problems.push(format!(
            "CancelJob on {canceller_id}: {:?}: {}",
            status.code(),
            status.message()
        )),
        Err(_) => problems.push(format!("CancelJob on {canceller_id}: no answer")),
    }
    let answered_after = killed.elapsed();
    let mut last: Option<Job> = None;
    let ended = wait_until(killed + END_BOUND, async || {
        last = replicas[observer].get_job(&job.id).await.ok();
        last.as_ref().is_some_and(crash::is_terminal)
    })
    .await;
    let ended_after = killed.elapsed();
    match &last {
        Some(job) if ended && job.state() == JobState::Canceled => {}
        other => problems.push(format!(
            "the job did not end CANCELED within {END_BOUND:?} of the kill: {:?}",
            other.as_ref().map(crash::describe)
        )),
    }
    // One surviving replica took the job over (two, or none, would be wrong).
    let taken_up: Vec<String> = [canceller, observer]
        .iter()
        .flat_map(|index| {
            replicas[*index].log_lines_containing(&["taking the job up", job.id.as_str()])
        })
        .collect();
    if taken_up.len() != 1 {
        problems.push(format!(
            "{} takeovers logged by the surviving replicas: {taken_up:#?}",
            taken_up.len()
        ));
    }
    let flink_jobs: HashMap<String, String> = service.standin.flink_jobs().into_iter().collect();
    match flink_jobs.get(&flink_job_id).map(String::as_str) {
        Some("CANCELED") => {}
        other => problems.push(format!(
            "flink job {flink_job_id} is {other:?} in the stand-in, not CANCELED"
        )),
    }
    let pins = pinned_submissions(&service.standin, "_dead");
    if pins.len() != 1 || flink_jobs.len() != 1 {
        problems.push(format!(
            "the INSERT was submitted {} times ({} flink jobs started): {pins:?}",
            pins.len(),
            flink_jobs.len()
        ));
    }
    for index in [canceller, observer] {
        problems.extend(replicas[index].exited());
    }
    eprintln!(
        "cancel while the driver ({}) is dead: answered {:.1}s after the kill, CANCELED after {:.1}s; taken up: {taken_up:?}; test took {:.1}s",
        replicas[driver].id,
        answered_after.as_secs_f64(),
        ended_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    service.assert_no_problems(&problems, &replicas.iter().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// A lease renewal the database does not answer

/// Jobs whose lease renewal is held up.
const LAPSE_JOBS: usize = 2;
/// What a driver logs as it ends because its replica could not renew the job's lease.
const LEASE_LAPSED: &str = "driver stopped: this replica no longer holds the job's lease";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_lease_renewal_hangs_stops_its_drivers_before_the_leases_run_out() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("replicas_lapse").await;
    // Renewals every second; the drivers stop a quarter lease (1 s) before the leases end.
    set_flag(&mut service.arguments, "--lease-duration", "4s");
    let replica = Replica::start("replica-a", &service.arguments, service.work_dir.path()).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut jobs = Vec::new();
    for index in 0..LAPSE_JOBS {
        let request = streaming_request(
            unbounded_insert(&format!("lapse_{index}")),
            &format!("lapse-{index}"),
            &run,
        );
        jobs.push(replica.submit_sql(request).await);
    }
    let all_running = async |since: Instant, note: &str| {
        let mut seen: Vec<String> = Vec::new();
        let held = wait_until(since + Duration::from_secs(30), async || {
            seen.clear();
            let mut all = true;
            for job in &jobs {
                match replica.get_job(&job.id).await {
                    Ok(job) => {
                        all &= job.state() == JobState::Running
                            && job.driven_by == replica.id
                            && !last_flink_job_id(&job).is_empty()
                            && job.history.iter().any(|entry| entry.reason.contains(note));
                        seen.push(crash::describe(&job));
                    }
                    Err(error) => {
                        all = false;
                        seen.push(error);
                    }
                }
            }
            all
        })
        .await;
        (held, seen)
    };
    let (running, seen) = all_running(Instant::now(), "").await;
    assert!(
        running,
        "the jobs were not RUNNING on replica-a within 30 s: {seen:?}\n{}",
        tail(&replica.log(), 20)
    );

    // Every job row locked in an open transaction: the replica's lease renewal (an UPDATE of
    // those rows) waits, as on a database that does not answer. Reads go on.
    let database = sea_orm::Database::connect(service.database.url.as_str())
        .await
        .expect("connect to the database");
    let lock = database.begin().await.expect("begin a transaction");
    lock.execute_unprepared("SELECT id FROM jobs FOR UPDATE")
        .await
        .expect("lock the job rows");
    let locked = Instant::now();
    let stopped = wait_until(locked + Duration::from_secs(20), async || {
        replica.log_lines_containing(&[LEASE_LAPSED]).len() >= LAPSE_JOBS
    })
    .await;
    let stop_took = locked.elapsed();
    // The leases as the last renewal left them (the blocked one changed nothing).
    let leases = lock
        .query_all_raw(sea_orm::Statement::from_string(
            lock.get_database_backend(),
            "SELECT id, lease_until FROM jobs",
        ))
        .await
        .expect("read the leases");
    let mut problems: Vec<String> = Vec::new();
    if !stopped {
        problems.push(format!(
            "the drivers did not stop within 20 s of the renewal hanging:\n{}",
            tail(&replica.log(), 20)
        ));
    }
    if replica
        .log_lines_containing(&["job leases could not be renewed in time"])
        .is_empty()
    {
        problems.push("the replica did not say that it could not renew the leases".to_owned());
    }
    for row in &leases {
        let id: String = row.try_get("", "id").expect("id");
        let lease_until: i64 = row.try_get("", "lease_until").expect("lease_until");
        let stops = replica.log_lines_containing(&[LEASE_LAPSED, &format!("job_id={id}")]);
        match stops
            .first()
            .and_then(|line| line.split_whitespace().next())
        {
            Some(at) => {
                let at = chrono::DateTime::parse_from_rfc3339(at)
                    .map(|at| at.timestamp_millis())
                    .unwrap_or(i64::MAX);
                if at >= lease_until {
                    problems.push(format!(
                        "job {id}: its driver stopped at {at} ms, after its lease ran out at {lease_until} ms"
                    ));
                }
            }
            None => problems.push(format!("job {id}: its driver did not stop")),
        }
    }
    // A lapsed lease is no failure: the jobs stay RUNNING meanwhile.
    for job in &jobs {
        match replica.get_job(&job.id).await {
            Ok(seen) if seen.state() == JobState::Running => {}
            Ok(seen) => problems.push(format!(
                "job {} while its lease lapsed: {}",
                job.id,
                crash::describe(&seen)
            )),
            Err(error) => problems.push(error),
        }
    }

    // The database answers again: the replica takes its jobs up again, adopting the Flink
    // jobs that ran on (each INSERT reached the gateway once).
    lock.rollback().await.expect("end the transaction");
    let (resumed, seen) =
        all_running(Instant::now(), "after this replica's lease on it had ended").await;
    if !resumed {
        problems.push(format!(
            "the jobs were not taken up again within 30 s: {seen:?}"
        ));
    }
    for index in 0..LAPSE_JOBS {
        let submissions = pinned_submissions(&service.standin, &format!("snk_lapse_{index} "));
        if submissions.len() != 1 {
            problems.push(format!(
                "the INSERT of job lapse-{index} reached the gateway {} times: {submissions:?}",
                submissions.len()
            ));
        }
    }
    eprintln!(
        "the drivers of {} jobs stopped within {:.1}s of the job rows being locked; taken up again after the lock: {resumed}",
        leases.len(),
        stop_took.as_secs_f64()
    );
    service.assert_no_problems(&problems, &[&replica]);
}
