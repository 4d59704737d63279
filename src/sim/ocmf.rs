//! An Eichrecht meter: OCMF records of begin/end readings, signed with
//! ECDSA secp256r1 / SHA-256 (signature DER, hex) as German calibration-law
//! meters do. The public key goes out as SPKI DER.

use chrono::{DateTime, Utc};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::EncodePublicKey;
use serde_json::json;

pub const SIGNING_METHOD: &str = "ECDSA-secp256r1-SHA256";

pub struct Meter {
    key: SigningKey,
    serial: String,
    gateway: String,
    gateway_serial: String,
    /// OCMF pagination: every record gets the next number.
    page: u64,
}

/// What the record says about the transaction it belongs to.
pub struct Reading<'a> {
    pub at: DateTime<Utc>,
    /// B(egin) or E(nd).
    pub kind: char,
    pub register_wh: u64,
    pub token: &'a str,
    pub connector: u32,
}

impl Meter {
    /// `seed` is a 32-byte secret; the rare seed outside the curve order is
    /// stepped until it is valid, so every seed gives a key.
    pub fn new(mut seed: [u8; 32], serial: &str, gateway: &str, gateway_serial: &str) -> Meter {
        let key = loop {
            match SigningKey::from_slice(&seed) {
                Ok(k) => break k,
                Err(_) => seed[31] = seed[31].wrapping_add(1),
            }
        };
        Meter {
            key,
            serial: serial.into(),
            gateway: gateway.into(),
            gateway_serial: gateway_serial.into(),
            page: 0,
        }
    }

    /// SubjectPublicKeyInfo DER, as the Transparenzsoftware wants it.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    pub fn sign(&mut self, r: &Reading) -> String {
        self.page += 1;
        let tm = format!("{} S", r.at.format("%Y-%m-%dT%H:%M:%S,%3f%z"));
        let payload = json!({
            "FV": "1.0",
            "GI": self.gateway,
            "GS": self.gateway_serial,
            "GV": env!("CARGO_PKG_VERSION"),
            "PG": format!("T{}", self.page),
            "MV": "voltyard-sim",
            "MM": "VirtualMeter",
            "MS": self.serial,
            "IS": true,
            "IL": "VERIFIED",
            "IF": ["RFID_PLAIN", "OCPP_RS"],
            "IT": "ISO14443",
            "ID": r.token,
            "CT": "CBIDC",
            "CI": r.connector.to_string(),
            "RD": [{
                "TM": tm,
                "TX": r.kind.to_string(),
                "RV": serde_json::Number::from_f64(r.register_wh as f64 / 1000.0).map(serde_json::Value::Number),
                "RI": "1-b:1.8.0",
                "RU": "kWh",
                "RT": "AC",
                "ST": "G"
            }]
        })
        .to_string();
        let sig: Signature = self.key.sign(payload.as_bytes());
        let sd = data_encoding::HEXUPPER.encode(sig.to_der().as_bytes());
        format!("OCMF|{payload}|{}", json!({"SA": SIGNING_METHOD, "SD": sd}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{VerifyingKey, signature::Verifier};
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn records_verify_with_the_published_key_and_tampering_breaks_them() {
        let mut m = Meter::new([7; 32], "M1", "sim", "G1");
        let rec = m.sign(&Reading {
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
            kind: 'B',
            register_wh: 12_345,
            token: "04AABB",
            connector: 1,
        });
        let parts: Vec<&str> = rec.splitn(3, '|').collect();
        assert_eq!(parts[0], "OCMF");
        let payload: serde_json::Value = serde_json::from_str(parts[1]).unwrap();
        assert_eq!(payload["RD"][0]["RV"], json!(12.345));
        assert_eq!(payload["RD"][0]["TM"], "2026-11-23T10:00:00,000+0000 S");
        let sig: serde_json::Value = serde_json::from_str(parts[2]).unwrap();
        let der = data_encoding::HEXUPPER
            .decode(sig["SD"].as_str().unwrap().as_bytes())
            .unwrap();
        let sig = Signature::from_der(&der).unwrap();
        let key = VerifyingKey::from_public_key_der(&m.public_key_der()).unwrap();
        assert!(key.verify(parts[1].as_bytes(), &sig).is_ok());
        let forged = parts[1].replace("12.345", "1.345");
        assert!(key.verify(forged.as_bytes(), &sig).is_err());
    }
}
