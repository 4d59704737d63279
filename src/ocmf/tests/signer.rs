//! A test-only ECDSA signer over SHA-256 on every supported curve, with keys and nonces derived
//! deterministically from seeds (the brainpool crates have no signing key), and OCMF record
//! builders on top of it.

use crate::ocmf::asn1;
use crate::ocmf::key::{Curve, PublicKey};
use elliptic_curve::ops::Reduce;
use elliptic_curve::point::AffineCoordinates;
use elliptic_curve::{CurveArithmetic, CurveGroup, Field, FieldBytes, Group, PrimeField};
use p256::elliptic_curve;
use sha2::{Digest, Sha256};

/// A private key: the scalar's big-endian bytes and the public point `04‖X‖Y`.
#[derive(Clone)]
pub struct TestKey {
    pub curve: Curve,
    d: Vec<u8>,
    pub point: Vec<u8>,
}

/// `n` bytes of SHA-256 output stretched from `parts`.
fn stretch(n: usize, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut counter = 0u8;
    while out.len() < n {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.update([counter]);
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(n);
    out
}

fn scalar<C: CurveArithmetic>(bytes: &[u8]) -> C::Scalar {
    let fb = FieldBytes::<C>::try_from(bytes).expect("field-sized");
    <C::Scalar as Reduce<FieldBytes<C>>>::reduce(&fb)
}

fn point_bytes<C: CurveArithmetic>(p: C::ProjectivePoint) -> Vec<u8> {
    let a = p.to_affine();
    let mut out = vec![0x04];
    out.extend_from_slice(&a.x());
    out.extend_from_slice(&a.y());
    out
}

fn keygen<C: CurveArithmetic>(curve: Curve, seed: &str) -> TestKey {
    let n = curve.field_bytes();
    let mut i = 0u8;
    loop {
        let d = scalar::<C>(&stretch(n, &[b"key", seed.as_bytes(), curve.name().as_bytes(), &[i]]));
        if !bool::from(d.is_zero()) {
            let point = point_bytes::<C>(C::ProjectivePoint::generator() * d);
            return TestKey {
                curve,
                d: d.to_repr().to_vec(),
                point,
            };
        }
        i += 1;
    }
}

/// Sign a SHA-256 digest; returns fixed-width r‖s (s as it falls, high or low).
fn sign_generic<C: CurveArithmetic>(key: &TestKey, digest: &[u8; 32], nonce: &[u8]) -> Vec<u8> {
    let n = key.curve.field_bytes();
    let d = scalar::<C>(&key.d);
    let mut e_bytes = vec![0u8; n];
    e_bytes[n - 32..].copy_from_slice(digest);
    let e = scalar::<C>(&e_bytes);
    let mut i = 0u8;
    loop {
        let k = scalar::<C>(&stretch(n, &[b"nonce", &key.d, digest, nonce, &[i]]));
        i += 1;
        let Some(k_inv) = Option::<C::Scalar>::from(k.invert()) else {
            continue;
        };
        let r = scalar::<C>(&(C::ProjectivePoint::generator() * k).to_affine().x());
        let s = k_inv * (e + r * d);
        if bool::from(r.is_zero()) || bool::from(s.is_zero()) {
            continue;
        }
        let mut out = r.to_repr().to_vec();
        out.extend_from_slice(&s.to_repr());
        return out;
    }
}

/// n − s for fixed-width r‖s.
fn negate_s<C: CurveArithmetic>(rs: &[u8], n: usize) -> Vec<u8> {
    let s = scalar::<C>(&rs[n..]);
    let mut out = rs[..n].to_vec();
    out.extend_from_slice(&(-s).to_repr());
    out
}

impl TestKey {
    pub fn new(curve: Curve, seed: &str) -> TestKey {
        match curve {
            Curve::Secp256r1 => keygen::<p256::NistP256>(curve, seed),
            Curve::Secp384r1 => keygen::<p384::NistP384>(curve, seed),
            Curve::Secp256k1 => keygen::<k256::Secp256k1>(curve, seed),
            Curve::BrainpoolP256r1 => keygen::<bp256::BrainpoolP256r1>(curve, seed),
            Curve::BrainpoolP384r1 => keygen::<bp384::BrainpoolP384r1>(curve, seed),
        }
    }

    pub fn secret(&self) -> &[u8] {
        &self.d
    }

    /// Fixed-width r‖s over SHA-256 of `payload`, low s.
    pub fn sign(&self, payload: &[u8], nonce: &[u8]) -> Vec<u8> {
        let digest: [u8; 32] = Sha256::digest(payload).into();
        let rs = match self.curve {
            Curve::Secp256r1 => sign_generic::<p256::NistP256>(self, &digest, nonce),
            Curve::Secp384r1 => sign_generic::<p384::NistP384>(self, &digest, nonce),
            Curve::Secp256k1 => sign_generic::<k256::Secp256k1>(self, &digest, nonce),
            Curve::BrainpoolP256r1 => sign_generic::<bp256::BrainpoolP256r1>(self, &digest, nonce),
            Curve::BrainpoolP384r1 => sign_generic::<bp384::BrainpoolP384r1>(self, &digest, nonce),
        };
        if self.is_high(&rs) { self.flip_s(&rs) } else { rs }
    }

    /// The same signature with s replaced by n − s.
    pub fn flip_s(&self, rs: &[u8]) -> Vec<u8> {
        let n = self.curve.field_bytes();
        match self.curve {
            Curve::Secp256r1 => negate_s::<p256::NistP256>(rs, n),
            Curve::Secp384r1 => negate_s::<p384::NistP384>(rs, n),
            Curve::Secp256k1 => negate_s::<k256::Secp256k1>(rs, n),
            Curve::BrainpoolP256r1 => negate_s::<bp256::BrainpoolP256r1>(rs, n),
            Curve::BrainpoolP384r1 => negate_s::<bp384::BrainpoolP384r1>(rs, n),
        }
    }

    /// Whether s > n/2, decided by comparing s with n − s.
    pub fn is_high(&self, rs: &[u8]) -> bool {
        let n = self.curve.field_bytes();
        let flipped = self.flip_s(rs);
        rs[n..] > flipped[n..]
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::from_bytes(&self.point).expect("a point")
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.public().spki_der(self.curve).expect("on the curve")
    }

    pub fn spki_hex(&self) -> String {
        data_encoding::HEXUPPER.encode(&self.spki_der())
    }
}

/// How the signature section is written.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub der: bool,
    pub base64: bool,
    pub high_s: bool,
    /// Write `SA` (else the default applies).
    pub sa: bool,
    /// Spell brainpool as the OCMF table does (`brainpool256r1`).
    pub spec_spelling: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            der: true,
            base64: false,
            high_s: false,
            sa: true,
            spec_spelling: false,
        }
    }
}

/// The `SA` value for a curve.
pub fn sa(curve: Curve, spec_spelling: bool) -> String {
    let name = match (curve, spec_spelling) {
        (Curve::BrainpoolP256r1, true) => "brainpool256r1",
        (Curve::BrainpoolP384r1, true) => "brainpool384r1",
        (c, _) => c.name(),
    };
    format!("ECDSA-{name}-SHA256")
}

/// The signature section for a payload.
pub fn signature_section(key: &TestKey, payload: &str, style: Style) -> String {
    let mut rs = key.sign(payload.as_bytes(), b"");
    if style.high_s {
        rs = key.flip_s(&rs);
    }
    let n = key.curve.field_bytes();
    let bytes = if style.der {
        asn1::write_signature(&rs[..n], &rs[n..])
    } else {
        rs
    };
    let sd = if style.base64 {
        data_encoding::BASE64.encode(&bytes)
    } else {
        data_encoding::HEXUPPER.encode(&bytes)
    };
    let mut sig = serde_json::Map::new();
    if style.sa {
        sig.insert("SA".into(), sa(key.curve, style.spec_spelling).into());
    }
    if style.base64 {
        sig.insert("SE".into(), "base64".into());
    }
    sig.insert("SD".into(), sd.into());
    serde_json::Value::Object(sig).to_string()
}

/// A whole record.
pub fn record(key: &TestKey, payload: &str, style: Style) -> String {
    format!("OCMF|{payload}|{}", signature_section(key, payload, style))
}

/// A payload with the given pagination and readings (JSON text of the RD array elements).
pub fn payload(pg: u32, readings: &str) -> String {
    format!(
        r#"{{"FV":"1.0","GI":"voltyard test","GS":"GW-1","GV":"1.0","PG":"T{pg}","MV":"Acme","MM":"M1","MS":"MTR-7","MF":"1.2","IS":true,"IL":"VERIFIED","IF":["RFID_PLAIN","OCPP_RS_TLS"],"IT":"ISO14443","ID":"04A1B2C3D4E5F6","CT":"EVSEID","CI":"DE*VYD*E1","RD":[{readings}]}}"#
    )
}

pub fn begin_reading(tm: &str, rv: &str) -> String {
    format!(r#"{{"TM":"{tm}","TX":"B","RV":{rv},"RI":"1-b:1.8.0","RU":"kWh","RT":"AC","EF":"","ST":"G"}}"#)
}

pub fn end_reading(tm: &str, rv: &str) -> String {
    format!(r#"{{"TM":"{tm}","TX":"E","RV":{rv},"RI":"1-b:1.8.0","RU":"kWh","RT":"AC","EF":"","ST":"G"}}"#)
}
