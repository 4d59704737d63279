//! The OCPP 2.0.1 device model end to end: reports in parts stored and
//! queried from the CLI (also after a restart, on the real redb file),
//! monitors and device events, external charging limits in load
//! management, and the car's charging needs as the session's target.

mod common;

use common::{Cp, TestServer, cli, ts};
use serde_json::{Value, json};
use std::time::Duration;
use voltyard::server::{ServerConfig, start};

/// Runs the CLI in the background: `charger report` waits for the charger's
/// answer, which the test's charge point gives.
fn cli_bg(srv: &TestServer, args: &[&str]) -> tokio::task::JoinHandle<std::process::Output> {
    let dir = srv.data_dir();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&dir, &args))
}

fn part(request_id: i64, seq: u32, tbc: bool, vars: &[(&str, Option<u32>, &str, &str)]) -> Value {
    let data: Vec<Value> = vars
        .iter()
        .map(|(c, evse, v, value)| {
            let mut comp = json!({"name": c});
            if let Some(e) = evse {
                comp["evse"] = json!({"id": e});
            }
            json!({"component": comp, "variable": {"name": v},
                   "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"},
                                         {"type": "MaxSet", "value": "22000"}],
                   "variableCharacteristics": {"unit": "W", "dataType": "decimal", "maxLimit": 22000,
                                               "supportsMonitoring": true}})
        })
        .collect();
    json!({"requestId": request_id, "generatedAt": ts(0), "seqNo": seq, "tbc": tbc, "reportData": data})
}

async fn report_state(srv: &TestServer, id: &str) -> Value {
    srv.cli_json(&["charger", "report", "status", id]).await
}

async fn boot(srv: &TestServer, id: &str) -> Cp {
    srv.ok(&["charger", "add", id]).await;
    let mut cp = srv.cp(id, "ocpp2.0.1").await;
    assert_eq!(cp.boot201().await["status"], "Accepted");
    cp
}

#[tokio::test]
async fn a_report_in_parts_out_of_order_is_partial_until_the_gap_fills_then_queryable() {
    let srv = TestServer::start().await;
    let mut cp = boot(&srv, "DM1").await;
    let asked = cli_bg(&srv, &["charger", "report", "DM1", "--base", "FullInventory", "--json"]);
    let (mid, p) = cp.expect_call("GetBaseReport").await;
    assert_eq!(p["reportBase"], "FullInventory");
    let rid = p["requestId"].as_i64().expect("requestId");
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    let out = asked.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["request_id"], rid);
    assert_eq!(report_state(&srv, "DM1").await["state"], "requested");

    // Parts 1 and 3 (the last) arrive; 0 and 2 are missing.
    let evse = |n: u32| [("EVSE", Some(n), "Power", "0")];
    cp.call("NotifyReport", part(rid, 1, true, &evse(2))).await.unwrap();
    cp.call(
        "NotifyReport",
        part(rid, 3, false, &[("OCPPCommCtrlr", None, "HeartbeatInterval", "300")]),
    )
    .await
    .unwrap();
    let st = report_state(&srv, "DM1").await;
    assert_eq!(st["state"], "partial");
    assert_eq!(st["missing"], json!([0, 2]));

    cp.call("NotifyReport", part(rid, 2, true, &evse(3))).await.unwrap();
    cp.call("NotifyReport", part(rid, 0, true, &evse(1))).await.unwrap();
    let st = report_state(&srv, "DM1").await;
    assert_eq!(st["state"], "complete", "{st}");
    assert_eq!(st["items"], 8, "two attributes per variable");

    let all = srv.cli_json(&["charger", "variables", "DM1"]).await;
    assert_eq!(all.as_array().unwrap().len(), 8);
    let power = srv
        .cli_json(&[
            "charger",
            "variables",
            "DM1",
            "--component",
            "evse@2",
            "--variable",
            "power",
        ])
        .await;
    let rows = power.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{power}");
    let actual = rows.iter().find(|r| r["attribute"] == "Actual").unwrap();
    assert_eq!(actual["name"], "EVSE@2.Power");
    assert_eq!(actual["unit"], "W");
    assert_eq!(actual["data_type"], "decimal");
    assert_eq!(actual["max"], 22000.0);
    assert_eq!(actual["supports_monitoring"], true);
    assert_eq!(actual["mutability"], "ReadOnly");
    assert_eq!(actual["request_id"], rid);

    // A later value of the same attribute replaces the earlier one.
    let asked = cli_bg(&srv, &["charger", "report", "DM1", "--component", "EVSE@2"]);
    let (mid, p) = cp.expect_call("GetReport").await;
    assert_eq!(
        p["componentVariable"][0]["component"],
        json!({"name": "EVSE", "evse": {"id": 2}})
    );
    let rid2 = p["requestId"].as_i64().unwrap();
    assert!(rid2 > rid, "a fresh requestId");
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    assert!(asked.await.unwrap().status.success());
    let mut p = part(rid2, 0, false, &[("EVSE", Some(2), "Power", "7100")]);
    p["reportData"][0]["variableAttribute"] = json!([{"value": "7100"}]);
    cp.call("NotifyReport", p).await.unwrap();
    let power = srv
        .cli_json(&[
            "charger",
            "variables",
            "DM1",
            "--component",
            "EVSE@2",
            "--variable",
            "Power",
        ])
        .await;
    let actual = power
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["attribute"] == "Actual")
        .unwrap()
        .clone();
    assert_eq!(actual["value"], "7100");
    assert_eq!(actual["request_id"], rid2);
    assert_eq!(
        srv.cli_json(&["charger", "variables", "DM1"])
            .await
            .as_array()
            .unwrap()
            .len(),
        8
    );

    // The charger's refusal is what the operator sees (exit 1) and what the status says.
    let asked = cli_bg(&srv, &["charger", "report", "DM1", "--base", "SummaryInventory"]);
    let (mid, _) = cp.expect_call("GetBaseReport").await;
    cp.reply(&mid, json!({"status": "NotSupported"})).await;
    assert_eq!(asked.await.unwrap().status.code(), Some(1));
    assert_eq!(report_state(&srv, "DM1").await["state"], "NotSupported");
}

/// Start a server on `dir` again: the previous one's database is released
/// once its tasks have wound down.
async fn restart(dir: std::path::PathBuf) -> voltyard::server::Running {
    for _ in 0..100 {
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.clone(),
            ..Default::default()
        };
        if let Ok(r) = start(cfg).await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start again on its data dir");
}

#[tokio::test]
async fn a_new_charger_is_asked_for_its_full_inventory_at_boot_and_the_model_survives_a_restart() {
    let mut srv = TestServer::start_with(|c| c.device_model.report_on_boot = true).await;
    let mut cp = boot(&srv, "DM2").await;
    let (mid, p) = cp.expect_call("GetBaseReport").await;
    assert_eq!(p["reportBase"], "FullInventory");
    let rid = p["requestId"].as_i64().unwrap();
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    cp.call("NotifyReport", part(rid, 0, true, &[("EVSE", Some(1), "Power", "11")]))
        .await
        .unwrap();
    cp.call(
        "NotifyReport",
        part(rid, 1, false, &[("SecurityCtrlr", None, "SecurityProfile", "1")]),
    )
    .await
    .unwrap();
    assert_eq!(report_state(&srv, "DM2").await["state"], "complete");
    // The same charger booting again unchanged is not asked again.
    cp.boot201().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(cp);

    srv.running.take().unwrap().stop();
    let again = restart(srv.data_dir()).await;
    let st = report_state(&srv, "DM2").await;
    assert_eq!(
        (st["state"].as_str(), st["request_id"].as_i64()),
        (Some("complete"), Some(rid))
    );
    let vars = srv.cli_json(&["charger", "variables", "DM2"]).await;
    let names: Vec<&str> = vars
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"EVSE@1.Power") && names.contains(&"SecurityCtrlr.SecurityProfile"),
        "{names:?}"
    );
    srv.addr = again.addr;
    srv.running = Some(again);

    // New firmware: a new inventory is due.
    let mut cp = srv.cp("DM2", "ocpp2.0.1").await;
    cp.call(
        "BootNotification",
        json!({"reason": "FirmwareUpdate", "chargingStation": {"model": "M201", "vendorName": "V201", "firmwareVersion": "2.1"}}),
    )
    .await
    .unwrap();
    let (_, p) = cp.expect_call("GetBaseReport").await;
    assert!(p["requestId"].as_i64().unwrap() > rid);
}

#[tokio::test]
async fn a_16_charger_s_configuration_is_its_device_model() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "DM16"]).await;
    let mut cp = srv.cp("DM16", "ocpp1.6").await;
    cp.boot16().await;
    let asked = cli_bg(&srv, &["charger", "report", "DM16"]);
    let (mid, p) = cp.expect_call("GetConfiguration").await;
    assert_eq!(p, json!({}));
    cp.reply(
        &mid,
        json!({"configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "300"},
                                    {"key": "NumberOfConnectors", "readonly": true, "value": "2"}]}),
    )
    .await;
    assert!(asked.await.unwrap().status.success());
    let st = report_state(&srv, "DM16").await;
    assert_eq!(
        (st["state"].as_str(), st["what"].as_str()),
        (Some("complete"), Some("GetConfiguration"))
    );
    let vars = srv.cli_json(&["charger", "variables", "DM16"]).await;
    let n = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "NumberOfConnectors")
        .unwrap();
    assert_eq!((n["component"].as_str(), n["value"].as_str()), (Some(""), Some("2")));
    assert_eq!(n["mutability"], "ReadOnly");

    // `config get` answers join the same model.
    let asked = cli_bg(&srv, &["charger", "config", "get", "DM16", "HeartbeatInterval"]);
    let (mid, _) = cp.expect_call("GetConfiguration").await;
    cp.reply(
        &mid,
        json!({"configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "60"}]}),
    )
    .await;
    assert!(asked.await.unwrap().status.success());
    let hb = srv
        .cli_json(&["charger", "variables", "DM16", "--variable", "HeartbeatInterval"])
        .await;
    assert_eq!(hb[0]["value"], "60");
    // 1.6 has no monitoring: refused before anything is sent.
    let out = srv.cli(&["charger", "monitor", "list", "DM16"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

fn event(id: i64, monitor: i64, value: &str, cleared: bool) -> Value {
    json!({"generatedAt": ts(0), "seqNo": 0, "eventData": [{
        "eventId": id, "timestamp": ts(0), "trigger": "Alerting", "actualValue": value, "cleared": cleared,
        "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
        "variableMonitoringId": monitor, "eventNotificationType": "CustomMonitor"}]})
}

#[tokio::test]
async fn a_monitor_set_from_the_cli_fires_an_event_with_its_severity_and_a_later_one_clears_it() {
    let srv = TestServer::start().await;
    let mut cp = boot(&srv, "DM3").await;
    let asked = cli_bg(
        &srv,
        &[
            "charger",
            "monitor",
            "set",
            "DM3",
            "--component",
            "EVSE@1",
            "--variable",
            "Power",
            "--type",
            "UpperThreshold",
            "--value",
            "7000",
            "--severity",
            "2",
            "--json",
        ],
    );
    let (mid, p) = cp.expect_call("SetVariableMonitoring").await;
    let d = &p["setMonitoringData"][0];
    assert_eq!(
        (d["type"].as_str(), d["severity"].as_u64()),
        (Some("UpperThreshold"), Some(2))
    );
    assert_eq!(d["component"], json!({"name": "EVSE", "evse": {"id": 1}}));
    cp.reply(
        &mid,
        json!({"setMonitoringResult": [{"id": 41, "status": "Accepted", "type": "UpperThreshold", "severity": 2,
                                        "component": d["component"], "variable": d["variable"]}]}),
    )
    .await;
    let out = asked.await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"], 41);
    let listed = srv.cli_json(&["charger", "monitor", "list", "DM3", "--stored"]).await;
    assert_eq!(listed["monitors"][0]["id"], 41);

    cp.call("NotifyEvent", event(1, 41, "7400", false)).await.unwrap();
    cp.call("NotifyEvent", event(2, 99, "1", false)).await.unwrap();
    let events = srv.cli_json(&["events"]).await;
    let device: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "device_event")
        .collect();
    assert_eq!(device.len(), 2);
    assert_eq!(device[0]["device"]["severity"], 2);
    assert_eq!(device[0]["device"]["subject"], "EVSE@1.Power");
    assert_eq!(device[0]["device"]["cleared"], false);
    assert!(device[0]["detail"].as_str().unwrap().contains("7400"));
    assert_eq!(
        device[1]["device"]["severity"],
        Value::Null,
        "an unknown monitor has no severity"
    );

    cp.call("NotifyEvent", event(3, 41, "6100", true)).await.unwrap();
    let events = srv.cli_json(&["events"]).await;
    let last = events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "device_event")
        .unwrap();
    assert_eq!(last["device"]["cleared"], true);

    // The monitoring report replaces what was stored.
    let asked = cli_bg(&srv, &["charger", "monitor", "list", "DM3", "--json"]);
    let (mid, p) = cp.expect_call("GetMonitoringReport").await;
    let rid = p["requestId"].as_i64().unwrap();
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    cp.call(
        "NotifyMonitoringReport",
        json!({"requestId": rid, "generatedAt": ts(0), "seqNo": 0, "tbc": false, "monitor": [
            {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
             "variableMonitoring": [{"id": 7, "transaction": false, "value": 100, "type": "Delta", "severity": 8}]}]}),
    )
    .await
    .unwrap();
    let out = asked.await.unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["state"], "complete");
    let ids: Vec<i64> = v["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [7]);

    let asked = cli_bg(&srv, &["charger", "monitor", "clear", "DM3", "7"]);
    let (mid, p) = cp.expect_call("ClearVariableMonitoring").await;
    assert_eq!(p["id"], json!([7]));
    cp.reply(
        &mid,
        json!({"clearMonitoringResult": [{"id": 7, "status": "Accepted"}]}),
    )
    .await;
    assert!(asked.await.unwrap().status.success());
    let listed = srv.cli_json(&["charger", "monitor", "list", "DM3", "--stored"]).await;
    assert_eq!(listed["monitors"], json!([]));
}

async fn dlm_entry(srv: &TestServer, id: &str) -> Value {
    let v = srv.cli_json(&["dlm", "status"]).await;
    v["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["chargers"].as_array().cloned().unwrap_or_default())
        .find(|c| c["id"] == id)
        .unwrap_or(Value::Null)
}

async fn eventually(srv: &TestServer, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let c = dlm_entry(srv, id).await;
        if f(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("{what}: {}", dlm_entry(srv, id).await);
}

fn started(tx: &str, evse: u32) -> Value {
    json!({"eventType": "Started", "timestamp": ts(0), "triggerReason": "Authorized", "seqNo": 0,
           "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
           "evse": {"id": evse, "connectorId": 1}, "idToken": {"idToken": "TAG", "type": "ISO14443"},
           "meterValue": [{"timestamp": ts(0), "sampledValue": [
               {"value": 1000, "measurand": "Energy.Active.Import.Register"},
               {"value": 16, "measurand": "Current.Import", "unitOfMeasure": {"unit": "A"}}]}]})
}

#[tokio::test]
async fn an_external_limit_bounds_the_charger_in_dlm_status_until_cleared() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "TAG"]).await;
    srv.ok(&["circuit", "add", "main", "--max-current", "63"]).await;
    srv.ok(&["charger", "add", "DM4", "--circuit", "main", "--max-current", "16"])
        .await;
    let mut cp = srv.cp("DM4", "ocpp2.0.1").await;
    cp.boot201().await;
    cp.call("TransactionEvent", started("T4", 1)).await.unwrap();
    let c = eventually(&srv, "DM4", "charging at its maximum", |c| {
        c["limit"].as_f64() == Some(16.0)
    })
    .await;
    assert!(c.get("cap").is_none(), "{c}");

    cp.call(
        "NotifyChargingLimit",
        json!({"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": true},
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900}]}]}),
    )
    .await
    .unwrap();
    let c = eventually(&srv, "DM4", "bounded by the EMS", |c| c["cap"]["source"] == "EMS").await;
    assert_eq!(c["cap"]["current"], 10.0, "6900 W on three phases at 230 V");
    let c = eventually(&srv, "DM4", "allocation lowered", |c| {
        c["limit"].as_f64().is_some_and(|l| l <= 10.0)
    })
    .await;
    assert!(c["limit"].as_f64().unwrap() > 0.0);
    let events = srv.cli_json(&["events"]).await;
    assert!(events.as_array().unwrap().iter().any(|e| e["kind"] == "charging_limit"));

    // Another source's clearing does not lift the EMS limit.
    cp.call(
        "ClearedChargingLimit",
        json!({"chargingLimitSource": "SO", "evseId": 1}),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dlm_entry(&srv, "DM4").await["cap"]["source"], "EMS");
    cp.call("ClearedChargingLimit", json!({"chargingLimitSource": "EMS"}))
        .await
        .unwrap();
    eventually(&srv, "DM4", "the bound is lifted", |c| {
        c.get("cap").is_none() && !c.is_null()
    })
    .await;

    // A limit the charger never clears is lifted by the operator: only the
    // source named, then every one.
    for source in ["EMS", "SO"] {
        let limit = json!({"evseId": 1, "chargingLimit": {"chargingLimitSource": source},
                           "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}]}]});
        cp.call("NotifyChargingLimit", limit).await.unwrap();
    }
    eventually(&srv, "DM4", "bounded again", |c| c["cap"]["current"] == 8.0).await;
    let lifted = srv.cli_json(&["dlm", "clear-limit", "DM4", "--source", "CSO"]).await;
    assert_eq!(lifted["cleared"], 0, "no limit of that source");
    let lifted = srv
        .cli_json(&["dlm", "clear-limit", "DM4", "--evse", "1", "--source", "EMS"])
        .await;
    assert_eq!(lifted["cleared"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dlm_entry(&srv, "DM4").await["cap"]["current"], 8.0, "SO still limits");
    let lifted = srv.cli_json(&["dlm", "clear-limit", "DM4"]).await;
    assert_eq!(lifted["cleared"], 1);
    eventually(&srv, "DM4", "the operator lifted every bound", |c| {
        c.get("cap").is_none() && !c.is_null()
    })
    .await;
    let unknown = srv.cli(&["dlm", "clear-limit", "NOPE"]).await;
    common::assert_exit(&unknown, 1, "an unknown charger");
    let events = srv.cli_json(&["events"]).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "charging_limit_cleared"
                && e["detail"].as_str().unwrap_or("").contains("the operator lifted")),
        "{events}"
    );
}

#[tokio::test]
async fn the_car_s_charging_needs_become_the_session_target_before_or_after_the_start() {
    let srv = TestServer::start().await;
    srv.ok(&["token", "add", "TAG"]).await;
    let mut cp = boot(&srv, "DM5").await;
    let departure = ts(120);
    let needs = |evse: u32, wh: u32| {
        json!({"evseId": evse, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase",
               "departureTime": departure,
               "acChargingParameters": {"energyAmount": wh, "evMinCurrent": 6, "evMaxCurrent": 13, "evMaxVoltage": 400}}})
    };
    // After the start.
    cp.call("TransactionEvent", started("T5a", 1)).await.unwrap();
    assert_eq!(
        cp.call("NotifyEVChargingNeeds", needs(1, 24_000)).await.unwrap()["status"],
        "Accepted"
    );
    // Before the start (ISO 15118 cars may talk first).
    cp.call("NotifyEVChargingNeeds", needs(2, 9_000)).await.unwrap();
    cp.call("TransactionEvent", started("T5b", 2)).await.unwrap();

    let sessions = srv.cli_json(&["session", "list"]).await;
    for (evse, wh) in [(1, 24_000), (2, 9_000)] {
        let s = sessions.as_array().unwrap().iter().find(|s| s["evse"] == evse).unwrap();
        let shown = srv.cli_json(&["session", "show", &s["id"].to_string()]).await;
        assert_eq!(shown["energy_target_wh"], wh, "EVSE {evse}: {shown}");
        let dep = chrono::DateTime::parse_from_rfc3339(shown["departure"].as_str().unwrap()).unwrap();
        let want = chrono::DateTime::parse_from_rfc3339(&departure).unwrap();
        assert_eq!(dep, want);
        assert_eq!(shown["ev"]["needs"]["max_current_a"], 13.0, "{shown}");
    }
}

/// One 2.0.1 wallbox with an ISO 15118 car, under an energy manager that
/// caps it to 8 A from the 3rd second for a minute.
fn sim_scenario() -> voltyard::sim::Scenario {
    let text = r#"
[site]
id = "dm"
name = "Device model"

[[circuits]]
id = "dmgrid"
max_current = [63, 63, 63]

[[chargers]]
prefix = "SIM201"
count = 1
circuit = "dmgrid"
protocol = "2.0.1"
max_current = 16
meter_interval_s = 1
limit_delay_s = 1
external_limit = { current_a = 8, after_s = 3, for_s = 60 }

[[tokens]]
prefix = "T"
count = 2

[[cars]]
name = "ISO car"
battery_kwh = 60
ac_max_current = 16
ac_phases = 3
iso15118 = true

[arrivals]
first_within_s = 1
gap_s = [600, 600]
dwell_s = [3600, 3600]
soc_percent = [20, 20]
"#;
    voltyard::sim::Scenario::parse(text, "device model", false).expect("scenario parses")
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> Option<Value>) -> Value {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_reports_in_parts_fires_monitors_tells_its_needs_and_its_limit() {
    let srv = TestServer::start_with(|c| {
        c.device_model.report_on_boot = true;
        c.dlm.tick_ms = 500;
        c.dlm.warmup_s = 0;
    })
    .await;
    srv.ok(&["site", "add", "dm"]).await;
    srv.ok(&["circuit", "add", "dmgrid", "--site", "dm", "--max-current", "63"])
        .await;
    srv.ok(&[
        "charger",
        "add",
        "SIM201-01",
        "--site",
        "dm",
        "--circuit",
        "dmgrid",
        "--max-current",
        "16",
    ])
    .await;
    for n in 1..=2 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
        // The ISO 15118 car does Plug & Charge with its driver's contract id.
        let emaid = voltyard::sim::pnc_emaid(&format!("T{n:04}"));
        srv.ok(&["token", "add", &emaid, "--kind", "contract"]).await;
    }
    let sim = voltyard::sim::Simulation::start(voltyard::sim::Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: sim_scenario(),
        seed: 3,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    });
    // The inventory asked at boot arrives in several parts.
    let st = wait_for("the boot inventory", async || {
        let st = report_state(&srv, "SIM201-01").await;
        (st["state"] == "complete").then_some(st)
    })
    .await;
    assert!(st["parts"].as_array().unwrap().len() > 1, "{st}");
    let vars = srv.cli_json(&["charger", "variables", "SIM201-01"]).await;
    assert_eq!(vars.as_array().unwrap().len() as u64, st["items"].as_u64().unwrap());
    let power = srv
        .cli_json(&[
            "charger",
            "variables",
            "SIM201-01",
            "--component",
            "EVSE@1",
            "--variable",
            "Power",
        ])
        .await;
    assert_eq!(power[0]["supports_monitoring"], true);
    // A variable without monitoring support is refused as a real charger would.
    let out = srv
        .cli(&[
            "charger",
            "monitor",
            "set",
            "SIM201-01",
            "--component",
            "OCPPCommCtrlr",
            "--variable",
            "HeartbeatInterval",
            "--type",
            "Delta",
            "--value",
            "1",
            "--severity",
            "5",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));

    // The car tells its need: the session's target.
    let session = wait_for("a session with the car's target", async || {
        let list = srv.cli_json(&["session", "list", "--active"]).await;
        list.as_array()?
            .iter()
            .find(|s| s["energy_target_wh"] == 48_000)
            .cloned()
    })
    .await;
    assert!(session["departure"].is_string());

    // A monitor on the live power fires once the car draws more than 1 kW.
    srv.ok(&[
        "charger",
        "monitor",
        "set",
        "SIM201-01",
        "--component",
        "EVSE@1",
        "--variable",
        "Power",
        "--type",
        "UpperThreshold",
        "--value",
        "1000",
        "--severity",
        "3",
    ])
    .await;
    let fired = wait_for("a device event", async || {
        let ev = srv.cli_json(&["events", "--limit", "500"]).await;
        ev.as_array()?.iter().find(|e| e["kind"] == "device_event").cloned()
    })
    .await;
    assert_eq!(fired["device"]["severity"], 3);
    assert_eq!(fired["device"]["subject"], "EVSE@1.Power");
    assert_eq!(fired["device"]["cleared"], false);
    let listed = srv.cli_json(&["charger", "monitor", "list", "SIM201-01"]).await;
    assert_eq!(listed["report"]["state"], "complete");
    assert_eq!(listed["monitors"].as_array().unwrap().len(), 1);

    // The energy manager's cap is load management's bound.
    let capped = wait_for("the external limit in dlm status", async || {
        let c = dlm_entry(&srv, "SIM201-01").await;
        (c["cap"]["source"] == "EMS").then_some(c)
    })
    .await;
    assert_eq!(capped["cap"]["current"], 8.0);
    sim.stop().await;
}
