//! A configuration file read again when it changes: the token file, the tenant policy file.
//!
//! The file is looked at every interval (its modification time and length); a changed file
//! that reads and checks takes effect at once, and one that does not is logged while the
//! previous contents stay in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// A configuration file that cannot be used: unreadable, or not what it must hold. The message
/// names the file and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigFileError(pub String);

/// What a file looked like when it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

/// Reads a JSON configuration file; the error names the file and says what is wrong with it
/// (`kind` names the file's kind: "token file", "tenant policy file", …).
pub fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &str,
) -> std::result::Result<T, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a valid {kind}: {e}", path.display()))
}

/// Reads and checks a file's contents; the error says what is wrong, naming the file.
pub type Parse<T> = fn(&Path) -> std::result::Result<T, String>;

/// The contents of a file, read again when it changes.
#[derive(Debug)]
pub struct Reloading<T> {
    /// What the file holds, for the log ("bearer tokens", "tenant policies").
    what: &'static str,
    path: PathBuf,
    parse: Parse<T>,
    value: RwLock<Arc<T>>,
    stamp: RwLock<Option<FileStamp>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads the file; an unreadable or invalid file is an error (the broker does not start).
    pub fn load(
        what: &'static str,
        path: &Path,
        parse: Parse<T>,
    ) -> Result<Reloading<T>, ConfigFileError> {
        let before = stamp(path);
        let value = parse(path).map_err(ConfigFileError)?;
        info!(file = %path.display(), what, "configuration file loaded");
        Ok(Reloading {
            what,
            path: path.to_owned(),
            parse,
            value: RwLock::new(Arc::new(value)),
            stamp: RwLock::new(before),
        })
    }

    /// What the file held when it was last read successfully.
    pub fn current(&self) -> Arc<T> {
        match self.value.read() {
            Ok(value) => Arc::clone(&value),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the file again if it changed since it was last read; an invalid file leaves the
    /// contents as they were. Returns whether new contents took effect.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        let last = self.stamp.read().map(|s| *s).unwrap_or(None);
        if now == last {
            return false;
        }
        if let Ok(mut recorded) = self.stamp.write() {
            *recorded = now;
        }
        match (self.parse)(&self.path) {
            Ok(value) => {
                info!(file = %self.path.display(), what = self.what, "configuration file reloaded");
                if let Ok(mut held) = self.value.write() {
                    *held = Arc::new(value);
                }
                true
            }
            Err(message) => {
                error!(what = self.what, %message, "configuration file changed but cannot be used; the previous contents stay in force");
                false
            }
        }
    }

    /// Looks at the file every `interval` until `shutdown`.
    pub fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => { self.reload_if_changed(); }
                }
            }
        });
    }
}
