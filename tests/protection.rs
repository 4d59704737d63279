//! Protection of the server: admission control for boot storms and the
//! per-connection message rate limit, against the real server.

mod common;

use common::{TestServer, ts};
use serde_json::json;
use std::time::{Duration, Instant};
use voltyard::domain::admission::AdmissionConfig;
use voltyard::server::UnknownChargers;
use voltyard::sim::{Options, Scenario, Simulation};

fn storm_site(chargers: usize) -> Scenario {
    let text = format!(
        r#"
[site]
id = "storm"
name = "Storm"

[[chargers]]
prefix = "ST"
count = {chargers}
protocol = "1.6"

[[tokens]]
prefix = "T"
count = 1

[[cars]]
name = "Car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3

[arrivals]
first_within_s = 3600
"#
    );
    Scenario::parse(&text, "storm", false).expect("scenario parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_storm_is_admitted_at_the_configured_rate_and_everyone_gets_in() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.admission = AdmissionConfig {
            boot_rate_per_s: 10.0,
            boot_burst: 5,
            retry_min_s: 1,
            retry_max_s: 4,
        };
    })
    .await;
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: storm_site(40),
        seed: 3,
        validate: true,
        connect_rate: 1000,
        call_timeout: Duration::from_secs(10),
    });
    let started = Instant::now();
    let mut accepted = 0;
    while started.elapsed() < Duration::from_secs(30) {
        accepted = sim.summary().accepted;
        if accepted == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let summary = sim.stop().await;
    assert_eq!(accepted, 40, "every charger gets in eventually: {summary:?}");
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    // 40 boots through a gate of 5 + 10/s cannot all pass in under 3.5 s.
    assert!(took >= Duration::from_millis(3400), "the gate held them back: {took:?}");
    let status = srv.cli_json(&["status"]).await;
    assert!(
        status["boots_deferred"].as_u64().is_some_and(|n| n >= 35),
        "at least 35 of 40 waited: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charger_with_an_open_transaction_is_admitted_first() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.admission = AdmissionConfig {
            boot_rate_per_s: 0.01,
            boot_burst: 1,
            retry_min_s: 5,
            retry_max_s: 60,
        };
    })
    .await;
    srv.ok(&["token", "add", "TAG1"]).await;
    let mut busy = srv.cp("BUSY", "ocpp1.6").await;
    assert_eq!(busy.boot16().await["status"], "Accepted", "the burst");
    let started = busy
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": ts(0)}),
        )
        .await
        .expect("start answered");
    assert_eq!(started["idTagInfo"]["status"], "Accepted");

    let mut idle = srv.cp("IDLE", "ocpp1.6").await;
    let r = idle.boot16().await;
    assert_eq!(r["status"], "Pending", "the bucket is empty: {r}");
    let interval = r["interval"].as_u64().expect("an interval");
    assert!(
        (5..=60).contains(&interval),
        "retry between retry_min and retry_max: {interval}"
    );

    // The busy charger reboots: its driver is waiting, it goes first.
    assert_eq!(busy.boot16().await["status"], "Accepted");
    assert_eq!(idle.boot16().await["status"], "Pending");
    // A deferred charger stays registered as accepted: only its boot waits.
    let list = srv.cli_json(&["charger", "show", "IDLE"]).await;
    assert_eq!(list["status"], "accepted", "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charger_that_floods_is_slowed_down_and_the_others_are_not() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.max_messages_per_s = 20.0;
        c.message_burst = 5;
    })
    .await;
    let mut flood = srv.cp("FLOOD", "ocpp1.6").await;
    let mut calm = srv.cp("CALM", "ocpp1.6").await;
    let started = Instant::now();
    for _ in 0..45 {
        flood.call("Heartbeat", json!({})).await.expect("answered, not refused");
    }
    let took = started.elapsed();
    // 45 frames at 20/s after a burst of 5: at least 40 / 20 = 2 s.
    assert!(took >= Duration::from_millis(1900), "the flood was slowed: {took:?}");
    for _ in 0..5 {
        calm.call("Heartbeat", json!({})).await.expect("answered");
    }
    let status = srv.cli_json(&["status"]).await;
    assert_eq!(status["chargers_throttled"], 1, "only the flooding charger: {status}");
}
