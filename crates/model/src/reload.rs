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
/// names the file and says what is wrong with it; the reader's or the parser's error, if any,
/// is its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read {}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON of the shape its kind has.
    #[error("{} is not a valid {kind}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// What the file must be ("token file", "tenant policy file", …).
        kind: String,
        /// Where and how the JSON does not fit.
        #[source]
        source: serde_json::Error,
    },
    /// The file reads as JSON but holds something it must not: the message names the file and
    /// the entry, and says what is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for ConfigFileError {
    fn from(message: String) -> Self {
        ConfigFileError::Invalid(message)
    }
}

/// The error and its causes in one line, for a parse function that reports in text.
impl From<ConfigFileError> for String {
    fn from(error: ConfigFileError) -> Self {
        with_causes(&error)
    }
}

/// Returns an error followed by its causes, joined by ": ", for a log line or a one-line
/// message.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

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
) -> std::result::Result<T, ConfigFileError> {
    let text = std::fs::read(path).map_err(|source| ConfigFileError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| ConfigFileError::NotJson {
        path: path.to_owned(),
        kind: kind.to_owned(),
        source,
    })
}

/// Reads and checks a file's contents; the error says what is wrong, naming the file: a
/// [`ConfigFileError`], or its text.
pub type Parse<T, E = String> = fn(&Path) -> std::result::Result<T, E>;

/// The contents of a file, read again when it changes; `E` is the error its parse function
/// returns.
#[derive(Debug)]
pub struct Reloading<T, E = String> {
    /// What the file holds, for the log ("bearer tokens", "tenant policies").
    what: &'static str,
    path: PathBuf,
    parse: Parse<T, E>,
    value: RwLock<Arc<T>>,
    stamp: RwLock<Option<FileStamp>>,
}

impl<T: Send + Sync + 'static, E: Into<ConfigFileError> + 'static> Reloading<T, E> {
    /// Reads the file; an unreadable or invalid file is an error (the broker does not start).
    pub fn load(
        what: &'static str,
        path: &Path,
        parse: Parse<T, E>,
    ) -> Result<Reloading<T, E>, ConfigFileError> {
        let before = stamp(path);
        let value = parse(path).map_err(Into::into)?;
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
            Err(error) => {
                let error: ConfigFileError = error.into();
                let error = with_causes(&error);
                error!(what = self.what, %error, "configuration file changed but cannot be used; the previous contents stay in force");
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        names: Vec<String>,
    }

    #[test]
    fn an_unreadable_file_keeps_the_io_error_as_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let error = read_json::<Listing>(&missing, "listing").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read {}", missing.display())
        );
        let cause = error.source().expect("the I/O error");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("an I/O error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let expected = format!("cannot read {}: {io}", missing.display());
        assert_eq!(String::from(error), expected);
    }

    #[test]
    fn a_file_that_is_not_the_json_of_its_kind_keeps_the_parser_error_as_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listing.json");
        std::fs::write(&path, r#"{"names": ["a"], "extra": 1}"#).unwrap();
        let error = read_json::<Listing>(&path, "listing").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is not a valid listing", path.display())
        );
        let cause = error.source().expect("the parser's error");
        assert!(
            cause.downcast_ref::<serde_json::Error>().is_some(),
            "{cause:?}"
        );
        let text = String::from(error);
        assert!(text.contains("unknown field `extra`"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn a_file_read_at_start_keeps_its_parse_error_and_a_changed_invalid_file_keeps_the_contents() {
        fn names(path: &Path) -> Result<Vec<String>, ConfigFileError> {
            let listing: Listing = read_json(path, "listing")?;
            if listing.names.is_empty() {
                return Err(format!("{} names nothing", path.display()).into());
            }
            Ok(listing.names)
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listing.json");
        let error = Reloading::load("names", &path, names).unwrap_err();
        assert!(
            matches!(error, ConfigFileError::Unreadable { .. }),
            "{error:?}"
        );

        std::fs::write(&path, r#"{"names": ["a"]}"#).unwrap();
        let file = Reloading::load("names", &path, names).unwrap();
        assert_eq!(*file.current(), ["a"]);
        std::fs::write(&path, r#"{"names": []}"#).unwrap();
        assert!(!file.reload_if_changed());
        assert_eq!(*file.current(), ["a"]);
        std::fs::write(&path, r#"{"names": ["a", "b"]}"#).unwrap();
        assert!(file.reload_if_changed());
        assert_eq!(*file.current(), ["a", "b"]);
    }
}
