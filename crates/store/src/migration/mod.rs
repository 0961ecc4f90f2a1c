//! Schema migrations, run at startup.
//!
//! One migration per `mYYYYMMDD_HHMMSS_name.rs` file: the migration is named after its file
//! and recorded under that name in `seaql_migrations`, so a file is never renamed or edited
//! once released; a schema change is a new file.

use sea_orm_migration::prelude::*;

mod m20261123_000001_create_job_tables;
mod m20261130_000001_statement_kind_attempt_savepoint;
mod m20261201_000001_result_log_and_leases;
mod m20261202_000001_job_tenant_and_principal;
mod m20261203_000001_audit_events;
mod m20261203_000002_result_log_opened_at;
mod m20261204_000001_result_batches_uncompressed;
mod m20261205_000001_job_savepoints;
mod m20261206_000001_job_revisions;
mod m20261207_000001_jobs_at_scale;
mod m20261207_000002_replicas;
mod m20261208_000001_job_metrics_indexes;
mod m20261209_000001_ended_job_counts;

/// Every migration of the job store, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_job_tables::Migration),
            Box::new(m20261130_000001_statement_kind_attempt_savepoint::Migration),
            Box::new(m20261201_000001_result_log_and_leases::Migration),
            Box::new(m20261202_000001_job_tenant_and_principal::Migration),
            Box::new(m20261203_000001_audit_events::Migration),
            Box::new(m20261203_000002_result_log_opened_at::Migration),
            Box::new(m20261204_000001_result_batches_uncompressed::Migration),
            Box::new(m20261205_000001_job_savepoints::Migration),
            Box::new(m20261206_000001_job_revisions::Migration),
            Box::new(m20261207_000001_jobs_at_scale::Migration),
            Box::new(m20261207_000002_replicas::Migration),
            Box::new(m20261208_000001_job_metrics_indexes::Migration),
            Box::new(m20261209_000001_ended_job_counts::Migration),
        ]
    }
}
