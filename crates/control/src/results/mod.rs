//! Query results: the drain that logs each query's rows as they are produced (`drain.rs`), the
//! heads of the logs this process writes (`tails.rs`), and StreamOperationResults, which
//! reads the log (`stream.rs`), and its TABLE view, which applies the changelog (`table.rs`).

pub(super) mod drain;
mod stream;
mod table;
mod tails;

pub use stream::{ResultMessage, ResultRequest, StreamEndReason};
pub(super) use tails::Tails;
