//! Control requests for charger credentials and security profiles.

use super::proto::{ApiError, ErrorKind, PasswordSet};
use super::server::{admin, command, internal, invalid};

fn fail(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}
use crate::domain::message::Command;
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

fn security(op: SecurityOp) -> AdminOp {
    AdminOp::Security(op)
}
