//! The TCP control listener, both ends: the control protocol of the Unix
//! socket, over TLS only, after the client's first line carried the control
//! token. Whoever holds the token file holds the server, so it must be
//! owner-only; wrong tokens are throttled per source address.

use super::client::{Client, ClientError};
use super::proto::{ApiError, ErrorKind, Hello};
use super::server::{MAX_LINE, session, to_reply, write_line};
use crate::server::Shared;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A client must connect, finish TLS and send its token within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("control token file {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("control token file {path} may be read by group or others (mode {mode:o}); run `chmod 600` on it")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("control token file {path} holds no token")]
    Empty { path: PathBuf },
}

/// The token in `path`; a missing file is made with a fresh random token
/// (32 bytes, hex) and mode 0600.
pub fn load_or_create_token(path: &Path) -> Result<String, TokenError> {
    let io = |err| TokenError::Io { path: path.into(), err };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            file.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
            return Ok(token);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Exposed {
            path: path.into(),
            mode,
        });
    }
    let token = std::fs::read_to_string(path).map_err(io)?.trim().to_string();
    if token.is_empty() {
        return Err(TokenError::Empty { path: path.into() });
    }
    Ok(token)
}

pub async fn serve(listener: TcpListener, token: String, shared: Arc<Shared>) {
    let token: Arc<str> = token.into();
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let (token, shared) = (token.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Err(e) = connection(tcp, peer, &token, shared).await {
                        tracing::debug!(%peer, "control client over TLS: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("control accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn timed_out(_: tokio::time::error::Elapsed) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no TLS handshake and token in time")
}

async fn connection(tcp: TcpStream, peer: SocketAddr, token: &str, shared: Arc<Shared>) -> std::io::Result<()> {
    let Some(tls) = &shared.tls else {
        return Ok(());
    };
    let stream = tokio::time::timeout(HELLO_TIMEOUT, tls.acceptor().accept(tcp))
        .await
        .map_err(timed_out)??;
    let (read, mut write) = tokio::io::split(stream);
    let ip = peer.ip();
    if let Some(wait) = shared.guard.control_throttled(ip) {
        tracing::warn!(%peer, "control listener: attempt while throttled");
        let err = ApiError::new(
            ErrorKind::Unauthorized,
            format!("too many wrong control tokens from {ip}; retry in {wait} s"),
        );
        write_line(&mut write, &to_reply(Err(err))).await?;
        return write.shutdown().await;
    }
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    tokio::time::timeout(HELLO_TIMEOUT, (&mut lines).take(MAX_LINE as u64).read_line(&mut line))
        .await
        .map_err(timed_out)??;
    let offered = serde_json::from_str::<Hello>(&line).ok().map(|h| h.token);
    let what = match offered {
        Some(t) if same(&t, token) => {
            shared.guard.control_succeeded(ip);
            tracing::info!(%peer, "control client authenticated");
            write_line(&mut write, &to_reply(Ok(json!({})))).await?;
            return session(lines, write, shared).await;
        }
        Some(_) => "wrong control token",
        None => "no control token",
    };
    let failures = shared.guard.control_failed(ip);
    tracing::warn!(%peer, failures, "control listener: {what}");
    let err = ApiError::new(
        ErrorKind::Unauthorized,
        format!("{what}: the first line must be {{\"token\":\"…\"}} with the server's control token"),
    );
    write_line(&mut write, &to_reply(Err(err))).await?;
    write.shutdown().await
}

/// Compares digests, so the time taken says nothing about how much of a
/// guess matched the token.
fn same(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// A server reached over `tls://HOST:PORT`.
#[derive(Debug, Clone)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    pub token: String,
    /// Certificates (PEM) trusted for the server's certificate.
    pub ca_file: PathBuf,
}

impl Remote {
    /// `tls://HOST:PORT` (IPv6 hosts in brackets).
    pub fn parse_url(url: &str) -> Result<(String, u16), String> {
        let rest = url
            .strip_prefix("tls://")
            .ok_or_else(|| format!("{url:?} must start with tls://"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{url:?} must name a port: tls://HOST:PORT"))?;
        let port = port.parse().map_err(|_| format!("{url:?}: {port:?} is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} must name a host: tls://HOST:PORT"));
        }
        Ok((host.to_string(), port))
    }

    pub async fn connect(&self) -> Result<Client, ClientError> {
        let addr = format!("{}:{}", self.host, self.port);
        let unreachable = |err: String| ClientError::Remote {
            addr: addr.clone(),
            err,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&self.ca_file)
            .map_err(|e| ClientError::Setup(format!("--ca-file {}: {e}", self.ca_file.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| ClientError::Setup(format!("--ca-file {}: {e}", self.ca_file.display())))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Setup(format!("--ca-file {}: {e}", self.ca_file.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| ClientError::Setup(format!("--server host {:?}: {e}", self.host)))?;
        let tcp = tokio::time::timeout(HELLO_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let tls = tokio::time::timeout(
            HELLO_TIMEOUT,
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| unreachable("TLS handshake timed out".into()))?
        .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let (read, write) = tokio::io::split(tls);
        let mut client = Client::from_parts(Box::new(read), Box::new(write));
        client.hello(&self.token).await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", ""));
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            Remote::parse_url("tls://cpms.example:9443"),
            Ok(("cpms.example".into(), 9443))
        );
        assert_eq!(Remote::parse_url("tls://[::1]:9443"), Ok(("::1".into(), 9443)));
        assert!(Remote::parse_url("cpms.example:9443").is_err());
        assert!(Remote::parse_url("tls://cpms.example").is_err());
        assert!(Remote::parse_url("tls://:9443").is_err());
    }

    #[test]
    fn token_file_is_made_owner_only_and_exposed_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.token");
        let token = load_or_create_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create_token(&path).unwrap(), token);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(load_or_create_token(&path), Err(TokenError::Exposed { .. })));
    }
}
