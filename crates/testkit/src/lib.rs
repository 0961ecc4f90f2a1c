//! Test support for flinkbroker, not published: a stateful stand-in for the Flink SQL Gateway
//! and the JobManager REST API that behaves as the recorded transcripts of a real gateway
//! show, as a library for tests and benches and as the `sql_gateway_standin` binary.
//!
//! # Layout
//! - [`standin`]: the stand-in (`Standin::spawn`, `StandinConfig`), its SQL front end,
//!   result pipeline and recorded error bodies.
//! - [`fakes`]: scripted in-memory fakes of the `SqlGateway`, `JobManager` and `JobRunner`
//!   traits, for tests that drive the control crate without HTTP.

#![allow(missing_docs, unreachable_pub)]

pub mod fakes;
pub mod standin;
