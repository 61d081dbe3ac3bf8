//! Mutual TLS for remote workers (rustls, the `ring` provider): the listening
//! host's server configuration, which requires a client certificate signed by
//! the configured CA, and the dialling worker's client configuration, which
//! checks the host's certificate against the same CA and presents its own.
//!
//! Files are PEM: `cert` a certificate chain, `key` a PKCS#8, PKCS#1 or SEC1
//! private key, `ca` one or more CA certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The three PEM files of one side of a mutual-TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
    /// The CA that signs the other side's certificate.
    pub ca: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let read = CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>());
    match read {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(Error::Config(format!("tls.{what}: {} holds no PEM certificate", path.display()))),
        Err(e) => Err(Error::Config(format!("tls.{what}: cannot read {}: {e}", path.display()))),
    }
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Config(format!("tls.key: cannot read a PEM private key from {}: {e}", path.display())))
}

fn roots(path: &Path) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(path, "ca")? {
        store.add(c).map_err(|e| Error::Config(format!("tls.ca: {} is not a usable CA certificate: {e}", path.display())))?;
    }
    Ok(store)
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("tls: {what}: {e}"))
}

/// The listening host's configuration: a client certificate signed by `ca` is required.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca)?), provider.clone())
        .build()
        .map_err(|e| tls_error("the client certificate verifier", e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert, "cert")?, key(&files.key)?)
        .map_err(|e| tls_error("the host certificate and key do not go together", e))?;
    Ok(Arc::new(config))
}

/// The dialling worker's configuration: the host's certificate must be signed by `ca`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(certs(&files.cert, "cert")?, key(&files.key)?)
        .map_err(|e| tls_error("the worker certificate and key do not go together", e))?;
    Ok(Arc::new(config))
}

/// A server configuration without client certificates (the HTTP gateway: a bearer token
/// authenticates the client): the listener's own `cert` and `key`.
pub fn server_auth_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?
        .with_no_client_auth()
        .with_single_cert(certs(&files.cert, "cert")?, key(&files.key)?)
        .map_err(|e| tls_error("the host certificate and key do not go together", e))?;
    Ok(Arc::new(config))
}
