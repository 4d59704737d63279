//! Security profiles 2 and 3 over real TLS: certificates made in the test
//! with rcgen, a rustls client, the built-in CA for client certificates,
//! identity binding, refused downgrades, and a SIGHUP reload of the server
//! certificate in a real `voltyard serve` process.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A test CA that issues server certificates for "localhost".
struct TestCa {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    /// (chain PEM, key PEM, leaf DER) for a server certificate.
    fn server(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// (chain, key) of a client certificate with this common name.
    fn client(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
    }
}

type Client = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Why a connection did not open.
#[derive(Debug, PartialEq)]
enum Refused {
    /// The TLS handshake failed.
    Tls,
    /// The WebSocket handshake got this HTTP status.
    Http(u16),
}

/// A wss:// connection; also returns the server's leaf certificate.
async fn wss(
    addr: SocketAddr,
    id: &str,
    trust: &[CertificateDer<'static>],
    client: Option<Client>,
    basic: Option<&str>,
) -> Result<(WebSocketStream<TlsStream<TcpStream>>, CertificateDer<'static>), Refused> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trust {
        roots.add(c.clone()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|_| Refused::Tls)?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    let mut req = format!("wss://localhost:{}/ocpp/{id}", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ocpp1.6"));
    if let Some(b) = basic {
        let enc = data_encoding::BASE64.encode(b.as_bytes());
        req.headers_mut()
            .insert("Authorization", HeaderValue::from_str(&format!("Basic {enc}")).unwrap());
    }
    // With TLS 1.3 the server checks the client certificate after the
    // client's handshake is done: a refusal shows up on the first read.
    match tokio_tungstenite::client_async(req, tls).await {
        Ok((ws, _)) => Ok((ws, leaf)),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(Refused::Http(r.status().as_u16())),
        Err(_) => Err(Refused::Tls),
    }
}

/// One Heartbeat round trip over an open connection.
async fn heartbeat<S>(ws: &mut WebSocketStream<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if ws.send(Message::text(r#"[2,"hb","Heartbeat",{}]"#)).await.is_err() {
        return false;
    }
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.as_str().starts_with("[3,\"hb\""),
            Ok(Some(Ok(_))) => continue,
            _ => return false,
        }
    }
}

fn write_server_cert(dir: &Path, ca: &TestCa) -> CertificateDer<'static> {
    let (chain, key, leaf) = ca.server();
    // Written through a rename so a reload never sees half a file.
    std::fs::write(dir.join("cert.pem.tmp"), chain).unwrap();
    std::fs::write(dir.join("key.pem.tmp"), key).unwrap();
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join("key.pem.tmp"), dir.join("key.pem")).unwrap();
    leaf
}

async fn tls_server(certs: &Path, ca: &TestCa, extra_client_ca: Option<&Path>) -> TestServer {
    write_server_cert(certs, ca);
    let certs = certs.to_path_buf();
    let extra = extra_client_ca.map(Path::to_path_buf);
    TestServer::start_with(move |c| {
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls_cert = Some(certs.join("cert.pem"));
        c.tls_key = Some(certs.join("key.pem"));
        c.tls_client_ca = extra.into_iter().collect();
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_2_needs_tls_and_the_password_and_plain_ws_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server CA");
    let srv = tls_server(certs.path(), &server_ca, None).await;
    let tls_addr = srv.running.as_ref().unwrap().tls_addr.unwrap();
    srv.ok(&[
        "charger",
        "add",
        "T2",
        "--password",
        "tls-password-2",
        "--security-profile",
        "2",
    ])
    .await;
    let trust = [server_ca.der.clone()];
    let (mut ws, _) = wss(tls_addr, "T2", &trust, None, Some("T2:tls-password-2"))
        .await
        .unwrap();
    assert!(heartbeat(&mut ws).await);
    assert_eq!(
        wss(tls_addr, "T2", &trust, None, Some("T2:wrong-password")).await.err(),
        Some(Refused::Http(401))
    );
    let e = connect_raw(srv.addr, "/ocpp/T2", Some("ocpp1.6"), Some("T2:tls-password-2"))
        .await
        .unwrap_err();
    assert_eq!(
        refused_status(&e).map(|s| s.as_u16()),
        Some(403),
        "plain ws:// is a downgrade"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_3_needs_a_client_certificate_for_this_very_charger() {
    let certs = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server CA");
    // Client certificates from an operator's own CA are trusted when configured.
    let own_ca = TestCa::new("operator CA");
    let own_ca_file = certs.path().join("own-ca.pem");
    std::fs::write(&own_ca_file, pem_of(&own_ca.der)).unwrap();
    let srv = tls_server(certs.path(), &server_ca, Some(&own_ca_file)).await;
    let tls_addr = srv.running.as_ref().unwrap().tls_addr.unwrap();
    srv.ok(&["charger", "add", "T3", "--security-profile", "3"]).await;
    srv.ok(&["charger", "add", "T3B", "--security-profile", "3"]).await;
    let trust = [server_ca.der.clone()];
    // A certificate from the built-in CA (what SignCertificate hands out).
    let ca = srv.running.as_ref().unwrap().shared.ca().unwrap();
    let (issued, key) = ca.issue("T3", 30).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let (mut ws, _) = wss(tls_addr, "T3", &trust, Some((chain.clone(), key.clone_key())), None)
        .await
        .unwrap();
    assert!(heartbeat(&mut ws).await);
    // The operator's CA works too.
    assert!(
        wss(tls_addr, "T3", &trust, Some(own_ca.client("T3")), None)
            .await
            .is_ok()
    );
    // T3's certificate cannot open T3B's connection.
    assert_eq!(
        wss(tls_addr, "T3B", &trust, Some((chain, key)), None).await.err(),
        Some(Refused::Http(403))
    );
    // TLS without a client certificate is a downgrade to profile 2.
    assert_eq!(
        wss(tls_addr, "T3", &trust, None, None).await.err(),
        Some(Refused::Http(403))
    );
    // A certificate from a CA nobody configured fails the TLS handshake.
    let stranger = TestCa::new("stranger CA");
    assert_eq!(
        wss(tls_addr, "T3", &trust, Some(stranger.client("T3")), None)
            .await
            .err(),
        Some(Refused::Tls)
    );
    // Refusals are recorded just after the HTTP answer went out.
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let v = srv.cli_json(&["events", "--limit", "100"]).await;
        let refused: Vec<serde_json::Value> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "security_refused")
            .cloned()
            .collect();
        if refused.len() >= 2 || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("client certificate for"))
    );
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    let b64 = data_encoding::BASE64.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A `voltyard serve` child; SIGKILLed by PID when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate_for_new_connections_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_a, ca_b) = (TestCa::new("CA A"), TestCa::new("CA B"));
    let leaf_a = write_server_cert(dir.path(), &ca_a);
    let (port, tls_port) = (free_port(), free_port());
    let config = dir.path().join("voltyard.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ntls_listen = \"127.0.0.1:{tls_port}\"\nunknown_chargers = \"accept\"\n\
             tls_cert = \"{cert}\"\ntls_key = \"{key}\"\ndata_dir = \"{data}\"\n",
            cert = dir.path().join("cert.pem").display(),
            key = dir.path().join("key.pem").display(),
            data = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_voltyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let server = Serve(child);
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let trust = [ca_a.der.clone(), ca_b.der.clone()];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut old, leaf) = loop {
        if TcpStream::connect(tls_addr).await.is_ok() {
            break wss(tls_addr, "OLD", &trust, None, None).await.unwrap();
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(leaf, leaf_a);
    let leaf_b = write_server_cert(dir.path(), &ca_b);
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_new, leaf) = wss(tls_addr, "NEW", &trust, None, None).await.unwrap();
        if leaf == leaf_b {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        heartbeat(&mut old).await,
        "the connection opened before the reload still works"
    );
    // A broken file keeps the certificate in use.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_again, leaf) = wss(tls_addr, "AGAIN", &trust, None, None).await.unwrap();
    assert_eq!(leaf, leaf_b);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("TLS reload failed"), "{log}");
}

async fn connected(srv: &TestServer, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let v = srv.cli_json(&["charger", "show", id]).await;
        if v["connected"] == true && v["status"] == "accepted" && v["last_boot"].is_string() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_climbs_from_profile_2_to_3_and_answers_every_security_call() {
    use voltyard::sim::scenario::ProtocolChoice;
    use voltyard::sim::{Credentials, Options, Plan, Scenario, Simulation};
    for proto in [ProtocolChoice::V16, ProtocolChoice::V201] {
        let certs = tempfile::tempdir().unwrap();
        let server_ca = TestCa::new("server CA");
        let srv = tls_server(certs.path(), &server_ca, None).await;
        let tls_addr = srv.running.as_ref().unwrap().tls_addr.unwrap();
        let ca_file = certs.path().join("server-ca.pem");
        std::fs::write(&ca_file, pem_of(&server_ca.der)).unwrap();
        let scenario = Scenario::generic(1, proto, 1);
        let id = Plan::new(&scenario, 3).chargers[0].id.clone();
        srv.ok(&[
            "charger",
            "add",
            &id,
            "--password",
            "sim-password-profile2",
            "--security-profile",
            "2",
        ])
        .await;
        let sim = Simulation::start_with(
            Options {
                url: format!("wss://localhost:{}/ocpp", tls_addr.port()),
                scenario,
                seed: 3,
                validate: true,
                connect_rate: 10,
                call_timeout: Duration::from_secs(10),
            },
            Credentials {
                password: Some("sim-password-profile2".into()),
                ca_file: Some(ca_file.clone()),
                ..Default::default()
            },
        );
        if !connected(&srv, &id).await {
            panic!("{id} did not connect with TLS and its password: {:?}", sim.stop().await);
        }
        let v = srv.cli_json(&["charger", "set-password", &id, "--generate"]).await;
        assert_eq!(v["pushed"], true, "{v}");
        srv.ok(&["charger", "cert", "renew", &id]).await;
        let deadline = Instant::now() + WAIT;
        while srv
            .cli_json(&["charger", "cert", "issued", "--charger", &id])
            .await
            .as_array()
            .unwrap()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "{id} never sent a CSR that was signed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Installed roots round-trip through the simulator.
        let ca_pem = out(&srv.cli(&["charger", "cert", "ca"]).await);
        let root = certs.path().join("root.pem");
        std::fs::write(&root, &ca_pem).unwrap();
        srv.ok(&[
            "charger",
            "cert",
            "install",
            &id,
            "--type",
            "csms-root",
            root.to_str().unwrap(),
        ])
        .await;
        let listed = srv.cli_json(&["charger", "cert", "list", &id]).await;
        let serial = listed[0]["serial_number"].as_str().unwrap().to_string();
        srv.ok(&["charger", "cert", "delete", &id, &serial]).await;
        assert!(
            srv.cli_json(&["charger", "cert", "list", &id])
                .await
                .as_array()
                .unwrap()
                .is_empty()
        );
        // Now profile 3: after a reset the simulator reconnects with the
        // certificate it got over OCPP, and the new password.
        srv.ok(&["charger", "set-security-profile", &id, "3"]).await;
        let before = srv.cli_json(&["charger", "show", &id]).await["connected_since"].clone();
        srv.ok(&["charger", "reset", &id]).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = srv.cli_json(&["charger", "show", &id]).await;
            if v["connected"] == true && v["connected_since"] != before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not reconnect with its client certificate"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = sim.stop().await;
        let v = srv.cli_json(&["events", "--limit", "500"]).await;
        let refused: Vec<&serde_json::Value> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "security_refused")
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
    }
}
