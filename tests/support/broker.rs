//! A broker served on a free port against the SQL Gateway stand-in, for black-box tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flinkbroker::app::{self, Dependencies};
use flinkbroker::config::ServeConfig;
use flinkbroker::flink::{FlinkError, FlinkJobStatus, JobManager, SavepointStatus};
use flinkbroker::proto::job_service_client::JobServiceClient;
use flinkbroker::sql_gateway::RestSqlGateway;
use flinkbroker::store::SeaStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::sql_gateway_standin::{Standin, StandinConfig};

/// A JobManager whose jobs the test drives: unknown jobs are RUNNING until told otherwise.
#[derive(Default)]
pub struct ScriptedJobManager {
    statuses: Mutex<HashMap<String, FlinkJobStatus>>,
    root_causes: Mutex<HashMap<String, String>>,
    cancelled: Mutex<Vec<String>>,
    unreachable_for_cancel: std::sync::atomic::AtomicBool,
}

impl ScriptedJobManager {
    /// Sets the status the JobManager reports for a Flink job.
    pub fn set_status(&self, flink_job_id: &str, status: FlinkJobStatus) {
        if let Ok(mut statuses) = self.statuses.lock() {
            statuses.insert(flink_job_id.to_string(), status);
        }
    }

    /// Makes a Flink job FAILED with a root cause.
    pub fn fail(&self, flink_job_id: &str, cause: &str) {
        self.set_status(flink_job_id, FlinkJobStatus::Failed);
        if let Ok(mut causes) = self.root_causes.lock() {
            causes.insert(flink_job_id.to_string(), cause.to_string());
        }
    }

    /// Makes cancel requests fail as if the JobManager could not be reached.
    pub fn refuse_cancels(&self) {
        self.unreachable_for_cancel
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Returns the Flink job ids cancelled so far.
    pub fn cancelled(&self) -> Vec<String> {
        self.cancelled.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl JobManager for ScriptedJobManager {
    async fn ping(&self) -> Result<(), FlinkError> {
        Ok(())
    }

    async fn job_status(&self, flink_job_id: &str) -> Result<FlinkJobStatus, FlinkError> {
        Ok(self
            .statuses
            .lock()
            .ok()
            .and_then(|s| s.get(flink_job_id).copied())
            .unwrap_or(FlinkJobStatus::Running))
    }

    async fn root_cause(&self, flink_job_id: &str) -> Result<Option<String>, FlinkError> {
        Ok(self
            .root_causes
            .lock()
            .ok()
            .and_then(|c| c.get(flink_job_id).cloned()))
    }

    async fn cancel(&self, flink_job_id: &str) -> Result<(), FlinkError> {
        if self
            .unreachable_for_cancel
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(FlinkError::Unreachable("connection refused".into()));
        }
        if let Ok(mut cancelled) = self.cancelled.lock() {
            cancelled.push(flink_job_id.to_string());
        }
        self.set_status(flink_job_id, FlinkJobStatus::Canceled);
        Ok(())
    }

    async fn stop_with_savepoint(
        &self,
        _flink_job_id: &str,
        trigger_id: &str,
        _target_directory: Option<&str>,
    ) -> Result<String, FlinkError> {
        Ok(trigger_id.to_string())
    }

    async fn savepoint_status(
        &self,
        _flink_job_id: &str,
        _trigger_id: &str,
    ) -> Result<SavepointStatus, FlinkError> {
        Ok(SavepointStatus::Completed {
            location: "file:///tmp/savepoint".into(),
        })
    }
}

/// How to start a test broker.
#[derive(Default)]
pub struct Options<'a> {
    pub standin_config: StandinConfig,
    /// Extra `serve` flags.
    pub flags: &'a [&'a str],
    /// A SQL Gateway URL instead of the stand-in's.
    pub gateway_url: Option<&'a str>,
    /// A JobManager instead of the scripted one (e.g. the REST client of a real cluster).
    pub jobmanager: Option<Arc<dyn JobManager>>,
}

/// A running broker, its stand-in gateway and its scripted JobManager.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub standin: Standin,
    /// The scripted JobManager (unused when another one was given).
    pub jobmanager: Arc<ScriptedJobManager>,
    /// The local runner's work directory.
    pub work_dir: tempfile::TempDir,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl TestBroker {
    /// Starts a broker with an in-memory SQLite store and a default stand-in.
    pub async fn start() -> Self {
        Self::start_with(StandinConfig::default(), &[]).await
    }

    /// Starts a broker with the given stand-in configuration and extra `serve` flags.
    pub async fn start_with(standin_config: StandinConfig, flags: &[&str]) -> Self {
        Self::start_options(Options {
            standin_config,
            flags,
            ..Options::default()
        })
        .await
    }

    /// Starts a broker whose SQL Gateway client talks to `gateway_url` instead of the stand-in.
    pub async fn start_against_gateway(gateway_url: &str) -> Self {
        Self::start_options(Options {
            gateway_url: Some(gateway_url),
            ..Options::default()
        })
        .await
    }

    /// Starts a broker as the options say.
    pub async fn start_options(options: Options<'_>) -> Self {
        app::install_crypto_provider();
        let standin = Standin::spawn(options.standin_config)
            .await
            .expect("stand-in starts");
        let work_dir = tempfile::tempdir().expect("submitter work dir");
        let work_dir_arg = work_dir.path().display().to_string();
        let defaults = [
            ("--listen", "127.0.0.1:0"),
            ("--poll-interval", "50ms"),
            ("--max-fetch-backoff", "50ms"),
            ("--heartbeat-interval", "1s"),
            ("--shutdown-grace", "5s"),
            ("--health-interval", "100ms"),
            ("--submitter-work-dir", work_dir_arg.as_str()),
        ];
        // A flag given in the options replaces its default.
        let mut args: Vec<&str> = defaults
            .iter()
            .filter(|(flag, _)| !options.flags.contains(flag))
            .flat_map(|(flag, value)| [*flag, *value])
            .collect();
        args.extend_from_slice(options.flags);
        let config = ServeConfig::from_args(&args).expect("serve flags");
        let store = SeaStore::connect("sqlite::memory:").await.expect("store");
        let gateway_url = options.gateway_url.unwrap_or(&standin.base_url);
        let gateway =
            RestSqlGateway::new(gateway_url, Duration::from_secs(10)).expect("gateway client");
        let scripted = Arc::new(ScriptedJobManager::default());
        let jobmanager: Arc<dyn JobManager> = match options.jobmanager {
            Some(jobmanager) => jobmanager,
            None => scripted.clone(),
        };
        let dependencies = Dependencies {
            store: Arc::new(store),
            gateway: Arc::new(gateway),
            jobmanager,
            runner: app::connect_runner(&config).await.expect("runner"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            if let Err(error) = app::serve(dependencies, &config, listener, token).await {
                panic!("broker failed: {error}");
            }
        });
        Self {
            addr,
            standin,
            jobmanager: scripted,
            work_dir,
            shutdown,
            server,
        }
    }

    /// Connects a generated client.
    pub async fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Connects a raw channel (for health and reflection clients).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the server to stop after `begin_shutdown`; false if it did not within `limit`.
    pub async fn stopped_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, &mut self.server).await.is_ok()
    }

    /// Shuts the broker down and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.standin.shutdown().await;
    }
}

/// Polls `check` until it returns Some, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
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

/// Waits until the job is in `state` (through GetJob), failing the test after 30 s.
pub async fn wait_for_state(
    client: &JobServiceClient<Channel>,
    id: &str,
    state: flinkbroker::proto::JobState,
) -> flinkbroker::proto::Job {
    eventually(
        &format!("job {id} {state:?}"),
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            let id = id.to_string();
            async move {
                let job = client
                    .get_job(flinkbroker::proto::GetJobRequest { job_id: id })
                    .await
                    .ok()?
                    .into_inner();
                (job.state() == state).then_some(job)
            }
        },
    )
    .await
}
