//! The local contract-certificate source: a test V2G PKI made on first use
//! in `<data-dir>/pnc/` (P-256 keys, owner-only): a V2G root (for
//! chargers to trust), an MO root, an MO sub-CA that issues contract
//! certificates (eMAID as common name, ISO 15118-2 key usages) and an OCSP
//! responder certificate the sub-CA delegated to. Revocations come from
//! the store.

use super::ocsp::{self, Signer, Status};
use super::test_exi;
use super::{ContractSource, EvCertAnswer, EvCertRequest};
use crate::domain::pnc::{ContractCert, OcspRequestData, SourceAnswer, norm_serial};
use crate::security::ca::{random_serial, to_time, write_private};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, X509Certificate};

const ROOT_YEARS: i64 = 40;
const SUB_CA_YEARS: i64 = 4;
const OCSP_YEARS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("PnC CA files in {0}: {1}")]
    Corrupt(PathBuf, String),
    #[error("certificate generation failed: {0}")]
    Gen(#[from] rcgen::Error),
    #[error("{0}")]
    Serial(String),
    #[error("eMAID {0:?}: 2 to 36 letters, digits or hyphens, starting with a two-letter country code")]
    Emaid(String),
}

/// One CA (or the responder) of the local PKI.
pub struct Authority {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn load_or_make(
        dir: &Path,
        name: &str,
        cn: &str,
        parent: Option<&Authority>,
        purpose: Purpose,
    ) -> Result<Authority, PkiError> {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |err| PkiError::Io { path, err }
        };
        if !cert_path.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            dn.push(DnType::OrganizationName, "voltyard test PKI");
            params.distinguished_name = dn;
            let now = Utc::now();
            params.not_before = to_time(now - Duration::hours(1));
            let years = match purpose {
                Purpose::Root => ROOT_YEARS,
                Purpose::SubCa => SUB_CA_YEARS,
                Purpose::Ocsp => OCSP_YEARS,
            };
            params.not_after = to_time(now + Duration::days(365 * years));
            params.serial_number = Some(random_serial().map_err(|e| PkiError::Serial(e.to_string()))?.1);
            match purpose {
                Purpose::Root | Purpose::SubCa => {
                    params.is_ca = IsCa::Ca(match purpose {
                        Purpose::Root => BasicConstraints::Unconstrained,
                        _ => BasicConstraints::Constrained(0),
                    });
                    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                }
                Purpose::Ocsp => {
                    params.is_ca = IsCa::ExplicitNoCa;
                    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
                }
            }
            let cert = match parent {
                Some(p) => {
                    params.use_authority_key_identifier_extension = true;
                    params.signed_by(&key, &p.issuer)?
                }
                None => params.self_signed(&key)?,
            };
            write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
        }
        let pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let corrupt = |e: &dyn std::fmt::Display| PkiError::Corrupt(dir.to_path_buf(), format!("{name}: {e}"));
        let key = KeyPair::from_pem(&key_pem).map_err(|e| corrupt(&e))?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| corrupt(&e))?;
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| corrupt(&e))?;
        Ok(Authority {
            pem,
            der: der.as_ref().to_vec(),
            issuer,
        })
    }

    fn signer<'a>(&'a self, above: &[&'a Authority]) -> Signer<'a> {
        let mut certs = vec![self.der.as_slice()];
        certs.extend(above.iter().map(|a| a.der.as_slice()));
        Signer {
            key: self.issuer.key(),
            certs,
        }
    }

    /// Does OCPP hash data with `algorithm` name this authority as issuer?
    fn issued(&self, req: &OcspRequestData) -> bool {
        let Ok((_, c)) = X509Certificate::from_der(&self.der) else {
            return false;
        };
        let hex = |b: Vec<u8>| data_encoding::HEXLOWER.encode(&b);
        let same = |want: &str, got: Result<Vec<u8>, ocsp::OcspError>| {
            got.is_ok_and(|g| hex(g).eq_ignore_ascii_case(want.trim()))
        };
        same(
            &req.issuer_name_hash,
            ocsp::hash(&req.hash_algorithm, c.subject().as_raw()),
        ) && same(
            &req.issuer_key_hash,
            ocsp::hash(&req.hash_algorithm, &c.public_key().subject_public_key.data),
        )
    }
}

#[derive(Clone, Copy)]
enum Purpose {
    Root,
    SubCa,
    Ocsp,
}

pub struct LocalPki {
    pub dir: PathBuf,
    pub v2g_root: Authority,
    pub mo_root: Authority,
    pub mo_sub_ca: Authority,
    pub ocsp: Authority,
    store: Store,
    contract_days: u32,
    trusted: Vec<Vec<u8>>,
}

/// A contract certificate just issued, not yet stored.
pub struct Issued {
    pub record: ContractCert,
    /// Contract certificate then MO sub-CA, PEM.
    pub chain_pem: String,
}

impl LocalPki {
    pub fn load_or_create(dir: &Path, store: Store, contract_days: u32) -> Result<LocalPki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|err| PkiError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
        let v2g_root = Authority::load_or_make(dir, "v2g-root", "voltyard test V2G root", None, Purpose::Root)?;
        let mo_root = Authority::load_or_make(dir, "mo-root", "voltyard test MO root", None, Purpose::Root)?;
        let mo_sub_ca = Authority::load_or_make(
            dir,
            "mo-sub-ca",
            "voltyard test MO sub-CA",
            Some(&mo_root),
            Purpose::SubCa,
        )?;
        let ocsp = Authority::load_or_make(
            dir,
            "ocsp",
            "voltyard test OCSP responder",
            Some(&mo_sub_ca),
            Purpose::Ocsp,
        )?;
        let trusted = vec![mo_root.der.clone()];
        Ok(LocalPki {
            dir: dir.to_path_buf(),
            v2g_root,
            mo_root,
            mo_sub_ca,
            ocsp,
            store,
            contract_days,
            trusted,
        })
    }

    /// A contract certificate for `emaid` on `key` (ISO 15118-2: the eMAID
    /// as common name, digitalSignature, nonRepudiation and keyAgreement).
    pub fn issue(&self, emaid: &str, key: &impl PublicKeyData, now: DateTime<Utc>) -> Result<Issued, PkiError> {
        if !valid_emaid(emaid) {
            return Err(PkiError::Emaid(emaid.into()));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, emaid);
        dn.push(DnType::OrganizationName, "voltyard test MO");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_time(now - Duration::hours(1));
        let not_after = now + Duration::days(i64::from(self.contract_days));
        params.not_after = to_time(not_after);
        let (serial, sn) = random_serial().map_err(|e| PkiError::Serial(e.to_string()))?;
        params.serial_number = Some(sn);
        let cert = params.signed_by(key, &self.mo_sub_ca.issuer)?;
        Ok(Issued {
            record: ContractCert {
                serial: norm_serial(&serial),
                emaid: emaid.to_string(),
                issued_at: now,
                not_after,
                revoked: None,
            },
            chain_pem: format!("{}{}", cert.pem(), self.mo_sub_ca.pem),
        })
    }

    /// A contract certificate and a fresh key (`pnc issue`).
    pub fn issue_with_key(&self, emaid: &str, now: DateTime<Utc>) -> Result<(Issued, String), PkiError> {
        let key = KeyPair::generate()?;
        Ok((self.issue(emaid, &key, now)?, key.serialize_pem()))
    }

    fn install(&self, req: &EvCertRequest) -> EvCertAnswer {
        let failed = |reason: &str, detail: String| EvCertAnswer {
            answer: SourceAnswer::failed(reason, detail),
            issued: None,
        };
        let parsed: test_exi::Request = match test_exi::decode(&req.exi_request) {
            Ok(r) => r,
            Err(e @ test_exi::TestExiError::Base64) => return failed("InvalidBase64", e.to_string()),
            Err(e) => return failed("UnsupportedEXI", e.to_string()),
        };
        let csr = match CertificateSigningRequestParams::from_pem(&parsed.csr) {
            Ok(c) => c,
            Err(e) => return failed("InvalidCSR", format!("csr: {e}")),
        };
        let signature_ok = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(parsed.csr.as_bytes())
            .ok()
            .and_then(|der| {
                x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                    .ok()
                    .map(|(_, r)| r.verify_signature().is_ok())
            })
            .unwrap_or(false);
        if !signature_ok {
            return failed("InvalidCSR", "csr: its signature does not verify".into());
        }
        let emaid = parsed
            .emaid
            .unwrap_or_else(|| derived_emaid(csr.public_key.der_bytes()));
        match self.issue(&emaid, &csr.public_key, Utc::now()) {
            Ok(issued) => {
                let res = test_exi::Response {
                    format: test_exi::FORMAT.into(),
                    emaid: emaid.clone(),
                    contract_certificate_chain: issued.chain_pem,
                };
                EvCertAnswer {
                    answer: SourceAnswer::Accepted(test_exi::encode(&res)),
                    issued: Some(issued.record),
                }
            }
            Err(e @ PkiError::Emaid(_)) => failed("InvalidEMAID", e.to_string()),
            Err(e) => failed("InternalError", e.to_string()),
        }
    }

    fn status(&self, req: &OcspRequestData) -> SourceAnswer {
        let now = Utc::now();
        let (status, signer) = if self.mo_sub_ca.issued(req) {
            let serial = norm_serial(&req.serial_number);
            let status = match self.store.contract_cert(&serial) {
                Ok(Some(c)) => match c.revoked {
                    Some(r) => Status::Revoked {
                        at: r.at,
                        cancelled: r.cancelled,
                    },
                    None => Status::Good,
                },
                Ok(None) => Status::Unknown,
                Err(e) => return SourceAnswer::failed("InternalError", e.to_string()),
            };
            (status, self.ocsp.signer(&[&self.mo_sub_ca]))
        } else if self.mo_root.issued(req) {
            let sub = super::verify::serial_hex(&self.mo_sub_ca.der).unwrap_or_default();
            let status = if norm_serial(&sub) == norm_serial(&req.serial_number) {
                Status::Good
            } else {
                Status::Unknown
            };
            (status, self.mo_root.signer(&[]))
        } else {
            return SourceAnswer::failed(
                "UnknownIssuer",
                "the local PnC CA did not issue this certificate's issuer",
            );
        };
        match ocsp::respond(req, status, &signer, now) {
            Ok(der) => SourceAnswer::Accepted(data_encoding::BASE64.encode(&der)),
            Err(e @ (ocsp::OcspError::HashAlgorithm(_) | ocsp::OcspError::Hex(_))) => {
                SourceAnswer::failed("InvalidRequest", e.to_string())
            }
            Err(e) => SourceAnswer::failed("InternalError", e.to_string()),
        }
    }
}

impl ContractSource for LocalPki {
    fn name(&self) -> &'static str {
        "local"
    }

    fn ev_certificate<'a>(&'a self, req: &'a EvCertRequest) -> BoxFuture<'a, EvCertAnswer> {
        Box::pin(async move { self.install(req) })
    }

    fn certificate_status<'a>(&'a self, req: &'a OcspRequestData) -> BoxFuture<'a, SourceAnswer> {
        Box::pin(async move { self.status(req) })
    }

    fn trusted(&self) -> &[Vec<u8>] {
        &self.trusted
    }
}

/// ISO 15118-2 / DIN SPEC 91286 eMAIDs (`DE-8AA-1A2B3C4D5-6` or without
/// hyphens), loosely: what OCPP's 36-character idToken can carry.
pub fn valid_emaid(s: &str) -> bool {
    (2..=36).contains(&s.len())
        && s.bytes().take(2).all(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An eMAID for an EV that asked for none: country ZZ (unassigned),
/// provider VYD, and an instance from its key.
fn derived_emaid(public_key: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(public_key);
    format!("ZZVYD{}", data_encoding::HEXUPPER.encode(&h[..5]))
}
