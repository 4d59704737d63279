//! Own vectors: every curve, hex and base64, DER and raw r‖s, high s, every key shape, and
//! tampered records that must fail.

use super::TestResult;
use super::signer::{self, Style, TestKey};
use crate::ocmf::key::{CURVES, Curve, KeyError, PublicKey};
use crate::ocmf::record::Record;
use crate::ocmf::verify::{self, Quirk, Verdict, VerifyError};
use sha2::{Digest, Sha256};

fn payload() -> String {
    signer::payload(
        7,
        &[
            signer::begin_reading("2026-01-05T10:00:00,000+0100 S", "1234.567"),
            signer::end_reading("2026-01-05T11:30:00,000+0100 S", "1250.5"),
        ]
        .join(","),
    )
}

fn check(record: &str, key: &PublicKey) -> Result<verify::Verified, VerifyError> {
    verify::verify(&Record::parse(record).expect("parses"), key)
}

#[test]
fn every_curve_every_encoding_verifies() {
    let p = payload();
    for curve in CURVES {
        let key = TestKey::new(curve, "vectors");
        let public = key.public();
        for der in [true, false] {
            for base64 in [false, true] {
                for high_s in [false, true] {
                    let style = Style {
                        der,
                        base64,
                        high_s,
                        ..Style::default()
                    };
                    let rec = signer::record(&key, &p, style);
                    let v = check(&rec, &public).unwrap_or_else(|e| panic!("{curve} {style:?}: {e}\n{rec}"));
                    assert_eq!(v.curve, curve);
                    assert_eq!(v.quirks.contains(&Quirk::HighS), high_s, "{curve} {style:?}");
                    assert_eq!(v.quirks.contains(&Quirk::RawSignature), !der, "{curve} {style:?}");
                    assert_eq!(v.quirks.contains(&Quirk::Base64Signature), base64, "{curve} {style:?}");
                }
            }
        }
    }
}

#[test]
fn brainpool_in_both_spellings_and_the_default_algorithm() -> TestResult {
    let p = payload();
    for curve in [Curve::BrainpoolP256r1, Curve::BrainpoolP384r1] {
        let key = TestKey::new(curve, "spelling");
        for spec_spelling in [false, true] {
            let rec = signer::record(
                &key,
                &p,
                Style {
                    spec_spelling,
                    ..Style::default()
                },
            );
            assert!(rec.contains(if spec_spelling { "brainpool" } else { "brainpoolP" }));
            let v = check(&rec, &key.public())?;
            assert_eq!(v.quirks.contains(&Quirk::SpecBrainpoolSpelling), spec_spelling);
        }
    }
    let key = TestKey::new(Curve::Secp256r1, "default");
    let rec = signer::record(
        &key,
        &p,
        Style {
            sa: false,
            ..Style::default()
        },
    );
    assert!(!rec.contains("\"SA\""));
    let v = check(&rec, &key.public())?;
    assert!(v.quirks.contains(&Quirk::DefaultAlgorithm));
    // without SA a secp256k1 record is read as secp256r1: the k1 key does not fit
    let k1 = TestKey::new(Curve::Secp256k1, "default");
    let rec = signer::record(
        &k1,
        &p,
        Style {
            sa: false,
            ..Style::default()
        },
    );
    assert_eq!(check(&rec, &k1.public()).unwrap_err().verdict(), Verdict::Invalid);
    Ok(())
}

#[test]
fn every_key_shape_is_accepted() -> TestResult {
    let p = payload();
    for curve in CURVES {
        let key = TestKey::new(curve, "shapes");
        let rec = signer::record(&key, &p, Style::default());
        let spki = key.spki_der();
        let hex = data_encoding::HEXUPPER.encode(&spki);
        let spaced: String = hex
            .as_bytes()
            .chunks(4)
            .map(std::str::from_utf8)
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let point_hex = data_encoding::HEXLOWER.encode(&key.point);
        let shapes = [
            hex.clone(),
            hex.to_lowercase(),
            spaced,
            format!("  \n{hex}\n "),
            format!("oca:base16:asn1:{hex}"),
            data_encoding::BASE64.encode(&spki),
            data_encoding::BASE64.encode(format!("oca:base16:asn1:{hex}").as_bytes()),
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                data_encoding::BASE64.encode(&spki)
            ),
            point_hex.clone(),
            point_hex[2..].to_owned(),
            data_encoding::BASE64.encode(&key.point[1..]),
        ];
        for shape in shapes {
            let k = PublicKey::parse(&shape).unwrap_or_else(|e| panic!("{curve}: {shape:?}: {e}"));
            check(&rec, &k).unwrap_or_else(|e| panic!("{curve}: {shape:?}: {e}"));
            assert_eq!(k.spki_der(curve)?, spki, "{curve}: {shape:?}");
        }
        // SPKI names its curve; bare points do not
        assert_eq!(PublicKey::parse(&hex)?.curve(), Some(curve));
        assert_eq!(PublicKey::parse(&point_hex)?.curve(), None);
    }
    Ok(())
}

#[test]
fn our_spki_is_the_one_rust_crypto_writes() -> TestResult {
    use p256::pkcs8::EncodePublicKey;
    let key = TestKey::new(Curve::Secp256r1, "spki");
    let theirs = p256::PublicKey::from_sec1_bytes(&key.point)?.to_public_key_der()?;
    assert_eq!(key.spki_der(), theirs.as_bytes());
    let key = TestKey::new(Curve::BrainpoolP384r1, "spki");
    let theirs =
        bp384::elliptic_curve::PublicKey::<bp384::BrainpoolP384r1>::from_sec1_bytes(&key.point)?.to_public_key_der()?;
    assert_eq!(key.spki_der(), theirs.as_bytes());
    Ok(())
}

#[test]
fn tampered_records_fail() -> TestResult {
    let p = payload();
    for curve in CURVES {
        let key = TestKey::new(curve, "tamper");
        let other = TestKey::new(curve, "someone else");
        for style in [
            Style::default(),
            Style {
                der: false,
                base64: true,
                high_s: true,
                ..Style::default()
            },
        ] {
            let rec = signer::record(&key, &p, style);
            check(&rec, &key.public())?;
            let mismatch = |r: &str, k: &PublicKey| {
                let e = check(r, k).unwrap_err();
                assert_eq!(e.verdict(), Verdict::Invalid, "{curve} {style:?}: {e}\n{r}");
            };
            mismatch(&rec.replace("1250.5", "1250.6"), &key.public());
            mismatch(&rec.replace("T11:30:00", "T11:31:00"), &key.public());
            mismatch(
                &rec.replace("+0100 S\",\"TX\":\"E", "+0200 S\",\"TX\":\"E"),
                &key.public(),
            );
            mismatch(&rec, &other.public());
            // whitespace is signed too
            mismatch(&rec.replacen("\"FV\":", "\"FV\": ", 1), &key.public());
            // a changed signature byte (in the middle of s)
            let record = Record::parse(&rec)?;
            let sd = record.signature.sd.clone().unwrap();
            let mut bytes = if style.base64 {
                data_encoding::BASE64.decode(sd.as_bytes())?
            } else {
                data_encoding::HEXUPPER.decode(sd.as_bytes())?
            };
            let i = bytes.len() - 5;
            bytes[i] ^= 0x01;
            let changed = if style.base64 {
                data_encoding::BASE64.encode(&bytes)
            } else {
                data_encoding::HEXUPPER.encode(&bytes)
            };
            mismatch(&rec.replace(&sd, &changed), &key.public());
        }
        // a key on another curve of the same size: SPKI says so
        let wrong_curve = CURVES
            .into_iter()
            .find(|c| *c != curve && c.field_bytes() == curve.field_bytes())
            .unwrap();
        let stranger = TestKey::new(wrong_curve, "tamper");
        let rec = signer::record(&key, &p, Style::default());
        let spki = PublicKey::parse(&stranger.spki_hex())?;
        assert_eq!(
            check(&rec, &spki).unwrap_err(),
            VerifyError::Key(KeyError::CurveMismatch {
                key: wrong_curve,
                record: curve
            })
        );
        // the same point bare: not on this curve (or not the key)
        let bare = PublicKey::parse(&data_encoding::HEXUPPER.encode(&stranger.point))?;
        assert_eq!(check(&rec, &bare).unwrap_err().verdict(), Verdict::Invalid);
    }
    Ok(())
}

#[test]
fn malformed_signatures_get_precise_errors() -> TestResult {
    let key = TestKey::new(Curve::Secp256r1, "malformed");
    let p = payload();
    let rec = |sig: &str| format!("OCMF|{p}|{sig}");
    let err = |sig: &str| check(&rec(sig), &key.public()).unwrap_err();
    assert_eq!(err(r#"{"SA":"ECDSA-secp256r1-SHA256"}"#), VerifyError::MissingSignature);
    assert_eq!(err(r#"{"SD":"30XY"}"#), VerifyError::SignatureEncoding("hex"));
    assert_eq!(
        err(r#"{"SE":"base64","SD":"%%%"}"#),
        VerifyError::SignatureEncoding("base64")
    );
    assert_eq!(
        err(r#"{"SE":"base85","SD":"00"}"#),
        VerifyError::UnknownEncoding("base85".into())
    );
    assert!(matches!(
        err(r#"{"SD":"3006020101"}"#),
        VerifyError::SignatureShape { len: 5, .. }
    ));
    assert_eq!(
        err(r#"{"SA":"ECDSA-secp192r1-SHA256","SD":"00"}"#),
        VerifyError::UnsupportedAlgorithm("ECDSA-secp192r1-SHA256".into())
    );
    assert_eq!(
        err(r#"{"SA":"ECDSA-secp256r1-SHA512","SD":"00"}"#).verdict(),
        Verdict::Unsupported
    );
    assert_eq!(
        err(r#"{"SA":"RSA-2048-SHA256","SD":"00"}"#),
        VerifyError::UnknownAlgorithm("RSA-2048-SHA256".into())
    );
    // r = 0, and s = n (not below the order)
    let zero = data_encoding::HEXUPPER.encode(&[0u8; 64]);
    assert_eq!(
        err(&format!(r#"{{"SD":"{zero}"}}"#)),
        VerifyError::SignatureOutOfRange(Curve::Secp256r1)
    );
    let n = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
    let sig = format!("{}{n}", "01".repeat(32));
    assert_eq!(
        err(&format!(r#"{{"SD":"{sig}"}}"#)),
        VerifyError::SignatureOutOfRange(Curve::Secp256r1)
    );
    // no key
    let good = signer::record(&key, &p, Style::default());
    assert_eq!(
        verify::verify_with(&Record::parse(&good)?, None),
        Err(VerifyError::NoKey)
    );
    Ok(())
}

#[test]
fn a_p384_signature_made_by_rust_crypto_verifies_over_sha256() -> TestResult {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let digest: [u8; 32] = Sha256::digest(b"signed by p384").into();
    let sk = p384::ecdsa::SigningKey::from_slice(TestKey::new(Curve::Secp384r1, "rc").secret())?;
    let sig: p384::ecdsa::Signature = sk.sign_prehash(&digest)?;
    let point = sk.verifying_key().to_sec1_point(false);
    assert_eq!(
        verify::verify_prehash(Curve::Secp384r1, point.as_bytes(), &digest, &sig.to_bytes()),
        Ok(false)
    );
    Ok(())
}

#[test]
fn prehash_verification_refuses_short_signatures_on_every_curve() {
    for curve in CURVES {
        let key = TestKey::new(curve, "short");
        let r = verify::verify_prehash(curve, &key.point, &[0; 32], &[1; 10]);
        assert!(r.is_err(), "{curve}");
    }
}
