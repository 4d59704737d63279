//! The TCP control listener: the real CLI reaching a server over
//! `--server tls://…` with a token, refused tokens (wrong, missing, after
//! too many failures), refused plain TCP, and the owner-only files that
//! guard the server (control socket, token file).

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use voltyard::control::proto::{Envelope, Request, VERSION};

/// A server with the TCP control listener, its certificate signed by a test
/// CA whose PEM is `<certs>/ca.pem`.
struct Remote {
    server: TestServer,
    certs: tempfile::TempDir,
    ca: CertificateDer<'static>,
    addr: SocketAddr,
}

impl Remote {
    async fn start() -> Remote {
        let certs = tempfile::tempdir().unwrap();
        let ca = write_certs(certs.path());
        let dir = certs.path().to_path_buf();
        let server = TestServer::start_with(|c| {
            c.control_listen = Some("127.0.0.1:0".parse().unwrap());
            c.tls_cert = Some(dir.join("cert.pem"));
            c.tls_key = Some(dir.join("key.pem"));
        })
        .await;
        let addr = server.running.as_ref().unwrap().control_addr.expect("control listener");
        Remote {
            server,
            certs,
            ca,
            addr,
        }
    }

    fn token_file(&self) -> PathBuf {
        self.server.data_dir().join("control.token")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.token_file()).unwrap().trim().to_string()
    }

    /// The real CLI with `--server`, pointed at a data dir with no server, so
    /// only the TCP listener can answer.
    async fn cli(&self, token_file: &Path, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"));
        cmd.arg("--data-dir")
            .arg(self.certs.path().join("no-server-here"))
            .arg("--server")
            .arg(format!("tls://localhost:{}", self.addr.port()))
            .arg("--token-file")
            .arg(token_file)
            .arg("--ca-file")
            .arg(self.certs.path().join("ca.pem"))
            .args(args)
            .env_remove("VOLTYARD_TOKEN");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// A raw TLS connection that sends `first` and returns every line the server sent before closing.
    async fn raw(&self, first: &str) -> Vec<Value> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (read, mut write) = tokio::io::split(tls);
        write.write_all(format!("{first}\n").as_bytes()).await.unwrap();
        let mut lines = BufReader::new(read).lines();
        let mut got = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
            got.push(serde_json::from_str(&line).unwrap());
        }
        got
    }
}

fn write_certs(dir: &Path) -> CertificateDer<'static> {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "control test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca.der().clone()
}

fn status_request() -> String {
    serde_json::to_string(&Envelope {
        v: VERSION,
        request: Request::Status,
    })
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_subcommands_over_tls_with_the_token() {
    let r = Remote::start().await;
    assert_eq!(mode(&r.token_file()), 0o600, "token file made owner-only");
    assert_eq!(mode(&r.server.data_dir().join("control.sock")), 0o600);
    let token_file = r.token_file();
    assert_exit(&r.cli(&token_file, &["charger", "add", "CP-REMOTE"]).await, 0, "add");
    let out = r.cli(&token_file, &["charger", "list", "--json"]).await;
    assert_exit(&out, 0, "list");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["CP-REMOTE"]);
    // The local socket sees the same server.
    let local = r.server.cli_json(&["charger", "list"]).await;
    assert_eq!(local, list);
    // An API refusal keeps its exit code over TLS.
    assert_exit(
        &r.cli(&token_file, &["charger", "show", "NOPE"]).await,
        1,
        "unknown charger",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_and_missing_tokens_are_refused_with_one_line() {
    let r = Remote::start().await;
    let wrong = r.certs.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let out = r.cli(&wrong, &["charger", "list", "--json"]).await;
    assert_exit(&out, 1, "wrong token");
    assert!(err(&out).contains("wrong control token"), "{}", err(&out));
    assert!(out.stdout.is_empty());

    // A request without the token line first: one error line, then the server closes.
    let got = r.raw(&status_request()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["ok"], false);
    assert_eq!(got[0]["error"]["kind"], "unauthorized");
    assert!(
        got[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no control token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_wrong_tokens_are_throttled_per_address() {
    let r = Remote::start().await;
    for _ in 0..4 {
        let got = r.raw(r#"{"token":"guess"}"#).await;
        assert_eq!(got[0]["error"]["kind"], "unauthorized");
    }
    // Even the right token waits now.
    let hello = serde_json::json!({ "token": r.token() }).to_string();
    let got = r.raw(&hello).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many wrong control tokens"),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_token_opens_the_control_protocol() {
    let r = Remote::start().await;
    let hello = serde_json::json!({ "token": r.token() }).to_string();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(r.ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(r.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (read, mut write) = tokio::io::split(tls);
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(format!("{hello}\n{}\n", status_request()).as_bytes())
        .await
        .unwrap();
    let ok: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(ok["ok"], true);
    let status: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(status["result"]["api"], VERSION);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_tcp_gets_no_control_protocol() {
    let r = Remote::start().await;
    let mut tcp = TcpStream::connect(r.addr).await.unwrap();
    let hello = serde_json::json!({ "token": r.token() }).to_string();
    tcp.write_all(format!("{hello}\n{}\n", status_request()).as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("\"ok\""), "plain TCP got a control reply: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listener_needs_tls_files_and_an_owner_only_token() {
    let dir = tempfile::tempdir().unwrap();
    let no_tls = voltyard::server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("a"),
        control_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let e = voltyard::server::start(no_tls).await.err().expect("refused");
    assert!(e.to_string().contains("control_listen"), "{e}");

    write_certs(dir.path());
    let token = dir.path().join("shared.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = voltyard::server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("b"),
        control_listen: Some("127.0.0.1:0".parse().unwrap()),
        control_token_file: Some(token.clone()),
        tls_cert: Some(dir.path().join("cert.pem")),
        tls_key: Some(dir.path().join("key.pem")),
        ..Default::default()
    };
    let e = voltyard::server::start(exposed.clone()).await.err().expect("refused");
    assert!(e.to_string().contains("read by group or others"), "{e:#}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let running = voltyard::server::start(exposed)
        .await
        .expect("owner-only token accepted");
    running.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_or_no_listener_is_unreachable() {
    let r = Remote::start().await;
    let other = tempfile::tempdir().unwrap();
    write_certs(other.path());
    std::fs::copy(other.path().join("ca.pem"), r.certs.path().join("ca.pem")).unwrap();
    let out = r.cli(&r.token_file(), &["charger", "list"]).await;
    assert_exit(&out, 3, "untrusted certificate");
    assert!(err(&out).contains("certificate"), "{}", err(&out));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .args(["--server", "tls://localhost", "charger", "list"])
        .output()
        .unwrap();
    assert_exit(&out, 2, "no port");
    assert!(err(&out).contains("--server"), "{}", err(&out));
}
