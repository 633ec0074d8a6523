//! TLS for a listener: the rustls server configuration built from PEM files,
//! and the user name a verified client certificate gives.

use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ServerConnection, WebPkiClientVerifier};
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::config::TlsConfig;
use super::x509::subject_common_name;

/// A TLS listener's files and the acceptor built from them. A reload builds a
/// new acceptor from the same files and puts it in; connections already open
/// keep the certificate they were set up with.
pub(crate) struct Tls {
    pub config: TlsConfig,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    pub(crate) fn new(config: &TlsConfig) -> io::Result<Tls> {
        Ok(Tls {
            acceptor: RwLock::new(acceptor(config)?),
            config: config.clone(),
        })
    }

    /// The acceptor for the next connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn replace(&self, new: TlsAcceptor) {
        *self
            .acceptor
            .write()
            .unwrap_or_else(PoisonError::into_inner) = new;
    }
}

/// Build the acceptor of a TLS listener. Every error names the file at fault.
pub(crate) fn acceptor(tls: &TlsConfig) -> io::Result<TlsAcceptor> {
    let certs = read_certs(&tls.cert_file, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| match e {
        pem::Error::NoItemsFound => bad_file(&tls.key_file, "no PEM private key in it"),
        e => bad_file(&tls.key_file, &format!("cannot read the private key: {e}")),
    })?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS set-up: {e}")))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file, "CA certificate")? {
                roots
                    .add(cert)
                    .map_err(|e| bad_file(ca_file, &format!("unusable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if tls.require_client_cert {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            };
            let verifier = verifier
                .map_err(|e| bad_file(ca_file, &format!("unusable CA certificates: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => "the key is not the certificate's".to_string(),
            e => e.to_string(),
        };
        let (cert, key) = (tls.cert_file.display(), tls.key_file.display());
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{cert} with {key}: {why}"),
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Every certificate of a PEM file; an unreadable file or one without a
/// certificate is an error naming it.
fn read_certs(file: &Path, what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| bad_file(file, &format!("cannot read the {what} file: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(file, &format!("not a PEM {what} file: {e}")))?;
    if certs.is_empty() {
        return Err(bad_file(
            file,
            &format!("no {what} (PEM \"CERTIFICATE\") in it"),
        ));
    }
    Ok(certs)
}

fn bad_file(file: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {why}", file.display()),
    )
}

/// The subject CN of the client's verified certificate, if it sent one.
pub(crate) fn peer_common_name(session: &ServerConnection) -> Option<String> {
    let first = session.peer_certificates()?.first()?;
    subject_common_name(first.as_ref())
}
