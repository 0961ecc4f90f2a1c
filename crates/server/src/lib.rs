//! The flinkbroker server: the gRPC `JobService` (and gRPC-Web for the console), health and
//! reflection, authentication, the audit trail of calls, the web console's assets, the
//! `/metrics` endpoint and OTLP trace export.
//!
//! This is the edge: it is the only crate that knows gRPC statuses (`error`), installs the
//! metrics exporter and the tracing subscriber, and wires the adapters (store, SQL Gateway,
//! JobManager, runner) into the controller ([`app`]).
//!
//! # Layout
//! Public, for the binary and the tests:
//! - [`app`]: wiring and serving until shutdown; [`config`]: what the server runs with.
//! - [`auth`]: bearer tokens, JWTs and client certificates; the tower layer that
//!   establishes each call's principal (public: [`auth::jwt`] and [`auth::mtls`], whose
//!   settings the configuration names).
//! - [`metrics`]: the Prometheus recorder, the server's series and the `/metrics` endpoint.
//! - [`telemetry`]: logging and OTLP trace export, and the span of each gRPC call.
//! - [`shutdown`]: the shutdown signal.
//!
//! Private to the crate:
//! - `api`: the tonic service, one method per RPC, each calling `flinkbroker_control`.
//! - `audit`: records audited calls and refusals.
//! - `error`: the one mapping of errors to `tonic::Status`.
//! - `console`: the web console's page and assets.

mod api;
pub mod app;
mod audit;
pub mod auth;
pub mod config;
mod console;
mod error;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
