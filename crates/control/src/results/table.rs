//! StreamOperationResults with view TABLE: a statement's changelog applied into its current
//! table, sent as a snapshot as of one log offset, then the changes after it.
//!
//! Each stream builds its table from the result log, from row 0 up to the rows logged when
//! it starts, through an ordinary result stream: the log is the only state, so any replica
//! serves the view, and a restart changes nothing. A row is keyed by all of its values (the
//! SQL Gateway's results name no upsert key; Flink retracts a row with every value as it was
//! added), so the table is a multiset. It holds at most `--max-table-rows` distinct rows.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::super::Controller;
use super::stream::select_statement;
use super::{ResultMessage, ResultRequest};
use crate::error::{Error, Result};
use flinkbroker_proto as proto;

/// Messages queued for the client beyond the one being sent.
const QUEUED_MESSAGES: usize = 2;

/// A statement's table: each distinct row, how many times it is held and when it first
/// appeared.
#[derive(Default)]
struct Table {
    rows: HashMap<Vec<u8>, (proto::Row, u64, u64)>,
    next_seq: u64,
}

impl Table {
    /// Applies one changelog row; false when the table would hold more than `max` rows.
    fn apply(&mut self, row: &proto::Row, max: u64) -> bool {
        let key = proto::Row {
            kind: 0,
            values: row.values.clone(),
        }
        .encode_to_vec();
        match proto::RowKind::try_from(row.kind) {
            Ok(proto::RowKind::UpdateBefore | proto::RowKind::Delete) => {
                if let Some(entry) = self.rows.get_mut(&key) {
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        self.rows.remove(&key);
                    }
                }
                true
            }
            _ => {
                if let Some(entry) = self.rows.get_mut(&key) {
                    entry.1 += 1;
                    return true;
                }
                if self.rows.len() as u64 >= max {
                    return false;
                }
                let inserted = proto::Row {
                    kind: proto::RowKind::Insert as i32,
                    values: row.values.clone(),
                };
                self.rows.insert(key, (inserted, 1, self.next_seq));
                self.next_seq += 1;
                true
            }
        }
    }

    /// The rows in the order they first appeared, each as many times as it is held.
    fn rows(self) -> Vec<proto::Row> {
        let mut held: Vec<(proto::Row, u64, u64)> = self.rows.into_values().collect();
        held.sort_by_key(|(_, _, seq)| *seq);
        held.into_iter()
            .flat_map(|(row, count, _)| std::iter::repeat_n(row, count as usize))
            .collect()
    }
}

impl Controller {
    /// Streams a statement's results as its table: a snapshot, then the changes.
    pub async fn stream_table(
        self: &Arc<Self>,
        request: ResultRequest,
    ) -> Result<mpsc::Receiver<Result<ResultMessage>>> {
        if request.resume_from_row > 0 {
            return Err(Error::invalid(
                "resume_from_row",
                "is not taken with view TABLE, which starts from a snapshot; continue its changes with view CHANGELOG from the snapshot's as_of_row_offset",
            ));
        }
        let job = self.get_job(request.job_id).await?;
        let index = select_statement(&job, request.statement_index)?;
        let statement = &job.statements[index as usize];
        let as_of = match &statement.log {
            Some(log) if log.earliest_row > 0 => {
                return Err(Error::FailedPrecondition(format!(
                    "statement {} keeps only a sliding window of its results (--result-log-window-bytes), which starts at row {}; its table needs every row from row 0: read its changelog (view CHANGELOG)",
                    index + 1,
                    log.earliest_row
                )));
            }
            Some(log) => log.rows_logged,
            None => 0,
        };
        let max_rows = request.max_rows;
        let mut inner = self
            .stream_results(ResultRequest {
                resume_from_row: 0,
                max_rows: None,
                ..request
            })
            .await?;
        let (tx, rx) = mpsc::channel(QUEUED_MESSAGES);
        let max_table_rows = self.limits.max_table_rows;
        let max_bytes = usize::try_from(self.limits.max_message_bytes).unwrap_or(usize::MAX);
        let job_id = job.id;
        self.tasks.spawn(async move {
            let mut table = Some(Table::default());
            let mut offset = 0u64;
            let mut changes_sent = 0u64;
            let mut next_change = as_of;
            while let Some(item) = inner.recv().await {
                let message = match item {
                    Ok(message) => message,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                };
                let mut out = Vec::new();
                match message {
                    ResultMessage::Rows {
                        rows,
                        first_row_offset,
                        attempt,
                    } => {
                        let mut changes = Vec::new();
                        let mut changes_from = None;
                        for (i, row) in rows.into_iter().enumerate() {
                            let row_offset = first_row_offset + i as u64;
                            offset = row_offset + 1;
                            match table.as_mut() {
                                Some(held) if row_offset < as_of => {
                                    if !held.apply(&row, max_table_rows) {
                                        warn!(job_id = %job_id, statement = index, max_table_rows, "table view over its bound");
                                        let _ = tx
                                            .send(Err(Error::FailedPrecondition(format!(
                                                "the table of statement {} holds more than {max_table_rows} distinct rows (--max-table-rows); read its changelog (view CHANGELOG)",
                                                index + 1
                                            ))))
                                            .await;
                                        return;
                                    }
                                }
                                _ => {
                                    if let Some(held) = table.take() {
                                        snapshot(held, as_of, max_bytes, &mut out);
                                    }
                                    changes_from.get_or_insert(row_offset);
                                    changes.push(row);
                                }
                            }
                        }
                        if offset >= as_of
                            && let Some(held) = table.take()
                        {
                            snapshot(held, as_of, max_bytes, &mut out);
                        }
                        if let Some(first) = changes_from {
                            if let Some(limit) = max_rows {
                                changes.truncate(limit.saturating_sub(changes_sent) as usize);
                            }
                            changes_sent += changes.len() as u64;
                            next_change = first + changes.len() as u64;
                            if !changes.is_empty() {
                                out.push(ResultMessage::Rows {
                                    rows: changes,
                                    first_row_offset: first,
                                    attempt,
                                });
                            }
                        }
                    }
                    ResultMessage::Schema(schema) => {
                        out.push(ResultMessage::Schema(schema));
                        if as_of == 0
                            && let Some(held) = table.take()
                        {
                            snapshot(held, as_of, max_bytes, &mut out);
                        }
                    }
                    ResultMessage::End {
                        reason,
                        error,
                        rows_sent: _,
                        next_row_offset,
                    } => {
                        if let Some(held) = table.take() {
                            snapshot(held, offset.min(as_of), max_bytes, &mut out);
                        }
                        out.push(ResultMessage::End {
                            reason,
                            error,
                            rows_sent: changes_sent,
                            next_row_offset,
                        });
                    }
                    progress @ ResultMessage::Progress { .. } => {
                        if table.is_none() {
                            out.push(progress);
                        }
                    }
                    other @ ResultMessage::Snapshot { .. } => out.push(other),
                }
                for message in out {
                    if tx.send(Ok(message)).await.is_err() {
                        info!(job_id = %job_id, statement = index, "table stream closed by the client");
                        return;
                    }
                }
                if max_rows.is_some_and(|limit| changes_sent >= limit) {
                    let _ = tx
                        .send(Ok(ResultMessage::End {
                            reason: super::StreamEndReason::RowLimitReached,
                            error: None,
                            rows_sent: changes_sent,
                            next_row_offset: next_change,
                        }))
                        .await;
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// The table as snapshot messages of at most `max_bytes` of rows each (at least one).
fn snapshot(table: Table, as_of: u64, max_bytes: usize, out: &mut Vec<ResultMessage>) {
    let rows = table.rows();
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    let mut chunks = Vec::new();
    for row in rows {
        let size = row.encoded_len();
        if !chunk.is_empty() && bytes + size > max_bytes {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(row);
    }
    chunks.push(chunk);
    let count = chunks.len();
    for (i, rows) in chunks.into_iter().enumerate() {
        out.push(ResultMessage::Snapshot {
            rows,
            as_of_row_offset: as_of,
            last: i + 1 == count,
        });
    }
}
