//! The limits a submission must stay within: script sizes, statement counts, parallelism and
//! the URLs a program may come from. Shape (is a field well formed?) is checked in `api/`;
//! what the broker admits is decided here.

use super::Limits;
use crate::error::{Error, Result};
use crate::job::PythonSpec;
use crate::sql_script;

/// Splits a SQL script into its statements, within the size and count limits.
pub(super) fn sql_statements(limits: &Limits, script: &str) -> Result<Vec<String>> {
    if script.trim().is_empty() {
        return Err(Error::invalid("script", "must not be empty"));
    }
    if script.len() > limits.max_script_bytes {
        return Err(Error::invalid(
            "script",
            format!(
                "{} bytes exceeds the limit of {} bytes (--max-script-bytes)",
                script.len(),
                limits.max_script_bytes
            ),
        ));
    }
    let statements = sql_script::split_statements(script)
        .map_err(|e| Error::invalid("script", e.to_string()))?;
    if statements.is_empty() {
        return Err(Error::invalid(
            "script",
            "contains no statements (only comments or semicolons)",
        ));
    }
    if statements.len() > limits.max_statements {
        return Err(Error::invalid(
            "script",
            format!(
                "{} statements exceeds the limit of {} (--max-statements)",
                statements.len(),
                limits.max_statements
            ),
        ));
    }
    Ok(statements.into_iter().map(|s| s.text).collect())
}

/// Checks a Python program against the size, parallelism and script URL limits.
pub(super) fn python_program(limits: &Limits, program: &PythonSpec) -> Result<()> {
    if let Some(url) = &program.script_url {
        let allowed = limits
            .script_url_prefixes
            .iter()
            .any(|prefix| !prefix.is_empty() && url.starts_with(prefix.as_str()));
        if !allowed {
            return Err(Error::invalid(
                "script_url",
                format!(
                    "{url:?} is not under an allowed prefix ({})",
                    if limits.script_url_prefixes.is_empty() {
                        "none are configured; see --script-url-prefixes".to_string()
                    } else {
                        limits.script_url_prefixes.join(", ")
                    }
                ),
            ));
        }
    }
    let program_bytes = program.script.as_ref().map_or(0, String::len)
        + program
            .inline_py_files
            .iter()
            .map(|(name, source)| name.len() + source.len())
            .sum::<usize>();
    if program_bytes > limits.max_script_bytes {
        return Err(Error::invalid(
            "script",
            format!(
                "{program_bytes} bytes with inline_py_files exceeds the limit of {} bytes (--max-script-bytes)",
                limits.max_script_bytes
            ),
        ));
    }
    if let Some(parallelism) = program.parallelism
        && parallelism > limits.max_parallelism
    {
        return Err(Error::invalid(
            "parallelism",
            format!(
                "{parallelism} exceeds the maximum of {} (--max-parallelism)",
                limits.max_parallelism
            ),
        ));
    }
    Ok(())
}
