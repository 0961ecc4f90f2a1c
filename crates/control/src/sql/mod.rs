//! SQL jobs: SubmitSql, and the driver that runs a script statement by statement.

pub(super) mod driver;
mod submit;

pub(crate) use flinkbroker_flink::sql_gateway::PIPELINE_JOB_ID_KEY;
