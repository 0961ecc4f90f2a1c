//! Retention of ended jobs: the janitor deletes jobs that ended more than `--job-retention`
//! ago, a batch at a time, with their statements, history, labels and result logs (the store
//! keeps a revision a live successor still needs). Audit events stay until their own
//! `--audit-retention`.

use tracing::{info, warn};

use super::Controller;
use flinkbroker_model::job::now_millis;

/// Ended jobs deleted per store transaction.
const JOB_EXPIRY_BATCH: u64 = 500;

impl Controller {
    /// Deletes the jobs that ended before the job retention, a batch at a time until a batch
    /// comes back short (or shutdown), and forgets them in the ended-jobs cache.
    pub(super) async fn expire_ended_jobs(&self) {
        let retention = self.limits.job_retention;
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let ended_before = now_millis().saturating_sub(retention_ms);
        let mut deleted = 0;
        let mut batches = 0;
        loop {
            match self.store.expire_jobs(ended_before, JOB_EXPIRY_BATCH).await {
                Ok(batch) => {
                    deleted += batch;
                    batches += 1;
                    if batch < JOB_EXPIRY_BATCH || self.shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(error) => {
                    warn!(%error, deleted, "cannot delete ended jobs past their retention");
                    break;
                }
            }
        }
        if deleted > 0 {
            // The store answers with counts only: every cached ended job is read again.
            self.ended.clear();
            info!(
                jobs = deleted,
                batches,
                ended_before,
                retention_s = retention.as_secs(),
                "deleted ended jobs past their retention (--job-retention)"
            );
        }
    }
}
