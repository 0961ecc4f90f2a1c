//! What differs between the Flink releases the broker serves (1.19, 1.20 and 2.x), in one
//! place: the configuration keys and `flink run` options that restore a job from a savepoint.
//! (The SQL Gateway's REST API versions are negotiated by the gateway client.)
//!
//! Measured against real clusters of 1.19.3, 1.20.3 and 2.1.3
//! (`tests/fixtures/sql-gateway-recorded/`):
//!
//! | | 1.19 | 1.20 | 2.x |
//! | --- | --- | --- | --- |
//! | savepoint path key | `execution.savepoint.path` | `execution.state-recovery.path` (the 1.19 key still works) | `execution.state-recovery.path` (the 1.19 key still works on 2.1.3) |
//! | non-restored state key | `execution.savepoint.ignore-unclaimed-state` | `execution.state-recovery.ignore-unclaimed-state` | `execution.state-recovery.ignore-unclaimed-state` |
//! | claim mode key | `execution.savepoint-restore-mode` | `execution.state-recovery.claim-mode` | `execution.state-recovery.claim-mode` |
//! | claim modes | CLAIM, NO_CLAIM, LEGACY | CLAIM, NO_CLAIM, LEGACY (deprecated) | CLAIM, NO_CLAIM, LEGACY (deprecated) |
//! | `flink run` claim option | `-rm`/`--restoreMode` | `-cm`/`--claimMode` (`-rm` deprecated) | `-cm`/`--claimMode` |
//!
//! `-s`/`--fromSavepoint` and `-n`/`--allowNonRestoredState` are the same in all three. The
//! broker offers CLAIM and NO_CLAIM only (LEGACY is deprecated); 1.19 ignores the
//! `execution.state-recovery.*` keys.

use std::fmt;
use std::str::FromStr;

use crate::job::{ClaimMode, Restore};

/// A Flink release, as the JobManager reports it (`flink-version` in `GET /config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlinkVersion {
    /// The major version (1 or 2).
    pub major: u32,
    /// The minor version.
    pub minor: u32,
}

impl FlinkVersion {
    /// Flink 1.19, the oldest release the broker serves.
    pub const V1_19: FlinkVersion = FlinkVersion {
        major: 1,
        minor: 19,
    };
    /// Flink 1.20, which renamed the restore options (`execution.state-recovery.*`).
    pub const V1_20: FlinkVersion = FlinkVersion {
        major: 1,
        minor: 20,
    };

    /// The configuration a Flink job restoring from `restore` is submitted with (a SQL
    /// statement's `executionConfig`).
    pub fn restore_configuration(&self, restore: &Restore) -> Vec<(&'static str, String)> {
        let (path, ignore, claim) = if *self >= Self::V1_20 {
            (
                "execution.state-recovery.path",
                "execution.state-recovery.ignore-unclaimed-state",
                "execution.state-recovery.claim-mode",
            )
        } else {
            (
                "execution.savepoint.path",
                "execution.savepoint.ignore-unclaimed-state",
                "execution.savepoint-restore-mode",
            )
        };
        vec![
            (path, restore.savepoint_path.clone()),
            (ignore, restore.allow_non_restored_state.to_string()),
            (claim, restore.claim_mode.as_str().to_owned()),
        ]
    }

    /// The `flink run` arguments that restore a program's Flink job from `restore`.
    pub fn restore_arguments(&self, restore: &Restore) -> Vec<String> {
        let mut arguments = vec!["-s".to_owned(), restore.savepoint_path.clone()];
        if restore.allow_non_restored_state {
            arguments.push("-n".to_owned());
        }
        if restore.claim_mode != ClaimMode::NoClaim {
            let option = if *self >= Self::V1_20 { "-cm" } else { "-rm" };
            arguments.push(option.to_owned());
            arguments.push(restore.claim_mode.as_str().to_owned());
        }
        arguments
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version text that is not `MAJOR.MINOR[.PATCH][-SUFFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a flink version like 1.20.3")]
pub struct NotAVersion(pub String);

impl FromStr for FlinkVersion {
    type Err = NotAVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || NotAVersion(text.to_owned());
        let mut parts = text.trim().split(['.', '-']);
        let major = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let minor = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        Ok(FlinkVersion { major, minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(claim_mode: ClaimMode, allow: bool) -> Restore {
        Restore {
            savepoint_path: "file:/sp/savepoint-1".into(),
            allow_non_restored_state: allow,
            claim_mode,
        }
    }

    #[test]
    fn versions_parse_from_what_the_jobmanager_reports() {
        for (text, major, minor) in [
            ("1.19.3", 1, 19),
            ("1.20.3", 1, 20),
            ("2.1.3", 2, 1),
            ("2.0-SNAPSHOT", 2, 0),
        ] {
            assert_eq!(text.parse(), Ok(FlinkVersion { major, minor }));
        }
        assert!("dev".parse::<FlinkVersion>().is_err());
        assert!("1".parse::<FlinkVersion>().is_err());
    }

    #[test]
    fn restore_keys_follow_the_release() {
        let r = restore(ClaimMode::Claim, true);
        let v119 = "1.19.3".parse::<FlinkVersion>().unwrap();
        assert_eq!(
            v119.restore_configuration(&r),
            [
                (
                    "execution.savepoint.path",
                    "file:/sp/savepoint-1".to_owned()
                ),
                ("execution.savepoint.ignore-unclaimed-state", "true".into()),
                ("execution.savepoint-restore-mode", "CLAIM".into()),
            ]
        );
        for later in ["1.20.3", "2.1.3"] {
            let v = later.parse::<FlinkVersion>().unwrap();
            assert_eq!(
                v.restore_configuration(&r),
                [
                    (
                        "execution.state-recovery.path",
                        "file:/sp/savepoint-1".to_owned()
                    ),
                    (
                        "execution.state-recovery.ignore-unclaimed-state",
                        "true".into()
                    ),
                    ("execution.state-recovery.claim-mode", "CLAIM".into()),
                ]
            );
        }
    }

    #[test]
    fn flink_run_options_follow_the_release() {
        let v119 = "1.19.3".parse::<FlinkVersion>().unwrap();
        let v21 = "2.1.3".parse::<FlinkVersion>().unwrap();
        assert_eq!(
            v119.restore_arguments(&restore(ClaimMode::NoClaim, false)),
            ["-s", "file:/sp/savepoint-1"]
        );
        assert_eq!(
            v119.restore_arguments(&restore(ClaimMode::Claim, true)),
            ["-s", "file:/sp/savepoint-1", "-n", "-rm", "CLAIM"]
        );
        assert_eq!(
            v21.restore_arguments(&restore(ClaimMode::Claim, false)),
            ["-s", "file:/sp/savepoint-1", "-cm", "CLAIM"]
        );
    }
}
