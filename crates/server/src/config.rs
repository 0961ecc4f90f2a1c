//! What the server needs to run, in its own terms: where it listens, what it connects to, how
//! callers authenticate, and the use cases' limits. The binary builds it from its flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flinkbroker_control::Limits;
use flinkbroker_runner::local::LocalRunnerConfig;

use crate::auth::jwt::JwtSettings;
use crate::auth::mtls::MtlsPrincipalFrom;
use crate::metrics::MetricsListen;

/// Everything `flinkbroker serve` runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The gRPC (and gRPC-Web, and console) address.
    pub listen: SocketAddr,
    /// Serves anonymous callers beyond loopback (`--allow-anonymous`).
    pub allow_anonymous: bool,
    /// Serves the web console's page at `/`.
    pub web_console: bool,
    /// The store's database URL (`sqlite:` or `postgres:`).
    pub database_url: String,
    /// The SQL Gateway's REST URL.
    pub sql_gateway_url: String,
    /// The JobManager's REST URL.
    pub jobmanager_url: String,
    /// The timeout of one REST request to either.
    pub http_timeout: Duration,
    /// How often the SQL Gateway and the JobManager are probed for the health service.
    pub health_interval: Duration,
    /// Where Python submitters run.
    pub runner: RunnerConfig,
    /// How callers prove who they are.
    pub auth: AuthConfig,
    /// TLS of the gRPC port, if served.
    pub tls: Option<TlsConfig>,
    /// Where `/metrics` is served.
    pub metrics_listen: MetricsListen,
    /// Unauthenticated calls recorded in the audit trail a second, at most.
    pub audit_unauthenticated_per_second: u32,
    /// How long in-flight calls may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// The use cases' limits and pacing, and each tenant's policy.
    pub limits: Limits,
    /// This replica's name in the job leases.
    pub replica_id: String,
}

/// Where Python submitters run.
#[derive(Debug, Clone)]
pub enum RunnerConfig {
    /// As local processes.
    Local(LocalRunnerConfig),
    /// As Kubernetes batch/v1 Jobs, through the kubeconfig given or the in-cluster one.
    Kubernetes {
        /// The Jobs' namespace, image and resources.
        runner: flinkbroker_runner::kubernetes::KubernetesRunnerConfig,
        /// A kubeconfig file; None for the in-cluster configuration.
        kubeconfig: Option<PathBuf>,
    },
}

/// How callers prove who they are; with none of the three, every caller is anonymous.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Static bearer tokens (`--auth-tokens-file`).
    pub tokens_file: Option<PathBuf>,
    /// JWT bearer tokens.
    pub jwt: Option<JwtSettings>,
    /// Client certificates, looked up in this principals file (`--mtls-principals-file`);
    /// the TLS configuration names their CA.
    pub mtls_principals_file: Option<PathBuf>,
    /// Which name of a client certificate the principals file maps.
    pub mtls_principal_from: MtlsPrincipalFrom,
    /// How often the token file and the principals file are looked at for changes.
    pub reload_interval: Duration,
    /// Whether health checking and reflection answer without a credential.
    pub open_health_and_reflection: bool,
}

impl AuthConfig {
    /// Whether callers may present bearer tokens (a token file or JWTs).
    pub fn bearer_tokens_configured(&self) -> bool {
        self.tokens_file.is_some() || self.jwt.is_some()
    }
}

/// TLS of the gRPC port.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CA client certificates must chain to, when they are accepted.
    pub client_ca: Option<PathBuf>,
    /// The longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl ServerConfig {
    /// Whether any authentication is configured (bearer tokens or client certificates);
    /// without it every caller is anonymous.
    pub fn authentication_configured(&self) -> bool {
        self.auth.bearer_tokens_configured() || self.client_ca().is_some()
    }

    /// The CA of client certificates, when they are accepted.
    pub(crate) fn client_ca(&self) -> Option<&PathBuf> {
        self.tls.as_ref().and_then(|tls| tls.client_ca.as_ref())
    }
}
