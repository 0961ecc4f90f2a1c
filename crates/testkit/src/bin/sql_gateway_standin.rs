//! Runs the SQL Gateway stand-in (with the JobManager REST API of its Flink jobs on the same
//! port) as a standalone HTTP server with the default pacing.
//!
//! `cargo run -p flinkbroker-testkit --bin sql_gateway_standin -- --listen 127.0.0.1:8083`

use std::net::SocketAddr;

use clap::Parser;

use flinkbroker_testkit::standin::{Standin, StandinConfig};

/// A stateful stand-in for the Flink SQL Gateway and JobManager REST APIs.
#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let standin = Standin::spawn_on(args.listen, StandinConfig::default()).await?;
    println!("SQL Gateway stand-in listening on {}", standin.base_url);
    tokio::signal::ctrl_c().await?;
    standin.shutdown().await;
    Ok(())
}
