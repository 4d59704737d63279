//! Expiry alerts for certificates the built-in CA issued: once per
//! certificate, `cert_expiry_warn_days` before it expires, recorded as a
//! `cert_expiring` event (listed by `voltyard events`, shown as a TUI alert).

use crate::domain::cert::IssuedCert;
use crate::server::Shared;
use crate::store::{AdminOp, SecurityOp};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;

const PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

pub async fn watch(shared: Arc<Shared>) {
    loop {
        match shared.store.issued_certs(None) {
            Ok(certs) => {
                let serials = due(&certs, Utc::now(), shared.config.cert_expiry_warn_days);
                if !serials.is_empty() {
                    let op = AdminOp::Security(SecurityOp::CertWarned { serials });
                    if let Err(e) = shared.store.admin(op, Utc::now()).await {
                        tracing::error!("cannot record certificate expiry alerts: {e}");
                    }
                }
            }
            Err(e) => tracing::error!("cannot read issued certificates: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = shared.certs_changed.notified() => {}
        }
    }
}

/// Serials to warn about: the newest certificate of each charger and kind
/// (a renewed one supersedes the old), not warned yet, expiring within `days`.
fn due(certs: &[IssuedCert], now: DateTime<Utc>, days: u32) -> Vec<String> {
    let mut newest: HashMap<(&str, &str), &IssuedCert> = HashMap::new();
    for c in certs {
        let slot = newest.entry((c.charger.as_str(), c.kind.as_str())).or_insert(c);
        if c.issued_at > slot.issued_at {
            *slot = c;
        }
    }
    let horizon = now + Duration::days(i64::from(days));
    let mut out: Vec<String> = newest
        .into_values()
        .filter(|c| !c.warned && c.not_after <= horizon)
        .map(|c| c.serial.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: &str, issued_days_ago: i64, valid_days: i64, warned: bool) -> IssuedCert {
        let now = Utc::now();
        IssuedCert {
            serial: serial.into(),
            charger: "CP".into(),
            kind: "ChargingStationCertificate".into(),
            issued_at: now - Duration::days(issued_days_ago),
            not_after: now - Duration::days(issued_days_ago) + Duration::days(valid_days),
            warned,
        }
    }

    #[test]
    fn only_the_newest_unwarned_certificate_near_expiry_is_due() {
        let now = Utc::now();
        assert_eq!(due(&[cert("a", 350, 365, false)], now, 30), vec!["a"]);
        assert!(due(&[cert("a", 350, 365, true)], now, 30).is_empty());
        assert!(due(&[cert("a", 10, 365, false)], now, 30).is_empty());
        // Renewed: the old one no longer matters.
        assert!(due(&[cert("a", 350, 365, false), cert("b", 1, 365, false)], now, 30).is_empty());
    }
}
