//! The `flinkbroker` binary: parses the command line, then runs the broker (`serve`, with
//! logging) or a client command.
//!
//! A broker that cannot start (a bad flag, a port in use, an unreadable file, a store that
//! cannot be opened) prints one line naming the cause and exits with the usage code 2.

#![warn(unreachable_pub)]

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use flinkbroker::config::{Cli, Command, ServeConfig};
use flinkbroker::one_line;
use flinkbroker_server::{app, shutdown, telemetry};

/// The exit code of a broker that could not start or stopped on an error.
const START_FAILED: u8 = 2;

fn main() -> ExitCode {
    // Result batches are allocated on the database's threads and freed on the runtime's:
    // with an arena per thread glibc fragments, so two arenas serve every thread (before any
    // thread starts).
    // SAFETY: mallopt only changes allocator tuning; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refuse_command_line(error),
    };
    flinkbroker::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::from(START_FAILED);
        }
    };
    match cli.command {
        Command::Serve(config) => match serve(&runtime, *config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {}", one_line(&format!("{error:#}")));
                ExitCode::from(START_FAILED)
            }
        },
        Command::Client(command) => {
            match runtime.block_on(flinkbroker_cli::run(&cli.server, command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {}", error.message());
                    error.exit_code()
                }
            }
        }
    }
}

/// Answers a command line clap refused: help and version as clap prints them, anything else
/// (an unknown flag, a bad value, a missing argument) as one line naming the flag, with the
/// usage code.
fn refuse_command_line(error: clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
        _ => {
            eprintln!("{}", one_line(&error.render().to_string()));
            ExitCode::from(START_FAILED)
        }
    }
}

/// Hands the memory glibc's arenas hold free back to the operating system every `interval`
/// (never when it is zero), off the runtime's workers.
async fn trim_memory(interval: std::time::Duration) {
    if interval.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first tick is now: the broker has freed nothing yet.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the
        // kernel; it takes the arenas' locks and is safe from any thread.
        let trimmed = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        if let Ok(released) = trimmed {
            tracing::debug!(
                released = released != 0,
                "freed memory handed back to the operating system"
            );
        }
    }
}

/// Runs the broker until SIGINT or SIGTERM, with logging and (when configured) trace export.
fn serve(runtime: &tokio::runtime::Runtime, config: ServeConfig) -> anyhow::Result<()> {
    let variable = |name: &str| std::env::var(name).ok();
    let export = config.trace_export(variable);
    let logs = config.log_output(std::io::stdout().is_terminal(), variable);
    // The OTLP exporter's channel starts its tasks on the runtime.
    let telemetry = {
        let _entered = runtime.enter();
        telemetry::init(logs, &export)?
    };
    let trim_interval = config.memory_trim_interval;
    let served = config.server_config().and_then(|server| {
        runtime.block_on(async {
            let token = shutdown::on_signal();
            let trimming = tokio::spawn(trim_memory(trim_interval));
            let served = app::run(server, token).await;
            trimming.abort();
            served
        })
    });
    // After the server and the job drivers stopped (their spans ended), with the runtime still
    // running the exporter's connection.
    telemetry.shutdown();
    served
}
