//! Runs the SQL Gateway stand-in (with the JobManager REST API of its Flink jobs on the same
//! port) as a standalone HTTP server with the default pacing.
//!
//! `cargo run -p flinkbroker-testkit --bin sql_gateway_standin -- --listen 127.0.0.1:8083`
//! (`--flink-version 1.19.3` or `2.1.3` to answer as those releases do).

use std::net::SocketAddr;

use clap::Parser;

use flinkbroker_testkit::standin::{FlinkRelease, Standin, StandinConfig};

/// A stateful stand-in for the Flink SQL Gateway and JobManager REST APIs.
#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: SocketAddr,
    /// The Flink release to answer as (1.19.3, 1.20.3 or 2.1.3): the REST API versions
    /// `/api_versions` lists and the version `/info` reports.
    #[arg(long, default_value_t = FlinkRelease::default())]
    flink_version: FlinkRelease,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = StandinConfig {
        flink_release: args.flink_version,
        ..StandinConfig::default()
    };
    let standin = Standin::spawn_on(args.listen, config).await?;
    println!(
        "SQL Gateway stand-in (Flink {}) listening on {}",
        args.flink_version, standin.base_url
    );
    tokio::signal::ctrl_c().await?;
    standin.shutdown().await;
    Ok(())
}
