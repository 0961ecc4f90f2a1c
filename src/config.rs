//! Command-line flags; every flag is also readable from a `FLINKBROKER_*` variable. Each
//! group of flags turns into the configuration of the crate it belongs to.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use flinkbroker_control::Limits;
use flinkbroker_model::tenants::{TenantPolicies, TenantPolicy};
use flinkbroker_model::units::{parse_bytes, parse_duration};
use flinkbroker_runner::kubernetes::KubernetesRunnerConfig;
use flinkbroker_runner::local::LocalRunnerConfig;
use flinkbroker_server::auth::jwt::{ClaimNames, JwksSource, JwtSettings};
use flinkbroker_server::auth::mtls;
use flinkbroker_server::config::{AuthConfig, RunnerConfig, ServerConfig, TlsConfig as ServerTls};
use flinkbroker_server::metrics::MetricsListen;
use flinkbroker_server::telemetry::{self, LogOutput, TraceExport};

/// Where Python submitters run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerKind {
    Local,
    Kubernetes,
}

/// How the broker's log lines are written on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines of text (coloured only on a terminal, and unless `NO_COLOR` is set).
    Text,
    /// JSON lines: one object an event, with its fields and the spans it is in.
    Json,
}

/// Which name of a client certificate is looked up in `--mtls-principals-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MtlsPrincipalFrom {
    /// The subject's common name (CN).
    Cn,
    /// The first subject alternative name (DNS name, URI or email) the file names.
    San,
}

/// The `flinkbroker` command line.
#[derive(Debug, Parser)]
#[command(
    name = "flinkbroker",
    version,
    about = "gRPC control plane for PyFlink and Flink SQL jobs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Where the client commands find the broker.
    #[command(flatten)]
    pub server: flinkbroker_cli::ServerArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the broker until SIGINT or SIGTERM.
    Serve(Box<ServeConfig>),
    /// Client commands, talking to a broker.
    #[command(flatten)]
    Client(flinkbroker_cli::ClientCommand),
}

/// Everything `flinkbroker serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the gRPC server listens on. It also answers gRPC-Web (HTTP/1.1 or HTTP/2) and,
    /// unless `--web-console false`, serves the web SQL console at `/`.
    #[arg(long, env = "FLINKBROKER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Whether the web SQL console is served at `/` on the gRPC port. Its page and assets are
    /// public; every call it makes is a gRPC-Web call under the usual authentication.
    #[arg(long, env = "FLINKBROKER_WEB_CONSOLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub web_console: bool,

    /// Database URL: `sqlite://PATH?mode=rwc`, `sqlite::memory:` or `postgres://…`.
    #[arg(
        long,
        env = "FLINKBROKER_DATABASE_URL",
        default_value = "sqlite://data/flinkbroker.db?mode=rwc"
    )]
    pub database_url: String,

    /// Base URL of the Flink SQL Gateway REST API.
    #[arg(
        long,
        env = "FLINKBROKER_SQL_GATEWAY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub sql_gateway_url: String,

    /// Base URL of the Flink JobManager REST API.
    #[arg(
        long,
        env = "FLINKBROKER_JOBMANAGER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub jobmanager_url: String,

    /// Timeout of one HTTP request to the SQL Gateway or the JobManager.
    #[arg(long, env = "FLINKBROKER_HTTP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Largest SQL script or Python program accepted, in bytes.
    #[arg(long, env = "FLINKBROKER_MAX_SCRIPT_BYTES", default_value_t = 1024 * 1024)]
    pub max_script_bytes: usize,

    /// Most statements one SQL script may hold.
    #[arg(long, env = "FLINKBROKER_MAX_STATEMENTS", default_value_t = 1000)]
    pub max_statements: usize,

    /// How often a job's SQL Gateway session is kept alive.
    #[arg(long, env = "FLINKBROKER_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// How often running jobs are checked (operation status, Flink job status).
    #[arg(long, env = "FLINKBROKER_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Longest pause between two result fetches while the gateway has nothing new.
    #[arg(long, env = "FLINKBROKER_MAX_FETCH_BACKOFF", default_value = "500ms", value_parser = parse_duration)]
    pub max_fetch_backoff: Duration,

    /// How long a cancelled job's Flink jobs may take to stop before the job turns FAILED.
    #[arg(long, env = "FLINKBROKER_CANCEL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub cancel_timeout: Duration,

    /// Longest a StreamOperationResults call may run, whatever the caller asks.
    #[arg(long, env = "FLINKBROKER_MAX_STREAM_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_stream_duration: Duration,

    /// How often the health of the SQL Gateway and the JobManager is checked.
    #[arg(long, env = "FLINKBROKER_HEALTH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// How often memory the allocator holds free is handed back to the operating system
    /// (glibc `malloc_trim`): what a burst freed (a thousand submissions at once, say) would
    /// otherwise stay resident. 0s: never.
    #[arg(long, env = "FLINKBROKER_MEMORY_TRIM_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub memory_trim_interval: Duration,

    /// Where Python submitters run: `local` (a `flink run` child process) or `kubernetes`
    /// (a batch/v1 Job per submission).
    #[arg(long, env = "FLINKBROKER_JOB_RUNNER", value_enum, default_value_t = RunnerKind::Local)]
    pub job_runner: RunnerKind,

    /// Flink distribution of the local runner (its `bin/flink` runs the submissions).
    #[arg(long, env = "FLINKBROKER_FLINK_HOME", default_value = "/opt/flink")]
    pub flink_home: std::path::PathBuf,

    /// Python interpreter passed to `flink run -pyexec/-pyclientexec` (default: `python` on PATH).
    #[arg(long, env = "FLINKBROKER_PYTHON_EXECUTABLE")]
    pub python_executable: Option<String>,

    /// Directory under which the local runner keeps each submission's private files.
    #[arg(
        long,
        env = "FLINKBROKER_SUBMITTER_WORK_DIR",
        default_value = "data/submitters"
    )]
    pub submitter_work_dir: std::path::PathBuf,

    /// JobManager address for `flink run -m` (default: host and port of --jobmanager-url).
    #[arg(long, env = "FLINKBROKER_JOBMANAGER_ADDRESS")]
    pub jobmanager_address: Option<String>,

    /// URL prefixes a Python script may be downloaded from (comma-separated; empty: none).
    #[arg(long, env = "FLINKBROKER_SCRIPT_URL_PREFIXES", value_delimiter = ',')]
    pub script_url_prefixes: Vec<String>,

    /// Prefixes every savepoint path a job restores from, and every savepoint directory a
    /// caller names (TriggerSavepoint, CancelJob), must start with, e.g.
    /// `s3://savepoints/,file:///flink/savepoints/` (comma-separated; empty: any path the
    /// cluster can read and write).
    #[arg(
        long,
        env = "FLINKBROKER_SAVEPOINT_PATH_PREFIXES",
        value_delimiter = ','
    )]
    pub savepoint_path_prefixes: Vec<String>,

    /// Flink configuration key prefixes a caller may not set through SQL properties, SQL `SET`
    /// statements or Python `flink_configuration` (comma-separated; `$internal.` is always
    /// refused; an empty value allows all others).
    #[arg(
        long,
        env = "FLINKBROKER_FORBIDDEN_CONFIG_PREFIXES",
        value_delimiter = ',',
        default_value = "env.,kubernetes.,security.,high-availability."
    )]
    pub forbidden_config_prefixes: Vec<String>,

    /// Live (not ended) jobs each tenant may have at once.
    #[arg(long, env = "FLINKBROKER_TENANT_MAX_LIVE_JOBS", default_value_t = 100)]
    pub tenant_max_live_jobs: u64,

    /// Submissions each tenant may make per minute (also the burst allowed at once).
    #[arg(long, env = "FLINKBROKER_TENANT_SUBMISSIONS_PER_MINUTE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_submissions_per_minute: u32,

    /// Encoded result bytes each tenant's result logs may hold; beyond it new jobs are
    /// refused until logs of ended jobs expire.
    #[arg(long, env = "FLINKBROKER_TENANT_MAX_RESULT_LOG_BYTES", default_value = "10GiB", value_parser = parse_bytes)]
    pub tenant_max_result_log_bytes: u64,

    /// The parallelism each tenant's live Python jobs may add up to.
    #[arg(long, env = "FLINKBROKER_TENANT_MAX_PYTHON_PARALLELISM", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub tenant_max_python_parallelism: u64,

    /// Highest parallelism a Python job may ask for.
    #[arg(long, env = "FLINKBROKER_MAX_PARALLELISM", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallelism: u32,

    /// JSON file overriding, for named tenants, any of the guardrails and quotas above:
    /// `{"tenants": {"recsys": {"max_live_jobs": 20, "script_url_prefixes": ["https://…/"],
    /// "forbidden_config_prefixes": ["env."], "savepoint_path_prefixes": ["s3://sp/"],
    /// "max_parallelism": 16, "submissions_per_minute": 60, "max_result_log_bytes": "5GiB",
    /// "max_python_parallelism": 64}}}`. Read again when it changes (every
    /// `--auth-reload-interval`).
    #[arg(long, env = "FLINKBROKER_TENANT_POLICY_FILE")]
    pub tenant_policy_file: Option<std::path::PathBuf>,

    /// How long audit events are kept.
    #[arg(long, env = "FLINKBROKER_AUDIT_RETENTION", default_value = "2160h", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// Calls refused for want of a valid credential that are recorded in the audit trail
    /// each second, at most (the rest are counted in the log), so that a flood of them
    /// cannot fill the database.
    #[arg(
        long,
        env = "FLINKBROKER_AUDIT_UNAUTHENTICATED_PER_SECOND",
        default_value_t = 50
    )]
    pub audit_unauthenticated_per_second: u32,

    /// Namespace of the submitter Jobs and ConfigMaps.
    #[arg(
        long,
        env = "FLINKBROKER_KUBE_NAMESPACE",
        default_value = "flinkbroker"
    )]
    pub kube_namespace: String,

    /// Service account of the submitter pods.
    #[arg(
        long,
        env = "FLINKBROKER_KUBE_SERVICE_ACCOUNT",
        default_value = "flinkbroker-submitter"
    )]
    pub kube_service_account: String,

    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long, env = "FLINKBROKER_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Image of the submitter pods: Flink with Python and PyFlink, of the session cluster's
    /// version (`deploy/Dockerfile.flink-python`, tagged with that version).
    #[arg(
        long,
        env = "FLINKBROKER_SUBMITTER_IMAGE",
        default_value = "flinkbroker/flink-python:1.20.3"
    )]
    pub submitter_image: String,

    /// Longest a submitter pod may run (`activeDeadlineSeconds`).
    #[arg(long, env = "FLINKBROKER_SUBMITTER_DEADLINE", default_value = "10m", value_parser = parse_duration)]
    pub submitter_deadline: Duration,

    /// How long a finished submitter Job is kept (`ttlSecondsAfterFinished`).
    #[arg(long, env = "FLINKBROKER_SUBMITTER_TTL", default_value = "1h", value_parser = parse_duration)]
    pub submitter_ttl: Duration,

    /// CPU request and limit of a submitter pod.
    #[arg(
        long,
        env = "FLINKBROKER_SUBMITTER_CPU_REQUEST",
        default_value = "250m"
    )]
    pub submitter_cpu_request: String,
    #[arg(long, env = "FLINKBROKER_SUBMITTER_CPU_LIMIT", default_value = "1")]
    pub submitter_cpu_limit: String,

    /// Memory request and limit of a submitter pod.
    #[arg(
        long,
        env = "FLINKBROKER_SUBMITTER_MEMORY_REQUEST",
        default_value = "768Mi"
    )]
    pub submitter_memory_request: String,
    #[arg(
        long,
        env = "FLINKBROKER_SUBMITTER_MEMORY_LIMIT",
        default_value = "1536Mi"
    )]
    pub submitter_memory_limit: String,

    /// How long in-flight calls may run on after a shutdown signal.
    #[arg(long, env = "FLINKBROKER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Batch jobs: the most encoded result rows logged per query statement; a query that
    /// produces more fails its statement (e.g. 1GiB, 512MiB, or bytes).
    #[arg(long, env = "FLINKBROKER_RESULT_LOG_MAX_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub result_log_max_bytes: u64,

    /// Streaming jobs: the sliding window of encoded result rows held per query statement;
    /// older rows are dropped.
    #[arg(long, env = "FLINKBROKER_RESULT_LOG_WINDOW_BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    pub result_log_window_bytes: u64,

    /// How long a job's result logs are kept after the job ended.
    #[arg(long, env = "FLINKBROKER_RESULT_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub result_retention: Duration,

    /// How long an ended job is kept after it ended; then the janitor deletes it with its
    /// statements, history and result logs (its audit events stay for --audit-retention).
    #[arg(long, env = "FLINKBROKER_JOB_RETENTION", default_value = "2160h", value_parser = parse_duration)]
    pub job_retention: Duration,

    /// How often the janitor deletes the result logs past their retention.
    #[arg(long, env = "FLINKBROKER_JANITOR_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub janitor_interval: Duration,

    /// The most encoded rows in one StreamOperationResults message.
    #[arg(long, env = "FLINKBROKER_MAX_MESSAGE_BYTES", default_value = "4MiB", value_parser = parse_bytes)]
    pub max_message_bytes: u64,

    /// How often a result stream waiting for rows sends a progress message.
    #[arg(long, env = "FLINKBROKER_PROGRESS_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// This replica's name in the job leases. Replicas sharing one PostgreSQL need distinct
    /// ids; a replica restarted under its id takes its jobs back at once. Default: on SQLite
    /// `embedded`, otherwise `<hostname>-<random>`.
    #[arg(long, env = "FLINKBROKER_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// How long a replica's lease on a job lasts without renewal; renewed every quarter of
    /// it. Another replica takes a job over once its lease expired.
    #[arg(long, env = "FLINKBROKER_LEASE_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often a replica looks at the database for what other replicas changed: results
    /// another replica logs, jobs it drives (WatchJob), cancels recorded for this replica.
    #[arg(long, env = "FLINKBROKER_REPLICA_POLL_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub replica_poll_interval: Duration,

    /// How often a replica that holds more than its fair share of the live jobs
    /// (ceil(unfinished jobs / live replicas), plus a tolerance) hands some over to the
    /// others.
    #[arg(long, env = "FLINKBROKER_REBALANCE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub rebalance_interval: Duration,

    /// The most jobs a replica hands over at once; 0 never hands one over (replicas under
    /// their share still take up the jobs nobody holds).
    #[arg(long, env = "FLINKBROKER_REBALANCE_BATCH", default_value_t = 100)]
    pub rebalance_batch: u64,

    /// How many times a SQL statement runs again when the cluster refuses its Flink job at
    /// once (`NoResourceAvailableException` before any task ran: no free slots); after that
    /// the job fails with the refusal as its cause. 0 never runs one again.
    #[arg(long, env = "FLINKBROKER_REFUSED_JOB_RETRIES", default_value_t = 3)]
    pub refused_job_retries: u32,

    /// The pause before the first such retry; each next one waits twice as long (at most
    /// 5 minutes).
    #[arg(long, env = "FLINKBROKER_REFUSED_JOB_BACKOFF", default_value = "2s", value_parser = parse_duration)]
    pub refused_job_backoff: Duration,

    /// How long a savepoint may take. TriggerSavepoint answers DEADLINE_EXCEEDED after it
    /// (the savepoint goes on, and the job records how it ends); a stop with a savepoint
    /// gives up after it, and the Flink job runs on.
    #[arg(long, env = "FLINKBROKER_SAVEPOINT_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub savepoint_timeout: Duration,

    /// The most distinct rows the TABLE view of one statement's results holds; a larger table
    /// is refused (FAILED_PRECONDITION naming this flag) and its changelog stays readable.
    #[arg(long, env = "FLINKBROKER_MAX_TABLE_ROWS", default_value_t = 1_000_000)]
    pub max_table_rows: u64,

    /// How long a revision made by UpgradeJob may take to run (its Flink jobs running for
    /// `--upgrade-running-for`) before it is canceled and the previous revision rolled back.
    #[arg(long, env = "FLINKBROKER_UPGRADE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub upgrade_timeout: Duration,

    /// How long a new revision's Flink jobs must have run before its upgrade is done; a
    /// revision that fails sooner is rolled back.
    #[arg(long, env = "FLINKBROKER_UPGRADE_RUNNING_FOR", default_value = "10s", value_parser = parse_duration)]
    pub upgrade_running_for: Duration,

    /// How many jobs taken up again (after a restart, or from another replica) are resumed at
    /// once; the others wait until one follows its Flink jobs again, so that the gateway and
    /// the JobManager see a bounded burst however many jobs are taken up.
    #[arg(long, env = "FLINKBROKER_RESUME_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub resume_concurrency: u32,

    /// JSON file mapping the SHA-256 (hex) of each bearer token to its principal, tenant and
    /// roles: `{"tokens": [{"sha256": "…", "principal": "…", "tenant": "…", "roles":
    /// ["submitter", "reader"]}]}`. Read again when it changes. Without it every caller is an
    /// anonymous administrator, which is allowed only on a loopback address.
    #[arg(long, env = "FLINKBROKER_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<std::path::PathBuf>,

    /// How often the token file, the client-certificate mapping and the tenant policy file are
    /// looked at for changes.
    #[arg(long, env = "FLINKBROKER_AUTH_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub auth_reload_interval: Duration,

    /// Whether health checking and server reflection answer callers without a credential.
    #[arg(long, env = "FLINKBROKER_OPEN_HEALTH_AND_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub open_health_and_reflection: bool,

    /// Serve anonymous callers on an address other than loopback when no authentication is
    /// configured (anyone who reaches the port may then run SQL and Python on Flink).
    #[arg(long, env = "FLINKBROKER_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,

    #[command(flatten)]
    pub jwt: JwtConfig,

    #[command(flatten)]
    pub tls: TlsConfig,

    #[command(flatten)]
    pub metrics: MetricsConfig,

    #[command(flatten)]
    pub logs: LogsConfig,

    #[command(flatten)]
    pub traces: TracesConfig,
}

/// The log on standard output.
#[derive(Debug, Clone, Args)]
pub struct LogsConfig {
    /// Format of the log lines: `text`, or `json` (JSON lines for a log pipeline: `timestamp`,
    /// `level`, `target`, `message` and the event's fields, with `span` and `spans` holding
    /// the spans it happened in, such as a job's `job_id`). Which events are logged is set by
    /// `RUST_LOG`.
    #[arg(long, env = "FLINKBROKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// OpenTelemetry trace export (OTLP over gRPC); off unless an endpoint is given.
#[derive(Debug, Clone, Args)]
pub struct TracesConfig {
    /// OTLP/gRPC endpoint the spans are exported to (e.g. `http://otel-collector:4317`).
    /// Unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT`; none of
    /// them set: nothing is exported.
    #[arg(long, env = "FLINKBROKER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` the exported spans carry.
    #[arg(
        long,
        env = "FLINKBROKER_OTLP_SERVICE_NAME",
        default_value = "flinkbroker"
    )]
    pub otlp_service_name: String,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Args)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); `off` (or an empty value) serves
    /// none.
    #[arg(
        long,
        env = "FLINKBROKER_METRICS_LISTEN",
        default_value = "127.0.0.1:9464",
        value_parser = flinkbroker_server::metrics::parse_metrics_listen
    )]
    pub metrics_listen: MetricsListen,
}

/// JWT bearer tokens: where their signing keys are and what their claims must say.
#[derive(Debug, Clone, Args)]
pub struct JwtConfig {
    /// JWKS file of the public keys (RS256, ES256) that sign the JWTs callers present.
    #[arg(
        long,
        env = "FLINKBROKER_JWT_JWKS_FILE",
        conflicts_with = "jwt_jwks_url",
        requires_all = ["jwt_issuer", "jwt_audience"]
    )]
    pub jwt_jwks_file: Option<PathBuf>,

    /// JWKS URL of the public keys (RS256, ES256) that sign the JWTs callers present, e.g. the
    /// `jwks_uri` of an OpenID provider.
    #[arg(
        long,
        env = "FLINKBROKER_JWT_JWKS_URL",
        requires_all = ["jwt_issuer", "jwt_audience"]
    )]
    pub jwt_jwks_url: Option<String>,

    /// The issuer (`iss`) every JWT must name.
    #[arg(long, env = "FLINKBROKER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// A value the audience (`aud`) of every JWT must hold.
    #[arg(long, env = "FLINKBROKER_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The claim naming the caller's principal.
    #[arg(long, env = "FLINKBROKER_JWT_PRINCIPAL_CLAIM", default_value = "sub")]
    pub jwt_principal_claim: String,

    /// The claim naming the caller's tenant (a valid Kubernetes label value).
    #[arg(long, env = "FLINKBROKER_JWT_TENANT_CLAIM", default_value = "tenant")]
    pub jwt_tenant_claim: String,

    /// The claim holding the caller's roles: an array of `submitter`, `reader`, `admin` (other
    /// names are ignored).
    #[arg(long, env = "FLINKBROKER_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,

    /// How often the JWKS is read again.
    #[arg(long, env = "FLINKBROKER_JWT_JWKS_REFRESH_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub jwt_jwks_refresh_interval: Duration,

    /// The shortest time between two reads of the JWKS caused by a JWT naming a key id the
    /// broker does not hold.
    #[arg(long, env = "FLINKBROKER_JWT_JWKS_MIN_REFRESH_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub jwt_jwks_min_refresh_interval: Duration,

    /// The longest one read of the JWKS may take.
    #[arg(long, env = "FLINKBROKER_JWT_JWKS_FETCH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub jwt_jwks_fetch_timeout: Duration,

    /// Clock skew tolerated on the expiry (`exp`) and not-before (`nbf`) of a JWT (whole
    /// seconds).
    #[arg(long, env = "FLINKBROKER_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,
}

impl JwtConfig {
    /// How JWTs are verified, or None when they are not accepted.
    pub fn settings(&self) -> anyhow::Result<Option<JwtSettings>> {
        let source = match (&self.jwt_jwks_file, &self.jwt_jwks_url) {
            (Some(path), None) => JwksSource::File(path.clone()),
            (None, Some(url)) => JwksSource::Url(url.clone()),
            (Some(_), Some(_)) => {
                bail!("give --jwt-jwks-file or --jwt-jwks-url, not both");
            }
            (None, None) => {
                if self.jwt_issuer.is_some() || self.jwt_audience.is_some() {
                    bail!("--jwt-issuer and --jwt-audience need --jwt-jwks-file or --jwt-jwks-url");
                }
                return Ok(None);
            }
        };
        let required = |value: &Option<String>, flag: &str| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("JWT authentication needs {flag}"))
        };
        let claim = |value: &str, flag: &str| {
            let value = value.trim();
            if value.is_empty() {
                Err(anyhow::anyhow!("{flag} must not be empty"))
            } else {
                Ok(value.to_owned())
            }
        };
        Ok(Some(JwtSettings {
            source,
            issuer: required(&self.jwt_issuer, "--jwt-issuer")?,
            audience: required(&self.jwt_audience, "--jwt-audience")?,
            claims: ClaimNames {
                principal: claim(&self.jwt_principal_claim, "--jwt-principal-claim")?,
                tenant: claim(&self.jwt_tenant_claim, "--jwt-tenant-claim")?,
                roles: claim(&self.jwt_roles_claim, "--jwt-roles-claim")?,
            },
            leeway: self.jwt_leeway,
            refresh_interval: self.jwt_jwks_refresh_interval,
            min_refresh_interval: self.jwt_jwks_min_refresh_interval,
            fetch_timeout: self.jwt_jwks_fetch_timeout,
        }))
    }
}

/// TLS serving and client certificates.
#[derive(Debug, Clone, Args)]
pub struct TlsConfig {
    /// PEM certificate chain the server presents; with --tls-key the broker serves TLS only.
    #[arg(long, env = "FLINKBROKER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "FLINKBROKER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) client certificates must chain to. A client certificate is then
    /// required at the TLS handshake, unless bearer tokens are accepted too (a caller then
    /// presents either).
    #[arg(
        long,
        env = "FLINKBROKER_TLS_CLIENT_CA",
        requires_all = ["tls_cert", "mtls_principals_file"]
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// JSON file naming the principal, tenant and roles of each client certificate's subject:
    /// `{"principals": [{"name": "…", "tenant": "…", "roles": ["submitter"]}]}`; read again
    /// within --auth-reload-interval of a change.
    #[arg(
        long,
        env = "FLINKBROKER_MTLS_PRINCIPALS_FILE",
        requires = "tls_client_ca"
    )]
    pub mtls_principals_file: Option<PathBuf>,

    /// Which name of a client certificate is looked up in --mtls-principals-file: its
    /// subject's common name, or its subject alternative names (DNS, URI, email).
    #[arg(long, env = "FLINKBROKER_MTLS_PRINCIPAL_FROM", value_enum, default_value_t = MtlsPrincipalFrom::Cn)]
    pub mtls_principal_from: MtlsPrincipalFrom,

    /// The longest a TLS handshake may take.
    #[arg(long, env = "FLINKBROKER_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl ServeConfig {
    /// Returns the JobManager address for `flink run -m`: the flag, or host:port of the URL.
    pub fn jobmanager_address(&self) -> String {
        if let Some(address) = &self.jobmanager_address {
            return address.clone();
        }
        let without_scheme = self
            .jobmanager_url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&self.jobmanager_url);
        without_scheme
            .split('/')
            .next()
            .unwrap_or(without_scheme)
            .to_string()
    }

    /// Decides where traces go: `--otlp-endpoint`, else the standard OTLP variables read
    /// through `variable`.
    pub fn trace_export(&self, variable: impl Fn(&str) -> Option<String>) -> TraceExport {
        TraceExport::decide(
            self.traces.otlp_endpoint.as_deref(),
            &self.traces.otlp_service_name,
            variable,
        )
    }

    /// Decides how the log is written: in `--log-format`, coloured only as text on a
    /// terminal (`stdout_is_terminal`) and unless `NO_COLOR` (read through `variable`) says
    /// otherwise.
    pub fn log_output(
        &self,
        stdout_is_terminal: bool,
        variable: impl Fn(&str) -> Option<String>,
    ) -> LogOutput {
        let format = match self.logs.log_format {
            LogFormat::Text => telemetry::LogFormat::Text,
            LogFormat::Json => telemetry::LogFormat::Json,
        };
        LogOutput::decide(format, stdout_is_terminal, variable)
    }

    /// The server's configuration: the flags checked and grouped, the tenant policy file read.
    /// A bad flag or an unreadable file is an error naming it.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        self.check_files_readable()?;
        let tenants = tenant_policies(self)?;
        let tls = match (&self.tls.tls_cert, &self.tls.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls.tls_client_ca.clone(),
                handshake_timeout: self.tls.tls_handshake_timeout,
            }),
            _ => None,
        };
        Ok(ServerConfig {
            listen: self.listen,
            allow_anonymous: self.allow_anonymous,
            web_console: self.web_console,
            database_url: self.database_url.clone(),
            sql_gateway_url: self.sql_gateway_url.clone(),
            jobmanager_url: self.jobmanager_url.clone(),
            http_timeout: self.http_timeout,
            health_interval: self.health_interval,
            runner: self.runner_config(),
            auth: AuthConfig {
                tokens_file: self.auth_tokens_file.clone(),
                jwt: self.jwt.settings()?,
                mtls_principals_file: self.tls.mtls_principals_file.clone(),
                mtls_principal_from: match self.tls.mtls_principal_from {
                    MtlsPrincipalFrom::Cn => mtls::MtlsPrincipalFrom::Cn,
                    MtlsPrincipalFrom::San => mtls::MtlsPrincipalFrom::San,
                },
                reload_interval: self.auth_reload_interval,
                open_health_and_reflection: self.open_health_and_reflection,
            },
            tls,
            metrics_listen: self.metrics.metrics_listen,
            audit_unauthenticated_per_second: self.audit_unauthenticated_per_second,
            shutdown_grace: self.shutdown_grace,
            limits: limits(self, &tenants),
            replica_id: replica_id(self),
        })
    }

    /// Checks that each file a flag names can be read, so that a missing or unreadable one
    /// stops the start with an error naming its flag, before anything is connected. (The
    /// server reads them again to use them, and again whenever they change.)
    fn check_files_readable(&self) -> anyhow::Result<()> {
        let kubeconfig = match self.job_runner {
            RunnerKind::Kubernetes => self.kubeconfig.as_deref(),
            RunnerKind::Local => None,
        };
        let files = [
            ("--tenant-policy-file", self.tenant_policy_file.as_deref()),
            ("--auth-tokens-file", self.auth_tokens_file.as_deref()),
            ("--jwt-jwks-file", self.jwt.jwt_jwks_file.as_deref()),
            ("--tls-cert", self.tls.tls_cert.as_deref()),
            ("--tls-key", self.tls.tls_key.as_deref()),
            ("--tls-client-ca", self.tls.tls_client_ca.as_deref()),
            (
                "--mtls-principals-file",
                self.tls.mtls_principals_file.as_deref(),
            ),
            ("--kubeconfig", kubeconfig),
        ];
        for (flag, path) in files {
            if let Some(path) = path {
                readable(flag, path)?;
            }
        }
        Ok(())
    }

    /// Where Python submitters run, and how.
    fn runner_config(&self) -> RunnerConfig {
        match self.job_runner {
            RunnerKind::Local => RunnerConfig::Local(LocalRunnerConfig {
                flink_home: self.flink_home.clone(),
                jobmanager_address: self.jobmanager_address(),
                python_executable: self.python_executable.clone(),
                work_dir: self.submitter_work_dir.clone(),
            }),
            RunnerKind::Kubernetes => RunnerConfig::Kubernetes {
                runner: KubernetesRunnerConfig {
                    namespace: self.kube_namespace.clone(),
                    service_account: self.kube_service_account.clone(),
                    image: self.submitter_image.clone(),
                    flink_executable: "/opt/flink/bin/flink".into(),
                    jobmanager_address: self.jobmanager_address(),
                    python_executable: self.python_executable.clone(),
                    active_deadline: self.submitter_deadline,
                    ttl_after_finished: self.submitter_ttl,
                    cpu_request: self.submitter_cpu_request.clone(),
                    cpu_limit: self.submitter_cpu_limit.clone(),
                    memory_request: self.submitter_memory_request.clone(),
                    memory_limit: self.submitter_memory_limit.clone(),
                },
                kubeconfig: self.kubeconfig.clone(),
            },
        }
    }

    /// Parses `serve` flags as if given on the command line (environment variables apply).
    pub fn from_args(args: &[&str]) -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeConfig,
        }
        let argv = std::iter::once("flinkbroker").chain(args.iter().copied());
        Wrapper::try_parse_from(argv).map(|wrapper| wrapper.serve)
    }
}

fn limits(config: &ServeConfig, tenants: &TenantPolicies) -> Limits {
    Limits {
        max_script_bytes: config.max_script_bytes,
        max_statements: config.max_statements,
        heartbeat_interval: config.heartbeat_interval,
        poll_interval: config.poll_interval,
        max_fetch_backoff: config.max_fetch_backoff,
        max_stream_duration: config.max_stream_duration,
        tenants: tenants.clone(),
        cancel_timeout: config.cancel_timeout,
        result_log_max_bytes: config.result_log_max_bytes,
        result_log_window_bytes: config.result_log_window_bytes,
        result_retention: config.result_retention,
        audit_retention: config.audit_retention,
        job_retention: config.job_retention,
        janitor_interval: config.janitor_interval,
        max_message_bytes: config.max_message_bytes,
        progress_interval: config.progress_interval,
        lease_duration: config.lease_duration,
        replica_poll_interval: config.replica_poll_interval,
        rebalance_interval: config.rebalance_interval,
        rebalance_batch: config.rebalance_batch,
        refused_job_retries: config.refused_job_retries,
        refused_job_backoff: config.refused_job_backoff,
        savepoint_timeout: config.savepoint_timeout,
        max_table_rows: config.max_table_rows,
        upgrade_timeout: config.upgrade_timeout,
        upgrade_running_for: config.upgrade_running_for,
        resume_concurrency: config.resume_concurrency as usize,
    }
}

/// Every tenant's guardrails and quotas: the flags, overridden by the tenant policy file.
fn tenant_policies(config: &ServeConfig) -> anyhow::Result<TenantPolicies> {
    let defaults = TenantPolicy {
        forbidden_config_prefixes: config
            .forbidden_config_prefixes
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        script_url_prefixes: config.script_url_prefixes.clone(),
        savepoint_path_prefixes: config
            .savepoint_path_prefixes
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        max_parallelism: config.max_parallelism,
        max_live_jobs: config.tenant_max_live_jobs,
        submissions_per_minute: config.tenant_submissions_per_minute,
        max_result_log_bytes: config.tenant_max_result_log_bytes,
        max_python_parallelism: config.tenant_max_python_parallelism,
        overridden: Default::default(),
    };
    match &config.tenant_policy_file {
        Some(path) => {
            TenantPolicies::with_file(defaults, path).context("cannot use --tenant-policy-file")
        }
        None => Ok(TenantPolicies::uniform(defaults)),
    }
}

/// Checks that the file `flag` names can be opened and read; the error names the flag and
/// the path, and keeps the I/O error as its cause.
fn readable(flag: &str, path: &Path) -> anyhow::Result<()> {
    let cannot_read = || format!("cannot read {flag} {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    // A directory opens; reading it fails.
    file.read(&mut [0; 1]).with_context(cannot_read)?;
    Ok(())
}

/// This replica's name in the job leases: the flag, or a default that keeps a single
/// embedded broker's jobs its own across restarts.
fn replica_id(config: &ServeConfig) -> String {
    if let Some(id) = &config.replica_id {
        return id.clone();
    }
    if config.database_url.starts_with("sqlite:") {
        return "embedded".into();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "flinkbroker".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_flags_name_the_keys_the_issuer_and_the_audience_together() {
        let config = ServeConfig::from_args(&[
            "--jwt-jwks-url",
            "https://idp.example/jwks.json",
            "--jwt-issuer",
            "https://idp.example",
            "--jwt-audience",
            "flinkbroker",
            "--jwt-tenant-claim",
            "org",
        ])
        .unwrap();
        assert!(config.server_config().unwrap().authentication_configured());
        assert!(
            config
                .server_config()
                .unwrap()
                .auth
                .bearer_tokens_configured()
        );
        let settings = config.jwt.settings().unwrap().expect("JWT configured");
        assert_eq!(
            settings.source,
            JwksSource::Url("https://idp.example/jwks.json".into())
        );
        assert_eq!(settings.claims.principal, "sub");
        assert_eq!(settings.claims.tenant, "org");
        assert_eq!(settings.claims.roles, "roles");
        assert_eq!(settings.leeway, Duration::from_secs(30));
        assert_eq!(settings.refresh_interval, Duration::from_secs(300));
        assert_eq!(settings.min_refresh_interval, Duration::from_secs(30));

        for args in [
            &["--jwt-jwks-file", "jwks.json", "--jwt-issuer", "i"][..],
            &["--jwt-jwks-url", "https://x", "--jwt-audience", "a"][..],
            &[
                "--jwt-jwks-file",
                "jwks.json",
                "--jwt-jwks-url",
                "https://x",
                "--jwt-issuer",
                "i",
                "--jwt-audience",
                "a",
            ][..],
        ] {
            assert!(ServeConfig::from_args(args).is_err(), "{args:?}");
        }
        let lone_issuer = ServeConfig::from_args(&["--jwt-issuer", "i"]).unwrap();
        assert!(lone_issuer.jwt.settings().is_err());
        let blank_claim = ServeConfig::from_args(&[
            "--jwt-jwks-file",
            "jwks.json",
            "--jwt-issuer",
            "i",
            "--jwt-audience",
            "a",
            "--jwt-roles-claim",
            " ",
        ])
        .unwrap();
        assert!(blank_claim.jwt.settings().is_err());
    }

    /// Creates the files named in a temporary directory; returns it and their paths.
    fn files<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [String; N]) {
        let dir = tempfile::tempdir().unwrap();
        let paths = names.map(|name| {
            let path = dir.path().join(name);
            std::fs::write(&path, "contents").unwrap();
            path.display().to_string()
        });
        (dir, paths)
    }

    #[test]
    fn client_certificates_need_tls_and_a_principals_file() {
        let (_dir, [cert, key, ca, principals]) = files(["c.pem", "k.pem", "ca.pem", "p.json"]);
        let config = ServeConfig::from_args(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
            "--mtls-principals-file",
            &principals,
            "--mtls-principal-from",
            "san",
        ])
        .unwrap();
        assert!(config.server_config().unwrap().authentication_configured());
        assert!(
            !config
                .server_config()
                .unwrap()
                .auth
                .bearer_tokens_configured()
        );
        assert_eq!(config.tls.mtls_principal_from, MtlsPrincipalFrom::San);
        for args in [
            &["--tls-cert", "c.pem"][..],
            &[
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--tls-client-ca",
                "ca.pem",
            ][..],
            &[
                "--tls-client-ca",
                "ca.pem",
                "--mtls-principals-file",
                "p.json",
            ][..],
            &["--mtls-principals-file", "p.json"][..],
        ] {
            assert!(ServeConfig::from_args(args).is_err(), "{args:?}");
        }
        let tls_only = ServeConfig::from_args(&["--tls-cert", &cert, "--tls-key", &key]).unwrap();
        assert!(
            !tls_only
                .server_config()
                .unwrap()
                .authentication_configured(),
            "TLS alone authenticates no caller"
        );
    }

    #[test]
    fn serve_alone_gives_working_defaults() {
        let config = ServeConfig::from_args(&["--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(config.max_script_bytes, 1024 * 1024);
        assert_eq!(config.sql_gateway_url, "http://127.0.0.1:8083");
        assert_eq!(config.jobmanager_url, "http://127.0.0.1:8081");
        assert_eq!(config.jobmanager_address(), "127.0.0.1:8081");
        assert_eq!(config.job_runner, RunnerKind::Local);
        assert_eq!(config.memory_trim_interval, Duration::from_secs(30));
        assert!(config.script_url_prefixes.is_empty());
        assert!(!config.server_config().unwrap().authentication_configured());
        assert!(config.jwt.settings().unwrap().is_none());
        assert_eq!(
            config.metrics.metrics_listen,
            MetricsListen::On("127.0.0.1:9464".parse().unwrap())
        );
    }

    #[test]
    fn metrics_can_be_turned_off() {
        for value in ["", "off"] {
            let config = ServeConfig::from_args(&["--metrics-listen", value]).unwrap();
            assert_eq!(config.metrics.metrics_listen, MetricsListen::Off);
        }
        let config = ServeConfig::from_args(&["--metrics-listen", "0.0.0.0:9000"]).unwrap();
        assert_eq!(
            config.metrics.metrics_listen,
            MetricsListen::On("0.0.0.0:9000".parse().unwrap())
        );
    }

    #[test]
    fn an_unreadable_file_names_its_flag_and_keeps_the_io_error_as_its_cause() {
        let (dir, [tokens]) = files(["tokens.json"]);
        let missing = dir.path().join("missing.json").display().to_string();
        let directory = dir.path().display().to_string();
        for (args, flag, path, kind) in [
            (
                vec!["--auth-tokens-file", missing.as_str()],
                "--auth-tokens-file",
                &missing,
                std::io::ErrorKind::NotFound,
            ),
            (
                vec!["--tenant-policy-file", directory.as_str()],
                "--tenant-policy-file",
                &directory,
                std::io::ErrorKind::IsADirectory,
            ),
            (
                vec!["--tls-cert", tokens.as_str(), "--tls-key", missing.as_str()],
                "--tls-key",
                &missing,
                std::io::ErrorKind::NotFound,
            ),
            (
                vec![
                    "--job-runner",
                    "kubernetes",
                    "--kubeconfig",
                    missing.as_str(),
                ],
                "--kubeconfig",
                &missing,
                std::io::ErrorKind::NotFound,
            ),
        ] {
            let error = ServeConfig::from_args(&args)
                .unwrap()
                .server_config()
                .expect_err(flag);
            assert_eq!(error.to_string(), format!("cannot read {flag} {path}"));
            // The cause is the I/O error itself, not a copy of its text.
            let causes: Vec<_> = error.chain().skip(1).collect();
            assert_eq!(causes.len(), 1, "{flag}: {error:#}");
            let io = causes[0].downcast_ref::<std::io::Error>().expect(flag);
            assert_eq!(io.kind(), kind, "{flag}");
            assert_eq!(
                format!("{error:#}"),
                format!("cannot read {flag} {path}: {io}")
            );
        }
        // The local runner does not read a kubeconfig.
        let local = ServeConfig::from_args(&["--kubeconfig", missing.as_str()]).unwrap();
        local.server_config().expect("no kubeconfig read");
    }

    #[test]
    fn logs_are_text_unless_json_is_asked_for_and_coloured_only_on_a_terminal() {
        let no_variables = |_: &str| None;
        let text = ServeConfig::from_args(&[]).unwrap();
        assert_eq!(text.logs.log_format, LogFormat::Text);
        assert_eq!(
            text.log_output(true, no_variables),
            LogOutput {
                format: telemetry::LogFormat::Text,
                colour: true
            }
        );
        assert!(!text.log_output(false, no_variables).colour);
        assert!(
            !text
                .log_output(true, |name| (name == "NO_COLOR").then(|| "1".to_string()))
                .colour
        );
        let json = ServeConfig::from_args(&["--log-format", "json"]).unwrap();
        assert_eq!(
            json.log_output(true, no_variables),
            LogOutput {
                format: telemetry::LogFormat::Json,
                colour: false
            }
        );
        assert!(ServeConfig::from_args(&["--log-format", "yaml"]).is_err());
    }
}
