//! StreamOperationResults (`stream.rs`) and what the drivers keep of each query's results
//! (`cursor.rs`).

mod cursor;
mod stream;

pub(super) use cursor::{Cursor, Cursors};
pub use stream::{ResultMessage, ResultRequest, StreamEndReason};
