//! The offline verifier on OCMF lines, and the `voltyard verify` command around it.

use super::TestResult;
use super::signer::{self, Style, TestKey};
use crate::ocmf::key::Curve;
use crate::ocmf::report::{KeySource, verify_text};
use crate::ocmf::verify::Verdict;

use crate::cli::verify as cli_verify;

fn lines(key: &TestKey) -> (String, String) {
    let b = signer::record(
        key,
        &signer::payload(1, &signer::begin_reading("2026-03-01T08:00:00,000+0100 S", "5")),
        Style::default(),
    );
    let e = signer::record(
        key,
        &signer::payload(2, &signer::end_reading("2026-03-01T09:00:00,000+0100 S", "6.25")),
        Style::default(),
    );
    (b, e)
}

#[test]
fn ocmf_lines_with_a_key() {
    let key = TestKey::new(Curve::Secp384r1, "report");
    let (b, e) = lines(&key);
    let text = format!("\n{b}\n\n{e}\n");
    let r = verify_text(&text, Some(&key.spki_hex()));
    assert!(r.ok(), "{r:#?}");
    assert_eq!(r.records.len(), 2);
    assert_eq!(r.records[0].label, "line 2");
    assert_eq!(r.records[1].key_source, KeySource::Given);
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(r.sessions[0].verdict.energy_wh, Some(1_250));
    // without a key: nothing verifies, the session fails on that
    let r = verify_text(&text, None);
    assert!(!r.ok());
    assert!(r.records.iter().all(|x| x.verdict == Verdict::NoKey));
    // with a wrong key
    let r = verify_text(&text, Some(&TestKey::new(Curve::Secp384r1, "other").spki_hex()));
    assert!(r.records.iter().all(|x| x.verdict == Verdict::Invalid));
    // a line that is not OCMF fails the report but the others are still checked
    let r = verify_text(&format!("{b}\nhello\n{e}"), Some(&key.spki_hex()));
    assert!(!r.ok());
    assert_eq!(r.records[1].verdict, Verdict::Malformed);
    assert_eq!(r.sessions.len(), 1);
    assert!(r.sessions[0].verdict.ok());
    // only a begin: valid, but no session to check
    let r = verify_text(&b, Some(&key.spki_hex()));
    assert!(r.ok());
    assert_eq!((r.sessions.len(), r.unpaired.clone()), (0, vec![0]));
    // nothing readable at all
    assert!(verify_text("", None).input_error.is_some());
    assert!(verify_text("hello\nworld", None).input_error.is_some());
}

#[test]
fn the_command_prints_and_exits_by_outcome() -> TestResult {
    let key = TestKey::new(Curve::Secp256k1, "cli");
    let (b, e) = lines(&key);
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.ocmf");
    std::fs::write(&good, format!("{b}\n{e}\n"))?;
    let bad = dir.path().join("bad.ocmf");
    std::fs::write(&bad, format!("{b}\n{}\n", e.replace("6.25", "7.25")))?;
    let key_file = dir.path().join("meter.key");
    std::fs::write(&key_file, format!("oca:base16:asn1:{}\n", key.spki_hex()))?;
    let key_text = key.spki_hex();
    let code = |p: &std::path::Path, k: Option<&str>, json: bool| cli_verify::run(p, k, json);
    use std::process::ExitCode;
    assert_eq!(code(&good, Some(&key_text), false)?, ExitCode::SUCCESS);
    assert_eq!(code(&good, key_file.to_str(), true)?, ExitCode::SUCCESS);
    assert_eq!(code(&bad, Some(&key_text), false)?, ExitCode::from(1));
    assert_eq!(code(&good, None, false)?, ExitCode::from(1));
    assert_eq!(code(&dir.path().join("missing"), None, false)?, ExitCode::from(2));
    assert_eq!(code(&good, Some("not a key"), false)?, ExitCode::from(2));
    let text = cli_verify::render(&verify_text(&std::fs::read_to_string(&bad)?, Some(&key_text)));
    assert!(text.contains("line 2: INVALID (secp256k1)"), "{text}");
    assert!(
        text.contains("problem  end record: the signature does not match"),
        "{text}"
    );
    assert!(text.ends_with("FAILED\n"), "{text}");
    let text = cli_verify::render(&verify_text(&std::fs::read_to_string(&good)?, Some(&key_text)));
    assert!(text.contains("energy   1250 Wh"), "{text}");
    assert!(text.ends_with("VERIFIED\n"), "{text}");
    let json = serde_json::to_value(verify_text(&format!("{b}\n{e}"), Some(&key_text)))?;
    assert_eq!(json["records"][0]["verdict"], "valid");
    assert_eq!(json["sessions"][0]["verdict"]["energy_wh"], 1250);
    assert_eq!(json["sessions"][0]["verdict"]["begin"]["wh"], 5000);
    Ok(())
}

#[test]
fn a_pretty_printed_record_spans_lines() {
    let key = TestKey::new(Curve::Secp256r1, "pretty");
    let payload = "{\r\n  \"FV\": \"1.0\",\r\n  \"PG\": \"T3\",\r\n\r\n  \"RD\": [{\"TM\": \"2026-03-01T08:00:00,000+0100 S\", \"TX\": \"B\", \"RV\": 1, \"RU\": \"kWh\", \"ST\": \"G\"}]\r\n}";
    let rec = signer::record(&key, payload, Style::default());
    let single = signer::record(
        &key,
        &signer::payload(4, &signer::begin_reading("2026-03-01T08:00:00,000+0100 S", "1")),
        Style::default(),
    );
    let text = format!("{rec}\r\n\r\n{single}\r\nnot a record\r\n");
    let r = verify_text(&text, Some(&key.spki_hex()));
    let labels: Vec<(&str, Verdict)> = r.records.iter().map(|x| (x.label.as_str(), x.verdict)).collect();
    assert_eq!(
        labels,
        [
            ("line 1", Verdict::Valid),
            ("line 8", Verdict::Valid),
            ("line 9", Verdict::Malformed)
        ]
    );
    assert_eq!(r.records[0].record.as_ref().unwrap().payload_str(), payload);
}
