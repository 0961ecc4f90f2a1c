//! UpgradeJob: a running streaming job replaced by a new revision that carries its state.
//!
//! Every revision is a job of its own, recorded before anything is sent, that shares the
//! first revision's lineage id and names the revision it replaces (at most one job replaces
//! a revision: the store's unique index decides between racing upgrades). The upgrade's
//! steps live on the new revision (`Lineage::upgrade`), each recorded before it is taken:
//!
//! 1. `StoppingPrevious`: the new revision's driver, before it submits anything, asks for the
//!    previous revision's stop with a savepoint (CancelJob's, which the previous revision's
//!    own driver carries out and resumes after a restart) and waits until it ended. A
//!    rollback waits instead until the JobManager says the failed revision's Flink jobs
//!    stopped.
//! 2. `Starting`: the savepoint is recorded as the revision's restore; the driver submits it
//!    as any job, and a follower task watches it until its Flink jobs have run for
//!    `--upgrade-running-for` (`Done`). A revision that fails first (or does not run within
//!    `--upgrade-timeout`, and is then cancelled) is replaced by a rollback revision: the
//!    previous revision's script or program, restored from the same savepoint
//!    (`RolledBack`). A rollback that fails is not rolled back again.
//!
//! The new revision is submitted only once the previous one ended, so two revisions never
//! run at once; a previous revision that cannot be stopped runs on and the new one ends
//! FAILED (`Abandoned`). After a restart, the drivers of unfinished revisions take their
//! steps up again, and `resume_upgrades` finishes those of revisions that already ended.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{Instrument, info, warn};

use super::driver::{Command, Core, Interrupt};
use super::savepoint::savepoint_targets;
use super::{CancelOptions, Controller, PythonSubmission, SqlSubmission, admission, not_found};
use crate::error::{Error, Result};
use flinkbroker_flink::jobmanager::FlinkJobStatus;
use flinkbroker_model::job::{
    ClaimMode, Job, JobId, JobKind, JobSpec, JobState, Lineage, NewJob, SavepointFormat,
    SavepointKind, SavepointState, Upgrade, UpgradeKind, UpgradeStep, now_millis,
};
use flinkbroker_store::{CreateOutcome, pending_statements};

/// The revisions whose start a follower task watches, so that each has one.
#[derive(Default)]
pub(super) struct Followers(std::sync::Mutex<std::collections::HashSet<JobId>>);

impl Followers {
    /// Returns false when the revision has a follower already.
    fn insert(&self, id: JobId) -> bool {
        self.0.lock().map(|mut ids| ids.insert(id)).unwrap_or(false)
    }

    fn remove(&self, id: JobId) {
        if let Ok(mut ids) = self.0.lock() {
            ids.remove(&id);
        }
    }
}

/// The new revision of an UpgradeJob.
#[derive(Debug, Clone)]
pub enum Revision {
    /// A SQL job's new script (and settings).
    Sql(SqlSubmission),
    /// A Python job's new program.
    Python(PythonSubmission),
}

impl Revision {
    fn kind(&self) -> JobKind {
        match self {
            Revision::Sql(_) => JobKind::Sql,
            Revision::Python(_) => JobKind::Python,
        }
    }

    fn tenant_and_request_id(&self) -> (&str, Option<&str>) {
        match self {
            Revision::Sql(s) => (&s.tenant, s.request_id.as_deref()),
            Revision::Python(p) => (&p.tenant, p.request_id.as_deref()),
        }
    }
}

/// What UpgradeJob asks for.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    /// The running revision to replace.
    pub job_id: JobId,
    /// The new revision (its tenant, principal and request id included).
    pub revision: Revision,
    /// Where the running revision's savepoint goes (None: the cluster's default).
    pub savepoint_directory: Option<String>,
    /// How it is written.
    pub savepoint_format: SavepointFormat,
    /// Starts the new revision even when the savepoint holds state none of its operators take.
    pub allow_non_restored_state: bool,
    /// Who owns the savepoint afterwards.
    pub claim_mode: ClaimMode,
}

impl Controller {
    /// UpgradeJob: records the new revision (step `StoppingPrevious`) and starts its driver,
    /// which takes the upgrade's steps; returns the new revision at once.
    pub async fn upgrade_job(self: &Arc<Self>, request: UpgradeRequest) -> Result<Job> {
        let (tenant, request_id) = request.revision.tenant_and_request_id();
        // A repeated upgrade returns its revision whatever the previous one is now.
        let repeated = match request_id {
            Some(request_id) => self.store.job_for_request(tenant, request_id).await?,
            None => None,
        };
        let previous = self.get_job(request.job_id).await?;
        if repeated.is_none() {
            check_upgradable(&previous, &request)?;
        }
        if let Some(directory) = &request.savepoint_directory {
            let policy = self.limits.tenants.policy(tenant);
            admission::savepoint_path(&policy, "savepoint_directory", directory)?;
        }
        let mut new_job = match request.revision {
            Revision::Sql(submission) => self.sql_job(submission, "UpgradeJob").await?,
            Revision::Python(submission) => self.python_job(submission, "UpgradeJob")?,
        };
        if new_job.labels.is_empty() {
            new_job.labels = previous.labels.clone();
        }
        new_job.lineage = Some(Lineage {
            lineage_id: previous.lineage.lineage_id,
            revision: self.next_revision(&previous).await?,
            savepoint_chain: previous.lineage.savepoint_chain.clone(),
            upgrade: Some(Upgrade {
                kind: UpgradeKind::Upgrade,
                previous_job_id: previous.id,
                step: UpgradeStep::StoppingPrevious,
                savepoint_directory: request.savepoint_directory,
                savepoint_format: request.savepoint_format,
                allow_non_restored_state: request.allow_non_restored_state,
                claim_mode: request.claim_mode,
                savepoint_path: None,
                rollback_job_id: None,
                note: None,
            }),
        });
        let job = self.record(new_job).await?;
        info!(job_id = %job.id, previous = %previous.id, revision = job.lineage.revision, lineage = %job.lineage.lineage_id, "upgrade recorded");
        Ok(job)
    }

    /// Records a revision's lineage: through its driver while it has one (the driver owns the
    /// job), else in the store. `note` goes into a live job's history.
    async fn record_lineage(
        &self,
        id: JobId,
        lineage: Lineage,
        note: Option<String>,
    ) -> Result<()> {
        if let Some(live) = self.live.get(id) {
            let (reply, answer) = oneshot::channel();
            let command = Command::SetLineage {
                lineage: lineage.clone(),
                note,
                reply,
            };
            if live.commands.send(Box::new(command)).await.is_ok()
                && let Ok(recorded) = answer.await
            {
                return recorded;
            }
            // The driver ended meanwhile: the store takes it.
        }
        self.store.set_lineage(id, &lineage, None).await?;
        self.ended.forget(id);
        Ok(())
    }

    /// The number of the next revision of `job`'s lineage: one more than its newest (an
    /// abandoned upgrade keeps its number).
    async fn next_revision(&self, job: &Job) -> Result<u32> {
        let filter = flinkbroker_store::JobFilter {
            lineage: Some(job.lineage.lineage_id),
            ..flinkbroker_store::JobFilter::default()
        };
        let newest = self.store.list_jobs(&filter, 1, None).await?;
        Ok(newest.jobs.first().map_or(job.lineage.revision, |newest| {
            newest.lineage.revision.max(job.lineage.revision)
        }) + 1)
    }

    /// The job as it is now: as its driver publishes it, or from the store.
    async fn current_job(&self, id: JobId) -> Result<Job> {
        match self.live.current(id) {
            Some(job) => Ok(job),
            None => self.store.get_job(id).await.map_err(not_found),
        }
    }

    /// After a restart: follows the upgrades of revisions that ended before their upgrade
    /// did (a revision that failed to start and is not rolled back yet). Unfinished
    /// revisions are followed by their drivers.
    pub(super) async fn resume_upgrades(self: &Arc<Self>) -> Result<()> {
        for job in self.store.upgrades_in_progress().await? {
            if job.state.is_terminal() {
                info!(job_id = %job.id, revision = job.lineage.revision, "following the upgrade of an ended revision");
                self.spawn_upgrade_follower(job.id);
            }
        }
        Ok(())
    }

    /// Starts the task that follows a revision's start (step 3), unless it runs already.
    pub(super) fn spawn_upgrade_follower(self: &Arc<Self>, id: JobId) {
        if !self.upgrade_followers.insert(id) {
            return;
        }
        let this = Arc::clone(self);
        self.tasks.spawn(
            async move {
                if let Err(error) = this.follow_start(id).await {
                    warn!(job_id = %id, %error, "cannot follow the revision's start; it is followed again at the next start");
                }
                this.upgrade_followers.remove(id);
            }
            .in_current_span(),
        );
    }

    /// Follows a revision whose upgrade is `Starting` until its Flink jobs run (`Done`), it
    /// fails (rolled back), or it is cancelled.
    async fn follow_start(self: &Arc<Self>, id: JobId) -> Result<()> {
        let deadline = Instant::now() + self.limits.upgrade_timeout;
        let mut running_since: Option<Instant> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            let job = self.current_job(id).await?;
            if !job.state.is_terminal() && self.live.get(id).is_none() {
                // Another driver (a later one here, or another replica's) follows it now.
                return Ok(());
            }
            let Some(upgrade) = job.lineage.upgrade.clone() else {
                return Ok(());
            };
            if upgrade.step != UpgradeStep::Starting {
                return Ok(());
            }
            match job.state {
                JobState::Failed => return self.roll_back(job, upgrade).await,
                JobState::Canceled if upgrade.note.is_some() => {
                    return self.roll_back(job, upgrade).await;
                }
                JobState::Canceled => {
                    return self
                        .end_upgrade(
                            job,
                            upgrade,
                            UpgradeStep::Abandoned,
                            "the revision was canceled by request before it ran; no revision runs"
                                .into(),
                        )
                        .await;
                }
                JobState::Finished => {
                    return self
                        .end_upgrade(
                            job,
                            upgrade,
                            UpgradeStep::Done,
                            "the revision ran to its end".into(),
                        )
                        .await;
                }
                JobState::Running => {
                    if self.flink_jobs_run(&job).await {
                        let since = *running_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.limits.upgrade_running_for {
                            let restored = upgrade.savepoint_path.clone().unwrap_or_default();
                            let note = format!(
                                "upgrade done: revision {} runs, restored from {restored}",
                                job.lineage.revision
                            );
                            return self
                                .end_upgrade(job, upgrade, UpgradeStep::Done, note)
                                .await;
                        }
                    } else {
                        running_since = None;
                    }
                }
                _ => {}
            }
            if Instant::now() >= deadline
                && upgrade.note.is_none()
                && matches!(
                    job.state,
                    JobState::Pending | JobState::Submitting | JobState::Running
                )
            {
                let why = format!(
                    "revision {} did not run within {} s (--upgrade-timeout); it is canceled and rolled back",
                    job.lineage.revision,
                    self.limits.upgrade_timeout.as_secs()
                );
                warn!(job_id = %id, %why, "upgrade timed out");
                let mut lineage = job.lineage.clone();
                if let Some(upgrade) = lineage.upgrade.as_mut() {
                    upgrade.note = Some(why.clone());
                }
                self.record_lineage(id, lineage, Some(why)).await?;
                self.cancel_job(id, CancelOptions::default()).await?;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.limits.poll_interval);
        }
    }

    /// True when the JobManager says each Flink job the revision carries state in runs, with
    /// its tasks deployed.
    async fn flink_jobs_run(&self, job: &Job) -> bool {
        let targets = savepoint_targets(job);
        if targets.is_empty() {
            return false;
        }
        for (flink_job_id, _) in targets {
            match self.jobmanager.job_progress(&flink_job_id).await {
                Ok(progress)
                    if progress.status == FlinkJobStatus::Running && progress.tasks_deployed => {}
                Ok(_) => return false,
                Err(error) => {
                    warn!(job_id = %job.id, flink_job_id, %error, "cannot read the new revision's flink job");
                    return false;
                }
            }
        }
        true
    }

    /// Records the end of a revision's upgrade.
    async fn end_upgrade(
        &self,
        job: Job,
        mut upgrade: Upgrade,
        step: UpgradeStep,
        note: String,
    ) -> Result<()> {
        info!(job_id = %job.id, step = step.as_str(), %note, "upgrade ended");
        upgrade.step = step;
        if step != UpgradeStep::Done {
            upgrade.note = Some(note.clone());
        }
        let mut lineage = job.lineage;
        lineage.upgrade = Some(upgrade);
        self.record_lineage(job.id, lineage, Some(note)).await
    }

    /// Replaces a revision that failed to start by the revision before it, restored from the
    /// same savepoint; a rollback that failed is left as it is.
    async fn roll_back(self: &Arc<Self>, job: Job, upgrade: Upgrade) -> Result<()> {
        let cause = upgrade
            .note
            .clone()
            .unwrap_or_else(|| job.state_reason.clone());
        if upgrade.kind == UpgradeKind::Rollback {
            let note = format!("the rollback failed too ({cause}); no revision runs");
            return self
                .end_upgrade(job, upgrade, UpgradeStep::Abandoned, note)
                .await;
        }
        let previous = self.store.get_job(upgrade.previous_job_id).await?;
        let rollback_id = JobId::new_random();
        let (statements, flink_job_id) = match &previous.spec {
            JobSpec::Sql(spec) => (
                pending_statements(&admission::sql_statements(&self.limits, &spec.script)?),
                None,
            ),
            JobSpec::Python(_) => (Vec::new(), Some(rollback_id.flink_job_id_for_program())),
        };
        let mut spec = previous.spec.without_restore();
        spec.set_restore(upgrade.restore());
        let new_job = NewJob {
            id: rollback_id,
            request_id: None,
            tenant: job.tenant.clone(),
            principal: job.principal.clone(),
            labels: previous.labels.clone(),
            spec,
            statements,
            flink_job_id,
            created_at: now_millis(),
            lease: Some((self.replica.clone(), self.lease_until())),
            audited_as: None,
            lineage: Some(Lineage {
                lineage_id: job.lineage.lineage_id,
                revision: self.next_revision(&job).await?,
                savepoint_chain: job.lineage.savepoint_chain.clone(),
                upgrade: Some(Upgrade {
                    kind: UpgradeKind::Rollback,
                    previous_job_id: job.id,
                    step: UpgradeStep::StoppingPrevious,
                    note: Some(format!(
                        "rolls back to revision {} (job {}): revision {} (job {}) failed to start: {cause}",
                        previous.lineage.revision, previous.id, job.lineage.revision, job.id
                    )),
                    rollback_job_id: None,
                    ..upgrade.clone()
                }),
            }),
        };
        let rollback = match self.store.create_job(new_job).await? {
            CreateOutcome::Created(rollback) => {
                info!(job_id = %rollback.id, failed = %job.id, revision = rollback.lineage.revision, "rollback recorded");
                self.spawn_driver(rollback.clone(), None);
                rollback
            }
            CreateOutcome::Replaced(rollback)
            | CreateOutcome::Existing(rollback)
            | CreateOutcome::Conflict(rollback) => rollback,
        };
        let note = format!(
            "failed to start ({cause}); rolled back: revision {} (job {}) runs revision {}'s {} again from {}",
            rollback.lineage.revision,
            rollback.id,
            previous.lineage.revision,
            match previous.kind {
                JobKind::Sql => "script",
                JobKind::Python => "program",
            },
            upgrade
                .savepoint_path
                .as_deref()
                .unwrap_or("the same savepoint")
        );
        let mut upgrade = upgrade;
        upgrade.rollback_job_id = Some(rollback.id);
        self.end_upgrade(job, upgrade, UpgradeStep::RolledBack, note)
            .await
    }
}

/// Checks that `previous` can be replaced as `request` asks.
fn check_upgradable(previous: &Job, request: &UpgradeRequest) -> Result<()> {
    if previous.kind != request.revision.kind() {
        return Err(Error::invalid(
            "revision",
            format!(
                "job {} is a {} job; its new revision must be {} too",
                previous.id,
                previous.kind.as_str(),
                previous.kind.as_str()
            ),
        ));
    }
    if previous.state != JobState::Running {
        return Err(Error::FailedPrecondition(format!(
            "job {} is {}; only a RUNNING job can be upgraded",
            previous.id,
            previous.state.as_str()
        )));
    }
    if let Some(upgrade) = &previous.lineage.upgrade
        && upgrade.step.in_progress()
    {
        return Err(Error::FailedPrecondition(format!(
            "job {} is still being started by its own upgrade (step {}); upgrade it once that is done",
            previous.id,
            upgrade.step.as_str()
        )));
    }
    let targets = savepoint_targets(previous);
    if targets.len() != 1 {
        return Err(Error::FailedPrecondition(format!(
            "job {} runs {} flink jobs with state; an upgrade carries the state of exactly one (a Python program, or one INSERT or STATEMENT SET)",
            previous.id,
            targets.len()
        )));
    }
    Ok(())
}

impl Core {
    /// Takes the steps of the job's upgrade that come before its submission; returns false
    /// when the job ended (or the driver must stop) instead.
    pub(super) async fn prepare_upgrade(&mut self) -> bool {
        let Some(upgrade) = self.job.lineage.upgrade.clone() else {
            return true;
        };
        if self.job.state.is_terminal() {
            return false;
        }
        if upgrade.step == UpgradeStep::StoppingPrevious {
            match self.stop_previous(&upgrade).await {
                Ok(()) => {}
                Err(Interrupt::Failed(reason)) => {
                    let mut lineage = self.job.lineage.clone();
                    if let Some(upgrade) = lineage.upgrade.as_mut() {
                        upgrade.step = UpgradeStep::Abandoned;
                        upgrade.note = Some(reason.clone());
                    }
                    if let Err(interrupt) = self.set_lineage(lineage, None).await {
                        self.conclude(interrupt).await;
                        return false;
                    }
                    self.conclude(Interrupt::Failed(reason)).await;
                    return false;
                }
                Err(Interrupt::Cancel { replies, .. }) => {
                    self.cancel_before_start(replies).await;
                    return false;
                }
                Err(interrupt) => {
                    self.conclude(interrupt).await;
                    return false;
                }
            }
        }
        if self
            .job
            .lineage
            .upgrade
            .as_ref()
            .is_some_and(|u| u.step == UpgradeStep::Starting)
        {
            self.controller.spawn_upgrade_follower(self.job.id);
        }
        true
    }

    /// Step 1: stops the previous revision with a savepoint (a rollback: waits until its
    /// Flink jobs stopped), then records the restore and step `Starting`.
    async fn stop_previous(&mut self, upgrade: &Upgrade) -> Result<(), Interrupt> {
        let previous_id = upgrade.previous_job_id;
        let savepoint_path = match upgrade.kind {
            UpgradeKind::Upgrade => self.await_previous_stop(upgrade).await?,
            UpgradeKind::Rollback => {
                let previous = self.read_job(previous_id).await?;
                let flink_jobs: Vec<String> = savepoint_targets(&previous)
                    .into_iter()
                    .map(|(flink_job_id, _)| flink_job_id)
                    .collect();
                self.note(upgrade.note.as_deref().unwrap_or("rolling back"))
                    .await?;
                for flink_job_id in &flink_jobs {
                    if let Err(error) = self.controller.request_cancel(None, flink_job_id).await {
                        warn!(job_id = %self.job.id, flink_job_id, %error, "cannot ask for the failed revision's flink job to stop");
                    }
                }
                match self.await_stopped(&flink_jobs, true).await? {
                    super::stop::Stopped::All => {}
                    super::stop::Stopped::StillRunning(flink_job_id) => {
                        return Err(Interrupt::Failed(format!(
                            "rollback given up: flink job {flink_job_id} of the failed revision (job {previous_id}) did not stop within {} s (--cancel-timeout); starting this revision would run two at once",
                            self.limits().cancel_timeout.as_secs()
                        )));
                    }
                }
                upgrade.savepoint_path.clone().ok_or_else(|| {
                    Interrupt::Failed("rollback without a savepoint to restore".into())
                })?
            }
        };
        let mut lineage = self.job.lineage.clone();
        let Some(recorded) = lineage.upgrade.as_mut() else {
            return Ok(());
        };
        recorded.step = UpgradeStep::Starting;
        recorded.savepoint_path = Some(savepoint_path.clone());
        let restore = recorded.restore();
        if upgrade.kind == UpgradeKind::Upgrade {
            lineage.savepoint_chain.push(savepoint_path.clone());
        }
        self.set_lineage(lineage, restore).await?;
        self.note(&format!(
            "upgrade: revision {} (job {previous_id}) stopped; submitting revision {} restoring from {savepoint_path}",
            self.job.lineage.revision - 1,
            self.job.lineage.revision
        ))
        .await
    }

    /// Asks for the previous revision's stop with a savepoint and waits until it ended;
    /// returns where the savepoint was written.
    async fn await_previous_stop(&mut self, upgrade: &Upgrade) -> Result<String, Interrupt> {
        let previous_id = upgrade.previous_job_id;
        let options = CancelOptions {
            stop_with_savepoint: true,
            savepoint_directory: upgrade.savepoint_directory.clone(),
            savepoint_format: upgrade.savepoint_format,
        };
        let mut asked = false;
        let mut noted = false;
        loop {
            let previous = self.read_job(previous_id).await?;
            match previous.state {
                JobState::Running if asked => {
                    return Err(Interrupt::Failed(format!(
                        "upgrade abandoned: revision {} (job {previous_id}) could not be stopped with a savepoint and runs on: {}",
                        previous.lineage.revision, previous.state_reason
                    )));
                }
                JobState::Running => {
                    if !noted {
                        noted = true;
                        self.note(&format!(
                            "upgrade: stopping revision {} (job {previous_id}) with a savepoint",
                            previous.lineage.revision
                        ))
                        .await?;
                    }
                    match self
                        .controller
                        .cancel_job(previous_id, options.clone())
                        .await
                    {
                        Ok(job) => asked = job.state == JobState::Canceling,
                        Err(Error::ShuttingDown) => return Err(Interrupt::Shutdown),
                        Err(error) => {
                            warn!(job_id = %self.job.id, previous = %previous_id, %error, "cannot ask for the previous revision's stop yet; retrying");
                        }
                    }
                }
                JobState::Canceled => {
                    return stop_savepoint(&previous).ok_or_else(|| {
                        Interrupt::Failed(format!(
                            "upgrade abandoned: revision {} (job {previous_id}) ended without a savepoint ({}); restore from one of its savepoints with SubmitSql or SubmitPython",
                            previous.lineage.revision, previous.state_reason
                        ))
                    });
                }
                JobState::Failed | JobState::Finished => {
                    return Err(Interrupt::Failed(format!(
                        "upgrade abandoned: revision {} (job {previous_id}) ended {} before it stopped with a savepoint: {}",
                        previous.lineage.revision,
                        previous.state.as_str(),
                        previous.state_reason
                    )));
                }
                // CANCELING: its driver takes the savepoint and stops it.
                _ => asked = true,
            }
            self.pause(self.limits().poll_interval).await?;
        }
    }

    /// Reads another job as it is now; the store failing is this job's interrupt.
    async fn read_job(&self, id: JobId) -> Result<Job, Interrupt> {
        match self.controller.current_job(id).await {
            Ok(job) => Ok(job),
            Err(Error::JobNotFound(id)) => Err(Interrupt::Failed(format!(
                "upgrade abandoned: the revision it replaces (job {id}) is not recorded"
            ))),
            Err(Error::Store(error)) => Err(error.into()),
            Err(error) => Err(Interrupt::Lost(error)),
        }
    }

    /// CancelJob on a revision whose upgrade had not submitted it: nothing of it runs.
    async fn cancel_before_start(&mut self, replies: Vec<oneshot::Sender<Job>>) {
        let reason = "canceled by request before its upgrade submitted it; nothing of it ran (the previous revision's stop, if asked for, goes on)";
        if let Err(interrupt) = self.transition(JobState::Canceling, reason).await {
            drop(replies);
            self.conclude(interrupt).await;
            return;
        }
        self.answer(replies);
        let mut lineage = self.job.lineage.clone();
        if let Some(upgrade) = lineage.upgrade.as_mut() {
            upgrade.step = UpgradeStep::Abandoned;
            upgrade.note = Some(reason.into());
        }
        let ended = match self.set_lineage(lineage, None).await {
            Ok(()) => self.transition(JobState::Canceled, reason).await,
            Err(interrupt) => Err(interrupt),
        };
        if let Err(interrupt) = ended {
            self.conclude(interrupt).await;
        }
    }

    /// Records the job's lineage (and the restore written into its spec), durably.
    pub(super) async fn set_lineage(
        &mut self,
        lineage: Lineage,
        restore: Option<flinkbroker_model::job::Restore>,
    ) -> Result<(), Interrupt> {
        let store = Arc::clone(self.store());
        let id = self.job.id;
        self.durably("the job's upgrade", || {
            store.set_lineage(id, &lineage, restore.as_ref())
        })
        .await?;
        if let Some(restore) = restore {
            self.job.spec.set_restore(Some(restore));
        }
        self.job.lineage = lineage;
        self.publish();
        Ok(())
    }

    /// Records the job's lineage and, while the job lives, a note in its history, and
    /// publishes both at once: a reader (GetJob, WatchJob) that sees the step sees its note.
    pub(super) async fn set_lineage_noted(
        &mut self,
        lineage: Lineage,
        note: Option<String>,
    ) -> Result<(), Interrupt> {
        let store = Arc::clone(self.store());
        let id = self.job.id;
        self.durably("the job's upgrade", || {
            store.set_lineage(id, &lineage, None)
        })
        .await?;
        self.job.lineage = lineage;
        match note {
            Some(note) if !self.job.state.is_terminal() => self.note(&note).await,
            _ => {
                self.publish();
                Ok(())
            }
        }
    }
}

/// Where the stop with a savepoint that ended a revision wrote its savepoint.
fn stop_savepoint(job: &Job) -> Option<String> {
    job.savepoints
        .iter()
        .rev()
        .find(|s| s.kind == SavepointKind::Stop && s.state == SavepointState::Completed)
        .and_then(|s| s.location.clone())
}
