//! The heads of the result logs this process writes, published as they move: readers in this
//! process wait on them instead of polling the store, and GetJob of a live job shows them.
//! Readers of a log another replica writes poll the store instead.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use flinkbroker_model::job::{Job, JobId, LogSummary};

/// The published heads, by job and statement.
#[derive(Default)]
pub(crate) struct Tails {
    heads: Mutex<HashMap<(JobId, u32), watch::Sender<LogSummary>>>,
}

impl Tails {
    /// Publishes a statement's log head as just written.
    pub(crate) fn publish(&self, job_id: JobId, index: u32, head: LogSummary) {
        if let Ok(mut heads) = self.heads.lock() {
            match heads.get(&(job_id, index)) {
                Some(sender) => {
                    // Readers wake only for what they read: rows, the window, the end, the
                    // attempt, a deletion (not for a token recorded after an empty page).
                    sender.send_if_modified(|current| {
                        let wakes = current.rows_logged != head.rows_logged
                            || current.earliest_row != head.earliest_row
                            || current.end != head.end
                            || current.attempt != head.attempt
                            || current.deleted_at != head.deleted_at;
                        *current = head;
                        wakes
                    });
                }
                None => {
                    heads.insert((job_id, index), watch::channel(head).0);
                }
            }
        }
    }

    /// Follows a statement's log head, when this process writes it.
    pub(crate) fn subscribe(
        &self,
        job_id: JobId,
        index: u32,
    ) -> Option<watch::Receiver<LogSummary>> {
        let heads = self.heads.lock().ok()?;
        heads.get(&(job_id, index)).map(watch::Sender::subscribe)
    }

    /// Shows the latest heads in a job as its driver published it.
    pub(crate) fn overlay(&self, job: &mut Job) {
        let Ok(heads) = self.heads.lock() else {
            return;
        };
        for statement in &mut job.statements {
            if let Some(sender) = heads.get(&(job.id, statement.index)) {
                statement.log = Some(sender.borrow().clone());
            }
        }
    }

    /// Forgets a job's heads once its driver ended (readers then follow the store).
    pub(crate) fn forget_job(&self, job_id: JobId) {
        if let Ok(mut heads) = self.heads.lock() {
            heads.retain(|(id, _), _| *id != job_id);
        }
    }
}
