//! Drains a query statement's result pages from the SQL Gateway into its result log as soon
//! as the query produces them, whether or not anyone reads.
//!
//! The gateway serves each page once, by token, and lets the page it served last be fetched
//! again; once the page after it is asked for, a page is gone. So a page that carries rows is
//! appended, with the token of the next page, before the next page is asked for (an append of
//! a token alone may overlap the next fetch). After a crash the recorded token is the one last
//! served, or one empty page before it, and a new driver goes on from there while the gateway
//! still holds the operation.
//!
//! Pacing follows the gateway: NOT_READY and empty pages are normal; after rows the next page
//! is asked for at once (a small page is followed by a short pause so that the gateway can
//! gather a larger one), and while nothing comes the pause doubles up to
//! `--max-fetch-backoff`.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, debug, info, warn};

use super::super::Controller;
use super::super::driver::Command;
use crate::error::Error;
use crate::metrics::{self, StatementFailure};
use flinkbroker_flink::rows::EncodedRows;
use flinkbroker_flink::sql_gateway::{
    GatewayError, OperationHandle, RawPage, ResultType, SessionHandle,
};
use flinkbroker_model::job::{JobId, LogEnd, LogSummary, ResultLimits, now_millis};
use flinkbroker_proto as proto;
use flinkbroker_store::{LogAppend, LogBatch, StoreError};

/// Rows of a page are stored in batches of about this many encoded bytes (a batch ends with
/// the row that reaches it).
pub(crate) const BATCH_BYTES: usize = 1 << 20;
/// Pages with fewer rows than this are followed by a short pause.
const SMALL_PAGE_ROWS: usize = 100;
const SMALL_PAGE_PAUSE: Duration = Duration::from_millis(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between attempts to reach an unreachable SQL Gateway.
const MAX_UNREACHABLE_PAUSE: Duration = Duration::from_secs(10);
/// Attempts at one append while the database fails.
const STORE_ATTEMPTS: u32 = 5;

/// How a drain ended; sent to the job's driver.
#[derive(Debug)]
pub(crate) enum DrainOutcome {
    /// Every row the statement will give was logged: its results ended, or a result limit
    /// was reached (and the query's Flink job was asked to stop).
    Logged { end: LogEnd, rows: u64 },
    /// The statement failed, or its results exceed the log's cap; the message says which,
    /// the cause class counts it.
    Failed(String, StatementFailure),
    /// The gateway no longer serves the results from the logged position: the query must
    /// run again.
    Lost(String),
    /// The database could not record the rows.
    StoreLost(Error),
}

/// What a drain needs to know of its statement.
pub(crate) struct Drain {
    pub controller: Arc<Controller>,
    pub job_id: JobId,
    pub index: u32,
    pub attempt: u32,
    pub session: SessionHandle,
    pub operation: OperationHandle,
    /// The query's Flink job, stopped when a result limit is reached.
    pub flink_job_id: Option<String>,
    /// The log as recorded when the drain starts.
    pub head: LogSummary,
    /// Batch jobs keep every row (up to the cap); streaming jobs a sliding window.
    pub bounded: bool,
    pub limits: ResultLimits,
    /// The job's driver, told the outcome.
    pub driver: mpsc::Sender<Box<Command>>,
}

/// An append: in flight on a task of its own (a page without rows, recorded while the next
/// page is fetched), or already done (rows, which are in the log before the next fetch
/// anyway, so they are appended on the drain's own task).
enum Write {
    InFlight(JoinHandle<Result<LogSummary, WriteError>>),
    Done(Result<LogSummary, WriteError>),
}

#[derive(Debug)]
enum WriteError {
    Store(StoreError),
    Convert(String),
    /// The bounded log would exceed its cap.
    Cap,
}

impl Drain {
    /// Starts the drain; `first` is a page already fetched at the log's next token. The task
    /// stops when the handle is dropped (the driver's end).
    pub(crate) fn spawn(self, first: Option<RawPage>) -> AbortOnDropHandle<()> {
        AbortOnDropHandle::new(tokio::spawn(async move {
            let (job_id, index) = (self.job_id, self.index);
            let driver = self.driver.clone();
            let outcome = self.run(first).await;
            match &outcome {
                DrainOutcome::Logged { end, rows } => {
                    info!(%job_id, statement = index, rows, end = end.as_str(), "results logged to their end");
                }
                other => {
                    warn!(%job_id, statement = index, outcome = ?other, "result drain stopped")
                }
            }
            // The driver may have ended meanwhile; it then resumes from the log.
            let _ = driver.send(Box::new(Command::Drained { index, outcome })).await;
        }
        // Its fetches belong to the job's trace.
        .in_current_span()))
    }

    async fn run(mut self, first: Option<RawPage>) -> DrainOutcome {
        let Some(mut token) = self.head.next_token else {
            return DrainOutcome::Logged {
                end: self.head.end.unwrap_or(LogEnd::EndOfResults),
                rows: self.head.rows_logged,
            };
        };
        // Counted from when the log was opened, so that a resumed drain keeps the time the
        // query already had (a log opened before that was recorded counts from now).
        let deadline = self.limits.max_duration_ms.map(|ms| {
            let elapsed = self
                .head
                .opened_at
                .map_or(0, |opened| now_millis().saturating_sub(opened).max(0));
            let left = ms.saturating_sub(u64::try_from(elapsed).unwrap_or(u64::MAX));
            Instant::now() + Duration::from_millis(left)
        });
        let mut logged = self.head.rows_logged;
        let mut next_page = first;
        let mut writing: Option<Write> = None;
        // True while the append in flight carries rows.
        let mut writing_rows = false;
        let mut pause = Duration::ZERO;
        let mut after_rows = false;
        loop {
            // Rows are in the log before the next page is asked for: the gateway forgets a
            // page once the one after it was fetched, so a driver dying with rows in flight
            // and the next fetch sent would leave a gap only a re-run could fill. (An append
            // of a token alone may overlap the fetch: a driver taking the log up finds the
            // gateway one empty page past the log and goes on from there.)
            if next_page.is_none()
                && writing_rows
                && let Some(write) = writing.take()
            {
                writing_rows = false;
                if let Err(outcome) = self.finish(write).await {
                    return outcome;
                }
            }
            let page = match next_page.take() {
                Some(page) => Some(page),
                None => match self.fetch(token, deadline).await {
                    Ok(page) => page,
                    Err(outcome) => {
                        if let Some(write) = writing.take() {
                            let _ = self.finish(write).await;
                        }
                        return outcome;
                    }
                },
            };
            // The page was fetched while the previous one was written.
            if let Some(write) = writing.take()
                && let Err(outcome) = self.finish(write).await
            {
                return outcome;
            }
            let Some(page) = page else {
                // The time limit passed.
                return self.end_at_limit(LogEnd::TimeLimit, logged).await;
            };
            match page.result_type {
                ResultType::NotReady => {
                    pause = (pause * 2)
                        .max(FIRST_BACKOFF)
                        .min(self.controller.limits.max_fetch_backoff);
                }
                ResultType::Eos => {
                    let write = self
                        .write(
                            Ok(EncodedRows::default()),
                            0,
                            logged,
                            None,
                            Some(LogEnd::EndOfResults),
                        )
                        .await;
                    if let Err(outcome) = self.finish(write).await {
                        return outcome;
                    }
                    return DrainOutcome::Logged {
                        end: LogEnd::EndOfResults,
                        rows: logged,
                    };
                }
                ResultType::Payload => {
                    let count = page.rows;
                    let take = match self.limits.max_rows {
                        Some(max) => count
                            .min(usize::try_from(max.saturating_sub(logged)).unwrap_or(usize::MAX)),
                        None => count,
                    };
                    let limit_reached = self
                        .limits
                        .max_rows
                        .is_some_and(|max| logged + take as u64 >= max);
                    let end = if limit_reached {
                        Some(LogEnd::RowLimit)
                    } else if page.next_token.is_none() {
                        Some(LogEnd::EndOfResults)
                    } else {
                        None
                    };
                    let next = if end.is_some() { None } else { page.next_token };
                    if count == 0 && end.is_none() && after_rows {
                        // The empty page that often follows rows is not recorded: a driver
                        // taking the log up later finds the gateway one page past the log with
                        // no rows in flight, and goes on from there.
                        after_rows = false;
                        if let Some(next) = next {
                            token = next;
                        }
                        continue;
                    }
                    let first_row = logged;
                    logged += take as u64;
                    writing_rows = take > 0;
                    let rows = if count > 0 {
                        page.data
                    } else {
                        Ok(EncodedRows::default())
                    };
                    let write = self.write(rows, take, first_row, next, end).await;
                    if let Some(end) = end {
                        if let Err(outcome) = self.finish(write).await {
                            return outcome;
                        }
                        if end == LogEnd::RowLimit {
                            self.stop_query(end, logged).await;
                        }
                        return DrainOutcome::Logged { end, rows: logged };
                    }
                    writing = Some(write);
                    if let Some(next) = next {
                        token = next;
                    }
                    if count > 0 {
                        pause = if count < SMALL_PAGE_ROWS {
                            SMALL_PAGE_PAUSE
                        } else {
                            Duration::ZERO
                        };
                        after_rows = true;
                    } else if after_rows {
                        // An empty page often follows a page of rows: ask again at once.
                        after_rows = false;
                        pause = Duration::ZERO;
                    } else {
                        pause = (pause * 2)
                            .max(FIRST_BACKOFF)
                            .min(self.controller.limits.max_fetch_backoff);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if let Some(write) = writing.take()
                    && let Err(outcome) = self.finish(write).await
                {
                    return outcome;
                }
                return self.end_at_limit(LogEnd::TimeLimit, logged).await;
            }
            if !pause.is_zero() {
                debug!(job_id = %self.job_id, statement = self.index, token, pause_ms = pause.as_millis() as u64, "no rows yet");
                match deadline {
                    Some(deadline) => {
                        tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await
                    }
                    None => tokio::time::sleep(pause).await,
                }
            }
        }
    }

    /// Fetches the page at `token`, waiting for an unreachable gateway; None when the time
    /// limit passed first.
    async fn fetch(
        &self,
        token: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<RawPage>, DrainOutcome> {
        let mut pause = Duration::from_millis(100);
        loop {
            let fetched = self
                .controller
                .gateway
                .fetch_page(&self.session, &self.operation, token);
            let fetched = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, fetched).await {
                    Ok(fetched) => fetched,
                    Err(_) => return Ok(None),
                },
                None => fetched.await,
            };
            match fetched {
                Ok(page) => return Ok(Some(page)),
                Err(GatewayError::Unreachable(message)) => {
                    warn!(job_id = %self.job_id, statement = self.index, %message, retry_ms = pause.as_millis() as u64, "sql gateway unreachable while logging results; waiting for it");
                    match deadline {
                        Some(deadline) if Instant::now() + pause >= deadline => {
                            tokio::time::sleep_until(deadline).await;
                            return Ok(None);
                        }
                        _ => tokio::time::sleep(pause).await,
                    }
                    pause = (pause * 2).min(MAX_UNREACHABLE_PAUSE);
                }
                Err(
                    error @ (GatewayError::InvalidToken { .. }
                    | GatewayError::UnknownOperation { .. }
                    | GatewayError::UnknownSession { .. }),
                ) => {
                    return Err(DrainOutcome::Lost(format!(
                        "the sql gateway no longer serves its results from token {token}: {error}"
                    )));
                }
                Err(error) => {
                    return Err(DrainOutcome::Failed(
                        error.to_string(),
                        StatementFailure::of_gateway(&error),
                    ));
                }
            }
        }
    }

    /// Appends the first `take` rows of a page (already in the log's encoding): at once when
    /// there are rows, otherwise on another task, so that the next page is fetched meanwhile.
    async fn write(
        &self,
        rows: Result<EncodedRows, String>,
        take: usize,
        first_row: u64,
        next_token: Option<u64>,
        end: Option<LogEnd>,
    ) -> Write {
        let store = Arc::clone(&self.controller.store);
        let (job_id, index, attempt) = (self.job_id, self.index, self.attempt);
        let cap = self.bounded.then(|| {
            (
                self.controller.limits.result_log_max_bytes,
                self.head.bytes_logged,
            )
        });
        let window = (!self.bounded).then_some(self.controller.limits.result_log_window_bytes);
        let with_rows = take > 0;
        let append = async move {
            let mut rows = rows.map_err(WriteError::Convert)?;
            rows.truncate(take);
            let batches = batches(rows, first_row);
            if let Some((max, logged)) = cap {
                let adding: u64 = batches.iter().map(|b| b.data.len() as u64).sum();
                if logged + adding > max {
                    return Err(WriteError::Cap);
                }
            }
            let append = LogAppend {
                attempt,
                batches,
                next_token,
                end,
                window_bytes: window,
            };
            retrying_store(job_id, index, "an append to the result log", || {
                store.append_log(job_id, index, append.clone())
            })
            .await
            .map_err(WriteError::Store)
        };
        if with_rows {
            Write::Done(append.await)
        } else {
            Write::InFlight(tokio::spawn(append))
        }
    }

    /// Waits for an append and publishes the log's new head.
    async fn finish(&mut self, write: Write) -> Result<(), DrainOutcome> {
        let written = match write {
            Write::Done(written) => written,
            Write::InFlight(task) => task.await.map_err(|e| {
                DrainOutcome::StoreLost(Error::Internal(format!("result log append task: {e}")))
            })?,
        };
        match written {
            Ok(head) => {
                metrics::result_logged(
                    head.rows_logged.saturating_sub(self.head.rows_logged),
                    head.bytes_logged.saturating_sub(self.head.bytes_logged),
                );
                self.controller
                    .tails
                    .publish(self.job_id, self.index, head.clone());
                self.head = head;
                Ok(())
            }
            Err(WriteError::Store(error)) => Err(DrainOutcome::StoreLost(Error::Store(error))),
            Err(WriteError::Convert(message)) => Err(DrainOutcome::Failed(
                format!("cannot log a result row: {message}"),
                StatementFailure::ResultConversion,
            )),
            Err(WriteError::Cap) => Err(DrainOutcome::Failed(
                format!(
                    "its results exceed the result log's cap of {} per statement (--result-log-max-bytes); {} rows ({} bytes) were logged",
                    human_bytes(self.controller.limits.result_log_max_bytes),
                    self.head.rows_logged,
                    self.head.bytes_logged
                ),
                StatementFailure::ResultLogCap,
            )),
        }
    }

    /// Ends the log at a result limit and stops the query.
    async fn end_at_limit(&mut self, end: LogEnd, logged: u64) -> DrainOutcome {
        let write = self
            .write(Ok(EncodedRows::default()), 0, logged, None, Some(end))
            .await;
        if let Err(outcome) = self.finish(write).await {
            return outcome;
        }
        self.stop_query(end, logged).await;
        DrainOutcome::Logged { end, rows: logged }
    }

    /// Stops a query whose result limit was reached: its Flink job (cancelled through the
    /// JobManager) and its operation.
    async fn stop_query(&self, end: LogEnd, rows: u64) {
        info!(job_id = %self.job_id, statement = self.index, rows, end = end.as_str(), "result limit reached; stopping the query");
        if let Some(flink_job_id) = &self.flink_job_id
            && let Err(error) = self
                .controller
                .request_cancel(Some(&self.session), flink_job_id)
                .await
        {
            warn!(job_id = %self.job_id, statement = self.index, %flink_job_id, %error, "cannot stop the query's flink job");
        }
        if let Err(error) = self
            .controller
            .gateway
            .close_operation(&self.session, &self.operation)
            .await
        {
            debug!(job_id = %self.job_id, statement = self.index, %error, "the query's operation was not closed");
        }
    }
}

/// Runs one write to the store, again (a few times, with growing pauses) while the database
/// fails.
async fn retrying_store<T, F, Fut>(
    job_id: JobId,
    index: u32,
    what: &'static str,
    mut write: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write().await {
            Err(StoreError::Database(message)) if attempts < STORE_ATTEMPTS => {
                warn!(%job_id, statement = index, %message, attempts, what, "cannot write to the store; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
            }
            other => return other,
        }
    }
}

/// Cuts encoded rows into batches of about `BATCH_BYTES` (a batch ends with the row that
/// reaches it), each a valid encoding of a `RowBatch` holding only its rows; a page that
/// makes one batch keeps its buffer.
fn batches(rows: EncodedRows, first_row: u64) -> Vec<LogBatch> {
    let mut start = first_row;
    rows.into_runs(BATCH_BYTES)
        .into_iter()
        .map(|(rows, data)| {
            let batch = LogBatch {
                first_row: start,
                rows,
                data,
            };
            start += rows;
            batch
        })
        .collect()
}

/// Decodes a stored batch's rows.
pub(crate) fn decode_batch(data: &[u8]) -> Result<Vec<proto::Row>, Error> {
    proto::RowBatch::decode(data)
        .map(|batch| batch.rows)
        .map_err(|e| Error::Internal(format!("a result log batch does not decode: {e}")))
}

/// Writes a size in the units the flags take.
pub(crate) fn human_bytes(bytes: u64) -> String {
    for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{} {unit}", bytes / scale);
        }
    }
    format!("{bytes} bytes")
}
