//! Wiring: store, clients, controller, gRPC services, health and reflection; serves until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tracing::{info, warn};

use anyhow::{Context as _, Result};
use flinkbroker_control::Controller;
use flinkbroker_flink::jobmanager::{JobManager, RestJobManager};
use flinkbroker_flink::sql_gateway::{RestSqlGateway, SqlGateway};
use flinkbroker_proto as proto;
use flinkbroker_runner::JobRunner;
use flinkbroker_runner::kubernetes::KubernetesRunner;
use flinkbroker_runner::local::LocalRunner;
use flinkbroker_store::{SeaStore, Store};

use crate::api::JobApi;
use crate::audit::Auditor;
use crate::auth::{AuthLayer, Authenticator};
use crate::config::{RunnerConfig, ServerConfig};
use crate::console;
use crate::metrics::{self, MetricsListen};

/// Health service name reporting whether the SQL Gateway answers.
pub const SQL_GATEWAY_HEALTH: &str = "flinkbroker.dependency.SqlGateway";
/// Health service name reporting whether the JobManager REST API answers.
pub const JOBMANAGER_HEALTH: &str = "flinkbroker.dependency.JobManager";
/// Health service name of the API itself (also reported as the overall status, "").
pub const JOB_SERVICE_HEALTH: &str = "flinkbroker.v1.JobService";

/// The external systems the broker talks to.
#[derive(Clone)]
pub struct Dependencies {
    /// The database holding jobs, result logs, leases and the audit trail.
    pub store: Arc<dyn Store>,
    /// The SQL Gateway client.
    pub gateway: Arc<dyn SqlGateway>,
    /// The JobManager REST client.
    pub jobmanager: Arc<dyn JobManager>,
    /// The runner of Python submitters.
    pub runner: Arc<dyn JobRunner>,
}

/// Connects the real store (running its migrations) and clients named in the configuration.
async fn connect(config: &ServerConfig) -> Result<Dependencies> {
    let store = SeaStore::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {} (--database-url)",
                redact(&config.database_url)
            )
        })?;
    info!(database = %redact(&config.database_url), "store ready, migrations applied");
    let gateway = RestSqlGateway::new(&config.sql_gateway_url, config.http_timeout)
        .context("--sql-gateway-url")?;
    let jobmanager = RestJobManager::new(&config.jobmanager_url, config.http_timeout)
        .context("--jobmanager-url")?;
    let runner = connect_runner(&config.runner).await?;
    Ok(Dependencies {
        store: Arc::new(store),
        gateway: Arc::new(gateway),
        jobmanager: Arc::new(jobmanager),
        runner,
    })
}

/// Creates the runner of Python submitters the configuration names.
pub async fn connect_runner(config: &RunnerConfig) -> Result<Arc<dyn JobRunner>> {
    let runner: Arc<dyn JobRunner> = match config {
        RunnerConfig::Local(local) => {
            info!(flink_home = %local.flink_home.display(), "python jobs run as local processes");
            Arc::new(LocalRunner::new(local.clone()).context("cannot run python jobs locally")?)
        }
        RunnerConfig::Kubernetes { runner, kubeconfig } => {
            info!(namespace = %runner.namespace, "python jobs run as kubernetes jobs");
            let runner = KubernetesRunner::connect(runner.clone(), kubeconfig.as_deref())
                .await
                .context("cannot connect to kubernetes")?;
            Arc::new(runner)
        }
    };
    Ok(runner)
}

/// Runs the broker on `config.listen` until `shutdown` is cancelled.
pub async fn run(config: ServerConfig, shutdown: CancellationToken) -> Result<()> {
    if !config.authentication_configured() {
        // Before anything is connected: an anonymous broker beyond loopback does not start.
        Authenticator::Anonymous.check_listen(config.listen, config.allow_anonymous)?;
    }
    let dependencies = connect(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    serve(dependencies, &config, listener, shutdown).await
}

/// Serves the API on `listener` with the given dependencies until `shutdown` is cancelled,
/// then lets in-flight calls finish within the configured grace period. The metrics endpoint
/// listens where `--metrics-listen` says.
async fn serve(
    dependencies: Dependencies,
    config: &ServerConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    serve_with_metrics(dependencies, config, listener, None, shutdown).await
}

/// Serves the API on `listener` with the given dependencies until `shutdown` is cancelled,
/// then lets in-flight calls finish within the configured grace period. The metrics endpoint
/// listens on `metrics_listener` when given (e.g. bound to port 0 by a test that reads its
/// address), else where `--metrics-listen` says.
pub async fn serve_with_metrics(
    dependencies: Dependencies,
    config: &ServerConfig,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<()> {
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let authenticator = Authenticator::from_config(config, &shutdown).await?;
    let mut builder = Server::builder();
    if let Some(tls) = crate::auth::server_tls_config(config)? {
        builder = builder
            .tls_config(tls)
            .context("cannot serve TLS with --tls-cert, --tls-key and --tls-client-ca")?;
        info!(
            client_certificates = config.client_ca().is_some(),
            "serving TLS"
        );
    }
    authenticator.check_listen(local, config.allow_anonymous)?;
    authenticator.warn_if_anonymous(local);
    if let Some(file) = config.limits.tenants.file() {
        file.watch(config.auth.reload_interval, shutdown.clone());
    }
    let metrics_listener = match metrics_listener {
        Some(listener) => Some(listener),
        None => bind_metrics(config.metrics_listen).await?,
    };
    let auditor = Arc::new(Auditor::new(
        Arc::clone(&dependencies.store),
        config.audit_unauthenticated_per_second,
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(JOB_SERVICE_HEALTH, ServingStatus::NotServing)
        .await;
    // UNKNOWN until the first probe has answered.
    for dependency in [SQL_GATEWAY_HEALTH, JOBMANAGER_HEALTH] {
        health
            .set_service_status(dependency, ServingStatus::Unknown)
            .await;
    }

    let controller = Controller::new(
        Arc::clone(&dependencies.store),
        Arc::clone(&dependencies.gateway),
        Arc::clone(&dependencies.jobmanager),
        Arc::clone(&dependencies.runner),
        config.limits.clone(),
        config.replica_id.clone(),
        shutdown.clone(),
    );
    // The recorder is installed before the jobs are taken up, so that their takeovers and
    // resumptions are counted.
    let metrics_handle = match metrics_listener {
        Some(_) => Some(metrics::install()?),
        None => None,
    };
    controller.recover().await?;
    info!(
        replica = controller.replica(),
        "job leases held under this replica id"
    );

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("cannot build reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build reflection v1alpha")?;

    let metrics_endpoint = match metrics_listener.zip(metrics_handle) {
        Some((listener, handle)) => {
            let scrape = metrics::Scrape {
                handle,
                store: Arc::clone(&dependencies.store),
                jobmanager: Arc::clone(&dependencies.jobmanager),
                result_log_max_bytes: config.limits.result_log_max_bytes,
            };
            Some(tokio::spawn(metrics::serve(
                listener,
                scrape,
                shutdown.clone(),
            )))
        }
        None => None,
    };

    let probes = tokio::spawn(probe_dependencies(
        dependencies.clone(),
        health.clone(),
        config.health_interval,
        shutdown.clone(),
    ));

    if config.web_console {
        info!(
            url = %console::url(local, config.tls.is_some()),
            "web console served"
        );
    }
    let server = builder
        .concurrency_limit_per_connection(256)
        // Browsers speak gRPC-Web over HTTP/1.1 (or HTTP/2 with TLS). The console's page and
        // assets are answered first; the gRPC-Web layer turns calls into gRPC before
        // authentication sees them, and the answers back into gRPC-Web.
        .accept_http1(true)
        .layer(console::ConsoleLayer::new(config.web_console))
        .layer(GrpcWebLayer::new())
        .layer(AuthLayer::new(authenticator).audited_by(Arc::clone(&auditor)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(JobApi::new(Arc::clone(&controller), Arc::clone(&auditor)).into_server())
        .serve_with_incoming_shutdown(
            // Small replies (GetJob) go out at once instead of waiting on Nagle's algorithm.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            announce_shutdown(shutdown.clone(), health.clone()),
        );
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(JOB_SERVICE_HEALTH, ServingStatus::Serving)
        .await;
    info!(listen = %local, "flinkbroker serving");

    let grace = config.shutdown_grace;
    let mut server = Box::pin(server);
    let outcome = tokio::select! {
        served = &mut server => served.context("the grpc server failed"),
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            warn!(grace_ms = grace.as_millis() as u64, "in-flight calls did not finish within the shutdown grace period; dropping them");
            Ok(())
        }
    };
    probes.abort();
    // Dropping the server drops the streams' receivers, so their tasks see the client gone.
    drop(server);
    controller.drain(grace).await;
    if let Some(endpoint) = metrics_endpoint
        && tokio::time::timeout(grace, endpoint).await.is_err()
    {
        warn!("the metrics endpoint did not stop within the shutdown grace period");
    }
    info!("flinkbroker stopped");
    outcome
}

/// Binds the metrics endpoint's address; None when metrics are off.
async fn bind_metrics(listen: MetricsListen) -> Result<Option<TcpListener>> {
    match listen {
        MetricsListen::Off => {
            info!("metrics endpoint off (--metrics-listen off)");
            Ok(None)
        }
        MetricsListen::On(address) => TcpListener::bind(address)
            .await
            .map(Some)
            .with_context(|| format!("cannot listen for metrics on {address} (--metrics-listen)")),
    }
}

async fn announce_shutdown(shutdown: CancellationToken, health: HealthReporter) {
    shutdown.cancelled().await;
    info!("shutting down: no new calls, in-flight calls may finish");
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(JOB_SERVICE_HEALTH, ServingStatus::NotServing)
        .await;
}

/// Reports the SQL Gateway's and the JobManager's reachability under their own names.
async fn probe_dependencies(
    dependencies: Dependencies,
    health: HealthReporter,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut gateway_up: Option<bool> = None;
    let mut jobmanager_up: Option<bool> = None;
    loop {
        let gateway = dependencies.gateway.negotiate_version().await;
        let up = gateway.is_ok();
        metrics::dependency_up("sql_gateway", up);
        if gateway_up != Some(up) {
            match &gateway {
                Ok(version) => info!(?version, "sql gateway reachable"),
                Err(error) => warn!(%error, "sql gateway not usable"),
            }
            health
                .set_service_status(SQL_GATEWAY_HEALTH, serving(up))
                .await;
            gateway_up = Some(up);
        }
        let jobmanager = dependencies.jobmanager.ping().await;
        let up = jobmanager.is_ok();
        metrics::dependency_up("jobmanager", up);
        if jobmanager_up != Some(up) {
            match &jobmanager {
                Ok(()) => info!("flink jobmanager reachable"),
                Err(error) => warn!(%error, "flink jobmanager not reachable"),
            }
            health
                .set_service_status(JOBMANAGER_HEALTH, serving(up))
                .await;
            jobmanager_up = Some(up);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn serving(up: bool) -> ServingStatus {
    if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Hides a password in a database URL before it is logged.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_in_database_urls_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
