//! CancelJob while a SQL job's statement is being submitted or awaits its verdict: the job is
//! CANCELING at once, the cancel reaches the JobManager, and the job is CANCELED only once the
//! JobManager says its Flink job stopped.

use std::task::Poll;
use std::time::Duration;

use flinkbroker_control::CancelOptions;
use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_model::job::{Job, JobState, StatementState};
use flinkbroker_testkit::fakes::{GatewayCall, GatewayPoint, OnCancel, StatementScript};

use crate::support::{Broker, World, describe, limits, states, within};

const SCRIPT: &str = "CREATE TABLE src (id INT) WITH ('connector'='datagen');\n\
                      CREATE TABLE snk (id INT) WITH ('connector'='blackhole');\n\
                      INSERT INTO snk SELECT id FROM src;";
const INSERT: &str = "INSERT INTO snk";

/// A world whose INSERT never gets a verdict from the gateway (its Flink job starts) and whose
/// JobManager takes its time to stop a cancelled job.
async fn slow_world() -> World {
    let world = World::new().await;
    world
        .gateway
        .script(INSERT, StatementScript::keeps_running());
    world.jobmanager.set_on_cancel(OnCancel::Cancelling);
    world
}

/// Waits until the JobManager was asked about the Flink job a few more times after the cancel,
/// checks the job is still CANCELING, then stops the Flink job and waits for CANCELED.
async fn stop_and_wait(world: &World, broker: &Broker, job: &Job, pinned: &str) -> Job {
    within(
        "the driver waits for the flink job to stop",
        world
            .jobmanager
            .wait_until(|jm| jm.status_reads_after_cancel(pinned) >= 3),
    )
    .await;
    assert_eq!(
        world.jobmanager.status(pinned),
        Some(FlinkJobStatus::Cancelling)
    );
    let meanwhile = broker.get(job.id).await;
    assert_eq!(
        meanwhile.state,
        JobState::Canceling,
        "not CANCELED while the jobmanager says CANCELLING: {}",
        describe(&meanwhile)
    );
    world
        .jobmanager
        .set_status(pinned, FlinkJobStatus::Canceled);
    let canceled = broker.wait_for_state(job.id, JobState::Canceled).await;
    assert_eq!(
        canceled.state_reason,
        "canceled by request; every flink job it started has stopped"
    );
    let history = states(&canceled);
    assert_eq!(
        &history[history.len() - 2..],
        [JobState::Canceling, JobState::Canceled],
        "{}",
        describe(&canceled)
    );
    canceled
}

#[tokio::test]
async fn cancel_while_a_statement_awaits_its_verdict_ends_canceled_only_after_the_jobmanager_stopped_it()
 {
    let world = slow_world().await;
    let broker = world.broker();
    let job = broker.submit_sql(SCRIPT).await;
    within(
        "the insert is polled for its verdict",
        world
            .gateway
            .wait_until(|gateway| gateway.status_polls(INSERT) >= 2),
    )
    .await;
    let pinned = job.id.flink_job_id_for_statement(2);
    let submitting = broker.get(job.id).await;
    assert_eq!(submitting.state, JobState::Submitting);
    assert_eq!(submitting.statements[2].state, StatementState::Running);

    let canceling = broker.cancel(job.id).await;
    assert_eq!(
        canceling.state,
        JobState::Canceling,
        "{}",
        describe(&canceling)
    );
    let again = broker.cancel(job.id).await;
    assert_eq!(again.state, JobState::Canceling);
    assert_eq!(
        again.history.len(),
        canceling.history.len(),
        "a second cancel changes nothing"
    );

    within(
        "the cancel reaches the jobmanager",
        world
            .jobmanager
            .wait_until(|jm| jm.cancels().contains(&pinned)),
    )
    .await;
    // The statement's operation was cancelled in the gateway too.
    let operation = world.gateway.operation_of(INSERT).expect("an operation");
    assert!(world.gateway.calls().iter().any(
        |call| matches!(call, GatewayCall::CancelOperation { operation: o, .. } if *o == operation)
    ));

    let canceled = stop_and_wait(&world, &broker, &job, &pinned).await;
    let statements: Vec<StatementState> = canceled.statements.iter().map(|s| s.state).collect();
    assert_eq!(
        statements,
        [
            StatementState::Finished,
            StatementState::Finished,
            StatementState::Canceled
        ]
    );
    assert_eq!(world.gateway.times_executed(INSERT), 1);
    let session = world.gateway.sessions_opened()[0].clone();
    within(
        "the session is closed",
        world
            .gateway
            .wait_until(|gateway| gateway.sessions_closed().contains(&session)),
    )
    .await;
    let after = broker.cancel(job.id).await;
    assert_eq!(after.state, JobState::Canceled);
    assert_eq!(after.history.len(), canceled.history.len());
    broker.stop().await;
}

#[tokio::test]
async fn cancel_while_a_statement_is_being_submitted_is_taken_after_the_submission_and_stops_its_flink_job()
 {
    let world = slow_world().await;
    let sending = world
        .gateway
        .hold(GatewayPoint::BeforeExecute(INSERT.into()));
    let broker = world.broker();
    let job = broker.submit_sql(SCRIPT).await;
    within("the insert is being sent", sending.reached()).await;
    let pinned = job.id.flink_job_id_for_statement(2);

    // The cancel is queued for the driver, which is inside the submission: no answer yet.
    let canceling = {
        let cancel = broker
            .controller
            .cancel_job(job.id, CancelOptions::default());
        tokio::pin!(cancel);
        assert!(matches!(futures::poll!(cancel.as_mut()), Poll::Pending));
        sending.release();
        within("the cancel is answered", cancel)
            .await
            .expect("cancel_job")
    };
    assert_eq!(
        canceling.state,
        JobState::Canceling,
        "{}",
        describe(&canceling)
    );
    // The submission went through under its pinned id before the cancel was taken.
    let insert = &canceling.statements[2];
    assert_eq!(insert.state, StatementState::Running);
    assert_eq!(insert.flink_job_id.as_deref(), Some(&*pinned));
    assert_eq!(
        insert.operation_handle,
        world.gateway.operation_of(INSERT),
        "{insert:?}"
    );
    within(
        "the cancel reaches the jobmanager",
        world
            .jobmanager
            .wait_until(|jm| jm.cancels().contains(&pinned)),
    )
    .await;
    let canceled = stop_and_wait(&world, &broker, &job, &pinned).await;
    assert_eq!(canceled.statements[2].state, StatementState::Canceled);
    assert_eq!(world.gateway.pinned_job_ids(), [pinned]);
    broker.stop().await;
}

#[tokio::test]
async fn a_flink_job_that_does_not_stop_within_the_cancel_timeout_fails_the_cancel_naming_it() {
    let world = World::new().await;
    world.jobmanager.set_on_cancel(OnCancel::Ignore);
    let broker = world.broker_with(flinkbroker_control::Limits {
        cancel_timeout: Duration::from_secs(1),
        ..limits()
    });
    let job = broker.submit_sql(SCRIPT).await;
    broker.wait_for_state(job.id, JobState::Running).await;
    let pinned = job.id.flink_job_id_for_statement(2);
    assert_eq!(broker.cancel(job.id).await.state, JobState::Canceling);
    let failed = broker.wait_for_state(job.id, JobState::Failed).await;
    assert_eq!(
        failed.state_reason,
        format!("cancel failed: flink job {pinned} did not stop within 1 s (--cancel-timeout)")
    );
    assert_eq!(
        world.jobmanager.status(&pinned),
        Some(FlinkJobStatus::Running)
    );
    assert!(!world.jobmanager.cancels().is_empty());
    broker.stop().await;
}
