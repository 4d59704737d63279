//! Record parsing: exact payload bytes, lenient field types, inherited reading fields.

use super::TestResult;
use crate::ocmf::key::{KeyError, KeyShape, PublicKey};
use crate::ocmf::record::{MeterTime, ParseError, Record, TimeSync, Tx, Unit};
use rust_decimal::Decimal;
use std::str::FromStr;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn payload_bytes_are_kept_exactly() -> TestResult {
    let payload = "{\"FV\" : \"1.0\",\n \"ID\":\"a|b\", \"RD\":[]} ";
    let text = format!("\u{feff}  OCMF|{payload}|{{\"SD\":\"00\"}}\n");
    let r = Record::parse(&text)?;
    assert_eq!(r.payload_str(), payload);
    assert_eq!(r.signature_str(), "{\"SD\":\"00\"}");
    assert_eq!(r.text(), text.trim_start_matches('\u{feff}').trim());
    assert_eq!(r.data.id.as_deref(), Some("a|b"));
    Ok(())
}

#[test]
fn structural_errors() {
    let err = |s: &str| Record::parse(s).unwrap_err();
    assert_eq!(err("   "), ParseError::Empty);
    assert_eq!(err("OCMX|{}|{}"), ParseError::NotOcmf);
    assert!(matches!(err("OCMF|{\"a\":|{}"), ParseError::PayloadJson(_)));
    assert_eq!(err("OCMF|[1]|{}"), ParseError::PayloadNotObject);
    assert_eq!(err("OCMF|{} {}"), ParseError::MissingSeparator);
    assert!(matches!(err("OCMF|{}|{\"SD\":"), ParseError::SignatureJson(_)));
    assert!(matches!(
        err("OCMF|{}|{\"SD\":\"00\"} trailing"),
        ParseError::SignatureJson(_)
    ));
    assert_eq!(err("OCMF|{}|[]"), ParseError::SignatureNotObject);
    assert_eq!(err("OCMF|{}|{\"SD\":1}"), ParseError::SignatureField("SD"));
    assert_eq!(err("OCMF|{\"RD\":{}}|{}"), ParseError::Readings);
    assert_eq!(err("OCMF|{\"RD\":[1]}|{}"), ParseError::Readings);
    // duplicate keys would read differently in different parsers
    let dup = err(r#"OCMF|{"RD":[{"RV":1,"RV":2}]}|{}"#);
    assert!(
        matches!(&dup, ParseError::PayloadJson(m) if m.contains("duplicate key \"RV\"")),
        "{dup}"
    );
    assert!(matches!(
        err(r#"OCMF|{}|{"SD":"00","SD":"01"}"#),
        ParseError::SignatureJson(_)
    ));
}

#[test]
fn fields_of_real_meters_are_read_leniently() -> TestResult {
    // DZG: spaces around ':', padded string RV, a "sec" reading; ChargePoint: FV as number; ABL 0.1:
    // IS as a string.
    let r = Record::parse(
        r#"OCMF|{"FV" : 1.0,"GI" : "Nano","IS" : "VERIFIED","IF":"RFID_PLAIN","PG" : "T199","RD" : [{"TM" : "2021-10-26T10:21:22,000+0200 I","TX" : "E","RV" : "       9.038","RI" : "01-00:01.08.00.FF","RU" : "kWh","ST" : "G"},{"RV" : "      30","RI" : "01-00:00.08.06.FF","RU" : "sec"}]}|{"SD":"00"}"#,
    )?;
    let p = &r.data;
    assert_eq!(p.fv.as_deref(), Some("1.0"));
    assert_eq!(p.is, None);
    assert_eq!(p.if_, vec!["RFID_PLAIN".to_string()]);
    assert!(
        p.issues.iter().any(|i| i.contains("IS is not a boolean")),
        "{:?}",
        p.issues
    );
    assert_eq!(p.pagination(), Some(('T', 199)));
    let [a, b] = &p.readings[..] else { panic!() };
    assert_eq!(a.value, Some(dec("9.038")));
    assert_eq!(a.value_wh(), Some(dec("9038")));
    assert_eq!(a.time.unwrap().sync, Some(TimeSync::Informative));
    // the second reading inherits TM, TX and ST
    assert_eq!(b.tx, Some(Tx::End));
    assert_eq!(b.tm, a.tm);
    assert_eq!(b.st.as_deref(), Some("G"));
    assert_eq!(b.unit, Some(Unit::Other("sec".into())));
    assert_eq!(b.value_wh(), None);
    Ok(())
}

#[test]
fn numbers_are_exact() -> TestResult {
    let r = Record::parse(
        r#"OCMF|{"RD":[{"TM":"2023-04-03T17:10:35,000+0200 R","TX":"B","RV":1.606848e7,"RU":"Wh","ST":"G"},{"TX":"E","RV":1709.539307},{"TX":"E","RV":"00000000.000","RU":"kWh"},{"TX":"E","RV":62500.1271,"RU":"kWh"},{"TX":"T","RV":0.1,"CL":0.05}]}|{"SD":"00"}"#,
    )?;
    let v: Vec<_> = r.data.readings.iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(
        v,
        [
            dec("16068480"),
            dec("1709.539307"),
            dec("0"),
            dec("62500.1271"),
            dec("0.1")
        ]
    );
    assert_eq!(r.data.readings[3].value_wh(), Some(dec("62500127.1")));
    assert_eq!(r.data.readings[4].cl, Some(dec("0.05")));
    assert_eq!(r.data.readings[4].tx, Some(Tx::TariffChange));
    assert!(r.has_begin() && r.has_end());
    Ok(())
}

#[test]
fn meter_times() -> TestResult {
    let t = MeterTime::parse("2019-11-19T13:32:39,000+0100 S")?;
    assert_eq!(t.sync, Some(TimeSync::Synchronised));
    assert_eq!(t.utc().to_rfc3339(), "2019-11-19T12:32:39+00:00");
    let t = MeterTime::parse("2019-04-02T17:28:45,867+0200 S")?;
    assert_eq!(t.utc().timestamp_subsec_millis(), 867);
    assert!(MeterTime::parse("2019-04-02T17:28:45,867+02:00 U").is_ok());
    assert!(MeterTime::parse("2019-04-02T17:28:45.867Z R").is_ok());
    assert_eq!(MeterTime::parse("2019-04-02T17:28:45,000+0200")?.sync, None);
    assert!(MeterTime::parse("2019-04-02T17:28:45,000+0200 Q").is_err());
    assert!(MeterTime::parse("yesterday S").is_err());
    Ok(())
}

#[test]
fn key_errors_are_precise() -> TestResult {
    assert_eq!(PublicKey::parse("  "), Err(KeyError::Empty));
    assert_eq!(PublicKey::parse("not a key!"), Err(KeyError::Encoding));
    assert_eq!(PublicKey::parse("0102030405"), Err(KeyError::Shape { len: 5 }));
    // secp192r1 SPKI (eBZ LD3)
    let k192 = "3049301306072a8648ce3d020106082a8648ce3d030101033200041e155ef46fbcc56005769c08d792127c006c242ccccd96bf7051b6fbc278497036659e7bae57f542776a17c7f8b28600";
    assert_eq!(
        PublicKey::parse(k192),
        Err(KeyError::UnsupportedCurve("secp192r1".into()))
    );
    // an RSA SubjectPublicKeyInfo
    let rsa = "30820122300d06092a864886f70d01010105000382010f00";
    assert!(matches!(PublicKey::parse(rsa), Err(KeyError::Spki(_))));
    let rsa_alg = "3012300d06092a864886f70d0101010500030100";
    assert!(
        matches!(PublicKey::parse(rsa_alg), Err(KeyError::NotEc(oid)) if oid == "1.2.840.113549.1.1.1"),
        "{:?}",
        PublicKey::parse(rsa_alg)
    );
    // a P-256 SPKI whose point is not on the curve
    let mut bad = data_encoding::HEXUPPER
        .decode(b"3059301306072A8648CE3D020106082A8648CE3D030107034200043AEEB45C392357820A58FDFB0857BD77ADA31585C61C430531DFA53B440AFBFDD95AC887C658EA55260F808F55CA948DF235C2108A0D6DC7D4AB1A5E1A7955BE")?;
    assert!(PublicKey::from_bytes(&bad).is_ok());
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        PublicKey::from_bytes(&bad),
        Err(KeyError::NotOnCurve(crate::ocmf::Curve::Secp256r1))
    );
    // a bare 64-byte point: shape recorded, curve unknown until used
    let bare = PublicKey::parse(&"11".repeat(64))?;
    assert_eq!((bare.shape(), bare.curve()), (KeyShape::BareXy, None));
    Ok(())
}
