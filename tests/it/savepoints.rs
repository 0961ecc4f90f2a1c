//! Savepoints of SQL jobs through the gRPC API, against the stand-in's gateway and JobManager:
//! TriggerSavepoint, CancelJob's stop with a savepoint (one per INSERT, recorded against its
//! statement), restoring a submitted script from a savepoint (only its INSERTs, in each Flink
//! release's keys), and the refusals. Python jobs' savepoints run on a real cluster
//! (`python_local_flink`).

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use broker::{TestBroker, wait_for_state};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{
    CancelJobRequest, ClaimMode, GetJobRequest, Job, JobState, Restore, RuntimeMode,
    SavepointFormat, StatementState, SubmitPythonRequest, SubmitSqlRequest,
    TriggerSavepointRequest, savepoint, submit_python_request::Program,
};
use sql_gateway_standin::{FlinkRelease, StandinConfig};
use tonic::Code;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

/// Two unbounded INSERTs (statements 2 and 3) and a query (statement 4).
const TWO_INSERTS: &str = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');\nCREATE TABLE sink_b (id INT) WITH ('connector'='blackhole');\nINSERT INTO sink_a SELECT * FROM gen;\nINSERT INTO sink_b SELECT * FROM gen";

async fn submit(client: &mut Client, script: &str, restore: Option<Restore>) -> Job {
    client
        .submit_sql(SubmitSqlRequest {
            script: script.into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            restore,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner()
}

async fn get(client: &mut Client, id: &str) -> Job {
    client
        .get_job(GetJobRequest { job_id: id.into() })
        .await
        .expect("get")
        .into_inner()
}

#[tokio::test]
async fn insert_jobs_take_savepoints_and_stop_with_one_each() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, TWO_INSERTS, None).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let inserts: Vec<(u32, String)> = running
        .statements
        .iter()
        .filter(|s| !s.flink_job_id.is_empty())
        .map(|s| (s.index, s.flink_job_id.clone()))
        .collect();
    assert_eq!(inserts.len(), 2, "{:?}", running.statements);

    // TriggerSavepoint: one savepoint per INSERT job, each recorded against its statement;
    // the job and its Flink jobs run on.
    let taken = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: job.id.clone(),
            directory: "file:///savepoints/recs".into(),
            format: SavepointFormat::Native as i32,
        })
        .await
        .expect("trigger savepoint")
        .into_inner();
    assert_eq!(taken.state(), JobState::Running);
    assert_eq!(taken.savepoints.len(), 2, "{:?}", taken.savepoints);
    for (savepoint, (index, flink_job_id)) in taken.savepoints.iter().zip(&inserts) {
        assert_eq!(savepoint.statement_index, Some(*index));
        assert_eq!(&savepoint.flink_job_id, flink_job_id);
        assert_eq!(savepoint.kind(), savepoint::Kind::Triggered);
        assert_eq!(savepoint.format(), SavepointFormat::Native);
        assert_eq!(savepoint.state(), savepoint::State::Completed);
        assert_eq!(savepoint.directory, "file:///savepoints/recs");
        assert!(
            savepoint
                .location
                .starts_with("file:/savepoints/recs/savepoint-"),
            "{}",
            savepoint.location
        );
        assert_eq!(savepoint.trigger_id.len(), 32);
        assert!(savepoint.end_time.is_some());
    }
    assert_eq!(taken.savepoint_path, taken.savepoints[1].location);
    let flink_jobs = broker.standin.flink_jobs();
    for (_, flink_job_id) in &inserts {
        assert!(
            flink_jobs
                .iter()
                .any(|(id, status)| id == flink_job_id && status == "RUNNING"),
            "{flink_jobs:?}"
        );
    }
    let read = get(&mut client, &job.id).await;
    assert_eq!(read.savepoints, taken.savepoints, "GetJob shows them");
    assert!(
        read.history.iter().any(
            |h| h.reason.starts_with("savepoint of statement 4 (flink job")
                && h.reason.contains("written to file:/savepoints/recs/")
        ),
        "{:?}",
        read.history
    );

    // CancelJob with a savepoint: each INSERT stops with its own, recorded against it.
    let canceling = client
        .cancel_job(CancelJobRequest {
            job_id: job.id.clone(),
            stop_with_savepoint: true,
            savepoint_directory: "file:///savepoints/stop".into(),
            savepoint_format: SavepointFormat::Canonical as i32,
        })
        .await
        .expect("stop with savepoint")
        .into_inner();
    assert_eq!(canceling.state(), JobState::Canceling);
    let stopped = wait_for_state(&client, &job.id, JobState::Canceled).await;
    let stops: Vec<_> = stopped
        .savepoints
        .iter()
        .filter(|s| s.kind() == savepoint::Kind::Stop)
        .collect();
    assert_eq!(stops.len(), 2, "{:?}", stopped.savepoints);
    for (stop, (index, flink_job_id)) in stops.iter().zip(&inserts) {
        assert_eq!(stop.statement_index, Some(*index));
        assert_eq!(&stop.flink_job_id, flink_job_id);
        assert_eq!(stop.state(), savepoint::State::Completed);
        assert!(
            stop.location
                .starts_with("file:/savepoints/stop/savepoint-"),
            "{}",
            stop.location
        );
        assert!(
            stopped
                .state_reason
                .contains(&format!("statement {}: {}", index + 1, stop.location)),
            "{}",
            stopped.state_reason
        );
    }
    assert!(
        stopped
            .state_reason
            .starts_with("stopped by request with savepoints"),
        "{}",
        stopped.state_reason
    );
    let flink_jobs = broker.standin.flink_jobs();
    for (_, flink_job_id) in &inserts {
        assert!(
            flink_jobs
                .iter()
                .any(|(id, status)| id == flink_job_id && status == "FINISHED"),
            "a stop with a savepoint finishes the flink job: {flink_jobs:?}"
        );
    }

    // An ended job takes no savepoint.
    let refused = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: job.id.clone(),
            ..TriggerSavepointRequest::default()
        })
        .await
        .expect_err("the job is over");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("is CANCELED"),
        "{}",
        refused.message()
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_restored_script_restores_only_its_insert_jobs_in_each_releases_keys() {
    for release in FlinkRelease::ALL {
        let broker = TestBroker::start_with(
            StandinConfig {
                flink_release: release,
                ..StandinConfig::default()
            },
            &[],
        )
        .await;
        let mut client = broker.client().await;
        let script = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');\nINSERT INTO sink_a SELECT * FROM gen;\nSELECT id FROM gen";
        let restore = Restore {
            savepoint_path: "file:/savepoints/stop/savepoint-4f2a1c-0123456789ab".into(),
            allow_non_restored_state: true,
            claim_mode: ClaimMode::Claim as i32,
        };
        let job = submit(&mut client, script, Some(restore.clone())).await;
        assert_eq!(job.restore.as_ref(), Some(&restore), "{release}");
        wait_for_state(&client, &job.id, JobState::Running).await;
        let statements = broker.standin.statements();
        let insert = statements
            .iter()
            .find(|s| s.statement.starts_with("INSERT"))
            .expect("the insert");
        let query = statements
            .iter()
            .find(|s| s.statement.starts_with("SELECT"))
            .expect("the query");
        let (path, ignore, claim) = if release == FlinkRelease::V1_19 {
            (
                "execution.savepoint.path",
                "execution.savepoint.ignore-unclaimed-state",
                "execution.savepoint-restore-mode",
            )
        } else {
            (
                "execution.state-recovery.path",
                "execution.state-recovery.ignore-unclaimed-state",
                "execution.state-recovery.claim-mode",
            )
        };
        let config = &insert.execution_config;
        assert_eq!(
            config.get(path).map(String::as_str),
            Some(restore.savepoint_path.as_str()),
            "{release}: {config:?}"
        );
        assert_eq!(config.get(ignore).map(String::as_str), Some("true"));
        assert_eq!(config.get(claim).map(String::as_str), Some("CLAIM"));
        assert!(
            query
                .execution_config
                .keys()
                .all(|key| !key.contains("savepoint") && !key.contains("state-recovery")),
            "{release}: a query does not restore: {:?}",
            query.execution_config
        );
        assert!(
            statements
                .iter()
                .filter(|s| !s.statement.starts_with("INSERT"))
                .all(|s| !s.execution_config.contains_key(path)),
            "{release}"
        );
        broker::cancel(&mut client, &job.id).await;
        wait_for_state(&client, &job.id, JobState::Canceled).await;
        broker.stop().await;
    }
}

#[tokio::test]
async fn savepoints_are_refused_with_the_reason() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--savepoint-path-prefixes", "file:///savepoints/,s3://sp/"],
    )
    .await;
    let mut client = broker.client().await;

    // A restore path outside the allowed prefixes, on either kind of job.
    let outside = Restore {
        savepoint_path: "file:///etc/flink".into(),
        ..Restore::default()
    };
    let error = client
        .submit_sql(SubmitSqlRequest {
            script: "SELECT 1".into(),
            restore: Some(outside.clone()),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect_err("outside the prefixes");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("restore.savepoint_path: \"file:///etc/flink\" is not under an allowed prefix (file:///savepoints/, s3://sp/; see --savepoint-path-prefixes)"),
        "{}",
        error.message()
    );
    let error = client
        .submit_python(SubmitPythonRequest {
            program: Some(Program::Script("print(1)".into())),
            restore: Some(outside),
            ..SubmitPythonRequest::default()
        })
        .await
        .expect_err("outside the prefixes");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("restore.savepoint_path:"));
    let error = client
        .submit_sql(SubmitSqlRequest {
            script: "SELECT 1".into(),
            restore: Some(Restore::default()),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect_err("no path");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("restore.savepoint_path:"));

    // A job running only a query has no state to savepoint.
    let query = submit(
        &mut client,
        "CREATE TABLE gen (id INT) WITH ('connector'='datagen');\nSELECT id FROM gen",
        None,
    )
    .await;
    let running = wait_for_state(&client, &query.id, JobState::Running).await;
    assert_eq!(running.statements[1].state(), StatementState::Running);
    let error = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: query.id.clone(),
            ..TriggerSavepointRequest::default()
        })
        .await
        .expect_err("no insert job");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error
            .message()
            .contains("runs no flink job a savepoint can be taken of"),
        "{}",
        error.message()
    );
    // A directory outside the prefixes, for a savepoint or a stop.
    let error = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: query.id.clone(),
            directory: "file:///tmp/elsewhere".into(),
            ..TriggerSavepointRequest::default()
        })
        .await
        .expect_err("outside the prefixes");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("directory:"),
        "{}",
        error.message()
    );
    let error = client
        .cancel_job(CancelJobRequest {
            job_id: query.id.clone(),
            stop_with_savepoint: true,
            savepoint_directory: "file:///tmp/elsewhere".into(),
            ..CancelJobRequest::default()
        })
        .await
        .expect_err("outside the prefixes");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("savepoint_directory:"));
    let error = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: query.id.clone(),
            format: 7,
            ..TriggerSavepointRequest::default()
        })
        .await
        .expect_err("unknown format");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("format:"));
    let error = client
        .trigger_savepoint(TriggerSavepointRequest {
            job_id: "0b6f0a5e-3b7c-4d1e-9f00-1234567890ab".into(),
            ..TriggerSavepointRequest::default()
        })
        .await
        .expect_err("unknown job");
    assert_eq!(error.code(), Code::NotFound);
    broker::cancel(&mut client, &query.id).await;
    wait_for_state(&client, &query.id, JobState::Canceled).await;
    broker.stop().await;
}
