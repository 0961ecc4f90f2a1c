//! StreamOperationResults: reads a query statement's result log, from any offset it still
//! holds, on any replica, while and after the job runs.
//!
//! A stream reads batches from the store and sends them in messages of at most
//! `--max-message-bytes` of rows. At the end of what is logged it waits: on the log's head
//! when this process writes the log, otherwise by looking at the store every
//! `--replica-poll-interval`; while it waits it sends a progress message every
//! `--progress-interval`. Nothing a stream does drives the job: a client that leaves costs
//! nothing, and the job's drain goes on without readers.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::super::Controller;
use super::drain::decode_batch;
use crate::error::{Error, Result};
use crate::metrics;
use crate::observer::Observed;
use flinkbroker_flink::sql_gateway::ColumnInfo;
use flinkbroker_model::job::{Job, JobId, JobKind, JobState, LogEnd, LogSummary, StatementState};
use flinkbroker_proto as proto;
use flinkbroker_store::LogRead;

/// How long the end message may wait for a client that stopped reading.
const END_SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Batches read from the store at once (bounded in bytes by the message size too).
const READ_BATCHES: u64 = 16;
/// Messages queued for the client beyond the one being sent.
const QUEUED_MESSAGES: usize = 2;

/// What StreamOperationResults was asked for.
#[derive(Debug, Clone)]
pub struct ResultRequest {
    /// The job whose results are read.
    pub job_id: JobId,
    /// The statement; None for the job's only query.
    pub statement_index: Option<u32>,
    /// Ends the stream after this many rows.
    pub max_rows: Option<u64>,
    /// Ends the stream after this long.
    pub max_duration: Option<Duration>,
    /// The row offset the client has read up to.
    pub resume_from_row: u64,
    /// The attempt the client's rows came from, when resuming.
    pub attempt: Option<u32>,
}

/// Why a result stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEndReason {
    /// The statement's results ended.
    EndOfResults,
    /// `max_rows` rows were sent.
    RowLimitReached,
    /// `max_duration` passed, or the broker's own limit.
    TimeLimitReached,
    /// The job was cancelled.
    Canceled,
    /// The statement or the job failed.
    Failed,
}

/// One message of a result stream.
#[derive(Debug, Clone)]
pub enum ResultMessage {
    /// The columns of the results, first.
    Schema(proto::ResultSchema),
    /// Rows in order, from `first_row_offset`.
    Rows {
        /// The rows.
        rows: Vec<proto::Row>,
        /// The offset of the first row in the statement's results.
        first_row_offset: u64,
        /// The statement's attempt the rows come from.
        attempt: u32,
    },
    /// View TABLE: part of the table as of a log offset, before the changes after it.
    Snapshot {
        /// The rows, each INSERT.
        rows: Vec<proto::Row>,
        /// The changelog rows before this offset are applied.
        as_of_row_offset: u64,
        /// The snapshot's last message.
        last: bool,
    },
    /// Sent while no rows arrive: how far the results are.
    Progress {
        /// Rows in the result log so far.
        rows_logged: u64,
        /// The first row still held.
        earliest_row_offset: u64,
        /// The Flink job's status, as the JobManager reports it.
        flink_job_status: String,
    },
    /// The last message.
    End {
        /// Why the stream ended.
        reason: StreamEndReason,
        /// The root cause when the statement or job failed.
        error: Option<String>,
        /// Rows this stream sent.
        rows_sent: u64,
        /// Where a new stream resumes.
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
        let job = self.get_job(request.job_id).await?;
        if job.kind != JobKind::Sql {
            return Err(Error::FailedPrecondition(format!(
                "job {} is a python job; only sql jobs have results",
                job.id
            )));
        }
        let index = select_statement(&job, request.statement_index)?;
        let statement = &job.statements[index as usize];
        match &statement.log {
            Some(log) if request.attempt.is_some_and(|a| a != log.attempt) => {
                return Err(runs_again(job.id, index, log.attempt));
            }
            Some(log) => check_offset(job.id, index, log, request.resume_from_row)?,
            None if request.resume_from_row > 0 => {
                return Err(Error::OutOfRange(format!(
                    "resume_from_row: {} cannot be served; statement {} has logged no rows yet",
                    request.resume_from_row,
                    index + 1
                )));
            }
            None if job.state.is_terminal() => {
                return Err(Error::FailedPrecondition(format!(
                    "job {} is {} and statement {} logged no results: {}",
                    job.id,
                    job.state.as_str(),
                    index + 1,
                    job.state_reason
                )));
            }
            None => {}
        }
        let limit = request
            .max_duration
            .unwrap_or(self.limits.max_stream_duration)
            .min(self.limits.max_stream_duration);
        let (tx, rx) = mpsc::channel(QUEUED_MESSAGES);
        let this = Arc::clone(self);
        self.tasks.spawn(async move {
            let _open = metrics::OpenStream::new();
            let mut reader = Reader {
                controller: &this,
                job_id: job.id,
                index,
                tx: &tx,
                deadline: Instant::now() + limit,
                max_rows: request.max_rows,
                offset: request.resume_from_row,
                rows_sent: 0,
                attempt: request.attempt,
                tail: None,
                job: this.live.get(job.id).map(|live| live.job),
            };
            match reader.run().await {
                Ok(Some(end)) => {
                    info!(job_id = %job.id, statement = index, ?end, rows = reader.rows_sent, "result stream ended");
                }
                Ok(None) => {
                    info!(job_id = %job.id, statement = index, rows = reader.rows_sent, "result stream closed by the client");
                }
                Err(error) => {
                    warn!(job_id = %job.id, statement = index, %error, "result stream failed");
                    let _ = tx.send(Err(error)).await;
                }
            }
        });
        Ok(rx)
    }

    /// The status of a Flink job for a progress message, from the cluster's observer (an
    /// overview at most one poll interval old, shared by every stream and driver).
    async fn flink_status(&self, flink_job_id: &str) -> String {
        let status = match self.observer.current(flink_job_id).await {
            Ok(Observed::Listed(status)) => return status.as_str().to_owned(),
            Ok(Observed::Unseen | Observed::NotListed) => {
                self.jobmanager.job_status(flink_job_id).await
            }
            Err(error) => Err(error),
        };
        match status {
            Ok(status) => status.as_str().to_owned(),
            Err(error) => {
                debug!(flink_job_id, %error, "no flink job status for a progress message");
                String::new()
            }
        }
    }
}

/// The answer to a client resuming into an attempt the statement no longer runs.
fn runs_again(job_id: JobId, index: u32, attempt: u32) -> Error {
    Error::Aborted(format!(
        "statement {} of job {job_id} runs again (attempt {attempt}): the sql gateway no longer served its results after a broker restart, so its results start again at row 0",
        index + 1
    ))
}

/// Refuses an offset the log does not hold.
fn check_offset(job_id: JobId, index: u32, log: &LogSummary, offset: u64) -> Result<()> {
    if let Some(deleted) = log.deleted_at {
        return Err(Error::FailedPrecondition(format!(
            "the results of statement {} of job {} were deleted at {} (ms since the epoch), after the result retention (--result-retention) that follows the job's end; {} rows had been logged",
            index + 1,
            job_id,
            deleted,
            log.rows_logged
        )));
    }
    if offset < log.earliest_row {
        return Err(Error::OutOfRange(format!(
            "resume_from_row: {offset} is no longer held; statement {} keeps a sliding window of its most recent results (--result-log-window-bytes), which now starts at row {} (rows {}..{} can be read)",
            index + 1,
            log.earliest_row,
            log.earliest_row,
            log.rows_logged
        )));
    }
    if offset > log.rows_logged {
        return Err(Error::OutOfRange(format!(
            "resume_from_row: {offset} is beyond the {} rows statement {} logged so far (rows {}..{} can be read)",
            log.rows_logged,
            index + 1,
            log.earliest_row,
            log.rows_logged
        )));
    }
    Ok(())
}

/// Picks the statement to read: the one asked for, or the last one whose results are part of
/// the job's outcome.
pub(super) fn select_statement(job: &Job, asked: Option<u32>) -> Result<u32> {
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
struct Reader<'a> {
    controller: &'a Arc<Controller>,
    job_id: JobId,
    index: u32,
    tx: &'a Sender,
    deadline: Instant,
    max_rows: Option<u64>,
    /// The offset of the next row to send.
    offset: u64,
    rows_sent: u64,
    /// The statement's attempt the stream reads (the log starts again with another).
    attempt: Option<u32>,
    /// The log's head, when this process writes the log.
    tail: Option<watch::Receiver<LogSummary>>,
    /// The job as its driver publishes it, when this process drives it.
    job: Option<watch::Receiver<Job>>,
}

/// How waiting ended.
enum Waited {
    /// Something may have changed: look again.
    Again,
    /// Time for a progress message.
    Progress,
    Deadline,
    ClientGone,
    Shutdown,
}

/// What stops a stream before its rows end.
enum Stop {
    End(StreamEndReason, Option<String>),
    ClientGone,
}

impl Reader<'_> {
    /// Streams until an end; Ok(None) when the client left.
    async fn run(&mut self) -> Result<Option<StreamEndReason>> {
        let mut schema_sent = false;
        let mut last_progress = Instant::now();
        loop {
            self.follow_tail();
            let read = self
                .controller
                .store
                .read_log(
                    self.job_id,
                    self.index,
                    self.offset,
                    READ_BATCHES,
                    self.controller.limits.max_message_bytes,
                )
                .await?;
            let Some(read) = read else {
                // No log yet: the query has no verdict.
                if let Some(stop) = self.stopped_before_results().await? {
                    return self.stop(stop).await;
                }
                match self.wait(&mut last_progress).await {
                    Waited::Again | Waited::Progress => continue,
                    other => return self.end_waiting(other).await,
                }
            };
            self.check(&read)?;
            if !schema_sent {
                let columns: Vec<ColumnInfo> =
                    serde_json::from_slice(&read.schema).map_err(|e| {
                        Error::Internal(format!("a stored result schema does not decode: {e}"))
                    })?;
                let schema = flinkbroker_flink::rows::schema_to_proto(&columns);
                if let Err(stop) = self.send(ResultMessage::Schema(schema)).await {
                    return self.stop(stop).await;
                }
                schema_sent = true;
            }
            if !read.batches.is_empty() {
                match self.send_batches(read).await {
                    Ok(true) => {
                        let next = self.offset;
                        return self.end(StreamEndReason::RowLimitReached, None, next).await;
                    }
                    Ok(false) => {
                        last_progress = Instant::now();
                        continue;
                    }
                    Err(stop) => return self.stop(stop).await,
                }
            }
            // At the end of what is logged.
            if let Some(end) = read.head.end {
                let reason = match end {
                    LogEnd::EndOfResults => StreamEndReason::EndOfResults,
                    LogEnd::RowLimit => StreamEndReason::RowLimitReached,
                    LogEnd::TimeLimit => StreamEndReason::TimeLimitReached,
                };
                let next = self.offset;
                return self.end(reason, None, next).await;
            }
            if let Some(stop) = self.stopped_while_logging().await? {
                // Rows logged just before the stop are still sent.
                let again = self
                    .controller
                    .store
                    .read_log(self.job_id, self.index, self.offset, 1, 1)
                    .await?;
                if again.is_some_and(|read| !read.batches.is_empty()) {
                    continue;
                }
                return self.stop(stop).await;
            }
            // Wait for the log or the job to change; progress while nothing does comes from
            // the head the driver publishes (or the last read), never from another read.
            loop {
                match self.wait(&mut last_progress).await {
                    Waited::Again => break,
                    Waited::Progress => {
                        let (rows_logged, earliest_row_offset) = match &self.tail {
                            Some(tail) => {
                                let head = tail.borrow();
                                (head.rows_logged, head.earliest_row)
                            }
                            None => (read.head.rows_logged, read.head.earliest_row),
                        };
                        let progress = ResultMessage::Progress {
                            rows_logged,
                            earliest_row_offset,
                            flink_job_status: self.flink_status().await,
                        };
                        if let Err(stop) = self.send(progress).await {
                            return self.stop(stop).await;
                        }
                    }
                    other => return self.end_waiting(other).await,
                }
            }
        }
    }

    /// Refuses a read the log cannot serve (any more).
    fn check(&mut self, read: &LogRead) -> Result<()> {
        match self.attempt {
            None => self.attempt = Some(read.head.attempt),
            Some(attempt) if attempt != read.head.attempt => {
                return Err(runs_again(self.job_id, self.index, read.head.attempt));
            }
            Some(_) => {}
        }
        check_offset(self.job_id, self.index, &read.head, self.offset)
    }

    /// Sends the rows of the batches read, in messages of at most `--max-message-bytes`;
    /// Ok(true) when `max_rows` were sent.
    async fn send_batches(&mut self, read: LogRead) -> std::result::Result<bool, Stop> {
        let max_bytes =
            usize::try_from(self.controller.limits.max_message_bytes).unwrap_or(usize::MAX);
        let mut message: Vec<proto::Row> = Vec::new();
        let mut message_bytes = 0usize;
        let mut message_first = self.offset;
        for batch in read.batches {
            let rows = decode_batch(&batch.data)
                .map_err(|e| Stop::End(StreamEndReason::Failed, Some(e.to_string())))?;
            let skip =
                usize::try_from(self.offset.saturating_sub(batch.first_row)).unwrap_or(usize::MAX);
            // A batch that fits in a message is counted whole, before its rows join one.
            let whole = batch.data.len() <= max_bytes;
            if whole {
                if !message.is_empty() && message_bytes + batch.data.len() > max_bytes {
                    self.flush(&mut message, &mut message_first).await?;
                    message_bytes = 0;
                }
                message_bytes += batch.data.len();
            }
            for row in rows.into_iter().skip(skip) {
                if !whole {
                    let size = row.encoded_len() + 8;
                    if !message.is_empty() && message_bytes + size > max_bytes {
                        self.flush(&mut message, &mut message_first).await?;
                        message_bytes = 0;
                    }
                    message_bytes += size;
                }
                message.push(row);
                self.offset += 1;
                if self
                    .max_rows
                    .is_some_and(|max| self.rows_sent + message.len() as u64 >= max)
                {
                    self.flush(&mut message, &mut message_first).await?;
                    return Ok(true);
                }
            }
        }
        self.flush(&mut message, &mut message_first).await?;
        Ok(false)
    }

    async fn flush(
        &mut self,
        message: &mut Vec<proto::Row>,
        first: &mut u64,
    ) -> std::result::Result<(), Stop> {
        if message.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(message);
        let count = rows.len() as u64;
        let bytes: usize = rows.iter().map(|row| row.encoded_len()).sum();
        self.send(ResultMessage::Rows {
            rows,
            first_row_offset: *first,
            attempt: self.attempt.unwrap_or_default(),
        })
        .await?;
        metrics::result_streamed(count, bytes as u64);
        self.rows_sent += count;
        *first += count;
        Ok(())
    }

    /// Follows the log's head when this process writes it (and marks it seen before the
    /// store is read, so that an append after the read always wakes the wait).
    fn follow_tail(&mut self) {
        if self.tail.is_none() {
            self.tail = self.controller.tails.subscribe(self.job_id, self.index);
        }
        if let Some(tail) = &mut self.tail {
            tail.borrow_and_update();
        }
        if let Some(job) = &mut self.job {
            job.borrow_and_update();
        }
    }

    /// The job as it is now: as its driver publishes it, or from the store.
    async fn current_job(&self) -> Result<Job> {
        self.controller.get_job(self.job_id).await
    }

    /// The end of a stream whose statement failed.
    fn failed_statement(&self, job: &Job) -> Option<Stop> {
        let statement = job.statements.get(self.index as usize)?;
        (statement.state == StatementState::Failed).then(|| {
            let error = format!(
                "statement {} failed: {}",
                self.index + 1,
                statement.error.clone().unwrap_or_default()
            );
            Stop::End(StreamEndReason::Failed, Some(error))
        })
    }

    /// Before the query produced its first page: the end, when the statement failed or the
    /// job stopped or ended.
    async fn stopped_before_results(&self) -> Result<Option<Stop>> {
        let job = self.current_job().await?;
        if let Some(failed) = self.failed_statement(&job) {
            return Ok(Some(failed));
        }
        if stopped(&job) {
            let (reason, error) = stop_reason(&job);
            return Ok(Some(Stop::End(reason, error)));
        }
        if job.state == JobState::Finished {
            return Err(Error::FailedPrecondition(format!(
                "job {} is FINISHED and statement {} logged no results",
                self.job_id,
                self.index + 1
            )));
        }
        Ok(None)
    }

    /// At the end of a log that did not end: the end, when the job stopped.
    async fn stopped_while_logging(&self) -> Result<Option<Stop>> {
        let job = self.current_job().await?;
        if let Some(failed) = self.failed_statement(&job) {
            return Ok(Some(failed));
        }
        if stopped(&job) || job.state == JobState::Finished {
            let (reason, error) = stop_reason(&job);
            return Ok(Some(Stop::End(reason, error)));
        }
        Ok(None)
    }

    /// Waits for the log or the job to change (or, for a log another replica writes, one
    /// poll interval), a progress tick, the deadline, the client leaving or shutdown.
    async fn wait(&mut self, last_progress: &mut Instant) -> Waited {
        let progress_at = on_progress_grid(
            *last_progress + self.controller.limits.progress_interval,
            self.controller.limits.progress_interval,
        );
        let Reader {
            controller,
            tx,
            deadline,
            tail,
            job,
            ..
        } = self;
        // A log this process writes wakes the stream (and its end, when the driver stops, makes
        // the stream look at the store); a log another replica writes is looked at every poll
        // interval.
        let poll = controller.limits.replica_poll_interval;
        let following = tail.is_some();
        let mut tail_gone = false;
        let mut job_gone = false;
        let waited = {
            let tail_changed = async {
                match tail.as_mut() {
                    Some(tail) => tail.changed().await.is_err(),
                    None => std::future::pending().await,
                }
            };
            let job_changed = async {
                match job.as_mut() {
                    Some(job) => job.changed().await.is_err(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = controller.shutdown.cancelled() => Waited::Shutdown,
                _ = tx.closed() => Waited::ClientGone,
                _ = tokio::time::sleep_until(*deadline) => Waited::Deadline,
                gone = tail_changed => {
                    tail_gone = gone;
                    Waited::Again
                }
                gone = job_changed => {
                    job_gone = gone;
                    Waited::Again
                }
                _ = tokio::time::sleep(poll), if !following => Waited::Again,
                _ = tokio::time::sleep_until(progress_at) => Waited::Progress,
            }
        };
        // A driver that ended leaves the rest to the store.
        if tail_gone {
            *tail = None;
        }
        if job_gone {
            *job = None;
        }
        if matches!(waited, Waited::Progress) {
            *last_progress = progress_at;
        }
        waited
    }

    async fn flink_status(&self) -> String {
        // The job as its driver publishes it, when this process drives it.
        let published = self.job.as_ref().map(|job| {
            job.borrow()
                .statements
                .get(self.index as usize)
                .and_then(|s| s.flink_job_id.clone())
        });
        let flink_job_id = match published {
            Some(flink_job_id) => flink_job_id,
            None => match self.current_job().await {
                Ok(job) => job
                    .statements
                    .get(self.index as usize)
                    .and_then(|s| s.flink_job_id.clone()),
                Err(_) => return String::new(),
            },
        };
        match flink_job_id {
            Some(flink_job_id) => self.controller.flink_status(&flink_job_id).await,
            None => String::new(),
        }
    }

    async fn end_waiting(&self, waited: Waited) -> Result<Option<StreamEndReason>> {
        match waited {
            Waited::Again | Waited::Progress | Waited::ClientGone => Ok(None),
            Waited::Deadline => {
                self.end(StreamEndReason::TimeLimitReached, None, self.offset)
                    .await
            }
            Waited::Shutdown => Err(Error::ShuttingDown),
        }
    }

    async fn stop(&self, stop: Stop) -> Result<Option<StreamEndReason>> {
        match stop {
            Stop::ClientGone => Ok(None),
            Stop::End(reason, error) => self.end(reason, error, self.offset).await,
        }
    }

    async fn end(
        &self,
        reason: StreamEndReason,
        error: Option<String>,
        next_row_offset: u64,
    ) -> Result<Option<StreamEndReason>> {
        let end = ResultMessage::End {
            reason,
            error,
            rows_sent: self.rows_sent,
            next_row_offset,
        };
        // The end is delivered even after the deadline, but a client that stopped reading
        // does not hold the stream open for long.
        let sent = super::super::send_within(self.tx, Ok(end), END_SEND_TIMEOUT).await;
        Ok(sent.then_some(reason))
    }

    /// Sends a message unless the deadline passes, the client leaves or the broker stops first.
    async fn send(&self, message: ResultMessage) -> std::result::Result<(), Stop> {
        tokio::select! {
            sent = self.tx.send(Ok(message)) => sent.map_err(|_| Stop::ClientGone),
            _ = tokio::time::sleep_until(self.deadline) => {
                Err(Stop::End(StreamEndReason::TimeLimitReached, None))
            }
            _ = self.controller.shutdown.cancelled() => Err(Stop::ClientGone),
        }
    }
}

/// The first tick at or after `at` of one clock shared by every stream of the process, ticking
/// every `interval`: waiting streams send their progress together, so that the messages of the
/// streams on one connection go out in one write and their timers fire at once.
fn on_progress_grid(at: Instant, interval: Duration) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let step = interval.as_nanos();
    if step == 0 {
        return at;
    }
    let since = at.saturating_duration_since(origin).as_nanos();
    let ticks = since.div_ceil(step);
    let offset = u64::try_from(ticks.saturating_mul(step)).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(offset)
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
    match job.state {
        JobState::Failed => (StreamEndReason::Failed, Some(job.state_reason.clone())),
        JobState::Finished => (StreamEndReason::EndOfResults, None),
        _ => (StreamEndReason::Canceled, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_ticks_fall_on_one_grid() {
        let interval = Duration::from_millis(100);
        let start = Instant::now();
        let first = on_progress_grid(start + interval, interval);
        assert!(first >= start + interval && first < start + 2 * interval);
        // Streams that last sent at different moments meet on the same ticks.
        let other = on_progress_grid(start + interval + Duration::from_millis(30), interval);
        assert!(other == first || other == first + interval);
        // A tick that was sent leads to the next tick, one interval on.
        assert_eq!(
            on_progress_grid(first + interval, interval),
            first + interval
        );
        assert_eq!(on_progress_grid(start, Duration::ZERO), start);
    }
}
