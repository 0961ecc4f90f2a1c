//! Static bearer tokens from `--auth-tokens-file`, which maps the SHA-256 of each token to its
//! principal, so that the file holds no token itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Principal, Role, check_principal};
use flinkbroker_model::reload::{ConfigFileError, Reloading, read_json};

/// One entry of the token file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Lowercase or uppercase hex of the token's SHA-256.
    sha256: String,
    principal: String,
    tenant: String,
    roles: Vec<Role>,
}

/// The token file: `{"tokens": [{"sha256": "…", "principal": "…", "tenant": "…",
/// "roles": ["submitter", "reader"]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// The principals of a token file by the SHA-256 of their token.
#[derive(Debug)]
pub(crate) struct TokenTable(HashMap<[u8; 32], Arc<Principal>>);

/// What the file holds, for the log.
const WHAT: &str = "bearer tokens";

/// The flag that names the file.
const FLAG: &str = "--auth-tokens-file";

/// Reads and checks the file.
fn read(path: &Path) -> Result<TokenTable, ConfigFileError> {
    let file: TokenFile = read_json(path, "token file")?;
    let mut table = HashMap::new();
    for (index, entry) in file.tokens.into_iter().enumerate() {
        let at = format!("{} token {index} ({})", path.display(), entry.principal);
        let mut digest = [0u8; 32];
        hex::decode_to_slice(entry.sha256.trim(), &mut digest)
            .map_err(|e| format!("{at}: sha256 is not 64 hex digits: {e}"))?;
        let principal = check_principal(&at, entry.principal, entry.tenant, entry.roles)?;
        if table.insert(digest, Arc::new(principal)).is_some() {
            return Err(format!("{at}: the same token hash appears twice").into());
        }
    }
    Ok(TokenTable(table))
}

/// The tokens of a token file, read again when the file changes.
#[derive(Debug)]
pub(crate) struct TokenSource {
    file: Arc<Reloading<TokenTable, ConfigFileError>>,
}

impl TokenSource {
    /// Reads the file; an unreadable or invalid file is an error naming the flag (the broker
    /// does not start).
    pub(crate) fn load(path: &Path) -> anyhow::Result<TokenSource> {
        let file =
            Reloading::load(WHAT, path, read).with_context(|| format!("cannot use {FLAG}"))?;
        Ok(TokenSource {
            file: Arc::new(file),
        })
    }

    /// The principal whose token this is.
    pub(crate) fn lookup(&self, token: &str) -> Option<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.file.current().0.get(&digest).cloned()
    }

    /// Looks at the file every `interval` until `shutdown`.
    pub(crate) fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        Arc::clone(&self.file).watch(interval, shutdown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_token_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        for (text, reason) in [
            (
                r#"{"tokens": [{"sha256": "abc", "principal": "p", "tenant": "t", "roles": ["reader"]}]}"#,
                "64 hex digits",
            ),
            (
                r#"{"tokens": [{"sha256": "00000000000000000000000000000000000000000000000000000000000000ff", "principal": "p", "tenant": "t", "roles": []}]}"#,
                "names no role",
            ),
            (
                r#"{"tokens": [{"sha256": "00", "principal": "p", "tenant": "t", "roles": ["owner"]}]}"#,
                "not a valid token file",
            ),
            (
                r#"{"tokens": [{"sha256": "00000000000000000000000000000000000000000000000000000000000000ff", "principal": "p", "tenant": "team a/b", "roles": ["reader"]}]}"#,
                "tenant \"team a/b\" must be",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = format!("{:#}", TokenSource::load(&path).unwrap_err());
            assert!(
                error.starts_with("cannot use --auth-tokens-file: ") && error.contains(reason),
                "{error}"
            );
        }
    }

    #[test]
    fn a_token_file_that_is_not_json_names_the_flag_and_keeps_the_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "tokens: []").unwrap();
        let error = TokenSource::load(&path).unwrap_err();
        let causes: Vec<_> = error.chain().map(ToString::to_string).collect();
        assert_eq!(
            causes[..2],
            [
                "cannot use --auth-tokens-file".to_string(),
                format!("{} is not a valid token file", path.display())
            ],
            "{error:#}"
        );
        assert!(
            error
                .chain()
                .any(|cause| cause.downcast_ref::<serde_json::Error>().is_some()),
            "{error:#}"
        );
        assert_eq!(format!("{error:#}").lines().count(), 1, "{error:#}");
    }
}
