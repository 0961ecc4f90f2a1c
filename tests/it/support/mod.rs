//! What the tests share: brokers served in-process or as the real binary (and what it logs),
//! callers with credentials, crash schedules, a local Flink cluster, keys and certificates, and
//! PostgreSQL.

pub(crate) use flinkbroker_testkit::standin as sql_gateway_standin;

pub mod broker;
pub mod broker_binary;
pub mod callers;
pub mod crash;
pub mod flink_cluster;
pub mod jwt;
pub mod pki;
pub mod postgres;

/// The PostgreSQL support under the name the crash tests use.
pub(crate) use postgres as postgres_support;
