//! SQL jobs: SubmitSql, and the driver that runs a script statement by statement.

pub(super) mod driver;
mod submit;

pub use crate::sql_gateway::PIPELINE_JOB_ID_KEY;
