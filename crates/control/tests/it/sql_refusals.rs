//! A query whose Flink job the cluster refuses at once (`NoResourceAvailableException`, no task
//! deployed) after its first page was logged: the drain's failure is the refusal, and the query
//! runs again under its next attempt's pinned id, its log starting again.

use std::time::Duration;

use flinkbroker_control::Limits;
use flinkbroker_flink::sql_gateway::OperationStatus;
use flinkbroker_model::job::{JobState, RuntimeMode};
use flinkbroker_store::ResultLog;
use flinkbroker_testkit::fakes::{GatewayPoint, Page, StatementScript};
use serde_json::json;

use crate::support::{World, describe, limits, within};

const QUERY: &str = "SELECT id FROM gen";
const REFUSAL: &str = "org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could not acquire the minimum required resources.";

#[tokio::test]
async fn a_query_refused_while_its_results_are_drained_runs_again_as_its_next_attempt() {
    let world = World::new().await;
    let columns = [("id", "INTEGER")];
    world.gateway.script(
        QUERY,
        StatementScript::query(vec![
            Page::rows(&columns, vec![vec![json!(1)], vec![json!(2)]]),
            Page::rows(&columns, vec![vec![json!(3)]]),
        ]),
    );
    let broker = world.broker_with(Limits {
        refused_job_backoff: Duration::from_millis(5),
        ..limits()
    });
    // The first page (token 0) waits on `first`; the drain's next fetch waits on `next`.
    let first = world.gateway.hold(GatewayPoint::Fetch(QUERY.into()));
    let job = broker
        .submit_sql_as(
            "CREATE TABLE gen (id INT) WITH ('connector'='datagen');\nSELECT id FROM gen;",
            RuntimeMode::Batch,
        )
        .await;
    within("the first fetch", first.reached()).await;
    let next = world.gateway.hold(GatewayPoint::Fetch(QUERY.into()));
    first.release();
    within("the drain's next fetch", next.reached()).await;
    // The cluster fails the query's job before any task ran; the gateway then fails the fetch.
    let attempt0 = job.id.flink_job_id_for_statement_attempt(1, 0);
    world.jobmanager.refuse(&attempt0, REFUSAL);
    world.gateway.set_status(QUERY, OperationStatus::Error);
    next.release();

    let finished = broker.wait_for_state(job.id, JobState::Finished).await;
    let attempt1 = job.id.flink_job_id_for_statement_attempt(1, 1);
    assert_eq!(
        world.gateway.pinned_job_ids(),
        [attempt0.clone(), attempt1.clone()],
        "{}",
        describe(&finished)
    );
    assert_eq!(finished.statements[1].attempt, 1);
    assert_eq!(
        finished.statements[1].flink_job_id.as_deref(),
        Some(&*attempt1)
    );
    assert!(
        finished
            .history
            .iter()
            .any(|entry| entry.reason.contains(&attempt0)
                && entry.reason.contains("runs again as attempt 2")),
        "{}",
        describe(&finished)
    );
    let log = world
        .store
        .read_log(job.id, 1, 0, 100, u64::MAX)
        .await
        .expect("read the log")
        .expect("a log");
    assert_eq!(log.head.attempt, 1, "the log holds the attempt that ran");
    assert_eq!(log.head.rows_logged, 3);
    broker.stop().await;
}
