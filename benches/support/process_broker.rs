//! The real `flinkbroker` binary (the bench profile's build of it) run as a child process on
//! a free loopback port, with its own SQLite database, so that its memory and CPU time can be
//! read from `/proc/<pid>` apart from the client's.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long the broker may take to report SERVING.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long the broker may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A broker process and the directory holding its database and log.
pub(crate) struct ProcessBroker {
    pub addr: SocketAddr,
    pub pid: u32,
    /// The broker's SQLite database URL.
    pub database_url: String,
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ProcessBroker {
    /// Starts `flinkbroker serve` against `gateway_url` (which also serves the JobManager
    /// API), with `extra` flags, and waits until its health check says SERVING.
    pub(crate) async fn start(gateway_url: &str, extra: &[&str]) -> ProcessBroker {
        ProcessBroker::start_on(gateway_url, None, extra).await
    }

    /// Starts the broker like `start`, on `database_url` (a SQLite file of its own when None).
    pub(crate) async fn start_on(
        gateway_url: &str,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> ProcessBroker {
        let dir = tempfile::tempdir().expect("broker dir");
        let database_url = database_url.map_or_else(
            || {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("broker.db").display()
                )
            },
            str::to_owned,
        );
        let work_dir = dir.path().join("submitters");
        let log_path = dir.path().join("broker.log");
        let addr = free_port();
        let listen = addr.to_string();
        let work_dir = work_dir.display().to_string();
        let mut args: Vec<&str> = vec![
            "serve",
            "--listen",
            &listen,
            "--database-url",
            &database_url,
            "--sql-gateway-url",
            gateway_url,
            "--jobmanager-url",
            gateway_url,
            "--submitter-work-dir",
            &work_dir,
        ];
        args.extend_from_slice(extra);
        let log = std::fs::File::create(&log_path).expect("broker log file");
        let child = Command::new(broker_binary())
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the flinkbroker binary");
        let pid = child.id().expect("broker pid");
        let mut broker = ProcessBroker {
            addr,
            pid,
            database_url,
            child,
            log_path,
            _dir: dir,
        };
        broker.wait_serving().await;
        broker
    }

    async fn wait_serving(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the broker exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(channel) = Channel::from_shared(format!("http://{}", self.addr))
                .expect("uri")
                .connect()
                .await
            {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving) {
                    return;
                }
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "the broker did not serve within {START_LIMIT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a new HTTP/2 connection to the broker.
    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the broker")
    }

    /// The broker's resident memory (VmRSS), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        status_kib(&format!("/proc/{}/status", self.pid), "VmRSS:").unwrap_or(0)
    }

    /// The broker's peak resident memory (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        status_kib(&format!("/proc/{}/status", self.pid), "VmHWM:").unwrap_or(0)
    }

    /// CPU time the broker used so far (user + system).
    pub(crate) fn cpu_time(&self) -> Duration {
        process_cpu_time(&format!("/proc/{}/stat", self.pid)).unwrap_or_default()
    }

    /// The last lines of the broker's log.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stops the broker with SIGTERM (killing it if it does not stop in time).
    pub(crate) async fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.pid).expect("pid");
        // SAFETY: signals only the child this value started, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(STOP_LIMIT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// Kills the broker with SIGKILL (no shutdown: its leases stay held) and reaps it.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The broker binary: `BENCH_FLINKBROKER_BIN` when set (a copy that a later build cannot
/// replace mid-run, or another revision's build), else this build's.
pub(crate) fn broker_binary() -> String {
    std::env::var("BENCH_FLINKBROKER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_flinkbroker").to_owned())
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A `Vm*:` figure of a `/proc/<pid>/status` file, in KiB.
pub(crate) fn status_kib(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of a `/proc/<pid>/stat` file.
pub(crate) fn process_cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: the fields after it start past its closing paren.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// The 1-minute load average (other processes share the cores).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// A setting from the environment variable `name`, or `default`.
pub(crate) fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
