//! A throwaway PostgreSQL server: `initdb` into a temporary directory, `postgres` on a free
//! loopback port (trust authentication, no Unix socket, no durability), stopped and its
//! directory removed by [`ThrowawayServer::stop`] or when dropped.
//!
//! PostgreSQL refuses to run as root, so as root both binaries run as the `postgres` user, who
//! owns the directory. Nothing is left running when the process that started the server dies:
//! - `postgres` is spawned by a thread that lives exactly as long as the server (it drains the
//!   server's log and reaps it), and on Linux it is started with a parent-death signal
//!   (SIGQUIT: immediate shutdown) that the kernel sends when that thread dies, which a killed
//!   process's threads all do;
//! - a server kept in a static, which is never dropped, is stopped by an `atexit` handler.
//!
//! A killed process cannot remove its directory; the next start in the same temporary
//! directory removes the directories of processes that no longer run.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{self, BufRead as _, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use std::{fs, mem, ptr, thread};

use super::{PostgresBinaries, TestPostgresError};

/// What the name of each server's directory starts with, before `{pid}-{random}`.
const DIRECTORY_PREFIX: &str = "flinkbroker-postgres-";
/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The user the server runs as when the tests run as root.
const UNPRIVILEGED_USER: &str = "postgres";
/// What `postgres` logs once it accepts connections (its messages are asked for in English).
const READY_LINE: &str = "database system is ready to accept connections";
/// What `postgres` logs when its port was taken between choosing it and binding it.
const PORT_TAKEN_LINES: [&str; 2] = ["could not bind", "could not create any TCP/IP sockets"];
const READY_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// Ports tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines kept for the message of a server that did not start.
const LOG_TAIL: usize = 8;
/// The server's settings: loopback TCP only, no durability (the data is thrown away), logs to
/// the pipe its thread drains, and room for tests that each open a pool.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "unix_socket_directories=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "logging_collector=off",
    "log_destination=stderr",
    "lc_messages=C",
];

/// A PostgreSQL server of this process, in a temporary directory.
#[derive(Debug)]
pub struct ThrowawayServer {
    url: String,
    port: u16,
    pid: u32,
    directory: PathBuf,
    postmaster: Arc<Postmaster>,
}

impl ThrowawayServer {
    /// Starts a server from `binaries` in a new directory under the system's temporary
    /// directory; it returns once the server accepts connections.
    pub fn start(binaries: &PostgresBinaries) -> Result<ThrowawayServer, TestPostgresError> {
        Self::start_in(binaries, &std::env::temp_dir())
    }

    /// Starts a server from `binaries` in a new directory under `parent`.
    pub fn start_in(
        binaries: &PostgresBinaries,
        parent: &Path,
    ) -> Result<ThrowawayServer, TestPostgresError> {
        let owner = unprivileged_owner()?;
        remove_stale_directories(parent);
        let directory = parent.join(format!(
            "{DIRECTORY_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        create_directory(&directory, owner)?;
        match start_cluster(binaries, &directory, owner) {
            Ok((port, pid, postmaster)) => Ok(ThrowawayServer {
                url: format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres"),
                port,
                pid,
                directory,
                postmaster,
            }),
            Err(error) => {
                let _ = fs::remove_dir_all(&directory);
                Err(error)
            }
        }
    }

    /// The URL of the superuser's `postgres` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the server's main process (the postmaster).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory holding the server's files; removed when it stops.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The server's data directory, inside [`Self::directory`].
    pub fn data_directory(&self) -> PathBuf {
        self.directory.join("data")
    }

    /// Stops the server (immediate shutdown: the data is thrown away), waits until it and its
    /// backends have exited, and removes its directory. Stopping twice is harmless.
    pub fn stop(&self) -> Result<(), TestPostgresError> {
        self.postmaster.stop().map_err(TestPostgresError::Stop)?;
        match fs::remove_dir_all(&self.directory) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(TestPostgresError::Stop(format!(
                "cannot remove {}: {error}",
                self.directory.display()
            ))),
        }
    }
}

impl Drop for ThrowawayServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Runs `initdb`, then `postgres` on a free port; answers the port, the postmaster's pid and
/// its keeper.
fn start_cluster(
    binaries: &PostgresBinaries,
    directory: &Path,
    owner: Option<Owner>,
) -> Result<(u16, u32, Arc<Postmaster>), TestPostgresError> {
    let data = directory.join("data");
    initdb(binaries, directory, &data, owner)?;
    let mut port_taken = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port()?;
        match Postmaster::start(binaries, directory, &data, port, owner) {
            Ok((pid, postmaster)) => return Ok((port, pid, postmaster)),
            Err(StartFailure::PortTaken(message)) => port_taken = message,
            Err(StartFailure::Other(message)) => return Err(TestPostgresError::Start(message)),
        }
    }
    Err(TestPostgresError::Start(format!(
        "{PORT_ATTEMPTS} free ports were taken before postgres bound them; last: {port_taken}"
    )))
}

fn initdb(
    binaries: &PostgresBinaries,
    directory: &Path,
    data: &Path,
    owner: Option<Owner>,
) -> Result<(), TestPostgresError> {
    let program = binaries.initdb();
    let output = command(&program, directory, owner)
        .arg("--pgdata")
        .arg(data)
        .args(["--username", SUPERUSER, "--auth", "trust"])
        .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| {
            TestPostgresError::Start(format!(
                "cannot run {}: {error}",
                running(&program, directory, owner)
            ))
        })?;
    if output.status.success() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&output.stderr);
    Err(TestPostgresError::Start(format!(
        "{} {}: {}",
        program.display(),
        output.status,
        telling_line(log.lines())
    )))
}

/// Why `postgres` did not get ready.
enum StartFailure {
    /// Another process bound the port first: worth another port.
    PortTaken(String),
    Other(String),
}

/// The server's main process, followed by the thread that spawned it.
#[derive(Debug, Default)]
struct Postmaster {
    state: Mutex<PostmasterState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PostmasterState {
    pid: Option<u32>,
    ready: bool,
    /// The last lines it logged before it got ready.
    log_tail: VecDeque<String>,
    /// How it ended, once it was reaped.
    exit: Option<String>,
}

impl Postmaster {
    /// Spawns `postgres` from a thread of its own and waits until it accepts connections.
    fn start(
        binaries: &PostgresBinaries,
        directory: &Path,
        data: &Path,
        port: u16,
        owner: Option<Owner>,
    ) -> Result<(u32, Arc<Postmaster>), StartFailure> {
        let program = binaries.postgres();
        let mut command = command(&program, directory, owner);
        command
            .arg("-D")
            .arg(data)
            .arg("-p")
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for setting in SERVER_SETTINGS {
            command.arg("-c").arg(setting);
        }
        let postmaster = Arc::new(Postmaster::default());
        let keeper = Arc::clone(&postmaster);
        let run = running(&program, directory, owner);
        thread::Builder::new()
            .name("throwaway-postgres".to_owned())
            .spawn(move || keeper.keep(command, run))
            .map_err(|error| {
                StartFailure::Other(format!("cannot start a thread for postgres: {error}"))
            })?;

        let state = postmaster.lock();
        let (state, _) = postmaster
            .changed
            .wait_timeout_while(state, READY_LIMIT, |state| {
                !state.ready && state.exit.is_none()
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.ready
            && let Some(pid) = state.pid
        {
            drop(state);
            return Ok((pid, postmaster));
        }
        let tail = telling_line(state.log_tail.iter().map(String::as_str)).to_owned();
        let exit = state.exit.clone();
        drop(state);
        let program = program.display();
        match exit {
            Some(_) if PORT_TAKEN_LINES.iter().any(|line| tail.contains(line)) => {
                Err(StartFailure::PortTaken(tail))
            }
            Some(exit) => Err(StartFailure::Other(format!("{program} {exit}: {tail}"))),
            None => {
                let stopped = match postmaster.stop() {
                    Ok(()) => String::new(),
                    Err(error) => format!("; {error}"),
                };
                Err(StartFailure::Other(format!(
                    "{program} did not accept connections within {READY_LIMIT:?}: {tail}{stopped}"
                )))
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, PostmasterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keeper thread: spawns the server, drains its log until every process of the server
    /// has closed it, then reaps the server. The parent-death signal is tied to this thread.
    fn keep(&self, mut command: Command, running: String) {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                self.exited(format!("could not be run ({running}): {error}"));
                return;
            }
        };
        let pid = child.id();
        self.lock().pid = Some(pid);
        if let Some(log) = child.stderr.take() {
            self.follow(log);
        }
        wait_without_reaping(pid);
        // Reaped only under the lock: until then `stop` may signal the pid, which stays the
        // server's while it is a zombie.
        let mut state = self.lock();
        state.exit = Some(match child.wait() {
            Ok(status) => status.to_string(),
            Err(error) => format!("could not be waited for: {error}"),
        });
        drop(state);
        self.changed.notify_all();
    }

    /// Reads the server's log to its end: lines until it is ready, then nothing, so that the
    /// server never blocks on a full pipe.
    fn follow(&self, log: ChildStderr) {
        let mut log = BufReader::new(log);
        let mut line = Vec::new();
        let mut ready = false;
        loop {
            line.clear();
            match log.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if ready => continue,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            ready = text.contains(READY_LINE);
            let mut state = self.lock();
            if state.log_tail.len() == LOG_TAIL {
                state.log_tail.pop_front();
            }
            state.log_tail.push_back(text);
            state.ready = ready;
            drop(state);
            if ready {
                self.changed.notify_all();
            }
        }
    }

    fn exited(&self, how: String) {
        self.lock().exit = Some(how);
        self.changed.notify_all();
    }

    /// Sends SIGQUIT (immediate shutdown: the postmaster stops its backends, then itself), and
    /// SIGKILL if that was not enough; returns once the server was reaped.
    fn stop(&self) -> Result<(), String> {
        let mut state = self.lock();
        for signal in [libc::SIGQUIT, libc::SIGKILL] {
            if state.exit.is_some() {
                return Ok(());
            }
            if let Some(pid) = state.pid.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                // SAFETY: kill(2) takes no pointers; the server is reaped only under this
                // lock, so its pid is still its own.
                unsafe { libc::kill(pid, signal) };
            }
            state = self
                .changed
                .wait_timeout_while(state, STOP_LIMIT, |state| state.exit.is_none())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if state.exit.is_some() {
            return Ok(());
        }
        let pid = state
            .pid
            .map_or_else(|| "not known yet".to_owned(), |pid| pid.to_string());
        Err(format!(
            "postgres (pid {pid}) still runs {STOP_LIMIT:?} after SIGQUIT and after SIGKILL"
        ))
    }
}

/// Blocks until process `pid` (a child of this process) has exited, leaving it to be reaped.
fn wait_without_reaping(pid: u32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
        let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
        // SAFETY: `info` is valid for writes for the duration of the call.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The line of a log that says most about a failure: the last error, else the last line.
fn telling_line<'a>(lines: impl DoubleEndedIterator<Item = &'a str> + Clone) -> &'a str {
    lines
        .clone()
        .rev()
        .find(|line| {
            ["FATAL:", "PANIC:", "ERROR:", "error:"]
                .iter()
                .any(|level| line.contains(level))
        })
        .or_else(|| lines.rev().find(|line| !line.trim().is_empty()))
        .unwrap_or("no output")
}

/// The user the server runs as, when this process runs as root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// `None` when this process may run PostgreSQL itself; else the `postgres` user.
fn unprivileged_owner() -> Result<Option<Owner>, TestPostgresError> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    user(UNPRIVILEGED_USER)
        .map(Some)
        .ok_or(TestPostgresError::NoUserToRunAs)
}

fn user(name: &str) -> Option<Owner> {
    let name = CString::new(name).ok()?;
    // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid value for getpwnam_r to
    // fill in.
    let mut entry: libc::passwd = unsafe { mem::zeroed() };
    let mut buffer: Vec<libc::c_char> = vec![0; 16 * 1024];
    let mut found: *mut libc::passwd = ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and the buffer's length is passed with it.
    let failed = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    (failed == 0 && !found.is_null()).then_some(Owner {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}

/// Creates `directory` readable by its owner alone: the server's user, when that is `owner`.
fn create_directory(directory: &Path, owner: Option<Owner>) -> Result<(), TestPostgresError> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(directory)
        .map_err(|error| {
            TestPostgresError::Start(format!("cannot create {}: {error}", directory.display()))
        })?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(directory, Some(owner.uid), Some(owner.gid)).map_err(|error| {
            TestPostgresError::Start(format!(
                "cannot hand {} to the {UNPRIVILEGED_USER} user: {error}",
                directory.display()
            ))
        })?;
    }
    Ok(())
}

/// Says how `program` runs, for messages about it: as which user, in which directory.
fn running(program: &Path, directory: &Path, owner: Option<Owner>) -> String {
    let program = program.display();
    let directory = directory.display();
    match owner {
        Some(_) => format!("{program} as the {UNPRIVILEGED_USER} user in {directory}"),
        None => format!("{program} in {directory}"),
    }
}

/// A command that runs in `directory`, as `owner` when given, with messages in English, and
/// (on Linux) that gets SIGQUIT when the thread that spawns it dies.
fn command(program: &Path, directory: &Path, owner: Option<Owner>) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(directory)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(Stdio::null());
    if let Some(owner) = owner {
        command.uid(owner.uid).gid(owner.gid);
    }
    #[cfg(target_os = "linux")]
    quit_with_this_process(&mut command);
    command
}

#[cfg(target_os = "linux")]
fn quit_with_this_process(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid), reads errno, and neither
    // allocates nor takes a lock. It runs after the child changed its user, which would have
    // cleared the signal.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            // A parent that died before prctl ran sends no signal: the child was re-parented.
            if u32::try_from(libc::getppid()) != Ok(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn free_port() -> Result<u16, TestPostgresError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| TestPostgresError::Start(format!("no free port on 127.0.0.1: {error}")))
}

/// Removes the server directories under `parent` whose process no longer runs (it was killed
/// before it could remove them).
fn remove_stale_directories(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIRECTORY_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !is_running(owner) && entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether a process `pid` exists (a zombie counts).
fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing and takes no pointers.
    let answered = unsafe { libc::kill(pid, 0) } == 0;
    answered || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::sync::mpsc;

    use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DbBackend, Statement};

    use super::*;

    fn start_server() -> Result<ThrowawayServer, TestPostgresError> {
        PostgresBinaries::locate().and_then(|binaries| ThrowawayServer::start(&binaries))
    }

    #[tokio::test]
    async fn a_throwaway_server_answers_then_leaves_nothing_behind() {
        let server = tokio::task::spawn_blocking(start_server)
            .await
            .expect("start the server")
            .unwrap_or_else(|error| panic!("{error}"));
        let mut options = ConnectOptions::new(server.url());
        options.max_connections(1).sqlx_logging(false);
        let connection = Database::connect(options).await.expect("connect");
        let row = connection
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT 1 AS one, current_setting('data_directory') AS data_directory, \
                 pg_encoding_to_char(encoding) AS encoding \
                 FROM pg_database WHERE datname = current_database()",
            ))
            .await
            .expect("SELECT 1")
            .expect("a row");
        assert_eq!(row.try_get::<i32>("", "one").expect("one"), 1);
        let data_directory: String = row.try_get("", "data_directory").expect("data directory");
        assert_eq!(Path::new(&data_directory), server.data_directory());
        assert_eq!(
            row.try_get::<String>("", "encoding").expect("encoding"),
            "UTF8"
        );
        connection.close().await.expect("close");

        let pid = server.pid();
        assert!(is_running(pid));
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt as _;
            // SAFETY: geteuid takes no arguments and cannot fail.
            let expected = match unsafe { libc::geteuid() } {
                0 => user(UNPRIVILEGED_USER).expect("the postgres user").uid,
                uid => uid,
            };
            let runs_as = fs::metadata(format!("/proc/{pid}"))
                .expect("the server's /proc entry")
                .uid();
            assert_eq!(runs_as, expected, "postgres runs as uid {runs_as}");
        }

        let directory = server.directory().to_owned();
        assert!(directory.starts_with(std::env::temp_dir()));
        tokio::task::spawn_blocking(move || {
            server.stop().unwrap_or_else(|error| panic!("{error}"));
            // Stopping again (as dropping does) finds nothing left to do.
            server.stop().unwrap_or_else(|error| panic!("{error}"));
        })
        .await
        .expect("stop the server");
        assert!(!directory.exists(), "{} is left", directory.display());
        assert!(!is_running(pid), "postgres {pid} is left");
    }

    #[test]
    fn stale_directories_of_dead_processes_are_removed() {
        let parent = tempfile::tempdir().expect("temp dir");
        let mut exited = Command::new("true").spawn().expect("run true");
        let dead = exited.id();
        exited.wait().expect("reap true");
        let stale = parent.path().join(format!("{DIRECTORY_PREFIX}{dead}-0123"));
        fs::create_dir_all(stale.join("data")).expect("stale directory");
        let own = parent
            .path()
            .join(format!("{DIRECTORY_PREFIX}{}-0123", std::process::id()));
        fs::create_dir(&own).expect("own directory");
        let unrelated = parent.path().join(format!("{DIRECTORY_PREFIX}data"));
        fs::create_dir(&unrelated).expect("unrelated directory");

        remove_stale_directories(parent.path());
        assert!(!stale.exists(), "the dead process's directory is left");
        assert!(own.exists(), "a running process's directory was removed");
        assert!(unrelated.exists(), "a directory without a pid was removed");
    }

    #[test]
    fn the_telling_line_is_the_last_error() {
        let log = "LOG:  starting\nFATAL:  could not create any TCP/IP sockets\nLOG:  database system is shut down\n";
        assert_eq!(
            telling_line(log.lines()),
            "FATAL:  could not create any TCP/IP sockets"
        );
        assert_eq!(telling_line("one\ntwo\n\n".lines()), "two");
        assert_eq!(telling_line("".lines()), "no output");
    }

    /// Names the parent-death test's child process.
    const CHILD_VAR: &str = "FLINKBROKER_TEST_THROWAWAY_POSTGRES_CHILD";
    /// What the child prints before the server's pid and directory.
    const STARTED: &str = "throwaway postgres started: ";

    /// Plays a test process for [`a_killed_test_process_leaves_no_server_behind`], in a process
    /// of its own: starts a server, says which, and runs until its stdin closes or it is killed.
    #[test]
    #[ignore = "run in a child process by a_killed_test_process_leaves_no_server_behind"]
    fn test_process_for_the_parent_death_test() {
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        let server = start_server().unwrap_or_else(|error| panic!("{error}"));
        println!("{STARTED}{} {}", server.pid(), server.directory().display());
        io::stdout().flush().expect("flush stdout");
        io::copy(&mut io::stdin(), &mut io::sink()).expect("read stdin");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_test_process_leaves_no_server_behind() {
        use std::os::fd::{FromRawFd as _, OwnedFd};

        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, module)| module);
        let log = tempfile::NamedTempFile::new().expect("child log");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                format!("{module}::test_process_for_the_parent_death_test").as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("child log"))
            .spawn()
            .expect("child test process");
        let stdout = child.stdout.take().expect("child stdout");
        let (started, announced) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // The test harness prints the test's name on the same line first.
                if let Some((_, server)) = line.split_once(STARTED) {
                    let _ = started.send(server.to_owned());
                }
            }
        });
        let Ok(server) = announced.recv_timeout(READY_LIMIT * 2) else {
            let _ = child.kill();
            let _ = child.wait();
            let mut output = String::new();
            let _ = log
                .reopen()
                .and_then(|mut file| file.read_to_string(&mut output));
            panic!("the child test process started no server:\n{output}");
        };
        let (pid, directory) = server.split_once(' ').expect("pid and directory");
        let pid: libc::pid_t = pid.parse().expect("pid");
        let directory = PathBuf::from(directory);

        // SAFETY: pidfd_open takes no pointers; the server cannot have been reaped yet, since
        // its parent (the child test process) still runs.
        let descriptor = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let descriptor = libc::c_int::try_from(descriptor).expect("a descriptor");
        assert!(
            descriptor >= 0,
            "pidfd_open: {}",
            io::Error::last_os_error()
        );
        // SAFETY: the descriptor was just opened and nothing else owns it.
        let postmaster = unsafe { OwnedFd::from_raw_fd(descriptor) };

        child.kill().expect("SIGKILL the child test process");
        child.wait().expect("reap the child test process");

        let mut ready = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&postmaster),
            events: libc::POLLIN,
            revents: 0,
        };
        let limit = libc::c_int::try_from(STOP_LIMIT.as_millis()).expect("milliseconds");
        // SAFETY: `ready` is one valid pollfd for the duration of the call.
        let polled = unsafe { libc::poll(&mut ready, 1, limit) };
        if polled != 1 {
            // SAFETY: kill(2) takes no pointers; the pidfd pins nothing, but the server has
            // not exited, so its pid is still its own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("postgres {pid} outlived its killed test process");
        }

        assert!(
            directory.exists(),
            "a killed process cannot remove its directory"
        );
        let parent = directory.parent().expect("the temporary directory");
        remove_stale_directories(parent);
        assert!(!directory.exists(), "{} is left", directory.display());
    }
}
