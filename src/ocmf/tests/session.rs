//! Session checks over begin and end records.

use super::TestResult;
use super::signer::{self, Style, TestKey};
use crate::ocmf::key::{Curve, PublicKey};
use crate::ocmf::record::Record;
use crate::ocmf::session::{Problem, Side, check_session};
use crate::ocmf::verify::VerifyError;
use rust_decimal::Decimal;
use std::str::FromStr;

const T0: &str = "2026-01-05T10:00:00,000+0100 S";
const T1: &str = "2026-01-05T11:30:00,000+0100 S";

struct Meter {
    key: TestKey,
    public: PublicKey,
}

impl Meter {
    fn new(seed: &str) -> Meter {
        let key = TestKey::new(Curve::Secp256r1, seed);
        let public = key.public();
        Meter { key, public }
    }

    fn sign(&self, payload: &str) -> Record {
        Record::parse(&signer::record(&self.key, payload, Style::default())).unwrap()
    }

    fn begin(&self, pg: u32, tm: &str, rv: &str) -> Record {
        self.sign(&signer::payload(pg, &signer::begin_reading(tm, rv)))
    }

    fn end(&self, pg: u32, tm: &str, rv: &str) -> Record {
        self.sign(&signer::payload(pg, &signer::end_reading(tm, rv)))
    }
}

fn problems(v: &crate::ocmf::SessionVerdict) -> Vec<String> {
    v.problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_good_session() -> TestResult {
    let m = Meter::new("good");
    let (b, e) = (m.begin(7, T0, "1234.567"), m.end(8, T1, "1250.5"));
    let v = check_session(&b, Some(&m.public), &e, Some(&m.public));
    assert!(v.ok(), "{:?}", problems(&v));
    let (rb, re) = (v.begin.clone().unwrap(), v.end.clone().unwrap());
    assert_eq!((rb.wh, re.wh, v.energy_wh), (1_234_567, 1_250_500, Some(15_933)));
    assert_eq!(rb.exact_wh, Decimal::from_str("1234567")?);
    assert_eq!(rb.at.unwrap().to_rfc3339(), "2026-01-05T09:00:00+00:00");
    assert_eq!(re.pagination.as_deref(), Some("T8"));
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    Ok(())
}

#[test]
fn begin_and_end_in_one_record() -> TestResult {
    let m = Meter::new("one record");
    let both = m.sign(&signer::payload(
        3,
        &[signer::begin_reading(T0, "0.2596"), signer::end_reading(T1, "0.2597")].join(","),
    ));
    let v = check_session(&both, Some(&m.public), &both, Some(&m.public));
    assert!(v.ok(), "{:?}", problems(&v));
    assert_eq!(v.energy_wh, Some(0));
    assert_eq!(v.begin.as_ref().unwrap().exact_wh, Decimal::from_str("259.6")?);
    assert!(v.notes.iter().any(|n| n.contains("finer than 1 Wh")), "{:?}", v.notes);
    Ok(())
}

#[test]
fn each_problem_is_reported() {
    let m = Meter::new("problems");
    let b = m.begin(7, T0, "100");
    let cases: Vec<(Record, &str)> = vec![
        (m.end(7, T1, "200"), "pagination does not increase"),
        (m.end(6, T1, "200"), "pagination does not increase"),
        (m.end(8, "2026-01-05T09:59:59,000+0100 S", "200"), "end time"),
        (m.end(8, T1, "99.999"), "register runs backwards"),
        (
            m.sign(&signer::payload(8, &signer::begin_reading(T1, "200"))),
            "no end reading",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("MTR-7", "MTR-8")),
            "MS differs",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("04A1B2C3D4E5F6", "04FFFF")),
            "identification differs",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("\"ST\":\"G\"", "\"ST\":\"M\"")),
            "meter status ST=\"M\"",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("\"EF\":\"\"", "\"EF\":\"Et\"")),
            "error flags EF=\"Et\"",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("\"RU\":\"kWh\"", "\"RU\":\"varh\"")),
            "not Wh or kWh",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("1-b:1.8.0", "1-b:2.8.0")),
            "different registers",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("\"PG\":\"T8\"", "\"PG\":\"F8\"")),
            "not a transaction page",
        ),
        (
            m.sign(&signer::payload(8, &signer::end_reading(T1, "200")).replace("VERIFIED", "MISMATCH")),
            "identification level IL=MISMATCH",
        ),
        (
            m.sign(&signer::payload(
                8,
                &[signer::begin_reading(T0, "150"), signer::end_reading(T1, "200")].join(","),
            )),
            "end record begins another transaction",
        ),
        (
            m.sign(&signer::payload(
                8,
                &[
                    r#"{"TM":"2026-01-05T10:30:00,000+0100 S","TX":"X","RV":150,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}"#
                        .to_string(),
                    signer::end_reading(T1, "200"),
                ]
                .join(","),
            )),
            "exception reading",
        ),
    ];
    for (e, want) in cases {
        let v = check_session(&b, Some(&m.public), &e, Some(&m.public));
        let got = problems(&v);
        assert!(got.iter().any(|p| p.contains(want)), "want {want:?}, got {got:?}");
        assert_eq!(v.energy_wh, None);
    }
}

#[test]
fn signatures_and_keys() -> TestResult {
    let m = Meter::new("keys");
    let other = Meter::new("another meter");
    let b = m.begin(7, T0, "100");
    let e = m.end(8, T1, "200");
    // no key
    let v = check_session(&b, None, &e, Some(&m.public));
    assert_eq!(v.problems, vec![Problem::Signature(Side::Begin, VerifyError::NoKey)]);
    // end signed by another meter, verified with that meter's key: a different key
    let e2 = other.end(8, T1, "200");
    let v = check_session(&b, Some(&m.public), &e2, Some(&other.public));
    assert!(v.problems.contains(&Problem::KeyMismatch), "{:?}", problems(&v));
    // the same key as SPKI and as a bare point is the same key
    let bare = PublicKey::parse(&data_encoding::HEXUPPER.encode(&m.key.point[1..]))?;
    let v = check_session(&b, Some(&m.public), &e, Some(&bare));
    assert!(v.ok(), "{:?}", problems(&v));
    // a tampered end record
    let forged = Record::parse(&e.text().replace("\"RV\":200", "\"RV\":300"))?;
    let v = check_session(&b, Some(&m.public), &forged, Some(&m.public));
    assert_eq!(v.problems, vec![Problem::Signature(Side::End, VerifyError::Mismatch)]);
    Ok(())
}
