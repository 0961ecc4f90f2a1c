//! WatchJob: the job as it is, then each change of its state, until it ends.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tracing::debug;

use super::Controller;
use crate::error::{Error, Result};
use crate::job::{Job, JobId};

impl Controller {
    /// Starts watching a job; the receiver yields the job at once and after each state change.
    pub async fn watch_job(self: &Arc<Self>, id: JobId) -> Result<mpsc::Receiver<Result<Job>>> {
        // Subscribe before the first read so that no change falls between them.
        let mut events = self.events.subscribe();
        let first = self.get_job(id).await?;
        let (tx, rx) = mpsc::channel(4);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut last = first.state;
            let mut last_history = first.history.len();
            let ended = first.state.is_terminal();
            if !send_bounded(&tx, Ok(first)).await || ended {
                return;
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = this.shutdown.cancelled() => {
                        send_bounded(&tx, Err(Error::ShuttingDown)).await;
                        return;
                    }
                    event = events.recv() => match event {
                        Ok(changed) if changed != id => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    // Another broker replica may change the job: look again now and then.
                    _ = tokio::time::sleep(this.limits.poll_interval * 5) => {}
                }
                let job = match this.get_job(id).await {
                    Ok(job) => job,
                    Err(error) => {
                        send_bounded(&tx, Err(error)).await;
                        return;
                    }
                };
                if job.state == last && job.history.len() == last_history {
                    continue;
                }
                debug!(job_id = %id, state = job.state.as_str(), "watched job changed");
                last = job.state;
                last_history = job.history.len();
                let ended = job.state.is_terminal();
                if !send_bounded(&tx, Ok(job)).await || ended {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// How long a watcher waits for a client that stopped reading.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends one message; false when the client left or stopped reading for too long.
async fn send_bounded(tx: &mpsc::Sender<Result<Job>>, message: Result<Job>) -> bool {
    super::send_within(tx, message, SEND_TIMEOUT).await
}
