//! WatchJob: the job as it is, then each change of its state, until it ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::{Controller, not_found};
use crate::error::{Error, Result};
use flinkbroker_model::job::{Job, JobId};

/// How long a watcher waits for a client that stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Controller {
    /// Starts watching a job; the receiver yields the job at once and after each change of
    /// its state or history.
    pub async fn watch_job(self: &Arc<Self>, id: JobId) -> Result<mpsc::Receiver<Result<Job>>> {
        let live = self.live.get(id);
        let first = match &live {
            Some(live) => live.job.borrow().clone(),
            None => self.store.get_job(id).await.map_err(not_found)?,
        };
        let (tx, rx) = mpsc::channel(4);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut last = Seen::of(&first);
            let ended = first.state.is_terminal();
            if !send_bounded(&tx, Ok(first)).await || ended {
                return;
            }
            if let Some(live) = live
                && this.follow_live(id, live.job, &tx, &mut last).await
            {
                return;
            }
            // The driver ended, or this broker does not drive the job: the store tells the rest.
            this.follow_recorded(id, &tx, &mut last).await;
        });
        Ok(rx)
    }

    /// Sends each change a live job's driver publishes, until the driver ends; true when the
    /// watch is over (the job ended, the client left, or the broker stops).
    async fn follow_live(
        &self,
        id: JobId,
        mut published: watch::Receiver<Job>,
        tx: &mpsc::Sender<Result<Job>>,
        last: &mut Seen,
    ) -> bool {
        loop {
            tokio::select! {
                _ = tx.closed() => return true,
                _ = self.shutdown.cancelled() => {
                    send_bounded(tx, Err(Error::ShuttingDown)).await;
                    return true;
                }
                changed = published.changed() => if changed.is_err() { return false },
            }
            let job = published.borrow_and_update().clone();
            if !last.changed_by(&job) {
                continue;
            }
            debug!(job_id = %id, state = job.state.as_str(), "watched job changed");
            let ended = job.state.is_terminal();
            if !send_bounded(tx, Ok(job)).await || ended {
                return true;
            }
        }
    }

    /// Reads the job from the store every `--replica-poll-interval` until it ends (a job this
    /// process does not drive: another replica drives it, its driver ended, or no replica
    /// has taken it up again yet).
    async fn follow_recorded(&self, id: JobId, tx: &mpsc::Sender<Result<Job>>, last: &mut Seen) {
        loop {
            if self.shutdown.is_cancelled() {
                send_bounded(tx, Err(Error::ShuttingDown)).await;
                return;
            }
            if let Some(live) = self.live.get(id) {
                // A driver took the job (again): follow what it publishes.
                let job = live.job.borrow().clone();
                if last.changed_by(&job) {
                    let ended = job.state.is_terminal();
                    if !send_bounded(tx, Ok(job)).await || ended {
                        return;
                    }
                }
                if self.follow_live(id, live.job, tx, last).await {
                    return;
                }
            }
            let job = match self.store.get_job(id).await {
                Ok(job) => job,
                Err(error) => {
                    send_bounded(tx, Err(not_found(error))).await;
                    return;
                }
            };
            if last.changed_by(&job) {
                let ended = job.state.is_terminal();
                if !send_bounded(tx, Ok(job)).await || ended {
                    return;
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.limits.replica_poll_interval) => {}
            }
        }
    }
}

/// What a watcher last sent: a job is sent again when its state or history changed.
struct Seen {
    state: flinkbroker_model::job::JobState,
    history: usize,
}

impl Seen {
    fn of(job: &Job) -> Self {
        Seen {
            state: job.state,
            history: job.history.len(),
        }
    }

    /// Returns true (and remembers it) when `job` differs from what was sent.
    fn changed_by(&mut self, job: &Job) -> bool {
        let now = Seen::of(job);
        let changed = now.state != self.state || now.history != self.history;
        *self = now;
        changed
    }
}

/// Sends one message; false when the client left or stopped reading for too long.
async fn send_bounded(tx: &mpsc::Sender<Result<Job>>, message: Result<Job>) -> bool {
    super::send_within(tx, message, SEND_TIMEOUT).await
}
