//! ISO 15118 Plug & Charge on the CSMS side: a pluggable contract-certificate
//! source (`[pnc] source`: the built-in test PKI, an HTTP service or a
//! program), and the checks on a contract certificate at Authorize.
//! See docs/plug-and-charge.md.

pub mod local;
pub mod ocsp;
pub mod remote;
pub mod test_exi;
pub mod verify;

use crate::domain::pnc::{CertVerdict, ContractCert, ContractData, OcspRequestData, SourceAnswer};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

/// Get15118EVCertificate as the charger sent it; `exi_request` is opaque
/// to the CSMS (OCPP 2.0.1) and passed on as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct EvCertRequest {
    pub charger: String,
    pub schema_version: String,
    /// Install or Update.
    pub action: String,
    pub exi_request: String,
}

/// The source's answer, and the certificate it issued when the server
/// keeps the record (the local source).
#[derive(Debug, Clone, PartialEq)]
pub struct EvCertAnswer {
    /// Accepted carries the exiResponse.
    pub answer: SourceAnswer,
    pub issued: Option<ContractCert>,
}

/// Where contract certificates and their status come from.
pub trait ContractSource: Send + Sync {
    fn name(&self) -> &'static str;
    /// Get15118EVCertificate: the exiResponse, or why not.
    fn ev_certificate<'a>(&'a self, req: &'a EvCertRequest) -> BoxFuture<'a, EvCertAnswer>;
    /// GetCertificateStatus: a DER OCSPResponse (base64), or why not.
    fn certificate_status<'a>(&'a self, req: &'a OcspRequestData) -> BoxFuture<'a, SourceAnswer>;
    /// The MO roots (DER) contract certificates must chain to; OCSP
    /// responses must be signed by one of them or by a responder one of
    /// them certified.
    fn trusted(&self) -> &[Vec<u8>];
}

/// Check an Authorize's contract certificate for `emaid`: chain to a
/// trusted MO root (when the chain was sent), then its OCSP status as
/// the source answers it.
pub async fn check(
    source: &dyn ContractSource,
    emaid: &str,
    data: &ContractData,
    now: DateTime<Utc>,
) -> Result<(), verify::Refusal> {
    let (hd, mut trusted) = match &data.certificate {
        Some(pem) => {
            let chain = verify::pem_chain(pem)?;
            let issuer = verify::check_chain(&chain, source.trusted(), emaid, now)?;
            let url = data.hash_data.first().map_or("", |h| h.responder_url.as_str());
            let hd = verify::hash_data(&chain[0], &issuer, url)
                .ok_or((CertVerdict::CertChainError, "the chain cannot be hashed".into()))?;
            let mut trusted = source.trusted().to_vec();
            trusted.push(issuer);
            (hd, trusted)
        }
        None => match data.hash_data.first() {
            Some(hd) => (hd.clone(), source.trusted().to_vec()),
            None => {
                return Err((
                    CertVerdict::NoCertificateAvailable,
                    "neither certificate nor iso15118CertificateHashData".into(),
                ));
            }
        },
    };
    trusted.dedup();
    let b64 = match source.certificate_status(&hd).await {
        SourceAnswer::Accepted(b64) => b64,
        SourceAnswer::Failed { reason, detail } if reason == "UnknownIssuer" => {
            return Err((CertVerdict::CertChainError, detail));
        }
        SourceAnswer::Failed { reason, detail } => {
            return Err((
                CertVerdict::NoCertificateAvailable,
                format!("no OCSP status from the {} source: {reason}: {detail}", source.name()),
            ));
        }
    };
    let der = data_encoding::BASE64.decode(b64.as_bytes()).map_err(|_| {
        (
            CertVerdict::NoCertificateAvailable,
            "the OCSP result is not base64".into(),
        )
    })?;
    match ocsp::read(&der, &hd, &trusted) {
        Ok(ocsp::Status::Good) => Ok(()),
        Ok(ocsp::Status::Revoked { cancelled: true, at }) => {
            Err((CertVerdict::ContractCancelled, format!("contract cancelled at {at}")))
        }
        Ok(ocsp::Status::Revoked { at, .. }) => Err((CertVerdict::CertificateRevoked, format!("revoked at {at}"))),
        Ok(ocsp::Status::Unknown) => Err((
            CertVerdict::CertChainError,
            "the OCSP responder does not know this certificate".into(),
        )),
        Err(e @ ocsp::OcspError::Signature) => Err((CertVerdict::SignatureError, e.to_string())),
        Err(e) => Err((CertVerdict::NoCertificateAvailable, e.to_string())),
    }
}

/// The configured source and the local PKI, made on first use (a server
/// that never sees Plug & Charge creates no keys).
#[derive(Default)]
pub struct Slot {
    local: std::sync::Mutex<Option<std::sync::Arc<local::LocalPki>>>,
    remote: std::sync::Mutex<Option<std::sync::Arc<remote::Remote>>>,
}

impl Slot {
    /// The local test PKI (whatever the configured source: `pnc issue`).
    pub fn local(
        &self,
        cfg: &crate::config::ServerConfig,
        store: &crate::store::Store,
    ) -> Result<std::sync::Arc<local::LocalPki>, String> {
        let mut slot = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = &*slot {
            return Ok(l.clone());
        }
        let l = local::LocalPki::load_or_create(&cfg.pnc_dir(), store.clone(), cfg.pnc.contract_days)
            .map_err(|e| e.to_string())?;
        tracing::info!(dir = %cfg.pnc_dir().display(), "loaded the local Plug & Charge test PKI");
        let l = std::sync::Arc::new(l);
        *slot = Some(l.clone());
        Ok(l)
    }

    /// The source `[pnc] source` names.
    pub fn source(
        &self,
        cfg: &crate::config::ServerConfig,
        store: &crate::store::Store,
    ) -> Result<std::sync::Arc<dyn ContractSource>, String> {
        use crate::config::PncSource;
        let p = &cfg.pnc;
        if p.source == PncSource::Local {
            return Ok(self.local(cfg, store)?);
        }
        let mut slot = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = &*slot {
            return Ok(r.clone());
        }
        let mut roots = Vec::new();
        for path in &p.mo_roots {
            let pem = std::fs::read(path).map_err(|e| format!("pnc.mo_roots: {}: {e}", path.display()))?;
            for c in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
                roots.push(
                    c.map_err(|e| format!("pnc.mo_roots: {}: {e}", path.display()))?
                        .to_vec(),
                );
            }
        }
        let timeout = std::time::Duration::from_millis(p.timeout_ms);
        let r = match p.source {
            PncSource::Http => {
                let tls = p.ca_file.as_deref().map(|ca_file| remote::TlsFiles {
                    ca_file,
                    client: p.client_cert.as_deref().zip(p.client_key.as_deref()),
                });
                remote::Remote::http(p.url.as_deref().unwrap_or_default(), timeout, roots, tls)?
            }
            _ => remote::Remote::program(p.command.clone(), timeout, roots),
        };
        let r = std::sync::Arc::new(r);
        *slot = Some(r.clone());
        Ok(r)
    }
}
