//! UpgradeJob of a Python streaming job on a real local Flink cluster, with the real broker
//! binary killed (SIGKILL) at each step of an upgrade: a keyed count carries its state from
//! revision to revision, exactly one revision runs after every restart, and a revision that
//! fails to start is rolled back to the one before it from the same savepoint. Runs when
//! `FLINKBROKER_TEST_FLINK_HOME` is set (`.ci/flink.sh`), on each Flink release CI installs.

use crate::support::crash;
use crate::support::flink_cluster;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::BTreeSet;
use std::time::Duration;

use crash::{BrokerProcess, Connector, KillMoment};
use flink_cluster::FlinkCluster;
use flinkbroker_proto::submit_python_request::Program;
use flinkbroker_proto::{
    ClaimMode, Job, JobState, ListJobsRequest, SavepointFormat, SubmitPythonRequest,
    UpgradeJobRequest, savepoint, upgrade, upgrade_job_request::Revision,
};
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::time::Instant;

/// The whole test's deadline (six Python submissions, three stops and three restarts).
const DEADLINE: Duration = Duration::from_secs(600);
/// The longest one step of the test may take.
const STEP: Duration = Duration::from_secs(180);

/// A keyed count over an unbounded source, printed to the TaskManager's standard output
/// under `identifier`: the state a savepoint carries from revision to revision.
fn counting(identifier: &str) -> SubmitPythonRequest {
    let script = format!(
        r#"from pyflink.table import EnvironmentSettings, TableEnvironment

t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.execute_sql("CREATE TABLE src (x INT) WITH ('connector' = 'datagen', 'rows-per-second' = '20', 'fields.x.min' = '0', 'fields.x.max' = '3')")
t_env.execute_sql("CREATE TABLE snk (k INT, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = '{identifier}')")
t_env.execute_sql("INSERT INTO snk SELECT x, COUNT(*) FROM src GROUP BY x")
"#
    );
    SubmitPythonRequest {
        program: Some(Program::Script(script)),
        parallelism: 1,
        flink_configuration: [(
            "execution.checkpointing.interval".to_owned(),
            "1s".to_owned(),
        )]
        .into(),
        ..SubmitPythonRequest::default()
    }
}

fn upgrade_to(job_id: &str, revision: SubmitPythonRequest, directory: &str) -> UpgradeJobRequest {
    UpgradeJobRequest {
        job_id: job_id.into(),
        revision: Some(Revision::Python(revision)),
        savepoint_directory: directory.into(),
        savepoint_format: SavepointFormat::Canonical as i32,
        allow_non_restored_state: false,
        claim_mode: ClaimMode::NoClaim as i32,
        request_id: String::new(),
    }
}

/// Every line the TaskManagers printed under `identifier` (`identifier> +U[2, 57]`).
fn printed(cluster: &FlinkCluster, identifier: &str) -> Vec<String> {
    let prefix = format!("{identifier}>");
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&cluster.log_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains("taskexecutor") && name.ends_with(".out") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter(|line| line.starts_with(&prefix))
                        .map(str::to_owned),
                );
            }
        }
    }
    lines
}

/// The count a printed `+I[k, n]` / `+U[k, n]` line carries.
fn count(line: &str) -> Option<u64> {
    let inner = line.split_once('[')?.1.strip_suffix(']')?;
    inner.split(',').nth(1)?.trim().parse().ok()
}

/// Waits until `check` accepts what it sees, failing after `STEP` with what it saw last.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn job(connector: &Connector, id: &str) -> Job {
    connector
        .get_job(id, Instant::now() + STEP)
        .await
        .unwrap_or_else(|status| panic!("GetJob {id}: {status}"))
}

async fn upgrade(connector: &Connector, request: UpgradeJobRequest) -> Job {
    connector
        .call("UpgradeJob", Instant::now() + STEP, |mut client| {
            let request = request.clone();
            async move { client.upgrade_job(request).await }
        })
        .await
        .unwrap_or_else(|status| panic!("UpgradeJob: {status}"))
}

fn step(job: &Job) -> upgrade::Step {
    job.upgrade
        .as_ref()
        .map_or(upgrade::Step::Unspecified, |u| u.step())
}

/// Waits until the revision's upgrade ended, and returns the revision then.
async fn upgrade_ended(connector: &Connector, id: &str) -> Job {
    until(&format!("the upgrade of job {id} to end"), async || {
        let job = job(connector, id).await;
        match step(&job) {
            upgrade::Step::StoppingPrevious | upgrade::Step::Starting => Err(format!(
                "{:?} ({:?}: {})",
                step(&job),
                job.state(),
                job.state_reason
            )),
            _ => Ok(job),
        }
    })
    .await
}

/// The Flink jobs of the lineage's revisions the JobManager says run.
async fn running_revisions(
    cluster: &FlinkCluster,
    connector: &Connector,
    lineage: &str,
) -> Vec<String> {
    let revisions = connector
        .call("ListJobs", Instant::now() + STEP, |mut client| {
            let request = ListJobsRequest {
                lineage_id: lineage.to_owned(),
                ..ListJobsRequest::default()
            };
            async move { client.list_jobs(request).await }
        })
        .await
        .unwrap_or_else(|status| panic!("ListJobs: {status}"))
        .jobs;
    let overview = cluster.rest_json("/jobs/overview").await;
    let running: BTreeSet<String> = overview["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|job| {
            matches!(
                job["state"].as_str(),
                Some("RUNNING" | "CREATED" | "INITIALIZING" | "RESTARTING")
            )
        })
        .filter_map(|job| job["jid"].as_str().map(str::to_owned))
        .collect();
    revisions
        .iter()
        .filter(|revision| running.contains(&revision.flink_job_id))
        .map(|revision| format!("revision {} ({})", revision.revision, revision.flink_job_id))
        .collect()
}

/// Checks that exactly one revision of the lineage runs on the cluster: `expected`.
async fn only_running(
    cluster: &FlinkCluster,
    connector: &Connector,
    lineage: &str,
    expected: &Job,
) {
    let running = running_revisions(cluster, connector, lineage).await;
    assert_eq!(
        running,
        vec![format!(
            "revision {} ({})",
            expected.revision, expected.flink_job_id
        )],
        "exactly one revision runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_upgrades_carry_state_through_broker_kills_and_roll_back_on_a_real_flink_cluster() {
    let Some(cluster) = FlinkCluster::start().await else {
        return;
    };
    let _one = crash::one_at_a_time().await;
    let started = Instant::now();
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in starts");
    let database = crash::TestDatabase::sqlite_file();
    let work_dir = tempfile::Builder::new()
        .prefix("flinkbroker-upgrades-")
        .tempdir()
        .expect("work directory");
    let savepoints = format!("file://{}", work_dir.path().join("savepoints").display());
    let arguments: Vec<String> = [
        "--database-url",
        database.url(),
        "--sql-gateway-url",
        &standin.base_url,
        "--jobmanager-url",
        &cluster.rest_url,
        "--job-runner",
        "local",
        "--flink-home",
        &cluster.flink_home.display().to_string(),
        "--python-executable",
        &cluster.python_executable(),
        "--submitter-work-dir",
        &work_dir.path().join("submitters").display().to_string(),
        "--poll-interval",
        "250ms",
        "--health-interval",
        "500ms",
        "--shutdown-grace",
        "1s",
        "--replica-id",
        "upgrading-broker",
        // Long enough for a kill to land while the new revision is watched.
        "--upgrade-running-for",
        "5s",
    ]
    .iter()
    .map(|argument| argument.to_string())
    .collect();
    let mut broker = BrokerProcess::start(arguments, work_dir.path()).await;
    let connector = broker.connector();

    // Revision 1 counts.
    let first = connector
        .call("SubmitPython", Instant::now() + STEP, |mut client| {
            let request = counting("rev1");
            async move { client.submit_python(request).await }
        })
        .await
        .expect("submit");
    let lineage = first.lineage_id.clone();
    until("revision 1 to count past 5 for a key", async || {
        let counted = printed(&cluster, "rev1")
            .iter()
            .filter_map(|l| count(l))
            .max();
        match counted {
            Some(n) if n > 5 => Ok(()),
            other => Err(format!(
                "{other:?}; job {:?}",
                job(&connector, &first.id).await.state_reason
            )),
        }
    })
    .await;

    // Upgrade to revision 2, the broker killed at once (step 1: stopping the previous one).
    let second = upgrade(
        &connector,
        upgrade_to(&first.id, counting("rev2"), &savepoints),
    )
    .await;
    assert_eq!(second.revision, 2);
    assert_eq!(step(&second), upgrade::Step::StoppingPrevious);
    broker
        .crash_and_restart(KillMoment {
            after_ready: false,
            delay: Duration::ZERO,
        })
        .await;
    let second = upgrade_ended(&connector, &second.id).await;
    assert_eq!(step(&second), upgrade::Step::Done, "{:?}", second.upgrade);
    let stopped = job(&connector, &first.id).await;
    assert_eq!(
        stopped.state(),
        JobState::Canceled,
        "{}",
        stopped.state_reason
    );
    let stop = stopped
        .savepoints
        .iter()
        .rfind(|s| s.kind() == savepoint::Kind::Stop && s.state() == savepoint::State::Completed)
        .expect("revision 1 stopped with a savepoint");
    assert_eq!(
        second.restore.as_ref().map(|r| r.savepoint_path.as_str()),
        Some(stop.location.as_str())
    );
    assert_eq!(
        cluster
            .wait_for_job_state(&first.flink_job_id, &["FINISHED"], STEP)
            .await,
        "FINISHED"
    );
    only_running(&cluster, &connector, &lineage, &second).await;

    // The counts go on from the savepoint: revision 2 never starts a key from 1.
    let carried = until("revision 2 to print its counts", async || {
        let lines = printed(&cluster, "rev2");
        if lines.len() >= 8 {
            Ok(lines)
        } else {
            Err(format!("{} lines", lines.len()))
        }
    })
    .await;
    assert!(
        carried.iter().all(|line| !line.contains("+I[")),
        "a restored count is updated, never inserted anew: {carried:#?}"
    );
    let before = printed(&cluster, "rev1")
        .iter()
        .filter_map(|l| count(l))
        .max()
        .unwrap_or(0);
    let after = carried.iter().filter_map(|l| count(l)).min().unwrap_or(0);
    assert!(
        after > 1 && before > 1,
        "revision 2 counts on from revision 1's ({before}): its lowest count is {after}"
    );

    // Upgrade to revision 3, the broker killed once the savepoint is taken (step 2).
    let third = upgrade(
        &connector,
        upgrade_to(&second.id, counting("rev3"), &savepoints),
    )
    .await;
    until("revision 3 to start", async || {
        let third = job(&connector, &third.id).await;
        if step(&third) == upgrade::Step::Starting {
            Ok(())
        } else {
            Err(format!("{:?}", step(&third)))
        }
    })
    .await;
    broker
        .crash_and_restart(KillMoment {
            after_ready: false,
            delay: Duration::ZERO,
        })
        .await;
    let third = upgrade_ended(&connector, &third.id).await;
    assert_eq!(step(&third), upgrade::Step::Done, "{:?}", third.upgrade);
    only_running(&cluster, &connector, &lineage, &third).await;

    // Upgrade to revision 4, the broker killed while the new revision runs and is watched
    // (step 3).
    let fourth = upgrade(
        &connector,
        upgrade_to(&third.id, counting("rev4"), &savepoints),
    )
    .await;
    until("revision 4 to run", async || {
        let fourth = job(&connector, &fourth.id).await;
        if step(&fourth) == upgrade::Step::Starting && fourth.state() == JobState::Running {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", step(&fourth), fourth.state()))
        }
    })
    .await;
    broker
        .crash_and_restart(KillMoment {
            after_ready: false,
            delay: Duration::ZERO,
        })
        .await;
    let fourth = upgrade_ended(&connector, &fourth.id).await;
    assert_eq!(step(&fourth), upgrade::Step::Done, "{:?}", fourth.upgrade);
    only_running(&cluster, &connector, &lineage, &fourth).await;
    assert_eq!(
        fourth.savepoint_chain.len(),
        3,
        "{:?}",
        fourth.savepoint_chain
    );

    // Revision 5 fails to start: revision 4's program runs again from the same savepoint.
    let failing = SubmitPythonRequest {
        program: Some(Program::Script(
            "raise RuntimeError('revision 5 refuses to start')\n".into(),
        )),
        ..SubmitPythonRequest::default()
    };
    let fifth = upgrade(&connector, upgrade_to(&fourth.id, failing, &savepoints)).await;
    let fifth = upgrade_ended(&connector, &fifth.id).await;
    assert_eq!(
        step(&fifth),
        upgrade::Step::RolledBack,
        "{:?}",
        fifth.upgrade
    );
    assert_eq!(fifth.state(), JobState::Failed);
    let rolled_back = fifth.upgrade.clone().expect("the upgrade");
    assert!(
        rolled_back.note.contains("refuses to start"),
        "{}",
        rolled_back.note
    );
    let sixth = upgrade_ended(&connector, &rolled_back.rollback_job_id).await;
    assert_eq!(step(&sixth), upgrade::Step::Done, "{:?}", sixth.upgrade);
    assert_eq!(sixth.revision, 6);
    assert_eq!(
        sixth.restore.as_ref().map(|r| r.savepoint_path.as_str()),
        Some(rolled_back.savepoint_path.as_str())
    );
    only_running(&cluster, &connector, &lineage, &sixth).await;
    let rerun = until("the rollback to print counts", async || {
        let lines = printed(&cluster, "rev4");
        let after_rollback: Vec<u64> = lines.iter().filter_map(|l| count(l)).collect();
        if after_rollback.len() > 4 {
            Ok(after_rollback)
        } else {
            Err(format!("{} lines", after_rollback.len()))
        }
    })
    .await;
    assert!(rerun.iter().all(|n| *n > 1), "{rerun:?}");

    connector
        .call("CancelJob", Instant::now() + STEP, |mut client| {
            let request = flinkbroker_proto::CancelJobRequest {
                job_id: sixth.id.clone(),
                ..flinkbroker_proto::CancelJobRequest::default()
            };
            async move { client.cancel_job(request).await }
        })
        .await
        .expect("cancel");
    until("the last revision to be canceled", async || {
        let last = job(&connector, &sixth.id).await;
        if last.state() == JobState::Canceled {
            Ok(())
        } else {
            Err(format!("{:?}", last.state()))
        }
    })
    .await;
    assert!(
        running_revisions(&cluster, &connector, &lineage)
            .await
            .is_empty(),
        "nothing of the lineage runs"
    );
    assert_eq!(broker.kills(), 3);
    assert!(
        broker.unexpected_exits().is_empty(),
        "{:?}",
        broker.unexpected_exits()
    );
    eprintln!(
        "upgrades on a real cluster: 6 revisions, 3 kills, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < DEADLINE);
}
