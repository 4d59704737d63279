//! ISO 15118 Plug & Charge end to end on OCPP 2.0.1: Get15118EVCertificate
//! from the local test PKI, GetCertificateStatus with real OCSP responses,
//! Authorize with contract certificates and their refusals, revocation,
//! and the http source against a loopback HTTP server.

mod common;

use common::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};
use voltyard::domain::pnc::OcspRequestData;
use voltyard::pnc::{ocsp, test_exi, verify};

const EMAID: &str = "DE-VYD-C00000001-7";

async fn charger(srv: &TestServer, id: &str) -> Cp {
    srv.ok(&["charger", "add", id]).await;
    let mut cp = srv.cp(id, "ocpp2.0.1").await;
    assert_eq!(cp.boot201().await["status"], "Accepted");
    cp
}

fn csr() -> String {
    let key = KeyPair::generate().unwrap();
    CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

fn exi_request(emaid: Option<&str>) -> String {
    test_exi::encode(&test_exi::Request {
        format: test_exi::FORMAT.into(),
        csr: csr(),
        emaid: emaid.map(str::to_string),
    })
}

async fn install(cp: &mut Cp, exi: &str) -> Value {
    cp.call(
        "Get15118EVCertificate",
        json!({"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install", "exiRequest": exi}),
    )
    .await
    .expect("Get15118EVCertificate answered")
}

/// The contract chain (PEM) the local source issued for `emaid`.
async fn contract_chain(cp: &mut Cp, emaid: &str) -> String {
    let r = install(cp, &exi_request(Some(emaid))).await;
    assert_eq!(r["status"], "Accepted", "{r}");
    let res: test_exi::Response = test_exi::decode(r["exiResponse"].as_str().unwrap()).unwrap();
    assert_eq!(res.emaid, emaid);
    res.contract_certificate_chain
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    verify::pem_chain(pem).unwrap()
}

fn hash_of(chain: &[Vec<u8>]) -> OcspRequestData {
    verify::hash_data(&chain[0], &chain[1], "http://ocsp.invalid").unwrap()
}

async fn authorize(cp: &mut Cp, emaid: &str, extra: Value) -> Value {
    let mut p = json!({"idToken": {"idToken": emaid, "type": "eMAID"}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    cp.call("Authorize", p).await.expect("Authorize answered")
}

fn mo_root(srv: &TestServer) -> Vec<u8> {
    ders(&std::fs::read_to_string(srv.data_dir().join("pnc/mo-root.pem")).unwrap()).remove(0)
}

async fn events(srv: &TestServer) -> Vec<String> {
    let v = srv.cli_json(&["events", "--limit", "200"]).await;
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "pnc")
        .map(|e| e["detail"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn install_authorize_ocsp_and_revoke_with_the_local_source() {
    let srv = TestServer::start().await;
    let mut cp = charger(&srv, "PNC-1").await;
    let chain_pem = contract_chain(&mut cp, EMAID).await;
    let chain = ders(&chain_pem);
    assert_eq!(chain.len(), 2, "contract certificate and MO sub-CA");
    assert_eq!(verify::common_name(&chain[0]).as_deref(), Some(EMAID));
    let serial = verify::serial_hex(&chain[0]).unwrap();
    // Stored before the charger heard Accepted.
    let st = srv.cli_json(&["pnc", "status"]).await;
    assert_eq!(st["source"], "local");
    assert_eq!(st["certificates"][0]["serial"], serial.as_str());
    assert_eq!(st["certificates"][0]["emaid"], EMAID);
    // The key files of the test PKI are the owner's only.
    #[cfg(unix)]
    for f in ["v2g-root", "mo-root", "mo-sub-ca", "ocsp"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(srv.data_dir().join(format!("pnc/{f}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}.key");
    }

    // An eMAID the token store does not know: the certificate is fine, the token is not.
    let r = authorize(&mut cp, EMAID, json!({"certificate": chain_pem})).await;
    assert_eq!(r["idTokenInfo"]["status"], "Unknown", "{r}");
    assert_eq!(r["certificateStatus"], "Accepted");
    srv.ok(&["token", "add", EMAID, "--kind", "contract"]).await;
    let r = authorize(&mut cp, EMAID, json!({"certificate": chain_pem})).await;
    assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{r}");
    assert_eq!(r["certificateStatus"], "Accepted");
    // Hash data only (the charger checked the chain itself): OCSP decides.
    let hd = hash_of(&chain);
    let r = authorize(&mut cp, EMAID, json!({"iso15118CertificateHashData": [hd]})).await;
    assert_eq!(r["idTokenInfo"]["status"], "Accepted", "{r}");
    assert_eq!(r["certificateStatus"], "Accepted");

    // GetCertificateStatus: a real DER OCSPResponse, signed by the delegated responder.
    let r = cp
        .call("GetCertificateStatus", json!({"ocspRequestData": hd}))
        .await
        .unwrap();
    assert_eq!(r["status"], "Accepted", "{r}");
    let der = data_encoding::BASE64
        .decode(r["ocspResult"].as_str().unwrap().as_bytes())
        .unwrap();
    let trusted = vec![mo_root(&srv), chain[1].clone()];
    assert_eq!(ocsp::read(&der, &hd, &trusted), Ok(ocsp::Status::Good));
    // Not under another root.
    assert_eq!(ocsp::read(&der, &hd, &[]), Err(ocsp::OcspError::Signature));

    // Revocation: CLI validation, then OCSP and Authorize.
    assert_exit(&srv.cli(&["cert", "revoke", "not-hex"]).await, 2, "bad serial");
    assert_exit(&srv.cli(&["cert", "revoke", "abcdef"]).await, 1, "unknown serial");
    srv.ok(&["cert", "revoke", &serial]).await;
    assert_exit(&srv.cli(&["cert", "revoke", &serial]).await, 1, "revoked twice");
    let r = cp
        .call("GetCertificateStatus", json!({"ocspRequestData": hd}))
        .await
        .unwrap();
    let der = data_encoding::BASE64
        .decode(r["ocspResult"].as_str().unwrap().as_bytes())
        .unwrap();
    assert!(matches!(
        ocsp::read(&der, &hd, &trusted),
        Ok(ocsp::Status::Revoked { cancelled: false, .. })
    ));
    let r = authorize(&mut cp, EMAID, json!({"certificate": chain_pem})).await;
    assert_eq!(r["idTokenInfo"]["status"], "Invalid", "{r}");
    assert_eq!(r["certificateStatus"], "CertificateRevoked");
    let r = authorize(&mut cp, EMAID, json!({"iso15118CertificateHashData": [hd]})).await;
    assert_eq!(r["certificateStatus"], "CertificateRevoked");
    assert!(events(&srv).await.iter().any(|e| e.contains("CertificateRevoked")));

    // A cancelled contract.
    let other = "DE-VYD-C00000002-5";
    let chain2 = contract_chain(&mut cp, other).await;
    let serial2 = verify::serial_hex(&ders(&chain2)[0]).unwrap();
    srv.ok(&["cert", "revoke", &serial2, "--cancelled"]).await;
    let r = authorize(&mut cp, other, json!({"certificate": chain2})).await;
    assert_eq!(r["certificateStatus"], "ContractCancelled", "{r}");
    let st = srv.cli_json(&["pnc", "status"]).await;
    assert_eq!(st["revoked"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_chains_expired_certificates_and_garbage_get_precise_answers() {
    let srv = TestServer::start().await;
    let mut cp = charger(&srv, "PNC-2").await;
    srv.ok(&["token", "add", EMAID, "--kind", "contract"]).await;
    let good = contract_chain(&mut cp, EMAID).await;

    // A chain under another MO root.
    let (other_root, other_issuer) = ca("someone else's MO root", None);
    let leaf = leaf_pem(
        EMAID,
        &other_issuer,
        chrono::Duration::days(-1),
        chrono::Duration::days(30),
    );
    let r = authorize(
        &mut cp,
        EMAID,
        json!({"certificate": format!("{leaf}{}", other_root.pem())}),
    )
    .await;
    assert_eq!(r["certificateStatus"], "CertChainError", "{r}");
    assert_eq!(r["idTokenInfo"]["status"], "Invalid");

    // A sub-CA that claims the local MO root as issuer but was signed by another key.
    let (_, fake_root) = ca("voltyard test MO root", Some("voltyard test PKI"));
    let fake_sub = {
        let key = KeyPair::generate().unwrap();
        let mut p = ca_params("voltyard test MO sub-CA");
        p.distinguished_name.push(DnType::OrganizationName, "voltyard test PKI");
        let c = p.signed_by(&key, &fake_root).unwrap();
        (c.pem(), Issuer::new(p, key))
    };
    let leaf = leaf_pem(
        EMAID,
        &fake_sub.1,
        chrono::Duration::days(-1),
        chrono::Duration::days(30),
    );
    let r = authorize(&mut cp, EMAID, json!({"certificate": format!("{leaf}{}", fake_sub.0)})).await;
    assert_eq!(r["certificateStatus"], "SignatureError", "{r}");

    // The chain of another eMAID.
    let r = authorize(&mut cp, "DE-VYD-C99999999-1", json!({"certificate": good})).await;
    assert_eq!(r["certificateStatus"], "CertChainError", "{r}");

    // Expired: signed by the real MO sub-CA (its key from the data dir), ended yesterday.
    let sub_key =
        KeyPair::from_pem(&std::fs::read_to_string(srv.data_dir().join("pnc/mo-sub-ca.key")).unwrap()).unwrap();
    let sub_pem = std::fs::read_to_string(srv.data_dir().join("pnc/mo-sub-ca.pem")).unwrap();
    let sub = Issuer::from_ca_cert_pem(&sub_pem, sub_key).unwrap();
    let expired = leaf_pem(EMAID, &sub, chrono::Duration::days(-400), chrono::Duration::days(-1));
    let r = authorize(&mut cp, EMAID, json!({"certificate": format!("{expired}{sub_pem}")})).await;
    assert_eq!(r["certificateStatus"], "CertificateExpired", "{r}");

    // Garbage never crashes anything.
    let r = authorize(&mut cp, EMAID, json!({"certificate": "not a certificate"})).await;
    assert_eq!(r["certificateStatus"], "NoCertificateAvailable", "{r}");
    let r = authorize(
        &mut cp,
        EMAID,
        json!({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
    )
    .await;
    assert_eq!(r["certificateStatus"], "CertChainError", "{r}");
    let r = install(&mut cp, "%%% not base64").await;
    assert_eq!(r["status"], "Failed");
    assert_eq!(r["statusInfo"]["reasonCode"], "InvalidBase64");
    let r = install(&mut cp, &data_encoding::BASE64.encode(b"\x80\x01real EXI bytes")).await;
    assert_eq!(r["statusInfo"]["reasonCode"], "UnsupportedEXI", "{r}");
    let bad_csr = test_exi::encode(&test_exi::Request {
        format: test_exi::FORMAT.into(),
        csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
        emaid: None,
    });
    assert_eq!(
        install(&mut cp, &bad_csr).await["statusInfo"]["reasonCode"],
        "InvalidCSR"
    );
    assert_eq!(
        install(&mut cp, &exi_request(Some("not an eMAID!"))).await["statusInfo"]["reasonCode"],
        "InvalidEMAID"
    );
    // GetCertificateStatus about an issuer the local CA does not know.
    let mut hd = hash_of(&ders(&good));
    hd.issuer_key_hash = "00".repeat(32);
    let r = cp
        .call("GetCertificateStatus", json!({"ocspRequestData": hd}))
        .await
        .unwrap();
    assert_eq!(r["status"], "Failed");
    assert_eq!(r["statusInfo"]["reasonCode"], "UnknownIssuer");
    let r = authorize(&mut cp, EMAID, json!({"iso15118CertificateHashData": [hd]})).await;
    assert_eq!(r["certificateStatus"], "CertChainError", "{r}");
    // A schema violation is a CALLERROR, not an answer.
    let e = cp
        .call("Get15118EVCertificate", json!({"action": "Install", "exiRequest": "x"}))
        .await
        .unwrap_err();
    assert!(
        e.0.contains("Occurrence") || e.0.contains("Formation") || e.0.contains("Property"),
        "{e:?}"
    );
    // Still the same connection, still answering.
    assert_eq!(
        authorize(&mut cp, EMAID, json!({"certificate": good})).await["certificateStatus"],
        "Accepted"
    );
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p
}

fn ca(cn: &str, org: Option<&str>) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = ca_params(cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    let c = p.self_signed(&key).unwrap();
    (c, Issuer::new(p, key))
}

fn leaf_pem(emaid: &str, issuer: &Issuer<'_, KeyPair>, from: chrono::Duration, until: chrono::Duration) -> String {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, emaid);
    let t =
        |d: chrono::Duration| time::OffsetDateTime::from_unix_timestamp((chrono::Utc::now() + d).timestamp()).unwrap();
    p.not_before = t(from);
    p.not_after = t(until);
    p.signed_by(&key, issuer).unwrap().pem()
}

/// A one-shot loopback HTTP server: answers each POST with `answer(body)`.
async fn http_source(answer: fn(&Value) -> Option<Value>) -> (String, tokio::task::JoinHandle<Vec<Value>>) {
    pki_source(answer, None).await
}

/// A source answering two requests, over TLS with `tls`, then gone.
async fn pki_source(
    answer: fn(&Value) -> Option<Value>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, tokio::task::JoinHandle<Vec<Value>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/pnc", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let Ok(Ok((s, _))) = tokio::time::timeout(WAIT, listener.accept()).await else {
                break;
            };
            let served = match &tls {
                None => serve_one(s, answer).await,
                Some(acceptor) => match acceptor.accept(s).await {
                    Ok(s) => serve_one(s, answer).await,
                    Err(_) => None,
                },
            };
            match served {
                Some(body) => seen.push(body),
                None => break,
            }
        }
        seen
    });
    (url, task)
}

/// Read one JSON request and answer it (or stay silent); the request.
async fn serve_one<S>(mut s: S, answer: fn(&Value) -> Option<Value>) -> Option<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                break serde_json::from_slice::<Value>(&buf[i + 4..i + 4 + len]).ok();
            }
        }
    };
    let body = body?;
    let Some(reply) = answer(&body) else {
        // Never answer: the source's timeout must hold.
        tokio::time::sleep(WAIT).await;
        return Some(body);
    };
    let reply = reply.to_string();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
    Some(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_source_gets_the_request_and_its_answer_is_relayed() {
    let (url, seen) = http_source(|req| match req["exiRequest"].as_str() {
        Some("slow") => None,
        Some(exi) => Some(json!({"status": "Accepted", "exiResponse": format!("answer-to-{exi}")})),
        None => Some(json!({"status": "Failed", "reasonCode": "NoOCSP"})),
    })
    .await;
    let roots = tempfile::NamedTempFile::new().unwrap();
    let (root, _) = ca("an MO root", None);
    std::fs::write(roots.path(), root.pem()).unwrap();
    let roots_path = roots.path().to_path_buf();
    let srv = TestServer::start_with(move |c| {
        c.pnc.source = voltyard::config::PncSource::Http;
        c.pnc.url = Some(url);
        c.pnc.mo_roots = vec![roots_path];
        c.pnc.timeout_ms = 500;
    })
    .await;
    let mut cp = charger(&srv, "PNC-3").await;
    let r = install(&mut cp, "opaque-exi").await;
    assert_eq!(r["status"], "Accepted", "{r}");
    assert_eq!(r["exiResponse"], "answer-to-opaque-exi");
    let started = std::time::Instant::now();
    let r = install(&mut cp, "slow").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(r["status"], "Failed");
    assert_eq!(r["statusInfo"]["reasonCode"], "SourceTimeout");
    let seen = seen.await.unwrap();
    assert_eq!(seen[0]["action"], "Get15118EVCertificate");
    assert_eq!(seen[0]["iso15118SchemaVersion"], "urn:iso:15118:2:2013:MsgDef");
    assert_eq!(seen[0]["certificateAction"], "Install");
    assert_eq!(seen[0]["charger"], "PNC-3");
    // Nothing listens any more: unavailable, not a hang.
    let r = install(&mut cp, "again").await;
    assert_eq!(r["statusInfo"]["reasonCode"], "SourceUnavailable", "{r}");
    // Nothing was issued locally.
    assert_eq!(srv.cli_json(&["pnc", "status"]).await["issued"], 0);
}

/// A TLS server certificate for 127.0.0.1 from a fresh CA: (acceptor, CA PEM).
fn tls_for_loopback() -> (tokio_rustls::TlsAcceptor, String) {
    let (ca_cert, issuer) = ca("a PKI gateway's CA", None);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        ca_cert.pem(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_source_is_checked_against_its_ca_file() {
    let answer = |req: &Value| Some(json!({"status": "Accepted", "exiResponse": format!("tls-{}", req["exiRequest"])}));
    let (acceptor, ca_pem) = tls_for_loopback();
    let (url, seen) = pki_source(answer, Some(acceptor)).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = ca("an MO root", None);
    std::fs::write(dir.path().join("mo.pem"), root.pem()).unwrap();
    std::fs::write(dir.path().join("gateway-ca.pem"), ca_pem).unwrap();
    let (other, _) = ca("somebody else's CA", None);
    std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
    let start = |url: String, ca_file: &str| {
        let d = dir.path().to_path_buf();
        let ca_file = d.join(ca_file);
        TestServer::start_with(move |c| {
            c.pnc.source = voltyard::config::PncSource::Http;
            c.pnc.url = Some(url);
            c.pnc.mo_roots = vec![d.join("mo.pem")];
            c.pnc.ca_file = Some(ca_file);
            c.pnc.timeout_ms = 2_000;
        })
    };

    let srv = start(url.clone(), "gateway-ca.pem").await;
    let mut cp = charger(&srv, "PNC-TLS").await;
    let r = install(&mut cp, "over-tls").await;
    assert_eq!(r["status"], "Accepted", "{r}");
    assert_eq!(r["exiResponse"], "tls-\"over-tls\"");
    drop(cp);
    drop(srv);

    // A server whose certificate does not chain to ca_file is not asked.
    let srv = start(url, "other-ca.pem").await;
    let mut cp = charger(&srv, "PNC-TLS").await;
    let r = install(&mut cp, "to-an-impostor").await;
    assert_eq!(r["status"], "Failed", "{r}");
    assert_eq!(r["statusInfo"]["reasonCode"], "SourceUnavailable");
    assert!(
        r["statusInfo"]["additionalInfo"].as_str().unwrap_or("").contains("TLS"),
        "{r}"
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.len(), 1, "the impostor check happens before any request is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_iso15118_car_gets_a_contract_and_charges_with_plug_and_charge() {
    use voltyard::sim::{Options, Scenario, Simulation};
    let srv = TestServer::start_with(|c| c.unknown_chargers = voltyard::server::UnknownChargers::Accept).await;
    for n in 1..=3 {
        let emaid = voltyard::sim::pnc_emaid(&format!("T{n:04}"));
        srv.ok(&["token", "add", &emaid, "--kind", "contract"]).await;
    }
    let text = r#"
[site]
id = "pnc"
name = "PnC site"

[[chargers]]
prefix = "P"
count = 1
protocol = "2.0.1"
meter_interval_s = 1

[[tokens]]
prefix = "T"
count = 3

[[cars]]
name = "PnC car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3
dc_max_kw = 100
iso15118 = true

[arrivals]
first_within_s = 1
gap_s = [1, 2]
dwell_s = [3, 4]
soc_percent = [20, 30]
unknown_token_percent = 0
"#;
    let sim = Simulation::start(Options {
        url: format!("ws://{}/ocpp", srv.addr),
        scenario: Scenario::parse(text, "pnc scenario", false).unwrap(),
        seed: 3,
        validate: true,
        connect_rate: 100,
        call_timeout: std::time::Duration::from_secs(10),
    });
    let mut done = false;
    for _ in 0..120 {
        let list = srv.cli_json(&["session", "list"]).await;
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["status"] == "completed" && s["token"].as_str().is_some_and(|t| t.starts_with("ZZVYD")))
        {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let summary = sim.stop().await;
    assert!(done, "no Plug & Charge session completed: {summary:?}");
    assert_eq!(summary.schema_violations, 0, "{:?}", summary.errors);
    assert_eq!(summary.call_errors_received, 0, "{:?}", summary.errors);
    assert_eq!(summary.auth_rejected, 0, "{:?}", summary);
    // The contract was issued by the local source and is on record.
    let st = srv.cli_json(&["pnc", "status"]).await;
    assert!(st["issued"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["certificates"][0]["emaid"]
            .as_str()
            .unwrap()
            .starts_with("ZZVYDT000"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_program_source_answers_from_its_stdin_without_a_shell_in_between() {
    let roots = tempfile::NamedTempFile::new().unwrap();
    let (root, _) = ca("an MO root", None);
    std::fs::write(roots.path(), root.pem()).unwrap();
    let roots_path = roots.path().to_path_buf();
    // The program sees the request as JSON on stdin and answers on stdout.
    let script = r#"read req; case "$req" in
  *GetCertificateStatus*) echo '{"status":"Failed","reasonCode":"NoOCSPHere","additionalInfo":"test"}';;
  *'"exiRequest":"ping"'*) echo '{"status":"Accepted","exiResponse":"pong"}';;
  *) exit 3;;
esac"#;
    let srv = TestServer::start_with(move |c| {
        c.pnc.source = voltyard::config::PncSource::Program;
        c.pnc.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
        c.pnc.mo_roots = vec![roots_path];
    })
    .await;
    let mut cp = charger(&srv, "PNC-4").await;
    assert_eq!(install(&mut cp, "ping").await["exiResponse"], "pong");
    let r = install(&mut cp, "other").await;
    assert_eq!(r["statusInfo"]["reasonCode"], "SourceUnavailable", "{r}");
    assert!(
        r["statusInfo"]["additionalInfo"].as_str().unwrap().contains("exited"),
        "{r}"
    );
    let hd = json!({"hashAlgorithm": "SHA256", "issuerNameHash": "00", "issuerKeyHash": "00",
                    "serialNumber": "01", "responderURL": "http://ocsp.invalid"});
    let r = cp
        .call("GetCertificateStatus", json!({"ocspRequestData": hd}))
        .await
        .unwrap();
    assert_eq!(r["status"], "Failed");
    assert_eq!(r["statusInfo"]["reasonCode"], "NoOCSPHere");
    // Authorize with hash data only: no OCSP status from the source, no acceptance.
    let r = authorize(&mut cp, EMAID, json!({"iso15118CertificateHashData": [hd]})).await;
    assert_eq!(r["certificateStatus"], "NoCertificateAvailable", "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ocpp16_chargers_do_plug_and_charge_through_the_whitepapers_data_transfer() {
    const VENDOR: &str = "org.openchargealliance.iso15118pnc";
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "PNC16"]).await;
    let mut cp = srv.cp("PNC16", "ocpp1.6").await;
    assert_eq!(cp.boot16().await["status"], "Accepted");
    let dt = |message: &str, data: Value| json!({"vendorId": VENDOR, "messageId": message, "data": data.to_string()});
    let req = json!({"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                     "exiRequest": exi_request(Some(EMAID))});
    let r = cp.call("DataTransfer", dt("Get15118EVCertificate", req)).await.unwrap();
    assert_eq!(r["status"], "Accepted", "{r}");
    let inner: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(inner["status"], "Accepted", "{inner}");
    let res: test_exi::Response = test_exi::decode(inner["exiResponse"].as_str().unwrap()).unwrap();
    srv.ok(&["token", "add", EMAID, "--kind", "contract"]).await;
    let auth = json!({"idToken": {"idToken": EMAID, "type": "eMAID"}, "certificate": res.contract_certificate_chain});
    let r = cp.call("DataTransfer", dt("Authorize", auth)).await.unwrap();
    let inner: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(inner["idTokenInfo"]["status"], "Accepted", "{inner}");
    assert_eq!(inner["certificateStatus"], "Accepted");
    let hd = hash_of(&ders(&res.contract_certificate_chain));
    let r = cp
        .call(
            "DataTransfer",
            dt("GetCertificateStatus", json!({"ocspRequestData": hd})),
        )
        .await
        .unwrap();
    let inner: Value = serde_json::from_str(r["data"].as_str().unwrap()).unwrap();
    assert_eq!(inner["status"], "Accepted", "{inner}");
    // Broken data is a precise CALLERROR; other messages of the vendor go to the hook.
    let e = cp
        .call(
            "DataTransfer",
            json!({"vendorId": VENDOR, "messageId": "Authorize", "data": "{"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.0, "TypeConstraintViolation", "{e:?}");
    assert!(e.1.contains("not JSON"), "{e:?}");
    let r = cp
        .call(
            "DataTransfer",
            json!({"vendorId": VENDOR, "messageId": "SignCertificate", "data": "{}"}),
        )
        .await
        .unwrap();
    assert_eq!(r["status"], "UnknownVendorId");
}
