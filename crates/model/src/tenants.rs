//! What each tenant may do: its guardrails (configuration keys it may not set, where its
//! Python programs may come from, the parallelism one job may ask for) and its quotas (live
//! jobs, submissions a minute, result-log bytes held, parallelism of its live Python jobs).
//!
//! The flags give every tenant's defaults; `--tenant-policy-file` overrides any of them for
//! named tenants and is read again when it changes:
//!
//! ```json
//! {"tenants": {
//!   "recsys": {"max_live_jobs": 20, "script_url_prefixes": ["https://artifacts.internal/recsys/"]},
//!   "adhoc":  {"submissions_per_minute": 10, "max_result_log_bytes": "2GiB",
//!              "forbidden_config_prefixes": ["env.", "kubernetes.", "security.",
//!                                            "high-availability.", "state.backend"]}
//! }}
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::principal::{TENANT_RULE, is_tenant_name};
use crate::reload::{ConfigFileError, Reloading, read_json};

/// The configuration key prefixes no tenant may set unless told otherwise: what would change
/// the cluster's environment, its Kubernetes objects, its security or its high availability.
pub const DEFAULT_FORBIDDEN_CONFIG_PREFIXES: [&str; 4] =
    ["env.", "kubernetes.", "security.", "high-availability."];

/// The guardrails and quotas of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Flink configuration key prefixes the tenant may not set (`$internal.` is refused
    /// whatever this says).
    pub forbidden_config_prefixes: Vec<String>,
    /// URL prefixes its Python programs may be downloaded from.
    pub script_url_prefixes: Vec<String>,
    /// Prefixes the savepoint paths it restores from and the savepoint directories it writes
    /// to must start with (empty: any path the cluster can read and write).
    pub savepoint_path_prefixes: Vec<String>,
    /// The highest parallelism one Python job may ask for.
    pub max_parallelism: u32,
    /// Jobs not yet ended at once.
    pub max_live_jobs: u64,
    /// Submissions a minute; also the burst a full bucket allows.
    pub submissions_per_minute: u32,
    /// Encoded result bytes its jobs' result logs may hold before new jobs are refused.
    pub max_result_log_bytes: u64,
    /// The parallelism of its live Python jobs, summed.
    pub max_python_parallelism: u64,
    /// The fields the tenant policy file set for this tenant (the others are the flags').
    pub overridden: BTreeSet<&'static str>,
}

impl TenantPolicy {
    /// Where a limit comes from, for messages: `flag`, or the field in the policy file.
    pub fn origin(&self, field: &'static str, flag: &'static str) -> String {
        if self.overridden.contains(field) {
            format!("{field} in --tenant-policy-file")
        } else {
            flag.to_owned()
        }
    }
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            forbidden_config_prefixes: DEFAULT_FORBIDDEN_CONFIG_PREFIXES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            script_url_prefixes: Vec::new(),
            savepoint_path_prefixes: Vec::new(),
            max_parallelism: 64,
            max_live_jobs: 100,
            submissions_per_minute: 120,
            max_result_log_bytes: 10 << 30,
            max_python_parallelism: 256,
            overridden: BTreeSet::new(),
        }
    }
}

/// A size: a number of bytes, or a string such as `"2GiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// One tenant's overrides in the policy file; what it leaves out is the flags' default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantOverrides {
    forbidden_config_prefixes: Option<Vec<String>>,
    script_url_prefixes: Option<Vec<String>>,
    savepoint_path_prefixes: Option<Vec<String>>,
    max_parallelism: Option<u32>,
    max_live_jobs: Option<u64>,
    submissions_per_minute: Option<u32>,
    max_result_log_bytes: Option<Size>,
    max_python_parallelism: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    tenants: HashMap<String, TenantOverrides>,
}

/// The policy file as read: each named tenant's overrides, checked.
#[derive(Debug, Default)]
pub struct PolicyOverrides {
    tenants: HashMap<String, (TenantOverrides, Option<u64>)>,
}

fn read_policy_file(path: &Path) -> Result<PolicyOverrides, String> {
    let file: PolicyFile = read_json(path, "tenant policy file")?;
    let mut tenants = HashMap::new();
    for (tenant, overrides) in file.tenants {
        let at = |what: &str| format!("{} tenant {tenant:?}: {what}", path.display());
        if !is_tenant_name(&tenant) {
            return Err(at(&format!("is not a tenant name: it {}", TENANT_RULE)));
        }
        if overrides.submissions_per_minute == Some(0) {
            return Err(at("submissions_per_minute must be at least 1"));
        }
        if overrides.max_parallelism == Some(0) {
            return Err(at("max_parallelism must be at least 1"));
        }
        let bytes = match &overrides.max_result_log_bytes {
            None => None,
            Some(Size::Bytes(0)) => return Err(at("max_result_log_bytes must be positive")),
            Some(Size::Bytes(bytes)) => Some(*bytes),
            Some(Size::Text(text)) => Some(
                crate::units::parse_bytes(text)
                    .map_err(|e| at(&format!("max_result_log_bytes: {e}")))?,
            ),
        };
        tenants.insert(tenant, (overrides, bytes));
    }
    Ok(PolicyOverrides { tenants })
}

/// Every tenant's policy: the defaults, with the policy file's overrides.
#[derive(Debug, Clone, Default)]
pub struct TenantPolicies {
    defaults: Arc<TenantPolicy>,
    file: Option<Arc<Reloading<PolicyOverrides>>>,
}

impl TenantPolicies {
    /// Every tenant gets `defaults`.
    pub fn uniform(defaults: TenantPolicy) -> TenantPolicies {
        TenantPolicies {
            defaults: Arc::new(defaults),
            file: None,
        }
    }

    /// `defaults`, overridden per tenant by the policy file at `path` (read now; an invalid
    /// file is an error).
    pub fn with_file(
        defaults: TenantPolicy,
        path: &Path,
    ) -> Result<TenantPolicies, ConfigFileError> {
        Ok(TenantPolicies {
            defaults: Arc::new(defaults),
            file: Some(Arc::new(Reloading::load(
                "tenant policies",
                path,
                read_policy_file,
            )?)),
        })
    }

    /// The policy file, to be watched for changes (None without one).
    pub fn file(&self) -> Option<Arc<Reloading<PolicyOverrides>>> {
        self.file.clone()
    }

    /// The policy of `tenant` now.
    pub fn policy(&self, tenant: &str) -> Arc<TenantPolicy> {
        let Some(file) = &self.file else {
            return Arc::clone(&self.defaults);
        };
        let overrides = file.current();
        let Some((overrides, bytes)) = overrides.tenants.get(tenant) else {
            return Arc::clone(&self.defaults);
        };
        let defaults = self.defaults.as_ref();
        let overridden: BTreeSet<&'static str> = [
            (
                "forbidden_config_prefixes",
                overrides.forbidden_config_prefixes.is_some(),
            ),
            (
                "script_url_prefixes",
                overrides.script_url_prefixes.is_some(),
            ),
            (
                "savepoint_path_prefixes",
                overrides.savepoint_path_prefixes.is_some(),
            ),
            ("max_parallelism", overrides.max_parallelism.is_some()),
            ("max_live_jobs", overrides.max_live_jobs.is_some()),
            (
                "submissions_per_minute",
                overrides.submissions_per_minute.is_some(),
            ),
            ("max_result_log_bytes", bytes.is_some()),
            (
                "max_python_parallelism",
                overrides.max_python_parallelism.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect();
        Arc::new(TenantPolicy {
            forbidden_config_prefixes: overrides
                .forbidden_config_prefixes
                .clone()
                .unwrap_or_else(|| defaults.forbidden_config_prefixes.clone()),
            script_url_prefixes: overrides
                .script_url_prefixes
                .clone()
                .unwrap_or_else(|| defaults.script_url_prefixes.clone()),
            savepoint_path_prefixes: overrides
                .savepoint_path_prefixes
                .clone()
                .unwrap_or_else(|| defaults.savepoint_path_prefixes.clone()),
            max_parallelism: overrides
                .max_parallelism
                .unwrap_or(defaults.max_parallelism),
            max_live_jobs: overrides.max_live_jobs.unwrap_or(defaults.max_live_jobs),
            submissions_per_minute: overrides
                .submissions_per_minute
                .unwrap_or(defaults.submissions_per_minute),
            max_result_log_bytes: bytes.unwrap_or(defaults.max_result_log_bytes),
            max_python_parallelism: overrides
                .max_python_parallelism
                .unwrap_or(defaults.max_python_parallelism),
            overridden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(text: &str) -> (tempfile::TempDir, TenantPolicies) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.json");
        std::fs::write(&path, text).unwrap();
        let policies = TenantPolicies::with_file(TenantPolicy::default(), &path).unwrap();
        (dir, policies)
    }

    #[test]
    fn a_named_tenant_gets_its_overrides_and_the_rest_the_defaults() {
        let (_dir, policies) = policies(
            r#"{"tenants": {"ml": {"max_live_jobs": 3, "max_result_log_bytes": "2GiB",
                "script_url_prefixes": ["https://a/"], "forbidden_config_prefixes": []}}}"#,
        );
        let ml = policies.policy("ml");
        assert_eq!(ml.max_live_jobs, 3);
        assert_eq!(ml.max_result_log_bytes, 2 << 30);
        assert_eq!(ml.script_url_prefixes, vec!["https://a/".to_owned()]);
        assert!(ml.forbidden_config_prefixes.is_empty());
        assert_eq!(ml.submissions_per_minute, 120);
        assert_eq!(
            ml.origin("max_live_jobs", "--tenant-max-live-jobs"),
            "max_live_jobs in --tenant-policy-file"
        );
        assert_eq!(
            ml.origin("submissions_per_minute", "--tenant-submissions-per-minute"),
            "--tenant-submissions-per-minute"
        );
        assert_eq!(*policies.policy("ads"), TenantPolicy::default());
    }

    #[test]
    fn an_invalid_policy_file_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.json");
        for (text, reason) in [
            (r#"{"tenants": {"ml": {"max_jobs": 3}}}"#, "unknown field"),
            (
                r#"{"tenants": {"ml": {"submissions_per_minute": 0}}}"#,
                "at least 1",
            ),
            (
                r#"{"tenants": {"ml": {"max_result_log_bytes": "2GB"}}}"#,
                "max_result_log_bytes",
            ),
            (r#"{"tenants": {"a b": {}}}"#, "is not a tenant name"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = TenantPolicies::with_file(TenantPolicy::default(), &path)
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
