//! rustls client configuration from PEM bytes, and the handshake.

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::error::ClientError;
use super::transport::Transport;
use crate::output::upstream::TlsFiles;

fn tls(msg: impl Into<String>) -> ClientError {
    ClientError::Tls(msg.into())
}

/// Build the client configuration: the CA PEM's certificates (or the system's
/// roots when it is empty) and, if given, the client certificate and key.
pub(crate) fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, ClientError> {
    let roots = if files.ca_pem.is_empty() {
        system_roots()?
    } else {
        ca_roots(&files.ca_pem)?
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(format!("no usable TLS versions: {e}")))?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let certs = certificates(cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
                pem::Error::NoItemsFound => {
                    tls("the client key holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
                }
                e => tls(format!("the client key is not valid PEM: {e}")),
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                tls(format!(
                    "the client certificate and key cannot be used: {e}"
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

/// Every certificate in `pem_bytes`; at least one.
fn certificates(pem_bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("the {what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(tls(format!(
            "the {what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

fn ca_roots(ca_pem: &[u8]) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(ca_pem, "CA certificate")?
        .into_iter()
        .enumerate()
    {
        roots.add(cert).map_err(|e| {
            tls(format!(
                "CA certificate #{} cannot be used as a trust anchor: {e}",
                i + 1
            ))
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, ClientError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(tls(format!(
            "no CA file was given and the system has no usable CA certificates{why}"
        )));
    }
    Ok(roots)
}

/// TLS handshake over `tcp`, checking the server's certificate against `host` (a DNS name or an IP address).
pub(crate) async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<Transport, ClientError> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| tls(format!("{host:?} is not a valid server name for TLS")))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(host, e))?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// rustls reports certificate problems inside an `io::Error`; name them as TLS errors.
fn handshake_error(host: &str, e: io::Error) -> ClientError {
    match io_error(e) {
        ClientError::Tls(text) => tls(format!("handshake with {host} failed: {text}")),
        other => other,
    }
}

/// An I/O error, or the TLS error rustls put inside it.
pub(crate) fn io_error(e: io::Error) -> ClientError {
    let Some(rustls_error) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ClientError::Io(e);
    };
    match rustls_error {
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => tls(
            "the server ended the session with a certificate_required alert: it wants a client certificate",
        ),
        rustls::Error::AlertReceived(alert) => tls(format!(
            "the server ended the session with a {alert:?} alert (a certificate or key it does not accept?)"
        )),
        other => tls(other.to_string()),
    }
}
