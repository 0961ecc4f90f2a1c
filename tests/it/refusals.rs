//! Flink's fast refusals, through the gRPC API against the stand-in: a job the cluster fails
//! at once with `NoResourceAvailableException`, before any task ran, runs again under its
//! statement's next pinned Flink job id, up to `--refused-job-retries` times.

use crate::support::broker;

use broker::{TestBroker, sql, submit, wait_for_job, wait_for_state};
use flinkbroker_model::job::JobId;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{JobState, RuntimeMode, StreamOperationResultsRequest, SubmitSqlRequest};
use flinkbroker_testkit::standin::StandinConfig;

const GEN: &str = "CREATE TABLE gen (id INT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='10', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='10')";
const SINK: &str = "CREATE TABLE print_sink (id INT, name STRING) WITH ('connector'='print')";
const REFUSAL: &str = "NoResourceAvailableException";

/// The pinned Flink job id of statement `index`'s attempt `attempt` of job `id`.
fn pinned(id: &str, index: u32, attempt: u32) -> String {
    id.parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement_attempt(index, attempt)
}

/// The pinned ids the stand-in was asked to run, in order.
fn submitted_ids(broker: &TestBroker) -> Vec<String> {
    broker
        .standin
        .statements()
        .iter()
        .filter_map(|s| s.execution_config.get("$internal.pipeline.job-id").cloned())
        .collect()
}

/// A batch job whose third statement, an INSERT, starts a Flink job.
fn insert_script() -> SubmitSqlRequest {
    sql(
        &format!("{GEN};\n{SINK};\nINSERT INTO print_sink SELECT * FROM gen;"),
        RuntimeMode::Batch,
    )
}

async fn start(flags: &[&str]) -> TestBroker {
    TestBroker::start_with(StandinConfig::default(), flags).await
}

#[tokio::test]
async fn an_insert_the_cluster_refuses_at_once_runs_again_under_its_next_pinned_id() {
    let broker = start(&["--refused-job-backoff", "20ms"]).await;
    let mut client = broker.client().await;
    broker.standin.refuse_next_flink_jobs(2);
    let job = submit(&mut client, insert_script()).await;
    let done = wait_for_job(&client, &job.id, "FINISHED or FAILED", |job| {
        matches!(job.state(), JobState::Finished | JobState::Failed)
    })
    .await;
    assert_eq!(done.state(), JobState::Finished, "{}", done.state_reason);
    let attempts: Vec<String> = (0..3).map(|a| pinned(&job.id, 2, a)).collect();
    assert_eq!(
        submitted_ids(&broker),
        attempts,
        "one submission per attempt"
    );
    assert_eq!(done.statements[2].flink_job_id, attempts[2]);
    let jobs = broker.standin.flink_jobs();
    for (attempt, status) in [(0, "FAILED"), (1, "FAILED"), (2, "FINISHED")] {
        assert!(
            jobs.iter()
                .any(|(id, s)| id == &attempts[attempt] && s == status),
            "attempt {attempt} {status}: {jobs:?}"
        );
    }
    let retries: Vec<&str> = done
        .history
        .iter()
        .map(|entry| entry.reason.as_str())
        .filter(|reason| reason.contains(REFUSAL))
        .collect();
    assert_eq!(retries.len(), 2, "{:#?}", done.history);
    assert!(
        retries[0].contains(&attempts[0]) && retries[0].contains("runs again as attempt 2"),
        "{}",
        retries[0]
    );
    assert!(
        retries[1].contains(&attempts[1]) && retries[1].contains("runs again as attempt 3"),
        "{}",
        retries[1]
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_refused_query_runs_again_and_streams_its_rows_from_the_attempt_that_ran() {
    let broker = start(&["--refused-job-backoff", "20ms"]).await;
    let mut client = broker.client().await;
    broker.standin.refuse_next_flink_jobs(1);
    let job = submit(
        &mut client,
        sql(&format!("{GEN};\nSELECT * FROM gen;"), RuntimeMode::Batch),
    )
    .await;
    let done = wait_for_state(&client, &job.id, JobState::Finished).await;
    assert_eq!(
        submitted_ids(&broker),
        vec![pinned(&job.id, 1, 0), pinned(&job.id, 1, 1)]
    );
    let mut stream = client
        .stream_operation_results(StreamOperationResultsRequest {
            job_id: job.id.clone(),
            ..StreamOperationResultsRequest::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut rows = 0;
    while let Some(message) = stream.message().await.expect("message") {
        match message.message {
            Some(Message::Rows(batch)) => {
                assert_eq!(batch.attempt, 1, "the rows of the attempt that ran");
                rows += batch.rows.len();
            }
            Some(Message::End(end)) => {
                assert_eq!(end.rows_sent, 10, "{}", end.error);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(rows, 10);
    assert!(
        done.history.iter().any(|e| e.reason.contains(REFUSAL)),
        "{:#?}",
        done.history
    );
    broker.stop().await;
}

#[tokio::test]
async fn past_the_retry_limit_the_job_fails_with_the_refusal_as_its_cause() {
    let broker = start(&[
        "--refused-job-retries",
        "1",
        "--refused-job-backoff",
        "20ms",
    ])
    .await;
    let mut client = broker.client().await;
    broker.standin.refuse_next_flink_jobs(5);
    let job = submit(&mut client, insert_script()).await;
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert!(
        failed.state_reason.contains(REFUSAL)
            && failed.state_reason.contains(&pinned(&job.id, 2, 1)),
        "{}",
        failed.state_reason
    );
    assert_eq!(
        submitted_ids(&broker),
        vec![pinned(&job.id, 2, 0), pinned(&job.id, 2, 1)],
        "one retry, as --refused-job-retries says"
    );
    assert!(
        failed
            .history
            .iter()
            .any(|e| e.reason.contains("--refused-job-retries")),
        "{:#?}",
        failed.history
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_job_that_ran_a_task_before_it_lacked_resources_is_not_run_again() {
    let broker = start(&["--refused-job-backoff", "20ms"]).await;
    let mut client = broker.client().await;
    let job = submit(
        &mut client,
        sql(
            "CREATE TABLE endless (id INT) WITH ('connector'='datagen');\nCREATE TABLE bh (id INT) WITH ('connector'='blackhole');\nINSERT INTO bh SELECT * FROM endless;",
            RuntimeMode::Streaming,
        ),
    )
    .await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let flink_job_id = running.statements[2].flink_job_id.clone();
    assert!(broker.standin.fail_flink_job(
        &flink_job_id,
        "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could not acquire the minimum required resources."
    ));
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert!(
        failed.state_reason.contains(REFUSAL),
        "{}",
        failed.state_reason
    );
    assert_eq!(submitted_ids(&broker), vec![flink_job_id]);
    broker.stop().await;
}
