//! Black-box tests of SQL jobs through the generated gRPC client, against the SQL Gateway
//! stand-in that reproduces the recorded Flink 1.20.3 gateway.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::HashMap;
use std::time::Duration;

use broker::{TestBroker, eventually, sql, submit, wait_for_state};
use flinkbroker_model::job::JobId;
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::value::Kind;
use flinkbroker_proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, ListJobsRequest, ResultSchema, Row, RowKind,
    RuntimeMode, StatementState, StreamEnd, StreamOperationResultsRequest, SubmitSqlRequest, Value,
    WatchJobRequest,
};
use sql_gateway_standin::{FlinkRelease, StandinConfig};
use tonic::Code;
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(30);

const BOUNDED_GEN: &str = "CREATE TABLE gen (id INT, name STRING, price DOUBLE, ts TIMESTAMP(3)) WITH ('connector'='datagen', 'number-of-rows'='25', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='25', 'fields.name.length'='6')";
const UNBOUNDED_GEN: &str = "CREATE TABLE gen_unbounded (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000')";

type Client = JobServiceClient<Channel>;

/// Follows WatchJob until the job ends; returns every state seen and the final job.
async fn watch_to_end(client: &mut Client, id: &str) -> (Vec<JobState>, Job) {
    let mut stream = client
        .watch_job(WatchJobRequest { job_id: id.into() })
        .await
        .expect("watch")
        .into_inner();
    let mut states = Vec::new();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while let Some(job) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .expect("job ends in time")
        .expect("watch stream")
    {
        states.push(job.state());
        last = Some(job);
    }
    (states, last.expect("at least one job message"))
}

struct Streamed {
    schema: ResultSchema,
    rows: Vec<Row>,
    offsets: Vec<u64>,
    end: StreamEnd,
}

async fn stream_results(client: &mut Client, request: StreamOperationResultsRequest) -> Streamed {
    let mut stream = client
        .stream_operation_results(request)
        .await
        .expect("stream starts")
        .into_inner();
    let mut schema = None;
    let mut rows = Vec::new();
    let mut offsets = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("results in time")
            .expect("stream message")
            .expect("stream ends with an end message");
        match message.message.expect("message set") {
            Message::Schema(s) => {
                assert!(schema.is_none(), "one schema message");
                assert!(rows.is_empty(), "schema comes first");
                schema = Some(s);
            }
            Message::Rows(batch) => {
                assert!(schema.is_some(), "schema before rows");
                assert_eq!(
                    batch.first_row_offset,
                    offsets.len() as u64 + first_offset(&offsets, &batch)
                );
                for _ in &batch.rows {
                    offsets.push(batch.first_row_offset);
                }
                rows.extend(batch.rows);
            }
            Message::Progress(_) => {}
            Message::Arrow(_) | Message::Snapshot(_) => {
                panic!("arrow batches or a table snapshot for a ROWS changelog request")
            }
            Message::End(end) => {
                assert!(
                    stream.message().await.expect("stream").is_none(),
                    "end is last"
                );
                return Streamed {
                    schema: schema.expect("schema"),
                    rows,
                    offsets,
                    end,
                };
            }
        }
    }
}

fn first_offset(offsets: &[u64], batch: &flinkbroker_proto::RowBatch) -> u64 {
    if offsets.is_empty() {
        batch.first_row_offset
    } else {
        0
    }
}

fn request(job: &Job) -> StreamOperationResultsRequest {
    StreamOperationResultsRequest {
        job_id: job.id.clone(),
        ..StreamOperationResultsRequest::default()
    }
}

fn int(value: &Value) -> i64 {
    match value.kind {
        Some(Kind::IntValue(v)) => v,
        ref other => panic!("expected an int, got {other:?}"),
    }
}

#[tokio::test]
async fn multi_statement_script_streams_typed_rows_and_finishes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!("{BOUNDED_GEN};\n-- the rows\nSELECT * FROM gen;");
    let job = submit(&mut client, sql(&script, RuntimeMode::Batch)).await;
    assert_eq!(job.statements.len(), 2);
    assert!(matches!(
        job.state(),
        JobState::Pending | JobState::Submitting
    ));

    let streamed = stream_results(&mut client, request(&job)).await;
    let names: Vec<&str> = streamed
        .schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "name", "price", "ts"]);
    let types: Vec<&str> = streamed
        .schema
        .columns
        .iter()
        .map(|c| c.r#type.as_ref().expect("type").type_root.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "INTEGER",
            "VARCHAR",
            "DOUBLE",
            "TIMESTAMP_WITHOUT_TIME_ZONE"
        ]
    );
    assert_eq!(streamed.rows.len(), 25);
    assert_eq!(streamed.end.reason(), Reason::EndOfResults);
    assert_eq!(streamed.end.rows_sent, 25);
    assert_eq!(streamed.end.next_row_offset, 25);
    for (i, row) in streamed.rows.iter().enumerate() {
        assert_eq!(row.kind(), RowKind::Insert);
        assert_eq!(int(&row.values[0]), i as i64 + 1);
        assert!(matches!(row.values[1].kind, Some(Kind::StringValue(_))));
        assert!(matches!(row.values[2].kind, Some(Kind::DoubleValue(_))));
        assert!(matches!(row.values[3].kind, Some(Kind::TimestampValue(_))));
    }

    let (_, finished) = watch_to_end(&mut client, &job.id).await;
    assert_eq!(
        finished.state(),
        JobState::Finished,
        "{}",
        finished.state_reason
    );
    assert!(
        finished
            .statements
            .iter()
            .all(|s| s.state() == StatementState::Finished)
    );
    assert!(finished.end_time.is_some());
    eventually("the gateway session closed", LIMIT, || async {
        (broker.standin.open_session_count() == 0).then_some(())
    })
    .await;

    // Each statement went alone, with executionTimeout 0 and the query's job id pinned.
    let sent = broker.standin.statements();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].statement, BOUNDED_GEN);
    assert_eq!(sent[1].statement, "SELECT * FROM gen");
    let pinned = sent[1]
        .execution_config
        .get("$internal.pipeline.job-id")
        .expect("query job id pinned");
    assert_eq!(pinned, &finished.statements[1].flink_job_id);
    assert!(sent[0].execution_config.is_empty());
    broker.stop().await;
}

/// The broker negotiates the gateway's REST API with the gateway of each Flink release it
/// serves (1.19.3 offers V1–V2, 1.20.3 V1–V3, 2.1.3 V1–V4, of which it speaks V2 and V3) and
/// runs a script to its end through it.
#[tokio::test]
async fn scripts_run_through_the_gateway_of_every_flink_release() {
    for release in FlinkRelease::ALL {
        let broker = TestBroker::start_with(
            StandinConfig {
                flink_release: release,
                ..StandinConfig::default()
            },
            &[],
        )
        .await;
        let mut client = broker.client().await;
        let script = format!("{BOUNDED_GEN};\nSELECT * FROM gen;");
        let job = submit(&mut client, sql(&script, RuntimeMode::Batch)).await;
        let streamed = stream_results(&mut client, request(&job)).await;
        assert_eq!(streamed.rows.len(), 25, "{release}");
        assert_eq!(streamed.end.reason(), Reason::EndOfResults, "{release}");
        let (_, finished) = watch_to_end(&mut client, &job.id).await;
        assert_eq!(
            finished.state(),
            JobState::Finished,
            "{release}: {}",
            finished.state_reason
        );

        // Every versioned call went to the highest version both sides speak.
        let spoken = if release == FlinkRelease::V1_19 {
            "v2"
        } else {
            "v3"
        };
        let used = broker.standin.requests_by_api_version();
        let versioned: Vec<&String> = used
            .keys()
            .filter(|prefix| prefix.starts_with('v'))
            .collect();
        assert_eq!(versioned, [spoken], "{release}: {used:?}");
        assert!(used[spoken] >= 4, "{release}: {used:?}");

        // The stand-in answers as the release.
        let base = &broker.standin.base_url;
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let request = http.get(format!("{base}{path}"));
            async move {
                let reply = request.send().await.expect("stand-in answers");
                let status = reply.status().as_u16();
                (
                    status,
                    reply.json::<serde_json::Value>().await.unwrap_or_default(),
                )
            }
        };
        let (_, offered) = get("/api_versions").await;
        assert_eq!(
            offered["versions"],
            serde_json::json!(release.api_versions()),
            "{release}"
        );
        let (_, info) = get("/v1/info").await;
        assert_eq!(info["version"], release.version(), "{release}");
        let (status, _) = get(&format!("/v{}/info", release.latest_api() + 1)).await;
        assert_eq!(status, 404, "{release}: a version it does not offer");

        broker.stop().await;
    }
}

#[tokio::test]
async fn all_flink_types_arrive_as_typed_values() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = "SELECT 1 AS c_int, 'a' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool, CAST(7 AS BIGINT) AS c_bigint, ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date, TIME '03:04:05' AS c_time, TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts, TO_TIMESTAMP_LTZ(0, 3) AS c_ltz, CAST(1.5 AS DECIMAL(10,2)) AS c_dec, CAST(2.5 AS DOUBLE) AS c_double, X'CAFE' AS c_bytes";
    let job = submit(&mut client, sql(script, RuntimeMode::Batch)).await;
    let streamed = stream_results(&mut client, request(&job)).await;
    assert_eq!(streamed.rows.len(), 1);
    let columns: HashMap<&str, usize> = streamed
        .schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let row = &streamed.rows[0];
    let value = |name: &str| row.values[columns[name]].kind.clone().expect("value set");
    assert_eq!(value("c_int"), Kind::IntValue(1));
    assert_eq!(value("c_str"), Kind::StringValue("a".into()));
    assert!(matches!(value("c_null"), Kind::NullValue(_)));
    assert_eq!(value("c_bool"), Kind::BoolValue(true));
    assert_eq!(value("c_bigint"), Kind::IntValue(7));
    match value("c_arr") {
        Kind::ArrayValue(array) => {
            assert_eq!(array.elements.iter().map(int).collect::<Vec<_>>(), [1, 2]);
        }
        other => panic!("array expected, got {other:?}"),
    }
    match value("c_map") {
        Kind::MapValue(map) => {
            assert_eq!(map.entries.len(), 1);
            let entry = &map.entries[0];
            assert_eq!(
                entry.key.as_ref().and_then(|k| k.kind.clone()),
                Some(Kind::StringValue("k".into()))
            );
            assert_eq!(entry.value.as_ref().map(int), Some(1));
        }
        other => panic!("map expected, got {other:?}"),
    }
    match value("c_row") {
        Kind::RowValue(fields) => {
            assert_eq!(int(&fields.fields[0]), 1);
            assert_eq!(fields.fields[1].kind, Some(Kind::StringValue("x".into())));
        }
        other => panic!("row expected, got {other:?}"),
    }
    // 2024-01-02 is day 19724 after 1970-01-01.
    assert_eq!(value("c_date"), Kind::DateValue(19724));
    assert_eq!(
        value("c_time"),
        Kind::TimeValue((3 * 3600 + 4 * 60 + 5) * 1_000_000_000)
    );
    match value("c_ts") {
        Kind::TimestampValue(ts) => {
            assert_eq!(ts.seconds, 1_704_164_645);
            assert_eq!(ts.nanos, 678_000_000);
        }
        other => panic!("timestamp expected, got {other:?}"),
    }
    match value("c_ltz") {
        Kind::InstantValue(ts) => assert_eq!((ts.seconds, ts.nanos), (0, 0)),
        other => panic!("instant expected, got {other:?}"),
    }
    assert_eq!(value("c_dec"), Kind::DecimalValue("1.50".into()));
    assert_eq!(value("c_double"), Kind::DoubleValue(2.5));
    assert_eq!(value("c_bytes"), Kind::BytesValue(vec![0xca, 0xfe]));
    let dec_type = streamed.schema.columns[columns["c_dec"]]
        .r#type
        .clone()
        .expect("type");
    assert_eq!((dec_type.precision, dec_type.scale), (Some(10), Some(2)));
    broker.stop().await;
}

#[tokio::test]
async fn same_request_id_returns_the_same_job_and_a_different_payload_is_rejected() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut first = sql("SELECT 42 AS answer", RuntimeMode::Batch);
    first.request_id = "answer-1".into();
    first.labels.insert("team".into(), "recs".into());
    let job = submit(&mut client, first.clone()).await;
    let again = submit(&mut client, first.clone()).await;
    assert_eq!(job.id, again.id);

    let mut different = first.clone();
    different.script = "SELECT 43 AS answer".into();
    let error = client.submit_sql(different).await.expect_err("conflict");
    assert_eq!(error.code(), Code::AlreadyExists);
    assert!(error.message().contains("answer-1"), "{}", error.message());

    let streamed = stream_results(&mut client, request(&job)).await;
    assert_eq!(int(&streamed.rows[0].values[0]), 42);
    // Only one job ran.
    assert_eq!(broker.standin.statements().len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn failing_statement_fails_the_job_with_its_root_cause_and_stops_the_script() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!("{BOUNDED_GEN};\nSELEC 1;\nSELECT * FROM gen;");
    let job = submit(&mut client, sql(&script, RuntimeMode::Batch)).await;
    let (_, failed) = watch_to_end(&mut client, &job.id).await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.state_reason.starts_with("statement 2 failed"),
        "{}",
        failed.state_reason
    );
    let statement = &failed.statements[1];
    assert_eq!(statement.state(), StatementState::Failed);
    // The gateway's root cause, as the real gateway reports `SELEC 1`.
    assert_eq!(
        statement.error,
        "SQL parse failed. Non-query expression encountered in illegal context"
    );
    assert!(
        !statement.error.contains("at org.apache"),
        "{}",
        statement.error
    );
    assert_eq!(failed.statements[2].state(), StatementState::Pending);
    assert_eq!(
        broker.standin.statements().len(),
        2,
        "nothing after the failure"
    );
    eventually("the gateway session closed", LIMIT, || async {
        (broker.standin.open_session_count() == 0).then_some(())
    })
    .await;
    let error = client
        .stream_operation_results(request(&failed))
        .await
        .expect_err("a failed job has no results");
    assert_eq!(error.code(), Code::FailedPrecondition);
    broker.stop().await;
}

#[tokio::test]
async fn validation_error_names_line_and_column() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(
        &mut client,
        sql("SELECT * FROM no_such_table", RuntimeMode::Batch),
    )
    .await;
    let (_, failed) = watch_to_end(&mut client, &job.id).await;
    assert_eq!(failed.state(), JobState::Failed);
    let error = &failed.statements[0].error;
    assert!(
        error.contains(
            "From line 1, column 15 to line 1, column 27: Object 'no_such_table' not found"
        ),
        "{error}"
    );
    assert!(!error.contains("at org.apache"), "{error}");
    broker.stop().await;
}

#[tokio::test]
async fn insert_runs_under_its_derived_flink_job_id_until_the_flink_job_finishes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!(
        "{BOUNDED_GEN};\nCREATE TABLE print_sink (id INT, name STRING, price DOUBLE, ts TIMESTAMP(3)) WITH ('connector'='print');\nINSERT INTO print_sink SELECT * FROM gen;"
    );
    let job = submit(&mut client, sql(&script, RuntimeMode::Streaming)).await;
    let expected = job
        .id
        .parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement(2);
    let (states, finished) = watch_to_end(&mut client, &job.id).await;
    assert_eq!(
        finished.state(),
        JobState::Finished,
        "{}",
        finished.state_reason
    );
    assert!(states.contains(&JobState::Running), "{states:?}");
    assert_eq!(finished.statements[2].flink_job_id, expected);
    let running = finished
        .history
        .iter()
        .find(|entry| entry.state() == JobState::Running)
        .expect("a RUNNING entry");
    assert!(running.reason.contains(&expected), "{}", running.reason);
    let sent = broker.standin.statements();
    assert_eq!(
        sent[2].execution_config.get("$internal.pipeline.job-id"),
        Some(&expected)
    );
    assert!(
        broker
            .standin
            .flink_jobs()
            .iter()
            .any(|(id, status)| id == &expected && status == "FINISHED"),
        "the gateway ran the job under the pinned id to its end: {:?}",
        broker.standin.flink_jobs()
    );
    broker.stop().await;
}

#[tokio::test]
async fn flink_job_failing_in_the_cluster_fails_the_job_with_the_root_cause() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!(
        "{UNBOUNDED_GEN};\nCREATE TABLE bh_sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO bh_sink SELECT * FROM gen_unbounded;"
    );
    let job = submit(&mut client, sql(&script, RuntimeMode::Streaming)).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let flink_job_id = running.statements[2].flink_job_id.clone();
    assert!(
        broker
            .standin
            .fail_flink_job(&flink_job_id, "java.lang.RuntimeException: poison row"),
        "the flink job runs"
    );
    let (_, failed) = watch_to_end(&mut client, &job.id).await;
    assert_eq!(failed.state(), JobState::Failed);
    assert!(
        failed.state_reason.contains("poison row"),
        "{}",
        failed.state_reason
    );
    assert!(
        failed.state_reason.contains(&flink_job_id),
        "{}",
        failed.state_reason
    );
    broker.stop().await;
}

#[tokio::test]
async fn streaming_aggregation_streams_changelog_row_kinds() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = "CREATE TABLE gen_keys (k INT, v INT) WITH ('connector'='datagen', 'number-of-rows'='30', 'fields.k.min'='1', 'fields.k.max'='3', 'fields.v.min'='1', 'fields.v.max'='9');\nSELECT k, COUNT(*) AS cnt, SUM(v) AS total FROM gen_keys GROUP BY k;";
    let job = submit(&mut client, sql(script, RuntimeMode::Streaming)).await;
    let streamed = stream_results(&mut client, request(&job)).await;
    assert_eq!(streamed.end.reason(), Reason::EndOfResults);
    let kinds: Vec<RowKind> = streamed.rows.iter().map(|r| r.kind()).collect();
    assert!(kinds.contains(&RowKind::Insert));
    assert!(kinds.contains(&RowKind::UpdateBefore));
    assert!(kinds.contains(&RowKind::UpdateAfter));
    // The changelog adds up: per key, the last UPDATE_AFTER (or INSERT) counts all rows.
    let mut last: HashMap<i64, i64> = HashMap::new();
    for row in &streamed.rows {
        if matches!(row.kind(), RowKind::Insert | RowKind::UpdateAfter) {
            last.insert(int(&row.values[0]), int(&row.values[1]));
        }
    }
    assert_eq!(last.values().sum::<i64>(), 30);
    broker.stop().await;
}

#[tokio::test]
async fn unbounded_query_stops_at_max_rows_and_resumes_from_the_offset() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!("{UNBOUNDED_GEN};\nSELECT * FROM gen_unbounded;");
    let job = submit(&mut client, sql(&script, RuntimeMode::Streaming)).await;

    let mut first = request(&job);
    first.max_rows = 5;
    let streamed = stream_results(&mut client, first).await;
    assert_eq!(streamed.end.reason(), Reason::RowLimitReached);
    assert_eq!(streamed.rows.len(), 5);
    assert_eq!(streamed.end.next_row_offset, 5);
    let ids: Vec<i64> = streamed.rows.iter().map(|r| int(&r.values[0])).collect();

    let mut resumed = request(&job);
    resumed.max_rows = 3;
    resumed.resume_from_row = 5;
    let more = stream_results(&mut client, resumed).await;
    assert_eq!(more.end.reason(), Reason::RowLimitReached);
    assert_eq!(more.offsets.first(), Some(&5));
    let next: Vec<i64> = more.rows.iter().map(|r| int(&r.values[0])).collect();
    assert_eq!(next, [ids[4] + 1, ids[4] + 2, ids[4] + 3]);

    // Again from row 2: still inside the pages the gateway serves again.
    let mut again = request(&job);
    again.max_rows = 2;
    again.resume_from_row = 2;
    let replay = stream_results(&mut client, again).await;
    assert_eq!(
        replay
            .rows
            .iter()
            .map(|r| int(&r.values[0]))
            .collect::<Vec<_>>(),
        [ids[2], ids[3]]
    );

    let mut too_far = request(&job);
    too_far.resume_from_row = 1_000_000;
    let error = client
        .stream_operation_results(too_far)
        .await
        .expect_err("beyond what was sent");
    assert_eq!(error.code(), Code::OutOfRange);
    assert!(
        error.message().contains("resume_from_row"),
        "{}",
        error.message()
    );

    broker::cancel(&mut client, &job.id).await;
    broker.stop().await;
}

#[tokio::test]
async fn max_duration_ends_a_quiet_stream_with_the_time_limit() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = "CREATE TABLE slow (id INT) WITH ('connector'='datagen', 'rows-per-second'='1');\nSELECT * FROM slow;";
    let job = submit(&mut client, sql(script, RuntimeMode::Streaming)).await;
    let mut limited = request(&job);
    limited.max_duration = Some(prost_types::Duration {
        seconds: 1,
        nanos: 0,
    });
    let streamed = stream_results(&mut client, limited).await;
    assert_eq!(streamed.end.reason(), Reason::TimeLimitReached);
    assert_eq!(streamed.end.rows_sent, streamed.rows.len() as u64);
    let canceled = broker::cancel(&mut client, &job.id).await;
    assert_eq!(canceled.state(), JobState::Canceling);
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_query_and_its_flink_jobs_and_repeating_it_changes_nothing() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let script = format!(
        "{UNBOUNDED_GEN};\nCREATE TABLE bh_sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO bh_sink SELECT * FROM gen_unbounded;\nSELECT * FROM gen_unbounded;"
    );
    let job = submit(&mut client, sql(&script, RuntimeMode::Streaming)).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;

    // A reader that has its schema and waits for rows when the job is cancelled.
    let mut reader = client
        .stream_operation_results(request(&running))
        .await
        .expect("reader")
        .into_inner();
    let first = reader.message().await.expect("message").expect("schema");
    assert!(matches!(first.message, Some(Message::Schema(_))));
    let read = tokio::spawn(async move {
        loop {
            match reader
                .message()
                .await
                .expect("stream")
                .expect("an end message")
            {
                flinkbroker_proto::StreamOperationResultsResponse {
                    message: Some(Message::End(end)),
                } => return end,
                _ => continue,
            }
        }
    });
    let canceled = broker::cancel(&mut client, &job.id).await;
    assert_eq!(canceled.state(), JobState::Canceling);
    let end = read.await.expect("reader");
    assert_eq!(end.reason(), Reason::Canceled);
    let canceled = wait_for_state(&client, &job.id, JobState::Canceled).await;
    assert_eq!(
        canceled.state_reason,
        "canceled by request; every flink job it started has stopped"
    );

    let insert_job = &running.statements[2].flink_job_id;
    let query_job = &running.statements[3].flink_job_id;
    let flink_jobs = broker.standin.flink_jobs();
    for stopped in [insert_job, query_job] {
        assert!(
            flink_jobs
                .iter()
                .any(|(id, status)| id == stopped && status == "CANCELED"),
            "{stopped}: {flink_jobs:?}"
        );
    }
    eventually("the gateway session closed", LIMIT, || async {
        (broker.standin.open_session_count() == 0).then_some(())
    })
    .await;

    let again = broker::cancel(&mut client, &job.id).await;
    assert_eq!(again.state(), JobState::Canceled);
    assert_eq!(again.update_time, canceled.update_time);
    assert_eq!(again.history.len(), canceled.history.len());
    broker.stop().await;
}

#[tokio::test]
async fn cancel_stops_flink_jobs_through_the_gateway_when_the_jobmanager_is_down() {
    let broker = TestBroker::start_options(broker::Options {
        refuse_jobmanager_cancels: true,
        ..broker::Options::default()
    })
    .await;
    let mut client = broker.client().await;
    let script = format!(
        "{UNBOUNDED_GEN};\nCREATE TABLE bh_sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO bh_sink SELECT * FROM gen_unbounded;"
    );
    let job = submit(&mut client, sql(&script, RuntimeMode::Streaming)).await;
    let running = wait_for_state(&client, &job.id, JobState::Running).await;
    let flink_job_id = running.statements[2].flink_job_id.clone();
    let canceled = broker::cancel(&mut client, &job.id).await;
    assert_eq!(canceled.state(), JobState::Canceling);
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    let stop = format!("STOP JOB '{flink_job_id}'");
    assert!(
        broker
            .standin
            .statements()
            .iter()
            .any(|s| s.statement == stop),
        "the gateway was asked to {stop}"
    );
    assert!(
        broker
            .standin
            .flink_jobs()
            .iter()
            .any(|(id, status)| id == &flink_job_id && status != "RUNNING"),
        "{:?}",
        broker.standin.flink_jobs()
    );
    broker.stop().await;
}

#[tokio::test]
async fn watch_job_streams_each_state_in_order_until_the_end() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql("SELECT 1", RuntimeMode::Batch)).await;
    let mut watch = client.clone();
    let watcher = tokio::spawn({
        let id = job.id.clone();
        async move { watch_to_end(&mut watch, &id).await }
    });
    stream_results(&mut client, request(&job)).await;
    let (states, last) = watcher.await.expect("watcher");
    assert_eq!(states.last(), Some(&JobState::Finished));
    let order = [
        JobState::Pending,
        JobState::Submitting,
        JobState::Running,
        JobState::Finished,
    ];
    let positions: Vec<usize> = states
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("known state"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{states:?}");
    let history: Vec<JobState> = last.history.iter().map(|t| t.state()).collect();
    assert_eq!(history, order);
    broker.stop().await;
}

#[tokio::test]
async fn list_jobs_filters_by_state_kind_and_label_and_pages() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut request = sql("SET 'parallelism.default' = '1'", RuntimeMode::Streaming);
        request.labels.insert(
            "batch".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        ids.push(submit(&mut client, request).await.id);
    }
    for id in &ids {
        wait_for_state(&client, id, JobState::Finished).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_jobs(ListJobsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..ListJobsRequest::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.jobs.len() <= 2);
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen.len(), 5);
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(sorted_seen, sorted_ids);

    let even = client
        .list_jobs(ListJobsRequest {
            labels: [("batch".to_string(), "even".to_string())].into(),
            states: vec![JobState::Finished as i32],
            kind: flinkbroker_proto::JobKind::Sql as i32,
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(even.jobs.len(), 3);
    let running = client
        .list_jobs(ListJobsRequest {
            states: vec![JobState::Running as i32],
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(running.jobs.is_empty());
    let error = client
        .list_jobs(ListJobsRequest {
            page_token: "not-a-token".into(),
            ..ListJobsRequest::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("page_token"),
        "{}",
        error.message()
    );
    broker.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_naming_the_field() {
    let broker =
        TestBroker::start_with(StandinConfig::default(), &["--max-script-bytes", "1000"]).await;
    let mut client = broker.client().await;
    let cases: Vec<(SubmitSqlRequest, Code, &str)> = vec![
        (
            sql("", RuntimeMode::Batch),
            Code::InvalidArgument,
            "script: must not be empty",
        ),
        (
            sql("  \n ", RuntimeMode::Batch),
            Code::InvalidArgument,
            "script: must not be empty",
        ),
        (
            sql("-- nothing\n;;", RuntimeMode::Batch),
            Code::InvalidArgument,
            "script: contains no statements",
        ),
        (
            sql(
                &format!("SELECT '{}'", "x".repeat(1000)),
                RuntimeMode::Batch,
            ),
            Code::InvalidArgument,
            "script: 1009 bytes exceeds the limit of 1000 bytes",
        ),
        (
            sql("SELECT 'open", RuntimeMode::Batch),
            Code::InvalidArgument,
            "script: unterminated string literal",
        ),
        (
            SubmitSqlRequest {
                script: "SELECT 1".into(),
                runtime_mode: 7,
                ..SubmitSqlRequest::default()
            },
            Code::InvalidArgument,
            "runtime_mode: unknown value 7",
        ),
        (
            SubmitSqlRequest {
                script: "SELECT 1".into(),
                properties: [("bad key".to_string(), "1".to_string())].into(),
                ..SubmitSqlRequest::default()
            },
            Code::InvalidArgument,
            "properties: key \"bad key\"",
        ),
        (
            SubmitSqlRequest {
                script: "SELECT 1".into(),
                request_id: "no spaces please".into(),
                ..SubmitSqlRequest::default()
            },
            Code::InvalidArgument,
            "request_id:",
        ),
        (
            SubmitSqlRequest {
                script: "SELECT 1".into(),
                labels: [("-x".to_string(), "1".to_string())].into(),
                ..SubmitSqlRequest::default()
            },
            Code::InvalidArgument,
            "labels:",
        ),
    ];
    for (request, code, message) in cases {
        let error = client.submit_sql(request).await.expect_err(message);
        assert_eq!(error.code(), code, "{message}: {}", error.message());
        assert!(
            error.message().starts_with(message),
            "expected {message:?}, got {:?}",
            error.message()
        );
    }
    assert!(
        broker.standin.statements().is_empty(),
        "nothing reached the gateway"
    );

    let unknown = "3f2d9c1e-0000-4000-8000-000000000000";
    let error = client
        .get_job(GetJobRequest {
            job_id: unknown.into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(error.code(), Code::NotFound);
    assert!(error.message().contains(unknown));
    let error = client
        .get_job(GetJobRequest {
            job_id: "job-1".into(),
        })
        .await
        .expect_err("malformed");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("job_id:"));
    let error = client
        .cancel_job(CancelJobRequest {
            job_id: unknown.into(),
            ..CancelJobRequest::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(error.code(), Code::NotFound);

    let job = submit(
        &mut client,
        sql(
            "CREATE TABLE t (x INT) WITH ('connector'='blackhole');\nSELECT 1",
            RuntimeMode::Batch,
        ),
    )
    .await;
    let mut negative = request(&job);
    negative.max_rows = -1;
    let error = client
        .stream_operation_results(negative)
        .await
        .expect_err("negative");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("max_rows:"));
    let mut out_of_range = request(&job);
    out_of_range.statement_index = Some(9);
    let error = client
        .stream_operation_results(out_of_range)
        .await
        .expect_err("index");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("statement_index:"));
    let mut no_rows = request(&job);
    no_rows.statement_index = Some(0);
    let error = client
        .stream_operation_results(no_rows)
        .await
        .expect_err("ddl");
    assert_eq!(error.code(), Code::FailedPrecondition);
    broker.stop().await;
}
