//! Control requests for charger credentials and security profiles.

use super::proto::{ApiError, ErrorKind, PasswordSet};
use super::server::{admin, command, internal, invalid};

fn fail(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}
use crate::domain::Protocol;
use crate::domain::cert::{CertHash, CertKind};
use crate::domain::message::{Command, CommandResult};
use crate::server::Shared;
use crate::store::{AdminOp, SecurityOp};
use serde_json::{Value, json};

/// Hash a password on the blocking pool (Argon2 takes ~20 ms).
pub(super) async fn hash(password: &str) -> Result<String, ApiError> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || crate::domain::password::hash_new(&pw))
        .await
        .map_err(fail)?
        .map_err(fail)
}

/// Set a charger's password. A connected charger gets it over OCPP first:
/// until it confirms, the old and the new password both open the door, so
/// a lost answer or a charger that applies it late never locks it out.
pub(super) async fn set_password(
    shared: &Shared,
    id: String,
    password: Option<String>,
    offline: bool,
) -> Result<Value, ApiError> {
    let Some(ch) = shared.store.charger(&id).map_err(internal)? else {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
    };
    let generated = password.is_none();
    let password = match password {
        Some(p) => p,
        None => crate::domain::password::generate().map_err(fail)?,
    };
    // 16 to 40 characters fit both the 1.6 AuthorizationKey and 2.0.1's BasicAuthPassword.
    if !(16..=40).contains(&password.len()) || !password.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("password", "must be 16 to 40 printable ASCII characters"));
    }
    let hash = hash(&password).await?;
    let shown = generated.then(|| password.clone());
    if offline {
        admin(
            shared,
            security(SecurityOp::PasswordSet {
                id: id.clone(),
                hash: Some(hash),
            }),
        )
        .await?;
        shared.guard.forget(&id);
        return Ok(json!(PasswordSet {
            id,
            password: shown,
            pushed: false
        }));
    }
    if shared.registry.live(&id).is_none() {
        return Err(ApiError::new(
            ErrorKind::NotConnected,
            format!(
                "charger {id} is not connected, so the password cannot be pushed; \
                 use --offline to store it without pushing (then set it on the charger yourself)"
            ),
        ));
    }
    if ch.password_hash.is_none() && ch.security_profile == 0 {
        tracing::info!(
            charger = id,
            "first password: the charger must send Basic auth from its next connection"
        );
    }
    let op = SecurityOp::PasswordPending {
        id: id.clone(),
        hash: hash.clone(),
    };
    admin(shared, security(op)).await?;
    match command(shared, &id, Command::SetPassword { password }).await {
        Ok(_) => {
            let op = SecurityOp::PasswordConfirm { id: id.clone(), hash };
            admin(shared, security(op)).await?;
            shared.guard.forget(&id);
            Ok(json!(PasswordSet {
                id,
                password: shown,
                pushed: true
            }))
        }
        Err(e) if e.kind == ErrorKind::Rejected => {
            admin(shared, security(SecurityOp::PasswordAbandon { id, hash })).await?;
            Err(e)
        }
        Err(mut e) => {
            e.message = format!(
                "{}; the new password stays valid next to the old one until the charger connects with it{}",
                e.message,
                shown.map(|p| format!(" (new password: {p})")).unwrap_or_default()
            );
            Err(e)
        }
    }
}

pub(super) async fn set_profile(shared: &Shared, id: String, profile: u8) -> Result<Value, ApiError> {
    let Some(ch) = shared.store.charger(&id).map_err(internal)? else {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
    };
    check_profile(profile, ch.password_hash.is_some())?;
    admin(shared, security(SecurityOp::Profile { id, profile })).await
}

/// Profiles 1 and 2 authenticate with the password, so one must exist.
pub(super) fn check_profile(profile: u8, has_password: bool) -> Result<(), ApiError> {
    if profile > 3 {
        return Err(invalid("security_profile", "must be 0, 1, 2 or 3"));
    }
    if (profile == 1 || profile == 2) && !has_password {
        return Err(invalid(
            "security_profile",
            "profiles 1 and 2 need a password: set one first (charger set-password ID --offline, or add --password)",
        ));
    }
    Ok(())
}

/// Installed certificates, all kinds: 1.6 is asked once per kind it knows.
pub(super) async fn cert_list(shared: &Shared, id: &str) -> Result<Value, ApiError> {
    Ok(json!(installed(shared, id).await?))
}

async fn installed(shared: &Shared, id: &str) -> Result<Vec<CertHash>, ApiError> {
    let kinds = match shared.registry.live(id).map(|l| l.protocol) {
        Some(Protocol::V16) => vec![Some(CertKind::CsmsRoot), Some(CertKind::ManufacturerRoot)],
        _ => vec![None],
    };
    let mut all = Vec::new();
    for kind in kinds {
        if let CommandResult::Certificates { certificates, .. } =
            command(shared, id, Command::GetInstalledCertificates { kind }).await?
        {
            all.extend(certificates.into_iter().map(|mut c| {
                c.kind = c.kind.or_else(|| kind.map(|k| format!("{k:?}")));
                c
            }));
        }
    }
    Ok(all)
}

pub(super) async fn cert_install(shared: &Shared, id: &str, kind: CertKind, pem: String) -> Result<Value, ApiError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if CertificateDer::from_pem_slice(pem.as_bytes()).is_err() {
        return Err(invalid("certificate", "is not a PEM certificate"));
    }
    Ok(json!(
        command(shared, id, Command::InstallCertificate { kind, pem }).await?
    ))
}

/// Delete by serial: the charger names its certificates by hash data, so
/// the serial is looked up in what it reports as installed.
pub(super) async fn cert_delete(shared: &Shared, id: &str, serial: &str) -> Result<Value, ApiError> {
    let want = serial.trim_start_matches("0x").to_ascii_lowercase();
    let norm = |s: &str| s.to_ascii_lowercase().trim_start_matches('0').to_string();
    let found = installed(shared, id)
        .await?
        .into_iter()
        .find(|c| norm(&c.serial_number) == norm(&want))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("charger {id} reports no installed certificate with serial {serial}"),
            )
        })?;
    Ok(json!(
        command(shared, id, Command::DeleteCertificate { hash: found }).await?
    ))
}

pub(super) async fn cert_renew(shared: &Shared, id: &str) -> Result<Value, ApiError> {
    let cmd = Command::Trigger {
        message: "SignChargingStationCertificate".into(),
        evse: None,
    };
    Ok(json!(command(shared, id, cmd).await?))
}

pub(super) fn ca_certificate(shared: &Shared) -> Result<Value, ApiError> {
    let ca = shared.ca().map_err(fail)?;
    Ok(json!({
        "pem": ca.cert_pem,
        "path": shared.config.ca_dir().join("ca.pem").display().to_string(),
    }))
}

fn security(op: SecurityOp) -> AdminOp {
    AdminOp::Security(op)
}
