//! Black-box tests of the server around the API: reflection, health, shutdown, dependencies
//! that are down, heartbeats and client disconnects.

use crate::support::broker;

use std::time::Duration;

use broker::{TestBroker, eventually, wait_for_job, wait_for_state};
use flinkbroker_proto::stream_operation_results_response::Message;
use flinkbroker_proto::{
    JobState, RuntimeMode, StreamOperationResultsRequest, SubmitSqlRequest, WatchJobRequest,
};
use flinkbroker_server::app::{JOB_SERVICE_HEALTH, JOBMANAGER_HEALTH, SQL_GATEWAY_HEALTH};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LIMIT: Duration = Duration::from_secs(30);

fn unbounded_query() -> SubmitSqlRequest {
    SubmitSqlRequest {
        script: "CREATE TABLE slow (id INT) WITH ('connector'='datagen', 'rows-per-second'='1');\nSELECT * FROM slow;".into(),
        runtime_mode: RuntimeMode::Streaming as i32,
        ..SubmitSqlRequest::default()
    }
}

async fn health_status(broker: &TestBroker, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(broker.channel().await);
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status()
}

async fn wait_for_health(broker: &TestBroker, service: &str, status: ServingStatus) {
    eventually(&format!("{service} {status:?}"), LIMIT, || async {
        (health_status(broker, service).await == status).then_some(())
    })
    .await;
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_and_describe_the_job_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let broker = TestBroker::start().await;

    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(broker.channel().await);
    let requests = tokio_stream::iter([
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "flinkbroker.v1.JobService".into(),
                ),
            ),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("v1")
        .into_inner();
    let mut services = Vec::new();
    let mut described = false;
    while let Some(response) = responses.next().await {
        match response.expect("response").message_response {
            Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
                services = list.service.into_iter().map(|s| s.name).collect();
            }
            Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(
                files,
            )) => {
                described = !files.file_descriptor_proto.is_empty();
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    assert!(
        services.contains(&"flinkbroker.v1.JobService".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_string()),
        "{services:?}"
    );
    assert!(described, "the job service's file descriptor is served");

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(broker.channel().await);
    let request = tokio_stream::iter([v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    }]);
    let mut responses = alpha
        .server_reflection_info(request)
        .await
        .expect("v1alpha")
        .into_inner();
    let response = responses.next().await.expect("one answer").expect("answer");
    match response.message_response {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            assert!(
                list.service
                    .iter()
                    .any(|s| s.name == "flinkbroker.v1.JobService")
            );
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn health_reports_the_broker_and_each_dependency_by_name() {
    let broker = TestBroker::start().await;
    assert_eq!(health_status(&broker, "").await, ServingStatus::Serving);
    assert_eq!(
        health_status(&broker, JOB_SERVICE_HEALTH).await,
        ServingStatus::Serving
    );
    wait_for_health(&broker, SQL_GATEWAY_HEALTH, ServingStatus::Serving).await;
    wait_for_health(&broker, JOBMANAGER_HEALTH, ServingStatus::Serving).await;
    broker.stop().await;
}

#[tokio::test]
async fn unreachable_gateway_holds_the_job_until_cancelled_and_shows_in_health_only() {
    let (_held, closed) = crate::support::refused_address();
    let url = format!("http://{closed}");
    let broker = TestBroker::start_against_gateway(&url).await;
    wait_for_health(&broker, SQL_GATEWAY_HEALTH, ServingStatus::NotServing).await;
    assert_eq!(health_status(&broker, "").await, ServingStatus::Serving);

    let mut client = broker.client().await;
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: "SELECT 1".into(),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("recorded even when the gateway is down")
        .into_inner();
    // A gateway that is down is no reason for the job to fail: it waits, and says why.
    let waiting = wait_for_job(&client, &job.id, "waits for the gateway", |job| {
        job.state_reason
            .starts_with("waiting for the sql gateway: sql gateway unreachable")
    })
    .await;
    assert_eq!(waiting.state(), JobState::Submitting);
    let canceling = broker::cancel(&mut client, &job.id).await;
    assert_eq!(canceling.state(), JobState::Canceling);
    wait_for_state(&client, &job.id, JobState::Canceled).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_v1_only_gateway_is_refused_with_a_clear_error() {
    let gateway = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api_versions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(r#"{"versions":["V1"]}"#, "application/json"),
        )
        .mount(&gateway)
        .await;
    let broker = TestBroker::start_against_gateway(&gateway.uri()).await;
    wait_for_health(&broker, SQL_GATEWAY_HEALTH, ServingStatus::NotServing).await;
    let mut client = broker.client().await;
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: "SELECT 1".into(),
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner();
    let failed = wait_for_state(&client, &job.id, JobState::Failed).await;
    assert!(
        failed.state_reason.contains("V2 or newer"),
        "{}",
        failed.state_reason
    );
    broker.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_the_session_of_a_running_job_alive() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = client
        .submit_sql(unbounded_query())
        .await
        .expect("submit")
        .into_inner();
    eventually("a heartbeat", LIMIT, || async {
        (broker.standin.heartbeats() > 0).then_some(())
    })
    .await;
    broker::cancel(&mut client, &job.id).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_stops_the_fetching_and_frees_the_statement() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = client
        .submit_sql(unbounded_query())
        .await
        .expect("submit")
        .into_inner();
    let request = StreamOperationResultsRequest {
        job_id: job.id.clone(),
        ..StreamOperationResultsRequest::default()
    };
    let mut first = client
        .stream_operation_results(request.clone())
        .await
        .expect("reader")
        .into_inner();
    let schema = first.message().await.expect("message").expect("schema");
    assert!(matches!(schema.message, Some(Message::Schema(_))));
    drop(first);
    // The reader's fetch loop stops and releases the statement for the next reader.
    let mut second = eventually("the statement is free again", LIMIT, || {
        let mut client = client.clone();
        let request = request.clone();
        async move {
            match client.stream_operation_results(request).await {
                Ok(stream) => Some(stream.into_inner()),
                Err(status) if status.code() == Code::Aborted => None,
                Err(status) => panic!("unexpected {status}"),
            }
        }
    })
    .await;
    let schema = second.message().await.expect("message").expect("schema");
    assert!(matches!(schema.message, Some(Message::Schema(_))));
    drop(second);
    broker::cancel(&mut client, &job.id).await;
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_stops_the_server() {
    let mut broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let job = client
        .submit_sql(unbounded_query())
        .await
        .expect("submit")
        .into_inner();
    let mut watch = client
        .watch_job(WatchJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    watch.message().await.expect("first").expect("job");
    broker.begin_shutdown();
    let ended = loop {
        match tokio::time::timeout(LIMIT, watch.message())
            .await
            .expect("stream ends in time")
        {
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    if let Some(status) = ended {
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(status.message().contains("shutting down"), "{status}");
    }
    assert!(
        broker.stopped_within(LIMIT).await,
        "server stops after shutdown"
    );
}

#[test]
fn a_broker_that_cannot_start_says_why_in_one_line_and_exits_with_the_usage_code() {
    // Ports another process holds: the broker's own and the metrics endpoint's.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let free = "127.0.0.1:0".to_string();
    for (listen, metrics, flag) in [
        (&address, &free, "--listen"),
        (&free, &address, "--metrics-listen"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .args(["serve", "--listen", listen, "--metrics-listen", metrics])
            .args(["--database-url", "sqlite::memory:"])
            .output()
            .expect("run flinkbroker");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{flag}: one line, got {stderr:?}");
        assert!(
            lines[0].starts_with("error: cannot listen")
                && lines[0].contains(&address)
                && lines[0].contains(flag)
                && lines[0].contains("in use")
                && !lines[0].contains("internal error"),
            "{flag}: {stderr}"
        );
    }
}

/// Runs `flinkbroker serve` on free ports with `flags` (and an in-memory store unless they
/// name one), expecting it not to start: checks it exits with the usage code and one line on
/// stderr that is no internal error; returns that line.
async fn refused_start(flags: &[&str]) -> String {
    let store: &[&str] = if flags.contains(&"--database-url") {
        &[]
    } else {
        &["--database-url", "sqlite::memory:"]
    };
    let output = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
            ])
            .args(store)
            .args(flags)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{flags:?}: the broker started"))
    .expect("run flinkbroker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{flags:?}: one line, got {stderr:?}");
    assert!(
        lines[0].starts_with("error: ") && !lines[0].contains("internal error"),
        "{flags:?}: {stderr}"
    );
    lines[0].to_string()
}

#[tokio::test]
async fn a_file_flag_naming_an_unreadable_file_stops_the_start_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let present = dir.path().join("present.pem");
    std::fs::write(&present, "not checked before the files are read").expect("write");
    let present = present.display().to_string();
    let missing = dir.path().join("missing.json").display().to_string();
    let directory = dir.path().display().to_string();
    let not_found = "No such file or directory";
    for (flags, flag, path, reason) in [
        (
            vec!["--auth-tokens-file", &missing],
            "--auth-tokens-file",
            &missing,
            not_found,
        ),
        (
            vec!["--tenant-policy-file", &directory],
            "--tenant-policy-file",
            &directory,
            "Is a directory",
        ),
        (
            vec![
                "--jwt-jwks-file",
                &missing,
                "--jwt-issuer",
                "https://idp.test",
                "--jwt-audience",
                "flinkbroker",
            ],
            "--jwt-jwks-file",
            &missing,
            not_found,
        ),
        (
            vec!["--tls-cert", &present, "--tls-key", &missing],
            "--tls-key",
            &missing,
            not_found,
        ),
        (
            vec![
                "--tls-cert",
                &present,
                "--tls-key",
                &present,
                "--tls-client-ca",
                &present,
                "--mtls-principals-file",
                &missing,
            ],
            "--mtls-principals-file",
            &missing,
            not_found,
        ),
    ] {
        let line = refused_start(&flags).await;
        assert!(
            line.starts_with(&format!("error: cannot read {flag} {path}: {reason}")),
            "{flag}: {line}"
        );
    }
}

#[tokio::test]
async fn a_bad_flag_value_stops_the_start_in_one_line_naming_the_flag() {
    for (flags, flag) in [
        (&["--listen", "nope"][..], "'--listen <LISTEN>'"),
        (
            &["--poll-interval", "5x"][..],
            "'--poll-interval <POLL_INTERVAL>'",
        ),
        (&["--log-format", "yaml"][..], "'--log-format <LOG_FORMAT>'"),
        (&["--job-runner", "yarn"][..], "'--job-runner <JOB_RUNNER>'"),
        (
            &["--max-parallelism", "0"][..],
            "'--max-parallelism <MAX_PARALLELISM>'",
        ),
        (&["--tls-cert", "cert.pem"][..], "--tls-key <TLS_KEY>"),
        (&["--no-such-flag"][..], "'--no-such-flag'"),
        (
            &["--otlp-endpoint", "not an endpoint"][..],
            "(--otlp-endpoint)",
        ),
    ] {
        let line = refused_start(flags).await;
        assert!(line.contains(flag), "{flags:?}: {line}");
        assert!(!line.contains("Usage:"), "{flags:?}: {line}");
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_stops_the_start_naming_the_flag() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // Without mode=rwc SQLite opens an existing file only.
    let absent = dir.path().join("absent.db");
    let url = format!("sqlite://{}", absent.display());
    let line = refused_start(&["--database-url", &url]).await;
    assert!(
        line.starts_with(&format!(
            "error: cannot open the store at {url} (--database-url): "
        )),
        "{line}"
    );
    // The database's own reason follows.
    assert!(line.contains("unable to open database file"), "{line}");
    assert!(!absent.exists(), "{line}");
}

/// `url` with `password` as its user's password (the user `postgres` when it names none).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a url with a scheme");
    let (user_info, host) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = user_info
        .split_once(':')
        .map_or(user_info, |(user, _)| user);
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn a_postgres_store_that_cannot_be_opened_stops_the_start_without_showing_the_password() {
    let server = tokio::task::spawn_blocking(flinkbroker_testkit::postgres::test_server)
        .await
        .expect("choose the PostgreSQL server")
        .expect("a PostgreSQL server for the tests");
    // A database nobody creates; with trust authentication the password is not checked.
    let absent =
        flinkbroker_testkit::postgres::with_database(server.url(), "flinkbroker_no_such_database");
    let url = with_password(&absent, "tiger-secret");
    let line = refused_start(&["--database-url", &url]).await;
    assert!(
        line.starts_with("error: cannot open the store at postgres")
            && line.contains(":***@")
            && line.contains("(--database-url): "),
        "{line}"
    );
    assert!(!line.contains("tiger-secret"), "{line}");
}
