//! OCPP-J behaviour against real WebSocket clients: handshake, framing and
//! validation errors, connection liveness, transactions and reconciliation.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

async fn accepted_charger(srv: &TestServer, id: &str) {
    srv.ok(&["charger", "add", id]).await;
}

async fn session(srv: &TestServer, id: u64) -> Value {
    srv.cli_json(&["session", "show", &id.to_string()]).await
}

fn start16(connector: u32, tag: &str, meter: i64, t: &str) -> Value {
    json!({"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": t})
}

#[tokio::test(flavor = "multi_thread")]
async fn subprotocol_negotiation_and_refusals() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "A").await;
    let mut cp = srv.cp("A", "ocpp1.6").await;
    assert_eq!(cp.boot16().await["status"], "Accepted");
    // Both offered: the newest wins (a 2.0.1 boot validates only under 2.0.1).
    accepted_charger(&srv, "B").await;
    let mut cp = Cp::connect(srv.addr, "B", "ocpp1.6, ocpp2.0.1").await.unwrap();
    assert_eq!(cp.boot201().await["status"], "Accepted");
    let e = connect_raw(srv.addr, "/ocpp/C", Some("ocpp1.5"), None)
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e).map(|s| s.as_u16()), Some(400));
    let e = connect_raw(srv.addr, "/ocpp/C", None, None).await.unwrap_err();
    assert_eq!(refused_status(&e).map(|s| s.as_u16()), Some(400));
    let e = connect_raw(srv.addr, "/elsewhere/C", Some("ocpp1.6"), None)
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e).map(|s| s.as_u16()), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_is_enforced_for_chargers_with_a_password() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "SEC", "--password", "correct-horse"]).await;
    let e = connect_raw(srv.addr, "/ocpp/SEC", Some("ocpp1.6"), None)
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e).map(|s| s.as_u16()), Some(401));
    let e = connect_raw(srv.addr, "/ocpp/SEC", Some("ocpp1.6"), Some("SEC:wrong-password"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(&e).map(|s| s.as_u16()), Some(401));
    assert!(
        connect_raw(srv.addr, "/ocpp/SEC", Some("ocpp1.6"), Some("SEC:correct-horse"))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_get_the_spec_callerror_and_the_connection_survives() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "F16").await;
    accepted_charger(&srv, "F201").await;
    let mut cp = srv.cp("F16", "ocpp1.6").await;
    cp.send_text(r#"[2,"bad1","Heartbeat",{"#).await;
    let f = cp.recv().await.unwrap();
    assert_eq!(
        (f[0].as_i64(), f[1].as_str(), f[2].as_str()),
        (Some(4), Some("bad1"), Some("FormationViolation"))
    );
    cp.send_text("not json at all").await;
    let f = cp.recv().await.unwrap();
    assert_eq!((f[1].as_str(), f[2].as_str()), (Some("-1"), Some("FormationViolation")));
    // 1.6 ignores unknown message types.
    cp.send_text(r#"[9,"x",{}]"#).await;
    assert!(cp.call("Heartbeat", json!({})).await.unwrap()["currentTime"].is_string());

    let mut cp = srv.cp("F201", "ocpp2.0.1").await;
    cp.send_text(r#"{"not": "an array"}"#).await;
    let f = cp.recv().await.unwrap();
    assert_eq!((f[1].as_str(), f[2].as_str()), (Some("-1"), Some("RpcFrameworkError")));
    cp.send_text(r#"[2,"m1","Heartbeat"]"#).await;
    let f = cp.recv().await.unwrap();
    assert_eq!((f[1].as_str(), f[2].as_str()), (Some("m1"), Some("FormatViolation")));
    cp.send_text(r#"[9,"m2",{}]"#).await;
    let f = cp.recv().await.unwrap();
    assert_eq!(
        (f[1].as_str(), f[2].as_str()),
        (Some("m2"), Some("MessageTypeNotSupported"))
    );
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_violations_are_classified_per_version() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "V16").await;
    accepted_charger(&srv, "V201").await;
    let mut cp = srv.cp("V16", "ocpp1.6").await;
    let err = |r: Result<Value, (String, String)>| r.unwrap_err().0;
    assert_eq!(
        err(cp.call("BootNotification", json!({"chargePointVendor": "V"})).await),
        "OccurenceConstraintViolation"
    );
    assert_eq!(
        err(cp
            .call(
                "BootNotification",
                json!({"chargePointVendor": 7, "chargePointModel": "M"})
            )
            .await),
        "TypeConstraintViolation"
    );
    let st = json!({"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"});
    assert_eq!(
        err(cp.call("StatusNotification", st).await),
        "PropertyConstraintViolation"
    );
    assert_eq!(
        err(cp.call("Heartbeat", json!({"extra": true})).await),
        "FormationViolation"
    );
    assert_eq!(err(cp.call("TeleportCar", json!({})).await), "NotImplemented");
    assert_eq!(
        err(cp.call("RemoteStartTransaction", json!({"idTag": "X"})).await),
        "NotSupported"
    );
    let (code, desc) = cp
        .call("Authorize", json!({"idTag": "x".repeat(21)}))
        .await
        .unwrap_err();
    assert_eq!(code, "PropertyConstraintViolation");
    assert!(desc.contains("idTag"), "{desc}");
    let huge = json!({"connectorId": 1, "meterValue": [{"timestamp": ts(0), "sampledValue": [{"value": "79228162514264337593543950335"}]}]});
    assert_eq!(err(cp.call("MeterValues", huge).await), "PropertyConstraintViolation");

    let mut cp = srv.cp("V201", "ocpp2.0.1").await;
    assert_eq!(
        err(cp.call("BootNotification", json!({"reason": "PowerUp"})).await),
        "OccurrenceConstraintViolation"
    );
    assert_eq!(err(cp.call("Heartbeat", json!({"x": 1})).await), "FormatViolation");
    assert_eq!(
        err(cp.call("Reset", json!({"type": "Immediate"})).await),
        "NotSupported"
    );
    assert!(
        cp.call("Heartbeat", json!({})).await.is_ok(),
        "connection survives every error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_frames_are_refused_without_dropping_the_charger() {
    let srv = TestServer::start_with(|c| c.max_message_bytes = 4096).await;
    accepted_charger(&srv, "BIG").await;
    let mut cp = srv.cp("BIG", "ocpp1.6").await;
    let huge = format!(
        r#"[2,"big1","DataTransfer",{{"vendorId":"x","data":"{}"}}]"#,
        "A".repeat(2 * 1024 * 1024)
    );
    cp.send_text(&huge).await;
    let f = cp.recv().await.expect("an answer, not a hang-up");
    assert_eq!(
        (f[1].as_str(), f[2].as_str()),
        (Some("big1"), Some("FormationViolation"))
    );
    assert!(f[3].as_str().unwrap().contains("exceeds"));
    assert!(cp.call("Heartbeat", json!({})).await.is_ok());
}

/// A booted 1.6 charger on a server that pings every second and drops a
/// connection silent for two.
async fn booted_with_short_idle_timeout(id: &str) -> (TestServer, Cp) {
    let srv = TestServer::start_with(|c| {
        c.ping_interval_s = 1;
        c.idle_timeout_s = 2;
    })
    .await;
    accepted_charger(&srv, id).await;
    let mut cp = srv.cp(id, "ocpp1.6").await;
    cp.boot16().await;
    (srv, cp)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_charger_that_keeps_talking_outlives_the_idle_timeout() {
    let (srv, mut cp) = booted_with_short_idle_timeout("TALKS").await;
    // Twice the timeout, a frame every 0.6 s: the first deadline passes with
    // the connection busy and must be moved on, not acted on.
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(cp.call("Heartbeat", json!({})).await.is_ok());
    }
    let shown = srv.cli_json(&["charger", "show", "TALKS"]).await;
    assert_eq!(shown["connected"], true, "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_socket_does_not_look_online() {
    let (srv, cp) = booted_with_short_idle_timeout("DEAD").await;
    let before = srv.cli_json(&["charger", "show", "DEAD"]).await;
    assert_eq!(before["connected"], true);
    // Stop reading: our pings go unanswered, like a charger whose link died.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = srv.cli_json(&["charger", "show", "DEAD"]).await;
    assert_eq!(after["connected"], false, "{after}");
    let seen = chrono::DateTime::parse_from_rfc3339(after["last_seen"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(seen);
    assert!(
        age >= chrono::Duration::seconds(2) && age < chrono::Duration::seconds(6),
        "last_seen {age} ago"
    );
    drop(cp);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_connection_replaces_the_first_cleanly() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "DUP").await;
    let mut first = srv.cp("DUP", "ocpp1.6").await;
    first.boot16().await;
    let mut second = srv.cp("DUP", "ocpp1.6").await;
    assert!(first.recv().await.is_none(), "the old connection is closed");
    second.boot16().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = srv.cli_json(&["charger", "show", "DUP"]).await;
    assert_eq!(
        v["connected"], true,
        "closing the old socket must not unregister the new one"
    );
    let srv2 = &srv;
    let (out, _) = tokio::join!(srv2.cli(&["charger", "reset", "DUP"]), async {
        let (id, p) = second.expect_call("Reset").await;
        assert_eq!(p["type"], "Soft");
        second.reply(&id, json!({"status": "Accepted"})).await;
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_calls_go_one_at_a_time_and_time_out() {
    let srv = TestServer::start_with(|c| c.call_timeout_s = 2).await;
    accepted_charger(&srv, "Q").await;
    let mut cp = srv.cp("Q", "ocpp1.6").await;
    cp.boot16().await;
    let a = srv.cli(&["charger", "reset", "Q"]);
    let b = srv.cli(&["charger", "trigger", "Q", "Heartbeat"]);
    let charger = async {
        let f1 = cp.recv().await.unwrap();
        assert_eq!(f1[0], 2);
        // The second call must wait until the first is answered.
        let early = tokio::time::timeout(Duration::from_millis(500), cp.recv()).await;
        assert!(
            early.is_err(),
            "second CALL sent while the first was outstanding: {early:?}"
        );
        cp.reply(f1[1].as_str().unwrap(), json!({"status": "Accepted"})).await;
        let f2 = cp.recv().await.unwrap();
        assert_eq!(f2[0], 2);
        assert_ne!(f1[2], f2[2]);
        cp.reply(f2[1].as_str().unwrap(), json!({"status": "Accepted"})).await;
    };
    let (oa, ob, _) = tokio::join!(a, b, charger);
    assert!(oa.status.success() && ob.status.success());
    // Unanswered: the CLI gets a timeout and exit code 1.
    let (out, _) = tokio::join!(srv.cli(&["charger", "reset", "Q"]), cp.expect_call("Reset"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer"));
}

#[tokio::test(flavor = "multi_thread")]
async fn v16_transactions_are_idempotent_and_keep_charger_time() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "T16").await;
    srv.ok(&["token", "add", "TAG"]).await;
    let mut cp = srv.cp("T16", "ocpp1.6").await;
    cp.boot16().await;
    // Replayed from the charger's offline queue, three hours late.
    let t0 = ts(-180);
    let r1 = cp.call("StartTransaction", start16(1, "TAG", 1000, &t0)).await.unwrap();
    let r2 = cp.call("StartTransaction", start16(1, "TAG", 1000, &t0)).await.unwrap();
    assert_eq!(r1["idTagInfo"]["status"], "Accepted");
    assert_eq!(
        r1["transactionId"], r2["transactionId"],
        "a retried start is the same session"
    );
    let id = r1["transactionId"].as_u64().unwrap();
    let mv = json!({"connectorId": 1, "transactionId": id, "meterValue": [{"timestamp": ts(-170), "sampledValue": [
        {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "16.1", "measurand": "Current.Import", "phase": "L1", "unit": "A"}
    ]}]});
    cp.call("MeterValues", mv).await.unwrap();
    let stop = json!({"transactionId": id, "meterStop": 4500, "timestamp": ts(-120), "reason": "EVDisconnected",
        "transactionData": [{"timestamp": ts(-120), "sampledValue": [{"value": "4500"}]}]});
    assert_eq!(cp.call("StopTransaction", stop.clone()).await.unwrap(), json!({}));
    cp.call("StopTransaction", stop).await.unwrap();
    let s = session(&srv, id).await;
    assert_eq!(s["status"], "completed");
    assert_eq!(s["energy_wh"], 3500);
    assert_eq!(s["started_at"].as_str().unwrap()[..16], t0[..16], "charger time kept");
    assert_eq!(s["offline"], true);
    assert_eq!(
        s["samples"], 4,
        "the retried stop must not store its transactionData twice"
    );
    let mvs = s["meter_values"].as_array().unwrap();
    let power = mvs.iter().find(|m| m["measurand"] == "Power.Active.Import").unwrap();
    assert_eq!(
        (power["unit"].as_str(), power["value_milli"].as_i64()),
        (Some("W"), Some(7_200_000))
    );
    let energy = mvs
        .iter()
        .find(|m| m["measurand"] == "Energy.Active.Import.Register")
        .unwrap();
    assert_eq!(
        (energy["unit"].as_str(), energy["value_milli"].as_i64()),
        (Some("Wh"), Some(1_500_000))
    );
    // The sampled value as sent (in kWh) stays in the journal, not in the sample.
    assert!(energy.get("raw").is_none());
    let logs = srv.cli(&["charger", "logs", "T16", "--limit", "1000"]).await;
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.lines()
            .any(|l| l.contains("MeterValues") && l.contains(r#""unit":"kWh""#)),
        "{logs}"
    );
    let list = srv.cli_json(&["session", "list"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let row = &list[0];
    for k in [
        "id",
        "charger",
        "evse",
        "token",
        "started_at",
        "stopped_at",
        "energy_wh",
        "status",
    ] {
        assert!(row.get(k).is_some(), "session list lacks {k}");
    }
    // A stop for a transaction we never issued is answered and recorded.
    let orphan = json!({"transactionId": 999, "meterStop": 1, "timestamp": ts(0)});
    assert!(cp.call("StopTransaction", orphan).await.is_ok());
    let events = srv.cli_json(&["events"]).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "unknown_transaction"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v16_token_in_use_elsewhere_is_concurrent_and_unknown_is_invalid() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "A1").await;
    accepted_charger(&srv, "A2").await;
    srv.ok(&["token", "add", "ONE"]).await;
    let mut a = srv.cp("A1", "ocpp1.6").await;
    let mut b = srv.cp("A2", "ocpp1.6").await;
    a.boot16().await;
    b.boot16().await;
    assert_eq!(
        a.call("Authorize", json!({"idTag": "NOPE"})).await.unwrap()["idTagInfo"]["status"],
        "Invalid"
    );
    a.call("StartTransaction", start16(1, "ONE", 0, &ts(0))).await.unwrap();
    let r = b.call("StartTransaction", start16(1, "ONE", 0, &ts(0))).await.unwrap();
    assert_eq!(r["idTagInfo"]["status"], "ConcurrentTx");
    assert_eq!(
        b.call("Authorize", json!({"idTag": "ONE"})).await.unwrap()["idTagInfo"]["status"],
        "ConcurrentTx"
    );
    assert_eq!(
        a.call("Authorize", json!({"idTag": "ONE"})).await.unwrap()["idTagInfo"]["status"],
        "Accepted"
    );
}

fn tx_event(kind: &str, seq: u64, txid: &str, wh: i64, extra: Value) -> Value {
    let mut v = json!({
        "eventType": kind, "timestamp": ts(0), "triggerReason": "MeterValuePeriodic", "seqNo": seq,
        "transactionInfo": {"transactionId": txid},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": ts(0), "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}]}]
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn v201_transaction_events_make_one_session() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "T201").await;
    srv.ok(&["token", "add", "TAG2"]).await;
    let mut cp = srv.cp("T201", "ocpp2.0.1").await;
    cp.boot201().await;
    let tok = json!({"idToken": {"idToken": "TAG2", "type": "ISO14443"}});
    let started = tx_event("Started", 0, "tx-a", 10_000, tok.clone());
    assert_eq!(
        cp.call("TransactionEvent", started.clone()).await.unwrap()["idTokenInfo"]["status"],
        "Accepted"
    );
    cp.call("TransactionEvent", started).await.unwrap();
    cp.call("TransactionEvent", tx_event("Updated", 1, "tx-a", 11_000, json!({})))
        .await
        .unwrap();
    cp.call("TransactionEvent", tx_event("Updated", 1, "tx-a", 11_000, json!({})))
        .await
        .unwrap();
    let signed = json!({"meterValue": [{"timestamp": ts(0), "sampledValue": [{
        "value": 12500, "measurand": "Energy.Active.Import.Register", "context": "Transaction.End",
        "signedMeterValue": {"signedMeterData": "OCMF|{}|{}", "signingMethod": "ECDSA-secp256r1-SHA256", "encodingMethod": "OCMF", "publicKey": "3059"}
    }, {"value": 12.5, "measurand": "Energy.Active.Import.Register", "context": "Transaction.End", "unitOfMeasure": {"unit": "kWh"}}]}],
        "transactionInfo": {"transactionId": "tx-a", "stoppedReason": "EVDisconnected"}});
    cp.call("TransactionEvent", tx_event("Ended", 2, "tx-a", 0, signed))
        .await
        .unwrap();
    let list = srv.cli_json(&["session", "list", "--charger", "T201"]).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "retries must not create sessions: {list}"
    );
    let s = session(&srv, list[0]["id"].as_u64().unwrap()).await;
    assert_eq!(
        (s["status"].as_str(), s["energy_wh"].as_i64()),
        (Some("completed"), Some(2500))
    );
    assert_eq!(s["stop_reason"], "EVDisconnected");
    assert_eq!(s["transaction_id"], "tx-a");
    let signed = s["meter_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| !m["signed"].is_null())
        .expect("signed value kept");
    assert_eq!(signed["signed"]["data"], "OCMF|{}|{}");
    // An Ended for a transaction we never saw starting still becomes a record.
    cp.call("TransactionEvent", tx_event("Ended", 5, "tx-lost", 900, json!({})))
        .await
        .unwrap();
    let lost = srv.cli_json(&["session", "list", "--charger", "T201"]).await;
    assert_eq!(lost.as_array().unwrap().len(), 2);
    assert_eq!(lost[0]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn v16_reboot_reconciles_on_evidence_and_the_charger_has_the_last_word() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "R16").await;
    srv.ok(&["token", "add", "TAG"]).await;
    let mut cp = srv.cp("R16", "ocpp1.6").await;
    cp.boot16().await;
    let r = cp
        .call("StartTransaction", start16(2, "TAG", 100, &ts(-30)))
        .await
        .unwrap();
    let id = r["transactionId"].as_u64().unwrap();
    let mv = json!({"connectorId": 2, "transactionId": id, "meterValue": [{"timestamp": ts(-10), "sampledValue": [{"value": "900"}]}]});
    cp.call("MeterValues", mv).await.unwrap();
    // Reboot: a boot alone is no proof that the session ended.
    cp.boot16().await;
    let (mid, p) = cp.expect_call("TriggerMessage").await;
    assert_eq!(
        (p["requestedMessage"].as_str(), p["connectorId"].as_u64()),
        (Some("StatusNotification"), Some(2))
    );
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    assert_eq!(session(&srv, id).await["status"], "active");
    let st = json!({"connectorId": 2, "errorCode": "NoError", "status": "Available", "timestamp": ts(0)});
    cp.call("StatusNotification", st).await.unwrap();
    let s = session(&srv, id).await;
    assert_eq!(s["status"], "completed");
    assert_eq!(s["closed_by"]["by"], "inference");
    assert_eq!(s["energy_wh"], 800);
    // The charger's own StopTransaction arrives later and wins.
    let stop = json!({"transactionId": id, "meterStop": 1000, "timestamp": ts(-5), "reason": "PowerLoss"});
    cp.call("StopTransaction", stop).await.unwrap();
    let s = session(&srv, id).await;
    assert_eq!(
        (s["closed_by"]["by"].as_str(), s["energy_wh"].as_i64()),
        (Some("charger"), Some(900))
    );
    assert!(
        s["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("replaced the inferred end"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_transaction_on_the_same_connector_closes_the_zombie() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "Z").await;
    srv.ok(&["token", "add", "TAG"]).await;
    let mut cp = srv.cp("Z", "ocpp1.6").await;
    cp.boot16().await;
    let old = cp
        .call("StartTransaction", start16(1, "TAG", 0, &ts(-60)))
        .await
        .unwrap()["transactionId"]
        .as_u64()
        .unwrap();
    let new = cp
        .call("StartTransaction", start16(1, "TAG", 50, &ts(-1)))
        .await
        .unwrap();
    assert_eq!(
        new["idTagInfo"]["status"], "Accepted",
        "the zombie must not make the token look busy"
    );
    let s = session(&srv, old).await;
    assert_eq!(
        (s["status"].as_str(), s["closed_by"]["by"].as_str()),
        (Some("completed"), Some("inference"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn v201_reboot_asks_for_transaction_status() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "R201").await;
    let mut cp = srv.cp("R201", "ocpp2.0.1").await;
    cp.boot201().await;
    cp.call("TransactionEvent", tx_event("Started", 0, "keep", 0, json!({})))
        .await
        .unwrap();
    let mut second = tx_event("Started", 0, "gone", 0, json!({}));
    second["evse"] = json!({"id": 2, "connectorId": 1});
    cp.call("TransactionEvent", second).await.unwrap();
    cp.boot201().await;
    for _ in 0..2 {
        let (mid, p) = cp.expect_call("GetTransactionStatus").await;
        let ongoing = p["transactionId"] == "keep";
        cp.reply(&mid, json!({"ongoingIndicator": ongoing, "messagesInQueue": false}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = srv.cli_json(&["session", "list", "--charger", "R201"]).await;
    let by_tx = |t: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["transaction_id"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(by_tx("keep")["status"], "active");
    assert_eq!(by_tx("gone")["status"], "completed");
    assert_eq!(by_tx("gone")["closed_by"]["by"], "inference");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_start_and_stop_reach_the_charger() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "RS").await;
    srv.ok(&["token", "add", "TAG"]).await;
    let mut cp = srv.cp("RS", "ocpp1.6").await;
    cp.boot16().await;
    let start_args = ["session", "start", "RS", "--token", "TAG", "--evse", "1"];
    let (out, _) = tokio::join!(srv.cli(&start_args), async {
        let (mid, p) = cp.expect_call("RemoteStartTransaction").await;
        assert_eq!((p["idTag"].as_str(), p["connectorId"].as_u64()), (Some("TAG"), Some(1)));
        cp.reply(&mid, json!({"status": "Rejected"})).await;
    });
    assert_eq!(out.status.code(), Some(1), "a Rejected answer is a failed operation");
    let id = cp.call("StartTransaction", start16(1, "TAG", 0, &ts(0))).await.unwrap()["transactionId"]
        .as_u64()
        .unwrap();
    let id_text = id.to_string();
    let stop_args = ["session", "stop", id_text.as_str()];
    let (out, _) = tokio::join!(srv.cli(&stop_args), async {
        let (mid, p) = cp.expect_call("RemoteStopTransaction").await;
        assert_eq!(p["transactionId"].as_u64(), Some(id));
        cp.reply(&mid, json!({"status": "Accepted"})).await;
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn ev_charging_needs_and_the_operator_set_a_sessions_target() {
    let srv = TestServer::start().await;
    accepted_charger(&srv, "N201").await;
    srv.ok(&["token", "add", "TAGN"]).await;
    let mut cp = srv.cp("N201", "ocpp2.0.1").await;
    cp.boot201().await;
    let tok = json!({"idToken": {"idToken": "TAGN", "type": "ISO14443"}});
    cp.call("TransactionEvent", tx_event("Started", 0, "tx-n", 10_000, tok))
        .await
        .unwrap();
    let needs = json!({"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase",
        "departureTime": "2026-11-23T17:30:00Z",
        "acChargingParameters": {"energyAmount": 22000, "evMinCurrent": 6, "evMaxCurrent": 16, "evMaxVoltage": 400}}});
    assert_eq!(
        cp.call("NotifyEVChargingNeeds", needs).await.unwrap()["status"],
        "Accepted"
    );
    let list = srv.cli_json(&["session", "list"]).await;
    let s = &list[0];
    assert_eq!(s["departure"], "2026-11-23T17:30:00Z", "{s}");
    assert_eq!(s["energy_target_wh"], 22000);
    // The operator corrects it; a bad value is refused naming the field.
    let id = s["id"].as_u64().unwrap().to_string();
    srv.ok(&["session", "set-target", &id, "--energy", "30kWh", "--priority", "2"])
        .await;
    let out = srv.cli(&["session", "set-target", &id, "--energy", "0"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("energy"));
    let s = srv.cli_json(&["session", "show", &id]).await;
    assert_eq!(s["energy_target_wh"], 30000);
    assert_eq!(s["priority"], 2);
    assert_eq!(s["departure"], "2026-11-23T17:30:00Z");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ocpp_meter_device_reports_a_circuits_unmanaged_load() {
    let srv = TestServer::start_with(|c| c.dlm.tick_ms = 200).await;
    srv.ok(&["circuit", "add", "grid", "--max-current", "100"]).await;
    accepted_charger(&srv, "METER-1").await;
    srv.ok(&[
        "meter",
        "bind",
        "grid",
        "ocpp",
        "--charger",
        "METER-1",
        "--measures",
        "unmanaged",
    ])
    .await;
    let mut cp = srv.cp("METER-1", "ocpp1.6").await;
    cp.boot16().await;
    let phase =
        |p: &str, a: f64| json!({"value": a.to_string(), "measurand": "Current.Import", "phase": p, "unit": "A"});
    let mv = json!({"connectorId": 0, "meterValue": [{"timestamp": ts(0),
        "sampledValue": [phase("L1", 31.5), phase("L2", 20.0), phase("L3", 12.0)]}]});
    cp.call("MeterValues", mv).await.unwrap();
    let mut seen = Value::Null;
    for _ in 0..40 {
        let v = srv.cli_json(&["dlm", "status"]).await;
        seen = v["sites"][0]["circuits"][0]["unmanaged"].clone();
        if seen == json!([31.5, 20.0, 12.0]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let all = srv.cli_json(&["dlm", "status"]).await;
    panic!("the meter device's reading never reached load management: {seen}\n{all:#}");
}
