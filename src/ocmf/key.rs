//! Meter public keys in the shapes chargers send them: SubjectPublicKeyInfo DER (hex, hex with
//! spaces, base64, PEM), the OCPP `oca:base16:asn1:<hex>` form, and bare SEC1 points (with or
//! without the `04` prefix). A bare point does not say its curve; it gets one from the record's
//! `SA` when it is used.

use super::asn1;
use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
use serde::Serialize;
use std::fmt;

/// The curves this verifier checks signatures on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Curve {
    #[serde(rename = "secp256r1")]
    Secp256r1,
    #[serde(rename = "secp384r1")]
    Secp384r1,
    #[serde(rename = "secp256k1")]
    Secp256k1,
    #[serde(rename = "brainpoolP256r1")]
    BrainpoolP256r1,
    #[serde(rename = "brainpoolP384r1")]
    BrainpoolP384r1,
}

pub const CURVES: [Curve; 5] = [
    Curve::Secp256r1,
    Curve::Secp384r1,
    Curve::Secp256k1,
    Curve::BrainpoolP256r1,
    Curve::BrainpoolP384r1,
];

impl Curve {
    /// The name as OCMF's `SA` writes it (brainpool in the meters' spelling, `brainpoolP256r1`).
    pub fn name(self) -> &'static str {
        match self {
            Curve::Secp256r1 => "secp256r1",
            Curve::Secp384r1 => "secp384r1",
            Curve::Secp256k1 => "secp256k1",
            Curve::BrainpoolP256r1 => "brainpoolP256r1",
            Curve::BrainpoolP384r1 => "brainpoolP384r1",
        }
    }

    /// Bytes of one coordinate (and of r and s).
    pub fn field_bytes(self) -> usize {
        match self {
            Curve::Secp256r1 | Curve::Secp256k1 | Curve::BrainpoolP256r1 => 32,
            Curve::Secp384r1 | Curve::BrainpoolP384r1 => 48,
        }
    }

    /// Content bytes of the named-curve OID.
    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            Curve::Secp256r1 => &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
            Curve::Secp384r1 => &[0x2B, 0x81, 0x04, 0x00, 0x22],
            Curve::Secp256k1 => &[0x2B, 0x81, 0x04, 0x00, 0x0A],
            Curve::BrainpoolP256r1 => &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07],
            Curve::BrainpoolP384r1 => &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B],
        }
    }

    /// A curve name as it appears in `SA` or elsewhere: `Ok(None)` for a name known but not
    /// supported (the 192-bit curves and the like), `Err(())` for a name not known at all.
    pub(crate) fn from_name(name: &str) -> Result<Option<Curve>, ()> {
        let n = name.to_ascii_lowercase();
        Ok(Some(match n.as_str() {
            "secp256r1" | "prime256v1" | "p256" | "p-256" | "nistp256" => Curve::Secp256r1,
            "secp384r1" | "prime384v1" | "p384" | "p-384" | "nistp384" => Curve::Secp384r1,
            "secp256k1" => Curve::Secp256k1,
            "brainpoolp256r1" | "brainpool256r1" => Curve::BrainpoolP256r1,
            "brainpoolp384r1" | "brainpool384r1" => Curve::BrainpoolP384r1,
            "secp192r1" | "secp192k1" | "prime192v1" | "brainpoolp192r1" | "brainpool192r1" | "secp224r1"
            | "secp224k1" | "secp521r1" | "brainpoolp512r1" | "brainpool512r1" | "brainpoolp224r1" => {
                return Ok(None);
            }
            _ => return Err(()),
        }))
    }

    fn from_oid(oid: &[u8]) -> Option<Curve> {
        CURVES.into_iter().find(|c| c.oid() == oid)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Named curves that are recognised in keys but not verified.
fn unsupported_oid_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x01] => "secp192r1",
        [0x2B, 0x81, 0x04, 0x00, 0x1F] => "secp192k1",
        [0x2B, 0x81, 0x04, 0x00, 0x21] => "secp224r1",
        [0x2B, 0x81, 0x04, 0x00, 0x20] => "secp224k1",
        [0x2B, 0x81, 0x04, 0x00, 0x23] => "secp521r1",
        [0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x03] => "brainpoolP192r1",
        [0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x05] => "brainpoolP224r1",
        [0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0D] => "brainpoolP512r1",
        _ => return None,
    })
}

/// How the key was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyShape {
    /// SubjectPublicKeyInfo DER (names its curve).
    Spki,
    /// A SEC1 point, `04‖X‖Y` or compressed `02/03‖X`.
    Sec1,
    /// `X‖Y` without the `04` prefix.
    BareXy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the public key is empty")]
    Empty,
    #[error("the public key is neither hex nor base64")]
    Encoding,
    #[error("the public key ({len} bytes) is neither a SubjectPublicKeyInfo nor an EC point of a supported size")]
    Shape { len: usize },
    #[error("the public key is not valid SubjectPublicKeyInfo DER: {0}")]
    Spki(String),
    #[error("the public key's algorithm is {0}, not an elliptic-curve key (1.2.840.10045.2.1)")]
    NotEc(String),
    #[error("the public key has explicit curve parameters; only named curves are supported")]
    ExplicitParameters,
    #[error("the public key is on {0}, which is not supported")]
    UnsupportedCurve(String),
    #[error("the public key is on {key}, but the record is signed with {record}")]
    CurveMismatch { key: Curve, record: Curve },
    #[error("a {len}-byte point does not fit {curve}")]
    PointLength { len: usize, curve: Curve },
    #[error("the public key is not a point on {0}")]
    NotOnCurve(Curve),
}

/// A meter's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Known for SubjectPublicKeyInfo; `None` for bare points.
    curve: Option<Curve>,
    /// SEC1 encoding (a bare X‖Y got its `04` here).
    point: Vec<u8>,
    shape: KeyShape,
}

impl PublicKey {
    /// Parse a key in any of the accepted text shapes (see the module doc). Surrounding and inner
    /// whitespace is ignored.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        Self::parse_nested(text, 0)
    }

    fn parse_nested(text: &str, depth: u8) -> Result<PublicKey, KeyError> {
        let text = text.trim().trim_start_matches('\u{feff}');
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text.contains("-----BEGIN") {
            let body: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("-----"))
                .collect::<String>();
            return decode_base64(&squeeze(&body))
                .ok_or(KeyError::Encoding)
                .and_then(|b| Self::from_bytes(&b));
        }
        let lower = text.get(..16).map(str::to_ascii_lowercase).unwrap_or_default();
        if lower == "oca:base16:asn1:" {
            let hex = squeeze(&text[16..]);
            return decode_hex(&hex)
                .ok_or(KeyError::Encoding)
                .and_then(|b| Self::from_bytes(&b));
        }
        if lower == "oca:base64:asn1:" {
            return decode_base64(&squeeze(&text[16..]))
                .ok_or(KeyError::Encoding)
                .and_then(|b| Self::from_bytes(&b));
        }
        let compact = squeeze(text);
        let compact = compact.strip_prefix("0x").unwrap_or(&compact);
        let mut first_error = None;
        if let Some(bytes) = decode_hex(&compact.replace(':', "")) {
            match Self::from_bytes(&bytes) {
                Ok(k) => return Ok(k),
                Err(e) => first_error = Some(e),
            }
        }
        if let Some(bytes) = decode_base64(compact) {
            match Self::from_bytes(&bytes) {
                Ok(k) => return Ok(k),
                // base64 of a key written as text (e.g. of "oca:base16:asn1:…" or of hex)
                Err(e) => {
                    if depth == 0
                        && let Ok(inner) = std::str::from_utf8(&bytes)
                        && inner.trim().len() > 16
                        && inner.trim().bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                    {
                        return Self::parse_nested(inner, depth + 1);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(KeyError::Encoding))
    }

    /// A key from DER SubjectPublicKeyInfo or a SEC1 / bare point.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        let point_sizes = [32usize, 48];
        if bytes[0] == 0x30 {
            match asn1::read_spki(bytes) {
                Ok(spki) => return Self::from_spki(&spki),
                // a bare X‖Y whose X happens to start with 0x30
                Err(_) if point_sizes.iter().any(|n| bytes.len() == 2 * n) => {}
                Err(e) => return Err(KeyError::Spki(e)),
            }
        }
        let len = bytes.len();
        if bytes[0] == 0x04 && point_sizes.iter().any(|n| len == 2 * n + 1)
            || matches!(bytes[0], 0x02 | 0x03) && point_sizes.iter().any(|n| len == n + 1)
        {
            return Ok(PublicKey {
                curve: None,
                point: bytes.to_vec(),
                shape: KeyShape::Sec1,
            });
        }
        if point_sizes.iter().any(|n| len == 2 * n) {
            let mut point = Vec::with_capacity(len + 1);
            point.push(0x04);
            point.extend_from_slice(bytes);
            return Ok(PublicKey {
                curve: None,
                point,
                shape: KeyShape::BareXy,
            });
        }
        Err(KeyError::Shape { len })
    }

    fn from_spki(spki: &asn1::Spki<'_>) -> Result<PublicKey, KeyError> {
        if spki.algorithm != asn1::EC_PUBLIC_KEY {
            return Err(KeyError::NotEc(asn1::oid_to_string(spki.algorithm)));
        }
        let oid = spki.curve.ok_or(KeyError::ExplicitParameters)?;
        let Some(curve) = Curve::from_oid(oid) else {
            let name = unsupported_oid_name(oid)
                .map(str::to_owned)
                .unwrap_or_else(|| asn1::oid_to_string(oid));
            return Err(KeyError::UnsupportedCurve(name));
        };
        let key = PublicKey {
            curve: Some(curve),
            point: spki.point.to_vec(),
            shape: KeyShape::Spki,
        };
        key.uncompressed(curve)?;
        Ok(key)
    }

    /// The curve the key names (SubjectPublicKeyInfo only).
    pub fn curve(&self) -> Option<Curve> {
        self.curve
    }

    pub fn shape(&self) -> KeyShape {
        self.shape
    }

    /// The SEC1 point as given (`04‖X‖Y`, or compressed).
    pub fn sec1(&self) -> &[u8] {
        &self.point
    }

    /// The key's curve given that the record is signed on `curve`: an error when the key names
    /// another curve.
    pub fn check_curve(&self, curve: Curve) -> Result<(), KeyError> {
        match self.curve {
            Some(k) if k != curve => Err(KeyError::CurveMismatch { key: k, record: curve }),
            _ => Ok(()),
        }
    }

    /// The validated uncompressed point `04‖X‖Y` on `curve`.
    pub fn uncompressed(&self, curve: Curve) -> Result<Vec<u8>, KeyError> {
        self.check_curve(curve)?;
        let n = curve.field_bytes();
        let len = self.point.len();
        let fits = match self.point.first() {
            Some(0x04) => len == 2 * n + 1,
            Some(0x02 | 0x03) => len == n + 1,
            _ => false,
        };
        if !fits {
            return Err(KeyError::PointLength { len, curve });
        }
        super::verify::decode_point(curve, &self.point).ok_or(KeyError::NotOnCurve(curve))
    }

    /// SubjectPublicKeyInfo DER on `curve` (what the Transparenzsoftware reads).
    pub fn spki_der(&self, curve: Curve) -> Result<Vec<u8>, KeyError> {
        Ok(asn1::write_spki(curve.oid(), &self.uncompressed(curve)?))
    }

    /// [`Self::spki_der`] as upper-case hex.
    pub fn spki_hex(&self, curve: Curve) -> Result<String, KeyError> {
        Ok(data_encoding::HEXUPPER.encode(&self.spki_der(curve)?))
    }

    /// Whether two keys are the same point (on `curve`, so a bare point and an SPKI compare).
    pub fn same_as(&self, other: &PublicKey, curve: Curve) -> bool {
        match (self.uncompressed(curve), other.uncompressed(curve)) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.point == other.point && self.curve == other.curve,
        }
    }
}

/// Parse a key in any accepted text shape; see [`PublicKey::parse`].
pub fn parse_key(text: &str) -> Result<PublicKey, KeyError> {
    PublicKey::parse(text)
}

/// Remove all whitespace.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
}

/// Standard or URL-safe base64, padded or not.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    [BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD]
        .iter()
        .find_map(|e| e.decode(s.as_bytes()).ok())
}
