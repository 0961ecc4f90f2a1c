//! The local runner: runs the `flink run` argument vector as a child process on this host.
//!
//! Each submission gets a private directory, `<work_dir>/<job id>/` (mode 0700), holding
//! `program/` (the program's files, the `-py`/`-pyfs` directory and the child's working
//! directory) and `log/` (the `flink` client's log, unless `FLINK_LOG_DIR` is set). The child
//! is started without a shell, in a process group of its own; its stdout and stderr land in
//! one bounded tail. A child's group is stopped (SIGTERM, then SIGKILL) when the child is
//! deleted and when the runner is dropped. The child is killed when the runtime shuts down
//! and, on Linux, when the broker dies (a parent-death signal).

mod output;
mod process;
mod program;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Client;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    ArgvContext, JobRunner, MAX_OUTPUT_BYTES, RunnerError, SubmitterSpec, SubmitterState,
    flink_run_argv,
};
use flinkbroker_model::job::JobId;
use output::{OutputTail, SharedTail};
pub use program::{LOG_DIR, MAX_DOWNLOAD_BYTES, PROGRAM_DIR};

/// How long a download may take before it is abandoned.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to a download's server may take.
const DOWNLOAD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the output of an exited child is still read; a grandchild may hold its pipes open.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a child may take to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long `delete` waits for a stopped child to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how the local runner runs submitters.
#[derive(Debug, Clone)]
pub struct LocalRunnerConfig {
    /// The Flink distribution; `bin/flink` is the launcher.
    pub flink_home: PathBuf,
    /// The JobManager REST address for `-m`.
    pub jobmanager_address: String,
    /// The interpreter for `-pyexec`/`-pyclientexec`.
    pub python_executable: Option<String>,
    /// Each submission's private directory is created below this one.
    pub work_dir: PathBuf,
}

/// Runs submitters as local processes.
pub struct LocalRunner {
    flink_home: PathBuf,
    flink_executable: String,
    jobmanager_address: String,
    python_executable: Option<String>,
    work_dir: PathBuf,
    http: Client,
    /// One slot per job; a slot's lock is held while its submitter starts or is deleted.
    jobs: Mutex<HashMap<JobId, Slot>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Submission>>>;

impl LocalRunner {
    /// Creates the runner; relative paths are resolved against the current directory now,
    /// since each child runs in its own directory.
    ///
    /// Nothing is created or checked on disk yet, so a broker that never runs a Python job
    /// needs no Flink distribution.
    pub fn new(config: LocalRunnerConfig) -> Result<Self, RunnerError> {
        let absolute = |path: &Path, what: &str| {
            std::path::absolute(path).map_err(|error| {
                RunnerError::Local(format!("cannot resolve {what} {}: {error}", path.display()))
            })
        };
        let flink_home = absolute(&config.flink_home, "flink home")?;
        let work_dir = absolute(&config.work_dir, "work directory")?;
        let launcher = flink_home.join("bin").join("flink");
        let flink_executable = launcher
            .to_str()
            .ok_or_else(|| {
                RunnerError::Local(format!("flink home {} is not utf-8", flink_home.display()))
            })?
            .to_owned();
        if !launcher.is_file() {
            warn!(launcher = %launcher.display(), "flink launcher not found; python jobs will fail to start");
        }
        // reqwest panics when it builds a rustls client without a process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(DOWNLOAD_CONNECT_TIMEOUT)
            .timeout(DOWNLOAD_TIMEOUT)
            .build()
            .map_err(|error| {
                RunnerError::Local(format!("cannot build the download client: {error}"))
            })?;
        Ok(Self {
            flink_home,
            flink_executable,
            jobmanager_address: config.jobmanager_address,
            python_executable: config.python_executable,
            work_dir,
            http,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the private directory of a job's submission.
    pub fn job_dir(&self, job_id: JobId) -> PathBuf {
        self.work_dir.join(job_id.to_string())
    }

    /// Returns the directory holding a job's program files (`-py` and `-pyfs` point here).
    pub fn program_dir(&self, job_id: JobId) -> PathBuf {
        self.job_dir(job_id).join(PROGRAM_DIR)
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Slot>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, job_id: JobId) -> Option<Slot> {
        self.jobs().get(&job_id).cloned()
    }

    fn slot_or_insert(&self, job_id: JobId) -> Slot {
        Arc::clone(self.jobs().entry(job_id).or_default())
    }

    fn is_current(&self, job_id: JobId, slot: &Slot) -> bool {
        self.jobs()
            .get(&job_id)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
    }

    /// Prepares the job's directory and spawns `flink run`.
    async fn launch(&self, spec: &SubmitterSpec) -> Result<Submission, RunnerError> {
        let job_id = spec.job_id;
        let job_dir = self.job_dir(job_id);
        let launched = program::prepare(&job_dir, &spec.program, &self.http)
            .await
            .and_then(|()| self.spawn(spec, &job_dir));
        match launched {
            Ok(submission) => Ok(submission),
            Err(error) => {
                warn!(job_id = %job_id, %error, "submitter not started");
                if let Err(cleanup) = program::remove_dir(&job_dir).await {
                    warn!(job_id = %job_id, error = %cleanup, "cannot remove the directory of a submitter that did not start");
                }
                Err(error)
            }
        }
    }

    fn spawn(&self, spec: &SubmitterSpec, job_dir: &Path) -> Result<Submission, RunnerError> {
        let job_id = spec.job_id;
        let program_dir = job_dir.join(PROGRAM_DIR);
        let program_dir_text = program_dir.to_str().ok_or_else(|| {
            RunnerError::Local(format!(
                "work directory {} is not utf-8",
                program_dir.display()
            ))
        })?;
        let argv = flink_run_argv(
            spec,
            &ArgvContext {
                flink_executable: self.flink_executable.clone(),
                jobmanager_address: self.jobmanager_address.clone(),
                program_dir: program_dir_text.to_owned(),
                python_executable: self.python_executable.clone(),
            },
        );
        let Some((launcher, arguments)) = argv.split_first() else {
            return Err(RunnerError::Local("empty flink run command".into()));
        };
        let mut command = Command::new(launcher);
        command
            .args(arguments)
            .current_dir(&program_dir)
            .env("FLINK_HOME", &self.flink_home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The distribution's own log directory is often not writable by the broker.
        if std::env::var_os("FLINK_LOG_DIR").is_none() {
            command.env("FLINK_LOG_DIR", job_dir.join(LOG_DIR));
        }
        process::tie_to_broker(&mut command);
        // The parent-death signal follows the thread that spawns: this runs on the thread
        // polling `start`, a runtime worker, not on a `spawn_blocking` thread.
        let mut child = command
            .spawn()
            .map_err(|error| RunnerError::Local(format!("cannot run {launcher}: {error}")))?;
        let pid = child.id();
        let tail: SharedTail = Arc::new(Mutex::new(OutputTail::new(MAX_OUTPUT_BYTES)));
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(output::capture(
                job_id,
                "stdout",
                stdout,
                Arc::clone(&tail),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(output::capture(
                job_id,
                "stderr",
                stderr,
                Arc::clone(&tail),
            )));
        }
        let stop = CancellationToken::new();
        let (outcome_sender, outcome) = watch::channel(None);
        tokio::spawn(supervise(
            job_id,
            child,
            readers,
            stop.clone(),
            outcome_sender,
        ));
        info!(
            job_id = %job_id,
            flink_job_id = %spec.flink_job_id,
            pid = ?pid,
            dir = %job_dir.display(),
            "submitter started"
        );
        Ok(Submission {
            tail,
            outcome,
            stop,
        })
    }
}

#[async_trait]
impl JobRunner for LocalRunner {
    async fn start(&self, spec: &SubmitterSpec) -> Result<(), RunnerError> {
        loop {
            let slot = self.slot_or_insert(spec.job_id);
            let mut submission = slot.lock().await;
            // A delete that held this slot took it out of the map: start in a fresh one.
            if !self.is_current(spec.job_id, &slot) {
                continue;
            }
            if submission.is_some() {
                return Ok(());
            }
            *submission = Some(self.launch(spec).await?);
            return Ok(());
        }
    }

    async fn state(&self, job_id: JobId) -> Result<SubmitterState, RunnerError> {
        let Some(slot) = self.slot(job_id) else {
            return Ok(SubmitterState::Missing);
        };
        // A held slot is being started (or deleted).
        let Ok(submission) = slot.try_lock() else {
            return Ok(SubmitterState::Pending);
        };
        Ok(submission
            .as_ref()
            .map_or(SubmitterState::Missing, Submission::state))
    }

    async fn output(&self, job_id: JobId) -> Result<String, RunnerError> {
        let Some(slot) = self.slot(job_id) else {
            return Ok(String::new());
        };
        let Ok(submission) = slot.try_lock() else {
            return Ok(String::new());
        };
        Ok(submission
            .as_ref()
            .map(|submission| output::read(&submission.tail))
            .unwrap_or_default())
    }

    async fn delete(&self, job_id: JobId) -> Result<(), RunnerError> {
        let slot = self.slot_or_insert(job_id);
        let mut submission = slot.lock().await;
        if let Some(running) = submission.take() {
            running.terminate(job_id).await;
        }
        let removed = program::remove_dir(&self.job_dir(job_id)).await;
        {
            let mut jobs = self.jobs();
            if jobs
                .get(&job_id)
                .is_some_and(|current| Arc::ptr_eq(current, &slot))
            {
                jobs.remove(&job_id);
            }
        }
        drop(submission);
        removed?;
        info!(job_id = %job_id, "submitter deleted");
        Ok(())
    }
}

/// How a child ended.
#[derive(Debug, Clone)]
enum Outcome {
    Exited(ExitStatus),
    Killed,
    Lost(String),
}

/// A started child: its output and how it ended.
struct Submission {
    tail: SharedTail,
    /// None while the child runs.
    outcome: watch::Receiver<Option<Outcome>>,
    /// Cancelled to kill the child.
    stop: CancellationToken,
}

impl Submission {
    fn state(&self) -> SubmitterState {
        match &*self.outcome.borrow() {
            None => SubmitterState::Running,
            Some(Outcome::Exited(status)) if status.success() => SubmitterState::Succeeded,
            Some(Outcome::Exited(status)) => match (status.code(), status.signal()) {
                (Some(code), _) => SubmitterState::Failed {
                    exit_code: Some(code),
                    reason: format!("flink run exited with code {code}"),
                },
                (None, Some(signal)) => SubmitterState::Failed {
                    exit_code: None,
                    reason: format!("flink run was killed by signal {signal}"),
                },
                (None, None) => SubmitterState::Failed {
                    exit_code: None,
                    reason: format!("flink run ended: {status}"),
                },
            },
            Some(Outcome::Killed) => SubmitterState::Failed {
                exit_code: None,
                reason: "flink run was killed".into(),
            },
            Some(Outcome::Lost(reason)) => SubmitterState::Failed {
                exit_code: None,
                reason: reason.clone(),
            },
        }
    }

    /// Stops the child (if it still runs) and waits until it has been reaped.
    async fn terminate(&self, job_id: JobId) {
        self.stop.cancel();
        let mut outcome = self.outcome.clone();
        let reaped = tokio::time::timeout(KILL_TIMEOUT, outcome.wait_for(Option::is_some)).await;
        if reaped.is_err() {
            warn!(job_id = %job_id, "submitter not reaped after being stopped");
        }
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        // The supervisor stops the child; if the runtime is gone, kill_on_drop kills it.
        self.stop.cancel();
    }
}

/// Waits for the child to exit (then for its output to be read) or stops it when `stop` is
/// cancelled, and publishes how it ended.
async fn supervise(
    job_id: JobId,
    mut child: Child,
    readers: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    outcome: watch::Sender<Option<Outcome>>,
) {
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Outcome::Exited(status),
            Err(error) => Outcome::Lost(format!("cannot wait for flink run: {error}")),
        },
        () = stop.cancelled() => {
            process::stop(job_id, &mut child, TERM_GRACE).await;
            Outcome::Killed
        }
    };
    // Output written before the exit is part of the result: read it before reporting the end.
    finish_readers(job_id, readers, matches!(ended, Outcome::Killed)).await;
    match &ended {
        Outcome::Exited(status) if status.success() => {
            info!(job_id = %job_id, "flink run exited with code 0");
        }
        Outcome::Exited(status) => {
            warn!(job_id = %job_id, exit_code = ?status.code(), signal = ?status.signal(), "flink run failed");
        }
        Outcome::Killed => info!(job_id = %job_id, "submitter killed"),
        Outcome::Lost(reason) => warn!(job_id = %job_id, %reason, "submitter lost"),
    }
    outcome.send_replace(Some(ended));
}

/// Lets the output readers reach end of file (within [`OUTPUT_DRAIN_TIMEOUT`]), or aborts
/// them at once when the child was killed.
async fn finish_readers(job_id: JobId, readers: Vec<JoinHandle<()>>, killed: bool) {
    if killed {
        for reader in &readers {
            reader.abort();
        }
        return;
    }
    let aborts: Vec<_> = readers.iter().map(JoinHandle::abort_handle).collect();
    let drained =
        tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, futures::future::join_all(readers)).await;
    if drained.is_err() {
        warn!(job_id = %job_id, "submitter output still open after exit; no longer read");
        for abort in aborts {
            abort.abort();
        }
    }
}
