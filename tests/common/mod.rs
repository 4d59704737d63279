//! Test harness: a real server on 127.0.0.1:0 with a temp redb file, real
//! WebSocket charge points, and the real CLI binary.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voltyard::server::{Running, ServerConfig, start};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        // A scripted charge point answers only the CALLs its test expects:
        // an unanswered GetBaseReport would hold every later CALL back.
        cfg.device_model.report_on_boot = false;
        tweak(&mut cfg);
        let running = start(cfg).await.expect("server starts");
        TestServer {
            addr: running.addr,
            dir,
            running: Some(running),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Run the real CLI against this server (off the async runtime).
    pub async fn cli(&self, args: &[&str]) -> Output {
        let dir = self.data_dir();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || cli(&dir, &args))
            .await
            .expect("cli task")
    }

    /// Run the CLI and parse its JSON output; panics with stderr on failure.
    pub async fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a).await;
        assert!(
            out.status.success(),
            "voltyard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("CLI printed JSON")
    }

    pub async fn ok(&self, args: &[&str]) {
        let out = self.cli(args).await;
        assert!(
            out.status.success(),
            "voltyard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn cp(&self, id: &str, proto: &str) -> Cp {
        Cp::connect(self.addr, id, proto).await.expect("charge point connects")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }
}

pub fn cli(data_dir: &std::path::Path, args: &[String]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run voltyard")
}

/// A minimal charge point speaking raw OCPP-J.
pub struct Cp {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Server CALLs that arrived while we waited for something else.
    pub inbox: Vec<(String, String, Value)>,
}

pub async fn connect_raw(
    addr: SocketAddr,
    path: &str,
    protocols: Option<&str>,
    basic: Option<&str>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(b) = basic {
        let enc = data_encoding::BASE64.encode(b.as_bytes());
        req.headers_mut()
            .insert("Authorization", HeaderValue::from_str(&format!("Basic {enc}")).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// The HTTP status of a refused handshake.
pub fn refused_status(e: &tokio_tungstenite::tungstenite::Error) -> Option<http::StatusCode> {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => Some(resp.status()),
        _ => None,
    }
}

impl Cp {
    pub async fn connect(addr: SocketAddr, id: &str, proto: &str) -> Result<Cp, tokio_tungstenite::tungstenite::Error> {
        let ws = connect_raw(addr, &format!("/ocpp/{id}"), Some(proto), None).await?;
        Ok(Cp {
            ws,
            next: 0,
            inbox: Vec::new(),
        })
    }

    /// A charge point over an already opened WebSocket (e.g. with Basic auth).
    pub fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Cp {
        Cp {
            ws,
            next: 0,
            inbox: Vec::new(),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.expect("send");
    }

    /// Next text frame, parsed; None on close or timeout.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Send a CALL and return the CALLRESULT payload, or Err((code, description)).
    pub async fn call(&mut self, action: &str, payload: Value) -> Result<Value, (String, String)> {
        self.next += 1;
        let id = format!("m{}", self.next);
        self.send_text(&json!([2, id, action, payload]).to_string()).await;
        loop {
            let f = self.recv().await.unwrap_or_else(|| panic!("no answer to {action}"));
            match f[0].as_i64() {
                Some(3) if f[1] == id.as_str() => return Ok(f[2].clone()),
                Some(4) if f[1] == id.as_str() => {
                    return Err((f[2].as_str().unwrap_or("").into(), f[3].as_str().unwrap_or("").into()));
                }
                Some(2) => self.inbox.push((
                    f[1].as_str().unwrap_or("").into(),
                    f[2].as_str().unwrap_or("").into(),
                    f[3].clone(),
                )),
                _ => panic!("unexpected frame while waiting for {action}: {f}"),
            }
        }
    }

    /// Wait for the server to CALL `action`; returns (message id, payload).
    pub async fn expect_call(&mut self, action: &str) -> (String, Value) {
        if let Some(i) = self.inbox.iter().position(|(_, a, _)| a == action) {
            let (id, _, p) = self.inbox.remove(i);
            return (id, p);
        }
        loop {
            let f = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("server never sent {action}"));
            if f[0] == 2 && f[2] == action {
                return (f[1].as_str().unwrap_or("").into(), f[3].clone());
            }
            if f[0] == 2 {
                self.inbox.push((
                    f[1].as_str().unwrap_or("").into(),
                    f[2].as_str().unwrap_or("").into(),
                    f[3].clone(),
                ));
            }
        }
    }

    pub async fn reply(&mut self, id: &str, payload: Value) {
        self.send_text(&json!([3, id, payload]).to_string()).await;
    }

    pub async fn boot16(&mut self) -> Value {
        self.call(
            "BootNotification",
            json!({"chargePointVendor": "VendorX", "chargePointModel": "ModelY", "firmwareVersion": "1.2.3"}),
        )
        .await
        .expect("boot answered")
    }

    pub async fn boot201(&mut self) -> Value {
        self.call(
            "BootNotification",
            json!({"reason": "PowerUp", "chargingStation": {"model": "M201", "vendorName": "V201", "firmwareVersion": "2.0"}}),
        )
        .await
        .expect("boot answered")
    }
}

pub fn ts(offset_min: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(offset_min)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A command's stdout.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit {code}, got {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        out(o),
        err(o)
    );
}
