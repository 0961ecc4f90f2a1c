//! Crash recovery: the real `flinkbroker` binary is killed with SIGKILL at random moments while
//! clients submit jobs and read results, and started again on the same database each time.
//! Every job must still reach its true end exactly once: one job per request id, FINISHED (or
//! FAILED with its real root cause for scripts that really fail), and no Flink job started
//! twice.
//!
//! SQL jobs run against the SQL Gateway stand-in (SQLite file and PostgreSQL stores); Python
//! jobs run on a real local Flink cluster when `FLINKBROKER_TEST_FLINK_HOME` is set. Each run
//! prints its seed; `FLINKBROKER_TEST_CRASH_SEED=<seed>` repeats its schedule. Each test ends
//! by printing the counts of jobs, kills, jobs resumed, jobs adopted and duplicate Flink jobs.

use crate::support::crash;
use crate::support::flink_cluster;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crash::{BrokerProcess, Connector, Counts, KillMoment, ReadOutcome, ResultRead, Rng};
use flink_cluster::FlinkCluster;
use flinkbroker_proto::submit_python_request::Program;
use flinkbroker_proto::{Job, JobState, RuntimeMode, SubmitPythonRequest, SubmitSqlRequest};
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The executionConfig key that pins a statement's Flink job id.
const PINNED_JOB_ID: &str = "$internal.pipeline.job-id";
/// The label that scopes a run's jobs.
const RUN_LABEL: &str = "crash-run";

// ---------------------------------------------------------------------------------------------
// SQL

/// SQL jobs submitted per run.
const SQL_JOBS: usize = 120;
/// Broker kills per SQL run.
const SQL_KILLS: usize = 12;
/// Everything of a SQL run (after the first broker serves) ends within this.
const SQL_DEADLINE: Duration = Duration::from_secs(120);
/// Submissions are spread over this window, which the kills also span.
const SQL_SUBMIT_WINDOW: Duration = Duration::from_secs(7);

/// What one SQL job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SqlKind {
    /// A bounded datagen INSERT into a blackhole sink: a Flink job that runs for a while.
    Insert,
    /// A bounded datagen query whose results the client reads to their end.
    Query { rows: u64 },
    /// A script whose query names a table that does not exist: its true end is FAILED.
    Failing,
}

/// One planned SQL job.
#[derive(Clone, Debug)]
struct SqlJobPlan {
    request_id: String,
    /// Unique per job: every table of the job carries it.
    tag: String,
    kind: SqlKind,
    script: String,
    runtime_mode: RuntimeMode,
    /// The statement that starts (or would start) the Flink job.
    starter_index: usize,
    submit_after: Duration,
}

impl SqlJobPlan {
    fn new(index: usize, rng: &mut Rng) -> Self {
        let tag = format!("{index:04}");
        let submit_after = rng.duration_between(Duration::ZERO, SQL_SUBMIT_WINDOW);
        // Flink jobs last 0.1 s to 2 s of datagen time.
        let runtime_ms = rng.between(100, 2000);
        let (kind, script, runtime_mode, starter_index) = match index % 10 {
            0..=4 => {
                let rate = 2000;
                let rows = runtime_ms * rate / 1000;
                (
                    SqlKind::Insert,
                    format!(
                        "CREATE TABLE src_{tag} (id BIGINT, payload STRING) WITH ('connector'='datagen', 'number-of-rows'='{rows}', 'rows-per-second'='{rate}');\n\
                         CREATE TABLE snk_{tag} (id BIGINT, payload STRING) WITH ('connector'='blackhole');\n\
                         INSERT INTO snk_{tag} SELECT id, payload FROM src_{tag};"
                    ),
                    RuntimeMode::Streaming,
                    2,
                )
            }
            5..=8 => {
                let rows = rng.between(50, 1500);
                let rate = (rows * 1000 / runtime_ms).max(1);
                (
                    SqlKind::Query { rows },
                    format!(
                        "CREATE TABLE gen_{tag} (id BIGINT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='{rows}', 'rows-per-second'='{rate}', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{rows}', 'fields.name.length'='8');\n\
                         SELECT id, name FROM gen_{tag};"
                    ),
                    RuntimeMode::Batch,
                    1,
                )
            }
            _ => (
                SqlKind::Failing,
                format!(
                    "CREATE TABLE gen_{tag} (id BIGINT) WITH ('connector'='datagen', 'number-of-rows'='10');\n\
                     SELECT * FROM no_such_table_{tag};"
                ),
                RuntimeMode::Batch,
                1,
            ),
        };
        SqlJobPlan {
            request_id: format!("crash-sql-{tag}"),
            tag,
            kind,
            script,
            runtime_mode,
            starter_index,
            submit_after,
        }
    }

    fn request(&self, run: &str) -> SubmitSqlRequest {
        SubmitSqlRequest {
            script: self.script.clone(),
            runtime_mode: self.runtime_mode as i32,
            request_id: self.request_id.clone(),
            labels: HashMap::from([(RUN_LABEL.into(), run.into())]),
            ..SubmitSqlRequest::default()
        }
    }

    /// Whether a statement sent to the gateway is this job's starter.
    fn is_starter(&self, statement: &str) -> bool {
        let text = statement.trim_start().to_ascii_uppercase();
        match self.kind {
            SqlKind::Insert => {
                text.starts_with("INSERT") && statement.contains(&format!("snk_{}", self.tag))
            }
            SqlKind::Query { .. } => {
                text.starts_with("SELECT") && statement.contains(&format!("gen_{}", self.tag))
            }
            SqlKind::Failing => {
                text.starts_with("SELECT")
                    && statement.contains(&format!("no_such_table_{}", self.tag))
            }
        }
    }
}

/// What the client of one SQL job saw.
#[derive(Debug)]
struct SqlClientRecord {
    plan: SqlJobPlan,
    /// The job id of every SubmitSql answer, in order.
    answered_ids: Vec<String>,
    /// An answer that was not a job.
    submit_error: Option<String>,
    results: Option<ResultRead>,
}

/// Submits one job (twice, the second time as a client that lost the first answer would) and,
/// for queries, reads its results to their end, retrying through every crash.
async fn run_sql_client(
    connector: Connector,
    plan: SqlJobPlan,
    run: String,
    started: Instant,
    deadline: Instant,
) -> SqlClientRecord {
    tokio::time::sleep_until(started + plan.submit_after).await;
    let mut record = SqlClientRecord {
        plan: plan.clone(),
        answered_ids: Vec::new(),
        submit_error: None,
        results: None,
    };
    let request = plan.request(&run);
    for _ in 0..2 {
        let answer = connector
            .call("SubmitSql", deadline, |mut client| {
                let request = request.clone();
                async move { client.submit_sql(request).await }
            })
            .await;
        match answer {
            Ok(job) => record.answered_ids.push(job.id),
            Err(status) => {
                record.submit_error = Some(format!("{:?}: {}", status.code(), status.message()));
                return record;
            }
        }
    }
    if let SqlKind::Query { .. } = plan.kind {
        let job_id = record.answered_ids[0].clone();
        record.results = Some(connector.read_results(&job_id, deadline).await);
    }
    record
}

/// How long a query job may stay open after its reader stopped reading (everything read, or
/// an answer refused to go on); nobody reads it again, so it cannot end well after that.
const AFTER_READING: Duration = Duration::from_secs(10);

/// Waits until every job of the run is terminal, or no job still open can end: query jobs
/// whose reader stopped are given [`AFTER_READING`] to end. Call once every client is done.
/// Returns the jobs last listed.
async fn wait_for_ends(
    connector: &Connector,
    run: &str,
    expected: usize,
    read_queries: &BTreeSet<String>,
    deadline: Instant,
) -> Vec<Job> {
    let labels = HashMap::from([(RUN_LABEL.to_string(), run.to_string())]);
    let readers_done = Instant::now();
    loop {
        let jobs = connector
            .list_jobs(&labels, deadline)
            .await
            .unwrap_or_default();
        let open: Vec<&Job> = jobs.iter().filter(|job| !crash::is_terminal(job)).collect();
        let unread_open: Vec<&&Job> = open
            .iter()
            .filter(|job| !read_queries.contains(&job.request_id))
            .collect();
        let grace_over = readers_done.elapsed() >= AFTER_READING;
        if jobs.len() >= expected && (open.is_empty() || (unread_open.is_empty() && grace_over)) {
            return jobs;
        }
        if Instant::now() >= deadline {
            for job in unread_open.iter().take(5) {
                eprintln!(
                    "still open at the deadline: {} {}",
                    job.request_id,
                    crash::describe(job)
                );
            }
            return jobs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sql_jobs_survive_broker_crashes(database: crash::TestDatabase, backend: &str) {
    let seed = crash::seed();
    eprintln!(
        "sql crash test ({backend}): seed {seed} ({}={seed} repeats the schedule)",
        crash::SEED_VAR
    );
    let mut rng = Rng::new(seed);
    let run = format!("{seed:x}");
    let standin = Arc::new(
        Standin::spawn(StandinConfig {
            not_ready_pages: 1,
            rows_per_page: 200,
            submit_delay: Duration::from_millis(20),
            ..StandinConfig::default()
        })
        .await
        .expect("stand-in starts"),
    );
    // The stand-in also plays the JobManager of the Flink jobs its statements start.
    let jobmanager_url = standin.base_url.clone();
    let work_dir = tempfile::Builder::new()
        .prefix("flinkbroker-crash-sql-")
        .tempdir()
        .expect("work directory");
    let submitters = work_dir.path().join("submitters");
    let arguments: Vec<String> = [
        "--database-url",
        database.url(),
        "--sql-gateway-url",
        &standin.base_url,
        "--jobmanager-url",
        &jobmanager_url,
        "--poll-interval",
        "50ms",
        "--max-fetch-backoff",
        "50ms",
        "--heartbeat-interval",
        "1s",
        "--health-interval",
        "200ms",
        "--http-timeout",
        "5s",
        "--shutdown-grace",
        "1s",
        // Each start is the same replica restarted (as a pod keeps its name), so it takes its
        // jobs back at once; takeovers by other replicas are tested in tests/replicas.rs.
        "--replica-id",
        "crash-broker",
        "--submitter-work-dir",
        &submitters.display().to_string(),
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect();
    let mut broker = BrokerProcess::start(arguments, work_dir.path()).await;
    let connector = broker.connector();

    let plans: Vec<SqlJobPlan> = (0..SQL_JOBS)
        .map(|i| SqlJobPlan::new(i, &mut rng))
        .collect();
    let kills: Vec<KillMoment> = (0..SQL_KILLS)
        .map(|_| {
            let after_ready = !rng.percent(15);
            let delay = if after_ready {
                rng.duration_between(Duration::from_millis(100), Duration::from_millis(800))
            } else {
                rng.duration_between(Duration::ZERO, Duration::from_millis(150))
            };
            KillMoment { after_ready, delay }
        })
        .collect();

    let started = Instant::now();
    let deadline = started + SQL_DEADLINE;
    let mut clients = JoinSet::new();
    for plan in &plans {
        clients.spawn(run_sql_client(
            connector.clone(),
            plan.clone(),
            run.clone(),
            started,
            deadline,
        ));
    }
    for moment in kills {
        broker.crash_and_restart(moment).await;
    }
    broker.wait_until_serving().await;
    let kills_done_after = started.elapsed();
    let mut records = Vec::with_capacity(SQL_JOBS);
    while let Some(record) = clients.join_next().await {
        records.push(record.expect("client task"));
    }
    records.sort_by(|a, b| a.plan.request_id.cmp(&b.plan.request_id));
    let read_queries: BTreeSet<String> = records
        .iter()
        .filter(|r| r.results.is_some())
        .map(|r| r.plan.request_id.clone())
        .collect();
    let answered = records
        .iter()
        .filter(|r| !r.answered_ids.is_empty())
        .count();
    let jobs = wait_for_ends(&connector, &run, answered, &read_queries, deadline).await;
    let settled_after = started.elapsed();

    // -- Checks --------------------------------------------------------------------------------
    let mut problems: Vec<String> = Vec::new();
    let mut by_request: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for job in &jobs {
        by_request
            .entry(job.request_id.as_str())
            .or_default()
            .push(job);
    }
    let statements = standin.statements();
    let flink_jobs: HashMap<String, String> = standin.flink_jobs().into_iter().collect();
    let mut attributed: BTreeSet<String> = BTreeSet::new();
    // Flink jobs beyond the first started for one statement, by the statement's kind, and
    // Flink jobs no statement accounts for.
    let mut duplicate_inserts = 0;
    let mut duplicate_queries = 0;
    let mut query_reruns = 0;
    let mut resubmissions = 0;
    let mut unexpected_reasons: Vec<String> = Vec::new();
    for record in &records {
        let plan = &record.plan;
        let id = plan.request_id.as_str();
        if let Some(error) = &record.submit_error {
            problems.push(format!("{id}: SubmitSql never returned a job: {error}"));
        }
        let listed = by_request.get(id).cloned().unwrap_or_default();
        let Some(job) = crash::the_one_job(
            "SubmitSql",
            id,
            &record.answered_ids,
            &listed,
            &mut problems,
        ) else {
            continue;
        };

        // The job's end.
        match plan.kind {
            SqlKind::Insert | SqlKind::Query { .. } => {
                if job.state() != JobState::Finished {
                    unexpected_reasons.push(crash::describe(job));
                    problems.push(format!(
                        "{id} ({:?}): not FINISHED: {}",
                        plan.kind,
                        crash::describe(job)
                    ));
                }
            }
            SqlKind::Failing => {
                let reason = job.state_reason.to_ascii_lowercase();
                let real_cause = reason.contains(&format!("no_such_table_{}", plan.tag))
                    && reason.contains("not found");
                if job.state() != JobState::Failed || !real_cause || reason.contains("restart") {
                    unexpected_reasons.push(crash::describe(job));
                    problems.push(format!(
                        "{id} (failing script): expected FAILED with the missing table as its cause: {}",
                        crash::describe(job)
                    ));
                }
            }
        }

        // The rows of queries: every row exactly once, whatever was resumed.
        if let (SqlKind::Query { rows }, Some(read)) = (plan.kind, &record.results) {
            if !read.outcome.completed() {
                problems.push(format!(
                    "{id}: results not read to their end after {} rows ({} streams): {:?}",
                    read.ids.len(),
                    read.streams,
                    read.outcome
                ));
            } else {
                let mut ids = read.ids.clone();
                ids.sort_unstable();
                let expected: Vec<i64> = (1..=rows as i64).collect();
                if ids != expected {
                    problems.push(format!(
                        "{id}: received {} rows, expected ids 1..={rows} once each",
                        read.ids.len()
                    ));
                }
            }
            for mismatch in read.offset_mismatches.iter().take(2) {
                problems.push(format!("{id}: {mismatch}"));
            }
        }

        // The Flink jobs its starter statement started in the stand-in.
        let starters: Vec<_> = statements
            .iter()
            .filter(|s| plan.is_starter(&s.statement))
            .collect();
        let mut pinned: BTreeSet<String> = BTreeSet::new();
        for sent in &starters {
            match sent.execution_config.get(PINNED_JOB_ID) {
                Some(pin) => {
                    pinned.insert(pin.to_ascii_lowercase());
                }
                None => problems.push(format!(
                    "{id}: statement sent without a pinned flink job id: {}",
                    sent.statement
                )),
            }
        }
        resubmissions += starters.len().saturating_sub(pinned.len());
        let started_here: Vec<&String> = pinned
            .iter()
            .filter(|pin| flink_jobs.contains_key(*pin))
            .collect();
        attributed.extend(started_here.iter().map(|pin| pin.to_string()));
        let recorded = job
            .statements
            .get(plan.starter_index)
            .map(|s| s.flink_job_id.to_ascii_lowercase())
            .unwrap_or_default();
        match plan.kind {
            SqlKind::Insert | SqlKind::Query { .. } => {
                // A query whose reader a crash interrupted runs again under the id of its next
                // attempt, and the earlier attempt is cancelled: only one may have run on.
                let ran_on: Vec<&&String> = match plan.kind {
                    SqlKind::Insert => started_here.iter().collect(),
                    _ => {
                        // An earlier attempt may have run to its end before the restart (its
                        // rows lost with the reader's stream); none may run on beside the last.
                        query_reruns += started_here.len().saturating_sub(1);
                        started_here
                            .iter()
                            .filter(|pin| {
                                **pin == &recorded
                                    || flink_jobs.get(pin.as_str()).map(String::as_str)
                                        == Some("RUNNING")
                            })
                            .collect()
                    }
                };
                if ran_on.len() > 1 {
                    match plan.kind {
                        SqlKind::Insert => duplicate_inserts += ran_on.len() - 1,
                        _ => duplicate_queries += ran_on.len() - 1,
                    }
                    problems.push(format!(
                        "{id}: its statement ran {} flink jobs: {ran_on:?}",
                        ran_on.len()
                    ));
                }
                if started_here.is_empty() {
                    problems.push(format!(
                        "{id}: no flink job started ({} submissions of the statement)",
                        starters.len()
                    ));
                } else if job.state() == JobState::Finished {
                    // The Flink job the job records is the one that ran, and it ran to its end.
                    match flink_jobs.get(&recorded).map(String::as_str) {
                        Some("FINISHED") => {}
                        Some(state) => problems.push(format!(
                            "{id}: the job records flink job {recorded}, which is {state} in the stand-in"
                        )),
                        None => problems.push(format!(
                            "{id}: the job records flink job {recorded:?}, which never started; {started_here:?} did"
                        )),
                    }
                }
            }
            SqlKind::Failing => {
                if !started_here.is_empty() {
                    duplicate_queries += started_here.len();
                    problems.push(format!(
                        "{id}: a failing query started flink jobs: {started_here:?}"
                    ));
                }
            }
        }
    }
    problems.extend(broker.unexpected_exits().iter().cloned());
    let strays: Vec<&String> = flink_jobs
        .keys()
        .filter(|id| !attributed.contains(*id))
        .collect();
    if !strays.is_empty() {
        problems.push(format!(
            "{} flink jobs in the stand-in belong to no job's statement: {strays:?}",
            strays.len()
        ));
    }
    if jobs.len() != SQL_JOBS {
        problems.push(format!(
            "{} jobs carry the run's label, {SQL_JOBS} were submitted",
            jobs.len()
        ));
    }

    // -- Report --------------------------------------------------------------------------------
    let reads: Vec<&ResultRead> = records.iter().filter_map(|r| r.results.as_ref()).collect();
    eprintln!(
        "sql crash test ({backend}): kills done after {:.1}s, settled after {:.1}s; states {:?}",
        kills_done_after.as_secs_f64(),
        settled_after.as_secs_f64(),
        crash::states_of(&jobs)
    );
    eprintln!(
        "result streams: {} opened, {} resumed, {} read to the end, {} gave up; {} calls retried; {} repeated starter submissions; queries re-run after a restart: {query_reruns}; extra flink jobs: {duplicate_inserts} of inserts, {duplicate_queries} of queries, {} of no statement; broker log lines mentioning a restart: {}",
        reads.iter().map(|r| r.streams).sum::<u32>(),
        reads.iter().map(|r| r.resumes).sum::<u32>(),
        reads.iter().filter(|r| r.outcome.completed()).count(),
        reads
            .iter()
            .filter(|r| matches!(r.outcome, ReadOutcome::GaveUp(_) | ReadOutcome::Ended(_)))
            .count(),
        connector.retries(),
        resubmissions,
        strays.len(),
        broker.log_lines_containing("restart"),
    );
    for group in crash::frequent_reasons(unexpected_reasons.iter().map(String::as_str))
        .iter()
        .take(6)
    {
        eprintln!("  {} × {}", group.count, group.blurred);
    }
    let gave_up: Vec<String> = reads
        .iter()
        .filter_map(|r| match &r.outcome {
            ReadOutcome::GaveUp(why) | ReadOutcome::Ended(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    for group in crash::frequent_reasons(gave_up.iter().map(String::as_str))
        .iter()
        .take(4)
    {
        eprintln!("  stream: {} × {}", group.count, group.blurred);
    }
    for group in crash::frequent_reasons(problems.iter().map(String::as_str))
        .iter()
        .take(12)
    {
        eprintln!(
            "  problem kind: {} × {}\n    e.g. {}",
            group.count, group.blurred, group.example
        );
    }
    for problem in problems.iter().take(25) {
        eprintln!("problem: {problem}");
    }
    if problems.len() > 25 {
        eprintln!("problem: … and {} more", problems.len() - 25);
    }
    let counts = Counts {
        jobs: jobs.len(),
        kills: broker.kills(),
        resumed: jobs
            .iter()
            .filter(|job| crash::history_mentions(job, "resumed"))
            .count(),
        adopted: jobs
            .iter()
            .filter(|job| crash::history_mentions(job, "adopted"))
            .count(),
        duplicates: duplicate_inserts + duplicate_queries + strays.len(),
    };
    counts.print();
    assert!(
        problems.is_empty(),
        "{} problems after {} broker kills (seed {seed}); see the lines above",
        problems.len(),
        broker.kills()
    );
    assert!(counts.kills as usize >= SQL_KILLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_jobs_survive_broker_crashes_on_sqlite() {
    let _turn = crash::one_at_a_time().await;
    sql_jobs_survive_broker_crashes(crash::TestDatabase::sqlite_file(), "sqlite file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_jobs_survive_broker_crashes_on_postgres() {
    let _turn = crash::one_at_a_time().await;
    sql_jobs_survive_broker_crashes(crash::TestDatabase::postgres().await, "postgres").await;
}

// ---------------------------------------------------------------------------------------------
// Python

/// PyFlink jobs submitted per run.
const PYTHON_JOBS: usize = 10;
/// Broker kills per Python run.
const PYTHON_KILLS: usize = 4;
/// Everything of a Python run (after the first broker serves) ends within this (the run shares
/// two cores with the other Flink end-to-end tests in CI).
const PYTHON_DEADLINE: Duration = Duration::from_secs(240);
/// Submissions are spread over this window.
const PYTHON_SUBMIT_WINDOW: Duration = Duration::from_secs(30);

/// A small bounded PyFlink program whose operators all run in the JVM: the TaskManager loads
/// no Python worker for it, so many of them fit in the test cluster's metaspace (each
/// Python-UDF job, like `fixtures/pyflink/job.py`, keeps some of it).
const BOUNDED_TABLE_PROGRAM: &str = r#"from pyflink.table import EnvironmentSettings, TableEnvironment

t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
t_env.execute_sql("CREATE TABLE src (x BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1000')")
t_env.execute_sql("CREATE TABLE snk (x BIGINT) WITH ('connector' = 'blackhole')")
t_env.execute_sql("INSERT INTO snk SELECT x FROM src")
"#;

/// What the client of one Python job saw.
struct PythonClientRecord {
    request_id: String,
    answered_ids: Vec<String>,
    answered_flink_ids: Vec<String>,
    submit_error: Option<String>,
}

async fn run_python_client(
    connector: Connector,
    request: SubmitPythonRequest,
    submit_at: Instant,
    deadline: Instant,
) -> PythonClientRecord {
    tokio::time::sleep_until(submit_at).await;
    let mut record = PythonClientRecord {
        request_id: request.request_id.clone(),
        answered_ids: Vec::new(),
        answered_flink_ids: Vec::new(),
        submit_error: None,
    };
    for _ in 0..2 {
        let answer = connector
            .call("SubmitPython", deadline, |mut client| {
                let request = request.clone();
                async move { client.submit_python(request).await }
            })
            .await;
        match answer {
            Ok(job) => {
                record.answered_ids.push(job.id);
                record.answered_flink_ids.push(job.flink_job_id);
            }
            Err(status) => {
                record.submit_error = Some(format!("{:?}: {}", status.code(), status.message()));
                return record;
            }
        }
    }
    record
}

/// Reads the cluster's `GET /jobs/overview`: (jid, state) of every job it knows.
async fn cluster_jobs(cluster: &FlinkCluster) -> Vec<(String, String)> {
    flinkbroker::install_crypto_provider();
    let overview: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/jobs/overview", cluster.rest_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("GET /jobs/overview")
        .json()
        .await
        .expect("jobs overview json");
    overview["jobs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|job| {
                    (
                        job["jid"].as_str().unwrap_or_default().to_string(),
                        job["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_jobs_survive_broker_crashes_on_a_real_flink_cluster() {
    let _turn = crash::one_at_a_time().await;
    let Some(cluster) = FlinkCluster::start().await else {
        return;
    };
    let seed = crash::seed();
    eprintln!(
        "python crash test: seed {seed} ({}={seed} repeats the schedule)",
        crash::SEED_VAR
    );
    let mut rng = Rng::new(seed);
    let run = format!("{seed:x}");
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in starts");
    let database = crash::TestDatabase::sqlite_file();
    let work_dir = tempfile::Builder::new()
        .prefix("flinkbroker-crash-python-")
        .tempdir()
        .expect("work directory");
    let submitters = work_dir.path().join("submitters");
    let arguments: Vec<String> = [
        "--database-url",
        database.url(),
        "--sql-gateway-url",
        &standin.base_url,
        "--jobmanager-url",
        &cluster.rest_url,
        "--job-runner",
        "local",
        "--flink-home",
        &cluster.flink_home.display().to_string(),
        "--python-executable",
        &cluster.python_executable(),
        "--submitter-work-dir",
        &submitters.display().to_string(),
        "--poll-interval",
        "250ms",
        "--health-interval",
        "500ms",
        "--shutdown-grace",
        "1s",
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect();
    let mut broker = BrokerProcess::start(arguments, work_dir.path()).await;
    let connector = broker.connector();

    let started = Instant::now();
    let deadline = started + PYTHON_DEADLINE;
    let mut clients = JoinSet::new();
    for index in 0..PYTHON_JOBS {
        // Two Python-UDF programs; the rest run in the JVM alone.
        let script = if index % 5 == 0 {
            include_str!("../fixtures/pyflink/job.py")
        } else {
            BOUNDED_TABLE_PROGRAM
        };
        let request = SubmitPythonRequest {
            program: Some(Program::Script(script.into())),
            parallelism: 1,
            request_id: format!("crash-py-{index:02}"),
            labels: HashMap::from([(RUN_LABEL.into(), run.clone())]),
            ..SubmitPythonRequest::default()
        };
        // Evenly spread, with jitter, so that submitters run through every kill.
        let slot = PYTHON_SUBMIT_WINDOW * index as u32 / PYTHON_JOBS as u32;
        let jitter = rng.duration_between(Duration::ZERO, Duration::from_millis(1500));
        clients.spawn(run_python_client(
            connector.clone(),
            request,
            started + slot + jitter,
            deadline,
        ));
    }
    let mut submitters_at_kills = Vec::new();
    for _ in 0..PYTHON_KILLS {
        let delay = rng.duration_between(Duration::from_millis(3000), Duration::from_millis(7000));
        broker.wait_until_serving().await;
        tokio::time::sleep(delay).await;
        submitters_at_kills.push(broker.children_running().len());
        broker
            .crash_and_restart(KillMoment {
                after_ready: false,
                delay: Duration::ZERO,
            })
            .await;
    }
    broker.wait_until_serving().await;
    let kills_done_after = started.elapsed();
    let mut records = Vec::with_capacity(PYTHON_JOBS);
    while let Some(record) = clients.join_next().await {
        records.push(record.expect("client task"));
    }
    records.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    let answered = records
        .iter()
        .filter(|r| !r.answered_ids.is_empty())
        .count();
    let jobs = wait_for_ends(&connector, &run, answered, &BTreeSet::new(), deadline).await;
    let settled_after = started.elapsed();
    // A submitter left behind by a killed broker may still start its Flink job: the cluster
    // is read once every submitter has exited.
    let still_running = broker.wait_for_descendants_to_exit(deadline).await;

    // -- Checks --------------------------------------------------------------------------------
    let mut problems: Vec<String> = Vec::new();
    let mut by_request: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for job in &jobs {
        by_request
            .entry(job.request_id.as_str())
            .or_default()
            .push(job);
    }
    if !still_running.is_empty() {
        problems.push(format!(
            "submitter processes still running at the deadline: {still_running:?}"
        ));
    }
    let on_cluster = cluster_jobs(&cluster).await;
    let mut seen_on_cluster: HashMap<&str, Vec<&str>> = HashMap::new();
    for (jid, state) in &on_cluster {
        seen_on_cluster
            .entry(jid.as_str())
            .or_default()
            .push(state.as_str());
    }
    let mut pinned: BTreeSet<String> = BTreeSet::new();
    let mut duplicates = 0;
    let mut unexpected_reasons = Vec::new();
    for record in &records {
        let id = record.request_id.as_str();
        if let Some(error) = &record.submit_error {
            problems.push(format!("{id}: SubmitPython never returned a job: {error}"));
        }
        let distinct_flink: BTreeSet<&String> = record.answered_flink_ids.iter().collect();
        if distinct_flink.len() > 1 {
            problems.push(format!(
                "{id}: SubmitPython answered different flink job ids: {distinct_flink:?}"
            ));
        }
        let listed = by_request.get(id).cloned().unwrap_or_default();
        let Some(job) = crash::the_one_job(
            "SubmitPython",
            id,
            &record.answered_ids,
            &listed,
            &mut problems,
        ) else {
            continue;
        };
        if job.state() != JobState::Finished {
            unexpected_reasons.push(crash::describe(job));
            problems.push(format!("{id}: not FINISHED: {}", crash::describe(job)));
        }
        let flink_id = job.flink_job_id.to_ascii_lowercase();
        pinned.insert(flink_id.clone());
        let states = seen_on_cluster
            .get(flink_id.as_str())
            .cloned()
            .unwrap_or_default();
        match states.as_slice() {
            ["FINISHED"] => {}
            [] => problems.push(format!("{id}: flink job {flink_id} is not on the cluster")),
            [state] => problems.push(format!(
                "{id}: flink job {flink_id} is {state} on the cluster"
            )),
            many => {
                duplicates += many.len() - 1;
                problems.push(format!(
                    "{id}: flink job {flink_id} is on the cluster {} times",
                    many.len()
                ));
            }
        }
    }
    problems.extend(broker.unexpected_exits().iter().cloned());
    let strays: Vec<&(String, String)> = on_cluster
        .iter()
        .filter(|(jid, _)| !pinned.contains(jid))
        .collect();
    if !strays.is_empty() {
        duplicates += strays.len();
        problems.push(format!(
            "{} flink jobs on the cluster belong to no job: {strays:?}",
            strays.len()
        ));
    }
    if jobs.len() != PYTHON_JOBS {
        problems.push(format!(
            "{} jobs carry the run's label, {PYTHON_JOBS} were submitted",
            jobs.len()
        ));
    }

    // -- Report --------------------------------------------------------------------------------
    eprintln!(
        "python crash test: kills done after {:.1}s (submitters running at each kill: {submitters_at_kills:?}), settled after {:.1}s; states {:?}; {} calls retried; {} flink jobs on the cluster",
        kills_done_after.as_secs_f64(),
        settled_after.as_secs_f64(),
        crash::states_of(&jobs),
        connector.retries(),
        on_cluster.len(),
    );
    for group in crash::frequent_reasons(unexpected_reasons.iter().map(String::as_str))
        .iter()
        .take(6)
    {
        eprintln!("  {} × {}", group.count, group.blurred);
    }
    if let Some(job) = jobs.iter().find(|job| job.state() != JobState::Finished) {
        let output: Vec<&str> = job.submitter_output.lines().collect();
        eprintln!(
            "submitter output of {} (last lines):\n{}",
            job.request_id,
            if output.is_empty() {
                "(none)".to_string()
            } else {
                output[output.len().saturating_sub(15)..].join("\n")
            }
        );
    }
    for problem in problems.iter().take(25) {
        eprintln!("problem: {problem}");
    }
    let counts = Counts {
        jobs: jobs.len(),
        kills: broker.kills(),
        resumed: jobs
            .iter()
            .filter(|job| crash::history_mentions(job, "resumed"))
            .count(),
        adopted: jobs
            .iter()
            .filter(|job| crash::history_mentions(job, "adopted"))
            .count(),
        duplicates,
    };
    counts.print();
    assert!(
        problems.is_empty(),
        "{} problems after {} broker kills (seed {seed}); see the lines above",
        problems.len(),
        broker.kills()
    );
    assert!(counts.kills as usize >= PYTHON_KILLS);
}
