//! Security state of a charger inside the writer's transaction: password
//! hashes (current and pending) and the required security profile.

use super::{AdminResult, Ctx, Result, decode, encode};
use crate::domain::cert::IssuedCert;
use crate::domain::message::{Inbound, Reply};
use crate::store::tables::CERTIFICATES;
use chrono::{DateTime, Utc};
use redb::ReadableTable;

/// A change to a charger's credentials or security profile.
#[derive(Debug, Clone)]
pub enum SecurityOp {
    /// Replace the current password hash (an offline charger, or `None` to
    /// remove Basic auth); any pending one is dropped.
    PasswordSet {
        id: String,
        hash: Option<String>,
    },
    /// A new password pushed to the charger: valid next to the current one.
    PasswordPending {
        id: String,
        hash: String,
    },
    /// The charger confirmed the pending password (it accepted the push or
    /// logged in with it): it becomes the only valid one.
    PasswordConfirm {
        id: String,
        hash: String,
    },
    /// The charger refused the pending password.
    PasswordAbandon {
        id: String,
        hash: String,
    },
    /// The same password under a stronger hash, written after a successful
    /// login, only while `old` is still the stored hash.
    PasswordRehash {
        id: String,
        old: String,
        new: String,
    },
    Profile {
        id: String,
        profile: u8,
    },
    /// Mark issued certificates whose expiry alert was raised.
    CertWarned {
        serials: Vec<String>,
    },
}

impl Ctx<'_> {
    pub(super) fn security(&mut self, op: SecurityOp) -> Result<AdminResult> {
        let id = match &op {
            SecurityOp::PasswordSet { id, .. }
            | SecurityOp::PasswordPending { id, .. }
            | SecurityOp::PasswordConfirm { id, .. }
            | SecurityOp::PasswordAbandon { id, .. }
            | SecurityOp::PasswordRehash { id, .. }
            | SecurityOp::Profile { id, .. } => id.clone(),
            SecurityOp::CertWarned { serials } => return self.cert_warned(serials),
        };
        let Some(mut c) = self.charger(&id)? else {
            return Ok(AdminResult::NotFound(format!("no charger {id}")));
        };
        let t = self.now;
        match op {
            SecurityOp::PasswordSet { hash, .. } => {
                let what = if hash.is_some() {
                    "password set"
                } else {
                    "password removed"
                };
                c.password_hash = hash;
                c.password_pending = None;
                self.event(t, Some(&id), "security", format!("{what} by the operator"))?;
            }
            SecurityOp::PasswordPending { hash, .. } => c.password_pending = Some(hash),
            SecurityOp::PasswordConfirm { hash, .. } => {
                // A second rotation may have replaced the pending hash meanwhile.
                if c.password_pending.as_deref() != Some(hash.as_str()) {
                    return Ok(AdminResult::Charger(Some(Box::new(c))));
                }
                c.password_hash = c.password_pending.take();
                self.event(t, Some(&id), "security", "new password confirmed by the charger".into())?;
            }
            SecurityOp::PasswordAbandon { hash, .. } => {
                if c.password_pending.as_deref() == Some(hash.as_str()) {
                    c.password_pending = None;
                }
            }
            SecurityOp::PasswordRehash { old, new, .. } => {
                if c.password_hash.as_deref() == Some(old.as_str()) {
                    c.password_hash = Some(new);
                } else if c.password_pending.as_deref() == Some(old.as_str()) {
                    c.password_pending = Some(new);
                }
            }
            SecurityOp::CertWarned { .. } => {}
            SecurityOp::Profile { profile, .. } => {
                if profile > 3 {
                    return Ok(AdminResult::Invalid("security_profile", "must be 0, 1, 2 or 3".into()));
                }
                let from = c.security_profile;
                c.security_profile = profile;
                self.event(t, Some(&id), "security", format!("security profile {from} → {profile}"))?;
            }
        }
        self.put_charger(&c)?;
        Ok(AdminResult::Charger(Some(Box::new(c))))
    }
}

impl Ctx<'_> {
    /// A SignCertificate after the CA looked at it: the issued certificate
    /// is stored (for expiry alerts and status checks) before the charger
    /// hears Accepted.
    pub(super) fn certificate_request(
        &mut self,
        charger: &str,
        accepted: bool,
        msg: Inbound,
        t: DateTime<Utc>,
    ) -> Result<Reply> {
        let result = match msg {
            Inbound::CertificateRequest { result } if accepted => result,
            Inbound::CertificateRequest { .. } => Err("the charger is not accepted".into()),
            _ => Err("no CA looked at the request".into()),
        };
        match result {
            Ok(cert) => {
                let mut table = self.w.open_table(CERTIFICATES)?;
                table.insert(cert.serial.as_str(), encode(&cert).as_slice())?;
                drop(table);
                let detail = format!(
                    "issued {} serial {} valid until {}",
                    cert.kind,
                    cert.serial,
                    cert.not_after.format("%Y-%m-%d")
                );
                self.event(t, Some(charger), "certificate", detail)?;
                Ok(Reply::Status { accepted: true })
            }
            Err(why) => {
                self.event(
                    t,
                    Some(charger),
                    "security",
                    format!("certificate request refused: {why}"),
                )?;
                Ok(Reply::Status { accepted: false })
            }
        }
    }

    fn cert_warned(&mut self, serials: &[String]) -> Result<AdminResult> {
        let mut table = self.w.open_table(CERTIFICATES)?;
        let mut warned: Vec<IssuedCert> = Vec::new();
        for serial in serials {
            let found: Option<IssuedCert> = table
                .get(serial.as_str())?
                .map(|v| decode("certificates", v.value()))
                .transpose()?;
            if let Some(mut c) = found {
                c.warned = true;
                table.insert(serial.as_str(), encode(&c).as_slice())?;
                warned.push(c);
            }
        }
        drop(table);
        let t = self.now;
        for c in warned {
            let detail = format!(
                "certificate serial {} ({}) expires {}",
                c.serial,
                c.kind,
                c.not_after.format("%Y-%m-%d")
            );
            self.event(t, Some(&c.charger), "cert_expiring", detail)?;
        }
        Ok(AdminResult::Done)
    }
}
