//! A broker served on a free port against the SQL Gateway stand-in, for black-box tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flinkbroker::config::ServeConfig;
use flinkbroker_flink::jobmanager::{JobManager, RestJobManager};
use flinkbroker_flink::sql_gateway::RestSqlGateway;
use flinkbroker_proto::job_service_client::JobServiceClient;
use flinkbroker_server::app::{self, Dependencies};
use flinkbroker_store::SeaStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::counting_jobmanager::CountingJobManager;
use super::sql_gateway_standin::{Standin, StandinConfig};

/// How to start a test broker.
#[derive(Default)]
pub(crate) struct Options<'a> {
    pub standin_config: StandinConfig,
    /// Extra `serve` flags.
    pub flags: &'a [&'a str],
    /// A SQL Gateway URL instead of the stand-in's.
    pub gateway_url: Option<&'a str>,
    /// A JobManager instead of the stand-in's (e.g. the REST client of a real cluster).
    pub jobmanager: Option<Arc<dyn JobManager>>,
    /// The stand-in's JobManager refuses cancels, as if it could not be reached.
    pub refuse_jobmanager_cancels: bool,
    /// The stand-in's JobManager counts the broker's calls (`TestBroker::counted`).
    pub count_jobmanager_calls: bool,
}

/// A running broker and its stand-in gateway (which also plays the JobManager).
pub(crate) struct TestBroker {
    pub addr: SocketAddr,
    /// Where the broker serves `GET /metrics`.
    pub metrics_addr: SocketAddr,
    pub standin: Standin,
    /// The local runner's work directory.
    pub work_dir: tempfile::TempDir,
    /// Holds the broker's SQLite database.
    _database_dir: tempfile::TempDir,
    args: Vec<String>,
    jobmanager: Arc<dyn JobManager>,
    /// The JobManager's call counts, with `Options::count_jobmanager_calls`.
    pub counted: Option<Arc<CountingJobManager>>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl TestBroker {
    /// Starts a broker with an in-memory SQLite store and a default stand-in.
    pub(crate) async fn start() -> Self {
        Self::start_with(StandinConfig::default(), &[]).await
    }

    /// Starts a broker with the given stand-in configuration and extra `serve` flags.
    pub(crate) async fn start_with(standin_config: StandinConfig, flags: &[&str]) -> Self {
        Self::start_options(Options {
            standin_config,
            flags,
            ..Options::default()
        })
        .await
    }

    /// Starts a broker whose SQL Gateway client talks to `gateway_url` instead of the stand-in.
    pub(crate) async fn start_against_gateway(gateway_url: &str) -> Self {
        Self::start_options(Options {
            gateway_url: Some(gateway_url),
            ..Options::default()
        })
        .await
    }

    /// Starts a broker as the options say.
    pub(crate) async fn start_options(options: Options<'_>) -> Self {
        flinkbroker::install_crypto_provider();
        let standin = Standin::spawn(options.standin_config)
            .await
            .expect("stand-in starts");
        let work_dir = tempfile::tempdir().expect("submitter work dir");
        let work_dir_arg = work_dir.path().display().to_string();
        let database_dir = tempfile::tempdir().expect("database dir");
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            database_dir.path().join("broker.db").display()
        );
        let gateway_url = options.gateway_url.unwrap_or(&standin.base_url).to_string();
        let defaults = [
            ("--listen", "127.0.0.1:0"),
            ("--poll-interval", "50ms"),
            ("--max-fetch-backoff", "50ms"),
            ("--heartbeat-interval", "1s"),
            ("--shutdown-grace", "5s"),
            ("--health-interval", "100ms"),
            ("--submitter-work-dir", work_dir_arg.as_str()),
            ("--database-url", database_url.as_str()),
            ("--sql-gateway-url", gateway_url.as_str()),
        ];
        // A flag given in the options replaces its default.
        let mut args: Vec<String> = defaults
            .iter()
            .filter(|(flag, _)| !options.flags.contains(flag))
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect();
        args.extend(options.flags.iter().map(|flag| flag.to_string()));
        let stand_in_jobmanager =
            RestJobManager::new(&standin.base_url, Duration::from_secs(10)).expect("jobmanager");
        let mut counted = None;
        let jobmanager: Arc<dyn JobManager> = match options.jobmanager {
            Some(jobmanager) => jobmanager,
            None if options.count_jobmanager_calls || options.refuse_jobmanager_cancels => {
                let counting = Arc::new(CountingJobManager::new(
                    stand_in_jobmanager,
                    options.refuse_jobmanager_cancels,
                ));
                counted = Some(Arc::clone(&counting));
                counting
            }
            None => Arc::new(stand_in_jobmanager),
        };
        let (addr, metrics_addr, shutdown, server) = serve(&args, jobmanager.clone()).await;
        Self {
            addr,
            metrics_addr,
            standin,
            work_dir,
            _database_dir: database_dir,
            args,
            jobmanager,
            counted,
            shutdown,
            server,
        }
    }

    /// Shuts the broker down (as SIGTERM does) and starts it again on the same database, the
    /// same stand-in and a new port; the jobs it ran are resumed.
    pub(crate) async fn restart(mut self) -> Self {
        self.shutdown.cancel();
        let _ = (&mut self.server).await;
        let (addr, metrics_addr, shutdown, server) =
            serve(&self.args, self.jobmanager.clone()).await;
        self.addr = addr;
        self.metrics_addr = metrics_addr;
        self.shutdown = shutdown;
        self.server = server;
        self
    }

    /// Connects a generated client.
    pub(crate) async fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Connects a raw channel (for health and reflection clients).
    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// Signals shutdown without waiting.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the server to stop after `begin_shutdown`; false if it did not within `limit`.
    pub(crate) async fn stopped_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, &mut self.server).await.is_ok()
    }

    /// Shuts the broker down and waits for it.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.standin.shutdown().await;
    }
}

/// Serves a broker with these `serve` flags until the returned token is cancelled.
async fn serve(
    args: &[String],
    jobmanager: Arc<dyn JobManager>,
) -> (SocketAddr, SocketAddr, CancellationToken, JoinHandle<()>) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config = ServeConfig::from_args(&args)
        .expect("serve flags")
        .server_config()
        .expect("server configuration");
    let store = SeaStore::connect(&config.database_url)
        .await
        .expect("store");
    let gateway = RestSqlGateway::new(&config.sql_gateway_url, Duration::from_secs(10))
        .expect("gateway client");
    let dependencies = Dependencies {
        store: Arc::new(store),
        gateway: Arc::new(gateway),
        jobmanager,
        runner: app::connect_runner(&config.runner).await.expect("runner"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let metrics_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind metrics");
    let metrics_addr = metrics_listener.local_addr().expect("metrics addr");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = app::serve_with_metrics(
            dependencies,
            &config,
            listener,
            Some(metrics_listener),
            token,
        )
        .await;
        if let Err(error) = served {
            panic!("broker failed: {error}");
        }
    });
    (addr, metrics_addr, shutdown, server)
}

/// Polls `check` until it returns Some, failing the test after `limit`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cancels a job through CancelJob; returns the job as CancelJob answered it.
pub(crate) async fn cancel(
    client: &mut JobServiceClient<Channel>,
    id: &str,
) -> flinkbroker_proto::Job {
    client
        .cancel_job(flinkbroker_proto::CancelJobRequest {
            job_id: id.into(),
            ..flinkbroker_proto::CancelJobRequest::default()
        })
        .await
        .expect("cancel")
        .into_inner()
}

/// Waits until the job is in `state` (through GetJob), failing the test after 30 s.
pub(crate) async fn wait_for_state(
    client: &JobServiceClient<Channel>,
    id: &str,
    state: flinkbroker_proto::JobState,
) -> flinkbroker_proto::Job {
    wait_for_job(client, id, &format!("{state:?}"), |job| {
        job.state() == state
    })
    .await
}

/// Waits until GetJob returns the job as `expected` accepts it, failing the test after 30 s.
/// Any client will do: a plain channel, or one that adds credentials.
pub(crate) async fn wait_for_job<T>(
    client: &JobServiceClient<T>,
    id: &str,
    what: &str,
    expected: impl Fn(&flinkbroker_proto::Job) -> bool,
) -> flinkbroker_proto::Job
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let expected = &expected;
    eventually(
        &format!("job {id}: {what}"),
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            let id = id.to_string();
            async move {
                let job = client
                    .get_job(flinkbroker_proto::GetJobRequest { job_id: id })
                    .await
                    .ok()?
                    .into_inner();
                expected(&job).then_some(job)
            }
        },
    )
    .await
}

/// A SubmitSql request of `script` in `mode`, everything else unset.
pub(crate) fn sql(
    script: &str,
    mode: flinkbroker_proto::RuntimeMode,
) -> flinkbroker_proto::SubmitSqlRequest {
    flinkbroker_proto::SubmitSqlRequest {
        script: script.to_string(),
        runtime_mode: mode as i32,
        ..flinkbroker_proto::SubmitSqlRequest::default()
    }
}

/// Submits a SQL job; the test fails when SubmitSql does.
pub(crate) async fn submit(
    client: &mut JobServiceClient<Channel>,
    request: flinkbroker_proto::SubmitSqlRequest,
) -> flinkbroker_proto::Job {
    client
        .submit_sql(request)
        .await
        .expect("submit")
        .into_inner()
}
