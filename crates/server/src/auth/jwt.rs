//! JWT bearer tokens: verified with the RS256 and ES256 public keys of a JWKS file or URL,
//! their issuer, audience and lifetime checked, and their claims mapped to a principal.
//!
//! The key set is read at start (the broker does not start without it), again every
//! `--jwt-jwks-refresh-interval`, and again when a token names a key id the set does not hold,
//! at most once per `--jwt-jwks-min-refresh-interval`, so that a signing key rotated in at the
//! issuer is picked up by the first call that uses it while unknown key ids cannot make the
//! broker fetch the set over and over.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use flinkbroker_model::reload::with_causes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Principal, Role, TENANT_RULE, is_tenant_name};
use crate::error::Error;

/// The most bytes of a JWKS document the broker reads.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS file, read again every refresh (`--jwt-jwks-file`).
    File(PathBuf),
    /// A JWKS URL, fetched again every refresh (`--jwt-jwks-url`).
    Url(String),
}

impl JwksSource {
    /// The flag that names the source.
    fn flag(&self) -> &'static str {
        match self {
            JwksSource::File(_) => "--jwt-jwks-file",
            JwksSource::Url(_) => "--jwt-jwks-url",
        }
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "{}", path.display()),
            JwksSource::Url(url) => f.write_str(url),
        }
    }
}

/// The claims that name the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// A non-empty string: the principal's name.
    pub principal: String,
    /// A string that is a valid Kubernetes label value: the principal's tenant.
    pub tenant: String,
    /// An array of role names; names other than `submitter`, `reader` and `admin` are
    /// ignored, and a token without the claim holds no role.
    pub roles: String,
}

/// How JWTs are verified.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Where the signing keys come from.
    pub source: JwksSource,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A value the token's `aud` must hold.
    pub audience: String,
    /// The claims that name the caller.
    pub claims: ClaimNames,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the key set is read again.
    pub refresh_interval: Duration,
    /// The shortest time between two reads of the key set caused by an unknown key id.
    pub min_refresh_interval: Duration,
    /// The longest one read of the key set may take.
    pub fetch_timeout: Duration,
}

/// Why a JWT was refused. The messages name what is wrong and never hold the token.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum JwtError {
    #[error("the bearer token is not a well-formed JWT signed with RS256 or ES256")]
    Malformed,
    #[error("the JWT is signed with {0}; only RS256 and ES256 are accepted")]
    UnsupportedAlgorithm(String),
    #[error("the JWT names no key id (kid), and the key set holds more than one key")]
    NoKeyId,
    #[error("the JWT's key id (kid) {0:?} is not in the key set")]
    UnknownKeyId(String),
    #[error("the JWT is signed with {token} but its key {kid:?} is a {key} key")]
    AlgorithmMismatch {
        token: String,
        key: String,
        kid: String,
    },
    #[error("the JWT's signature does not verify")]
    BadSignature,
    #[error("the key {0:?} of the key set cannot verify JWTs")]
    UnusableKey(String),
    #[error("the JWT has expired (exp)")]
    Expired,
    #[error("the JWT is not valid yet (nbf)")]
    NotYetValid,
    #[error("the JWT's issuer (iss) is not {expected:?}")]
    WrongIssuer { expected: String },
    #[error("the JWT's audience (aud) does not include {expected:?}")]
    WrongAudience { expected: String },
    #[error("the JWT has no claim {0:?}")]
    MissingClaim(String),
    #[error("the JWT's claim {claim:?} {reason}")]
    InvalidClaim { claim: String, reason: String },
}

/// Why the key set could not be read; the reader's or the parser's error is the source.
#[derive(Debug, Error)]
enum JwksError {
    #[error("cannot read {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch {url}")]
    Unfetchable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered more than {MAX_JWKS_BYTES} bytes")]
    TooLarge { url: String },
    #[error("reading {origin} took longer than {timeout:?} (--jwt-jwks-fetch-timeout)")]
    TimedOut {
        origin: JwksSource,
        timeout: Duration,
    },
    #[error("{origin} is not a JWKS document ({{\"keys\": [...]}})")]
    NotJwks {
        origin: JwksSource,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin} holds no RS256 or ES256 signing key")]
    NoSigningKey { origin: JwksSource },
    #[error("{origin}: the key id {kid:?} appears twice")]
    DuplicateKeyId { origin: JwksSource, kid: String },
}

impl From<JwtError> for Error {
    fn from(error: JwtError) -> Error {
        Error::Unauthenticated(error.to_string())
    }
}

/// A public key of the set, with the one algorithm it verifies.
struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The usable keys of a JWKS document.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    /// The key that verifies tokens without a `kid`: the set's only key, if it has one.
    only: Option<Arc<VerifyingKey>>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.by_kid.len().max(usize::from(self.only.is_some()))
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

/// Reads the RS256 and ES256 signing keys of a JWKS document; other keys are skipped.
fn parse_jwks(bytes: &[u8], origin: &JwksSource) -> Result<KeySet, JwksError> {
    let document: JwksDocument =
        serde_json::from_slice(bytes).map_err(|source| JwksError::NotJwks {
            origin: origin.clone(),
            source,
        })?;
    let mut keys = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                warn!(%origin, index, %error, "JWKS key skipped: not a key this broker reads");
                continue;
            }
        };
        let kid = jwk.common.key_id.clone();
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            debug!(%origin, index, ?kid, "JWKS key skipped: an encryption key");
            continue;
        }
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                warn!(%origin, index, ?kid, "JWKS key skipped: only RS256 and ES256 (P-256) keys are used");
                continue;
            }
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => keys.push(Arc::new(VerifyingKey {
                kid,
                algorithm,
                key,
            })),
            Err(error) => {
                warn!(%origin, index, ?kid, %error, "JWKS key skipped: its parameters are invalid")
            }
        }
    }
    let mut set = KeySet::default();
    if keys.len() == 1 {
        set.only = keys.first().cloned();
    }
    if keys.is_empty() {
        return Err(JwksError::NoSigningKey {
            origin: origin.clone(),
        });
    }
    for key in keys {
        if let Some(kid) = &key.kid
            && set.by_kid.insert(kid.clone(), Arc::clone(&key)).is_some()
        {
            return Err(JwksError::DuplicateKeyId {
                origin: origin.clone(),
                kid: kid.clone(),
            });
        }
    }
    Ok(set)
}

/// How the key set is read.
enum Fetcher {
    File(PathBuf),
    Url {
        client: reqwest::Client,
        url: String,
    },
}

/// Verifies JWTs and maps their claims to principals.
pub(crate) struct JwtVerifier {
    source: JwksSource,
    fetcher: Fetcher,
    keys: RwLock<Arc<KeySet>>,
    rs256: Validation,
    es256: Validation,
    issuer: String,
    audience: String,
    claims: ClaimNames,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    fetch_timeout: Duration,
    /// When the key set was last read; held while it is read, so that one read serves every
    /// call waiting on it.
    last_fetch: tokio::sync::Mutex<Instant>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Reads the key set; an unreadable or unusable set is an error (the broker does not start).
    pub(crate) async fn load(settings: JwtSettings) -> anyhow::Result<JwtVerifier> {
        let fetcher = match &settings.source {
            JwksSource::File(path) => Fetcher::File(path.clone()),
            JwksSource::Url(url) => {
                let client = reqwest::Client::builder()
                    .timeout(settings.fetch_timeout)
                    .build()
                    .context("cannot build the JWKS client")?;
                Fetcher::Url {
                    client,
                    url: url.clone(),
                }
            }
        };
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&settings.issuer]);
            validation.set_audience(&[&settings.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.leeway = settings.leeway.as_secs();
            validation.validate_nbf = true;
            validation
        };
        let verifier = JwtVerifier {
            source: settings.source.clone(),
            fetcher,
            keys: RwLock::new(Arc::new(KeySet::default())),
            rs256: validation(Algorithm::RS256),
            es256: validation(Algorithm::ES256),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            claims: settings.claims.clone(),
            refresh_interval: settings.refresh_interval,
            min_refresh_interval: settings.min_refresh_interval,
            fetch_timeout: settings.fetch_timeout,
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
        };
        let keys = verifier
            .fetch()
            .await
            .with_context(|| format!("cannot use {}", verifier.source.flag()))?;
        info!(source = %verifier.source, keys = keys.len(), issuer = %verifier.issuer, audience = %verifier.audience, "JWT signing keys loaded");
        verifier.store(keys);
        Ok(verifier)
    }

    fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn store(&self, keys: KeySet) {
        match self.keys.write() {
            Ok(mut held) => *held = Arc::new(keys),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
        }
    }

    /// Reads the key set once, within the fetch timeout.
    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let read = async {
            match &self.fetcher {
                Fetcher::File(path) => {
                    tokio::fs::read(path)
                        .await
                        .map_err(|source| JwksError::Unreadable {
                            path: path.clone(),
                            source,
                        })
                }
                Fetcher::Url { client, url } => {
                    let response = client
                        .get(url)
                        .header(reqwest::header::ACCEPT, "application/json")
                        .send()
                        .await
                        .and_then(|r| r.error_for_status())
                        .map_err(|source| JwksError::Unfetchable {
                            url: url.clone(),
                            source,
                        })?;
                    if response
                        .content_length()
                        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
                    {
                        return Err(JwksError::TooLarge { url: url.clone() });
                    }
                    let body = response
                        .bytes()
                        .await
                        .map_err(|source| JwksError::Unfetchable {
                            url: url.clone(),
                            source,
                        })?;
                    if body.len() > MAX_JWKS_BYTES {
                        return Err(JwksError::TooLarge { url: url.clone() });
                    }
                    Ok(body.to_vec())
                }
            }
        };
        let bytes = tokio::time::timeout(self.fetch_timeout, read)
            .await
            .map_err(|_| JwksError::TimedOut {
                origin: self.source.clone(),
                timeout: self.fetch_timeout,
            })??;
        parse_jwks(&bytes, &self.source)
    }

    /// Reads the key set again; a failed read leaves the keys as they were.
    async fn refresh(&self) {
        let mut last_fetch = self.last_fetch.lock().await;
        *last_fetch = Instant::now();
        match self.fetch().await {
            Ok(keys) => {
                debug!(source = %self.source, keys = keys.len(), "JWT signing keys refreshed");
                self.store(keys);
            }
            Err(error) => {
                let error = with_causes(&error);
                warn!(%error, "JWT signing keys could not be refreshed; the previous keys stay in force")
            }
        }
    }

    /// Reads the key set again for a token whose key id it does not hold, unless it was read
    /// less than the minimum refresh interval ago; returns the key if the set now holds it.
    async fn refresh_for(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        // Waiting on a read in progress is bounded by that read's own timeout.
        let mut last_fetch = tokio::time::timeout(self.fetch_timeout, self.last_fetch.lock())
            .await
            .ok()?;
        if let Some(key) = self.keys().by_kid.get(kid) {
            return Some(Arc::clone(key));
        }
        if last_fetch.elapsed() < self.min_refresh_interval {
            debug!(
                kid,
                "unknown JWT key id; the key set was read too recently to read it again"
            );
            return None;
        }
        *last_fetch = Instant::now();
        match self.fetch().await {
            Ok(keys) => {
                let found = keys.by_kid.get(kid).cloned();
                info!(source = %self.source, keys = keys.len(), kid, found = found.is_some(), "JWT signing keys read again for an unknown key id");
                self.store(keys);
                found
            }
            Err(error) => {
                let error = with_causes(&error);
                warn!(%error, "JWT signing keys could not be refreshed; the previous keys stay in force");
                None
            }
        }
    }

    /// Reads the key set every refresh interval until `shutdown`.
    pub(crate) fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(
                Instant::now() + self.refresh_interval,
                self.refresh_interval,
            );
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => self.refresh().await,
                }
            }
        });
    }

    /// Verifies `token` and returns the principal its claims name.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(JwtError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let key = match &header.kid {
            Some(kid) => {
                let known = self.keys().by_kid.get(kid).cloned();
                match known {
                    Some(key) => key,
                    None => self
                        .refresh_for(kid)
                        .await
                        .ok_or_else(|| JwtError::UnknownKeyId(kid.clone()))?,
                }
            }
            None => self.keys().only.clone().ok_or(JwtError::NoKeyId)?,
        };
        if key.algorithm != header.alg {
            return Err(JwtError::AlgorithmMismatch {
                token: format!("{:?}", header.alg),
                key: format!("{:?}", key.algorithm),
                kid: key.kid.clone().unwrap_or_default(),
            });
        }
        let validation = match key.algorithm {
            Algorithm::ES256 => &self.es256,
            _ => &self.rs256,
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|error| self.refusal(&error, &key))?;
        principal_from_claims(&data.claims, &self.claims)
    }

    fn refusal(&self, error: &jsonwebtoken::errors::Error, key: &VerifyingKey) -> JwtError {
        match error.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => {
                warn!(kid = ?key.kid, source = %self.source, %error, "a JWKS key cannot verify JWTs");
                JwtError::UnusableKey(key.kid.clone().unwrap_or_default())
            }
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer {
                expected: self.issuer.clone(),
            },
            ErrorKind::InvalidAudience => JwtError::WrongAudience {
                expected: self.audience.clone(),
            },
            ErrorKind::MissingRequiredClaim(claim) => JwtError::MissingClaim(claim.clone()),
            ErrorKind::InvalidClaimFormat(claim) => JwtError::InvalidClaim {
                claim: claim.clone(),
                reason: "is malformed".to_owned(),
            },
            _ => JwtError::Malformed,
        }
    }
}

/// Maps verified claims to the caller they name.
pub(crate) fn principal_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
) -> Result<Principal, JwtError> {
    let string_claim = |claim: &str| -> Result<String, JwtError> {
        match claims.get(claim) {
            None | Some(Value::Null) => Err(JwtError::MissingClaim(claim.to_owned())),
            Some(Value::String(value)) if value.trim().is_empty() => Err(JwtError::InvalidClaim {
                claim: claim.to_owned(),
                reason: "is empty".to_owned(),
            }),
            Some(Value::String(value)) => Ok(value.clone()),
            Some(_) => Err(JwtError::InvalidClaim {
                claim: claim.to_owned(),
                reason: "is not a string".to_owned(),
            }),
        }
    };
    let name = string_claim(&names.principal)?;
    let tenant = string_claim(&names.tenant)?;
    if !is_tenant_name(&tenant) {
        return Err(JwtError::InvalidClaim {
            claim: names.tenant.clone(),
            reason: format!("is {tenant:?}; a tenant {TENANT_RULE}"),
        });
    }
    let not_role_names = || JwtError::InvalidClaim {
        claim: names.roles.clone(),
        reason: "is not an array of role names".to_owned(),
    };
    let roles = match claims.get(&names.roles) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut roles = Vec::new();
            for item in items {
                let Value::String(role) = item else {
                    return Err(not_role_names());
                };
                // An issuer may share the claim with other applications: their roles are not ours.
                if let Some(role) = Role::parse(role)
                    && !roles.contains(&role)
                {
                    roles.push(role);
                }
            }
            roles
        }
        Some(_) => return Err(not_role_names()),
    };
    Ok(Principal {
        name,
        tenant,
        roles,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names() -> ClaimNames {
        ClaimNames {
            principal: "sub".into(),
            tenant: "tenant".into(),
            roles: "roles".into(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn claims_name_the_principal_tenant_and_known_roles() {
        let principal = principal_from_claims(
            &claims(json!({"sub": "recsys-backend", "tenant": "recsys", "roles": ["reader", "billing-admin", "submitter", "reader"]})),
            &names(),
        )
        .unwrap();
        assert_eq!(
            principal,
            Principal {
                name: "recsys-backend".into(),
                tenant: "recsys".into(),
                roles: vec![Role::Reader, Role::Submitter],
            }
        );
        let no_roles =
            principal_from_claims(&claims(json!({"sub": "a", "tenant": "t"})), &names()).unwrap();
        assert!(no_roles.roles.is_empty());
    }

    #[test]
    fn other_claim_names_can_be_configured() {
        let names = ClaimNames {
            principal: "client_id".into(),
            tenant: "https://example.com/tenant".into(),
            roles: "groups".into(),
        };
        let principal = principal_from_claims(
            &claims(json!({"sub": "ignored", "client_id": "etl", "https://example.com/tenant": "data.eng", "groups": ["admin"]})),
            &names,
        )
        .unwrap();
        assert_eq!(principal.name, "etl");
        assert_eq!(principal.tenant, "data.eng");
        assert_eq!(principal.roles, vec![Role::Admin]);
    }

    #[test]
    fn unusable_claims_are_refused_naming_the_claim() {
        for (value, expected) in [
            (
                json!({"tenant": "t", "roles": []}),
                JwtError::MissingClaim("sub".into()),
            ),
            (
                json!({"sub": "a", "roles": ["reader"]}),
                JwtError::MissingClaim("tenant".into()),
            ),
            (
                json!({"sub": " ", "tenant": "t"}),
                JwtError::InvalidClaim {
                    claim: "sub".into(),
                    reason: "is empty".into(),
                },
            ),
            (
                json!({"sub": 7, "tenant": "t"}),
                JwtError::InvalidClaim {
                    claim: "sub".into(),
                    reason: "is not a string".into(),
                },
            ),
            (
                json!({"sub": "a", "tenant": "t", "roles": "reader"}),
                JwtError::InvalidClaim {
                    claim: "roles".into(),
                    reason: "is not an array of role names".into(),
                },
            ),
            (
                json!({"sub": "a", "tenant": "t", "roles": ["reader", 1]}),
                JwtError::InvalidClaim {
                    claim: "roles".into(),
                    reason: "is not an array of role names".into(),
                },
            ),
        ] {
            assert_eq!(
                principal_from_claims(&claims(value.clone()), &names()),
                Err(expected),
                "{value}"
            );
        }
        let error =
            principal_from_claims(&claims(json!({"sub": "a", "tenant": "team a/b"})), &names())
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("claim \"tenant\" is \"team a/b\"") && error.contains("at most 63"),
            "{error}"
        );
    }

    #[test]
    fn a_jwks_document_keeps_only_rs256_and_es256_signing_keys() {
        let origin = JwksSource::File("keys.json".into());
        let rsa = json!({"kty": "RSA", "kid": "r1", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        let ec = json!({"kty": "EC", "kid": "e1", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let p384 = json!({"kty": "EC", "kid": "e2", "crv": "P-384", "x": "AA", "y": "AA"});
        let encryption =
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"});
        let hmac = json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"});
        let document = json!({"keys": [rsa, ec, p384, encryption, hmac, {"kty": "weird"}]});
        let set = parse_jwks(document.to_string().as_bytes(), &origin).unwrap();
        let mut kids: Vec<&String> = set.by_kid.keys().collect();
        kids.sort();
        assert_eq!(kids, ["e1", "r1"]);
        assert_eq!(set.by_kid["r1"].algorithm, Algorithm::RS256);
        assert_eq!(set.by_kid["e1"].algorithm, Algorithm::ES256);
        assert!(set.only.is_none(), "two keys: a token must name its key");

        let single = json!({"keys": [json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})]});
        let set = parse_jwks(single.to_string().as_bytes(), &origin).unwrap();
        assert!(
            set.only.is_some(),
            "the only key verifies tokens without kid"
        );

        for (text, reason) in [
            ("[]", "is not a JWKS document"),
            (r#"{"keys": []}"#, "holds no RS256 or ES256 signing key"),
            (
                &json!({"keys": [hmac_key(), json!({"kty": "EC", "kid": "e1", "crv": "P-384", "x": "AA", "y": "AA"})]}).to_string(),
                "holds no RS256 or ES256 signing key",
            ),
        ] {
            let error = parse_jwks(text.as_bytes(), &origin).err().unwrap();
            let error = with_causes(&error);
            assert!(error.contains(reason), "{text}: {error}");
        }
        let twice = json!({"keys": [ec_key("same"), ec_key("same")]});
        let error = parse_jwks(twice.to_string().as_bytes(), &origin)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("\"same\" appears twice"), "{error}");
    }

    fn hmac_key() -> Value {
        json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"})
    }

    fn ec_key(kid: &str) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[tokio::test]
    async fn a_jwks_file_that_is_not_a_key_set_names_the_flag_and_keeps_the_parser_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, "keys: []").unwrap();
        let settings = JwtSettings {
            source: JwksSource::File(path.clone()),
            issuer: "https://idp.test".into(),
            audience: "flinkbroker".into(),
            claims: names(),
            leeway: Duration::from_secs(0),
            refresh_interval: Duration::from_secs(60),
            min_refresh_interval: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(5),
        };
        let error = JwtVerifier::load(settings).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.starts_with(&format!(
                "cannot use --jwt-jwks-file: {} is not a JWKS document",
                path.display()
            )),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            error
                .chain()
                .any(|cause| cause.downcast_ref::<serde_json::Error>().is_some()),
            "{message}"
        );
    }
}
