//! Durability under `kill -9`: the real `voltyard serve` binary as a child
//! process, a real charge point pipelining MeterValues, SIGKILL in the middle,
//! a restart on the same data dir, and checks that everything the server
//! acknowledged is still there.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `voltyard serve` child process; SIGKILLed (by PID) when dropped.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    data: PathBuf,
    log: PathBuf,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

impl Server {
    fn spawn(data: &Path, port: u16, log: &Path) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_voltyard"))
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data)
            .env("VOLTYARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(logfile))
            .spawn()
            .expect("spawn voltyard serve");
        let mut s = Server {
            child: Some(child),
            addr,
            data: data.to_path_buf(),
            log: log.to_path_buf(),
        };
        s.wait_ready();
        s
    }

    /// Bounded wait until the control socket answers and the port accepts.
    fn wait_ready(&mut self) {
        let sock = self.data.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early ({status}):\n{}", self.log_text());
            }
            // A stale control.sock from a killed server refuses connections,
            // so a successful connect means this server is up.
            if sock.exists()
                && std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready within 10 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (std's Child::kill sends SIGKILL on Unix) and reap.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn vy(data: &Path, args: &[&str]) -> Output {
    let data = data.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&data, &args)).await.unwrap()
}

#[track_caller]
fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn vy_json(data: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let o = vy(data, &a).await;
    ok(&o, &format!("{args:?}"));
    serde_json::from_slice(&o.stdout).expect("CLI printed JSON")
}

fn rfc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const BURST: u64 = 200;
const METER_START: u64 = 10_000;

fn reading(i: u64) -> u64 {
    METER_START + i * 10
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_meter_values_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let port = free_port();
    let mut server = Server::spawn(&data, port, &log);

    ok(&vy(&data, &["charger", "add", "CPK"]).await, "charger add");
    ok(&vy(&data, &["token", "add", "TAGK"]).await, "token add");

    let mut cp = Cp::connect(server.addr, "CPK", "ocpp1.6").await.expect("connect");
    assert_eq!(cp.boot16().await["status"], "Accepted");
    let started = chrono::Utc::now() - chrono::Duration::minutes(10);
    let start_payload =
        json!({"connectorId": 1, "idTag": "TAGK", "meterStart": METER_START, "timestamp": rfc(started)});
    let start = cp
        .call("StartTransaction", start_payload.clone())
        .await
        .expect("start answered");
    assert_eq!(start["idTagInfo"]["status"], "Accepted", "{start}");
    let tx = start["transactionId"].as_u64().expect("transactionId");

    // Pipeline the burst: send everything, then read whatever is answered.
    for i in 1..=BURST {
        let t = started + chrono::Duration::seconds(i as i64);
        let frame = json!([2, format!("mv{i}"), "MeterValues", {
            "connectorId": 1,
            "transactionId": tx,
            "meterValue": [{"timestamp": rfc(t), "sampledValue": [
                {"value": reading(i).to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            ]}]
        }]);
        cp.send_text(&frame.to_string()).await;
    }
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let note = |f: Value, acked: &mut BTreeSet<u64>| {
        let id = f[1].as_str().unwrap_or_default().to_string();
        let n: u64 = id
            .strip_prefix("mv")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected frame {f}"));
        assert_eq!(f[0], 3, "MeterValues {id} answered with {f}");
        acked.insert(n);
    };
    // Kill while the burst is (most likely) still being processed.
    let deadline = Instant::now() + Duration::from_secs(8);
    while acked.len() < 60 && Instant::now() < deadline {
        let f = cp.recv().await.expect("answers to the burst");
        note(f, &mut acked);
    }
    assert!(acked.len() >= 60, "only {} answers before the deadline", acked.len());
    server.kill9();
    // Answers already on the wire were sent after their commit: count them too.
    while let Some(f) = cp.recv().await {
        note(f, &mut acked);
    }
    drop(cp);
    let max_acked = *acked.iter().max().unwrap();
    eprintln!(
        "{} of {BURST} MeterValues acknowledged before the kill (highest mv{max_acked})",
        acked.len()
    );

    let server = Server::spawn(&data, port, &log);
    // The database opened fine after the crash.
    let st = vy_json(&data, &["status"]).await;
    assert_eq!(st["chargers_connected"], 0, "{st}");

    let s = vy_json(&data, &["session", "show", &tx.to_string()]).await;
    assert_eq!(s["id"], tx);
    assert_eq!(s["charger"], "CPK");
    assert_eq!(s["status"], "active");
    let samples = s["samples"].as_u64().expect("samples");
    eprintln!("{samples} samples stored after the restart");
    assert!(
        samples >= acked.len() as u64,
        "{samples} samples stored, but {} MeterValues were acknowledged",
        acked.len()
    );
    assert!(samples <= BURST, "{samples} samples from {BURST} messages");
    assert_eq!(
        s["meter_values"].as_array().map(|a| a.len() as u64),
        Some(samples),
        "sample rows match the counter"
    );
    let energy = s["energy_wh"].as_u64().expect("energy_wh");
    assert!(
        energy >= reading(max_acked) - METER_START,
        "energy {energy} Wh lost the acknowledged reading of mv{max_acked}"
    );
    // Every acknowledged frame is in the journal too, and so is our answer
    // to it: both were committed before the answer was sent.
    let o = vy(&data, &["charger", "logs", "CPK", "--json", "--limit", "100000"]).await;
    ok(&o, "charger logs");
    let entries: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .collect();
    let ids = |dir: &str| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|e| e["dir"] == dir)
            .filter_map(|e| serde_json::from_str::<Value>(e["frame"].as_str()?).ok())
            .filter_map(|f| f[1].as_str().map(str::to_string))
            .collect()
    };
    let (received, answered) = (ids("in"), ids("out"));
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !received.contains(&format!("mv{n}")) || !answered.contains(&format!("mv{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not journaled with its answer: {missing:?}"
    );

    // The charger retries its StartTransaction after the outage: same session.
    let mut cp = Cp::connect(server.addr, "CPK", "ocpp1.6").await.expect("reconnect");
    assert_eq!(cp.boot16().await["status"], "Accepted");
    let again = cp
        .call("StartTransaction", start_payload)
        .await
        .expect("retried start answered");
    assert_eq!(
        again["transactionId"], tx,
        "a retried StartTransaction is the same session: {again}"
    );
    let fresh = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 2, "idTag": "TAGK", "meterStart": 0, "timestamp": rfc(chrono::Utc::now())}),
        )
        .await
        .expect("new start answered");
    let fresh_id = fresh["transactionId"].as_u64().expect("transactionId");
    assert!(fresh_id > tx, "a new transaction gets a bigger id ({fresh_id} vs {tx})");
    let list = vy_json(&data, &["session", "list"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "no duplicate session: {list}");
    assert_eq!(list[0]["id"], fresh_id, "newest first: {list}");
    assert_eq!(list[1]["id"], tx, "newest first: {list}");
    let s = vy_json(&data, &["session", "show", &tx.to_string()]).await;
    assert_eq!(s["samples"].as_u64(), Some(samples), "the retried start added nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_changes_survive_kill_9_right_after_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let port = free_port();
    let mut server = Server::spawn(&data, port, &log);

    ok(
        &vy(
            &data,
            &[
                "site",
                "add",
                "depot",
                "--timezone",
                "Europe/Berlin",
                "--access",
                "private",
            ],
        )
        .await,
        "site add",
    );
    ok(
        &vy(&data, &["site", "allow", "depot", "--group", "drivers"]).await,
        "site allow",
    );
    ok(
        &vy(
            &data,
            &["charger", "add", "CPD", "--site", "depot", "--max-current", "16"],
        )
        .await,
        "charger add",
    );
    ok(
        &vy(&data, &["token", "add", "D1", "--group", "drivers"]).await,
        "token add",
    );
    ok(&vy(&data, &["token", "add", "D2"]).await, "token add");
    ok(&vy(&data, &["token", "block", "D2"]).await, "token block");
    server.kill9();

    let server = Server::spawn(&data, port, &log);
    ok(&vy(&data, &["status"]).await, "status after the crash");
    let c = vy_json(&data, &["charger", "show", "CPD"]).await;
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["site"], "depot");
    assert_eq!(c["max_current"], 16);
    let tokens = vy_json(&data, &["token", "list"]).await;
    let tok = |uid: &str| tokens.as_array().unwrap().iter().find(|t| t["uid"] == uid).cloned();
    assert_eq!(tok("D1").expect("D1 survived")["group"], "drivers");
    assert_eq!(tok("D2").expect("D2 survived")["blocked"], true);
    let site = vy_json(&data, &["site", "show", "depot"]).await;
    assert_eq!(site["rules"][0]["groups"], json!(["drivers"]), "{site}");

    // And the restarted server acts on them.
    let mut cp = Cp::connect(server.addr, "CPD", "ocpp1.6").await.expect("connect");
    assert_eq!(cp.boot16().await["status"], "Accepted");
    let r = cp.call("Authorize", json!({"idTag": "D1"})).await.unwrap();
    assert_eq!(r["idTagInfo"]["status"], "Accepted");
    let r = cp.call("Authorize", json!({"idTag": "D2"})).await.unwrap();
    assert_eq!(r["idTagInfo"]["status"], "Blocked");
}
