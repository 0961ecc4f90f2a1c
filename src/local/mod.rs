//! The local runner: runs the `flink run` argument vector as a child process on this host.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::job::JobId;
use crate::runner::{JobRunner, RunnerError, SubmitterSpec, SubmitterState};

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
    config: LocalRunnerConfig,
}

impl LocalRunner {
    /// Creates the runner.
    pub fn new(config: LocalRunnerConfig) -> Result<Self, RunnerError> {
        Ok(Self { config })
    }
}

#[async_trait]
impl JobRunner for LocalRunner {
    async fn start(&self, _spec: &SubmitterSpec) -> Result<(), RunnerError> {
        Err(RunnerError::Local(format!(
            "local runner under {} is being built",
            self.config.flink_home.display()
        )))
    }

    async fn state(&self, _job_id: JobId) -> Result<SubmitterState, RunnerError> {
        Ok(SubmitterState::Missing)
    }

    async fn output(&self, _job_id: JobId) -> Result<String, RunnerError> {
        Ok(String::new())
    }

    async fn delete(&self, _job_id: JobId) -> Result<(), RunnerError> {
        Ok(())
    }
}
