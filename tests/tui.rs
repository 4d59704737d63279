//! The real `voltyard tui` binary inside tmux (a real terminal), against a
//! real server with simulated chargers: live values change on screen, and
//! an action confirmed on screen reaches a charger. Needs tmux.

mod common;

use common::TestServer;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use voltyard::server::UnknownChargers;
use voltyard::sim::{Options, Scenario, Simulation};

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Run `voltyard --data-dir DIR tui ARGS` in a 120×40 pane.
    fn start(data_dir: &Path, args: &str) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let socket = format!("voltyard-test-{}-{nanos}", std::process::id());
        // The shell stays after the dashboard ends, to show how it ended.
        let cmd = format!(
            "'{}' --data-dir '{}' tui {args}; echo EXITED $?; sleep 600",
            env!("CARGO_BIN_EXE_voltyard"),
            data_dir.display()
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                &cmd,
            ])
            .env_remove("TMUX")
            .status()
            .expect("tmux must be installed for this test (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", k])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "tmux send-keys {k}");
            // One key at a time: an Esc followed at once by a key is Alt+key.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen satisfies `f`; fail with the screen after `secs`.
    async fn wait_for(&self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

fn scenario() -> Scenario {
    let text = r#"
[site]
id = "tui"
name = "TUI test site"

[[tokens]]
prefix = "T"
count = 10

[[cars]]
name = "Test car"
battery_kwh = 60
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100

[[chargers]]
prefix = "TUI16"
count = 2
protocol = "1.6"
meter_interval_s = 1

[arrivals]
first_within_s = 1
gap_s = [1, 2]
dwell_s = [600, 600]
soc_percent = [20, 30]
"#;
    Scenario::parse(text, "tui test scenario", false).expect("scenario parses")
}

/// The kWh cell of every session row on the Sessions screen.
fn energies(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter(|l| l.contains("TUI16-"))
        .filter_map(|l| l.split_whitespace().nth(6).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_values_and_its_actions_reach_chargers() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    for n in 1..=10 {
        srv.ok(&["token", "add", &format!("T{n:04}")]).await;
    }
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: scenario(),
        seed: 3,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    });
    let tmux = Tmux::start(&srv.data_dir(), "");
    tmux.wait_for("both chargers online on the overview", 30, |s| {
        s.contains("● live") && s.contains("2 online")
    })
    .await;

    // Live values: the energy of running sessions grows on screen without a key.
    tmux.keys(&["3"]);
    let first = tmux
        .wait_for("two active sessions", 30, |s| {
            s.matches("active").count() >= 2 && energies(s).len() == 2
        })
        .await;
    let before = energies(&first);
    tmux.wait_for("the session energy to change", 30, |s| {
        let now = energies(s);
        now.len() == 2 && now != before
    })
    .await;

    // An action: soft reset of the first charger, confirmed on screen.
    tmux.keys(&["2", "g", "r"]);
    tmux.wait_for("the confirmation", 10, |s| s.contains("Soft reset TUI16-01?"))
        .await;
    tmux.keys(&["y"]);
    tmux.wait_for("the charger's answer in the status line", 30, |s| {
        s.contains("Soft reset TUI16-01: Accepted")
    })
    .await;
    let logs = srv.cli(&["charger", "logs", "TUI16-01", "--json"]).await;
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    // One JSON object per frame.
    let sent = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|e| {
            e["dir"] == "out"
                && e["frame"]
                    .as_str()
                    .is_some_and(|f| f.contains("\"Reset\"") && f.contains("Soft"))
        });
    assert!(sent, "no Reset frame went to TUI16-01:\n{logs}");

    // The log screen follows frames from every charger.
    tmux.keys(&["6"]);
    tmux.wait_for("frames of both chargers", 20, |s| {
        s.contains("TUI16-01") && s.contains("TUI16-02")
    })
    .await;

    tmux.keys(&["q"]);
    tmux.wait_for("a clean exit", 10, |s| s.contains("EXITED 0")).await;
    let summary = sim.stop().await;
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_shows_no_actions_and_refuses_them() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "RO-1"]).await;
    let tmux = Tmux::start(&srv.data_dir(), "--readonly --no-color");
    tmux.wait_for("the charger list", 20, |s| s.contains("● live")).await;
    tmux.keys(&["2", "?"]);
    let help = tmux.wait_for("the help", 10, |s| s.contains("Keys: Chargers")).await;
    assert!(!help.contains("reset"), "{help}");
    tmux.keys(&["Escape"]);
    tmux.keys(&["r"]);
    tmux.wait_for("the read-only notice", 10, |s| s.contains("read-only"))
        .await;
    assert!(!tmux.screen().contains("Confirm"));
    tmux.keys(&[":", "q", "Enter"]);
    tmux.wait_for("a clean exit", 10, |s| s.contains("EXITED 0")).await;
}

#[test]
fn without_a_terminal_it_refuses_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("tui")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a terminal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_server_it_exits_3_before_taking_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(dir.path(), "");
    tmux.wait_for("exit 3", 10, |s| {
        s.contains("EXITED 3") && s.contains("no voltyard server")
    })
    .await;
}

/// The stream the dashboard follows: a watcher that does not read never
/// slows chargers down, and is told how many frames it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_never_holds_the_server_up_and_says_what_it_skipped() {
    use voltyard::control::client::Client;
    use voltyard::control::proto::{Request, WatchItem};
    let srv = TestServer::start().await;
    let socket = srv.data_dir().join("control.sock");
    let mut watcher = Client::connect(&socket).await.expect("connects");
    watcher
        .call(Request::Watch { charger: None })
        .await
        .expect("watch answers");
    let ids: Vec<String> = (1..=8).map(|n| format!("W-{n}")).collect();
    for id in &ids {
        srv.ok(&["charger", "add", id]).await;
    }
    // Well over the feed's 4096 frames, while the watcher reads nothing.
    let started = Instant::now();
    let mut chargers = Vec::new();
    for id in ids {
        let mut cp = srv.cp(&id, "ocpp1.6").await;
        chargers.push(tokio::spawn(async move {
            cp.boot16().await;
            for _ in 0..300 {
                cp.call("Heartbeat", serde_json::json!({}))
                    .await
                    .expect("heartbeat answered");
            }
        }));
    }
    for c in chargers {
        c.await.expect("charger task");
    }
    assert!(started.elapsed() < Duration::from_secs(120), "chargers were held up");
    let mut frames = 0u64;
    let mut skipped = 0u64;
    // A boot and 300 heartbeats, each a CALL and its answer, per charger.
    let sent = 8 * 301 * 2;
    while frames + skipped < sent {
        match tokio::time::timeout(Duration::from_secs(10), watcher.next_watch_item()).await {
            Ok(Ok(WatchItem::Journal(_))) => frames += 1,
            Ok(Ok(WatchItem::Lagged(n))) => skipped += n,
            other => panic!("stream ended after {frames} frames, {skipped} skipped: {other:?}"),
        }
    }
    assert_eq!(
        frames + skipped,
        sent,
        "every frame is either sent or counted as skipped"
    );
    assert!(
        skipped > 0,
        "a watcher that read nothing for {frames} frames was not told it lagged"
    );
}
