//! Certificates in OCPP's security extensions: what the built-in CA issued
//! to chargers, the kinds of certificates a charger keeps, and how OCPP
//! names one installed certificate (its hash data).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A certificate the built-in CA issued to a charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Hex of the certificate's serial number.
    pub serial: String,
    pub charger: String,
    /// The OCPP certificate type requested (ChargingStationCertificate, V2GCertificate).
    pub kind: String,
    pub issued_at: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// An expiry alert was raised for it.
    #[serde(default)]
    pub warned: bool,
}

/// A root certificate kind a charger keeps (InstallCertificate,
/// GetInstalledCertificateIds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    /// 1.6 CentralSystemRootCertificate, 2.0.1 CSMSRootCertificate.
    CsmsRoot,
    ManufacturerRoot,
    /// 2.0.1 only (ISO 15118).
    V2gRoot,
    /// 2.0.1 only (ISO 15118 mobility operator).
    MoRoot,
}

/// OCPP CertificateHashDataType: names one installed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertHash {
    pub hash_algorithm: String,
    pub issuer_name_hash: String,
    pub issuer_key_hash: String,
    pub serial_number: String,
    /// The certificate type it was reported under (2.0.1), when known.
    #[serde(default)]
    pub kind: Option<String>,
}
