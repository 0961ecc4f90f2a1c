//! The limits a submission must stay within: script sizes, statement counts, parallelism and
//! the URLs a program may come from. Shape (is a field well formed?) is checked in `api/`;
//! what the broker admits is decided here.

use super::Limits;
use crate::error::{Error, Result};
use flinkbroker_model::job::PythonSpec;
use flinkbroker_model::sql_script;
use flinkbroker_model::tenants::TenantPolicy;

/// Prefixes of configuration keys only the broker sets.
const INTERNAL_PREFIX: &str = "$internal.";

/// Refuses a Flink configuration key the caller may not set; `via` names where it was set.
pub(super) fn config_key(policy: &TenantPolicy, key: &str, via: &str) -> Result<()> {
    let key = key.trim();
    if key.starts_with(INTERNAL_PREFIX) || key == "$internal" {
        return Err(Error::PermissionDenied(format!(
            "{via}: {key:?} may not be set: $internal keys are set by the broker"
        )));
    }
    if let Some(prefix) = policy
        .forbidden_config_prefixes
        .iter()
        .find(|prefix| key.starts_with(prefix.as_str()))
    {
        return Err(Error::PermissionDenied(format!(
            "{via}: {key:?} may not be set: keys under {prefix:?} are refused ({})",
            policy.origin("forbidden_config_prefixes", "--forbidden-config-prefixes")
        )));
    }
    Ok(())
}

/// Skips whitespace and comments (`-- …` to the end of the line, `/* … */`).
fn skip_insignificant(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            text = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if let Some(rest) = trimmed.strip_prefix("/*") {
            text = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// The key a SQL `SET 'key' = 'value'` (or `SET key = value`) statement sets; None for a bare
/// `SET`, which only lists the session's configuration.
fn set_statement_key(statement: &str) -> Option<&str> {
    let text = skip_insignificant(statement);
    let rest = text
        .get(3..)
        .filter(|_| text[..3].eq_ignore_ascii_case("set"))?;
    let rest = skip_insignificant(rest);
    if let Some(quoted) = rest.strip_prefix('\'') {
        return quoted.split('\'').next();
    }
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '=' || c == ';')
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Refuses SQL properties and `SET` statements naming keys the caller may not set.
pub(super) fn sql_configuration<'a>(
    policy: &TenantPolicy,
    properties: impl IntoIterator<Item = &'a String>,
    statements: &[String],
) -> Result<()> {
    for key in properties {
        config_key(policy, key, "properties")?;
    }
    for (index, text) in statements.iter().enumerate() {
        if sql_script::classify(text) == sql_script::StatementKind::Set
            && let Some(key) = set_statement_key(text)
        {
            config_key(policy, key, &format!("script statement {index} (SET)"))?;
        }
    }
    Ok(())
}

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

/// The longest savepoint path or directory accepted.
const MAX_SAVEPOINT_PATH_CHARS: usize = 4096;

/// Checks a savepoint path (one to restore from, or a directory to write to) against its
/// tenant's allowed prefixes.
pub(super) fn savepoint_path(policy: &TenantPolicy, field: &str, path: &str) -> Result<()> {
    if path.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if path.chars().count() > MAX_SAVEPOINT_PATH_CHARS {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_SAVEPOINT_PATH_CHARS} characters"),
        ));
    }
    if path.chars().any(char::is_control) || path != path.trim() {
        return Err(Error::invalid(
            field,
            format!("{path:?} holds control characters or surrounding spaces"),
        ));
    }
    if policy.savepoint_path_prefixes.is_empty() {
        return Ok(());
    }
    let allowed = policy
        .savepoint_path_prefixes
        .iter()
        .any(|prefix| path.starts_with(prefix.as_str()));
    if !allowed {
        return Err(Error::invalid(
            field,
            format!(
                "{path:?} is not under an allowed prefix ({}; see {})",
                policy.savepoint_path_prefixes.join(", "),
                policy.origin("savepoint_path_prefixes", "--savepoint-path-prefixes")
            ),
        ));
    }
    Ok(())
}

/// Checks a Python program against the size limit and its tenant's configuration, script
/// URL and parallelism guardrails.
pub(super) fn python_program(
    limits: &Limits,
    policy: &TenantPolicy,
    program: &PythonSpec,
) -> Result<()> {
    for key in program.flink_configuration.keys() {
        config_key(policy, key, "flink_configuration")?;
    }
    if let Some(restore) = &program.restore {
        savepoint_path(policy, "restore.savepoint_path", &restore.savepoint_path)?;
    }
    if let Some(url) = &program.script_url {
        let allowed = policy
            .script_url_prefixes
            .iter()
            .any(|prefix| !prefix.is_empty() && url.starts_with(prefix.as_str()));
        if !allowed {
            return Err(Error::invalid(
                "script_url",
                format!(
                    "{url:?} is not under an allowed prefix ({})",
                    if policy.script_url_prefixes.is_empty() {
                        format!(
                            "none are configured; see {}",
                            policy.origin("script_url_prefixes", "--script-url-prefixes")
                        )
                    } else {
                        policy.script_url_prefixes.join(", ")
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
        && parallelism > policy.max_parallelism
    {
        return Err(Error::invalid(
            "parallelism",
            format!(
                "{parallelism} exceeds the maximum of {} ({})",
                policy.max_parallelism,
                policy.origin("max_parallelism", "--max-parallelism")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_statements_name_their_key_through_quotes_and_comments() {
        for (statement, key) in [
            (
                "SET 'kubernetes.namespace' = 'x'",
                Some("kubernetes.namespace"),
            ),
            ("set env.java.opts = -Dx", Some("env.java.opts")),
            (
                "SET /* hidden */ 'security.ssl.enabled' = 'false'",
                Some("security.ssl.enabled"),
            ),
            (
                "-- first\nSET\n-- why\n'high-availability.type'='zookeeper'",
                Some("high-availability.type"),
            ),
            ("SET", None),
            ("SET;", None),
        ] {
            assert_eq!(set_statement_key(statement), key, "{statement}");
        }
    }

    #[test]
    fn forbidden_keys_are_refused_wherever_they_are_set() {
        let limits = TenantPolicy::default();
        let allowed = [
            "SET 'parallelism.default' = '2'".to_owned(),
            "SET".to_owned(),
        ];
        sql_configuration(&limits, &["table.exec.state.ttl".to_owned()], &allowed).unwrap();
        for key in [
            "$internal.pipeline.job-id",
            "env.java.opts",
            "kubernetes.container.image",
            "security.kerberos.login.keytab",
            "high-availability.type",
        ] {
            let error = sql_configuration(&limits, &[key.to_owned()], &[]).unwrap_err();
            assert!(matches!(error, Error::PermissionDenied(_)), "{error:?}");
            assert!(error.to_string().contains(key), "{error}");
            let set = vec![format!("SET '{key}' = 'x'")];
            let error = sql_configuration(&limits, std::iter::empty(), &set).unwrap_err();
            assert!(error.to_string().contains("statement 0 (SET)"), "{error}");
        }
        let open = TenantPolicy {
            forbidden_config_prefixes: Vec::new(),
            ..TenantPolicy::default()
        };
        sql_configuration(&open, &["env.java.opts".to_owned()], &[]).unwrap();
        assert!(sql_configuration(&open, &["$internal.x".to_owned()], &[]).is_err());
    }
}
