//! Black-box tests of the whole broker: its gRPC API, CLI, console, metrics and traces served
//! in-process or by the real binary, against the SQL Gateway and JobManager stand-in, a real
//! local Flink cluster where one is installed, SQLite and PostgreSQL. One test binary: each
//! module below was a test file of its own.

mod support;

mod arrow_results;
mod audit;
mod auth;
mod cli;
mod console;
mod crash_recovery;
mod fair_shares;
mod flink_rest;
mod job_lifecycle;
mod k8s_runner;
mod live_jobs;
mod local_runner;
mod logs;
mod metrics;
mod mtls;
mod pyflink_metaspace;
mod python_jobs;
mod python_local_flink;
mod refusals;
mod replicas;
mod result_log;
mod retention;
mod savepoints;
mod server;
mod sql_gateway_client;
mod sql_jobs;
mod sql_validation;
mod standin;
mod store_suite;
mod table_view;
mod tenant_policy;
mod traces;
mod upgrades;
mod upgrades_real_flink;
