//! Command-line flags; every flag is also readable from a `FLINKBROKER_*` variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The `flinkbroker` command line.
#[derive(Debug, Parser)]
#[command(
    name = "flinkbroker",
    version,
    about = "gRPC control plane for PyFlink and Flink SQL jobs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the broker until SIGINT or SIGTERM.
    Serve(Box<ServeConfig>),
}

/// Everything `flinkbroker serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the gRPC server listens on.
    #[arg(long, env = "FLINKBROKER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH?mode=rwc`, `sqlite::memory:` or `postgres://…`.
    #[arg(
        long,
        env = "FLINKBROKER_DATABASE_URL",
        default_value = "sqlite://data/flinkbroker.db?mode=rwc"
    )]
    pub database_url: String,

    /// Base URL of the Flink SQL Gateway REST API.
    #[arg(
        long,
        env = "FLINKBROKER_SQL_GATEWAY_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub sql_gateway_url: String,

    /// Base URL of the Flink JobManager REST API.
    #[arg(
        long,
        env = "FLINKBROKER_JOBMANAGER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub jobmanager_url: String,

    /// Timeout of one HTTP request to the SQL Gateway or the JobManager.
    #[arg(long, env = "FLINKBROKER_HTTP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Largest SQL script or Python program accepted, in bytes.
    #[arg(long, env = "FLINKBROKER_MAX_SCRIPT_BYTES", default_value_t = 1024 * 1024)]
    pub max_script_bytes: usize,

    /// Most statements one SQL script may hold.
    #[arg(long, env = "FLINKBROKER_MAX_STATEMENTS", default_value_t = 1000)]
    pub max_statements: usize,

    /// How often a job's SQL Gateway session is kept alive.
    #[arg(long, env = "FLINKBROKER_HEARTBEAT_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// How often running jobs are checked (operation status, Flink job status).
    #[arg(long, env = "FLINKBROKER_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Longest pause between two result fetches while the gateway has nothing new.
    #[arg(long, env = "FLINKBROKER_MAX_FETCH_BACKOFF", default_value = "500ms", value_parser = parse_duration)]
    pub max_fetch_backoff: Duration,

    /// Longest a StreamOperationResults call may run, whatever the caller asks.
    #[arg(long, env = "FLINKBROKER_MAX_STREAM_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_stream_duration: Duration,

    /// How often the health of the SQL Gateway and the JobManager is checked.
    #[arg(long, env = "FLINKBROKER_HEALTH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// How long in-flight calls may run on after a shutdown signal.
    #[arg(long, env = "FLINKBROKER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl ServeConfig {
    /// Returns the configuration `flinkbroker serve` uses with no flags (environment ignored).
    pub fn defaults() -> Self {
        let mut config = Self::from_args(&[]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 50051));
        config
    }

    /// Parses `serve` flags as if given on the command line, ignoring nothing but the binary name.
    pub fn from_args(args: &[&str]) -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeConfig,
        }
        let argv = std::iter::once("flinkbroker").chain(args.iter().copied());
        match Wrapper::try_parse_from(argv) {
            Ok(wrapper) => wrapper.serve,
            Err(error) => error.exit(),
        }
    }
}

/// Parses durations such as `500ms`, `30s`, `10m`, `24h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 30s, 10m, 24h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(value),
        "" | "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.saturating_mul(60)),
        "h" => Duration::from_secs(value.saturating_mul(3600)),
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn serve_alone_gives_working_defaults() {
        let config = ServeConfig::from_args(&["--listen", "127.0.0.1:0"]);
        assert_eq!(config.max_script_bytes, 1024 * 1024);
        assert_eq!(config.sql_gateway_url, "http://127.0.0.1:8083");
        assert_eq!(config.jobmanager_url, "http://127.0.0.1:8081");
    }
}
