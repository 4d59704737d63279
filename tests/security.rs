//! OCPP security profiles end to end: passwords (Argon2, rotation, throttling),
//! per-charger profiles and refused downgrades, TLS and mTLS with certificates
//! made in the test (rcgen).

mod common;

use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use voltyard::store::{AdminOp, SecurityOp};

async fn status_of(addr: SocketAddr, id: &str, proto: &str, basic: Option<&str>) -> u16 {
    match connect_raw(addr, &format!("/ocpp/{id}"), Some(proto), basic).await {
        Ok(_) => 101,
        Err(e) => refused_status(&e).map_or(0, |s| s.as_u16()),
    }
}

async fn events(srv: &TestServer, kind: &str) -> Vec<Value> {
    let v = srv.cli_json(&["events", "--limit", "500"]).await;
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// The refusal of a handshake is recorded just after the HTTP answer went out.
async fn events_eventually(srv: &TestServer, kind: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = events(srv, kind).await;
        if found.len() >= n || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn cp_with_password(srv: &TestServer, id: &str, proto: &str, password: &str) -> Cp {
    let ws = connect_raw(
        srv.addr,
        &format!("/ocpp/{id}"),
        Some(proto),
        Some(&format!("{id}:{password}")),
    )
    .await
    .expect("connects with the password");
    Cp::from_ws(ws)
}

fn spawn_cli(srv: &TestServer, args: &[&str]) -> tokio::task::JoinHandle<std::process::Output> {
    let dir = srv.data_dir();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&dir, &args))
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_password_is_pushed_as_authorization_key_and_replaces_the_old_one_once_accepted() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "PW16", "--password", "old-password-123"])
        .await;
    let mut cp = cp_with_password(&srv, "PW16", "ocpp1.6", "old-password-123").await;
    cp.boot16().await;
    let run = spawn_cli(&srv, &["charger", "set-password", "PW16", "--generate", "--json"]);
    let (mid, p) = cp.expect_call("ChangeConfiguration").await;
    assert_eq!(p["key"], "AuthorizationKey");
    let pushed = p["value"].as_str().unwrap().to_string();
    assert_eq!(pushed.len(), 40);
    assert!(
        pushed.bytes().all(|b| b.is_ascii_hexdigit()),
        "hex per the 1.6 security whitepaper: {pushed}"
    );
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    let o = run.await.unwrap();
    assert_exit(&o, 0, "set-password");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["password"], pushed.as_str(), "the generated password is shown once");
    assert_eq!(v["pushed"], true);
    assert_eq!(
        status_of(srv.addr, "PW16", "ocpp1.6", Some("PW16:old-password-123")).await,
        401
    );
    assert_eq!(
        status_of(srv.addr, "PW16", "ocpp1.6", Some(&format!("PW16:{pushed}"))).await,
        101
    );
    // The journal never holds the password in clear.
    let logs = out(&srv.cli(&["charger", "logs", "PW16", "--json"]).await);
    assert!(!logs.contains(&pushed), "password leaked into the journal");
    assert!(logs.contains("(redacted)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_keeps_both_passwords_valid_until_the_charger_logs_in_with_the_new_one() {
    let srv = TestServer::start_with(|c| c.call_timeout_s = 1).await;
    srv.ok(&["charger", "add", "PW201", "--password", "old-password-201"])
        .await;
    let mut cp = cp_with_password(&srv, "PW201", "ocpp2.0.1", "old-password-201").await;
    cp.boot201().await;
    let new = "a-brand-new-password-201";
    let run = spawn_cli(&srv, &["charger", "set-password", "PW201", new]);
    let (_, p) = cp.expect_call("SetVariables").await;
    assert_eq!(p["setVariableData"][0]["component"]["name"], "SecurityCtrlr");
    assert_eq!(p["setVariableData"][0]["variable"]["name"], "BasicAuthPassword");
    assert_eq!(p["setVariableData"][0]["attributeValue"], new);
    // The charger applies it but its answer never arrives.
    let o = run.await.unwrap();
    assert!(!o.status.success());
    assert!(err(&o).contains("stays valid"), "{}", err(&o));
    drop(cp);
    assert_eq!(
        status_of(srv.addr, "PW201", "ocpp2.0.1", Some("PW201:old-password-201")).await,
        101
    );
    assert_eq!(
        status_of(srv.addr, "PW201", "ocpp2.0.1", Some(&format!("PW201:{new}"))).await,
        101
    );
    // Logging in with the new one proved the charger has it: the old one is gone.
    assert_eq!(
        status_of(srv.addr, "PW201", "ocpp2.0.1", Some("PW201:old-password-201")).await,
        401
    );
    let show = srv.cli_json(&["charger", "show", "PW201"]).await;
    assert_eq!(show["password_pending"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_push_keeps_the_old_password_only() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "PWR", "--password", "old-password-rej"])
        .await;
    let mut cp = cp_with_password(&srv, "PWR", "ocpp1.6", "old-password-rej").await;
    cp.boot16().await;
    let run = spawn_cli(&srv, &["charger", "set-password", "PWR", "--generate", "--json"]);
    let (mid, p) = cp.expect_call("ChangeConfiguration").await;
    let pushed = p["value"].as_str().unwrap().to_string();
    cp.reply(&mid, json!({"status": "Rejected"})).await;
    assert_exit(&run.await.unwrap(), 1, "charger rejected the password");
    drop(cp);
    assert_eq!(
        status_of(srv.addr, "PWR", "ocpp1.6", Some(&format!("PWR:{pushed}"))).await,
        401
    );
    assert_eq!(
        status_of(srv.addr, "PWR", "ocpp1.6", Some("PWR:old-password-rej")).await,
        101
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn set_password_needs_a_connected_charger_unless_offline() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "OFF"]).await;
    let o = srv.cli(&["charger", "set-password", "OFF", "--generate"]).await;
    assert!(!o.status.success());
    assert!(err(&o).contains("--offline"), "{}", err(&o));
    let o = srv.cli(&["charger", "set-password", "OFF", "short"]).await;
    assert_exit(&o, 2, "too short a password");
    srv.ok(&["charger", "set-password", "OFF", "offline-password-16", "--offline"])
        .await;
    assert_eq!(status_of(srv.addr, "OFF", "ocpp1.6", None).await, 401);
    assert_eq!(
        status_of(srv.addr, "OFF", "ocpp1.6", Some("OFF:offline-password-16")).await,
        101
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_passwords_are_throttled_with_backoff_and_recorded() {
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "BF", "--password", "right-password"]).await;
    for _ in 0..4 {
        assert_eq!(status_of(srv.addr, "BF", "ocpp1.6", Some("BF:guess")).await, 401);
    }
    // Past the free failures even the right password waits.
    assert_eq!(
        status_of(srv.addr, "BF", "ocpp1.6", Some("BF:right-password")).await,
        429
    );
    let failed = events_eventually(&srv, "auth_failed", 4).await;
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(failed[0]["detail"].as_str().unwrap().contains("127.0.0.1"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        status_of(srv.addr, "BF", "ocpp1.6", Some("BF:right-password")).await,
        101
    );
    // A user name other than the charger id is a wrong password too.
    assert_eq!(
        status_of(srv.addr, "BF", "ocpp1.6", Some("OTHER:right-password")).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_sha256_hash_is_upgraded_to_argon2id_on_login() {
    use sha2::Digest;
    let srv = TestServer::start().await;
    srv.ok(&["charger", "add", "OLD"]).await;
    let salt = "00112233445566778899aabbccddeeff";
    let digest = sha2::Sha256::digest(format!("{salt}legacy-pass").as_bytes());
    let legacy = format!("sha256${salt}${}", data_encoding::HEXLOWER.encode(&digest));
    let shared = &srv.running.as_ref().unwrap().shared;
    let op = SecurityOp::PasswordSet {
        id: "OLD".into(),
        hash: Some(legacy.clone()),
    };
    shared
        .store
        .admin(AdminOp::Security(op), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        status_of(srv.addr, "OLD", "ocpp1.6", Some("OLD:legacy-pass")).await,
        101
    );
    let stored = shared.store.charger("OLD").unwrap().unwrap().password_hash.unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert_eq!(
        status_of(srv.addr, "OLD", "ocpp1.6", Some("OLD:legacy-pass")).await,
        101
    );
    assert_eq!(
        status_of(srv.addr, "OLD", "ocpp1.6", Some("OLD:legacy-pasS")).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_charger_below_its_security_profile_is_refused_and_the_refusal_recorded() {
    let srv = TestServer::start().await;
    srv.ok(&[
        "charger",
        "add",
        "P2",
        "--password",
        "profile-two-pass",
        "--security-profile",
        "2",
    ])
    .await;
    let show = srv.cli_json(&["charger", "show", "P2"]).await;
    assert_eq!(show["security_profile"], 2);
    // The right password over plain ws:// is a downgrade.
    assert_eq!(
        status_of(srv.addr, "P2", "ocpp1.6", Some("P2:profile-two-pass")).await,
        403
    );
    let refused = events_eventually(&srv, "security_refused", 1).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["detail"].as_str().unwrap().contains("security profile 2"),
        "{refused:?}"
    );
    // Back to profile 1: plain ws:// with the password is enough.
    srv.ok(&["charger", "set-security-profile", "P2", "1"]).await;
    assert_eq!(
        status_of(srv.addr, "P2", "ocpp1.6", Some("P2:profile-two-pass")).await,
        101
    );
    // Profiles 1 and 2 need a password to check.
    srv.ok(&["charger", "add", "NOPW"]).await;
    let o = srv.cli(&["charger", "set-security-profile", "NOPW", "1"]).await;
    assert_exit(&o, 2, "profile 1 without a password");
    let o = srv.cli(&["charger", "set-security-profile", "NOPW", "4"]).await;
    assert_exit(&o, 2, "no profile 4");
}

fn csr(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serialize_request(&key).unwrap().pem().unwrap()
}

fn leaf_cn(chain_pem: &str) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use x509_parser::prelude::FromDer;
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).unwrap();
    x.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

async fn accepted(srv: &TestServer, id: &str, proto: &str) -> Cp {
    srv.ok(&["charger", "add", id]).await;
    let mut cp = srv.cp(id, proto).await;
    if proto == "ocpp1.6" {
        cp.boot16().await;
    } else {
        cp.boot201().await;
    }
    cp
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_certificate_checks_the_name_signs_records_and_delivers_the_chain() {
    let srv = TestServer::start().await;
    for (id, proto) in [("SC16", "ocpp1.6"), ("SC201", "ocpp2.0.1")] {
        let mut cp = accepted(&srv, id, proto).await;
        let mut req = json!({"csr": csr(id)});
        if proto == "ocpp2.0.1" {
            req["certificateType"] = json!("ChargingStationCertificate");
        }
        assert_eq!(
            cp.call("SignCertificate", req).await.unwrap(),
            json!({"status": "Accepted"})
        );
        let (mid, p) = cp.expect_call("CertificateSigned").await;
        let chain = p["certificateChain"].as_str().unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "leaf and CA");
        assert_eq!(leaf_cn(chain), id);
        let ca = out(&srv.cli(&["charger", "cert", "ca"]).await);
        assert!(
            chain.ends_with(&ca),
            "the chain ends with the CA that `charger cert ca` prints"
        );
        cp.reply(&mid, json!({"status": "Accepted"})).await;
        // Another charger's name is refused.
        let r = cp
            .call("SignCertificate", json!({"csr": csr("SOMEONE-ELSE")}))
            .await
            .unwrap();
        assert_eq!(r, json!({"status": "Rejected"}));
        // Not even a CSR.
        let r = cp.call("SignCertificate", json!({"csr": "garbage"})).await.unwrap();
        assert_eq!(r, json!({"status": "Rejected"}));
    }
    let issued = srv.cli_json(&["charger", "cert", "issued"]).await;
    let chargers: Vec<&str> = issued
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["charger"].as_str().unwrap())
        .collect();
    assert_eq!(chargers, ["SC16", "SC201"]);
    let refusals = events(&srv, "security").await;
    assert!(
        refusals
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("SOMEONE-ELSE")),
        "{refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_close_to_expiry_raises_one_alert() {
    let srv = TestServer::start_with(|c| {
        c.cert_days = 10;
        c.cert_expiry_warn_days = 30;
    })
    .await;
    let mut cp = accepted(&srv, "EXP", "ocpp2.0.1").await;
    let r = cp.call("SignCertificate", json!({"csr": csr("EXP")})).await.unwrap();
    assert_eq!(r["status"], "Accepted");
    let (mid, _) = cp.expect_call("CertificateSigned").await;
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let alerts = events(&srv, "cert_expiring").await;
        if !alerts.is_empty() {
            assert_eq!(alerts.len(), 1);
            assert_eq!(alerts[0]["charger"], "EXP");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no expiry alert");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn install_list_and_delete_certificates_on_both_versions() {
    let srv = TestServer::start().await;
    let pem_file = srv.data_dir().join("root.pem");
    let ca_pem = out(&srv.cli(&["charger", "cert", "ca"]).await);
    std::fs::write(&pem_file, &ca_pem).unwrap();
    let hash =
        json!({"hashAlgorithm": "SHA256", "issuerNameHash": "aa", "issuerKeyHash": "bb", "serialNumber": "0a1b"});
    // 2.0.1
    let mut cp = accepted(&srv, "IN201", "ocpp2.0.1").await;
    let run = spawn_cli(
        &srv,
        &[
            "charger",
            "cert",
            "install",
            "IN201",
            "--type",
            "csms-root",
            pem_file.to_str().unwrap(),
        ],
    );
    let (mid, p) = cp.expect_call("InstallCertificate").await;
    assert_eq!(p["certificateType"], "CSMSRootCertificate");
    assert_eq!(p["certificate"], ca_pem.as_str());
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    assert_exit(&run.await.unwrap(), 0, "install");
    let run = spawn_cli(&srv, &["charger", "cert", "list", "IN201", "--json"]);
    let (mid, p) = cp.expect_call("GetInstalledCertificateIds").await;
    assert_eq!(p, json!({}));
    cp.reply(
        &mid,
        json!({"status": "Accepted", "certificateHashDataChain": [{"certificateType": "CSMSRootCertificate", "certificateHashData": hash}]}),
    )
    .await;
    let o = run.await.unwrap();
    assert_exit(&o, 0, "list");
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["serial_number"], "0a1b");
    assert_eq!(listed[0]["kind"], "CSMSRootCertificate");
    let run = spawn_cli(&srv, &["charger", "cert", "delete", "IN201", "A1B"]);
    let (mid, _) = cp.expect_call("GetInstalledCertificateIds").await;
    cp.reply(
        &mid,
        json!({"status": "Accepted", "certificateHashDataChain": [{"certificateType": "CSMSRootCertificate", "certificateHashData": hash}]}),
    )
    .await;
    let (mid, p) = cp.expect_call("DeleteCertificate").await;
    assert_eq!(p["certificateHashData"], hash);
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    assert_exit(&run.await.unwrap(), 0, "delete");
    // 1.6: one GetInstalledCertificateIds per type, and a refusal is exit 1.
    let mut cp = accepted(&srv, "IN16", "ocpp1.6").await;
    let run = spawn_cli(
        &srv,
        &[
            "charger",
            "cert",
            "install",
            "IN16",
            "--type",
            "csms-root",
            pem_file.to_str().unwrap(),
        ],
    );
    let (mid, p) = cp.expect_call("InstallCertificate").await;
    assert_eq!(p["certificateType"], "CentralSystemRootCertificate");
    cp.reply(&mid, json!({"status": "Rejected"})).await;
    assert_exit(&run.await.unwrap(), 1, "install rejected");
    let run = spawn_cli(&srv, &["charger", "cert", "list", "IN16", "--json"]);
    let (mid, p) = cp.expect_call("GetInstalledCertificateIds").await;
    assert_eq!(p["certificateType"], "CentralSystemRootCertificate");
    cp.reply(&mid, json!({"status": "Accepted", "certificateHashData": [hash]}))
        .await;
    let (mid, p) = cp.expect_call("GetInstalledCertificateIds").await;
    assert_eq!(p["certificateType"], "ManufacturerRootCertificate");
    cp.reply(&mid, json!({"status": "NotFound"})).await;
    let o = run.await.unwrap();
    assert_exit(&o, 0, "list 1.6");
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // 2.0.1-only kinds are refused for a 1.6 charger before anything is sent.
    let o = srv
        .cli(&[
            "charger",
            "cert",
            "install",
            "IN16",
            "--type",
            "v2g-root",
            pem_file.to_str().unwrap(),
        ])
        .await;
    assert_exit(&o, 2, "V2G root on 1.6");
    let run = spawn_cli(&srv, &["charger", "cert", "renew", "IN16"]);
    let (mid, p) = cp.expect_call("ExtendedTriggerMessage").await;
    assert_eq!(p["requestedMessage"], "SignChargePointCertificate");
    cp.reply(&mid, json!({"status": "Accepted"})).await;
    assert_exit(&run.await.unwrap(), 0, "renew");
}

#[tokio::test(flavor = "multi_thread")]
async fn security_event_notifications_are_recorded_as_security_events() {
    let srv = TestServer::start().await;
    let mut cp = accepted(&srv, "SE16", "ocpp1.6").await;
    let r = cp
        .call(
            "SecurityEventNotification",
            json!({"type": "TamperDetectionActivated", "timestamp": ts(0), "techInfo": "lid opened"}),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    let mut cp = accepted(&srv, "SE201", "ocpp2.0.1").await;
    cp.call(
        "SecurityEventNotification",
        json!({"type": "InvalidCsmsCertificate", "timestamp": ts(0)}),
    )
    .await
    .unwrap();
    let ev = events(&srv, "security_event").await;
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        ev[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("TamperDetectionActivated")
    );
    assert!(ev[0]["detail"].as_str().unwrap().ends_with("lid opened"));
    assert_eq!(ev[1]["charger"], "SE201");
}
