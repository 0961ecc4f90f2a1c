//! Authentication, roles and tenants through the public gRPC API: a broker with a token file
//! and JWTs (keys from a JWKS file or URL), callers with and without valid credentials, in
//! different tenants and roles.

use crate::support::broker;
use crate::support::callers;
use crate::support::jwt;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::{TestBroker, eventually, sql};
use callers::{CALLERS, Client, Credential, retry_delay, token_file};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{
    CancelJobRequest, GetJobRequest, Job, JobState, ListAuditEventsRequest, ListJobsRequest,
    RuntimeMode, StreamOperationResultsRequest, SubmitPythonRequest, WatchJobRequest,
    submit_python_request,
};
use jwt::{JwksServer, SigningKey, claims, expired, with};
use serde_json::json;
use sql_gateway_standin::StandinConfig;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

struct AuthBroker {
    broker: TestBroker,
    _dir: tempfile::TempDir,
    tokens: PathBuf,
    /// Signs RS256 JWTs with a key of the broker's JWKS file.
    rsa: SigningKey,
    /// Signs ES256 JWTs with a key of the broker's JWKS file.
    ec: SigningKey,
}

impl AuthBroker {
    /// A broker accepting the tokens of `CALLERS` and JWTs signed by `rsa` or `ec`.
    async fn start(extra: &[&str]) -> AuthBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens.json");
        std::fs::write(&tokens, token_file(&CALLERS)).expect("token file");
        let rsa = SigningKey::rs256("rsa-1");
        let ec = SigningKey::es256("ec-1");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, jwt::jwks(&[&rsa, &ec])).expect("jwks file");
        let path = tokens.display().to_string();
        let jwt_flags = jwt::flags("--jwt-jwks-file", &jwks.display().to_string());
        let mut flags = vec![
            "--auth-tokens-file",
            path.as_str(),
            "--auth-reload-interval",
            "20ms",
        ];
        flags.extend(jwt_flags.iter().map(String::as_str));
        flags.extend_from_slice(extra);
        let broker = TestBroker::start_with(StandinConfig::default(), &flags).await;
        AuthBroker {
            broker,
            _dir: dir,
            tokens,
            rsa,
            ec,
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
        "ListAuditEvents",
        code(
            client
                .list_audit_events(ListAuditEventsRequest::default())
                .await,
        ),
    ));
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
            "SubmitSql" | "SubmitPython" | "CancelJob" | "ListAuditEvents" => {
                Code::PermissionDenied
            }
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
            "ListAuditEvents" => assert_eq!(code, Code::PermissionDenied, "ads calling {rpc}"),
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

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

#[tokio::test]
async fn every_rpc_answers_each_kind_of_caller_with_the_right_code() {
    let auth = AuthBroker::start(&[]).await;
    let owner_claims = claims("ml-backend", "ml", &["submitter", "reader"]);
    let mut owner = auth.as_token(&auth.rsa.sign(&owner_claims)).await;
    let job = submit_query(&mut owner, "q1").await;
    assert_eq!(
        (job.tenant.as_str(), job.principal.as_str()),
        ("ml", "ml-backend"),
        "an RS256 JWT names the job's tenant and principal"
    );

    let valid = claims("ml-oncall", "ml", &["submitter", "reader"]);
    // Another key under the id of one of the broker's keys, and under an id it does not know.
    let impostor = SigningKey::es256("ec-1");
    let refused: Vec<(&str, Option<String>, &str)> = vec![
        ("no credential", None, "authorization: Bearer"),
        (
            "an unknown static token",
            bearer("not-a-known-token"),
            "the bearer token is not valid",
        ),
        (
            "an expired JWT",
            bearer(&auth.ec.sign(&expired(valid.clone()))),
            "the JWT has expired",
        ),
        (
            "a JWT for another audience",
            bearer(
                &auth
                    .rsa
                    .sign(&with(valid.clone(), "aud", Some(json!("billing")))),
            ),
            "audience (aud) does not include \"flinkbroker\"",
        ),
        (
            "a JWT of another issuer",
            bearer(&auth.ec.sign(&with(
                valid.clone(),
                "iss",
                Some(json!("https://elsewhere.test")),
            ))),
            "issuer (iss) is not \"https://idp.flinkbroker.test\"",
        ),
        (
            "a JWT signed by another key",
            bearer(&impostor.sign(&valid)),
            "the JWT's signature does not verify",
        ),
        (
            "a JWT of an unknown key id",
            bearer(&impostor.sign_as("ec-9", &valid)),
            "key id (kid) \"ec-9\" is not in the key set",
        ),
        (
            "a JWT without a tenant",
            bearer(&auth.ec.sign(&with(valid.clone(), "tenant", None))),
            "the JWT has no claim \"tenant\"",
        ),
        (
            "a JWT whose tenant is no label value",
            bearer(
                &auth
                    .ec
                    .sign(&with(valid.clone(), "tenant", Some(json!("ml/ads")))),
            ),
            "claim \"tenant\" is \"ml/ads\"; a tenant must be at most 63",
        ),
    ];
    for (what, authorization, reason) in &refused {
        let mut client = auth.client(authorization.as_deref()).await;
        for (rpc, code) in every_rpc(&mut client, &job.id).await {
            assert_eq!(code, Code::Unauthenticated, "{rpc} with {what}");
        }
        let error = client
            .get_job(GetJobRequest {
                job_id: job.id.clone(),
            })
            .await
            .unwrap_err();
        assert!(
            error.message().contains(reason),
            "{what}: {}",
            error.message()
        );
        if let Some(authorization) = authorization {
            let token = authorization.trim_start_matches("Bearer ");
            assert!(
                !error.message().contains(token),
                "{what}: the refusal echoes the token"
            );
        }
    }

    // A valid caller of another tenant: its own submissions and list, and nothing of ml's.
    let mut ads = auth
        .as_token(
            &auth
                .ec
                .sign(&claims("ads-backend", "ads", &["submitter", "reader"])),
        )
        .await;
    for (rpc, code) in every_rpc(&mut ads, &job.id).await {
        let expected = match rpc {
            "GetJob" | "WatchJob" | "StreamOperationResults" | "CancelJob" => Code::NotFound,
            "ListAuditEvents" => Code::PermissionDenied,
            _ => Code::Ok,
        };
        assert_eq!(code, expected, "ads calling {rpc} on ml's job");
    }
    let ads_jobs = all_jobs(&mut ads, "").await.expect("ads lists");
    assert_eq!(ads_jobs.len(), 2, "its SubmitSql and SubmitPython");
    assert!(
        ads_jobs
            .iter()
            .all(|j| j.tenant == "ads" && j.principal == "ads-backend" && j.id != job.id),
        "{ads_jobs:?}"
    );

    // A valid caller without the submitter role (and a role the broker does not know).
    let mut dashboard = auth
        .as_token(
            &auth
                .rsa
                .sign(&claims("ml-dashboard", "ml", &["reader", "billing"])),
        )
        .await;
    for (rpc, code) in every_rpc(&mut dashboard, &job.id).await {
        let expected = match rpc {
            "SubmitSql" | "SubmitPython" | "CancelJob" | "ListAuditEvents" => {
                Code::PermissionDenied
            }
            _ => Code::Ok,
        };
        assert_eq!(code, expected, "a reader calling {rpc}");
    }

    // None of them created an ml job or touched the one there is.
    let mut admin = auth.as_token("admin-token").await;
    let ml_jobs = all_jobs(&mut admin, "ml").await.expect("admin lists");
    assert_eq!(
        ml_jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        vec![job.id.as_str()]
    );
    assert!(
        !matches!(ml_jobs[0].state(), JobState::Canceling | JobState::Canceled),
        "{:?}",
        ml_jobs[0].state()
    );

    // The valid caller (ES256) may make every call.
    let mut oncall = auth.as_token(&auth.ec.sign(&valid)).await;
    for (rpc, code) in every_rpc(&mut oncall, &job.id).await {
        let expected = match rpc {
            "ListAuditEvents" => Code::PermissionDenied,
            _ => Code::Ok,
        };
        assert_eq!(code, expected, "the valid caller calling {rpc}");
    }
    // An administrator (by JWT) reads the audit trail.
    let mut auditor = auth
        .as_token(&auth.rsa.sign(&claims("auditor", "ops", &["admin"])))
        .await;
    let trail = auditor
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .expect("an administrator lists the audit trail")
        .into_inner();
    assert!(!trail.events.is_empty());
    let mut principals: Vec<String> = all_jobs(&mut admin, "ml")
        .await
        .expect("admin lists")
        .into_iter()
        .map(|j| j.principal)
        .collect();
    principals.sort();
    assert_eq!(principals, ["ml-backend", "ml-oncall", "ml-oncall"]);
    let canceled = admin
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("admin reads")
        .into_inner();
    assert!(matches!(
        canceled.state(),
        JobState::Canceling | JobState::Canceled
    ));
    auth.broker.stop().await;
}

/// A broker accepting only JWTs whose keys it reads from `jwks_url`.
async fn jwt_url_broker(jwks_url: &str, extra: &[&str]) -> TestBroker {
    let mut flags = jwt::flags("--jwt-jwks-url", jwks_url);
    flags.extend(extra.iter().map(|flag| flag.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestBroker::start_with(StandinConfig::default(), &flags).await
}

/// Lists jobs with `token`, returning the refusal if any.
async fn list_with(broker: &TestBroker, token: &str) -> Result<(), Status> {
    JobServiceClient::with_interceptor(broker.channel().await, Credential(bearer(token)))
        .list_jobs(ListJobsRequest::default())
        .await
        .map(|_| ())
}

fn caller_claims() -> serde_json::Value {
    claims("recsys-backend", "recsys", &["reader"])
}

#[tokio::test]
async fn a_key_rotated_into_the_jwks_url_is_read_on_its_first_use() {
    let old = SigningKey::es256("2026-11");
    let new = SigningKey::rs256("2026-12");
    let jwks = JwksServer::start(&[&old]).await;
    let broker = jwt_url_broker(
        &jwks.url(),
        &[
            "--jwt-jwks-min-refresh-interval",
            "0s",
            "--jwt-jwks-refresh-interval",
            "1h",
        ],
    )
    .await;
    list_with(&broker, &old.sign(&caller_claims()))
        .await
        .expect("a token of the published key");
    assert_eq!(jwks.reads().await, 1, "read once at start");
    jwks.publish(&[&old, &new]);
    list_with(&broker, &new.sign(&caller_claims()))
        .await
        .expect("a token of the key rotated in passes on its first use");
    assert_eq!(
        jwks.reads().await,
        2,
        "its unknown key id read the set again"
    );
    // Without a token file, a bearer token that is no JWT has nothing to be looked up in.
    let refused = list_with(&broker, "static-token").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("not a JWT"),
        "{}",
        refused.message()
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_url_stops_working_after_a_periodic_refresh() {
    let old = SigningKey::es256("old");
    let new = SigningKey::es256("new");
    let jwks = JwksServer::start(&[&old]).await;
    let broker = jwt_url_broker(
        &jwks.url(),
        &[
            "--jwt-jwks-refresh-interval",
            "50ms",
            "--jwt-jwks-min-refresh-interval",
            "1h",
        ],
    )
    .await;
    let old_token = old.sign(&caller_claims());
    list_with(&broker, &old_token).await.expect("the old key");
    jwks.publish(&[&new]);
    eventually(
        "the removed key's token to be refused",
        Duration::from_secs(10),
        || {
            let outcome = list_with(&broker, &old_token);
            async move {
                let refused = outcome.await.err()?;
                (refused.code() == Code::Unauthenticated
                    && refused
                        .message()
                        .contains("key id (kid) \"old\" is not in the key set"))
                .then_some(())
            }
        },
    )
    .await;
    list_with(&broker, &new.sign(&caller_claims()))
        .await
        .expect("the new key, known from the periodic refresh");
    broker.stop().await;
}

#[tokio::test]
async fn unknown_key_ids_read_the_jwks_url_at_most_once_per_min_refresh_interval() {
    let known = SigningKey::es256("known");
    let later = SigningKey::es256("later");
    let jwks = JwksServer::start(&[&known]).await;
    let broker = jwt_url_broker(
        &jwks.url(),
        &[
            "--jwt-jwks-refresh-interval",
            "1h",
            "--jwt-jwks-min-refresh-interval",
            "1h",
        ],
    )
    .await;
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let refused = list_with(&broker, &known.sign_as(kid, &caller_claims()))
            .await
            .unwrap_err();
        assert!(
            refused
                .message()
                .contains(&format!("key id (kid) \"{kid}\" is not in the key set")),
            "{}",
            refused.message()
        );
    }
    jwks.publish(&[&known, &later]);
    let refused = list_with(&broker, &later.sign(&caller_claims()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        jwks.reads().await,
        1,
        "the set was read at start, and unknown key ids did not read it again within the interval"
    );
    list_with(&broker, &known.sign(&caller_claims()))
        .await
        .expect("the known key still works");
    broker.stop().await;
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
fn a_broker_with_jwt_or_client_certificates_is_not_anonymous() {
    let missing = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| missing.path().join(name).display().to_string();
    let (jwks, ca, cert, key, principals) = (
        file("jwks.json"),
        file("ca.pem"),
        file("cert.pem"),
        file("key.pem"),
        file("principals.json"),
    );
    for flags in [
        vec![
            "--jwt-jwks-file",
            jwks.as_str(),
            "--jwt-issuer",
            "https://idp.test",
            "--jwt-audience",
            "flinkbroker",
        ],
        vec![
            "--tls-cert",
            cert.as_str(),
            "--tls-key",
            key.as_str(),
            "--tls-client-ca",
            ca.as_str(),
            "--mtls-principals-file",
            principals.as_str(),
        ],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .args([
                "serve",
                "--listen",
                "0.0.0.0:0",
                "--database-url",
                "sqlite::memory:",
            ])
            .args(&flags)
            .output()
            .expect("run flinkbroker");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        // It goes past the anonymous check and stops at the missing files.
        assert!(!output.status.success(), "{flags:?}");
        assert!(
            !stderr.contains("--allow-anonymous") && !stdout.contains("--allow-anonymous"),
            "{flags:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(
            stderr.contains("cannot read") || stdout.contains("cannot read"),
            "{flags:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
    }
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
