//! The simulator against our server: whole sessions over real WebSockets,
//! the server's commands reaching simulated chargers, and chargers that
//! drop out and replay.

mod common;

use common::TestServer;
use serde_json::Value;
use std::time::Duration;
use voltyard::server::UnknownChargers;
use voltyard::sim::{Options, Scenario, Simulation};

/// A fast site: short visits, meter values every second.
fn scenario(extra: &str, groups: &str) -> Scenario {
    let text = format!(
        r#"
[site]
id = "test"
name = "Test site"

{groups}

[[tokens]]
prefix = "T"
count = 20

[[cars]]
name = "Test car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100

{extra}
"#
    );
    Scenario::parse(&text, "test scenario", false).expect("test scenario parses")
}

const TWO_AND_TWO: &str = r#"
[[chargers]]
prefix = "S16"
count = 2
protocol = "1.6"
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true

[[chargers]]
prefix = "S201"
count = 2
protocol = "2.0.1"
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true
"#;

async fn server_with_tokens() -> TestServer {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    for n in 1..=20 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
    }
    srv
}

fn start(srv: &TestServer, s: Scenario) -> Simulation {
    Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: s,
        seed: 11,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    })
}

/// Poll `f` until it holds, for at most `secs` seconds.
async fn eventually<F: AsyncFn() -> bool>(secs: u64, f: F) -> bool {
    for _ in 0..secs * 4 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

async fn sessions(srv: &TestServer) -> Vec<Value> {
    srv.cli_json(&["session", "list"])
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_site_charges_on_both_versions_and_the_server_records_it() {
    let srv = server_with_tokens().await;
    let s = scenario(
        "[arrivals]\nfirst_within_s = 1\ngap_s = [1, 2]\ndwell_s = [4, 6]\nsoc_percent = [20, 30]",
        TWO_AND_TWO,
    );
    let sim = start(&srv, s);
    let done = eventually(40, async || {
        let list = sessions(&srv).await;
        let completed = |proto: &str| {
            list.iter()
                .filter(|x| x["status"] == "completed" && x["charger"].as_str().is_some_and(|c| c.starts_with(proto)))
                .count()
        };
        completed("S16-") >= 2 && completed("S201-") >= 2
    })
    .await;
    let live = sim.summary();
    assert_eq!(live.accepted, 4, "{live:?}");
    let summary = sim.stop().await;
    assert!(done, "sessions did not complete on both versions: {summary:?}");
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    assert_eq!(summary.call_errors_received, 0, "{:?}", summary.errors);
    assert_eq!(summary.timeouts, 0, "{:?}", summary.errors);
    assert!(summary.energy_wh > 0);

    let list = sessions(&srv).await;
    for x in list.iter().filter(|x| x["status"] == "completed") {
        // Minutes of 11 kW: real energy, taken from the meter register
        // (which does not start at zero).
        let e = x["energy_wh"].as_i64().unwrap();
        assert!(e > 0 && e < 50_000, "{x}");
        assert!(x["meter_start_wh"].as_i64().unwrap() > 1_000_000, "{x}");
        let id = x["id"].as_u64().unwrap().to_string();
        let shown = srv.cli_json(&["session", "show", &id]).await;
        let samples = shown["meter_values"].as_array().cloned().unwrap_or_default();
        assert!(
            samples.iter().any(|s| s["measurand"] == "Power.Active.Import"),
            "no power samples in {id}"
        );
        let signed: Vec<&Value> = samples.iter().filter(|s| !s["signed"].is_null()).collect();
        assert!(
            signed.len() >= 2,
            "session {id} lacks its signed begin/end readings: {signed:?}"
        );
        assert!(
            signed.iter().all(|s| {
                let d = s["signed"]["data"].as_str().unwrap_or_default();
                d.starts_with("OCMF|")
                    || data_encoding::BASE64
                        .decode(d.as_bytes())
                        .is_ok_and(|b| b.starts_with(b"OCMF|"))
            }),
            "{signed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_commands_reach_simulated_chargers() {
    let srv = server_with_tokens().await;
    // No car arrives by itself: every session here is a remote start.
    let s = scenario(
        "[arrivals]\nfirst_within_s = 3600\ndwell_s = [600, 600]",
        r#"
[[chargers]]
prefix = "C16"
count = 1
protocol = "1.6"
meter_interval_s = 1

[[chargers]]
prefix = "C201"
count = 1
protocol = "2.0.1"
connectors = 2
meter_interval_s = 1
"#,
    );
    let sim = start(&srv, s);
    assert!(
        eventually(20, async || {
            let list = srv.cli_json(&["charger", "list"]).await;
            list.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|c| c["connected"] == true))
        })
        .await
    );

    let cfg = srv
        .cli_json(&["charger", "config", "get", "C16-01", "MeterValueSampleInterval"])
        .await;
    assert!(cfg.to_string().contains("\"1\""), "{cfg}");
    srv.ok(&["charger", "config", "set", "C16-01", "MeterValueSampleInterval", "2"])
        .await;
    let refused = srv
        .cli(&["charger", "config", "set", "C16-01", "NumberOfConnectors", "4"])
        .await;
    assert_eq!(refused.status.code(), Some(1), "a read-only key must be refused");
    let v = srv
        .cli_json(&["charger", "config", "get", "C201-01", "OCPPCommCtrlr.HeartbeatInterval"])
        .await;
    assert!(
        v.to_string().contains("300") || v.to_string().contains("\"value\""),
        "{v}"
    );

    srv.ok(&["session", "start", "C16-01", "--token", "T0001"]).await;
    srv.ok(&["session", "start", "C201-01", "--token", "T0002", "--evse", "2"])
        .await;
    let started = eventually(15, async || {
        sessions(&srv).await.iter().filter(|x| x["status"] == "active").count() == 2
    })
    .await;
    assert!(
        started,
        "remote starts did not become sessions: {:?}",
        sessions(&srv).await
    );
    let list = sessions(&srv).await;
    let on201 = list.iter().find(|x| x["charger"] == "C201-01").unwrap();
    assert_eq!(on201["evse"], 2);
    assert_eq!(on201["token"], "T0002");

    srv.ok(&["charger", "trigger", "C16-01", "StatusNotification"]).await;
    srv.ok(&["charger", "trigger", "C201-01", "MeterValues"]).await;
    // A busy connector made inoperative is scheduled, not refused.
    srv.ok(&["charger", "availability", "C16-01", "inoperative"]).await;

    for x in sessions(&srv).await {
        srv.ok(&["session", "stop", &x["id"].to_string()]).await;
    }
    assert!(
        eventually(15, async || {
            sessions(&srv).await.iter().all(|x| x["status"] == "completed")
        })
        .await,
        "{:?}",
        sessions(&srv).await
    );
    let stopped = sessions(&srv).await;
    assert!(stopped.iter().all(|x| x["stop_reason"] == "Remote"), "{stopped:?}");

    srv.ok(&["charger", "reset", "C201-01"]).await;
    assert!(
        eventually(20, async || {
            let ev = srv.cli_json(&["events"]).await;
            ev.to_string().contains("RemoteReset")
        })
        .await,
        "the reset charger did not boot again"
    );
    let summary = sim.stop().await;
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    assert!(summary.calls_answered >= 8, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chargers_that_drop_out_replay_and_nothing_is_lost_or_doubled() {
    let srv = server_with_tokens().await;
    let s = scenario(
        "[arrivals]\nfirst_within_s = 1\ngap_s = [1, 2]\ndwell_s = [5, 8]\nsoc_percent = [20, 30]\n\n\
         [misbehaviour]\npercent = 100\nquirks = [\"drop_and_replay\"]\ndrop_every_s = [3, 5]\noffline_s = 3",
        TWO_AND_TWO,
    );
    let sim = start(&srv, s);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let summary = sim.stop().await;
    assert!(summary.disconnects >= 4, "{summary:?}");
    assert!(summary.replayed > 0, "nothing was queued while offline: {summary:?}");
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    let list = sessions(&srv).await;
    assert!(
        list.iter().filter(|x| x["status"] == "completed").count() >= 2,
        "{list:?}"
    );
    // Each charger transaction is one server session, however often it was
    // replayed.
    let mut keys: Vec<String> = list
        .iter()
        .map(|x| format!("{}/{}", x["charger"], x["transaction_id"]))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "duplicate sessions: {list:?}");
    // A replayed stop carries the charger's stop time, not the replay time.
    for x in list.iter().filter(|x| x["status"] == "completed") {
        assert!(x["energy_wh"].as_i64().unwrap() >= 0, "{x}");
    }
}

#[test]
fn plan_is_deterministic_from_the_seed() {
    let run = |seed: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
            .args(["simulate", "--scenario", "office", "--plan", "--json", "--seed", seed])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let a = run("5");
    assert_eq!(a, run("5"));
    assert_ne!(a, run("6"));
    let plan: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(plan.as_array().unwrap().len(), 40);
}

#[test]
fn bad_scenarios_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    let text = voltyard::sim::scenario::BUILT_IN[0]
        .1
        .replace("max_current = 16", "max_current = 99");
    std::fs::write(&f, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .args(["simulate", "--plan", "--scenario"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chargers[0].max_current"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_charger_waits_and_boots_again_when_accepted() {
    let srv = TestServer::start().await;
    let s = scenario(
        "[arrivals]\nfirst_within_s = 3600",
        "[[chargers]]\nprefix = \"P\"\ncount = 1\nprotocol = \"1.6\"\n\n[[chargers]]\nprefix = \"Q\"\ncount = 1\nprotocol = \"2.0.1\"",
    );
    let sim = start(&srv, s);
    let pending = eventually(15, async || {
        let list = srv.cli_json(&["charger", "list"]).await;
        list.as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|c| c["status"] == "pending" && c["connected"] == true))
    })
    .await;
    assert!(pending, "{}", srv.cli_json(&["charger", "list"]).await);
    assert_eq!(sim.summary().accepted, 0);
    srv.ok(&["charger", "accept", "P-01"]).await;
    srv.ok(&["charger", "accept", "Q-01"]).await;
    // The server triggers a boot; the charger must not sit out its retry interval.
    let accepted = eventually(10, async || sim.summary().accepted == 2).await;
    let summary = sim.stop().await;
    assert!(accepted, "{summary:?}");
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
}

#[test]
fn demo_runs_and_can_run_again_on_a_kept_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["demo", "--duration", "6s", "--listen", "127.0.0.1:0", "--json"])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
        assert_eq!(summary["chargers"], 12, "{summary}");
        assert_eq!(summary["accepted"], 12, "{summary}");
        assert!(summary["sessions_started"].as_u64().unwrap() > 0, "{summary}");
        assert_eq!(summary["schema_violations"], 0, "{summary}");
        assert_eq!(summary["call_errors_received"], 0, "{summary}");
    }
}
