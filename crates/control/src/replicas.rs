//! Many replicas, one database: leases decide which replica drives each live job.
//!
//! A replica drives a job only while it holds the job's lease (`jobs.owner`,
//! `jobs.lease_until`). It renews every lease it holds each quarter of `--lease-duration`,
//! takes over jobs whose lease expired (their replica died) and resumes them exactly as after
//! a restart, and acts on the cancels other replicas recorded for its jobs. A replica that
//! cannot renew its leases stops its drivers before the leases run out, so that two replicas
//! never drive one job; one that finds a lease taken by another stops that job's driver.
//! A replica stopping gives its leases up, so that others take its jobs over at once.
//!
//! The janitor, on every replica, deletes the result logs of jobs that ended more than
//! `--result-retention` ago.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::driver::Command;
use super::{CancelOptions, Controller};
use crate::error::Result;
use crate::metrics;
use flinkbroker_model::job::{JobId, UnixMillis, now_millis};

/// Jobs looked at per takeover round.
const TAKEOVER_BATCH: u64 = 100;
/// Result logs deleted per janitor round.
const JANITOR_BATCH: u64 = 100;
/// Audit events deleted per statement by the janitor.
const AUDIT_EXPIRY_BATCH: u64 = 1000;

impl Controller {
    /// Takes up every job this replica held or nobody holds any more (a restart, or a replica
    /// that died), then keeps the leases and runs the janitor in the background.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let resumed = self.take_over().await?;
        if resumed > 0 {
            info!(jobs = resumed, replica = %self.replica, "resumed the jobs left unfinished");
        }
        self.resume_upgrades().await?;
        let this = Arc::clone(self);
        self.tasks.spawn(async move { this.keep_leases().await });
        let this = Arc::clone(self);
        self.tasks.spawn(async move { this.janitor().await });
        Ok(())
    }

    /// The time a lease taken or renewed now lasts until.
    pub(super) fn lease_until(&self) -> UnixMillis {
        let lease = i64::try_from(self.limits.lease_duration.as_millis()).unwrap_or(i64::MAX);
        now_millis().saturating_add(lease)
    }

    /// Claims this replica's own jobs and the jobs whose lease expired, and starts a driver
    /// for each; returns how many were taken up.
    async fn take_over(self: &Arc<Self>) -> Result<usize> {
        let now = now_millis();
        let until = self.lease_until();
        let mut ids = self.store.renew(&self.replica, until).await?;
        ids.extend(self.store.claimable(now, TAKEOVER_BATCH).await?);
        let mut taken = 0;
        for id in ids {
            if self.live.get(id).is_some() {
                continue;
            }
            let before = self.store.get_job(id).await?;
            if before.state.is_terminal()
                || !self.store.claim(id, &self.replica, now, until).await?
            {
                continue;
            }
            // Read again: the job as it is now that this replica holds its lease.
            let mut job = self.store.get_job(id).await?;
            if job.state.is_terminal() {
                continue;
            }
            let from_other_replica = before
                .owner
                .as_deref()
                .is_some_and(|owner| owner != self.replica);
            let because = match before.owner.as_deref() {
                Some(owner) if from_other_replica => {
                    format!("after taking the job over from replica {owner}")
                }
                _ => "after a broker restart".to_owned(),
            };
            metrics::lease_takeover(from_other_replica);
            info!(job_id = %id, state = job.state.as_str(), replica = %self.replica, previous_owner = ?before.owner, "taking the job up");
            job.owner = Some(self.replica.clone());
            self.spawn_driver(job, Some(because));
            taken += 1;
        }
        Ok(taken)
    }

    /// Renews the leases, takes over expired ones and passes recorded cancels to the drivers,
    /// until shutdown; then gives the leases up.
    async fn keep_leases(self: Arc<Self>) {
        let renew_every = self.limits.lease_duration / 4;
        let poll = self.limits.replica_poll_interval.min(renew_every);
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
            self.pass_recorded_cancels().await;
            if renewed.elapsed() < renew_every {
                continue;
            }
            match self.store.renew(&self.replica, self.lease_until()).await {
                Ok(held) => {
                    renewed = Instant::now();
                    self.stop_drivers_without_lease(&held.into_iter().collect());
                    if let Err(error) = self.take_over().await {
                        warn!(%error, "cannot take jobs over");
                    }
                }
                Err(error) => {
                    warn!(%error, "cannot renew the job leases");
                    // Stop before the leases run out, so that no other replica drives a job
                    // this one still drives.
                    if renewed.elapsed() + renew_every >= self.limits.lease_duration {
                        warn!(replica = %self.replica, "job leases could not be renewed in time; stopping this replica's drivers until the database answers");
                        self.stop_drivers_without_lease(&HashSet::new());
                    }
                }
            }
        }
        match self.store.release(&self.replica).await {
            Ok(()) => info!(replica = %self.replica, "job leases given up for other replicas"),
            Err(error) => {
                warn!(%error, "cannot give the job leases up; other replicas take the jobs over when they expire")
            }
        }
    }

    /// Stops the drivers of live jobs whose lease this replica no longer holds.
    fn stop_drivers_without_lease(&self, held: &HashSet<JobId>) {
        for id in self.live.ids() {
            if held.contains(&id) {
                continue;
            }
            if let Some(live) = self.live.get(id)
                && !live.job.borrow().state.is_terminal()
            {
                warn!(job_id = %id, replica = %self.replica, "this replica no longer holds the job's lease; its driver stops");
                live.stop.cancel();
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
                .try_send(Command::Cancel { options, reply })
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
