//! Authentication, roles and tenants through the public gRPC API: a broker with a token file,
//! callers with and without valid tokens, in different tenants and roles.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/sql_gateway_standin/mod.rs"]
mod sql_gateway_standin;

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::{TestBroker, eventually, sql};
use flinkbroker::proto::job_service_client::JobServiceClient;
use flinkbroker::proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, ListJobsRequest, RuntimeMode,
    StreamOperationResultsRequest, SubmitPythonRequest, WatchJobRequest, submit_python_request,
};
use sha2::{Digest, Sha256};
use sql_gateway_standin::StandinConfig;
use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Sends `authorization` metadata, as given, with every call (None: no credential).
#[derive(Clone)]
struct Credential(Option<String>);

impl Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            let value: MetadataValue<_> = value.parse().expect("metadata value");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Client = JobServiceClient<InterceptedService<Channel, Credential>>;

/// The callers of the token file: (token, principal, tenant, roles).
const CALLERS: [(&str, &str, &str, &[&str]); 5] = [
    (
        "ml-submit-token",
        "ml-backend",
        "ml",
        &["submitter", "reader"],
    ),
    ("ml-read-token", "ml-dashboard", "ml", &["reader"]),
    ("ml-submit-only-token", "ml-cron", "ml", &["submitter"]),
    ("ads-token", "ads-backend", "ads", &["submitter", "reader"]),
    ("admin-token", "platform-oncall", "ops", &["admin"]),
];

fn token_file(callers: &[(&str, &str, &str, &[&str])]) -> String {
    let tokens: Vec<serde_json::Value> = callers
        .iter()
        .map(|(token, principal, tenant, roles)| {
            serde_json::json!({
                "sha256": hex::encode(Sha256::digest(token.as_bytes())),
                "principal": principal,
                "tenant": tenant,
                "roles": roles,
            })
        })
        .collect();
    serde_json::json!({ "tokens": tokens }).to_string()
}

struct AuthBroker {
    broker: TestBroker,
    _dir: tempfile::TempDir,
    tokens: PathBuf,
}

impl AuthBroker {
    async fn start(extra: &[&str]) -> AuthBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens.json");
        std::fs::write(&tokens, token_file(&CALLERS)).expect("token file");
        let path = tokens.display().to_string();
        let mut flags = vec![
            "--auth-tokens-file",
            path.as_str(),
            "--auth-reload-interval",
            "20ms",
        ];
        flags.extend_from_slice(extra);
        let broker = TestBroker::start_with(StandinConfig::default(), &flags).await;
        AuthBroker {
            broker,
            _dir: dir,
            tokens,
        }
    }

    async fn client(&self, authorization: Option<&str>) -> Client {
        JobServiceClient::with_interceptor(
            self.broker.channel().await,
            Credential(authorization.map(str::to_owned)),
        )
    }

    async fn as_token(&self, token: &str) -> Client {
        self.client(Some(&format!("Bearer {token}"))).await
    }

    fn tokens(&self) -> &Path {
        &self.tokens
    }
}

/// Calls every RPC of the job service once as `client`, returning each call's outcome code.
async fn every_rpc(client: &mut Client, job_id: &str) -> Vec<(&'static str, Code)> {
    fn code<T>(result: Result<T, Status>) -> Code {
        match result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        }
    }
    let python = SubmitPythonRequest {
        program: Some(submit_python_request::Program::Script(
            "print('hello')".into(),
        )),
        ..SubmitPythonRequest::default()
    };
    let mut outcomes = vec![
        (
            "SubmitSql",
            code(client.submit_sql(sql("SELECT 1", RuntimeMode::Batch)).await),
        ),
        ("SubmitPython", code(client.submit_python(python).await)),
        (
            "GetJob",
            code(
                client
                    .get_job(GetJobRequest {
                        job_id: job_id.into(),
                    })
                    .await,
            ),
        ),
        (
            "ListJobs",
            code(client.list_jobs(ListJobsRequest::default()).await),
        ),
        (
            "WatchJob",
            code(
                client
                    .watch_job(WatchJobRequest {
                        job_id: job_id.into(),
                    })
                    .await,
            ),
        ),
        (
            "StreamOperationResults",
            code(
                client
                    .stream_operation_results(StreamOperationResultsRequest {
                        job_id: job_id.into(),
                        ..StreamOperationResultsRequest::default()
                    })
                    .await,
            ),
        ),
    ];
    outcomes.push((
        "CancelJob",
        code(
            client
                .cancel_job(CancelJobRequest {
                    job_id: job_id.into(),
                    ..CancelJobRequest::default()
                })
                .await,
        ),
    ));
    outcomes
}

async fn submit_query(client: &mut Client, request_id: &str) -> Job {
    let mut request = sql(
        "CREATE TABLE t (id BIGINT) WITH ('connector'='datagen', 'rows-per-second'='1');\nSELECT * FROM t;",
        RuntimeMode::Streaming,
    );
    request.request_id = request_id.into();
    client
        .submit_sql(request)
        .await
        .expect("submit")
        .into_inner()
}

async fn all_jobs(client: &mut Client, tenant: &str) -> Result<Vec<Job>, Status> {
    client
        .list_jobs(ListJobsRequest {
            tenant: tenant.into(),
            ..ListJobsRequest::default()
        })
        .await
        .map(|r| r.into_inner().jobs)
}

#[tokio::test]
async fn callers_without_a_valid_token_are_refused_everything_and_create_nothing() {
    let auth = AuthBroker::start(&[]).await;
    let mut admin = auth.as_token("admin-token").await;
    let job = submit_query(&mut auth.as_token("ml-submit-token").await, "q1").await;
    for authorization in [
        None,
        Some("Bearer not-a-known-token"),
        Some("Basic bWw6c2VjcmV0"),
        Some("Bearer "),
    ] {
        let mut client = auth.client(authorization).await;
        for (rpc, code) in every_rpc(&mut client, &job.id).await {
            assert_eq!(
                code,
                Code::Unauthenticated,
                "{rpc} with authorization {authorization:?}"
            );
        }
    }
    let jobs = all_jobs(&mut admin, "").await.expect("admin lists");
    assert_eq!(jobs.len(), 1, "only the valid caller's job exists");
    let job = admin
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("admin reads")
        .into_inner();
    assert_ne!(job.state(), JobState::Canceling);
    assert_ne!(job.state(), JobState::Canceled);
    // The refusal says what is missing, and never echoes the token.
    let error = auth
        .client(Some("Bearer not-a-known-token"))
        .await
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap_err();
    assert!(
        !error.message().contains("not-a-known-token"),
        "{}",
        error.message()
    );
    let error = auth
        .client(None)
        .await
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap_err();
    assert!(
        error.message().contains("authorization: Bearer"),
        "{}",
        error.message()
    );
    auth.broker.stop().await;
}

#[tokio::test]
async fn roles_decide_what_a_caller_may_do() {
    let auth = AuthBroker::start(&[]).await;
    let job = submit_query(&mut auth.as_token("ml-submit-token").await, "q1").await;
    assert_eq!(job.tenant, "ml");
    assert_eq!(job.principal, "ml-backend");

    // A reader may read but not submit or cancel.
    let mut reader = auth.as_token("ml-read-token").await;
    let outcomes = every_rpc(&mut reader, &job.id).await;
    for (rpc, code) in &outcomes {
        let expected = match *rpc {
            "SubmitSql" | "SubmitPython" | "CancelJob" => Code::PermissionDenied,
            _ => Code::Ok,
        };
        assert_eq!(*code, expected, "reader calling {rpc}");
    }
    let denied = reader
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .unwrap_err();
    assert!(
        denied
            .message()
            .contains("SubmitSql needs the role submitter")
            && denied.message().contains("ml-dashboard"),
        "{}",
        denied.message()
    );

    // A submitter without the reader role may submit but not read.
    let mut cron = auth.as_token("ml-submit-only-token").await;
    let denied = cron
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let submitted = submit_query(&mut cron, "cron-1").await;
    assert_eq!(submitted.principal, "ml-cron");
    auth.broker.stop().await;
}

#[tokio::test]
async fn tenants_see_and_touch_only_their_own_jobs() {
    let auth = AuthBroker::start(&[]).await;
    let mut ml = auth.as_token("ml-submit-token").await;
    let mut ads = auth.as_token("ads-token").await;
    let mut admin = auth.as_token("admin-token").await;
    let ml_job = submit_query(&mut ml, "nightly").await;

    // Every call of another tenant on the job answers as for an unknown id.
    for (rpc, code) in every_rpc(&mut ads, &ml_job.id).await {
        match rpc {
            "GetJob" | "WatchJob" | "StreamOperationResults" | "CancelJob" => {
                assert_eq!(code, Code::NotFound, "ads calling {rpc} on ml's job")
            }
            _ => assert_eq!(code, Code::Ok, "ads calling {rpc}"),
        }
    }
    let unknown = ads
        .get_job(GetJobRequest {
            job_id: "0b6f0a5e-3b7c-4d1e-9f00-1234567890ab".into(),
        })
        .await
        .unwrap_err();
    let hidden = ads
        .get_job(GetJobRequest {
            job_id: ml_job.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        hidden.message().replace(&ml_job.id, "ID"),
        unknown
            .message()
            .replace("0b6f0a5e-3b7c-4d1e-9f00-1234567890ab", "ID"),
        "another tenant's job reads exactly as an unknown one"
    );
    let still = ml
        .get_job(GetJobRequest {
            job_id: ml_job.id.clone(),
        })
        .await
        .expect("ml reads its job")
        .into_inner();
    assert!(
        !matches!(still.state(), JobState::Canceling | JobState::Canceled),
        "the other tenant's cancel did nothing: {:?}",
        still.state()
    );

    // The same request id in another tenant is another job.
    let ads_job = submit_query(&mut ads, "nightly").await;
    assert_ne!(ads_job.id, ml_job.id);
    assert_eq!(submit_query(&mut ml, "nightly").await.id, ml_job.id);

    // Listing: each tenant its own; naming another tenant needs admin; admin sees all.
    let listed = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.tenant).collect::<Vec<_>>();
    let ml_jobs = listed(all_jobs(&mut ml, "").await.expect("ml lists"));
    assert!(
        !ml_jobs.is_empty() && ml_jobs.iter().all(|t| t == "ml"),
        "{ml_jobs:?}"
    );
    let ads_jobs = listed(all_jobs(&mut ads, "").await.expect("ads lists"));
    assert!(
        !ads_jobs.is_empty() && ads_jobs.iter().all(|t| t == "ads"),
        "{ads_jobs:?}"
    );
    let denied = all_jobs(&mut ads, "ml").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut everyone = listed(all_jobs(&mut admin, "").await.expect("admin lists"));
    everyone.sort();
    everyone.dedup();
    assert_eq!(everyone, vec!["ads".to_owned(), "ml".to_owned()]);
    assert!(
        listed(all_jobs(&mut admin, "ads").await.expect("admin filters"))
            .iter()
            .all(|t| t == "ads")
    );
    admin
        .get_job(GetJobRequest {
            job_id: ml_job.id.clone(),
        })
        .await
        .expect("admin reads any tenant's job");

    // The owner's own cancel goes through.
    let canceled = ml
        .cancel_job(CancelJobRequest {
            job_id: ml_job.id.clone(),
            ..CancelJobRequest::default()
        })
        .await
        .expect("ml cancels its job")
        .into_inner();
    assert!(matches!(
        canceled.state(),
        JobState::Canceling | JobState::Canceled
    ));
    auth.broker.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_credential_unless_closed() {
    let open = AuthBroker::start(&[]).await;
    let mut health = HealthClient::new(open.broker.channel().await);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers without a credential");
    open.broker.stop().await;

    let closed = AuthBroker::start(&["--open-health-and-reflection", "false"]).await;
    let mut health = HealthClient::new(closed.broker.channel().await);
    let refused = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    closed.broker.stop().await;
}

#[tokio::test]
async fn a_changed_token_file_takes_effect_and_a_broken_one_is_ignored() {
    let auth = AuthBroker::start(&[]).await;
    let mut newcomer = auth.as_token("search-token").await;
    assert_eq!(
        newcomer
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // An invalid file keeps the tokens in force.
    std::fs::write(auth.tokens(), "{ not json").expect("write");
    let mut ml = auth.as_token("ml-read-token").await;
    ml.list_jobs(ListJobsRequest::default())
        .await
        .expect("old tokens still valid");
    let mut callers = CALLERS.to_vec();
    callers.push(("search-token", "search-backend", "search", &["reader"]));
    std::fs::write(auth.tokens(), token_file(&callers)).expect("write");
    eventually(
        "the new token to be accepted",
        Duration::from_secs(10),
        || {
            let mut newcomer = newcomer.clone();
            async move {
                newcomer
                    .list_jobs(ListJobsRequest::default())
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await;
    // A token removed from the file stops working.
    std::fs::write(auth.tokens(), token_file(&callers[1..])).expect("write");
    eventually(
        "the removed token to be refused",
        Duration::from_secs(10),
        || {
            let removed = auth.client(Some("Bearer ml-submit-token"));
            async move {
                let code = removed
                    .await
                    .list_jobs(ListJobsRequest::default())
                    .await
                    .err()?
                    .code();
                (code == Code::Unauthenticated).then_some(())
            }
        },
    )
    .await;
    auth.broker.stop().await;
}

#[test]
fn an_anonymous_broker_refuses_to_listen_beyond_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .output()
        .expect("run flinkbroker");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("--allow-anonymous") || stdout.contains("--allow-anonymous"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}

/// Checks that a submission was refused for setting `key`, and that the refusal names it.
fn assert_refused_naming(refused: &Status, key: &str) {
    assert!(
        matches!(
            refused.code(),
            Code::PermissionDenied | Code::InvalidArgument
        ) && refused.message().contains(key),
        "{key}: {:?} {}",
        refused.code(),
        refused.message()
    );
}

#[tokio::test]
async fn forbidden_configuration_keys_are_refused_before_anything_is_sent() {
    let auth = AuthBroker::start(&[]).await;
    let mut ml = auth.as_token("ml-submit-token").await;
    for key in [
        "$internal.pipeline.job-id",
        "env.java.opts.all",
        "kubernetes.container.image",
        "security.ssl.enabled",
        "high-availability.type",
    ] {
        let mut through_properties = sql("SELECT 1", RuntimeMode::Batch);
        through_properties.properties.insert(key.into(), "x".into());
        let through_set = sql(
            &format!("SET '{key}' = 'x';\nSELECT 1;"),
            RuntimeMode::Batch,
        );
        for request in [through_properties, through_set] {
            assert_refused_naming(&ml.submit_sql(request).await.unwrap_err(), key);
        }
        let mut python = SubmitPythonRequest {
            program: Some(submit_python_request::Program::Script("print(1)".into())),
            ..SubmitPythonRequest::default()
        };
        python.flink_configuration.insert(key.into(), "x".into());
        assert_refused_naming(&ml.submit_python(python).await.unwrap_err(), key);
    }
    // Keys outside the refused prefixes pass.
    let mut allowed = sql(
        "SET 'table.exec.resource.default-parallelism' = '1';\nSELECT 1;",
        RuntimeMode::Batch,
    );
    allowed
        .properties
        .insert("parallelism.default".into(), "1".into());
    let before = auth.broker.standin.statements().len();
    assert_eq!(before, 0, "no refused submission reached the gateway");
    assert_eq!(auth.broker.standin.open_session_count(), 0);
    assert_eq!(
        std::fs::read_dir(auth.broker.work_dir.path())
            .expect("work dir")
            .count(),
        0,
        "no refused python submission started a submitter"
    );
    let jobs = all_jobs(&mut auth.as_token("admin-token").await, "")
        .await
        .expect("list");
    assert!(jobs.is_empty(), "no refused submission was recorded");
    ml.submit_sql(allowed).await.expect("allowed keys pass");
    auth.broker.stop().await;
}

/// The RetryInfo delay a refusal carries.
fn retry_delay(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt;
    status.get_details_retry_info()?.retry_delay
}

#[tokio::test]
async fn a_tenant_over_its_live_jobs_quota_is_refused_until_a_job_ends() {
    let auth = AuthBroker::start(&["--tenant-max-live-jobs", "2"]).await;
    let mut ml = auth.as_token("ml-submit-token").await;
    let first = submit_query(&mut ml, "live-1").await;
    submit_query(&mut ml, "live-2").await;
    let mut third = sql("SELECT 1", RuntimeMode::Batch);
    third.request_id = "live-3".into();
    let refused = ml.submit_sql(third.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("quota is 2 (--tenant-max-live-jobs)"),
        "{}",
        refused.message()
    );
    assert!(retry_delay(&refused).is_some_and(|d| d > Duration::ZERO));
    // A repeated submission of an accepted job still answers with its job.
    assert_eq!(submit_query(&mut ml, "live-1").await.id, first.id);
    // Another tenant has its own quota.
    submit_query(&mut auth.as_token("ads-token").await, "ads-1").await;

    ml.cancel_job(CancelJobRequest {
        job_id: first.id.clone(),
        ..CancelJobRequest::default()
    })
    .await
    .expect("cancel");
    eventually("the canceled job to end", Duration::from_secs(30), || {
        let mut ml = ml.clone();
        let id = first.id.clone();
        async move {
            let job = ml
                .get_job(GetJobRequest { job_id: id })
                .await
                .ok()?
                .into_inner();
            (job.state() == JobState::Canceled).then_some(())
        }
    })
    .await;
    ml.submit_sql(third)
        .await
        .expect("accepted once a job ended");
    auth.broker.stop().await;
}

#[tokio::test]
async fn a_tenant_over_its_submission_rate_is_told_when_to_retry() {
    let auth = AuthBroker::start(&["--tenant-submissions-per-minute", "3"]).await;
    let mut ml = auth.as_token("ml-submit-token").await;
    for n in 0..3 {
        ml.submit_sql(sql("SELECT 1", RuntimeMode::Batch))
            .await
            .unwrap_or_else(|e| panic!("submission {n} within the burst: {e}"));
    }
    let refused = ml
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("more than 3 submissions in a minute (--tenant-submissions-per-minute)"),
        "{}",
        refused.message()
    );
    let delay = retry_delay(&refused).expect("RetryInfo");
    assert!(
        delay > Duration::from_secs(10) && delay <= Duration::from_secs(20),
        "{delay:?}"
    );
    let jobs = all_jobs(&mut ml, "").await.expect("list");
    assert_eq!(jobs.len(), 3, "the refused submission recorded nothing");
    // Another tenant is not held back.
    auth.as_token("ads-token")
        .await
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect("another tenant submits");
    auth.broker.stop().await;
}
