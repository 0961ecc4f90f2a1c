//! The Kubernetes runner against a scripted API server: each test lists the requests the
//! runner must send, in order, checks their method, path, query and body, and answers them the
//! way the API server does. A request that never comes fails the test after a timeout; an
//! unexpected one reaches a closed server and fails the runner's call.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};
use uuid::Uuid;

use flinkbroker_model::job::{JobId, PythonSpec};
use flinkbroker_runner::kubernetes::{KubernetesRunner, KubernetesRunnerConfig, job_name};
use flinkbroker_runner::{JobRunner, MAX_OUTPUT_BYTES, RunnerError, SubmitterSpec, SubmitterState};

const WAIT: Duration = Duration::from_secs(5);
const NAMESPACE: &str = "flinkbroker";
const CONFIG_MAPS: &str = "/api/v1/namespaces/flinkbroker/configmaps";
const JOBS: &str = "/apis/batch/v1/namespaces/flinkbroker/jobs";
const PODS: &str = "/api/v1/namespaces/flinkbroker/pods";

fn job_id() -> JobId {
    JobId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
}

/// The name of the Job and ConfigMap of [`job_id`].
const NAME: &str = "flinkbroker-py-0123456789abcdef0123456789abcdef";

fn config() -> KubernetesRunnerConfig {
    KubernetesRunnerConfig {
        namespace: NAMESPACE.into(),
        service_account: "flinkbroker-submitter".into(),
        image: "flinkbroker/flink-python:1.20.3".into(),
        flink_executable: "/opt/flink/bin/flink".into(),
        jobmanager_address: "flink-jobmanager:8081".into(),
        python_executable: Some("python3".into()),
        active_deadline: Duration::from_secs(600),
        ttl_after_finished: Duration::from_secs(3600),
        cpu_request: "250m".into(),
        cpu_limit: "1".into(),
        memory_request: "512Mi".into(),
        memory_limit: "1Gi".into(),
    }
}

fn spec() -> SubmitterSpec {
    SubmitterSpec {
        job_id: job_id(),
        tenant: "recsys".into(),
        flink_job_id: "fedcba9876543210fedcba9876543210".into(),
        program: PythonSpec {
            script: Some("print('hi')".into()),
            script_url: None,
            entry_module: None,
            py_files: Vec::new(),
            py_archives: Vec::new(),
            py_requirements: None,
            program_args: vec!["--day".into(), "2026-11-23".into()],
            parallelism: None,
            flink_configuration: BTreeMap::new(),
            inline_py_files: BTreeMap::new(),
            restore: None,
        },
        restore_arguments: Vec::new(),
    }
}

fn mock_runner() -> (KubernetesRunner, ApiServer) {
    let (mock_service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(mock_service, "default-namespace");
    (KubernetesRunner::new(client, config()), ApiServer(handle))
}

/// The scripted API server.
struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// One request the runner sent, and the means to answer it.
struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    body: Value,
    respond: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// Waits for the next request and checks its method and path.
    async fn expect(&mut self, method: Method, path: &str) -> Call {
        let (request, respond) = tokio::time::timeout(WAIT, self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no {method} {path} within {WAIT:?}"))
            .expect("the client is gone");
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a json request body")
        };
        let call = Call {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(parse_query).unwrap_or_default(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            body,
            respond,
        };
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request"
        );
        call
    }
}

impl Call {
    fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn reply(self, status: u16, body: &Value) {
        self.reply_bytes(status, serde_json::to_vec(body).expect("json"));
    }

    fn reply_bytes(self, status: u16, body: Vec<u8>) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status code"))
            .body(Body::from(body))
            .expect("response");
        self.respond.send_response(response);
    }
}

/// Splits a query string into decoded pairs (`+` and `%XX` as form encoding writes them).
fn parse_query(query: &str) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                    out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("utf-8 query")
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The body of an API error.
fn api_status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn job_object(uid: &str, status: Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": NAME, "namespace": NAMESPACE, "uid": uid },
        "spec": { "template": { "spec": { "containers": [] } } },
        "status": status,
    })
}

fn pod_list(pods: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": { "resourceVersion": "7" },
        "items": pods,
    })
}

fn pod(name: &str, created: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": NAMESPACE, "creationTimestamp": created },
        "status": status,
    })
}

fn terminated(name: &str, exit_code: i32) -> Value {
    json!({
        "name": name, "image": "flinkbroker/flink-python:1.20.3", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": { "terminated": { "exitCode": exit_code, "reason": "Error" } },
    })
}

/// Runs the runner's call against the scenario; fails on a scenario that panicked or did not
/// see all its requests, and on a call that does not finish.
async fn run<T>(scenario: JoinHandle<()>, call: impl Future<Output = T>) -> T {
    let result = tokio::time::timeout(WAIT, call).await;
    match tokio::time::timeout(WAIT, scenario).await {
        Err(_) => panic!("the scenario did not finish within {WAIT:?}"),
        Ok(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Ok(Err(error)) => panic!("the scenario was cancelled: {error}"),
        Ok(Ok(())) => {}
    }
    result.expect("the runner's call finished in time")
}

/// Checks the labels a runner object carries.
fn assert_labels(object: &Value) {
    assert_eq!(
        object["metadata"]["labels"],
        json!({
            "app.kubernetes.io/name": "flinkbroker-submitter",
            "app.kubernetes.io/managed-by": "flinkbroker",
            "flinkbroker.io/job-id": "01234567-89ab-cdef-0123-456789abcdef",
            "flinkbroker.io/tenant": "recsys",
        })
    );
}

/// Answers a create with the object the runner sent, plus a uid.
fn created(mut object: Value, uid: &str) -> Value {
    object["metadata"]["uid"] = json!(uid);
    object
}

/// Checks the owner-reference patch of the ConfigMap and answers it.
async fn expect_owner_patch(server: &mut ApiServer, uid: &str) {
    let call = server
        .expect(Method::PATCH, &format!("{CONFIG_MAPS}/{NAME}"))
        .await;
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        call.body,
        json!({
            "metadata": {
                "ownerReferences": [{
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": NAME,
                    "uid": uid,
                    "controller": false,
                }]
            }
        })
    );
    let reply = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": NAME, "namespace": NAMESPACE, "ownerReferences": call.body["metadata"]["ownerReferences"].clone() },
    });
    call.reply(200, &reply);
}

#[test]
fn names_follow_the_broker_job_id() {
    assert_eq!(job_name(job_id()), NAME);
}

#[tokio::test]
async fn start_creates_the_config_map_then_the_job_then_makes_the_job_its_owner() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::POST, CONFIG_MAPS).await;
        assert_eq!(call.body["apiVersion"], "v1");
        assert_eq!(call.body["kind"], "ConfigMap");
        assert_eq!(call.body["metadata"]["name"], NAME);
        assert_eq!(call.body["metadata"]["namespace"], NAMESPACE);
        assert_labels(&call.body);
        assert_eq!(call.body["data"], json!({ "file-0": "print('hi')" }));
        assert_eq!(call.body["metadata"].get("ownerReferences"), None);
        let reply = created(call.body.clone(), "cm-uid-1");
        call.reply(201, &reply);

        let call = server.expect(Method::POST, JOBS).await;
        let job = &call.body;
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        assert_eq!(job["metadata"]["name"], NAME);
        assert_labels(job);
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["serviceAccountName"], "flinkbroker-submitter");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["volumes"][0]["configMap"]["name"], NAME);
        assert_eq!(
            pod["volumes"][0]["configMap"]["items"],
            json!([{ "key": "file-0", "path": "main.py" }])
        );
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "submitter");
        assert_eq!(
            container["command"],
            json!([
                "/opt/flink/bin/flink",
                "run",
                "-m",
                "flink-jobmanager:8081",
                "-d",
                "-D",
                "$internal.pipeline.job-id=fedcba9876543210fedcba9876543210",
                "-pyexec",
                "python3",
                "-pyclientexec",
                "python3",
                "-py",
                "/opt/flinkbroker/job/main.py",
                "--day",
                "2026-11-23",
            ])
        );
        assert_eq!(container.get("args"), None);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        let reply = created(call.body.clone(), "job-uid-1");
        call.reply(201, &reply);

        expect_owner_patch(&mut server, "job-uid-1").await;
    });
    run(scenario, runner.start(&spec()))
        .await
        .expect("the submitter starts");
}

#[tokio::test]
async fn start_adopts_an_existing_config_map_and_job() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::POST, CONFIG_MAPS).await;
        call.reply(
            409,
            &api_status(
                409,
                "AlreadyExists",
                &format!("configmaps \"{NAME}\" already exists"),
            ),
        );
        let call = server.expect(Method::POST, JOBS).await;
        call.reply(
            409,
            &api_status(
                409,
                "AlreadyExists",
                &format!("jobs.batch \"{NAME}\" already exists"),
            ),
        );
        let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
        call.reply(200, &job_object("existing-uid", json!({ "active": 1 })));
        expect_owner_patch(&mut server, "existing-uid").await;
    });
    run(scenario, runner.start(&spec()))
        .await
        .expect("the existing submitter is adopted");
}

#[tokio::test]
async fn start_reports_a_forbidden_job_creation_naming_the_job() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::POST, CONFIG_MAPS).await;
        let reply = created(call.body.clone(), "cm-uid-1");
        call.reply(201, &reply);
        let call = server.expect(Method::POST, JOBS).await;
        call.reply(
            403,
            &api_status(
                403,
                "Forbidden",
                "jobs.batch is forbidden: User \"system:serviceaccount:flinkbroker:flinkbroker\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"flinkbroker\"",
            ),
        );
    });
    let error = run(scenario, runner.start(&spec()))
        .await
        .expect_err("a forbidden create fails");
    let RunnerError::Kubernetes(message) = &error else {
        panic!("not a kubernetes error: {error:?}");
    };
    assert!(
        message.starts_with(&format!(
            "cannot create job {NAME} in namespace flinkbroker: forbidden (403): jobs.batch is forbidden"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn state_follows_the_job_counters() {
    let cases = [
        (json!({}), SubmitterState::Pending),
        (json!({ "active": 1, "ready": 0 }), SubmitterState::Running),
        (
            json!({ "succeeded": 1, "conditions": [
                { "type": "SuccessCriteriaMet", "status": "True" },
                { "type": "Complete", "status": "True" },
            ]}),
            SubmitterState::Succeeded,
        ),
    ];
    for (status, expected) in cases {
        let (runner, mut server) = mock_runner();
        let scenario = tokio::spawn(async move {
            let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
            call.reply(200, &job_object("uid", status));
        });
        let state = run(scenario, runner.state(job_id()))
            .await
            .expect("the state is read");
        assert_eq!(state, expected);
    }
}

#[tokio::test]
async fn state_reports_a_deadline_failure_whose_pod_is_gone() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
        call.reply(
            200,
            &job_object(
                "uid",
                json!({ "failed": 1, "conditions": [
                    { "type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
                      "message": "Job was active longer than specified deadline" },
                    { "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                      "message": "Job was active longer than specified deadline" },
                ]}),
            ),
        );
        let call = server.expect(Method::GET, PODS).await;
        assert_eq!(
            call.query("labelSelector"),
            Some(format!("batch.kubernetes.io/job-name={NAME}").as_str())
        );
        call.reply(200, &pod_list(Vec::new()));
        let call = server.expect(Method::GET, PODS).await;
        assert_eq!(
            call.query("labelSelector"),
            Some(format!("job-name={NAME}").as_str())
        );
        call.reply(200, &pod_list(Vec::new()));
    });
    let state = run(scenario, runner.state(job_id()))
        .await
        .expect("the state is read");
    assert_eq!(
        state,
        SubmitterState::Failed {
            exit_code: None,
            reason: "DeadlineExceeded: Job was active longer than specified deadline".into(),
        }
    );
}

#[tokio::test]
async fn state_reports_the_exit_code_of_the_failed_submitter() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
        call.reply(
            200,
            &job_object(
                "uid",
                json!({ "failed": 1, "conditions": [
                    { "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                      "message": "Job has reached the specified backoff limit" },
                ]}),
            ),
        );
        let call = server.expect(Method::GET, PODS).await;
        assert_eq!(
            call.query("labelSelector"),
            Some(format!("batch.kubernetes.io/job-name={NAME}").as_str())
        );
        call.reply(
            200,
            &pod_list(vec![pod(
                &format!("{NAME}-x7k2p"),
                "2026-11-23T10:00:00Z",
                json!({ "phase": "Failed", "containerStatuses": [terminated("submitter", 1)] }),
            )]),
        );
    });
    let state = run(scenario, runner.state(job_id()))
        .await
        .expect("the state is read");
    assert_eq!(
        state,
        SubmitterState::Failed {
            exit_code: Some(1),
            reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
        }
    );
}

#[tokio::test]
async fn state_is_missing_when_the_job_is_gone() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
        call.reply(
            404,
            &api_status(404, "NotFound", &format!("jobs.batch \"{NAME}\" not found")),
        );
    });
    let state = run(scenario, runner.state(job_id()))
        .await
        .expect("the state is read");
    assert_eq!(state, SubmitterState::Missing);
}

#[tokio::test]
async fn state_reports_a_forbidden_read_naming_the_job() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, &format!("{JOBS}/{NAME}")).await;
        call.reply(
            403,
            &api_status(
                403,
                "Forbidden",
                &format!(
                    "jobs.batch \"{NAME}\" is forbidden: User \"x\" cannot get resource \"jobs\""
                ),
            ),
        );
    });
    let error = run(scenario, runner.state(job_id()))
        .await
        .expect_err("a forbidden read fails");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "kubernetes: cannot get job {NAME} in namespace flinkbroker: forbidden (403)"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn output_reads_the_log_of_the_newest_pod_with_a_byte_limit() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        assert_eq!(
            call.query("labelSelector"),
            Some(format!("batch.kubernetes.io/job-name={NAME}").as_str())
        );
        call.reply(
            200,
            &pod_list(vec![
                pod(&format!("{NAME}-older"), "2026-11-23T10:00:00Z", json!({})),
                pod(&format!("{NAME}-newer"), "2026-11-23T10:02:00Z", json!({})),
            ]),
        );
        let call = server
            .expect(Method::GET, &format!("{PODS}/{NAME}-newer/log"))
            .await;
        assert_eq!(call.query("container"), Some("submitter"));
        assert_eq!(
            call.query("limitBytes"),
            Some(MAX_OUTPUT_BYTES.to_string().as_str())
        );
        assert_eq!(call.query("tailLines"), Some("500"));
        assert_eq!(call.query("follow"), None);
        call.reply_bytes(
            200,
            b"Job has been submitted with JobID fedcba98\n".to_vec(),
        );
    });
    let output = run(scenario, runner.output(job_id()))
        .await
        .expect("the output is read");
    assert_eq!(output, "Job has been submitted with JobID fedcba98\n");
}

#[tokio::test]
async fn output_asks_fewer_lines_when_the_tail_reaches_the_byte_limit() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        call.reply(
            200,
            &pod_list(vec![pod(
                &format!("{NAME}-x7k2p"),
                "2026-11-23T10:00:00Z",
                json!({}),
            )]),
        );
        let call = server
            .expect(Method::GET, &format!("{PODS}/{NAME}-x7k2p/log"))
            .await;
        assert_eq!(call.query("tailLines"), Some("500"));
        call.reply_bytes(200, vec![b'a'; MAX_OUTPUT_BYTES]);
        let call = server
            .expect(Method::GET, &format!("{PODS}/{NAME}-x7k2p/log"))
            .await;
        assert_eq!(call.query("tailLines"), Some("100"));
        assert_eq!(
            call.query("limitBytes"),
            Some(MAX_OUTPUT_BYTES.to_string().as_str())
        );
        call.reply_bytes(200, b"Caused by: java.net.ConnectException\n".to_vec());
    });
    let output = run(scenario, runner.output(job_id()))
        .await
        .expect("the output is read");
    assert_eq!(output, "Caused by: java.net.ConnectException\n");
}

#[tokio::test]
async fn output_finds_pods_by_the_legacy_label_and_reads_a_failed_download() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        call.reply(200, &pod_list(Vec::new()));
        let call = server.expect(Method::GET, PODS).await;
        assert_eq!(
            call.query("labelSelector"),
            Some(format!("job-name={NAME}").as_str())
        );
        call.reply(
            200,
            &pod_list(vec![pod(
                &format!("{NAME}-x7k2p"),
                "2026-11-23T10:00:00Z",
                json!({ "initContainerStatuses": [terminated("fetch-program", 1)] }),
            )]),
        );
        let call = server
            .expect(Method::GET, &format!("{PODS}/{NAME}-x7k2p/log"))
            .await;
        assert_eq!(call.query("container"), Some("fetch-program"));
        call.reply_bytes(
            200,
            b"cannot download https://x/main.py: HTTP Error 404\n".to_vec(),
        );
    });
    let output = run(scenario, runner.output(job_id()))
        .await
        .expect("the output is read");
    assert_eq!(
        output,
        "cannot download https://x/main.py: HTTP Error 404\n"
    );
}

#[tokio::test]
async fn output_is_empty_without_a_pod_or_before_the_container_starts() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        call.reply(200, &pod_list(Vec::new()));
        let call = server.expect(Method::GET, PODS).await;
        call.reply(200, &pod_list(Vec::new()));
    });
    let output = run(scenario, runner.output(job_id()))
        .await
        .expect("no pod is no output");
    assert_eq!(output, "");

    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        call.reply(
            200,
            &pod_list(vec![pod(
                &format!("{NAME}-x7k2p"),
                "2026-11-23T10:00:00Z",
                json!({ "phase": "Pending" }),
            )]),
        );
        let call = server
            .expect(Method::GET, &format!("{PODS}/{NAME}-x7k2p/log"))
            .await;
        call.reply(
            400,
            &api_status(
                400,
                "BadRequest",
                &format!("container \"submitter\" in pod \"{NAME}-x7k2p\" is waiting to start: ContainerCreating"),
            ),
        );
    });
    let output = run(scenario, runner.output(job_id()))
        .await
        .expect("a waiting container has no output");
    assert_eq!(output, "");
}

#[tokio::test]
async fn output_reports_a_forbidden_pod_list_naming_the_job() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server.expect(Method::GET, PODS).await;
        call.reply(
            403,
            &api_status(
                403,
                "Forbidden",
                "pods is forbidden: User \"x\" cannot list resource \"pods\"",
            ),
        );
    });
    let error = run(scenario, runner.output(job_id()))
        .await
        .expect_err("a forbidden list fails");
    assert_eq!(
        error,
        RunnerError::Kubernetes(format!(
            "cannot list pods of job {NAME} in namespace flinkbroker: forbidden (403): pods is forbidden: User \"x\" cannot list resource \"pods\""
        ))
    );
}

#[tokio::test]
async fn delete_removes_the_job_in_the_background_and_the_config_map() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server
            .expect(Method::DELETE, &format!("{JOBS}/{NAME}"))
            .await;
        assert_eq!(call.body["propagationPolicy"], "Background");
        let mut job = job_object("uid", json!({ "active": 1 }));
        job["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:05:00Z");
        call.reply(200, &job);
        let call = server
            .expect(Method::DELETE, &format!("{CONFIG_MAPS}/{NAME}"))
            .await;
        call.reply(
            200,
            &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": { "name": NAME, "kind": "configmaps", "uid": "cm-uid-1" } }),
        );
    });
    run(scenario, runner.delete(job_id()))
        .await
        .expect("the submitter is deleted");
}

#[tokio::test]
async fn delete_tolerates_a_job_and_config_map_already_gone() {
    let (runner, mut server) = mock_runner();
    let scenario = tokio::spawn(async move {
        let call = server
            .expect(Method::DELETE, &format!("{JOBS}/{NAME}"))
            .await;
        call.reply(
            404,
            &api_status(404, "NotFound", &format!("jobs.batch \"{NAME}\" not found")),
        );
        let call = server
            .expect(Method::DELETE, &format!("{CONFIG_MAPS}/{NAME}"))
            .await;
        call.reply(
            404,
            &api_status(404, "NotFound", &format!("configmaps \"{NAME}\" not found")),
        );
    });
    run(scenario, runner.delete(job_id()))
        .await
        .expect("deleting what is gone succeeds");
}
