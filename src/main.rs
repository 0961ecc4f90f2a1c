//! The `flinkbroker` binary: parses the command line, then runs the broker (`serve`, with
//! logging) or a client command.

use std::process::ExitCode;

use clap::Parser;
use flinkbroker::config::{Cli, Command};
use flinkbroker::{app, shutdown, telemetry};

fn main() -> anyhow::Result<ExitCode> {
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
    match cli.command {
        Command::Serve(config) => {
            let export = config.traces.export(|name| std::env::var(name).ok());
            // The OTLP exporter's channel starts its tasks on the runtime.
            let telemetry = {
                let _entered = runtime.enter();
                telemetry::init(&export)?
            };
            let served = runtime.block_on(async {
                let token = shutdown::on_signal();
                app::run(*config, token).await
            });
            // After the server and the job drivers stopped (their spans ended), with the
            // runtime still running the exporter's connection.
            telemetry.shutdown();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(command) => Ok(
            match runtime.block_on(flinkbroker::cli::run(&cli.server, command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {}", error.message());
                    error.exit_code()
                }
            },
        ),
    }
}
