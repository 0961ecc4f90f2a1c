//! Fair shares of the live jobs between replicas: the real `flinkbroker` binary three times on
//! one PostgreSQL database, with the SQL Gateway stand-in (whose INSERT jobs run until
//! cancelled). 900 streaming INSERT jobs are submitted through one replica; two more join, and
//! the jobs spread to about a third each through clean handovers; then one replica is killed
//! and its third spreads over the two survivors. Throughout, every pinned Flink job id reaches
//! the stand-in exactly once, and the replicas' logs show every job driven by one replica at a
//! time: the old owner's driver ended before it gave the lease up, and the next owner took the
//! job up only after that.
//!
//! The store side of the same (heartbeats, census, handover, leave) runs on SQLite and
//! PostgreSQL in `store_leases_*`.
//!
//! Needs PostgreSQL (see `flinkbroker_testkit::postgres`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use flinkbroker_model::job::{JobId, JobSpec, NewJob, RuntimeMode, SqlSpec};
use flinkbroker_proto::{Job, JobState, ListJobsRequest};
use flinkbroker_store::{CreateOutcome, SeaStore, Store, pending_statements};
use futures::StreamExt;
use tokio::time::Instant;

use crate::replicas::{
    CALL_TIMEOUT, Replica, Service, last_flink_job_id, set_flag, streaming_request, tail,
    unbounded_insert,
};
use crate::support::crash;
use crate::support::postgres::PostgresDatabase;

/// Live jobs shared out.
const JOBS: usize = 900;
/// Submissions in flight at once.
const SUBMIT_CONCURRENCY: usize = 16;
/// How far from the fair share a replica's jobs may be once the owners settled.
const SHARE_TOLERANCE_PERCENT: usize = 20;
/// Longest the 900 jobs may take to be submitted and RUNNING.
const SUBMIT_BOUND: Duration = Duration::from_secs(120);
/// Longest the owners may take to settle after a replica joined or died.
const SETTLE_BOUND: Duration = Duration::from_secs(45);
/// Pause between two looks at the owners (each look lists 900 jobs).
const OWNERS_POLL: Duration = Duration::from_millis(300);
/// Pinned-id key of the statements' execution config.
const PINNED_JOB_ID: &str = "$internal.pipeline.job-id";
/// What the replicas log when a handover ends a lease, and when they take a job up.
const RELEASED: &str = "handing the job over: its driver here ended; ending its lease";
const TAKEN_UP: &str = "taking the job up";
/// What a replica's driver of a job logs as it ends because the replica could not renew the
/// job's lease in time (a replica starved of CPU or of the database).
const LEASE_LAPSED: &str = "driver stopped: this replica no longer holds the job's lease";
/// What a resumed job's history says about a takeover.
const TAKEN_OVER_NOTE: &str = "after taking the job over from replica";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_replicas_get_a_fair_share_by_clean_handovers_and_a_dead_ones_share_is_spread() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("fair_shares").await;
    for (flag, value) in [
        ("--poll-interval", "1s"),
        ("--heartbeat-interval", "5s"),
        ("--rebalance-interval", "500ms"),
        ("--rebalance-batch", "100"),
        ("--tenant-max-live-jobs", "5000"),
        ("--tenant-submissions-per-minute", "100000"),
    ] {
        set_flag(&mut service.arguments, flag, value);
    }
    let started = Instant::now();
    let a = Replica::start("replica-a", &service.arguments, service.work_dir.path()).await;
    eprintln!(
        "replica-a serving on {}; logs in {}",
        a.address,
        service.work_dir.path().display()
    );

    // -- 900 live jobs, all through A -----------------------------------------------------------
    let run = uuid::Uuid::new_v4().simple().to_string();
    let client = a.client();
    let submitted: Vec<Job> = futures::stream::iter(0..JOBS)
        .map(|index| {
            let mut client = client.clone();
            let request = streaming_request(
                unbounded_insert(&format!("fair_{index}")),
                &format!("fair-{index}"),
                &run,
            );
            async move {
                tokio::time::timeout(CALL_TIMEOUT, client.submit_sql(request))
                    .await
                    .map_err(|_| format!("SubmitSql fair-{index}: no answer"))?
                    .map(|answer| answer.into_inner())
                    .map_err(|status| format!("SubmitSql fair-{index}: {status}"))
            }
        })
        // In submission order: job `index` runs the INSERT into `snk_fair_{index}`.
        .buffered(SUBMIT_CONCURRENCY)
        .collect::<Vec<Result<Job, String>>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{error}\n{}", tail(&a.log(), 20)));
    let submit_took = started.elapsed();
    let mut owners = Owners::default();
    let all_running = wait_until_every(OWNERS_POLL, started + SUBMIT_BOUND, async || {
        owners = Owners::read(&a, &run).await;
        owners.running == JOBS && owners.count("replica-a") == JOBS
    })
    .await;
    assert!(
        all_running,
        "the {JOBS} jobs were not all RUNNING and driven by replica-a within {SUBMIT_BOUND:?}: {}\n{}",
        owners.summary(),
        tail(&a.log(), 20)
    );
    let running_after = started.elapsed();
    eprintln!(
        "{JOBS} jobs submitted through replica-a in {:.1}s, all RUNNING after {:.1}s",
        submit_took.as_secs_f64(),
        running_after.as_secs_f64()
    );

    // -- B and C join, one after the other -----------------------------------------------------
    let joined = Instant::now();
    let b = Replica::start("replica-b", &service.arguments, service.work_dir.path()).await;
    let mut c = Replica::start("replica-c", &service.arguments, service.work_dir.path()).await;
    let everyone = ["replica-a", "replica-b", "replica-c"];
    let settled = wait_until_every(OWNERS_POLL, joined + SETTLE_BOUND, async || {
        owners = Owners::read(&b, &run).await;
        owners.running == JOBS && owners.fair(&everyone, JOBS)
    })
    .await;
    let settle_took = joined.elapsed();
    let mut problems: Vec<String> = Vec::new();
    if !settled {
        problems.push(format!(
            "the owners did not settle to {}±{SHARE_TOLERANCE_PERCENT}% each within {SETTLE_BOUND:?} of replica-b and replica-c joining: {}",
            JOBS / 3,
            owners.summary()
        ));
    }
    eprintln!(
        "after replica-b and replica-c joined: owners {:?} after {:.1}s",
        owners.by_replica,
        settle_took.as_secs_f64()
    );
    let owners_before_kill = owners.clone();

    // -- C dies: its jobs spread over A and B --------------------------------------------------
    c.kill().await;
    let killed = Instant::now();
    let survivors = ["replica-a", "replica-b"];
    let spread = wait_until_every(OWNERS_POLL, killed + SETTLE_BOUND, async || {
        owners = Owners::read(&a, &run).await;
        owners.running == JOBS && owners.fair(&survivors, JOBS)
    })
    .await;
    let spread_took = killed.elapsed();
    if !spread {
        problems.push(format!(
            "replica-c's jobs were not spread to {}±{SHARE_TOLERANCE_PERCENT}% over replica-a and replica-b within {SETTLE_BOUND:?} of its death: {}",
            JOBS / 2,
            owners.summary()
        ));
    }
    let mut c_jobs_went_to: BTreeMap<String, usize> = BTreeMap::new();
    for (job_id, owner) in &owners_before_kill.owner_of {
        if owner == "replica-c" {
            let now = owners.owner_of.get(job_id).cloned().unwrap_or_default();
            *c_jobs_went_to.entry(now).or_default() += 1;
        }
    }
    eprintln!(
        "after replica-c was killed: owners {:?} after {:.1}s; its {} jobs went to {c_jobs_went_to:?}",
        owners.by_replica,
        spread_took.as_secs_f64(),
        owners_before_kill.count("replica-c")
    );
    for survivor in survivors {
        if c_jobs_went_to.get(survivor).copied().unwrap_or(0) == 0 {
            problems.push(format!(
                "none of replica-c's jobs went to {survivor}: {c_jobs_went_to:?}"
            ));
        }
    }

    // -- No job was driven twice -----------------------------------------------------------------
    // The replicas go on sharing within their own tolerance (finer than the test's), so a
    // handover may be in flight when the owners first look fair: the checks are read again
    // until they hold (a released lease claimed, its new owner's note written), within a bound.
    let quiet_deadline = Instant::now() + SETTLE_BOUND;
    let (mut handovers, mut takeovers_of_dead, mut taken_back);
    loop {
        let mut round: Vec<String> = Vec::new();
        let final_jobs = Owners::jobs(&a, &run).await.unwrap_or_else(|error| {
            round.push(error);
            Vec::new()
        });
        // Every INSERT reached the stand-in once, under the pinned id its job records.
        let mut pins_by_table: HashMap<String, Vec<String>> = HashMap::new();
        for sent in service.standin.statements() {
            let text = sent.statement.trim_start();
            if let Some(rest) = text.strip_prefix("INSERT INTO ") {
                let table = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let pin = sent
                    .execution_config
                    .get(PINNED_JOB_ID)
                    .map(|pin| pin.to_ascii_lowercase())
                    .unwrap_or_default();
                pins_by_table.entry(table).or_default().push(pin);
            }
        }
        let index_of: HashMap<&str, usize> = submitted
            .iter()
            .enumerate()
            .map(|(index, job)| (job.id.as_str(), index))
            .collect();
        for job in &final_jobs {
            let Some(index) = index_of.get(job.id.as_str()) else {
                round.push(format!("job {} was not submitted by this test", job.id));
                continue;
            };
            let pins = pins_by_table
                .get(&format!("snk_fair_{index}"))
                .cloned()
                .unwrap_or_default();
            let recorded = last_flink_job_id(job);
            if pins != [recorded.clone()] {
                round.push(format!(
                    "job {} (fair-{index}): its INSERT reached the stand-in {} times under {pins:?}; the job records {recorded:?}",
                    job.id,
                    pins.len()
                ));
            }
        }
        let inserts: usize = pins_by_table.values().map(Vec::len).sum();
        if inserts != JOBS {
            round.push(format!(
                "{inserts} INSERT statements reached the stand-in for {JOBS} jobs"
            ));
        }
        // One driver at a time: each job's handovers and takeovers, in the order logged.
        let logs: Vec<(&str, String)> = [&a, &b, &c]
            .iter()
            .map(|replica| (replica.id.as_str(), replica.log()))
            .collect();
        let c_last_line = logs
            .iter()
            .find(|(id, _)| *id == "replica-c")
            .and_then(|(_, log)| log.lines().filter_map(timestamp).next_back())
            .unwrap_or_default()
            .to_owned();
        let events = lease_events(&logs);
        handovers = 0;
        takeovers_of_dead = 0;
        taken_back = 0;
        for job in &final_jobs {
            let job_events = events.get(job.id.as_str()).map_or(&[][..], Vec::as_slice);
            let mut walk = Walk {
                owner: Some("replica-a".to_owned()),
                released_by: None,
                dead: ("replica-c", &c_last_line),
            };
            for event in job_events {
                if let Err(problem) = walk.step(event) {
                    round.push(format!(
                        "job {}: {problem}; its events: {job_events:#?}",
                        job.id
                    ));
                    break;
                }
            }
            handovers += job_events
                .iter()
                .filter(|event| event.kind == EventKind::Released)
                .count();
            // Taken up from another replica (a replica may also take back a job it handed over
            // that nobody claimed for two leases, or whose lease it could not renew in time:
            // its history says "after this replica's lease on it had ended").
            let taken_up = job_events
                .iter()
                .filter(|event| {
                    event.kind == EventKind::TakenUp
                        && event.from.as_deref() != Some(event.replica.as_str())
                })
                .count();
            taken_back += job_events
                .iter()
                .filter(|event| {
                    event.kind == EventKind::TakenUp
                        && event.from.as_deref() == Some(event.replica.as_str())
                })
                .count();
            takeovers_of_dead += job_events
                .iter()
                .filter(|event| {
                    event.kind == EventKind::TakenUp && event.from.as_deref() == Some("replica-c")
                })
                .count();
            if walk.owner.as_deref() != Some(job.driven_by.as_str()) {
                round.push(format!(
                    "job {} is driven by {:?}, its last take-up names {:?}",
                    job.id, job.driven_by, walk.owner
                ));
            }
            // The history says each takeover once: each new owner resumed the job once.
            let notes = job
                .history
                .iter()
                .filter(|transition| transition.reason.contains(TAKEN_OVER_NOTE))
                .count();
            if notes != taken_up {
                round.push(format!(
                    "job {}: {taken_up} take-ups logged, {notes} in its history: {:?}",
                    job.id,
                    job.history.iter().map(|t| &t.reason).collect::<Vec<_>>()
                ));
            }
            if job.state() != JobState::Running {
                round.push(format!("job {}: {}", job.id, crash::describe(job)));
            }
        }
        if round.is_empty() || Instant::now() >= quiet_deadline {
            problems.extend(round);
            break;
        }
        tokio::time::sleep(OWNERS_POLL).await;
    }
    if handovers == 0 {
        problems.push("no handover was logged".to_owned());
    }
    let flink_jobs = service.standin.flink_jobs();
    let running_flink_jobs = flink_jobs
        .iter()
        .filter(|(_, state)| state == "RUNNING")
        .count();
    if flink_jobs.len() != JOBS || running_flink_jobs != JOBS {
        problems.push(format!(
            "the stand-in runs {running_flink_jobs} of {} flink jobs; expected {JOBS} RUNNING",
            flink_jobs.len()
        ));
    }
    let mut alive = [a, b];
    for replica in alive.iter_mut() {
        problems.extend(replica.exited());
    }
    eprintln!(
        "{handovers} handovers ({taken_back} taken back by the replica that handed them over, \
         unclaimed for two leases), {takeovers_of_dead} jobs taken over from the dead replica-c; \
         joining settled in {:.1}s, the dead replica's share spread in {:.1}s; test took {:.1}s",
        settle_took.as_secs_f64(),
        spread_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let [a, b] = &alive;
    service.assert_no_problems(&problems, &[a, b, &c]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_replica_gives_its_jobs_to_the_others_at_once() {
    let _turn = crash::one_at_a_time().await;
    let mut service = Service::start("fair_shares_stop").await;
    for (flag, value) in [
        ("--rebalance-interval", "500ms"),
        // Long leases: only the stopping replica's own release lets the others take its jobs
        // within the bound.
        ("--lease-duration", "30s"),
    ] {
        set_flag(&mut service.arguments, flag, value);
    }
    const STOP_JOBS: usize = 30;
    let started = Instant::now();
    let replicas = service
        .replicas(&["replica-a", "replica-b", "replica-c"])
        .await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    for index in 0..STOP_JOBS {
        // Spread over the three at submission already.
        replicas[index % 3]
            .submit_sql(streaming_request(
                unbounded_insert(&format!("stop_{index}")),
                &format!("stop-{index}"),
                &run,
            ))
            .await;
    }
    let everyone = ["replica-a", "replica-b", "replica-c"];
    let mut owners = Owners::default();
    let spread = wait_until_every(OWNERS_POLL, started + SETTLE_BOUND, async || {
        owners = Owners::read(&replicas[0], &run).await;
        owners.running == STOP_JOBS && owners.fair(&everyone, STOP_JOBS)
    })
    .await;
    assert!(
        spread,
        "the jobs were not spread and RUNNING: {}",
        owners.summary()
    );
    let Ok([a, b, mut c]) = <[Replica; 3]>::try_from(replicas) else {
        unreachable!("three replicas were started")
    };
    let c_jobs: BTreeSet<String> = owners
        .owner_of
        .iter()
        .filter(|(_, owner)| owner.as_str() == "replica-c")
        .map(|(job, _)| job.clone())
        .collect();

    // SIGTERM: C waits for its drivers, then leaves and gives its leases up.
    let pid = c.child.id().expect("replica-c runs") as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGTERM) },
        0,
        "SIGTERM replica-c"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), c.child.wait())
        .await
        .expect("replica-c exits after SIGTERM")
        .expect("wait for replica-c");
    let stopped = Instant::now();
    let survivors = ["replica-a", "replica-b"];
    // Well within one 30 s lease: the leases were given up, not left to expire.
    let bound = Duration::from_secs(15);
    let taken = wait_until_every(OWNERS_POLL, stopped + bound, async || {
        owners = Owners::read(&a, &run).await;
        owners.running == STOP_JOBS
            && owners.count("replica-c") == 0
            && owners.fair(&survivors, STOP_JOBS)
    })
    .await;
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("replica-c exited with {status} after SIGTERM"));
    }
    if !taken {
        problems.push(format!(
            "replica-c's jobs were not shared by replica-a and replica-b within {bound:?} of its stop: {}",
            owners.summary()
        ));
    }
    let went_to: BTreeSet<&str> = c_jobs
        .iter()
        .filter_map(|job| owners.owner_of.get(job).map(String::as_str))
        .collect();
    if went_to != BTreeSet::from(["replica-a", "replica-b"]) {
        problems.push(format!(
            "replica-c's jobs went to {went_to:?}, not to both survivors"
        ));
    }
    if !c.log().contains("left the replicas") {
        problems.push("replica-c did not log leaving the replicas".to_owned());
    }
    eprintln!(
        "replica-c stopped; its {} jobs shared out within {:.1}s: owners {:?}",
        c_jobs.len(),
        stopped.elapsed().as_secs_f64(),
        owners.by_replica
    );
    service.assert_no_problems(&problems, &[&a, &b, &c]);
}

// ---------------------------------------------------------------------------------------------
// The store's side, on SQLite and PostgreSQL

const T0: i64 = 1_767_225_600_000;

async fn store_leases_share_and_hand_over(store: Arc<dyn Store>) {
    // Heartbeats: the live replicas are those whose heartbeat has not run out; an expired one
    // is forgotten by the next beat.
    store.heartbeat("a", T0, T0 + 2_000).await.expect("beat a");
    store.heartbeat("b", T0, T0 + 1_000).await.expect("beat b");
    store.heartbeat("c", T0, T0 + 3_000).await.expect("beat c");
    let census = store.census(T0 + 500).await.expect("census");
    assert_eq!(census.replicas, ["a", "b", "c"]);
    assert_eq!((census.unfinished_jobs, census.unclaimed_jobs), (0, 0));
    store
        .heartbeat("a", T0 + 1_500, T0 + 4_000)
        .await
        .expect("beat a again");
    assert_eq!(
        store.census(T0 + 1_500).await.expect("census").replicas,
        ["a", "c"],
        "b's heartbeat ran out"
    );

    let mut jobs = Vec::new();
    for offset in 0..3 {
        jobs.push(create(&store, T0 + offset).await);
    }
    let census = store.census(T0 + 1_500).await.expect("census");
    assert_eq!((census.unfinished_jobs, census.unclaimed_jobs), (3, 3));
    for job in &jobs {
        assert!(store.claim(*job, "a", T0, T0 + 2_000).await.expect("claim"));
    }
    let census = store.census(T0 + 1_500).await.expect("census");
    assert_eq!((census.unfinished_jobs, census.unclaimed_jobs), (3, 0));

    // Extend: only leases still held at `now`.
    let mut held = store
        .extend("a", T0 + 1_000, T0 + 5_000)
        .await
        .expect("extend");
    held.sort();
    let mut all = jobs.clone();
    all.sort();
    assert_eq!(held, all);

    // A handover ends one lease at `now`, only for its owner; `extend` then leaves it out,
    // and the job is claimable from `now` on, naming its previous owner.
    assert!(
        !store
            .hand_over(jobs[0], "b", T0 + 2_000)
            .await
            .expect("hand over by another")
    );
    assert!(
        store
            .hand_over(jobs[0], "a", T0 + 2_000)
            .await
            .expect("hand over")
    );
    assert!(
        !store
            .hand_over(jobs[0], "a", T0 + 2_001)
            .await
            .expect("twice")
    );
    let held = store
        .extend("a", T0 + 2_001, T0 + 6_000)
        .await
        .expect("extend");
    assert_eq!(held.len(), 2);
    assert!(!held.contains(&jobs[0]));
    let census = store.census(T0 + 2_001).await.expect("census");
    assert_eq!(census.unclaimed_jobs, 1);
    assert_eq!(
        store.claimable(T0 + 2_001, 10).await.expect("claimable"),
        vec![jobs[0]]
    );
    // Handed over just now: not yet claimable as left behind for a whole lease.
    assert!(
        store
            .claimable(T0 + 2_001 - 2_000, 10)
            .await
            .expect("orphans")
            .is_empty()
    );
    assert_eq!(
        store.get_job(jobs[0]).await.expect("job").owner.as_deref(),
        Some("a")
    );
    assert!(
        store
            .claim(jobs[0], "b", T0 + 2_001, T0 + 8_000)
            .await
            .expect("claimed by b")
    );

    // Leave: the heartbeat goes, and every lease but those still driven ends at `now`.
    store
        .leave("a", T0 + 3_000, &[jobs[2]])
        .await
        .expect("leave");
    assert_eq!(
        store.census(T0 + 3_000).await.expect("census").replicas,
        ["c"]
    );
    assert_eq!(
        store.claimable(T0 + 3_001, 10).await.expect("claimable"),
        vec![jobs[1]]
    );
    let still = store
        .extend("a", T0 + 3_001, T0 + 9_000)
        .await
        .expect("extend");
    assert_eq!(still, vec![jobs[2]]);
}

async fn create(store: &Arc<dyn Store>, created_at: i64) -> JobId {
    let statements = ["INSERT INTO sink SELECT * FROM src".to_owned()];
    let new_job = NewJob {
        id: JobId::new_random(),
        request_id: None,
        tenant: "default".into(),
        principal: "anonymous".into(),
        labels: BTreeMap::new(),
        spec: JobSpec::Sql(SqlSpec {
            script: statements.join(";\n"),
            runtime_mode: RuntimeMode::Streaming,
            properties: BTreeMap::new(),
            result_limits: Default::default(),
            restore: None,
        }),
        statements: pending_statements(&statements),
        flink_job_id: None,
        created_at,
        lease: None,
        audited_as: None,
        lineage: None,
    };
    match store.create_job(new_job).await.expect("create job") {
        CreateOutcome::Created(job) => job.id,
        other => panic!("expected Created, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_leases_share_and_hand_over_on_sqlite() {
    let store = SeaStore::connect("sqlite::memory:")
        .await
        .expect("connect sqlite memory");
    store_leases_share_and_hand_over(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_leases_share_and_hand_over_on_postgres() {
    let database = PostgresDatabase::create("fb_fair_shares").await;
    let store = SeaStore::connect(&database.url)
        .await
        .expect("connect the test database");
    store_leases_share_and_hand_over(Arc::new(store)).await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Waits for `condition`, looking every `every`, until `deadline`; returns whether it held.
async fn wait_until_every(
    every: Duration,
    deadline: Instant,
    mut condition: impl AsyncFnMut() -> bool,
) -> bool {
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Who drives the jobs of a run, as one replica's ListJobs tells.
#[derive(Debug, Clone, Default)]
struct Owners {
    /// Jobs per `driven_by` ("" for none).
    by_replica: BTreeMap<String, usize>,
    /// Each job's `driven_by`.
    owner_of: BTreeMap<String, String>,
    /// RUNNING jobs.
    running: usize,
    /// Why the last read failed, if it did.
    error: Option<String>,
}

impl Owners {
    async fn read(replica: &Replica, run: &str) -> Owners {
        match Owners::jobs(replica, run).await {
            Ok(jobs) => {
                let mut owners = Owners::default();
                for job in jobs {
                    *owners.by_replica.entry(job.driven_by.clone()).or_default() += 1;
                    owners.running += usize::from(job.state() == JobState::Running);
                    owners.owner_of.insert(job.id, job.driven_by);
                }
                owners
            }
            Err(error) => Owners {
                error: Some(error),
                ..Owners::default()
            },
        }
    }

    /// Every job of the run, through ListJobs pages.
    async fn jobs(replica: &Replica, run: &str) -> Result<Vec<Job>, String> {
        let mut jobs = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = ListJobsRequest {
                labels: HashMap::from([("run".to_owned(), run.to_owned())]),
                page_size: 500,
                page_token: page_token.clone(),
                ..ListJobsRequest::default()
            };
            let page = tokio::time::timeout(CALL_TIMEOUT, replica.client().list_jobs(request))
                .await
                .map_err(|_| format!("ListJobs on {}: no answer", replica.id))?
                .map_err(|status| format!("ListJobs on {}: {status}", replica.id))?
                .into_inner();
            jobs.extend(page.jobs);
            if page.next_page_token.is_empty() {
                return Ok(jobs);
            }
            page_token = page.next_page_token;
        }
    }

    /// The jobs per replica, or why they could not be read.
    fn summary(&self) -> String {
        match &self.error {
            Some(error) => format!("cannot list the jobs: {error}"),
            None => format!("{:?}, {} RUNNING", self.by_replica, self.running),
        }
    }

    fn count(&self, replica: &str) -> usize {
        self.by_replica.get(replica).copied().unwrap_or(0)
    }

    /// True when `replicas` drive all `jobs` between them, each its share within the
    /// tolerance.
    fn fair(&self, replicas: &[&str], jobs: usize) -> bool {
        let share = jobs / replicas.len();
        let slack = share * SHARE_TOLERANCE_PERCENT / 100;
        replicas.iter().map(|id| self.count(id)).sum::<usize>() == jobs
            && replicas
                .iter()
                .all(|id| self.count(id).abs_diff(share) <= slack)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    /// The replica's driver of the job ended and it ends the job's lease.
    Released,
    /// The replica's driver of the job ended because the replica could not renew its lease.
    Lapsed,
    /// The replica claimed the job and starts its driver.
    TakenUp,
}

/// One line of a replica's log about a job's lease.
#[derive(Debug, Clone)]
struct LeaseEvent {
    /// The line's timestamp (RFC 3339, UTC, fixed width: ordered as text).
    at: String,
    kind: EventKind,
    replica: String,
    /// The previous owner a take-up names.
    from: Option<String>,
}

/// Every handover and take-up the replicas logged, by job, in time order (a release before a
/// take-up logged in the same microsecond).
fn lease_events(logs: &[(&str, String)]) -> HashMap<String, Vec<LeaseEvent>> {
    let mut events: HashMap<String, Vec<LeaseEvent>> = HashMap::new();
    for (replica, log) in logs {
        for line in log.lines() {
            let kind = if line.contains(RELEASED) {
                EventKind::Released
            } else if line.contains(LEASE_LAPSED) {
                EventKind::Lapsed
            } else if line.contains(TAKEN_UP) {
                EventKind::TakenUp
            } else {
                continue;
            };
            let (Some(at), Some(job_id)) = (timestamp(line), field(line, "job_id=")) else {
                continue;
            };
            let from = field(line, "previous_owner=Some(\"")
                .map(|owner| owner.trim_end_matches(['"', ')']).to_owned());
            events
                .entry(job_id.to_owned())
                .or_default()
                .push(LeaseEvent {
                    at: at.to_owned(),
                    kind,
                    replica: (*replica).to_owned(),
                    from,
                });
        }
    }
    for job_events in events.values_mut() {
        job_events.sort_by(|x, y| (&x.at, x.kind).cmp(&(&y.at, y.kind)));
    }
    events
}

/// The timestamp a text log line starts with.
fn timestamp(line: &str) -> Option<&str> {
    let first = line.split_whitespace().next()?;
    (first.len() > 20 && first.ends_with('Z') && first.as_bytes()[4] == b'-').then_some(first)
}

/// The value of a `key=value` field of a log line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split_whitespace().next()
}

/// A job's owner, walked through its lease events: a take-up must follow the previous owner's
/// release (or the previous owner's death).
struct Walk<'a> {
    owner: Option<String>,
    released_by: Option<String>,
    /// The replica that was killed, and its last log line's timestamp.
    dead: (&'a str, &'a str),
}

impl Walk<'_> {
    fn step(&mut self, event: &LeaseEvent) -> Result<(), String> {
        match event.kind {
            EventKind::Released | EventKind::Lapsed => {
                if self.owner.as_deref() == Some(event.replica.as_str()) {
                    self.owner = None;
                    self.released_by = Some(event.replica.clone());
                    Ok(())
                } else if self.released_by.as_deref() == Some(event.replica.as_str()) {
                    // Said again after a store error: still released.
                    Ok(())
                } else {
                    Err(format!(
                        "{} released it at {} while {:?} drove it",
                        event.replica, event.at, self.owner
                    ))
                }
            }
            EventKind::TakenUp => {
                let from = event.from.as_deref().unwrap_or_default();
                // Released by the previous owner (any replica may claim it then, that one too,
                // once nobody else did for two leases), or the previous owner died before.
                let after_release =
                    self.owner.is_none() && self.released_by.as_deref() == Some(from);
                // (The dead replica may have claimed a released job just before it died,
                // before it could log so.)
                let after_death = (self.owner.as_deref() == Some(from) || self.owner.is_none())
                    && from == self.dead.0
                    && event.at.as_str() > self.dead.1;
                if !(after_release || after_death) {
                    return Err(format!(
                        "{} took it up at {} from {from:?} while {:?} drove it (released by {:?})",
                        event.replica, event.at, self.owner, self.released_by
                    ));
                }
                self.owner = Some(event.replica.clone());
                self.released_by = None;
                Ok(())
            }
        }
    }
}
