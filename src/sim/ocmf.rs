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

    #[test]
    fn records_pass_the_eichrecht_verifier_as_sent_over_ocpp() {
        use crate::ocmf::{PublicKey, Record, check_session, ocpp, verify};
        let mut m = Meter::new([9; 32], "MTR1", "sim", "G1");
        let reading = |kind, wh, at: &str| Reading {
            at: at.parse().unwrap(),
            kind,
            register_wh: wh,
            token: "04AABB",
            connector: 2,
        };
        let begin = m.sign(&reading('B', 1_000_123, "2026-11-23T10:00:00Z"));
        let end = m.sign(&reading('E', 1_012_000, "2026-11-23T11:05:30Z"));
        // the key as the charger publishes it (MeterPublicKey[n] / FiscalMetering.PublicKey)
        let hex = data_encoding::HEXUPPER.encode(&m.public_key_der());
        let key = PublicKey::parse(&format!("oca:base16:asn1:{hex}")).unwrap();
        // 1.6: SignedData sampled value; 2.0.1: signedMeterValue with base64 data and key
        let v16 = serde_json::json!({"value": begin, "format": "SignedData", "context": "Transaction.Begin"});
        let b = ocpp::from_sampled_value(&v16).unwrap().unwrap();
        let b64 = data_encoding::BASE64.encode(end.as_bytes());
        let v201 = serde_json::json!({"value": 1012, "context": "Transaction.End", "signedMeterValue": {
            "signedMeterData": b64, "signingMethod": SIGNING_METHOD, "encodingMethod": "OCMF",
            "publicKey": data_encoding::BASE64.encode(&m.public_key_der())}});
        let e = ocpp::from_sampled_value(&v201).unwrap().unwrap();
        let key201 = PublicKey::parse(e.public_key.as_deref().unwrap()).unwrap();
        let (b, e) = (Record::parse(&b.ocmf).unwrap(), Record::parse(&e.ocmf).unwrap());
        assert!(verify(&b, &key).is_ok());
        assert!(verify(&e, &key201).is_ok());
        let v = check_session(&b, Some(&key), &e, Some(&key201));
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.begin.as_ref().map(|r| r.wh), Some(1_000_123));
        assert_eq!(v.energy_wh, Some(11_877));
        let forged = end.replace("\"RV\":1012.0,", "\"RV\":1013.0,");
        assert_ne!(forged, end);
        assert!(verify(&Record::parse(&forged).unwrap(), &key).is_err());
    }
}
