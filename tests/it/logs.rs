//! The log of the real binary written to a pipe, as a log pipeline reads it: `flinkbroker serve
//! --log-format json` writes one JSON object a line, with the spans each event happened in, and
//! neither format writes colour codes when standard output is not a terminal.

use crate::support::broker_binary::{PipedBroker, json_address, text_address};
use crate::support::callers::{CALLERS, token_file};
use flinkbroker_testkit::standin::{Standin, StandinConfig};

use flinkbroker_model::job::JobId;
use flinkbroker_proto::{RuntimeMode, SubmitSqlRequest};
use serde_json::Value as Json;
use tonic::Request;

/// A finite SQL job: two tables, then one INSERT (its third statement) that Flink runs to its
/// end.
const SCRIPT: &str = "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'number-of-rows'='5');\nCREATE TABLE print_sink (id INT) WITH ('connector'='print');\nINSERT INTO print_sink SELECT * FROM gen;";

/// The ANSI escape byte every colour code starts with.
const ESCAPE: char = '\x1b';

/// Submits the finite script; returns the job's id.
async fn submit(broker: &PipedBroker) -> String {
    broker
        .client()
        .await
        .submit_sql(SubmitSqlRequest {
            script: SCRIPT.into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner()
        .id
}

/// Whether a JSON log line happened inside the span of job `job_id`, and says it ended
/// FINISHED.
fn finished_in_the_job_span(line: &str, job_id: &str) -> bool {
    let Ok(line) = serde_json::from_str::<Json>(line) else {
        return false;
    };
    line["message"] == "job state changed"
        && line["state"] == "FINISHED"
        && line["span"]["name"] == "job"
        && line["span"]["job_id"] == job_id
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_carrying_the_spans_of_the_job() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let mut broker =
        PipedBroker::start(&standin, &["--log-format", "json"], &[], json_address).await;
    let job_id = submit(&broker).await;
    let finished = broker
        .wait_for_line("FINISHED line in the job's span", |line| {
            finished_in_the_job_span(line, &job_id)
        })
        .await;
    let lines = broker.terminate().await;

    // The job's span: its fields, including the Flink job id recorded after it opened, on the
    // current span and in the list of spans.
    let finished: Json = serde_json::from_str(&finished).expect("JSON");
    let flink_job_id = job_id
        .parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement(2);
    assert_eq!(finished["span"]["job.kind"], "SQL", "{finished}");
    assert_eq!(
        finished["span"]["flink.job_id"],
        flink_job_id.as_str(),
        "{finished}"
    );
    let spans = finished["spans"].as_array().expect("the list of spans");
    assert!(
        spans
            .iter()
            .any(|span| span["name"] == "job" && span["job_id"] == job_id.as_str()),
        "{finished}"
    );
    // The event's own fields sit at the top level beside the standard ones.
    assert_eq!(finished["job_id"], job_id.as_str(), "{finished}");
    assert_eq!(finished["level"], "INFO", "{finished}");
    assert!(
        finished["target"]
            .as_str()
            .is_some_and(|target| target.starts_with("flinkbroker_control")),
        "{finished}"
    );

    // Every line, from the first to "flinkbroker stopped", is one JSON object with the
    // standard fields and no colour codes.
    assert!(lines.len() > 5, "{lines:#?}");
    for line in &lines {
        assert!(!line.contains(ESCAPE), "a colour code in {line:?}");
        let object: Json =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(object.is_object(), "{line}");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .iter()
                .any(|level| object["level"] == *level),
            "level: {line}"
        );
        for field in ["message", "target", "timestamp"] {
            assert!(object[field].is_string(), "{field}: {line}");
        }
    }
    // Spans the broker did not open (the libraries') are left out of the lines.
    for line in &lines {
        let object: Json = serde_json::from_str(line).expect("JSON");
        for span in object["spans"].as_array().into_iter().flatten() {
            assert!(
                ["job", "grpc call", "http request"].contains(&span["name"].as_str().unwrap_or("")),
                "{line}"
            );
        }
    }
    standin.shutdown().await;
}

#[tokio::test]
async fn text_logs_written_to_a_pipe_carry_no_colour_codes() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let mut broker = PipedBroker::start(&standin, &[], &[], text_address).await;
    let job_id = submit(&broker).await;
    broker
        .wait_for_line("FINISHED line of the job", |line| {
            line.contains("job state changed")
                && line.contains(&format!("job_id={job_id}"))
                && line.contains("FINISHED")
        })
        .await;
    let lines = broker.terminate().await;
    for line in &lines {
        assert!(!line.contains(ESCAPE), "a colour code in {line:?}");
        assert!(
            serde_json::from_str::<Json>(line).is_err(),
            "text, not JSON: {line}"
        );
    }
    standin.shutdown().await;
}

/// A W3C `traceparent` a caller in a trace sends: version, trace id, parent span id, flags.
fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-01")
}

/// The JSON line saying job `job_id` was recorded, which the submitting call logs.
fn recorded_line(line: &str, job_id: &str) -> Option<Json> {
    let line: Json = serde_json::from_str(line).ok()?;
    (line["message"] == "job recorded" && line["job_id"] == job_id).then_some(line)
}

#[tokio::test]
async fn json_log_lines_of_a_call_carry_its_tenant_request_id_and_trace_id() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens.json");
    std::fs::write(&tokens, token_file(&CALLERS)).expect("token file");
    let tokens = tokens.display().to_string();
    let mut broker = PipedBroker::start(
        &standin,
        &["--log-format", "json", "--auth-tokens-file", &tokens],
        &[],
        json_address,
    )
    .await;
    let mut client = broker.client().await;

    // A call in the caller's trace, with a request id, by a caller of tenant "ml".
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut traced = Request::new(SubmitSqlRequest {
        script: SCRIPT.into(),
        runtime_mode: RuntimeMode::Streaming as i32,
        request_id: "nightly-load-7".into(),
        ..SubmitSqlRequest::default()
    });
    let metadata = traced.metadata_mut();
    metadata.insert(
        "authorization",
        "Bearer ml-submit-token".parse().expect("metadata"),
    );
    metadata.insert(
        "traceparent",
        traceparent(trace_id).parse().expect("metadata"),
    );
    let traced = client
        .submit_sql(traced)
        .await
        .expect("submit")
        .into_inner();

    // A call in no trace, without a request id, by a caller of tenant "ads".
    let mut plain = Request::new(SubmitSqlRequest {
        script: SCRIPT.into(),
        runtime_mode: RuntimeMode::Streaming as i32,
        ..SubmitSqlRequest::default()
    });
    plain.metadata_mut().insert(
        "authorization",
        "Bearer ads-token".parse().expect("metadata"),
    );
    let plain = client.submit_sql(plain).await.expect("submit").into_inner();

    let traced_line = broker
        .wait_for_line("\"job recorded\" line of the traced call", |line| {
            recorded_line(line, &traced.id).is_some()
        })
        .await;
    let plain_line = broker
        .wait_for_line("\"job recorded\" line of the plain call", |line| {
            recorded_line(line, &plain.id).is_some()
        })
        .await;
    broker.terminate().await;

    let traced_line = recorded_line(&traced_line, &traced.id).expect("line");
    let span = &traced_line["span"];
    assert_eq!(span["name"], "grpc call", "{traced_line}");
    assert_eq!(span["rpc.method"], "SubmitSql", "{traced_line}");
    assert_eq!(span["tenant"], "ml", "{traced_line}");
    assert_eq!(span["request_id"], "nightly-load-7", "{traced_line}");
    assert_eq!(span["trace_id"], trace_id, "{traced_line}");
    // The event's own request id is the id itself, not its Rust debug form.
    assert_eq!(traced_line["request_id"], "nightly-load-7", "{traced_line}");

    // Without a trace (no traceparent, no export) the line carries no trace id, and a call
    // without a request id carries none, rather than a placeholder.
    let plain_line = recorded_line(&plain_line, &plain.id).expect("line");
    let span = &plain_line["span"];
    assert_eq!(span["name"], "grpc call", "{plain_line}");
    assert_eq!(span["tenant"], "ads", "{plain_line}");
    for field in ["trace_id", "request_id"] {
        assert!(span.get(field).is_none(), "{field}: {plain_line}");
        assert!(plain_line.get(field).is_none(), "{field}: {plain_line}");
    }
    standin.shutdown().await;
}

/// Whether `text` is a valid W3C trace id: 32 lowercase hex digits, not all zero.
fn is_trace_id(text: &str) -> bool {
    text.len() == 32
        && text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        && text.chars().any(|c| c != '0')
}

#[tokio::test]
async fn with_traces_exported_the_lines_of_a_call_and_of_its_job_carry_the_same_trace_id() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    // No collector answers there: the exporter connects lazily and its exports fail, which
    // leaves the spans and their ids as they are.
    let (_held, closed) = crate::support::refused_address();
    let endpoint = format!("http://{closed}");
    let mut broker = PipedBroker::start(
        &standin,
        &["--log-format", "json", "--otlp-endpoint", &endpoint],
        &[],
        json_address,
    )
    .await;

    // A call in no trace of the caller's still is in the trace its exported span starts.
    let job_id = submit(&broker).await;
    let recorded = broker
        .wait_for_line("\"job recorded\" line", |line| {
            recorded_line(line, &job_id).is_some()
        })
        .await;
    let finished = broker
        .wait_for_line("FINISHED line in the job's span", |line| {
            finished_in_the_job_span(line, &job_id)
        })
        .await;

    // A call in the caller's trace: the exported span is the caller's child, in its trace.
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut traced = Request::new(SubmitSqlRequest {
        script: SCRIPT.into(),
        runtime_mode: RuntimeMode::Streaming as i32,
        ..SubmitSqlRequest::default()
    });
    traced.metadata_mut().insert(
        "traceparent",
        traceparent(trace_id).parse().expect("metadata"),
    );
    let traced = broker
        .client()
        .await
        .submit_sql(traced)
        .await
        .expect("submit")
        .into_inner();
    let traced_finished = broker
        .wait_for_line("FINISHED line in the traced job's span", |line| {
            finished_in_the_job_span(line, &traced.id)
        })
        .await;
    broker.terminate().await;

    let recorded = recorded_line(&recorded, &job_id).expect("line");
    let call_trace = recorded["span"]["trace_id"].as_str().unwrap_or_default();
    assert!(is_trace_id(call_trace), "{recorded}");
    let finished: Json = serde_json::from_str(&finished).expect("JSON");
    assert_eq!(finished["span"]["trace_id"], call_trace, "{finished}");

    let traced_finished: Json = serde_json::from_str(&traced_finished).expect("JSON");
    assert_eq!(
        traced_finished["span"]["trace_id"], trace_id,
        "{traced_finished}"
    );
    standin.shutdown().await;
}

/// Every `--memory-trim-interval` the broker hands the memory its allocator holds free back to
/// the operating system, and says so at debug level.
#[tokio::test]
async fn freed_memory_is_handed_back_every_trim_interval() {
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in");
    let trimmed = |line: &str| line.contains("freed memory handed back to the operating system");
    let mut broker = PipedBroker::start(
        &standin,
        &["--memory-trim-interval", "20ms"],
        &[("RUST_LOG", "info,flinkbroker=debug")],
        text_address,
    )
    .await;
    // After a job came and went.
    let job_id = submit(&broker).await;
    broker
        .wait_for_line("the job's end", |line| {
            line.contains(&job_id) && line.contains("FINISHED")
        })
        .await;
    let trim = broker.wait_for_line("a memory trim", trimmed).await;
    assert!(trim.contains("DEBUG"), "at debug level: {trim}");
    standin.shutdown().await;
}
