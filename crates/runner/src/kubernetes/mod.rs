//! The Kubernetes runner: a ConfigMap with the program and a batch/v1 Job running the
//! `flink run` argument vector in the submitter image.
//!
//! Both objects are named after the broker's job id ([`job_name`]), so starting twice adopts
//! what the first start created, and the ConfigMap is owned by the Job, so the garbage
//! collector removes it with the Job (after `ttlSecondsAfterFinished`, or on deletion).

mod resources;
mod status;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures::AsyncReadExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tracing::{debug, info, warn};

use crate::{JobRunner, MAX_OUTPUT_BYTES, RunnerError, SubmitterSpec, SubmitterState};
use flinkbroker_model::job::JobId;

pub use resources::job_name;

use resources::{
    LEGACY_POD_JOB_NAME_LABEL, POD_JOB_NAME_LABEL, build_config_map, build_job,
    owner_reference_patch,
};
use status::{decode_log, failed_exit_code, log_container, newest_pod, submitter_state, tail};

/// The line counts asked of the log, in turn, until the tail fits under
/// [`MAX_OUTPUT_BYTES`]: `limitBytes` keeps the head of what `tailLines` selects, so a tail that
/// hits the limit is asked again with fewer lines to keep its end.
const LOG_TAIL_LINES: [i64; 3] = [500, 100, 20];

/// How submitter Jobs are shaped.
#[derive(Debug, Clone)]
pub struct KubernetesRunnerConfig {
    /// The namespace of the submitter Jobs and ConfigMaps.
    pub namespace: String,
    /// The service account of the submitter pods.
    pub service_account: String,
    /// The image of the submitter pods (Flink with Python and PyFlink).
    pub image: String,
    /// The launcher inside the image.
    pub flink_executable: String,
    /// The JobManager REST address for `-m`.
    pub jobmanager_address: String,
    /// The interpreter for `-pyexec`/`-pyclientexec` (and the init container's `python3`).
    pub python_executable: Option<String>,
    /// The longest a submitter pod may run (`activeDeadlineSeconds`; zero for no limit).
    pub active_deadline: Duration,
    /// How long a finished submitter Job is kept (`ttlSecondsAfterFinished`).
    pub ttl_after_finished: Duration,
    /// The CPU request of each container of a submitter pod.
    pub cpu_request: String,
    /// The CPU limit of each container of a submitter pod.
    pub cpu_limit: String,
    /// The memory request of each container of a submitter pod.
    pub memory_request: String,
    /// The memory limit of each container of a submitter pod.
    pub memory_limit: String,
}

/// Runs submitters as Kubernetes Jobs.
pub struct KubernetesRunner {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    pods: Api<Pod>,
    config: KubernetesRunnerConfig,
}

impl KubernetesRunner {
    /// Creates the runner over a client; every object lives in `config.namespace`.
    pub fn new(client: kube::Client, config: KubernetesRunnerConfig) -> Self {
        Self {
            jobs: Api::namespaced(client.clone(), &config.namespace),
            config_maps: Api::namespaced(client.clone(), &config.namespace),
            pods: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Connects with the kubeconfig file given, or with the in-cluster or default
    /// configuration.
    pub async fn connect(
        config: KubernetesRunnerConfig,
        kubeconfig: Option<&Path>,
    ) -> Result<Self, RunnerError> {
        let client = match kubeconfig {
            None => kube::Client::try_default().await.map_err(|e| {
                RunnerError::Kubernetes(format!("cannot configure the client: {e}"))
            })?,
            Some(path) => {
                let cannot_load = |e: &dyn std::fmt::Display| {
                    RunnerError::Kubernetes(format!(
                        "cannot load kubeconfig {}: {e}",
                        path.display()
                    ))
                };
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| cannot_load(&e))?;
                let client_config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| cannot_load(&e))?;
                kube::Client::try_from(client_config).map_err(|e| cannot_load(&e))?
            }
        };
        Ok(Self::new(client, config))
    }

    /// Creates the ConfigMap, or adopts the one a previous start created.
    async fn create_config_map(&self, spec: &SubmitterSpec, name: &str) -> Result<(), RunnerError> {
        let config_map = build_config_map(spec, &self.config);
        match self
            .config_maps
            .create(&PostParams::default(), &config_map)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                debug!(job_id = %spec.job_id, config_map = name, "adopting the existing configmap");
                Ok(())
            }
            Err(error) => Err(self.error("create configmap", name, error)),
        }
    }

    /// Creates the Job, or reads the one a previous start created; returns its uid.
    async fn create_job(&self, spec: &SubmitterSpec, name: &str) -> Result<String, RunnerError> {
        let job = build_job(spec, &self.config);
        let job = match self.jobs.create(&PostParams::default(), &job).await {
            Ok(job) => {
                info!(job_id = %spec.job_id, flink_job_id = %spec.flink_job_id, job = name, "submitter job created");
                job
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                info!(job_id = %spec.job_id, job = name, "adopting the existing submitter job");
                self.jobs
                    .get(name)
                    .await
                    .map_err(|e| self.error("get job", name, e))?
            }
            Err(error) => return Err(self.error("create job", name, error)),
        };
        job.metadata.uid.ok_or_else(|| {
            RunnerError::Kubernetes(format!(
                "job {name} in namespace {} has no uid",
                self.config.namespace
            ))
        })
    }

    /// Returns the newest pod of a Job, found by the Job controller's label (or the legacy one).
    async fn newest_pod(&self, name: &str) -> Result<Option<Pod>, RunnerError> {
        for label in [POD_JOB_NAME_LABEL, LEGACY_POD_JOB_NAME_LABEL] {
            let selector = format!("{label}={name}");
            let pods = self
                .pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| self.error("list pods of job", name, e))?;
            if let Some(pod) = newest_pod(pods.items) {
                return Ok(Some(pod));
            }
        }
        Ok(None)
    }

    /// Reads the end of a container's log; a container that has not started has none.
    async fn log_tail(
        &self,
        pod: &str,
        container: &str,
        tail_lines: i64,
    ) -> Result<Vec<u8>, RunnerError> {
        let params = LogParams {
            container: Some(container.to_string()),
            limit_bytes: i64::try_from(MAX_OUTPUT_BYTES).ok(),
            tail_lines: Some(tail_lines),
            ..LogParams::default()
        };
        let mut reader = match self.pods.log_stream(pod, &params).await {
            Ok(reader) => reader,
            // The API answers 400 while the container is waiting to start.
            Err(kube::Error::Api(status)) if status.code == 400 => {
                debug!(pod, container, message = %status.message, "no log yet");
                return Ok(Vec::new());
            }
            Err(error) => return Err(self.error("read the log of pod", pod, error)),
        };
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.map_err(|e| {
            RunnerError::Kubernetes(format!(
                "cannot read the log of pod {pod} in namespace {}: {e}",
                self.config.namespace
            ))
        })?;
        Ok(bytes)
    }

    fn error(&self, action: &str, name: &str, error: kube::Error) -> RunnerError {
        kubernetes_error(action, name, &self.config.namespace, error)
    }
}

/// Describes a failed call: what was attempted on which object, and the API's reason and
/// message when the API answered.
fn kubernetes_error(action: &str, name: &str, namespace: &str, error: kube::Error) -> RunnerError {
    let cause = match error {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                "failure".to_string()
            } else {
                reason_words(&status.reason)
            };
            let code = if status.code == 0 {
                String::new()
            } else {
                format!(" ({})", status.code)
            };
            if status.message.is_empty() {
                format!("{reason}{code}")
            } else {
                format!("{reason}{code}: {}", status.message)
            }
        }
        other => other.to_string(),
    };
    RunnerError::Kubernetes(format!(
        "cannot {action} {name} in namespace {namespace}: {cause}"
    ))
}

/// Spells an API reason (`AlreadyExists`) as lowercase words (`already exists`).
fn reason_words(reason: &str) -> String {
    let mut words = String::with_capacity(reason.len() + 4);
    for (index, c) in reason.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

#[async_trait]
impl JobRunner for KubernetesRunner {
    async fn start(&self, spec: &SubmitterSpec) -> Result<(), RunnerError> {
        let name = job_name(spec.job_id);
        // The ConfigMap goes first: the pod cannot start without its volume.
        self.create_config_map(spec, &name).await?;
        let uid = self.create_job(spec, &name).await?;
        self.config_maps
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(owner_reference_patch(&name, &uid)),
            )
            .await
            .map_err(|e| self.error("set the owner of configmap", &name, e))?;
        Ok(())
    }

    async fn state(&self, job_id: JobId) -> Result<SubmitterState, RunnerError> {
        let name = job_name(job_id);
        let job = match self.jobs.get(&name).await {
            Ok(job) => job,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                return Ok(SubmitterState::Missing);
            }
            Err(error) => return Err(self.error("get job", &name, error)),
        };
        match submitter_state(&job) {
            SubmitterState::Failed { reason, .. } => {
                // The exit code is a detail: the pod may already be gone (a deadline deletes
                // it), and the Job's condition says enough.
                let exit_code = match self.newest_pod(&name).await {
                    Ok(pod) => pod.as_ref().and_then(failed_exit_code),
                    Err(error) => {
                        warn!(%job_id, %error, "cannot read the failed submitter's pod");
                        None
                    }
                };
                Ok(SubmitterState::Failed { exit_code, reason })
            }
            state => Ok(state),
        }
    }

    async fn output(&self, job_id: JobId) -> Result<String, RunnerError> {
        let name = job_name(job_id);
        let Some(pod) = self.newest_pod(&name).await? else {
            return Ok(String::new());
        };
        let Some(pod_name) = pod.metadata.name.as_deref() else {
            return Ok(String::new());
        };
        let container = log_container(&pod);
        let mut bytes = Vec::new();
        for tail_lines in LOG_TAIL_LINES {
            bytes = self.log_tail(pod_name, container, tail_lines).await?;
            if bytes.len() < MAX_OUTPUT_BYTES {
                break;
            }
        }
        let text = decode_log(bytes);
        Ok(tail(&text, MAX_OUTPUT_BYTES).to_string())
    }

    async fn delete(&self, job_id: JobId) -> Result<(), RunnerError> {
        let name = job_name(job_id);
        // Background propagation deletes the pods too; the owner reference would take the
        // ConfigMap as well, but it is deleted directly in case it was never set.
        match self.jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => info!(%job_id, job = %name, "submitter job deleted"),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(self.error("delete job", &name, error)),
        }
        match self
            .config_maps
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(self.error("delete configmap", &name, error)),
        }
        Ok(())
    }
}
