//! Firmware updates, campaigns, log uploads and DataTransfer hooks, end to
//! end: the simulator really downloads from the server's own HTTP endpoint
//! (on the OCPP port) and reboots into the new version; raw charge points
//! upload with one-time tokens; a campaign survives a server restart.

mod common;

use common::{TestServer, assert_exit, err, out};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voltyard::config::VendorHook;
use voltyard::server::UnknownChargers;
use voltyard::sim::{Options, Scenario, Simulation};

fn scenario(groups: &str) -> Scenario {
    let text = format!(
        r#"
[site]
id = "fw"
name = "Firmware site"

{groups}

[[tokens]]
prefix = "T"
count = 2

[[cars]]
name = "Test car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100

[arrivals]
first_within_s = 3600
gap_s = [3600, 7200]
"#
    );
    Scenario::parse(&text, "firmware scenario", false).expect("scenario parses")
}

fn groups(n16: u32, n201: u32) -> String {
    format!(
        r#"
[[chargers]]
prefix = "F16"
count = {n16}
protocol = "1.6"
model = "FW-AC"

[[chargers]]
prefix = "F201"
count = {n201}
protocol = "2.0.1"
model = "FW-AC"
"#
    )
}

fn simulate(addr: SocketAddr, s: Scenario) -> Simulation {
    Simulation::start(Options {
        url: format!("ws://{addr}/ocpp"),
        scenario: s,
        seed: 5,
        validate: true,
        connect_rate: 100,
        call_timeout: Duration::from_secs(10),
    })
}

/// Poll `f` until it holds, for at most `secs` seconds.
async fn eventually<F: AsyncFnMut() -> bool>(secs: u64, mut f: F) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

fn image(dir: &Path, version: &str) -> PathBuf {
    let p = dir.join(format!("fw-{version}.bin"));
    let mut body = format!("VOLTYARD-SIM-FW {version}\n").into_bytes();
    body.extend((0..200_000u32).map(|i| (i % 251) as u8));
    std::fs::write(&p, body).unwrap();
    p
}

async fn cli_json_at(data: &Path, args: &[&str]) -> Value {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.push("--json".into());
    let data = data.to_path_buf();
    let o = tokio::task::spawn_blocking(move || common::cli(&data, &a))
        .await
        .unwrap();
    assert!(o.status.success(), "voltyard {args:?} failed: {}", err(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// The most firmware requests of these chargers in flight at one moment,
/// from the server's own record: each from its creation to its final status.
async fn most_in_flight(data: &Path, chargers: &[String]) -> usize {
    let mut edges: Vec<(String, i32)> = Vec::new();
    for id in chargers {
        for r in cli_json_at(data, &["charger", "firmware", "status", id])
            .await
            .as_array()
            .unwrap()
        {
            let end = r["statuses"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|s| {
                    ["Installed", "DownloadFailed", "InstallationFailed"].contains(&s["status"].as_str().unwrap())
                })
                .map(|s| s["t"].as_str().unwrap().to_string())
                .unwrap_or_else(|| "9999".into());
            edges.push((r["created_at"].as_str().unwrap().to_string(), 1));
            edges.push((end, -1));
        }
    }
    // RFC 3339 UTC text sorts by time; an end sorts before a start at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_over_six_simulated_chargers_keeps_its_concurrency_and_installs_everywhere() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    let sim = simulate(srv.addr, scenario(&groups(3, 3)));
    let ids: Vec<String> = ["F16-01", "F16-02", "F16-03", "F201-01", "F201-02", "F201-03"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        eventually(20, async || {
            let list = srv.cli_json(&["charger", "list"]).await;
            list.as_array()
                .unwrap()
                .iter()
                .filter(|c| c["connected"] == true)
                .count()
                == 6
        })
        .await,
        "six simulated chargers connect"
    );
    let fw = image(&srv.data_dir(), "9.9.9");
    let started = srv
        .cli_json(&[
            "charger",
            "firmware",
            "campaign",
            "start",
            "--file",
            fw.to_str().unwrap(),
            "--model",
            "FW-AC",
            "--concurrency",
            "2",
        ])
        .await;
    let id = started["id"].as_u64().unwrap().to_string();
    assert_eq!(started["progress"]["total"], 6, "{started}");
    let mut seen_in_flight = 0;
    let done = eventually(90, async || {
        let c = srv.cli_json(&["charger", "firmware", "campaign", "show", &id]).await;
        seen_in_flight = seen_in_flight.max(c["progress"]["in_flight"].as_u64().unwrap());
        c["state"] == "done"
    })
    .await;
    let c = srv.cli_json(&["charger", "firmware", "campaign", "show", &id]).await;
    let summary = sim.stop().await;
    assert!(done, "campaign did not finish: {c}\n{summary:?}");
    assert_eq!(c["progress"]["installed"], 6, "{c}");
    assert!(seen_in_flight <= 2, "the campaign had {seen_in_flight} in flight");
    assert!(most_in_flight(&srv.data_dir(), &ids).await <= 2);
    let list = srv.cli_json(&["charger", "list"]).await;
    for id in &ids {
        let ch = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap();
        assert_eq!(ch["firmware"], "9.9.9", "{ch}");
    }
    // Each version's own messages carried the progress.
    let h16 = srv.cli_json(&["charger", "firmware", "status", "F16-01"]).await;
    let statuses: Vec<&str> = h16[0]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Downloading", "Downloaded", "Installing", "Installed"]);
    let table = srv.cli(&["charger", "firmware", "campaign", "list"]).await;
    assert!(out(&table).contains("done"), "{}", out(&table));
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_chargers_fail_a_missing_download_and_upload_their_logs() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    let sim = simulate(srv.addr, scenario(&groups(1, 1)));
    assert!(
        eventually(20, async || {
            let list = srv.cli_json(&["charger", "list"]).await;
            list.as_array()
                .unwrap()
                .iter()
                .filter(|c| c["connected"] == true)
                .count()
                == 2
        })
        .await
    );
    let missing = format!("http://{}/files/firmware/{}/gone.bin", srv.addr, "0".repeat(64));
    let o = srv
        .cli(&[
            "charger",
            "firmware",
            "campaign",
            "start",
            "--url",
            &missing,
            "--chargers",
            "F16-01,F201-01",
            "--concurrency",
            "1",
            "--wait",
        ])
        .await;
    assert_exit(&o, 1, "a campaign whose downloads fail");
    assert!(err(&o).contains("2 charger(s) did not install"), "{}", err(&o));
    for id in ["F16-01", "F201-01"] {
        let h = srv.cli_json(&["charger", "firmware", "status", id]).await;
        assert_eq!(h[0]["state"], "failed", "{h}");
        let last = h[0]["statuses"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["status"], "DownloadFailed", "{h}");
    }
    // The same chargers upload their logs for real: 1.6 diagnostics as a
    // multipart POST, 2.0.1 security log as a PUT.
    for (id, kind, report) in [
        ("F16-01", "diagnostics", "DiagnosticsStatusNotification"),
        ("F201-01", "security", "LogStatusNotification"),
    ] {
        let r = srv
            .cli_json(&["charger", "logs", "fetch", id, "--type", kind, "--wait"])
            .await;
        let file = &r["files"][0];
        let text = std::fs::read_to_string(srv.data_dir().join(file["path"].as_str().unwrap())).unwrap();
        assert!(text.starts_with("# ") && text.contains(id), "{text}");
        assert_eq!(file["bytes"], text.len(), "{r}");
        let statuses: Vec<&str> = r["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["Uploading", "Uploaded"], "{report}: {r}");
    }
    let echoed = srv
        .cli_json(&[
            "charger",
            "data-transfer",
            "F201-01",
            "--vendor",
            "voltyard.sim",
            "--data",
            r#"{"x":1}"#,
        ])
        .await;
    assert_eq!(echoed["detail"], r#"{"x":1}"#, "{echoed}");
    let summary = sim.stop().await;
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn serve(data: &Path, port: u16) -> Child {
    let cfg = data.join("voltyard.toml");
    std::fs::write(&cfg, "unknown_chargers = \"accept\"\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn voltyard serve");
    let sock = data.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(sock.exists() && std::os::unix::net::UnixStream::connect(&sock).is_ok()) {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_resumes_after_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let port = free_port();
    let mut server = serve(&data, port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sim = simulate(addr, scenario(&groups(2, 2)));
    assert!(
        eventually(20, async || {
            let list = cli_json_at(&data, &["charger", "list"]).await;
            list.as_array()
                .unwrap()
                .iter()
                .filter(|c| c["connected"] == true)
                .count()
                == 4
        })
        .await
    );
    let fw = image(&data, "7.1");
    let started = cli_json_at(
        &data,
        &[
            "charger",
            "firmware",
            "campaign",
            "start",
            "--file",
            fw.to_str().unwrap(),
            "--all",
            "--concurrency",
            "1",
        ],
    )
    .await;
    let id = started["id"].as_u64().unwrap().to_string();
    let show = async || cli_json_at(&data, &["charger", "firmware", "campaign", "show", &id]).await;
    assert!(
        eventually(40, async || show().await["progress"]["installed"].as_u64().unwrap()
            >= 1)
        .await,
        "a first charger installs"
    );
    // SIGKILL mid-campaign, then the same data dir and port again.
    server.kill().unwrap();
    server.wait().unwrap();
    let before = show_offline(&data, &id);
    assert!(before < 4, "the campaign was still running when the server died");
    let mut server = serve(&data, port);
    let done = eventually(90, async || show().await["state"] == "done").await;
    let c = show().await;
    let list = cli_json_at(&data, &["charger", "list"]).await;
    let summary = sim.stop().await;
    server.kill().unwrap();
    let _ = server.wait();
    assert!(done, "the campaign did not resume: {c}\n{summary:?}");
    assert_eq!(c["progress"]["installed"], 4, "{c}");
    assert!(
        list.as_array().unwrap().iter().all(|ch| ch["firmware"] == "7.1"),
        "{list}"
    );
}

/// Installed targets as the database holds them, read by a throwaway
/// server on another port while the real one is down.
fn show_offline(data: &Path, id: &str) -> u64 {
    let port = free_port();
    let mut s = serve(data, port);
    let o = common::cli(
        data,
        &["charger", "firmware", "campaign", "show", id, "--json"].map(String::from),
    );
    s.kill().unwrap();
    let _ = s.wait();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["progress"]["installed"].as_u64().unwrap()
}

/// One raw HTTP/1.1 request; the status code and body.
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading a large body.
    let _ = s.write_all(body).await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp);
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body_at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    (code, resp[body_at..].to_vec())
}

fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_string()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_land_in_the_data_dir_and_a_token_works_once_for_its_charger_only() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    let mut cp = srv.cp("D16", "ocpp1.6").await;
    cp.boot16().await;
    let fetch = {
        let data = srv.data_dir();
        tokio::task::spawn_blocking(move || {
            common::cli(&data, &["charger", "logs", "fetch", "D16", "--json"].map(String::from))
        })
    };
    let (mid, p) = cp.expect_call("GetDiagnostics").await;
    let url = p["location"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("http://{}/upload/", srv.addr)), "{url}");
    cp.reply(&mid, json!({"fileName": "diag.log"})).await;
    let o = fetch.await.unwrap();
    assert_exit(&o, 0, "logs fetch");
    cp.call("DiagnosticsStatusNotification", json!({"status": "Uploading"}))
        .await
        .unwrap();
    let content = b"line one\nline two\n\x00\x01binary tail".to_vec();
    let boundary = "XyZ";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\nignored\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"diag.log\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&content);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = vec![("Content-Type", format!("multipart/form-data; boundary={boundary}"))];
    let (code, _) = http(srv.addr, "POST", &path_of(&url), &ct, &form).await;
    assert_eq!(code, 201);
    cp.call("DiagnosticsStatusNotification", json!({"status": "Uploaded"}))
        .await
        .unwrap();
    let dir = srv.data_dir().join("files/logs/D16");
    let stored = files_in(&dir);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with("-diag.log"), "{stored:?}");
    assert_eq!(std::fs::read(dir.join(&stored[0])).unwrap(), content);
    let uploads = srv.cli_json(&["charger", "logs", "uploads", "D16"]).await;
    assert_eq!(uploads[0]["state"], "uploaded", "{uploads}");
    assert_eq!(uploads[0]["filename"], "diag.log");
    assert_eq!(uploads[0]["files"][0]["bytes"], content.len());
    // The token is spent: the same URL, raw or multipart, is refused and stores nothing.
    let (code, _) = http(srv.addr, "PUT", &path_of(&url), &[], b"again").await;
    assert_eq!(code, 403);
    let (code, _) = http(srv.addr, "POST", &path_of(&url), &ct, &form).await;
    assert_eq!(code, 403);
    let (code, _) = http(srv.addr, "PUT", &format!("/upload/{}", "ab".repeat(32)), &[], b"x").await;
    assert_eq!(code, 403);
    assert_eq!(files_in(&dir).len(), 1);
    // The journal form of `charger logs` still works beside the new verbs.
    let journal = srv.cli(&["charger", "logs", "D16", "--limit", "3"]).await;
    assert_exit(&journal, 0, "charger logs ID");
    assert!(
        out(&journal).contains("DiagnosticsStatusNotification"),
        "{}",
        out(&journal)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_log_on_2_0_1_takes_a_put_and_refuses_an_oversize_one() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.files.max_upload_bytes = 1024;
    })
    .await;
    let mut cp = srv.cp("L201", "ocpp2.0.1").await;
    cp.boot201().await;
    let fetch = {
        let data = srv.data_dir();
        tokio::task::spawn_blocking(move || {
            common::cli(
                &data,
                &["charger", "logs", "fetch", "L201", "--type", "security", "--json"].map(String::from),
            )
        })
    };
    let (mid, p) = cp.expect_call("GetLog").await;
    assert_eq!(p["logType"], "SecurityLog");
    let request_id = p["requestId"].as_i64().unwrap();
    let url = p["log"]["remoteLocation"].as_str().unwrap().to_string();
    cp.reply(&mid, json!({"status": "Accepted", "filename": "sec.log"}))
        .await;
    assert_exit(&fetch.await.unwrap(), 0, "logs fetch");
    let (code, _) = http(
        srv.addr,
        "PUT",
        &format!("{}/sec.log", path_of(&url)),
        &[],
        &[7u8; 2000],
    )
    .await;
    assert_eq!(code, 413);
    // Without a Content-Length (chunked), the limit holds as the body streams in.
    let mut sock = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "PUT {}/sec.log HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        path_of(&url)
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..4 {
        let _ = sock
            .write_all(format!("{:x}\r\n{}\r\n", 500, "z".repeat(500)).as_bytes())
            .await;
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, sock.read_to_end(&mut resp)).await;
    assert!(resp.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&resp));
    let dir = srv.data_dir().join("files/logs/L201");
    assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
    // The refused upload did not spend the token.
    let (code, _) = http(
        srv.addr,
        "PUT",
        &format!("{}/sec.log", path_of(&url)),
        &[],
        b"security events",
    )
    .await;
    assert_eq!(code, 201);
    cp.call(
        "LogStatusNotification",
        json!({"status": "Uploaded", "requestId": request_id}),
    )
    .await
    .unwrap();
    assert_eq!(files_in(&dir), [format!("{request_id}-sec.log")]);
    assert_eq!(
        std::fs::read(dir.join(format!("{request_id}-sec.log"))).unwrap(),
        b"security events"
    );
    let uploads = srv.cli_json(&["charger", "logs", "uploads", "L201"]).await;
    assert_eq!(uploads[0]["kind"], "security");
    assert_eq!(uploads[0]["state"], "uploaded");
    // Firmware is served on the same port; an unknown hash is 404.
    let (code, _) = http(
        srv.addr,
        "GET",
        &format!("/files/firmware/{}", "1".repeat(64)),
        &[],
        b"",
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_update_to_a_1_6_charger_and_its_status_history() {
    let srv = TestServer::start_with(|c| c.unknown_chargers = UnknownChargers::Accept).await;
    let mut cp = srv.cp("S16", "ocpp1.6").await;
    cp.boot16().await;
    let fw = image(&srv.data_dir(), "3.0");
    let pem = srv.data_dir().join("signer.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let update = {
        let data = srv.data_dir();
        let args = [
            "charger",
            "firmware",
            "update",
            "S16",
            "--file",
            fw.to_str().unwrap(),
            "--signature",
            "c2lnbmF0dXJl",
            "--signing-cert",
            pem.to_str().unwrap(),
            "--json",
        ]
        .map(String::from);
        tokio::task::spawn_blocking(move || common::cli(&data, &args))
    };
    let (mid, p) = cp.expect_call("SignedUpdateFirmware").await;
    assert_eq!(p["firmware"]["signature"], "c2lnbmF0dXJl");
    let location = p["firmware"]["location"].as_str().unwrap().to_string();
    assert!(location.ends_with("/fw-3.0.bin"), "{location}");
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    let o = update.await.unwrap();
    assert_exit(&o, 0, "firmware update");
    let request_id = p["requestId"].as_i64().unwrap();
    // The charger downloads what the server serves: the file's exact bytes.
    let (code, body) = http(srv.addr, "GET", &path_of(&location), &[], b"").await;
    assert_eq!(code, 200);
    assert_eq!(body, std::fs::read(&fw).unwrap());
    for status in [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "Installing",
        "Installed",
    ] {
        cp.call(
            "SignedFirmwareStatusNotification",
            json!({"status": status, "requestId": request_id}),
        )
        .await
        .unwrap();
    }
    let h = srv.cli_json(&["charger", "firmware", "status", "S16"]).await;
    assert_eq!(h[0]["state"], "installed", "{h}");
    assert_eq!(h[0]["statuses"].as_array().unwrap().len(), 5);
    // A refusal is exit 1 and the request is marked failed.
    let again = {
        let data = srv.data_dir();
        let args = [
            "charger",
            "firmware",
            "update",
            "S16",
            "--url",
            "http://vendor.example/fw.bin",
        ]
        .map(String::from);
        tokio::task::spawn_blocking(move || common::cli(&data, &args))
    };
    let (mid, p) = cp.expect_call("UpdateFirmware").await;
    assert!(p["retrieveDate"].is_string());
    cp.send_text(&json!([4, mid, "NotSupported", "no", {}]).to_string())
        .await;
    assert_exit(&again.await.unwrap(), 1, "a refused update");
    let h = srv.cli_json(&["charger", "firmware", "status", "S16"]).await;
    assert_eq!(h[1]["state"], "failed", "{h}");
    let o = srv
        .cli(&["charger", "firmware", "update", "S16", "--file", "/no/such/file.bin"])
        .await;
    assert_exit(&o, 2, "a missing file");
    assert!(err(&o).contains("--file"), "{}", err(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_transfers_are_answered_by_their_vendor_hook_and_shown() {
    let script = r#"read msg; case "$msg" in *ping*) echo '{"status":"Accepted","data":"pong"}';; *) echo '{"status":"UnknownMessageId"}';; esac"#;
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.data_transfer.insert(
            "com.acme".into(),
            VendorHook::Command {
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                timeout_ms: 5_000,
            },
        );
        c.data_transfer.insert("com.closed".into(), VendorHook::Reject);
    })
    .await;
    let mut cp = srv.cp("DT201", "ocpp2.0.1").await;
    cp.boot201().await;
    let a = cp
        .call(
            "DataTransfer",
            json!({"vendorId": "com.acme", "messageId": "m", "data": {"q": "ping"}}),
        )
        .await
        .unwrap();
    assert_eq!(a, json!({"status": "Accepted", "data": "pong"}));
    let a = cp
        .call("DataTransfer", json!({"vendorId": "com.closed"}))
        .await
        .unwrap();
    assert_eq!(a["status"], "Rejected");
    let a = cp.call("DataTransfer", json!({"vendorId": "com.other"})).await.unwrap();
    assert_eq!(a["status"], "UnknownVendorId");
    let shown = srv.cli_json(&["charger", "data-transfers", "DT201"]).await;
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[0]["vendor_id"], "com.acme");
    assert_eq!(shown[0]["data"], r#"{"q":"ping"}"#);
    assert_eq!(shown[0]["answer"]["data"], "pong");
    assert_eq!(shown[2]["answer"]["status"], "UnknownVendorId");
    // And one the other way, to a 1.6 charger.
    let mut cp16 = srv.cp("DT16", "ocpp1.6").await;
    cp16.boot16().await;
    let send = {
        let data = srv.data_dir();
        let args = [
            "charger",
            "data-transfer",
            "DT16",
            "--vendor",
            "com.acme",
            "--message-id",
            "hello",
            "--data",
            "hi",
        ]
        .map(String::from);
        tokio::task::spawn_blocking(move || common::cli(&data, &args))
    };
    let (mid, p) = cp16.expect_call("DataTransfer").await;
    assert_eq!(p, json!({"vendorId": "com.acme", "messageId": "hello", "data": "hi"}));
    cp16.reply(&mid, json!({"status": "Accepted", "data": "hello back"}))
        .await;
    let o = send.await.unwrap();
    assert_exit(&o, 0, "data-transfer");
    assert!(out(&o).contains("Accepted: hello back"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_chargers_wait_in_the_queue_silent_ones_time_out_and_cancel_drops_the_queue() {
    let srv = TestServer::start_with(|c| {
        c.unknown_chargers = UnknownChargers::Accept;
        c.files.firmware_step_timeout_s = 2;
    })
    .await;
    srv.ok(&["charger", "add", "A-OFF"]).await;
    let mut on = srv.cp("B-ON", "ocpp1.6").await;
    on.boot16().await;
    let mut silent = srv.cp("C-SILENT", "ocpp2.0.1").await;
    silent.boot201().await;
    let started = srv
        .cli_json(&[
            "charger",
            "firmware",
            "campaign",
            "start",
            "--url",
            "http://vendor.example/fw.bin",
            "--chargers",
            "A-OFF,B-ON,C-SILENT",
            "--concurrency",
            "1",
        ])
        .await;
    let id = started["id"].as_u64().unwrap().to_string();
    // A-OFF is first but offline: B-ON goes first.
    let (mid, p) = on.expect_call("UpdateFirmware").await;
    assert_eq!(p["location"], "http://vendor.example/fw.bin");
    on.reply(&mid, json!({})).await;
    for status in ["Downloading", "Downloaded", "Installing", "Installed"] {
        on.call("FirmwareStatusNotification", json!({"status": status}))
            .await
            .unwrap();
    }
    // Then the silent one: it accepts and never reports, so it times out.
    let (mid, p) = silent.expect_call("UpdateFirmware").await;
    assert!(p["requestId"].is_i64());
    silent.reply(&mid, json!({"status": "Accepted"})).await;
    let show = async || srv.cli_json(&["charger", "firmware", "campaign", "show", &id]).await;
    let state_of = |c: &Value, ch: &str| {
        c["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["charger"] == ch)
            .unwrap()["state"]
            .clone()
    };
    assert!(eventually(10, async || state_of(&show().await, "C-SILENT") == "timeout").await);
    let c = show().await;
    assert_eq!(state_of(&c, "B-ON"), "installed", "{c}");
    assert_eq!(state_of(&c, "A-OFF"), "queued", "{c}");
    assert_eq!(c["state"], "running");
    let c = srv.cli_json(&["charger", "firmware", "campaign", "cancel", &id]).await;
    assert_eq!(c["state"], "cancelled", "{c}");
    assert_eq!(state_of(&c, "A-OFF"), "cancelled", "{c}");
    let again = srv.cli(&["charger", "firmware", "campaign", "cancel", &id]).await;
    assert_exit(&again, 1, "cancelling a cancelled campaign");
    let none = srv
        .cli(&[
            "charger",
            "firmware",
            "campaign",
            "start",
            "--url",
            "http://x/f",
            "--site",
            "nowhere",
        ])
        .await;
    assert_exit(&none, 2, "a campaign that selects nothing");
}
