//! One observer of the Flink cluster per replica, instead of one poller per live job.
//!
//! While any driver follows a Flink job, a task reads `GET /jobs/overview` every
//! `--poll-interval`: one request gives the state of every job the cluster knows, however many
//! this replica follows. Each followed Flink job has a `watch` channel; a round publishes on
//! it only when the job's state changed, so a job that runs on costs its driver nothing. A job
//! the overview does not list is published every round (as `NotListed`), so that its driver
//! asks the JobManager about that one job (`GET /jobs/:jobid`) and decides: the overview lists
//! what the JobManager runs and keeps in its history, and an id missing from it is either not
//! submitted yet or expired.
//!
//! Readers that only want a recent state (a result stream's progress message, a driver taking
//! a job up after a restart) use the latest overview when it is younger than the poll
//! interval, and otherwise read a new one; concurrent reads share one request.
//!
//! When the JobManager cannot be read, nothing is published: followers keep the last state
//! they saw, and the failure is logged once per outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use flinkbroker_flink::jobmanager::{FlinkError, FlinkJobStatus, JobManager};

/// The longest a follower waits without a change before it looks at its jobs again (at what
/// the observer last saw: no request is sent for it).
pub(crate) const FOLLOW_RECHECK: Duration = Duration::from_secs(60);

/// What the observer last saw of a Flink job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// No overview was read since the job was first followed.
    Unseen,
    /// The overview lists the job in this state.
    Listed(FlinkJobStatus),
    /// The latest overview does not list the job.
    NotListed,
}

/// The jobs of one `GET /jobs/overview` answer and when it was read.
struct Snapshot {
    read_at: Instant,
    jobs: HashMap<String, FlinkJobStatus>,
}

impl Snapshot {
    fn observed(&self, flink_job_id: &str) -> Observed {
        self.jobs
            .get(flink_job_id)
            .map_or(Observed::NotListed, |status| Observed::Listed(*status))
    }
}

/// A followed Flink job: its channel and how many followers hold it.
struct Followed {
    sender: watch::Sender<Observed>,
    followers: usize,
}

#[derive(Default)]
struct Shared {
    followed: HashMap<String, Followed>,
    latest: Option<Arc<Snapshot>>,
    /// True while the overview cannot be read (to log an outage once).
    failing: bool,
}

/// The observer of one Flink cluster (the one JobManager this replica talks to).
pub(crate) struct Observer {
    jobmanager: Arc<dyn JobManager>,
    interval: Duration,
    shared: Mutex<Shared>,
    /// Wakes the task when the first job is followed.
    followed_now: Notify,
    /// Held while an overview is read, so that concurrent readers share one request.
    reading: tokio::sync::Mutex<()>,
    started: AtomicBool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Observer {
    /// An observer reading the overview every `interval` while any job is followed; its task
    /// starts with the first follower and ends at `shutdown`.
    pub(crate) fn new(
        jobmanager: Arc<dyn JobManager>,
        interval: Duration,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Observer> {
        Arc::new(Observer {
            jobmanager,
            interval: interval.max(Duration::from_millis(10)),
            shared: Mutex::new(Shared::default()),
            followed_now: Notify::new(),
            reading: tokio::sync::Mutex::new(()),
            started: AtomicBool::new(false),
            shutdown,
            tasks,
        })
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // The lock guards plain maps that no panic can leave half-changed.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows a Flink job: the watch yields each change of its observed state (and every
    /// round in which the overview does not list it) until dropped.
    pub(crate) fn follow(self: &Arc<Self>, flink_job_id: &str) -> FlinkJobWatch {
        if !self.started.swap(true, Ordering::AcqRel) {
            let this = Arc::clone(self);
            self.tasks.spawn(async move { this.run().await });
        }
        let mut shared = self.shared();
        let initial = self
            .fresh_in(&shared)
            .map_or(Observed::Unseen, |snapshot| snapshot.observed(flink_job_id));
        let first = shared.followed.is_empty();
        let followed = shared
            .followed
            .entry(flink_job_id.to_owned())
            .or_insert_with(|| Followed {
                sender: watch::Sender::new(initial),
                followers: 0,
            });
        followed.followers += 1;
        let mut receiver = followed.sender.subscribe();
        receiver.mark_changed();
        drop(shared);
        if first {
            self.followed_now.notify_one();
        }
        FlinkJobWatch {
            observer: Arc::clone(self),
            flink_job_id: flink_job_id.to_owned(),
            receiver,
        }
    }

    /// The job's state in an overview younger than the poll interval (read now when the
    /// latest is older); an error when the overview cannot be read.
    pub(crate) async fn current(&self, flink_job_id: &str) -> Result<Observed, FlinkError> {
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot.observed(flink_job_id));
        }
        let snapshot = self.read(false).await?;
        Ok(snapshot.observed(flink_job_id))
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        self.fresh_in(&self.shared())
    }

    /// The latest overview when it is younger than the poll interval.
    fn fresh_in(&self, shared: &Shared) -> Option<Arc<Snapshot>> {
        shared
            .latest
            .as_ref()
            .filter(|snapshot| snapshot.read_at.elapsed() < self.interval)
            .cloned()
    }

    /// Reads the overview and publishes it; unless `every_round`, not when another reader
    /// read it less than a poll interval ago.
    async fn read(&self, every_round: bool) -> Result<Arc<Snapshot>, FlinkError> {
        let _reading = self.reading.lock().await;
        // Another reader may have read it while this one waited.
        if !every_round && let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        match self.jobmanager.jobs_overview().await {
            Ok(jobs) => {
                let snapshot = Arc::new(Snapshot {
                    read_at: Instant::now(),
                    jobs: jobs
                        .into_iter()
                        .map(|job| (job.flink_job_id, job.status))
                        .collect(),
                });
                self.publish(&snapshot);
                Ok(snapshot)
            }
            Err(error) => {
                let mut shared = self.shared();
                if !shared.failing {
                    shared.failing = true;
                    warn!(%error, "cannot read the flink jobs overview; followed jobs keep their last known state until it answers");
                }
                Err(error)
            }
        }
    }

    /// Keeps the snapshot and tells each follower whose job changed (or is not listed).
    fn publish(&self, snapshot: &Arc<Snapshot>) {
        let mut shared = self.shared();
        if shared.failing {
            shared.failing = false;
            info!(
                jobs = snapshot.jobs.len(),
                "the flink jobs overview answers again"
            );
        }
        shared.latest = Some(Arc::clone(snapshot));
        let mut changed = 0usize;
        for (flink_job_id, followed) in &shared.followed {
            let now = snapshot.observed(flink_job_id);
            if followed.sender.send_if_modified(|seen| {
                let modified = *seen != now || now == Observed::NotListed;
                *seen = now;
                modified
            }) {
                changed += 1;
            }
        }
        debug!(
            listed = snapshot.jobs.len(),
            followed = shared.followed.len(),
            changed,
            "flink jobs overview read"
        );
    }

    /// Reads the overview every interval while any job is followed, until shutdown.
    async fn run(self: Arc<Self>) {
        loop {
            loop {
                let followed_now = self.followed_now.notified();
                if !self.shared().followed.is_empty() {
                    break;
                }
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = followed_now => {}
                }
            }
            let next = Instant::now() + self.interval;
            // A failure is logged by `read`; the next round asks again.
            let _ = self.read(true).await;
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    fn unfollow(&self, flink_job_id: &str) {
        let mut shared = self.shared();
        if let Some(followed) = shared.followed.get_mut(flink_job_id) {
            followed.followers -= 1;
            if followed.followers == 0 {
                shared.followed.remove(flink_job_id);
            }
        }
    }
}

/// A driver's view of one followed Flink job; dropping it stops following.
pub(crate) struct FlinkJobWatch {
    observer: Arc<Observer>,
    flink_job_id: String,
    receiver: watch::Receiver<Observed>,
}

impl FlinkJobWatch {
    /// The state last observed, marking it seen.
    pub(crate) fn seen(&mut self) -> Observed {
        *self.receiver.borrow_and_update()
    }

    /// Waits for the next change (at once when one was not seen yet).
    pub(crate) async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The observer keeps the sender while this watch lives; never reached.
            std::future::pending::<()>().await;
        }
    }

    /// The followed Flink job.
    pub(crate) fn flink_job_id(&self) -> &str {
        &self.flink_job_id
    }
}

impl Drop for FlinkJobWatch {
    fn drop(&mut self) {
        self.observer.unfollow(&self.flink_job_id);
    }
}

/// Waits until one of `watches` changed; pending forever when there are none.
pub(crate) async fn any_changed(watches: &mut [FlinkJobWatch]) {
    if watches.is_empty() {
        return std::future::pending().await;
    }
    let changes = watches.iter_mut().map(|watch| Box::pin(watch.changed()));
    let _ = select_first(changes).await;
}

/// Polls the futures together and returns when the first is ready.
async fn select_first<F: std::future::Future<Output = ()> + Unpin>(
    futures: impl Iterator<Item = F>,
) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            if std::pin::Pin::new(future).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}
