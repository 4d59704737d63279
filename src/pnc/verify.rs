//! Checks on a contract certificate chain at Authorize: each certificate
//! signed by the next, the last by a trusted MO root, all valid now, the
//! leaf naming the eMAID. Pure functions over DER; a bad input is a
//! verdict, never a panic.

use crate::domain::pnc::{CertVerdict, OcspRequestData};
use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

/// Longest chain followed (leaf, two sub-CAs, root).
const MAX_DEPTH: usize = 4;

/// A refused chain: the OCPP status and why, for the event log.
pub type Refusal = (CertVerdict, String);

/// The certificates of a PEM chain, DER, in order.
pub fn pem_chain(pem: &str) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let c = c.map_err(|e| (CertVerdict::CertChainError, format!("certificate: not PEM ({e})")))?;
        if X509Certificate::from_der(c.as_ref()).is_err() {
            return Err((
                CertVerdict::CertChainError,
                format!("certificate {}: not an X.509 certificate", out.len() + 1),
            ));
        }
        out.push(c.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err((
            CertVerdict::NoCertificateAvailable,
            "certificate: no PEM certificate in it".into(),
        ));
    }
    Ok(out)
}

/// Did `issuer_der`'s key sign `cert_der`, and does the name match?
pub fn signed_by(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, c)), Ok((_, i))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    c.issuer().as_raw() == i.subject().as_raw() && c.verify_signature(Some(i.public_key())).is_ok()
}

/// The common name of a certificate (the eMAID of a contract certificate).
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    let (_, c) = X509Certificate::from_der(cert_der).ok()?;
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string)
}

/// Hex of a certificate's serial number as OCPP writes it: no leading
/// zeros, not even half a byte's (`0x0123` is `123`).
pub fn serial_hex(cert_der: &[u8]) -> Option<String> {
    let (_, c) = X509Certificate::from_der(cert_der).ok()?;
    Some(crate::domain::pnc::norm_serial(
        &data_encoding::HEXLOWER.encode(c.raw_serial()),
    ))
}

/// OCPP's hash data of `cert_der`, whose issuer is `issuer_der`.
pub fn hash_data(cert_der: &[u8], issuer_der: &[u8], responder_url: &str) -> Option<OcspRequestData> {
    let (_, i) = X509Certificate::from_der(issuer_der).ok()?;
    let hex = |b: Vec<u8>| data_encoding::HEXLOWER.encode(&b);
    Some(OcspRequestData {
        hash_algorithm: "SHA256".into(),
        issuer_name_hash: hex(super::ocsp::hash("SHA256", i.subject().as_raw()).ok()?),
        issuer_key_hash: hex(super::ocsp::hash("SHA256", &i.public_key().subject_public_key.data).ok()?),
        serial_number: serial_hex(cert_der)?,
        responder_url: responder_url.into(),
    })
}

/// Follow `chain` (leaf first) to one of `roots`. On success: the leaf's
/// issuer, for the OCSP check.
pub fn check_chain(chain: &[Vec<u8>], roots: &[Vec<u8>], emaid: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Refusal> {
    let chain_err = |why: String| (CertVerdict::CertChainError, why);
    let at = ASN1Time::from_timestamp(now.timestamp()).map_err(|e| chain_err(e.to_string()))?;
    let leaf = chain.first().ok_or_else(|| chain_err("no certificate".into()))?;
    match common_name(leaf) {
        Some(cn) if cn.eq_ignore_ascii_case(emaid) => {}
        Some(cn) => return Err(chain_err(format!("the contract certificate is for {cn}, not {emaid}"))),
        None => return Err(chain_err("the contract certificate names no eMAID".into())),
    }
    let mut current = leaf.clone();
    let mut leaf_issuer = None;
    for depth in 0..MAX_DEPTH {
        let (_, c) = X509Certificate::from_der(&current).map_err(|e| chain_err(e.to_string()))?;
        if !c.validity().is_valid_at(at) {
            let name = common_name(&current).unwrap_or_default();
            return Err((
                CertVerdict::CertificateExpired,
                format!(
                    "{name:?} is valid {} to {}, not now",
                    c.validity().not_before,
                    c.validity().not_after
                ),
            ));
        }
        if depth > 0 && !c.is_ca() {
            return Err(chain_err(format!(
                "{:?} is not a CA",
                common_name(&current).unwrap_or_default()
            )));
        }
        let named: Vec<&Vec<u8>> = roots
            .iter()
            .chain(chain.iter().skip(1))
            .filter(|i| {
                X509Certificate::from_der(i).is_ok_and(|(_, i)| i.subject().as_raw() == c.issuer().as_raw())
                    && **i != current
            })
            .collect();
        if named.is_empty() {
            return Err(chain_err(format!(
                "no trusted MO root or given sub-CA is the issuer {} of {:?}",
                c.issuer(),
                common_name(&current).unwrap_or_default()
            )));
        }
        let Some(issuer) = named.into_iter().find(|i| signed_by(&current, i)) else {
            return Err((
                CertVerdict::SignatureError,
                format!(
                    "the signature of {:?} does not verify with its issuer's key",
                    common_name(&current).unwrap_or_default()
                ),
            ));
        };
        if leaf_issuer.is_none() {
            leaf_issuer = Some(issuer.clone());
        }
        if roots.contains(issuer) {
            let (_, r) = X509Certificate::from_der(issuer).map_err(|e| chain_err(e.to_string()))?;
            if !r.validity().is_valid_at(at) {
                return Err((CertVerdict::CertificateExpired, "the MO root is not valid now".into()));
            }
            return leaf_issuer.ok_or_else(|| chain_err("no issuer".into()));
        }
        current = issuer.clone();
    }
    Err(chain_err(format!("no trusted MO root within {MAX_DEPTH} certificates")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_is_written_without_any_leading_zero() {
        for (serial, hex) in [
            (vec![0x01, 0x23], "123"),
            (vec![0x7f, 0x00], "7f00"),
            (vec![0x00, 0x9a], "9a"),
        ] {
            let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(serial_hex(cert.der()).as_deref(), Some(hex));
        }
    }
}
