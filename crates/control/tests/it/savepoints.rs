//! Savepoints and restore at the driver: a savepoint recorded before a crash is followed again
//! under its trigger id; a restoring Python job gets the `flink run` options of the cluster's
//! release.

use flinkbroker_control::SavepointRequest;
use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_model::job::{
    ClaimMode, JobState, Restore, SavepointFormat, SavepointKind, SavepointRecord, SavepointState,
    now_millis,
};
use flinkbroker_store::Store;
use flinkbroker_testkit::fakes::JobManagerCall;

use crate::support::{World, describe, python_program, within};

#[tokio::test]
async fn a_savepoint_recorded_before_a_crash_is_followed_again_under_its_trigger_id() {
    let world = World::new().await;
    let first = world.broker();
    let job = first.submit_python(python_program()).await;
    let pinned = job.flink_job_id.clone().expect("pinned");
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Running);
    first.wait_for_state(job.id, JobState::Running).await;
    first.crash();

    // The earlier broker recorded the savepoint and stopped before the JobManager heard of it.
    let recorded = SavepointRecord {
        trigger_id: "0123456789abcdef0123456789abcdef".into(),
        flink_job_id: pinned.clone(),
        statement_index: None,
        kind: SavepointKind::Triggered,
        format: SavepointFormat::Native,
        directory: Some("file:///savepoints/recs".into()),
        state: SavepointState::InProgress,
        location: None,
        error: None,
        created_at: now_millis(),
        ended_at: None,
    };
    world
        .store
        .set_savepoints(job.id, std::slice::from_ref(&recorded))
        .await
        .expect("record the savepoint");

    let second = world.restart().await;
    let done = within("the savepoint completed", async {
        loop {
            let job = second.get(job.id).await;
            if job.savepoints[0].state == SavepointState::Completed {
                return job;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let savepoint = &done.savepoints[0];
    assert_eq!(
        savepoint.trigger_id,
        recorded.trigger_id,
        "{}",
        describe(&done)
    );
    assert_eq!(done.savepoints.len(), 1, "no second savepoint was recorded");
    assert_eq!(done.state, JobState::Running);
    assert_eq!(done.savepoint_path, savepoint.location);
    let triggers: Vec<JobManagerCall> = world
        .jobmanager
        .calls()
        .into_iter()
        .filter(|call| matches!(call, JobManagerCall::TriggerSavepoint { .. }))
        .collect();
    assert_eq!(
        triggers,
        [JobManagerCall::TriggerSavepoint {
            flink_job_id: pinned.clone(),
            trigger_id: recorded.trigger_id.clone(),
            directory: Some("file:///savepoints/recs".into()),
            format: SavepointFormat::Native,
        }]
    );
    second.stop().await;
}

#[tokio::test]
async fn a_restoring_python_job_runs_with_the_restore_options_of_the_clusters_release() {
    for (version, claim_option) in [("1.19.3", "-rm"), ("1.20.3", "-cm"), ("2.1.3", "-cm")] {
        let world = World::new().await;
        world.jobmanager.set_flink_version(version);
        let broker = world.broker();
        let mut program = python_program();
        program.restore = Some(Restore {
            savepoint_path: "s3://sp/savepoint-4f2a1c-0123456789ab".into(),
            allow_non_restored_state: true,
            claim_mode: ClaimMode::Claim,
        });
        broker.submit_python(program).await;
        within(
            "the submitter is started",
            world
                .runner
                .wait_until(|runner| !runner.starts().is_empty()),
        )
        .await;
        assert_eq!(
            world.runner.starts()[0].restore_arguments,
            [
                "-s",
                "s3://sp/savepoint-4f2a1c-0123456789ab",
                "-n",
                claim_option,
                "CLAIM"
            ],
            "{version}"
        );
        broker.stop().await;
    }
}

#[tokio::test]
async fn a_savepoint_that_ends_after_its_job_was_cancelled_is_still_recorded() {
    let world = World::new().await;
    let broker = world.broker();
    let job = broker.submit_python(python_program()).await;
    let pinned = job.flink_job_id.clone().expect("pinned");
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Running);
    broker.wait_for_state(job.id, JobState::Running).await;

    world.jobmanager.set_savepoints_pending(true);
    let controller = broker.controller.clone();
    let id = job.id;
    let asked = tokio::spawn(async move {
        controller
            .trigger_savepoint(id, SavepointRequest::default())
            .await
    });
    within("the savepoint is recorded", async {
        while broker.get(id).await.savepoints.is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    broker.cancel(job.id).await;
    broker.wait_for_state(job.id, JobState::Canceled).await;

    world.jobmanager.set_savepoints_pending(false);
    let answer = within("the savepoint call answers", asked)
        .await
        .expect("joined");
    let recorded = within("the savepoint is recorded on the ended job", async {
        loop {
            let job = world.store.get_job(id).await.expect("job");
            if job.savepoints[0].state != SavepointState::InProgress {
                return job;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(recorded.state, JobState::Canceled);
    assert_eq!(recorded.savepoints[0].state, SavepointState::Completed);
    assert_eq!(recorded.savepoint_path, recorded.savepoints[0].location);
    // The call saw the job end before its savepoint did, or the savepoint completed.
    if let Ok(job) = answer {
        assert_eq!(job.savepoints[0].state, SavepointState::Completed);
    }
    broker.stop().await;
}
