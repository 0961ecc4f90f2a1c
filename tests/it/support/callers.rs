//! Callers with credentials: a broker with a token file, and clients that send a bearer token.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use flinkbroker_proto::job_service_client::JobServiceClient;
use sha2::{Digest, Sha256};
use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::broker::TestBroker;
use super::sql_gateway_standin::StandinConfig;

/// Sends `authorization` metadata, as given, with every call (None: no credential).
#[derive(Clone)]
pub(crate) struct Credential(pub Option<String>);

impl Interceptor for Credential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            let value: MetadataValue<_> = value.parse().expect("metadata value");
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

pub(crate) type Client = JobServiceClient<InterceptedService<Channel, Credential>>;

/// A caller of the token file: (token, principal, tenant, roles).
pub(crate) type Caller = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The callers most tests use.
pub(crate) const CALLERS: [Caller; 5] = [
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

/// A token file admitting `callers`.
pub(crate) fn token_file(callers: &[Caller]) -> String {
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

/// A broker that admits [`CALLERS`] by bearer token.
pub(crate) struct CallersBroker {
    pub broker: TestBroker,
    pub dir: tempfile::TempDir,
    tokens: PathBuf,
}

impl CallersBroker {
    /// Starts the broker with the token file and `extra` flags.
    pub(crate) async fn start(extra: &[&str]) -> CallersBroker {
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
        CallersBroker {
            broker,
            dir,
            tokens,
        }
    }

    /// A client sending `authorization` as given (None: no credential).
    pub(crate) async fn client(&self, authorization: Option<&str>) -> Client {
        JobServiceClient::with_interceptor(
            self.broker.channel().await,
            Credential(authorization.map(str::to_owned)),
        )
    }

    /// A client sending `token` as its bearer token.
    pub(crate) async fn as_token(&self, token: &str) -> Client {
        self.client(Some(&format!("Bearer {token}"))).await
    }

    pub(crate) fn tokens(&self) -> &Path {
        &self.tokens
    }

    pub(crate) async fn stop(self) {
        self.broker.stop().await;
    }
}

/// The RetryInfo delay a refusal carries.
pub(crate) fn retry_delay(status: &Status) -> Option<Duration> {
    use tonic_types::StatusExt;
    status.get_details_retry_info()?.retry_delay
}
