//! The bounded tail of a submitter's output.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::debug;

use flinkbroker_model::job::JobId;

/// Bytes read from a pipe at a time.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// The last `limit` bytes written to it; older bytes are dropped as new ones arrive.
#[derive(Debug)]
pub(crate) struct OutputTail {
    bytes: VecDeque<u8>,
    limit: usize,
}

impl OutputTail {
    /// Creates an empty tail that keeps at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            limit,
        }
    }

    /// Appends a chunk, dropping the oldest bytes beyond the limit.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.limit {
            self.bytes.clear();
            self.bytes
                .extend(&chunk[chunk.len().saturating_sub(self.limit)..]);
            return;
        }
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// Returns the tail as text (invalid UTF-8 replaced).
    ///
    /// A character cut in half by the limit is left out rather than shown as a replacement
    /// character.
    pub(crate) fn to_string_lossy(&self) -> String {
        let mut bytes = Vec::with_capacity(self.bytes.len());
        let (front, back) = self.bytes.as_slices();
        bytes.extend_from_slice(front);
        bytes.extend_from_slice(back);
        let cut_character = bytes
            .iter()
            .take(3)
            .take_while(|byte| is_continuation_byte(**byte))
            .count();
        String::from_utf8_lossy(&bytes[cut_character..]).into_owned()
    }

    /// Returns how many bytes are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

fn is_continuation_byte(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// A tail shared by the readers of a process's stdout and stderr.
pub(crate) type SharedTail = Arc<Mutex<OutputTail>>;

/// Appends a chunk to a shared tail.
pub(crate) fn append(tail: &SharedTail, chunk: &[u8]) {
    tail.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(chunk);
}

/// Reads a shared tail as text.
pub(crate) fn read(tail: &SharedTail) -> String {
    tail.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .to_string_lossy()
}

/// Copies everything `stream` yields into `tail` until end of file or a read error.
pub(crate) async fn capture<R>(
    job_id: JobId,
    stream_name: &'static str,
    mut stream: R,
    tail: SharedTail,
) where
    R: AsyncRead + Unpin,
{
    let mut buffer = vec![0_u8; READ_CHUNK_BYTES];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => append(&tail, &buffer[..read]),
            Err(error) => {
                debug!(job_id = %job_id, stream = stream_name, %error, "cannot read submitter output");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_below_the_limit() {
        let mut tail = OutputTail::new(10);
        tail.push(b"abc");
        tail.push(b"def");
        assert_eq!(tail.to_string_lossy(), "abcdef");
    }

    #[test]
    fn drops_the_oldest_bytes_beyond_the_limit() {
        let mut tail = OutputTail::new(5);
        tail.push(b"abc");
        tail.push(b"defg");
        assert_eq!(tail.to_string_lossy(), "cdefg");
        tail.push(b"h");
        assert_eq!(tail.to_string_lossy(), "defgh");
    }

    #[test]
    fn a_chunk_larger_than_the_limit_keeps_its_own_tail() {
        let mut tail = OutputTail::new(4);
        tail.push(b"ab");
        tail.push(b"0123456789");
        assert_eq!(tail.to_string_lossy(), "6789");
        assert_eq!(tail.len(), 4);
    }

    #[test]
    fn many_small_chunks_never_exceed_the_limit() {
        let mut tail = OutputTail::new(1000);
        for index in 0..10_000 {
            tail.push(format!("line {index}\n").as_bytes());
            assert!(tail.len() <= 1000);
        }
        assert!(tail.to_string_lossy().ends_with("line 9999\n"));
    }

    #[test]
    fn a_character_cut_by_the_limit_is_left_out() {
        let mut tail = OutputTail::new(4);
        // "é" is two bytes; keeping four bytes of "aéöx" cuts into "é".
        tail.push("aéöx".as_bytes());
        assert_eq!(tail.to_string_lossy(), "öx");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut tail = OutputTail::new(16);
        tail.push(b"ok \xff end");
        assert_eq!(tail.to_string_lossy(), "ok \u{fffd} end");
    }
}
