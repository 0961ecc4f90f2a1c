//! UpgradeJob through the gRPC API, against the stand-in's gateway and JobManager: the running
//! revision stopped with a savepoint and the new one started from it, a revision that fails
//! to start rolled back from the same savepoint, the lineage in GetJob and ListJobs, a broker
//! restarted in the middle of an upgrade, and the refusals. Python revisions on a real
//! cluster are in `python_local_flink`.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use broker::{TestBroker, wait_for_job, wait_for_state};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{
    ClaimMode, GetJobRequest, Job, JobState, ListJobsRequest, Restore, RuntimeMode,
    SavepointFormat, SubmitPythonRequest, SubmitSqlRequest, UpgradeJobRequest, savepoint,
    submit_python_request::Program, upgrade, upgrade_job_request::Revision,
};
use sql_gateway_standin::StandinConfig;
use tonic::Code;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

const SOURCE: &str = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');\nCREATE TABLE sink_b (id INT) WITH ('connector'='blackhole')";

fn script(insert: &str) -> String {
    format!("{SOURCE};\n{insert}")
}

/// Flags that let an upgrade finish quickly: the new revision counts as started once its
/// Flink job has run for 100 ms.
const FAST: &[&str] = &["--upgrade-running-for", "100ms"];

async fn submit(client: &mut Client, script: &str) -> Job {
    client
        .submit_sql(SubmitSqlRequest {
            script: script.into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            labels: [("team".to_owned(), "recs".to_owned())].into(),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner()
}

fn upgrade_to(job_id: &str, script: &str, request_id: &str) -> UpgradeJobRequest {
    UpgradeJobRequest {
        job_id: job_id.into(),
        revision: Some(Revision::Sql(SubmitSqlRequest {
            script: script.into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            ..SubmitSqlRequest::default()
        })),
        savepoint_directory: "file:///savepoints/upgrades".into(),
        savepoint_format: SavepointFormat::Canonical as i32,
        allow_non_restored_state: true,
        claim_mode: ClaimMode::NoClaim as i32,
        request_id: request_id.into(),
    }
}

async fn get(client: &mut Client, id: &str) -> Job {
    client
        .get_job(GetJobRequest { job_id: id.into() })
        .await
        .expect("get")
        .into_inner()
}

async fn wait_for_step(client: &Client, id: &str, step: upgrade::Step) -> Job {
    wait_for_job(client, id, &format!("upgrade step {step:?}"), |job| {
        job.upgrade.as_ref().is_some_and(|u| u.step() == step)
    })
    .await
}

/// The Flink job of the one INSERT statement of a revision.
fn insert_flink_job(job: &Job) -> String {
    job.statements
        .iter()
        .find(|s| s.sql.starts_with("INSERT"))
        .map(|s| s.flink_job_id.clone())
        .unwrap_or_default()
}

fn flink_job_status(broker: &TestBroker, flink_job_id: &str) -> String {
    broker
        .standin
        .flink_jobs()
        .into_iter()
        .find(|(id, _)| id == flink_job_id)
        .map(|(_, status)| status)
        .unwrap_or_default()
}

#[tokio::test]
async fn an_upgrade_stops_the_running_revision_with_a_savepoint_and_starts_the_next_from_it() {
    let broker = TestBroker::start_with(StandinConfig::default(), FAST).await;
    let mut client = broker.client().await;
    let first = submit(&mut client, &script("INSERT INTO sink_a SELECT * FROM gen")).await;
    let running = wait_for_state(&client, &first.id, JobState::Running).await;
    assert_eq!(running.revision, 1);
    assert_eq!(
        running.lineage_id, first.id,
        "revision 1 starts its lineage"
    );
    assert!(running.upgrade.is_none());
    let first_flink_job = insert_flink_job(&running);

    let new_script = script("INSERT INTO sink_b SELECT * FROM gen");
    let second = client
        .upgrade_job(upgrade_to(&first.id, &new_script, "upgrade-1"))
        .await
        .expect("upgrade")
        .into_inner();
    assert_ne!(second.id, first.id, "a revision is a job of its own");
    assert_eq!(second.revision, 2);
    assert_eq!(second.lineage_id, first.id);
    let recorded = second.upgrade.clone().expect("the upgrade");
    assert_eq!(recorded.kind(), upgrade::Kind::Upgrade);
    assert_eq!(recorded.previous_job_id, first.id);
    assert_eq!(recorded.step(), upgrade::Step::StoppingPrevious);
    assert_eq!(recorded.savepoint_directory, "file:///savepoints/upgrades");
    assert_eq!(
        second.labels.get("team").map(String::as_str),
        Some("recs"),
        "empty labels keep the job's"
    );

    // Step 1: the running revision stopped with a savepoint.
    let done = wait_for_step(&client, &second.id, upgrade::Step::Done).await;
    let stopped = get(&mut client, &first.id).await;
    assert_eq!(
        stopped.state(),
        JobState::Canceled,
        "{}",
        stopped.state_reason
    );
    let stop = stopped
        .savepoints
        .iter()
        .find(|s| s.kind() == savepoint::Kind::Stop)
        .expect("the stop's savepoint");
    assert_eq!(stop.state(), savepoint::State::Completed);
    assert!(
        stop.location
            .starts_with("file:/savepoints/upgrades/savepoint-"),
        "{}",
        stop.location
    );
    assert_eq!(flink_job_status(&broker, &first_flink_job), "FINISHED");

    // Step 2: the new revision restored from it, only in its INSERT.
    assert_eq!(done.state(), JobState::Running, "{}", done.state_reason);
    let restore = done.restore.clone().expect("the restore");
    assert_eq!(restore.savepoint_path, stop.location);
    assert!(restore.allow_non_restored_state);
    assert_eq!(done.savepoint_chain, vec![stop.location.clone()]);
    let upgrade = done.upgrade.clone().expect("the upgrade");
    assert_eq!(upgrade.savepoint_path, stop.location);
    let insert = broker
        .standin
        .statements()
        .into_iter()
        .find(|s| s.statement == "INSERT INTO sink_b SELECT * FROM gen")
        .expect("the new revision's insert");
    assert_eq!(
        insert
            .execution_config
            .get("execution.state-recovery.path")
            .map(String::as_str),
        Some(stop.location.as_str()),
        "{:?}",
        insert.execution_config
    );
    // Step 3: it runs; the history says what happened, in order.
    assert_eq!(
        flink_job_status(&broker, &insert_flink_job(&done)),
        "RUNNING"
    );
    let reasons: Vec<&str> = done.history.iter().map(|h| h.reason.as_str()).collect();
    let position = |text: &str| {
        reasons
            .iter()
            .position(|r| r.starts_with(text))
            .unwrap_or_else(|| panic!("no {text:?} in {reasons:#?}"))
    };
    assert!(
        position("upgrade: stopping revision 1") < position("upgrade: revision 1 (job")
            && position("upgrade: revision 1 (job") < position("upgrade done: revision 2 runs"),
        "{reasons:#?}"
    );

    // The lineage lists both revisions, newest first.
    let lineage = client
        .list_jobs(ListJobsRequest {
            lineage_id: first.id.clone(),
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<&str> = lineage.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, vec![second.id.as_str(), first.id.as_str()]);

    // The same request id returns the same revision; the stopped revision is not upgraded
    // again, and the one that replaced it says so.
    let repeated = client
        .upgrade_job(upgrade_to(&first.id, &new_script, "upgrade-1"))
        .await
        .expect("repeated upgrade")
        .into_inner();
    assert_eq!(repeated.id, second.id);
    let again = client
        .upgrade_job(upgrade_to(&first.id, &new_script, ""))
        .await
        .expect_err("the first revision is over");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again
            .message()
            .contains("is CANCELED; only a RUNNING job can be upgraded"),
        "{}",
        again.message()
    );

    // Revision 3 upgrades revision 2: the chain grows.
    let third = client
        .upgrade_job(upgrade_to(
            &second.id,
            &script("INSERT INTO sink_a SELECT id + 1 FROM gen"),
            "",
        ))
        .await
        .expect("second upgrade")
        .into_inner();
    assert_eq!(third.revision, 3);
    assert_eq!(third.lineage_id, first.id);
    let third = wait_for_step(&client, &third.id, upgrade::Step::Done).await;
    assert_eq!(
        third.savepoint_chain.len(),
        2,
        "{:?}",
        third.savepoint_chain
    );
    assert_eq!(third.savepoint_chain[0], stop.location);
    assert_eq!(
        get(&mut client, &second.id).await.state(),
        JobState::Canceled
    );
    broker::cancel(&mut client, &third.id).await;
    wait_for_state(&client, &third.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_revision_that_fails_to_start_is_rolled_back_from_the_same_savepoint() {
    let broker = TestBroker::start_with(StandinConfig::default(), FAST).await;
    let mut client = broker.client().await;
    let original = script("INSERT INTO sink_a SELECT * FROM gen");
    let first = submit(&mut client, &original).await;
    wait_for_state(&client, &first.id, JobState::Running).await;

    // The new revision reads a table that does not exist: it fails when it is submitted.
    let second = client
        .upgrade_job(upgrade_to(
            &first.id,
            &script("INSERT INTO sink_b SELECT * FROM missing_table"),
            "",
        ))
        .await
        .expect("upgrade")
        .into_inner();
    let rolled_back = wait_for_step(&client, &second.id, upgrade::Step::RolledBack).await;
    assert_eq!(rolled_back.state(), JobState::Failed);
    let upgrade = rolled_back.upgrade.clone().expect("the upgrade");
    assert!(
        upgrade.note.starts_with("failed to start (") && upgrade.note.contains("missing_table"),
        "{}",
        upgrade.note
    );
    assert!(
        upgrade.note.contains(&format!(
            "rolled back: revision 3 (job {})",
            upgrade.rollback_job_id
        )),
        "{}",
        upgrade.note
    );

    // Revision 3 runs the first revision's script again from the same savepoint.
    let third = wait_for_step(&client, &upgrade.rollback_job_id, upgrade::Step::Done).await;
    assert_eq!(third.state(), JobState::Running, "{}", third.state_reason);
    assert_eq!(third.revision, 3);
    assert_eq!(third.lineage_id, first.id);
    let rollback = third.upgrade.clone().expect("the rollback");
    assert_eq!(rollback.kind(), upgrade::Kind::Rollback);
    assert_eq!(rollback.previous_job_id, second.id);
    assert_eq!(rollback.savepoint_path, upgrade.savepoint_path);
    assert_eq!(
        third.restore.as_ref().map(|r| r.savepoint_path.as_str()),
        Some(upgrade.savepoint_path.as_str())
    );
    assert_eq!(
        third.statements.last().map(|s| s.sql.as_str()),
        Some("INSERT INTO sink_a SELECT * FROM gen")
    );
    assert!(
        third
            .history
            .iter()
            .any(|h| h.reason.starts_with("rolls back to revision 1")
                && h.reason.contains("missing_table")),
        "{:?}",
        third.history
    );
    // Only the rollback's Flink job runs.
    let running: Vec<String> = broker
        .standin
        .flink_jobs()
        .into_iter()
        .filter(|(_, status)| status == "RUNNING")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(running, vec![insert_flink_job(&third)]);
    broker::cancel(&mut client, &third.id).await;
    wait_for_state(&client, &third.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn an_upgrade_goes_on_after_a_broker_restart_at_each_step() {
    // Slow enough for a restart to land in each step: a stop's savepoint takes 3 s, an
    // INSERT's submission 3 s, and the new revision must run for 2 s.
    let broker = TestBroker::start_with(
        StandinConfig {
            cancel_delay: std::time::Duration::from_secs(3),
            submit_delay: std::time::Duration::from_secs(3),
            ..StandinConfig::default()
        },
        &["--upgrade-running-for", "2s"],
    )
    .await;
    let mut client = broker.client().await;
    let first = submit(&mut client, &script("INSERT INTO sink_a SELECT * FROM gen")).await;
    wait_for_state(&client, &first.id, JobState::Running).await;
    let second = client
        .upgrade_job(upgrade_to(
            &first.id,
            &script("INSERT INTO sink_b SELECT * FROM gen"),
            "",
        ))
        .await
        .expect("upgrade")
        .into_inner();

    // Step 1: restarted while the previous revision stops with its savepoint.
    wait_for_state(&client, &first.id, JobState::Canceling).await;
    let stopping = get(&mut client, &second.id).await;
    assert_eq!(
        stopping.upgrade.as_ref().map(|u| u.step()),
        Some(upgrade::Step::StoppingPrevious)
    );
    let broker = broker.restart().await;
    let client = broker.client().await;

    // Step 2: restarted while the new revision's INSERT is being submitted.
    let submitting = wait_for_job(&client, &second.id, "the new revision submitting", |job| {
        job.state() == JobState::Submitting
            && job.upgrade.as_ref().map(|u| u.step()) == Some(upgrade::Step::Starting)
    })
    .await;
    assert!(
        submitting.restore.is_some(),
        "the restore is recorded first"
    );
    let broker = broker.restart().await;
    let client = broker.client().await;

    // Step 3: restarted while the running revision is watched.
    let starting = wait_for_job(&client, &second.id, "the new revision running", |job| {
        job.state() == JobState::Running
            && job.upgrade.as_ref().map(|u| u.step()) == Some(upgrade::Step::Starting)
    })
    .await;
    let broker = broker.restart().await;
    let client = broker.client().await;
    let done = wait_for_step(&client, &second.id, upgrade::Step::Done).await;
    assert_eq!(done.state(), JobState::Running);
    assert_eq!(insert_flink_job(&done), insert_flink_job(&starting));
    let stopped = wait_for_state(&client, &first.id, JobState::Canceled).await;
    assert_eq!(
        stopped
            .savepoints
            .iter()
            .filter(|s| s.kind() == savepoint::Kind::Stop)
            .count(),
        1,
        "the stop resumed under its trigger id: {:?}",
        stopped.savepoints
    );
    // Exactly one revision runs, and each Flink job was submitted once.
    let flink_jobs = broker.standin.flink_jobs();
    let running: Vec<&String> = flink_jobs
        .iter()
        .filter(|(_, status)| status == "RUNNING")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(running, vec![&insert_flink_job(&done)], "{flink_jobs:?}");
    assert_eq!(flink_jobs.len(), 2, "{flink_jobs:?}");
    broker.stop().await;
}

#[tokio::test]
async fn upgrades_are_refused_with_the_reason() {
    let broker = TestBroker::start_with(StandinConfig::default(), FAST).await;
    let mut client = broker.client().await;
    let job = submit(&mut client, &script("INSERT INTO sink_a SELECT * FROM gen")).await;
    wait_for_state(&client, &job.id, JobState::Running).await;
    let expect_refusal = |code: Code, message: &'static str| {
        move |result: Result<tonic::Response<Job>, tonic::Status>| {
            let error = result.expect_err("refused");
            assert_eq!(error.code(), code, "{}", error.message());
            assert!(
                error.message().contains(message),
                "{message:?} not in {:?}",
                error.message()
            );
        }
    };

    // Another kind of revision.
    expect_refusal(
        Code::InvalidArgument,
        "is a SQL job; its new revision must be SQL too",
    )(
        client
            .upgrade_job(UpgradeJobRequest {
                job_id: job.id.clone(),
                revision: Some(Revision::Python(SubmitPythonRequest {
                    program: Some(Program::Script("print(1)".into())),
                    ..SubmitPythonRequest::default()
                })),
                ..UpgradeJobRequest::default()
            })
            .await,
    );
    // No revision, a revision with its own request id or restore.
    expect_refusal(Code::InvalidArgument, "revision: is required")(
        client
            .upgrade_job(UpgradeJobRequest {
                job_id: job.id.clone(),
                ..UpgradeJobRequest::default()
            })
            .await,
    );
    let mut with_request_id = upgrade_to(&job.id, "SELECT 1", "");
    if let Some(Revision::Sql(sql)) = with_request_id.revision.as_mut() {
        sql.request_id = "inner".into();
    }
    expect_refusal(
        Code::InvalidArgument,
        "revision.sql.request_id: must be empty",
    )(client.upgrade_job(with_request_id).await);
    let mut with_restore = upgrade_to(&job.id, "SELECT 1", "");
    if let Some(Revision::Sql(sql)) = with_restore.revision.as_mut() {
        sql.restore = Some(Restore {
            savepoint_path: "file:///elsewhere".into(),
            ..Restore::default()
        });
    }
    expect_refusal(Code::InvalidArgument, "revision.sql.restore: must be empty")(
        client.upgrade_job(with_restore).await,
    );
    // An unknown job.
    expect_refusal(Code::NotFound, "")(
        client
            .upgrade_job(upgrade_to(
                "00000000-0000-4000-8000-000000000000",
                "SELECT 1",
                "",
            ))
            .await,
    );
    // A job with two INSERTs: which one's state would the new revision take?
    let two = submit(
        &mut client,
        &script("INSERT INTO sink_a SELECT * FROM gen;\nINSERT INTO sink_b SELECT * FROM gen"),
    )
    .await;
    wait_for_state(&client, &two.id, JobState::Running).await;
    expect_refusal(
        Code::FailedPrecondition,
        "runs 2 flink jobs with state; an upgrade carries the state of exactly one",
    )(
        client
            .upgrade_job(upgrade_to(
                &two.id,
                &script("INSERT INTO sink_a SELECT * FROM gen"),
                "",
            ))
            .await,
    );
    // Nothing was recorded by the refusals: each job is revision 1 of its own lineage.
    let lineage = client
        .list_jobs(ListJobsRequest {
            lineage_id: job.id.clone(),
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(lineage.jobs.len(), 1);
    expect_refusal(Code::InvalidArgument, "lineage_id:")(
        client
            .list_jobs(ListJobsRequest {
                lineage_id: "not-a-job".into(),
                ..ListJobsRequest::default()
            })
            .await
            .map(|_| tonic::Response::new(Job::default())),
    );
    for id in [&job.id, &two.id] {
        broker::cancel(&mut client, id).await;
        wait_for_state(&client, id, JobState::Canceled).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn an_upgrade_fits_in_the_live_job_quota_of_the_job_it_replaces() {
    let mut flags = vec!["--tenant-max-live-jobs", "1"];
    flags.extend_from_slice(FAST);
    let broker = TestBroker::start_with(StandinConfig::default(), &flags).await;
    let mut client = broker.client().await;
    let first = submit(&mut client, &script("INSERT INTO sink_a SELECT * FROM gen")).await;
    wait_for_state(&client, &first.id, JobState::Running).await;
    // A second job is over the quota; a revision replacing the first is not.
    let refused = client
        .submit_sql(SubmitSqlRequest {
            script: script("INSERT INTO sink_b SELECT * FROM gen"),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect_err("over the quota");
    assert_eq!(
        refused.code(),
        Code::ResourceExhausted,
        "{}",
        refused.message()
    );
    let second = client
        .upgrade_job(upgrade_to(
            &first.id,
            &script("INSERT INTO sink_b SELECT * FROM gen"),
            "",
        ))
        .await
        .expect("the upgrade fits")
        .into_inner();
    let done = wait_for_step(&client, &second.id, upgrade::Step::Done).await;
    assert_eq!(done.state(), JobState::Running);
    broker::cancel(&mut client, &second.id).await;
    wait_for_state(&client, &second.id, JobState::Canceled).await;
    broker.stop().await;
}
