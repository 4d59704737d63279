//! Real OCMF records from public test suites (tests/fixtures/ocmf, see SOURCES.md there), each
//! with the verdict its source project's tests expect (or, where they state none, an independent
//! verifier's), secp192 records being reported unsupported.

use super::TestResult;
use crate::ocmf::report::{Entry, verify_entry, verify_text};
use crate::ocmf::verify::Verdict;
use crate::ocmf::xml::read_xml;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ocmf")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The records of a copied file, in document order.
fn records_of(file: &str) -> Vec<String> {
    let text = read(&format!("real/{file}"));
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.starts_with('<') {
        read_xml(text)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .into_iter()
            .map(|v| v.signed_data.unwrap_or_default())
            .collect()
    } else {
        vec![text.to_owned()]
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "invalid",
        Verdict::Unsupported => "unsupported",
        Verdict::NoKey => "no_key",
        Verdict::Malformed => "malformed",
    }
}

#[test]
fn real_records_get_their_expected_verdicts() -> TestResult {
    let index: Value = serde_json::from_str(&read("real_records.json"))?;
    let mut files: HashMap<String, Vec<String>> = HashMap::new();
    let mut tally: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let records = index["records"].as_array().unwrap();
    for r in records {
        let origin = r["origin"].as_str().unwrap();
        let i = r["index"].as_u64().unwrap() as usize;
        let text = if r["verbatim"] == Value::Bool(true) {
            let list = files.entry(origin.into()).or_insert_with(|| records_of(origin));
            // a plain file holds one record (its cases differ by key)
            let text = list
                .get(i)
                .or(list.first().filter(|_| list.len() == 1))
                .cloned()
                .unwrap_or_default();
            let sha = data_encoding::HEXLOWER.encode(&Sha256::digest(text.as_bytes()));
            assert_eq!(
                sha,
                r["record_sha256"].as_str().unwrap(),
                "{origin} #{i}: the reader extracts another text"
            );
            text
        } else {
            r["record"].as_str().unwrap().to_owned()
        };
        let entry = Entry {
            label: format!("{origin} #{i}"),
            data: text,
            format: Some("OCMF".into()),
            key: r["key"].as_str().map(str::to_owned),
            ..Entry::default()
        };
        let got = verify_entry(&entry, None);
        let want = r["expected"].as_str().unwrap();
        let name = verdict_name(got.verdict);
        *tally.entry((want.to_owned(), name.to_owned())).or_default() += 1;
        if name != want {
            failures.push(format!(
                "{origin} #{i}: want {want} ({}), got {name}: {:?}",
                r["basis"], got.error
            ));
        }
    }
    eprintln!("real records (expected, got): {tally:?}");
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        records.len(),
        failures.join("\n")
    );
    assert_eq!(records.len(), 292);
    Ok(())
}

#[test]
fn real_transparenzsoftware_files_read_and_check_as_whole_files() {
    // (file, ok, sessions, a problem expected in the first session)
    let cases: &[(&str, bool, usize, Option<&str>)] = &[
        ("pyocmf/base64_ocmf.xml", true, 1, None),
        ("pyocmf/working_ocmf.xml", true, 1, None),
        ("transparenzsoftware/fromweb.xml", true, 1, None),
        ("transparenzsoftware/xml__test_ocmf_keba_kcp30.xml", true, 1, None),
        (
            "transparenzsoftware/xml__test_ocmf_keba_kcp30_fail.xml",
            false,
            1,
            Some("signature does not match"),
        ),
        ("transparenzsoftware/xml__test_ocmf_ebee_01.xml", true, 1, None),
        (
            "transparenzsoftware/xml__test_ocmf_ebee_02.xml",
            false,
            1,
            Some("begin record"),
        ),
        ("transparenzsoftware/xml__brainpoolP256r1.xml", true, 1, None),
        ("transparenzsoftware/xml__nistP384_0Wh.xml", true, 1, None),
        ("transparenzsoftware/xml__VW_OCMF_load.xml", true, 1, None),
        ("transparenzsoftware/xml__chargepoint_3.xml", true, 1, None),
        (
            "transparenzsoftware/xml__second_key_fail_ocmf.xml",
            false,
            1,
            Some("is on secp256r1"),
        ),
        // DZG: the end record's duration reading; time informative
        ("transparenzsoftware/xml__OCMF_Test_Data_00.xml", true, 1, None),
        ("transparenzsoftware/xml__ocmf_sec.xml", true, 1, None),
        // BAUER: meter status E, error flags "Et" in a test device
        (
            "transparenzsoftware/xml__20211007-device-with-evt-ocmf-sss-ses.xml",
            false,
            1,
            Some("ST=\"E\""),
        ),
        // eBZ: the "end" value is a later transaction of its own
        ("transparenzsoftware/test.xml", false, 1, Some("not supported")),
        // Isabellenhütte template data: meter status E
        (
            "transparenzsoftware/xml__isa-ocmf__OCMF-receipt-with_publickey_and_data.xml",
            false,
            1,
            Some("ST=\"E\""),
        ),
        ("transparenzsoftware/xml__ocmf_tariff_1.xml", true, 1, None),
        ("transparenzsoftware/xml__keba_test.xml", true, 100, None),
        ("transparenzsoftware/xml__measurements.xml", true, 21, None),
        (
            "transparenzsoftware/xml__signature_16955306_ALL.xml",
            false,
            1,
            Some("no public key"),
        ),
        (
            "transparenzsoftware/xml__Ocmf_Example_OBIS_98.8.0_2.8.0.xml",
            true,
            1,
            None,
        ),
    ];
    for &(file, ok, sessions, problem) in cases {
        let report = verify_text(&read(&format!("real/{file}")), None);
        assert_eq!(report.input_error, None, "{file}");
        let problems: Vec<String> = report
            .sessions
            .iter()
            .flat_map(|s| s.verdict.problems.iter().map(|p| p.to_string()))
            .collect();
        assert_eq!(report.ok(), ok, "{file}: {problems:?}");
        assert_eq!(report.sessions.len(), sessions, "{file}");
        if let Some(want) = problem {
            let first: Vec<String> = report.sessions[0]
                .verdict
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect();
            assert!(
                first.iter().any(|p| p.contains(want)),
                "{file}: want {want:?} in {first:?}"
            );
        }
    }
}

#[test]
fn odd_files_are_reported_not_crashed_on() -> TestResult {
    // values that carry no OCMF (EDL inside escaped XML; RSA-sealed encodedData)
    for file in ["hummel.xml", "xml__test_ocmf_rsa_01.xml"] {
        let report = verify_text(&read(&format!("real/transparenzsoftware/{file}")), None);
        assert_eq!(report.input_error, None, "{file}");
        assert!(!report.records.is_empty(), "{file}");
        assert!(
            report.records.iter().all(|r| r.verdict == Verdict::Unsupported),
            "{file}"
        );
        assert!(!report.ok());
    }
    // a truncated file
    let report = verify_text(&read("real/transparenzsoftware/xml__test_input_invalid_xml.xml"), None);
    assert!(report.input_error.is_some());
    // no root element, signedData without value, a key in free text after the XML
    let report = verify_text(&read("real/transparenzsoftware/ocmf-compleo-daten.xml"), None);
    assert_eq!(report.input_error, None);
    assert_eq!(report.records.len(), 2);
    assert!(report.records.iter().all(|r| r.verdict == Verdict::Unsupported));
    // <values context=… transactionId=…>: every value is a Begin of one transaction
    let values = read_xml(&read("real/transparenzsoftware/xml__keba_test_txn.xml"))?;
    assert_eq!(values.len(), 100);
    assert!(
        values
            .iter()
            .all(|v| v.is_begin() && v.transaction_id.as_deref() == Some("1"))
    );
    // the transactionld typo
    let values = read_xml(&read(
        "real/transparenzsoftware/xml__Ocmf_Example_OBIS_98.8.0_2.8.0.xml",
    ))?;
    assert_eq!(values[0].transaction_id.as_deref(), Some("15060"));
    Ok(())
}
