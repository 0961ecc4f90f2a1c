//! The `flinkbroker serve` binary as a child process: started with its standard output a pipe
//! read line by line, or read back from the file it logs to; and the address a log line says
//! it listens on.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flinkbroker_proto::job_service_client::JobServiceClient;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tonic::transport::Channel;

use super::sql_gateway_standin::Standin;

/// Longest wait for a log line, or for the binary to exit after SIGTERM.
const LIMIT: Duration = Duration::from_secs(30);

/// The `flinkbroker serve` binary on a fresh SQLite database against the stand-in, its standard
/// output a pipe read line by line; killed when dropped.
pub(crate) struct PipedBroker {
    child: Child,
    /// Where it serves gRPC.
    pub address: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    /// Counts the lines read so far, for waiting on one.
    read: watch::Receiver<usize>,
    _work_dir: tempfile::TempDir,
}

impl PipedBroker {
    /// Starts the binary against the stand-in with `flags` and environment `variables`, in an
    /// environment otherwise without `NO_COLOR`, `RUST_LOG`, log format or OTLP endpoint; waits
    /// until it logs the address it serves on, which `address_in` finds in a line.
    pub(crate) async fn start(
        standin: &Standin,
        flags: &[&str],
        variables: &[(&str, &str)],
        address_in: fn(&str) -> Option<SocketAddr>,
    ) -> PipedBroker {
        let work_dir = tempfile::tempdir().expect("work dir");
        let database_url = format!(
            "sqlite://{}?mode=rwc",
            work_dir.path().join("broker.db").display()
        );
        let submitters = work_dir.path().join("submitters").display().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flinkbroker"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .args(["--database-url", &database_url])
            .args(["--sql-gateway-url", &standin.base_url])
            .args(["--jobmanager-url", &standin.base_url])
            .args(["--submitter-work-dir", &submitters])
            .args(["--poll-interval", "50ms", "--heartbeat-interval", "1s"])
            .args(flags)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .env_remove("FLINKBROKER_LOG_FORMAT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("FLINKBROKER_OTLP_ENDPOINT")
            .envs(variables.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the flinkbroker binary");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (counted, read) = watch::channel(0);
        let kept = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut lines = kept.lock().expect("lines");
                lines.push(line);
                counted.send_replace(lines.len());
            }
        });
        let mut broker = PipedBroker {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            read,
            _work_dir: work_dir,
        };
        let serving = broker
            .wait_for_line("the line naming the address served", |line| {
                address_in(line).is_some()
            })
            .await;
        broker.address = address_in(&serving).expect("address");
        broker
    }

    /// Waits (at most `LIMIT`) for a line that `wanted` accepts; returns it.
    pub(crate) async fn wait_for_line(
        &mut self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let found = tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(line) = self
                    .lines
                    .lock()
                    .expect("lines")
                    .iter()
                    .find(|line| wanted(line))
                {
                    return Some(line.clone());
                }
                // An error: the writer is gone, the broker's output ended.
                if self.read.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no {what} in the log: {:#?}", self.lines()),
        }
    }

    /// Every line read so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    pub(crate) async fn client(&self) -> JobServiceClient<Channel> {
        JobServiceClient::connect(format!("http://{}", self.address))
            .await
            .expect("connect")
    }

    /// Sends SIGTERM, waits for a clean exit and for the end of its output; returns every line
    /// it wrote.
    pub(crate) async fn terminate(mut self) -> Vec<String> {
        let pid = self.child.id().expect("broker pid") as libc::pid_t;
        // SAFETY: kill only sends a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("broker exits after SIGTERM")
            .expect("broker status");
        assert!(status.success(), "{status}: {:#?}", self.lines());
        self.wait_for_line("\"flinkbroker stopped\"", |line| {
            line.contains("flinkbroker stopped")
        })
        .await;
        self.lines()
    }
}

/// The address in the JSON line `{"message":"flinkbroker serving","listen":"…",…}`.
pub(crate) fn json_address(line: &str) -> Option<SocketAddr> {
    let line: Json = serde_json::from_str(line).ok()?;
    if line["message"] != "flinkbroker serving" {
        return None;
    }
    line["listen"].as_str()?.parse().ok()
}

/// The address in the text line `… flinkbroker serving listen=…`.
pub(crate) fn text_address(line: &str) -> Option<SocketAddr> {
    listen_address(line, "flinkbroker serving")?.parse().ok()
}

/// The address in a text log line `… {message} … listen=…`, as written.
pub(crate) fn listen_address<'a>(line: &'a str, message: &str) -> Option<&'a str> {
    if !line.contains(message) {
        return None;
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("listen="))
}

/// The text of a log file, with any terminal colour codes removed.
pub(crate) fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
