//! The TLS side of security profiles 2 and 3: rustls (ring provider) with
//! the server certificate read from PEM files. The whole rustls config sits
//! behind an `ArcSwap`: a reload (SIGHUP) swaps it for new handshakes while
//! open connections keep the session they negotiated.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::FromDer;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the listener's certificate, key and client-certificate roots come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates (PEM) trusted for client certificates, besides the built-in CA.
    pub client_ca: Vec<PathBuf>,
}

pub struct Tls {
    files: TlsFiles,
    /// The built-in CA's certificate, always trusted for client certificates.
    ca: CertificateDer<'static>,
    config: ArcSwap<rustls::ServerConfig>,
}

impl Tls {
    pub fn new(files: TlsFiles, ca: CertificateDer<'static>) -> Result<Tls, TlsError> {
        let config = build(&files, &ca)?;
        Ok(Tls {
            files,
            ca,
            config: ArcSwap::from(config),
        })
    }

    /// Read the files again; on any error the previous config stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files, &self.ca)?;
        self.config.store(config);
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

fn build(files: &TlsFiles, ca: &CertificateDer<'static>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_err = |path: &PathBuf, reason: String| TlsError::File {
        path: path.clone(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(&files.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| TlsError::Config(format!("built-in CA: {e}")))?;
    for path in &files.client_ca {
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_err(path, e.to_string()))? {
            let cert = cert.map_err(|e| file_err(path, e.to_string()))?;
            roots.add(cert).map_err(|e| file_err(path, e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Profile 2 chargers connect without a client certificate on the same
    // port; the listener enforces each charger's profile after the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| file_err(&files.key, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// The names a client certificate speaks for: its common name, or when it
/// has none, its DNS subject alternative names.
pub fn peer_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, x509)) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let cns: Vec<String> = x509
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    if !cns.is_empty() {
        return cns;
    }
    match x509.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
