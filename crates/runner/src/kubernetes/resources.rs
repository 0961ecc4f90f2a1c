//! Pure builders of the submitter's Kubernetes objects: the ConfigMap holding the program and
//! the batch/v1 Job running `flink run`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;

use super::KubernetesRunnerConfig;
use crate::{ArgvContext, SubmitterSpec, flink_run_argv, program_files, script_path};
use flinkbroker_model::job::JobId;

/// The prefix of every submitter Job and ConfigMap name.
const JOB_NAME_PREFIX: &str = "flinkbroker-py-";
/// The container running `flink run`.
pub(super) const SUBMITTER_CONTAINER: &str = "submitter";
/// The init container preparing the program directory of a script given by URL.
pub(super) const FETCH_CONTAINER: &str = "fetch-program";
/// Where the submitter finds the program.
const PROGRAM_DIR: &str = "/opt/flinkbroker/job";
/// Where the init container finds the ConfigMap's files when the program directory is an
/// emptyDir.
const CONFIG_DIR: &str = "/opt/flinkbroker/config";
/// The writable scratch directory (the root filesystem is read-only).
const TMP_DIR: &str = "/tmp";
/// The `flink` user of the flink-python image.
const SUBMITTER_UID: i64 = 9999;
/// The largest script the init container accepts from a URL, in bytes.
const MAX_SCRIPT_BYTES: u64 = 10 * 1024 * 1024;

/// `app.kubernetes.io/name` of every submitter object.
const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/managed-by` of every submitter object.
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The broker's job id of a submitter object.
const JOB_ID_LABEL: &str = "flinkbroker.io/job-id";
/// Label naming the tenant of the broker job (token file tenants are valid label values).
const TENANT_LABEL: &str = "flinkbroker.io/tenant";
/// The Flink job id the submitter submits under.
const FLINK_JOB_ID_ANNOTATION: &str = "flinkbroker.io/flink-job-id";
/// The label the Job controller puts on its pods (Kubernetes 1.27 and later).
pub(super) const POD_JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The label older Job controllers put on their pods.
pub(super) const LEGACY_POD_JOB_NAME_LABEL: &str = "job-name";

const PROGRAM_VOLUME: &str = "program";
const PROGRAM_FILES_VOLUME: &str = "program-files";
const TMP_VOLUME: &str = "tmp";

/// The program the init container runs with `python3 -c`.
///
/// Its arguments: the URL, the program directory, the script's path inside it, the size limit,
/// the directory of the ConfigMap's files, then the relative paths of those files. Redirects are
/// refused, because the URL was checked against an allowlist and a redirect would leave it.
const FETCH_PROGRAM_PY: &str = r#"import os, shutil, sys, urllib.error, urllib.parse, urllib.request

url, program_dir, script, limit, config_dir = sys.argv[1:6]
limit = int(limit)
if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
    sys.exit("refusing to download " + url + ": only http and https are allowed")


def target(relative):
    path = os.path.join(program_dir, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


for relative in sys.argv[6:]:
    shutil.copyfile(os.path.join(config_dir, relative), target(relative))


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(
            req.full_url, code, "redirect to " + newurl + " refused", headers, fp
        )


opener = urllib.request.build_opener(RefuseRedirects)
try:
    with opener.open(url, timeout=60) as response:
        data = response.read(limit + 1)
except (urllib.error.URLError, OSError) as error:
    sys.exit("cannot download " + url + ": " + str(error))
if len(data) > limit:
    sys.exit("the script at " + url + " is larger than " + str(limit) + " bytes")
with open(target(script), "wb") as out:
    out.write(data)
print("downloaded " + url + " to " + script + " (" + str(len(data)) + " bytes)")
"#;

/// Returns the name of the Job and ConfigMap of a broker job: `flinkbroker-py-` and the id's
/// 32 hex digits, a valid DNS-1123 label of 47 characters.
pub fn job_name(job_id: JobId) -> String {
    format!("{JOB_NAME_PREFIX}{}", job_id.0.simple())
}

/// Returns the labels of every object made for a broker job.
fn labels(spec: &SubmitterSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), "flinkbroker-submitter".to_string()),
        (MANAGED_BY_LABEL.to_string(), "flinkbroker".to_string()),
        (JOB_ID_LABEL.to_string(), spec.job_id.to_string()),
        (TENANT_LABEL.to_string(), spec.tenant.clone()),
    ])
}

/// Returns the ConfigMap key of the program file at `index` of [`program_files`].
///
/// ConfigMap keys cannot hold `/`, so the keys are flat and the volume's items map each key
/// back to the file's relative path.
fn config_map_key(index: usize) -> String {
    format!("file-{index}")
}

/// Builds the ConfigMap holding the program's files under flat keys (see [`config_map_key`]).
pub(super) fn build_config_map(spec: &SubmitterSpec, config: &KubernetesRunnerConfig) -> ConfigMap {
    let data = program_files(&spec.program)
        .into_iter()
        .enumerate()
        .map(|(index, (_, contents))| (config_map_key(index), contents))
        .collect();
    ConfigMap {
        metadata: metadata(spec, config),
        data: Some(data),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// Builds the Job running [`flink_run_argv`] as the container's command.
pub(super) fn build_job(spec: &SubmitterSpec, config: &KubernetesRunnerConfig) -> Job {
    let argv = flink_run_argv(
        spec,
        &ArgvContext {
            flink_executable: config.flink_executable.clone(),
            jobmanager_address: config.jobmanager_address.clone(),
            program_dir: PROGRAM_DIR.to_string(),
            python_executable: config.python_executable.clone(),
        },
    );
    let name = job_name(spec.job_id);
    let items = config_map_items(spec);
    let program_files_source = ConfigMapVolumeSource {
        name: name.clone(),
        items: (!items.is_empty()).then_some(items),
        ..ConfigMapVolumeSource::default()
    };
    let tmp = Volume {
        name: TMP_VOLUME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let submitter_mounts = vec![
        mount(PROGRAM_VOLUME, PROGRAM_DIR, true),
        mount(TMP_VOLUME, TMP_DIR, false),
    ];

    let (volumes, init_containers) = match &spec.program.script_url {
        Some(url) => {
            let volumes = vec![
                Volume {
                    name: PROGRAM_VOLUME.to_string(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
                Volume {
                    name: PROGRAM_FILES_VOLUME.to_string(),
                    config_map: Some(program_files_source),
                    ..Volume::default()
                },
                tmp,
            ];
            let fetch = Container {
                name: FETCH_CONTAINER.to_string(),
                command: Some(fetch_program_argv(spec, config, url)),
                volume_mounts: Some(vec![
                    mount(PROGRAM_FILES_VOLUME, CONFIG_DIR, true),
                    mount(PROGRAM_VOLUME, PROGRAM_DIR, false),
                    mount(TMP_VOLUME, TMP_DIR, false),
                ]),
                ..base_container(config)
            };
            (volumes, Some(vec![fetch]))
        }
        None => {
            let volumes = vec![
                Volume {
                    name: PROGRAM_VOLUME.to_string(),
                    config_map: Some(program_files_source),
                    ..Volume::default()
                },
                tmp,
            ];
            (volumes, None)
        }
    };

    let submitter = Container {
        name: SUBMITTER_CONTAINER.to_string(),
        command: Some(argv),
        volume_mounts: Some(submitter_mounts),
        ..base_container(config)
    };

    let mut metadata = metadata(spec, config);
    metadata.annotations = Some(BTreeMap::from([(
        FLINK_JOB_ID_ANNOTATION.to_string(),
        spec.flink_job_id.clone(),
    )]));

    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(seconds_i32(config.ttl_after_finished)),
            active_deadline_seconds: positive_seconds(config.active_deadline),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(spec)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    service_account_name: Some(config.service_account.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(SUBMITTER_UID),
                        run_as_group: Some(SUBMITTER_UID),
                        fs_group: Some(SUBMITTER_UID),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    init_containers,
                    containers: vec![submitter],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Returns the init container's command: `python3 -c` [`FETCH_PROGRAM_PY`] and its arguments.
fn fetch_program_argv(
    spec: &SubmitterSpec,
    config: &KubernetesRunnerConfig,
    url: &str,
) -> Vec<String> {
    let python = config
        .python_executable
        .clone()
        .unwrap_or_else(|| "python3".to_string());
    let mut argv = vec![
        python,
        "-c".to_string(),
        FETCH_PROGRAM_PY.to_string(),
        url.to_string(),
        PROGRAM_DIR.to_string(),
        script_path(&spec.program),
        MAX_SCRIPT_BYTES.to_string(),
        CONFIG_DIR.to_string(),
    ];
    argv.extend(
        program_files(&spec.program)
            .into_iter()
            .map(|(path, _)| path),
    );
    argv
}

/// Returns the merge patch that makes the Job (`name`, `uid`) the owner of its ConfigMap, so
/// the garbage collector removes both together.
///
/// The reference has no `blockOwnerDeletion`, which would need the `jobs/finalizers`
/// permission.
pub(super) fn owner_reference_patch(job_name: &str, job_uid: &str) -> serde_json::Value {
    let owner = OwnerReference {
        api_version: "batch/v1".to_string(),
        kind: "Job".to_string(),
        name: job_name.to_string(),
        uid: job_uid.to_string(),
        controller: Some(false),
        block_owner_deletion: None,
    };
    json!({ "metadata": { "ownerReferences": [owner] } })
}

fn metadata(spec: &SubmitterSpec, config: &KubernetesRunnerConfig) -> ObjectMeta {
    ObjectMeta {
        name: Some(job_name(spec.job_id)),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels(spec)),
        ..ObjectMeta::default()
    }
}

fn config_map_items(spec: &SubmitterSpec) -> Vec<KeyToPath> {
    program_files(&spec.program)
        .into_iter()
        .enumerate()
        .map(|(index, (path, _))| KeyToPath {
            key: config_map_key(index),
            path,
            mode: None,
        })
        .collect()
}

/// Returns a container with what the submitter and the init container share.
fn base_container(config: &KubernetesRunnerConfig) -> Container {
    Container {
        image: Some(config.image.clone()),
        env: Some(vec![env("TMPDIR", TMP_DIR), env("FLINK_LOG_DIR", TMP_DIR)]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(config.cpu_request.clone())),
                (
                    "memory".to_string(),
                    Quantity(config.memory_request.clone()),
                ),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(config.cpu_limit.clone())),
                ("memory".to_string(), Quantity(config.memory_limit.clone())),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SUBMITTER_UID),
            run_as_group: Some(SUBMITTER_UID),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        // The end of the log becomes the termination message when the container fails.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        ..SeccompProfile::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn seconds_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// Returns the seconds of a deadline; the API refuses 0, which therefore means no deadline.
fn positive_seconds(duration: Duration) -> Option<i64> {
    let seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
    (seconds > 0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use flinkbroker_model::job::PythonSpec;

    fn config() -> KubernetesRunnerConfig {
        KubernetesRunnerConfig {
            namespace: "flinkbroker".into(),
            service_account: "flinkbroker-submitter".into(),
            image: "flinkbroker/flink-python:1.20.3".into(),
            flink_executable: "/opt/flink/bin/flink".into(),
            jobmanager_address: "flink-jobmanager:8081".into(),
            python_executable: Some("python3".into()),
            active_deadline: Duration::from_secs(600),
            ttl_after_finished: Duration::from_secs(3600),
            cpu_request: "250m".into(),
            cpu_limit: "1".into(),
            memory_request: "512Mi".into(),
            memory_limit: "1Gi".into(),
        }
    }

    fn job_id() -> JobId {
        JobId(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
    }

    fn inline_spec() -> SubmitterSpec {
        SubmitterSpec {
            job_id: job_id(),
            tenant: "recsys".into(),
            flink_job_id: "fedcba9876543210fedcba9876543210".into(),
            program: PythonSpec {
                script: Some("print('hi')".into()),
                script_url: None,
                entry_module: None,
                py_files: Vec::new(),
                py_archives: Vec::new(),
                py_requirements: None,
                program_args: vec!["--date".into(), "2026-11-23; rm -rf /".into()],
                parallelism: None,
                flink_configuration: BTreeMap::new(),
                inline_py_files: BTreeMap::new(),
                restore: None,
            },
            restore_arguments: Vec::new(),
        }
    }

    fn url_spec() -> SubmitterSpec {
        let mut spec = inline_spec();
        spec.program.script = None;
        spec.program.script_url = Some("https://scripts.example.com/recs/main.py".into());
        spec.program.entry_module = Some("recs.jobs.main".into());
        spec.program.py_requirements = Some("numpy==1.26.4\n".into());
        spec.program
            .inline_py_files
            .insert("helpers.py".into(), "X = 1".into());
        spec
    }

    fn pod_spec(job: &Job) -> &PodSpec {
        job.spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .expect("pod spec")
    }

    fn is_dns_1123_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn job_name_is_a_deterministic_dns_label() {
        let name = job_name(job_id());
        assert_eq!(name, "flinkbroker-py-0123456789abcdef0123456789abcdef");
        assert_eq!(job_name(job_id()), name);
        for _ in 0..100 {
            let random = job_name(JobId::new_random());
            assert!(is_dns_1123_label(&random), "{random}");
            assert_eq!(random.len(), 47);
        }
        assert_ne!(job_name(JobId::new_random()), name);
    }

    #[test]
    fn job_and_config_map_share_name_namespace_and_labels() {
        let config_map = build_config_map(&inline_spec(), &config());
        let job = build_job(&inline_spec(), &config());
        let expected_labels = BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "flinkbroker-submitter".to_string(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "flinkbroker".to_string(),
            ),
            (
                "flinkbroker.io/job-id".to_string(),
                "01234567-89ab-cdef-0123-456789abcdef".to_string(),
            ),
            ("flinkbroker.io/tenant".to_string(), "recsys".to_string()),
        ]);
        for metadata in [&config_map.metadata, &job.metadata] {
            assert_eq!(
                metadata.name.as_deref(),
                Some("flinkbroker-py-0123456789abcdef0123456789abcdef")
            );
            assert_eq!(metadata.namespace.as_deref(), Some("flinkbroker"));
            assert_eq!(metadata.labels.as_ref(), Some(&expected_labels));
        }
        let template_labels = job
            .spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|metadata| metadata.labels.as_ref());
        assert_eq!(template_labels, Some(&expected_labels));
        assert_eq!(
            job.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(FLINK_JOB_ID_ANNOTATION))
                .map(String::as_str),
            Some("fedcba9876543210fedcba9876543210")
        );
    }

    #[test]
    fn job_never_retries_and_carries_ttl_and_deadline() {
        let job = build_job(&inline_spec(), &config());
        let spec = job.spec.as_ref().expect("job spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        assert_eq!(spec.selector, None);
        let pod = pod_spec(&job);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("flinkbroker-submitter")
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));

        let mut no_deadline = config();
        no_deadline.active_deadline = Duration::ZERO;
        no_deadline.ttl_after_finished = Duration::from_secs(u64::MAX);
        let job = build_job(&inline_spec(), &no_deadline);
        let spec = job.spec.as_ref().expect("job spec");
        assert_eq!(spec.active_deadline_seconds, None);
        assert_eq!(spec.ttl_seconds_after_finished, Some(i32::MAX));
    }

    #[test]
    fn container_requests_and_limits_come_from_config() {
        let job = build_job(&inline_spec(), &config());
        let container = &pod_spec(&job).containers[0];
        let resources = container.resources.as_ref().expect("resources");
        let quantity = |map: &Option<BTreeMap<String, Quantity>>, key: &str| {
            map.as_ref()
                .and_then(|m| m.get(key))
                .map(|q| q.0.clone())
                .expect("quantity")
        };
        assert_eq!(quantity(&resources.requests, "cpu"), "250m");
        assert_eq!(quantity(&resources.requests, "memory"), "512Mi");
        assert_eq!(quantity(&resources.limits, "cpu"), "1");
        assert_eq!(quantity(&resources.limits, "memory"), "1Gi");
        assert_eq!(
            container.image.as_deref(),
            Some("flinkbroker/flink-python:1.20.3")
        );
    }

    #[test]
    fn pod_and_container_meet_the_restricted_profile() {
        let job = build_job(&url_spec(), &config());
        let pod = pod_spec(&job);
        let pod_context = pod.security_context.as_ref().expect("pod security context");
        assert_eq!(pod_context.run_as_non_root, Some(true));
        assert_eq!(pod_context.run_as_user, Some(9999));
        assert_eq!(
            pod_context
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        let containers = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten());
        let mut checked = 0;
        for container in containers {
            let context = container
                .security_context
                .as_ref()
                .expect("container security context");
            assert_eq!(context.run_as_non_root, Some(true), "{}", container.name);
            assert_eq!(context.run_as_user, Some(9999));
            assert_eq!(context.allow_privilege_escalation, Some(false));
            assert_eq!(context.read_only_root_filesystem, Some(true));
            assert_eq!(
                context.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()])
            );
            assert_eq!(
                context.capabilities.as_ref().and_then(|c| c.add.clone()),
                None
            );
            assert_eq!(
                context.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
                Some("RuntimeDefault")
            );
            assert_eq!(context.privileged, None);
            checked += 1;
        }
        assert_eq!(checked, 2);
    }

    #[test]
    fn flink_run_argv_is_the_command_without_a_shell() {
        let job = build_job(&inline_spec(), &config());
        let pod = pod_spec(&job);
        assert_eq!(pod.containers.len(), 1);
        let container = &pod.containers[0];
        assert_eq!(container.name, "submitter");
        assert_eq!(
            container.command.as_deref(),
            Some(
                &[
                    "/opt/flink/bin/flink",
                    "run",
                    "-m",
                    "flink-jobmanager:8081",
                    "-d",
                    "-D",
                    "$internal.pipeline.job-id=fedcba9876543210fedcba9876543210",
                    "-pyexec",
                    "python3",
                    "-pyclientexec",
                    "python3",
                    "-py",
                    "/opt/flinkbroker/job/main.py",
                    "--date",
                    "2026-11-23; rm -rf /",
                ]
                .map(String::from)[..]
            )
        );
        assert_eq!(container.args, None);
        let env: Vec<(&str, Option<&str>)> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            env,
            [("TMPDIR", Some("/tmp")), ("FLINK_LOG_DIR", Some("/tmp"))]
        );
    }

    #[test]
    fn inline_program_is_mounted_from_the_config_map_by_items() {
        let mut spec = inline_spec();
        spec.program.entry_module = Some("recs.jobs.main".into());
        spec.program
            .inline_py_files
            .insert("helpers.py".into(), "X = 1".into());
        let config_map = build_config_map(&spec, &config());
        assert_eq!(
            config_map.data,
            Some(BTreeMap::from([
                ("file-0".to_string(), "print('hi')".to_string()),
                ("file-1".to_string(), "X = 1".to_string()),
            ]))
        );
        assert_eq!(config_map.immutable, Some(true));

        let job = build_job(&spec, &config());
        let pod = pod_spec(&job);
        assert_eq!(pod.init_containers, None);
        let volumes = pod.volumes.as_ref().expect("volumes");
        assert_eq!(volumes.len(), 2);
        let program = &volumes[0];
        assert_eq!(program.name, "program");
        let source = program.config_map.as_ref().expect("config map volume");
        assert_eq!(
            source.name,
            "flinkbroker-py-0123456789abcdef0123456789abcdef"
        );
        let items: Vec<(&str, &str)> = source
            .items
            .iter()
            .flatten()
            .map(|item| (item.key.as_str(), item.path.as_str()))
            .collect();
        assert_eq!(
            items,
            [("file-0", "recs/jobs/main.py"), ("file-1", "helpers.py")]
        );
        assert!(items.iter().all(|(key, _)| !key.contains('/')));
        assert_eq!(volumes[1].name, "tmp");
        assert!(volumes[1].empty_dir.is_some());

        let mounts: Vec<(&str, &str, Option<bool>)> = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("program", "/opt/flinkbroker/job", Some(true)),
                ("tmp", "/tmp", None)
            ]
        );
    }

    #[test]
    fn script_url_is_fetched_by_an_init_container_into_an_empty_dir() {
        let spec = url_spec();
        let config_map = build_config_map(&spec, &config());
        assert_eq!(
            config_map.data,
            Some(BTreeMap::from([
                ("file-0".to_string(), "X = 1".to_string()),
                ("file-1".to_string(), "numpy==1.26.4\n".to_string()),
            ]))
        );

        let job = build_job(&spec, &config());
        let pod = pod_spec(&job);
        let volumes = pod.volumes.as_ref().expect("volumes");
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["program", "program-files", "tmp"]);
        assert!(volumes[0].empty_dir.is_some());
        assert!(volumes[0].config_map.is_none());
        let items: Vec<(&str, &str)> = volumes[1]
            .config_map
            .as_ref()
            .and_then(|c| c.items.as_ref())
            .into_iter()
            .flatten()
            .map(|item| (item.key.as_str(), item.path.as_str()))
            .collect();
        assert_eq!(
            items,
            [("file-0", "helpers.py"), ("file-1", "requirements.txt")]
        );

        let init = pod.init_containers.as_ref().expect("init containers");
        assert_eq!(init.len(), 1);
        let fetch = &init[0];
        assert_eq!(fetch.name, "fetch-program");
        assert_eq!(fetch.image, pod.containers[0].image);
        assert_eq!(fetch.security_context, pod.containers[0].security_context);
        assert_eq!(fetch.args, None);
        assert_eq!(
            fetch.command.as_deref(),
            Some(
                &[
                    "python3",
                    "-c",
                    FETCH_PROGRAM_PY,
                    "https://scripts.example.com/recs/main.py",
                    "/opt/flinkbroker/job",
                    "recs/jobs/main.py",
                    "10485760",
                    "/opt/flinkbroker/config",
                    "helpers.py",
                    "requirements.txt",
                ]
                .map(String::from)[..]
            )
        );
        let mounts: Vec<(&str, &str, Option<bool>)> = fetch
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("program-files", "/opt/flinkbroker/config", Some(true)),
                ("program", "/opt/flinkbroker/job", None),
                ("tmp", "/tmp", None),
            ]
        );

        let command = pod.containers[0].command.as_ref().expect("command");
        assert!(command.ends_with(
            &["-pym", "recs.jobs.main", "--date", "2026-11-23; rm -rf /"].map(String::from)
        ));
        assert!(command.contains(&"/opt/flinkbroker/job/requirements.txt".to_string()));
    }

    #[test]
    fn url_program_without_files_mounts_an_empty_config_map() {
        let mut spec = inline_spec();
        spec.program.script = None;
        spec.program.script_url = Some("https://scripts.example.com/main.py".into());
        let config_map = build_config_map(&spec, &config());
        assert_eq!(config_map.data, Some(BTreeMap::new()));
        let job = build_job(&spec, &config());
        let pod = pod_spec(&job);
        let source = pod.volumes.as_ref().expect("volumes")[1]
            .config_map
            .as_ref()
            .expect("config map volume");
        assert_eq!(source.items, None);
        let fetch = &pod.init_containers.as_ref().expect("init containers")[0];
        let command = fetch.command.as_ref().expect("command");
        assert_eq!(command[0], "python3");
        assert_eq!(
            &command[3..],
            [
                "https://scripts.example.com/main.py",
                "/opt/flinkbroker/job",
                "main.py",
                "10485760",
                "/opt/flinkbroker/config"
            ]
            .map(String::from)
        );
    }

    #[test]
    fn init_container_uses_python3_when_no_interpreter_is_configured() {
        let mut config = config();
        config.python_executable = None;
        let argv = fetch_program_argv(&url_spec(), &config, "https://x.example.com/a.py");
        assert_eq!(argv[0], "python3");
        assert_eq!(argv[1], "-c");
    }

    #[test]
    fn owner_reference_patch_names_the_job_without_blocking_deletion() {
        let patch = owner_reference_patch("flinkbroker-py-ab", "0b1c-uid");
        assert_eq!(
            patch,
            json!({
                "metadata": {
                    "ownerReferences": [{
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": "flinkbroker-py-ab",
                        "uid": "0b1c-uid",
                        "controller": false,
                    }]
                }
            })
        );
    }
}
