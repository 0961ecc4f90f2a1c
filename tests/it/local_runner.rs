//! The local runner: `flink run` as a child process, against a stand-in launcher and, when
//! `FLINKBROKER_TEST_FLINK_HOME` is set, against a real Flink session cluster.

use crate::support::flink_cluster;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flink_cluster::FlinkCluster;
use flinkbroker_model::job::{JobId, PythonSpec};
use flinkbroker_runner::local::{
    LOG_DIR, LocalRunner, LocalRunnerConfig, MAX_DOWNLOAD_BYTES, PROGRAM_DIR,
};
use flinkbroker_runner::{
    ArgvContext, JobRunner, MAX_OUTPUT_BYTES, RunnerError, SubmitterSpec, SubmitterState,
    flink_run_argv,
};
use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long a stand-in submitter may take to end.
const LIMIT: Duration = Duration::from_secs(20);
/// How long a real `flink run` may take (6 to 11 s when idle; more while tests compete).
const FLINK_LIMIT: Duration = Duration::from_secs(180);

/// A temporary FLINK_HOME whose `bin/flink` is the stand-in launcher, and a work directory.
struct FakeFlink {
    home: TempDir,
    work: TempDir,
}

impl FakeFlink {
    /// Creates a FLINK_HOME whose launcher prints its argv, then runs `behaviour` (sh).
    fn new(behaviour: &str) -> Self {
        let home = TempDir::new().expect("temp flink home");
        std::fs::create_dir(home.path().join("bin")).expect("bin dir");
        let launcher =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-flink/flink");
        std::os::unix::fs::symlink(launcher, home.path().join("bin/flink")).expect("link flink");
        std::fs::write(home.path().join("behaviour.sh"), behaviour).expect("behaviour");
        Self {
            home,
            work: TempDir::new().expect("temp work dir"),
        }
    }

    fn config(&self) -> LocalRunnerConfig {
        LocalRunnerConfig {
            flink_home: self.home.path().to_path_buf(),
            jobmanager_address: "127.0.0.1:8081".into(),
            python_executable: None,
            work_dir: self.work.path().join("submitters"),
        }
    }

    fn runner(&self) -> LocalRunner {
        LocalRunner::new(self.config()).expect("runner")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

fn program(script: &str) -> PythonSpec {
    PythonSpec {
        script: Some(script.into()),
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

fn submitter(program: PythonSpec) -> SubmitterSpec {
    let job_id = JobId::new_random();
    SubmitterSpec {
        job_id,
        tenant: "default".into(),
        flink_job_id: job_id.flink_job_id_for_program(),
        program,
        restore_arguments: Vec::new(),
    }
}

/// Polls the runner until the submitter's state satisfies `done`.
async fn wait_for_state(
    runner: &LocalRunner,
    job_id: JobId,
    limit: Duration,
    done: impl Fn(&SubmitterState) -> bool,
) -> SubmitterState {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = runner.state(job_id).await.expect("state");
        if done(&state) {
            return state;
        }
        if tokio::time::Instant::now() > deadline {
            let output = runner.output(job_id).await.unwrap_or_default();
            panic!("submitter {job_id} still {state:?} after {limit:?}; output:\n{output}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until_ended(runner: &LocalRunner, job_id: JobId) -> SubmitterState {
    wait_for_state(runner, job_id, LIMIT, |state| {
        !matches!(state, SubmitterState::Pending | SubmitterState::Running)
    })
    .await
}

/// Polls until `check` holds.
async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    assert!(
        holds_within(limit, check).await,
        "timed out waiting for {what}"
    );
}

/// Polls until `check` holds; false when it still does not after `limit`.
async fn holds_within(limit: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Returns the arguments the stand-in launcher printed.
fn printed_argv(output: &str) -> Vec<String> {
    let begin = output.find("argv-begin\0").expect("argv printed") + "argv-begin\0".len();
    let end = output[begin..].find("argv-end\n").expect("argv end") + begin;
    output[begin..end]
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

/// Returns the `KEY=value` lines a behaviour printed.
fn printed_value(output: &str, key: &str) -> Option<String> {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Waits for the pid a launcher wrote to `$FLINK_HOME/pid`.
async fn launcher_pid(fake: &FakeFlink) -> u32 {
    let pid_file = fake.file("pid");
    wait_until("the launcher's pid", LIMIT, || {
        read_pid(&pid_file).is_some()
    })
    .await;
    read_pid(&pid_file).expect("pid")
}

/// Reads a pid a launcher wrote with `echo` (None until the whole line is there).
fn read_pid(file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.strip_suffix('\n')?;
    Some(line.parse().expect("pid number"))
}

/// Returns the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
        })
        .filter(|pid| is_running(*pid))
        .collect()
}

fn is_running(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().and_then(|state| state.chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Returns the parent of a process.
fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Returns the fields of `/proc/<pid>/stat` after the command name: state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

#[tokio::test]
async fn argv_reaches_the_launcher_unchanged_without_a_shell() {
    let fake = FakeFlink::new("exit 0\n");
    let mut config = fake.config();
    config.python_executable = Some("/opt/venv with space/bin/python".into());
    let runner = LocalRunner::new(config.clone()).expect("runner");
    let mut program = program("print('hi')");
    program.program_args = vec![
        "--date".into(),
        "2026-11-23; touch pwned".into(),
        "$(touch pwned)".into(),
        "`touch pwned`".into(),
        "two words".into(),
        "*".into(),
        "quote's \"here\"".into(),
        "line\nbreak".into(),
        String::new(),
    ];
    program.parallelism = Some(3);
    program
        .flink_configuration
        .insert("pipeline.name".into(), "a name; with $HOME".into());
    let spec = submitter(program);

    runner.start(&spec).await.expect("start");
    assert_eq!(
        wait_until_ended(&runner, spec.job_id).await,
        SubmitterState::Succeeded
    );

    let expected = flink_run_argv(
        &spec,
        &ArgvContext {
            flink_executable: fake.home.path().join("bin/flink").display().to_string(),
            jobmanager_address: "127.0.0.1:8081".into(),
            program_dir: runner.program_dir(spec.job_id).display().to_string(),
            python_executable: config.python_executable.clone(),
        },
    );
    let output = runner.output(spec.job_id).await.expect("output");
    assert_eq!(printed_argv(&output), expected[1..]);
    assert!(expected[0].starts_with(&fake.home.path().display().to_string()));
    let program_dir = runner.program_dir(spec.job_id);
    assert!(!program_dir.join("pwned").exists());
    assert!(!fake.home.path().join("pwned").exists());
}

#[tokio::test]
async fn program_files_are_written_into_a_private_directory_per_job() {
    let fake = FakeFlink::new(
        "printf 'FLINK_HOME=%s\\n' \"$FLINK_HOME\"\n\
         printf 'PWD=%s\\n' \"$(pwd)\"\n\
         printf 'FLINK_LOG_DIR=%s\\n' \"$FLINK_LOG_DIR\"\n",
    );
    let runner = fake.runner();
    let mut program = program("from recs import helpers\n");
    program.entry_module = Some("recs.jobs.main".into());
    program.py_requirements = Some("numpy==1.26.4\n".into());
    program
        .inline_py_files
        .insert("helpers.py".into(), "X = 1\n".into());
    program
        .inline_py_files
        .insert("recs/util.py".into(), "Y = 2\n".into());
    let spec = submitter(program);

    runner.start(&spec).await.expect("start");
    assert_eq!(
        wait_until_ended(&runner, spec.job_id).await,
        SubmitterState::Succeeded
    );

    let job_dir = fake
        .work
        .path()
        .join("submitters")
        .join(spec.job_id.to_string());
    assert_eq!(runner.job_dir(spec.job_id), job_dir);
    let program_dir = job_dir.join(PROGRAM_DIR);
    assert_eq!(runner.program_dir(spec.job_id), program_dir);
    let mode = std::fs::metadata(&job_dir)
        .expect("job dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "job dir mode {mode:o}");
    let read =
        |relative: &str| std::fs::read_to_string(program_dir.join(relative)).expect(relative);
    assert_eq!(read("recs/jobs/main.py"), "from recs import helpers\n");
    assert_eq!(read("helpers.py"), "X = 1\n");
    assert_eq!(read("recs/util.py"), "Y = 2\n");
    assert_eq!(read("requirements.txt"), "numpy==1.26.4\n");
    assert!(!program_dir.join("main.py").exists());
    assert!(job_dir.join(LOG_DIR).is_dir());

    let output = runner.output(spec.job_id).await.expect("output");
    assert_eq!(
        printed_value(&output, "FLINK_HOME").map(PathBuf::from),
        Some(fake.home.path().to_path_buf())
    );
    let cwd = printed_value(&output, "PWD").expect("pwd printed");
    assert_eq!(
        std::fs::canonicalize(cwd).expect("cwd"),
        std::fs::canonicalize(&program_dir).expect("program dir")
    );
    if std::env::var_os("FLINK_LOG_DIR").is_none() {
        assert_eq!(
            printed_value(&output, "FLINK_LOG_DIR").map(PathBuf::from),
            Some(job_dir.join(LOG_DIR))
        );
    }
    let argv = printed_argv(&output);
    let program_dir_text = program_dir.display().to_string();
    assert!(
        argv.windows(2)
            .any(|pair| pair == ["-pyfs", program_dir_text.as_str()])
    );
    assert!(
        argv.windows(2)
            .any(|pair| pair == ["-pym", "recs.jobs.main"])
    );
    assert!(argv.windows(2).any(
        |pair| pair[0] == "-pyreq" && pair[1] == format!("{program_dir_text}/requirements.txt")
    ));
}

#[tokio::test]
async fn a_relative_work_dir_is_resolved_before_the_child_changes_directory() {
    let fake = FakeFlink::new("exit 0\n");
    let mut config = fake.config();
    let relative = PathBuf::from("target/local-runner-test").join(JobId::new_random().to_string());
    config.work_dir = relative.clone();
    let runner = LocalRunner::new(config).expect("runner");
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    assert_eq!(
        wait_until_ended(&runner, spec.job_id).await,
        SubmitterState::Succeeded
    );
    let output = runner.output(spec.job_id).await.expect("output");
    let script = printed_argv(&output)
        .last()
        .cloned()
        .expect("script argument");
    assert!(Path::new(&script).is_absolute(), "{script}");
    assert!(Path::new(&script).is_file(), "{script}");
    runner.delete(spec.job_id).await.expect("delete");
    let _ = std::fs::remove_dir_all(relative);
}

#[tokio::test]
async fn a_script_url_is_downloaded_to_the_script_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jobs/main.py"))
        .respond_with(ResponseTemplate::new(200).set_body_string("print('downloaded')\n"))
        .mount(&server)
        .await;
    let fake = FakeFlink::new("exit 0\n");
    let runner = fake.runner();

    let mut inline_entry = program("");
    inline_entry.script = None;
    inline_entry.script_url = Some(format!("{}/jobs/main.py?token=secret", server.uri()));
    let plain = submitter(inline_entry.clone());
    inline_entry.entry_module = Some("recs.jobs.main".into());
    let module = submitter(inline_entry);

    for spec in [&plain, &module] {
        runner.start(spec).await.expect("start");
        assert_eq!(
            wait_until_ended(&runner, spec.job_id).await,
            SubmitterState::Succeeded
        );
    }
    let read = |spec: &SubmitterSpec, relative: &str| {
        std::fs::read_to_string(runner.program_dir(spec.job_id).join(relative)).expect(relative)
    };
    assert_eq!(read(&plain, "main.py"), "print('downloaded')\n");
    assert_eq!(read(&module, "recs/jobs/main.py"), "print('downloaded')\n");
}

#[tokio::test]
async fn download_failures_are_reported_and_leave_nothing_behind() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/missing.py"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/huge.py"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'#'; MAX_DOWNLOAD_BYTES + 1]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/moved.py"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "http://elsewhere.invalid/x.py"),
        )
        .mount(&server)
        .await;
    let fake = FakeFlink::new("echo started >> \"$FLINK_HOME/runs\"\n");
    let runner = fake.runner();

    for (name, expected) in [
        ("missing.py", "404"),
        ("huge.py", "larger than"),
        ("moved.py", "redirects are not followed"),
    ] {
        let mut program = program("");
        program.script = None;
        program.script_url = Some(format!("{}/{name}?sig=secret", server.uri()));
        let spec = submitter(program);
        match runner.start(&spec).await {
            Err(RunnerError::Download(message)) => {
                assert!(message.contains(expected), "{name}: {message}");
                assert!(!message.contains("secret"), "{name}: {message}");
            }
            other => panic!("{name}: expected a download error, got {other:?}"),
        }
        assert_eq!(
            runner.state(spec.job_id).await.expect("state"),
            SubmitterState::Missing
        );
        assert!(
            !runner.job_dir(spec.job_id).exists(),
            "{name}: directory left"
        );
    }
    assert!(!fake.file("runs").exists(), "flink run started");
}

#[tokio::test]
async fn exit_codes_map_to_submitter_states() {
    let cases = [
        ("exit 0\n", SubmitterState::Succeeded),
        (
            "exit 31\n",
            SubmitterState::Failed {
                exit_code: Some(31),
                reason: "flink run exited with code 31".into(),
            },
        ),
        (
            "exit 1\n",
            SubmitterState::Failed {
                exit_code: Some(1),
                reason: "flink run exited with code 1".into(),
            },
        ),
        (
            "kill -9 $$\n",
            SubmitterState::Failed {
                exit_code: None,
                reason: "flink run was killed by signal 9".into(),
            },
        ),
    ];
    for (behaviour, expected) in cases {
        let fake = FakeFlink::new(behaviour);
        let runner = fake.runner();
        let spec = submitter(program("print(1)"));
        runner.start(&spec).await.expect("start");
        assert_eq!(
            wait_until_ended(&runner, spec.job_id).await,
            expected,
            "{behaviour}"
        );
    }
}

#[tokio::test]
async fn output_captures_stdout_and_stderr() {
    let fake = FakeFlink::new("echo to-stdout\necho to-stderr >&2\nexit 2\n");
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    wait_until_ended(&runner, spec.job_id).await;
    let output = runner.output(spec.job_id).await.expect("output");
    assert!(output.contains("to-stdout\n"), "{output}");
    assert!(output.contains("to-stderr\n"), "{output}");
}

#[tokio::test]
async fn output_keeps_only_a_bounded_tail() {
    // About 250 KB on each stream, far more than the tail keeps.
    let fake = FakeFlink::new(
        "echo first-line\n\
         yes stderr-filler-line | head -n 12000 >&2\n\
         yes stdout-filler-line | head -n 12000\n\
         echo last-line\n",
    );
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    assert_eq!(
        wait_until_ended(&runner, spec.job_id).await,
        SubmitterState::Succeeded
    );
    let output = runner.output(spec.job_id).await.expect("output");
    assert!(
        output.len() <= MAX_OUTPUT_BYTES,
        "{} bytes kept",
        output.len()
    );
    assert!(
        output.len() > MAX_OUTPUT_BYTES - 64,
        "{} bytes kept",
        output.len()
    );
    assert!(output.contains("last-line\n"));
    assert!(!output.contains("first-line"));
    assert!(!output.contains("argv-begin"));
}

#[tokio::test]
async fn delete_kills_a_running_submitter_and_removes_its_directory() {
    let fake = FakeFlink::new("echo $$ > \"$FLINK_HOME/pid\"\necho sleeping\nexec sleep 600\n");
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    let pid = launcher_pid(&fake).await;
    assert!(is_running(pid));
    assert_eq!(
        runner.state(spec.job_id).await.expect("state"),
        SubmitterState::Running
    );
    assert!(runner.job_dir(spec.job_id).is_dir());

    let started = std::time::Instant::now();
    runner.delete(spec.job_id).await.expect("delete");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delete took {:?}",
        started.elapsed()
    );

    assert!(!is_running(pid), "launcher {pid} survived delete");
    assert!(!runner.job_dir(spec.job_id).exists());
    assert_eq!(
        runner.state(spec.job_id).await.expect("state"),
        SubmitterState::Missing
    );
    assert_eq!(runner.output(spec.job_id).await.expect("output"), "");
    runner.delete(spec.job_id).await.expect("second delete");
}

#[tokio::test]
async fn delete_stops_the_processes_a_submitter_started() {
    let fake = FakeFlink::new(
        "sleep 600 &\n\
         echo $! > \"$FLINK_HOME/grandchild\"\n\
         echo $$ > \"$FLINK_HOME/pid\"\n\
         exec sleep 600\n",
    );
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    let pid = launcher_pid(&fake).await;
    let grandchild = read_pid(&fake.file("grandchild")).expect("grandchild pid");
    assert_eq!(parent_of(grandchild), Some(pid));

    let started = std::time::Instant::now();
    runner.delete(spec.job_id).await.expect("delete");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delete took {:?}",
        started.elapsed()
    );
    assert!(!is_running(pid), "launcher {pid} survived delete");
    // Signalled with its group; its new parent reaps it in its own time.
    wait_until("the launcher's child to stop", LIMIT, || {
        !is_running(grandchild)
    })
    .await;
}

#[tokio::test]
async fn delete_kills_a_submitter_that_ignores_sigterm() {
    // The background child inherits the ignored SIGTERM.
    let fake = FakeFlink::new(
        "trap '' TERM\n\
         sleep 600 &\n\
         echo $! > \"$FLINK_HOME/grandchild\"\n\
         echo $$ > \"$FLINK_HOME/pid\"\n\
         exec sleep 600\n",
    );
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    let pid = launcher_pid(&fake).await;
    let grandchild = read_pid(&fake.file("grandchild")).expect("grandchild pid");
    runner.delete(spec.job_id).await.expect("delete");
    assert!(!is_running(pid), "launcher {pid} survived delete");
    assert!(!runner.job_dir(spec.job_id).exists());
    wait_until("the launcher's child to be killed", LIMIT, || {
        !is_running(grandchild)
    })
    .await;
}

#[tokio::test]
async fn dropping_the_runner_kills_its_submitters() {
    let fake = FakeFlink::new("echo $$ > \"$FLINK_HOME/pid\"\nexec sleep 600\n");
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    let pid = launcher_pid(&fake).await;
    drop(runner);
    wait_until("the launcher to be killed", LIMIT, || !is_running(pid)).await;
}

/// Names the FLINK_HOME of the broker a re-executed copy of this test binary plays.
const BROKER_FLINK_HOME_VAR: &str = "FLINKBROKER_TEST_BROKER_FLINK_HOME";
/// Names the work directory of that broker.
const BROKER_WORK_DIR_VAR: &str = "FLINKBROKER_TEST_BROKER_WORK_DIR";

/// A copy of this test binary running [`broker_process_for_parent_death_tests`]; killed and
/// reaped when dropped.
struct BrokerProcess {
    child: std::process::Child,
    log: PathBuf,
}

/// The full name of [`broker_process_for_parent_death_tests`] in this test binary: its module
/// path without the binary's own name.
fn broker_process_test_name() -> String {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, module)| module);
    format!("{module}::broker_process_for_parent_death_tests")
}

impl BrokerProcess {
    /// Starts a broker process whose runner uses `fake`'s launcher.
    fn start(fake: &FakeFlink) -> Self {
        let log = fake.work.path().join("broker.log");
        let log_file = std::fs::File::create(&log).expect("broker log");
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                broker_process_test_name().as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(BROKER_FLINK_HOME_VAR, fake.home.path())
            .env(BROKER_WORK_DIR_VAR, fake.work.path().join("submitters"))
            .stdin(std::process::Stdio::piped())
            .stdout(log_file.try_clone().expect("broker log"))
            .stderr(log_file)
            .spawn()
            .expect("broker process");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays the broker for the parent-death tests, in a process of its own: starts a submitter
/// with the launcher of the FLINK_HOME it is given, then runs until its stdin closes or it is
/// killed.
#[tokio::test]
#[ignore = "run in a child process by the parent-death tests"]
async fn broker_process_for_parent_death_tests() {
    let (Some(flink_home), Some(work_dir)) = (
        std::env::var_os(BROKER_FLINK_HOME_VAR),
        std::env::var_os(BROKER_WORK_DIR_VAR),
    ) else {
        return;
    };
    let runner = LocalRunner::new(LocalRunnerConfig {
        flink_home: flink_home.into(),
        jobmanager_address: "127.0.0.1:8081".into(),
        python_executable: None,
        work_dir: work_dir.into(),
    })
    .expect("runner");
    let spec = submitter(program("print(1)"));
    runner.start(&spec).await.expect("start");
    // The submitter was spawned from this thread, which stays alive (in block_on) until then.
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await
        .expect("stdin reader")
        .expect("read stdin");
}

#[tokio::test]
async fn a_submitter_dies_with_its_killed_broker() {
    let fake = FakeFlink::new("echo $$ > \"$FLINK_HOME/pid\"\nexec sleep 600\n");
    let mut broker = BrokerProcess::start(&fake);
    let pid_file = fake.file("pid");
    let deadline = tokio::time::Instant::now() + LIMIT;
    let pid = loop {
        if let Some(pid) = read_pid(&pid_file) {
            break pid;
        }
        if let Some(status) = broker.child.try_wait().expect("broker status") {
            panic!("broker process ended ({status}):\n{}", broker.log());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no submitter started; broker log:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(parent_of(pid), Some(broker.child.id()));
    assert!(is_running(pid));

    broker.child.kill().expect("SIGKILL the broker");
    broker.child.wait().expect("reap the broker");

    if !holds_within(Duration::from_secs(10), || !is_running(pid)).await {
        // SAFETY: kill(2) takes no pointers; the launcher still runs, so its pid is its own.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        panic!("submitter {pid} outlived its killed broker");
    }
}

#[tokio::test]
async fn start_is_idempotent() {
    let fake = FakeFlink::new("echo run >> \"$FLINK_HOME/runs\"\n");
    let runner = fake.runner();
    let spec = submitter(program("print(1)"));

    let (first, second) = tokio::join!(runner.start(&spec), runner.start(&spec));
    first.expect("first start");
    second.expect("concurrent start");
    assert_eq!(
        wait_until_ended(&runner, spec.job_id).await,
        SubmitterState::Succeeded
    );
    runner.start(&spec).await.expect("start after the end");
    assert_eq!(
        runner.state(spec.job_id).await.expect("state"),
        SubmitterState::Succeeded
    );
    let runs = std::fs::read_to_string(fake.file("runs")).expect("runs");
    assert_eq!(runs, "run\n");

    // After a delete the job is unknown, and starting it runs a new submitter.
    runner.delete(spec.job_id).await.expect("delete");
    runner.start(&spec).await.expect("start after delete");
    wait_until_ended(&runner, spec.job_id).await;
    let runs = std::fs::read_to_string(fake.file("runs")).expect("runs");
    assert_eq!(runs, "run\nrun\n");
}

#[tokio::test]
async fn unknown_jobs_are_missing() {
    let fake = FakeFlink::new("exit 0\n");
    let runner = fake.runner();
    let job_id = JobId::new_random();
    assert_eq!(
        runner.state(job_id).await.expect("state"),
        SubmitterState::Missing
    );
    assert_eq!(runner.output(job_id).await.expect("output"), "");
    runner.delete(job_id).await.expect("delete");
}

#[tokio::test]
async fn a_missing_launcher_fails_to_start() {
    let work = TempDir::new().expect("work dir");
    let runner = LocalRunner::new(LocalRunnerConfig {
        flink_home: work.path().join("no-flink-here"),
        jobmanager_address: "127.0.0.1:8081".into(),
        python_executable: None,
        work_dir: work.path().join("submitters"),
    })
    .expect("a runner needs no flink until it runs a job");
    let spec = submitter(program("print(1)"));
    match runner.start(&spec).await {
        Err(RunnerError::Local(message)) => assert!(message.contains("bin/flink"), "{message}"),
        other => panic!("expected a local error, got {other:?}"),
    }
    assert_eq!(
        runner.state(spec.job_id).await.expect("state"),
        SubmitterState::Missing
    );
    assert!(!runner.job_dir(spec.job_id).exists());
}

#[tokio::test]
async fn file_names_leaving_the_program_directory_are_refused() {
    let fake = FakeFlink::new("echo run >> \"$FLINK_HOME/runs\"\n");
    let runner = fake.runner();
    for name in ["../escaped.py", "/tmp/absolute.py", "a/../../escaped.py"] {
        let mut program = program("print(1)");
        program.inline_py_files.insert(name.into(), "X = 1".into());
        let spec = submitter(program);
        match runner.start(&spec).await {
            Err(RunnerError::Local(message)) => assert!(message.contains(name), "{message}"),
            other => panic!("{name}: expected a local error, got {other:?}"),
        }
        assert!(!runner.job_dir(spec.job_id).exists());
    }
    assert!(!fake.work.path().join("submitters/escaped.py").exists());
    assert!(!fake.file("runs").exists());
}

/// A runner submitting to the real cluster, with its own work directory.
fn real_runner(cluster: &FlinkCluster) -> (LocalRunner, TempDir) {
    let work = TempDir::new().expect("work dir");
    let runner = LocalRunner::new(LocalRunnerConfig {
        flink_home: cluster.flink_home.clone(),
        jobmanager_address: cluster.rest_address.clone(),
        python_executable: Some(cluster.python_executable()),
        work_dir: work.path().to_path_buf(),
    })
    .expect("runner");
    (runner, work)
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pyflink")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[tokio::test]
async fn real_flink_runs_a_submitted_python_job_to_finished() {
    let Some(cluster) = FlinkCluster::shared().await else {
        return;
    };
    let (runner, _work) = real_runner(&cluster);
    let spec = submitter(program(&fixture("job.py")));

    let started = std::time::Instant::now();
    runner.start(&spec).await.expect("start");
    let state = wait_for_state(&runner, spec.job_id, FLINK_LIMIT, |state| {
        !matches!(state, SubmitterState::Pending | SubmitterState::Running)
    })
    .await;
    let output = runner.output(spec.job_id).await.expect("output");
    assert_eq!(state, SubmitterState::Succeeded, "output:\n{output}");
    eprintln!(
        "flink run -py job.py took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.contains(&format!(
            "Job has been submitted with JobID {}",
            spec.flink_job_id
        )),
        "{output}"
    );

    let job = cluster
        .job(&spec.flink_job_id)
        .await
        .expect("the jobmanager knows the job");
    assert_eq!(job["jid"], spec.flink_job_id.as_str());
    assert_eq!(job["name"], "pyflink-double-job");
    let state = cluster
        .wait_for_job_state(
            &spec.flink_job_id,
            &["FINISHED", "FAILED", "CANCELED"],
            FLINK_LIMIT,
        )
        .await;
    assert_eq!(state, "FINISHED");

    runner.delete(spec.job_id).await.expect("delete");
    assert!(!runner.job_dir(spec.job_id).exists());
}

#[tokio::test]
async fn real_flink_driver_error_fails_the_submitter_with_the_traceback() {
    let Some(cluster) = FlinkCluster::shared().await else {
        return;
    };
    let (runner, _work) = real_runner(&cluster);
    let spec = submitter(program(&fixture("bad_driver.py")));

    runner.start(&spec).await.expect("start");
    let state = wait_for_state(&runner, spec.job_id, FLINK_LIMIT, |state| {
        !matches!(state, SubmitterState::Pending | SubmitterState::Running)
    })
    .await;
    let output = runner.output(spec.job_id).await.expect("output");
    match &state {
        SubmitterState::Failed { exit_code, reason } => {
            assert_eq!(*exit_code, Some(31), "{reason}\n{output}");
            assert_eq!(reason, "flink run exited with code 31");
        }
        other => panic!("expected Failed, got {other:?}\n{output}"),
    }
    assert!(
        output.contains("ValueError: broken driver: missing config"),
        "{output}"
    );
    assert!(cluster.job(&spec.flink_job_id).await.is_none());
}

#[tokio::test]
async fn real_flink_job_failing_in_the_cluster_is_still_submitted() {
    let Some(cluster) = FlinkCluster::shared().await else {
        return;
    };
    let (runner, _work) = real_runner(&cluster);
    let spec = submitter(program(&fixture("fails_in_cluster.py")));

    runner.start(&spec).await.expect("start");
    let state = wait_for_state(&runner, spec.job_id, FLINK_LIMIT, |state| {
        !matches!(state, SubmitterState::Pending | SubmitterState::Running)
    })
    .await;
    let output = runner.output(spec.job_id).await.expect("output");
    assert_eq!(state, SubmitterState::Succeeded, "output:\n{output}");
    let state = cluster
        .wait_for_job_state(
            &spec.flink_job_id,
            &["FINISHED", "FAILED", "CANCELED"],
            FLINK_LIMIT,
        )
        .await;
    assert_eq!(state, "FAILED");
}

#[tokio::test]
async fn real_flink_delete_stops_the_python_driver_too() {
    let Some(cluster) = FlinkCluster::shared().await else {
        return;
    };
    let (runner, _work) = real_runner(&cluster);
    let spec = submitter(program(
        "import time\nprint('driver sleeping', flush=True)\ntime.sleep(600)\n",
    ));
    runner.start(&spec).await.expect("start");
    let deadline = tokio::time::Instant::now() + FLINK_LIMIT;
    while !runner
        .output(spec.job_id)
        .await
        .expect("output")
        .contains("driver sleeping")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "driver not started: {:?}",
            runner.state(spec.job_id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let script = runner.program_dir(spec.job_id).join("main.py");
    let script = script.display().to_string();
    // The `flink` JVM and the Python driver it started both name the script.
    assert!(processes_mentioning(&script).len() >= 2);

    runner.delete(spec.job_id).await.expect("delete");
    wait_until("the driver to stop", LIMIT, || {
        processes_mentioning(&script).is_empty()
    })
    .await;
}
