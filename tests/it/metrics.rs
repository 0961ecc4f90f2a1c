//! The Prometheus endpoint of a real broker, scraped after SQL jobs ran against the stand-in
//! and, as the binary, before any job; the TaskManager memory it reads from the JobManager; and
//! the alert rules and dashboard in deploy/monitoring, checked against the series the broker
//! exports.

use crate::support::broker;
use crate::support::broker_binary::{listen_address, read_log};
use crate::support::flink_cluster::FlinkCluster;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use broker::{Options, TestBroker, eventually, sql, submit, wait_for_state};
use flinkbroker_flink::jobmanager::{JobManager, RestJobManager, TaskManagerMemory};
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{JobState, RuntimeMode, StreamOperationResultsRequest};
use flinkbroker_server::metrics::{METRICS, MetricKind};
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::process::{Child, Command};
use tonic::Code;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LIMIT: Duration = Duration::from_secs(30);

const BOUNDED_GEN: &str = "CREATE TABLE gen (id INT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='25', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='25', 'fields.name.length'='6')";

/// One sample of a scrape: its series name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The value of the label `name` of a sample.
fn label_value<'a>(sample: &'a Sample, name: &str) -> Option<&'a str> {
    sample
        .labels
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
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

/// The `flinkbroker_jobs` gauge of SQL jobs in `state`, if exported.
fn sql_jobs(samples: &[Sample], state: &str) -> Option<f64> {
    value(
        samples,
        "flinkbroker_jobs",
        &[("kind", "sql"), ("state", state)],
    )
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
    assert_eq!(sql_jobs(&samples, "FINISHED"), Some(1.0), "{text}");
    assert_eq!(sql_jobs(&samples, "FAILED"), Some(1.0), "{text}");
    assert_eq!(sql_jobs(&samples, "RUNNING"), Some(0.0), "{text}");
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
    // Every endpoint the clients called is one the broker exports from start-up.
    for metric in METRICS.iter().filter(|m| m.labels.contains(&"endpoint")) {
        let declared = metric.initial_label_sets();
        for sample in samples.iter().filter(|s| {
            s.name == metric.name
                || (metric.kind == MetricKind::Histogram
                    && s.name == format!("{}_count", metric.name))
        }) {
            let label_set: Vec<&str> = metric
                .labels
                .iter()
                .map(|label| label_value(sample, label).unwrap_or_default())
                .collect();
            assert!(
                declared.contains(&label_set),
                "{sample:?} has labels {label_set:?} that {} does not declare",
                metric.name
            );
        }
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

/// A metric a monitoring file names: a whole name, or a name's beginning
/// (`flinkbroker_result_log_*` in a comment, `{__name__=~"flinkbroker_jobs.*"}` in a query).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NamedMetric {
    Name(String),
    Prefix(String),
}

/// Every `flinkbroker_…` name in a text: queries, comments and annotations alike.
fn named_metrics(text: &str) -> BTreeSet<NamedMetric> {
    let mut named = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("flinkbroker_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let (name, after) = tail.split_at(end);
        // A match inside a longer identifier is not a name.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            let prefix = name.ends_with('_')
                || after.starts_with('*')
                || after.starts_with(".*")
                || after.starts_with(".+");
            named.insert(if prefix {
                NamedMetric::Prefix(name.to_owned())
            } else {
                NamedMetric::Name(name.to_owned())
            });
        }
        rest = after;
    }
    named
}

/// Whether a scrape exports a series of a named metric; a histogram named without its
/// `_bucket`, `_sum` or `_count` suffix is exported when those are.
fn exports(samples: &[Sample], named: &NamedMetric) -> bool {
    samples.iter().any(|sample| match named {
        NamedMetric::Name(name) => {
            sample.name == *name
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name.strip_suffix(suffix) == Some(name.as_str()))
        }
        NamedMetric::Prefix(prefix) => sample.name.starts_with(prefix.as_str()),
    })
}

#[test]
fn names_in_monitoring_files_are_read_with_their_prefixes_and_suffixes() {
    let text = r#"# gauges (flinkbroker_jobs*, flinkbroker_result_log_*)
expr: max({__name__=~"flinkbroker_taskmanager_.+"}) + sum(rate(flinkbroker_x_total{dependency="flinkbroker"}[5m]))
"expr": "histogram_quantile(0.9, rate(flinkbroker_y_seconds_bucket[5m]))", not_flinkbroker_z"#;
    let named: Vec<NamedMetric> = named_metrics(text).into_iter().collect();
    assert_eq!(
        named,
        [
            NamedMetric::Name("flinkbroker_x_total".into()),
            NamedMetric::Name("flinkbroker_y_seconds_bucket".into()),
            NamedMetric::Prefix("flinkbroker_jobs".into()),
            NamedMetric::Prefix("flinkbroker_result_log_".into()),
            NamedMetric::Prefix("flinkbroker_taskmanager_".into()),
        ]
    );
    let samples = parse("flinkbroker_y_seconds_count 0\nflinkbroker_result_log_max_bytes 1\n");
    assert!(exports(
        &samples,
        &NamedMetric::Name("flinkbroker_y_seconds".into())
    ));
    assert!(!exports(
        &samples,
        &NamedMetric::Name("flinkbroker_y_seconds_bucket".into())
    ));
    assert!(exports(
        &samples,
        &NamedMetric::Prefix("flinkbroker_result_log_".into())
    ));
    assert!(!exports(
        &samples,
        &NamedMetric::Prefix("flinkbroker_jobs".into())
    ));
}

/// The `flinkbroker serve` binary against a stand-in, on ports the kernel chose; killed when
/// dropped.
struct BrokerProcess {
    child: Child,
    log_path: PathBuf,
    metrics_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts the binary with a fresh SQLite database and waits until it serves.
    async fn start(standin: &Standin) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("broker directory");
        let log_path = dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path).expect("broker log");
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("broker.db").display()
        );
        let work_dir = dir.path().join("submitters").display().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--database-url", &database_url])
            .args(["--sql-gateway-url", &standin.base_url])
            .args(["--jobmanager-url", &standin.base_url])
            .args(["--submitter-work-dir", &work_dir])
            .args(["--http-timeout", "5s", "--shutdown-grace", "1s"])
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the flinkbroker binary");
        let deadline = tokio::time::Instant::now() + LIMIT;
        let metrics_addr = loop {
            let log = read_log(&log_path);
            let listening = |message: &str| {
                log.lines()
                    .find_map(|line| listen_address(line, message))
                    .and_then(|address| address.parse::<SocketAddr>().ok())
            };
            if let (Some(metrics), Some(_)) = (
                listening("metrics served at /metrics"),
                listening("flinkbroker serving"),
            ) {
                break metrics;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the broker exited during start ({status}):\n{log}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the broker did not serve within {LIMIT:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        BrokerProcess {
            child,
            log_path,
            metrics_addr,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(LIMIT, self.child.wait()).await;
    }
}

#[tokio::test]
async fn a_fresh_broker_exports_every_series_its_alerts_and_dashboard_name_before_any_job() {
    flinkbroker::install_crypto_provider();
    let standin = Standin::spawn(StandinConfig::default())
        .await
        .expect("stand-in starts");
    let broker = BrokerProcess::start(&standin).await;
    let text = scrape(broker.metrics_addr).await;
    let samples = parse(&text);
    let log = read_log(&broker.log_path);

    // Every metric the alert rules and the dashboard name, read from the files as they are.
    let mut named = named_metrics(&monitoring_file("prometheus-rules.yaml"));
    named.extend(named_metrics(&monitoring_file("grafana-dashboard.json")));
    assert!(named.len() >= 20, "{named:?}");
    let missing: Vec<&NamedMetric> = named
        .iter()
        .filter(|named| !exports(&samples, named))
        .collect();
    assert!(
        missing.is_empty(),
        "named in deploy/monitoring but not exported before any job: {missing:?}\n{text}\n{log}"
    );

    // Every label set a series is declared under is exported from the start, at zero where
    // nothing happened yet.
    for metric in METRICS.iter() {
        let series = match metric.kind {
            MetricKind::Histogram => format!("{}_count", metric.name),
            _ => metric.name.to_owned(),
        };
        for label_set in metric.initial_label_sets() {
            let labels: Vec<(&str, &str)> = metric.labels.iter().copied().zip(label_set).collect();
            let found = samples.iter().find(|sample| {
                sample.name == series
                    && sample.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(key, value)| label_value(sample, key) == Some(value))
            });
            assert!(
                found.is_some(),
                "{series}{labels:?} is not exported\n{text}"
            );
        }
    }
    for (name, labels) in [
        (
            "flinkbroker_job_transitions_total",
            &[("kind", "python"), ("state", "FAILED")][..],
        ),
        ("flinkbroker_audit_events_total", &[("action", "denied")]),
        (
            "flinkbroker_lease_takeovers_total",
            &[("from", "other_replica")],
        ),
        (
            "flinkbroker_sql_gateway_request_errors_total",
            &[
                ("method", "POST"),
                ("endpoint", "/sessions/:session/statements"),
                ("error", "http_5xx"),
            ],
        ),
        (
            "flinkbroker_submission_duration_seconds_count",
            &[("kind", "sql")],
        ),
    ] {
        assert_eq!(
            value(&samples, name, labels),
            Some(0.0),
            "{name}{labels:?}\n{text}"
        );
    }

    // The stand-in's TaskManager is read at each scrape: one request for the list and one
    // for its metrics, whatever else happens.
    let taskmanager_requests = |samples: &[Sample], endpoint: &str| {
        value(
            samples,
            "flinkbroker_jobmanager_request_duration_seconds_count",
            &[("method", "GET"), ("endpoint", endpoint)],
        )
    };
    assert_eq!(taskmanager_requests(&samples, "/taskmanagers"), Some(1.0));
    assert_eq!(
        taskmanager_requests(&samples, "/taskmanagers/:taskmanagerid/metrics"),
        Some(1.0)
    );
    let samples = parse(&scrape(broker.metrics_addr).await);
    assert_eq!(taskmanager_requests(&samples, "/taskmanagers"), Some(2.0));
    assert_eq!(
        taskmanager_requests(&samples, "/taskmanagers/:taskmanagerid/metrics"),
        Some(2.0)
    );
    broker.stop().await;
    standin.shutdown().await;
}

/// The TaskManager memory gauges of a scrape: (taskmanager, area) → bytes, used and max.
fn taskmanager_memory(samples: &[Sample]) -> Vec<(String, String, f64, Option<f64>)> {
    samples
        .iter()
        .filter(|sample| sample.name == "flinkbroker_taskmanager_memory_used_bytes")
        .map(|used| {
            let taskmanager = label_value(used, "taskmanager").unwrap_or_default();
            let area = label_value(used, "area").unwrap_or_default();
            let max = value(
                samples,
                "flinkbroker_taskmanager_memory_max_bytes",
                &[("taskmanager", taskmanager), ("area", area)],
            );
            (taskmanager.to_owned(), area.to_owned(), used.value, max)
        })
        .collect()
}

#[tokio::test]
async fn taskmanager_memory_is_read_from_the_jobmanager_at_each_scrape() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let before = taskmanager_memory(&parse(&scrape(broker.metrics_addr).await));
    let areas: Vec<(&str, &str)> = before
        .iter()
        .map(|(taskmanager, area, _, _)| (taskmanager.as_str(), area.as_str()))
        .collect();
    assert_eq!(
        areas,
        [
            ("127.0.0.1:6122-a86532", "heap"),
            ("127.0.0.1:6122-a86532", "metaspace")
        ]
    );
    for (taskmanager, area, used, max) in &before {
        let max = max.unwrap_or_else(|| panic!("{taskmanager} {area}: no limit"));
        assert!(
            *used > 1_000_000.0 && *used < max && max < 1e10,
            "{taskmanager} {area}: {used} of {max}"
        );
    }

    // A job's classes stay in the TaskManager's metaspace after it ends.
    let job = submit(
        &mut client,
        sql(
            &format!("{BOUNDED_GEN};\nSELECT * FROM gen;"),
            RuntimeMode::Batch,
        ),
    )
    .await;
    wait_for_state(&client, &job.id, JobState::Finished).await;
    let after = taskmanager_memory(&parse(&scrape(broker.metrics_addr).await));
    assert!(
        after[1].2 > before[1].2 && after[1].3 == before[1].3,
        "metaspace {before:?} then {after:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_jobmanager_that_does_not_answer_leaves_the_taskmanager_gauges_out_of_a_scrape() {
    // A port nobody listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    flinkbroker::install_crypto_provider();
    let jobmanager = RestJobManager::new(&format!("http://{closed}"), Duration::from_secs(2))
        .expect("jobmanager client");
    let broker = TestBroker::start_options(Options {
        jobmanager: Some(Arc::new(jobmanager)),
        ..Options::default()
    })
    .await;
    let text = scrape(broker.metrics_addr).await;
    let samples = parse(&text);
    assert!(
        !samples
            .iter()
            .any(|sample| sample.name.starts_with("flinkbroker_taskmanager_")),
        "{text}"
    );
    // The rest of the scrape is there.
    assert_eq!(sql_jobs(&samples, "RUNNING"), Some(0.0), "{text}");
    broker.stop().await;
}

#[tokio::test]
async fn taskmanager_memory_asks_the_jobmanager_for_the_four_jvm_memory_metrics() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/taskmanagers"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"taskmanagers":[{"id":"127.0.0.1:46122-cc51ab","slotsNumber":4,"freeSlots":4}]}"#,
            "application/json; charset=UTF-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/taskmanagers/127.0.0.1:46122-cc51ab/metrics"))
        .and(query_param(
            "get",
            "Status.JVM.Memory.Heap.Used,Status.JVM.Memory.Heap.Max,Status.JVM.Memory.Metaspace.Used,Status.JVM.Memory.Metaspace.Max",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"[{"id":"Status.JVM.Memory.Metaspace.Used","value":"38437336"},{"id":"Status.JVM.Memory.Metaspace.Max","value":"268435456"},{"id":"Status.JVM.Memory.Heap.Used","value":"34402096"},{"id":"Status.JVM.Memory.Heap.Max","value":"436207616"}]"#,
            "application/json; charset=UTF-8",
        ))
        .expect(1)
        .mount(&server)
        .await;
    flinkbroker::install_crypto_provider();
    let jobmanager =
        RestJobManager::new(&server.uri(), Duration::from_secs(5)).expect("jobmanager client");
    let ids = jobmanager.taskmanagers().await.expect("taskmanagers");
    assert_eq!(ids, ["127.0.0.1:46122-cc51ab"]);
    let memory = jobmanager
        .taskmanager_memory(&ids[0])
        .await
        .expect("taskmanager memory");
    assert_eq!(
        memory,
        TaskManagerMemory {
            heap_used: Some(34_402_096),
            heap_max: Some(436_207_616),
            metaspace_used: Some(38_437_336),
            metaspace_max: Some(268_435_456),
        }
    );
    server.verify().await;
}

#[tokio::test]
async fn taskmanager_memory_of_a_real_cluster_appears_once_the_jobmanager_fetched_it() {
    let Some(cluster) = FlinkCluster::shared().await else {
        return;
    };
    flinkbroker::install_crypto_provider();
    let jobmanager =
        RestJobManager::new(&cluster.rest_url, Duration::from_secs(10)).expect("jobmanager");
    let ids = jobmanager.taskmanagers().await.expect("taskmanagers");
    assert_eq!(ids.len(), 1, "{ids:?}");
    // The JobManager answers without values until its metric fetcher has run.
    let memory = eventually("the taskmanager's memory metrics", LIMIT, || {
        let jobmanager = &jobmanager;
        let id = &ids[0];
        async move {
            let memory = jobmanager.taskmanager_memory(id).await.expect("memory");
            (memory.metaspace_used.is_some() && memory.heap_used.is_some()).then_some(memory)
        }
    })
    .await;
    let (Some(heap_used), Some(heap_max), Some(metaspace_used), Some(metaspace_max)) = (
        memory.heap_used,
        memory.heap_max,
        memory.metaspace_used,
        memory.metaspace_max,
    ) else {
        panic!("incomplete memory metrics: {memory:?}");
    };
    assert!(heap_used > 0 && heap_used < heap_max, "{memory:?}");
    assert!(
        metaspace_used > 0 && metaspace_used < metaspace_max,
        "{memory:?}"
    );
    // The metaspace limit is the one the TaskManager's memory configuration sets.
    let list: serde_json::Value = reqwest::get(format!("{}/taskmanagers", cluster.rest_url))
        .await
        .expect("GET /taskmanagers")
        .json()
        .await
        .expect("taskmanagers JSON");
    assert_eq!(
        list["taskmanagers"][0]["memoryConfiguration"]["jvmMetaspace"].as_u64(),
        Some(metaspace_max),
        "{list}"
    );
}
