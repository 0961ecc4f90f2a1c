//! sea-orm entities of the job tables.
//!
//! The tables themselves are created by [`super::migration`]; these entities only describe
//! them for queries.

pub(crate) mod audit_event;
pub(crate) mod ended_job_count;
pub(crate) mod job;
pub(crate) mod job_label;
pub(crate) mod job_state_transition;
pub(crate) mod job_statement;
pub(crate) mod replica;
pub(crate) mod result_batch;
pub(crate) mod result_log;
