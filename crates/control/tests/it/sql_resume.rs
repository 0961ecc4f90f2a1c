//! A broker crashes at each step of a SQL job; the next one, on the same store and with the
//! same replica id, resumes the job after `recover` and brings it to its end, and the gateway
//! never sees one pinned Flink job id submitted twice.

use std::collections::BTreeMap;

use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_model::job::{
    Job, JobId, JobSpec, JobState, NewJob, RuntimeMode, SqlSpec, StatementState, now_millis,
};
use flinkbroker_model::sql_script::split_statements;
use flinkbroker_store::{CreateOutcome, Store, pending_statements};
use flinkbroker_testkit::fakes::{GatewayPoint, OnCancel, StatementScript};

use crate::support::{
    LIMIT, REPLICA, World, describe, has_reason, has_reason_starting, states, within,
};

/// Two tables, then an INSERT whose Flink job runs until the test ends it.
const SCRIPT: &str = "CREATE TABLE src (id INT) WITH ('connector'='datagen');\n\
                      CREATE TABLE snk (id INT) WITH ('connector'='blackhole');\n\
                      INSERT INTO snk SELECT id FROM src;";
const CREATE_SRC: &str = "CREATE TABLE src";
const CREATE_SNK: &str = "CREATE TABLE snk";
const INSERT: &str = "INSERT INTO snk";

/// The pinned Flink job id of the INSERT (statement 3, first attempt).
fn insert_job_id(id: JobId) -> String {
    id.flink_job_id_for_statement(2)
}

/// Asserts the gateway saw the pinned id exactly once, and no other.
fn assert_pinned_once(world: &World, pinned: &str) {
    assert_eq!(
        world.gateway.pinned_job_ids(),
        [pinned.to_owned()],
        "each pinned flink job id is submitted once: {:#?}",
        world.gateway.executed()
    );
}

/// Ends the INSERT's Flink job and waits for the job to finish; checks the end state.
async fn finish(broker: &crate::support::Broker, world: &World, job: &Job) -> Job {
    let pinned = insert_job_id(job.id);
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Finished);
    let finished = broker.wait_for_state(job.id, JobState::Finished).await;
    assert_eq!(
        finished.state_reason,
        "all statements ran to their end",
        "{}",
        describe(&finished)
    );
    for statement in &finished.statements {
        assert_eq!(statement.state, StatementState::Finished, "{statement:?}");
        assert_eq!(statement.error, None);
    }
    assert_eq!(
        finished.statements[2].flink_job_id.as_deref(),
        Some(&*pinned)
    );
    finished
}

#[tokio::test]
async fn a_job_recorded_pending_whose_driver_never_ran_is_driven_from_the_start_after_recover() {
    // A broker dies between recording a job and its driver's first step. The controller spawns
    // the driver as it records the job, so this window is set up through the store directly.
    let world = World::new().await;
    let id = JobId::new_random();
    let texts: Vec<String> = split_statements(SCRIPT)
        .expect("a valid script")
        .into_iter()
        .map(|statement| statement.text)
        .collect();
    let lease_until = now_millis() + i64::try_from(LIMIT.as_millis()).expect("millis");
    let new_job = NewJob {
        id,
        request_id: None,
        tenant: "default".into(),
        principal: "tester".into(),
        labels: BTreeMap::new(),
        spec: JobSpec::Sql(SqlSpec {
            script: SCRIPT.into(),
            runtime_mode: RuntimeMode::Streaming,
            properties: BTreeMap::new(),
            result_limits: Default::default(),
            restore: None,
        }),
        statements: pending_statements(&texts),
        flink_job_id: None,
        created_at: now_millis(),
        lease: Some((REPLICA.into(), lease_until)),
        audited_as: None,
        lineage: None,
    };
    let recorded = world.store.create_job(new_job).await.expect("create_job");
    assert!(matches!(recorded, CreateOutcome::Created(_)));

    let broker = world.restart().await;
    let running = broker.wait_for_state(id, JobState::Running).await;
    let history = states(&running);
    assert_eq!(
        &history[..2],
        [JobState::Pending, JobState::Submitting],
        "{}",
        describe(&running)
    );
    assert_eq!(world.gateway.sessions_opened().len(), 1);
    assert_eq!(world.gateway.statements().len(), 3);
    assert_pinned_once(&world, &insert_job_id(id));
    let job = broker.get(id).await;
    finish(&broker, &world, &job).await;
    broker.stop().await;
}

#[tokio::test]
async fn crash_while_opening_the_session_resumes_from_the_first_statement() {
    let world = World::new().await;
    let opening = world.gateway.hold(GatewayPoint::OpenSession);
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    within("the session is being opened", opening.reached()).await;
    // Recorded, but nothing reached the gateway.
    let recorded = world.store.get_job(job.id).await.expect("recorded job");
    assert_eq!(recorded.state, JobState::Submitting);
    assert_eq!(recorded.gateway_session, None);
    assert!(
        recorded
            .statements
            .iter()
            .all(|s| s.state == StatementState::Pending)
    );
    first.crash();

    let second = world.restart().await;
    let running = second.wait_for_state(job.id, JobState::Running).await;
    let session = world.gateway.sessions_opened();
    assert_eq!(session.len(), 1, "the held session was never opened");
    assert!(
        has_reason(
            &running,
            &format!(
                "resumed after a broker restart: the sql gateway session was gone; opened session {} and replayed 0 statement(s) that build session state",
                session[0]
            )
        ),
        "{}",
        describe(&running)
    );
    assert_eq!(world.gateway.statements().len(), 3);
    assert_pinned_once(&world, &insert_job_id(job.id));
    finish(&second, &world, &job).await;
    second.stop().await;
}

#[tokio::test]
async fn crash_before_the_insert_reached_the_gateway_submits_it_once_after_recover() {
    let world = World::new().await;
    let sending = world
        .gateway
        .hold(GatewayPoint::BeforeExecute(INSERT.into()));
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    within("the insert is being sent", sending.reached()).await;
    let pinned = insert_job_id(job.id);
    // Written before sent: RUNNING with its pinned id, no operation yet.
    let recorded = world.store.get_job(job.id).await.expect("recorded job");
    let insert = &recorded.statements[2];
    assert_eq!(insert.state, StatementState::Running);
    assert_eq!(insert.flink_job_id.as_deref(), Some(&*pinned));
    assert_eq!(insert.operation_handle, None);
    let first_session = recorded.gateway_session.clone().expect("a session");
    first.crash();
    assert!(world.gateway.pinned_job_ids().is_empty(), "never arrived");
    assert_eq!(world.jobmanager.status(&pinned), None);

    let second = world.restart().await;
    let running = second.wait_for_state(job.id, JobState::Running).await;
    assert!(
        has_reason(
            &running,
            "resumed after a broker restart: statement 3 is submitted again"
        ),
        "{}",
        describe(&running)
    );
    // The statement in doubt might have run in the old session: a new one starts clean, with
    // the tables created again.
    assert!(world.gateway.sessions_closed().contains(&first_session));
    let sessions = world.gateway.sessions_opened();
    assert_eq!(sessions.len(), 2);
    assert_eq!(running.gateway_session.as_deref(), Some(&*sessions[1]));
    assert_eq!(world.gateway.times_executed(CREATE_SRC), 2);
    assert_eq!(world.gateway.times_executed(CREATE_SNK), 2);
    assert_pinned_once(&world, &pinned);
    assert_eq!(
        world.jobmanager.status(&pinned),
        Some(FlinkJobStatus::Running)
    );
    finish(&second, &world, &job).await;
    second.stop().await;
}

#[tokio::test]
async fn crash_after_the_gateway_took_the_insert_adopts_its_flink_job_after_recover() {
    let world = World::new().await;
    let answering = world
        .gateway
        .hold(GatewayPoint::AfterExecute(INSERT.into()));
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    within("the insert is taken", answering.reached()).await;
    let pinned = insert_job_id(job.id);
    assert_eq!(
        world.jobmanager.status(&pinned),
        Some(FlinkJobStatus::Running)
    );
    // The broker died before it learnt the operation.
    let recorded = world.store.get_job(job.id).await.expect("recorded job");
    assert_eq!(recorded.statements[2].state, StatementState::Running);
    assert_eq!(recorded.statements[2].operation_handle, None);
    first.crash();

    let second = world.restart().await;
    let running = second.wait_for_state(job.id, JobState::Running).await;
    assert!(
        has_reason(
            &running,
            &format!(
                "resumed after a broker restart: adopted flink job {pinned} of statement 3 (Running)"
            )
        ),
        "{}",
        describe(&running)
    );
    assert_eq!(world.gateway.times_executed(INSERT), 1);
    assert_pinned_once(&world, &pinned);
    finish(&second, &world, &job).await;
    second.stop().await;
}

#[tokio::test]
async fn crash_while_a_statement_awaits_its_verdict_takes_it_from_the_same_operation() {
    let world = World::new().await;
    let polling = world.gateway.hold(GatewayPoint::Status(CREATE_SNK.into()));
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    within("the second table awaits its verdict", polling.reached()).await;
    let operation = world
        .gateway
        .operation_of(CREATE_SNK)
        .expect("an operation");
    let recorded = world.store.get_job(job.id).await.expect("recorded job");
    assert_eq!(recorded.statements[1].state, StatementState::Running);
    assert_eq!(
        recorded.statements[1].operation_handle.as_deref(),
        Some(&*operation)
    );
    let session = recorded.gateway_session.clone().expect("a session");
    first.crash();

    let second = world.restart().await;
    let running = second.wait_for_state(job.id, JobState::Running).await;
    for reason in [
        format!("resumed after a broker restart: continuing in sql gateway session {session}"),
        "resumed after a broker restart: statement 2 is still in the sql gateway".to_owned(),
    ] {
        assert!(
            has_reason(&running, &reason),
            "{reason}: {}",
            describe(&running)
        );
    }
    assert_eq!(world.gateway.sessions_opened(), [session]);
    assert_eq!(world.gateway.times_executed(CREATE_SNK), 1);
    assert_eq!(world.gateway.statements().len(), 3);
    assert_pinned_once(&world, &insert_job_id(job.id));
    finish(&second, &world, &job).await;
    second.stop().await;
}

#[tokio::test]
async fn crash_while_running_takes_the_job_up_without_a_session_and_finishes() {
    let world = World::new().await;
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    let running = first.wait_for_state(job.id, JobState::Running).await;
    let pinned = insert_job_id(job.id);
    assert_eq!(
        running.state_reason,
        format!("every statement was submitted; waiting for flink job {pinned} to end")
    );
    // Every statement has its verdict: the session is closed, and so recorded.
    let sessions = world.gateway.sessions_opened();
    assert_eq!(sessions.len(), 1);
    let session = sessions[0].clone();
    within(
        "the session is closed once no statement needs it",
        world
            .gateway
            .wait_until(|gateway| gateway.sessions_closed().contains(&session)),
    )
    .await;
    // WatchJob says nothing of the session: GetJob is read until it is gone from the job.
    within("no session recorded", async {
        while first
            .controller
            .get_job(job.id)
            .await
            .expect("get_job")
            .gateway_session
            .is_some()
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    first.crash();

    let second = world.restart().await;
    let resumed = second
        .wait_for(job.id, "resumed", |job| {
            has_reason_starting(job, "resumed after a broker restart")
        })
        .await;
    assert_eq!(resumed.state, JobState::Running);
    assert!(
        has_reason(
            &resumed,
            "resumed after a broker restart: every statement has its verdict; following its flink jobs"
        ),
        "{}",
        describe(&resumed)
    );
    assert_eq!(world.gateway.statements().len(), 3, "nothing sent again");
    assert_eq!(
        world.gateway.sessions_opened(),
        [session],
        "no session opened again"
    );
    assert_pinned_once(&world, &pinned);
    finish(&second, &world, &job).await;
    second.stop().await;
}

#[tokio::test]
async fn crash_while_canceling_finishes_the_cancel_once_the_jobmanager_says_stopped() {
    let world = World::new().await;
    world.jobmanager.set_on_cancel(OnCancel::Cancelling);
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    first.wait_for_state(job.id, JobState::Running).await;
    let pinned = insert_job_id(job.id);
    assert_eq!(first.cancel(job.id).await.state, JobState::Canceling);
    within(
        "the cancel reaches the jobmanager",
        world
            .jobmanager
            .wait_until(|jm| jm.cancels().contains(&pinned)),
    )
    .await;
    first.crash();

    let second = world.restart().await;
    // The resumed driver asks again, then waits for the JobManager, which says CANCELLING.
    within(
        "the resumed cancel is asked again",
        world.jobmanager.wait_until(|jm| jm.cancels().len() >= 2),
    )
    .await;
    let reads = world.jobmanager.status_reads(&pinned);
    within(
        "the resumed cancel waits for the jobmanager",
        world
            .jobmanager
            .wait_until(|jm| jm.status_reads(&pinned) >= reads + 3),
    )
    .await;
    assert_eq!(
        world.jobmanager.status(&pinned),
        Some(FlinkJobStatus::Cancelling)
    );
    assert_eq!(second.get(job.id).await.state, JobState::Canceling);
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Canceled);
    let canceled = second.wait_for_state(job.id, JobState::Canceled).await;
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
    assert_pinned_once(&world, &pinned);
    second.stop().await;
}

#[tokio::test]
async fn two_crashes_in_a_row_adopt_the_insert_s_flink_job_and_never_submit_it_again() {
    // Two restarts while the INSERT's operation has no verdict yet: each broker finds its Flink
    // job under the pinned id and adopts it.
    let world = World::new().await;
    world
        .gateway
        .script(INSERT, StatementScript::keeps_running());
    let polling = world.gateway.hold(GatewayPoint::Status(INSERT.into()));
    let first = world.broker();
    let job = first.submit_sql(SCRIPT).await;
    within("the insert awaits its verdict", polling.reached()).await;
    first.crash();

    let second = world.restart().await;
    second.wait_for_state(job.id, JobState::Running).await;
    second.crash();

    let third = world.restart().await;
    let resumed = third
        .wait_for(job.id, "resumed twice", |job| {
            job.history
                .iter()
                .filter(|h| h.reason.starts_with("resumed after a broker restart"))
                .count()
                >= 3
        })
        .await;
    assert_eq!(resumed.state, JobState::Running, "{}", describe(&resumed));
    assert_eq!(world.gateway.times_executed(INSERT), 1);
    assert_pinned_once(&world, &insert_job_id(job.id));
    finish(&third, &world, &job).await;
    third.stop().await;
}
