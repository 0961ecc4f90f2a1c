//! Per-tenant quotas on submissions: how many of a tenant's jobs may be live at once, how
//! many submissions it may make a minute (a token bucket), how many result-log bytes its jobs
//! may hold, and the parallelism its live Python jobs may add up to. Each tenant's limits come
//! from its [`TenantPolicy`].
//!
//! Usage is counted in the store, so those limits hold across a replica set (two replicas
//! admitting at the same instant may each let one job in beyond them); the submission rate is
//! counted per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{Error, Result};
use crate::metrics;
use flinkbroker_model::job::{JobSpec, NewJob};
use flinkbroker_model::tenants::TenantPolicy;
use flinkbroker_store::Store;

/// How long a caller refused for too many live jobs or too much Python parallelism is told
/// to wait: jobs end on their own schedule, so this is a polite pause rather than a promise.
const LIVE_JOBS_RETRY: Duration = Duration::from_secs(10);
/// How long a caller refused for the result-log bytes its jobs hold is told to wait: logs are
/// deleted a retention period after their job ended.
const RESULT_LOG_RETRY: Duration = Duration::from_secs(60);
/// Tenants whose buckets are kept; beyond it, full buckets are forgotten.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Admits or refuses submissions.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    buckets: Mutex<HashMap<String, Bucket>>,
}

fn over_quota(
    tenant: &str,
    policy: &TenantPolicy,
    quota: Quota,
    message: String,
    retry: Option<Duration>,
) -> Error {
    info!(
        tenant,
        quota = quota.description(),
        "submission refused: over quota"
    );
    metrics::quota_refused(tenant, policy, quota.label());
    Error::ResourceExhausted {
        message,
        retry_after: retry,
    }
}

/// The quotas a submission can be refused over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Quota {
    SubmissionsPerMinute,
    LiveJobs,
    ResultLogBytes,
    PythonParallelism,
}

impl Quota {
    /// Every quota: the refusal counter is exported at zero under each one's label.
    pub(crate) const ALL: [Quota; 4] = [
        Quota::SubmissionsPerMinute,
        Quota::LiveJobs,
        Quota::ResultLogBytes,
        Quota::PythonParallelism,
    ];

    /// The name in log lines.
    fn description(self) -> &'static str {
        match self {
            Quota::SubmissionsPerMinute => "submissions per minute",
            Quota::LiveJobs => "live jobs",
            Quota::ResultLogBytes => "result-log bytes",
            Quota::PythonParallelism => "python parallelism",
        }
    }

    /// The `quota` label of the refusal counter.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Quota::SubmissionsPerMinute => "submissions_per_minute",
            Quota::LiveJobs => "live_jobs",
            Quota::ResultLogBytes => "result_log_bytes",
            Quota::PythonParallelism => "python_parallelism",
        }
    }
}

impl Quotas {
    pub(crate) fn new() -> Quotas {
        Quotas::default()
    }

    /// Takes one submission from the tenant's bucket, or says how long until one is there.
    pub(crate) fn take_submission(&self, tenant: &str, policy: &TenantPolicy) -> Result<()> {
        let per_minute = f64::from(policy.submissions_per_minute.max(1));
        let per_second = per_minute / 60.0;
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(tenant) {
            // Buckets refilled for a minute are full whatever their rate.
            buckets.retain(|_, bucket| now.duration_since(bucket.at) < Duration::from_secs(60));
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
        Err(over_quota(
            tenant,
            policy,
            Quota::SubmissionsPerMinute,
            format!(
                "tenant {tenant} made more than {} submissions in a minute ({}); the next is allowed in {} ms",
                policy.submissions_per_minute,
                policy.origin("submissions_per_minute", "--tenant-submissions-per-minute"),
                wait.as_millis().max(1)
            ),
            Some(wait),
        ))
    }

    /// Refuses a new job when the tenant's live jobs, result-log bytes or live Python
    /// parallelism are at their quota (or the job would take the parallelism beyond it).
    pub(crate) async fn check_usage(
        &self,
        store: &dyn Store,
        job: &NewJob,
        policy: &TenantPolicy,
    ) -> Result<()> {
        let tenant = job.tenant.as_str();
        let mut usage = store.tenant_usage(tenant).await?;
        // A revision made by UpgradeJob replaces a live job: what that one holds is freed
        // before the new one runs.
        if let Some(upgrade) = job.lineage.as_ref().and_then(|l| l.upgrade.as_ref())
            && let Ok(replaced) = store.get_job(upgrade.previous_job_id).await
            && !replaced.state.is_terminal()
        {
            usage.live_jobs = usage.live_jobs.saturating_sub(1);
            if let JobSpec::Python(program) = &replaced.spec {
                usage.python_parallelism = usage
                    .python_parallelism
                    .saturating_sub(u64::from(program.effective_parallelism()));
            }
        }
        if usage.live_jobs >= policy.max_live_jobs {
            return Err(over_quota(
                tenant,
                policy,
                Quota::LiveJobs,
                format!(
                    "tenant {tenant} has {} live jobs, its quota is {} ({}); a new job is accepted once one ends",
                    usage.live_jobs,
                    policy.max_live_jobs,
                    policy.origin("max_live_jobs", "--tenant-max-live-jobs")
                ),
                Some(LIVE_JOBS_RETRY),
            ));
        }
        if usage.result_log_bytes >= policy.max_result_log_bytes {
            return Err(over_quota(
                tenant,
                policy,
                Quota::ResultLogBytes,
                format!(
                    "tenant {tenant}'s result logs hold {} bytes, its quota is {} bytes ({}); a new job is accepted once logs of ended jobs expire",
                    usage.result_log_bytes,
                    policy.max_result_log_bytes,
                    policy.origin("max_result_log_bytes", "--tenant-max-result-log-bytes")
                ),
                Some(RESULT_LOG_RETRY),
            ));
        }
        if let JobSpec::Python(program) = &job.spec {
            let asked = u64::from(program.effective_parallelism());
            let total = usage.python_parallelism + asked;
            if total > policy.max_python_parallelism {
                // Waiting helps only if the job could fit once the others ended.
                let retry = (asked <= policy.max_python_parallelism).then_some(LIVE_JOBS_RETRY);
                return Err(over_quota(
                    tenant,
                    policy,
                    Quota::PythonParallelism,
                    format!(
                        "tenant {tenant}'s live Python jobs run with parallelism {} in all; {asked} more exceeds its quota of {} ({}){}",
                        usage.python_parallelism,
                        policy.max_python_parallelism,
                        policy.origin("max_python_parallelism", "--tenant-max-python-parallelism"),
                        if retry.is_some() {
                            "; the job is accepted once enough of them end"
                        } else {
                            "; the job alone exceeds it"
                        }
                    ),
                    retry,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_may_burst_its_minute_then_is_told_how_long_to_wait() {
        let quotas = Quotas::new();
        let policy = TenantPolicy {
            submissions_per_minute: 3,
            ..TenantPolicy::default()
        };
        for _ in 0..3 {
            quotas
                .take_submission("ml", &policy)
                .expect("within the burst");
        }
        let Err(Error::ResourceExhausted {
            message,
            retry_after: Some(wait),
        }) = quotas.take_submission("ml", &policy)
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
            .take_submission("ads", &policy)
            .expect("another tenant has its own bucket");
    }
}
