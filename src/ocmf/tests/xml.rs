//! Writing the Transparenzsoftware file and reading it back.

use super::TestResult;
use super::signer::{self, Style, TestKey};
use crate::ocmf::key::{CURVES, Curve, PublicKey};
use crate::ocmf::record::Record;
use crate::ocmf::report::verify_text;
use crate::ocmf::xml::{XmlError, XmlTransaction, read_xml, write_xml};

#[test]
fn written_files_read_back_and_verify_on_every_curve() -> TestResult {
    let mut records = Vec::new();
    for (i, curve) in CURVES.into_iter().enumerate() {
        let key = TestKey::new(curve, "xml");
        // the payload carries characters XML must escape
        let b = signer::payload(10, &signer::begin_reading("2026-02-01T08:00:00,000+0000 S", "10"))
            .replace("voltyard test", "Q&A <test> \\\"gw\\\"");
        let e = signer::payload(11, &signer::end_reading("2026-02-01T09:00:00,000+0000 S", "12.5"))
            .replace("voltyard test", "Q&A <test> \\\"gw\\\"");
        let begin = Record::parse(&signer::record(&key, &b, Style::default()))?;
        let end = Record::parse(&signer::record(&key, &e, Style::default()))?;
        // a bare point goes out as SPKI
        let bare = PublicKey::parse(&data_encoding::HEXUPPER.encode(&key.point[1..]))?;
        records.push((i as u64 + 1, begin, end, bare, key));
    }
    let transactions: Vec<XmlTransaction<'_>> = records
        .iter()
        .map(|(id, b, e, k, _)| XmlTransaction {
            id: *id,
            begin: b,
            begin_key: k,
            end: e,
            end_key: k,
        })
        .collect();
    let xml = write_xml(&transactions)?;
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(xml.contains("<value transactionId=\"1\" context=\"Transaction.Begin\">"));
    assert!(xml.contains("<signedData format=\"OCMF\" encoding=\"plain\">OCMF|{"));
    assert!(xml.contains("Q&amp;A &lt;test&gt; \\\"gw\\\""), "{xml}");
    let values = read_xml(&xml)?;
    assert_eq!(values.len(), 2 * CURVES.len());
    for (v, (id, b, e, _, key)) in values.chunks(2).zip(&records) {
        assert!(v[0].is_begin() && v[1].is_end());
        assert_eq!(v[0].transaction_id, Some(id.to_string()));
        assert_eq!(v[0].signed_data.as_deref(), Some(b.text()));
        assert_eq!(v[1].signed_data.as_deref(), Some(e.text()));
        assert_eq!(v[0].public_key.as_deref(), Some(key.spki_hex().as_str()));
    }
    let report = verify_text(&xml, None);
    assert!(report.ok(), "{:#?}", report);
    assert_eq!(report.sessions.len(), CURVES.len());
    assert!(report.sessions.iter().all(|s| s.verdict.energy_wh == Some(2_500)));
    Ok(())
}

#[test]
fn a_bare_key_that_is_not_on_the_record_curve_is_refused() -> TestResult {
    let key = TestKey::new(Curve::Secp256r1, "xml refuse");
    let rec = Record::parse(&signer::record(
        &key,
        &signer::payload(1, &signer::begin_reading("2026-02-01T08:00:00,000+0000 S", "1")),
        Style::default(),
    ))?;
    let wrong = PublicKey::parse(&"07".repeat(64))?;
    let t = XmlTransaction {
        id: 9,
        begin: &rec,
        begin_key: &wrong,
        end: &rec,
        end_key: &wrong,
    };
    assert!(matches!(
        write_xml(&[t]),
        Err(XmlError::Key {
            id: 9,
            side: "begin",
            ..
        })
    ));
    Ok(())
}

#[test]
fn carriage_returns_in_a_payload_survive_the_file() -> TestResult {
    let key = TestKey::new(Curve::Secp256r1, "crlf");
    let payload = signer::payload(1, &signer::begin_reading("2026-02-01T08:00:00,000+0000 S", "1"))
        .replace(",\"GS\"", ",\r\n\"GS\"");
    let rec = Record::parse(&signer::record(&key, &payload, Style::default()))?;
    let k = key.public();
    let t = XmlTransaction {
        id: 1,
        begin: &rec,
        begin_key: &k,
        end: &rec,
        end_key: &k,
    };
    let xml = write_xml(&[t])?;
    assert!(xml.contains("&#13;"));
    let values = read_xml(&xml)?;
    assert_eq!(values[0].signed_data.as_deref(), Some(rec.text()));
    assert!(verify_text(&xml, None).records.iter().all(|r| r.ok()));
    Ok(())
}

#[test]
fn reader_shapes() -> TestResult {
    let xml = "\u{feff}<?xml version=\"1.0\"?>\n<values context=\"Transaction.End\">\n\
        <value transactionId=\"4\"><publicKey encoding=\"base64\">\n MFkw \n</publicKey>\
        <signedData encoding=\"base64\">T0NNRnx7fXx7fQ==</signedData></value>\
        <value/>\
        <value transactionId=\"5\" context=\"Transaction.Begin\"><signedData format=\"OCMF\">\n  OCMF|{&quot;A&quot;:&#49;}|{}\n</signedData></value>\
        <signedData>OCMF|{}|{}</signedData>\
        </values>";
    let v = read_xml(xml)?;
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].context.as_deref(), Some("Transaction.End"));
    assert_eq!(v[0].signed_data.as_deref(), Some("OCMF|{}|{}"));
    assert_eq!(v[0].public_key.as_deref(), Some("MFkw"));
    assert_eq!(v[0].public_key_encoding.as_deref(), Some("base64"));
    assert_eq!(v[1].signed_data.as_deref(), Some("OCMF|{\"A\":1}|{}"));
    assert!(v[1].is_begin());
    assert_eq!(v[2].signed_data.as_deref(), Some("OCMF|{}|{}"));
    assert!(matches!(read_xml("<values></values>"), Err(XmlError::NoValues)));
    assert!(matches!(
        read_xml("<values><value><signedData>x</value>"),
        Err(XmlError::Syntax(_))
    ));
    Ok(())
}

#[test]
fn transparenzsoftware_warnings() -> TestResult {
    let key = TestKey::new(Curve::Secp256r1, "warn");
    let p = signer::payload(1, &signer::begin_reading("2026-02-01T08:00:00,000+0000 S", "1"));
    let rec = |p: &str, style: Style| Record::parse(&signer::record(&key, p, style));
    assert!(crate::ocmf::xml::transparenz_warnings(&rec(&p, Style::default())?).is_empty());
    let raw = Style {
        der: false,
        ..Style::default()
    };
    let w = crate::ocmf::xml::transparenz_warnings(&rec(&p.replace("\"FV\":\"1.0\"", "\"FV\":\"2.0\""), raw)?);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("FV 2.0") && w[1].contains("raw r||s"), "{w:?}");
    Ok(())
}
