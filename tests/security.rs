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
    let failed = events(&srv, "auth_failed").await;
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
    let refused = events(&srv, "security_refused").await;
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
