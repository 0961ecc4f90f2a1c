//! sea-orm entities of the job tables.
//!
//! The tables themselves are created by [`super::migration`]; these entities only describe
//! them for queries.

pub mod audit_event;
pub mod job;
pub mod job_state_transition;
pub mod job_statement;
pub mod result_batch;
pub mod result_log;
