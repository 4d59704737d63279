//! A virtual charger's security side: its HTTP Basic password, TLS with a
//! CA to trust and an optional client certificate, and the security
//! extension CALLs (password change, certificate signing, installation).

use super::charger::Charger;
use crate::ocpp::Rejection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use x509_parser::prelude::FromDer;

/// How the simulated chargers authenticate (`voltyard simulate` flags).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// HTTP Basic password of every charger (profiles 1 and 2).
    pub password: Option<String>,
    /// CA certificate (PEM) to trust for wss://.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for profile 3; `{id}` in the
    /// paths is replaced by the charger id.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// What one charger learned over OCPP.
#[derive(Default)]
pub struct SimSecurity {
    /// A password the server pushed (replaces `Credentials::password`).
    password: Option<String>,
    /// The key of the CSR sent last, waiting for its CertificateSigned.
    pending_key: Option<String>,
    /// (chain PEM, key PEM) the server's CA issued.
    issued: Option<(String, String)>,
    /// Installed root certificates: (OCPP type, PEM).
    installed: Vec<(String, String)>,
}

type Answer = Result<Value, Rejection>;

impl Charger {
    pub fn password<'a>(&'a self, creds: &'a Credentials) -> Option<&'a str> {
        self.security.password.as_deref().or(creds.password.as_deref())
    }

    /// Security extension CALLs both versions share; `None` for others.
    pub(super) fn security_call(&mut self, action: &str, p: &Value) -> Option<Answer> {
        let status = |st: &str| Some(Ok(json!({"status": st})));
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        match action {
            "ChangeConfiguration" if s("key") == "AuthorizationKey" => status(self.take_password(&s("value"))),
            "SetVariables" => {
                let items = p.get("setVariableData").and_then(Value::as_array)?;
                let [item] = items.as_slice() else { return None };
                let name = |ptr| item.pointer(ptr).and_then(Value::as_str).unwrap_or_default();
                if (name("/component/name"), name("/variable/name")) != ("SecurityCtrlr", "BasicAuthPassword") {
                    return None;
                }
                let st = self.take_password(name("/attributeValue"));
                Some(Ok(json!({"setVariableResult": [{
                    "attributeStatus": st, "component": item["component"], "variable": item["variable"],
                }]})))
            }
            "ExtendedTriggerMessage" if s("requestedMessage") == "SignChargePointCertificate" => {
                status(self.send_csr())
            }
            "TriggerMessage" if s("requestedMessage") == "SignChargingStationCertificate" => status(self.send_csr()),
            "CertificateSigned" => status(self.take_certificate(&s("certificateChain"))),
            "InstallCertificate" => {
                let pem = s("certificate");
                if CertificateDer::from_pem_slice(pem.as_bytes()).is_err() {
                    return status("Rejected");
                }
                self.security.installed.retain(|(_, p)| *p != pem);
                self.security.installed.push((s("certificateType"), pem));
                status("Accepted")
            }
            "GetInstalledCertificateIds" => {
                let wanted: Vec<String> = match p.get("certificateType") {
                    Some(Value::String(t)) => vec![t.clone()],
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    _ => Vec::new(),
                };
                let found: Vec<(String, Value)> = self
                    .security
                    .installed
                    .iter()
                    .filter(|(t, _)| wanted.is_empty() || wanted.contains(t))
                    .filter_map(|(t, pem)| hash_data(pem).map(|h| (t.clone(), h)))
                    .collect();
                let st = if found.is_empty() { "NotFound" } else { "Accepted" };
                Some(Ok(if self.plan.protocol == crate::domain::Protocol::V16 {
                    let hashes: Vec<Value> = found.into_iter().map(|(_, h)| h).collect();
                    if hashes.is_empty() {
                        json!({"status": st})
                    } else {
                        json!({"status": st, "certificateHashData": hashes})
                    }
                } else {
                    let chain: Vec<Value> = found
                        .into_iter()
                        .map(|(t, h)| json!({"certificateType": t, "certificateHashData": h}))
                        .collect();
                    if chain.is_empty() {
                        json!({"status": st})
                    } else {
                        json!({"status": st, "certificateHashDataChain": chain})
                    }
                }))
            }
            "DeleteCertificate" => {
                let want = p.get("certificateHashData")?;
                let before = self.security.installed.len();
                self.security
                    .installed
                    .retain(|(_, pem)| hash_data(pem).as_ref() != Some(want));
                status(if self.security.installed.len() < before {
                    "Accepted"
                } else {
                    "NotFound"
                })
            }
            _ => None,
        }
    }

    /// A charger keeps a pushed password only if it fits its limits.
    fn take_password(&mut self, value: &str) -> &'static str {
        if !(16..=40).contains(&value.len()) {
            return "Rejected";
        }
        self.security.password = Some(value.to_string());
        "Accepted"
    }

    /// Make a key and a CSR naming this charger, and queue SignCertificate.
    fn send_csr(&mut self) -> &'static str {
        let Ok(key) = rcgen::KeyPair::generate() else {
            return "Rejected";
        };
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.plan.id.as_str());
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, self.plan.vendor.as_str());
        let Ok(csr) = params.serialize_request(&key).and_then(|c| c.pem()) else {
            return "Rejected";
        };
        self.security.pending_key = Some(key.serialize_pem());
        let mut payload = json!({"csr": csr});
        if self.plan.protocol == crate::domain::Protocol::V201 {
            payload["certificateType"] = json!("ChargingStationCertificate");
        }
        self.push_plain("SignCertificate", payload);
        "Accepted"
    }

    /// Accept a chain only for the key of our own CSR, for our own name.
    fn take_certificate(&mut self, chain: &str) -> &'static str {
        let Some(key) = self.security.pending_key.clone() else {
            return "Rejected";
        };
        let Some(Ok(leaf)) = CertificateDer::pem_slice_iter(chain.as_bytes()).next() else {
            return "Rejected";
        };
        let Ok((_, x)) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()) else {
            return "Rejected";
        };
        let cn = x.subject().iter_common_name().next().and_then(|a| a.as_str().ok());
        let ours = rcgen::KeyPair::from_pem(&key)
            .map(|k| k.public_key_raw() == x.public_key().subject_public_key.data.as_ref())
            .unwrap_or(false);
        if cn != Some(self.plan.id.as_str()) || !ours {
            return "Rejected";
        }
        self.security.pending_key = None;
        self.security.issued = Some((chain.to_string(), key));
        "Accepted"
    }
}

/// OCPP CertificateHashData of a (root) certificate: SHA-256 of the issuer
/// name and of the issuer's public key (its own, for a root), and the serial.
fn hash_data(pem: &str) -> Option<Value> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()).ok()?;
    let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(&Sha256::digest(b));
    Some(json!({
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hex(x.issuer().as_raw()),
        "issuerKeyHash": hex(x.public_key().subject_public_key.data.as_ref()),
        "serialNumber": x.raw_serial_as_string().replace(':', ""),
    }))
}

/// A plain or TLS connection, so the WebSocket code is the same for both.
pub enum SimStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Open the TCP (and for wss://, TLS) connection for a charger.
pub async fn open(host: &str, port: u16, tls: bool, ch: &Charger, creds: &Credentials) -> Result<SimStream, String> {
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(SimStream::Plain(tcp));
    }
    let ca = creds
        .ca_file
        .as_ref()
        .ok_or("wss:// needs --ca-file, the CA certificate to trust")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots
            .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
            .map_err(|e| e.to_string())?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client_identity(ch, creds)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(SimStream::Tls(Box::new(s)))
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The certificate the server issued over OCPP, else the configured files.
fn client_identity(ch: &Charger, creds: &Credentials) -> Result<Option<Identity>, String> {
    let (chain, key) = match (&ch.security.issued, &creds.client_cert, &creds.client_key) {
        (Some((chain, key)), _, _) => (chain.clone(), key.clone()),
        (None, Some(c), Some(k)) => {
            let path = |p: &PathBuf| PathBuf::from(p.to_string_lossy().replace("{id}", &ch.plan.id));
            let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
            (read(path(c))?, read(path(k))?)
        }
        _ => return Ok(None),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("client key: {e}"))?;
    Ok(Some((chain, key)))
}

impl AsyncRead for SimStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_flush(cx),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SimStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            SimStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
