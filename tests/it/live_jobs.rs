//! Many live jobs at the cost of one: the broker follows every Flink job through one
//! `GET /jobs/overview` per poll interval, holds no gateway session for a job whose
//! statements all have their verdict, and asks the JobManager about one job only when its
//! state changed (for a failure's root cause) or the overview no longer lists it.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::broker::{
    Options, TestBroker, eventually, sql, submit, wait_for_job, wait_for_state,
};
use crate::support::counting_jobmanager::{Call, CountingJobManager};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{Job, JobState, ListJobsRequest, RuntimeMode};
use tonic::transport::Channel;

/// Live jobs per test: enough that one poller per job would show.
const LIVE_JOBS: usize = 24;
/// Overview rounds a steady state is watched for.
const ROUNDS: u64 = 5;

/// A streaming INSERT that runs until cancelled; `n` keeps the table names apart.
fn live_insert(n: usize) -> String {
    format!(
        "CREATE TABLE gen{n} (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\n\
         CREATE TABLE sink{n} (id INT) WITH ('connector'='blackhole');\n\
         INSERT INTO sink{n} SELECT * FROM gen{n};"
    )
}

async fn start(flags: &[&str]) -> TestBroker {
    TestBroker::start_options(Options {
        flags,
        count_jobmanager_calls: true,
        ..Options::default()
    })
    .await
}

fn counted(broker: &TestBroker) -> &CountingJobManager {
    broker.counted.as_deref().expect("counted jobmanager")
}

/// Submits `count` live INSERT jobs and waits until every one is RUNNING with its Flink job.
async fn submit_live(client: &mut JobServiceClient<Channel>, count: usize) -> Vec<Job> {
    let mut ids = Vec::new();
    for n in 0..count {
        let job = submit(client, sql(&live_insert(n), RuntimeMode::Streaming)).await;
        ids.push(job.id);
    }
    let mut running = Vec::new();
    for id in ids {
        running.push(
            wait_for_job(client, &id, "RUNNING with its flink job", |job| {
                job.state() == JobState::Running && !job.statements[2].flink_job_id.is_empty()
            })
            .await,
        );
    }
    running
}

/// Waits until the broker has read the overview `rounds` more times.
async fn overview_rounds(jobmanager: &CountingJobManager, rounds: u64) {
    let from = jobmanager.calls(Call::Overview);
    eventually(
        &format!("{rounds} more reads of /jobs/overview"),
        Duration::from_secs(30),
        || async { (jobmanager.calls(Call::Overview) >= from + rounds).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn live_insert_jobs_are_followed_through_one_overview_and_hold_no_gateway_session() {
    // Health checks ask the gateway too: none within the test.
    let broker = start(&["--health-interval", "1h"]).await;
    let mut client = broker.client().await;
    let jobs = submit_live(&mut client, LIVE_JOBS).await;
    let jobmanager = counted(&broker);
    // Let every driver reach its steady state: one more round after the last RUNNING.
    overview_rounds(jobmanager, 1).await;
    let by_id = jobmanager.calls(Call::Job);
    let heartbeats = broker.standin.heartbeats();
    let gateway = broker.standin.request_counts().gateway;
    overview_rounds(jobmanager, ROUNDS).await;
    assert_eq!(
        jobmanager.calls(Call::Job),
        by_id,
        "no GET /jobs/:jobid while {LIVE_JOBS} jobs run on"
    );
    assert_eq!(
        broker.standin.open_session_count(),
        0,
        "no gateway session is held for jobs whose statements all have their verdict"
    );
    assert_eq!(broker.standin.heartbeats(), heartbeats, "no heartbeats");
    assert_eq!(
        broker.standin.request_counts().gateway,
        gateway,
        "no gateway request at all"
    );
    // A failure still names its root cause, read for the one job that changed only (whether
    // it was a refusal, then the cause).
    let failing = &jobs[3];
    let flink_job_id = failing.statements[2].flink_job_id.clone();
    assert!(
        broker
            .standin
            .fail_flink_job(&flink_job_id, "java.lang.RuntimeException: poison row")
    );
    let failed = wait_for_state(&client, &failing.id, JobState::Failed).await;
    assert!(
        failed.state_reason.contains("poison row") && failed.state_reason.contains(&flink_job_id),
        "{}",
        failed.state_reason
    );
    let exceptions = jobmanager.calls(Call::Exceptions);
    assert!(
        (1..=2).contains(&exceptions),
        "{exceptions} exception reads"
    );
    for job in jobs.iter().filter(|job| job.id != failing.id) {
        let job = wait_for_state(&client, &job.id, JobState::Running).await;
        assert_eq!(job.state(), JobState::Running);
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_flink_job_the_overview_drops_is_asked_about_by_its_id() {
    let broker = start(&[]).await;
    let mut client = broker.client().await;
    let jobs = submit_live(&mut client, 2).await;
    let jobmanager = counted(&broker);
    let (kept, forgotten) = (&jobs[0], &jobs[1]);
    let kept_flink_job = kept.statements[2].flink_job_id.clone();
    let forgotten_flink_job = forgotten.statements[2].flink_job_id.clone();

    // Dropped from the overview but known by its id: the job runs on, and its driver asks
    // for it by id each round.
    jobmanager.unlist(&kept_flink_job);
    let by_id = jobmanager.calls(Call::Job);
    overview_rounds(jobmanager, ROUNDS).await;
    assert!(
        jobmanager.calls(Call::Job) >= by_id + ROUNDS - 1,
        "the driver asks by id while the overview does not list its job"
    );
    assert_eq!(
        wait_for_state(&client, &kept.id, JobState::Running)
            .await
            .state(),
        JobState::Running
    );

    // Known nowhere any more (expired from the JobManager's history): the job fails and says
    // its end is unknown.
    jobmanager.forget(&forgotten_flink_job);
    let failed = wait_for_state(&client, &forgotten.id, JobState::Failed).await;
    assert!(
        failed.state_reason.contains("no longer knows")
            && failed.state_reason.contains(&forgotten_flink_job),
        "{}",
        failed.state_reason
    );
    assert_eq!(
        wait_for_state(&client, &kept.id, JobState::Running)
            .await
            .state(),
        JobState::Running
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_refused_flink_job_opens_the_closed_session_again_and_replays_its_state() {
    let broker = start(&["--refused-job-backoff", "20ms"]).await;
    let mut client = broker.client().await;
    broker.standin.refuse_next_flink_jobs(1);
    let job = submit(&mut client, sql(&live_insert(0), RuntimeMode::Streaming)).await;
    let running = wait_for_job(&client, &job.id, "RUNNING on its second attempt", |job| {
        job.state() == JobState::Running && job.statements[2].attempt == 1
    })
    .await;
    let reasons: Vec<&str> = running.history.iter().map(|e| e.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("session") && r.contains("again and replayed 2 statement(s)")),
        "{reasons:#?}"
    );
    // The rerun's session is closed too once the statement has its verdict again.
    eventually(
        "the rerun's session closed",
        Duration::from_secs(30),
        || async { (broker.standin.open_session_count() == 0).then_some(()) },
    )
    .await;
    let sessions: HashSet<String> = broker
        .standin
        .statements()
        .iter()
        .map(|statement| statement.session_handle.clone())
        .collect();
    assert_eq!(sessions.len(), 2, "the first session and the reopened one");
    broker.stop().await;
}

#[tokio::test]
async fn a_restart_takes_every_live_job_up_again_without_a_gateway_session_or_a_resubmission() {
    let broker = start(&["--resume-concurrency", "2"]).await;
    let mut client = broker.client().await;
    let jobs = submit_live(&mut client, LIVE_JOBS).await;
    let submitted = broker.standin.statements().len();
    let broker = broker.restart().await;
    let client = broker.client().await;
    for job in &jobs {
        let resumed = wait_for_job(&client, &job.id, "taken up again", |job| {
            job.history
                .iter()
                .any(|e| e.reason.contains("resumed after a broker restart"))
        })
        .await;
        assert_eq!(resumed.state(), JobState::Running);
        assert!(
            resumed.history.iter().any(|e| e
                .reason
                .contains("every statement has its verdict; following its flink jobs")),
            "{:#?}",
            resumed.history
        );
    }
    assert_eq!(
        broker.standin.statements().len(),
        submitted,
        "no statement submitted again"
    );
    assert_eq!(broker.standin.open_session_count(), 0);
    let listed = client
        .clone()
        .list_jobs(ListJobsRequest {
            states: vec![JobState::Running as i32],
            page_size: 100,
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.jobs.len(), LIVE_JOBS);
    broker.stop().await;
}
