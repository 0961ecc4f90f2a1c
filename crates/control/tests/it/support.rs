//! What the tests share: a world of fakes that outlives brokers, brokers (controllers) built
//! on it, crashes, and waits on conditions with a deadline.
//!
//! A crash cuts the broker's links to the fakes (its calls in flight and later never answer:
//! no more effects on the gateway, the JobManager or the runner) and cancels its shutdown
//! token (its drivers stop at their next pause, without writing anything). The next broker
//! uses the same store and the same replica id, over new links, and calls `recover`. The
//! first broker of a test does not call `recover`: on an empty store that would only start its
//! lease keeper, which gives the leases up when its shutdown token is cancelled, which a
//! crash would not do.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use flinkbroker_control::{CancelOptions, Controller, Limits, PythonSubmission, SqlSubmission};
use flinkbroker_model::job::{Job, JobId, JobState, PythonSpec, RuntimeMode};
use flinkbroker_store::SeaStore;
use flinkbroker_testkit::fakes::{FakeJobManager, FakeRunner, FakeSqlGateway, memory_store};

/// The longest any one wait of a test may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);
/// The replica id of every broker: a restart keeps its name.
pub(crate) const REPLICA: &str = "replica-a";

/// Limits with millisecond pacing, so that tests are fast; the cancel timeout is long, so that
/// only the JobManager decides when a cancel is over.
pub(crate) fn limits() -> Limits {
    Limits {
        heartbeat_interval: Duration::from_secs(1),
        poll_interval: Duration::from_millis(5),
        max_fetch_backoff: Duration::from_millis(5),
        cancel_timeout: LIMIT,
        progress_interval: Duration::from_millis(50),
        janitor_interval: Duration::from_secs(1),
        replica_poll_interval: Duration::from_millis(5),
        ..Limits::default()
    }
}

/// What outlives a broker: the database, the SQL Gateway, the JobManager and the runner.
pub(crate) struct World {
    pub(crate) store: Arc<SeaStore>,
    pub(crate) gateway: FakeSqlGateway,
    pub(crate) jobmanager: FakeJobManager,
    pub(crate) runner: FakeRunner,
}

impl World {
    /// An empty database and fakes without sessions, Flink jobs or submitters.
    pub(crate) async fn new() -> World {
        let jobmanager = FakeJobManager::new();
        World {
            store: memory_store().await,
            gateway: FakeSqlGateway::new(&jobmanager),
            jobmanager,
            runner: FakeRunner::new(),
        }
    }

    /// Starts a broker with the test limits (without `recover`).
    pub(crate) fn broker(&self) -> Broker {
        self.broker_with(limits())
    }

    /// Starts a broker with these limits (without `recover`).
    pub(crate) fn broker_with(&self, limits: Limits) -> Broker {
        let gateway = self.gateway.reconnect();
        let jobmanager = self.jobmanager.reconnect();
        let runner = self.runner.reconnect();
        let shutdown = CancellationToken::new();
        let controller = Controller::new(
            self.store.clone(),
            Arc::new(gateway.clone()),
            Arc::new(jobmanager.clone()),
            Arc::new(runner.clone()),
            limits,
            REPLICA.to_owned(),
            shutdown.clone(),
        );
        Broker {
            controller,
            shutdown,
            gateway,
            jobmanager,
            runner,
        }
    }

    /// Starts the broker after a crash: same store, same replica id, then `recover`.
    pub(crate) async fn restart(&self) -> Broker {
        let broker = self.broker();
        within("recover", broker.controller.recover())
            .await
            .expect("recover");
        broker
    }
}

/// One broker: a controller over its own links to the world's fakes.
pub(crate) struct Broker {
    pub(crate) controller: Arc<Controller>,
    shutdown: CancellationToken,
    gateway: FakeSqlGateway,
    jobmanager: FakeJobManager,
    runner: FakeRunner,
}

impl Broker {
    /// Kills the broker: nothing it does reaches the fakes any more, and its drivers stop.
    pub(crate) fn crash(self) {
        self.gateway.cut();
        self.jobmanager.cut();
        self.runner.cut();
        self.shutdown.cancel();
    }

    /// Shuts the broker down and waits for its tasks.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.controller.drain(LIMIT).await;
    }

    /// Submits a SQL script (streaming) as tenant `default`.
    pub(crate) async fn submit_sql(&self, script: &str) -> Job {
        self.submit_sql_as(script, RuntimeMode::Streaming).await
    }

    /// Submits a SQL script in a runtime mode as tenant `default`.
    pub(crate) async fn submit_sql_as(&self, script: &str, runtime_mode: RuntimeMode) -> Job {
        let submission = SqlSubmission {
            tenant: "default".into(),
            principal: "tester".into(),
            script: script.into(),
            runtime_mode,
            properties: BTreeMap::new(),
            request_id: None,
            labels: BTreeMap::new(),
            result_limits: Default::default(),
            restore: None,
            validate_first: false,
        };
        within("submit_sql", self.controller.submit_sql(submission))
            .await
            .expect("submit_sql")
    }

    /// Submits a Python program as tenant `default`.
    pub(crate) async fn submit_python(&self, program: PythonSpec) -> Job {
        let submission = PythonSubmission {
            tenant: "default".into(),
            principal: "tester".into(),
            program,
            request_id: None,
            labels: BTreeMap::new(),
        };
        within("submit_python", self.controller.submit_python(submission))
            .await
            .expect("submit_python")
    }

    /// Cancels a job (without a savepoint); returns CancelJob's answer.
    pub(crate) async fn cancel(&self, id: JobId) -> Job {
        within(
            "cancel_job",
            self.controller.cancel_job(id, CancelOptions::default()),
        )
        .await
        .expect("cancel_job")
    }

    /// Reads a job as GetJob does.
    pub(crate) async fn get(&self, id: JobId) -> Job {
        within("get_job", self.controller.get_job(id))
            .await
            .expect("get_job")
    }

    /// Waits (through WatchJob) until the job satisfies `done`; fails when it ends otherwise.
    pub(crate) async fn wait_for(&self, id: JobId, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        let mut watch = self.controller.watch_job(id).await.expect("watch_job");
        within(what, async {
            while let Some(job) = watch.recv().await {
                let job = job.expect("a watched job");
                if done(&job) {
                    return job;
                }
                if job.state.is_terminal() {
                    panic!("the job ended before {what}: {}", describe(&job));
                }
            }
            panic!("the watch ended before {what}");
        })
        .await
    }

    /// Waits until the job is in `state`.
    pub(crate) async fn wait_for_state(&self, id: JobId, state: JobState) -> Job {
        self.wait_for(id, state.as_str(), |job| job.state == state)
            .await
    }
}

/// Runs `future` to its end within [`LIMIT`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not happen within {LIMIT:?}"),
    }
}

/// A job's state, reason and history, for failure messages.
pub(crate) fn describe(job: &Job) -> String {
    let history: Vec<String> = job
        .history
        .iter()
        .map(|h| format!("{}: {}", h.state.as_str(), h.reason))
        .collect();
    format!(
        "{} ({}); history: {history:#?}",
        job.state.as_str(),
        job.state_reason
    )
}

/// Returns true when the job's history has an entry with exactly this reason.
pub(crate) fn has_reason(job: &Job, reason: &str) -> bool {
    job.history.iter().any(|h| h.reason == reason)
}

/// Returns true when the job's history has an entry whose reason starts with `prefix`.
pub(crate) fn has_reason_starting(job: &Job, prefix: &str) -> bool {
    job.history.iter().any(|h| h.reason.starts_with(prefix))
}

/// The states of a job's history, in order.
pub(crate) fn states(job: &Job) -> Vec<JobState> {
    job.history.iter().map(|h| h.state).collect()
}

/// A one-line inline Python program.
pub(crate) fn python_program() -> PythonSpec {
    PythonSpec {
        script: Some("print('hello from pyflink')".into()),
        script_url: None,
        entry_module: None,
        py_files: Vec::new(),
        py_archives: Vec::new(),
        py_requirements: None,
        program_args: Vec::new(),
        parallelism: Some(2),
        flink_configuration: BTreeMap::new(),
        inline_py_files: BTreeMap::new(),
        restore: None,
    }
}
