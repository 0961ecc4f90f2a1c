//! Clients of Flink's REST APIs: the SQL Gateway (sessions, statements, operations, result
//! pages) and the JobManager (job status, root causes, cancel, stop-with-savepoint), each behind
//! one trait, and the conversion of the gateway's JSON rows into the API's typed values.
//!
//! # Layout
//! - [`sql_gateway`]: the `SqlGateway` trait, its REST client, wire models and errors.
//! - [`jobmanager`]: the `JobManager` trait and its REST client.
//! - [`java_error`]: reduces Java exception and stack text to the root cause a caller needs.
//! - [`rows`]: converts result pages into typed protobuf rows.
//! - [`metrics`], `trace`: each request's metrics and span, recorded by the clients.
//!
//! Nothing here knows the store, the server or the configuration: each client takes its URL
//! and timeout.

pub mod java_error;
pub mod jobmanager;
pub mod metrics;
pub mod rows;
pub mod sql_gateway;
mod trace;
