//! SubmitSql.

use std::sync::Arc;

use super::super::{Controller, SqlSubmission, ValidateRequest, Verdict, admission};
use crate::error::{Error, Result};
use flinkbroker_model::job::{Job, JobId, JobSpec, NewJob, SqlSpec, now_millis};
use flinkbroker_store::pending_statements;

impl Controller {
    /// SubmitSql's `validate_first`: refuses a script with an invalid statement before
    /// anything is recorded or run. A request id already recorded is answered by `record`.
    async fn validate_before_submission(&self, submission: &SqlSubmission) -> Result<()> {
        if let Some(request_id) = &submission.request_id
            && self
                .store
                .job_for_request(&submission.tenant, request_id)
                .await?
                .is_some()
        {
            return Ok(());
        }
        let checks = self
            .validate_sql(ValidateRequest {
                tenant: submission.tenant.clone(),
                script: submission.script.clone(),
                runtime_mode: submission.runtime_mode,
                properties: submission.properties.clone(),
            })
            .await?;
        for check in checks {
            if let Verdict::Invalid { message, start, .. } = check.verdict {
                let at = start.unwrap_or(check.start);
                return Err(Error::invalid(
                    "script",
                    format!(
                        "statement {} (line {}, column {}) is invalid: {message}",
                        check.index + 1,
                        at.line,
                        at.column
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records a SQL job (its statements split and classified once, here) and starts its
    /// driver, or returns the job already recorded for its request id.
    pub async fn submit_sql(self: &Arc<Self>, submission: SqlSubmission) -> Result<Job> {
        let new_job = self.sql_job(submission, "SubmitSql").await?;
        self.record(new_job).await
    }

    /// Checks a SQL submission against the limits and the tenant's guardrails (and
    /// validates it when asked) and builds the job to record, audited as `method`.
    pub(crate) async fn sql_job(
        &self,
        submission: SqlSubmission,
        method: &'static str,
    ) -> Result<NewJob> {
        let texts = admission::sql_statements(&self.limits, &submission.script)?;
        let policy = self.limits.tenants.policy(&submission.tenant);
        admission::sql_configuration(&policy, submission.properties.keys(), &texts)?;
        if let Some(restore) = &submission.restore {
            admission::savepoint_path(&policy, "restore.savepoint_path", &restore.savepoint_path)?;
        }
        if submission.validate_first {
            self.validate_before_submission(&submission).await?;
        }
        let new_job = NewJob {
            id: JobId::new_random(),
            request_id: submission.request_id,
            tenant: submission.tenant,
            principal: submission.principal,
            labels: submission.labels,
            spec: JobSpec::Sql(SqlSpec {
                script: submission.script,
                runtime_mode: submission.runtime_mode,
                properties: submission.properties,
                result_limits: submission.result_limits,
                restore: submission.restore,
            }),
            statements: pending_statements(&texts),
            flink_job_id: None,
            created_at: now_millis(),
            lease: None,
            audited_as: Some(method),
            lineage: None,
        };
        Ok(new_job)
    }
}
