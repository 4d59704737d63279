//! The built-in CA for charger certificates (security profile 3): a P-256
//! key and a self-signed certificate in `<data-dir>/ca/`, created on first
//! use. It signs chargers' CSRs (SignCertificate) and is trusted by the TLS
//! listener for client certificates.

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use std::path::{Path, PathBuf};
use x509_parser::prelude::FromDer;

/// The CA certificate's lifetime.
const CA_YEARS: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("CA files in {0}: {1}")]
    Corrupt(PathBuf, String),
    #[error("certificate generation failed: {0}")]
    Gen(#[from] rcgen::Error),
    #[error("no randomness for a serial number: {0}")]
    Random(String),
    #[error("the CSR is not valid: {0}")]
    BadCsr(String),
    #[error("the CSR's common name {got:?} is not this charger's id {want:?}")]
    WrongName { got: String, want: String },
    #[error("the CSR's organization {got:?} is not {want:?}")]
    WrongOrganization { got: String, want: String },
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate followed by the CA certificate, PEM.
    pub chain_pem: String,
    pub serial: String,
    pub not_after: DateTime<Utc>,
}

pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// Load the CA from `dir`, or create it there (key file mode 0600).
    pub fn load_or_create(dir: &Path) -> Result<Ca, CaError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |err| CaError::Io { path, err }
        };
        if !cert_path.exists() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "voltyard charger CA");
            dn.push(DnType::OrganizationName, "voltyard");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let now = Utc::now();
            params.not_before = to_time(now - Duration::hours(1));
            params.not_after = to_time(now + Duration::days(365 * CA_YEARS));
            params.serial_number = Some(random_serial()?.1);
            let cert = params.self_signed(&key)?;
            write_private(&key_path, key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
            tracing::info!(dir = %dir.display(), "created the built-in CA for charger certificates");
        }
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let corrupt = |e: &dyn std::fmt::Display| CaError::Corrupt(dir.to_path_buf(), e.to_string());
        let key = KeyPair::from_pem(&key_pem).map_err(|e| corrupt(&e))?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| corrupt(&e))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| corrupt(&e))?;
        Ok(Ca {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// Sign a charger's CSR after checking that it names the charger:
    /// the common name must be its id (and the organization, when one is
    /// required, must match). Names other than the common name are not
    /// copied, so a certificate never speaks for another charger.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        charger: &str,
        organization: Option<&str>,
        days: u32,
    ) -> Result<Issued, CaError> {
        let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|e| CaError::BadCsr(format!("not a PEM certificate request ({e})")))?;
        let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        req.verify_signature()
            .map_err(|_| CaError::BadCsr("its signature does not verify".into()))?;
        let subject = &req.certification_request_info.subject;
        let cn = first(subject.iter_common_name());
        if cn.as_deref() != Some(charger) {
            return Err(CaError::WrongName {
                got: cn.unwrap_or_default(),
                want: charger.into(),
            });
        }
        let org = first(subject.iter_organization());
        if let Some(want) = organization
            && org.as_deref() != Some(want)
        {
            return Err(CaError::WrongOrganization {
                got: org.unwrap_or_default(),
                want: want.into(),
            });
        }
        let csr = CertificateSigningRequestParams::from_der(&der).map_err(|e| CaError::BadCsr(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, charger);
        if let Some(o) = org {
            dn.push(DnType::OrganizationName, o);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        self.finish(&mut params);
        let (serial, sn) = random_serial()?;
        params.serial_number = Some(sn);
        let not_after = Utc::now() + Duration::days(i64::from(days));
        params.not_after = to_time(not_after);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(Issued {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            serial,
            not_after,
        })
    }

    /// A certificate and key for `cn` signed by this CA (for a charger
    /// that cannot make its own CSR, and for the simulator and tests).
    pub fn issue(&self, cn: &str, days: u32) -> Result<(Issued, String), CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        self.finish(&mut params);
        let (serial, sn) = random_serial()?;
        params.serial_number = Some(sn);
        let not_after = Utc::now() + Duration::days(i64::from(days));
        params.not_after = to_time(not_after);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((
            Issued {
                chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
                serial,
                not_after,
            },
            key.serialize_pem(),
        ))
    }

    fn finish(&self, params: &mut CertificateParams) {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_time(Utc::now() - Duration::hours(1));
    }
}

fn first<'a>(mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

/// A positive 128-bit random serial: (hex, rcgen's form).
pub(crate) fn random_serial() -> Result<(String, SerialNumber), CaError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| CaError::Random(e.to_string()))?;
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok((data_encoding::HEXLOWER.encode(&b), SerialNumber::from_slice(&b)))
}

pub(crate) fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "ACME");
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn created_once_key_private_and_signs_only_the_chargers_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
        let again = Ca::load_or_create(&dir.path().join("ca")).unwrap();
        assert_eq!(ca.cert_pem, again.cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca/ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let issued = ca.sign_csr(&csr("CP-1"), "CP-1", Some("ACME"), 365).unwrap();
        assert_eq!(issued.chain_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(issued.not_after > Utc::now() + Duration::days(364));
        assert!(matches!(
            ca.sign_csr(&csr("CP-2"), "CP-1", None, 365),
            Err(CaError::WrongName { .. })
        ));
        assert!(matches!(
            ca.sign_csr(&csr("CP-1"), "CP-1", Some("Other"), 365),
            Err(CaError::WrongOrganization { .. })
        ));
        assert!(matches!(
            ca.sign_csr("junk", "CP-1", None, 365),
            Err(CaError::BadCsr(_))
        ));
    }
}
