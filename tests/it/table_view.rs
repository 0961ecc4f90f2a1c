//! StreamOperationResults with view TABLE, against the stand-in: a streaming GROUP BY read as
//! a table equals its changelog applied by hand, at several offsets of a running job, after a
//! broker restart, through the CLI; the table's bound and the refusals.

use crate::support::broker;

use std::collections::HashMap;
use std::time::Duration;

use broker::{TestBroker, eventually, sql, submit, wait_for_state};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::stream_end::Reason;
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    GetJobRequest, Job, JobState, ResultEncoding, ResultView, Row, RowKind, RuntimeMode, StreamEnd,
    StreamOperationResultsRequest,
};
use flinkbroker_testkit::standin::StandinConfig;
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

type Client = JobServiceClient<Channel>;

const LIMIT: Duration = Duration::from_secs(30);

const BOUNDED: &str = "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', 'number-of-rows'='300', 'fields.user_id.min'='1', 'fields.user_id.max'='6', 'fields.url.length'='8');\nSELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id";
const UNBOUNDED: &str = "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', 'rows-per-second'='200', 'fields.user_id.min'='1', 'fields.user_id.max'='6', 'fields.url.length'='8');\nSELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id";

/// The changelog applied by hand: each distinct row with how many times it is held, in the
/// order rows first appeared.
fn apply(changelog: &[Row]) -> Vec<Row> {
    let mut held: Vec<(Vec<u8>, Row, u64)> = Vec::new();
    for row in changelog {
        let key = Row {
            kind: 0,
            values: row.values.clone(),
        }
        .encode_to_vec();
        let at = held.iter().position(|(k, _, _)| *k == key);
        match (RowKind::try_from(row.kind), at) {
            (Ok(RowKind::UpdateBefore | RowKind::Delete), Some(at)) => {
                held[at].2 -= 1;
                if held[at].2 == 0 {
                    held.remove(at);
                }
            }
            (Ok(RowKind::UpdateBefore | RowKind::Delete), None) => {
                panic!("a retraction of a row the table does not hold: {row:?}")
            }
            (_, Some(at)) => held[at].2 += 1,
            (_, None) => held.push((
                key,
                Row {
                    kind: RowKind::Insert as i32,
                    values: row.values.clone(),
                },
                1,
            )),
        }
    }
    held.into_iter()
        .flat_map(|(_, row, n)| std::iter::repeat_n(row, n as usize))
        .collect()
}

/// A stream read to its end.
#[derive(Default)]
struct Read {
    snapshot: Vec<Row>,
    as_of: Option<u64>,
    /// Changes after the snapshot (or the changelog), with the offset of each batch's first.
    changes: Vec<(u64, Vec<Row>)>,
    end: StreamEnd,
}

impl Read {
    fn rows(&self) -> Vec<Row> {
        self.changes.iter().flat_map(|(_, r)| r.clone()).collect()
    }
}

async fn read(client: &mut Client, request: StreamOperationResultsRequest) -> Read {
    let mut stream = client
        .stream_operation_results(request)
        .await
        .expect("stream starts")
        .into_inner();
    let mut read = Read::default();
    let mut snapshot_done = false;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("in time")
            .expect("message")
            .expect("an end message");
        match message.message.expect("set") {
            Message::Snapshot(snapshot) => {
                assert!(!snapshot_done, "one snapshot, before the changes");
                assert!(read.changes.is_empty(), "the snapshot comes first");
                if let Some(as_of) = read.as_of {
                    assert_eq!(as_of, snapshot.as_of_row_offset, "one offset per snapshot");
                }
                read.as_of = Some(snapshot.as_of_row_offset);
                assert!(
                    snapshot
                        .rows
                        .iter()
                        .all(|r| r.kind == RowKind::Insert as i32)
                );
                read.snapshot.extend(snapshot.rows);
                snapshot_done = snapshot.last;
            }
            Message::Rows(batch) => {
                if read.as_of.is_some() {
                    assert!(snapshot_done, "changes after the whole snapshot");
                }
                read.changes.push((batch.first_row_offset, batch.rows));
            }
            Message::End(end) => {
                read.end = end;
                return read;
            }
            _ => {}
        }
    }
}

fn request(job: &Job, view: ResultView) -> StreamOperationResultsRequest {
    StreamOperationResultsRequest {
        job_id: job.id.clone(),
        view: view as i32,
        ..StreamOperationResultsRequest::default()
    }
}

async fn rows_logged(client: &Client, job: &Job) -> u64 {
    let job = client
        .clone()
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    job.statements
        .last()
        .and_then(|s| s.result_log.as_ref())
        .map_or(0, |log| log.rows_logged)
}

#[tokio::test]
async fn a_finished_group_by_reads_as_its_changelog_applied_before_and_after_a_restart() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(BOUNDED, RuntimeMode::Streaming)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let changelog = read(&mut client, request(&job, ResultView::Changelog)).await;
    let all = changelog.rows();
    assert!(
        all.iter().any(|r| r.kind == RowKind::UpdateBefore as i32),
        "a changelog with retractions"
    );
    let expected = apply(&all);
    assert_eq!(expected.len(), 6, "one row per user: {expected:?}");

    let table = read(&mut client, request(&job, ResultView::Table)).await;
    assert_eq!(table.as_of, Some(all.len() as u64));
    assert_eq!(table.snapshot, expected);
    assert!(table.changes.is_empty(), "nothing after the end");
    assert_eq!(table.end.reason(), Reason::EndOfResults);
    assert_eq!(table.end.next_row_offset, all.len() as u64);

    // The table is built from the log: a restarted broker serves the same.
    let broker = broker.restart().await;
    let mut client = broker.client().await;
    let again = read(&mut client, request(&job, ResultView::Table)).await;
    assert_eq!(again.snapshot, expected);

    // Through the CLI: the table printed as JSON.
    let server = format!("http://{}", broker.addr);
    let output = tokio::task::spawn_blocking(move || {
        let mut command = assert_cmd::Command::cargo_bin("flinkbroker").expect("binary");
        command.env_remove("FLINKBROKER_TOKEN");
        command
            .env("FLINKBROKER_SERVER", server)
            .args(["results", &job.id, "--view", "table", "--format", "json"])
            .output()
            .expect("runs")
    })
    .await
    .expect("joined");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let printed = printed.as_array().expect("rows");
    assert_eq!(printed.len(), expected.len());
    let counts: HashMap<i64, i64> = expected
        .iter()
        .map(|r| {
            let int = |v: &flinkbroker_proto::Value| match v.kind {
                Some(flinkbroker_proto::value::Kind::IntValue(i)) => i,
                ref other => panic!("{other:?}"),
            };
            (int(&r.values[0]), int(&r.values[1]))
        })
        .collect();
    for row in printed {
        let user = row["user_id"].as_i64().expect("user_id");
        assert_eq!(row["clicks"].as_i64(), Some(counts[&user]), "{row}");
    }

    // sql run --follow --view table: a new run's table counts each of the 300 clicks once.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("clicks.sql");
    std::fs::write(&file, BOUNDED).expect("script");
    let server = format!("http://{}", broker.addr);
    let output = tokio::task::spawn_blocking(move || {
        let mut command = assert_cmd::Command::cargo_bin("flinkbroker").expect("binary");
        command.env_remove("FLINKBROKER_TOKEN");
        command
            .env("FLINKBROKER_SERVER", server)
            .args(["sql", "run", "-f"])
            .arg(&file)
            .args(["--follow", "--view", "table", "--format", "json"])
            .output()
            .expect("runs")
    })
    .await
    .expect("joined");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let printed = printed.as_array().expect("rows");
    assert_eq!(printed.len(), 6, "{printed:?}");
    let total: i64 = printed.iter().filter_map(|r| r["clicks"].as_i64()).sum();
    assert_eq!(total, 300);
    broker.stop().await;
}

#[tokio::test]
async fn a_running_group_by_reads_as_a_snapshot_then_its_changes_at_several_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(UNBOUNDED, RuntimeMode::Streaming)).await;
    let mut last_as_of = 0;
    for wanted in [30, 120] {
        eventually("rows logged", LIMIT, || {
            let client = &client;
            let job = &job;
            async move { (rows_logged(client, job).await >= wanted).then_some(()) }
        })
        .await;
        let table = read(
            &mut client,
            StreamOperationResultsRequest {
                max_rows: 20,
                ..request(&job, ResultView::Table)
            },
        )
        .await;
        let as_of = table.as_of.expect("a snapshot");
        assert!(as_of >= wanted && as_of > last_as_of, "{as_of}");
        last_as_of = as_of;
        assert_eq!(table.end.reason(), Reason::RowLimitReached);
        let changes = table.rows();
        assert_eq!(changes.len(), 20, "max_rows counts the changes");
        assert_eq!(
            table.changes.first().map(|c| c.0),
            Some(as_of),
            "changes follow"
        );
        assert_eq!(table.end.next_row_offset, as_of + 20);
        // The snapshot is the changelog up to its offset applied; with the changes after it,
        // the changelog up to the end of the stream.
        let changelog = read(
            &mut client,
            StreamOperationResultsRequest {
                max_rows: i64::try_from(as_of + 20).expect("rows"),
                ..request(&job, ResultView::Changelog)
            },
        )
        .await
        .rows();
        assert_eq!(
            table.snapshot,
            apply(&changelog[..as_of as usize]),
            "at {as_of}"
        );
        let mut replayed = table.snapshot.clone();
        replayed.extend(changes);
        let mut direct = apply(&changelog);
        let mut through_snapshot = apply(&replayed);
        direct.sort_by_key(|r| r.encode_to_vec());
        through_snapshot.sort_by_key(|r| r.encode_to_vec());
        assert_eq!(through_snapshot, direct);
    }
    broker::cancel(&mut client, &job.id).await;
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_table_past_its_bound_is_refused_and_its_changelog_stays_readable() {
    let broker = TestBroker::start_with(StandinConfig::default(), &["--max-table-rows", "3"]).await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(BOUNDED, RuntimeMode::Streaming)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let mut stream = client
        .stream_operation_results(request(&job, ResultView::Table))
        .await
        .expect("stream starts")
        .into_inner();
    let error = loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without the refusal"),
            Err(status) => break status,
        }
    };
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error
            .message()
            .contains("more than 3 distinct rows (--max-table-rows)"),
        "{}",
        error.message()
    );
    let changelog = read(&mut client, request(&job, ResultView::Changelog)).await;
    assert_eq!(changelog.end.reason(), Reason::EndOfResults);

    let refused = client
        .stream_operation_results(StreamOperationResultsRequest {
            resume_from_row: 5,
            ..request(&job, ResultView::Table)
        })
        .await
        .expect_err("no resumption of a table");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("resume_from_row:"),
        "{}",
        refused.message()
    );
    let refused = client
        .stream_operation_results(StreamOperationResultsRequest {
            encoding: ResultEncoding::Arrow as i32,
            ..request(&job, ResultView::Table)
        })
        .await
        .expect_err("a table as arrow");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("encoding:"),
        "{}",
        refused.message()
    );
    broker.stop().await;
}

/// Runs the CLI binary with a terminal as its standard output (`script`), so that it shows a
/// live table; returns its exit status and what the terminal received.
async fn on_a_terminal(server: String, args: Vec<String>) -> (bool, String) {
    let binary = assert_cmd::cargo::cargo_bin("flinkbroker");
    let command_line = std::iter::once(binary.display().to_string())
        .chain(args)
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("script")
            .args(["-qec", &command_line, "/dev/null"])
            .env("FLINKBROKER_SERVER", server)
            .env_remove("FLINKBROKER_TOKEN")
            .output()
            .expect("script runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    })
    .await
    .expect("joined")
}

#[tokio::test]
async fn the_cli_follows_a_running_table_live_on_a_terminal_and_prints_it_at_the_end() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = submit(&mut client, sql(UNBOUNDED, RuntimeMode::Streaming)).await;
    eventually("rows logged", LIMIT, || {
        let client = &client;
        let job = &job;
        // Every one of the 6 users has appeared long before (the users are drawn at random).
        async move { (rows_logged(client, job).await >= 200).then_some(()) }
    })
    .await;
    let server = format!("http://{}", broker.addr);
    let (ok, screen) = on_a_terminal(
        server.clone(),
        [
            "results",
            &job.id,
            "--view",
            "table",
            "--follow",
            "--max-rows",
            "60",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert!(ok, "{screen}");
    assert!(screen.contains('\u{1b}'), "drawn in place: {screen:?}");
    // The final table: one row per user, no row kind column.
    let final_table = screen.rsplit("user_id").next().expect("a table");
    let rows = final_table.lines().filter(|l| l.starts_with('│')).count();
    assert_eq!(rows, 6, "{screen}");
    assert!(!screen.contains("+U"), "a table has no row kinds: {screen}");

    // Without --follow: the table as of now, printed once.
    let (ok, now) = on_a_terminal(
        server,
        ["results", &job.id, "--view", "table", "--format", "json"]
            .map(str::to_owned)
            .to_vec(),
    )
    .await;
    assert!(ok, "{now}");
    let json_start = now.find('[').expect("a JSON array");
    let printed: serde_json::Value =
        serde_json::from_str(now[json_start..].lines().next().expect("line").trim()).expect("JSON");
    assert_eq!(printed.as_array().map(Vec::len), Some(6), "{now}");
    broker::cancel(&mut client, &job.id).await;
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}
