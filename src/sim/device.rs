//! A 2.0.1 charger's device model as a real one reports it: base reports
//! and GetReport in several NotifyReport parts, variable monitors that
//! fire NotifyEvent when a live value crosses them, the car's charging
//! needs at the start of a session, and an external limit (an energy
//! manager on site) when the scenario says so.

use super::charger::{Charger, Clock};
use super::profiles::{Kind as ProfileKind, Period, Profile, Purpose, Unit};
use super::settings::{Access, Kind, Setting};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Variables per NotifyReport part: small, so every report has several.
const PART: usize = 5;
/// The id of the external limit's profile (ours never go this high).
const EXTERNAL_PROFILE: i64 = 1_000_000;

/// An installed variable monitor; only the live `EVSE.Power` supports them.
#[derive(Debug, Clone)]
pub(super) struct SimMonitor {
    id: i64,
    /// Connector index.
    conn: usize,
    kind: String,
    value: f64,
    severity: u8,
    transaction: bool,
    /// Threshold monitors: the value is beyond the threshold.
    alerting: bool,
    /// Delta monitors: the value last reported.
    reference: Option<f64>,
    next_periodic: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct DeviceState {
    monitors: Vec<SimMonitor>,
    next_monitor: i64,
    next_event: i64,
    /// Events above this severity are not sent (SetMonitoringLevel).
    level: Option<u8>,
    /// The external limit is in force.
    limited: bool,
    /// When the scenario's clock for the external limit started.
    since: Option<Instant>,
}

/// One row of a report: a stored setting or a live variable.
struct Row {
    component: Value,
    variable: &'static str,
    value: String,
    mutability: &'static str,
    data_type: &'static str,
    unit: Option<&'static str>,
    monitorable: bool,
}

impl Row {
    fn json(&self) -> Value {
        let mut ch = json!({"dataType": self.data_type, "supportsMonitoring": self.monitorable});
        if let Some(u) = self.unit {
            ch["unit"] = json!(u);
        }
        json!({
            "component": self.component,
            "variable": {"name": self.variable},
            "variableAttribute": [{"type": "Actual", "value": self.value, "mutability": self.mutability}],
            "variableCharacteristics": ch,
        })
    }
}

fn setting_row(s: &Setting) -> Row {
    Row {
        component: json!({"name": s.component}),
        variable: s.variable,
        value: s.value.chars().take(2500).collect(),
        mutability: if s.access == Access::ReadOnly {
            "ReadOnly"
        } else {
            "ReadWrite"
        },
        data_type: match s.kind {
            Kind::Int => "integer",
            Kind::Bool => "boolean",
            Kind::Text => "string",
        },
        unit: matches!(
            s.variable,
            "HeartbeatInterval" | "TxUpdatedInterval" | "EVConnectionTimeOut"
        )
        .then_some("s"),
        monitorable: false,
    }
}

impl Charger {
    /// Active power at a connector (W), the live variable `EVSE@n.Power`.
    fn power_w(&self, i: usize) -> f64 {
        self.conns[i].draw.power_w as f64
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.settings.readable().map(setting_row).collect();
        for (i, c) in self.conns.iter().enumerate() {
            rows.push(Row {
                component: json!({"name": "EVSE", "evse": {"id": c.id}}),
                variable: "Power",
                value: self.power_w(i).to_string(),
                mutability: "ReadOnly",
                data_type: "decimal",
                unit: Some("W"),
                monitorable: true,
            });
        }
        rows
    }

    /// Queue `rows` as NotifyReport parts of `request_id`.
    fn send_report(&mut self, request_id: i64, rows: Vec<Row>, clock: Clock) {
        let now = crate::ocpp::format_time(clock.wall);
        let parts: Vec<Vec<Value>> = rows.chunks(PART).map(|c| c.iter().map(Row::json).collect()).collect();
        let last = parts.len().saturating_sub(1);
        for (seq, data) in parts.into_iter().enumerate() {
            self.push_plain(
                "NotifyReport",
                json!({"requestId": request_id, "generatedAt": now, "seqNo": seq, "tbc": seq < last, "reportData": data}),
            );
        }
    }

    pub(super) fn base_report(&mut self, p: &Value, clock: Clock) -> Value {
        let request_id = p.get("requestId").and_then(Value::as_i64).unwrap_or(0);
        let rows: Vec<Row> = match p.get("reportBase").and_then(Value::as_str) {
            Some("FullInventory") => self.rows(),
            Some("ConfigurationInventory") => self
                .rows()
                .into_iter()
                .filter(|r| r.mutability == "ReadWrite")
                .collect(),
            _ => return json!({"status": "NotSupported"}),
        };
        self.send_report(request_id, rows, clock);
        json!({"status": "Accepted"})
    }

    /// GetReport: the rows matching every named component/variable and
    /// criterion; nothing here is ever in a problem state.
    pub(super) fn report(&mut self, p: &Value, clock: Clock) -> Value {
        let request_id = p.get("requestId").and_then(Value::as_i64).unwrap_or(0);
        let wanted: Vec<&Value> = p
            .get("componentVariable")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let problem = p
            .get("componentCriteria")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|x| x == "Problem"));
        if problem {
            return json!({"status": "EmptyResultSet"});
        }
        let rows: Vec<Row> = self
            .rows()
            .into_iter()
            .filter(|r| {
                wanted.is_empty()
                    || wanted.iter().any(|w| {
                        let name = w.pointer("/component/name").and_then(Value::as_str);
                        let evse = w.pointer("/component/evse/id");
                        let var = w.pointer("/variable/name").and_then(Value::as_str);
                        name.is_some_and(|n| r.component["name"].as_str().is_some_and(|c| c.eq_ignore_ascii_case(n)))
                            && evse.is_none_or(|e| r.component.pointer("/evse/id") == Some(e))
                            && var.is_none_or(|v| v.eq_ignore_ascii_case(r.variable))
                    })
            })
            .collect();
        if rows.is_empty() {
            return json!({"status": "EmptyResultSet"});
        }
        self.send_report(request_id, rows, clock);
        json!({"status": "Accepted"})
    }

    pub(super) fn set_monitoring(&mut self, p: &Value, clock: Clock) -> Value {
        let mut results = Vec::new();
        for d in p
            .get("setMonitoringData")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let component = d.get("component").cloned().unwrap_or(Value::Null);
            let variable = d.get("variable").cloned().unwrap_or(Value::Null);
            let name = component.get("name").and_then(Value::as_str).unwrap_or_default();
            let var = variable.get("name").and_then(Value::as_str).unwrap_or_default();
            let evse = component.pointer("/evse/id").and_then(Value::as_i64);
            let kind = d.get("type").and_then(Value::as_str).unwrap_or_default();
            let value = d.get("value").and_then(Value::as_f64).unwrap_or_default();
            let mut r = json!({"type": kind, "severity": d["severity"], "component": component, "variable": variable});
            let conn = if name.eq_ignore_ascii_case("EVSE") {
                evse.and_then(|e| (1..=self.conns.len() as i64).contains(&e).then(|| e as usize - 1))
            } else {
                None
            };
            let status = match conn {
                Some(i) if var.eq_ignore_ascii_case("Power") => {
                    if kind.starts_with("Periodic") && value <= 0.0 {
                        "Rejected"
                    } else {
                        let id = match d.get("id").and_then(Value::as_i64) {
                            Some(id) => {
                                self.device.monitors.retain(|m| m.id != id);
                                id
                            }
                            None => {
                                self.device.next_monitor += 1;
                                self.device.next_monitor
                            }
                        };
                        self.device.monitors.push(SimMonitor {
                            id,
                            conn: i,
                            kind: kind.to_string(),
                            value,
                            severity: d.get("severity").and_then(Value::as_u64).unwrap_or(9).min(9) as u8,
                            transaction: d.get("transaction").and_then(Value::as_bool).unwrap_or(false),
                            alerting: false,
                            reference: None,
                            next_periodic: kind.starts_with("Periodic").then_some(clock.now),
                        });
                        r["id"] = json!(id);
                        "Accepted"
                    }
                }
                Some(_) => "UnknownVariable",
                None if self.settings.by_variable(name, var).is_some() => "Rejected",
                None if self.settings.readable().any(|s| s.component == name) || name.eq_ignore_ascii_case("EVSE") => {
                    "UnknownVariable"
                }
                None => "UnknownComponent",
            };
            r["status"] = json!(status);
            results.push(r);
        }
        json!({"setMonitoringResult": results})
    }

    pub(super) fn monitoring_report(&mut self, p: &Value, clock: Clock) -> Value {
        let request_id = p.get("requestId").and_then(Value::as_i64).unwrap_or(0);
        if self.device.monitors.is_empty() {
            return json!({"status": "EmptyResultSet"});
        }
        let now = crate::ocpp::format_time(clock.wall);
        let items: Vec<Value> = self
            .device
            .monitors
            .iter()
            .map(|m| {
                json!({
                    "component": {"name": "EVSE", "evse": {"id": self.conns[m.conn].id}},
                    "variable": {"name": "Power"},
                    "variableMonitoring": [{"id": m.id, "transaction": m.transaction, "value": m.value,
                                            "type": m.kind, "severity": m.severity}],
                })
            })
            .collect();
        let parts: Vec<Vec<Value>> = items.chunks(PART).map(<[Value]>::to_vec).collect();
        let last = parts.len().saturating_sub(1);
        for (seq, monitor) in parts.into_iter().enumerate() {
            self.push_plain(
                "NotifyMonitoringReport",
                json!({"requestId": request_id, "generatedAt": now, "seqNo": seq, "tbc": seq < last, "monitor": monitor}),
            );
        }
        json!({"status": "Accepted"})
    }

    pub(super) fn clear_monitoring(&mut self, p: &Value) -> Value {
        let results: Vec<Value> = p
            .get("id")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(|id| {
                let before = self.device.monitors.len();
                self.device.monitors.retain(|m| m.id != id);
                let st = if self.device.monitors.len() < before {
                    "Accepted"
                } else {
                    "NotFound"
                };
                json!({"id": id, "status": st})
            })
            .collect();
        json!({"clearMonitoringResult": results})
    }

    /// SetMonitoringBase: only custom monitors exist, and every base but
    /// `All` drops them.
    pub(super) fn monitoring_base(&mut self, p: &Value) -> Value {
        if p.get("monitoringBase").and_then(Value::as_str) != Some("All") {
            self.device.monitors.clear();
        }
        json!({"status": "Accepted"})
    }

    pub(super) fn monitoring_level(&mut self, p: &Value) -> Value {
        match p.get("severity").and_then(Value::as_u64) {
            Some(s) if s <= 9 => {
                self.device.level = Some(s as u8);
                json!({"status": "Accepted"})
            }
            _ => json!({"status": "Rejected"}),
        }
    }

    /// Monitors need a tick every second while there are any.
    pub(super) fn monitoring(&self) -> bool {
        !self.device.monitors.is_empty() || self.plan.external_limit.is_some()
    }

    /// Evaluate every monitor against the live values; send what fired.
    pub(super) fn tick_device(&mut self, clock: Clock) {
        self.tick_external_limit(clock);
        if !(self.accepted && self.online) {
            return;
        }
        let mut events = Vec::new();
        for k in 0..self.device.monitors.len() {
            let m = self.device.monitors[k].clone();
            let value = self.power_w(m.conn);
            let in_tx = self.conns[m.conn].plugged.as_ref().is_some_and(|p| p.tx.is_some());
            let m_ref = &mut self.device.monitors[k];
            if m.transaction && !in_tx {
                continue;
            }
            let fired = match m.kind.as_str() {
                "UpperThreshold" | "LowerThreshold" => {
                    let beyond = if m.kind == "UpperThreshold" {
                        value > m.value
                    } else {
                        value < m.value
                    };
                    (beyond != m.alerting).then(|| {
                        m_ref.alerting = beyond;
                        ("Alerting", !beyond)
                    })
                }
                "Delta" => match m.reference {
                    Some(r) if (value - r).abs() < m.value => None,
                    _ => {
                        m_ref.reference = Some(value);
                        m.reference.is_some().then_some(("Delta", false))
                    }
                },
                _ => match m.next_periodic {
                    Some(at) if clock.now >= at => {
                        // Clamped: the interval comes from the server and must not overflow an Instant.
                        m_ref.next_periodic = Some(at + Duration::from_secs_f64(m.value.clamp(1.0, 86_400.0)));
                        Some(("Periodic", false))
                    }
                    _ => None,
                },
            };
            if let Some((trigger, cleared)) = fired
                && self.device.level.is_none_or(|l| m.severity <= l)
            {
                events.push((m.id, m.conn, trigger, cleared, value));
            }
        }
        if events.is_empty() {
            return;
        }
        let data: Vec<Value> = events
            .into_iter()
            .map(|(id, conn, trigger, cleared, value)| {
                self.device.next_event += 1;
                json!({
                    "eventId": self.device.next_event,
                    "timestamp": crate::ocpp::format_time(clock.wall),
                    "trigger": trigger,
                    "actualValue": value.to_string(),
                    "cleared": cleared,
                    "component": {"name": "EVSE", "evse": {"id": self.conns[conn].id}},
                    "variable": {"name": "Power"},
                    "variableMonitoringId": id,
                    "eventNotificationType": "CustomMonitor",
                })
            })
            .collect();
        self.push_plain(
            "NotifyEvent",
            json!({"generatedAt": crate::ocpp::format_time(clock.wall), "seqNo": 0, "tbc": false, "eventData": data}),
        );
    }

    /// The scenario's energy manager caps the whole charger `after_s` after
    /// the start for `for_s`: the cap is installed as an external-constraints
    /// profile and reported (NotifyChargingLimit), then lifted
    /// (ClearedChargingLimit).
    fn tick_external_limit(&mut self, clock: Clock) {
        let Some(spec) = self.plan.external_limit.clone() else {
            return;
        };
        let since = *self.device.since.get_or_insert(clock.now);
        let elapsed = clock.now.saturating_duration_since(since).as_secs();
        let due = elapsed >= u64::from(spec.after_s) && elapsed < u64::from(spec.after_s) + u64::from(spec.for_s);
        if due == self.device.limited || !(self.accepted && self.online) {
            return;
        }
        self.device.limited = due;
        if due {
            self.profiles.install(Profile {
                id: EXTERNAL_PROFILE,
                stack_level: 0,
                purpose: Purpose::External,
                connector: 0,
                transaction: None,
                kind: ProfileKind::Absolute,
                start: Some(clock.wall),
                valid_from: None,
                valid_to: None,
                duration_s: None,
                unit: Unit::Amps,
                periods: vec![Period {
                    start_s: 0,
                    limit_milli: i64::from(spec.current_a) * 1000,
                    phases: None,
                }],
            });
            let rest = u64::from(spec.after_s) + u64::from(spec.for_s) - elapsed;
            self.push_plain(
                "NotifyChargingLimit",
                json!({
                    "chargingLimit": {"chargingLimitSource": spec.source, "isGridCritical": false},
                    "chargingSchedule": [{
                        "id": 1,
                        "startSchedule": crate::ocpp::format_time(clock.wall),
                        "duration": rest,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": spec.current_a}],
                    }],
                }),
            );
        } else {
            self.profiles.clear(Some(EXTERNAL_PROFILE), None, None, None);
            self.push_plain("ClearedChargingLimit", json!({"chargingLimitSource": spec.source}));
        }
    }

    /// An ISO 15118 car tells what it needs as its session starts: energy to
    /// full, when it leaves, its maximum current.
    pub(super) fn send_needs(&mut self, i: usize, clock: Clock) {
        let Some(p) = self.conns[i].plugged.as_ref().filter(|p| p.visit.iso15118) else {
            return;
        };
        let need_wh = p.visit.battery_wh * u64::from(1000 - p.visit.arrival_soc_permille.min(1000)) / 1000;
        let stay = p.leave_at.saturating_duration_since(clock.now);
        let departure = clock.wall + chrono::Duration::seconds(stay.as_secs() as i64);
        let needs = if self.dc() {
            json!({"requestedEnergyTransfer": "DC", "departureTime": crate::ocpp::format_time(departure),
                   "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 450, "energyAmount": need_wh,
                                            "evMaxPower": p.visit.dc_max_kw * 1000}})
        } else {
            let transfer = if p.visit.ac_phases == 1 {
                "AC_single_phase"
            } else {
                "AC_three_phase"
            };
            json!({"requestedEnergyTransfer": transfer, "departureTime": crate::ocpp::format_time(departure),
                   "acChargingParameters": {"energyAmount": need_wh, "evMinCurrent": 6,
                                            "evMaxCurrent": p.visit.ac_max_current_a, "evMaxVoltage": 400}})
        };
        let evse = self.conns[i].id;
        self.push_plain("NotifyEVChargingNeeds", json!({"evseId": evse, "chargingNeeds": needs}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::charger::Purpose as OutPurpose;
    use crate::sim::plan::Plan;
    use crate::sim::scenario::{ProtocolChoice, Scenario};
    use crate::sim::stats::Stats;
    use std::sync::Arc;

    fn booted() -> (Charger, Clock) {
        let mut s = Scenario::generic(1, ProtocolChoice::V201, 1);
        s.arrivals.first_within_s = 100_000;
        let plan = Plan::new(&s, 1).chargers.remove(0);
        let clock = Clock {
            now: Instant::now(),
            wall: "2026-11-23T10:00:00Z".parse().unwrap(),
        };
        let mut c = Charger::new(plan, &s, Arc::new(Stats::default()), clock);
        c.on_connect();
        c.next_out(clock);
        c.on_result(OutPurpose::Boot, &json!({"status": "Accepted", "interval": 60}), clock);
        while c.next_out(clock).is_some() {}
        (c, clock)
    }

    fn sent(c: &mut Charger, clock: Clock, action: &str) -> Vec<Value> {
        std::iter::from_fn(|| c.next_out(clock))
            .filter(|o| o.action == action)
            .map(|o| o.payload)
            .collect()
    }

    #[test]
    fn a_report_comes_in_parts_that_end_with_tbc_false() {
        let (mut c, clock) = booted();
        let r = c.handle_call(
            "GetBaseReport",
            &json!({"requestId": 9, "reportBase": "FullInventory"}),
            clock,
        );
        assert_eq!(r.unwrap()["status"], "Accepted");
        let parts = sent(&mut c, clock, "NotifyReport");
        assert!(parts.len() > 2);
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p["tbc"] == true && p["requestId"] == 9)
        );
        assert_eq!(parts.last().unwrap()["tbc"], false);
        let rows: usize = parts.iter().map(|p| p["reportData"].as_array().unwrap().len()).sum();
        assert_eq!(rows, c.rows().len());
        let r = c.handle_call(
            "GetReport",
            &json!({"requestId": 10, "componentCriteria": ["Problem"]}),
            clock,
        );
        assert_eq!(r.unwrap()["status"], "EmptyResultSet");
    }

    #[test]
    fn a_threshold_monitor_fires_when_crossed_and_clears_when_back() {
        let (mut c, clock) = booted();
        let set = json!({"setMonitoringData": [{"value": 1000, "type": "UpperThreshold", "severity": 3,
            "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}]});
        let r = c.handle_call("SetVariableMonitoring", &set, clock).unwrap();
        assert_eq!(r["setMonitoringResult"][0]["status"], "Accepted");
        let id = r["setMonitoringResult"][0]["id"].clone();
        c.conns[0].draw.power_w = 11_000;
        c.tick_device(clock);
        let ev = sent(&mut c, clock, "NotifyEvent");
        assert_eq!(ev.len(), 1);
        let data = &ev[0]["eventData"][0];
        assert_eq!(
            (data["cleared"].as_bool(), &data["variableMonitoringId"]),
            (Some(false), &id)
        );
        c.tick_device(clock);
        assert!(sent(&mut c, clock, "NotifyEvent").is_empty(), "once per crossing");
        c.conns[0].draw.power_w = 0;
        c.tick_device(clock);
        assert_eq!(sent(&mut c, clock, "NotifyEvent")[0]["eventData"][0]["cleared"], true);
        // Below the monitoring level nothing is sent.
        c.handle_call("SetMonitoringLevel", &json!({"severity": 2}), clock)
            .unwrap();
        c.conns[0].draw.power_w = 11_000;
        c.tick_device(clock);
        assert!(sent(&mut c, clock, "NotifyEvent").is_empty());
        let unknown = json!({"setMonitoringData": [{"value": 1, "type": "Delta", "severity": 3,
            "component": {"name": "Nope"}, "variable": {"name": "Power"}}]});
        let r = c.handle_call("SetVariableMonitoring", &unknown, clock).unwrap();
        assert_eq!(r["setMonitoringResult"][0]["status"], "UnknownComponent");
    }
}
