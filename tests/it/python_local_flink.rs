//! End-to-end Python jobs through the gRPC API on a real local Flink 1.20.3 session cluster,
//! submitted by the local runner (`flink run -d -py …`). Runs when FLINKBROKER_TEST_FLINK_HOME
//! names a Flink distribution with PyFlink (`.ci/flink.sh` installs one); says it skipped
//! otherwise.

use crate::support::broker;
use crate::support::flink_cluster;

use std::sync::Arc;
use std::time::Duration;

use broker::wait_for_state;
use flink_cluster::FlinkCluster;
use flinkbroker_model::job::JobId;
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::submit_python_request::Program;
use flinkbroker_proto::{
    CancelJobRequest, ClaimMode, GetJobRequest, Job, JobState, Restore, SavepointFormat,
    SubmitPythonRequest, TriggerSavepointRequest, WatchJobRequest, savepoint,
};
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(180);

const UNBOUNDED: &str = r#"from pyflink.table import EnvironmentSettings, TableEnvironment

t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.execute_sql("CREATE TABLE src (x INT) WITH ('connector' = 'datagen', 'rows-per-second' = '1')")
t_env.execute_sql("CREATE TABLE snk (x INT) WITH ('connector' = 'blackhole')")
t_env.execute_sql("INSERT INTO snk SELECT x FROM src")
"#;

fn program(script: &str, request_id: &str) -> SubmitPythonRequest {
    SubmitPythonRequest {
        program: Some(Program::Script(script.into())),
        parallelism: 1,
        request_id: request_id.into(),
        ..SubmitPythonRequest::default()
    }
}

/// Follows WatchJob until the job reaches `until` or ends; returns the states seen and the job.
async fn watch(
    client: &mut JobServiceClient<Channel>,
    id: &str,
    until: JobState,
) -> (Vec<JobState>, Job) {
    let mut stream = client
        .watch_job(WatchJobRequest { job_id: id.into() })
        .await
        .expect("watch")
        .into_inner();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut states = Vec::new();
    let mut last = None;
    while let Some(job) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("job {id} did not reach {until:?} in time; saw {states:?}"))
        .expect("watch stream")
    {
        states.push(job.state());
        let reached = job.state() == until;
        last = Some(job);
        if reached {
            break;
        }
    }
    (states, last.expect("a job message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_jobs_run_fail_and_cancel_on_a_real_flink_cluster() {
    let Some(cluster) = FlinkCluster::start().await else {
        return;
    };
    let cluster = Arc::new(cluster);
    let broker = cluster.start_broker().await;
    let mut client = broker.client().await;

    // All submissions run side by side.
    let finishes = client
        .submit_python(program(
            include_str!("../fixtures/pyflink/job.py"),
            "py-finishes",
        ))
        .await
        .expect("submit")
        .into_inner();
    let driver_error = client
        .submit_python(program(
            include_str!("../fixtures/pyflink/bad_driver.py"),
            "py-driver-error",
        ))
        .await
        .expect("submit")
        .into_inner();
    let cluster_error = client
        .submit_python(program(
            include_str!("../fixtures/pyflink/fails_in_cluster.py"),
            "py-cluster-error",
        ))
        .await
        .expect("submit")
        .into_inner();
    let unbounded = client
        .submit_python(program(UNBOUNDED, "py-unbounded"))
        .await
        .expect("submit")
        .into_inner();
    let to_stop = client
        .submit_python(program(UNBOUNDED, "py-stop-with-savepoint"))
        .await
        .expect("submit")
        .into_inner();

    // The Flink job id is chosen up front from the broker job id.
    let expected = finishes
        .id
        .parse::<JobId>()
        .expect("id")
        .flink_job_id_for_program();
    assert_eq!(finishes.flink_job_id, expected);
    let again = client
        .submit_python(program(
            include_str!("../fixtures/pyflink/job.py"),
            "py-finishes",
        ))
        .await
        .expect("same request")
        .into_inner();
    assert_eq!(again.id, finishes.id, "same request_id, same job");

    let (states, finished) = watch(&mut client.clone(), &finishes.id, JobState::Finished).await;
    assert_eq!(
        finished.state(),
        JobState::Finished,
        "{}\n{}",
        finished.state_reason,
        cluster.log_tails()
    );
    assert!(
        states.contains(&JobState::Running)
            || finished
                .history
                .iter()
                .any(|t| t.state() == JobState::Running)
    );
    let history: Vec<JobState> = finished.history.iter().map(|t| t.state()).collect();
    assert_eq!(
        history,
        [
            JobState::Pending,
            JobState::Submitting,
            JobState::Running,
            JobState::Finished
        ]
    );
    assert!(
        finished
            .submitter_output
            .contains(&format!("Job has been submitted with JobID {expected}")),
        "{}",
        finished.submitter_output
    );
    assert_eq!(
        cluster
            .wait_for_job_state(&expected, &["FINISHED"], LIMIT)
            .await,
        "FINISHED"
    );

    let (_, failed) = watch(&mut client.clone(), &driver_error.id, JobState::Failed).await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.state_reason.contains("the submitter failed"),
        "{}",
        failed.state_reason
    );
    assert!(
        failed
            .state_reason
            .contains("ValueError: broken driver: missing config"),
        "{}",
        failed.state_reason
    );
    assert!(
        failed.submitter_output.contains("ValueError"),
        "{}",
        failed.submitter_output
    );

    let (_, failed) = watch(&mut client.clone(), &cluster_error.id, JobState::Failed).await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.state_reason.contains("row 3 is poison"),
        "{}",
        failed.state_reason
    );
    assert!(
        failed.state_reason.contains(&cluster_error.flink_job_id),
        "{}",
        failed.state_reason
    );

    let (_, running) = watch(&mut client.clone(), &unbounded.id, JobState::Running).await;
    assert_eq!(
        running.state(),
        JobState::Running,
        "{}",
        running.state_reason
    );
    let canceled = broker::cancel(&mut client, &unbounded.id).await;
    assert_eq!(canceled.state(), JobState::Canceling);
    // CANCELED is said only once the JobManager says the Flink job stopped.
    let canceled = wait_for_state(&client, &unbounded.id, JobState::Canceled).await;
    assert_eq!(
        cluster
            .wait_for_job_state(
                &unbounded.flink_job_id,
                &["CANCELED"],
                Duration::from_secs(1)
            )
            .await,
        "CANCELED"
    );
    let again = broker::cancel(&mut client, &unbounded.id).await;
    assert_eq!(again.state(), JobState::Canceled);
    assert_eq!(again.history.len(), canceled.history.len());
    let job = client
        .get_job(GetJobRequest {
            job_id: unbounded.id,
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(job.state(), JobState::Canceled);

    // Stop with a savepoint: the Flink job ends FINISHED with its savepoint written.
    let savepoints = tempfile::tempdir().expect("savepoint dir");
    let (_, running) = watch(&mut client.clone(), &to_stop.id, JobState::Running).await;
    assert_eq!(
        running.state(),
        JobState::Running,
        "{}",
        running.state_reason
    );
    let stopped = client
        .cancel_job(CancelJobRequest {
            job_id: to_stop.id.clone(),
            stop_with_savepoint: true,
            savepoint_directory: format!("file://{}", savepoints.path().display()),
            ..CancelJobRequest::default()
        })
        .await
        .expect("stop with savepoint")
        .into_inner();
    assert_eq!(stopped.state(), JobState::Canceling);
    let stopped = wait_for_state(&client, &to_stop.id, JobState::Canceled).await;
    assert!(
        stopped.savepoint_path.starts_with("file:"),
        "{}",
        stopped.savepoint_path
    );
    assert!(
        stopped
            .state_reason
            .contains("stopped by request with a savepoint at file:"),
        "{}",
        stopped.state_reason
    );
    assert_eq!(
        cluster
            .wait_for_job_state(&to_stop.flink_job_id, &["FINISHED"], LIMIT)
            .await,
        "FINISHED"
    );
    let written = std::fs::read_dir(savepoints.path())
        .expect("savepoints")
        .count();
    assert!(written > 0, "a savepoint was written");
    broker.stop().await;
}

/// A keyed count over an unbounded source: state a savepoint carries.
const STATEFUL: &str = r#"from pyflink.table import EnvironmentSettings, TableEnvironment

t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.execute_sql("CREATE TABLE src (x INT) WITH ('connector' = 'datagen', 'rows-per-second' = '20', 'fields.x.min' = '0', 'fields.x.max' = '7')")
t_env.execute_sql("CREATE TABLE snk (k INT, n BIGINT) WITH ('connector' = 'blackhole')")
t_env.execute_sql("INSERT INTO snk SELECT x, COUNT(*) FROM src GROUP BY x")
"#;

fn stateful(request_id: &str) -> SubmitPythonRequest {
    let mut request = program(STATEFUL, request_id);
    request
        .flink_configuration
        .insert("execution.checkpointing.interval".into(), "1s".into());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_are_taken_and_restored_on_a_real_flink_cluster() {
    let Some(cluster) = FlinkCluster::start().await else {
        return;
    };
    let broker = cluster.start_broker().await;
    let mut client = broker.client().await;
    let directory = tempfile::tempdir().expect("savepoint dir");
    let url = |name: &str| format!("file://{}/{name}", directory.path().display());

    let first = client
        .submit_python(stateful("py-savepoints"))
        .await
        .expect("submit")
        .into_inner();
    let (_, running) = watch(&mut client.clone(), &first.id, JobState::Running).await;
    assert_eq!(
        running.state(),
        JobState::Running,
        "{}",
        running.state_reason
    );

    // A savepoint that leaves the job running.
    let taken = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: first.id.clone(),
            directory: url("triggered"),
            format: SavepointFormat::Canonical as i32,
        })
        .await
        .expect("trigger savepoint")
        .into_inner();
    assert_eq!(taken.state(), JobState::Running);
    let [triggered] = taken.savepoints.as_slice() else {
        panic!("one savepoint: {:?}", taken.savepoints);
    };
    assert_eq!(triggered.kind(), savepoint::Kind::Triggered);
    assert_eq!(
        triggered.state(),
        savepoint::State::Completed,
        "{}",
        triggered.error
    );
    assert_eq!(triggered.flink_job_id, first.flink_job_id);
    assert!(
        triggered.location.starts_with("file:") && triggered.location.contains("/triggered/"),
        "{}",
        triggered.location
    );
    assert_eq!(taken.savepoint_path, triggered.location);
    assert!(
        std::fs::read_dir(directory.path().join("triggered"))
            .expect("the savepoint directory")
            .count()
            > 0
    );
    assert_eq!(
        cluster
            .wait_for_job_state(&first.flink_job_id, &["RUNNING"], LIMIT)
            .await,
        "RUNNING",
        "the flink job runs on"
    );

    // A stop with a savepoint in the state backend's native format.
    client
        .cancel_job(CancelJobRequest {
            job_id: first.id.clone(),
            stop_with_savepoint: true,
            savepoint_directory: url("stop"),
            savepoint_format: SavepointFormat::Native as i32,
        })
        .await
        .expect("stop with savepoint");
    let stopped = wait_for_state(&client, &first.id, JobState::Canceled).await;
    let stop = stopped.savepoints.last().expect("the stop's savepoint");
    assert_eq!(stop.kind(), savepoint::Kind::Stop);
    assert_eq!(stop.format(), SavepointFormat::Native);
    assert_eq!(stop.state(), savepoint::State::Completed, "{}", stop.error);
    assert_eq!(stopped.savepoint_path, stop.location);

    // A new job restores from it: the JobManager says it started from that savepoint.
    let mut restored = stateful("py-restored");
    restored.restore = Some(Restore {
        savepoint_path: stop.location.clone(),
        allow_non_restored_state: false,
        claim_mode: ClaimMode::NoClaim as i32,
    });
    let second = client
        .submit_python(restored)
        .await
        .expect("submit restored")
        .into_inner();
    assert_eq!(
        second.restore.as_ref().map(|r| r.savepoint_path.as_str()),
        Some(stop.location.as_str())
    );
    let (_, running) = watch(&mut client.clone(), &second.id, JobState::Running).await;
    assert_eq!(
        running.state(),
        JobState::Running,
        "{}",
        running.state_reason
    );
    let checkpoints_path = format!("/jobs/{}/checkpoints", second.flink_job_id);
    let restored_from = broker::eventually("the restore in the checkpoint stats", LIMIT, || {
        let cluster = &cluster;
        let checkpoints_path = &checkpoints_path;
        async move {
            let checkpoints = cluster.rest_json_when_ready(checkpoints_path).await?;
            checkpoints["latest"]["restored"]["external_path"]
                .as_str()
                .map(str::to_owned)
        }
    })
    .await;
    assert_eq!(
        restored_from.trim_end_matches('/'),
        stop.location.trim_end_matches('/')
    );
    broker::cancel(&mut client, &second.id).await;
    wait_for_state(&client, &second.id, JobState::Canceled).await;
    broker.stop().await;
}
