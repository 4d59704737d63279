//! Load management end to end: simulated chargers and cars under a tight
//! fuse, steered by the server's live loop through OCPP charging profiles.
//! What is checked is what the server measures from the chargers' own meter
//! values (`dlm status`), the way an operator would see it.

mod common;

use common::TestServer;
use serde_json::Value;
use std::time::Duration;
use voltyard::sim::{Options, Plan, Scenario, Simulation};

const FUSE: f64 = 32.0;
/// Measurement noise and the optimiser's headroom: a phase is over the
/// fuse only beyond this.
const TOLERANCE: f64 = 1.0;

/// Four 16 A three-phase chargers behind a 32 A fuse, cars that stay.
fn scenario(misbehaviour: &str) -> Scenario {
    let text = format!(
        r#"
[site]
id = "tight"
name = "Tight fuse"

[[circuits]]
id = "main"
max_current = [32, 32, 32]

[[chargers]]
prefix = "A16"
count = 2
circuit = "main"
protocol = "1.6"
max_current = 16
meter_interval_s = 1
limit_delay_s = 1

[[chargers]]
prefix = "B201"
count = 2
circuit = "main"
protocol = "2.0.1"
max_current = 16
meter_interval_s = 1
limit_delay_s = 1

[[tokens]]
prefix = "T"
count = 8

[[cars]]
name = "Three-phase car"
battery_kwh = 80
ac_max_current = 16
ac_phases = 3

[arrivals]
first_within_s = 1
gap_s = [600, 600]
dwell_s = [3600, 3600]
soc_percent = [10, 20]

{misbehaviour}
"#
    );
    Scenario::parse(&text, "tight fuse", false).expect("scenario parses")
}

/// The site as an operator sets it up: circuit, chargers on it, tokens.
async fn provision(srv: &TestServer, s: &Scenario) {
    srv.ok(&["site", "add", "tight"]).await;
    srv.ok(&["circuit", "add", "main", "--site", "tight", "--max-current", "32"])
        .await;
    for c in Plan::new(s, 5).chargers {
        srv.ok(&[
            "charger",
            "add",
            &c.id,
            "--site",
            "tight",
            "--circuit",
            "main",
            "--max-current",
            "16",
        ])
        .await;
    }
    for n in 1..=8 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
    }
}

async fn start(tweak: impl FnOnce(&mut voltyard::server::ServerConfig), s: &Scenario) -> (TestServer, Simulation) {
    let srv = TestServer::start_with(|c| {
        c.dlm.tick_ms = 500;
        c.dlm.warmup_s = 0;
        // The simulated chargers follow a limit after 1 s.
        c.dlm.apply_delay_s = 5.0;
        tweak(c)
    })
    .await;
    provision(&srv, s).await;
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: s.clone(),
        seed: 5,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    });
    (srv, sim)
}

async fn status(srv: &TestServer) -> Value {
    srv.cli_json(&["dlm", "status"]).await
}

fn site(v: &Value) -> Value {
    v["sites"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["site"] == "tight"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Measured load on the main circuit per phase (chargers + unmanaged).
fn main_load(v: &Value) -> [f64; 3] {
    let s = site(v);
    let c = s["circuits"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["id"] == "main"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut out = [0.0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        *o = c["measured"][i].as_f64().unwrap_or(0.0);
    }
    out
}

fn charging(v: &Value) -> usize {
    site(v)["chargers"]
        .as_array()
        .map_or(0, |c| c.iter().filter(|x| !x["session"].is_null()).count())
}

/// Every session draws and the fuse holds: the loop has converged.
fn converged(v: &Value, cap: f64) -> bool {
    let drawing = site(v)["chargers"].as_array().is_some_and(|c| {
        c.iter()
            .all(|x| x["measured"][0].as_f64().unwrap_or(0.0) > 1.0 || x["limit"].as_f64() == Some(0.0))
    });
    charging(v) == 4 && drawing && main_load(v).iter().all(|a| *a <= cap + TOLERANCE)
}

fn unmanaged(v: &Value) -> Value {
    site(v)["circuits"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["id"] == "main"))
        .map_or(Value::Null, |c| c["unmanaged"].clone())
}

/// Poll until `f` holds, for at most `secs` seconds.
async fn eventually(srv: &TestServer, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..secs * 2 {
        last = status(srv).await;
        if f(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("condition not reached in {secs} s; last dlm status: {last:#}");
}

/// The frames of a charger, for a failure message.
async fn frames(srv: &TestServer, id: &str) -> String {
    let out = srv.cli(&["charger", "logs", id, "--limit", "60"]).await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// For `secs` seconds, every phase of the main circuit stays within `cap`.
async fn holds(srv: &TestServer, secs: u64, cap: f64) {
    for _ in 0..secs * 2 {
        let v = status(srv).await;
        let load = main_load(&v);
        if load.iter().any(|a| *a > cap + TOLERANCE) {
            let mut logs = String::new();
            for c in site(&v)["chargers"].as_array().into_iter().flatten() {
                if c["measured"][0].as_f64().unwrap_or(0.0) > c["limit"].as_f64().unwrap_or(0.0) + TOLERANCE {
                    let id = c["id"].as_str().unwrap_or_default();
                    logs.push_str(&format!("--- {id}\n{}", frames(srv, id).await));
                }
            }
            panic!("main circuit over {cap} A: {load:?}\n{v:#}\n{logs}");
        }
        for c in site(&v)["chargers"].as_array().into_iter().flatten() {
            let limit = c["limit"].as_f64().unwrap_or(0.0);
            assert!(limit == 0.0 || limit >= 6.0, "limit between 0 and 6 A: {c}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_fuse_is_shared_and_never_exceeded_after_convergence() {
    let s = scenario("");
    let (srv, sim) = start(|_| {}, &s).await;
    // Four cars of 16 A want 64 A on a 32 A fuse.
    eventually(&srv, 30, |v| charging(v) == 4).await;
    eventually(&srv, 20, |v| converged(v, FUSE)).await;
    holds(&srv, 6, FUSE).await;
    // Shared fairly: no session is starved while another gets its maximum.
    let v = status(&srv).await;
    let limits: Vec<f64> = site(&v)["chargers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["limit"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(
        limits.iter().all(|l| *l >= 6.0),
        "a session was paused though 4 × 6 A fit: {limits:?}"
    );
    // Each charger got its safe profiles at boot, then steering profiles
    // that expire, in the unit and shape of its protocol version.
    for (id, max, default, tx) in [
        ("A16-01", "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"),
        ("B201-01", "ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"),
    ] {
        let out = srv.cli(&["charger", "logs", id, "--limit", "1000", "--json"]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let sent: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|j| j["dir"] == "out")
            .filter_map(|j| j["frame"].as_str().map(str::to_string))
            .filter(|f| f.contains("SetChargingProfile"))
            .collect();
        for purpose in [max, default, tx] {
            assert!(
                sent.iter().any(|f| f.contains(purpose)),
                "{id}: no {purpose} in {sent:#?}"
            );
        }
        assert!(
            sent.iter()
                .filter(|f| f.contains(tx))
                .all(|f| f.contains("\"duration\"")),
            "{id}: a steering profile without a duration: {sent:#?}"
        );
    }
    let summary = sim.stop().await;
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_step_and_a_silent_meter_are_answered_within_seconds() {
    let s = scenario("");
    let (srv, sim) = start(|_| {}, &s).await;
    srv.ok(&[
        "meter",
        "bind",
        "main",
        "push",
        "--measures",
        "unmanaged",
        "--timeout",
        "3",
    ])
    .await;
    srv.ok(&["circuit", "set-limit", "main", "--safe-current", "14"]).await;
    srv.ok(&["meter", "push", "main", "0"]).await;
    eventually(&srv, 30, |v| charging(v) == 4).await;
    eventually(&srv, 20, |v| converged(v, FUSE)).await;

    // The building takes 16 A on every phase: chargers get what is left.
    let pusher = {
        let dir = srv.data_dir();
        tokio::spawn(async move {
            for _ in 0..24 {
                let d = dir.clone();
                let args = ["meter", "push", "main", "16"].map(String::from);
                let _ = tokio::task::spawn_blocking(move || common::cli(&d, &args)).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let v = eventually(&srv, 10, |v| {
        unmanaged(v) == serde_json::json!([16.0, 16.0, 16.0]) && converged(v, FUSE)
    })
    .await;
    assert!(
        main_load(&v).iter().all(|a| *a > 20.0),
        "the unmanaged 16 A is part of the measured load: {v:#}"
    );
    holds(&srv, 4, FUSE).await;
    let _ = pusher.await;

    // The meter goes silent: chargers fall back to the safe 14 A in total.
    let v = eventually(&srv, 15, |v| {
        let silent = unmanaged(v).is_null();
        let chargers: f64 = site(v)["chargers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["measured"][0].as_f64().unwrap_or(0.0))
            .sum();
        silent && chargers <= 14.0 + TOLERANCE
    })
    .await;
    let paused = site(&v)["chargers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["limit"].as_f64() == Some(0.0))
        .count();
    assert!(paused >= 2, "14 A feed at most two cars at 6 A: {v:#}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charger_that_ignores_profiles_is_flagged_and_the_others_make_room() {
    let s = scenario("[misbehaviour]\npercent = 25\nquirks = [\"ignore_profiles\"]");
    let (srv, sim) = start(|_| {}, &s).await;
    eventually(&srv, 30, |v| charging(v) == 4).await;
    let v = eventually(&srv, 40, |v| {
        site(v)["non_compliant"].as_array().is_some_and(|n| !n.is_empty())
    })
    .await;
    let bad = site(&v)["non_compliant"][0].as_str().unwrap_or_default().to_string();
    // Its 16 A are reserved; the other three share the remaining 16 A.
    eventually(&srv, 20, |v| converged(v, FUSE)).await;
    holds(&srv, 4, FUSE).await;
    let events = srv.cli_json(&["events"]).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "non_compliant" && e["charger"] == bad.as_str()),
        "no event for {bad}: {events:#}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_profile_is_recorded_once_for_the_operator() {
    let s = scenario("[misbehaviour]\npercent = 25\nquirks = [\"reject_profiles\"]");
    let (srv, sim) = start(|_| {}, &s).await;
    let refusals = |events: &Value| -> Vec<Value> {
        events
            .as_array()
            .map(|a| a.iter().filter(|e| e["kind"] == "profile_rejected").cloned().collect())
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    let first = loop {
        let found = refusals(&srv.cli_json(&["events"]).await);
        if !found.is_empty() {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no profile_rejected event");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert!(
        first[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("refused a charging profile")
    );
    // Steering goes on (and is refused again); the event is not repeated.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let later = refusals(&srv.cli_json(&["events"]).await);
    let mut keys: Vec<String> = later
        .iter()
        .map(|e| {
            let evse = e["detail"]
                .as_str()
                .unwrap_or_default()
                .split(" refused")
                .next()
                .unwrap_or_default();
            format!("{} {evse}", e["charger"])
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "an EVSE's refusal was recorded twice: {later:#?}");
    sim.stop().await;
}

/// A Modbus TCP energy meter (tokio-modbus's own server, not our code):
/// input registers hold per-phase currents as IEEE 754 floats.
mod modbus_meter {
    use std::future;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tokio_modbus::prelude::*;
    use tokio_modbus::server::tcp::{Server, accept_tcp_connection};

    #[derive(Clone)]
    pub struct Meter {
        pub registers: Arc<Mutex<Vec<u16>>>,
    }

    impl tokio_modbus::server::Service for Meter {
        type Request = Request<'static>;
        type Response = Response;
        type Exception = ExceptionCode;
        type Future = future::Ready<Result<Response, ExceptionCode>>;

        fn call(&self, req: Request<'static>) -> Self::Future {
            let regs = self.registers.lock().unwrap();
            future::ready(match req {
                Request::ReadInputRegisters(addr, n) => regs
                    .get(usize::from(addr)..usize::from(addr) + usize::from(n))
                    .map(|r| Response::ReadInputRegisters(r.to_vec()))
                    .ok_or(ExceptionCode::IllegalDataAddress),
                _ => Err(ExceptionCode::IllegalFunction),
            })
        }
    }

    impl Meter {
        pub fn set_currents(&self, first: usize, amps: [f32; 3]) {
            let mut regs = self.registers.lock().unwrap();
            for (i, a) in amps.iter().enumerate() {
                let bits = a.to_bits();
                regs[first + 2 * i] = (bits >> 16) as u16;
                regs[first + 2 * i + 1] = bits as u16;
            }
        }
    }

    pub async fn start() -> (Meter, SocketAddr, tokio::task::JoinHandle<()>) {
        let meter = Meter {
            registers: Arc::new(Mutex::new(vec![0; 64])),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = meter.clone();
        let task = tokio::spawn(async move {
            let server = Server::new(listener);
            let new_service = move |_| Ok(Some(svc.clone()));
            let on_connected = move |stream, addr| {
                let new_service = new_service.clone();
                async move { accept_tcp_connection(stream, addr, new_service) }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
        (meter, addr, task)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_meter_is_polled_and_its_silence_noticed() {
    let (meter, addr, task) = modbus_meter::start().await;
    meter.set_currents(6, [10.5, 11.0, 12.25]);
    let srv = TestServer::start_with(|c| c.dlm.tick_ms = 300).await;
    srv.ok(&["circuit", "add", "grid", "--max-current", "63"]).await;
    let addr = addr.to_string();
    let bind = [
        "meter",
        "bind",
        "grid",
        "modbus",
        "--address",
        &addr,
        "--register",
        "6",
        "--format",
        "f32",
        "--measures",
        "unmanaged",
        "--poll",
        "200",
        "--timeout",
        "2",
    ];
    srv.ok(&bind).await;
    let unmanaged = |v: &Value| {
        v["sites"][0]["circuits"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["id"] == "grid"))
            .map(|c| c["unmanaged"].clone())
            .unwrap_or(Value::Null)
    };
    let v = eventually(&srv, 10, |v| unmanaged(v) == serde_json::json!([10.5, 11.0, 12.25])).await;
    assert_eq!(v["sites"][0]["site"], "default");
    meter.set_currents(6, [20.0, 0.0, 1.5]);
    eventually(&srv, 10, |v| unmanaged(v) == serde_json::json!([20.0, 0.0, 1.5])).await;
    // The meter goes away: after its timeout the circuit shows it silent.
    task.abort();
    eventually(&srv, 10, |v| unmanaged(v).is_null()).await;
    let list = srv.cli_json(&["meter", "list"]).await;
    assert_eq!(list[0]["meter"]["source"]["kind"], "modbus", "{list}");
}

/// A reload reads every charger in a circuit, so a storm of boots and
/// status changes at chargers outside every circuit must not cost one each;
/// the same changes at a charger in a circuit must, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changes_at_chargers_in_a_circuit_make_load_management_reload() {
    let srv = TestServer::start_with(|c| {
        c.dlm.tick_ms = 600_000;
        c.dlm.min_gap_ms = 1;
    })
    .await;
    srv.ok(&["circuit", "add", "main", "--max-current", "32"]).await;
    srv.ok(&["charger", "add", "IN", "--circuit", "main", "--max-current", "16"])
        .await;
    srv.ok(&["charger", "add", "OUT"]).await;
    let reloads = |v: Value| v["reloads"].as_u64().expect("reloads in dlm status");
    async fn statuses(cp: &mut common::Cp) {
        for status in ["Preparing", "Available", "Preparing", "Available"] {
            let payload = serde_json::json!({"connectorId": 1, "errorCode": "NoError", "status": status});
            cp.call("StatusNotification", payload).await.expect("status answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let mut out = srv.cp("OUT", "ocpp1.6").await;
    out.boot16().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = reloads(status(&srv).await);
    statuses(&mut out).await;
    assert_eq!(
        reloads(status(&srv).await),
        before,
        "a charger outside every circuit reloaded"
    );

    let mut inside = srv.cp("IN", "ocpp1.6").await;
    inside.boot16().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let booted = reloads(status(&srv).await);
    assert!(booted > before, "the boot of a charger in a circuit did not reload");
    statuses(&mut inside).await;
    assert!(
        reloads(status(&srv).await) >= booted + 2,
        "status changes at a charger in a circuit did not reload"
    );
}
