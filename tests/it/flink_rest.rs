//! The JobManager REST client against a stand-in that serves the bodies a Flink 1.20.3
//! JobManager sent on the wire (tests/fixtures/jobmanager/).

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use flinkbroker_flink::jobmanager::{
    FlinkError, FlinkJobStatus, JobManager, RestJobManager, SavepointFormat, SavepointStatus,
    savepoint_trigger_id,
};

const OVERVIEW: &str = include_str!("../fixtures/jobmanager/overview.json");
const JOB_RUNNING: &str = include_str!("../fixtures/jobmanager/job-running.json");
const JOB_FINISHED: &str = include_str!("../fixtures/jobmanager/job-finished.json");
const JOB_FINISHED_AFTER_STOP: &str =
    include_str!("../fixtures/jobmanager/job-finished-after-stop.json");
const JOB_CANCELED: &str = include_str!("../fixtures/jobmanager/job-canceled.json");
const JOB_FAILED: &str = include_str!("../fixtures/jobmanager/job-failed.json");
const JOB_NOT_FOUND: &str = include_str!("../fixtures/jobmanager/job-not-found.json");
const JOB_ID_MALFORMED: &str = include_str!("../fixtures/jobmanager/job-id-malformed.json");
const EXCEPTIONS_NONE: &str = include_str!("../fixtures/jobmanager/exceptions-none.json");
const EXCEPTIONS_FAILED_JOB: &str =
    include_str!("../fixtures/jobmanager/exceptions-failed-job.json");
const CANCEL_ACCEPTED: &str = include_str!("../fixtures/jobmanager/cancel-accepted.json");
const STOP_ACCEPTED: &str = include_str!("../fixtures/jobmanager/stop-accepted.json");
const SAVEPOINT_COMPLETED: &str = include_str!("../fixtures/jobmanager/savepoint-completed.json");

/// The job ids and trigger id of the recordings.
const RUNNING_JOB: &str = "0000000000000000000000000000a017";
const CANCELED_JOB: &str = "0000000000000000000000000000b017";
const FINISHED_JOB: &str = "0000000000000000000000000000f15a";
const FAILED_JOB: &str = "0000000000000000000000000000dead";
const UNKNOWN_JOB: &str = "ffffffffffffffffffffffffffffffff";
const RECORDED_TRIGGER: &str = "1234567890abcdef1234567890abcdef";
const RECORDED_TARGET_DIRECTORY: &str = "file:///opt/flink-local/rt-tmp/savepoints";

fn jobmanager_at(base_url: &str, timeout: Duration) -> RestJobManager {
    let _ = rustls::crypto::ring::default_provider().install_default();
    RestJobManager::new(base_url, timeout).expect("client builds")
}

fn jobmanager(server: &MockServer) -> RestJobManager {
    jobmanager_at(&server.uri(), Duration::from_secs(5))
}

/// A reply the way Flink sends it.
fn flink_reply(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(body.as_bytes().to_vec(), "application/json; charset=UTF-8")
}

async fn serve_job(server: &MockServer, flink_job_id: &str, status: u16, body: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{flink_job_id}")))
        .respond_with(flink_reply(status, body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn ping_reads_the_overview() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(flink_reply(200, OVERVIEW))
        .expect(1)
        .mount(&server)
        .await;

    jobmanager(&server).ping().await.expect("ping");
}

#[tokio::test]
async fn ping_reports_a_reply_that_is_not_flink() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hello</html>"))
        .mount(&server)
        .await;

    let error = jobmanager(&server).ping().await.unwrap_err();
    assert!(matches!(error, FlinkError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn ping_reports_a_failing_jobmanager_with_a_short_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(flink_reply(
            500,
            r#"{"errors":["Internal server error.","<Exception on server side:\njava.util.concurrent.CompletionException: org.apache.flink.runtime.rpc.exceptions.RecipientUnreachableException: no leader\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.rpc.exceptions.RecipientUnreachableException: no leader\n\t... 5 more\n\nEnd of exception on server side>"]}"#,
        ))
        .mount(&server)
        .await;

    let error = jobmanager(&server).ping().await.unwrap_err();
    assert_eq!(
        error,
        FlinkError::Server {
            status: 500,
            message: "Internal server error.; org.apache.flink.runtime.rpc.exceptions.RecipientUnreachableException: no leader".to_owned(),
        }
    );
}

#[tokio::test]
async fn job_status_reads_the_state_of_each_recorded_job() {
    let server = MockServer::start().await;
    serve_job(&server, RUNNING_JOB, 200, JOB_RUNNING).await;
    serve_job(&server, FINISHED_JOB, 200, JOB_FINISHED).await;
    serve_job(&server, CANCELED_JOB, 200, JOB_CANCELED).await;
    serve_job(&server, FAILED_JOB, 200, JOB_FAILED).await;
    let jobmanager = jobmanager(&server);

    assert_eq!(
        jobmanager.job_status(RUNNING_JOB).await,
        Ok(FlinkJobStatus::Running)
    );
    assert_eq!(
        jobmanager.job_status(FINISHED_JOB).await,
        Ok(FlinkJobStatus::Finished)
    );
    assert_eq!(
        jobmanager.job_status(CANCELED_JOB).await,
        Ok(FlinkJobStatus::Canceled)
    );
    assert_eq!(
        jobmanager.job_status(FAILED_JOB).await,
        Ok(FlinkJobStatus::Failed)
    );
}

#[tokio::test]
async fn job_status_of_an_unknown_job_is_job_not_found() {
    let server = MockServer::start().await;
    serve_job(&server, UNKNOWN_JOB, 404, JOB_NOT_FOUND).await;

    let error = jobmanager(&server)
        .job_status(UNKNOWN_JOB)
        .await
        .unwrap_err();
    assert_eq!(error, FlinkError::JobNotFound(UNKNOWN_JOB.to_owned()));
}

#[tokio::test]
async fn job_status_of_a_malformed_id_is_a_bad_request_without_stack_trace() {
    let server = MockServer::start().await;
    serve_job(&server, "not-a-job-id", 400, JOB_ID_MALFORMED).await;

    let error = jobmanager(&server)
        .job_status("not-a-job-id")
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FlinkError::Server {
            status: 400,
            message: r#"org.apache.flink.runtime.rest.handler.HandlerRequestException: Cannot resolve path parameter (jobid) from value "not-a-job-id"."#.to_owned(),
        }
    );
}

#[tokio::test]
async fn a_path_flink_does_not_serve_is_not_mistaken_for_an_unknown_job() {
    let server = MockServer::start().await;
    serve_job(
        &server,
        RUNNING_JOB,
        404,
        r#"{"errors":["Not found: /jobs/0000000000000000000000000000a017"]}"#,
    )
    .await;

    let error = jobmanager(&server)
        .job_status(RUNNING_JOB)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FlinkError::Server {
            status: 404,
            message: "Not found: /jobs/0000000000000000000000000000a017".to_owned(),
        }
    );
}

#[tokio::test]
async fn job_status_rejects_an_unknown_state() {
    let server = MockServer::start().await;
    serve_job(
        &server,
        RUNNING_JOB,
        200,
        r#"{"jid":"x","state":"DANCING"}"#,
    )
    .await;

    let error = jobmanager(&server)
        .job_status(RUNNING_JOB)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FlinkError::Protocol(ref message) if message.contains("DANCING")),
        "{error:?}"
    );
}

#[tokio::test]
async fn job_ids_cannot_leave_the_job_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(flink_reply(200, OVERVIEW))
        .expect(0)
        .mount(&server)
        .await;

    let result = jobmanager(&server).job_status("../overview").await;
    assert!(result.is_err(), "{result:?}");
    let requests = server.received_requests().await.expect("recording enabled");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/jobs/..%2Foverview");
}

#[tokio::test]
async fn requests_keep_the_path_of_the_base_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/flink/jobs/{RUNNING_JOB}")))
        .respond_with(flink_reply(200, JOB_RUNNING))
        .expect(1)
        .mount(&server)
        .await;

    let jobmanager = jobmanager_at(&format!("{}/flink/", server.uri()), Duration::from_secs(5));
    assert_eq!(
        jobmanager.job_status(RUNNING_JOB).await,
        Ok(FlinkJobStatus::Running)
    );
}

#[tokio::test]
async fn root_cause_of_a_failed_pyflink_job_is_the_python_error_line() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{FAILED_JOB}/exceptions")))
        .respond_with(flink_reply(200, EXCEPTIONS_FAILED_JOB))
        .mount(&server)
        .await;

    let cause = jobmanager(&server)
        .root_cause(FAILED_JOB)
        .await
        .expect("root cause");
    assert_eq!(cause.as_deref(), Some("RuntimeError: row 3 is poison"));
}

#[tokio::test]
async fn root_cause_of_a_job_without_failures_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{FINISHED_JOB}/exceptions")))
        .respond_with(flink_reply(200, EXCEPTIONS_NONE))
        .mount(&server)
        .await;

    assert_eq!(jobmanager(&server).root_cause(FINISHED_JOB).await, Ok(None));
}

#[tokio::test]
async fn root_cause_of_a_failed_java_job_is_the_innermost_cause() {
    let server = MockServer::start().await;
    let trace = "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:219)\nCaused by: java.lang.RuntimeException: boom\n\tat com.example.Boom.map(Boom.java:12)\n\t... 18 more\n";
    let body = json!({
        "root-exception": trace,
        "timestamp": 1795470303010_i64,
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": {"entries": [], "truncated": false}
    });
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{FAILED_JOB}/exceptions")))
        .respond_with(flink_reply(200, &body.to_string()))
        .mount(&server)
        .await;

    let cause = jobmanager(&server)
        .root_cause(FAILED_JOB)
        .await
        .expect("root cause");
    assert_eq!(cause.as_deref(), Some("java.lang.RuntimeException: boom"));
}

#[tokio::test]
async fn root_cause_falls_back_to_the_exception_history() {
    let server = MockServer::start().await;
    let body = json!({
        "root-exception": null,
        "timestamp": null,
        "all-exceptions": [],
        "truncated": false,
        "exceptionHistory": {"entries": [{
            "exceptionName": "java.lang.IllegalStateException",
            "stacktrace": "java.lang.IllegalStateException: sink closed\n\tat com.example.Sink.invoke(Sink.java:3)\n",
            "timestamp": 1795470303037_i64,
            "failureLabels": {},
            "concurrentExceptions": []
        }], "truncated": false}
    });
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{FAILED_JOB}/exceptions")))
        .respond_with(flink_reply(200, &body.to_string()))
        .mount(&server)
        .await;

    let cause = jobmanager(&server)
        .root_cause(FAILED_JOB)
        .await
        .expect("root cause");
    assert_eq!(
        cause.as_deref(),
        Some("java.lang.IllegalStateException: sink closed")
    );
}

#[tokio::test]
async fn root_cause_of_an_unknown_job_is_job_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{UNKNOWN_JOB}/exceptions")))
        .respond_with(flink_reply(404, JOB_NOT_FOUND))
        .mount(&server)
        .await;

    let error = jobmanager(&server)
        .root_cause(UNKNOWN_JOB)
        .await
        .unwrap_err();
    assert_eq!(error, FlinkError::JobNotFound(UNKNOWN_JOB.to_owned()));
}

#[tokio::test]
async fn cancelling_twice_is_not_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/jobs/{CANCELED_JOB}")))
        .and(query_param("mode", "cancel"))
        .respond_with(flink_reply(202, CANCEL_ACCEPTED))
        .expect(2)
        .mount(&server)
        .await;
    serve_job(&server, CANCELED_JOB, 200, JOB_CANCELED).await;
    let jobmanager = jobmanager(&server);

    jobmanager.cancel(CANCELED_JOB).await.expect("first cancel");
    assert_eq!(
        jobmanager.job_status(CANCELED_JOB).await,
        Ok(FlinkJobStatus::Canceled)
    );
    jobmanager
        .cancel(CANCELED_JOB)
        .await
        .expect("second cancel");
}

#[tokio::test]
async fn cancelling_a_job_that_ended_on_its_own_is_not_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/jobs/{FINISHED_JOB}")))
        .and(query_param("mode", "cancel"))
        .respond_with(flink_reply(
            409,
            r#"{"errors":["org.apache.flink.runtime.rest.handler.RestHandlerException: Job cancellation failed because the job has already reached another terminal state (FINISHED).\n\tat org.apache.flink.runtime.rest.handler.job.JobCancellationHandler.lambda$handleRequest$0(JobCancellationHandler.java:130)\n"]}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;

    jobmanager(&server)
        .cancel(FINISHED_JOB)
        .await
        .expect("cancel of an ended job");
}

#[tokio::test]
async fn cancelling_an_unknown_job_is_job_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/jobs/{UNKNOWN_JOB}")))
        .respond_with(flink_reply(404, JOB_NOT_FOUND))
        .mount(&server)
        .await;

    let error = jobmanager(&server).cancel(UNKNOWN_JOB).await.unwrap_err();
    assert_eq!(error, FlinkError::JobNotFound(UNKNOWN_JOB.to_owned()));
}

#[tokio::test]
async fn stop_with_savepoint_posts_the_recorded_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{RUNNING_JOB}/stop")))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "triggerId": RECORDED_TRIGGER,
            "drain": false,
            "targetDirectory": RECORDED_TARGET_DIRECTORY,
            "formatType": "CANONICAL",
        })))
        .respond_with(flink_reply(202, STOP_ACCEPTED))
        .expect(1)
        .mount(&server)
        .await;

    let trigger = jobmanager(&server)
        .stop_with_savepoint(
            RUNNING_JOB,
            RECORDED_TRIGGER,
            Some(RECORDED_TARGET_DIRECTORY),
            SavepointFormat::Canonical,
        )
        .await
        .expect("stop accepted");
    assert_eq!(trigger, RECORDED_TRIGGER);
}

#[tokio::test]
async fn stop_with_savepoint_without_target_directory_leaves_it_to_flink() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{RUNNING_JOB}/stop")))
        .and(body_json(
            json!({"triggerId": RECORDED_TRIGGER, "drain": false, "formatType": "CANONICAL"}),
        ))
        .respond_with(flink_reply(202, STOP_ACCEPTED))
        .expect(1)
        .mount(&server)
        .await;

    let trigger = jobmanager(&server)
        .stop_with_savepoint(
            RUNNING_JOB,
            RECORDED_TRIGGER,
            None,
            SavepointFormat::Canonical,
        )
        .await
        .expect("stop accepted");
    assert_eq!(trigger, RECORDED_TRIGGER);
}

#[tokio::test]
async fn repeating_a_stop_with_the_derived_trigger_id_sends_the_same_request() {
    let server = MockServer::start().await;
    let trigger = savepoint_trigger_id(RUNNING_JOB);
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{RUNNING_JOB}/stop")))
        .and(body_json(json!({
            "triggerId": trigger,
            "drain": false,
            "targetDirectory": RECORDED_TARGET_DIRECTORY,
            "formatType": "CANONICAL",
        })))
        .respond_with(flink_reply(
            202,
            &json!({"request-id": trigger}).to_string(),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let jobmanager = jobmanager(&server);

    let first = jobmanager
        .stop_with_savepoint(
            RUNNING_JOB,
            &savepoint_trigger_id(RUNNING_JOB),
            Some(RECORDED_TARGET_DIRECTORY),
            SavepointFormat::Canonical,
        )
        .await
        .expect("first stop");
    let second = jobmanager
        .stop_with_savepoint(
            RUNNING_JOB,
            &savepoint_trigger_id(RUNNING_JOB),
            Some(RECORDED_TARGET_DIRECTORY),
            SavepointFormat::Canonical,
        )
        .await
        .expect("second stop");
    assert_eq!(first, trigger);
    assert_eq!(second, trigger);
}

#[tokio::test]
async fn stop_with_savepoint_of_an_unknown_job_is_job_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{UNKNOWN_JOB}/stop")))
        .respond_with(flink_reply(404, JOB_NOT_FOUND))
        .mount(&server)
        .await;

    let error = jobmanager(&server)
        .stop_with_savepoint(
            UNKNOWN_JOB,
            RECORDED_TRIGGER,
            None,
            SavepointFormat::Canonical,
        )
        .await
        .unwrap_err();
    assert_eq!(error, FlinkError::JobNotFound(UNKNOWN_JOB.to_owned()));
}

#[tokio::test]
async fn stop_then_poll_follows_the_recorded_sequence() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/jobs/{RUNNING_JOB}/stop")))
        .respond_with(flink_reply(202, STOP_ACCEPTED))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/jobs/{RUNNING_JOB}/savepoints/{RECORDED_TRIGGER}"
        )))
        .respond_with(flink_reply(200, SAVEPOINT_COMPLETED))
        .mount(&server)
        .await;
    serve_job(&server, RUNNING_JOB, 200, JOB_FINISHED_AFTER_STOP).await;
    let jobmanager = jobmanager(&server);

    let trigger = jobmanager
        .stop_with_savepoint(
            RUNNING_JOB,
            RECORDED_TRIGGER,
            Some(RECORDED_TARGET_DIRECTORY),
            SavepointFormat::Canonical,
        )
        .await
        .expect("stop accepted");
    assert_eq!(
        jobmanager.savepoint_status(RUNNING_JOB, &trigger).await,
        Ok(SavepointStatus::Completed {
            location: "file:/opt/flink-local/rt-tmp/savepoints/savepoint-000000-984994eaeddd"
                .to_owned()
        })
    );
    assert_eq!(
        jobmanager.job_status(RUNNING_JOB).await,
        Ok(FlinkJobStatus::Finished)
    );
}

// The recordings only hold a completed savepoint; the in-progress and failed replies below
// follow Flink's `AsynchronousOperationResult` / `SerializedThrowable` JSON.
#[tokio::test]
async fn savepoint_status_in_progress() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/jobs/{RUNNING_JOB}/savepoints/{RECORDED_TRIGGER}"
        )))
        .respond_with(flink_reply(
            200,
            r#"{"status":{"id":"IN_PROGRESS"},"operation":null}"#,
        ))
        .mount(&server)
        .await;

    assert_eq!(
        jobmanager(&server)
            .savepoint_status(RUNNING_JOB, RECORDED_TRIGGER)
            .await,
        Ok(SavepointStatus::InProgress)
    );
}

#[tokio::test]
async fn savepoint_status_failed_reports_the_innermost_cause() {
    let server = MockServer::start().await;
    let body = json!({
        "status": {"id": "COMPLETED"},
        "operation": {"failure-cause": {
            "class": "java.util.concurrent.CompletionException",
            "stack-trace": "java.util.concurrent.CompletionException: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.\n\tat java.base/java.util.concurrent.CompletableFuture.encodeThrowable(CompletableFuture.java:332)\nCaused by: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.\n\tat org.apache.flink.runtime.checkpoint.CheckpointCoordinator.stopCheckpointScheduler(CheckpointCoordinator.java:1958)\n\t... 12 more\n",
            "serialized-throwable": "rO0ABXNy"
        }}
    });
    Mock::given(method("GET"))
        .and(path(format!(
            "/jobs/{RUNNING_JOB}/savepoints/{RECORDED_TRIGGER}"
        )))
        .respond_with(flink_reply(200, &body.to_string()))
        .mount(&server)
        .await;

    assert_eq!(
        jobmanager(&server).savepoint_status(RUNNING_JOB, RECORDED_TRIGGER).await,
        Ok(SavepointStatus::Failed {
            cause: "org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.".to_owned()
        })
    );
}

#[tokio::test]
async fn savepoint_status_of_an_unknown_trigger_is_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/jobs/{RUNNING_JOB}/savepoints/{RECORDED_TRIGGER}")))
        .respond_with(flink_reply(
            404,
            r#"{"errors":["org.apache.flink.runtime.rest.NotFoundException: Operation not found under key: org.apache.flink.runtime.rest.handler.job.AsynchronousJobOperationKey@8893e196\n\tat org.apache.flink.runtime.rest.handler.async.AbstractAsynchronousOperationHandlers$StatusHandler.handleRequest(AbstractAsynchronousOperationHandlers.java:167)\n"]}"#,
        ))
        .mount(&server)
        .await;

    let error = jobmanager(&server)
        .savepoint_status(RUNNING_JOB, RECORDED_TRIGGER)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FlinkError::Server { status: 404, ref message } if message.contains("Operation not found")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreachable_jobmanager_is_unreachable() {
    // Nothing listens on it.
    let (_held, address) = crate::support::refused_address();
    let jobmanager = jobmanager_at(&format!("http://{address}"), Duration::from_secs(5));

    let error = jobmanager.ping().await.unwrap_err();
    assert!(matches!(error, FlinkError::Unreachable(_)), "{error:?}");
    let error = jobmanager.job_status(RUNNING_JOB).await.unwrap_err();
    assert!(matches!(error, FlinkError::Unreachable(_)), "{error:?}");
    let error = jobmanager.cancel(RUNNING_JOB).await.unwrap_err();
    assert!(matches!(error, FlinkError::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn a_jobmanager_slower_than_the_timeout_is_unreachable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/overview"))
        .respond_with(flink_reply(200, OVERVIEW).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let jobmanager = jobmanager_at(&server.uri(), Duration::from_millis(200));

    let error = jobmanager.ping().await.unwrap_err();
    assert!(matches!(error, FlinkError::Unreachable(_)), "{error:?}");
}

#[test]
fn an_invalid_base_url_is_rejected() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(RestJobManager::new("not a url", Duration::from_secs(1)).is_err());
    assert!(RestJobManager::new("ftp://jobmanager:8081", Duration::from_secs(1)).is_err());
}

#[test]
fn savepoint_trigger_ids_are_deterministic_32_hex_per_job() {
    let trigger = savepoint_trigger_id(RUNNING_JOB);
    assert_eq!(trigger.len(), 32);
    assert!(
        trigger
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(trigger, savepoint_trigger_id(RUNNING_JOB));
    assert_eq!(
        trigger,
        savepoint_trigger_id(&RUNNING_JOB.to_ascii_uppercase())
    );
    assert_ne!(trigger, savepoint_trigger_id(CANCELED_JOB));
    assert_ne!(trigger, RUNNING_JOB);
}
