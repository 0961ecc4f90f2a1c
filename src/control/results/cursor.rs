//! What is kept of a query's results in this process: the gateway's position and the rows of
//! the last page read, so that a stream can resume within that page.
//!
//! The SQL Gateway accepts only the token it served last and the next one, and an empty page
//! often follows a page of rows, so an earlier page cannot be fetched again. The driver creates
//! a statement's cursor with the query's first page (its verdict); the one stream reading the
//! statement holds it while it reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::sql_gateway::{ColumnInfo, OperationHandle, ResultPage, RowData, SessionHandle};

/// How far a statement's results were read.
#[derive(Debug, Default)]
pub(in crate::control) struct Cursor {
    /// Where the results are read from.
    pub session: SessionHandle,
    pub operation: OperationHandle,
    pub columns: Option<Vec<ColumnInfo>>,
    /// The token not fetched yet, and the rows before it.
    pub next_token: u64,
    pub rows_before_next: u64,
    /// The rows of the last page that had rows, and the offset of its first row.
    pub last_rows: Vec<RowData>,
    pub last_rows_start: u64,
    pub eos: bool,
    /// True once a stream read from this cursor.
    pub served: bool,
}

/// Where a stream starts: rows served again from the kept page, then the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::control) struct ResumePoint {
    /// The offset of the first row to send.
    pub row: u64,
    /// How many rows of the kept page come before it (None: start at the next token).
    pub kept_rows_skip: Option<usize>,
}

impl Cursor {
    /// Creates the cursor of a query from its first page (token 0), fetched for its verdict.
    pub fn first_page(
        session: SessionHandle,
        operation: OperationHandle,
        page: ResultPage,
    ) -> Self {
        let mut cursor = Cursor {
            session,
            operation,
            ..Cursor::default()
        };
        if !page.columns.is_empty() {
            cursor.columns = Some(page.columns);
        }
        cursor.record_page(0, page.data, page.next_token);
        cursor
    }

    /// Returns where a stream resuming from `row` starts.
    pub fn resume_point(&self, row: u64) -> Result<ResumePoint> {
        if row == self.rows_before_next {
            return Ok(ResumePoint {
                row,
                kept_rows_skip: None,
            });
        }
        let kept_end = self.last_rows_start + self.last_rows.len() as u64;
        if self.last_rows_start <= row && row < kept_end {
            return Ok(ResumePoint {
                row,
                kept_rows_skip: usize::try_from(row - self.last_rows_start).ok(),
            });
        }
        let from = if self.last_rows.is_empty() {
            self.rows_before_next
        } else {
            self.last_rows_start
        };
        Err(Error::OutOfRange(format!(
            "resume_from_row: {row} cannot be served; the sql gateway serves no page twice, so resuming is possible from row {from} to row {}",
            self.rows_before_next
        )))
    }

    /// Records the page fetched at the next token: `rows` are kept when there are any.
    pub fn record_page(&mut self, start: u64, rows: Vec<RowData>, next: Option<u64>) {
        self.rows_before_next = start + rows.len() as u64;
        if !rows.is_empty() {
            self.last_rows_start = start;
            self.last_rows = rows;
        }
        match next {
            Some(next) => self.next_token = next,
            None => self.eos = true,
        }
    }
}

/// A statement's cursor, held by the one stream reading it.
type SharedCursor = Arc<tokio::sync::Mutex<Cursor>>;

/// The cursors of the query statements that have their verdict in this process.
#[derive(Default)]
pub(in crate::control) struct Cursors {
    by_statement: Mutex<HashMap<(JobId, u32), SharedCursor>>,
}

impl Cursors {
    /// Keeps the cursor a driver created with a query's first page.
    pub fn insert(&self, job_id: JobId, index: u32, cursor: Cursor) {
        if let Ok(mut map) = self.by_statement.lock() {
            map.insert((job_id, index), Arc::new(tokio::sync::Mutex::new(cursor)));
        }
    }

    /// Returns true when the statement has its cursor (its query has its verdict).
    pub fn has(&self, job_id: JobId, index: u32) -> bool {
        self.by_statement
            .lock()
            .is_ok_and(|map| map.contains_key(&(job_id, index)))
    }

    /// Takes the statement's cursor for one stream: None while the statement has no verdict,
    /// ABORTED while another stream reads it.
    pub fn lock(&self, job_id: JobId, index: u32) -> Result<Option<OwnedMutexGuard<Cursor>>> {
        let cursor = {
            let map = self
                .by_statement
                .lock()
                .map_err(|_| Error::Internal("result cursor table poisoned".into()))?;
            match map.get(&(job_id, index)) {
                Some(cursor) => Arc::clone(cursor),
                None => return Ok(None),
            }
        };
        cursor.try_lock_owned().map(Some).map_err(|_| {
            Error::Aborted(format!(
                "results of statement {} of job {job_id} are already being streamed by another call",
                index + 1
            ))
        })
    }

    /// Forgets the cursors of a job that ended.
    pub fn forget_job(&self, job_id: JobId) {
        if let Ok(mut map) = self.by_statement.lock() {
            map.retain(|(id, _), _| *id != job_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(count: usize) -> Vec<RowData> {
        (0..count)
            .map(|i| {
                serde_json::from_str(&format!(r#"{{"kind":"INSERT","fields":[{i}]}}"#))
                    .unwrap_or_else(|e| panic!("row json: {e}"))
            })
            .collect()
    }

    #[test]
    fn resume_is_possible_within_the_kept_page_or_at_the_end() {
        let mut cursor = Cursor::default();
        cursor.record_page(0, Vec::new(), Some(1));
        cursor.record_page(0, rows(10), Some(2));
        cursor.record_page(10, rows(5), Some(3));
        // An empty page after rows keeps the rows of the page before it.
        cursor.record_page(15, Vec::new(), Some(4));
        assert_eq!(cursor.next_token, 4);
        assert_eq!(cursor.rows_before_next, 15);
        assert_eq!(
            cursor.resume_point(15).ok(),
            Some(ResumePoint {
                row: 15,
                kept_rows_skip: None
            })
        );
        assert_eq!(
            cursor.resume_point(12).ok(),
            Some(ResumePoint {
                row: 12,
                kept_rows_skip: Some(2)
            })
        );
        assert_eq!(
            cursor.resume_point(10).ok(),
            Some(ResumePoint {
                row: 10,
                kept_rows_skip: Some(0)
            })
        );
        assert!(matches!(cursor.resume_point(9), Err(Error::OutOfRange(_))));
        assert!(matches!(cursor.resume_point(16), Err(Error::OutOfRange(_))));
    }

    #[test]
    fn a_fresh_cursor_resumes_only_from_row_zero() {
        let cursor = Cursor::default();
        assert!(cursor.resume_point(0).is_ok());
        assert!(matches!(cursor.resume_point(1), Err(Error::OutOfRange(_))));
    }

    #[test]
    fn end_of_results_keeps_the_last_rows() {
        let mut cursor = Cursor::default();
        cursor.record_page(0, rows(3), Some(1));
        cursor.record_page(3, Vec::new(), None);
        assert!(cursor.eos);
        assert_eq!(
            cursor.resume_point(1).ok(),
            Some(ResumePoint {
                row: 1,
                kept_rows_skip: Some(1)
            })
        );
    }
}
