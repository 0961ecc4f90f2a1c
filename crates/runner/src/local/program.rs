//! The private directory of one submission: the program's files and a downloaded script.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use reqwest::Client;
use tracing::debug;

use crate::{RunnerError, program_files, script_path};
use flinkbroker_model::job::PythonSpec;

/// Name of the directory, inside a submission's directory, holding the program's files.
pub const PROGRAM_DIR: &str = "program";
/// Name of the directory, inside a submission's directory, receiving the `flink` client's log.
pub const LOG_DIR: &str = "log";
/// Largest script downloaded from a URL, in bytes.
pub const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024;

/// Creates `job_dir` afresh (mode 0700, replacing what an earlier run left there) with its
/// program and log directories, and writes the program's files into the program directory.
pub(crate) async fn prepare(
    job_dir: &Path,
    program: &PythonSpec,
    http: &Client,
) -> Result<(), RunnerError> {
    if let Some(parent) = job_dir.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|error| local(format!("cannot create {}: {error}", parent.display())))?;
    }
    remove_dir(job_dir).await?;
    tokio::fs::DirBuilder::new()
        .mode(0o700)
        .create(job_dir)
        .await
        .map_err(|error| local(format!("cannot create {}: {error}", job_dir.display())))?;
    // The umask may only narrow the mode; this makes 0700 exact whatever it is.
    tokio::fs::set_permissions(job_dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(|error| local(format!("cannot restrict {}: {error}", job_dir.display())))?;
    let program_dir = job_dir.join(PROGRAM_DIR);
    for dir in [&program_dir, &job_dir.join(LOG_DIR)] {
        tokio::fs::create_dir(dir)
            .await
            .map_err(|error| local(format!("cannot create {}: {error}", dir.display())))?;
    }
    for (relative, contents) in program_files(program) {
        write_file(&program_dir, &relative, contents.as_bytes()).await?;
    }
    if program.script.is_none()
        && let Some(url) = &program.script_url
    {
        let script = download(http, url).await?;
        write_file(&program_dir, &script_path(program), &script).await?;
    }
    Ok(())
}

/// Removes a directory and everything below it; a missing one is not an error.
pub(crate) async fn remove_dir(dir: &Path) -> Result<(), RunnerError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(local(format!("cannot remove {}: {error}", dir.display()))),
    }
}

/// Writes one file below `program_dir`, creating its parent directories.
async fn write_file(
    program_dir: &Path,
    relative: &str,
    contents: &[u8],
) -> Result<(), RunnerError> {
    let path = contained_path(program_dir, relative)?;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|error| local(format!("cannot create {}: {error}", parent.display())))?;
    }
    tokio::fs::write(&path, contents)
        .await
        .map_err(|error| local(format!("cannot write {}: {error}", path.display())))
}

/// Joins a relative file name to `dir`, refusing names that could leave it.
fn contained_path(dir: &Path, relative: &str) -> Result<PathBuf, RunnerError> {
    let name = Path::new(relative);
    let plain = !relative.is_empty()
        && name
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if plain {
        Ok(dir.join(name))
    } else {
        Err(local(format!(
            "file name {relative:?} must be a relative path without '..'"
        )))
    }
}

/// Downloads a script, refusing redirects and bodies over [`MAX_DOWNLOAD_BYTES`].
async fn download(http: &Client, url: &str) -> Result<Vec<u8>, RunnerError> {
    let shown = without_query(url);
    let failed = |reason: String| RunnerError::Download(format!("{shown}: {reason}"));
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|error| failed(error_chain(&error.without_url())))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(failed(format!(
            "http status {status}; redirects are not followed"
        )));
    }
    if !status.is_success() {
        return Err(failed(format!("http status {status}")));
    }
    let too_large = || {
        failed(format!(
            "the script is larger than {MAX_DOWNLOAD_BYTES} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOWNLOAD_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| failed(error_chain(&error.without_url())))?
    {
        if body.len() + chunk.len() > MAX_DOWNLOAD_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    debug!(url = %shown, bytes = body.len(), "script downloaded");
    Ok(body)
}

/// Returns a URL without its query and fragment, which may carry credentials.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Joins an error and its sources into one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

fn local(message: String) -> RunnerError {
    RunnerError::Local(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_names_stay_inside_the_directory() {
        let dir = Path::new("/work/job/program");
        assert_eq!(
            contained_path(dir, "recs/jobs/main.py").unwrap(),
            dir.join("recs/jobs/main.py")
        );
        for name in ["", "../evil.py", "a/../../evil.py", "/etc/passwd", "./x.py"] {
            assert!(contained_path(dir, name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn shown_urls_lose_their_query() {
        assert_eq!(
            without_query("https://h/a.py?X-Amz-Signature=s#f"),
            "https://h/a.py"
        );
        assert_eq!(without_query("https://h/a.py"), "https://h/a.py");
    }
}
