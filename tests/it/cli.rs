//! The client commands of the `flinkbroker` binary, end to end: the real binary talks gRPC to a
//! broker served on the SQL Gateway stand-in.

use crate::support::broker;
use crate::support::callers;

use std::path::Path;

use broker::TestBroker;
use callers::CallersBroker;
use serde_json::Value as Json;

/// A bounded datagen table of 20 rows with a sequence id, a string and a double.
const CLICKS: &str = "CREATE TABLE clicks (id INT, url STRING, score DOUBLE) WITH ('connector'='datagen', 'number-of-rows'='20', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='20');
SELECT * FROM clicks;";

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` against `server` (off the test's runtime, which serves the
/// broker meanwhile).
async fn flinkbroker(server: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = assert_cmd::Command::cargo_bin("flinkbroker").expect("binary");
    command.env_remove("FLINKBROKER_TOKEN");
    command.env("FLINKBROKER_SERVER", server).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joined");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn server(broker: &TestBroker) -> String {
    format!("http://{}", broker.addr)
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("script");
    path.display().to_string()
}

#[tokio::test]
async fn sql_run_follows_the_job_and_prints_its_results_in_every_format() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(dir.path(), "clicks.sql", CLICKS);

    let csv = flinkbroker(
        &server,
        &[
            "sql", "run", "-f", &file, "--batch", "--follow", "--format", "csv",
        ],
        &[],
    )
    .await;
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines.len(), 21, "a header and 20 rows: {}", csv.stdout);
    assert_eq!(lines[0], "id,url,score");
    assert!(lines[1].starts_with("1,"), "{}", lines[1]);
    assert!(lines[20].starts_with("20,"), "{}", lines[20]);
    // Progress went to stderr as plain lines (stdout is not a terminal), ending FINISHED.
    assert!(csv.stderr.contains("submitted job"), "{}", csv.stderr);
    assert!(
        csv.stderr
            .lines()
            .any(|l| l.contains("FINISHED · statement 2/2 · 20 rows logged")),
        "{}",
        csv.stderr
    );

    let json = flinkbroker(
        &server,
        &[
            "sql", "run", "-f", &file, "--batch", "--follow", "--format", "json",
        ],
        &[],
    )
    .await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let rows: Vec<Json> = serde_json::from_str(&json.stdout).expect("a JSON array");
    assert_eq!(rows.len(), 20);
    assert_eq!(rows[0]["id"], Json::from(1));
    assert!(
        rows[0]["url"].is_string() && rows[0]["score"].is_number(),
        "{}",
        rows[0]
    );

    let jsonl = flinkbroker(
        &server,
        &[
            "sql", "run", "-f", &file, "--batch", "--follow", "--format", "jsonl",
        ],
        &[],
    )
    .await;
    assert_eq!(jsonl.code, 0, "{}", jsonl.stderr);
    let ids: Vec<i64> = jsonl
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<Json>(line).expect("one object a line")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());

    let table = flinkbroker(
        &server,
        &["sql", "run", "-f", &file, "--batch", "--follow"],
        &[],
    )
    .await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let header = table
        .stdout
        .lines()
        .find(|l| l.contains("url"))
        .expect("a header line");
    for column in ["op", "id", "url", "score"] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(
        table.stdout.lines().filter(|l| l.contains("+I")).count(),
        20,
        "{}",
        table.stdout
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_failing_job_exits_1_naming_its_root_cause_in_one_line() {
    let broker = TestBroker::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(dir.path(), "bad.sql", "SELEC 1;");
    let run = flinkbroker(
        &server(&broker),
        &["sql", "run", "-f", &file, "--batch", "--follow"],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(error.len(), 1, "{}", run.stderr);
    assert!(
        error[0].contains("FAILED")
            && error[0].contains("statement 0: ")
            && error[0].contains("SQL parse failed"),
        "{}",
        error[0]
    );
    assert!(run.stdout.is_empty(), "no results: {}", run.stdout);
    broker.stop().await;
}

#[tokio::test]
async fn jobs_are_listed_read_from_an_offset_and_cancelled() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(dir.path(), "clicks.sql", CLICKS);
    let submitted = flinkbroker(
        &server,
        &[
            "sql",
            "run",
            "-f",
            &file,
            "--batch",
            "--label",
            "team=recs",
            "--request-id",
            "nightly",
        ],
        &[],
    )
    .await;
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.stdout.trim().to_owned();
    assert_eq!(id.len(), 36, "a job id: {id}");

    // Watch to the end: exit 0 for a finished job.
    let watched = flinkbroker(&server, &["jobs", "watch", &id], &[]).await;
    assert_eq!(watched.code, 0, "{}", watched.stderr);
    assert!(watched.stdout.contains("FINISHED"), "{}", watched.stdout);

    let results = flinkbroker(
        &server,
        &["results", &id, "--from-row", "15", "--format", "jsonl"],
        &[],
    )
    .await;
    assert_eq!(results.code, 0, "{}", results.stderr);
    assert_eq!(
        results.stdout.lines().count(),
        5,
        "rows 15..20: {}",
        results.stdout
    );

    let listed = flinkbroker(
        &server,
        &[
            "jobs",
            "list",
            "--label",
            "team=recs",
            "--state",
            "finished",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let jobs: Vec<Json> = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], Json::from(id.as_str()));
    assert_eq!(jobs[0]["state"], Json::from("FINISHED"));
    let none = flinkbroker(&server, &["jobs", "list", "--label", "team=ads"], &[]).await;
    assert_eq!(none.code, 0);
    assert!(!none.stdout.contains(&id));

    let got = flinkbroker(&server, &["jobs", "get", &id], &[]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    for shown in ["FINISHED", "nightly", "team=recs", "SELECT * FROM clicks"] {
        assert!(got.stdout.contains(shown), "{shown}: {}", got.stdout);
    }

    // A streaming job runs until it is cancelled; the cancelled job's watch exits 1.
    let endless = script(
        dir.path(),
        "endless.sql",
        "CREATE TABLE t (id BIGINT) WITH ('connector'='datagen', 'rows-per-second'='5');\nSELECT * FROM t;",
    );
    let streaming = flinkbroker(&server, &["sql", "run", "-f", &endless], &[]).await;
    let streaming_id = streaming.stdout.trim().to_owned();
    let cancelled = flinkbroker(&server, &["jobs", "cancel", &streaming_id], &[]).await;
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert!(cancelled.stdout.contains("CANCEL"), "{}", cancelled.stdout);
    let watched = flinkbroker(&server, &["jobs", "watch", &streaming_id], &[]).await;
    assert_eq!(watched.code, 1, "{}", watched.stderr);
    assert!(watched.stderr.contains("CANCELED"), "{}", watched.stderr);
    broker.stop().await;
}

#[tokio::test]
async fn python_run_ships_the_program_its_modules_and_settings() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let main = script(dir.path(), "main.py", "import helpers\nhelpers.run()\n");
    let helpers = script(dir.path(), "helpers.py", "def run():\n    pass\n");
    let run = flinkbroker(
        &server,
        &[
            "python",
            "run",
            &main,
            "--py-file",
            &helpers,
            "-p",
            "2",
            "-D",
            "taskmanager.numberOfTaskSlots=2",
            "--",
            "--input",
            "/data",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.stdout.trim().to_owned();
    let got = flinkbroker(&server, &["jobs", "get", &id, "--format", "json"], &[]).await;
    let job: Json = serde_json::from_str(&got.stdout).expect("JSON");
    assert_eq!(job["kind"], Json::from("python"));
    assert_eq!(job["flink_job_id"].as_str().map(str::len), Some(32));
    broker.stop().await;
}

#[tokio::test]
async fn exit_codes_tell_usage_unreachable_and_unauthenticated_apart() {
    // Nothing listens on port 1.
    let unreachable = flinkbroker("http://127.0.0.1:1", &["jobs", "list"], &[]).await;
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(
        unreachable
            .stderr
            .starts_with("error: cannot connect to http://127.0.0.1:1"),
        "{}",
        unreachable.stderr
    );
    let usage = flinkbroker("http://127.0.0.1:1", &["jobs", "list", "--bogus"], &[]).await;
    assert_eq!(usage.code, 2, "{}", usage.stderr);

    let auth = CallersBroker::start(&[]).await;
    let server = server(&auth.broker);
    let missing = flinkbroker(&server, &["sql", "run", "-f", "/nonexistent.sql"], &[]).await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("/nonexistent.sql"),
        "{}",
        missing.stderr
    );
    let anonymous = flinkbroker(&server, &["jobs", "list"], &[]).await;
    assert_eq!(anonymous.code, 3, "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("UNAUTHENTICATED"),
        "{}",
        anonymous.stderr
    );
    let bad_state = flinkbroker(
        &server,
        &["jobs", "list", "--state", "sleeping"],
        &[("FLINKBROKER_TOKEN", "ml-read-token")],
    )
    .await;
    assert_eq!(bad_state.code, 2, "{}", bad_state.stderr);
    let reader = flinkbroker(
        &server,
        &["jobs", "list"],
        &[("FLINKBROKER_TOKEN", "ml-read-token")],
    )
    .await;
    assert_eq!(reader.code, 0, "{}", reader.stderr);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(dir.path(), "one.sql", "SELECT 1");
    let refused = flinkbroker(
        &server,
        &["sql", "run", "-f", &file, "--token", "ml-read-token"],
        &[],
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("PERMISSION_DENIED") && refused.stderr.lines().count() == 1,
        "{}",
        refused.stderr
    );
    auth.stop().await;
}

#[tokio::test]
async fn jobs_take_savepoints_stop_with_one_and_restore_from_it() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(
        dir.path(),
        "insert.sql",
        "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE sink (id INT) WITH ('connector'='blackhole');\nINSERT INTO sink SELECT * FROM gen;",
    );
    let submitted = flinkbroker(&server, &["sql", "run", "-f", &file], &[]).await;
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.stdout.trim().to_owned();
    broker::wait_for_state(
        &broker.client().await,
        &id,
        flinkbroker_proto::JobState::Running,
    )
    .await;

    let taken = flinkbroker(
        &server,
        &[
            "jobs",
            "savepoint",
            &id,
            "--dir",
            "file:///savepoints/cli",
            "--native",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    let savepoints: Vec<Json> = serde_json::from_str(&taken.stdout).expect("JSON");
    assert_eq!(savepoints.len(), 1, "{}", taken.stdout);
    assert_eq!(savepoints[0]["state"], Json::from("COMPLETED"));
    assert_eq!(savepoints[0]["format"], Json::from("NATIVE"));
    assert_eq!(savepoints[0]["statement_index"], Json::from(2));
    let location = savepoints[0]["location"]
        .as_str()
        .expect("location")
        .to_owned();
    assert!(location.starts_with("file:/savepoints/cli/"), "{location}");

    let stopped = flinkbroker(
        &server,
        &[
            "jobs",
            "cancel",
            &id,
            "--savepoint",
            "file:///savepoints/stop",
        ],
        &[],
    )
    .await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let watched = flinkbroker(&server, &["jobs", "watch", &id], &[]).await;
    assert_eq!(
        watched.code, 1,
        "a stopped job is not finished: {}",
        watched.stderr
    );
    let got = flinkbroker(&server, &["jobs", "get", &id, "--format", "json"], &[]).await;
    let job: Json = serde_json::from_str(&got.stdout).expect("JSON");
    let stop_location = job["savepoint_path"].as_str().expect("path").to_owned();
    assert!(
        stop_location.starts_with("file:/savepoints/stop/"),
        "{stop_location}"
    );
    assert_eq!(job["savepoints"][1]["kind"], Json::from("STOP"));

    let restored = flinkbroker(
        &server,
        &[
            "sql",
            "run",
            "-f",
            &file,
            "--restore",
            &stop_location,
            "--allow-non-restored-state",
        ],
        &[],
    )
    .await;
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let restored_id = restored.stdout.trim().to_owned();
    let got = flinkbroker(
        &server,
        &["jobs", "get", &restored_id, "--format", "json"],
        &[],
    )
    .await;
    let job: Json = serde_json::from_str(&got.stdout).expect("JSON");
    assert_eq!(
        job["restore"]["savepoint_path"],
        Json::from(stop_location.as_str())
    );
    assert_eq!(job["restore"]["allow_non_restored_state"], Json::from(true));
    assert_eq!(job["restore"]["claim_mode"], Json::from("NO_CLAIM"));
    let table = flinkbroker(&server, &["jobs", "get", &restored_id], &[]).await;
    assert!(
        table.stdout.contains("restored from") && table.stdout.contains(&stop_location),
        "{}",
        table.stdout
    );
    let usage = flinkbroker(&server, &["sql", "run", "-f", &file, "--claim"], &[]).await;
    assert_eq!(usage.code, 2, "--claim needs --restore: {}", usage.stderr);
    flinkbroker(&server, &["jobs", "cancel", &restored_id], &[]).await;
    broker.stop().await;
}

#[tokio::test]
async fn jobs_upgrade_replaces_a_running_job_and_follows_the_upgrade_to_its_end() {
    let broker = TestBroker::start_with(
        flinkbroker_testkit::standin::StandinConfig::default(),
        &["--upgrade-running-for", "100ms"],
    )
    .await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let tables = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000');\nCREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');\nCREATE TABLE sink_b (id INT) WITH ('connector'='blackhole');\n";
    let first = script(
        dir.path(),
        "v1.sql",
        &format!("{tables}INSERT INTO sink_a SELECT * FROM gen;"),
    );
    let second = script(
        dir.path(),
        "v2.sql",
        &format!("{tables}INSERT INTO sink_b SELECT * FROM gen;"),
    );
    let broken = script(
        dir.path(),
        "v3.sql",
        &format!("{tables}INSERT INTO sink_b SELECT * FROM missing_table;"),
    );
    let submitted = flinkbroker(&server, &["sql", "run", "-f", &first], &[]).await;
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.stdout.trim().to_owned();
    broker::wait_for_state(
        &broker.client().await,
        &id,
        flinkbroker_proto::JobState::Running,
    )
    .await;

    let upgraded = flinkbroker(
        &server,
        &[
            "jobs",
            "upgrade",
            &id,
            "-f",
            &second,
            "--dir",
            "file:///savepoints/cli-upgrade",
            "--follow",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(upgraded.code, 0, "{}", upgraded.stderr);
    assert!(
        upgraded.stderr.contains("revision 2: STOPPING_PREVIOUS")
            && upgraded.stderr.contains("revision 2: DONE (RUNNING)"),
        "{}",
        upgraded.stderr
    );
    let revision: Json = serde_json::from_str(&upgraded.stdout).expect("JSON");
    assert_eq!(revision["revision"], Json::from(2));
    assert_eq!(revision["lineage_id"], Json::from(id.as_str()));
    assert_eq!(revision["upgrade"]["step"], Json::from("DONE"));
    assert_eq!(
        revision["upgrade"]["previous_job_id"],
        Json::from(id.as_str())
    );
    let chain = revision["savepoint_chain"].as_array().expect("chain");
    assert_eq!(chain.len(), 1, "{revision}");
    assert!(
        chain[0]
            .as_str()
            .is_some_and(|p| p.starts_with("file:/savepoints/cli-upgrade/")),
        "{revision}"
    );
    let second_id = revision["id"].as_str().expect("id").to_owned();

    // A savepoint the cluster refuses (no directory given, none configured): the upgrade is
    // abandoned and the running revision runs on.
    let abandoned = flinkbroker(
        &server,
        &["jobs", "upgrade", &second_id, "-f", &first, "--follow"],
        &[],
    )
    .await;
    assert_eq!(abandoned.code, 1, "{}", abandoned.stderr);
    assert!(
        abandoned
            .stderr
            .contains("upgrade to revision 3 abandoned: upgrade abandoned: revision 2")
            && abandoned.stderr.contains("runs on"),
        "{}",
        abandoned.stderr
    );

    // A revision that fails to start: rolled back, exit 1 naming the job that runs.
    let rolled_back = flinkbroker(
        &server,
        &[
            "jobs",
            "upgrade",
            &second_id,
            "-f",
            &broken,
            "--dir",
            "file:///savepoints/cli-upgrade",
            "--follow",
        ],
        &[],
    )
    .await;
    assert_eq!(rolled_back.code, 1, "{}", rolled_back.stderr);
    assert!(
        rolled_back.stderr.contains("revision 4 rolled back; job "),
        "{}",
        rolled_back.stderr
    );
    assert!(
        rolled_back.stdout.contains("ROLLED_BACK"),
        "the table shows the step: {}",
        rolled_back.stdout
    );

    // The lineage lists every revision.
    let listed = flinkbroker(
        &server,
        &["jobs", "list", "--lineage", &id, "--format", "json"],
        &[],
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let jobs: Vec<Json> = serde_json::from_str(&listed.stdout).expect("JSON");
    let revisions: Vec<u64> = jobs
        .iter()
        .filter_map(|job| job["revision"].as_u64())
        .collect();
    assert_eq!(revisions, vec![5, 4, 3, 2, 1], "{}", listed.stdout);

    let usage = flinkbroker(&server, &["jobs", "upgrade", &id], &[]).await;
    assert_eq!(usage.code, 2, "a revision is required: {}", usage.stderr);
    let refused = flinkbroker(&server, &["jobs", "upgrade", &id, "-f", &second], &[]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("only a RUNNING job can be upgraded"),
        "{}",
        refused.stderr
    );
    broker.stop().await;
}

#[tokio::test]
async fn results_are_written_to_arrow_and_parquet_files_as_rows_read_them() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = script(
        dir.path(),
        "types.sql",
        "SELECT 1 AS c_int, 'a' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool, CAST(7 AS BIGINT) AS c_bigint, ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date, TIME '03:04:05' AS c_time, TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts, TO_TIMESTAMP_LTZ(0, 3) AS c_ltz, CAST(1.5 AS DECIMAL(10,2)) AS c_dec, CAST(2.5 AS DOUBLE) AS c_double, X'CAFE' AS c_bytes",
    );
    let submitted = flinkbroker(&server, &["sql", "run", "-f", &file, "--batch"], &[]).await;
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.stdout.trim().to_owned();
    let mut client = broker.client().await;
    broker::wait_for_state(&client, &id, flinkbroker_proto::JobState::Finished).await;
    // The rows as the ROWS encoding sends them.
    let mut stream = client
        .stream_operation_results(flinkbroker_proto::StreamOperationResultsRequest {
            job_id: id.clone(),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    let mut schema = None;
    let mut rows = Vec::new();
    while let Some(message) = stream.message().await.expect("message") {
        use flinkbroker_proto::stream_operation_results_response::Message;
        match message.message {
            Some(Message::Schema(s)) => schema = Some(s),
            Some(Message::Rows(batch)) => rows.extend(batch.rows),
            _ => {}
        }
    }
    let schema = schema.expect("schema");

    let arrow_path = dir.path().join("types.arrow");
    let parquet_path = dir.path().join("types.parquet");
    for (format, path) in [("arrow", &arrow_path), ("parquet", &parquet_path)] {
        let path_text = path.display().to_string();
        let written = flinkbroker(
            &server,
            &["results", &id, "--format", format, "--output", &path_text],
            &[],
        )
        .await;
        assert_eq!(written.code, 0, "{format}: {}", written.stderr);
        assert!(
            written
                .stderr
                .contains(&format!("1 rows written to {path_text}")),
            "{}",
            written.stderr
        );
        assert!(!dir.path().join(format!("types.{format}.partial")).exists());
    }
    let from_arrow: Vec<flinkbroker_proto::Row> = arrow_ipc::reader::FileReader::try_new(
        std::fs::File::open(&arrow_path).expect("file"),
        None,
    )
    .expect("an arrow ipc file")
    .flat_map(|batch| flinkbroker_arrow::rows(&batch.expect("batch"), &schema).expect("rows"))
    .collect();
    assert_eq!(
        from_arrow, rows,
        "the arrow file holds the rows, value by value"
    );
    let from_parquet: Vec<flinkbroker_proto::Row> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&parquet_path).expect("file"),
        )
        .expect("a parquet file")
        .build()
        .expect("reader")
        .flat_map(|batch| flinkbroker_arrow::rows(&batch.expect("batch"), &schema).expect("rows"))
        .collect();
    assert_eq!(
        from_parquet, rows,
        "the parquet file holds the rows, value by value"
    );

    let usage = flinkbroker(&server, &["results", &id, "--format", "parquet"], &[]).await;
    assert_eq!(usage.code, 2, "--output is required: {}", usage.stderr);
    broker.stop().await;
}

#[tokio::test]
async fn sql_validate_and_explain_check_a_script_without_running_it() {
    let broker = TestBroker::start().await;
    let server = server(&broker);
    let dir = tempfile::tempdir().expect("temp dir");
    let invalid = script(
        dir.path(),
        "invalid.sql",
        "CREATE TABLE src (id INT) WITH ('connector'='datagen');\nSELECT id\n  FROM nope;",
    );
    let checked = flinkbroker(
        &server,
        &["sql", "validate", "-f", &invalid, "--format", "json"],
        &[],
    )
    .await;
    assert_eq!(
        checked.code, 1,
        "an invalid script exits 1: {}",
        checked.stderr
    );
    let report: Json = serde_json::from_str(&checked.stdout).expect("JSON");
    assert_eq!(report["valid"], Json::from(false));
    assert_eq!(report["statements"][0]["verdict"], Json::from("VALID"));
    assert_eq!(report["statements"][1]["verdict"], Json::from("INVALID"));
    assert_eq!(
        report["statements"][1]["error_start"],
        serde_json::json!({"line": 3, "column": 8})
    );
    assert!(
        checked.stderr.contains("statement 1 is invalid"),
        "{}",
        checked.stderr
    );
    let table = flinkbroker(&server, &["sql", "validate", "-f", &invalid], &[]).await;
    assert!(
        table.stdout.contains("INVALID") && table.stdout.contains("3:8"),
        "{}",
        table.stdout
    );

    let valid = script(
        dir.path(),
        "valid.sql",
        "CREATE TABLE src (id INT) WITH ('connector'='datagen');\nCREATE TABLE snk (id INT) WITH ('connector'='blackhole');\nINSERT INTO snk SELECT id FROM src;",
    );
    let explained = flinkbroker(&server, &["sql", "explain", "-f", &valid], &[]).await;
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    assert!(
        explained
            .stdout
            .starts_with("-- statement 2 (INSERT): INSERT INTO snk")
            && explained.stdout.contains("== Optimized Execution Plan =="),
        "{}",
        explained.stdout
    );
    let submitted = flinkbroker(
        &server,
        &["sql", "run", "-f", &invalid, "--validate-first"],
        &[],
    )
    .await;
    assert_eq!(
        submitted.code, 2,
        "refused as invalid: {}",
        submitted.stderr
    );
    assert!(
        submitted
            .stderr
            .contains("statement 2 (line 3, column 8) is invalid"),
        "{}",
        submitted.stderr
    );
    assert!(broker.standin.flink_jobs().is_empty());
    broker.stop().await;
}
