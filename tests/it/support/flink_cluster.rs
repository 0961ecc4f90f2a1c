//! A real Flink session cluster (one JobManager, one TaskManager) on free loopback ports, for
//! end-to-end tests.
//!
//! The cluster runs from the Flink distribution named by `FLINKBROKER_TEST_FLINK_HOME` (the
//! `pyflink` directory of a venv with `apache-flink` installed; `.ci/flink.sh` prepares one).
//! Without that variable [`FlinkCluster::start`] returns `None` and the test skips itself.
//! Everything the cluster writes (configuration, logs, pid files, temporary files) lives in a
//! private temporary directory removed when the cluster is dropped; the distribution itself is
//! only read, so one installation serves any number of clusters and other users alike.
//!
//! By default the cluster runs in the layout `deploy/` gives session clusters
//! ([`PythonJarLayout::InLib`]): the distribution's `lib/` plus its `opt/flink-python-*.jar`,
//! assembled as symlinks in the private directory and handed to the daemons as `FLINK_LIB_DIR`,
//! with Beam and pemja loaded parent-first. [`FlinkCluster::start_with`] can start the
//! distribution as shipped instead.
//!
//! Use from a test module:
//! ```ignore
//! use crate::support::flink_cluster::FlinkCluster;
//!
//! let Some(cluster) = FlinkCluster::shared().await else { return };
//! // cluster.rest_url, cluster.rest_address, cluster.flink_home, cluster.python
//! ```
#![allow(dead_code)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use flinkbroker_flink::jobmanager::RestJobManager;
use tempfile::TempDir;

use super::broker::{Options, TestBroker};

/// The variable naming the Flink distribution (`<venv>/lib/python3.X/site-packages/pyflink`).
pub(crate) const FLINK_HOME_VAR: &str = "FLINKBROKER_TEST_FLINK_HOME";
/// The variable naming the Python interpreter with PyFlink installed.
pub(crate) const PYTHON_VAR: &str = "FLINKBROKER_TEST_PYTHON";
/// Where Debian installs Java 17; used when `JAVA_HOME` is unset.
const DEBIAN_JAVA_HOME: &str = "/usr/lib/jvm/java-17-openjdk-amd64";
/// How long the cluster may take to come up (7 to 11 s on an idle 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the JVMs get to stop after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The JVM metric of the metaspace in use, in bytes.
const METASPACE_USED: &str = "Status.JVM.Memory.Metaspace.Used";

/// The JVM module flags Flink needs on Java 17, used when the distribution's `config.yaml`
/// cannot be read.
const DEFAULT_JAVA_OPTS: &str = "--add-exports=java.base/sun.net.util=ALL-UNNAMED \
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED \
--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED \
--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED \
--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED \
--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED \
--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED \
--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED \
--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED \
--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED \
--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED";

/// The class name prefixes a TaskManager loads from its own classpath rather than from a job's
/// jars (`classloader.parent-first-patterns.additional`), on top of Flink's defaults, which
/// already cover `org.apache.flink.`.
pub(crate) const PYTHON_PARENT_FIRST_PATTERNS: [&str; 2] = ["org.apache.beam.", "pemja."];

/// Where the cluster's JVMs find flink-python, the jar that runs a program's Python functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PythonJarLayout {
    /// flink-python on the daemons' classpath (`lib/`) and [`PYTHON_PARENT_FIRST_PATTERNS`]
    /// parent-first, so its classes are loaded once per TaskManager; `opt/` keeps the jar, as
    /// `flink run -py` requires. The layout of the session clusters in `deploy/`.
    InLib,
    /// The distribution as shipped: flink-python only in `opt/`, from where `flink run -py`
    /// ships it with every Python job, so each job's classloader loads Beam and pemja again,
    /// and a TaskManager's metaspace grows with every PyFlink job it ever ran.
    OptOnly,
}

/// A running JobManager and TaskManager; dropping it stops both and removes its files.
pub(crate) struct FlinkCluster {
    /// The JobManager REST base URL, e.g. `http://127.0.0.1:38123` (no trailing slash).
    pub rest_url: String,
    /// The JobManager REST address for `flink run -m`, e.g. `127.0.0.1:38123`.
    pub rest_address: String,
    pub rest_port: u16,
    pub jobmanager_rpc_port: u16,
    pub blob_port: u16,
    pub taskmanager_rpc_port: u16,
    /// The Flink distribution (`bin/flink` is the launcher).
    pub flink_home: PathBuf,
    /// Where the daemons find flink-python.
    pub layout: PythonJarLayout,
    /// The daemons' `lib/` (`FLINK_LIB_DIR`): the private one of [`PythonJarLayout::InLib`], or
    /// the distribution's.
    pub lib_dir: PathBuf,
    /// The Python interpreter with PyFlink (for `-pyexec`/`-pyclientexec`).
    pub python: PathBuf,
    /// The private configuration directory (`config.yaml`, log4j files).
    pub conf_dir: PathBuf,
    /// Where the JobManager and TaskManager write their logs (`*.log`, `*.out`).
    pub log_dir: PathBuf,
    /// The environment every Flink command of this cluster runs with.
    env: Vec<(String, OsString)>,
    pid_dir: PathBuf,
    root: Option<TempDir>,
}

/// Ports picked for one cluster.
struct Ports {
    rest: u16,
    jobmanager_rpc: u16,
    blob: u16,
    taskmanager_rpc: u16,
}

impl FlinkCluster {
    /// Starts a cluster of its own in the [`PythonJarLayout::InLib`] layout, or returns None
    /// (saying so on stderr) when `FLINKBROKER_TEST_FLINK_HOME` is unset. Panics, with the
    /// cluster's log tails, when the cluster does not come up.
    pub(crate) async fn start() -> Option<FlinkCluster> {
        Self::start_with(PythonJarLayout::InLib).await
    }

    /// Starts a cluster of its own in the given layout; otherwise as [`FlinkCluster::start`].
    pub(crate) async fn start_with(layout: PythonJarLayout) -> Option<FlinkCluster> {
        let Some(flink_home) = std::env::var_os(FLINK_HOME_VAR) else {
            eprintln!("skipping: {FLINK_HOME_VAR} is not set");
            return None;
        };
        let flink_home = std::fs::canonicalize(PathBuf::from(&flink_home))
            .unwrap_or_else(|error| panic!("{FLINK_HOME_VAR}: {}: {error}", flink_home.display()));
        assert!(
            flink_home.join("bin/jobmanager.sh").is_file(),
            "{FLINK_HOME_VAR}: {} has no bin/jobmanager.sh",
            flink_home.display()
        );
        let python = python_for(&flink_home);
        let root = tempfile::Builder::new()
            .prefix("flinkbroker-flink-")
            .tempdir()
            .expect("create the cluster's temporary directory");
        let ports = free_ports();
        let cluster = Self::configure(flink_home, python, root, &ports, layout);
        let started = Instant::now();
        cluster.launch().await;
        cluster.wait_until_ready().await;
        eprintln!(
            "flink cluster ready at {} in {:.1}s ({layout:?}; logs in {})",
            cluster.rest_url,
            started.elapsed().as_secs_f64(),
            cluster.log_dir.display()
        );
        Some(cluster)
    }

    /// Returns the cluster shared by the tests of this test binary that run at the same time,
    /// starting one if none runs; the last test to drop its handle stops it. Tests sharing a
    /// cluster must use distinct Flink job ids.
    pub(crate) async fn shared() -> Option<Arc<FlinkCluster>> {
        static SHARED: tokio::sync::Mutex<Weak<FlinkCluster>> =
            tokio::sync::Mutex::const_new(Weak::new());
        if std::env::var_os(FLINK_HOME_VAR).is_none() {
            eprintln!("skipping: {FLINK_HOME_VAR} is not set");
            return None;
        }
        let mut shared = SHARED.lock().await;
        if let Some(cluster) = shared.upgrade() {
            return Some(cluster);
        }
        let cluster = Arc::new(Self::start().await?);
        *shared = Arc::downgrade(&cluster);
        Some(cluster)
    }

    fn configure(
        flink_home: PathBuf,
        python: PathBuf,
        root: TempDir,
        ports: &Ports,
        layout: PythonJarLayout,
    ) -> Self {
        let base = root.path().to_path_buf();
        let conf_dir = base.join("conf");
        let log_dir = base.join("log");
        let pid_dir = base.join("pid");
        let tmp_dir = base.join("tmp");
        for dir in [
            &conf_dir,
            &log_dir,
            &pid_dir,
            &tmp_dir,
            &tmp_dir.join("web-upload"),
        ] {
            std::fs::create_dir_all(dir).expect("create a cluster directory");
        }
        for entry in std::fs::read_dir(flink_home.join("conf")).expect("read FLINK_HOME/conf") {
            let path = entry.expect("list FLINK_HOME/conf").path();
            let is_log4j = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("log4j") && name.ends_with(".properties"));
            if is_log4j && let Some(name) = path.file_name() {
                std::fs::copy(&path, conf_dir.join(name)).expect("copy a log4j file");
            }
        }
        let java_opts = format!(
            "{} -Djava.io.tmpdir={}",
            distribution_java_opts(&flink_home),
            tmp_dir.display()
        );
        let lib_dir = match layout {
            PythonJarLayout::InLib => {
                let lib_dir = base.join("lib");
                link_lib_with_python_jar(&flink_home, &lib_dir);
                lib_dir
            }
            PythonJarLayout::OptOnly => flink_home.join("lib"),
        };
        std::fs::write(
            conf_dir.join("config.yaml"),
            config_yaml(ports, &java_opts, &tmp_dir, &log_dir, &pid_dir, layout),
        )
        .expect("write config.yaml");

        let mut env: Vec<(String, OsString)> = vec![
            ("FLINK_HOME".into(), flink_home.clone().into()),
            ("FLINK_CONF_DIR".into(), conf_dir.clone().into()),
            ("FLINK_LOG_DIR".into(), log_dir.clone().into()),
            ("FLINK_PID_DIR".into(), pid_dir.clone().into()),
            ("TMPDIR".into(), tmp_dir.clone().into()),
            // bin/config.sh takes FLINK_LIB_DIR from the environment when it is set (PyFlink's
            // own launcher relies on that), so the distribution stays as installed.
            ("FLINK_LIB_DIR".into(), lib_dir.clone().into()),
        ];
        if std::env::var_os("JAVA_HOME").is_none() && Path::new(DEBIAN_JAVA_HOME).is_dir() {
            env.push(("JAVA_HOME".into(), DEBIAN_JAVA_HOME.into()));
        }
        // The TaskManager's Python workers run `python` from PATH: PyFlink's venv comes first.
        if let Some(bin) = python.parent().filter(|bin| !bin.as_os_str().is_empty()) {
            let mut path = OsString::from(bin);
            if let Some(inherited) = std::env::var_os("PATH") {
                path.push(":");
                path.push(inherited);
            }
            env.push(("PATH".into(), path));
        }
        let rest_address = format!("127.0.0.1:{}", ports.rest);
        Self {
            rest_url: format!("http://{rest_address}"),
            rest_address,
            rest_port: ports.rest,
            jobmanager_rpc_port: ports.jobmanager_rpc,
            blob_port: ports.blob,
            taskmanager_rpc_port: ports.taskmanager_rpc,
            flink_home,
            layout,
            lib_dir,
            python,
            conf_dir,
            log_dir,
            env,
            pid_dir,
            root: Some(root),
        }
    }

    /// Returns the environment every Flink command of this cluster needs (FLINK_HOME,
    /// FLINK_CONF_DIR, FLINK_LOG_DIR, FLINK_PID_DIR, TMPDIR, FLINK_LIB_DIR, PATH, JAVA_HOME when
    /// defaulted).
    pub(crate) fn env(&self) -> impl Iterator<Item = (&str, &OsString)> {
        self.env.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// Returns the `flink` launcher of the distribution.
    pub(crate) fn flink_executable(&self) -> PathBuf {
        self.flink_home.join("bin/flink")
    }

    /// Returns the Python interpreter as a string, as `LocalRunnerConfig` wants it.
    pub(crate) fn python_executable(&self) -> String {
        self.python.to_string_lossy().into_owned()
    }

    /// Starts a broker whose local runner submits to this cluster (`flink run` from its
    /// distribution, with its Python) and which follows the jobs on its JobManager, polled every
    /// 250 ms.
    pub(crate) async fn start_broker(&self) -> TestBroker {
        let flink_home = self.flink_home.display().to_string();
        let python = self.python_executable();
        let flags = [
            "--flink-home",
            flink_home.as_str(),
            "--python-executable",
            python.as_str(),
            "--jobmanager-url",
            self.rest_url.as_str(),
            "--poll-interval",
            "250ms",
        ];
        let jobmanager = RestJobManager::new(&self.rest_url, Duration::from_secs(10))
            .expect("jobmanager client");
        TestBroker::start_options(Options {
            flags: &flags,
            jobmanager: Some(Arc::new(jobmanager)),
            ..Options::default()
        })
        .await
    }

    /// Builds a command of the distribution's `bin/` with this cluster's environment.
    pub(crate) fn bin_command(&self, script: &str) -> std::process::Command {
        let mut command = std::process::Command::new(self.flink_home.join("bin").join(script));
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command.stdin(Stdio::null());
        command
    }

    async fn launch(&self) {
        // Both daemons start at once: the TaskManager retries until the JobManager answers.
        let mut starts = Vec::new();
        for script in ["jobmanager.sh", "taskmanager.sh"] {
            let out = std::fs::File::create(self.log_dir.join(format!("{script}-start.txt")))
                .expect("create a start log");
            let err = out.try_clone().expect("clone a start log");
            let mut command = tokio::process::Command::from(self.bin_command(script));
            command.arg("start").stdout(out).stderr(err);
            starts.push((script, command.status()));
        }
        for (script, status) in starts {
            let status = status
                .await
                .unwrap_or_else(|error| panic!("cannot run {script} start: {error}"));
            if !status.success() {
                panic!("{script} start failed ({status})\n{}", self.log_tails());
            }
        }
    }

    async fn wait_until_ready(&self) {
        flinkbroker::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/overview", self.rest_url);
        loop {
            let last = match http.get(&url).send().await {
                Ok(response) => match response.json::<serde_json::Value>().await {
                    Ok(overview) if overview["taskmanagers"].as_u64() == Some(1) => return,
                    Ok(overview) => overview.to_string(),
                    Err(error) => error.to_string(),
                },
                Err(error) => error.to_string(),
            };
            // The daemons record their JVMs' pids at once; a JVM that died will not come back.
            let dead: Vec<u32> = self
                .pids()
                .into_iter()
                .filter(|pid| !is_alive(*pid))
                .collect();
            if !dead.is_empty() {
                panic!(
                    "flink process(es) {dead:?} exited during start\n{}",
                    self.log_tails()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "flink cluster not ready within {START_TIMEOUT:?} (last /overview: {last})\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Reads `GET /jobs/<id>`: the job's JSON, or None when the JobManager does not know it.
    pub(crate) async fn job(&self, flink_job_id: &str) -> Option<serde_json::Value> {
        flinkbroker::install_crypto_provider();
        let response = reqwest::Client::new()
            .get(format!("{}/jobs/{flink_job_id}", self.rest_url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("GET /jobs/<id>");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET /jobs/{flink_job_id}: {}",
            response.status()
        );
        Some(response.json().await.expect("job json"))
    }

    /// Polls `GET /jobs/<id>` until the job's state is one of `states`, returning it; panics
    /// after `limit` with the last state seen.
    pub(crate) async fn wait_for_job_state(
        &self,
        flink_job_id: &str,
        states: &[&str],
        limit: Duration,
    ) -> String {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(job) = self.job(flink_job_id).await {
                let state = job["state"].as_str().unwrap_or_default().to_string();
                if states.contains(&state.as_str()) {
                    return state;
                }
                last = Some(state);
            }
            if Instant::now() > deadline {
                panic!(
                    "flink job {flink_job_id} not in {states:?} within {limit:?} (last: {last:?})\n{}",
                    self.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sends `GET <path>` to the JobManager's REST API; panics when it does not answer.
    async fn rest_get(&self, path: &str) -> (String, reqwest::Response) {
        flinkbroker::install_crypto_provider();
        let url = format!("{}{path}", self.rest_url);
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        (url, response)
    }

    /// Reads `GET <path>` of the JobManager's REST API as JSON; panics on any failure.
    pub(crate) async fn rest_json(&self, path: &str) -> serde_json::Value {
        let (url, response) = self.rest_get(path).await;
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response
            .json()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
    }

    /// Reads `GET <path>` like [`FlinkCluster::rest_json`], but answers None (and says why on
    /// stderr) when the JobManager answers with an error status: for what it cannot tell yet,
    /// such as the checkpoint statistics of a job still being restored (Flink 2.1 answers 500
    /// for a moment then). Panics when the JobManager does not answer at all.
    pub(crate) async fn rest_json_when_ready(&self, path: &str) -> Option<serde_json::Value> {
        let (url, response) = self.rest_get(path).await;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("GET {url}: {status} (asked again): {body}");
            return None;
        }
        Some(
            response
                .json()
                .await
                .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}")),
        )
    }

    /// Returns the entry of the cluster's one TaskManager in `GET /taskmanagers`.
    pub(crate) async fn taskmanager(&self) -> serde_json::Value {
        let overview = self.rest_json("/taskmanagers").await;
        match overview["taskmanagers"].as_array().map(Vec::as_slice) {
            Some([taskmanager]) => taskmanager.clone(),
            _ => panic!("expected one TaskManager in GET /taskmanagers: {overview}"),
        }
    }

    /// Waits until every slot of the TaskManager is free again, that is until no task of any
    /// job is left on it; panics after `limit`.
    pub(crate) async fn wait_until_taskmanager_idle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let taskmanager = self.taskmanager().await;
            let free = taskmanager["freeSlots"].as_u64();
            if free.is_some() && free == taskmanager["slotsNumber"].as_u64() {
                return;
            }
            if Instant::now() > deadline {
                panic!("the TaskManager still has busy slots after {limit:?}: {taskmanager}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Returns the TaskManager's JVM metaspace in use, in bytes (the metric
    /// `Status.JVM.Memory.Metaspace.Used` of `GET /taskmanagers/<id>/metrics`), as sampled
    /// after this call began.
    pub(crate) async fn taskmanager_metaspace_used(&self) -> u64 {
        let id = self.taskmanager().await["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("GET /taskmanagers: a TaskManager without an id"));
        self.fresh_metric(&format!("/taskmanagers/{id}/metrics"), METASPACE_USED)
            .await
    }

    /// Returns the JobManager's JVM metaspace in use, in bytes, as sampled after this call
    /// began.
    pub(crate) async fn jobmanager_metaspace_used(&self) -> u64 {
        self.fresh_metric("/jobmanager/metrics", METASPACE_USED)
            .await
    }

    /// Returns one metric of a JVM (`path` is its metrics endpoint) from a sample taken after
    /// this call began. The JobManager answers from a cache it refreshes in the background, at
    /// most every `metrics.fetcher.update-interval`; the process's CPU time, which changes in
    /// every sample, tells when the cache has been refreshed. The first change may come from a
    /// refresh already under way when this call began, so it waits for a second one.
    async fn fresh_metric(&self, path: &str, metric: &str) -> u64 {
        const WITNESS: &str = "Status.JVM.CPU.Time";
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut witnesses: Vec<String> = Vec::new();
        loop {
            let sample = self
                .rest_json(&format!("{path}?get={metric},{WITNESS}"))
                .await;
            let value_of = |name: &str| {
                sample.as_array().and_then(|metrics| {
                    metrics
                        .iter()
                        .find(|entry| entry["id"] == name)
                        .and_then(|entry| entry["value"].as_str())
                        .map(str::to_owned)
                })
            };
            if let (Some(value), Some(witness)) = (value_of(metric), value_of(WITNESS)) {
                if witnesses.last() != Some(&witness) {
                    witnesses.push(witness);
                }
                // The first reading, then two refreshes.
                if witnesses.len() >= 3 {
                    return value.parse().unwrap_or_else(|error| {
                        panic!("GET {path}: {metric} is not a count: {value:?}: {error}")
                    });
                }
            }
            if Instant::now() > deadline {
                panic!("GET {path}: no fresh {metric} within 30 s (last: {sample})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Returns the last lines of every log and `.out` file of the cluster, for failure messages.
    pub(crate) fn log_tails(&self) -> String {
        let mut text = String::new();
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else {
            return text;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        for path in paths {
            let contents = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = contents.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let _ = writeln!(text, "--- {} (last {} lines)", path.display(), tail.len());
            for line in tail {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    /// Tells whether a log or `.out` file of the cluster whose name contains `file_name_part`
    /// (`taskexecutor`, `standalonesession`, or "" for any) contains `text`.
    pub(crate) fn logs_contain(&self, file_name_part: &str, text: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else {
            return false;
        };
        entries
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().contains(file_name_part))
            .any(|entry| {
                std::fs::read_to_string(entry.path()).is_ok_and(|contents| contents.contains(text))
            })
    }

    /// Returns the pids recorded in the pid directory.
    fn pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.pid_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "pid"))
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .flat_map(|contents| {
                contents
                    .lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    fn stop(&mut self) {
        let pids = self.pids();
        signal(&pids, "-TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while pids.iter().any(|pid| is_alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let survivors: Vec<u32> = pids.into_iter().filter(|pid| is_alive(*pid)).collect();
        if !survivors.is_empty() {
            eprintln!("flink cluster: killing {survivors:?} after {STOP_TIMEOUT:?}");
            signal(&survivors, "-KILL");
        }
    }
}

impl Drop for FlinkCluster {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("FLINKBROKER_TEST_KEEP_FLINK_LOGS").is_some()
            && let Some(root) = self.root.take()
        {
            eprintln!("flink cluster files kept in {}", root.keep().display());
        }
    }
}

/// Returns the interpreter from `FLINKBROKER_TEST_PYTHON`, else the venv's own
/// (`FLINK_HOME/../../../../bin/python`), else `python3` from PATH.
fn python_for(flink_home: &Path) -> PathBuf {
    if let Some(python) = std::env::var_os(PYTHON_VAR) {
        return PathBuf::from(python);
    }
    // A venv's interpreter is a symlink: its path is kept, never canonicalized.
    let venv_python = flink_home
        .ancestors()
        .nth(4)
        .map(|venv| venv.join("bin/python"));
    match venv_python {
        Some(python) if python.exists() => python,
        _ => PathBuf::from("python3"),
    }
}

/// Fills `lib_dir` with symlinks to every entry of the distribution's `lib/` and to its one
/// `opt/flink-python-*.jar`.
fn link_lib_with_python_jar(flink_home: &Path, lib_dir: &Path) {
    std::fs::create_dir_all(lib_dir).expect("create the cluster's lib directory");
    let entries = |dir: &Path| -> Vec<PathBuf> {
        let listing =
            std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        let mut paths: Vec<PathBuf> = listing
            .map(|entry| {
                entry
                    .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
                    .path()
            })
            .collect();
        paths.sort();
        paths
    };
    let python_jars: Vec<PathBuf> = entries(&flink_home.join("opt"))
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("flink-python") && name.ends_with(".jar"))
        })
        .collect();
    assert!(
        python_jars.len() == 1,
        "{FLINK_HOME_VAR}: expected one opt/flink-python-*.jar in {}, found {python_jars:?}",
        flink_home.display()
    );
    for target in entries(&flink_home.join("lib"))
        .into_iter()
        .chain(python_jars)
    {
        let Some(name) = target.file_name() else {
            continue;
        };
        let link = lib_dir.join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|error| {
            panic!("link {} to {}: {error}", link.display(), target.display())
        });
    }
}

/// Picks four distinct free loopback ports, holding all listeners until all are chosen.
fn free_ports() -> Ports {
    let listeners: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local address").port())
        .collect();
    Ports {
        rest: ports[0],
        jobmanager_rpc: ports[1],
        blob: ports[2],
        taskmanager_rpc: ports[3],
    }
}

/// Reads the JVM flags of `env.java.opts.all` from the distribution's `config.yaml`.
fn distribution_java_opts(flink_home: &Path) -> String {
    let config = std::fs::read_to_string(flink_home.join("conf/config.yaml")).unwrap_or_default();
    config
        .lines()
        .map(str::trim)
        .find_map(|line| {
            line.strip_prefix("all:")
                .map(str::trim)
                .filter(|opts| opts.contains("--add-opens"))
        })
        .unwrap_or(DEFAULT_JAVA_OPTS)
        .to_string()
}

/// Writes the cluster's `config.yaml` (Flink 1.19+ format): loopback only, the given ports,
/// private temporary, log and pid directories, metrics refreshed every 250 ms, and for
/// [`PythonJarLayout::InLib`] the parent-first patterns of flink-python's dependencies.
fn config_yaml(
    ports: &Ports,
    java_opts: &str,
    tmp_dir: &Path,
    log_dir: &Path,
    pid_dir: &Path,
    layout: PythonJarLayout,
) -> String {
    let quoted = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let path = |path: &Path| quoted(&path.to_string_lossy());
    let classloader = match layout {
        PythonJarLayout::InLib => format!(
            "classloader:\n  parent-first-patterns:\n    additional: [{}]\n",
            PYTHON_PARENT_FIRST_PATTERNS
                .iter()
                .map(|pattern| quoted(pattern))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        PythonJarLayout::OptOnly => String::new(),
    };
    format!(
        "jobmanager:
  bind-host: 127.0.0.1
  rpc:
    address: 127.0.0.1
    port: {jobmanager_rpc}
  memory:
    process:
      size: 1024m
  execution:
    failover-strategy: region
taskmanager:
  bind-host: 127.0.0.1
  host: 127.0.0.1
  rpc:
    port: {taskmanager_rpc}
  numberOfTaskSlots: 4
  memory:
    process:
      size: 1536m
rest:
  address: 127.0.0.1
  bind-address: 127.0.0.1
  port: {rest}
blob:
  server:
    port: {blob}
parallelism:
  default: 1
execution:
  target: remote
io:
  tmp:
    dirs: {tmp}
web:
  tmpdir: {tmp}
  upload:
    dir: {upload}
env:
  java:
    opts:
      all: {java_opts}
  log:
    dir: {log}
  pid:
    dir: {pid}
metrics:
  fetcher:
    update-interval: 250
{classloader}",
        jobmanager_rpc = ports.jobmanager_rpc,
        taskmanager_rpc = ports.taskmanager_rpc,
        rest = ports.rest,
        blob = ports.blob,
        tmp = path(tmp_dir),
        upload = path(&tmp_dir.join("web-upload")),
        java_opts = quoted(java_opts),
        log = path(log_dir),
        pid = path(pid_dir),
    )
}

/// Returns true while a process exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
