//! ISO 15118 Plug & Charge as the CSMS sees it: contract certificates the
//! local PnC CA issued, the verdict on a contract certificate at
//! Authorize, and the answers to Get15118EVCertificate and
//! GetCertificateStatus.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A contract certificate the local PnC CA issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractCert {
    /// Hex of the certificate's serial number.
    pub serial: String,
    /// The contract id, the certificate's common name.
    pub emaid: String,
    pub issued_at: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Set by `cert revoke`.
    #[serde(default)]
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: DateTime<Utc>,
    /// The contract was cancelled (OCSP reason cessationOfOperation),
    /// rather than the key compromised or the certificate superseded.
    pub cancelled: bool,
}

/// OCPP 2.0.1 AuthorizeCertificateStatusEnumType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertVerdict {
    Accepted,
    SignatureError,
    CertificateExpired,
    CertificateRevoked,
    NoCertificateAvailable,
    CertChainError,
    ContractCancelled,
}

impl CertVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            CertVerdict::Accepted => "Accepted",
            CertVerdict::SignatureError => "SignatureError",
            CertVerdict::CertificateExpired => "CertificateExpired",
            CertVerdict::CertificateRevoked => "CertificateRevoked",
            CertVerdict::NoCertificateAvailable => "NoCertificateAvailable",
            CertVerdict::CertChainError => "CertChainError",
            CertVerdict::ContractCancelled => "ContractCancelled",
        }
    }
}

/// What the contract-certificate source made of a charger's request:
/// the payload to relay, or a reason code (at most 20 characters, OCPP's
/// StatusInfoType.reasonCode) and a detail.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceAnswer {
    Accepted(String),
    Failed { reason: String, detail: String },
}

impl SourceAnswer {
    pub fn failed(reason: &str, detail: impl Into<String>) -> SourceAnswer {
        SourceAnswer::Failed {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// OCPP OCSPRequestDataType: names one certificate for an OCSP check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcspRequestData {
    /// SHA256, SHA384 or SHA512.
    pub hash_algorithm: String,
    pub issuer_name_hash: String,
    pub issuer_key_hash: String,
    pub serial_number: String,
    #[serde(rename = "responderURL", default)]
    pub responder_url: String,
}

/// A serial number as stored and compared: lowercase hex, no leading zeros
/// (OCPP's hash data drops them, DER may carry one).
pub fn norm_serial(s: &str) -> String {
    let s = s.trim().trim_start_matches("0x").to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

/// The contract-certificate data an Authorize carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContractData {
    /// The contract certificate chain, PEM (`certificate`).
    pub certificate: Option<String>,
    /// `iso15118CertificateHashData`, leaf first.
    pub hash_data: Vec<OcspRequestData>,
}
