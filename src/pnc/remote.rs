//! Contract-certificate sources outside the server: an HTTP service
//! (`source = "http"`, JSON POSTed to `url`) or a program run without a
//! shell (`source = "program"`, JSON on stdin, JSON on stdout), both
//! bounded by `timeout_ms`. Both get the same request and give the same
//! answer (docs/plug-and-charge.md):
//!
//! ```text
//! {"action": "Get15118EVCertificate", "charger": …, "iso15118SchemaVersion": …,
//!  "certificateAction": "Install", "exiRequest": …}
//! {"action": "GetCertificateStatus", "charger": "", "ocspRequestData": {…}}
//! → {"status": "Accepted", "exiResponse"|"ocspResult": …}
//! → {"status": "Failed", "reasonCode": …, "additionalInfo": …}
//! ```

use super::{ContractSource, EvCertAnswer, EvCertRequest};
use crate::domain::pnc::{OcspRequestData, SourceAnswer};
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Largest answer read from a source (an exiResponse is at most 5,600
/// characters in OCPP 2.0.1; OCPP 2.1 allows more).
const MAX_ANSWER: usize = 256 * 1024;

pub enum Via {
    /// `http://host:port/path`.
    Http {
        authority: String,
        path: String,
    },
    Program(Vec<String>),
}

pub struct Remote {
    via: Via,
    timeout: Duration,
    trusted: Vec<Vec<u8>>,
}

impl Remote {
    pub fn http(url: &str, timeout: Duration, trusted: Vec<Vec<u8>>) -> Result<Remote, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?} must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        Ok(Remote {
            via: Via::Http {
                authority: authority.into(),
                path: path.into(),
            },
            timeout,
            trusted,
        })
    }

    pub fn program(command: Vec<String>, timeout: Duration, trusted: Vec<Vec<u8>>) -> Remote {
        Remote {
            via: Via::Program(command),
            timeout,
            trusted,
        }
    }

    async fn ask(&self, input: Value, field: &str) -> SourceAnswer {
        let out = tokio::time::timeout(self.timeout, async {
            match &self.via {
                Via::Http { authority, path } => post(authority, path, &input).await,
                Via::Program(cmd) => run(cmd, &input).await,
            }
        })
        .await;
        let bytes = match out {
            Err(_) => return SourceAnswer::failed("SourceTimeout", format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => return SourceAnswer::failed("SourceUnavailable", e),
            Ok(Ok(b)) => b,
        };
        parse(&bytes, field)
    }
}

fn parse(bytes: &[u8], field: &str) -> SourceAnswer {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return SourceAnswer::failed("SourceBadAnswer", "the answer is not JSON");
    };
    match v.get("status").and_then(Value::as_str) {
        Some("Accepted") => match v.get(field).and_then(Value::as_str) {
            Some(s) => SourceAnswer::Accepted(s.to_string()),
            None => SourceAnswer::failed("SourceBadAnswer", format!("Accepted without {field}")),
        },
        Some("Failed") => {
            let reason: String = v
                .get("reasonCode")
                .and_then(Value::as_str)
                .unwrap_or("SourceFailed")
                .chars()
                .take(20)
                .collect();
            let info = v.get("additionalInfo").and_then(Value::as_str).unwrap_or("");
            SourceAnswer::failed(&reason, info)
        }
        _ => SourceAnswer::failed("SourceBadAnswer", "status must be Accepted or Failed"),
    }
}

async fn post(authority: &str, path: &str, input: &Value) -> Result<Vec<u8>, String> {
    let host = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let tcp = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(input.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(body.to_vec())
}

async fn run(command: &[String], input: &Value) -> Result<Vec<u8>, String> {
    let (program, args) = command.split_first().ok_or("no program configured")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    // A program that does not read its input must not block us.
    let _ = stdin.write_all(input.to_string().as_bytes()).await;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} exited with {}", out.status));
    }
    if out.stdout.len() > MAX_ANSWER {
        return Err(format!("{program} wrote more than {MAX_ANSWER} bytes"));
    }
    Ok(out.stdout)
}

impl ContractSource for Remote {
    fn name(&self) -> &'static str {
        match self.via {
            Via::Http { .. } => "http",
            Via::Program(_) => "program",
        }
    }

    fn ev_certificate<'a>(&'a self, req: &'a EvCertRequest) -> BoxFuture<'a, EvCertAnswer> {
        let input = json!({
            "action": "Get15118EVCertificate",
            "charger": req.charger,
            "iso15118SchemaVersion": req.schema_version,
            "certificateAction": req.action,
            "exiRequest": req.exi_request,
        });
        Box::pin(async move {
            EvCertAnswer {
                answer: self.ask(input, "exiResponse").await,
                issued: None,
            }
        })
    }

    fn certificate_status<'a>(&'a self, req: &'a OcspRequestData) -> BoxFuture<'a, SourceAnswer> {
        let input = json!({"action": "GetCertificateStatus", "ocspRequestData": req});
        Box::pin(async move { self.ask(input, "ocspResult").await })
    }

    fn trusted(&self) -> &[Vec<u8>] {
        &self.trusted
    }
}
