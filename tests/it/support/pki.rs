//! Certificates for black-box TLS tests: a CA made here, and server and client certificates
//! it issues.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
}

/// A certificate authority.
pub struct CertificateAuthority {
    /// The CA's own certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    pub fn new(name: &str) -> CertificateAuthority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        CertificateAuthority {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = names;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("issued certificate");
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Issued {
        self.issue(
            "localhost",
            vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose subject CN is `common_name`.
    pub fn client(&self, common_name: &str) -> Issued {
        self.client_with_names(common_name, Vec::new())
    }

    /// A client certificate with subject alternative names.
    pub fn client_with_names(&self, common_name: &str, names: Vec<SanType>) -> Issued {
        self.issue(common_name, names, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Connects over TLS to `addr`, trusting `ca_pem`, presenting `identity` if given.
pub async fn tls_channel(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(&identity.cert, &identity.key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}
