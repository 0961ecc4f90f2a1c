//! Ended jobs kept in memory for GetJob, so that reading a job that is over costs no database
//! round trip. An ended job changes only when the janitor deletes its result logs, which can
//! happen only after its retention: an entry is used until then, for at most `ENTRY_TTL`
//! (another replica's driver may still record a last detail of a job it just ended), and the
//! janitor of this replica empties the cache when it deletes logs.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use flinkbroker_model::job::{Job, JobId, now_millis};

/// Ended jobs held at most.
const CAPACITY: usize = 10_000;
/// The longest an entry is used.
const ENTRY_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entries {
    jobs: HashMap<JobId, (Instant, Job)>,
    /// Ids in the order they were added, for eviction.
    order: VecDeque<JobId>,
}

/// The cache.
#[derive(Default)]
pub(super) struct EndedJobs {
    entries: Mutex<Entries>,
}

impl EndedJobs {
    /// Returns the ended job when held and still valid under `retention`.
    pub(crate) fn get(&self, id: JobId, retention: Duration) -> Option<Job> {
        let entries = self.entries.lock().ok()?;
        let (added, job) = entries.jobs.get(&id)?;
        (added.elapsed() < ENTRY_TTL && before_deletion(job, retention)).then(|| job.clone())
    }

    /// Keeps a job read from the store, when it is over.
    pub(crate) fn keep(&self, job: &Job, retention: Duration) {
        if !job.state.is_terminal() || !before_deletion(job, retention) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries
            .jobs
            .insert(job.id, (Instant::now(), job.clone()))
            .is_none()
        {
            entries.order.push_back(job.id);
        }
        while entries.order.len() > CAPACITY {
            if let Some(oldest) = entries.order.pop_front() {
                entries.jobs.remove(&oldest);
            }
        }
    }

    /// Forgets one job (it changed in the store).
    pub(crate) fn forget(&self, id: JobId) {
        if let Ok(mut entries) = self.entries.lock()
            && entries.jobs.remove(&id).is_some()
        {
            entries.order.retain(|held| *held != id);
        }
    }

    /// Forgets every job (result logs were deleted).
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.jobs.clear();
            entries.order.clear();
        }
    }
}

/// True while the janitor cannot have deleted the job's result logs yet.
fn before_deletion(job: &Job, retention: Duration) -> bool {
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    job.ended_at
        .is_some_and(|ended| now_millis() < ended.saturating_add(retention))
}
