//! The `flinkbroker` binary: parses the command line, starts logging, runs the broker.

use clap::Parser;
use flinkbroker::config::{Cli, Command};
use flinkbroker::{app, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(config) => {
            let token = shutdown::on_signal();
            app::run(*config, token).await?;
        }
    }
    Ok(())
}
