//! The flinkbroker domain: what a job is and what may be done with it, independent of how it
//! is run, stored or served.
//!
//! # Layout
//! - [`job`]: the job model (ids, kinds, states, statements, result-log positions).
//! - [`sql_script`]: splits SQL scripts into statements and classifies each one once, when
//!   it enters.
//! - [`audit`]: the audit trail's record types.
//! - [`flink_version`]: what differs between the Flink releases served (restore options).
//! - [`principal`]: who calls (principal, tenant, roles) and the tenant name rule.
//! - [`tenants`]: each tenant's guardrails and quotas, from flags and the tenant policy file.
//! - [`metric`]: the description of an exported metric series.
//! - [`reload`]: configuration files read again when they change.
//! - [`units`]: duration and size parsers.

pub mod audit;
pub mod flink_version;
pub mod job;
pub mod metric;
pub mod principal;
pub mod reload;
pub mod sql_script;
pub mod tenants;
pub mod units;
