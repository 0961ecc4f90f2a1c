//! The Prometheus endpoint of a real broker, scraped after SQL jobs ran against the stand-in;
//! and the alert rules and dashboard in deploy/monitoring, checked against the series the
//! broker exports.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use broker::{TestBroker, eventually, sql, submit, wait_for_state};
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{JobState, RuntimeMode, StreamOperationResultsRequest};
use flinkbroker_server::metrics::{METRICS, MetricKind};
use sql_gateway_standin::StandinConfig;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(30);

const BOUNDED_GEN: &str = "CREATE TABLE gen (id INT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='25', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='25', 'fields.name.length'='6')";

/// One sample of a scrape: its series name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Reads `GET /metrics` of the broker.
async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics endpoint answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("metrics body")
}

/// Parses the text exposition format (the subset the exporter writes).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels closed");
                let labels = body
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once("=\"").expect("label pair");
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), Vec::new()),
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().expect("numeric value"),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample `name` whose labels include `labels`, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .find(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|sample| sample.value)
}

/// The registered family a series name belongs to (histograms export `_bucket`, `_sum` and
/// `_count`).
fn family(series: &str) -> Option<&'static str> {
    METRICS.iter().map(|metric| metric.name).find(|name| {
        series == *name
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| series.strip_suffix(suffix) == Some(name))
                && METRICS
                    .iter()
                    .any(|m| m.name == *name && m.kind == MetricKind::Histogram)
    })
}

#[tokio::test]
async fn a_scrape_after_a_sql_job_counts_its_submission_state_rows_and_gateway_calls() {
    // Two submissions a minute: the third is refused over the quota.
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &["--tenant-submissions-per-minute", "2"],
    )
    .await;
    let mut client = broker.client().await;

    let script = format!("{BOUNDED_GEN};\nSELECT * FROM gen;");
    let job = submit(&mut client, sql(&script, RuntimeMode::Batch)).await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let mut stream = client
        .stream_operation_results(StreamOperationResultsRequest {
            job_id: job.id.clone(),
            ..StreamOperationResultsRequest::default()
        })
        .await
        .expect("stream starts")
        .into_inner();
    let mut rows = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("results in time")
            .expect("stream message")
            .expect("the stream ends with an end message");
        match message.message.expect("message set") {
            Message::Rows(batch) => rows += batch.rows.len(),
            Message::End(_) => break,
            _ => {}
        }
    }
    assert_eq!(rows, 25);

    let failing = submit(&mut client, sql("SELEC 1", RuntimeMode::Batch)).await;
    wait_for_state(&client, &failing.id, JobState::Failed).await;
    let refused = client
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect_err("over the submission rate");
    assert_eq!(refused.code(), Code::ResourceExhausted);

    let text = scrape(broker.metrics_addr).await;
    let samples = parse(&text);
    let at_least = |name: &str, labels: &[(&str, &str)], least: f64| {
        let found = value(&samples, name, labels);
        assert!(
            found.is_some_and(|v| v >= least),
            "{name}{labels:?} = {found:?}, expected at least {least}\n{text}"
        );
    };
    at_least(
        "flinkbroker_submissions_total",
        &[("kind", "sql"), ("code", "OK")],
        2.0,
    );
    at_least(
        "flinkbroker_submissions_total",
        &[("kind", "sql"), ("code", "RESOURCE_EXHAUSTED")],
        1.0,
    );
    at_least(
        "flinkbroker_submission_duration_seconds_count",
        &[("kind", "sql")],
        3.0,
    );
    // Read from this broker's store at the scrape: exact.
    assert_eq!(
        value(
            &samples,
            "flinkbroker_jobs",
            &[("kind", "sql"), ("state", "FINISHED")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "flinkbroker_jobs",
            &[("kind", "sql"), ("state", "FAILED")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "flinkbroker_jobs",
            &[("kind", "sql"), ("state", "RUNNING")]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "flinkbroker_jobs_without_lease", &[]),
        Some(0.0)
    );
    at_least(
        "flinkbroker_job_transitions_total",
        &[("kind", "sql"), ("state", "FINISHED")],
        1.0,
    );
    at_least(
        "flinkbroker_statement_failures_total",
        &[("cause", "statement")],
        1.0,
    );
    at_least("flinkbroker_result_rows_logged_total", &[], 25.0);
    at_least("flinkbroker_result_bytes_logged_total", &[], 1.0);
    at_least("flinkbroker_result_rows_streamed_total", &[], 25.0);
    at_least("flinkbroker_result_bytes_streamed_total", &[], 1.0);
    at_least(
        "flinkbroker_sql_gateway_request_duration_seconds_count",
        &[
            ("method", "POST"),
            ("endpoint", "/sessions/:session/statements"),
        ],
        2.0,
    );
    at_least(
        "flinkbroker_sql_gateway_request_duration_seconds_count",
        &[
            ("method", "GET"),
            (
                "endpoint",
                "/sessions/:session/operations/:operation/result/:token",
            ),
        ],
        1.0,
    );
    at_least(
        "flinkbroker_quota_refusals_total",
        &[("tenant", "_other"), ("quota", "submissions_per_minute")],
        1.0,
    );
    at_least(
        "flinkbroker_audit_events_total",
        &[("action", "submit")],
        2.0,
    );
    assert_eq!(
        value(
            &samples,
            "flinkbroker_dependency_up",
            &[("dependency", "store")]
        ),
        Some(1.0)
    );

    // No raw id reaches a label.
    for sample in &samples {
        for (_, label) in &sample.labels {
            assert!(
                !label.contains(&job.id) && !label.contains(&failing.id),
                "{sample:?}"
            );
        }
    }
    // Every exported series is registered in flinkbroker_server::metrics::METRICS.
    for sample in samples
        .iter()
        .filter(|s| s.name.starts_with("flinkbroker_"))
    {
        assert!(
            family(&sample.name).is_some(),
            "{} is exported but not registered",
            sample.name
        );
    }

    // The probes and the stream's end are asynchronous to the calls above: wait on them.
    let metrics_addr = broker.metrics_addr;
    eventually("the dependencies are reported up", LIMIT, || async move {
        let samples = parse(&scrape(metrics_addr).await);
        (value(
            &samples,
            "flinkbroker_dependency_up",
            &[("dependency", "sql_gateway")],
        ) == Some(1.0)
            && value(
                &samples,
                "flinkbroker_dependency_up",
                &[("dependency", "jobmanager")],
            ) == Some(1.0)
            && value(&samples, "flinkbroker_result_streams_open", &[]) == Some(0.0))
        .then_some(())
    })
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn the_metrics_endpoint_answers_only_get_metrics() {
    let broker = TestBroker::start().await;
    let base = format!("http://{}", broker.metrics_addr);
    let other = reqwest::get(format!("{base}/other")).await.expect("answer");
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
    let post = reqwest::Client::new()
        .post(format!("{base}/metrics"))
        .send()
        .await
        .expect("answer");
    assert_eq!(post.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    let metrics_addr = broker.metrics_addr;
    broker.stop().await;
    // Shutdown stops the endpoint.
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
}

/// The `expr` of every rule in a PrometheusRule file: single-line values and block scalars.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut expressions = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let trimmed = line.trim_start();
        index += 1;
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if !rest.starts_with('|') && !rest.starts_with('>') {
            expressions.push(rest.to_owned());
            continue;
        }
        let indent = line.len() - trimmed.len();
        let mut block = Vec::new();
        while index < lines.len() {
            let next = lines[index];
            let next_indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && next_indent <= indent {
                break;
            }
            block.push(next.trim());
            index += 1;
        }
        expressions.push(block.join(" "));
    }
    expressions
}

/// The `flinkbroker_…` names an expression refers to.
fn referenced_metrics(expression: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expression;
    while let Some(at) = rest.find("flinkbroker_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Skip a match inside a longer identifier or a quoted label value.
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn monitoring_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/monitoring")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_alert_refers_only_to_exported_metrics() {
    let rules = monitoring_file("prometheus-rules.yaml");
    let expressions = rule_expressions(&rules);
    assert!(expressions.len() >= 8, "{expressions:?}");
    for expression in &expressions {
        let names = referenced_metrics(expression);
        assert!(!names.is_empty(), "{expression} names no broker metric");
        for name in names {
            assert!(
                family(&name).is_some(),
                "{expression} refers to {name}, which the broker does not export"
            );
        }
    }
    let alerts = rules.matches("- alert:").count();
    assert_eq!(alerts, expressions.len());
    assert_eq!(
        rules.matches("for: ").count(),
        alerts,
        "every alert has a for:"
    );
    assert_eq!(rules.matches("severity: ").count(), alerts);
    assert_eq!(rules.matches("summary: ").count(), alerts);
    assert_eq!(rules.matches("description: ").count(), alerts);
}

#[test]
fn every_dashboard_panel_refers_only_to_exported_metrics() {
    fn expressions(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => found.push(expr.clone()),
                        _ => expressions(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|item| expressions(item, found))
            }
            _ => {}
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&monitoring_file("grafana-dashboard.json")).expect("dashboard JSON");
    let mut found = Vec::new();
    expressions(&dashboard, &mut found);
    assert!(!found.is_empty());
    for expression in &found {
        for name in referenced_metrics(expression) {
            assert!(
                family(&name).is_some(),
                "{expression} refers to {name}, which the broker does not export"
            );
        }
    }
}
