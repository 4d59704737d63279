//! Charger operations end to end: local authorization lists, reservations,
//! availability, triggers, transaction status, display messages and
//! running costs, against the real server with raw OCPP-J charge points
//! (scripted answers, including the refusals) and the simulator.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use voltyard::server::UnknownChargers;
use voltyard::sim::{Options, Scenario, Simulation};

/// Wait for the server's CALL `action`, answer it with `reply`, return its payload.
async fn answer(cp: &mut Cp, action: &str, reply: Value) -> Value {
    let (id, p) = cp.expect_call(action).await;
    cp.reply(&id, reply).await;
    p
}

/// No CALL from the server for `ms` milliseconds.
async fn quiet(cp: &mut Cp, ms: u64) -> Option<Value> {
    if let Some((_, a, p)) = cp.inbox.first() {
        return Some(json!([a, p]));
    }
    match tokio::time::timeout(Duration::from_millis(ms), cp.recv()).await {
        Ok(Some(f)) => Some(f),
        _ => None,
    }
}

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.call_timeout_s = 5;
    })
    .await
}

async fn cp16(srv: &TestServer, id: &str) -> Cp {
    let mut cp = srv.cp(id, "ocpp1.6").await;
    assert_eq!(cp.boot16().await["status"], "Accepted");
    cp
}

async fn cp201(srv: &TestServer, id: &str) -> Cp {
    let mut cp = srv.cp(id, "ocpp2.0.1").await;
    assert_eq!(cp.boot201().await["status"], "Accepted");
    cp
}

fn tags(p: &Value, field: &str) -> Vec<(String, Option<String>)> {
    p["localAuthorizationList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let (uid, status) = if field == "idTag" {
                (&e["idTag"], &e["idTagInfo"]["status"])
            } else {
                (&e["idToken"]["idToken"], &e["idTokenInfo"]["status"])
            };
            (uid.as_str().unwrap().to_string(), status.as_str().map(str::to_string))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_list_1_6_is_split_kept_in_sync_and_resent_in_full_after_a_mismatch() {
    let srv = server().await;
    for t in ["A", "B"] {
        srv.ok(&["token", "add", t]).await;
    }
    let mut cp = cp16(&srv, "LL16").await;
    let sync = srv.cli(&["charger", "local-list", "sync", "LL16", "--json"]);
    let script = async {
        answer(
            &mut cp,
            "GetConfiguration",
            json!({"configurationKey": [
                {"key": "LocalAuthListMaxLength", "readonly": true, "value": "10"},
                {"key": "SendLocalListMaxLength", "readonly": true, "value": "1"}]}),
        )
        .await;
        answer(&mut cp, "GetLocalListVersion", json!({"listVersion": 0})).await;
        let first = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
        let second = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
        (first, second)
    };
    let (o, (first, second)) = tokio::join!(sync, script);
    assert_exit(&o, 0, "local-list sync");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["update"], "full", "{report}");
    assert_eq!(
        report["messages"], 2,
        "one entry per message (SendLocalListMaxLength 1)"
    );
    assert_eq!(first["updateType"], "Full");
    assert_eq!(first["listVersion"], 1);
    assert_eq!(tags(&first, "idTag"), [("A".into(), Some("Accepted".into()))]);
    assert_eq!(second["updateType"], "Differential");
    assert_eq!(second["listVersion"], 2);
    assert_eq!(tags(&second, "idTag"), [("B".into(), Some("Accepted".into()))]);

    // A blocked token reaches the connected charger as a differential update.
    srv.ok(&["token", "block", "A"]).await;
    answer(&mut cp, "GetLocalListVersion", json!({"listVersion": 2})).await;
    let diff = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(diff["updateType"], "Differential", "{diff}");
    assert_eq!(diff["listVersion"], 3);
    assert_eq!(tags(&diff, "idTag"), [("A".into(), Some("Blocked".into()))]);

    // A removed token is deleted (an entry without idTagInfo).
    srv.ok(&["token", "remove", "B"]).await;
    answer(&mut cp, "GetLocalListVersion", json!({"listVersion": 3})).await;
    let diff = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(tags(&diff, "idTag"), [("B".into(), None)]);

    // The charger refuses a differential (VersionMismatch): a full list follows.
    srv.ok(&["token", "add", "C"]).await;
    answer(&mut cp, "GetLocalListVersion", json!({"listVersion": 4})).await;
    let refused = answer(&mut cp, "SendLocalList", json!({"status": "VersionMismatch"})).await;
    assert_eq!(refused["updateType"], "Differential");
    let full = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(full["updateType"], "Full", "{full}");
    assert_eq!(tags(&full, "idTag"), [("A".into(), Some("Blocked".into()))]);
    let rest = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(tags(&rest, "idTag"), [("C".into(), Some("Accepted".into()))]);
    let version = rest["listVersion"].as_i64().unwrap();

    // Reconnecting with a stale version gets the full list again.
    drop(cp);
    let mut cp = cp16(&srv, "LL16").await;
    answer(&mut cp, "GetLocalListVersion", json!({"listVersion": 1})).await;
    let again = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(again["updateType"], "Full");
    assert!(again["listVersion"].as_i64().unwrap() > version);
    answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;

    // Up to date after a reconnect: nothing is sent.
    let v = srv.cli(&["charger", "local-list", "version", "LL16", "--json"]);
    let (o, ()) = tokio::join!(v, async {
        let (id, _) = cp.expect_call("GetLocalListVersion").await;
        cp.reply(&id, json!({"listVersion": 7})).await;
    });
    assert_exit(&o, 0, "local-list version");
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["version"], 7);
    assert_eq!(shown["managed"], true);
    assert_eq!(shown["entries"], 2, "{shown}");

    // A burst of token changes while a sync waits for the charger: one more
    // sync at most, not one per change, and every token arrives.
    srv.ok(&["token", "add", "D"]).await;
    let (id, _) = cp.expect_call("GetLocalListVersion").await;
    srv.ok(&["token", "add", "E"]).await;
    srv.ok(&["token", "add", "F"]).await;
    cp.reply(&id, json!({"listVersion": version + 2})).await;
    let mut asked = 1;
    let mut held = version + 2;
    let mut arrived = Vec::new();
    while let Some(f) = quiet(&mut cp, 1500).await {
        if f[0] == 2 && f[2] == "GetLocalListVersion" {
            asked += 1;
            cp.reply(f[1].as_str().unwrap(), json!({"listVersion": held})).await;
        } else if f[0] == 2 && f[2] == "SendLocalList" {
            assert_eq!(f[3]["updateType"], "Differential", "{f}");
            held = f[3]["listVersion"].as_i64().unwrap();
            arrived.extend(tags(&f[3], "idTag").into_iter().map(|(uid, _)| uid));
            cp.reply(f[1].as_str().unwrap(), json!({"status": "Accepted"})).await;
        }
    }
    arrived.sort();
    assert_eq!(arrived, ["D", "E", "F"]);
    assert!(asked <= 2, "{asked} syncs for 3 token changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_list_2_0_1_respects_items_and_bytes_and_a_charger_without_lists_is_remembered() {
    let srv = server().await;
    for n in 0..5 {
        srv.ok(&["token", "add", &format!("TOKEN-{n:02}")]).await;
    }
    let mut cp = cp201(&srv, "LL201").await;
    let sync = srv.cli(&["charger", "local-list", "sync", "LL201", "--json"]);
    let script = async {
        let vars = |name: &str, v: &str| {
            json!({"attributeStatus": "Accepted", "attributeValue": v,
                   "component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": name}})
        };
        answer(
            &mut cp,
            "GetVariables",
            json!({"getVariableResult": [vars("Entries", "100"), vars("ItemsPerMessage", "3"), vars("BytesPerMessage", "300")]}),
        )
        .await;
        answer(&mut cp, "GetLocalListVersion", json!({"versionNumber": 0})).await;
        let mut sent: Vec<Value> = Vec::new();
        while sent.iter().map(|p| tags(p, "idToken").len()).sum::<usize>() < 5 && sent.len() < 6 {
            sent.push(answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await);
        }
        sent
    };
    let (o, sent) = tokio::join!(sync, script);
    assert_exit(&o, 0, "local-list sync 2.0.1");
    let total: usize = sent.iter().map(|p| tags(p, "idToken").len()).sum();
    assert_eq!(total, 5);
    for p in &sent {
        assert!(tags(p, "idToken").len() <= 3, "ItemsPerMessage: {p}");
        let bytes = json!([2, "vy100", "SendLocalList", p]).to_string().len();
        assert!(bytes <= 300, "BytesPerMessage: {bytes} bytes in {p}");
        assert_eq!(p["localAuthorizationList"][0]["idToken"]["type"], "ISO14443");
    }
    assert_eq!(sent[0]["updateType"], "Full");
    // Three entries would pass ItemsPerMessage but not BytesPerMessage.
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[2]["versionNumber"].as_i64() > sent[0]["versionNumber"].as_i64());

    // A charger without local lists answers NotSupported; it is not asked again on token changes.
    let mut other = cp201(&srv, "NOLIST").await;
    let sync = srv.cli(&["charger", "local-list", "sync", "NOLIST"]);
    let script = async {
        let (id, _) = other.expect_call("GetVariables").await;
        other.reply(&id, json!({"getVariableResult": []})).await;
        let (id, _) = other.expect_call("GetLocalListVersion").await;
        other
            .send_text(&json!([4, id, "NotSupported", "no local list here", {}]).to_string())
            .await;
    };
    let (o, ()) = tokio::join!(sync, script);
    assert_exit(&o, 1, "sync to a charger without local lists");
    assert!(err(&o).contains("does not support local lists"), "{}", err(&o));
    srv.ok(&["token", "add", "NEW"]).await;
    // The managed charger gets the new token; the other one hears nothing.
    answer(
        &mut cp,
        "GetLocalListVersion",
        json!({"versionNumber": sent[2]["versionNumber"]}),
    )
    .await;
    let diff = answer(&mut cp, "SendLocalList", json!({"status": "Accepted"})).await;
    assert_eq!(tags(&diff, "idToken"), [("NEW".into(), Some("Accepted".into()))]);
    assert_eq!(quiet(&mut other, 1500).await, None, "NotSupported must be remembered");

    // ClearCache on both versions.
    let (o, _) = tokio::join!(srv.cli(&["charger", "clear-cache", "LL201"]), async {
        answer(&mut cp, "ClearCache", json!({"status": "Accepted"})).await
    });
    assert_exit(&o, 0, "clear-cache");
    let mut c16 = cp16(&srv, "CC16").await;
    let (o, _) = tokio::join!(srv.cli(&["charger", "clear-cache", "CC16"]), async {
        answer(&mut c16, "ClearCache", json!({"status": "Rejected"})).await
    });
    assert_exit(&o, 1, "clear-cache refused");
}

async fn status16(cp: &mut Cp, connector: u32, status: &str) {
    cp.call(
        "StatusNotification",
        json!({"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": ts(0)}),
    )
    .await
    .expect("status answered");
}

async fn start16(cp: &mut Cp, connector: u32, tag: &str, reservation: Option<u64>) -> Value {
    let mut p = json!({"connectorId": connector, "idTag": tag, "meterStart": 100, "timestamp": ts(0)});
    if let Some(r) = reservation {
        p["reservationId"] = json!(r);
    }
    cp.call("StartTransaction", p).await.expect("start answered")
}

async fn reservations(srv: &TestServer) -> Vec<Value> {
    srv.cli_json(&["reservation", "list"])
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_1_6_refuse_other_tokens_expire_and_are_used() {
    let srv = server().await;
    for t in ["R", "X"] {
        srv.ok(&["token", "add", t]).await;
    }
    let mut cp = cp16(&srv, "RS16").await;
    status16(&mut cp, 1, "Available").await;
    status16(&mut cp, 2, "Available").await;

    let add = srv.cli(&[
        "reservation",
        "add",
        "RS16",
        "--token",
        "R",
        "--connector",
        "1",
        "--json",
    ]);
    let (o, req) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})));
    assert_exit(&o, 0, "reservation add");
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["status"], "accepted", "{r}");
    assert_eq!(req["connectorId"], 1);
    assert_eq!(req["idTag"], "R");
    assert_eq!(req["reservationId"], r["id"]);

    // Another token: authorized (connector 2 is free) but refused on connector 1.
    let a = cp.call("Authorize", json!({"idTag": "X"})).await.unwrap();
    assert_eq!(a["idTagInfo"]["status"], "Accepted");
    let s = start16(&mut cp, 1, "X", None).await;
    assert_eq!(
        s["idTagInfo"]["status"], "Invalid",
        "a reserved connector refuses another token: {s}"
    );
    // With connector 2 busy, nothing is left for X: Authorize refuses it too.
    let s2 = start16(&mut cp, 2, "X", None).await;
    assert_eq!(s2["idTagInfo"]["status"], "Accepted");
    let a = cp.call("Authorize", json!({"idTag": "X"})).await.unwrap();
    assert_eq!(a["idTagInfo"]["status"], "Invalid");
    cp.call(
        "StopTransaction",
        json!({"transactionId": s2["transactionId"], "meterStop": 200, "timestamp": ts(0)}),
    )
    .await
    .unwrap();

    // The reservation's own token uses it.
    let s = start16(&mut cp, 1, "R", r["id"].as_u64()).await;
    assert_eq!(s["idTagInfo"]["status"], "Accepted");
    let used = reservations(&srv).await;
    assert_eq!(used[0]["status"], "used", "{used:?}");
    assert_eq!(used[0]["session"], s["transactionId"]);

    // An expired reservation no longer holds its connector.
    let add = srv.cli(&[
        "reservation",
        "add",
        "RS16",
        "--token",
        "R",
        "--connector",
        "2",
        "--expires",
        "2s",
    ]);
    let (o, _) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})));
    assert_exit(&o, 0, "short reservation");
    let s = start16(&mut cp, 2, "X", None).await;
    assert_eq!(s["idTagInfo"]["status"], "Invalid");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(reservations(&srv).await[0]["status"], "expired");
    let s = start16(&mut cp, 2, "X", None).await;
    assert_eq!(
        s["idTagInfo"]["status"], "Accepted",
        "expired reservations free the connector"
    );

    // Refused by the charger: stored as rejected, exit 1.
    let add = srv.cli(&["reservation", "add", "RS16", "--token", "R"]);
    let (o, req) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Occupied"})));
    assert_exit(&o, 1, "occupied");
    assert_eq!(req["connectorId"], 0, "no connector: any (0)");
    assert_eq!(reservations(&srv).await[0]["status"], "rejected");

    // Cancelled.
    let add = srv.cli(&[
        "reservation",
        "add",
        "RS16",
        "--token",
        "R",
        "--connector",
        "1",
        "--json",
    ]);
    let (o, _) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})));
    let id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["id"].to_string();
    let args = ["reservation", "cancel", id.as_str()];
    let cancel = srv.cli(&args);
    let (o, req) = tokio::join!(
        cancel,
        answer(&mut cp, "CancelReservation", json!({"status": "Accepted"}))
    );
    assert_exit(&o, 0, "cancel");
    assert_eq!(req["reservationId"].to_string(), id);
    assert_eq!(reservations(&srv).await[0]["status"], "cancelled");
    let o = srv.cli(&["reservation", "cancel", &id]).await;
    assert_exit(&o, 1, "cancel twice");
    let ids: Vec<u64> = reservations(&srv)
        .await
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "reservation ids are unique");
}

async fn tx_event(
    cp: &mut Cp,
    kind: &str,
    tx: &str,
    evse: u32,
    token: Option<&str>,
    reservation: Option<u64>,
) -> Value {
    let mut p = json!({"eventType": kind, "timestamp": ts(0), "triggerReason": "Authorized", "seqNo": 0,
                       "transactionInfo": {"transactionId": tx}, "evse": {"id": evse, "connectorId": 1}});
    if let Some(t) = token {
        p["idToken"] = json!({"idToken": t, "type": "ISO14443"});
    }
    if let Some(r) = reservation {
        p["reservationId"] = json!(r);
    }
    cp.call("TransactionEvent", p).await.expect("event answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_2_0_1_refuse_other_tokens_and_follow_status_updates() {
    let srv = server().await;
    for t in ["R", "X"] {
        srv.ok(&["token", "add", t]).await;
    }
    let mut cp = cp201(&srv, "RS201").await;
    let add = srv.cli(&["reservation", "add", "RS201", "--token", "R", "--evse", "1", "--json"]);
    let (o, req) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})));
    assert_exit(&o, 0, "reserve");
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(req["evseId"], 1);
    assert_eq!(
        req["idToken"],
        json!({"idToken": "R", "type": "ISO14443"}),
        "the token's own type"
    );
    assert_eq!(req["id"], r["id"]);

    let refused = tx_event(&mut cp, "Started", "T-1", 1, Some("X"), None).await;
    assert_eq!(refused["idTokenInfo"]["status"], "NotAtThisTime", "{refused}");
    tx_event(&mut cp, "Ended", "T-1", 1, None, None).await;

    // The charger reports the reservation gone.
    cp.call(
        "ReservationStatusUpdate",
        json!({"reservationId": r["id"], "reservationUpdateStatus": "Expired"}),
    )
    .await
    .unwrap();
    assert_eq!(reservations(&srv).await[0]["status"], "expired");
    let ok = tx_event(&mut cp, "Started", "T-2", 1, Some("X"), None).await;
    assert_eq!(ok["idTokenInfo"]["status"], "Accepted");
    tx_event(&mut cp, "Ended", "T-2", 1, None, None).await;

    let add = srv.cli(&["reservation", "add", "RS201", "--token", "R", "--evse", "1", "--json"]);
    let (o, _) = tokio::join!(add, answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})));
    let id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["id"]
        .as_u64()
        .unwrap();
    let used = tx_event(&mut cp, "Started", "T-3", 1, Some("R"), Some(id)).await;
    assert_eq!(used["idTokenInfo"]["status"], "Accepted");
    assert_eq!(reservations(&srv).await[0]["status"], "used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_availability_becomes_effective_when_the_session_ends() {
    let srv = server().await;
    srv.ok(&["token", "add", "A"]).await;
    let mut cp = cp16(&srv, "AV16").await;
    status16(&mut cp, 1, "Charging").await;
    let s = start16(&mut cp, 1, "A", None).await;
    let set = srv.cli(&["charger", "availability", "AV16", "inoperative", "--connector", "1"]);
    let (o, req) = tokio::join!(
        set,
        answer(&mut cp, "ChangeAvailability", json!({"status": "Scheduled"}))
    );
    assert_exit(&o, 0, "Scheduled is a success");
    assert!(out(&o).contains("Scheduled"), "{}", out(&o));
    assert!(out(&o).contains("when its running transaction ends"), "{}", out(&o));
    assert_eq!(req["type"], "Inoperative");
    let shown = srv.cli_json(&["charger", "availability", "AV16"]).await;
    assert_eq!(shown["requested"][0]["state"], "scheduled", "{shown}");
    assert_eq!(shown["requested"][0]["operative"], false);

    cp.call(
        "StopTransaction",
        json!({"transactionId": s["transactionId"], "meterStop": 500, "timestamp": ts(0)}),
    )
    .await
    .unwrap();
    status16(&mut cp, 1, "Unavailable").await;
    let shown = srv.cli_json(&["charger", "availability", "AV16"]).await;
    assert_eq!(shown["requested"][0]["state"], "effective", "{shown}");

    // Accepted is pending until the charger reports the new status.
    let set = srv.cli(&["charger", "availability", "AV16", "operative"]);
    let (o, _) = tokio::join!(
        set,
        answer(&mut cp, "ChangeAvailability", json!({"status": "Accepted"}))
    );
    assert_exit(&o, 0, "operative");
    let shown = srv.cli_json(&["charger", "availability", "AV16"]).await;
    assert_eq!(
        shown["requested"].as_array().unwrap().len(),
        1,
        "the charger-wide request replaces: {shown}"
    );
    assert_eq!(shown["requested"][0]["state"], "pending");
    status16(&mut cp, 1, "Available").await;
    let shown = srv.cli_json(&["charger", "availability", "AV16"]).await;
    assert_eq!(shown["requested"][0]["state"], "effective", "{shown}");

    let set = srv.cli(&["charger", "availability", "AV16", "inoperative"]);
    let (o, _) = tokio::join!(
        set,
        answer(&mut cp, "ChangeAvailability", json!({"status": "Rejected"}))
    );
    assert_exit(&o, 1, "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_use_the_extended_message_on_1_6_and_name_the_valid_kinds() {
    let srv = server().await;
    let mut cp = cp16(&srv, "TR16").await;
    let t = srv.cli(&["charger", "trigger", "TR16", "LogStatusNotification"]);
    let (o, req) = tokio::join!(
        t,
        answer(&mut cp, "ExtendedTriggerMessage", json!({"status": "Accepted"}))
    );
    assert_exit(&o, 0, "extended trigger");
    assert_eq!(req["requestedMessage"], "LogStatusNotification");
    let t = srv.cli(&["charger", "trigger", "TR16", "DiagnosticsStatusNotification"]);
    let (o, _) = tokio::join!(
        t,
        answer(&mut cp, "TriggerMessage", json!({"status": "NotImplemented"}))
    );
    assert_exit(&o, 1, "not implemented");
    let o = srv.cli(&["charger", "trigger", "TR16", "TransactionEvent"]).await;
    assert_exit(&o, 2, "a 2.0.1 kind on 1.6");
    assert!(err(&o).contains("SignChargePointCertificate"), "{}", err(&o));

    let mut c2 = cp201(&srv, "TR201").await;
    let t = srv.cli(&["charger", "trigger", "TR201", "SignV2GCertificate"]);
    let (o, req) = tokio::join!(t, answer(&mut c2, "TriggerMessage", json!({"status": "Rejected"})));
    assert_exit(&o, 1, "rejected trigger");
    assert_eq!(req["requestedMessage"], "SignV2GCertificate");
    let o = srv
        .cli(&["charger", "trigger", "TR201", "DiagnosticsStatusNotification"])
        .await;
    assert_exit(&o, 2, "a 1.6 kind on 2.0.1");
    assert!(err(&o).contains("PublishFirmwareStatusNotification"), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_status_asks_by_session_or_transaction_id_and_is_2_0_1_only() {
    let srv = server().await;
    srv.ok(&["token", "add", "A"]).await;
    let mut cp = cp201(&srv, "TS201").await;
    tx_event(&mut cp, "Started", "TX-77", 1, Some("A"), None).await;
    let session = srv.cli_json(&["session", "list"]).await[0]["id"].to_string();
    let args = ["charger", "tx-status", "TS201", session.as_str(), "--json"];
    let q = srv.cli(&args);
    let (o, req) = tokio::join!(
        q,
        answer(
            &mut cp,
            "GetTransactionStatus",
            json!({"ongoingIndicator": true, "messagesInQueue": false})
        )
    );
    assert_exit(&o, 0, "tx-status");
    assert_eq!(
        req["transactionId"], "TX-77",
        "our session id becomes the charger's transaction id"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ongoing"], true);
    assert_eq!(v["messages_in_queue"], false);
    let q = srv.cli(&["charger", "tx-status", "TS201"]);
    let (o, req) = tokio::join!(
        q,
        answer(&mut cp, "GetTransactionStatus", json!({"messagesInQueue": true}))
    );
    assert_exit(&o, 0, "tx-status without a transaction");
    assert_eq!(req, json!({}));
    assert!(out(&o).contains("messages_in_queue  true"), "{}", out(&o));

    let _c16 = cp16(&srv, "TS16").await;
    let o = srv.cli(&["charger", "tx-status", "TS16"]).await;
    assert_exit(&o, 2, "1.6");
    assert!(err(&o).contains("not available on OCPP 1.6"), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_messages_are_set_listed_and_cleared_on_2_0_1_only() {
    let srv = server().await;
    let mut cp = cp201(&srv, "DM201").await;
    let set = srv.cli(&[
        "charger",
        "message",
        "set",
        "DM201",
        "Hello",
        "--priority",
        "InFront",
        "--state",
        "Idle",
        "--message-id",
        "5",
        "--until",
        "2030-01-01T00:00:00Z",
    ]);
    let (o, req) = tokio::join!(set, answer(&mut cp, "SetDisplayMessage", json!({"status": "Accepted"})));
    assert_exit(&o, 0, "message set");
    assert_eq!(req["message"]["id"], 5);
    assert_eq!(req["message"]["priority"], "InFront");
    assert_eq!(req["message"]["state"], "Idle");
    assert_eq!(req["message"]["message"]["content"], "Hello");
    assert_eq!(req["message"]["endDateTime"], "2030-01-01T00:00:00.000Z");

    let list = srv.cli(&["charger", "message", "list", "DM201", "--json"]);
    let script = async {
        let (id, p) = cp.expect_call("GetDisplayMessages").await;
        cp.reply(&id, json!({"status": "Accepted"})).await;
        cp.call(
            "NotifyDisplayMessages",
            json!({"requestId": p["requestId"], "tbc": true, "messageInfo": [req["message"]]}),
        )
        .await
        .unwrap();
        cp.call(
            "NotifyDisplayMessages",
            json!({"requestId": p["requestId"], "messageInfo": [{"id": 6, "priority": "NormalCycle",
                   "message": {"format": "UTF8", "content": "Second"}}]}),
        )
        .await
        .unwrap();
    };
    let (o, ()) = tokio::join!(list, script);
    assert_exit(&o, 0, "message list");
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "both parts: {listed}");
    assert_eq!(listed[0]["text"], "Hello");
    assert_eq!(listed[1]["priority"], "NormalCycle");

    let clear = srv.cli(&["charger", "message", "clear", "DM201", "5"]);
    let (o, req) = tokio::join!(
        clear,
        answer(&mut cp, "ClearDisplayMessage", json!({"status": "Unknown"}))
    );
    assert_exit(&o, 1, "unknown message");
    assert_eq!(req["id"], 5);
    let set = srv.cli(&["charger", "message", "set", "DM201", "During", "--transaction", "999"]);
    let (o, req) = tokio::join!(
        set,
        answer(&mut cp, "SetDisplayMessage", json!({"status": "UnknownTransaction"}))
    );
    assert_exit(&o, 1, "unknown transaction");
    assert_eq!(req["message"]["transactionId"], "999");

    let _c16 = cp16(&srv, "DM16").await;
    let o = srv.cli(&["charger", "message", "set", "DM16", "Hello"]).await;
    assert_exit(&o, 2, "1.6");
    assert!(err(&o).contains("not available on OCPP 1.6"), "{}", err(&o));
    let o = srv.cli(&["charger", "message", "set", "DM201", ""]).await;
    assert_exit(&o, 2, "empty text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sessions_on_2_0_1_get_their_cost() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.cost_update_interval_s = 1;
    })
    .await;
    srv.ok(&["token", "add", "A"]).await;
    let tariff = r#"{"country_code":"DE","party_id":"VYD","id":"T1","currency":"EUR","last_updated":"2026-01-01T00:00:00Z",
        "elements":[{"price_components":[{"type":"ENERGY","price":0.50,"vat":19,"step_size":1}]}]}"#;
    let path = srv.data_dir().join("t1.json");
    std::fs::write(&path, tariff).unwrap();
    srv.ok(&["tariff", "set", path.to_str().unwrap(), "--site", "default"])
        .await;
    let mut cp = cp201(&srv, "COST").await;
    let mut p = json!({"eventType": "Started", "timestamp": ts(0), "triggerReason": "Authorized", "seqNo": 0,
                       "transactionInfo": {"transactionId": "TX-C"}, "evse": {"id": 1, "connectorId": 1},
                       "idToken": {"idToken": "A", "type": "ISO14443"},
                       "meterValue": [{"timestamp": ts(0), "sampledValue": [{"value": 1000, "context": "Transaction.Begin",
                                       "measurand": "Energy.Active.Import.Register"}]}]});
    cp.call("TransactionEvent", p.clone()).await.unwrap();
    p["eventType"] = json!("Updated");
    p["seqNo"] = json!(1);
    p["meterValue"][0]["sampledValue"][0] = json!({"value": 5000, "measurand": "Energy.Active.Import.Register"});
    cp.call("TransactionEvent", p).await.unwrap();
    // The first round may price the session before the second reading.
    let mut cost = json!(null);
    for _ in 0..4 {
        cost = answer(&mut cp, "CostUpdated", json!({})).await;
        if cost["totalCost"].as_f64() == Some(2.38) {
            break;
        }
    }
    assert_eq!(cost["transactionId"], "TX-C");
    assert_eq!(
        cost["totalCost"].as_f64(),
        Some(2.38),
        "4 kWh at 0.50 + 19 % VAT: {cost}"
    );

    // 1.6 chargers are not sent CostUpdated.
    let mut c16 = cp16(&srv, "COST16").await;
    start16(&mut c16, 1, "A", None).await;
    assert_eq!(quiet(&mut c16, 2500).await, None);
}

// --- the simulator ---------------------------------------------------------

fn sim_scenario() -> Scenario {
    let text = r#"
[site]
id = "ops"
name = "Operations site"

[[tokens]]
prefix = "T"
count = 25

[[cars]]
name = "Test car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100

[[chargers]]
prefix = "O16"
count = 1
protocol = "1.6"
connectors = 2
meter_interval_s = 1

[[chargers]]
prefix = "O201"
count = 1
protocol = "2.0.1"
connectors = 2
meter_interval_s = 1

[arrivals]
first_within_s = 3600
dwell_s = [600, 600]
"#;
    Scenario::parse(text, "ops scenario", false).expect("scenario parses")
}

async fn eventually<F: AsyncFn() -> bool>(secs: u64, f: F) -> bool {
    for _ in 0..secs * 4 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_every_operation_like_a_charger() {
    let srv = server().await;
    for n in 1..=25 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
    }
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: sim_scenario(),
        seed: 5,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    });
    assert!(
        eventually(20, async || {
            let list = srv.cli_json(&["charger", "list"]).await;
            list.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|c| c["connected"] == true))
        })
        .await
    );
    for id in ["O16-01", "O201-01"] {
        // 25 tokens, 20 per message (the simulator's SendLocalListMaxLength / ItemsPerMessage).
        let r = srv.cli_json(&["charger", "local-list", "sync", id]).await;
        assert_eq!(
            (r["update"].as_str(), r["messages"].as_u64()),
            (Some("full"), Some(2)),
            "{id}: {r}"
        );
        srv.ok(&["token", "block", "T0003"]).await;
        assert!(
            eventually(10, async || {
                let v = srv.cli_json(&["charger", "local-list", "version", id]).await;
                v["version"] == v["confirmed_version"] && v["version"].as_i64() > r["version"].as_i64()
            })
            .await,
            "{id}: the block did not reach the charger"
        );
        srv.ok(&["token", "unblock", "T0003"]).await;
        srv.ok(&["charger", "clear-cache", id]).await;

        let res = srv
            .cli_json(&["reservation", "add", id, "--token", "T0001", "--connector", "1"])
            .await;
        assert_eq!(res["status"], "accepted", "{res}");
        let o = srv
            .cli(&["reservation", "add", id, "--token", "T0002", "--connector", "1"])
            .await;
        assert_exit(&o, 1, "a held connector: refused by the server");
        srv.ok(&["reservation", "cancel", &res["id"].to_string()]).await;
    }
    // Every trigger kind: accepted and sent (a certificate trigger sends a
    // SignCertificate with a real CSR), or refused like a charger without
    // that part (no ISO 15118 certificates).
    for (id, kinds, refused) in [
        (
            "O16-01",
            &[
                "BootNotification",
                "DiagnosticsStatusNotification",
                "FirmwareStatusNotification",
                "Heartbeat",
                "MeterValues",
                "StatusNotification",
                "LogStatusNotification",
                "SignChargePointCertificate",
            ][..],
            &[][..],
        ),
        (
            "O201-01",
            &[
                "BootNotification",
                "LogStatusNotification",
                "FirmwareStatusNotification",
                "Heartbeat",
                "MeterValues",
                "SignChargingStationCertificate",
                "SignV2GCertificate",
                "StatusNotification",
                "TransactionEvent",
                "SignCombinedCertificate",
                "PublishFirmwareStatusNotification",
            ][..],
            &["SignV2GCertificate", "SignCombinedCertificate", "TransactionEvent"][..],
        ),
    ] {
        for kind in kinds {
            let o = srv.cli(&["charger", "trigger", id, kind]).await;
            let want = if refused.contains(kind) { 1 } else { 0 };
            assert_exit(&o, want, &format!("{id} trigger {kind}"));
        }
    }
    // Display messages on 2.0.1.
    srv.ok(&["charger", "message", "set", "O201-01", "Hello", "--message-id", "3"])
        .await;
    let listed = srv.cli_json(&["charger", "message", "list", "O201-01"]).await;
    assert_eq!(listed[0]["text"], "Hello", "{listed}");
    srv.ok(&["charger", "message", "clear", "O201-01", "3"]).await;
    assert_eq!(
        srv.cli_json(&["charger", "message", "list", "O201-01"]).await,
        json!([])
    );

    // Availability scheduled behind a running session, effective after it.
    srv.ok(&["session", "start", "O201-01", "--token", "T0005", "--evse", "2"])
        .await;
    assert!(
        eventually(10, async || {
            srv.cli_json(&["session", "list"])
                .await
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["status"] == "active"))
        })
        .await
    );
    let o = srv
        .cli(&["charger", "availability", "O201-01", "inoperative", "--connector", "2"])
        .await;
    assert_exit(&o, 0, "scheduled");
    assert!(out(&o).starts_with("Scheduled"), "{}", out(&o));
    let session = srv.cli_json(&["session", "list"]).await[0]["id"].to_string();
    let q = srv.cli_json(&["charger", "tx-status", "O201-01", &session]).await;
    assert_eq!(q["ongoing"], true, "{q}");
    srv.ok(&["session", "stop", &session]).await;
    assert!(
        eventually(15, async || {
            let v = srv.cli_json(&["charger", "availability", "O201-01"]).await;
            v["requested"][0]["state"] == "effective"
        })
        .await,
        "the scheduled change never became effective"
    );
    let summary = sim.stop().await;
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    assert_eq!(summary.call_errors_received, 0, "{:?}", summary.errors);
}
