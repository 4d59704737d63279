//! Alerts, derived from what the server already reports: chargers that
//! are offline or waiting for acceptance, connectors in fault, silent
//! meters and non-compliant chargers (load management), sessions whose
//! signed meter data failed, notable events, and device events (2.0.1
//! NotifyEvent) of a severity at or above the threshold until a later
//! event about the same variable clears them. Each has a key that stays
//! the same while it is the same occurrence, so an acknowledgement sticks
//! to it and a new occurrence alerts again.

use super::state::Snapshot;
use crate::billing::EichrechtState;
use crate::domain::{ConnectorStatus, Registration};
use chrono::{DateTime, Utc};

/// Event kinds that need an operator's eye.
const ALERT_EVENTS: &[(&str, Severity)] = &[
    ("fault", Severity::Critical),
    ("non_compliant", Severity::Warning),
    ("profile_rejected", Severity::Warning),
    ("unknown_transaction", Severity::Warning),
    ("inferred_end", Severity::Warning),
    ("late_transaction", Severity::Warning),
    ("security_event", Severity::Warning),
    ("security_refused", Severity::Warning),
    ("auth_failed", Severity::Warning),
    ("cert_expiring", Severity::Warning),
];

/// Device events alert at this severity or worse by default (0 Danger …
/// 4 Error … 9 Debug).
pub const DEVICE_SEVERITY: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "crit",
            Severity::Warning => "warn",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub key: String,
    pub t: Option<DateTime<Utc>>,
    pub severity: Severity,
    pub kind: &'static str,
    pub charger: Option<String>,
    pub detail: String,
}

fn stamp(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.timestamp_millis().to_string()).unwrap_or_default()
}

/// `device_severity`: device events of this severity or worse alert.
pub fn derive(d: &Snapshot, device_severity: u8) -> Vec<Alert> {
    let mut out = Vec::new();
    for c in &d.chargers {
        match c.status {
            Registration::Pending => out.push(Alert {
                key: format!("pending:{}", c.id),
                t: c.last_seen,
                severity: Severity::Info,
                kind: "pending",
                charger: Some(c.id.clone()),
                detail: "unknown charger waits to be accepted".into(),
            }),
            Registration::Accepted if !c.connected => out.push(Alert {
                key: format!("offline:{}:{}", c.id, stamp(c.last_seen)),
                t: c.last_seen,
                severity: Severity::Warning,
                kind: "offline",
                charger: Some(c.id.clone()),
                detail: match c.last_seen {
                    Some(_) => "no connection".into(),
                    None => "never connected".into(),
                },
            }),
            _ => {}
        }
        for k in &c.connectors {
            let error = k.error_code.as_deref().filter(|e| *e != "NoError");
            if k.status == ConnectorStatus::Faulted || error.is_some() {
                out.push(Alert {
                    key: format!("fault:{}:{}:{}:{}", c.id, k.evse, k.connector, stamp(k.updated_at)),
                    t: k.updated_at,
                    severity: Severity::Critical,
                    kind: "fault",
                    charger: Some(c.id.clone()),
                    detail: format!(
                        "EVSE {} connector {}: {}{}",
                        k.evse,
                        k.connector,
                        error.unwrap_or("Faulted"),
                        k.info.as_deref().map(|i| format!(" ({i})")).unwrap_or_default()
                    ),
                });
            }
        }
    }
    for site in &d.dlm.sites {
        if let Some(e) = &site.error {
            out.push(Alert {
                key: format!("dlm:{}:{e}", site.site),
                t: Some(site.time),
                severity: Severity::Critical,
                kind: "dlm",
                charger: None,
                detail: format!("site {}: load management cannot plan: {e}", site.site),
            });
        }
        for c in site.circuits.iter().filter(|c| c.metered && c.unmanaged.is_none()) {
            out.push(Alert {
                key: format!("meter:{}", c.id),
                t: None,
                severity: Severity::Warning,
                kind: "meter",
                charger: None,
                detail: format!("meter of circuit {} is silent; its failsafe load is assumed", c.id),
            });
        }
        for c in site.chargers.iter().filter(|c| c.non_compliant) {
            out.push(Alert {
                key: format!("noncompliant:{}", c.id),
                t: None,
                severity: Severity::Warning,
                kind: "non-compliant",
                charger: Some(c.id.split('/').next().unwrap_or(&c.id).to_string()),
                detail: format!("{} draws more than its limit of {:.1} A", c.id, c.limit),
            });
        }
    }
    for s in &d.sessions {
        if let Some(e) = s.eichrecht.as_ref().filter(|e| e.state == EichrechtState::Failed) {
            out.push(Alert {
                key: format!("signature:{}", s.id),
                t: s.stopped_at,
                severity: Severity::Critical,
                kind: "signature",
                charger: Some(s.charger.clone()),
                detail: format!(
                    "session {}: signed meter data failed: {}",
                    s.id,
                    e.problems.first().map(String::as_str).unwrap_or("see the receipt")
                ),
            });
        }
    }
    // The newest event per charger and variable counts (events come oldest
    // first): a cleared one ends the alert. An event whose monitor the
    // server does not know has no severity and alerts, to be safe.
    let mut newest: std::collections::BTreeMap<(Option<&str>, &str), &crate::domain::Event> = Default::default();
    for e in &d.events {
        if let Some(n) = &e.device {
            newest.insert((e.charger.as_deref(), n.subject.as_str()), e);
        }
    }
    for e in newest.values() {
        let Some(n) = &e.device else { continue };
        if n.cleared || n.severity.is_some_and(|s| s > device_severity) {
            continue;
        }
        out.push(Alert {
            key: format!(
                "device:{}:{}:{}",
                e.charger.as_deref().unwrap_or(""),
                n.subject,
                e.t.timestamp_millis()
            ),
            t: Some(e.t),
            severity: if n.severity.is_some_and(|s| s <= 2) {
                Severity::Critical
            } else {
                Severity::Warning
            },
            kind: "device",
            charger: e.charger.clone(),
            detail: e.detail.clone(),
        });
    }
    for e in &d.events {
        if let Some((kind, severity)) = ALERT_EVENTS.iter().find(|(k, _)| *k == e.kind) {
            // A fault still showing on its connector is already listed.
            let current = out
                .iter()
                .any(|a| a.kind == *kind && a.charger == e.charger && a.t == Some(e.t));
            if current {
                continue;
            }
            out.push(Alert {
                key: format!(
                    "event:{}:{}:{kind}",
                    e.t.timestamp_millis(),
                    e.charger.as_deref().unwrap_or("")
                ),
                t: Some(e.t),
                severity: *severity,
                kind,
                charger: e.charger.clone(),
                detail: e.detail.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use crate::domain::device::DeviceNote;

    fn event(sec: u32, subject: &str, severity: Option<u8>, cleared: bool) -> Event {
        Event {
            t: format!("2026-11-23T10:00:{sec:02}Z").parse().unwrap(),
            charger: Some("CP".into()),
            kind: "device_event".into(),
            detail: format!("{subject} …"),
            device: Some(DeviceNote {
                subject: subject.into(),
                severity,
                cleared,
            }),
        }
    }

    fn device_alerts(d: &Snapshot, threshold: u8) -> Vec<(String, Severity)> {
        derive(d, threshold)
            .into_iter()
            .filter(|a| a.kind == "device")
            .map(|a| (a.detail.replace(" …", ""), a.severity))
            .collect()
    }

    #[test]
    fn device_events_alert_at_or_above_the_threshold_until_a_later_one_clears_them() {
        let mut d = Snapshot {
            events: vec![
                event(0, "EVSE@1.Power", Some(2), false),
                event(1, "EVSE@2.Power", Some(6), false),
                event(2, "TemperatureSensor.Temperature", None, false),
            ],
            ..Snapshot::default()
        };
        assert_eq!(
            device_alerts(&d, DEVICE_SEVERITY),
            [
                ("EVSE@1.Power".to_string(), Severity::Critical),
                ("TemperatureSensor.Temperature".to_string(), Severity::Warning)
            ]
        );
        assert_eq!(
            device_alerts(&d, 6).len(),
            3,
            "a looser threshold shows the warning too"
        );
        d.events.push(event(3, "EVSE@1.Power", Some(2), true));
        let left: Vec<String> = device_alerts(&d, DEVICE_SEVERITY).into_iter().map(|a| a.0).collect();
        assert_eq!(left, ["TemperatureSensor.Temperature"]);
        // It fires again: a new alert (a new key), not the acknowledged one.
        d.events.push(event(4, "EVSE@1.Power", Some(2), false));
        let keys: Vec<String> = derive(&d, DEVICE_SEVERITY).into_iter().map(|a| a.key).collect();
        assert!(
            keys.iter()
                .any(|k| k.starts_with("device:CP:EVSE@1.Power:") && k.ends_with("4000")),
            "{keys:?}"
        );
    }
}
