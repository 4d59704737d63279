//! Tariffs, prices, Eichrecht and receipts end to end: the real server, raw
//! OCPP charge points and the simulator's signing meters, driven and read
//! through the real CLI binary.

mod common;

use common::*;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::EncodePublicKey;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a decimal: {v}")),
        Value::Number(n) => n.to_string().parse().unwrap_or_else(|_| panic!("not a decimal: {v}")),
        _ => panic!("not a decimal: {v}"),
    }
}

fn round2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn energy_tariff(id: &str, price: &str, extra_elements: &str) -> String {
    format!(
        r#"{{"country_code":"DE","party_id":"VYD","id":"{id}","currency":"EUR","last_updated":"2026-01-01T00:00:00Z",
        "elements":[{extra_elements}{{"price_components":[{{"type":"ENERGY","price":{price},"vat":19,"step_size":1}}]}}]}}"#
    )
}

async fn write(srv: &TestServer, name: &str, text: &str) -> String {
    let p = srv.data_dir().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Runs `voltyard receipt ID --format F` into a file and `voltyard verify` on it.
async fn receipt_verifies(srv: &TestServer, id: u64, format: &str) -> (Output, String) {
    let o = srv.cli(&["receipt", &id.to_string(), "--format", format]).await;
    assert_exit(&o, 0, &format!("receipt {id} --format {format}"));
    let body = out(&o);
    let path = write(srv, &format!("receipt-{id}.{format}"), &body).await;
    (srv.cli(&["verify", &path]).await, body)
}

/// A 1.6 transaction on connector 1 between two past times, with register
/// readings only at start and stop (and optional signed readings).
async fn session16(
    cp: &mut Cp,
    tag: &str,
    start: &str,
    stop: &str,
    wh: (i64, i64),
    signed: Option<(&str, &str)>,
) -> u64 {
    let r = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": tag, "meterStart": wh.0, "timestamp": start}),
        )
        .await
        .expect("start answered");
    let tx = r["transactionId"].as_u64().expect("transactionId");
    let mut end_values = vec![];
    if let Some((b, e)) = signed {
        cp.call(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": start, "sampledValue": [
                {"value": b, "format": "SignedData", "context": "Transaction.Begin",
                 "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}),
        )
        .await
        .expect("meter values answered");
        end_values.push(json!({"timestamp": stop, "sampledValue": [
            {"value": e, "format": "SignedData", "context": "Transaction.End",
             "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}));
    }
    let mut stop_msg =
        json!({"transactionId": tx, "idTag": tag, "meterStop": wh.1, "timestamp": stop, "reason": "Local"});
    if !end_values.is_empty() {
        stop_msg["transactionData"] = json!(end_values);
    }
    cp.call("StopTransaction", stop_msg).await.expect("stop answered");
    tx
}

async fn show(srv: &TestServer, id: u64) -> Value {
    srv.cli_json(&["session", "show", &id.to_string()]).await
}

async fn registered16(srv: &TestServer, id: &str, site: &str) -> Cp {
    srv.ok(&["charger", "add", id, "--site", site]).await;
    let mut cp = srv.cp(id, "ocpp1.6").await;
    assert_eq!(cp.boot16().await["status"], "Accepted");
    cp
}

// ---------------------------------------------------------------------------
// (c) assignments: group > charger > site, validity periods, a semi-public
// site where employees charge free in working hours; (e) the CDR

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tariff_assignment_precedence_validity_and_the_semi_public_site() {
    let srv = TestServer::start().await;
    srv.ok(&["site", "add", "office", "--timezone", "Europe/Berlin"]).await;
    srv.ok(&["token", "add", "EMP1", "--group", "employees"]).await;
    srv.ok(&["token", "add", "GUEST1"]).await;
    let mut cp1 = registered16(&srv, "CP1", "office").await;
    let mut cp2 = registered16(&srv, "CP2", "office").await;

    // employees: free 07:00–19:00 local (an ENERGY element restricted in
    // time, price 0), 0.40/kWh otherwise; everyone else 0.50/kWh; CP2 is a
    // fast charger at 0.60/kWh from March.
    let staff = energy_tariff(
        "STAFF",
        "0.40",
        r#"{"price_components":[{"type":"ENERGY","price":0,"vat":19,"step_size":1}],
            "restrictions":{"start_time":"07:00","end_time":"19:00"}},"#,
    );
    let public = energy_tariff("PUBLIC", "0.50", "");
    let fast = energy_tariff("FAST", "0.60", "");
    let (staff, public, fast) = (
        write(&srv, "staff.json", &staff).await,
        write(&srv, "public.json", &public).await,
        write(&srv, "fast.json", &fast).await,
    );
    let v = srv.cli_json(&["tariff", "set", &public, "--site", "office"]).await;
    assert_eq!(v["id"], "PUBLIC");
    assert_eq!(v["assignment"]["scope"], json!({"kind": "site", "name": "office"}));
    srv.ok(&["tariff", "set", &fast, "--charger", "CP2", "--from", "2026-03-01"])
        .await;
    srv.ok(&["tariff", "set", &staff, "--group", "employees"]).await;
    let list = srv.cli_json(&["tariff", "list"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    let shown = srv.cli_json(&["tariff", "show", "FAST"]).await;
    assert_eq!(shown["assignments"][0]["from"], "2026-03-01T00:00:00Z");
    assert_eq!(shown["tariff"]["elements"][0]["price_components"][0]["type"], "ENERGY");
    let o = srv.cli(&["tariff", "list"]).await;
    assert_exit(&o, 0, "tariff list");
    assert!(
        out(&o).contains("charger CP2 (from 2026-03-01T00:00:00Z)"),
        "{}",
        out(&o)
    );

    // Monday 5 January 2026, CET (UTC+1); 10 kWh each.
    let kwh10 = (100_000, 110_000);
    let cases: Vec<(&str, u64, &str, &str)> = vec![
        // employee at 08:00–09:00 local: free
        (
            "staff, working hours",
            session16(
                &mut cp1,
                "EMP1",
                "2026-01-05T07:00:00Z",
                "2026-01-05T08:00:00Z",
                kwh10,
                None,
            )
            .await,
            "0.00",
            "0.00",
        ),
        // employee at 20:00–21:00 local: 10 kWh × 0.40
        (
            "staff, evening",
            session16(
                &mut cp1,
                "EMP1",
                "2026-01-05T19:00:00Z",
                "2026-01-05T20:00:00Z",
                kwh10,
                None,
            )
            .await,
            "4.00",
            "4.76",
        ),
        // employee 18:30–19:30 local: half free, half at 0.40 (energy linear in time)
        (
            "staff, across 19:00",
            session16(
                &mut cp1,
                "EMP1",
                "2026-01-05T17:30:00Z",
                "2026-01-05T18:30:00Z",
                kwh10,
                None,
            )
            .await,
            "2.00",
            "2.38",
        ),
        // a guest at 08:00 local: the site's public price
        (
            "guest on CP1",
            session16(
                &mut cp1,
                "GUEST1",
                "2026-01-05T07:00:00Z",
                "2026-01-05T08:00:00Z",
                kwh10,
                None,
            )
            .await,
            "5.00",
            "5.95",
        ),
        // CP2 before its own tariff is valid: the site's
        (
            "guest on CP2 in January",
            session16(
                &mut cp2,
                "GUEST1",
                "2026-01-05T07:00:00Z",
                "2026-01-05T08:00:00Z",
                kwh10,
                None,
            )
            .await,
            "5.00",
            "5.95",
        ),
        // CP2 from March: the charger's tariff beats the site's
        (
            "guest on CP2 in March",
            session16(
                &mut cp2,
                "GUEST1",
                "2026-03-02T07:00:00Z",
                "2026-03-02T08:00:00Z",
                kwh10,
                None,
            )
            .await,
            "6.00",
            "7.14",
        ),
        // an employee on CP2 in March: the group's tariff beats the charger's
        (
            "staff on CP2 in March",
            session16(
                &mut cp2,
                "EMP1",
                "2026-03-02T07:00:00Z",
                "2026-03-02T08:00:00Z",
                kwh10,
                None,
            )
            .await,
            "0.00",
            "0.00",
        ),
    ];
    let list = srv.cli_json(&["session", "list"]).await;
    for (what, id, excl, incl) in &cases {
        let s = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == *id)
            .unwrap_or_else(|| panic!("{what}: session {id} listed"));
        assert_eq!(s["status"], "completed", "{what}: {s}");
        assert_eq!(s["price"]["total_excl_vat"], *excl, "{what}: {s}");
        assert_eq!(s["price"]["total_incl_vat"], *incl, "{what}: {s}");
        assert_eq!(s["price"]["currency"], "EUR", "{what}: {s}");
        assert_eq!(s["price"]["energy_source"], "meter_values", "{what}: {s}");
        assert_eq!(s["eichrecht"]["state"], "unsigned", "{what}: {s}");
        assert_eq!(s["unpriced_reason"], Value::Null, "{what}: {s}");
    }
    let tariff_of = |i: usize| {
        list.as_array().unwrap().iter().find(|s| s["id"] == cases[i].1).unwrap()["price"]["tariff_id"].clone()
    };
    assert_eq!(
        (0..cases.len()).map(tariff_of).collect::<Vec<_>>(),
        ["STAFF", "STAFF", "STAFF", "PUBLIC", "PUBLIC", "FAST", "STAFF"]
    );

    // An active session shows what it would cost if it ended now: 4 kWh
    // at the site's 0.50/kWh + 19 % VAT.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = cp1
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "GUEST1", "meterStart": 1000, "timestamp": now}),
        )
        .await
        .expect("start answered");
    let tx = r["transactionId"].as_u64().expect("transactionId");
    cp1.call(
        "MeterValues",
        json!({"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": now, "sampledValue": [
            {"value": "5000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}),
    )
    .await
    .expect("meter values answered");
    let running = show(&srv, tx).await;
    assert_eq!(running["status"], "active", "{running}");
    assert_eq!(running["price"], Value::Null, "{running}");
    assert_eq!(running["price_so_far"]["tariff_id"], "PUBLIC", "{running}");
    assert_eq!(running["price_so_far"]["total_excl_vat"], "2.00", "{running}");
    assert_eq!(running["price_so_far"]["total_incl_vat"], "2.38", "{running}");
    let listed = srv.cli_json(&["session", "list", "--active"]).await;
    assert_eq!(listed[0]["price_so_far"], running["price_so_far"], "{listed}");

    // The receipt shows how each line was computed, in local time.
    let o = srv.cli(&["receipt", &cases[2].1.to_string()]).await;
    assert_exit(&o, 0, "text receipt");
    let text = out(&o);
    for want in [
        "2026-01-05 18:30:00 CET",
        "5 kWh × 0 EUR/kWh = 0 EUR",
        "5 kWh × 0.4 EUR/kWh = 2 EUR; + 19% VAT = 2.38 EUR",
        "Total incl. VAT         2.38 EUR",
        "Rounding: Quantities are exact",
        "Eichrecht: no signed meter data",
    ] {
        assert!(text.contains(want), "receipt lacks {want:?}:\n{text}");
    }
    // An unsigned receipt has nothing to verify: verify says so and fails.
    let (v, _) = receipt_verifies(&srv, cases[2].1, "json").await;
    assert_exit(&v, 1, "verify of an unsigned receipt");
    assert!(out(&v).contains("no signed meter data"), "{}", out(&v));

    // (e) the CDR of a priced session: OCPI 2.2.1 fields, totals equal to the price.
    let id = cases[1].1;
    let s = show(&srv, id).await;
    let o = srv.cli(&["session", "cdr", &id.to_string()]).await;
    assert_exit(&o, 0, "session cdr");
    let cdr: Value = serde_json::from_slice(&o.stdout).expect("CDR JSON");
    for field in [
        "country_code",
        "party_id",
        "id",
        "start_date_time",
        "end_date_time",
        "cdr_token",
        "auth_method",
        "cdr_location",
        "currency",
        "tariffs",
        "charging_periods",
        "total_cost",
        "total_energy",
        "total_time",
        "last_updated",
    ] {
        assert!(!cdr[field].is_null(), "CDR lacks {field}: {cdr}");
    }
    assert_eq!(cdr["country_code"], "DE");
    assert_eq!(cdr["party_id"], "VYD");
    assert_eq!(cdr["cdr_token"]["uid"], "EMP1");
    assert_eq!(cdr["session_id"], id.to_string());
    assert_eq!(cdr["currency"], "EUR");
    assert_eq!(cdr["tariffs"][0]["id"], "STAFF");
    assert_eq!(cdr["start_date_time"], "2026-01-05T19:00:00Z");
    assert_eq!(dec(&cdr["total_energy"]), Decimal::from(10));
    assert_eq!(dec(&cdr["total_cost"]["excl_vat"]), dec(&s["price"]["total_excl_vat"]));
    assert_eq!(dec(&cdr["total_cost"]["incl_vat"]), dec(&s["price"]["total_incl_vat"]));
    assert_eq!(
        dec(&cdr["total_energy_cost"]["excl_vat"]),
        dec(&s["price"]["total_excl_vat"])
    );
    assert!(
        cdr["charging_periods"].as_array().is_some_and(|p| !p.is_empty()),
        "{cdr}"
    );

    // No tariff for a site without one: completed, not priced, and says why.
    srv.ok(&["site", "add", "depot"]).await;
    let mut cp3 = registered16(&srv, "CP3", "depot").await;
    let id = session16(
        &mut cp3,
        "GUEST1",
        "2026-01-05T07:00:00Z",
        "2026-01-05T08:00:00Z",
        kwh10,
        None,
    )
    .await;
    let s = show(&srv, id).await;
    assert_eq!(s["price"], Value::Null, "{s}");
    assert!(
        s["unpriced_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no tariff is assigned")),
        "{s}"
    );
    let o = srv.cli(&["session", "cdr", &id.to_string()]).await;
    assert_exit(&o, 1, "cdr of an unpriced session");
}

// ---------------------------------------------------------------------------
// (d) a bad tariff names the field and exits 2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tariff_is_refused_with_its_field_path_and_exit_2() {
    let srv = TestServer::start().await;
    let bad = r#"{"country_code":"DE","party_id":"VYD","id":"BAD","currency":"EUR","last_updated":"2026-01-01T00:00:00Z",
        "elements":[{"price_components":[{"type":"ENERGY","price":0.3,"step_size":0}],
                     "restrictions":{"start_time":"24:00"}}]}"#;
    let path = write(&srv, "bad.json", bad).await;
    let o = srv.cli(&["tariff", "set", &path, "--site", "default"]).await;
    assert_exit(&o, 2, "invalid tariff");
    for want in [
        "elements[0].price_components[0].step_size: must be > 0",
        "elements[0].restrictions.start_time:",
    ] {
        assert!(err(&o).contains(want), "{want:?} not in: {}", err(&o));
    }
    let path = write(&srv, "broken.json", "{\n  \"id\": \"X\",\n  oops\n}").await;
    let o = srv.cli(&["tariff", "set", &path]).await;
    assert_exit(&o, 2, "not JSON");
    assert!(err(&o).contains("line 3"), "{}", err(&o));
    let o = srv.cli(&["tariff", "set", "/nonexistent/t.json"]).await;
    assert_exit(&o, 2, "missing file");
    // a valid tariff for a site that does not exist: not found
    let good = write(&srv, "good.json", &energy_tariff("OK", "0.3", "")).await;
    let o = srv.cli(&["tariff", "set", &good, "--site", "nowhere"]).await;
    assert_exit(&o, 1, "unknown site");
    let o = srv
        .cli(&[
            "tariff",
            "set",
            &good,
            "--site",
            "default",
            "--from",
            "2026-02-01",
            "--until",
            "2026-01-01",
        ])
        .await;
    assert_exit(&o, 2, "until before from");
    assert_eq!(srv.cli_json(&["tariff", "list"]).await, json!([]));
    // offline pricing of the same bad file: exit 2, field path named
    let session = write(
        &srv,
        "s.json",
        r#"{"timezone":"UTC","start":"2026-01-05T16:55:00Z","end":"2026-01-05T17:07:00Z","meter_readings":[
            {"t":"2026-01-05T16:55:00Z","wh":0,"state":"charging"}]}"#,
    )
    .await;
    let o = srv.cli(&["tariff", "price", &path, "--session", &session]).await;
    assert_exit(&o, 2, "tariff price with a broken tariff");
    let o = srv
        .cli(&["tariff", "price", &good, "--session", &session, "--json"])
        .await;
    assert_exit(&o, 0, "tariff price");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["excl_vat"], "0.00");
}

// ---------------------------------------------------------------------------
// (b) a signed reading altered after signing is caught end to end

/// An OCMF record signed like an Eichrecht meter (ECDSA P-256, DER hex);
/// `forge` rewrites the payload after signing.
fn ocmf(key: &SigningKey, page: u32, tx: char, at: &str, kwh: &str, forge: Option<(&str, &str)>) -> String {
    let payload = format!(
        r#"{{"FV":"1.0","GI":"TEST","GS":"G-1","GV":"1","PG":"T{page}","MV":"Test","MM":"M1","MS":"MTR-7","IS":true,"IL":"VERIFIED","IF":["RFID_PLAIN"],"IT":"ISO14443","ID":"EICH","RD":[{{"TM":"{at},000+0000 S","TX":"{tx}","RV":{kwh},"RI":"1-b:1.8.0","RU":"kWh","ST":"G"}}]}}"#
    );
    let sig: Signature = key.sign(payload.as_bytes());
    let sd = data_encoding::HEXUPPER.encode(sig.to_der().as_bytes());
    let payload = match forge {
        Some((from, to)) => payload.replace(from, to),
        None => payload,
    };
    format!(r#"OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{sd}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_signed_reading_is_flagged_not_billed_and_fails_verification() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "EICH"]).await;
    let tariff = write(&srv, "t.json", &energy_tariff("PUB", "0.30", "")).await;
    srv.ok(&["tariff", "set", &tariff, "--site", "default"]).await;
    let mut cp = registered16(&srv, "EICH1", "default").await;
    let key = SigningKey::from_slice(&[42; 32]).unwrap();
    let spki = data_encoding::HEXUPPER.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());

    // A good signed session whose OCPP meterStop disagrees with the meter:
    // only the signed readings count. Its key is not known yet.
    let (b, e) = (
        ocmf(&key, 1, 'B', "2026-01-05T07:00:00", "100.000", None),
        ocmf(&key, 2, 'E', "2026-01-05T08:00:00", "112.345", None),
    );
    let good = session16(
        &mut cp,
        "EICH",
        "2026-01-05T07:00:00Z",
        "2026-01-05T08:00:00Z",
        (100_000, 150_000),
        Some((&b, &e)),
    )
    .await;
    let s = show(&srv, good).await;
    assert_eq!(s["eichrecht"]["state"], "failed", "{s}");
    assert_eq!(s["price"], Value::Null, "{s}");
    assert!(
        s["eichrecht"]["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("no public key")),
        "{s}"
    );

    // The end record's RV altered after signing.
    let (b, e) = (
        ocmf(&key, 3, 'B', "2026-01-05T09:00:00", "112.345", None),
        ocmf(
            &key,
            4,
            'E',
            "2026-01-05T10:00:00",
            "120.000",
            Some(("\"RV\":120.000", "\"RV\":150.000")),
        ),
    );
    assert!(e.contains("\"RV\":150.000"));
    let bad = session16(
        &mut cp,
        "EICH",
        "2026-01-05T09:00:00Z",
        "2026-01-05T10:00:00Z",
        (112_345, 150_000),
        Some((&b, &e)),
    )
    .await;

    // The operator sets the meter key: the waiting session is verified and billed.
    let v = srv.cli_json(&["charger", "set-meter-key", "EICH1", &spki]).await;
    assert_eq!(v["reverified"], json!([good, bad]), "{v}");
    let s = show(&srv, good).await;
    assert_eq!(s["eichrecht"]["state"], "verified", "{s}");
    assert_eq!(s["eichrecht"]["energy_wh"], 12_345, "{s}");
    assert_eq!(s["eichrecht"]["meter_serial"], "MTR-7", "{s}");
    assert_eq!(s["price"]["energy_wh"], 12_345, "{s}");
    assert_eq!(s["price"]["energy_source"], "signed", "{s}");
    // 12.345 kWh × 0.30 = 3.7035 → 3.70; × 1.19 = 4.407165 → 4.41
    assert_eq!(s["price"]["total_excl_vat"], "3.70", "{s}");
    assert_eq!(s["price"]["total_incl_vat"], "4.41", "{s}");
    let (v, _) = receipt_verifies(&srv, good, "json").await;
    assert_exit(&v, 0, "verify the good receipt");

    // The tampered one: flagged, not billed from the unsigned values.
    let s = show(&srv, bad).await;
    assert_eq!(s["eichrecht"]["state"], "failed", "{s}");
    assert_eq!(s["price"], Value::Null, "{s}");
    let problems = s["eichrecht"]["problems"].to_string();
    assert!(problems.contains("end record"), "{problems}");
    assert!(
        s["unpriced_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not billed")),
        "{s}"
    );
    let listed = srv.cli_json(&["session", "list"]).await;
    let row = listed.as_array().unwrap().iter().find(|x| x["id"] == bad).unwrap();
    assert_eq!(row["eichrecht"]["state"], "failed");
    assert_eq!(row["price"], Value::Null);
    let o = srv.cli(&["session", "list"]).await;
    assert!(out(&o).contains("failed"), "{}", out(&o));

    for format in ["json", "xml"] {
        let (v, body) = receipt_verifies(&srv, bad, format).await;
        assert_exit(&v, 1, &format!("verify of the tampered {format} receipt"));
        assert!(body.contains("150.000"), "{body}");
        assert!(out(&v).contains("INVALID"), "{}", out(&v));
    }
    let o = srv.cli(&["receipt", &bad.to_string()]).await;
    assert_exit(&o, 0, "text receipt of the tampered session");
    assert!(out(&o).contains("NOT BILLED"), "{}", out(&o));
    assert!(out(&o).contains("Eichrecht: FAILED, meter serial MTR-7"), "{}", out(&o));
    let o = srv.cli(&["session", "cdr", &bad.to_string()]).await;
    assert_exit(&o, 1, "no CDR for an unbilled session");

    // A charger tariff assigned later: repricing the verified session uses
    // it, still from the signed energy; the tampered one stays unbilled.
    let fast = write(&srv, "fast.json", &energy_tariff("FAST", "0.60", "")).await;
    srv.ok(&["tariff", "set", &fast, "--charger", "EICH1"]).await;
    let v = srv.cli_json(&["session", "reprice", &good.to_string()]).await;
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["after"]["price"]["tariff_id"], "FAST", "{v}");
    assert_eq!(v["after"]["price"]["energy_source"], "signed", "{v}");
    assert_eq!(v["after"]["price"]["energy_wh"], 12_345, "{v}");
    assert_eq!(v["after"]["eichrecht"], "verified", "{v}");
    let v = srv.cli_json(&["session", "reprice", &bad.to_string()]).await;
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(v["after"]["price"], Value::Null, "{v}");
    assert_eq!(v["after"]["eichrecht"], "failed", "{v}");
    let s = show(&srv, bad).await;
    assert_eq!(s["price"], Value::Null, "{s}");
    assert!(
        s["unpriced_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not billed")),
        "{s}"
    );
}

// ---------------------------------------------------------------------------
// (a) the simulator's signing meters: receipts verify and the price is the
// signed energy's

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_signing_meters_give_verified_receipts_priced_from_the_signed_energy() {
    use voltyard::server::UnknownChargers;
    use voltyard::sim::{Options, Scenario, Simulation};
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    for n in 1..=20 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
    }
    let tariff = write(&srv, "t.json", &energy_tariff("SIM", "0.30", "")).await;
    srv.ok(&["tariff", "set", &tariff, "--site", "default"]).await;
    let scenario = Scenario::parse(
        r#"
[site]
id = "test"
name = "Test site"

[[tokens]]
prefix = "T"
count = 20

[[cars]]
name = "Test car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100

[[chargers]]
prefix = "E16"
count = 2
protocol = "1.6"
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true

[[chargers]]
prefix = "E201"
count = 2
protocol = "2.0.1"
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true

[arrivals]
first_within_s = 1
gap_s = [1, 2]
dwell_s = [4, 6]
soc_percent = [20, 30]
"#,
        "billing test",
        false,
    )
    .expect("scenario");
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario,
        seed: 5,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    });
    let completed = |list: &Value, prefix: &str| -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == "completed" && s["charger"].as_str().is_some_and(|c| c.starts_with(prefix)))
            .cloned()
            .collect()
    };
    // 1.6 meters publish their key only as MeterPublicKey[n]: the server
    // asks for it when it first sees their signed data.
    let mut done = false;
    for _ in 0..160 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let list = srv.cli_json(&["session", "list"]).await;
        if completed(&list, "E16").len() >= 2 && completed(&list, "E201").len() >= 2 {
            done = true;
            break;
        }
    }
    let summary = sim.stop().await;
    assert!(done, "sessions did not complete: {summary:?}");
    let list = srv.cli_json(&["session", "list", "--completed"]).await;
    let mut checked = 0;
    for s in list.as_array().unwrap() {
        let id = s["id"].as_u64().unwrap();
        assert_eq!(s["eichrecht"]["state"], "verified", "session {id}: {s}");
        assert_eq!(s["price"]["energy_source"], "signed", "{s}");
        // Hand-computed from the signed records in the Transparenzsoftware file.
        let (v, xml) = receipt_verifies(&srv, id, "xml").await;
        assert_exit(&v, 0, &format!("verify the xml receipt of {id}"));
        assert_eq!(xml.matches("context=\"Transaction.Begin\"").count(), 1, "{xml}");
        assert_eq!(xml.matches("context=\"Transaction.End\"").count(), 1, "{xml}");
        let rv: Vec<Decimal> = xml
            .split("&quot;RV&quot;:")
            .skip(1)
            .chain(xml.split("\"RV\":").skip(1))
            .map(|t| t.split([',', '}']).next().unwrap().trim().parse().unwrap())
            .collect();
        assert_eq!(rv.len(), 2, "two signed readings in {xml}");
        let wh = (rv[1] - rv[0]) * Decimal::from(1000);
        assert_eq!(dec(&json!(s["eichrecht"]["energy_wh"].to_string())), wh, "{s}");
        let net = wh / Decimal::from(1000) * Decimal::new(30, 2);
        assert_eq!(dec(&s["price"]["total_excl_vat"]), round2(net), "{s}");
        assert_eq!(
            dec(&s["price"]["total_incl_vat"]),
            round2(net * Decimal::new(119, 2)),
            "{s}"
        );
        let (v, _) = receipt_verifies(&srv, id, "json").await;
        assert_exit(&v, 0, &format!("verify the json receipt of {id}"));
        let o = srv.cli(&["receipt", &id.to_string()]).await;
        let text = out(&o);
        assert!(text.contains("Eichrecht: VERIFIED, meter serial"), "{text}");
        let total = s["price"]["total_incl_vat"].as_str().unwrap();
        assert!(text.contains(&format!("Total incl. VAT   {total:>10} EUR")), "{text}");
        checked += 1;
    }
    assert!(checked >= 4, "{list}");
}

// ---------------------------------------------------------------------------
// (f) ending assignments, removing tariffs, repricing sessions

/// The price of a session as `session show` has it: (tariff, total incl. VAT).
async fn priced(srv: &TestServer, id: u64) -> (Value, Value) {
    let s = show(srv, id).await;
    (s["price"]["tariff_id"].clone(), s["price"]["total_incl_vat"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassign_ends_an_assignment_and_the_next_scope_prices_later_sessions() {
    let srv = TestServer::start().await;
    srv.ok(&["site", "add", "office", "--timezone", "Europe/Berlin"]).await;
    srv.ok(&["token", "add", "EMP1", "--group", "employees"]).await;
    let mut cp = registered16(&srv, "CP1", "office").await;
    let (public, fast, staff) = (
        write(&srv, "public.json", &energy_tariff("PUBLIC", "0.50", "")).await,
        write(&srv, "fast.json", &energy_tariff("FAST", "0.60", "")).await,
        write(&srv, "staff.json", &energy_tariff("STAFF", "0.10", "")).await,
    );
    let id_of = |v: &Value| v["assignment"]["id"].as_u64().expect("assignment id");
    let a_public = id_of(&srv.cli_json(&["tariff", "set", &public, "--site", "office"]).await);
    let a_fast = id_of(
        &srv.cli_json(&["tariff", "set", &fast, "--charger", "CP1", "--from", "2026-01-01"])
            .await,
    );
    let a_staff = id_of(&srv.cli_json(&["tariff", "set", &staff, "--group", "employees"]).await);
    let kwh10 = (100_000, 110_000);

    // Monday 5 January 2026: the group's tariff first.
    let s1 = session16(
        &mut cp,
        "EMP1",
        "2026-01-05T07:00:00Z",
        "2026-01-05T08:00:00Z",
        kwh10,
        None,
    )
    .await;
    assert_eq!(priced(&srv, s1).await, (json!("STAFF"), json!("1.19")));

    // The group's assignment ends at noon: kept, with its end; s1 is untouched.
    let v = srv
        .cli_json(&[
            "tariff",
            "unassign",
            &a_staff.to_string(),
            "--at",
            "2026-01-05T12:00:00Z",
        ])
        .await;
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["assignment"]["id"], a_staff, "{v}");
    assert_eq!(v["assignment"]["until"], "2026-01-05T12:00:00Z", "{v}");
    assert_eq!(v["assignment"]["scope"], json!({"kind": "group", "name": "employees"}));
    assert_eq!(v["to_reprice"], json!([]), "{v}");
    let shown = srv.cli_json(&["tariff", "show", "STAFF"]).await;
    assert_eq!(shown["assignments"][0]["until"], "2026-01-05T12:00:00Z", "{shown}");
    assert_eq!(shown["assignments"][0]["from"], Value::Null, "{shown}");
    assert_eq!(priced(&srv, s1).await, (json!("STAFF"), json!("1.19")));
    let o = srv.cli(&["tariff", "list"]).await;
    assert!(
        out(&o).contains(&format!("#{a_staff} group employees (until 2026-01-05T12:00:00Z)")),
        "{}",
        out(&o)
    );

    // An employee after noon: the charger's tariff is next in precedence.
    let s2 = session16(
        &mut cp,
        "EMP1",
        "2026-01-05T13:00:00Z",
        "2026-01-05T14:00:00Z",
        kwh10,
        None,
    )
    .await;
    assert_eq!(priced(&srv, s2).await, (json!("FAST"), json!("7.14")));

    // The charger's ends at 15:00 (text output), then the site's.
    let o = srv
        .cli(&[
            "tariff",
            "unassign",
            &a_fast.to_string(),
            "--at",
            "2026-01-05T15:00:00Z",
        ])
        .await;
    assert_exit(&o, 0, "unassign the charger's tariff");
    assert!(
        out(&o).contains(&format!(
            "assignment {a_fast} (tariff FAST for charger CP1) ends at 2026-01-05T15:00:00Z"
        )),
        "{}",
        out(&o)
    );
    let s3 = session16(
        &mut cp,
        "EMP1",
        "2026-01-05T16:00:00Z",
        "2026-01-05T17:00:00Z",
        kwh10,
        None,
    )
    .await;
    assert_eq!(priced(&srv, s3).await, (json!("PUBLIC"), json!("5.95")));

    // Ending the site's in the past: s3, which it priced, is named for repricing.
    let v = srv
        .cli_json(&[
            "tariff",
            "unassign",
            &a_public.to_string(),
            "--at",
            "2026-01-05T15:30:00Z",
        ])
        .await;
    assert_eq!(v["to_reprice"], json!([s3]), "{v}");
    let o = srv
        .cli(&[
            "tariff",
            "unassign",
            &a_public.to_string(),
            "--at",
            "2026-01-05T15:30:00Z",
        ])
        .await;
    assert_exit(&o, 0, "the same end again");
    assert!(out(&o).contains("already ends at 2026-01-05T15:30:00Z"), "{}", out(&o));
    assert!(out(&o).contains(&format!("repriced: {s3}")), "{}", out(&o));

    // Nothing left: a new session is completed, unpriced, and says why.
    let s4 = session16(
        &mut cp,
        "EMP1",
        "2026-01-05T18:00:00Z",
        "2026-01-05T19:00:00Z",
        kwh10,
        None,
    )
    .await;
    let s = show(&srv, s4).await;
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["price"], Value::Null, "{s}");
    assert!(
        s["unpriced_reason"].as_str().is_some_and(|r| r.contains(
            "no tariff is assigned to group employees, charger CP1 or site office at the session start 2026-01-05T18:00:00"
        )),
        "{s}"
    );
    // s3 repriced after its assignment was ended: unpriced now, the old price in its notes.
    let v = srv.cli_json(&["session", "reprice", &s3.to_string()]).await;
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["before"]["price"]["tariff_id"], "PUBLIC", "{v}");
    assert_eq!(v["after"]["price"], Value::Null, "{v}");
    let s = show(&srv, s3).await;
    assert_eq!(s["price"], Value::Null, "{s}");
    let note = s["notes"]
        .as_array()
        .and_then(|n| n.last())
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        note.contains(&format!(
            "previous bill: 5.95 EUR incl. VAT (5.00 EUR excl. VAT) with tariff PUBLIC by assignment {a_public} (site office)"
        )),
        "{note}"
    );
    assert!(note.contains("new bill: not priced (no tariff is assigned"), "{note}");

    // Refusals: unknown id (not found, 1), --at before the start (2, names
    // the field), an end after the one it has (conflict, 1); nothing changed.
    let o = srv.cli(&["tariff", "unassign", "999"]).await;
    assert_exit(&o, 1, "unknown assignment");
    assert!(err(&o).contains("no tariff assignment 999"), "{}", err(&o));
    let o = srv
        .cli(&["tariff", "unassign", &a_fast.to_string(), "--at", "2025-12-01"])
        .await;
    assert_exit(&o, 2, "--at before the assignment's start");
    assert!(
        err(&o).contains("at: 2025-12-01T00:00:00Z is before assignment"),
        "{}",
        err(&o)
    );
    let o = srv
        .cli(&["tariff", "unassign", &a_staff.to_string(), "--at", "2026-02-01"])
        .await;
    assert_exit(&o, 1, "an assignment that already ended");
    assert!(err(&o).contains("already ended at 2026-01-05T12:00:00Z"), "{}", err(&o));
    let o = srv
        .cli(&["tariff", "unassign", &a_fast.to_string(), "--at", "tomorrow"])
        .await;
    assert_exit(&o, 2, "--at that is not a time");
    let shown = srv.cli_json(&["tariff", "show", "FAST"]).await;
    assert_eq!(shown["assignments"][0]["until"], "2026-01-05T15:00:00Z", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_is_refused_while_an_assignment_or_a_bill_refers_to_the_tariff() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "GUEST1"]).await;
    let mut cp = registered16(&srv, "CP1", "default").await;
    let old = write(&srv, "old.json", &energy_tariff("OLD", "0.30", "")).await;
    let v = srv.cli_json(&["tariff", "set", &old, "--site", "default"]).await;
    let a_old = v["assignment"]["id"].as_u64().unwrap();
    let s1 = session16(
        &mut cp,
        "GUEST1",
        "2026-01-05T07:00:00Z",
        "2026-01-05T08:00:00Z",
        (0, 10_000),
        None,
    )
    .await;
    assert_eq!(priced(&srv, s1).await, (json!("OLD"), json!("3.57")));

    // Assigned: refused, and the message says what to do.
    let o = srv.cli(&["tariff", "remove", "OLD"]).await;
    assert_exit(&o, 1, "remove an assigned tariff");
    assert!(
        err(&o).contains(&format!(
            "tariff OLD is still assigned: assignment {a_old} (site default)"
        )),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("tariff unassign"), "{}", err(&o));
    // No longer assigned, but s1 was priced with it: still refused.
    srv.ok(&["tariff", "unassign", &a_old.to_string()]).await;
    let o = srv.cli(&["tariff", "remove", "OLD"]).await;
    assert_exit(&o, 1, "remove a tariff a bill was priced with");
    assert!(
        err(&o).contains(&format!("tariff OLD priced session {s1}")),
        "{}",
        err(&o)
    );
    assert_eq!(srv.cli_json(&["tariff", "show", "OLD"]).await["id"], "OLD");

    // Assigned only from 2030 on: refused too; cancelled at its start, removable.
    let future = write(&srv, "future.json", &energy_tariff("FUTURE", "0.90", "")).await;
    let v = srv
        .cli_json(&["tariff", "set", &future, "--site", "default", "--from", "2030-01-01"])
        .await;
    let a_future = v["assignment"]["id"].as_u64().unwrap();
    let o = srv.cli(&["tariff", "remove", "FUTURE"]).await;
    assert_exit(&o, 1, "remove a tariff assigned in the future");
    let o = srv.cli(&["tariff", "unassign", &a_future.to_string()]).await;
    assert_exit(&o, 2, "end a future assignment now: before its start");
    srv.ok(&["tariff", "unassign", &a_future.to_string(), "--at", "2030-01-01"])
        .await;
    let v = srv.cli_json(&["tariff", "remove", "FUTURE"]).await;
    assert_eq!(v, json!({"id": "FUTURE", "ended_assignments": [a_future]}));

    // Never assigned nor used: removed (text output).
    let spare = write(&srv, "spare.json", &energy_tariff("SPARE", "0.20", "")).await;
    srv.ok(&["tariff", "set", &spare]).await;
    let o = srv.cli(&["tariff", "remove", "SPARE"]).await;
    assert_exit(&o, 0, "remove an unused tariff");
    assert_eq!(out(&o).trim(), "tariff SPARE removed");
    let ids: Vec<Value> = srv
        .cli_json(&["tariff", "list"])
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, [json!("OLD")]);
    let o = srv.cli(&["tariff", "remove", "SPARE"]).await;
    assert_exit(&o, 1, "remove an unknown tariff");
    assert!(err(&o).contains("no tariff SPARE"), "{}", err(&o));
    // The bill keeps its price.
    assert_eq!(priced(&srv, s1).await, (json!("OLD"), json!("3.57")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprice_prices_a_session_that_ended_before_its_tariff_was_assigned() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "GUEST1"]).await;
    let mut cp = registered16(&srv, "CP1", "default").await;
    let s1 = session16(
        &mut cp,
        "GUEST1",
        "2026-01-05T07:00:00Z",
        "2026-01-05T08:00:00Z",
        (0, 10_000),
        None,
    )
    .await;
    let before = show(&srv, s1).await;
    assert_eq!(before["price"], Value::Null, "{before}");
    let notes_before = before["notes"].as_array().map_or(0, Vec::len);

    // The tariff is assigned late: the stored bill does not change by itself.
    let late = write(&srv, "late.json", &energy_tariff("LATE", "0.50", "")).await;
    let v = srv
        .cli_json(&["tariff", "set", &late, "--site", "default", "--from", "2026-01-01"])
        .await;
    let a_late = v["assignment"]["id"].as_u64().unwrap();
    assert_eq!(show(&srv, s1).await["price"], Value::Null);

    let o = srv.cli(&["session", "reprice", &s1.to_string()]).await;
    assert_exit(&o, 0, "reprice");
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "session {s1} repriced: 5.95 EUR incl. VAT, tariff LATE, assignment {a_late} (site default)"
        )),
        "{text}"
    );
    assert!(text.contains("was: not priced: no tariff is assigned"), "{text}");
    let s = show(&srv, s1).await;
    assert_eq!(s["price"]["tariff_id"], "LATE", "{s}");
    assert_eq!(s["price"]["total_excl_vat"], "5.00", "{s}");
    assert_eq!(s["price"]["total_incl_vat"], "5.95", "{s}");
    assert_eq!(s["price"]["assignment"], a_late, "{s}");
    assert_eq!(s["unpriced_reason"], Value::Null, "{s}");
    let notes = s["notes"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes.len(), notes_before + 1, "{s}");
    let note = notes.last().and_then(Value::as_str).unwrap_or_default();
    // "<time of repricing>: repriced …; previous bill: …; new bill: …"
    let (when, rest) = note.split_once(": ").unwrap_or_default();
    assert!(when.parse::<chrono::DateTime<chrono::Utc>>().is_ok(), "{note}");
    assert!(
        rest.contains("previous bill: not priced (no tariff is assigned to charger CP1 or site default"),
        "{note}"
    );
    assert!(rest.contains("Eichrecht unsigned; billed at "), "{note}");
    assert!(
        rest.contains(&format!(
            "new bill: 5.95 EUR incl. VAT (5.00 EUR excl. VAT) with tariff LATE by assignment {a_late} (site default), 10000 Wh from the meter values"
        )),
        "{note}"
    );
    // Receipts and CDRs follow the new bill.
    let o = srv.cli(&["receipt", &s1.to_string()]).await;
    assert!(out(&o).contains("Total incl. VAT         5.95 EUR"), "{}", out(&o));
    let o = srv.cli(&["session", "cdr", &s1.to_string()]).await;
    assert_exit(&o, 0, "CDR of the repriced session");

    // Again: nothing changed, nothing noted.
    let v = srv.cli_json(&["session", "reprice", &s1.to_string()]).await;
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(v["note"], Value::Null, "{v}");
    assert_eq!(v["after"]["price"]["total_incl_vat"], "5.95", "{v}");
    assert_eq!(
        show(&srv, s1).await["notes"].as_array().map(Vec::len),
        Some(notes.len())
    );
    let o = srv.cli(&["session", "reprice", &s1.to_string()]).await;
    assert!(out(&o).contains("the bill is unchanged"), "{}", out(&o));

    // Unknown session: 1; a running one: 1 (priced when it ends).
    let o = srv.cli(&["session", "reprice", "999"]).await;
    assert_exit(&o, 1, "reprice an unknown session");
    assert!(err(&o).contains("no session 999"), "{}", err(&o));
    let r = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "GUEST1", "meterStart": 20_000, "timestamp": ts(0)}),
        )
        .await
        .expect("start answered");
    let running = r["transactionId"].as_u64().unwrap();
    let o = srv.cli(&["session", "reprice", &running.to_string()]).await;
    assert_exit(&o, 1, "reprice a running session");
    assert!(err(&o).contains("still in progress"), "{}", err(&o));
}
