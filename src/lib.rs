//! The `flinkbroker` binary's own code: its command line, turned into each crate's
//! configuration. The broker itself lives in the crates under `crates/` (see
//! `ARCHITECTURE.md`); `main.rs` runs the server or a client command.
//!
//! # Layout
//! - [`config`]: the flags of `serve` and the client commands, and their conversion into
//!   `flinkbroker_server::config::ServerConfig`.
//! - [`install_crypto_provider`]: the process-wide TLS provider, installed once at start-up.

#![warn(unreachable_pub)]

pub mod config;

/// Installs the process-wide TLS crypto provider (ring) once; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
