//! StreamOperationResults: reads a query statement's result pages and turns them into typed
//! row batches, one page in flight at a time.
//!
//! Resuming: the SQL Gateway accepts only the token it served last and the next one, and an
//! empty page often follows a page of rows, so an earlier page cannot be fetched again. The
//! broker therefore keeps, in memory, the rows of the last page with rows it fetched for each
//! statement (one page, bounded), and a client can resume from any row of that page or from the
//! end of what was read. Older offsets, and any offset after the broker restarted, are
//! OUT_OF_RANGE.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Controller;
use super::sql_job::is_result_statement;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobKind, JobState, StatementState};
use crate::proto;
use crate::rows;
use crate::sql_gateway::{
    ColumnInfo, GatewayError, OperationHandle, ResultType, RowData, SessionHandle,
};
use crate::sql_script;
use crate::store::StatementUpdate;

/// Pages with fewer rows than this are followed by a short pause, so that the gateway can
/// gather a larger next page instead of being polled back to back.
const SMALL_PAGE_ROWS: usize = 100;
const SMALL_PAGE_PAUSE: Duration = Duration::from_millis(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const UNREACHABLE_RETRIES: u32 = 3;
const END_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What StreamOperationResults was asked for.
#[derive(Debug, Clone)]
pub struct ResultRequest {
    pub job_id: JobId,
    pub statement_index: Option<u32>,
    pub max_rows: Option<u64>,
    pub max_duration: Option<Duration>,
    pub resume_from_row: u64,
}

/// Why a result stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEndReason {
    EndOfResults,
    RowLimitReached,
    TimeLimitReached,
    Canceled,
    Failed,
}

/// One message of a result stream.
#[derive(Debug, Clone)]
pub enum ResultMessage {
    Schema(proto::ResultSchema),
    Rows {
        rows: Vec<proto::Row>,
        first_row_offset: u64,
    },
    End {
        reason: StreamEndReason,
        error: Option<String>,
        rows_sent: u64,
        next_row_offset: u64,
    },
}

/// How far a statement's results were read.
#[derive(Debug, Default)]
struct Cursor {
    columns: Option<Vec<ColumnInfo>>,
    /// The token not fetched yet, and the rows before it.
    next_token: u64,
    rows_before_next: u64,
    /// The rows of the last page that had rows, and the offset of its first row.
    last_rows: Vec<RowData>,
    last_rows_start: u64,
    eos: bool,
}

/// Where a stream starts: rows served again from the kept page, then the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResumePoint {
    /// The offset of the first row to send.
    row: u64,
    /// How many rows of the kept page come before it (None: start at the next token).
    kept_rows_skip: Option<usize>,
}

impl Cursor {
    /// Returns where a stream resuming from `row` starts.
    fn resume_point(&self, row: u64) -> Result<ResumePoint> {
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
    fn record_page(&mut self, start: u64, rows: Vec<RowData>, next: Option<u64>) {
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

/// The cursors of the statements read in this process.
#[derive(Default)]
pub(super) struct Cursors {
    by_statement: Mutex<HashMap<(JobId, u32), SharedCursor>>,
}

impl Cursors {
    fn lock(&self, job_id: JobId, index: u32) -> Result<OwnedMutexGuard<Cursor>> {
        let cursor = {
            let mut map = self
                .by_statement
                .lock()
                .map_err(|_| Error::Internal("result cursor table poisoned".into()))?;
            Arc::clone(map.entry((job_id, index)).or_default())
        };
        cursor.try_lock_owned().map_err(|_| {
            Error::Aborted(format!(
                "results of statement {} of job {job_id} are already being streamed by another call",
                index + 1
            ))
        })
    }

    pub(super) fn forget_job(&self, job_id: JobId) {
        if let Ok(mut map) = self.by_statement.lock() {
            map.retain(|(id, _), _| *id != job_id);
        }
    }
}

type Sender = mpsc::Sender<Result<ResultMessage>>;

impl Controller {
    /// Checks a result request and starts streaming; the receiver yields the messages.
    pub async fn stream_results(
        self: &Arc<Self>,
        request: ResultRequest,
    ) -> Result<mpsc::Receiver<Result<ResultMessage>>> {
        let job = self.get_job(request.job_id).await?;
        if job.kind != JobKind::Sql {
            return Err(Error::FailedPrecondition(format!(
                "job {} is a python job; only sql jobs have results",
                job.id
            )));
        }
        let index = select_statement(&job, request.statement_index)?;
        let statement = &job.statements[index as usize];
        if matches!(job.state, JobState::Failed | JobState::Canceled) {
            return Err(Error::FailedPrecondition(format!(
                "job {} is {}: {}",
                job.id,
                job.state.as_str(),
                job.state_reason
            )));
        }
        let cursor = self.cursors.lock(job.id, index)?;
        let fresh = cursor.next_token == 0 && cursor.last_rows.is_empty() && !cursor.eos;
        if fresh && statement.state == StatementState::Finished && statement.is_query {
            return Err(Error::FailedPrecondition(format!(
                "results of statement {} of job {} were already read to their end",
                index + 1,
                job.id
            )));
        }
        let start = cursor.resume_point(request.resume_from_row)?;
        let limit = request
            .max_duration
            .unwrap_or(self.limits.max_stream_duration)
            .min(self.limits.max_stream_duration);
        let (tx, rx) = mpsc::channel(1);
        let this = Arc::clone(self);
        let job_cancel = self.active_cancel_token(job.id);
        self.tasks.spawn(async move {
            let pump = Pump {
                controller: &this,
                job_id: job.id,
                index,
                tx: &tx,
                deadline: Instant::now() + limit,
                max_rows: request.max_rows,
                job_cancel,
            };
            let outcome = pump.run(cursor, start).await;
            match outcome {
                Ok(Some(end)) => {
                    info!(job_id = %job.id, statement = index, ?end, "result stream ended");
                }
                Ok(None) => {
                    info!(job_id = %job.id, statement = index, "result stream closed by the client");
                }
                Err(error) => {
                    warn!(job_id = %job.id, statement = index, %error, "result stream failed");
                    let _ = tx.send(Err(error)).await;
                }
            }
        });
        Ok(rx)
    }
}

/// Picks the statement to read: the one asked for, or the last query.
fn select_statement(job: &Job, asked: Option<u32>) -> Result<u32> {
    let count = job.statements.len();
    let is_result = |i: usize| {
        let kind = sql_script::classify(&job.statements[i].sql);
        (kind.returns_rows(), is_result_statement(kind, i, count))
    };
    match asked {
        Some(index) => {
            let i = index as usize;
            if i >= count {
                return Err(Error::invalid(
                    "statement_index",
                    format!("{index} is out of range; the job has {count} statements"),
                ));
            }
            if !is_result(i).0 {
                return Err(Error::FailedPrecondition(format!(
                    "statement {index} of job {} returns no rows: {}",
                    job.id,
                    abbreviate(&job.statements[i].sql)
                )));
            }
            Ok(index)
        }
        None => (0..count)
            .rev()
            .find(|&i| is_result(i).1)
            .map(|i| i as u32)
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "job {} has no statement that returns rows",
                    job.id
                ))
            }),
    }
}

fn abbreviate(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 60 {
        format!("{}…", flat.chars().take(60).collect::<String>())
    } else {
        flat
    }
}

/// One running result stream.
struct Pump<'a> {
    controller: &'a Controller,
    job_id: JobId,
    index: u32,
    tx: &'a Sender,
    deadline: Instant,
    max_rows: Option<u64>,
    job_cancel: Option<CancellationToken>,
}

/// How waiting ended.
enum Waited {
    Elapsed,
    Deadline,
    ClientGone,
    Canceled,
    Shutdown,
}

impl Pump<'_> {
    /// Streams until an end; Ok(None) when the client left.
    async fn run(
        &self,
        mut cursor: OwnedMutexGuard<Cursor>,
        resume: ResumePoint,
    ) -> Result<Option<StreamEndReason>> {
        let mut rows_sent: u64 = 0;
        let (session, operation) = match self.wait_for_operation().await? {
            Ok(handles) => handles,
            Err(end) => return self.end(end, None, rows_sent, resume.row).await,
        };
        let mut schema_sent = false;
        if let Some(columns) = &cursor.columns {
            if let Err(waited) = self
                .send(ResultMessage::Schema(rows::schema_to_proto(columns)))
                .await
            {
                return self.finish_waiting(waited, rows_sent, resume.row).await;
            }
            schema_sent = true;
        }
        // Rows of the kept page first, when resuming inside it.
        if let Some(skip) = resume.kept_rows_skip {
            let batch = self.batch(&cursor, &cursor.last_rows, skip, rows_sent)?;
            let taken = batch.len() as u64;
            if let Err(waited) = self
                .send(ResultMessage::Rows {
                    rows: batch,
                    first_row_offset: resume.row,
                })
                .await
            {
                return self.finish_waiting(waited, rows_sent, resume.row).await;
            }
            rows_sent += taken;
            if self.max_rows.is_some_and(|max| rows_sent >= max) {
                let next = resume.row + taken;
                return self
                    .end(StreamEndReason::RowLimitReached, None, rows_sent, next)
                    .await;
            }
        }
        if cursor.eos {
            return self
                .end(
                    StreamEndReason::EndOfResults,
                    None,
                    rows_sent,
                    cursor.rows_before_next,
                )
                .await;
        }
        let mut backoff = FIRST_BACKOFF;
        let mut unreachable = 0;
        loop {
            let offset = cursor.rows_before_next;
            // One page in flight: fetch only once the previous batch left the channel.
            let permit = tokio::select! {
                permit = self.tx.reserve() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(None),
                },
                waited = self.wait(Duration::MAX) => match waited {
                    Waited::Elapsed => continue,
                    other => return self.finish_waiting(other, rows_sent, offset).await,
                },
            };
            let page = match self
                .controller
                .gateway
                .fetch_results(&session, &operation, cursor.next_token)
                .await
            {
                Ok(page) => page,
                Err(GatewayError::Unreachable(message)) if unreachable < UNREACHABLE_RETRIES => {
                    unreachable += 1;
                    drop(permit);
                    warn!(job_id = %self.job_id, statement = self.index, %message, attempt = unreachable, "sql gateway unreachable while fetching results; retrying");
                    match self.wait(backoff).await {
                        Waited::Elapsed => {}
                        other => return self.finish_waiting(other, rows_sent, offset).await,
                    }
                    backoff = (backoff * 2).min(self.controller.limits.max_fetch_backoff);
                    continue;
                }
                Err(error) => {
                    drop(permit);
                    return self.fetch_failed(error, rows_sent, offset).await;
                }
            };
            unreachable = 0;
            if cursor.columns.is_none() && !page.columns.is_empty() {
                cursor.columns = Some(page.columns.clone());
            }
            match (&cursor.columns, schema_sent) {
                (Some(columns), false) => {
                    permit.send(Ok(ResultMessage::Schema(rows::schema_to_proto(columns))));
                    schema_sent = true;
                }
                _ => drop(permit),
            }
            match page.result_type {
                ResultType::NotReady => {}
                ResultType::Eos => {
                    cursor.record_page(offset, Vec::new(), None);
                    if !schema_sent {
                        let columns = cursor.columns.clone().unwrap_or_default();
                        if let Err(waited) = self
                            .send(ResultMessage::Schema(rows::schema_to_proto(&columns)))
                            .await
                        {
                            return self.finish_waiting(waited, rows_sent, offset).await;
                        }
                    }
                    return self.reached_eos(rows_sent, offset).await;
                }
                ResultType::Payload => {
                    let count = page.data.len();
                    let batch = self.batch(&cursor, &page.data, 0, rows_sent)?;
                    let taken = batch.len() as u64;
                    cursor.record_page(offset, page.data, page.next_token);
                    if taken > 0
                        && let Err(waited) = self
                            .send(ResultMessage::Rows {
                                rows: batch,
                                first_row_offset: offset,
                            })
                            .await
                    {
                        return self.finish_waiting(waited, rows_sent, offset).await;
                    }
                    rows_sent += taken;
                    if self.max_rows.is_some_and(|max| rows_sent >= max) {
                        return self
                            .end(
                                StreamEndReason::RowLimitReached,
                                None,
                                rows_sent,
                                offset + taken,
                            )
                            .await;
                    }
                    if cursor.eos {
                        return self.reached_eos(rows_sent, cursor.rows_before_next).await;
                    }
                    if count > 0 {
                        // Right after rows, an empty page is asked again at once; a small page
                        // is followed by a short pause so that the next one can be larger.
                        backoff = Duration::ZERO;
                        if count < SMALL_PAGE_ROWS {
                            match self.wait(SMALL_PAGE_PAUSE).await {
                                Waited::Elapsed => {}
                                other => {
                                    let next = cursor.rows_before_next;
                                    return self.finish_waiting(other, rows_sent, next).await;
                                }
                            }
                        }
                        continue;
                    }
                }
            }
            // Nothing new yet: back off, doubling while nothing comes.
            debug!(job_id = %self.job_id, statement = self.index, token = cursor.next_token, "no rows yet");
            if !backoff.is_zero() {
                match self.wait(backoff).await {
                    Waited::Elapsed => {}
                    other => {
                        let next = cursor.rows_before_next;
                        return self.finish_waiting(other, rows_sent, next).await;
                    }
                }
            }
            backoff = (backoff * 2)
                .max(FIRST_BACKOFF)
                .min(self.controller.limits.max_fetch_backoff);
        }
    }

    /// Ends the stream after a failed fetch. Only a failure of the statement itself marks it
    /// FAILED; a token the gateway no longer serves is OUT_OF_RANGE; a cancel wins over both.
    async fn fetch_failed(
        &self,
        error: GatewayError,
        rows_sent: u64,
        next: u64,
    ) -> Result<Option<StreamEndReason>> {
        if self.job_cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
            return self
                .finish_waiting(self.cancel_or_shutdown(), rows_sent, next)
                .await;
        }
        match error {
            GatewayError::StatementFailed { .. } => {
                let message = error.to_string();
                self.mark_statement(StatementState::Failed, Some(message.clone()))
                    .await;
                self.end(StreamEndReason::Failed, Some(message), rows_sent, next)
                    .await
            }
            GatewayError::InvalidToken { message, .. } => Err(Error::OutOfRange(format!(
                "resume_from_row: the sql gateway no longer serves these results ({message})"
            ))),
            other => Err(other.into()),
        }
    }

    /// Converts the rows of a page from `skip`, at most what `max_rows` still allows.
    fn batch(
        &self,
        cursor: &Cursor,
        data: &[RowData],
        skip: usize,
        rows_sent: u64,
    ) -> Result<Vec<proto::Row>> {
        let columns = cursor.columns.as_deref().unwrap_or_default();
        let available = data.len().saturating_sub(skip);
        let allowed = match self.max_rows {
            Some(max) => {
                available.min(usize::try_from(max.saturating_sub(rows_sent)).unwrap_or(usize::MAX))
            }
            None => available,
        };
        let mut batch = Vec::with_capacity(allowed);
        for row in data.iter().skip(skip).take(allowed) {
            let converted = rows::convert_row(row, columns).map_err(|e| {
                Error::Internal(format!(
                    "cannot convert a result row of statement {}: {e}",
                    self.index + 1
                ))
            })?;
            batch.push(converted);
        }
        Ok(batch)
    }

    async fn reached_eos(&self, rows_sent: u64, next: u64) -> Result<Option<StreamEndReason>> {
        self.mark_statement(StatementState::Finished, None).await;
        self.end(StreamEndReason::EndOfResults, None, rows_sent, next)
            .await
    }

    async fn mark_statement(&self, state: StatementState, error: Option<String>) {
        let update = StatementUpdate {
            state: Some(state),
            error,
            ..StatementUpdate::default()
        };
        if let Err(store_error) = self
            .controller
            .store
            .update_statement(self.job_id, self.index, update)
            .await
        {
            warn!(job_id = %self.job_id, statement = self.index, %store_error, "cannot record the statement's state");
        }
        self.controller.publish(self.job_id);
        self.controller.wake(self.job_id);
    }

    async fn finish_waiting(
        &self,
        waited: Waited,
        rows_sent: u64,
        next: u64,
    ) -> Result<Option<StreamEndReason>> {
        match waited {
            Waited::Elapsed | Waited::ClientGone => Ok(None),
            Waited::Deadline => {
                self.end(StreamEndReason::TimeLimitReached, None, rows_sent, next)
                    .await
            }
            Waited::Canceled => {
                // The job's token also fires when the job fails: say which it was.
                match self.controller.get_job(self.job_id).await {
                    Ok(job) if job.state == JobState::Failed => {
                        let reason = Some(job.state_reason);
                        self.end(StreamEndReason::Failed, reason, rows_sent, next)
                            .await
                    }
                    _ => {
                        self.end(StreamEndReason::Canceled, None, rows_sent, next)
                            .await
                    }
                }
            }
            Waited::Shutdown => Err(Error::ShuttingDown),
        }
    }

    async fn end(
        &self,
        reason: StreamEndReason,
        error: Option<String>,
        rows_sent: u64,
        next_row_offset: u64,
    ) -> Result<Option<StreamEndReason>> {
        let end = ResultMessage::End {
            reason,
            error,
            rows_sent,
            next_row_offset,
        };
        // The end is delivered even after the deadline, but a client that stopped reading
        // does not hold the stream open for long.
        let sent = super::send_within(self.tx, Ok(end), END_SEND_TIMEOUT).await;
        Ok(sent.then_some(reason))
    }

    /// Sends a message unless the deadline passes, the client leaves or the broker stops first.
    async fn send(&self, message: ResultMessage) -> Result<(), Waited> {
        tokio::select! {
            sent = self.tx.send(Ok(message)) => sent.map_err(|_| Waited::ClientGone),
            _ = tokio::time::sleep_until(self.deadline) => Err(Waited::Deadline),
            _ = self.controller.shutdown.cancelled() => Err(Waited::Shutdown),
        }
    }

    /// Sleeps up to `pause`, waking early for the deadline, the client leaving, a cancel or shutdown.
    async fn wait(&self, pause: Duration) -> Waited {
        let job_cancel = async {
            match &self.job_cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let sleep = async {
            match Instant::now().checked_add(pause) {
                Some(until) if until < self.deadline => {
                    tokio::time::sleep_until(until).await;
                    Waited::Elapsed
                }
                _ => {
                    tokio::time::sleep_until(self.deadline).await;
                    Waited::Deadline
                }
            }
        };
        tokio::select! {
            biased;
            _ = self.controller.shutdown.cancelled() => Waited::Shutdown,
            _ = self.tx.closed() => Waited::ClientGone,
            _ = job_cancel => self.cancel_or_shutdown(),
            waited = sleep => waited,
        }
    }

    fn cancel_or_shutdown(&self) -> Waited {
        if self.controller.shutdown.is_cancelled() {
            Waited::Shutdown
        } else {
            Waited::Canceled
        }
    }

    /// Waits until the statement was submitted; Err(end) when the job ended first.
    async fn wait_for_operation(
        &self,
    ) -> Result<Result<(SessionHandle, OperationHandle), StreamEndReason>> {
        let mut events = self.controller.events.subscribe();
        loop {
            let job = self.controller.get_job(self.job_id).await?;
            let statement = &job.statements[self.index as usize];
            if let (Some(session), Some(operation)) =
                (&job.gateway_session, &statement.operation_handle)
                && statement.state != StatementState::Pending
            {
                if statement.state == StatementState::Failed {
                    return Err(Error::FailedPrecondition(format!(
                        "statement {} failed: {}",
                        self.index + 1,
                        statement.error.clone().unwrap_or_default()
                    )));
                }
                return Ok(Ok((
                    SessionHandle(session.clone()),
                    OperationHandle(operation.clone()),
                )));
            }
            match job.state {
                JobState::Canceled => return Ok(Err(StreamEndReason::Canceled)),
                JobState::Failed | JobState::Finished => {
                    return Err(Error::FailedPrecondition(format!(
                        "job {} is {} and statement {} never ran: {}",
                        job.id,
                        job.state.as_str(),
                        self.index + 1,
                        job.state_reason
                    )));
                }
                _ => {}
            }
            let event = async {
                loop {
                    match events.recv().await {
                        Ok(id) if id == self.job_id => return,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            tokio::select! {
                _ = event => {}
                waited = self.wait(self.controller.limits.poll_interval) => match waited {
                    Waited::Elapsed => {}
                    Waited::Deadline => return Ok(Err(StreamEndReason::TimeLimitReached)),
                    Waited::ClientGone => return Ok(Err(StreamEndReason::Canceled)),
                    Waited::Canceled => return Ok(Err(StreamEndReason::Canceled)),
                    Waited::Shutdown => return Err(Error::ShuttingDown),
                },
            }
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
