//! Test support for flinkbroker, not published: a stateful stand-in for the Flink SQL Gateway
//! and the JobManager REST API that behaves as the recorded transcripts of a real gateway
//! show, as a library for tests and benches and as the `sql_gateway_standin` binary.
//!
//! # Layout
//! - [`standin`]: the stand-in (`Standin::spawn`, `StandinConfig`), its SQL front end,
//!   result pipeline and recorded error bodies.
//! - [`fakes`]: scripted in-memory fakes of the `SqlGateway`, `JobManager` and `JobRunner`
//!   traits, for tests that drive the control crate without HTTP.
//! - [`postgres`]: the PostgreSQL server the tests use (named, found on 127.0.0.1:5432, or
//!   started from PostgreSQL's binaries for the process), and a fresh database per test.

#![allow(missing_docs, unreachable_pub)]

pub mod fakes;
pub mod postgres;
pub mod standin;
