//! A verdict per statement: each statement is recorded with its own state and error, the next
//! one is sent only after it has its verdict, and the first failure fails the job.

use prost::Message as _;

use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_flink::sql_gateway::GatewayError;
use flinkbroker_model::job::{JobState, LogEnd, RuntimeMode, StatementState};
use flinkbroker_store::ResultLog;
use flinkbroker_testkit::fakes::{GatewayCall, Page, StatementScript};
use serde_json::json;

use crate::support::{World, describe, within};

#[tokio::test]
async fn each_statement_gets_its_own_verdict_and_the_first_failure_fails_the_job() {
    const FAILURE: &str = "SQL validation failed. From line 1, column 35 to line 1, column 47: Object 'no_such_table' not found";
    let script = "CREATE TABLE src (id INT) WITH ('connector'='datagen');\n\
                  INSERT INTO snk_ok SELECT id FROM src;\n\
                  INSERT INTO snk_bad SELECT id FROM no_such_table;\n\
                  CREATE TABLE never_sent (id INT);";
    let world = World::new().await;
    world
        .gateway
        .script("no_such_table", StatementScript::fails(FAILURE));
    let broker = world.broker();
    let job = broker.submit_sql(script).await;
    let failed = broker.wait_for_state(job.id, JobState::Failed).await;

    assert_eq!(
        failed.state_reason,
        format!("statement 3 failed: {FAILURE}"),
        "{}",
        describe(&failed)
    );
    let statements = &failed.statements;
    let recorded: Vec<(StatementState, Option<&str>)> = statements
        .iter()
        .map(|s| (s.state, s.error.as_deref()))
        .collect();
    assert_eq!(
        recorded,
        [
            (StatementState::Finished, None),
            (StatementState::Finished, None),
            (StatementState::Failed, Some(FAILURE)),
            (StatementState::Pending, None),
        ]
    );
    let insert_ok = job.id.flink_job_id_for_statement(1);
    let insert_bad = job.id.flink_job_id_for_statement(2);
    assert_eq!(statements[0].flink_job_id, None, "DDL starts no flink job");
    assert_eq!(statements[1].flink_job_id.as_deref(), Some(&*insert_ok));
    // Pinned when it was recorded RUNNING, before it was sent.
    assert_eq!(statements[2].flink_job_id.as_deref(), Some(&*insert_bad));
    assert_eq!(statements[3].flink_job_id, None);

    // Nothing after the failure was sent; each pinned id once.
    let sent = world.gateway.statements();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(sent.iter().all(|s| !s.contains("never_sent")));
    assert_eq!(
        world.gateway.pinned_job_ids(),
        [insert_ok.clone(), insert_bad.clone()]
    );
    assert_eq!(
        world.jobmanager.status(&insert_bad),
        None,
        "a failed statement starts no job"
    );

    // Each statement was sent only after the one before had its verdict: its operation's
    // last status poll comes before the next statement's submission.
    let calls = world.gateway.calls();
    let executed = world.gateway.executed();
    for pair in executed.windows(2) {
        let operation = pair[0].operation.clone().expect("an operation");
        let last_poll = calls
            .iter()
            .rposition(
                |call| matches!(call, GatewayCall::Status { operation: o, .. } if *o == operation),
            )
            .expect("the statement was polled");
        let next_sent = calls
            .iter()
            .position(|call| matches!(call, GatewayCall::Execute { statement, .. } if *statement == pair[1].statement))
            .expect("the next statement was sent");
        assert!(
            last_poll < next_sent,
            "{:?} was sent before {:?} had its verdict",
            pair[1].statement,
            pair[0].statement
        );
    }

    // A failed job leaves nothing running: the earlier INSERT's Flink job is cancelled, and
    // the session is closed.
    within(
        "the earlier insert's flink job is cancelled",
        world
            .jobmanager
            .wait_until(|jm| jm.cancels().contains(&insert_ok)),
    )
    .await;
    assert_eq!(world.jobmanager.cancels(), std::slice::from_ref(&insert_ok));
    assert_eq!(
        world.jobmanager.status(&insert_ok),
        Some(FlinkJobStatus::Canceled)
    );
    let session = world.gateway.sessions_opened()[0].clone();
    within(
        "the session is closed",
        world
            .gateway
            .wait_until(|gateway| gateway.sessions_closed().contains(&session)),
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn a_statement_the_gateway_refuses_fails_the_job_with_the_gateways_message() {
    const REFUSAL: &str = "SQL parse failed. Encountered \"FROM\" at line 1, column 8.";
    let world = World::new().await;
    world.gateway.script(
        "SELECT FROM",
        StatementScript::refused(GatewayError::StatementFailed {
            message: REFUSAL.into(),
        }),
    );
    let broker = world.broker();
    let job = broker
        .submit_sql(
            "CREATE TABLE src (id INT);\nSELECT FROM src;\nCREATE TABLE never_sent (id INT);",
        )
        .await;
    let failed = broker.wait_for_state(job.id, JobState::Failed).await;

    assert_eq!(
        failed.state_reason,
        format!("statement 2 failed: {REFUSAL}")
    );
    assert_eq!(failed.statements[0].state, StatementState::Finished);
    let refused = &failed.statements[1];
    assert_eq!(refused.state, StatementState::Failed);
    assert_eq!(refused.error.as_deref(), Some(REFUSAL));
    assert_eq!(
        refused.operation_handle, None,
        "the gateway created no operation"
    );
    assert_eq!(failed.statements[2].state, StatementState::Pending);
    let executed = world.gateway.executed();
    assert_eq!(executed.len(), 2);
    assert_eq!(executed[1].operation, None);
    assert!(world.jobmanager.jobs().is_empty(), "no flink job started");
    broker.stop().await;
}

#[tokio::test]
async fn a_query_logs_every_page_before_its_statement_and_the_job_finish() {
    let world = World::new().await;
    let columns = [("id", "INTEGER")];
    world.gateway.script(
        "SELECT id FROM gen",
        StatementScript::query(vec![
            Page::rows(
                &columns,
                vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]],
            ),
            Page::rows(&columns, vec![vec![json!(4)], vec![json!(5)]]),
        ]),
    );
    let broker = world.broker();
    let job = broker
        .submit_sql_as(
            "CREATE TABLE gen (id INT) WITH ('connector'='datagen');\nSELECT id FROM gen;",
            RuntimeMode::Batch,
        )
        .await;
    let finished = broker.wait_for_state(job.id, JobState::Finished).await;
    let query = &finished.statements[1];
    assert!(query.is_query);
    assert_eq!(
        query.state,
        StatementState::Finished,
        "{}",
        describe(&finished)
    );

    let log = world
        .store
        .read_log(job.id, 1, 0, 100, u64::MAX)
        .await
        .expect("read the log")
        .expect("the query has a log");
    assert_eq!(log.head.rows_logged, 5);
    assert_eq!(log.head.end, Some(LogEnd::EndOfResults));
    let mut ids = Vec::new();
    for batch in &log.batches {
        let rows = flinkbroker_proto::RowBatch::decode(batch.data.as_slice()).expect("a row batch");
        for row in rows.rows {
            match row.values.first().and_then(|v| v.kind.clone()) {
                Some(flinkbroker_proto::value::Kind::IntValue(id)) => ids.push(id),
                other => panic!("not an int: {other:?}"),
            }
        }
    }
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    // Each page fetched in order; the query ran once under its pinned id, whose Flink job
    // ended with its results.
    let operation = world
        .gateway
        .operation_of("SELECT id FROM gen")
        .expect("an operation");
    let tokens: Vec<u64> = world
        .gateway
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            GatewayCall::Fetch {
                operation: o,
                token,
                ..
            } if o == operation => Some(token),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, [0, 1, 2]);
    let pinned = job.id.flink_job_id_for_statement(1);
    assert_eq!(
        world.gateway.pinned_job_ids(),
        std::slice::from_ref(&pinned)
    );
    assert_eq!(
        world.jobmanager.status(&pinned),
        Some(FlinkJobStatus::Finished)
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_flink_job_that_fails_fails_its_statement_s_job_with_the_root_cause() {
    let world = World::new().await;
    let broker = world.broker();
    let job = broker
        .submit_sql(
            "CREATE TABLE src (id INT) WITH ('connector'='datagen');\n\
             CREATE TABLE snk (id INT) WITH ('connector'='blackhole');\n\
             INSERT INTO snk SELECT id FROM src;",
        )
        .await;
    broker.wait_for_state(job.id, JobState::Running).await;
    let pinned = job.id.flink_job_id_for_statement(2);
    world
        .jobmanager
        .set_root_cause(&pinned, "java.lang.ArithmeticException: / by zero");
    world.jobmanager.set_status(&pinned, FlinkJobStatus::Failed);
    let failed = broker.wait_for_state(job.id, JobState::Failed).await;
    assert_eq!(
        failed.state_reason,
        format!("statement 3: flink job {pinned} failed: java.lang.ArithmeticException: / by zero")
    );
    // Every statement had its verdict; the Flink job failed after.
    assert!(
        failed
            .statements
            .iter()
            .all(|s| s.state == StatementState::Finished),
        "{:?}",
        failed.statements
    );
    assert_eq!(
        world.jobmanager.cancels(),
        Vec::<String>::new(),
        "nothing left to stop"
    );
    broker.stop().await;
}
