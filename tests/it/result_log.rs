//! The durable result log through the public gRPC API: queries are logged whether or not
//! anyone reads, any number of readers read from any offset while and after the job runs,
//! result limits stop a stream's query, retention and the sliding window hold what they say,
//! and messages stay within their byte cap. Against the SQL Gateway stand-in.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::time::Duration;

use broker::{TestBroker, sql, submit, wait_for_job, wait_for_state};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::value::Kind;
use flinkbroker_proto::{
    GetJobRequest, Job, JobState, ResultLimits, RuntimeMode, StatementState,
    StreamOperationResultsRequest,
};
use prost::Message as _;
use sql_gateway_standin::StandinConfig;
use tonic::Code;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

const LIMIT: Duration = Duration::from_secs(30);

/// A batch query over `rows` sequential ids.
fn bounded(rows: u64) -> String {
    format!(
        "CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='{rows}', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{rows}', 'fields.name.length'='8');\nSELECT * FROM gen;"
    )
}

/// An unbounded streaming query producing `per_second` sequential ids a second.
fn unbounded(per_second: u64) -> String {
    format!(
        "CREATE TABLE gen (id BIGINT, name STRING) WITH ('connector'='datagen', 'rows-per-second'='{per_second}', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000', 'fields.name.length'='8');\nSELECT * FROM gen;"
    )
}

async fn get(client: &mut Client, id: &str) -> Job {
    client
        .get_job(GetJobRequest { job_id: id.into() })
        .await
        .expect("get job")
        .into_inner()
}

/// What one stream delivered.
#[derive(Debug, Default)]
struct Read {
    ids: Vec<i64>,
    /// Each Rows message's first offset, row count and encoded size.
    batches: Vec<(u64, usize, usize)>,
    progress: Vec<flinkbroker_proto::StreamProgress>,
    end: Option<flinkbroker_proto::StreamEnd>,
}

fn read_request(job_id: &str, from: u64) -> StreamOperationResultsRequest {
    StreamOperationResultsRequest {
        job_id: job_id.into(),
        resume_from_row: from,
        ..StreamOperationResultsRequest::default()
    }
}

/// Reads a stream to its end (or `stop_after` progress messages).
async fn read(
    client: &mut Client,
    request: StreamOperationResultsRequest,
    stop_after_progress: usize,
) -> Read {
    let from = request.resume_from_row;
    let mut stream = client
        .stream_operation_results(request)
        .await
        .expect("stream starts")
        .into_inner();
    let mut read = Read::default();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("stream message in time")
            .expect("stream message")
            .expect("stream ends with an end message");
        match message.message.expect("message set") {
            Message::Arrow(_) | Message::Snapshot(_) => {
                panic!("arrow batches or a table snapshot for a ROWS changelog request")
            }
            Message::Schema(schema) => {
                assert!(read.ids.is_empty(), "schema comes first");
                assert_eq!(schema.columns.len(), 2);
            }
            Message::Rows(batch) => {
                assert_eq!(
                    batch.first_row_offset,
                    from + read.ids.len() as u64,
                    "batches are contiguous"
                );
                read.batches.push((
                    batch.first_row_offset,
                    batch.rows.len(),
                    batch.encoded_len(),
                ));
                for row in batch.rows {
                    match row.values.first().and_then(|v| v.kind.clone()) {
                        Some(Kind::IntValue(id)) => read.ids.push(id),
                        other => panic!("row without an id: {other:?}"),
                    }
                }
            }
            Message::Progress(progress) => {
                read.progress.push(progress);
                if read.progress.len() >= stop_after_progress {
                    return read;
                }
            }
            Message::End(end) => {
                read.end = Some(end);
                return read;
            }
        }
    }
}

fn sequence(from: i64, to_inclusive: i64) -> Vec<i64> {
    (from..=to_inclusive).collect()
}

#[tokio::test]
async fn a_query_nobody_reads_finishes_and_any_reader_reads_it_afterwards_from_any_offset() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&bounded(2_500), RuntimeMode::Batch)).await;
    // Nobody reads: the job reaches FINISHED on its own.
    let finished = wait_for_state(&client, &job.id, JobState::Finished).await;
    let statement = &finished.statements[1];
    assert_eq!(statement.state(), StatementState::Finished);
    let log = statement.result_log.expect("result log status");
    assert_eq!(log.rows_logged, 2_500);
    assert_eq!(log.earliest_row_offset, 0);
    assert!(log.complete && !log.deleted);
    assert!(log.bytes_held > 0);
    let expire = log.expire_time.expect("expire time once the job ended");
    let ended = finished.end_time.expect("end time");
    assert_eq!(
        expire.seconds - ended.seconds,
        24 * 3600,
        "default retention 24 h"
    );

    // A reader after the end gets everything.
    let all = read(&mut client, read_request(&job.id, 0), usize::MAX).await;
    assert_eq!(all.ids, sequence(1, 2_500));
    let end = all.end.expect("end");
    assert_eq!(end.reason(), Reason::EndOfResults);
    assert_eq!((end.rows_sent, end.next_row_offset), (2_500, 2_500));
    // Resuming at an arbitrary offset gets exactly the rest; at the end, nothing but the end.
    let rest = read(&mut client, read_request(&job.id, 1_234), usize::MAX).await;
    assert_eq!(rest.ids, sequence(1_235, 2_500));
    let none = read(&mut client, read_request(&job.id, 2_500), usize::MAX).await;
    assert!(none.ids.is_empty());
    assert_eq!(none.end.expect("end").reason(), Reason::EndOfResults);
    // Beyond what was logged is OUT_OF_RANGE, naming what can be read.
    let error = client
        .stream_operation_results(read_request(&job.id, 2_501))
        .await
        .expect_err("beyond the log");
    assert_eq!(error.code(), Code::OutOfRange);
    assert!(
        error.message().contains("rows 0..2500 can be read"),
        "{}",
        error.message()
    );
    broker.stop().await;
}

#[tokio::test]
async fn concurrent_readers_of_a_running_query_get_identical_rows() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&unbounded(400), RuntimeMode::Streaming)).await;
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = client.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                let mut request = read_request(&id, 0);
                request.max_rows = 300;
                read(&mut client, request, usize::MAX).await
            })
        })
        .collect();
    let mut reads = Vec::new();
    for reader in readers {
        reads.push(reader.await.expect("reader"));
    }
    for read in &reads {
        assert_eq!(read.ids, sequence(1, 300));
        assert_eq!(
            read.end.as_ref().expect("end").reason(),
            Reason::RowLimitReached
        );
    }
    // The drain went on without its readers.
    wait_for_job(&client, &job.id, "more rows logged", |job| {
        job.statements[1]
            .result_log
            .as_ref()
            .is_some_and(|log| log.rows_logged > 300)
    })
    .await;
    broker::cancel(&mut client, &job.id).await;
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn result_limits_stop_an_unbounded_query_and_the_job_finishes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut request = sql(&unbounded(2_000), RuntimeMode::Streaming);
    request.result_limits = Some(ResultLimits {
        max_rows: 1_000,
        max_duration: None,
    });
    let job = submit(&mut client, request).await;
    let finished = wait_for_state(&client, &job.id, JobState::Finished).await;
    let log = finished.statements[1].result_log.expect("log");
    assert_eq!(log.rows_logged, 1_000);
    assert!(log.complete);
    assert!(
        finished.history.iter().any(|t| t
            .reason
            .contains("result limit max_rows reached after 1000 rows")),
        "{:?}",
        finished.history
    );
    // The query's Flink job was stopped.
    let flink_job_id = finished.statements[1].flink_job_id.clone();
    broker::eventually("the query's flink job canceled", LIMIT, || {
        let found = broker
            .standin
            .flink_jobs()
            .into_iter()
            .find(|(id, status)| *id == flink_job_id && status == "CANCELED");
        async move { found }
    })
    .await;
    let all = read(&mut client, read_request(&job.id, 0), usize::MAX).await;
    assert_eq!(all.ids, sequence(1, 1_000));
    assert_eq!(all.end.expect("end").reason(), Reason::RowLimitReached);

    // A time limit ends the log the same way.
    let mut request = sql(&unbounded(50), RuntimeMode::Streaming);
    request.result_limits = Some(ResultLimits {
        max_rows: 0,
        max_duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: 300_000_000,
        }),
    });
    let job = submit(&mut client, request).await;
    let finished = wait_for_state(&client, &job.id, JobState::Finished).await;
    assert!(
        finished.statements[1]
            .result_log
            .as_ref()
            .is_some_and(|l| l.complete)
    );
    let all = read(&mut client, read_request(&job.id, 0), usize::MAX).await;
    assert_eq!(all.end.expect("end").reason(), Reason::TimeLimitReached);
    broker.stop().await;
}

#[tokio::test]
async fn a_reader_behind_the_sliding_window_is_out_of_range_naming_the_earliest_row() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--result-log-window-bytes", "4KiB"],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&unbounded(2_000), RuntimeMode::Streaming)).await;
    let moved = wait_for_job(&client, &job.id, "the window moved", |job| {
        job.statements[1]
            .result_log
            .as_ref()
            .is_some_and(|log| log.earliest_row_offset > 0)
    })
    .await;
    let log = moved.statements[1].result_log.expect("log");
    assert!(log.bytes_held < 64 * 1024, "{log:?}");
    let error = client
        .stream_operation_results(read_request(&job.id, 0))
        .await
        .expect_err("behind the window");
    assert_eq!(error.code(), Code::OutOfRange);
    assert!(
        error.message().contains("which now starts at row"),
        "{}",
        error.message()
    );
    // From the earliest row held the rest can be read (the window moves on meanwhile, so a
    // read that fell behind before its first row is tried again from the new earliest row).
    let (earliest, ids) = broker::eventually("a read within the window", LIMIT, || {
        let mut client = client.clone();
        let id = job.id.clone();
        async move {
            let earliest = get(&mut client, &id).await.statements[1]
                .result_log
                .expect("log")
                .earliest_row_offset;
            let mut request = read_request(&id, earliest);
            request.max_rows = 10;
            let mut stream = match client.stream_operation_results(request).await {
                Ok(stream) => stream.into_inner(),
                Err(status) if status.code() == Code::OutOfRange => return None,
                Err(status) => panic!("unexpected {status:?}"),
            };
            let mut ids = Vec::new();
            while let Some(message) = stream.message().await.ok().flatten() {
                match message.message {
                    Some(Message::Rows(batch)) => {
                        for row in batch.rows {
                            if let Some(Kind::IntValue(id)) = row.values[0].kind {
                                ids.push(id);
                            }
                        }
                    }
                    Some(Message::End(_)) => return Some((earliest, ids)),
                    _ => {}
                }
            }
            None
        }
    })
    .await;
    let first = i64::try_from(earliest).expect("offset") + 1;
    assert_eq!(ids, sequence(first, first + 9));
    broker::cancel(&mut client, &job.id).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_batch_query_beyond_the_log_cap_fails_naming_the_cap_and_its_flag() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--result-log-max-bytes", "16KiB"],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&bounded(5_000), RuntimeMode::Batch)).await;
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert!(
        failed
            .state_reason
            .contains("16 KiB per statement (--result-log-max-bytes)"),
        "{}",
        failed.state_reason
    );
    assert_eq!(failed.statements[1].state(), StatementState::Failed);
    broker.stop().await;
}

#[tokio::test]
async fn logs_are_deleted_after_their_retention_and_the_stream_says_so() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--result-retention", "0s", "--janitor-interval", "50ms"],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&bounded(100), RuntimeMode::Batch)).await;
    let deleted = wait_for_job(&client, &job.id, "its log deleted", |job| {
        job.statements[1]
            .result_log
            .as_ref()
            .is_some_and(|log| log.deleted)
    })
    .await;
    assert_eq!(deleted.state(), JobState::Finished, "the job record stays");
    let log = deleted.statements[1].result_log.expect("log");
    assert_eq!((log.rows_logged, log.bytes_held), (100, 0));
    let error = client
        .stream_operation_results(read_request(&job.id, 0))
        .await
        .expect_err("deleted");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("were deleted"),
        "{}",
        error.message()
    );
    assert!(
        error.message().contains("--result-retention"),
        "{}",
        error.message()
    );
    broker.stop().await;
}

#[tokio::test]
async fn messages_stay_within_the_byte_cap_and_progress_flows_while_rows_do_not() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &[
            "--max-message-bytes",
            "2KiB",
            "--progress-interval",
            "100ms",
        ],
    )
    .await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(&bounded(3_000), RuntimeMode::Batch)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let all = read(&mut client, read_request(&job.id, 0), usize::MAX).await;
    assert_eq!(all.ids, sequence(1, 3_000));
    assert!(all.batches.len() > 10, "{} messages", all.batches.len());
    for (offset, rows, bytes) in &all.batches {
        assert!(
            *bytes <= 2 * 1024 + 64,
            "message at {offset} with {rows} rows is {bytes} bytes"
        );
    }

    // A reader at the live end of a quiet query gets progress messages.
    let job = submit(&mut client, sql(&unbounded(1), RuntimeMode::Streaming)).await;
    wait_for_job(&client, &job.id, "a first row logged", |job| {
        job.statements[1]
            .result_log
            .as_ref()
            .is_some_and(|log| log.rows_logged > 0)
    })
    .await;
    let mut request = read_request(&job.id, 0);
    request.max_rows = 1_000;
    let waiting = read(&mut client, request, 2).await;
    let progress = waiting.progress.last().expect("progress");
    assert!(progress.rows_logged >= 1);
    assert_eq!(progress.flink_job_status, "RUNNING");
    broker::cancel(&mut client, &job.id).await;
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}
