//! Who is calling: a tower layer in front of every gRPC service establishes the caller's
//! principal (a name, a tenant, roles) from the call's bearer token, and the API checks the
//! role each call needs.
//!
//! Tokens come from a file (`--auth-tokens-file`) that maps the SHA-256 of each token to its
//! principal, so that the file holds no token itself; it is read again when it changes. Tokens
//! never reach a log or the store. With no authentication configured every call is the
//! anonymous administrator of the `default` tenant, which the broker allows only on a loopback
//! address unless `--allow-anonymous` is given.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tracing::{error, info, warn};

use crate::audit::Auditor;
use crate::error::{Error, Result};

/// The tenant of anonymous callers.
pub const DEFAULT_TENANT: &str = "default";
/// Path prefixes of the services that answer without a credential (unless configured
/// otherwise): health checking and server reflection.
const OPEN_SERVICES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submit and cancel jobs.
    Submitter,
    /// Get, list and watch jobs, and read their results.
    Reader,
    /// Everything, in every tenant.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of one gRPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub tenant: String,
    pub roles: Vec<Role>,
}

impl Principal {
    /// The caller when no authentication is configured: an administrator.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            roles: vec![Role::Admin],
        }
    }

    /// Whether the caller may act in `role` (an administrator may act in every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Fails with PERMISSION_DENIED unless the caller may act in `role`.
    pub fn require(&self, role: Role, call: &str) -> Result<()> {
        if self.has(role) {
            return Ok(());
        }
        let held: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        Err(Error::PermissionDenied(format!(
            "{call} needs the role {role}; {} of tenant {} holds {}",
            self.name,
            self.tenant,
            if held.is_empty() {
                "no role".to_owned()
            } else {
                held.join(", ")
            }
        )))
    }
}

/// One entry of the token file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Lowercase or uppercase hex of the token's SHA-256.
    sha256: String,
    principal: String,
    tenant: String,
    roles: Vec<Role>,
}

/// The token file: `{"tokens": [{"sha256": "…", "principal": "…", "tenant": "…",
/// "roles": ["submitter", "reader"]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

type TokenTable = HashMap<[u8; 32], Arc<Principal>>;

/// Reads and checks a token file.
fn read_tokens(path: &Path) -> Result<TokenTable, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: TokenFile = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a valid token file: {e}", path.display()))?;
    let mut table = TokenTable::new();
    for (index, entry) in file.tokens.into_iter().enumerate() {
        let at = || format!("{} token {index} ({})", path.display(), entry.principal);
        let mut digest = [0u8; 32];
        hex::decode_to_slice(entry.sha256.trim(), &mut digest)
            .map_err(|e| format!("{}: sha256 is not 64 hex digits: {e}", at()))?;
        if entry.principal.trim().is_empty() || entry.tenant.trim().is_empty() {
            return Err(format!("{}: principal and tenant must not be empty", at()));
        }
        if !is_label_value(&entry.tenant) {
            return Err(format!(
                "{}: tenant {:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (it labels the job's Kubernetes objects)",
                at(),
                entry.tenant
            ));
        }
        if entry.roles.is_empty() {
            return Err(format!("{}: names no role", at()));
        }
        let principal = Arc::new(Principal {
            name: entry.principal.clone(),
            tenant: entry.tenant.clone(),
            roles: entry.roles.clone(),
        });
        if table.insert(digest, principal).is_some() {
            return Err(format!("{}: the same token hash appears twice", at()));
        }
    }
    Ok(table)
}

/// Whether `value` is a valid Kubernetes label value (and not empty).
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a token file looked like when it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

/// The tokens of a token file, read again when the file changes.
#[derive(Debug)]
pub struct TokenSource {
    path: PathBuf,
    table: RwLock<Arc<TokenTable>>,
    stamp: RwLock<Option<FileStamp>>,
}

impl TokenSource {
    /// Reads the file; an unreadable or invalid file is an error (the broker does not start).
    pub fn load(path: &Path) -> Result<TokenSource> {
        let before = stamp(path);
        let table = read_tokens(path).map_err(Error::Internal)?;
        info!(file = %path.display(), tokens = table.len(), "bearer tokens loaded");
        Ok(TokenSource {
            path: path.to_owned(),
            table: RwLock::new(Arc::new(table)),
            stamp: RwLock::new(before),
        })
    }

    fn lookup(&self, token: &str) -> Option<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let table = match self.table.read() {
            Ok(table) => Arc::clone(&table),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        table.get(&digest).cloned()
    }

    /// Reads the file again if it changed since it was last read; an invalid file leaves the
    /// tokens as they were. Returns whether new tokens took effect.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        let last = self.stamp.read().map(|s| *s).unwrap_or(None);
        if now == last {
            return false;
        }
        if let Ok(mut recorded) = self.stamp.write() {
            *recorded = now;
        }
        match read_tokens(&self.path) {
            Ok(table) => {
                info!(file = %self.path.display(), tokens = table.len(), "bearer tokens reloaded");
                if let Ok(mut held) = self.table.write() {
                    *held = Arc::new(table);
                }
                true
            }
            Err(message) => {
                error!(%message, "token file changed but cannot be used; the previous tokens stay in force");
                false
            }
        }
    }

    /// Looks at the file every `interval` until `shutdown`.
    pub fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => { self.reload_if_changed(); }
                }
            }
        });
    }
}

/// How callers are identified.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// No authentication: every call is [`Principal::anonymous`].
    Anonymous,
    /// Bearer tokens of a token file; health and reflection answer without one when
    /// `open_services`.
    Tokens {
        source: Arc<TokenSource>,
        open_services: bool,
    },
}

impl Authenticator {
    /// Establishes the caller of a call to `path`: Ok(None) for a service open to all.
    fn authenticate(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<Principal>>, Error> {
        match self {
            Authenticator::Anonymous => Ok(Some(Arc::new(Principal::anonymous()))),
            Authenticator::Tokens {
                source,
                open_services,
            } => {
                if *open_services && OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
                    return Ok(None);
                }
                let Some(value) = headers.get(http::header::AUTHORIZATION) else {
                    return Err(Error::Unauthenticated(format!(
                        "{path} needs a credential: send the metadata `authorization: Bearer <token>`"
                    )));
                };
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        Error::Unauthenticated(
                            "the authorization metadata is not `Bearer <token>`".to_owned(),
                        )
                    })?;
                source.lookup(token).map(Some).ok_or_else(|| {
                    Error::Unauthenticated("the bearer token is not valid".to_owned())
                })
            }
        }
    }

    /// Says in the log who may call when no authentication is configured.
    pub fn warn_if_anonymous(&self, listen: SocketAddr) {
        if !matches!(self, Authenticator::Anonymous) {
            return;
        }
        if listen.ip().is_loopback() {
            warn!(%listen, "no authentication configured: every caller is an anonymous administrator (loopback only)");
        } else {
            warn!(%listen, "no authentication configured and --allow-anonymous given: anyone who reaches this address may run SQL and Python on the Flink cluster");
        }
    }

    /// Refuses to serve anonymously on an address other callers can reach, unless allowed.
    pub fn check_listen(&self, listen: SocketAddr, allow_anonymous: bool) -> Result<()> {
        if !matches!(self, Authenticator::Anonymous) {
            return Ok(());
        }
        if listen.ip().is_loopback() || allow_anonymous {
            return Ok(());
        }
        Err(Error::Internal(format!(
            "refusing to serve anonymously on {listen}, which is not a loopback address: configure --auth-tokens-file, or pass --allow-anonymous to accept unauthenticated callers"
        )))
    }
}

/// The tower layer that establishes the principal of every call.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
    auditor: Option<Arc<Auditor>>,
}

impl AuthLayer {
    pub fn new(authenticator: Authenticator) -> AuthLayer {
        AuthLayer {
            authenticator: Arc::new(authenticator),
            auditor: None,
        }
    }

    /// Records every call refused for want of a valid credential in the audit trail.
    pub fn audited_by(mut self, auditor: Arc<Auditor>) -> AuthLayer {
        self.auditor = Some(auditor);
        self
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            authenticator: Arc::clone(&self.authenticator),
            auditor: self.auditor.clone(),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
    auditor: Option<Arc<Auditor>>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self
            .authenticator
            .authenticate(request.uri().path(), request.headers())
        {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Box::pin(self.inner.call(request))
            }
            Err(error) => refuse(request.uri().path(), error, self.auditor.clone()),
        }
    }
}

/// Answers a call refused for want of a valid credential, after recording it in the audit
/// trail.
fn refuse<E: Send + 'static>(
    path: &str,
    error: Error,
    auditor: Option<Arc<Auditor>>,
) -> BoxFuture<Result<http::Response<tonic::body::Body>, E>> {
    info!(method = path, reason = %error, "call refused: unauthenticated");
    let status: tonic::Status = error.into();
    let path = path.to_owned();
    Box::pin(async move {
        if let Some(auditor) = auditor {
            auditor.unauthenticated(&path, &status).await;
        }
        Ok(status.into_http())
    })
}

/// The caller of a call that passed the layer.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("the call carries no identity".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> (tempfile::TempDir, Arc<TokenSource>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, text).unwrap();
        let source = Arc::new(TokenSource::load(&path).unwrap());
        (dir, source)
    }

    fn hash(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn a_known_token_names_its_principal_and_others_are_refused() {
        let file = format!(
            r#"{{"tokens": [{{"sha256": "{}", "principal": "recsys", "tenant": "ml", "roles": ["reader"]}}]}}"#,
            hash("s3cret")
        );
        let (_dir, source) = source(&file);
        let auth = Authenticator::Tokens {
            source,
            open_services: true,
        };
        let path = "/flinkbroker.v1.JobService/GetJob";
        let principal = auth.authenticate(path, &bearer("s3cret")).unwrap().unwrap();
        assert_eq!(principal.name, "recsys");
        assert_eq!(principal.tenant, "ml");
        assert!(principal.has(Role::Reader));
        assert!(!principal.has(Role::Submitter));
        let denied = principal.require(Role::Submitter, "SubmitSql").unwrap_err();
        assert!(
            denied.to_string().contains("needs the role submitter"),
            "{denied}"
        );
        for headers in [bearer("wrong"), http::HeaderMap::new()] {
            let error = auth.authenticate(path, &headers).unwrap_err();
            assert!(matches!(error, Error::Unauthenticated(_)), "{error:?}");
            assert!(!error.to_string().contains("wrong"), "{error}");
        }
        assert!(
            auth.authenticate("/grpc.health.v1.Health/Check", &http::HeaderMap::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_invalid_token_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        for (text, reason) in [
            (
                r#"{"tokens": [{"sha256": "abc", "principal": "p", "tenant": "t", "roles": ["reader"]}]}"#,
                "64 hex digits",
            ),
            (
                r#"{"tokens": [{"sha256": "00000000000000000000000000000000000000000000000000000000000000ff", "principal": "p", "tenant": "t", "roles": []}]}"#,
                "names no role",
            ),
            (
                r#"{"tokens": [{"sha256": "00", "principal": "p", "tenant": "t", "roles": ["owner"]}]}"#,
                "not a valid token file",
            ),
            (
                r#"{"tokens": [{"sha256": "00000000000000000000000000000000000000000000000000000000000000ff", "principal": "p", "tenant": "team a/b", "roles": ["reader"]}]}"#,
                "tenant \"team a/b\" must be",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = TokenSource::load(&path).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[test]
    fn anonymous_serving_is_refused_beyond_loopback_unless_allowed() {
        let auth = Authenticator::Anonymous;
        assert!(
            auth.check_listen("127.0.0.1:1".parse().unwrap(), false)
                .is_ok()
        );
        assert!(auth.check_listen("[::1]:1".parse().unwrap(), false).is_ok());
        let refused = auth
            .check_listen("0.0.0.0:50051".parse().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--allow-anonymous"), "{refused}");
        assert!(
            auth.check_listen("0.0.0.0:50051".parse().unwrap(), true)
                .is_ok()
        );
    }
}
