//! StreamOperationResults: reads a query statement's result pages and turns them into typed
//! row batches, one page in flight at a time.
//!
//! A stream reads from the cursor the job's driver created with the query's first page (its
//! verdict); a stream opened earlier waits for it. Resuming: the SQL Gateway accepts only the
//! token it served last and the next one, so the broker keeps the rows of the last page with
//! rows it fetched for each statement (one page, bounded), and a client can resume from any row
//! of that page or from the end of what was read. Older offsets, and any offset of a query that
//! runs again after a broker restart, are OUT_OF_RANGE.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::super::driver::Command;
use super::super::{Controller, not_found};
use super::cursor::{Cursor, ResumePoint};
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobKind, JobState, StatementState};
use crate::proto;
use crate::rows;
use crate::sql_gateway::{GatewayError, ResultType, RowData};

/// Pages with fewer rows than this are followed by a short pause, so that the gateway can
/// gather a larger next page instead of being polled back to back.
const SMALL_PAGE_ROWS: usize = 100;
const SMALL_PAGE_PAUSE: Duration = Duration::from_millis(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const UNREACHABLE_RETRIES: u32 = 3;
const END_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stream waits for the driver to record the end of the results.
const RECORD_TIMEOUT: Duration = Duration::from_secs(10);

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

type Sender = mpsc::Sender<Result<ResultMessage>>;

impl Controller {
    /// Checks a result request and starts streaming; the receiver yields the messages.
    pub async fn stream_results(
        self: &Arc<Self>,
        request: ResultRequest,
    ) -> Result<mpsc::Receiver<Result<ResultMessage>>> {
        let live = self.live.get(request.job_id);
        let job = match &live {
            Some(live) => live.job.borrow().clone(),
            None => self
                .store
                .get_job(request.job_id)
                .await
                .map_err(not_found)?,
        };
        if job.kind != JobKind::Sql {
            return Err(Error::FailedPrecondition(format!(
                "job {} is a python job; only sql jobs have results",
                job.id
            )));
        }
        let index = select_statement(&job, request.statement_index)?;
        let statement = &job.statements[index as usize];
        if matches!(
            job.state,
            JobState::Failed | JobState::Canceled | JobState::Canceling
        ) {
            return Err(Error::FailedPrecondition(format!(
                "job {} is {}: {}",
                job.id,
                job.state.as_str(),
                job.state_reason
            )));
        }
        let already_read = || {
            Error::FailedPrecondition(format!(
                "results of statement {} of job {} were already read to their end",
                index + 1,
                job.id
            ))
        };
        let Some(live) = live else {
            if job.state == JobState::Finished {
                return Err(already_read());
            }
            return Err(Error::Unavailable(format!(
                "job {} is {} but not driven by this broker right now; retry shortly",
                job.id,
                job.state.as_str()
            )));
        };
        let cursor = self.cursors.lock(job.id, index)?;
        // Rows of an earlier run of the query (before a broker restart) cannot be served: a
        // resume before this run served anything comes from an earlier one.
        let earlier_run = || {
            Error::OutOfRange(format!(
                "resume_from_row: {} cannot be served; statement {} runs again after a broker restart (attempt {}), so its results start again at row 0",
                request.resume_from_row,
                index + 1,
                statement.attempt + 1
            ))
        };
        let start = match &cursor {
            Some(cursor)
                if request.resume_from_row > 0 && !cursor.served && statement.attempt > 0 =>
            {
                return Err(earlier_run());
            }
            Some(cursor) => Some(cursor.resume_point(request.resume_from_row)?),
            None if statement.state == StatementState::Finished && statement.is_query => {
                return Err(already_read());
            }
            None if request.resume_from_row > 0 && statement.attempt > 0 => {
                return Err(earlier_run());
            }
            None if request.resume_from_row > 0 => {
                return Err(Error::OutOfRange(format!(
                    "resume_from_row: {} cannot be served; this broker holds no rows of statement {} yet (a query interrupted by a broker restart runs again, and its results start again at row 0)",
                    request.resume_from_row,
                    index + 1
                )));
            }
            None => None,
        };
        let limit = request
            .max_duration
            .unwrap_or(self.limits.max_stream_duration)
            .min(self.limits.max_stream_duration);
        let (tx, rx) = mpsc::channel(1);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let pump = Pump {
                controller: &this,
                job_id: job.id,
                index,
                tx: &tx,
                deadline: Instant::now() + limit,
                max_rows: request.max_rows,
                job: live.job,
                driver: live.commands,
            };
            let outcome = match (cursor, start) {
                (Some(cursor), Some(start)) => pump.run(cursor, start).await,
                _ => match pump.wait_for_verdict().await {
                    Ok(Ok(cursor)) => {
                        let start = ResumePoint {
                            row: 0,
                            kept_rows_skip: (!cursor.last_rows.is_empty()).then_some(0),
                        };
                        pump.run(cursor, start).await
                    }
                    Ok(Err((end, error))) => pump.end(end, error, 0, 0).await,
                    Err(error) => Err(error),
                },
            };
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

/// Picks the statement to read: the one asked for, or the last one whose results are part of
/// the job's outcome.
fn select_statement(job: &Job, asked: Option<u32>) -> Result<u32> {
    let count = job.statements.len();
    match asked {
        Some(index) => {
            let i = index as usize;
            if i >= count {
                return Err(Error::invalid(
                    "statement_index",
                    format!("{index} is out of range; the job has {count} statements"),
                ));
            }
            if !job.statements[i].kind.returns_rows() {
                return Err(Error::FailedPrecondition(format!(
                    "statement {index} of job {} returns no rows: {}",
                    job.id,
                    abbreviate(&job.statements[i].sql)
                )));
            }
            if !job.statements[i].is_query {
                return Err(Error::FailedPrecondition(format!(
                    "the rows of statement {index} of job {} are not kept; queries and a last SHOW, DESCRIBE or EXPLAIN can be streamed: {}",
                    job.id,
                    abbreviate(&job.statements[i].sql)
                )));
            }
            Ok(index)
        }
        None => job
            .statements
            .iter()
            .rev()
            .find(|statement| statement.is_query)
            .map(|statement| statement.index)
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
    /// The job as its driver publishes it.
    job: watch::Receiver<Job>,
    /// The job's driver, told when the results were read to their end.
    driver: mpsc::Sender<Command>,
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
        cursor.served = true;
        let session = cursor.session.clone();
        let operation = cursor.operation.clone();
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
            // Also when the first page was the last: the driver learns the results were read.
            return self.reached_eos(rows_sent, cursor.rows_before_next).await;
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
        if stopped(&self.job.borrow()) {
            return self
                .finish_waiting(self.cancel_or_shutdown(), rows_sent, next)
                .await;
        }
        match error {
            GatewayError::StatementFailed { .. } => {
                let message = error.to_string();
                self.tell_driver(Some(message.clone())).await;
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
        self.tell_driver(None).await;
        self.end(StreamEndReason::EndOfResults, None, rows_sent, next)
            .await
    }

    /// Tells the job's driver that the results were read to their end, or failed, and waits
    /// (bounded) until that is recorded: a client that saw the end can rely on it after a
    /// restart of the broker.
    async fn tell_driver(&self, failure: Option<String>) {
        let (recorded, answer) = oneshot::channel();
        let command = Command::ResultsEnded {
            index: self.index,
            failure,
            recorded,
        };
        let told = async {
            self.driver.send(command).await.ok()?;
            answer.await.ok()
        };
        match tokio::time::timeout(RECORD_TIMEOUT, told).await {
            Ok(Some(())) => {}
            Ok(None) => {
                debug!(job_id = %self.job_id, statement = self.index, "the job's driver ended before the results did");
            }
            Err(_) => {
                warn!(job_id = %self.job_id, statement = self.index, "the end of the results was not recorded in time");
            }
        }
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
                let (reason, error) = stop_reason(&self.job.borrow());
                self.end(reason, error, rows_sent, next).await
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
        let sent = super::super::send_within(self.tx, Ok(end), END_SEND_TIMEOUT).await;
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
        let job_stopped = job_stopped(self.job.clone());
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
            _ = job_stopped => self.cancel_or_shutdown(),
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

    /// Waits until the job's driver gave the statement its verdict and takes its cursor;
    /// Err((end, error)) when the statement failed or the job stopped first.
    async fn wait_for_verdict(
        &self,
    ) -> Result<Result<OwnedMutexGuard<Cursor>, (StreamEndReason, Option<String>)>> {
        let mut job = self.job.clone();
        loop {
            {
                // Marked seen before the cursor is looked for, so that a cursor the driver
                // adds later always comes with a change to wait for.
                let current = job.borrow_and_update();
                if let Some(cursor) = self.controller.cursors.lock(self.job_id, self.index)? {
                    return Ok(Ok(cursor));
                }
                if let Some(statement) = current.statements.get(self.index as usize)
                    && statement.state == StatementState::Failed
                {
                    let error = format!(
                        "statement {} failed: {}",
                        self.index + 1,
                        statement.error.clone().unwrap_or_default()
                    );
                    return Ok(Err((StreamEndReason::Failed, Some(error))));
                }
                if stopped(&current) {
                    return Ok(Err(stop_reason(&current)));
                }
                if current.state == JobState::Finished {
                    return Err(Error::FailedPrecondition(format!(
                        "job {} is FINISHED and statement {} produced no results to read",
                        self.job_id,
                        self.index + 1
                    )));
                }
            }
            tokio::select! {
                changed = job.changed() => if changed.is_err() {
                    // The driver ended: look once more, then give up.
                    if let Some(cursor) = self.controller.cursors.lock(self.job_id, self.index)? {
                        return Ok(Ok(cursor));
                    }
                    let current = self.controller.get_job(self.job_id).await?;
                    return Ok(Err(stop_reason(&current)));
                },
                _ = tokio::time::sleep_until(self.deadline) => {
                    return Ok(Err((StreamEndReason::TimeLimitReached, None)));
                }
                _ = self.tx.closed() => return Ok(Err((StreamEndReason::Canceled, None))),
                _ = self.controller.shutdown.cancelled() => return Err(Error::ShuttingDown),
            }
        }
    }
}

/// Returns true when a job no longer runs toward FINISHED: CANCELING, CANCELED or FAILED.
fn stopped(job: &Job) -> bool {
    matches!(
        job.state,
        JobState::Canceling | JobState::Canceled | JobState::Failed
    )
}

/// How a stream ends when its job stopped: FAILED with the job's reason, or CANCELED.
fn stop_reason(job: &Job) -> (StreamEndReason, Option<String>) {
    if job.state == JobState::Failed {
        (StreamEndReason::Failed, Some(job.state_reason.clone()))
    } else {
        (StreamEndReason::Canceled, None)
    }
}

/// Resolves once the job stopped (see [`stopped`]); never when its driver ends otherwise.
async fn job_stopped(mut job: watch::Receiver<Job>) {
    loop {
        if stopped(&job.borrow_and_update()) {
            return;
        }
        if job.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
