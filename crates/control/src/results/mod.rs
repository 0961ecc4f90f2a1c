//! Query results: the drain that logs each query's rows as they are produced (`drain.rs`), the
//! heads of the logs this process writes (`tails.rs`), and StreamOperationResults, which
//! reads the log (`stream.rs`).

pub(super) mod drain;
mod stream;
mod tails;

pub(super) use stream::StatusCache;
pub use stream::{ResultMessage, ResultRequest, StreamEndReason};
pub(super) use tails::Tails;
