//! ECDSA over SHA-256 of the payload bytes exactly as received, on the five supported curves.
//!
//! Every curve goes through the RustCrypto `ecdsa::VerifyingKey` with a SHA-256 prehash (so the
//! 384-bit curves also hash with SHA-256, as OCMF says). High-s signatures are normalised before
//! verification: real meters send them.

use super::key::{Curve, KeyError, PublicKey};
use super::record::Record;
use super::{asn1, key};
use ecdsa::signature::hazmat::PrehashVerifier;
use ecdsa::{EcdsaCurve, VerifyingKey};
use elliptic_curve::point::AffineCoordinates;
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize};
use p256::elliptic_curve;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// What the signature section asked for, and oddities met on the way (none of them fatal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quirk {
    /// `SA` absent: the default ECDSA-secp256r1-SHA256 applies.
    DefaultAlgorithm,
    /// `SA` spells brainpool as the OCMF table does (`brainpool256r1`).
    SpecBrainpoolSpelling,
    /// s was above n/2 and was normalised.
    HighS,
    /// `SD` is raw r‖s, not DER.
    RawSignature,
    /// A DER integer carries superfluous leading zeros (fixed-width integers).
    NonCanonicalDer,
    /// `SE` is base64.
    Base64Signature,
    /// `SM` is something other than application/x-der.
    UnusualMimeType(String),
    /// The key was a bare point, not a SubjectPublicKeyInfo.
    BareKey,
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quirk::DefaultAlgorithm => f.write_str("no SA: default ECDSA-secp256r1-SHA256"),
            Quirk::SpecBrainpoolSpelling => f.write_str("SA spells brainpool without the P"),
            Quirk::HighS => f.write_str("high-s signature (normalised)"),
            Quirk::RawSignature => f.write_str("signature is raw r||s, not DER"),
            Quirk::NonCanonicalDer => f.write_str("DER integers carry superfluous leading zeros"),
            Quirk::Base64Signature => f.write_str("signature is base64 encoded"),
            Quirk::UnusualMimeType(m) => write!(f, "SM is {m:?}, not application/x-der"),
            Quirk::BareKey => f.write_str("public key is a bare point, not a SubjectPublicKeyInfo"),
        }
    }
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub curve: Curve,
    pub quirks: Vec<Quirk>,
}

/// The coarse outcome of verifying one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The signature verifies with the key.
    Valid,
    /// The signature does not verify with this key (tampered data, wrong key, key on another curve).
    Invalid,
    /// The algorithm or curve is not one this verifier checks (e.g. secp192r1).
    Unsupported,
    /// No public key to verify with.
    NoKey,
    /// The record, its signature or the key cannot be read.
    Malformed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unsupported => "unsupported",
            Verdict::NoKey => "no key",
            Verdict::Malformed => "malformed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature algorithm {0:?} is not ECDSA-<curve>-SHA256")]
    UnknownAlgorithm(String),
    #[error("signature algorithm {0:?} is not supported (only 256- and 384-bit curves are verified)")]
    UnsupportedAlgorithm(String),
    #[error("signature encoding SE={0:?} is neither hex nor base64")]
    UnknownEncoding(String),
    #[error("the signature section has no SD")]
    MissingSignature,
    #[error("SD is not valid {0}")]
    SignatureEncoding(&'static str),
    #[error("SD is neither DER ({der}) nor {expected} bytes of raw r||s ({len} bytes)")]
    SignatureShape { der: String, len: usize, expected: usize },
    #[error("the signature's r or s is zero or not below the order of {0}")]
    SignatureOutOfRange(Curve),
    #[error("no public key")]
    NoKey,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the signature does not match the payload and the key")]
    Mismatch,
}

impl VerifyError {
    pub fn verdict(&self) -> Verdict {
        match self {
            VerifyError::UnknownAlgorithm(_)
            | VerifyError::UnsupportedAlgorithm(_)
            | VerifyError::Key(KeyError::UnsupportedCurve(_)) => Verdict::Unsupported,
            VerifyError::NoKey => Verdict::NoKey,
            VerifyError::Mismatch
            | VerifyError::SignatureOutOfRange(_)
            | VerifyError::Key(KeyError::CurveMismatch { .. })
            | VerifyError::Key(KeyError::NotOnCurve(_))
            | VerifyError::Key(KeyError::PointLength { .. }) => Verdict::Invalid,
            _ => Verdict::Malformed,
        }
    }
}

/// The curve `SA` names (default secp256r1), with the quirks of how it was written.
pub fn algorithm(sa: Option<&str>) -> Result<(Curve, Vec<Quirk>), VerifyError> {
    let Some(sa) = sa else {
        return Ok((Curve::Secp256r1, vec![Quirk::DefaultAlgorithm]));
    };
    let parts: Vec<&str> = sa.trim().split('-').collect();
    let [scheme, curve, hash] = parts.as_slice() else {
        return Err(VerifyError::UnknownAlgorithm(sa.into()));
    };
    if !scheme.eq_ignore_ascii_case("ECDSA") {
        return Err(VerifyError::UnknownAlgorithm(sa.into()));
    }
    let curve = match Curve::from_name(curve) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(VerifyError::UnsupportedAlgorithm(sa.into())),
        Err(()) => return Err(VerifyError::UnknownAlgorithm(sa.into())),
    };
    if !hash.eq_ignore_ascii_case("SHA256") && !hash.eq_ignore_ascii_case("SHA-256") {
        return Err(VerifyError::UnsupportedAlgorithm(sa.into()));
    }
    let mut quirks = Vec::new();
    if parts[1].to_ascii_lowercase().starts_with("brainpool")
        && !parts[1].to_ascii_lowercase().starts_with("brainpoolp")
    {
        quirks.push(Quirk::SpecBrainpoolSpelling);
    }
    Ok((curve, quirks))
}

/// Verify a record's signature with `key`.
pub fn verify(record: &Record, key: &PublicKey) -> Result<Verified, VerifyError> {
    verify_with(record, Some(key))
}

/// Like [`verify`], but an unsupported algorithm is reported as such even without a key.
pub fn verify_with(record: &Record, key: Option<&PublicKey>) -> Result<Verified, VerifyError> {
    let Signature { curve, rs, mut quirks } = signature(record)?;
    let key = key.ok_or(VerifyError::NoKey)?;
    if key.shape() != key::KeyShape::Spki {
        quirks.push(Quirk::BareKey);
    }
    let point = key.uncompressed(curve)?;
    let digest: [u8; 32] = Sha256::digest(record.payload_bytes()).into();
    let high_s = verify_prehash(curve, &point, &digest, &rs)?;
    if high_s {
        quirks.push(Quirk::HighS);
    }
    Ok(Verified { curve, quirks })
}

/// A record's signature section, decoded (no key needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub curve: Curve,
    /// Fixed-width r‖s.
    pub rs: Vec<u8>,
    /// How it was written (default algorithm, base64, raw r‖s, non-canonical DER…).
    pub quirks: Vec<Quirk>,
}

/// Decode `SA`, `SE`, `SM` and `SD`.
pub fn signature(record: &Record) -> Result<Signature, VerifyError> {
    let sig = &record.signature;
    let (curve, mut quirks) = algorithm(sig.sa.as_deref())?;
    let sd = sig.sd.as_deref().ok_or(VerifyError::MissingSignature)?;
    let bytes = match sig.se.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => decode_sd_hex(sd)?,
        Some(se) if se == "hex" => decode_sd_hex(sd)?,
        Some(se) if se == "base64" => {
            quirks.push(Quirk::Base64Signature);
            key::decode_base64(&sd.chars().filter(|c| !c.is_whitespace()).collect::<String>())
                .ok_or(VerifyError::SignatureEncoding("base64"))?
        }
        Some(_) => return Err(VerifyError::UnknownEncoding(sig.se.clone().unwrap_or_default())),
    };
    if let Some(sm) = sig.sm.as_deref()
        && !sm.trim().eq_ignore_ascii_case("application/x-der")
    {
        quirks.push(Quirk::UnusualMimeType(sm.into()));
    }
    let rs = raw_signature(curve, &bytes, &mut quirks)?;
    Ok(Signature { curve, rs, quirks })
}

fn decode_sd_hex(sd: &str) -> Result<Vec<u8>, VerifyError> {
    let compact: String = sd.chars().filter(|c| !c.is_whitespace()).collect();
    key::decode_hex(&compact).ok_or(VerifyError::SignatureEncoding("hex"))
}

/// The signature as fixed-width r‖s, from DER or raw bytes.
fn raw_signature(curve: Curve, bytes: &[u8], quirks: &mut Vec<Quirk>) -> Result<Vec<u8>, VerifyError> {
    let n = curve.field_bytes();
    let der = match asn1::read_signature(bytes) {
        Ok(sig) => {
            if !sig.canonical {
                quirks.push(Quirk::NonCanonicalDer);
            }
            if sig.r.len() > n || sig.s.len() > n {
                return Err(VerifyError::SignatureOutOfRange(curve));
            }
            let mut out = vec![0u8; 2 * n];
            out[n - sig.r.len()..n].copy_from_slice(&sig.r);
            out[2 * n - sig.s.len()..].copy_from_slice(&sig.s);
            return Ok(out);
        }
        Err(e) => e,
    };
    if bytes.len() == 2 * n {
        quirks.push(Quirk::RawSignature);
        return Ok(bytes.to_vec());
    }
    Err(VerifyError::SignatureShape {
        der,
        len: bytes.len(),
        expected: 2 * n,
    })
}

/// Verify fixed-width r‖s over a SHA-256 digest with an uncompressed point; `Ok(true)` when the
/// signature had a high s.
pub fn verify_prehash(curve: Curve, point: &[u8], digest: &[u8; 32], rs: &[u8]) -> Result<bool, VerifyError> {
    match curve {
        Curve::Secp256r1 => verify_on::<p256::NistP256>(curve, point, digest, rs),
        Curve::Secp384r1 => verify_on::<p384::NistP384>(curve, point, digest, rs),
        Curve::Secp256k1 => verify_on::<k256::Secp256k1>(curve, point, digest, rs),
        Curve::BrainpoolP256r1 => verify_on::<bp256::BrainpoolP256r1>(curve, point, digest, rs),
        Curve::BrainpoolP384r1 => verify_on::<bp384::BrainpoolP384r1>(curve, point, digest, rs),
    }
}

/// [`verify_prehash`] on the curve type `C`: s is normalised to the low half first (secp256k1's
/// verifier would refuse high s; the others accept either).
fn verify_on<C>(curve: Curve, point: &[u8], digest: &[u8; 32], rs: &[u8]) -> Result<bool, VerifyError>
where
    C: EcdsaCurve + CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let key = VerifyingKey::<C>::from_sec1_bytes(point).map_err(|_| KeyError::NotOnCurve(curve))?;
    let sig = ecdsa::Signature::<C>::from_slice(rs).map_err(|_| VerifyError::SignatureOutOfRange(curve))?;
    let low = sig.normalize_s();
    key.verify_prehash(digest, &low).map_err(|_| VerifyError::Mismatch)?;
    Ok(low != sig)
}

/// The uncompressed point `04‖X‖Y` of a SEC1 point on `curve`, if it is on the curve.
pub(crate) fn decode_point(curve: Curve, sec1: &[u8]) -> Option<Vec<u8>> {
    fn on<C>(sec1: &[u8]) -> Option<Vec<u8>>
    where
        C: CurveArithmetic,
        FieldBytesSize<C>: ModulusSize,
        AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    {
        let key = elliptic_curve::PublicKey::<C>::from_sec1_bytes(sec1).ok()?;
        let a = key.as_affine();
        let mut out = vec![0x04];
        out.extend_from_slice(&a.x());
        out.extend_from_slice(&a.y());
        Some(out)
    }
    match curve {
        Curve::Secp256r1 => on::<p256::NistP256>(sec1),
        Curve::Secp384r1 => on::<p384::NistP384>(sec1),
        Curve::Secp256k1 => on::<k256::Secp256k1>(sec1),
        Curve::BrainpoolP256r1 => on::<bp256::BrainpoolP256r1>(sec1),
        Curve::BrainpoolP384r1 => on::<bp384::BrainpoolP384r1>(sec1),
    }
}
