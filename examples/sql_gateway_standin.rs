//! Runs the SQL Gateway stand-in (with the JobManager REST API of its Flink jobs on the same
//! port) as a standalone HTTP server.
//!
//! `cargo run --example sql_gateway_standin -- --listen 127.0.0.1:8083`

#[path = "../tests/support/sql_gateway_standin/mod.rs"]
mod sql_gateway_standin;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use sql_gateway_standin::{Standin, StandinConfig};

/// A stateful stand-in for the Flink SQL Gateway and JobManager REST APIs.
#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: SocketAddr,
    /// NOT_READY pages served before a statement's first PAYLOAD page.
    #[arg(long)]
    not_ready_pages: Option<u32>,
    /// Max rows per PAYLOAD page.
    #[arg(long)]
    rows_per_page: Option<usize>,
    /// Do not put empty PAYLOAD pages before pages with rows.
    #[arg(long)]
    no_empty_payload_pages: bool,
    /// Milliseconds a job-submitting statement stays RUNNING when nobody fetches.
    #[arg(long)]
    submit_delay_ms: Option<u64>,
    /// Serve datagen rows as fast as they are fetched, ignoring `rows-per-second`.
    #[arg(long)]
    ignore_rows_per_second: bool,
    /// Milliseconds `GET /jobs/{id}` keeps reporting a cancelled Flink job RUNNING, and a stop
    /// with savepoint takes.
    #[arg(long)]
    cancel_delay_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut config = StandinConfig::default();
    if let Some(n) = args.not_ready_pages {
        config.not_ready_pages = n;
    }
    if let Some(n) = args.rows_per_page {
        config.rows_per_page = n;
    }
    if args.no_empty_payload_pages {
        config.empty_payload_pages = false;
    }
    if let Some(ms) = args.submit_delay_ms {
        config.submit_delay = Duration::from_millis(ms);
    }
    if args.ignore_rows_per_second {
        config.honor_rows_per_second = false;
    }
    if let Some(ms) = args.cancel_delay_ms {
        config.cancel_delay = Duration::from_millis(ms);
    }
    let standin = Standin::spawn_on(args.listen, config).await?;
    println!("SQL Gateway stand-in listening on {}", standin.base_url);
    tokio::signal::ctrl_c().await?;
    standin.shutdown().await;
    Ok(())
}
