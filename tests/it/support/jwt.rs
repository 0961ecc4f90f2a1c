//! JWTs for black-box tests: signing keys (ES256 generated here, RS256 from a committed
//! test-only key), their JWKS, tokens with chosen claims, and a JWKS served over HTTP.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// The issuer every test token names.
pub(crate) const ISSUER: &str = "https://idp.flinkbroker.test";
/// The audience every test broker expects.
pub(crate) const AUDIENCE: &str = "flinkbroker";

/// The committed test-only RSA key (PKCS#1 PEM).
const RSA_TEST_KEY: &str = include_str!("../../fixtures/auth/rsa-test-key.pem");

/// A key that signs JWTs, and its public JWK.
pub(crate) struct SigningKey {
    pub kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// A new P-256 key signing ES256.
    pub(crate) fn es256(kid: &str) -> SigningKey {
        let pair = rcgen::KeyPair::generate().expect("P-256 key");
        SigningKey::new(
            kid,
            Algorithm::ES256,
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    /// The committed RSA test key signing RS256.
    pub(crate) fn rs256(kid: &str) -> SigningKey {
        let body: String = RSA_TEST_KEY
            .lines()
            .skip_while(|line| !line.starts_with("-----BEGIN RSA PRIVATE KEY-----"))
            .skip(1)
            .take_while(|line| !line.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("PEM body");
        SigningKey::new(kid, Algorithm::RS256, EncodingKey::from_rsa_der(&der))
    }

    fn new(kid: &str, algorithm: Algorithm, encoding: EncodingKey) -> SigningKey {
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("public JWK");
        jwk.common.key_id = Some(kid.to_owned());
        SigningKey {
            kid: kid.to_owned(),
            algorithm,
            encoding,
            jwk,
        }
    }

    /// Signs `claims`, naming this key's id.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs `claims` with this key but names another key id.
    pub(crate) fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// The JWKS document of these keys.
pub(crate) fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|key| &key.jwk).collect::<Vec<_>>() }).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims of a caller valid for ten minutes.
pub(crate) fn claims(subject: &str, tenant: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "tenant": tenant,
        "roles": roles,
        "iat": now(),
        "exp": now() + 600,
    })
}

/// `claims` with `field` replaced (None removes it).
pub(crate) fn with(mut claims: Value, field: &str, value: Option<Value>) -> Value {
    let map = claims.as_object_mut().expect("claims object");
    match value {
        Some(value) => map.insert(field.to_owned(), value),
        None => map.remove(field),
    };
    claims
}

/// Claims that expired an hour ago.
pub(crate) fn expired(claims: Value) -> Value {
    with(claims, "exp", Some(json!(now() - 3600)))
}

/// The `serve` flags of JWT authentication with keys at `source` (`--jwt-jwks-file` or
/// `--jwt-jwks-url`).
pub(crate) fn flags(source_flag: &'static str, source: &str) -> Vec<String> {
    [
        source_flag,
        source,
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Answers with the JWKS document in force.
struct CurrentJwks(Arc<Mutex<String>>);

impl Respond for CurrentJwks {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        let document = self.0.lock().expect("jwks lock").clone();
        ResponseTemplate::new(200).set_body_raw(document, "application/json")
    }
}

/// A JWKS served over HTTP, whose keys a test can change.
pub(crate) struct JwksServer {
    server: MockServer,
    document: Arc<Mutex<String>>,
}

impl JwksServer {
    /// Serves the JWKS of `keys` on a free port.
    pub(crate) async fn start(keys: &[&SigningKey]) -> JwksServer {
        let server = MockServer::start().await;
        let document = Arc::new(Mutex::new(jwks(keys)));
        Mock::given(method("GET"))
            .and(path("/.well-known/jwks.json"))
            .respond_with(CurrentJwks(Arc::clone(&document)))
            .mount(&server)
            .await;
        JwksServer { server, document }
    }

    /// Serves the JWKS of `keys` from now on.
    pub(crate) fn publish(&self, keys: &[&SigningKey]) {
        *self.document.lock().expect("jwks lock") = jwks(keys);
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.server.uri())
    }

    /// How often the JWKS was read.
    pub(crate) async fn reads(&self) -> usize {
        self.server
            .received_requests()
            .await
            .map(|requests| requests.len())
            .unwrap_or(0)
    }
}
