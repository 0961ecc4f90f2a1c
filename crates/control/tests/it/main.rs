//! Tests of the job drivers' state machine through the controller's public API
//! (`Controller::new`, `recover`, `submit_sql`, `submit_python`, `get_job`, `watch_job`,
//! `cancel_job`, `drain`), against the in-memory fakes of `flinkbroker_testkit::fakes` and the
//! real store on in-memory SQLite.
//!
//! - `sql_resume`: a crash at each step of a SQL job, and the job's resumption by the next
//!   broker on the same store and replica id, without a pinned Flink job id submitted twice.
//! - `sql_verdicts`: every statement's verdict, and the first failure failing the job.
//! - `sql_cancel`: CancelJob while a statement is submitted or awaits its verdict.
//! - `sql_refusals`: a query's Flink job refused by the cluster while its results are drained.
//! - `python`: a Python job through the runner and the JobManager.
//! - `savepoints`: a savepoint recorded before a crash followed again under its trigger id, and
//!   a restoring Python job's `flink run` options per Flink release.
//!
//! Nothing sleeps to synchronise: tests wait on WatchJob, on the fakes' calls and on holds,
//! each wait bounded by `support::LIMIT`.

mod python;
mod savepoints;
mod sql_cancel;
mod sql_refusals;
mod sql_resume;
mod sql_verdicts;
mod support;
