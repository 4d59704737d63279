//! OCSP (RFC 6960) both ways: the DER OCSPResponse the local PnC CA signs
//! for GetCertificateStatus, and reading one (from any source) at
//! Authorize, with its signature checked. ASN.1 types from RustCrypto's
//! `x509-ocsp`; signatures by rcgen's key (ring) and verified with ring.

use crate::domain::pnc::OcspRequestData;
use chrono::{DateTime, Utc};
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use sha2::Digest;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// How long a response may be cached by a charger.
const NEXT_UPDATE_H: i64 = 24;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OcspError {
    #[error("hashAlgorithm {0:?} is not SHA256, SHA384 or SHA512")]
    HashAlgorithm(String),
    #[error("{0} is not hex")]
    Hex(&'static str),
    #[error("the OCSP response is not DER: {0}")]
    Der(String),
    #[error("the OCSP responder answered {0:?}")]
    NotSuccessful(String),
    #[error("the OCSP response does not answer for this certificate")]
    NotAnswered,
    #[error("the OCSP response's signature does not verify against a trusted certificate")]
    Signature,
    #[error("signing the OCSP response failed: {0}")]
    Sign(String),
}

/// A certificate's revocation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked { at: DateTime<Utc>, cancelled: bool },
    Unknown,
}

/// Hash a certificate's issuer the way OCPP's CertificateHashDataType and
/// OCSP's CertID do: the issuer's DER name and the bits of its public key.
pub fn hash(algorithm: &str, data: &[u8]) -> Result<Vec<u8>, OcspError> {
    Ok(match algorithm {
        "SHA256" => sha2::Sha256::digest(data).to_vec(),
        "SHA384" => sha2::Sha384::digest(data).to_vec(),
        "SHA512" => sha2::Sha512::digest(data).to_vec(),
        other => return Err(OcspError::HashAlgorithm(other.into())),
    })
}

fn hash_oid(algorithm: &str) -> Result<ObjectIdentifier, OcspError> {
    Ok(match algorithm {
        "SHA256" => SHA256,
        "SHA384" => SHA384,
        "SHA512" => SHA512,
        other => return Err(OcspError::HashAlgorithm(other.into())),
    })
}

fn unhex(s: &str, field: &'static str) -> Result<Vec<u8>, OcspError> {
    let s = s.trim().to_ascii_lowercase();
    // OCPP serials may drop a leading zero nibble.
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s };
    data_encoding::HEXLOWER
        .decode(s.as_bytes())
        .map_err(|_| OcspError::Hex(field))
}

fn cert_id(req: &OcspRequestData) -> Result<CertId, OcspError> {
    let der = |e: der::Error| OcspError::Der(e.to_string());
    let serial = unhex(&req.serial_number, "serialNumber")?;
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: hash_oid(&req.hash_algorithm)?,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(unhex(&req.issuer_name_hash, "issuerNameHash")?).map_err(der)?,
        issuer_key_hash: OctetString::new(unhex(&req.issuer_key_hash, "issuerKeyHash")?).map_err(der)?,
        serial_number: SerialNumber::new(&serial).map_err(der)?,
    })
}

fn gtime(t: DateTime<Utc>) -> Result<OcspGeneralizedTime, OcspError> {
    let secs = u64::try_from(t.timestamp()).unwrap_or(0);
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|e| OcspError::Der(e.to_string()))
}

/// Who signs: a P-256 key with its certificate and the CAs above it up to
/// (not including) the root, all included in the response so a charger
/// can check a delegated responder.
pub struct Signer<'a> {
    pub key: &'a rcgen::KeyPair,
    pub certs: Vec<&'a [u8]>,
}

/// A signed, successful OCSPResponse (DER) for one certificate.
pub fn respond(
    req: &OcspRequestData,
    status: Status,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, OcspError> {
    let der = |e: der::Error| OcspError::Der(e.to_string());
    let certs = signer
        .certs
        .iter()
        .map(|c| x509_cert::Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(der)?;
    let signer_cert = certs.first().ok_or(OcspError::Sign("no signer certificate".into()))?;
    let cert_status = match status {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { at, cancelled } => CertStatus::revoked(RevokedInfo {
            revocation_time: gtime(at)?,
            revocation_reason: Some(if cancelled {
                CrlReason::CessationOfOperation
            } else {
                CrlReason::KeyCompromise
            }),
        }),
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByName(signer_cert.tbs_certificate.subject.clone()),
        produced_at: gtime(now)?,
        responses: vec![SingleResponse {
            cert_id: cert_id(req)?,
            cert_status,
            this_update: gtime(now)?,
            next_update: Some(gtime(now + chrono::Duration::hours(NEXT_UPDATE_H))?),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(der)?;
    let sig = rcgen::SigningKey::sign(signer.key, &tbs_der).map_err(|e| OcspError::Sign(e.to_string()))?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&sig).map_err(der)?,
        certs: Some(certs),
    };
    OcspResponse::successful(basic).map_err(der)?.to_der().map_err(der)
}

/// Read a DER OCSPResponse about `req`. Its signature must verify with
/// the key of a certificate in `trusted` (DER), or with that of a
/// certificate the response carries which a trusted one signed.
pub fn read(der_bytes: &[u8], req: &OcspRequestData, trusted: &[Vec<u8>]) -> Result<Status, OcspError> {
    let der = |e: der::Error| OcspError::Der(e.to_string());
    let resp = OcspResponse::from_der(der_bytes).map_err(der)?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::NotSuccessful(format!("{:?}", resp.response_status)));
    }
    let bytes = resp.response_bytes.ok_or(OcspError::NotAnswered)?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(der)?;
    let tbs_der = basic.tbs_response_data.to_der().map_err(der)?;
    let sig = basic.signature.as_bytes().ok_or(OcspError::Signature)?;
    let alg = basic.signature_algorithm.oid;
    // A carried certificate counts once a trusted one (or one already
    // admitted) signed it: a responder under a sub-CA under the root.
    let mut signers: Vec<Vec<u8>> = trusted.to_vec();
    let mut carried: Vec<Vec<u8>> = basic.certs.iter().flatten().filter_map(|c| c.to_der().ok()).collect();
    while let Some(i) = carried
        .iter()
        .position(|c| signers.iter().any(|t| super::verify::signed_by(c, t)))
    {
        signers.push(carried.swap_remove(i));
    }
    if !signers.iter().any(|s| verify_with(s, alg, &tbs_der, sig)) {
        return Err(OcspError::Signature);
    }
    let want = cert_id(req)?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| {
            r.cert_id.serial_number == want.serial_number
                && r.cert_id.issuer_key_hash == want.issuer_key_hash
                && r.cert_id.issuer_name_hash == want.issuer_name_hash
        })
        .ok_or(OcspError::NotAnswered)?;
    Ok(match &single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Unknown(_) => Status::Unknown,
        CertStatus::Revoked(info) => Status::Revoked {
            at: DateTime::from_timestamp(info.revocation_time.0.to_unix_duration().as_secs() as i64, 0)
                .unwrap_or_default(),
            cancelled: info.revocation_reason == Some(CrlReason::CessationOfOperation),
        },
    })
}

/// Does the public key of `cert_der` verify `sig` over `msg`?
fn verify_with(cert_der: &[u8], alg: ObjectIdentifier, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(cert) = x509_cert::Certificate::from_der(cert_der) else {
        return false;
    };
    let Some(key) = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
    else {
        return false;
    };
    let scheme: &dyn ring::signature::VerificationAlgorithm = match (alg, key.len()) {
        (ECDSA_SHA256, 65) => &ring::signature::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, 97) => &ring::signature::ECDSA_P384_SHA384_ASN1,
        (ECDSA_SHA384, 65) => &ring::signature::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA256, 97) => &ring::signature::ECDSA_P384_SHA256_ASN1,
        _ => return false,
    };
    ring::signature::UnparsedPublicKey::new(scheme, key)
        .verify(msg, sig)
        .is_ok()
}
