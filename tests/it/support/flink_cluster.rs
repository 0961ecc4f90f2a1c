//! A real Flink session cluster (one JobManager, one TaskManager) on free loopback ports, for
//! end-to-end tests.
//!
//! The cluster runs from the Flink distribution named by `FLINKBROKER_TEST_FLINK_HOME` (the
//! `pyflink` directory of a venv with `apache-flink` installed; `.ci/flink.sh` prepares one).
//! Without that variable [`FlinkCluster::start`] returns `None` and the test skips itself.
//! Everything the cluster writes (configuration, logs, pid files, temporary files) lives in a
//! private temporary directory removed when the cluster is dropped.
//!
//! Use from a test file:
//! ```ignore
//! #[path = "support/flink_cluster.rs"]
//! mod flink_cluster;
//!
//! let Some(cluster) = flink_cluster::FlinkCluster::shared().await else { return };
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

use tempfile::TempDir;

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
    /// Starts a cluster of its own, or returns None (saying so on stderr) when
    /// `FLINKBROKER_TEST_FLINK_HOME` is unset. Panics, with the cluster's log tails, when the
    /// cluster does not come up.
    pub(crate) async fn start() -> Option<FlinkCluster> {
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
        let cluster = Self::configure(flink_home, python, root, &ports);
        let started = Instant::now();
        cluster.launch().await;
        cluster.wait_until_ready().await;
        eprintln!(
            "flink cluster ready at {} in {:.1}s (logs in {})",
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

    fn configure(flink_home: PathBuf, python: PathBuf, root: TempDir, ports: &Ports) -> Self {
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
        std::fs::write(
            conf_dir.join("config.yaml"),
            config_yaml(ports, &java_opts, &tmp_dir, &log_dir, &pid_dir),
        )
        .expect("write config.yaml");

        let mut env: Vec<(String, OsString)> = vec![
            ("FLINK_HOME".into(), flink_home.clone().into()),
            ("FLINK_CONF_DIR".into(), conf_dir.clone().into()),
            ("FLINK_LOG_DIR".into(), log_dir.clone().into()),
            ("FLINK_PID_DIR".into(), pid_dir.clone().into()),
            ("TMPDIR".into(), tmp_dir.clone().into()),
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
            python,
            conf_dir,
            log_dir,
            env,
            pid_dir,
            root: Some(root),
        }
    }

    /// Returns the environment every Flink command of this cluster needs (FLINK_HOME,
    /// FLINK_CONF_DIR, FLINK_LOG_DIR, FLINK_PID_DIR, TMPDIR, PATH, JAVA_HOME when defaulted).
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
/// private temporary, log and pid directories.
fn config_yaml(
    ports: &Ports,
    java_opts: &str,
    tmp_dir: &Path,
    log_dir: &Path,
    pid_dir: &Path,
) -> String {
    let quoted = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let path = |path: &Path| quoted(&path.to_string_lossy());
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
",
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
