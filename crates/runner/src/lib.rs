//! Python submitters: the `JobRunner` trait, and the one `flink run` argument vector both
//! runners (Kubernetes Job, local process) execute.
//!
//! The argument vector is never passed through a shell: each element is one argument.
//!
//! # Layout
//! - this file: the [`JobRunner`] trait, [`SubmitterSpec`], [`SubmitterState`] and the argv.
//! - [`local`]: runs each submitter as a local process (`--job-runner local`).
//! - [`kubernetes`] (feature `kubernetes`): runs each submitter as a batch/v1 Job.

#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;

use async_trait::async_trait;
use thiserror::Error;

use flinkbroker_model::job::{JobId, PythonSpec};

/// The file name of an inline script run with `-py`.
const SCRIPT_FILE: &str = "main.py";
/// The file name of the requirements shipped with `-pyreq`.
const REQUIREMENTS_FILE: &str = "requirements.txt";
/// The most submitter output kept with a job, in bytes (its tail).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// What a runner needs to start the submitter of one Python job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitterSpec {
    /// The broker's job the submitter submits.
    pub job_id: JobId,
    /// The tenant the job belongs to (a label of the submitter's Kubernetes objects).
    pub tenant: String,
    /// The Flink job id chosen up front (`$internal.pipeline.job-id`).
    pub flink_job_id: String,
    /// The program: its script (inline or by URL), files, arguments and Flink options.
    pub program: PythonSpec,
    /// The `flink run` options that restore the program's Flink job from a savepoint, in the
    /// spelling of the cluster's Flink version (empty: a fresh start).
    pub restore_arguments: Vec<String>,
}

/// Where a submitter (`flink run -d …`) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitterState {
    /// Created, not running yet (e.g. a pod being scheduled).
    Pending,
    /// The submitter is running.
    Running,
    /// `flink run -d` exited 0: the Flink job was submitted.
    Succeeded,
    /// The submitter failed; `reason` says how (exit code, deadline, ...).
    Failed {
        /// The exit code of the process that failed, when one is known.
        exit_code: Option<i32>,
        /// How it failed, for the job's state reason.
        reason: String,
    },
    /// The runner knows no submitter for this job (never started, or already removed).
    Missing,
}

/// What went wrong running a submitter.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RunnerError {
    /// The Kubernetes API failed or refused.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// The local process or its files failed.
    #[error("local submitter: {0}")]
    Local(String),
    /// The program could not be fetched from its URL.
    #[error("cannot download the script: {0}")]
    Download(String),
}

/// Runs submitters: a Kubernetes Job or a local process, both executing [`flink_run_argv`].
#[async_trait]
pub trait JobRunner: Send + Sync {
    /// Starts the submitter; starting one that already exists adopts it.
    async fn start(&self, spec: &SubmitterSpec) -> Result<(), RunnerError>;

    /// Reads the submitter's state.
    async fn state(&self, job_id: JobId) -> Result<SubmitterState, RunnerError>;

    /// Reads the submitter's output: stdout and stderr, at most the last [`MAX_OUTPUT_BYTES`].
    async fn output(&self, job_id: JobId) -> Result<String, RunnerError>;

    /// Stops and removes the submitter; a missing one is not an error.
    async fn delete(&self, job_id: JobId) -> Result<(), RunnerError>;
}

/// Where the argument vector points: the launcher, the cluster, the program's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvContext {
    /// The `flink` launcher, e.g. `/opt/flink/bin/flink`.
    pub flink_executable: String,
    /// The JobManager REST address for `-m`, e.g. `flink-jobmanager:8081`.
    pub jobmanager_address: String,
    /// The directory holding the program's files (and a downloaded script).
    pub program_dir: String,
    /// The Python interpreter for `-pyexec` and `-pyclientexec`, when not `python` from PATH.
    pub python_executable: Option<String>,
}

/// Returns the path, relative to the program directory, where the script lives: `main.py`,
/// or the entry module's file (`recs/jobs/main.py` for `recs.jobs.main`).
pub(crate) fn script_path(program: &PythonSpec) -> String {
    match &program.entry_module {
        Some(module) => format!("{}.py", module.replace('.', "/")),
        None => SCRIPT_FILE.to_string(),
    }
}

/// Returns the files to write into the program directory (relative path, contents): the inline
/// script, the inline modules and the requirements.
pub(crate) fn program_files(program: &PythonSpec) -> Vec<(String, String)> {
    let mut files = Vec::new();
    if let Some(script) = &program.script {
        files.push((script_path(program), script.clone()));
    }
    for (name, source) in &program.inline_py_files {
        files.push((name.clone(), source.clone()));
    }
    if let Some(requirements) = &program.py_requirements {
        files.push((REQUIREMENTS_FILE.to_string(), requirements.clone()));
    }
    files
}

/// Builds the `flink run` argument vector (launcher first) for a submitter's program.
pub fn flink_run_argv(spec: &SubmitterSpec, context: &ArgvContext) -> Vec<String> {
    let program = &spec.program;
    let flink_job_id = &spec.flink_job_id;
    let dir = context.program_dir.trim_end_matches('/');
    let mut argv = vec![
        context.flink_executable.clone(),
        "run".to_string(),
        "-m".to_string(),
        context.jobmanager_address.clone(),
        "-d".to_string(),
        "-D".to_string(),
        format!("$internal.pipeline.job-id={flink_job_id}"),
    ];
    for (key, value) in &program.flink_configuration {
        argv.push("-D".to_string());
        argv.push(format!("{key}={value}"));
    }
    if let Some(parallelism) = program.parallelism {
        argv.push("-p".to_string());
        argv.push(parallelism.to_string());
    }
    argv.extend(spec.restore_arguments.iter().cloned());
    if let Some(python) = &context.python_executable {
        argv.extend(["-pyexec".to_string(), python.clone()]);
        argv.extend(["-pyclientexec".to_string(), python.clone()]);
    }
    let mut py_files = Vec::new();
    if program.entry_module.is_some() || !program.inline_py_files.is_empty() {
        py_files.push(dir.to_string());
    }
    py_files.extend(program.py_files.iter().cloned());
    if !py_files.is_empty() {
        argv.push("-pyfs".to_string());
        argv.push(py_files.join(","));
    }
    if !program.py_archives.is_empty() {
        argv.push("-pyarch".to_string());
        argv.push(program.py_archives.join(","));
    }
    if program.py_requirements.is_some() {
        argv.push("-pyreq".to_string());
        argv.push(format!("{dir}/{REQUIREMENTS_FILE}"));
    }
    match &program.entry_module {
        Some(module) => {
            argv.push("-pym".to_string());
            argv.push(module.clone());
        }
        None => {
            argv.push("-py".to_string());
            argv.push(format!("{dir}/{SCRIPT_FILE}"));
        }
    }
    argv.extend(program.program_args.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(program: PythonSpec, flink_job_id: &str) -> SubmitterSpec {
        SubmitterSpec {
            job_id: "0b6f0a5e-3b7c-4d1e-9f00-1234567890ab".parse().unwrap(),
            tenant: "default".into(),
            flink_job_id: flink_job_id.into(),
            program,
            restore_arguments: Vec::new(),
        }
    }

    fn program() -> PythonSpec {
        PythonSpec {
            script: Some("print('hi')".into()),
            script_url: None,
            entry_module: None,
            py_files: Vec::new(),
            py_archives: Vec::new(),
            py_requirements: None,
            program_args: Vec::new(),
            parallelism: None,
            flink_configuration: BTreeMap::new(),
            inline_py_files: BTreeMap::new(),
            restore: None,
        }
    }

    fn context() -> ArgvContext {
        ArgvContext {
            flink_executable: "/opt/flink/bin/flink".into(),
            jobmanager_address: "jm:8081".into(),
            program_dir: "/opt/flinkbroker/job/".into(),
            python_executable: None,
        }
    }

    #[test]
    fn minimal_program_runs_detached_under_its_job_id() {
        let argv = flink_run_argv(
            &spec(program(), "0123456789abcdef0123456789abcdef"),
            &context(),
        );
        assert_eq!(
            argv,
            [
                "/opt/flink/bin/flink",
                "run",
                "-m",
                "jm:8081",
                "-d",
                "-D",
                "$internal.pipeline.job-id=0123456789abcdef0123456789abcdef",
                "-py",
                "/opt/flinkbroker/job/main.py",
            ]
        );
    }

    #[test]
    fn every_option_lands_in_its_own_arguments_without_quoting() {
        let mut program = program();
        program.entry_module = Some("recs.jobs.main".into());
        program.py_files = vec!["s3://bucket/lib.zip".into()];
        program.py_archives = vec!["venv.zip#venv".into()];
        program.py_requirements = Some("numpy==1.26.4\n".into());
        program.program_args = vec!["--date".into(), "2026-11-23; rm -rf /".into()];
        program.parallelism = Some(4);
        program
            .flink_configuration
            .insert("taskmanager.memory.process.size".into(), "2g".into());
        program
            .inline_py_files
            .insert("helpers.py".into(), "X = 1".into());
        let mut context = context();
        context.python_executable = Some("/venv/bin/python".into());
        let mut spec = spec(program.clone(), "ab");
        spec.restore_arguments = vec!["-s".into(), "s3://sp/savepoint-1".into(), "-n".into()];
        let argv = flink_run_argv(&spec, &context);
        assert_eq!(
            argv,
            [
                "/opt/flink/bin/flink",
                "run",
                "-m",
                "jm:8081",
                "-d",
                "-D",
                "$internal.pipeline.job-id=ab",
                "-D",
                "taskmanager.memory.process.size=2g",
                "-p",
                "4",
                "-s",
                "s3://sp/savepoint-1",
                "-n",
                "-pyexec",
                "/venv/bin/python",
                "-pyclientexec",
                "/venv/bin/python",
                "-pyfs",
                "/opt/flinkbroker/job,s3://bucket/lib.zip",
                "-pyarch",
                "venv.zip#venv",
                "-pyreq",
                "/opt/flinkbroker/job/requirements.txt",
                "-pym",
                "recs.jobs.main",
                "--date",
                "2026-11-23; rm -rf /",
            ]
        );
        assert_eq!(script_path(&program), "recs/jobs/main.py");
        let files: Vec<String> = program_files(&program).into_iter().map(|f| f.0).collect();
        assert_eq!(
            files,
            ["recs/jobs/main.py", "helpers.py", "requirements.txt"]
        );
    }
}
