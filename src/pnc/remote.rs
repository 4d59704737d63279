//! Contract-certificate sources outside the server: an HTTP(S) service
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
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest answer read from a source (an exiResponse is at most 5,600
/// characters in OCPP 2.0.1; OCPP 2.1 allows more).
const MAX_ANSWER: usize = 256 * 1024;

pub enum Via {
    /// `http://host:port/path` or `https://…`.
    Http {
        authority: String,
        path: String,
        tls: Option<Tls>,
    },
    Program(Vec<String>),
}

/// An `https` source: its server is checked against `ca_file` (no
/// system roots are bundled into the static binary), and voltyard shows
/// `client_cert` when one is configured (PKI gateways often want mTLS).
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

/// The files an `https` source needs.
pub struct TlsFiles<'a> {
    pub ca_file: &'a Path,
    pub client: Option<(&'a Path, &'a Path)>,
}

impl Tls {
    fn new(host: &str, files: &TlsFiles<'_>) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        let bad = |path: &Path, e: String| format!("{}: {e}", path.display());
        for cert in CertificateDer::pem_file_iter(files.ca_file).map_err(|e| bad(files.ca_file, e.to_string()))? {
            let cert = cert.map_err(|e| bad(files.ca_file, e.to_string()))?;
            roots.add(cert).map_err(|e| bad(files.ca_file, e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match files.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| bad(cert, e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(cert, e.to_string()))?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(cert, e.to_string()))?
            }
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("host {host:?}: {e}"))?;
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

pub struct Remote {
    via: Via,
    timeout: Duration,
    trusted: Vec<Vec<u8>>,
}

impl Remote {
    /// `tls` is needed for an `https://` url and ignored for `http://`.
    pub fn http(
        url: &str,
        timeout: Duration,
        trusted: Vec<Vec<u8>>,
        tls: Option<TlsFiles<'_>>,
    ) -> Result<Remote, String> {
        let (rest, secure) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err(format!("{url:?} must start with http:// or https://")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        let tls = match (secure, tls) {
            (false, _) => None,
            (true, None) => return Err(format!("{url:?} needs a CA file to check the server against")),
            (true, Some(files)) => Some(Tls::new(host_of(authority), &files)?),
        };
        Ok(Remote {
            via: Via::Http {
                authority: authority.into(),
                path: path.into(),
                tls,
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
                Via::Http { authority, path, tls } => post(authority, path, tls.as_ref(), &input).await,
                Via::Program(cmd) => crate::hook::run_program(cmd, &input, self.timeout, MAX_ANSWER).await,
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

/// The host of `host[:port]` (an IPv6 literal keeps its brackets off).
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host.trim_start_matches('[').trim_end_matches(']'),
        _ => authority.trim_start_matches('[').trim_end_matches(']'),
    }
}

async fn post(authority: &str, path: &str, tls: Option<&Tls>, input: &Value) -> Result<Vec<u8>, String> {
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    let host = match (has_port, tls) {
        (true, _) => authority.to_string(),
        (false, None) => format!("{authority}:80"),
        (false, Some(_)) => format!("{authority}:443"),
    };
    let tcp = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    match tls {
        None => exchange(TokioIo::new(tcp), authority, path, input).await,
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            exchange(TokioIo::new(stream), authority, path, input).await
        }
    }
}

async fn exchange<T>(io: T, authority: &str, path: &str, input: &Value) -> Result<Vec<u8>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
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
