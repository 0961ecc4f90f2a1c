//! Who is calling: a tower layer in front of every gRPC service establishes the caller's
//! principal (a name, a tenant, roles) from the call's credential, and the API checks the role
//! each call needs.
//!
//! Three kinds of credential are accepted, each when configured:
//! - static bearer tokens of a file (`--auth-tokens-file`, `tokens`) that maps the SHA-256 of
//!   each token to its principal, so that the file holds no token itself;
//! - JWT bearer tokens signed with a key of a JWKS file or URL ([`jwt`]);
//! - client certificates of the CA of `--tls-client-ca`, whose subject names a principal of
//!   `--mtls-principals-file` ([`mtls`]).
//!
//! A bearer token is tried as a JWT when JWTs are configured and it has their shape (three
//! dot-separated parts), and looked up in the token file otherwise. When a call carries both a
//! bearer token and a client certificate, the token decides: the certificate then only got the
//! connection through TLS, and a token that is not valid is refused whatever the certificate.
//! Tokens never reach a log or the store. With no authentication configured every call is the
//! anonymous administrator of the `default` tenant, which the broker allows only on a loopback
//! address unless `--allow-anonymous` is given.

pub mod jwt;
pub mod mtls;
mod tokens;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tracing::{info, warn};

use jwt::JwtVerifier;
use mtls::CertificateMapping;
pub(crate) use mtls::server_tls_config;
use tokens::TokenSource;

use crate::audit::Auditor;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
pub(crate) use flinkbroker_model::principal::{Principal, Role};
use flinkbroker_model::principal::{TENANT_RULE, check_principal, is_tenant_name};

/// Path prefixes of the services that answer without a credential (unless configured
/// otherwise): health checking and server reflection.
const OPEN_SERVICES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];
/// Whether a bearer token has the shape of a JWT: three non-empty dot-separated parts.
fn looks_like_jwt(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        if part.is_empty() {
            return false;
        }
        parts += 1;
    }
    parts == 3
}

/// What a call presents to say who calls.
#[derive(Debug, Default)]
struct Presented {
    authorization: Option<http::HeaderValue>,
    /// The certificate chain the TLS handshake verified, leaf first.
    peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Presented {
    fn of<B>(request: &http::Request<B>) -> Presented {
        Presented {
            authorization: request.headers().get(http::header::AUTHORIZATION).cloned(),
            peer_certificates: request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.peer_certs()),
        }
    }
}

/// The ways callers may prove who they are; at least one is configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verifiers {
    /// Static bearer tokens.
    pub(crate) tokens: Option<Arc<TokenSource>>,
    /// JWT bearer tokens.
    pub(crate) jwt: Option<Arc<JwtVerifier>>,
    /// Client certificates (the TLS handshake has verified them against the client CA).
    pub(crate) certificates: Option<Arc<CertificateMapping>>,
    /// Whether health checking and reflection answer without a credential.
    pub(crate) open_services: bool,
}

impl Verifiers {
    fn accepts_bearer_tokens(&self) -> bool {
        self.tokens.is_some() || self.jwt.is_some()
    }

    async fn authenticate(
        &self,
        method: &str,
        presented: Presented,
    ) -> Result<Option<Arc<Principal>>> {
        if self.open_services && OPEN_SERVICES.iter().any(|open| method.starts_with(open)) {
            return Ok(None);
        }
        if self.accepts_bearer_tokens()
            && let Some(value) = &presented.authorization
        {
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
            return self.bearer(token).await.map(Some);
        }
        if let Some(mapping) = &self.certificates
            && let Some(leaf) = presented
                .peer_certificates
                .as_deref()
                .and_then(|chain| chain.first())
        {
            return mapping.principal(leaf).map(Some);
        }
        Err(Error::Unauthenticated(
            match (self.accepts_bearer_tokens(), self.certificates.is_some()) {
                (true, false) => format!(
                    "{method} needs a credential: send the metadata `authorization: Bearer <token>`"
                ),
                (true, true) => format!(
                    "{method} needs a credential: a client certificate, or the metadata `authorization: Bearer <token>`"
                ),
                (false, _) => format!(
                    "{method} needs a client certificate issued by the CA of --tls-client-ca"
                ),
            },
        ))
    }

    async fn bearer(&self, token: &str) -> Result<Arc<Principal>> {
        if let Some(jwt) = &self.jwt
            && looks_like_jwt(token)
        {
            return Ok(Arc::new(jwt.verify(token).await?));
        }
        match &self.tokens {
            Some(tokens) => tokens
                .lookup(token)
                .ok_or_else(|| Error::Unauthenticated("the bearer token is not valid".to_owned())),
            None => Err(Error::Unauthenticated(
                "the bearer token is not a JWT (three dot-separated parts)".to_owned(),
            )),
        }
    }
}

/// How callers are identified.
#[derive(Debug, Clone)]
pub(crate) enum Authenticator {
    /// No authentication: every call is [`Principal::anonymous`].
    Anonymous,
    /// Callers prove who they are with a credential.
    Verified(Verifiers),
}

impl Authenticator {
    /// The authenticator of these verifiers: anonymous when none is configured.
    pub(crate) fn new(verifiers: Verifiers) -> Authenticator {
        if verifiers.tokens.is_none() && verifiers.jwt.is_none() && verifiers.certificates.is_none()
        {
            Authenticator::Anonymous
        } else {
            Authenticator::Verified(verifiers)
        }
    }

    /// Reads the token file, the JWT signing keys and the certificate mapping the configuration
    /// names, and keeps them current until `shutdown`. Anything unreadable or invalid is an
    /// error: the broker does not start.
    pub(crate) async fn from_config(
        config: &ServerConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Authenticator> {
        let auth = &config.auth;
        let tokens = match &auth.tokens_file {
            Some(path) => {
                let source = Arc::new(TokenSource::load(path)?);
                Arc::clone(&source).watch(auth.reload_interval, shutdown.clone());
                Some(source)
            }
            None => None,
        };
        let jwt = match &auth.jwt {
            Some(settings) => {
                let verifier = Arc::new(JwtVerifier::load(settings.clone()).await?);
                Arc::clone(&verifier).watch(shutdown.clone());
                Some(verifier)
            }
            None => None,
        };
        let certificates = match (config.client_ca(), &auth.mtls_principals_file) {
            (Some(_), Some(path)) => {
                let mapping = Arc::new(CertificateMapping::load(path, auth.mtls_principal_from)?);
                Arc::clone(&mapping).watch(auth.reload_interval, shutdown.clone());
                Some(mapping)
            }
            (Some(_), None) => {
                anyhow::bail!(
                    "--tls-client-ca needs --mtls-principals-file, which names the principal of each client certificate"
                );
            }
            (None, Some(_)) => {
                anyhow::bail!(
                    "--mtls-principals-file needs --tls-client-ca, the CA client certificates must chain to"
                );
            }
            (None, None) => None,
        };
        Ok(Authenticator::new(Verifiers {
            tokens,
            jwt,
            certificates,
            open_services: auth.open_health_and_reflection,
        }))
    }

    /// Establishes the caller of a call to `method`: Ok(None) for a service open to all.
    async fn authenticate(
        &self,
        method: &str,
        presented: Presented,
    ) -> Result<Option<Arc<Principal>>> {
        match self {
            Authenticator::Anonymous => Ok(Some(Arc::new(Principal::anonymous()))),
            Authenticator::Verified(verifiers) => verifiers.authenticate(method, presented).await,
        }
    }

    /// Says in the log who may call when no authentication is configured.
    pub(crate) fn warn_if_anonymous(&self, listen: SocketAddr) {
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
    pub(crate) fn check_listen(
        &self,
        listen: SocketAddr,
        allow_anonymous: bool,
    ) -> anyhow::Result<()> {
        if !matches!(self, Authenticator::Anonymous) {
            return Ok(());
        }
        if listen.ip().is_loopback() || allow_anonymous {
            return Ok(());
        }
        Err(anyhow::anyhow!(
            "refusing to serve anonymously on {listen}, which is not a loopback address: configure --auth-tokens-file, --jwt-jwks-file or --jwt-jwks-url, or --tls-client-ca, or pass --allow-anonymous to accept unauthenticated callers"
        ))
    }
}

/// The tower layer that establishes the principal of every call.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    authenticator: Arc<Authenticator>,
    auditor: Option<Arc<Auditor>>,
}

impl AuthLayer {
    /// Creates the layer over an authenticator, auditing nothing yet.
    pub(crate) fn new(authenticator: Authenticator) -> AuthLayer {
        AuthLayer {
            authenticator: Arc::new(authenticator),
            auditor: None,
        }
    }

    /// Records every call refused for want of a valid credential in the audit trail.
    pub(crate) fn audited_by(mut self, auditor: Arc<Auditor>) -> AuthLayer {
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

/// The service of [`AuthLayer`]: establishes each call's principal, then passes it to `inner`.
#[derive(Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
    auditor: Option<Arc<Auditor>>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// Answers a call the layer refused: the one place where a call without an acceptable
/// credential (UNAUTHENTICATED, or PERMISSION_DENIED for a client certificate the mapping
/// lacks) is turned away. Logs why, records it in the audit trail, and answers the status.
async fn refuse_call(
    method: &str,
    error: Error,
    auditor: Option<&Auditor>,
) -> http::Response<tonic::body::Body> {
    let status = tonic::Status::from(error);
    info!(method, code = ?status.code(), reason = %status.message(), "call refused");
    if let Some(auditor) = auditor {
        auditor.unauthenticated(method, &status).await;
    }
    status.into_http()
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready serves this call; a clone takes its place.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let authenticator = Arc::clone(&self.authenticator);
        let auditor = self.auditor.clone();
        let presented = Presented::of(&request);
        Box::pin(async move {
            let method = request.uri().path().to_owned();
            match authenticator.authenticate(&method, presented).await {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        request.extensions_mut().insert(principal);
                    }
                    inner.call(request).await
                }
                Err(error) => Ok(refuse_call(&method, error, auditor.as_deref()).await),
            }
        })
    }
}

/// The caller of a call that passed the layer.
pub(crate) fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("the call carries no identity".to_owned()))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::auth::mtls::MtlsPrincipalFrom;

    const METHOD: &str = "/flinkbroker.v1.JobService/GetJob";

    fn token_source(dir: &tempfile::TempDir, tokens: &[(&str, &str, &str)]) -> Arc<TokenSource> {
        let entries: Vec<serde_json::Value> = tokens
            .iter()
            .map(|(token, principal, tenant)| {
                serde_json::json!({
                    "sha256": hex::encode(Sha256::digest(token.as_bytes())),
                    "principal": principal,
                    "tenant": tenant,
                    "roles": ["reader"],
                })
            })
            .collect();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, serde_json::json!({ "tokens": entries }).to_string()).unwrap();
        Arc::new(TokenSource::load(&path).unwrap())
    }

    fn certificate_mapping(dir: &tempfile::TempDir) -> Arc<CertificateMapping> {
        let path = dir.path().join("principals.json");
        std::fs::write(
            &path,
            r#"{"principals": [{"name": "etl", "tenant": "data", "roles": ["submitter"]}]}"#,
        )
        .unwrap();
        Arc::new(CertificateMapping::load(&path, MtlsPrincipalFrom::Cn).unwrap())
    }

    fn certificate(cn: &str) -> Arc<Vec<CertificateDer<'static>>> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        Arc::new(vec![params.self_signed(&key).unwrap().der().clone()])
    }

    fn bearer(token: &str) -> Presented {
        Presented {
            authorization: Some(format!("Bearer {token}").parse().unwrap()),
            peer_certificates: None,
        }
    }

    #[tokio::test]
    async fn a_known_token_names_its_principal_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authenticator::new(Verifiers {
            tokens: Some(token_source(&dir, &[("s3cret", "recsys", "ml")])),
            open_services: true,
            ..Verifiers::default()
        });
        let principal = auth
            .authenticate(METHOD, bearer("s3cret"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(principal.name, "recsys");
        assert_eq!(principal.tenant, "ml");
        assert!(principal.has(Role::Reader));
        assert!(!principal.has(Role::Submitter));
        let denied = principal.require(Role::Submitter, "SubmitSql").unwrap_err();
        assert!(
            denied.to_string().contains("needs the role submitter"),
            "{denied}"
        );
        for presented in [
            bearer("wrong"),
            bearer("wrong.jwt.shape"),
            Presented::default(),
        ] {
            let error = auth.authenticate(METHOD, presented).await.unwrap_err();
            assert!(matches!(error, Error::Unauthenticated(_)), "{error:?}");
            assert!(!error.to_string().contains("wrong"), "{error}");
        }
        assert!(
            auth.authenticate("/grpc.health.v1.Health/Check", Presented::default())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_bearer_token_decides_over_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Authenticator::new(Verifiers {
            tokens: Some(token_source(&dir, &[("s3cret", "recsys", "ml")])),
            certificates: Some(certificate_mapping(&dir)),
            open_services: false,
            ..Verifiers::default()
        });
        let with_both = |token: &str| Presented {
            peer_certificates: Some(certificate("etl")),
            ..bearer(token)
        };
        let principal = auth
            .authenticate(METHOD, with_both("s3cret"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(principal.name, "recsys", "the token decides");
        let refused = auth
            .authenticate(METHOD, with_both("wrong"))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::Unauthenticated(_)),
            "an invalid token is refused whatever the certificate: {refused:?}"
        );
        let by_certificate = Presented {
            peer_certificates: Some(certificate("etl")),
            ..Presented::default()
        };
        let principal = auth
            .authenticate(METHOD, by_certificate)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (principal.name.as_str(), principal.tenant.as_str()),
            ("etl", "data")
        );
        let unmapped = Presented {
            peer_certificates: Some(certificate("stranger")),
            ..Presented::default()
        };
        let refused = auth.authenticate(METHOD, unmapped).await.unwrap_err();
        assert!(matches!(refused, Error::PermissionDenied(_)), "{refused:?}");
        let nothing = auth
            .authenticate(METHOD, Presented::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            nothing.contains("a client certificate, or the metadata `authorization: Bearer"),
            "{nothing}"
        );
        let closed = auth
            .authenticate("/grpc.health.v1.Health/Check", Presented::default())
            .await
            .unwrap_err();
        assert!(matches!(closed, Error::Unauthenticated(_)), "{closed:?}");
    }

    #[test]
    fn only_three_non_empty_parts_make_a_jwt() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        for token in ["static-token", "a.b", "a.b.c.d", "a..c", "a.b.", ".b.c"] {
            assert!(!looks_like_jwt(token), "{token}");
        }
    }

    #[test]
    fn no_verifier_means_anonymous() {
        assert!(matches!(
            Authenticator::new(Verifiers {
                open_services: true,
                ..Verifiers::default()
            }),
            Authenticator::Anonymous
        ));
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
