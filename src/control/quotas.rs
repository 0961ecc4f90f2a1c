//! Per-tenant quotas on submissions: how many of a tenant's jobs may be live at once, and how
//! many submissions it may make a minute (a token bucket). Every tenant has the same limits.
//!
//! Live jobs are counted in the store, so the limit holds across a replica set (two replicas
//! admitting at the same instant may each let one job in beyond it); the submission rate is
//! counted per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{Error, Result};
use crate::store::Store;

/// How long a caller refused for too many live jobs is told to wait: jobs end on their own
/// schedule, so this is a polite pause rather than a promise.
const LIVE_JOBS_RETRY: Duration = Duration::from_secs(10);
/// Tenants whose buckets are kept; beyond it, full buckets are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// The quotas of every tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Live (not ended) jobs per tenant.
    pub max_live_jobs: u64,
    /// Submissions per tenant per minute; also the burst a full bucket allows.
    pub submissions_per_minute: u32,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        QuotaLimits {
            max_live_jobs: 100,
            submissions_per_minute: 120,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Admits or refuses submissions.
#[derive(Debug)]
pub struct Quotas {
    limits: QuotaLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Quotas {
    pub fn new(limits: QuotaLimits) -> Quotas {
        Quotas {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one submission from the tenant's bucket, or says how long until one is there.
    pub fn take_submission(&self, tenant: &str) -> Result<()> {
        let per_minute = f64::from(self.limits.submissions_per_minute.max(1));
        let per_second = per_minute / 60.0;
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(tenant) {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second
                    < per_minute
            });
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        let tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second)
            .min(per_minute);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - tokens) / per_second);
        info!(
            tenant,
            quota = "submissions per minute",
            limit = self.limits.submissions_per_minute,
            "submission refused: over quota"
        );
        Err(Error::ResourceExhausted {
            message: format!(
                "tenant {tenant} made more than {} submissions in a minute (--tenant-submissions-per-minute); the next is allowed in {} ms",
                self.limits.submissions_per_minute,
                wait.as_millis().max(1)
            ),
            retry_after: Some(wait),
        })
    }

    /// Refuses a new job when the tenant already has its maximum of live jobs.
    pub async fn check_live_jobs(&self, store: &dyn Store, tenant: &str) -> Result<()> {
        let live = store.count_live_jobs(tenant).await?;
        if live < self.limits.max_live_jobs {
            return Ok(());
        }
        info!(
            tenant,
            quota = "live jobs",
            limit = self.limits.max_live_jobs,
            live,
            "submission refused: over quota"
        );
        Err(Error::ResourceExhausted {
            message: format!(
                "tenant {tenant} has {live} live jobs, its quota is {} (--tenant-max-live-jobs); a new job is accepted once one ends",
                self.limits.max_live_jobs
            ),
            retry_after: Some(LIVE_JOBS_RETRY),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_may_burst_its_minute_then_is_told_how_long_to_wait() {
        let quotas = Quotas::new(QuotaLimits {
            max_live_jobs: 1,
            submissions_per_minute: 3,
        });
        for _ in 0..3 {
            quotas.take_submission("ml").expect("within the burst");
        }
        let Err(Error::ResourceExhausted {
            message,
            retry_after: Some(wait),
        }) = quotas.take_submission("ml")
        else {
            panic!("the fourth submission within a minute must be refused");
        };
        assert!(
            message.contains("--tenant-submissions-per-minute"),
            "{message}"
        );
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        quotas
            .take_submission("ads")
            .expect("another tenant has its own bucket");
    }
}
