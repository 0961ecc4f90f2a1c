//! SQL jobs: SubmitSql, and the driver that runs a script statement by statement.

pub(super) mod driver;
mod submit;

/// The executionConfig key that pins the Flink job id of a statement.
pub const PIPELINE_JOB_ID_KEY: &str = "$internal.pipeline.job-id";
