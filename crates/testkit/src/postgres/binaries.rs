//! Finding PostgreSQL's server binaries (`initdb` and `postgres`, from one installation).
//!
//! Distributions keep them off `PATH`: Debian and Ubuntu under `/usr/lib/postgresql/<version>/bin`,
//! the PostgreSQL RPMs under `/usr/pgsql-<version>/bin`, Homebrew's versioned formulae under
//! `<prefix>/opt/postgresql@<version>/bin`. Those are searched after `PATH`, newest version first.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::TestPostgresError;

/// Names a directory that holds `initdb` and `postgres`; when set, it is the only one searched.
pub const BIN_DIR_VAR: &str = "FLINKBROKER_TEST_POSTGRES_BIN_DIR";

/// Where installations that keep their binaries off `PATH` put them: `{parent}/{prefix}<version>/bin`.
pub(super) const INSTALL_ROOTS: &[InstallRoot<'static>] = &[
    InstallRoot {
        parent: "/usr/lib/postgresql",
        prefix: "",
    },
    InstallRoot {
        parent: "/usr",
        prefix: "pgsql-",
    },
    InstallRoot {
        parent: "/opt/homebrew/opt",
        prefix: "postgresql@",
    },
    InstallRoot {
        parent: "/usr/local/opt",
        prefix: "postgresql@",
    },
];

/// A directory of versioned PostgreSQL installations.
#[derive(Debug, Clone, Copy)]
pub(super) struct InstallRoot<'a> {
    /// The directory holding one entry per version.
    pub(super) parent: &'a str,
    /// What each entry's name starts with, before the version.
    pub(super) prefix: &'a str,
}

impl InstallRoot<'_> {
    /// The pattern this root stands for, as the error message shows it.
    fn pattern(&self) -> String {
        format!("{}/{}*/bin", self.parent, self.prefix)
    }

    /// The `bin` directories of the installations under this root, newest version first.
    fn bin_directories(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.parent) else {
            return Vec::new();
        };
        let mut versions: Vec<(Vec<u64>, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let version = parse_version(name.strip_prefix(self.prefix)?)?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        versions.into_iter().map(|(_, bin)| bin).collect()
    }
}

/// `15` -> `[15]`, `9.6` -> `[9, 6]`; anything else (`main`, `15-beta`) is not a version.
fn parse_version(text: &str) -> Option<Vec<u64>> {
    text.split('.').map(|part| part.parse().ok()).collect()
}

/// One installation's `initdb` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresBinaries {
    directory: PathBuf,
}

impl PostgresBinaries {
    /// Finds the binaries in `FLINKBROKER_TEST_POSTGRES_BIN_DIR` when it is set, else on `PATH`
    /// or in the usual installation directories.
    pub fn locate() -> Result<PostgresBinaries, TestPostgresError> {
        Self::locate_from(
            std::env::var_os(BIN_DIR_VAR),
            std::env::var_os("PATH"),
            INSTALL_ROOTS,
        )
    }

    /// Finds the binaries in `bin_dir` alone when given, else in the directories of
    /// `path` and then under `install_roots`.
    pub(super) fn locate_from(
        bin_dir: Option<OsString>,
        path: Option<OsString>,
        install_roots: &[InstallRoot<'_>],
    ) -> Result<PostgresBinaries, TestPostgresError> {
        if let Some(bin_dir) = bin_dir {
            let directory = PathBuf::from(bin_dir);
            return Self::in_directory(&directory).ok_or_else(|| TestPostgresError::NoServer {
                searched: format!("in {BIN_DIR_VAR}={}", directory.display()),
            });
        }
        let on_path = path
            .as_deref()
            .map(|path| std::env::split_paths(path).collect::<Vec<_>>())
            .unwrap_or_default();
        let installed = install_roots.iter().flat_map(InstallRoot::bin_directories);
        on_path
            .into_iter()
            .chain(installed)
            .find_map(|directory| Self::in_directory(&directory))
            .ok_or_else(|| {
                let mut searched = "on PATH".to_owned();
                if !install_roots.is_empty() {
                    let patterns: Vec<String> =
                        install_roots.iter().map(InstallRoot::pattern).collect();
                    searched = format!("{searched} or in {}", patterns.join(", "));
                }
                TestPostgresError::NoServer { searched }
            })
    }

    /// The binaries in `directory`, when it holds both.
    fn in_directory(directory: &Path) -> Option<PostgresBinaries> {
        let binaries = PostgresBinaries {
            directory: directory.to_owned(),
        };
        (is_executable(&binaries.initdb()) && is_executable(&binaries.postgres()))
            .then_some(binaries)
    }

    /// The directory holding both binaries.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// `initdb`, which creates a cluster's data directory.
    pub fn initdb(&self) -> PathBuf {
        self.directory.join("initdb")
    }

    /// `postgres`, the server.
    pub fn postgres(&self) -> PathBuf {
        self.directory.join("postgres")
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `directory` hold an executable `initdb` and `postgres`.
    fn install(directory: &Path) {
        fs::create_dir_all(directory).expect("create the bin directory");
        for name in ["initdb", "postgres"] {
            let binary = directory.join(name);
            fs::write(&binary, "#!/bin/sh\n").expect("write a binary");
            fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }

    fn text(path: &Path) -> &str {
        path.to_str().expect("a UTF-8 temp path")
    }

    #[test]
    fn missing_binaries_are_one_line_naming_what_to_install() {
        let empty = tempfile::tempdir().expect("temp dir");
        let roots = [InstallRoot {
            parent: text(empty.path()),
            prefix: "",
        }];
        let error = PostgresBinaries::locate_from(None, Some(empty.path().into()), &roots)
            .expect_err("no binaries anywhere");
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        for named in [
            "FLINKBROKER_TEST_POSTGRES_URL",
            "127.0.0.1:5432",
            "Debian: postgresql",
            "initdb",
            &format!(
                "found no initdb and postgres on PATH or in {}/*/bin)",
                empty.path().display()
            ),
        ] {
            assert!(message.contains(named), "{named:?} missing from: {message}");
        }
    }

    #[test]
    fn a_named_bin_dir_is_the_only_one_searched() {
        let on_path = tempfile::tempdir().expect("temp dir");
        install(on_path.path());
        let named = tempfile::tempdir().expect("temp dir");
        let error = PostgresBinaries::locate_from(
            Some(named.path().into()),
            Some(on_path.path().into()),
            &[],
        )
        .expect_err("the named directory is empty");
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(
            message.contains(&format!("in {BIN_DIR_VAR}={})", named.path().display())),
            "{message}"
        );

        install(named.path());
        let found = PostgresBinaries::locate_from(Some(named.path().into()), None, &[])
            .expect("the named directory");
        assert_eq!(found.directory(), named.path());
        assert_eq!(found.postgres(), named.path().join("postgres"));
    }

    #[test]
    fn path_comes_first_then_the_newest_installed_version() {
        let root = tempfile::tempdir().expect("temp dir");
        for version in ["9.6", "15", "16", "main"] {
            install(&root.path().join(version).join("bin"));
        }
        // A version whose directory lacks the binaries is passed over.
        fs::create_dir_all(root.path().join("17").join("bin")).expect("empty version");
        let roots = [InstallRoot {
            parent: text(root.path()),
            prefix: "",
        }];
        let empty_path = tempfile::tempdir().expect("temp dir");
        let found = PostgresBinaries::locate_from(None, Some(empty_path.path().into()), &roots)
            .expect("an installed version");
        assert_eq!(found.directory(), root.path().join("16").join("bin"));

        let on_path = tempfile::tempdir().expect("temp dir");
        install(on_path.path());
        let path = std::env::join_paths([empty_path.path(), on_path.path()]).expect("PATH");
        let found =
            PostgresBinaries::locate_from(None, Some(path), &roots).expect("the one on PATH");
        assert_eq!(found.directory(), on_path.path());
    }

    #[test]
    fn a_directory_holding_only_one_binary_is_passed_over() {
        let directory = tempfile::tempdir().expect("temp dir");
        install(directory.path());
        fs::remove_file(directory.path().join("postgres")).expect("remove postgres");
        assert!(PostgresBinaries::locate_from(Some(directory.path().into()), None, &[]).is_err());
    }

    #[test]
    fn versions_are_numbers_separated_by_dots() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("main"), None);
        assert_eq!(parse_version("15-beta"), None);
        assert_eq!(parse_version(""), None);
    }
}
