//! Retention of ended jobs through the public gRPC API: the janitor deletes a job that ended
//! longer than `--job-retention` ago (GetJob NOT_FOUND, gone from ListJobs), keeps live jobs
//! whatever their age, and keeps the audit trail's events of the deleted job. Against the SQL
//! Gateway stand-in.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::HashMap;
use std::time::Duration;

use broker::{TestBroker, cancel, eventually, sql, submit, wait_for_state};
use flinkbroker_proto::{
    AuditAction, GetJobRequest, JobState, ListAuditEventsRequest, ListJobsRequest, RuntimeMode,
};
use sql_gateway_standin::StandinConfig;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(30);

/// A batch query that ends at once.
const BOUNDED: &str = "CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='10');\nSELECT * FROM gen;";
/// A streaming INSERT that runs until it is cancelled.
const UNBOUNDED: &str = "CREATE TABLE ticks (id BIGINT, name STRING) WITH ('connector'='datagen', 'rows-per-second'='1');\nCREATE TABLE sink (id BIGINT, name STRING) WITH ('connector'='blackhole');\nINSERT INTO sink SELECT id, name FROM ticks;";

fn labels() -> HashMap<String, String> {
    [("suite".to_owned(), "retention".to_owned())].into()
}

#[tokio::test]
async fn ended_jobs_past_their_retention_disappear_while_live_jobs_stay() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--job-retention", "2s", "--janitor-interval", "50ms"],
    )
    .await;
    let mut client = broker.client().await;
    let live = submit(
        &mut client,
        flinkbroker_proto::SubmitSqlRequest {
            labels: labels(),
            ..sql(UNBOUNDED, RuntimeMode::Streaming)
        },
    )
    .await;
    let ended = submit(
        &mut client,
        flinkbroker_proto::SubmitSqlRequest {
            labels: labels(),
            ..sql(BOUNDED, RuntimeMode::Batch)
        },
    )
    .await;
    wait_for_state(&client, &live.id, JobState::Running).await;
    let finished = wait_for_state(&client, &ended.id, JobState::Finished).await;
    assert!(
        finished.statements[1].result_log.is_some(),
        "the ended job has a result log to delete"
    );

    eventually("the ended job deleted", LIMIT, || {
        let mut client = client.clone();
        let id = ended.id.clone();
        async move {
            match client.get_job(GetJobRequest { job_id: id }).await {
                Err(status) if status.code() == Code::NotFound => Some(()),
                _ => None,
            }
        }
    })
    .await;

    let listed_ids = |request: ListJobsRequest| {
        let mut client = client.clone();
        async move {
            client
                .list_jobs(request)
                .await
                .expect("list jobs")
                .into_inner()
                .jobs
                .into_iter()
                .map(|job| job.id)
                .collect::<Vec<_>>()
        }
    };
    let every_job = listed_ids(ListJobsRequest::default()).await;
    assert!(!every_job.contains(&ended.id), "{every_job:?}");
    assert!(every_job.contains(&live.id), "{every_job:?}");
    assert_eq!(
        listed_ids(ListJobsRequest {
            labels: labels(),
            ..ListJobsRequest::default()
        })
        .await,
        vec![live.id.clone()],
        "by label, only the live job"
    );
    assert!(
        listed_ids(ListJobsRequest {
            states: vec![JobState::Finished as i32],
            ..ListJobsRequest::default()
        })
        .await
        .is_empty()
    );
    let still_live = client
        .get_job(GetJobRequest {
            job_id: live.id.clone(),
        })
        .await
        .expect("the live job stays")
        .into_inner();
    assert_eq!(still_live.state(), JobState::Running);

    // The audit trail keeps the deleted job's submission (until --audit-retention).
    let events = client
        .list_audit_events(ListAuditEventsRequest {
            action: AuditAction::Submit as i32,
            ..ListAuditEventsRequest::default()
        })
        .await
        .expect("list audit events")
        .into_inner()
        .events;
    assert!(
        events.iter().any(|event| event.job_id == ended.id),
        "{events:?}"
    );

    cancel(&mut client, &live.id).await;
    broker.stop().await;
}
