//! The device-model methods: asking a charger for reports (and the
//! automatic FullInventory when a 2.0.1 charger is new or changed),
//! reading the stored model, and variable monitoring. Configuration read
//! with `charger config get` is kept in the same model.

use super::proto::{ApiError, ErrorKind, Request};
use super::server::{admin, command, internal, invalid};
use crate::domain::Protocol;
use crate::domain::device::{ComponentRef, Monitor, ReportStatus, ReportedVariable, VariableRef};
use crate::domain::message::{Command, CommandResult, ConfigEntry};
use crate::server::Shared;
use crate::store::{AdminOp, DeviceOp, ReportKind};
use serde_json::{Value, json};
use std::sync::Arc;

const BASES: &[&str] = &["ConfigurationInventory", "FullInventory", "SummaryInventory"];
const CRITERIA: &[&str] = &["Active", "Available", "Enabled", "Problem"];
const MONITOR_CRITERIA: &[&str] = &["ThresholdMonitoring", "DeltaMonitoring", "PeriodicMonitoring"];
const KINDS: &[&str] = &[
    "UpperThreshold",
    "LowerThreshold",
    "Delta",
    "Periodic",
    "PeriodicClockAligned",
];
const MONITORING_BASES: &[&str] = &["All", "FactoryDefault", "HardWiredOnly"];

pub(super) async fn handle(shared: &Arc<Shared>, req: Request) -> Result<Value, ApiError> {
    match req {
        Request::ChargerReport {
            id,
            base,
            component,
            variable,
            criteria,
        } => {
            let spec = ReportSpec::check(base, component, variable, criteria)?;
            request_report(shared, &id, spec).await
        }
        Request::ChargerVariables {
            id,
            component,
            variable,
        } => {
            known(shared, &id)?;
            let component = component
                .map(|c| ComponentRef::parse(&c).ok_or_else(|| bad_component(&c)))
                .transpose()?;
            let rows: Vec<Value> = shared
                .store
                .variables(&id)
                .map_err(internal)?
                .into_iter()
                .filter(|v| component.as_ref().is_none_or(|c| component_matches(c, &v.var.at)))
                .filter(|v| {
                    variable
                        .as_deref()
                        .is_none_or(|name| v.var.at.variable.eq_ignore_ascii_case(name))
                })
                .map(|v| {
                    let mut row = json!(v);
                    row["name"] = json!(v.var.at.name());
                    row
                })
                .collect();
            Ok(json!(rows))
        }
        Request::ChargerReportStatus { id } => {
            known(shared, &id)?;
            let st = shared.store.report_status(&id, ReportKind::Device).map_err(internal)?;
            // A reply's result is never null: "none" says no report was asked.
            Ok(match st {
                Some(_) => status_view(st.as_ref()),
                None => json!({"state": "none"}),
            })
        }
        Request::MonitorSet { id, monitor } => {
            if !KINDS.contains(&monitor.kind.as_str()) {
                return Err(invalid("type", format!("must be one of {}", KINDS.join(", "))));
            }
            if monitor.severity > 9 {
                return Err(invalid("severity", "must be 0 (Danger) to 9 (Debug)"));
            }
            if !monitor.value.is_finite() || (monitor.kind.starts_with("Periodic") && monitor.value <= 0.0) {
                return Err(invalid(
                    "value",
                    "must be a number (seconds > 0 for a periodic monitor)",
                ));
            }
            v201_only(shared, &id)?;
            let r = command(
                shared,
                &id,
                Command::SetMonitor {
                    monitor: monitor.clone(),
                },
            )
            .await?;
            if let CommandResult::Monitor { id: Some(mid), .. } = &r {
                let stored = Monitor {
                    id: *mid,
                    at: VariableRef {
                        component: monitor.component.name,
                        component_instance: monitor.component.instance,
                        evse: monitor.component.evse,
                        connector: monitor.component.connector,
                        variable: monitor.variable,
                        variable_instance: monitor.variable_instance,
                    },
                    kind: monitor.kind,
                    value: monitor.value,
                    severity: monitor.severity,
                    transaction: monitor.transaction,
                };
                let op = DeviceOp::MonitorSet {
                    charger: id,
                    monitor: stored,
                };
                admin(shared, AdminOp::Device(op)).await?;
            }
            Ok(json!(r))
        }
        Request::MonitorReport { id } => {
            v201_only(shared, &id)?;
            let op = DeviceOp::ReportRequested {
                charger: id.clone(),
                kind: ReportKind::Monitoring,
                what: "monitoring".into(),
            };
            let request_id = request_id(admin(shared, AdminOp::Device(op)).await?)?;
            let cmd = Command::GetMonitoringReport {
                request_id,
                component: None,
                variable: None,
                criteria: MONITOR_CRITERIA.iter().map(|c| c.to_string()).collect(),
            };
            answered(
                shared,
                &id,
                ReportKind::Monitoring,
                request_id,
                command(shared, &id, cmd).await,
            )
            .await
        }
        Request::MonitorList { id } => {
            known(shared, &id)?;
            let st = shared
                .store
                .report_status(&id, ReportKind::Monitoring)
                .map_err(internal)?;
            let monitors: Vec<Value> = shared
                .store
                .monitors(&id)
                .map_err(internal)?
                .into_iter()
                .map(|m| {
                    let mut row = json!(m);
                    row["name"] = json!(m.at.name());
                    row
                })
                .collect();
            Ok(json!({"report": status_view(st.as_ref()), "monitors": monitors}))
        }
        Request::MonitorClear { id, monitor_id } => {
            v201_only(shared, &id)?;
            let r = command(shared, &id, Command::ClearMonitor { id: monitor_id }).await?;
            let op = DeviceOp::MonitorCleared {
                charger: id,
                id: monitor_id,
            };
            admin(shared, AdminOp::Device(op)).await?;
            Ok(json!(r))
        }
        Request::MonitoringBase { id, base } => {
            if !MONITORING_BASES.contains(&base.as_str()) {
                return Err(invalid(
                    "base",
                    format!("must be one of {}", MONITORING_BASES.join(", ")),
                ));
            }
            v201_only(shared, &id)?;
            Ok(json!(command(shared, &id, Command::SetMonitoringBase { base }).await?))
        }
        Request::MonitoringLevel { id, severity } => {
            if severity > 9 {
                return Err(invalid("severity", "must be 0 (Danger) to 9 (Debug)"));
            }
            v201_only(shared, &id)?;
            Ok(json!(
                command(shared, &id, Command::SetMonitoringLevel { severity }).await?
            ))
        }
        other => Err(ApiError::new(
            ErrorKind::Internal,
            format!("{other:?} is not a device-model request"),
        )),
    }
}

/// What report to ask for, checked.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    base: Option<String>,
    component: Option<ComponentRef>,
    variable: Option<String>,
    criteria: Vec<String>,
}

impl ReportSpec {
    pub fn full() -> Self {
        ReportSpec {
            base: Some("FullInventory".into()),
            component: None,
            variable: None,
            criteria: vec![],
        }
    }

    fn check(
        base: Option<String>,
        component: Option<String>,
        variable: Option<String>,
        criteria: Vec<String>,
    ) -> Result<Self, ApiError> {
        if let Some(b) = &base {
            if !BASES.contains(&b.as_str()) {
                return Err(invalid("base", format!("must be one of {}", BASES.join(", "))));
            }
            if component.is_some() || !criteria.is_empty() {
                return Err(invalid("base", "give either --base or --component/--criteria"));
            }
        }
        if let Some(c) = criteria.iter().find(|c| !CRITERIA.contains(&c.as_str())) {
            return Err(invalid(
                "criteria",
                format!("{c:?} is not one of {}", CRITERIA.join(", ")),
            ));
        }
        if variable.is_some() && component.is_none() {
            return Err(invalid("variable", "needs --component"));
        }
        let component = component
            .map(|c| ComponentRef::parse(&c).ok_or_else(|| bad_component(&c)))
            .transpose()?;
        let base = match (&base, &component, criteria.is_empty()) {
            (None, None, true) => Some("FullInventory".into()),
            _ => base,
        };
        Ok(ReportSpec {
            base,
            component,
            variable,
            criteria,
        })
    }

    fn describe(&self) -> String {
        if let Some(b) = &self.base {
            return b.clone();
        }
        let mut parts = Vec::new();
        if let Some(c) = &self.component {
            let mut name = c.name.clone();
            if let Some(v) = &self.variable {
                name = format!("{name}.{v}");
            }
            parts.push(name);
        }
        if !self.criteria.is_empty() {
            parts.push(format!("criteria {}", self.criteria.join(",")));
        }
        parts.join(" ")
    }
}

fn bad_component(c: &str) -> ApiError {
    invalid(
        "component",
        format!("{c:?}: write Name, Name:instance or Name@evse (e.g. EVSE@1)"),
    )
}

fn component_matches(c: &ComponentRef, at: &VariableRef) -> bool {
    c.name.eq_ignore_ascii_case(&at.component)
        && c.evse.is_none_or(|e| at.evse == Some(e))
        && c.connector.is_none_or(|k| at.connector == Some(k))
        && c.instance.as_deref().is_none_or(|i| {
            at.component_instance
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(i))
        })
}

fn known(shared: &Shared, id: &str) -> Result<crate::domain::Charger, ApiError> {
    shared
        .store
        .charger(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no charger {id}")))
}

fn protocol(shared: &Shared, id: &str) -> Result<Option<Protocol>, ApiError> {
    let ch = known(shared, id)?;
    Ok(shared.registry.live(id).map(|l| l.protocol).or(ch.protocol))
}

fn v201_only(shared: &Shared, id: &str) -> Result<(), ApiError> {
    match protocol(shared, id)? {
        Some(Protocol::V16) => Err(ApiError::new(
            ErrorKind::Conflict,
            format!("charger {id} speaks OCPP 1.6, which has no variable monitoring"),
        )),
        _ => Ok(()),
    }
}

fn request_id(v: Value) -> Result<i64, ApiError> {
    v["request_id"]
        .as_i64()
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "the store gave no request id"))
}

/// Note the charger's answer to a report request and pass it on.
async fn answered(
    shared: &Shared,
    id: &str,
    kind: ReportKind,
    request_id: i64,
    r: Result<CommandResult, ApiError>,
) -> Result<Value, ApiError> {
    let answer = match &r {
        Ok(_) => "Accepted".to_string(),
        Err(ApiError {
            result: Some(CommandResult::Status { status, .. }),
            ..
        }) => status.clone(),
        Err(e) => format!("not sent: {}", e.message),
    };
    let op = DeviceOp::ReportAnswered {
        charger: id.to_string(),
        kind,
        request_id,
        answer: answer.clone(),
    };
    admin(shared, AdminOp::Device(op)).await?;
    r.map(|_| json!({"request_id": request_id, "status": answer}))
}

/// Ask for a report with a fresh requestId. On 1.6 the whole configuration
/// (GetConfiguration) is the report and is stored at once.
pub async fn request_report(shared: &Shared, id: &str, spec: ReportSpec) -> Result<Value, ApiError> {
    let proto = protocol(shared, id)?;
    let v16 = proto == Some(Protocol::V16);
    let what = if v16 {
        "GetConfiguration".into()
    } else {
        spec.describe()
    };
    let op = DeviceOp::ReportRequested {
        charger: id.to_string(),
        kind: ReportKind::Device,
        what,
    };
    let request_id = request_id(admin(shared, AdminOp::Device(op)).await?)?;
    if v16 {
        let cmd = Command::GetConfig {
            keys: spec.variable.into_iter().collect(),
        };
        let r = command(shared, id, cmd.clone()).await;
        if let Ok(result) = &r {
            super::billing::capture_meter_keys(shared, id, result).await;
            capture_values(shared, id, &cmd, result, Some(request_id)).await;
            return Ok(json!({"request_id": request_id, "status": "Accepted"}));
        }
        return answered(shared, id, ReportKind::Device, request_id, r).await;
    }
    let cmd = match spec.base {
        Some(base) => Command::GetBaseReport { request_id, base },
        None => Command::GetReport {
            request_id,
            component: spec.component,
            variable: spec.variable,
            criteria: spec.criteria,
        },
    };
    answered(
        shared,
        id,
        ReportKind::Device,
        request_id,
        command(shared, id, cmd).await,
    )
    .await
}

/// A 2.0.1 charger that is new or changed: its full inventory, in the
/// background (the connection must not wait for its own CALL).
pub fn report_on_boot(shared: Arc<Shared>, charger: String) {
    tokio::spawn(async move {
        if let Err(e) = request_report(&shared, &charger, ReportSpec::full()).await {
            tracing::info!(charger, "no device-model report after boot: {e}");
        }
    });
}

/// Configuration read with GetConfiguration / GetVariables joins the
/// device model (a 1.6 key as a variable of the component "").
pub async fn capture_values(shared: &Shared, id: &str, cmd: &Command, r: &CommandResult, request_id: Option<i64>) {
    let (Command::GetConfig { .. }, CommandResult::Config { entries, .. }) = (cmd, r) else {
        return;
    };
    let v16 = matches!(protocol(shared, id), Ok(Some(Protocol::V16)));
    let values: Vec<ReportedVariable> = entries.iter().filter_map(|e| value_of(e, v16)).collect();
    let op = DeviceOp::Values {
        charger: id.to_string(),
        values,
        request_id,
    };
    if let Err(e) = admin(shared, AdminOp::Device(op)).await {
        tracing::warn!(charger = id, "could not keep the configuration read: {e}");
    }
}

fn value_of(e: &ConfigEntry, v16: bool) -> Option<ReportedVariable> {
    let at = if v16 {
        VariableRef {
            component: String::new(),
            component_instance: None,
            evse: None,
            connector: None,
            variable: e.key.clone(),
            variable_instance: None,
        }
    } else if e.status.is_none() {
        VariableRef::parse(&e.key)?
    } else {
        return None;
    };
    Some(ReportedVariable {
        at,
        attribute: "Actual".into(),
        value: e.value.clone(),
        mutability: v16.then(|| if e.readonly { "ReadOnly" } else { "ReadWrite" }.to_string()),
        unit: None,
        data_type: None,
        min: None,
        max: None,
        values_list: None,
        supports_monitoring: None,
    })
}

/// A report status with its state and the parts still missing.
fn status_view(st: Option<&ReportStatus>) -> Value {
    match st {
        Some(s) => {
            let mut v = json!(s);
            v["state"] = json!(s.state());
            v["missing"] = json!(s.missing());
            v
        }
        None => Value::Null,
    }
}

/// What the car at a session's EVSE said (needs, its own schedule), when
/// it is about this session.
pub(super) fn ev_view(shared: &Shared, s: &crate::domain::Session) -> Result<Value, ApiError> {
    let info = shared.store.ev_info(&s.charger, s.evse).map_err(internal)?;
    Ok(match info.filter(|i| i.session == Some(s.id)) {
        Some(i) => json!(i),
        None => Value::Null,
    })
}
