//! StreamOperationResults with encoding ARROW, against the stand-in: every type of the type
//! fixtures read back value by value equal to the ROWS encoding, a changelog's row kinds as a
//! column, and offsets, limits, resumption and the message size bound as with ROWS.

use crate::support::broker;

use std::time::Duration;

use arrow_schema::{DataType, TimeUnit};
use broker::{TestBroker, sql, submit, wait_for_state};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    Job, JobState, ResultEncoding, ResultSchema, Row, RuntimeMode, StreamEnd,
    StreamOperationResultsRequest,
};
use flinkbroker_testkit::standin::StandinConfig;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

const LIMIT: Duration = Duration::from_secs(30);

/// The query of the type fixtures (`tests/fixtures/gateway-bodies/fetch-all-types-*.json`).
const ALL_TYPES: &str = "SELECT 1 AS c_int, 'a' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool, CAST(7 AS BIGINT) AS c_bigint, ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date, TIME '03:04:05' AS c_time, TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts, TO_TIMESTAMP_LTZ(0, 3) AS c_ltz, CAST(1.5 AS DECIMAL(10,2)) AS c_dec, CAST(2.5 AS DOUBLE) AS c_double, X'CAFE' AS c_bytes";

/// What one stream sent, rows decoded from whichever encoding it used.
struct Read {
    schema: ResultSchema,
    rows: Vec<Row>,
    /// Each batch's first row offset and row count, and its encoded size.
    batches: Vec<(u64, u64, usize)>,
    arrow_schema: Option<arrow_schema::SchemaRef>,
    end: StreamEnd,
}

async fn read(client: &mut Client, request: StreamOperationResultsRequest) -> Read {
    let arrow = request.encoding == ResultEncoding::Arrow as i32;
    let mut stream = client
        .stream_operation_results(request)
        .await
        .expect("stream starts")
        .into_inner();
    let mut schema = None;
    let mut ipc = Vec::new();
    let mut rows = Vec::new();
    let mut batches = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("results in time")
            .expect("stream message")
            .expect("an end message");
        match message.message.expect("message set") {
            Message::Schema(s) => {
                assert_eq!(
                    !s.arrow_schema.is_empty(),
                    arrow,
                    "the arrow schema iff ARROW"
                );
                ipc.extend_from_slice(&s.arrow_schema);
                schema = Some(s);
            }
            Message::Rows(batch) => {
                assert!(!arrow, "no RowBatch with ARROW");
                batches.push((
                    batch.first_row_offset,
                    batch.rows.len() as u64,
                    prost::Message::encoded_len(&batch),
                ));
                rows.extend(batch.rows);
            }
            Message::Arrow(batch) => {
                assert!(arrow, "no ArrowBatch with ROWS");
                batches.push((
                    batch.first_row_offset,
                    batch.row_count,
                    batch.ipc_message.len(),
                ));
                ipc.extend_from_slice(&batch.ipc_message);
            }
            Message::Progress(_) => {}
            Message::Snapshot(_) => panic!("no table snapshot in a changelog"),
            Message::End(end) => {
                let schema = schema.expect("schema");
                let mut arrow_schema = None;
                if arrow {
                    let (read_schema, record_batches) =
                        flinkbroker_arrow::read_stream(&ipc).expect("an arrow ipc stream");
                    for (batch, (_, count, _)) in record_batches.iter().zip(&batches) {
                        assert_eq!(batch.num_rows() as u64, *count, "row_count");
                        rows.extend(flinkbroker_arrow::rows(batch, &schema).expect("rows"));
                    }
                    arrow_schema = Some(read_schema);
                }
                return Read {
                    schema,
                    rows,
                    batches,
                    arrow_schema,
                    end,
                };
            }
        }
    }
}

fn request(job: &Job, encoding: ResultEncoding) -> StreamOperationResultsRequest {
    StreamOperationResultsRequest {
        job_id: job.id.clone(),
        encoding: encoding as i32,
        ..StreamOperationResultsRequest::default()
    }
}

#[tokio::test]
async fn every_type_reads_back_from_arrow_as_the_rows_encoding_sends_it() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(ALL_TYPES, RuntimeMode::Batch)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let rows = read(&mut client, request(&job, ResultEncoding::Rows)).await;
    let arrow = read(&mut client, request(&job, ResultEncoding::Arrow)).await;
    assert_eq!(rows.rows.len(), 1);
    assert_eq!(arrow.schema.columns, rows.schema.columns);
    // Value by value, column by column, so that a difference names its column.
    for (column, (want, got)) in rows
        .schema
        .columns
        .iter()
        .zip(rows.rows[0].values.iter().zip(arrow.rows[0].values.iter()))
    {
        assert_eq!(got, want, "column {}", column.name);
    }
    assert_eq!(arrow.rows, rows.rows);
    assert_eq!(arrow.end.reason(), Reason::EndOfResults);
    assert_eq!(arrow.end.rows_sent, 1);

    // The Arrow types the README lists; a batch job's results carry no row kind column.
    let schema = arrow.arrow_schema.expect("arrow schema");
    let data_type = |name: &str| {
        schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("no {name}"))
            .data_type()
            .clone()
    };
    assert_eq!(schema.fields().len(), 15);
    assert_eq!(data_type("c_int"), DataType::Int32);
    assert_eq!(data_type("c_bigint"), DataType::Int64);
    assert_eq!(data_type("c_dec"), DataType::Decimal128(10, 2));
    assert_eq!(data_type("c_time"), DataType::Time64(TimeUnit::Nanosecond));
    assert_eq!(
        data_type("c_ts"),
        DataType::Timestamp(TimeUnit::Millisecond, None)
    );
    assert_eq!(
        data_type("c_ltz"),
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(data_type("c_date"), DataType::Date32);
    assert_eq!(data_type("c_bytes"), DataType::Binary);
    assert!(matches!(data_type("c_arr"), DataType::List(_)));
    assert!(matches!(data_type("c_map"), DataType::Map(_, false)));
    assert!(matches!(data_type("c_row"), DataType::Struct(f) if f.len() == 2));
    assert!(
        schema
            .field_with_name("c_null")
            .expect("c_null")
            .is_nullable()
    );
    assert!(
        !schema
            .field_with_name("c_int")
            .expect("c_int")
            .is_nullable()
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_changelog_carries_its_row_kinds_and_arrow_batches_resume_and_stay_bounded() {
    // Batches of a few hundred bytes: the rows come in many arrow batches.
    let broker =
        TestBroker::start_with(StandinConfig::default(), &["--max-message-bytes", "600"]).await;
    let mut client = broker.client().await;
    let script = "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', 'number-of-rows'='200', 'fields.user_id.min'='1', 'fields.user_id.max'='5', 'fields.url.length'='8');\nSELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id";
    let job = submit(&mut client, sql(script, RuntimeMode::Streaming)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let rows = read(&mut client, request(&job, ResultEncoding::Rows)).await;
    let arrow = read(&mut client, request(&job, ResultEncoding::Arrow)).await;
    assert!(rows.rows.len() > 5, "a changelog: {} rows", rows.rows.len());
    assert_eq!(arrow.rows, rows.rows, "kinds and values alike");
    let schema = arrow.arrow_schema.expect("arrow schema");
    assert_eq!(schema.field(0).name(), flinkbroker_arrow::ROW_KIND_COLUMN);
    assert!(
        rows.rows
            .iter()
            .any(|r| r.kind == flinkbroker_proto::RowKind::UpdateAfter as i32),
        "the changelog updates counts"
    );

    // Batches are contiguous, within the bound (one row may exceed it alone), in order.
    assert!(arrow.batches.len() > 1, "{:?}", arrow.batches);
    let mut next = 0;
    for (offset, count, bytes) in &arrow.batches {
        assert_eq!(*offset, next);
        assert!(
            *bytes <= 600 || *count == 1,
            "{bytes} bytes in {count} rows"
        );
        next += count;
    }
    assert_eq!(next, rows.rows.len() as u64);
    assert_eq!(arrow.end.next_row_offset, rows.end.next_row_offset);

    // Resuming from an offset and a row limit behave as with ROWS.
    let resumed = read(
        &mut client,
        StreamOperationResultsRequest {
            resume_from_row: 3,
            max_rows: 4,
            ..request(&job, ResultEncoding::Arrow)
        },
    )
    .await;
    assert_eq!(resumed.rows, rows.rows[3..7].to_vec());
    assert_eq!(resumed.batches.first().map(|b| b.0), Some(3));
    assert_eq!(resumed.end.reason(), Reason::RowLimitReached);
    assert_eq!(resumed.end.next_row_offset, 7);

    let error = client
        .stream_operation_results(StreamOperationResultsRequest {
            encoding: 9,
            ..request(&job, ResultEncoding::Arrow)
        })
        .await
        .expect_err("an unknown encoding");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("encoding:"),
        "{}",
        error.message()
    );
    broker.stop().await;
}
