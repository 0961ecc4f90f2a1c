//! Logging setup.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber: `RUST_LOG` if set, else `info` with sqlx quiet.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
