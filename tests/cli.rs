//! The real `voltyard` CLI binary against a real in-process server and real
//! WebSocket charge points: exit codes, `--json` on every read, the pending
//! flow, tokens and site policy end to end, logs (including --follow),
//! configuration round trips, help texts and concurrent CLI use.

mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// small local helpers

/// Every non-empty line of stdout parsed as one JSON value (JSON lines).
#[track_caller]
fn json_lines(o: &Output) -> Vec<Value> {
    out(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn tmp_cli(dir: &std::path::Path, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    cli(dir, &args)
}

/// Register a charger through the CLI, connect it as `proto` and boot it.
async fn registered(srv: &TestServer, id: &str, proto: &str) -> Cp {
    srv.ok(&["charger", "add", id]).await;
    let mut cp = srv.cp(id, proto).await;
    let boot = if proto == "ocpp1.6" {
        cp.boot16().await
    } else {
        cp.boot201().await
    };
    assert_eq!(
        boot["status"], "Accepted",
        "registered charger {id} boots Accepted: {boot}"
    );
    cp
}

async fn authorize16(cp: &mut Cp, tag: &str) -> String {
    let r = cp
        .call("Authorize", json!({"idTag": tag}))
        .await
        .expect("Authorize answered");
    r["idTagInfo"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no idTagInfo.status in {r}"))
        .to_string()
}

async fn authorize201(cp: &mut Cp, tag: &str) -> String {
    let r = cp
        .call("Authorize", json!({"idToken": {"idToken": tag, "type": "ISO14443"}}))
        .await
        .expect("Authorize answered");
    r["idTokenInfo"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no idTokenInfo.status in {r}"))
        .to_string()
}

/// Send a CALL with a chosen message id and return (exact frame text, CALLRESULT payload).
async fn call_with_id(cp: &mut Cp, id: &str, action: &str, payload: Value) -> (String, Value) {
    let text = json!([2, id, action, payload]).to_string();
    cp.send_text(&text).await;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let f = cp.recv().await.unwrap_or_else(|| panic!("no answer to {action} {id}"));
        if f[1] == id {
            assert_eq!(f[0], 3, "{action} {id} answered with {f}");
            return (text, f[2].clone());
        }
    }
    panic!("no answer to {action} {id}");
}

/// Assert the charger receives no frame at all for `ms` milliseconds.
async fn assert_silent(cp: &mut Cp, ms: u64) {
    if let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(ms), cp.ws.next()).await {
        panic!("the charger should not have been contacted, got {m:?}");
    }
}

fn charger<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("charger list is not an array: {list}"))
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("charger {id} not in {list}"))
}

/// Kills a spawned child (by its PID) however the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// exit codes

#[test]
fn no_server_running_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["charger", "list"][..],
        &["status", "--json"],
        &["token", "add", "X"],
        &["charger", "reset", "CP1"],
    ] {
        let o = tmp_cli(dir.path(), args);
        assert_exit(&o, 3, &format!("{args:?} without a server"));
        assert!(
            err(&o).contains("no voltyard server is running"),
            "{args:?}: {}",
            err(&o)
        );
        assert!(out(&o).is_empty(), "nothing on stdout: {}", out(&o));
    }
    let o = tmp_cli(&dir.path().join("does-not-exist"), &["charger", "list"]);
    assert_exit(&o, 3, "data dir that does not exist");
    // A stale control.sock left by a dead server is "not running" too.
    let sock = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let o = tmp_cli(dir.path(), &["charger", "list", "--json"]);
    assert_exit(&o, 3, "stale control socket");
    assert!(err(&o).contains("no voltyard server is running"), "{}", err(&o));
}

#[test]
fn bad_usage_exits_2_before_contacting_a_server() {
    // No server: usage errors must win over "not reachable" (exit 3).
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["charger", "add"],
        &["token", "add", "X", "--expires", "notadate"],
        &["site", "allow", "S", "--window", "8-18"],
        &["site", "allow", "S", "--days", "mon,funday"],
        &["charger", "logs", "CP1", "--since", "last tuesday-ish"],
        &["charger", "availability", "CP1", "sideways"],
        &["charger", "add", "CP1", "--phases", "2"],
        &["token", "add", "X", "--kind", "banana"],
        &["session", "show", "notanumber"],
        &["completions", "tcsh-but-not-really"],
        &["charger", "frobnicate"],
        &["nosuchnoun", "list"],
    ];
    for args in cases {
        let o = tmp_cli(dir.path(), args);
        assert_exit(&o, 2, &format!("{args:?}"));
        assert!(!err(&o).is_empty(), "{args:?} explains itself on stderr");
    }
    let o = tmp_cli(dir.path(), &["token", "add", "X", "--expires", "notadate"]);
    assert!(err(&o).contains("--expires"), "names the bad flag: {}", err(&o));
    let o = tmp_cli(dir.path(), &["site", "allow", "S", "--window", "8-18"]);
    assert!(err(&o).contains("--window"), "names the bad flag: {}", err(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_usage_the_server_detects_exits_2() {
    let srv = TestServer::start().await;
    let mut cp = registered(&srv, "CPU", "ocpp1.6").await;
    // A trigger message name the schema does not know: refused before it reaches the charger.
    let o = srv.cli(&["charger", "trigger", "CPU", "Nonsense"]).await;
    assert_exit(&o, 2, "trigger with an unknown message");
    assert_silent(&mut cp, 300).await;
    let o = srv
        .cli(&["site", "add", "moon", "--timezone", "Mars/Olympus_Mons"])
        .await;
    assert_exit(&o, 2, "bad time zone");
    assert!(err(&o).contains("timezone"), "{}", err(&o));
    let o = srv.cli(&["charger", "add", "has space"]).await;
    assert_exit(&o, 2, "charger id with a space");
    let o = srv.cli(&["charger", "add", "PW", "--password", "short"]).await;
    assert_exit(&o, 2, "password too short");
    let long = "T".repeat(37);
    let o = srv.cli(&["token", "add", &long]).await;
    assert_exit(&o, 2, "37-character token uid");
    // None of those left anything behind.
    let sites = srv.cli_json(&["site", "list"]).await;
    assert!(sites.as_array().unwrap().iter().all(|s| s["name"] != "moon"), "{sites}");
    let list = srv.cli_json(&["charger", "list"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "only CPU is registered: {list}");
    assert_eq!(srv.cli_json(&["token", "list"]).await, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_failed_and_unknown_exit_1() {
    let srv = TestServer::start().await;
    let mut cp = registered(&srv, "CPR", "ocpp1.6").await;

    // The charger refuses a reset.
    let (o, (_, p)) = tokio::join!(srv.cli(&["charger", "reset", "CPR"]), async {
        let (id, p) = cp.expect_call("Reset").await;
        cp.reply(&id, json!({"status": "Rejected"})).await;
        (id, p)
    });
    assert_eq!(p, json!({"type": "Soft"}));
    assert_exit(&o, 1, "reset rejected by the charger");
    assert!(err(&o).contains("Rejected"), "stderr names the status: {}", err(&o));
    // With --json the charger's answer is still printed for scripts.
    let (o, _) = tokio::join!(srv.cli(&["charger", "reset", "CPR", "--json"]), async {
        let (id, _) = cp.expect_call("Reset").await;
        cp.reply(&id, json!({"status": "Rejected"})).await;
    });
    assert_exit(&o, 1, "reset rejected (--json)");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["status"], "Rejected", "{v}");
    assert_eq!(v["accepted"], false, "{v}");

    // Accepted hard reset: exit 0.
    let (o, p) = tokio::join!(srv.cli(&["charger", "reset", "CPR", "--hard"]), async {
        let (id, p) = cp.expect_call("Reset").await;
        cp.reply(&id, json!({"status": "Accepted"})).await;
        p
    });
    assert_eq!(p, json!({"type": "Hard"}));
    assert_exit(&o, 0, "reset accepted");
    assert!(out(&o).contains("Accepted"), "{}", out(&o));

    // Unlock: UnlockFailed is a failure, Unlocked a success.
    let (o, p) = tokio::join!(srv.cli(&["charger", "unlock", "CPR", "--connector", "2"]), async {
        let (id, p) = cp.expect_call("UnlockConnector").await;
        cp.reply(&id, json!({"status": "UnlockFailed"})).await;
        p
    });
    assert_eq!(p, json!({"connectorId": 2}));
    assert_exit(&o, 1, "unlock failed");
    assert!(err(&o).contains("UnlockFailed"), "{}", err(&o));
    let (o, _) = tokio::join!(srv.cli(&["charger", "unlock", "CPR", "--connector", "2"]), async {
        let (id, _) = cp.expect_call("UnlockConnector").await;
        cp.reply(&id, json!({"status": "Unlocked"})).await;
    });
    assert_exit(&o, 0, "unlocked");

    // Availability and trigger carry their arguments to the charger.
    let (o, p) = tokio::join!(
        srv.cli(&["charger", "availability", "CPR", "inoperative", "--connector", "2"]),
        async {
            let (id, p) = cp.expect_call("ChangeAvailability").await;
            cp.reply(&id, json!({"status": "Scheduled"})).await;
            p
        }
    );
    assert_eq!(p, json!({"connectorId": 2, "type": "Inoperative"}));
    assert_exit(&o, 0, "availability scheduled");
    let (o, p) = tokio::join!(
        srv.cli(&["charger", "trigger", "CPR", "StatusNotification", "--connector", "1"]),
        async {
            let (id, p) = cp.expect_call("TriggerMessage").await;
            cp.reply(&id, json!({"status": "NotImplemented"})).await;
            p
        }
    );
    assert_eq!(p, json!({"requestedMessage": "StatusNotification", "connectorId": 1}));
    assert_exit(&o, 1, "trigger not implemented by the charger");

    // A registered charger that is not connected: fails fast.
    srv.ok(&["charger", "add", "OFFLINE"]).await;
    let t0 = Instant::now();
    let o = srv.cli(&["charger", "reset", "OFFLINE"]).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert_exit(&o, 1, "reset of a charger that is not connected");
    assert!(err(&o).contains("not connected"), "{}", err(&o));

    // Unknown things.
    for args in [
        &["charger", "show", "NOPE"][..],
        &["charger", "reset", "NOPE"],
        &["charger", "accept", "NOPE"],
        &["charger", "remove", "NOPE"],
        &["charger", "logs", "NOPE"],
        &["charger", "config", "get", "NOPE", "X"],
        &["token", "block", "NOPE"],
        &["token", "unblock", "NOPE"],
        &["token", "remove", "NOPE"],
        &["session", "show", "999"],
        &["session", "stop", "999"],
        &["site", "show", "nowhere"],
        &["site", "allow", "nowhere", "--group", "g"],
        &["site", "clear-rules", "nowhere"],
        &["charger", "add", "CPX", "--site", "nowhere"],
    ] {
        let o = srv.cli(args).await;
        assert_exit(&o, 1, &format!("{args:?}"));
        assert!(err(&o).starts_with("error:"), "{args:?}: {}", err(&o));
    }

    // Duplicates.
    srv.ok(&["token", "add", "DUP"]).await;
    let o = srv.cli(&["token", "add", "DUP"]).await;
    assert_exit(&o, 1, "duplicate token add");
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    let o = srv.cli(&["charger", "add", "CPR"]).await;
    assert_exit(&o, 1, "duplicate charger add");
    srv.ok(&["site", "add", "twice"]).await;
    let o = srv.cli(&["site", "add", "twice"]).await;
    assert_exit(&o, 1, "duplicate site add");

    // Remove works, and then the charger is unknown.
    srv.ok(&["charger", "remove", "OFFLINE"]).await;
    let o = srv.cli(&["charger", "show", "OFFLINE"]).await;
    assert_exit(&o, 1, "removed charger");
}

// ---------------------------------------------------------------------------
// JSON reads

#[tokio::test(flavor = "multi_thread")]
async fn charger_list_json_fields_after_boot_and_status() {
    let srv = TestServer::start().await;
    let mut cp = registered(&srv, "CP16", "ocpp1.6").await;
    for (c, st) in [(0, "Available"), (1, "Available"), (2, "Charging")] {
        cp.call(
            "StatusNotification",
            json!({"connectorId": c, "errorCode": "NoError", "status": st, "timestamp": ts(0)}),
        )
        .await
        .expect("status answered");
    }
    let before = chrono::Utc::now() - chrono::Duration::minutes(1);

    let list = srv.cli_json(&["charger", "list"]).await;
    let front = {
        let o = srv.cli(&["--json", "charger", "list"]).await;
        assert_exit(&o, 0, "--json before the noun");
        serde_json::from_slice::<Value>(&o.stdout).expect("JSON")
    };
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let c = charger(&list, "CP16");
    let f = charger(&front, "CP16");
    for k in [
        "id",
        "status",
        "connected",
        "protocol",
        "vendor",
        "model",
        "firmware",
        "connectors",
    ] {
        assert_eq!(c[k], f[k], "{k} differs between --json positions");
    }
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["connected"], true);
    assert_eq!(c["protocol"], "ocpp1.6");
    assert_eq!(c["vendor"], "VendorX");
    assert_eq!(c["model"], "ModelY");
    assert_eq!(c["firmware"], "1.2.3");
    let conns = c["connectors"].as_array().expect("connectors array");
    let status_of = |n: u64| {
        conns
            .iter()
            .find(|k| k["evse"] == n)
            .unwrap_or_else(|| panic!("connector {n} missing in {conns:?}"))["status"]
            .clone()
    };
    assert_eq!(status_of(1), "available");
    assert_eq!(status_of(2), "charging");
    let seen = c["last_seen"].as_str().expect("last_seen string");
    let seen = chrono::DateTime::parse_from_rfc3339(seen).expect("last_seen is RFC 3339");
    assert!(seen > before, "last_seen {seen} is recent");

    // show: the same charger, JSON both ways.
    let show = srv.cli_json(&["charger", "show", "CP16"]).await;
    assert_eq!(show["id"], "CP16");
    assert_eq!(show["status"], "accepted");
    assert_eq!(show["connected"], true);
    assert_eq!(show["connectors"], c["connectors"]);
    let o = srv.cli(&["--json", "charger", "show", "CP16"]).await;
    assert_exit(&o, 0, "--json before show");
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["id"], "CP16");

    // Without --json: a table for people, not JSON.
    let o = srv.cli(&["charger", "list"]).await;
    assert_exit(&o, 0, "table");
    assert!(
        serde_json::from_slice::<Value>(&o.stdout).is_err(),
        "table, not JSON: {}",
        out(&o)
    );
    assert!(
        out(&o).contains("CP16") && out(&o).contains("accepted") && out(&o).contains("VendorX"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("2:charging"), "connectors column: {}", out(&o));

    // The control socket is private to the server's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.data_dir().join("control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control.sock mode {:o}", mode & 0o777);
    // VOLTYARD_DATA selects the server as --data-dir does.
    let dir = srv.data_dir();
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
            .env("VOLTYARD_DATA", dir)
            .args(["charger", "list", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_exit(&o, 0, "VOLTYARD_DATA");
    assert_eq!(
        charger(&serde_json::from_slice(&o.stdout).unwrap(), "CP16")["connected"],
        true
    );

    // status --json
    let st = srv.cli_json(&["status"]).await;
    assert_eq!(st["chargers_connected"], 1, "{st}");
    assert_eq!(st["data_dir"], srv.data_dir().display().to_string());
    assert!(st["version"].as_str().is_some_and(|v| !v.is_empty()), "{st}");
    assert!(st["commits"].as_u64().is_some_and(|n| n > 0), "{st}");
    let o = srv.cli(&["--json", "status"]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["chargers_connected"],
        1
    );

    // Disconnect: connected turns false, what the charger told us stays.
    drop(cp);
    let deadline = Instant::now() + Duration::from_secs(5);
    let c = loop {
        let list = srv.cli_json(&["charger", "list"]).await;
        let c = charger(&list, "CP16").clone();
        if c["connected"] == false || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(c["connected"], false, "{c}");
    assert_eq!(c["protocol"], "ocpp1.6");
    assert_eq!(c["vendor"], "VendorX");
    assert!(c["last_seen"].is_string(), "{c}");
    assert_eq!(srv.cli_json(&["status"]).await["chargers_connected"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_json_and_remote_start_stop() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "TAG1"]).await;
    let mut cp = registered(&srv, "CPS", "ocpp1.6").await;
    assert_eq!(srv.cli_json(&["session", "list"]).await, json!([]));

    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": ts(-10)}),
        )
        .await
        .expect("start answered");
    assert_eq!(start["idTagInfo"]["status"], "Accepted");
    let tx = start["transactionId"].as_u64().expect("transactionId");
    cp.call(
        "MeterValues",
        json!({"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": ts(-5), "sampledValue": [{"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}, {"value": "16.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"}]}]}),
    )
    .await
    .expect("meter values answered");

    for args in [&["session", "list", "--json"][..], &["--json", "session", "list"]] {
        let o = srv.cli(args).await;
        assert_exit(&o, 0, &format!("{args:?}"));
        let list: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        let s = &list[0];
        assert_eq!(s["id"], tx);
        assert_eq!(s["charger"], "CPS");
        assert_eq!(s["evse"], 1);
        assert_eq!(s["token"], "TAG1");
        assert!(
            chrono::DateTime::parse_from_rfc3339(s["started_at"].as_str().unwrap()).is_ok(),
            "{s}"
        );
        assert_eq!(s["stopped_at"], Value::Null, "null while running: {s}");
        assert_eq!(s["energy_wh"], 500);
        assert_eq!(s["status"], "active");
    }
    let show = srv.cli_json(&["session", "show", &tx.to_string()]).await;
    assert_eq!(show["id"], tx);
    assert_eq!(show["samples"], 2, "{show}");
    assert_eq!(show["meter_values"].as_array().map(Vec::len), Some(2), "{show}");
    assert_eq!(show["transaction_id"], tx.to_string());
    let o = srv.cli(&["--json", "session", "show", &tx.to_string()]).await;
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["samples"], 2);

    // Remote stop of the running session.
    let tx_s = tx.to_string();
    let stop_args = ["session", "stop", tx_s.as_str()];
    let (o, p) = tokio::join!(srv.cli(&stop_args), async {
        let (id, p) = cp.expect_call("RemoteStopTransaction").await;
        cp.reply(&id, json!({"status": "Accepted"})).await;
        p
    });
    assert_eq!(p, json!({"transactionId": tx}));
    assert_exit(&o, 0, "remote stop accepted");
    let stop = cp
        .call(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 1800, "timestamp": ts(-1), "reason": "Remote"}),
        )
        .await
        .expect("stop answered");
    assert_eq!(stop["idTagInfo"], Value::Null, "no idTag given, no idTagInfo: {stop}");
    let s = &srv.cli_json(&["session", "list"]).await[0];
    assert_eq!(s["status"], "completed");
    assert!(chrono::DateTime::parse_from_rfc3339(s["stopped_at"].as_str().expect("stopped_at set")).is_ok());
    assert_eq!(s["energy_wh"], 800);
    assert_eq!(srv.cli_json(&["session", "list", "--active"]).await, json!([]));
    assert_eq!(
        srv.cli_json(&["session", "list", "--completed"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        srv.cli_json(&["session", "list", "--charger", "OTHER"]).await,
        json!([])
    );
    let o = srv.cli(&["session", "stop", &tx.to_string()]).await;
    assert_exit(&o, 1, "stop of a completed session");
    assert!(err(&o).contains("already ended"), "{}", err(&o));

    // Remote start: the charger gets the token and the connector; Rejected exits 1.
    let (o, p) = tokio::join!(
        srv.cli(&["session", "start", "CPS", "--token", "TAG1", "--evse", "1"]),
        async {
            let (id, p) = cp.expect_call("RemoteStartTransaction").await;
            cp.reply(&id, json!({"status": "Accepted"})).await;
            p
        }
    );
    assert_eq!(p, json!({"idTag": "TAG1", "connectorId": 1}));
    assert_exit(&o, 0, "remote start accepted");
    let (o, _) = tokio::join!(srv.cli(&["session", "start", "CPS", "--token", "TAG1"]), async {
        let (id, _) = cp.expect_call("RemoteStartTransaction").await;
        cp.reply(&id, json!({"status": "Rejected"})).await;
    });
    assert_exit(&o, 1, "remote start rejected");

    // Human output of a read is not JSON.
    let o = srv.cli(&["session", "list"]).await;
    assert_exit(&o, 0, "session table");
    assert!(out(&o).contains("CPS") && out(&o).contains("completed"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_json() {
    let srv = TestServer::start().await;
    let mut cp = registered(&srv, "CPE", "ocpp1.6").await;
    cp.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}),
    )
    .await
    .expect("status answered");
    for args in [&["events", "--json"][..], &["--json", "events"]] {
        let o = srv.cli(args).await;
        assert_exit(&o, 0, &format!("{args:?}"));
        let ev: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let ev = ev.as_array().expect("array");
        assert!(
            ev.iter().any(|e| e["kind"] == "boot" && e["charger"] == "CPE"),
            "{ev:?}"
        );
        let fault = ev
            .iter()
            .find(|e| e["kind"] == "fault")
            .unwrap_or_else(|| panic!("fault event in {ev:?}"));
        assert!(fault["detail"].as_str().unwrap().contains("GroundFailure"), "{fault}");
        assert!(fault["t"].is_string());
    }
    let one = srv.cli_json(&["events", "--limit", "1"]).await;
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one[0]["kind"], "fault", "the newest event: {one}");
}

// ---------------------------------------------------------------------------
// unknown chargers

#[tokio::test(flavor = "multi_thread")]
async fn pending_charger_flow() {
    let srv = TestServer::start().await;
    let mut cp = srv.cp("NEWCP", "ocpp1.6").await;
    let boot = cp.boot16().await;
    assert_eq!(boot["status"], "Pending", "{boot}");
    assert!(
        boot["interval"].as_u64().is_some_and(|i| (1..=30).contains(&i)),
        "pending retries soon: {boot}"
    );
    // Pending: nothing but boot and heartbeat is served.
    let e = cp
        .call("Authorize", json!({"idTag": "X"}))
        .await
        .expect_err("pending charger cannot authorize");
    assert_eq!(e.0, "SecurityError", "{e:?}");
    cp.call("Heartbeat", json!({})).await.expect("heartbeat while pending");

    let list = srv.cli_json(&["charger", "list"]).await;
    let c = charger(&list, "NEWCP");
    assert_eq!(c["status"], "pending");
    assert_eq!(c["connected"], true);
    assert_eq!(c["vendor"], "VendorX", "what it told us is kept: {c}");
    let ev = srv.cli_json(&["events"]).await;
    assert!(
        ev.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "pending" && e["charger"] == "NEWCP"),
        "{ev}"
    );

    // Accept: the server asks the connected charger to boot again right away.
    let (o, p) = tokio::join!(srv.cli(&["charger", "accept", "NEWCP", "--json"]), async {
        let (id, p) = cp.expect_call("TriggerMessage").await;
        cp.reply(&id, json!({"status": "Accepted"})).await;
        p
    });
    assert_eq!(p, json!({"requestedMessage": "BootNotification"}));
    assert_exit(&o, 0, "accept");
    let v: Value = serde_json::from_slice(&o.stdout).expect("accept --json prints JSON");
    assert_eq!(v["status"], "accepted", "{v}");
    assert_eq!(v["id"], "NEWCP", "{v}");
    assert_eq!(
        v["connected"], true,
        "accept --json describes the connected charger as connected: {v}"
    );

    let boot = cp.boot16().await;
    assert_eq!(boot["status"], "Accepted", "{boot}");
    assert_eq!(authorize16(&mut cp, "UNKNOWN-TAG").await, "Invalid");
    let c = srv.cli_json(&["charger", "show", "NEWCP"]).await;
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["connected"], true);

    // Accepting a charger that is not connected just records it.
    drop(cp);
    let mut other = srv.cp("LATER", "ocpp2.0.1").await;
    assert_eq!(other.boot201().await["status"], "Pending");
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.cli_json(&["charger", "show", "LATER"]).await["connected"] == true && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t0 = Instant::now();
    srv.ok(&["charger", "accept", "LATER"]).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    let mut again = srv.cp("LATER", "ocpp2.0.1").await;
    assert_eq!(again.boot201().await["status"], "Accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_chargers_rejected_by_config_get_404() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = voltyard::server::UnknownChargers::Reject).await;
    let e = connect_raw(srv.addr, "/ocpp/STRANGER", Some("ocpp1.6"), None)
        .await
        .expect_err("unknown charger refused");
    assert_eq!(
        refused_status(&e),
        Some(tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND),
        "{e}"
    );
    // Nothing was recorded for it.
    assert_eq!(srv.cli_json(&["charger", "list"]).await, json!([]));
    // A registered charger still gets in.
    let mut cp = registered(&srv, "KNOWN", "ocpp1.6").await;
    cp.call("Heartbeat", json!({})).await.expect("heartbeat");
    assert_eq!(srv.cli_json(&["charger", "show", "KNOWN"]).await["connected"], true);
}

// ---------------------------------------------------------------------------
// tokens and site policy

#[tokio::test(flavor = "multi_thread")]
async fn tokens_lifecycle_and_authorize_over_16() {
    let srv = TestServer::start().await;
    srv.ok(&[
        "token",
        "add",
        "RFID1",
        "--group",
        "employees",
        "--expires",
        "2099-12-31T23:59:59Z",
    ])
    .await;
    srv.ok(&["token", "add", "VID:0023A1B2C3D4", "--kind", "vehicle"]).await;
    srv.ok(&[
        "token",
        "add",
        "EMAID1",
        "--kind",
        "contract",
        "--note",
        "roaming contract",
    ])
    .await;
    srv.ok(&["token", "add", "APPUSER", "--kind", "app"]).await;
    srv.ok(&["token", "add", "OLD", "--expires", "2020-01-01T00:00:00Z"])
        .await;

    for args in [&["token", "list", "--json"][..], &["--json", "token", "list"]] {
        let o = srv.cli(args).await;
        assert_exit(&o, 0, &format!("{args:?}"));
        let list: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let find = |uid: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|t| t["uid"] == uid)
                .unwrap_or_else(|| panic!("{uid} in {list}"))
                .clone()
        };
        assert_eq!(list.as_array().unwrap().len(), 5);
        let r = find("RFID1");
        assert_eq!(r["kind"], "rfid");
        assert_eq!(r["group"], "employees");
        assert_eq!(r["blocked"], false);
        let exp = chrono::DateTime::parse_from_rfc3339(r["expires"].as_str().expect("expires")).unwrap();
        assert_eq!(
            exp,
            chrono::DateTime::parse_from_rfc3339("2099-12-31T23:59:59Z").unwrap()
        );
        assert_eq!(find("VID:0023A1B2C3D4")["kind"], "vehicle");
        assert_eq!(find("EMAID1")["kind"], "contract");
        assert_eq!(find("EMAID1")["note"], "roaming contract");
        assert_eq!(find("APPUSER")["kind"], "app");
        assert_eq!(find("APPUSER")["group"], Value::Null);
    }

    let mut cp = registered(&srv, "CPT", "ocpp1.6").await;
    assert_eq!(authorize16(&mut cp, "RFID1").await, "Accepted");
    assert_eq!(authorize16(&mut cp, "VID:0023A1B2C3D4").await, "Accepted");
    assert_eq!(authorize16(&mut cp, "OLD").await, "Expired");
    assert_eq!(authorize16(&mut cp, "NEVER-SEEN").await, "Invalid");

    srv.ok(&["token", "block", "RFID1"]).await;
    let list = srv.cli_json(&["token", "list"]).await;
    assert_eq!(
        list.as_array().unwrap().iter().find(|t| t["uid"] == "RFID1").unwrap()["blocked"],
        true
    );
    assert_eq!(authorize16(&mut cp, "RFID1").await, "Blocked");
    // A StartTransaction with a blocked token is answered Blocked too.
    let st = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "RFID1", "meterStart": 0, "timestamp": ts(0)}),
        )
        .await
        .expect("start answered");
    assert_eq!(st["idTagInfo"]["status"], "Blocked", "{st}");

    srv.ok(&["token", "unblock", "RFID1"]).await;
    assert_eq!(authorize16(&mut cp, "RFID1").await, "Accepted");

    srv.ok(&["token", "remove", "RFID1"]).await;
    assert_eq!(authorize16(&mut cp, "RFID1").await, "Invalid");
    let list = srv.cli_json(&["token", "list"]).await;
    assert!(list.as_array().unwrap().iter().all(|t| t["uid"] != "RFID1"), "{list}");
    assert_eq!(list.as_array().unwrap().len(), 4);
    // Human table lists the rest.
    let o = srv.cli(&["token", "list"]).await;
    assert!(
        out(&o).contains("VID:0023A1B2C3D4") && out(&o).contains("vehicle"),
        "{}",
        out(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn site_policy_end_to_end() {
    let srv = TestServer::start().await;
    srv.ok(&[
        "site",
        "add",
        "office",
        "--timezone",
        "Europe/Berlin",
        "--access",
        "private",
    ])
    .await;
    srv.ok(&["charger", "add", "CPX", "--site", "office"]).await;
    srv.ok(&["charger", "add", "CPY", "--site", "office"]).await;
    srv.ok(&["site", "allow", "office", "--group", "employees"]).await;
    srv.ok(&["token", "add", "EMP1", "--group", "employees"]).await;
    srv.ok(&["token", "add", "VIS1", "--group", "visitors"]).await;

    let sites = srv.cli_json(&["site", "list"]).await;
    let o = srv.cli(&["--json", "site", "list"]).await;
    assert_exit(&o, 0, "--json site list");
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).expect("JSON"),
        sites,
        "same JSON in both positions"
    );
    let office = sites
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "office")
        .unwrap_or_else(|| panic!("{sites}"));
    assert_eq!(office["timezone"], "Europe/Berlin");
    assert_eq!(office["access"], "private");
    assert_eq!(office["rules"].as_array().map(Vec::len), Some(1), "{office}");
    assert_eq!(office["rules"][0]["groups"], json!(["employees"]));
    assert!(
        sites.as_array().unwrap().iter().any(|s| s["name"] == "default"),
        "default site listed: {sites}"
    );
    for args in [
        &["site", "show", "office", "--json"][..],
        &["--json", "site", "show", "office"],
    ] {
        let o = srv.cli(args).await;
        assert_exit(&o, 0, &format!("{args:?}"));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(v["name"], "office");
        assert_eq!(v["access"], "private");
    }
    assert_eq!(srv.cli_json(&["charger", "show", "CPX"]).await["site"], "office");

    let mut cp16 = srv.cp("CPX", "ocpp1.6").await;
    assert_eq!(cp16.boot16().await["status"], "Accepted");
    let mut cp201 = srv.cp("CPY", "ocpp2.0.1").await;
    assert_eq!(cp201.boot201().await["status"], "Accepted");

    assert_eq!(authorize16(&mut cp16, "EMP1").await, "Accepted");
    assert_eq!(authorize16(&mut cp16, "VIS1").await, "Invalid");
    assert_eq!(authorize201(&mut cp201, "EMP1").await, "Accepted");
    assert_eq!(authorize201(&mut cp201, "VIS1").await, "NotAtThisLocation");
    assert_eq!(authorize201(&mut cp201, "NOBODY").await, "Unknown");

    // Clearing the rules closes the private site to everyone.
    srv.ok(&["site", "clear-rules", "office"]).await;
    assert_eq!(srv.cli_json(&["site", "show", "office"]).await["rules"], json!([]));
    assert_eq!(authorize16(&mut cp16, "EMP1").await, "Invalid");
    assert_eq!(authorize201(&mut cp201, "EMP1").await, "NotAtThisLocation");

    // A rule without groups admits any valid token.
    srv.ok(&["site", "allow", "office"]).await;
    assert_eq!(authorize201(&mut cp201, "VIS1").await, "Accepted");

    // The public default site lets every valid token in.
    let mut pub_cp = registered(&srv, "CPPUB", "ocpp1.6").await;
    assert_eq!(authorize16(&mut pub_cp, "VIS1").await, "Accepted");
}

// ---------------------------------------------------------------------------
// logs

#[tokio::test(flavor = "multi_thread")]
async fn charger_logs_json_since_and_follow() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "CPL"]).await;
    let mut cp = srv.cp("CPL", "ocpp1.6").await;
    let boot_payload = json!({"chargePointVendor": "LogV", "chargePointModel": "LogM"});
    let (boot_text, boot_reply) = call_with_id(&mut cp, "boot-1", "BootNotification", boot_payload).await;
    assert_eq!(boot_reply["status"], "Accepted");
    // Durable after this answer: everything queued before it (the boot reply's journal line too).
    call_with_id(&mut cp, "hb-1", "Heartbeat", json!({})).await;

    // Outgoing frames are journaled without waiting for the commit: give the
    // last answer a moment to land, then expect exactly the four frames.
    let deadline = Instant::now() + Duration::from_secs(5);
    while json_lines(&srv.cli(&["charger", "logs", "CPL", "--json"]).await).len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for args in [
        &["charger", "logs", "CPL", "--json"][..],
        &["--json", "charger", "logs", "CPL"],
    ] {
        let o = srv.cli(args).await;
        assert_exit(&o, 0, &format!("{args:?}"));
        let frames = json_lines(&o);
        assert_eq!(frames.len(), 4, "boot, its answer, heartbeat, its answer: {frames:?}");
        assert_eq!(frames[0]["dir"], "in");
        assert_eq!(frames[0]["frame"], boot_text.as_str(), "the raw frame text as received");
        assert_eq!(frames[0]["charger"], "CPL");
        assert_eq!(frames[1]["dir"], "out");
        let answer: Value =
            serde_json::from_str(frames[1]["frame"].as_str().unwrap()).expect("raw frame is the OCPP JSON");
        assert_eq!(answer[0], 3);
        assert_eq!(answer[1], "boot-1");
        assert_eq!(answer[2]["status"], "Accepted");
        assert_eq!(frames[2]["dir"], "in");
        assert!(frames[2]["frame"].as_str().unwrap().contains("hb-1"));
        assert_eq!(frames[3]["dir"], "out");
        let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().expect("seq")).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "oldest first: {seqs:?}");
    }
    let o = srv.cli(&["charger", "logs", "CPL", "--since", "1h", "--json"]).await;
    assert_exit(&o, 0, "--since 1h");
    assert_eq!(json_lines(&o).len(), 4);
    let o = srv
        .cli(&["charger", "logs", "CPL", "--since", "2999-01-01T00:00:00Z", "--json"])
        .await;
    assert_exit(&o, 0, "--since in the future");
    assert_eq!(json_lines(&o).len(), 0, "{}", out(&o));
    let o = srv.cli(&["charger", "logs", "CPL", "--limit", "1", "--json"]).await;
    let one = json_lines(&o);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["dir"], "out", "the newest frame: {one:?}");
    let o = srv.cli(&["charger", "logs", "CPL"]).await;
    assert_exit(&o, 0, "human logs");
    assert!(out(&o).contains(&boot_text), "{}", out(&o));

    // --follow: history first, then frames as they arrive.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .arg("--data-dir")
        .arg(srv.data_dir())
        .args(["charger", "logs", "CPL", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn voltyard logs --follow");
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |rx: &std::sync::mpsc::Receiver<String>| rx.recv_timeout(Duration::from_secs(5)).ok();
    // History (4 frames) proves the follower is subscribed.
    for i in 0..4 {
        let l = next_line(&rx).unwrap_or_else(|| panic!("history line {i} of --follow"));
        serde_json::from_str::<Value>(&l).expect("JSON line");
    }
    let (marker_text, _) = call_with_id(
        &mut cp,
        "follow-7",
        "DataTransfer",
        json!({"vendorId": "voltyard.test", "data": "follow-marker"}),
    )
    .await;
    let mut got_in = false;
    let mut got_out = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(got_in && got_out) && Instant::now() < deadline {
        let Some(l) = next_line(&rx) else { break };
        let v: Value = serde_json::from_str(&l).expect("JSON line");
        if v["dir"] == "in" && v["frame"] == marker_text.as_str() {
            got_in = true;
        }
        if v["dir"] == "out" && v["frame"].as_str().is_some_and(|f| f.contains("follow-7")) {
            got_out = true;
        }
    }
    assert!(got_in, "--follow printed the frame sent after it started");
    assert!(got_out, "--follow printed the answer too");
    assert!(guard.0.try_wait().unwrap().is_none(), "--follow keeps running");
    drop(guard);
}

// ---------------------------------------------------------------------------
// configuration

/// Play a charger's configuration store for one CLI command.
async fn serve_config(cp: &mut Cp, store: &mut std::collections::BTreeMap<String, String>) -> (String, Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no configuration call arrived");
        let f = cp.recv().await.expect("a configuration call");
        if f[0] != 2 {
            continue;
        }
        let (id, action, p) = (
            f[1].as_str().unwrap().to_string(),
            f[2].as_str().unwrap().to_string(),
            f[3].clone(),
        );
        let answer = match action.as_str() {
            "ChangeConfiguration" => {
                let key = p["key"].as_str().unwrap().to_string();
                if key == "ReadOnlyThing" {
                    json!({"status": "Rejected"})
                } else {
                    store.insert(key, p["value"].as_str().unwrap().to_string());
                    json!({"status": "Accepted"})
                }
            }
            "GetConfiguration" => {
                let wanted: Vec<String> = p["key"]
                    .as_array()
                    .map(|a| a.iter().map(|k| k.as_str().unwrap().to_string()).collect())
                    .unwrap_or_else(|| store.keys().cloned().collect());
                let known: Vec<Value> = wanted
                    .iter()
                    .filter_map(|k| store.get(k).map(|v| json!({"key": k, "readonly": false, "value": v})))
                    .collect();
                let unknown: Vec<&String> = wanted.iter().filter(|k| !store.contains_key(*k)).collect();
                json!({"configurationKey": known, "unknownKey": unknown})
            }
            "SetVariables" => {
                let results: Vec<Value> = p["setVariableData"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let key = format!(
                            "{}.{}",
                            d["component"]["name"].as_str().unwrap(),
                            d["variable"]["name"].as_str().unwrap()
                        );
                        store.insert(key, d["attributeValue"].as_str().unwrap().to_string());
                        json!({"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]})
                    })
                    .collect();
                json!({"setVariableResult": results})
            }
            "GetVariables" => {
                let results: Vec<Value> = p["getVariableData"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let key = format!("{}.{}", d["component"]["name"].as_str().unwrap(), d["variable"]["name"].as_str().unwrap());
                        match store.get(&key) {
                            Some(v) => json!({"attributeStatus": "Accepted", "attributeValue": v, "component": d["component"], "variable": d["variable"]}),
                            None => json!({"attributeStatus": "UnknownComponent", "component": d["component"], "variable": d["variable"]}),
                        }
                    })
                    .collect();
                json!({"getVariableResult": results})
            }
            other => panic!("unexpected call {other}"),
        };
        cp.reply(&id, answer).await;
        return (action, p);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_set_and_get_round_trip_16_and_201() {
    let srv = TestServer::start().await;
    let mut cp16 = registered(&srv, "CP16", "ocpp1.6").await;
    let mut store16 = std::collections::BTreeMap::from([("HeartbeatInterval".to_string(), "300".to_string())]);

    let (o, (action, p)) = tokio::join!(
        srv.cli(&["charger", "config", "set", "CP16", "HeartbeatInterval", "120"]),
        serve_config(&mut cp16, &mut store16)
    );
    assert_eq!(action, "ChangeConfiguration");
    assert_eq!(p, json!({"key": "HeartbeatInterval", "value": "120"}));
    assert_exit(&o, 0, "1.6 config set");
    let (o, (_, p)) = tokio::join!(
        srv.cli(&[
            "charger",
            "config",
            "get",
            "CP16",
            "HeartbeatInterval",
            "NoSuchKey",
            "--json"
        ]),
        serve_config(&mut cp16, &mut store16)
    );
    assert_eq!(p, json!({"key": ["HeartbeatInterval", "NoSuchKey"]}));
    assert_exit(&o, 0, "1.6 config get");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(
        v["entries"],
        json!([{"key": "HeartbeatInterval", "value": "120", "readonly": false, "status": null}]),
        "{v}"
    );
    assert_eq!(v["unknown"], json!(["NoSuchKey"]));
    // All keys when none are given; table output by default.
    let (o, (_, p)) = tokio::join!(
        srv.cli(&["charger", "config", "get", "CP16"]),
        serve_config(&mut cp16, &mut store16)
    );
    assert_eq!(p, json!({}));
    assert_exit(&o, 0, "1.6 config get all");
    assert!(
        out(&o).contains("HeartbeatInterval") && out(&o).contains("120"),
        "{}",
        out(&o)
    );
    // The charger refuses: exit 1.
    let (o, _) = tokio::join!(
        srv.cli(&["charger", "config", "set", "CP16", "ReadOnlyThing", "1"]),
        serve_config(&mut cp16, &mut store16)
    );
    assert_exit(&o, 1, "1.6 config set rejected");
    assert!(err(&o).contains("Rejected"), "{}", err(&o));

    let mut cp201 = registered(&srv, "CP201", "ocpp2.0.1").await;
    let mut store201 = std::collections::BTreeMap::new();
    let (o, (action, p)) = tokio::join!(
        srv.cli(&[
            "charger",
            "config",
            "set",
            "CP201",
            "OCPPCommCtrlr.HeartbeatInterval",
            "90",
            "--json"
        ]),
        serve_config(&mut cp201, &mut store201)
    );
    assert_eq!(action, "SetVariables");
    assert_eq!(
        p,
        json!({"setVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attributeValue": "90"}]})
    );
    assert_exit(&o, 0, "2.0.1 config set");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["status"], "Accepted", "{v}");
    let (o, (action, p)) = tokio::join!(
        srv.cli(&[
            "--json",
            "charger",
            "config",
            "get",
            "CP201",
            "OCPPCommCtrlr.HeartbeatInterval",
            "Nope.Thing"
        ]),
        serve_config(&mut cp201, &mut store201)
    );
    assert_eq!(action, "GetVariables");
    assert_eq!(p["getVariableData"].as_array().map(Vec::len), Some(2), "{p}");
    assert_exit(&o, 0, "2.0.1 config get");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["entries"][0]["key"], "OCPPCommCtrlr.HeartbeatInterval", "{v}");
    assert_eq!(v["entries"][0]["value"], "90", "{v}");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["unknown"], json!(["Nope.Thing"]));

    // A key that is not Component.Variable: bad usage, the charger is not contacted.
    let o = srv.cli(&["charger", "config", "set", "CP201", "NoDotKey", "1"]).await;
    assert_exit(&o, 2, "2.0.1 key without a dot");
    assert!(err(&o).contains("Component.Variable"), "{}", err(&o));
    assert_silent(&mut cp201, 300).await;
    let o = srv.cli(&["charger", "config", "get", "CP201"]).await;
    assert_exit(&o, 2, "2.0.1 get needs keys");
    assert_silent(&mut cp201, 300).await;
    // Nothing went out on the wire for those either.
    cp201.call("Heartbeat", json!({})).await.expect("heartbeat");
    let o = srv.cli(&["charger", "logs", "CP201", "--json"]).await;
    let outs: Vec<Value> = json_lines(&o).into_iter().filter(|f| f["dir"] == "out").collect();
    let calls = outs
        .iter()
        .filter(|f| f["frame"].as_str().unwrap().starts_with("[2,"))
        .count();
    assert_eq!(
        calls, 2,
        "only the SetVariables and GetVariables calls went out: {outs:?}"
    );
}

// ---------------------------------------------------------------------------
// help and completions

#[test]
fn every_subcommand_help_has_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["charger", "add"],
        &["charger", "list"],
        &["charger", "show"],
        &["charger", "accept"],
        &["charger", "remove"],
        &["charger", "reset"],
        &["charger", "unlock"],
        &["charger", "trigger"],
        &["charger", "availability"],
        &["charger", "config", "get"],
        &["charger", "config", "set"],
        &["charger", "logs"],
        &["token", "add"],
        &["token", "list"],
        &["token", "block"],
        &["token", "unblock"],
        &["token", "remove"],
        &["session", "list"],
        &["session", "show"],
        &["session", "start"],
        &["session", "stop"],
        &["site", "add"],
        &["site", "list"],
        &["site", "show"],
        &["site", "allow"],
        &["site", "clear-rules"],
        &["status"],
        &["events"],
        &["completions"],
        &["charger", "set-meter-key"],
        &["session", "cdr"],
        &["tariff", "set"],
        &["tariff", "list"],
        &["tariff", "show"],
        &["tariff", "unassign"],
        &["tariff", "remove"],
        &["session", "reprice"],
        &["tariff", "price"],
        &["receipt"],
        &["verify"],
        &["charger", "report"],
        &["charger", "report", "status"],
        &["charger", "variables"],
        &["charger", "monitor", "set"],
        &["charger", "monitor", "list"],
        &["charger", "monitor", "clear"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = tmp_cli(dir.path(), &args);
        assert_exit(&o, 0, &format!("{args:?}"));
        assert!(out(&o).contains("Example"), "{args:?} has no example:\n{}", out(&o));
        assert!(out(&o).contains("Usage"), "{args:?}:\n{}", out(&o));
    }
    let o = tmp_cli(dir.path(), &["completions", "bash"]);
    assert_exit(&o, 0, "completions bash");
    assert!(out(&o).contains("voltyard"), "{}", out(&o));
    assert!(
        out(&o).contains("charger") && out(&o).contains("complete"),
        "a bash completion script"
    );
    let o = tmp_cli(dir.path(), &["--version"]);
    assert_exit(&o, 0, "--version");
    assert!(out(&o).contains(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------
// concurrency

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cli_commands_all_succeed() {
    let srv = TestServer::start().await;
    let mut cp = registered(&srv, "CPC", "ocpp1.6").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let dir = srv.data_dir();
        let args: Vec<String> = if i % 4 == 3 {
            vec!["status".into(), "--json".into()]
        } else {
            vec!["charger".into(), "list".into(), "--json".into()]
        };
        tasks.push(tokio::task::spawn_blocking(move || (args.clone(), cli(&dir, &args))));
    }
    // The charger keeps talking meanwhile.
    for _ in 0..5 {
        cp.call("Heartbeat", json!({}))
            .await
            .expect("heartbeat during CLI load");
    }
    for t in tasks {
        let (args, o) = t.await.unwrap();
        assert_exit(&o, 0, &format!("concurrent {args:?}"));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        if args[0] == "status" {
            assert_eq!(v["chargers_connected"], 1);
        } else {
            assert_eq!(charger(&v, "CPC")["connected"], true);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_charger_that_never_answers_times_out_with_exit_1() {
    let srv = TestServer::start_with(|c| c.call_timeout_s = 1).await;
    let mut cp = registered(&srv, "MUTE", "ocpp1.6").await;
    let t0 = Instant::now();
    let (o, (late_id, _)) = tokio::join!(srv.cli(&["charger", "reset", "MUTE"]), cp.expect_call("Reset"));
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    assert_exit(&o, 1, "reset never answered");
    assert!(err(&o).contains("did not answer"), "{}", err(&o));
    // A late answer is ignored and the connection still works for the next command.
    cp.reply(&late_id, json!({"status": "Accepted"})).await;
    let (o, _) = tokio::join!(srv.cli(&["charger", "reset", "MUTE"]), async {
        let (id, _) = cp.expect_call("Reset").await;
        cp.reply(&id, json!({"status": "Accepted"})).await;
    });
    assert_exit(&o, 0, "next reset answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_of_an_unknown_charger_fails_like_logs() {
    let srv = TestServer::start().await;
    let o = srv.cli(&["charger", "logs", "GHOST"]).await;
    assert_exit(&o, 1, "logs of an unknown charger");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .arg("--data-dir")
        .arg(srv.data_dir())
        .args(["charger", "logs", "GHOST", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn voltyard logs --follow");
    let mut guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = guard.0.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = status.expect("`charger logs GHOST --follow` should fail like `charger logs GHOST`, not wait forever");
    assert_eq!(status.code(), Some(1));
    drop(guard);
}

#[test]
fn dlm_plan_answers_each_line_and_exits_2_naming_a_bad_line() {
    let good = r#"{"time":"2026-11-23T08:00:00Z","circuits":[{"id":"grid","parent":null,"max_current":[32,32,32]}],"chargers":[{"id":"CP-1","circuit":"grid","phases":3,"phase_rotation":"L1L2L3","min_current":6,"max_current":32,"session":{"id":"s1","measured_current":[0,0,0],"energy_wh":0}},{"id":"CP-2","circuit":"grid","phases":1,"phase_rotation":"L2L3L1","min_current":6,"max_current":32,"session":{"id":"s2","measured_current":[0,0,0],"energy_wh":0}}]}"#;
    let bad = good.replace(
        "\"circuit\":\"grid\",\"phases\":1",
        "\"circuit\":\"nowhere\",\"phases\":1",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .args(["dlm", "plan"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{good}\n{bad}").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 2, "dlm plan with a bad line");
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{}", out(&o));
    let limits = lines[0]["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 2);
    for l in limits {
        let a = l["current"].as_f64().unwrap();
        assert!(a == 0.0 || (6.0..=32.0).contains(&a), "{l}");
    }
    assert!(
        err(&o).contains("line 2") && err(&o).contains("chargers[1].circuit"),
        "{}",
        err(&o)
    );
}
