//! flinkbroker: a gRPC control plane in front of Apache Flink for PyFlink scripts and Flink SQL.
//!
//! Callers submit SQL scripts (run statement by statement through the Flink SQL Gateway) and
//! PyFlink programs (run with `flink run -py` by a Kubernetes Job or a local process), follow
//! them to their end and stream SQL results. Every job is recorded durably.
//!
//! # Layout
//! - [`proto`]: the generated gRPC code and the descriptor set served by reflection.
//! - [`app`]: wiring: store, clients, services, health, reflection; serves until shutdown.
//! - [`config`]: command-line flags, each readable from a `FLINKBROKER_*` variable.
//! - [`error`]: the crate error and its one mapping to `tonic::Status`.
//! - [`api`]: the tonic service: decodes, validates, calls `control`, encodes.
//! - [`control`]: one file per RPC, and the one driver task of each live job (`control/sql`,
//!   `control/python`) that owns its state, resumes it after a restart and cancels it.
//! - [`job`]: the job model.
//! - [`sql_script`]: splits SQL scripts into statements and classifies them.
//! - [`rows`]: converts the gateway's JSON rows into typed protobuf values.
//! - [`runner`]: the `JobRunner` trait of Python submitters and the `flink run` argv.
//! - [`sql_gateway`]: the `SqlGateway` trait and its REST client.
//! - [`flink`]: the `JobManager` trait and its REST client.
//! - [`java_error`]: reduces Java exception and stack text to the root cause a caller needs.
//! - [`store`]: the `Store` trait and its sea-orm implementation.
//! - [`k8s`], [`local`]: the two `JobRunner`s (Kubernetes Jobs, local processes).
//! - [`telemetry`], [`shutdown`]: logging and optional OTLP trace export, and the shutdown
//!   signal; [`metrics`]: the Prometheus series and their `/metrics` endpoint.
//! - [`auth`], [`tenants`], [`audit`]: who is calling (static bearer tokens, JWTs, client
//!   certificates), what each tenant may do, and the audit trail of what was done;
//!   [`reload`]: configuration files read again on change.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod error;
pub mod flink;
pub mod java_error;
pub mod job;
pub mod k8s;
pub mod local;
pub mod metrics;
pub mod reload;
pub mod rows;
pub mod runner;
pub mod shutdown;
pub mod sql_gateway;
pub mod sql_script;
pub mod store;
pub mod telemetry;
pub mod tenants;

/// The generated gRPC code of `proto/flinkbroker/v1`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("flinkbroker.v1");

    /// The encoded descriptor set of the API, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("flinkbroker_descriptor");
}
