//! The `flinkbroker` binary: parses the command line, starts logging, runs the broker.

use clap::Parser;
use flinkbroker::config::{Cli, Command};
use flinkbroker::{app, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    // Result batches are allocated on the database's threads and freed on the runtime's:
    // with an arena per thread glibc fragments, so two arenas serve every thread (before any
    // thread starts).
    // SAFETY: mallopt only changes allocator tuning; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        telemetry::init();
        match cli.command {
            Command::Serve(config) => {
                let token = shutdown::on_signal();
                app::run(*config, token).await?;
            }
        }
        Ok(())
    })
}
