//! PostgreSQL for tests and benches: the one place that decides which server they use, and a
//! database of its own per test on it.
//!
//! The server is chosen once per process, when a test first asks ([`test_server`]):
//! 1. the one `FLINKBROKER_TEST_POSTGRES_URL` names, when it is set;
//! 2. else `postgres://postgres@127.0.0.1:5432/test`, when something answers on 127.0.0.1:5432;
//! 3. else a [`ThrowawayServer`] started from PostgreSQL's own binaries ([`PostgresBinaries`]),
//!    shared by the process's tests and stopped when the process exits.
//!
//! With none of them, every test that needs PostgreSQL fails with one line saying what to set
//! or install.
//!
//! # Layout
//! - `binaries`: finding `initdb` and `postgres` (`PATH`, the distributions' directories, or
//!   `FLINKBROKER_TEST_POSTGRES_BIN_DIR`).
//! - `throwaway`: a server in a temporary directory on a free port, that does not outlive
//!   its process.
//! - `database`: [`PostgresDatabase`], a fresh database dropped with its connections.

mod binaries;
mod database;
mod throwaway;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;

pub use binaries::{BIN_DIR_VAR, PostgresBinaries};
pub use database::{PostgresDatabase, with_database};
pub use throwaway::ThrowawayServer;

/// Names the PostgreSQL server the tests use, as a URL whose database they may create others from.
pub const URL_VAR: &str = "FLINKBROKER_TEST_POSTGRES_URL";

/// Where the tests look for a running server when `FLINKBROKER_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_ADDRESS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5432));

/// How long the tests wait for something to answer on [`DEFAULT_ADDRESS`].
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the tests have no PostgreSQL server.
#[derive(Debug, Clone, Error)]
pub enum TestPostgresError {
    /// No server is named, none answers, and there are no binaries to start one.
    #[error(
        "PostgreSQL tests need a server: set FLINKBROKER_TEST_POSTGRES_URL, run one on \
         127.0.0.1:5432, or install PostgreSQL's server binaries (Debian: postgresql, Fedora: \
         postgresql-server, Homebrew: postgresql@17) so the tests can start their own \
         (found no initdb and postgres {searched})"
    )]
    NoServer {
        /// Where the binaries were looked for: "on PATH or in ...", "in ...".
        searched: String,
    },
    /// The tests run as root and there is no user to start a server as.
    #[error(
        "PostgreSQL refuses to run as root, and there is no `postgres` user to run the tests' \
         own server as: create one, or set FLINKBROKER_TEST_POSTGRES_URL"
    )]
    NoUserToRunAs,
    /// `initdb` or `postgres` failed.
    #[error("the tests' own PostgreSQL server did not start: {0}")]
    Start(String),
    /// The server did not stop, or its directory could not be removed.
    #[error("the tests' own PostgreSQL server did not stop: {0}")]
    Stop(String),
}

/// The PostgreSQL server of this process's tests.
#[derive(Debug)]
pub enum TestServer {
    /// The one `FLINKBROKER_TEST_POSTGRES_URL` names.
    Named(String),
    /// The one that answered on [`DEFAULT_ADDRESS`].
    Found(String),
    /// The one this process started.
    Throwaway(ThrowawayServer),
}

impl TestServer {
    /// A URL of the server, whose user may create databases.
    pub fn url(&self) -> &str {
        match self {
            TestServer::Named(url) | TestServer::Found(url) => url,
            TestServer::Throwaway(server) => server.url(),
        }
    }

    /// Where the server came from, for messages about it.
    pub fn origin(&self) -> &'static str {
        match self {
            TestServer::Named(_) => "named by FLINKBROKER_TEST_POSTGRES_URL",
            TestServer::Found(_) => {
                "it answers on 127.0.0.1:5432; set FLINKBROKER_TEST_POSTGRES_URL to use another"
            }
            TestServer::Throwaway(_) => "the server these tests started",
        }
    }
}

static SHARED: OnceLock<Result<TestServer, TestPostgresError>> = OnceLock::new();

/// The server this process's tests share, chosen (and, when it comes to that, started) on the
/// first call. It blocks while a server starts.
pub fn test_server() -> Result<&'static TestServer, TestPostgresError> {
    SHARED
        .get_or_init(|| {
            let named = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty());
            let server = choose(named, DEFAULT_ADDRESS, || {
                ThrowawayServer::start(&PostgresBinaries::locate()?)
            })?;
            if matches!(server, TestServer::Throwaway(_)) {
                // SAFETY: atexit only records the function pointer; the function takes no
                // arguments and does not unwind.
                unsafe { libc::atexit(stop_the_shared_server) };
            }
            Ok(server)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Takes the named URL, else the default address when something answers there, else a
/// server from `start_own`.
fn choose(
    named: Option<String>,
    default_address: SocketAddr,
    start_own: impl FnOnce() -> Result<ThrowawayServer, TestPostgresError>,
) -> Result<TestServer, TestPostgresError> {
    if let Some(url) = named {
        return Ok(TestServer::Named(url));
    }
    if TcpStream::connect_timeout(&default_address, PROBE_TIMEOUT).is_ok() {
        return Ok(TestServer::Found(format!(
            "postgres://postgres@{default_address}/test"
        )));
    }
    start_own().map(TestServer::Throwaway)
}

/// Stops the shared throwaway server when the process exits: statics are never dropped.
extern "C" fn stop_the_shared_server() {
    if let Some(Ok(TestServer::Throwaway(server))) = SHARED.get()
        && let Err(error) = server.stop()
    {
        let _ = writeln!(std::io::stderr(), "{error}");
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn the_default_server_is_the_one_the_readme_names() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let answering = listener.local_addr().expect("address");
        let chosen = choose(None, answering, || unreachable!("something answers"))
            .expect("the answering server");
        assert!(matches!(chosen, TestServer::Found(_)), "{chosen:?}");
        assert_eq!(
            chosen.url(),
            format!("postgres://postgres@127.0.0.1:{}/test", answering.port())
        );
        assert_eq!(
            format!("postgres://postgres@{DEFAULT_ADDRESS}/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
    }

    #[test]
    fn a_named_url_wins_over_an_answering_default() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let answering = listener.local_addr().expect("address");
        let url = "postgres://someone@db.example:5433/elsewhere".to_owned();
        let chosen = choose(Some(url.clone()), answering, || {
            unreachable!("a URL is named")
        })
        .expect("the named server");
        assert!(matches!(chosen, TestServer::Named(_)), "{chosen:?}");
        assert_eq!(chosen.url(), url);
    }

    #[test]
    fn with_nothing_answering_the_tests_start_their_own() {
        // Nothing can listen on port 0: connecting there is refused at once.
        let silent = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        let asked = Cell::new(false);
        let error = choose(None, silent, || {
            asked.set(true);
            Err(TestPostgresError::NoServer {
                searched: "on PATH".to_owned(),
            })
        })
        .expect_err("no binaries to start one");
        assert!(asked.get(), "the throwaway server was not asked for");
        assert!(matches!(error, TestPostgresError::NoServer { .. }));
    }
}
