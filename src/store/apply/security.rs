//! Security state of a charger inside the writer's transaction: password
//! hashes (current and pending) and the required security profile.

use super::{AdminResult, Ctx, Result};

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
