//! TLS serving and client certificates: the server's certificate and key, the CA that client
//! certificates must chain to, and the mapping from a certificate's subject (its CN, or one of
//! its subject alternative names) to a principal.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use x509_parser::extensions::GeneralName;

use super::{Principal, Role, check_principal};
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use flinkbroker_model::reload::{ConfigFileError, Reloading, read_json};

/// One entry of the client-certificate mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingEntry {
    /// The certificate's subject CN or subject alternative name.
    name: String,
    tenant: String,
    roles: Vec<Role>,
}

/// The mapping file: `{"principals": [{"name": "recsys-backend", "tenant": "recsys",
/// "roles": ["submitter", "reader"]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    principals: Vec<MappingEntry>,
}

/// The principals of the mapping file by certificate name.
#[derive(Debug)]
pub(crate) struct CertificatePrincipals(HashMap<String, Arc<Principal>>);

/// What the file holds, for the log.
const WHAT: &str = "client certificate principals";

/// The flag that names the file.
const FLAG: &str = "--mtls-principals-file";

/// Reads and checks the file.
fn read(path: &Path) -> std::result::Result<CertificatePrincipals, ConfigFileError> {
    let file: MappingFile = read_json(path, "client certificate mapping")?;
    let mut principals = HashMap::new();
    for (index, entry) in file.principals.into_iter().enumerate() {
        let at = format!("{} principal {index} ({})", path.display(), entry.name);
        let name = entry.name.clone();
        let principal = check_principal(&at, entry.name, entry.tenant, entry.roles)?;
        if principals.insert(name, Arc::new(principal)).is_some() {
            return Err(format!("{at}: the same name appears twice").into());
        }
    }
    Ok(CertificatePrincipals(principals))
}

/// Which principal a client certificate names, read again when the mapping file changes.
#[derive(Debug)]
pub(crate) struct CertificateMapping {
    file: Arc<Reloading<CertificatePrincipals, ConfigFileError>>,
    from: MtlsPrincipalFrom,
}

impl CertificateMapping {
    /// Reads the mapping file; an unreadable or invalid file is an error naming the flag.
    pub(crate) fn load(path: &Path, from: MtlsPrincipalFrom) -> anyhow::Result<CertificateMapping> {
        let file =
            Reloading::load(WHAT, path, read).with_context(|| format!("cannot use {FLAG}"))?;
        Ok(CertificateMapping {
            file: Arc::new(file),
            from,
        })
    }

    /// Looks at the file every `interval` until `shutdown`.
    pub(crate) fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        Arc::clone(&self.file).watch(interval, shutdown);
    }

    /// The principal of a client certificate the TLS handshake verified. A certificate whose
    /// subject is not in the mapping is PERMISSION_DENIED: the CA vouches for the caller, but
    /// the broker does not admit it.
    pub(crate) fn principal(&self, certificate: &CertificateDer<'_>) -> Result<Arc<Principal>> {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
            .map_err(|_| Error::Unauthenticated("the client certificate cannot be read".into()))?;
        let principals = self.file.current();
        match self.from {
            MtlsPrincipalFrom::Cn => {
                let cn = parsed
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .ok_or_else(|| {
                        Error::PermissionDenied(
                            "the client certificate's subject has no common name (CN), which --mtls-principal-from cn needs".into(),
                        )
                    })?;
                principals.0.get(cn).cloned().ok_or_else(|| {
                    Error::PermissionDenied(format!(
                        "the client certificate's subject CN {cn:?} is not in --mtls-principals-file"
                    ))
                })
            }
            MtlsPrincipalFrom::San => {
                let names: Vec<&str> = parsed
                    .subject_alternative_name()
                    .ok()
                    .flatten()
                    .map(|san| {
                        san.value
                            .general_names
                            .iter()
                            .filter_map(|name| match name {
                                GeneralName::DNSName(name)
                                | GeneralName::URI(name)
                                | GeneralName::RFC822Name(name) => Some(*name),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if names.is_empty() {
                    return Err(Error::PermissionDenied(
                        "the client certificate has no DNS, URI or email subject alternative name, which --mtls-principal-from san needs".into(),
                    ));
                }
                names
                    .iter()
                    .find_map(|name| principals.0.get(*name).cloned())
                    .ok_or_else(|| {
                        Error::PermissionDenied(format!(
                            "no subject alternative name of the client certificate ({}) is in --mtls-principals-file",
                            names.join(", ")
                        ))
                    })
            }
        }
    }
}

fn read_pem(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))
}

/// Which name of a client certificate is looked up in the principals file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MtlsPrincipalFrom {
    /// The subject's common name (CN).
    #[default]
    Cn,
    /// The first subject alternative name (DNS name, URI or email) the file names.
    San,
}

/// The TLS configuration of the server, if `--tls-cert` and `--tls-key` are given. With
/// `--tls-client-ca` the server asks for client certificates that chain to that CA; it
/// requires one at the handshake unless bearer tokens are accepted too, in which case a caller
/// may present either.
pub(crate) fn server_tls_config(config: &ServerConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let identity = Identity::from_pem(
        read_pem(&tls.cert, "--tls-cert")?,
        read_pem(&tls.key, "--tls-key")?,
    );
    let mut server = ServerTlsConfig::new()
        .identity(identity)
        .timeout(tls.handshake_timeout);
    if let Some(ca) = &tls.client_ca {
        server = server
            .client_ca_root(Certificate::from_pem(read_pem(ca, "--tls-client-ca")?))
            .client_auth_optional(config.auth.bearer_tokens_configured());
    }
    Ok(Some(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(
        text: &str,
        from: MtlsPrincipalFrom,
    ) -> (tempfile::TempDir, anyhow::Result<CertificateMapping>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("principals.json");
        std::fs::write(&path, text).unwrap();
        let mapping = CertificateMapping::load(&path, from);
        (dir, mapping)
    }

    fn certificate(cn: Option<&str>, sans: &[rcgen::SanType]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.subject_alt_names = sans.to_vec();
        params.self_signed(&key).unwrap().der().clone()
    }

    const MAPPING: &str = r#"{"principals": [
        {"name": "recsys-backend", "tenant": "recsys", "roles": ["submitter", "reader"]},
        {"name": "spiffe://example.org/ns/ml/sa/etl", "tenant": "ml", "roles": ["reader"]}
    ]}"#;

    #[test]
    fn a_certificate_names_its_principal_by_cn_or_san() {
        let (_dir, by_cn) = mapping(MAPPING, MtlsPrincipalFrom::Cn);
        let by_cn = by_cn.unwrap();
        let principal = by_cn
            .principal(&certificate(Some("recsys-backend"), &[]))
            .unwrap();
        assert_eq!(principal.name, "recsys-backend");
        assert_eq!(principal.tenant, "recsys");
        assert_eq!(principal.roles, vec![Role::Submitter, Role::Reader]);
        for (certificate, reason) in [
            (
                certificate(Some("intruder"), &[]),
                "subject CN \"intruder\" is not in --mtls-principals-file",
            ),
            (certificate(None, &[]), "has no common name"),
        ] {
            let error = by_cn.principal(&certificate).unwrap_err();
            assert!(matches!(error, Error::PermissionDenied(_)), "{error:?}");
            assert!(error.to_string().contains(reason), "{error}");
        }

        let (_dir, by_san) = mapping(MAPPING, MtlsPrincipalFrom::San);
        let by_san = by_san.unwrap();
        let uri = rcgen::SanType::URI("spiffe://example.org/ns/ml/sa/etl".try_into().unwrap());
        let dns = rcgen::SanType::DnsName("etl.ml.svc".try_into().unwrap());
        let principal = by_san
            .principal(&certificate(Some("recsys-backend"), &[dns.clone(), uri]))
            .unwrap();
        assert_eq!(principal.name, "spiffe://example.org/ns/ml/sa/etl");
        assert_eq!(principal.tenant, "ml");
        let error = by_san
            .principal(&certificate(Some("recsys-backend"), &[dns]))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no subject alternative name of the client certificate (etl.ml.svc)"),
            "{error}"
        );
        let error = by_san
            .principal(&certificate(Some("recsys-backend"), &[]))
            .unwrap_err();
        assert!(
            error.to_string().contains("no DNS, URI or email"),
            "{error}"
        );
    }

    #[test]
    fn an_invalid_mapping_file_is_refused_with_its_reason() {
        for (text, reason) in [
            ("{", "not a valid client certificate mapping"),
            (
                r#"{"principals": [{"name": "a", "tenant": "t", "roles": ["owner"]}]}"#,
                "not a valid client certificate mapping",
            ),
            (
                r#"{"principals": [{"name": "a", "tenant": "t", "roles": ["reader"], "extra": 1}]}"#,
                "unknown field",
            ),
            (
                r#"{"principals": [{"name": "a", "tenant": "t", "roles": []}]}"#,
                "names no role",
            ),
            (
                r#"{"principals": [{"name": "", "tenant": "t", "roles": ["reader"]}]}"#,
                "must not be empty",
            ),
            (
                r#"{"principals": [{"name": "a", "tenant": "-t", "roles": ["reader"]}]}"#,
                "tenant \"-t\" must be",
            ),
            (
                r#"{"principals": [{"name": "a", "tenant": "t", "roles": ["reader"]}, {"name": "a", "tenant": "u", "roles": ["admin"]}]}"#,
                "principal 1 (a): the same name appears twice",
            ),
        ] {
            let (_dir, loaded) = mapping(text, MtlsPrincipalFrom::Cn);
            let error = format!("{:#}", loaded.unwrap_err());
            assert!(
                error.starts_with("cannot use --mtls-principals-file: ") && error.contains(reason),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn an_unreadable_pem_file_names_the_flag_and_keeps_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("key.pem");
        let error = read_pem(&missing, "--tls-key").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read --tls-key {}", missing.display())
        );
        let io = error
            .chain()
            .nth(1)
            .and_then(|cause| cause.downcast_ref::<std::io::Error>())
            .expect("the I/O error as the cause");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
