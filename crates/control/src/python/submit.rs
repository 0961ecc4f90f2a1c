//! SubmitPython.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::{Controller, admission};
use crate::error::Result;
use flinkbroker_model::job::{Job, JobId, JobSpec, NewJob, PythonSpec, now_millis};

/// A Python submission, decoded and checked for shape by the API layer.
#[derive(Debug, Clone)]
pub struct PythonSubmission {
    /// The tenant the job belongs to and the principal submitting it.
    pub tenant: String,
    /// The principal submitting the job.
    pub principal: String,
    /// The program and how to run it.
    pub program: PythonSpec,
    /// The caller's idempotency key, if given.
    pub request_id: Option<String>,
    /// The caller's labels, for filtering ListJobs.
    pub labels: BTreeMap<String, String>,
}

impl Controller {
    /// Records a Python job (its Flink job id chosen here, once) and starts its driver, or
    /// returns the job already recorded for its request id.
    pub async fn submit_python(self: &Arc<Self>, submission: PythonSubmission) -> Result<Job> {
        let new_job = self.python_job(submission, "SubmitPython")?;
        self.record(new_job).await
    }

    /// Checks a Python submission against the limits and the tenant's guardrails and builds
    /// the job to record (its Flink job id chosen here, once), audited as `method`.
    pub(crate) fn python_job(
        &self,
        submission: PythonSubmission,
        method: &'static str,
    ) -> Result<NewJob> {
        let policy = self.limits.tenants.policy(&submission.tenant);
        admission::python_program(&self.limits, &policy, &submission.program)?;
        let id = JobId::new_random();
        let new_job = NewJob {
            id,
            request_id: submission.request_id,
            tenant: submission.tenant,
            principal: submission.principal,
            labels: submission.labels,
            spec: JobSpec::Python(submission.program),
            statements: Vec::new(),
            flink_job_id: Some(id.flink_job_id_for_program()),
            created_at: now_millis(),
            lease: None,
            audited_as: Some(method),
            lineage: None,
        };
        Ok(new_job)
    }
}
