//! OCPP 2.0.1 device model, monitoring and charging limits: the reports,
//! events and limits chargers send, and the report and monitoring requests
//! we send, translated to and from `domain::device`.

use super::json::Json;
use super::{Rejection, time, typed};
use crate::domain::device::{
    ComponentRef, DeviceEvent, EvNeeds, Monitor, ReportPart, ReportedVariable, Schedule, SchedulePeriod, VariableRef,
};
use crate::domain::message::{Command, CommandResult, Inbound, MonitorRequest, RateUnit};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    name: String,
    instance: Option<String>,
    evse: Option<EvseRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvseRef {
    id: u32,
    connector_id: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variable {
    name: String,
    instance: Option<String>,
}

fn at(c: Component, v: Variable) -> VariableRef {
    VariableRef {
        component: c.name,
        component_instance: c.instance,
        evse: c.evse.as_ref().map(|e| e.id),
        connector: c.evse.and_then(|e| e.connector_id),
        variable: v.name,
        variable_instance: v.instance,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyReport {
    request_id: i64,
    generated_at: String,
    #[serde(default)]
    tbc: bool,
    seq_no: u32,
    #[serde(default)]
    report_data: Vec<ReportData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportData {
    component: Component,
    variable: Variable,
    variable_attribute: Vec<Attribute>,
    variable_characteristics: Option<Characteristics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attribute {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
    mutability: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Characteristics {
    unit: Option<String>,
    data_type: String,
    min_limit: Option<f64>,
    max_limit: Option<f64>,
    values_list: Option<String>,
    supports_monitoring: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyMonitoringReport {
    request_id: i64,
    generated_at: String,
    #[serde(default)]
    tbc: bool,
    seq_no: u32,
    #[serde(default)]
    monitor: Vec<MonitoringData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MonitoringData {
    component: Component,
    variable: Variable,
    variable_monitoring: Vec<VariableMonitoring>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariableMonitoring {
    id: i64,
    transaction: bool,
    value: f64,
    #[serde(rename = "type")]
    kind: String,
    severity: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyEvent {
    #[serde(default)]
    event_data: Vec<EventData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventData {
    event_id: i64,
    timestamp: String,
    trigger: String,
    actual_value: String,
    tech_info: Option<String>,
    #[serde(default)]
    cleared: bool,
    component: Component,
    variable: Variable,
    variable_monitoring_id: Option<i64>,
    event_notification_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyChargingLimit {
    #[serde(default)]
    charging_schedule: Vec<ChargingSchedule>,
    evse_id: Option<u32>,
    charging_limit: ChargingLimit,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargingLimit {
    charging_limit_source: String,
    is_grid_critical: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClearedChargingLimit {
    charging_limit_source: String,
    evse_id: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyEvChargingSchedule {
    time_base: String,
    charging_schedule: ChargingSchedule,
    evse_id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargingSchedule {
    start_schedule: Option<String>,
    duration: Option<u32>,
    charging_rate_unit: String,
    charging_schedule_period: Vec<Period>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Period {
    start_period: u32,
    limit: f64,
    number_phases: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyEvChargingNeeds {
    evse_id: u32,
    charging_needs: ChargingNeeds,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargingNeeds {
    departure_time: Option<String>,
    ac_charging_parameters: Option<AcParameters>,
    dc_charging_parameters: Option<DcParameters>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcParameters {
    energy_amount: u32,
    ev_max_current: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DcParameters {
    energy_amount: Option<u32>,
    ev_max_current: u32,
    ev_max_power: Option<u32>,
}

fn schedule(s: ChargingSchedule, base: Option<DateTime<Utc>>, field: &str) -> Result<Schedule, Rejection> {
    let start = match s.start_schedule {
        Some(t) => Some(time(&t, &format!("{field}.startSchedule"))?),
        None => base,
    };
    let unit = match s.charging_rate_unit.as_str() {
        "W" => RateUnit::W,
        _ => RateUnit::A,
    };
    for (i, p) in s.charging_schedule_period.iter().enumerate() {
        if !p.limit.is_finite() || p.limit < 0.0 {
            return Err(Rejection::property(
                &format!("{field}.chargingSchedulePeriod[{i}].limit"),
                "must be a number >= 0",
            ));
        }
    }
    Ok(Schedule {
        start,
        duration_s: s.duration,
        unit,
        periods: s
            .charging_schedule_period
            .into_iter()
            .map(|p| SchedulePeriod {
                start_s: p.start_period,
                limit: p.limit,
                phases: p.number_phases,
            })
            .collect(),
    })
}

/// The device-model and charging-limit actions; `None` for any other.
pub fn decode(action: &str, payload: &Json, now: DateTime<Utc>) -> Result<Option<Inbound>, Rejection> {
    Ok(Some(match action {
        "NotifyReport" => {
            let m: NotifyReport = typed(payload)?;
            let mut items = Vec::new();
            for d in m.report_data {
                let place = at(d.component, d.variable);
                let ch = d.variable_characteristics;
                for a in d.variable_attribute {
                    items.push(ReportedVariable {
                        at: place.clone(),
                        attribute: a.kind.unwrap_or_else(|| "Actual".into()),
                        value: a.value,
                        mutability: Some(a.mutability.unwrap_or_else(|| "ReadWrite".into())),
                        unit: ch.as_ref().and_then(|c| c.unit.clone()),
                        data_type: ch.as_ref().map(|c| c.data_type.clone()),
                        min: ch.as_ref().and_then(|c| c.min_limit),
                        max: ch.as_ref().and_then(|c| c.max_limit),
                        values_list: ch.as_ref().and_then(|c| c.values_list.clone()),
                        supports_monitoring: ch.as_ref().map(|c| c.supports_monitoring),
                    });
                }
            }
            Inbound::Report(ReportPart {
                request_id: m.request_id,
                seq_no: m.seq_no,
                tbc: m.tbc,
                generated_at: time(&m.generated_at, "generatedAt")?,
                items,
            })
        }
        "NotifyMonitoringReport" => {
            let m: NotifyMonitoringReport = typed(payload)?;
            let mut items = Vec::new();
            for d in m.monitor {
                let place = at(d.component, d.variable);
                for v in d.variable_monitoring {
                    items.push(Monitor {
                        id: v.id,
                        at: place.clone(),
                        kind: v.kind,
                        value: v.value,
                        severity: v.severity,
                        transaction: v.transaction,
                    });
                }
            }
            Inbound::MonitoringReport(ReportPart {
                request_id: m.request_id,
                seq_no: m.seq_no,
                tbc: m.tbc,
                generated_at: time(&m.generated_at, "generatedAt")?,
                items,
            })
        }
        "NotifyEvent" => {
            let m: NotifyEvent = typed(payload)?;
            let mut events = Vec::new();
            for (i, e) in m.event_data.into_iter().enumerate() {
                events.push(DeviceEvent {
                    event_id: e.event_id,
                    t: time(&e.timestamp, &format!("eventData[{i}].timestamp"))?,
                    trigger: e.trigger,
                    at: at(e.component, e.variable),
                    value: e.actual_value,
                    cleared: e.cleared,
                    monitor: e.variable_monitoring_id,
                    notification: e.event_notification_type,
                    tech_info: e.tech_info,
                });
            }
            Inbound::DeviceEvents(events)
        }
        "NotifyChargingLimit" => {
            let m: NotifyChargingLimit = typed(payload)?;
            let schedules = m
                .charging_schedule
                .into_iter()
                .enumerate()
                .map(|(i, s)| schedule(s, None, &format!("chargingSchedule[{i}]")))
                .collect::<Result<_, _>>()?;
            Inbound::ChargingLimit {
                evse: m.evse_id.unwrap_or(0),
                source: m.charging_limit.charging_limit_source,
                grid_critical: m.charging_limit.is_grid_critical,
                schedules,
            }
        }
        "ClearedChargingLimit" => {
            let m: ClearedChargingLimit = typed(payload)?;
            Inbound::ChargingLimitCleared {
                evse: m.evse_id,
                source: m.charging_limit_source,
            }
        }
        "NotifyEVChargingSchedule" => {
            let m: NotifyEvChargingSchedule = typed(payload)?;
            let base = time(&m.time_base, "timeBase")?;
            Inbound::EvSchedule {
                evse: m.evse_id,
                schedule: schedule(m.charging_schedule, Some(base), "chargingSchedule")?,
            }
        }
        "NotifyEVChargingNeeds" => {
            let m: NotifyEvChargingNeeds = typed(payload)?;
            let n = m.charging_needs;
            let departure = n
                .departure_time
                .map(|d| time(&d, "chargingNeeds.departureTime"))
                .transpose()?;
            let needs = match (n.ac_charging_parameters, n.dc_charging_parameters) {
                (Some(ac), _) => EvNeeds {
                    departure,
                    energy_wh: Some(i64::from(ac.energy_amount)),
                    max_current_a: Some(f64::from(ac.ev_max_current)),
                    // AC parameters name no power: the current per phase is what counts.
                    max_power_w: None,
                    received_at: now,
                },
                (None, Some(dc)) => EvNeeds {
                    departure,
                    energy_wh: dc.energy_amount.map(i64::from),
                    max_current_a: Some(f64::from(dc.ev_max_current)),
                    max_power_w: dc.ev_max_power.map(f64::from),
                    received_at: now,
                },
                (None, None) => EvNeeds {
                    departure,
                    energy_wh: None,
                    max_current_a: None,
                    max_power_w: None,
                    received_at: now,
                },
            };
            Inbound::ChargingNeeds { evse: m.evse_id, needs }
        }
        _ => return Ok(None),
    }))
}

fn component(c: &ComponentRef) -> Value {
    let mut v = json!({"name": c.name});
    if let Some(i) = &c.instance {
        v["instance"] = json!(i);
    }
    if let Some(e) = c.evse {
        v["evse"] = json!({"id": e});
        if let Some(k) = c.connector {
            v["evse"]["connectorId"] = json!(k);
        }
    }
    v
}

/// `componentVariable` of GetReport / GetMonitoringReport.
fn selection(p: &mut Value, c: &Option<ComponentRef>, variable: &Option<String>, criteria: &[String], field: &str) {
    if let Some(c) = c {
        let mut item = json!({"component": component(c)});
        if let Some(v) = variable {
            item["variable"] = json!({"name": v});
        }
        p["componentVariable"] = json!([item]);
    }
    if !criteria.is_empty() {
        p[field] = json!(criteria);
    }
}

/// The device-model commands as 2.0.1 CALLs; `None` for any other.
pub fn encode_command(cmd: &Command) -> Option<(&'static str, Value)> {
    Some(match cmd {
        Command::GetBaseReport { request_id, base } => {
            ("GetBaseReport", json!({"requestId": request_id, "reportBase": base}))
        }
        Command::GetReport {
            request_id,
            component,
            variable,
            criteria,
        } => {
            let mut p = json!({"requestId": request_id});
            selection(&mut p, component, variable, criteria, "componentCriteria");
            ("GetReport", p)
        }
        Command::GetMonitoringReport {
            request_id,
            component,
            variable,
            criteria,
        } => {
            let mut p = json!({"requestId": request_id});
            selection(&mut p, component, variable, criteria, "monitoringCriteria");
            ("GetMonitoringReport", p)
        }
        Command::SetMonitor { monitor } => (
            "SetVariableMonitoring",
            json!({"setMonitoringData": [monitor_data(monitor)]}),
        ),
        Command::ClearMonitor { id } => ("ClearVariableMonitoring", json!({"id": [id]})),
        Command::SetMonitoringBase { base } => ("SetMonitoringBase", json!({"monitoringBase": base})),
        Command::SetMonitoringLevel { severity } => ("SetMonitoringLevel", json!({"severity": severity})),
        _ => return None,
    })
}

fn monitor_data(m: &MonitorRequest) -> Value {
    let mut variable = json!({"name": m.variable});
    if let Some(i) = &m.variable_instance {
        variable["instance"] = json!(i);
    }
    let mut d = json!({
        "value": m.value,
        "type": m.kind,
        "severity": m.severity,
        "transaction": m.transaction,
        "component": component(&m.component),
        "variable": variable,
    });
    if let Some(id) = m.id {
        d["id"] = json!(id);
    }
    d
}

/// The answers to the device-model commands; `None` for any other.
pub fn decode_result(cmd: &Command, payload: &Value) -> Option<CommandResult> {
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
    Some(match cmd {
        Command::SetMonitor { .. } => {
            let r = payload.pointer("/setMonitoringResult/0");
            let st = r.and_then(|r| r.get("status")).and_then(Value::as_str).unwrap_or("");
            CommandResult::Monitor {
                id: r.and_then(|r| r.get("id")).and_then(Value::as_i64),
                status: st.to_string(),
                accepted: st == "Accepted",
            }
        }
        Command::ClearMonitor { .. } => {
            let st = payload
                .pointer("/clearMonitoringResult/0/status")
                .and_then(Value::as_str)
                .unwrap_or("");
            CommandResult::status(st, &["Accepted"])
        }
        Command::GetBaseReport { .. } | Command::GetReport { .. } | Command::GetMonitoringReport { .. } => {
            CommandResult::status(status, &["Accepted"])
        }
        Command::SetMonitoringBase { .. } | Command::SetMonitoringLevel { .. } => {
            CommandResult::status(status, &["Accepted"])
        }
        _ => return None,
    })
}
