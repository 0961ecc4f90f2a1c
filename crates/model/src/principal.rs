//! Who calls: a principal (a name, a tenant, roles), the roles a call may need, and what a
//! tenant's name must look like.

use std::fmt;

use serde::Deserialize;

/// The tenant of anonymous callers.
pub const DEFAULT_TENANT: &str = "default";
/// What a tenant must look like, completing "a tenant …".
pub const TENANT_RULE: &str = "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (it labels the job's Kubernetes objects)";

/// Whether `name` may name a tenant: a Kubernetes label value (the tenant labels its jobs'
/// Kubernetes objects), not empty.
pub fn is_tenant_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A call refused because its caller lacks the role it needs; the message names the call, the
/// role and what the caller holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PermissionDenied(pub String);

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submit and cancel jobs.
    Submitter,
    /// Get, list and watch jobs, and read their results.
    Reader,
    /// Everything, in every tenant.
    Admin,
}

impl Role {
    /// The role of this name (`submitter`, `reader`, `admin`).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "submitter" => Some(Role::Submitter),
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Returns the role's name (`submitter`, `reader`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of one gRPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's name, as authentication established it.
    pub name: String,
    /// The tenant the caller acts in.
    pub tenant: String,
    /// The roles the caller holds.
    pub roles: Vec<Role>,
}

impl Principal {
    /// The caller when no authentication is configured: an administrator.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".to_owned(),
            tenant: DEFAULT_TENANT.to_owned(),
            roles: vec![Role::Admin],
        }
    }

    /// Whether the caller may act in `role` (an administrator may act in every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Fails with PERMISSION_DENIED unless the caller may act in `role`.
    pub fn require(&self, role: Role, call: &str) -> Result<(), PermissionDenied> {
        if self.has(role) {
            return Ok(());
        }
        let held: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        Err(PermissionDenied(format!(
            "{call} needs the role {role}; {} of tenant {} holds {}",
            self.name,
            self.tenant,
            if held.is_empty() {
                "no role".to_owned()
            } else {
                held.join(", ")
            }
        )))
    }
}

/// Checks one principal of a configuration file; `at` names the entry in the messages.
pub fn check_principal(
    at: &str,
    name: String,
    tenant: String,
    roles: Vec<Role>,
) -> Result<Principal, String> {
    if name.trim().is_empty() || tenant.trim().is_empty() {
        return Err(format!("{at}: principal and tenant must not be empty"));
    }
    if !is_tenant_name(&tenant) {
        return Err(format!("{at}: tenant {tenant:?} {TENANT_RULE}"));
    }
    if roles.is_empty() {
        return Err(format!("{at}: names no role"));
    }
    Ok(Principal {
        name,
        tenant,
        roles,
    })
}
