//! Client certificates through the public gRPC API: a broker serving TLS that requires
//! certificates of its client CA, maps their subject to a principal, and, when bearer tokens
//! are accepted too, lets a caller present either.

use crate::support::broker;
use crate::support::pki;
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::path::Path;
use std::time::Duration;

use broker::{TestBroker, eventually, sql};
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_proto::{AuditAction, Job, ListAuditEventsRequest, ListJobsRequest, RuntimeMode};
use pki::{CertificateAuthority, Issued, tls_channel};
use rcgen::SanType;
use sha2::{Digest, Sha256};
use sql_gateway_standin::StandinConfig;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ETL_SPIFFE_ID: &str = "spiffe://flinkbroker.test/ns/ml/sa/etl";

fn mapping(extra: &[(&str, &str, &[&str])]) -> String {
    let mut principals = vec![
        serde_json::json!({"name": "recsys-backend", "tenant": "recsys", "roles": ["submitter", "reader"]}),
        serde_json::json!({"name": "platform-oncall", "tenant": "platform", "roles": ["admin"]}),
        serde_json::json!({"name": ETL_SPIFFE_ID, "tenant": "ml", "roles": ["submitter", "reader"]}),
    ];
    principals.extend(extra.iter().map(
        |(name, tenant, roles)| serde_json::json!({"name": name, "tenant": tenant, "roles": roles}),
    ));
    serde_json::json!({ "principals": principals }).to_string()
}

/// A broker serving TLS with a server certificate and client CA of its own.
struct TlsBroker {
    broker: TestBroker,
    ca: CertificateAuthority,
    dir: tempfile::TempDir,
}

impl TlsBroker {
    async fn start(extra: &[&str]) -> TlsBroker {
        let ca = CertificateAuthority::new("flinkbroker test CA");
        let server = ca.server();
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        };
        let cert = write("server.pem", &server.cert);
        let key = write("server-key.pem", &server.key);
        let client_ca = write("client-ca.pem", &ca.pem);
        let principals = write("principals.json", &mapping(&[]));
        let mut flags = vec![
            "--tls-cert",
            cert.as_str(),
            "--tls-key",
            key.as_str(),
            "--tls-client-ca",
            client_ca.as_str(),
            "--mtls-principals-file",
            principals.as_str(),
            "--auth-reload-interval",
            "20ms",
        ];
        flags.extend_from_slice(extra);
        let broker = TestBroker::start_with(StandinConfig::default(), &flags).await;
        TlsBroker { broker, ca, dir }
    }

    fn principals_file(&self) -> std::path::PathBuf {
        self.dir.path().join("principals.json")
    }

    /// Connects presenting `identity`; the server is trusted through the broker's CA.
    async fn connect(&self, identity: Option<&Issued>) -> Result<Channel, String> {
        tls_channel(self.broker.addr, &self.ca.pem, identity)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    async fn client(&self, identity: &Issued) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.connect(Some(identity)).await.expect("connect"))
    }
}

/// Submits a SQL job over `channel`.
async fn submit(channel: Channel) -> Result<Job, Status> {
    JobServiceClient::new(channel)
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .map(|r| r.into_inner())
}

/// Submits a SQL job presenting `identity`; the Err is the refusal, at the TLS handshake or
/// as a gRPC status.
async fn submit_as(broker: &TlsBroker, identity: Option<&Issued>) -> Result<Job, String> {
    let channel = broker.connect(identity).await?;
    submit(channel)
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// Checks that a call failed because the TLS handshake refused the caller's certificate (the
/// client sees the server's alert on its first call), not with a status of the API.
fn assert_refused_at_the_handshake(outcome: Result<Job, String>) {
    let refused = outcome.expect_err("refused at the TLS handshake");
    assert!(
        refused.contains("transport error") || refused.contains("Transport"),
        "{refused}"
    );
}

async fn all_jobs(client: &mut JobServiceClient<Channel>) -> Vec<Job> {
    client
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .jobs
}

#[tokio::test]
async fn a_client_certificate_of_the_ca_names_the_caller_and_others_are_refused() {
    let tls = TlsBroker::start(&[]).await;
    let recsys = tls.ca.client("recsys-backend");

    // The layer sees the verified certificate: the job records the mapped tenant and principal.
    let job = submit_as(&tls, Some(&recsys))
        .await
        .expect("a mapped certificate");
    assert_eq!(
        (job.tenant.as_str(), job.principal.as_str()),
        ("recsys", "recsys-backend")
    );

    // Without a certificate, or with one of another CA, the TLS handshake fails.
    assert_refused_at_the_handshake(submit_as(&tls, None).await);
    let other_ca = CertificateAuthority::new("another CA");
    let forged = other_ca.client("recsys-backend");
    assert_refused_at_the_handshake(submit_as(&tls, Some(&forged)).await);
    // Plain-text gRPC does not reach the API.
    let plain = JobServiceClient::connect(format!("http://{}", tls.broker.addr)).await;
    if let Ok(mut plain) = plain {
        plain
            .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
            .await
            .expect_err("plain text");
    }

    // A certificate of the CA whose subject the mapping does not name.
    let intruder = tls.ca.client("intruder");
    let mut client = tls.client(&intruder).await;
    for refused in [
        client
            .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
            .await
            .map(|_| ())
            .unwrap_err(),
        client
            .list_jobs(ListJobsRequest::default())
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(
            refused
                .message()
                .contains("subject CN \"intruder\" is not in --mtls-principals-file"),
            "{}",
            refused.message()
        );
    }

    // Health checking answers any caller that got through the handshake.
    HealthClient::new(tls.connect(Some(&intruder)).await.expect("connect"))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health");

    let mut admin = tls.client(&tls.ca.client("platform-oncall")).await;
    let jobs = all_jobs(&mut admin).await;
    assert_eq!(
        jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        vec![job.id.as_str()],
        "only the mapped caller's job exists"
    );
    // The layer's refusals of the unmapped certificate are in the audit trail.
    let denied: Vec<(String, String)> = admin
        .list_audit_events(ListAuditEventsRequest {
            action: AuditAction::Denied as i32,
            ..ListAuditEventsRequest::default()
        })
        .await
        .expect("audit events")
        .into_inner()
        .events
        .into_iter()
        .map(|event| (event.method, event.outcome))
        .collect();
    for method in ["SubmitSql", "ListJobs"] {
        assert!(
            denied.contains(&(method.to_owned(), "PERMISSION_DENIED".to_owned())),
            "{denied:?}"
        );
    }

    // A subject added to the mapping is admitted once the file is read again.
    std::fs::write(
        tls.principals_file(),
        mapping(&[("intruder", "guests", &["reader"])]),
    )
    .expect("write mapping");
    eventually(
        "the new subject to be admitted",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            async move {
                client
                    .list_jobs(ListJobsRequest::default())
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await;
    tls.broker.stop().await;
}

#[tokio::test]
async fn the_principal_may_come_from_a_subject_alternative_name() {
    let tls = TlsBroker::start(&["--mtls-principal-from", "san"]).await;
    let etl = tls.ca.client_with_names(
        "etl-7f9c",
        vec![
            SanType::DnsName("etl.ml.svc".try_into().expect("dns name")),
            SanType::URI(ETL_SPIFFE_ID.try_into().expect("uri")),
        ],
    );
    let job = submit_as(&tls, Some(&etl)).await.expect("a mapped SAN");
    assert_eq!(
        (job.tenant.as_str(), job.principal.as_str()),
        ("ml", ETL_SPIFFE_ID)
    );
    // The CN is not looked at.
    let refused = submit_as(&tls, Some(&tls.ca.client("recsys-backend")))
        .await
        .unwrap_err();
    assert!(
        refused.starts_with("PermissionDenied")
            && refused.contains("no DNS, URI or email subject alternative name"),
        "{refused}"
    );
    tls.broker.stop().await;
}

/// Sends `authorization: Bearer <token>` with every call.
#[derive(Clone)]
struct Bearer(&'static str);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value: MetadataValue<_> = format!("Bearer {}", self.0).parse().expect("metadata");
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

fn token_file(path: &Path) {
    let token = serde_json::json!({
        "sha256": hex::encode(Sha256::digest(b"ops-token")),
        "principal": "ops-bot",
        "tenant": "ops",
        "roles": ["submitter", "reader"],
    });
    std::fs::write(path, serde_json::json!({ "tokens": [token] }).to_string()).expect("token file");
}

#[tokio::test]
async fn with_bearer_tokens_too_a_caller_presents_either_and_a_token_decides() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens.json");
    token_file(&tokens);
    let tokens = tokens.display().to_string();
    let tls = TlsBroker::start(&["--auth-tokens-file", tokens.as_str()]).await;

    // No certificate: the handshake passes, and the call needs a token.
    let refused = submit(tls.connect(None).await.expect("connect"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused
            .message()
            .contains("a client certificate, or the metadata `authorization: Bearer <token>`"),
        "{}",
        refused.message()
    );
    let mut by_token = JobServiceClient::with_interceptor(
        tls.connect(None).await.expect("connect"),
        Bearer("ops-token"),
    );
    let job = by_token
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect("a token without certificate")
        .into_inner();
    assert_eq!(
        (job.tenant.as_str(), job.principal.as_str()),
        ("ops", "ops-bot")
    );

    // A certificate alone still names its caller.
    let recsys = tls.ca.client("recsys-backend");
    let job = submit_as(&tls, Some(&recsys)).await.expect("a certificate");
    assert_eq!(job.principal, "recsys-backend");

    // Both: the token decides, and a bad token is refused whatever the certificate.
    let channel = tls.connect(Some(&recsys)).await.expect("connect");
    let job = JobServiceClient::with_interceptor(channel.clone(), Bearer("ops-token"))
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect("token and certificate")
        .into_inner();
    assert_eq!(job.principal, "ops-bot");
    let refused = JobServiceClient::with_interceptor(channel, Bearer("stolen"))
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // A certificate presented must still chain to the client CA.
    let forged = CertificateAuthority::new("another CA").client("recsys-backend");
    assert_refused_at_the_handshake(submit_as(&tls, Some(&forged)).await);
    tls.broker.stop().await;
}
