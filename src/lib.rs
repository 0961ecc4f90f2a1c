//! The `flinkbroker` binary's own code: its command line, turned into each crate's
//! configuration. The broker itself lives in the crates under `crates/` (see
//! `ARCHITECTURE.md`); `main.rs` runs the server or a client command.
//!
//! # Layout
//! - [`config`]: the flags of `serve` and the client commands, and their conversion into
//!   `flinkbroker_server::config::ServerConfig`.
//! - [`install_crypto_provider`]: the process-wide TLS provider, installed once at start-up.
//! - [`one_line`]: a start-up error as the one line the binary prints.

#![warn(unreachable_pub)]

pub mod config;

/// Turns an error message that may span lines (clap's, or a cause's) into one line: each line
/// trimmed, blank lines and clap's `Usage:` lines left out, the rest joined by spaces.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Usage:"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs the process-wide TLS crypto provider (ring) once; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_several_lines_becomes_one_without_the_usage() {
        let clap = "error: invalid value 'foo' for '--job-runner <JOB_RUNNER>'\n  [possible values: \
                    local, kubernetes]\n\nUsage: flinkbroker serve [OPTIONS]\n\nFor more \
                    information, try '--help'.\n";
        assert_eq!(
            one_line(clap),
            "error: invalid value 'foo' for '--job-runner <JOB_RUNNER>' [possible values: \
             local, kubernetes] For more information, try '--help'."
        );
        assert_eq!(one_line("cannot listen: in use"), "cannot listen: in use");
    }
}
