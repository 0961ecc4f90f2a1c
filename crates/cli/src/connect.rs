//! The client side's connection to a broker: the server address, a bearer token and TLS.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use super::CliError;
use flinkbroker_proto::job_service_client::JobServiceClient;

/// Where the broker is and how to prove who is calling.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The broker's address (`http://host:port`, or `https://` for TLS).
    #[arg(
        long,
        global = true,
        env = "FLINKBROKER_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,

    /// Bearer token sent with every call (a static token or a JWT).
    #[arg(long, global = true, env = "FLINKBROKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM CA certificate that signed the broker's certificate (TLS).
    #[arg(long, global = true, env = "FLINKBROKER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate (mTLS), with --client-key.
    #[arg(
        long,
        global = true,
        env = "FLINKBROKER_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "FLINKBROKER_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// How long connecting to the broker may take.
    #[arg(long, global = true, default_value = "10s", value_parser = flinkbroker_model::units::parse_duration)]
    pub connect_timeout: Duration,
}

/// Sends the bearer token, if any, with every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub(crate) type Client = JobServiceClient<InterceptedService<Channel, Bearer>>;

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// Connects to the broker; an address that does not answer is `Unreachable`.
pub(crate) async fn connect(args: &ServerArgs) -> Result<Client, CliError> {
    let mut endpoint = Endpoint::from_shared(args.server.clone())
        .map_err(|e| CliError::Usage(format!("--server {:?} is not a URL: {e}", args.server)))?
        .connect_timeout(args.connect_timeout);
    let tls_wanted =
        args.server.starts_with("https://") || args.ca_cert.is_some() || args.client_cert.is_some();
    if tls_wanted {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &args.ca_cert {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "--ca-cert")?));
        }
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "--client-cert")?,
                read(key, "--client-key")?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| CliError::Usage(format!("TLS settings: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        CliError::Unreachable(format!("cannot connect to {}: {}", args.server, root(&e)))
    })?;
    let bearer = match &args.token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| CliError::Usage("--token holds characters a header cannot".into()))?,
        ),
        None => None,
    };
    Ok(JobServiceClient::with_interceptor(channel, Bearer(bearer)))
}

/// The innermost cause of an error, which says what actually went wrong.
fn root(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
