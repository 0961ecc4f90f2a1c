//! Black-box tests of what a job's state promises: every statement has its verdict before the
//! next is submitted, CANCELED only once Flink stopped the job, and a restarted broker resumes
//! its jobs instead of failing them.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::BTreeMap;
use std::time::Duration;

use broker::{TestBroker, cancel, wait_for_job, wait_for_state};
use flinkbroker_flink::jobmanager::{FlinkJobStatus, JobManager, RestJobManager};
use flinkbroker_flink::sql_gateway::{OperationStatus, RestSqlGateway, SqlGateway};
use flinkbroker_model::job::{JobId, JobSpec, NewJob, PythonSpec, SqlSpec};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    Job, JobState, RuntimeMode, StatementState, StreamEnd, StreamOperationResultsRequest,
    SubmitSqlRequest, WatchJobRequest,
};
use flinkbroker_store::{SeaStore, Store, pending_statements};
use sql_gateway_standin::StandinConfig;
use tonic::Code;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

const LIMIT: Duration = Duration::from_secs(30);
const FAILING_MID_SCRIPT: &str = "CREATE TEMPORARY VIEW ok AS SELECT 1 AS x;\nSELECT * FROM no_such_table;\nSELECT 'submitted right after';";
const UNBOUNDED_INSERT: &str = "CREATE TABLE gen_unbounded (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE bh_sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO bh_sink SELECT * FROM gen_unbounded;";
const BOUNDED_QUERY: &str = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'number-of-rows'='30', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='30');\nSELECT id FROM gen;";

async fn submit(client: &mut Client, script: &str, mode: RuntimeMode) -> Job {
    client
        .submit_sql(SubmitSqlRequest {
            script: script.into(),
            runtime_mode: mode as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner()
}

/// Reads a result stream to its end; returns the rows' first column and the end.
async fn read_to_end(
    client: &mut Client,
    request: StreamOperationResultsRequest,
) -> (Vec<i64>, StreamEnd) {
    let mut stream = client
        .stream_operation_results(request)
        .await
        .expect("stream")
        .into_inner();
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("the stream ends in time")
            .expect("stream")
            .expect("an end message");
        match message.message {
            Some(Message::Rows(batch)) => {
                for row in batch.rows {
                    if let Some(flinkbroker_proto::value::Kind::IntValue(id)) =
                        row.values.first().and_then(|v| v.kind.clone())
                    {
                        ids.push(id);
                    }
                }
            }
            Some(Message::End(end)) => return (ids, end),
            _ => {}
        }
    }
}

fn results_of(job: &Job, index: Option<u32>) -> StreamOperationResultsRequest {
    StreamOperationResultsRequest {
        job_id: job.id.clone(),
        statement_index: index,
        ..StreamOperationResultsRequest::default()
    }
}

fn jobmanager(broker: &TestBroker) -> RestJobManager {
    RestJobManager::new(&broker.standin.base_url, Duration::from_secs(5)).expect("jobmanager")
}

#[tokio::test]
async fn a_failing_query_mid_script_fails_the_job_and_nothing_after_it_is_submitted() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, FAILING_MID_SCRIPT, RuntimeMode::Batch).await;
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert!(
        failed.state_reason.starts_with("statement 2 failed"),
        "{}",
        failed.state_reason
    );
    assert!(
        failed
            .state_reason
            .contains("Object 'no_such_table' not found"),
        "{}",
        failed.state_reason
    );
    assert_eq!(failed.statements[0].state(), StatementState::Finished);
    assert_eq!(failed.statements[1].state(), StatementState::Failed);
    assert_eq!(failed.statements[2].state(), StatementState::Pending);
    let sent: Vec<String> = broker
        .standin
        .statements()
        .into_iter()
        .map(|s| s.statement)
        .collect();
    assert_eq!(
        sent,
        [
            "CREATE TEMPORARY VIEW ok AS SELECT 1 AS x",
            "SELECT * FROM no_such_table"
        ],
        "the statement after the failure was never submitted"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_failing_query_mid_script_ends_the_streams_waiting_for_it() {
    // The first query takes seconds to give its verdict, so both readers below are waiting
    // when the second one fails.
    let broker = TestBroker::start_with(
        StandinConfig {
            not_ready_pages: 1_000_000,
            submit_delay: Duration::from_secs(2),
            ..StandinConfig::default()
        },
        &[],
    )
    .await;
    let mut client = broker.client().await;
    let script = "SELECT 'slow verdict';\nSELECT * FROM no_such_table;\nSELECT 'never submitted';";
    let job = submit(&mut client, script, RuntimeMode::Batch).await;
    let mut failing_reader = client.clone();
    let failing = tokio::spawn({
        let request = results_of(&job, Some(1));
        async move { read_to_end(&mut failing_reader, request).await }
    });
    let mut last_reader = client.clone();
    let last = tokio::spawn({
        let request = results_of(&job, None);
        async move { read_to_end(&mut last_reader, request).await }
    });
    let (rows, end) = failing.await.expect("reader of statement 2");
    assert!(rows.is_empty());
    assert_eq!(end.reason(), Reason::Failed);
    assert!(end.error.contains("no_such_table"), "{}", end.error);
    let (_, end) = last.await.expect("reader of statement 3");
    assert_eq!(end.reason(), Reason::Failed);
    assert!(end.error.starts_with("statement 2 failed"), "{}", end.error);
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert_eq!(failed.statements[2].state(), StatementState::Pending);
    assert!(
        broker
            .standin
            .statements()
            .iter()
            .all(|s| s.statement != "SELECT 'never submitted'")
    );
    broker.stop().await;
}

#[tokio::test]
async fn cancel_says_canceling_until_the_jobmanager_reports_the_flink_job_stopped() {
    let broker = TestBroker::start_with(
        StandinConfig {
            cancel_delay: Duration::from_secs(2),
            ..StandinConfig::default()
        },
        &[],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, UNBOUNDED_INSERT, RuntimeMode::Streaming).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let flink_job_id = running.statements[2].flink_job_id.clone();
    let mut watcher = client.clone();
    let watched = tokio::spawn({
        let id = job.id.clone();
        async move {
            let mut stream = watcher
                .watch_job(WatchJobRequest { job_id: id })
                .await
                .expect("watch")
                .into_inner();
            let mut states = Vec::new();
            while let Some(job) = stream.message().await.expect("watch stream") {
                states.push(job.state());
            }
            states
        }
    });

    let canceling = cancel(&mut client, &job.id).await;
    assert_eq!(canceling.state(), JobState::Canceling);
    // The JobManager still says RUNNING for a while after the cancel was accepted.
    assert_eq!(
        jobmanager(&broker)
            .job_status(&flink_job_id)
            .await
            .expect("status"),
        FlinkJobStatus::Running
    );
    let again = cancel(&mut client, &job.id).await;
    assert_eq!(again.state(), JobState::Canceling);
    assert_eq!(
        again.history.len(),
        canceling.history.len(),
        "nothing changed"
    );

    let canceled = wait_for_state(&client, &job.id, JobState::Canceled).await;
    assert_eq!(
        jobmanager(&broker)
            .job_status(&flink_job_id)
            .await
            .expect("status"),
        FlinkJobStatus::Canceled,
        "CANCELED only once the JobManager says so"
    );
    let states: Vec<JobState> = canceled.history.iter().map(|h| h.state()).collect();
    assert_eq!(
        &states[states.len() - 2..],
        [JobState::Canceling, JobState::Canceled]
    );
    assert_eq!(
        canceled.statements[2].state(),
        StatementState::Finished,
        "the INSERT had its verdict"
    );
    let watched = watched.await.expect("watcher");
    assert_eq!(
        &watched[watched.len() - 2..],
        [JobState::Canceling, JobState::Canceled]
    );
    let after = cancel(&mut client, &job.id).await;
    assert_eq!(after.state(), JobState::Canceled);
    assert_eq!(after.history.len(), canceled.history.len());
    assert_eq!(after.update_time, canceled.update_time);
    broker.stop().await;
}

#[tokio::test]
async fn a_flink_job_that_does_not_stop_fails_the_cancel_naming_it() {
    let broker = TestBroker::start_with(
        StandinConfig {
            cancel_delay: Duration::from_secs(3600),
            ..StandinConfig::default()
        },
        &["--cancel-timeout", "1s"],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, UNBOUNDED_INSERT, RuntimeMode::Streaming).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let flink_job_id = running.statements[2].flink_job_id.clone();
    assert_eq!(
        cancel(&mut client, &job.id).await.state(),
        JobState::Canceling
    );
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert_eq!(
        failed.state_reason,
        format!(
            "cancel failed: flink job {flink_job_id} did not stop within 1 s (--cancel-timeout)"
        )
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_restarted_broker_takes_a_running_insert_job_up_without_a_gateway_session() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, UNBOUNDED_INSERT, RuntimeMode::Streaming).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    // Every statement has its verdict: the job needs its session no more.
    broker::eventually("the session closed", LIMIT, || async {
        (broker.standin.open_session_count() == 0).then_some(())
    })
    .await;

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let resumed = wait_for_job(&client, &job.id, "resumed", |job| {
        job.history
            .iter()
            .any(|h| h.reason.starts_with("resumed after a broker restart"))
    })
    .await;
    assert_eq!(resumed.state(), JobState::Running);
    assert!(
        resumed.history.iter().any(|h| h.reason
            == "resumed after a broker restart: every statement has its verdict; following its flink jobs"),
        "{:?}",
        resumed.history
    );
    assert_eq!(broker.standin.open_session_count(), 0, "no session opened");
    assert_eq!(
        resumed.statements[2].flink_job_id,
        running.statements[2].flink_job_id
    );
    assert_eq!(
        broker.standin.statements().len(),
        3,
        "nothing was submitted again"
    );
    assert_eq!(
        cancel(&mut client, &job.id).await.state(),
        JobState::Canceling
    );
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_query_without_its_results_after_a_restart_runs_again_under_a_new_flink_job_id() {
    // The query's verdict is slow, so the broker restarts while it waits for it.
    let broker = TestBroker::start_with(
        StandinConfig {
            not_ready_pages: 1_000_000,
            submit_delay: Duration::from_secs(1),
            ..StandinConfig::default()
        },
        &[],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, BOUNDED_QUERY, RuntimeMode::Batch).await;
    broker::eventually("the query was submitted", LIMIT, || async {
        (broker.standin.statements().len() == 2).then_some(())
    })
    .await;
    let first_id = job
        .id
        .parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement(1);

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    // Rows of the earlier run cannot be served again: only row 0 can be asked for.
    let error = client
        .stream_operation_results(StreamOperationResultsRequest {
            resume_from_row: 5,
            ..results_of(&job, None)
        })
        .await
        .expect_err("no resume into an earlier run");
    assert_eq!(error.code(), Code::OutOfRange, "{}", error.message());
    let (ids, end) = read_to_end(&mut client, results_of(&job, None)).await;
    assert_eq!(end.reason(), Reason::EndOfResults);
    assert_eq!(ids, (1..=30).collect::<Vec<i64>>());
    let finished = wait_for_state(&client, &job.id, JobState::Finished).await;
    let query = &finished.statements[1];
    assert_eq!(query.attempt, 1);
    let second_id = job
        .id
        .parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement_attempt(1, 1);
    assert_eq!(query.flink_job_id, second_id);
    assert!(
        finished
            .history
            .iter()
            .any(|h| h.reason.contains("statement 2 runs again (attempt 2)")),
        "{:?}",
        finished.history
    );
    let pinned: Vec<String> = broker
        .standin
        .statements()
        .into_iter()
        .filter_map(|s| s.execution_config.get("$internal.pipeline.job-id").cloned())
        .collect();
    assert_eq!(pinned, [first_id.clone(), second_id], "each attempt once");
    assert!(
        broker
            .standin
            .flink_jobs()
            .iter()
            .all(|(id, status)| id != &first_id || status != "RUNNING"),
        "the first attempt does not run: {:?}",
        broker.standin.flink_jobs()
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_query_without_rows_ends_its_stream_and_its_job() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = "CREATE TABLE nothing (id INT) WITH ('connector'='datagen', 'number-of-rows'='0');\nSELECT id FROM nothing;";
    let job = submit(&mut client, script, RuntimeMode::Batch).await;
    let (ids, end) = read_to_end(&mut client, results_of(&job, None)).await;
    assert!(ids.is_empty());
    assert_eq!(end.reason(), Reason::EndOfResults);
    let finished = wait_for_state(&client, &job.id, JobState::Finished).await;
    assert_eq!(finished.statements[1].state(), StatementState::Finished);
    broker.stop().await;
}

/// Records a job as an earlier run of the broker left it, straight into the broker's database.
async fn record_as_left(database_url: &str, new_job: NewJob, state: JobState) -> JobId {
    use flinkbroker_model::job::JobState as Stored;
    let store = SeaStore::connect(database_url).await.expect("store");
    let id = new_job.id;
    store.create_job(new_job).await.expect("create");
    let stored = match state {
        JobState::Submitting => Stored::Submitting,
        JobState::Running => Stored::Running,
        other => panic!("not a state a job is left in: {other:?}"),
    };
    store
        .transition(id, stored, "left by an earlier run")
        .await
        .expect("transition");
    id
}

/// Starts a Flink job under `pinned` through the stand-in's gateway, as an earlier run of the
/// broker would have (an unbounded INSERT).
async fn start_flink_job(broker: &TestBroker, pinned: &str) {
    let gateway = RestSqlGateway::new(&broker.standin.base_url, Duration::from_secs(5))
        .expect("gateway client");
    let session = gateway
        .open_session("an earlier run", &BTreeMap::new())
        .await
        .expect("session");
    let statements: Vec<&str> = UNBOUNDED_INSERT.split(";\n").collect();
    for (index, statement) in statements.iter().enumerate() {
        let mut config = BTreeMap::new();
        if index == 2 {
            config.insert("$internal.pipeline.job-id".to_string(), pinned.to_string());
        }
        let operation = gateway
            .execute_statement(&session, statement.trim_end_matches(';'), &config)
            .await
            .expect("statement");
        broker::eventually("the statement ran", LIMIT, || async {
            let status = gateway.operation_status(&session, &operation).await.ok()?;
            (status == OperationStatus::Finished).then_some(())
        })
        .await;
    }
    let jobmanager = jobmanager(broker);
    broker::eventually("the flink job runs", LIMIT, || async {
        (jobmanager.job_status(pinned).await.ok() == Some(FlinkJobStatus::Running)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_resumed_insert_whose_flink_job_exists_is_adopted_not_submitted_again() {
    let database = tempfile::tempdir().expect("database dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        database.path().join("broker.db").display()
    );
    let broker = TestBroker::start_with(StandinConfig::default(), &["--database-url", &url]).await;
    // An earlier run recorded the INSERT as being submitted, and the gateway started its Flink
    // job, when the broker died.
    let texts: Vec<String> = UNBOUNDED_INSERT
        .split(";\n")
        .map(|s| s.trim_end_matches(';').to_string())
        .collect();
    let mut statements = pending_statements(&texts);
    let id = JobId::new_random();
    let pinned = id.flink_job_id_for_statement(2);
    statements[0].state = flinkbroker_model::job::StatementState::Finished;
    statements[1].state = flinkbroker_model::job::StatementState::Finished;
    statements[2].state = flinkbroker_model::job::StatementState::Running;
    statements[2].flink_job_id = Some(pinned.clone());
    let new_job = NewJob {
        id,
        request_id: Some("left-mid-insert".into()),
        tenant: "default".into(),
        principal: "anonymous".into(),
        labels: BTreeMap::new(),
        spec: JobSpec::Sql(SqlSpec {
            script: UNBOUNDED_INSERT.into(),
            runtime_mode: flinkbroker_model::job::RuntimeMode::Streaming,
            properties: BTreeMap::new(),
            result_limits: Default::default(),
            restore: None,
        }),
        statements,
        flink_job_id: None,
        created_at: flinkbroker_model::job::now_millis(),
        lease: None,
        audited_as: None,
        lineage: None,
    };
    start_flink_job(&broker, &pinned).await;
    record_as_left(&url, new_job, JobState::Submitting).await;
    let submitted_before = broker.standin.statements().len();

    let broker = broker.restart().await;
    let client = broker.client().await;
    let running = wait_for_state(&client, &id.to_string(), JobState::Running).await;
    assert!(
        running
            .history
            .iter()
            .any(|h| h.reason == format!("resumed after a broker restart: adopted flink job {pinned} of statement 3 (Running)")),
        "{:?}",
        running.history
    );
    let again: Vec<_> = broker.standin.statements()[submitted_before..]
        .iter()
        .filter(|s| s.execution_config.contains_key("$internal.pipeline.job-id"))
        .map(|s| s.statement.clone())
        .collect();
    assert!(again.is_empty(), "submitted again: {again:?}");
    let mut client = client;
    assert_eq!(
        cancel(&mut client, &id.to_string()).await.state(),
        JobState::Canceling
    );
    wait_for_state(&client, &id.to_string(), JobState::Canceled).await;
    assert_eq!(
        jobmanager(&broker)
            .job_status(&pinned)
            .await
            .expect("status"),
        FlinkJobStatus::Canceled
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_resumed_python_job_whose_flink_job_exists_is_adopted_and_followed() {
    let database = tempfile::tempdir().expect("database dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        database.path().join("broker.db").display()
    );
    let broker = TestBroker::start_with(StandinConfig::default(), &["--database-url", &url]).await;
    let id = JobId::new_random();
    let pinned = id.flink_job_id_for_program();
    let new_job = NewJob {
        id,
        request_id: None,
        tenant: "default".into(),
        principal: "anonymous".into(),
        labels: BTreeMap::new(),
        spec: JobSpec::Python(PythonSpec {
            script: Some("print('submitted before the restart')".into()),
            script_url: None,
            entry_module: None,
            py_files: vec![],
            py_archives: vec![],
            py_requirements: None,
            program_args: vec![],
            parallelism: None,
            flink_configuration: BTreeMap::new(),
            inline_py_files: BTreeMap::new(),
            restore: None,
        }),
        statements: vec![],
        flink_job_id: Some(pinned.clone()),
        created_at: flinkbroker_model::job::now_millis(),
        lease: None,
        audited_as: None,
        lineage: None,
    };
    // The submitter had submitted the program's Flink job when the broker died.
    start_flink_job(&broker, &pinned).await;
    record_as_left(&url, new_job, JobState::Submitting).await;

    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let running = wait_for_state(&client, &id.to_string(), JobState::Running).await;
    assert!(
        running.history.iter().any(|h| h.reason
            == format!("resumed after a broker restart: adopted flink job {pinned} (Running)")),
        "{:?}",
        running.history
    );
    assert_eq!(
        cancel(&mut client, &id.to_string()).await.state(),
        JobState::Canceling
    );
    let canceled = wait_for_state(&client, &id.to_string(), JobState::Canceled).await;
    assert_eq!(
        canceled.state_reason,
        format!("canceled by request; flink job {pinned} stopped")
    );
    broker.stop().await;
}
