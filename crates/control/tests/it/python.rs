//! A Python job: its submitter started once with the Flink job id pinned at admission, then the
//! Flink job followed on the JobManager to its end.

use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_model::job::{JobSpec, JobState};
use flinkbroker_runner::SubmitterState;
use flinkbroker_testkit::fakes::OnCancel;

use crate::support::{World, describe, has_reason, python_program, within};

#[tokio::test]
async fn a_python_job_is_submitted_once_and_followed_to_finished_through_the_jobmanager() {
    let world = World::new().await;
    let broker = world.broker();
    let job = broker.submit_python(python_program()).await;
    let pinned = job.flink_job_id.clone().expect("pinned at admission");
    assert_eq!(pinned, job.id.flink_job_id_for_program());

    within(
        "the submitter is started",
        world
            .runner
            .wait_until(|runner| !runner.starts().is_empty()),
    )
    .await;
    let spec = world.runner.starts()[0].clone();
    assert_eq!(spec.job_id, job.id);
    assert_eq!(spec.flink_job_id, pinned);
    assert_eq!(spec.tenant, "default");
    assert_eq!(JobSpec::Python(spec.program), job.spec);
    // The submitter runs; Flink does not know the job yet.
    assert_eq!(broker.get(job.id).await.state, JobState::Submitting);

    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Running);
    let running = broker.wait_for_state(job.id, JobState::Running).await;
    assert_eq!(
        running.state_reason,
        format!("flink job {pinned} is running")
    );

    world.runner.set_output(
        job.id,
        &format!("Job has been submitted with JobID {pinned}"),
    );
    world.runner.set_state(job.id, SubmitterState::Succeeded);
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Finished);
    let finished = broker.wait_for_state(job.id, JobState::Finished).await;
    assert_eq!(
        finished.state_reason,
        "the flink job finished",
        "{}",
        describe(&finished)
    );
    assert_eq!(
        finished.submitter_output.as_deref(),
        Some(&*format!("Job has been submitted with JobID {pinned}"))
    );
    assert_eq!(world.runner.starts().len(), 1, "started once");
    assert!(world.jobmanager.cancels().is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn a_python_job_whose_submitter_still_runs_at_a_crash_is_not_started_again() {
    let world = World::new().await;
    let first = world.broker();
    let job = first.submit_python(python_program()).await;
    let pinned = job.flink_job_id.clone().expect("pinned at admission");
    within(
        "the submitter is started",
        world
            .runner
            .wait_until(|runner| !runner.starts().is_empty()),
    )
    .await;
    first.crash();

    let second = world.restart().await;
    let resumed = second
        .wait_for(job.id, "resumed", |job| {
            has_reason(
                job,
                &format!(
                    "resumed after a broker restart: the submitter of flink job {pinned} still runs"
                ),
            )
        })
        .await;
    assert_eq!(resumed.state, JobState::Submitting);
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Running);
    second.wait_for_state(job.id, JobState::Running).await;
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Finished);
    second.wait_for_state(job.id, JobState::Finished).await;
    assert_eq!(
        world.runner.starts().len(),
        1,
        "the submitter was not started again"
    );
    second.stop().await;
}

#[tokio::test]
async fn cancel_of_a_python_job_removes_its_submitter_and_ends_canceled_once_flink_stopped() {
    let world = World::new().await;
    world.jobmanager.set_on_cancel(OnCancel::Cancelling);
    let broker = world.broker();
    let job = broker.submit_python(python_program()).await;
    let pinned = job.flink_job_id.clone().expect("pinned at admission");
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Running);
    broker.wait_for_state(job.id, JobState::Running).await;

    assert_eq!(broker.cancel(job.id).await.state, JobState::Canceling);
    within(
        "the cancel reaches the jobmanager",
        world
            .jobmanager
            .wait_until(|jm| jm.status_reads_after_cancel(&pinned) >= 3),
    )
    .await;
    assert_eq!(world.runner.deletes(), [job.id], "the submitter is removed");
    assert_eq!(broker.get(job.id).await.state, JobState::Canceling);
    world
        .jobmanager
        .set_status(&pinned, FlinkJobStatus::Canceled);
    let canceled = broker.wait_for_state(job.id, JobState::Canceled).await;
    assert_eq!(
        canceled.state_reason,
        format!("canceled by request; flink job {pinned} stopped")
    );
    broker.stop().await;
}
