//! A charger's device model (2.0.1 components and variables, 1.6
//! configuration keys), its monitors and device events, and what it tells
//! load management about limits and the car: version-neutral, as the store
//! keeps them. The rules here are pure (time comes in as an argument).

use super::message::RateUnit;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a variable lives: a component (with its instance and EVSE /
/// connector) and a variable (with its instance). A 1.6 configuration key
/// is a variable of the component `""`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VariableRef {
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<u32>,
    pub variable: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable_instance: Option<String>,
}

impl VariableRef {
    /// `Component[:instance][@evse[/connector]].Variable[.instance]`, the
    /// name the CLI shows and accepts (a 1.6 key is just its name).
    pub fn name(&self) -> String {
        let mut c = self.component.clone();
        if let Some(i) = &self.component_instance {
            c = format!("{c}:{i}");
        }
        if let Some(e) = self.evse {
            c = format!("{c}@{e}");
            if let Some(k) = self.connector {
                c = format!("{c}/{k}");
            }
        }
        let mut v = self.variable.clone();
        if let Some(i) = &self.variable_instance {
            v = format!("{v}.{i}");
        }
        if c.is_empty() { v } else { format!("{c}.{v}") }
    }

    /// Parse what `name` writes. The component part may not contain '.'.
    pub fn parse(text: &str) -> Option<VariableRef> {
        let (component, variable) = match text.split_once('.') {
            Some((c, v)) => (c, v),
            None => ("", text),
        };
        let (variable, variable_instance) = match variable.split_once('.') {
            Some((v, i)) => (v, Some(i.to_string())),
            None => (variable, None),
        };
        let mut r = ComponentRef::parse(component)?;
        if variable.is_empty() {
            return None;
        }
        Some(VariableRef {
            component: std::mem::take(&mut r.name),
            component_instance: r.instance,
            evse: r.evse,
            connector: r.connector,
            variable: variable.to_string(),
            variable_instance,
        })
    }

    /// The row key within one charger: every part, separated by a unit
    /// separator (which no OCPP identifier contains).
    pub fn key(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let num = |o: Option<u32>| o.map(|n| n.to_string()).unwrap_or_default();
        [
            self.component.clone(),
            opt(&self.component_instance),
            num(self.evse),
            num(self.connector),
            self.variable.clone(),
            opt(&self.variable_instance),
        ]
        .join("\u{1f}")
    }
}

/// A component named on the command line: `Name[:instance][@evse[/connector]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComponentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<u32>,
}

impl ComponentRef {
    pub fn parse(text: &str) -> Option<ComponentRef> {
        let (head, place) = match text.split_once('@') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let (name, instance) = match head.split_once(':') {
            Some((n, i)) => (n, Some(i.to_string())),
            None => (head, None),
        };
        let (evse, connector) = match place {
            None => (None, None),
            Some(p) => match p.split_once('/') {
                Some((e, c)) => (Some(e.parse().ok()?), Some(c.parse().ok()?)),
                None => (Some(p.parse().ok()?), None),
            },
        };
        Some(ComponentRef {
            name: name.to_string(),
            instance,
            evse,
            connector,
        })
    }
}

/// One attribute of a variable as a charger reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedVariable {
    #[serde(flatten)]
    pub at: VariableRef,
    /// Actual, Target, MinSet or MaxSet.
    pub attribute: String,
    pub value: Option<String>,
    /// ReadOnly, WriteOnly or ReadWrite.
    pub mutability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_list: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_monitoring: Option<bool>,
}

impl ReportedVariable {
    /// The row key within one charger: the variable and the attribute.
    pub fn key(&self) -> String {
        format!("{}\u{1f}{}", self.at.key(), self.attribute)
    }
}

/// A reported variable as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVariable {
    #[serde(flatten)]
    pub var: ReportedVariable,
    pub reported_at: DateTime<Utc>,
    /// The report that carried it (none for a 1.6 GetConfiguration or a
    /// 2.0.1 GetVariables answer).
    pub request_id: Option<i64>,
}

/// One part of a multi-part report (NotifyReport, NotifyMonitoringReport).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPart<T> {
    pub request_id: i64,
    pub seq_no: u32,
    /// More parts follow.
    pub tbc: bool,
    pub generated_at: DateTime<Utc>,
    pub items: Vec<T>,
}

/// What the server knows about the last report it asked a charger for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportStatus {
    pub request_id: i64,
    /// What was asked: `FullInventory`, `criteria Problem`, `monitoring` …
    pub what: String,
    pub requested_at: DateTime<Utc>,
    /// The charger's answer to the request, once given (`Accepted`, …).
    pub answer: Option<String>,
    /// Sequence numbers of the parts that arrived, ascending.
    pub parts: Vec<u32>,
    /// The sequence number of the part that said `tbc = false`.
    pub last_seq: Option<u32>,
    pub items: u64,
    pub updated_at: DateTime<Utc>,
}

impl ReportStatus {
    pub fn new(request_id: i64, what: &str, t: DateTime<Utc>) -> Self {
        ReportStatus {
            request_id,
            what: what.to_string(),
            requested_at: t,
            answer: None,
            parts: vec![],
            last_seq: None,
            items: 0,
            updated_at: t,
        }
    }

    /// Note a part; parts may arrive in any order, and a repeated part
    /// (a charger's retry) counts once.
    pub fn add_part(&mut self, seq_no: u32, tbc: bool, items: usize, t: DateTime<Utc>) {
        if let Err(pos) = self.parts.binary_search(&seq_no) {
            self.parts.insert(pos, seq_no);
            self.items += items as u64;
        }
        if !tbc {
            self.last_seq = Some(seq_no);
        }
        self.updated_at = t;
    }

    /// Every part from 0 to the last one arrived.
    pub fn complete(&self) -> bool {
        self.last_seq
            .is_some_and(|last| self.parts.len() as u64 == u64::from(last) + 1 && self.parts.last() == Some(&last))
    }

    /// Sequence numbers still missing before the last known part.
    pub fn missing(&self) -> Vec<u32> {
        let top = self.last_seq.or(self.parts.last().copied()).unwrap_or(0);
        (0..=top).filter(|s| self.parts.binary_search(s).is_err()).collect()
    }

    /// `complete`, `partial` (parts missing or more announced), `requested`
    /// (nothing yet) or the charger's refusal.
    pub fn state(&self) -> String {
        match self.answer.as_deref() {
            Some(a) if a != "Accepted" => a.to_string(),
            _ if self.complete() => "complete".into(),
            _ if self.parts.is_empty() => "requested".into(),
            _ => "partial".into(),
        }
    }
}

/// A variable monitor installed on a charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    pub id: i64,
    #[serde(flatten)]
    pub at: VariableRef,
    /// UpperThreshold, LowerThreshold, Delta, Periodic, PeriodicClockAligned.
    pub kind: String,
    pub value: f64,
    /// 0 (Danger) … 9 (Debug).
    pub severity: u8,
    pub transaction: bool,
}

/// One NotifyEvent entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub event_id: i64,
    pub t: DateTime<Utc>,
    /// Alerting, Delta or Periodic.
    pub trigger: String,
    #[serde(flatten)]
    pub at: VariableRef,
    pub value: String,
    pub cleared: bool,
    pub monitor: Option<i64>,
    /// HardWiredNotification, HardWiredMonitor, PreconfiguredMonitor, CustomMonitor.
    pub notification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tech_info: Option<String>,
}

/// What an `Event` of kind `device_event` carries besides its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceNote {
    /// `VariableRef::name` of what the event is about: a later event for
    /// the same name with `cleared` ends the alert.
    pub subject: String,
    /// The severity of the monitor that fired (0 Danger … 9 Debug); none
    /// when the monitor is not known to the server.
    pub severity: Option<u8>,
    pub cleared: bool,
}

/// A charging schedule as chargers and cars send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// From when the periods count; `None`: from when it was received.
    pub start: Option<DateTime<Utc>>,
    pub duration_s: Option<u32>,
    pub unit: RateUnit,
    pub periods: Vec<SchedulePeriod>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePeriod {
    pub start_s: u32,
    pub limit: f64,
    pub phases: Option<u8>,
}

impl Schedule {
    /// The period in force at `now` for a schedule that began at `from`
    /// (when it has no start of its own); `None` before its first period
    /// and after its duration.
    pub fn period_at(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> Option<&SchedulePeriod> {
        let start = self.start.unwrap_or(from);
        let elapsed = (now - start).num_seconds();
        if elapsed < 0 || self.duration_s.is_some_and(|d| elapsed >= i64::from(d)) {
            return None;
        }
        self.periods
            .iter()
            .filter(|p| i64::from(p.start_s) <= elapsed)
            .max_by_key(|p| p.start_s)
    }

    /// The limit at `now` in A per phase: W over the period's phases (or
    /// `phases`) at `volts`.
    pub fn amps_at(&self, from: DateTime<Utc>, now: DateTime<Utc>, phases: u8, volts: f64) -> Option<f64> {
        let p = self.period_at(from, now)?;
        Some(match self.unit {
            RateUnit::A => p.limit,
            RateUnit::W => p.limit / (f64::from(p.phases.unwrap_or(phases).max(1)) * volts),
        })
    }
}

/// A limit set on a charger by a source other than us (an energy manager,
/// the grid operator): NotifyChargingLimit until ClearedChargingLimit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalLimit {
    pub charger: String,
    /// 0: the whole charger.
    pub evse: u32,
    /// EMS, Other, SO (system operator), CSO.
    pub source: String,
    pub grid_critical: Option<bool>,
    /// Without a schedule the charger only said that a limit applies.
    pub schedules: Vec<Schedule>,
    pub received_at: DateTime<Utc>,
}

impl ExternalLimit {
    /// The lowest limit its schedules set at `now` (A per phase).
    pub fn amps_at(&self, now: DateTime<Utc>, phases: u8, volts: f64) -> Option<f64> {
        self.schedules
            .iter()
            .filter_map(|s| s.amps_at(self.received_at, now, phases, volts))
            .min_by(f64::total_cmp)
    }
}

/// What the car said it needs (ISO 15118 via NotifyEVChargingNeeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvNeeds {
    pub departure: Option<DateTime<Utc>>,
    pub energy_wh: Option<i64>,
    /// The car's maximum current (A per phase, AC; A at the battery, DC).
    pub max_current_a: Option<f64>,
    pub max_power_w: Option<f64>,
    pub received_at: DateTime<Utc>,
}

/// What the server knows of the car at one EVSE, for the session it came with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvInfo {
    /// The session these belong to; `None` while no session is open (the
    /// needs are applied to the session that opens next).
    pub session: Option<u64>,
    pub needs: Option<EvNeeds>,
    /// The car's own plan (NotifyEVChargingSchedule) and when it came.
    pub schedule: Option<Schedule>,
    pub schedule_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            "EVSE@1.Power",
            "OCPPCommCtrlr.HeartbeatInterval",
            "Connector:a@2/1.Available.x",
            "HeartbeatInterval",
        ] {
            assert_eq!(VariableRef::parse(n).unwrap().name(), n);
        }
        assert!(VariableRef::parse("EVSE@x.Power").is_none());
        assert!(VariableRef::parse("EVSE.").is_none());
    }

    #[test]
    fn parts_in_any_order_complete_a_report_and_a_gap_leaves_it_partial() {
        let t = Utc::now();
        let mut r = ReportStatus::new(7, "FullInventory", t);
        assert_eq!(r.state(), "requested");
        r.add_part(2, false, 3, t);
        r.add_part(0, true, 4, t);
        assert_eq!(r.state(), "partial");
        assert_eq!(r.missing(), vec![1]);
        r.add_part(1, true, 4, t);
        r.add_part(1, true, 4, t);
        assert!(r.complete());
        assert_eq!(r.items, 11);
        r.answer = Some("NotSupported".into());
        assert_eq!(r.state(), "NotSupported");
    }

    #[test]
    fn a_schedule_limits_from_its_start_until_its_duration() {
        let t0: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let s = Schedule {
            start: None,
            duration_s: Some(600),
            unit: RateUnit::W,
            periods: vec![
                SchedulePeriod {
                    start_s: 0,
                    limit: 6900.0,
                    phases: None,
                },
                SchedulePeriod {
                    start_s: 300,
                    limit: 2300.0,
                    phases: Some(1),
                },
            ],
        };
        let at = |s_: i64| t0 + chrono::Duration::seconds(s_);
        assert_eq!(s.amps_at(t0, at(10), 3, 230.0), Some(10.0));
        assert_eq!(s.amps_at(t0, at(301), 3, 230.0), Some(10.0));
        assert_eq!(s.amps_at(t0, at(600), 3, 230.0), None);
        assert_eq!(s.amps_at(t0, at(-1), 3, 230.0), None);
    }
}
