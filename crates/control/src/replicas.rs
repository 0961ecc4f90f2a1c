//! Many replicas, one database: leases decide which replica drives each live job, and the
//! replicas share the live jobs fairly.
//!
//! A replica drives a job only while it holds the job's lease (`jobs.owner`,
//! `jobs.lease_until`). Two tasks keep the leases. `keep_leases`, each quarter of
//! `--lease-duration`, records the replica's heartbeat in `replicas` (alive until its leases'
//! new end) and extends the leases it still holds, and acts on the cancels other replicas
//! recorded for its jobs; a replica that cannot renew its leases stops its drivers before the
//! leases run out, so that two replicas never drive one job, and one that finds a lease it no
//! longer holds stops that job's driver. `share_jobs`, in rounds of its own (so that renewals
//! never wait for claims or handovers), shares the jobs out.
//!
//! **Fair shares.** The live replicas are those whose heartbeat has not run out; each
//! replica's share is ceil(unfinished jobs / live replicas), counted afresh each round
//! (`Leases::census`). A replica under its share claims jobs whose lease ran out or was handed
//! over, up to its share; a job nobody claimed for [`ORPHANED_AFTER_LEASES`] leases is claimed
//! by any replica, so that none is left behind. At most [`TAKEOVER_BATCH`] claims a round. A
//! replica over its share by more than a tolerance ([`tolerance`]) hands its excess over, at
//! most `--rebalance-batch` jobs on their way at once (being stopped here, or not claimed yet)
//! each `--rebalance-interval`, and only RUNNING jobs with nothing under way
//! ([`may_hand_over`]).
//!
//! **A clean handover.** The replica marks the job as handed over (`Handovers`: nothing here
//! starts a driver for it from then on), stops its driver (its `stop` token), and waits until
//! the driver has ended and the registry no longer has the job. Only then does it end the
//! job's lease, by a compare-and-set on itself as the owner ([`Leases::hand_over`]); the owner
//! stays recorded, so the replica that claims the job next resumes it as after a takeover
//! ("after taking the job over from replica …" in its history). Until the lease ends no other
//! replica may claim it, and the old owner never drives it again unless it claims it anew.
//!
//! A replica stopping waits (a quarter lease at most) for its drivers to end, then forgets its
//! heartbeat and gives up the leases of the jobs whose driver ended (`Leases::leave`), so that
//! the others share them out at once.
//!
//! The janitor, on every replica, deletes the result logs of jobs that ended more than
//! `--result-retention` ago.
//!
//! [`Leases::hand_over`]: flinkbroker_store::Leases::hand_over

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::driver::Command;
use super::{CancelOptions, Controller};
use crate::error::Result;
use crate::metrics;
use flinkbroker_model::job::{Job, JobId, JobState, SavepointState, UnixMillis, now_millis};
use flinkbroker_store::{Census, StoreError};

/// Jobs claimed per takeover round, besides the ones this replica holds already.
const TAKEOVER_BATCH: u64 = 100;
/// A job nobody claimed for this many lease durations is claimed by any replica, over its
/// share or not. (Two, not one: a job handed over waits up to a round of the replicas under
/// their share, and the replica that handed it over should not take it straight back.)
const ORPHANED_AFTER_LEASES: i64 = 2;
/// A replica hands jobs over only when it holds more than its share plus this many jobs…
const MIN_TOLERANCE: u64 = 2;
/// …or plus this percentage of its share, whichever is more.
const TOLERANCE_PERCENT: u64 = 10;
/// Result logs deleted per janitor round.
const JANITOR_BATCH: u64 = 100;
/// Audit events deleted per statement by the janitor.
const AUDIT_EXPIRY_BATCH: u64 = 1000;

/// The jobs this replica is handing over: a job is here from the moment its driver is told to
/// stop until its lease is given up (or turned out not to be this replica's any more). No
/// driver starts here for a job while it is here.
#[derive(Default)]
pub(super) struct Handovers {
    ids: Mutex<HashSet<JobId>>,
    /// Held around each extension of the leases and each handover, each with its `now` read
    /// under it: an extension that read the clock before a handover ended a lease would
    /// otherwise extend that lease again.
    lease_writes: tokio::sync::Mutex<()>,
}

impl Handovers {
    fn insert(&self, id: JobId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id);
        }
    }

    fn remove(&self, id: JobId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(&id);
        }
    }

    /// True when the job is being handed over (also when the set cannot be read: then no
    /// driver starts).
    pub(super) fn contains(&self, id: JobId) -> bool {
        self.ids.lock().map_or(true, |ids| ids.contains(&id))
    }

    fn ids(&self) -> Vec<JobId> {
        self.ids
            .lock()
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// One replica's view of how the live jobs are shared, as of one census.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shares {
    /// The live replicas, this one included.
    replicas: u64,
    /// The unfinished jobs.
    unfinished: u64,
    /// The unfinished jobs nobody holds a lease on: waiting to be claimed.
    unclaimed: u64,
    /// Each replica's fair share: ceil(unfinished / replicas).
    share: u64,
}

impl Shares {
    fn of(census: &Census, replica: &str) -> Shares {
        let mut replicas = u64::try_from(census.replicas.len()).unwrap_or(u64::MAX);
        // This replica beat just before, but counts itself whatever the table says.
        if !census.replicas.iter().any(|alive| alive == replica) {
            replicas = replicas.saturating_add(1);
        }
        Shares {
            replicas,
            unfinished: census.unfinished_jobs,
            unclaimed: census.unclaimed_jobs,
            share: fair_share(census.unfinished_jobs, replicas),
        }
    }
}

/// Each of `replicas` replicas' fair share of `unfinished` jobs: ceil(unfinished / replicas).
fn fair_share(unfinished: u64, replicas: u64) -> u64 {
    unfinished.div_ceil(replicas.max(1))
}

/// How far over its share a replica may be before it hands jobs over: small imbalances are
/// not worth moving a job for.
fn tolerance(share: u64) -> u64 {
    (share.saturating_mul(TOLERANCE_PERCENT) / 100).max(MIN_TOLERANCE)
}

/// How many more jobs to hand over now: none while `keeping` is within the tolerance of the
/// share; else down to the share, with at most `batch` jobs on their way (`in_flight`: the
/// drivers this replica is stopping, and the jobs nobody has claimed yet). Jobs handed over
/// faster than the others claim them would only wait, and be left behind.
fn to_hand_over(keeping: u64, share: u64, batch: u64, in_flight: u64) -> u64 {
    if keeping <= share.saturating_add(tolerance(share)) {
        return 0;
    }
    (keeping - share).min(batch.saturating_sub(in_flight))
}

/// Whether a job is one to hand over: RUNNING, with no cancel, upgrade or savepoint under way
/// (its next owner would resume any of those, but a job that just runs costs least to move).
fn may_hand_over(job: &Job) -> bool {
    job.state == JobState::Running
        && job.cancel_request.is_none()
        && !job
            .lineage
            .upgrade
            .as_ref()
            .is_some_and(|upgrade| upgrade.step.in_progress())
        && !job
            .savepoints
            .iter()
            .any(|savepoint| savepoint.state == SavepointState::InProgress)
}

/// Waits until every one of the drivers publishing on `jobs` has ended (its channel closed).
async fn drivers_ended(jobs: Vec<watch::Receiver<Job>>) {
    for mut job in jobs {
        while job.changed().await.is_ok() {}
    }
}

/// When a replica takes up a job whose lease last named itself: what its history says.
#[derive(Debug, Clone, Copy)]
enum Resumption {
    /// At the replica's start: the process that drove the job before is gone.
    Restart,
    /// While the replica runs: its lease on the job ended (a handover nobody claimed, or a
    /// renewal the database did not answer in time).
    Running,
}

impl Controller {
    /// Takes up every job this replica held, and its share of the jobs nobody holds any more
    /// (a restart, or a replica that died), then keeps the leases and runs the janitor in the
    /// background.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        // Every lease taken below runs a whole lease from this instant or later: the
        // renewals count from here, not from the end of the takeover, which may take seconds.
        let began = Instant::now();
        let now = now_millis();
        let until = self.lease_until();
        self.store.heartbeat(&self.replica, now, until).await?;
        // Nobody else drives a job whose lease still names this replica: at a restart the
        // replica takes all of them back, expired leases too.
        let own = self.store.renew(&self.replica, until).await?;
        let shares = Shares::of(&self.store.census(now).await?, &self.replica);
        let held = u64::try_from(own.len()).unwrap_or(u64::MAX);
        let resumed = self
            .take_over(own, shares.share.saturating_sub(held), Resumption::Restart)
            .await?;
        if resumed > 0 {
            info!(jobs = resumed, replica = %self.replica, share = shares.share, replicas = shares.replicas, "resumed the jobs left unfinished");
        }
        self.resume_upgrades().await?;
        let this = Arc::clone(self);
        self.tasks
            .spawn(async move { this.keep_leases(began).await });
        let this = Arc::clone(self);
        self.tasks.spawn(async move { this.janitor().await });
        Ok(())
    }

    /// The time a lease taken or renewed now lasts until.
    pub(super) fn lease_until(&self) -> UnixMillis {
        now_millis().saturating_add(self.lease_millis())
    }

    fn lease_millis(&self) -> i64 {
        i64::try_from(self.limits.lease_duration.as_millis()).unwrap_or(i64::MAX)
    }

    /// Starts a driver for each of `own` (jobs whose lease this replica holds and that no
    /// driver here drives), then claims jobs nobody holds: every one nobody claimed for
    /// [`ORPHANED_AFTER_LEASES`] leases, and the others while under the share (`room` more),
    /// at most [`TAKEOVER_BATCH`] claims in all. Returns how many jobs were taken up.
    async fn take_over(
        self: &Arc<Self>,
        own: Vec<JobId>,
        room: u64,
        resumption: Resumption,
    ) -> Result<usize> {
        let now = now_millis();
        let mut taken = 0;
        for id in own {
            if self.take_up(id, resumption).await? {
                taken += 1;
            }
        }
        let orphans = self
            .store
            .claimable(
                now.saturating_sub(self.lease_millis().saturating_mul(ORPHANED_AFTER_LEASES)),
                TAKEOVER_BATCH,
            )
            .await?;
        let mut waiting = if room > 0 {
            self.store.claimable(now, 2 * TAKEOVER_BATCH).await?
        } else {
            Vec::new()
        };
        // Each replica under its share tries the waiting jobs in an order of its own, so that
        // two of them do not queue for the same rows.
        let order = RandomState::new();
        waiting.sort_by_cached_key(|id| order.hash_one(id));
        let mut room = room;
        let mut claimed = 0;
        let mut looked_at = HashSet::new();
        let candidates = orphans
            .into_iter()
            .map(|id| (id, true))
            .chain(waiting.into_iter().map(|id| (id, false)));
        for (id, orphaned) in candidates {
            if claimed >= TAKEOVER_BATCH || (!orphaned && room == 0) || self.shutdown.is_cancelled()
            {
                break;
            }
            if !looked_at.insert(id) {
                continue;
            }
            if self.take_up(id, resumption).await? {
                claimed += 1;
                room = room.saturating_sub(1);
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Claims one job's lease and starts its driver; false when a driver here drives it, it is
    /// being handed over, it is over, or another replica claimed it first.
    async fn take_up(self: &Arc<Self>, id: JobId, resumption: Resumption) -> Result<bool> {
        if self.live.get(id).is_some() || self.handovers.contains(id) {
            return Ok(false);
        }
        let before = self.store.get_job(id).await?;
        // The lease runs from now, however long the round has taken so far.
        if before.state.is_terminal()
            || !self
                .store
                .claim(id, &self.replica, now_millis(), self.lease_until())
                .await?
        {
            return Ok(false);
        }
        // Read again: the job as it is now that this replica holds its lease. A job recorded
        // here just now has its driver by now (its submission started it).
        let mut job = self.store.get_job(id).await?;
        if job.state.is_terminal() || self.live.get(id).is_some() {
            return Ok(false);
        }
        let from_other_replica = before
            .owner
            .as_deref()
            .is_some_and(|owner| owner != self.replica);
        let because = match before.owner.as_deref() {
            Some(owner) if from_other_replica => {
                format!("after taking the job over from replica {owner}")
            }
            _ => match resumption {
                Resumption::Restart => "after a broker restart".to_owned(),
                Resumption::Running => "after this replica's lease on it had ended (a handover nobody claimed, or a renewal not answered in time)".to_owned(),
            },
        };
        metrics::lease_takeover(from_other_replica);
        info!(job_id = %id, state = job.state.as_str(), replica = %self.replica, previous_owner = ?before.owner, "taking the job up");
        job.owner = Some(self.replica.clone());
        self.spawn_driver(job, Some(because));
        Ok(true)
    }

    /// Whether a job whose driver could not record its progress may get a new driver here:
    /// not while it is being handed over, and only while this replica still holds its lease.
    pub(super) async fn may_take_up_again(&self, id: JobId) -> bool {
        if self.handovers.contains(id) {
            return false;
        }
        match self.extend_leases().await {
            Ok(held) if held.contains(&id) => true,
            Ok(_) => {
                info!(job_id = %id, "the job's lease was handed over or ran out; another replica takes it up");
                false
            }
            Err(error) => {
                warn!(job_id = %id, %error, "cannot read the job's lease; the next lease round takes the job up if this replica still holds it");
                false
            }
        }
    }

    /// Renews the leases and passes recorded cancels to the drivers, until shutdown, while a
    /// task of its own shares the jobs out; then leaves the replicas. Renewals never wait for
    /// the sharing, however long a round of claims or handovers takes.
    async fn keep_leases(self: Arc<Self>, taken: Instant) {
        let this = Arc::clone(&self);
        let sharing = self.tasks.spawn(async move { this.share_jobs().await });
        let renew_every = self.limits.lease_duration / 4;
        let poll = self.limits.replica_poll_interval.min(renew_every);
        // When the leases held were last taken or renewed (the request's start).
        let mut renewed = taken;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
            self.pass_recorded_cancels().await;
            if renewed.elapsed() < renew_every {
                continue;
            }
            // The drivers running before the renewal: a job taken up since has its lease.
            let driven = self.live.ids();
            // The leases it extends run from before the request; those held now run out a
            // lease after the last renewal began. The drivers stop a quarter lease before, so
            // that no other replica drives a job this one still drives: a renewal that has not
            // answered by then is given up, as one that failed.
            let attempt = Instant::now();
            let stop_at = renewed + self.limits.lease_duration.saturating_sub(renew_every);
            // Past that point (the drivers stopped already), a renewal gets a quarter lease.
            let answer_by = if stop_at > attempt {
                stop_at
            } else {
                attempt + renew_every
            };
            let renewal = tokio::time::timeout_at(answer_by, self.renew_leases()).await;
            let error = match renewal {
                Ok(Ok(held)) => {
                    renewed = attempt;
                    self.stop_drivers_without_lease(&driven, &held);
                    continue;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!(
                    "the database did not answer within {:?}",
                    answer_by.saturating_duration_since(attempt)
                ),
            };
            warn!(%error, "cannot renew the job leases");
            if Instant::now() >= stop_at {
                warn!(replica = %self.replica, "job leases could not be renewed in time; stopping this replica's drivers until the database answers");
                self.stop_drivers_without_lease(&driven, &HashSet::new());
            }
        }
        // No claim or handover may come after the leases are given up.
        if let Err(error) = sharing.await {
            warn!(%error, "the task sharing the jobs out ended abnormally");
        }
        self.leave().await;
    }

    /// Shares the live jobs out with the other replicas, a round each quarter lease until
    /// shutdown: counts the replicas and the jobs, gives up the leases of jobs handed over,
    /// hands the excess over (each `--rebalance-interval`), and takes jobs up.
    async fn share_jobs(self: Arc<Self>) {
        let every = self.limits.lease_duration / 4;
        let mut rebalanced = Instant::now();
        let mut last_shares: Option<Shares> = None;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // The leases as they are now: one handed over since the last renewal is not held.
            // Read, not extended: the renewals (`keep_leases`) are the only writes of the
            // leases this replica keeps, so a round of sharing rewrites no job's row.
            let held: HashSet<JobId> = match self.store.held(&self.replica, now_millis()).await {
                Ok(held) => held.into_iter().collect(),
                Err(error) => {
                    warn!(%error, "cannot read the job leases; no jobs are shared out this round");
                    continue;
                }
            };
            // Held here without a driver and not being handed over: one whose driver lost the
            // store. Chosen before this round gives any lease up: a job handed over below is
            // never taken back as this replica's own.
            let own: Vec<JobId> = held
                .iter()
                .copied()
                .filter(|id| self.live.get(*id).is_none() && !self.handovers.contains(*id))
                .collect();
            self.release_handed_over().await;
            let shares = match self.store.census(now_millis()).await {
                Ok(census) => Shares::of(&census, &self.replica),
                Err(error) => {
                    warn!(%error, "cannot count the replicas and the live jobs; no jobs are shared out this round");
                    continue;
                }
            };
            let holding = u64::try_from(held.len()).unwrap_or(u64::MAX);
            if last_shares
                .is_none_or(|last| last.share != shares.share || last.replicas != shares.replicas)
            {
                info!(replica = %self.replica, replicas = shares.replicas, unfinished_jobs = shares.unfinished, share = shares.share, holding, "fair share of the live jobs");
                last_shares = Some(shares);
            }
            if rebalanced.elapsed() >= self.limits.rebalance_interval {
                rebalanced = Instant::now();
                self.hand_over_excess(&held, shares).await;
            }
            if let Err(error) = self
                .take_over(
                    own,
                    shares.share.saturating_sub(holding),
                    Resumption::Running,
                )
                .await
            {
                warn!(%error, "cannot take jobs over");
            }
        }
    }

    /// Records this replica's heartbeat and extends the leases it still holds; returns the
    /// jobs whose lease it holds.
    async fn renew_leases(&self) -> std::result::Result<HashSet<JobId>, StoreError> {
        let until = self.lease_until();
        self.store
            .heartbeat(&self.replica, now_millis(), until)
            .await?;
        Ok(self.extend_leases().await?.into_iter().collect())
    }

    /// Extends the leases this replica still holds; returns their jobs. Never at once with a
    /// handover (`Handovers::lease_writes`).
    async fn extend_leases(&self) -> std::result::Result<Vec<JobId>, StoreError> {
        let _turn = self.handovers.lease_writes.lock().await;
        self.store
            .extend(&self.replica, now_millis(), self.lease_until())
            .await
    }

    /// Hands over what this replica holds beyond its share (and the tolerance), at most
    /// `--rebalance-batch` jobs under way: stops their drivers, waits a little for them to
    /// end, and gives up the leases of those that ended (the others go in a later round).
    async fn hand_over_excess(&self, held: &HashSet<JobId>, shares: Shares) {
        let handing = self.handovers.ids();
        let keeping = held.iter().filter(|id| !handing.contains(id)).count();
        let count = to_hand_over(
            u64::try_from(keeping).unwrap_or(u64::MAX),
            shares.share,
            self.limits.rebalance_batch,
            u64::try_from(handing.len())
                .unwrap_or(u64::MAX)
                .saturating_add(shares.unclaimed),
        );
        if count == 0 {
            return;
        }
        let mut stopping = Vec::new();
        for id in self.live.ids() {
            if u64::try_from(stopping.len()).unwrap_or(u64::MAX) >= count {
                break;
            }
            if !held.contains(&id) || handing.contains(&id) {
                continue;
            }
            let Some(live) = self.live.get(id) else {
                continue;
            };
            if !may_hand_over(&live.job.borrow()) {
                continue;
            }
            // Marked first: from now on nothing here starts a driver for the job.
            self.handovers.insert(id);
            live.stop.cancel();
            info!(job_id = %id, replica = %self.replica, "handing the job over: its driver stops first");
            stopping.push(live.job);
        }
        if stopping.is_empty() {
            return;
        }
        info!(replica = %self.replica, holding = keeping, share = shares.share, replicas = shares.replicas, handing_over = stopping.len(), "over the fair share: handing jobs over");
        // The drivers stop at their next step; those that take longer are released later.
        let _ = tokio::time::timeout(self.limits.lease_duration / 8, drivers_ended(stopping)).await;
        self.release_handed_over().await;
    }

    /// Ends the leases of the jobs being handed over whose driver has ended, so that another
    /// replica claims them; a job whose driver still runs waits for a later round.
    async fn release_handed_over(&self) {
        for id in self.handovers.ids() {
            if self.live.get(id).is_some() {
                continue;
            }
            // Said before the lease ends, so that no replica can take the job up before it.
            info!(job_id = %id, replica = %self.replica, "handing the job over: its driver here ended; ending its lease");
            let handed_over = {
                let _turn = self.handovers.lease_writes.lock().await;
                self.store.hand_over(id, &self.replica, now_millis()).await
            };
            match handed_over {
                Ok(true) => {
                    metrics::lease_handover();
                    self.handovers.remove(id);
                }
                Ok(false) => {
                    info!(job_id = %id, replica = %self.replica, "the job ended or its lease was no longer this replica's: nothing to hand over");
                    self.handovers.remove(id);
                }
                Err(error) => {
                    warn!(job_id = %id, %error, "cannot give the job's lease up; trying again next round")
                }
            }
        }
    }

    /// Stops the drivers of `driven` jobs whose lease this replica no longer holds.
    fn stop_drivers_without_lease(&self, driven: &[JobId], held: &HashSet<JobId>) {
        for id in driven {
            if held.contains(id) {
                continue;
            }
            if let Some(live) = self.live.get(*id)
                && !live.job.borrow().state.is_terminal()
                && !live.stop.is_cancelled()
            {
                warn!(job_id = %id, replica = %self.replica, "this replica no longer holds the job's lease; its driver stops");
                live.stop.cancel();
            }
        }
    }

    /// Leaves the replicas (at shutdown): waits a quarter lease at most for the drivers to
    /// end, then forgets this replica's heartbeat and gives up the leases of the jobs whose
    /// driver ended, so that the other replicas share them out at once.
    async fn leave(&self) {
        let drivers: Vec<watch::Receiver<Job>> = self
            .live
            .ids()
            .into_iter()
            .filter_map(|id| self.live.get(id))
            .map(|live| live.job)
            .collect();
        let _ = tokio::time::timeout(self.limits.lease_duration / 4, drivers_ended(drivers)).await;
        let still_driven = self.live.ids();
        match self
            .store
            .leave(&self.replica, now_millis(), &still_driven)
            .await
        {
            Ok(()) => {
                info!(replica = %self.replica, still_driven = still_driven.len(), "left the replicas; job leases given up for other replicas")
            }
            Err(error) => {
                warn!(%error, "cannot give the job leases up; other replicas take the jobs over when they expire")
            }
        }
    }

    /// Gives the drivers of this replica the cancels recorded for their jobs.
    async fn pass_recorded_cancels(&self) {
        let requests = match self.store.cancel_requests(&self.replica).await {
            Ok(requests) => requests,
            Err(error) => {
                warn!(%error, "cannot read recorded cancels");
                return;
            }
        };
        for (id, request) in requests {
            let Some(live) = self.live.get(id) else {
                continue;
            };
            let options: CancelOptions = serde_json::from_str(&request).unwrap_or_default();
            let (reply, _answer) = oneshot::channel();
            // A driver busy right now takes it at the next round.
            if live
                .commands
                .try_send(Box::new(Command::Cancel { options, reply }))
                .is_ok()
            {
                info!(job_id = %id, "recorded cancel passed to the job's driver");
            }
        }
    }

    /// Deletes the result logs of jobs that ended more than the retention ago, until shutdown.
    async fn janitor(self: Arc<Self>) {
        let retention = i64::try_from(self.limits.result_retention.as_millis()).unwrap_or(i64::MAX);
        loop {
            let ended_before = now_millis().saturating_sub(retention);
            match self.store.expire_logs(ended_before, JANITOR_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => {
                    self.ended.clear();
                    info!(
                        logs = deleted,
                        retention_s = self.limits.result_retention.as_secs(),
                        "deleted result logs past their retention"
                    );
                    if deleted == JANITOR_BATCH {
                        // More are due: go on at once.
                        continue;
                    }
                }
                Err(error) => warn!(%error, "cannot delete expired result logs"),
            }
            self.expire_audit_events().await;
            self.expire_ended_jobs().await;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.limits.janitor_interval.max(Duration::from_millis(10))) => {}
            }
        }
    }

    /// Deletes audit events older than the audit retention, a batch at a time.
    async fn expire_audit_events(&self) {
        let retention = i64::try_from(self.limits.audit_retention.as_millis()).unwrap_or(i64::MAX);
        let before = now_millis().saturating_sub(retention);
        loop {
            match self.store.expire_audit(before, AUDIT_EXPIRY_BATCH).await {
                Ok(0) => return,
                Ok(deleted) => {
                    info!(
                        events = deleted,
                        retention_s = self.limits.audit_retention.as_secs(),
                        "deleted audit events past their retention"
                    );
                    if deleted < AUDIT_EXPIRY_BATCH || self.shutdown.is_cancelled() {
                        return;
                    }
                }
                Err(error) => {
                    warn!(%error, "cannot delete expired audit events");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fair_share_rounds_up_and_counts_at_least_one_replica() {
        assert_eq!(fair_share(900, 3), 300);
        assert_eq!(fair_share(901, 3), 301);
        assert_eq!(fair_share(2, 3), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(7, 0), 7);
    }

    #[test]
    fn a_replica_counts_itself_among_the_live_replicas() {
        let census = Census {
            replicas: vec!["a".into(), "b".into()],
            unfinished_jobs: 900,
            unclaimed_jobs: 10,
        };
        assert_eq!(
            Shares::of(&census, "a"),
            Shares {
                replicas: 2,
                unfinished: 900,
                unclaimed: 10,
                share: 450
            }
        );
        assert_eq!(Shares::of(&census, "c").share, 300);
    }

    #[test]
    fn only_the_excess_beyond_the_tolerance_is_handed_over_a_batch_at_a_time() {
        // Within the tolerance (10 % of the share, at least 2 jobs): nothing moves.
        assert_eq!(to_hand_over(330, 300, 100, 0), 0);
        assert_eq!(to_hand_over(3, 1, 100, 0), 0);
        // Beyond it: down to the share, at most a batch under way (being stopped here, or
        // waiting for a claim).
        assert_eq!(to_hand_over(331, 300, 100, 0), 31);
        assert_eq!(to_hand_over(900, 300, 100, 0), 100);
        assert_eq!(to_hand_over(900, 300, 100, 60), 40);
        assert_eq!(to_hand_over(900, 300, 100, 100), 0);
        assert_eq!(to_hand_over(900, 300, 0, 0), 0);
    }
}
