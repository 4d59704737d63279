//! `charger report`, `charger variables` and `charger monitor`: the OCPP
//! 2.0.1 device model and variable monitoring (1.6: the configuration).

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::device::ComponentRef;
use crate::domain::message::MonitorRequest;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::time::Duration;

/// How long `--wait` and `monitor list` wait for a report's parts.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "The charger answers, then sends the report in parts (NotifyReport); every variable is stored and
read with `voltyard charger variables ID`. On OCPP 1.6 the report is the configuration (GetConfiguration).

Examples:
  voltyard charger report CP-201
  voltyard charger report CP-201 --base ConfigurationInventory --wait
  voltyard charger report CP-201 --component EVSE@1 --criteria Problem
  voltyard charger report status CP-201"
)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub status: Option<ReportSub>,
    #[arg(required = true)]
    pub id: Option<String>,
    /// GetBaseReport of this kind [default: FullInventory].
    #[arg(long, value_parser = ["ConfigurationInventory", "FullInventory", "SummaryInventory"])]
    pub base: Option<String>,
    /// GetReport of one component: Name, Name:instance or Name@evse.
    #[arg(long)]
    pub component: Option<String>,
    /// With --component: only this variable.
    #[arg(long)]
    pub variable: Option<String>,
    /// GetReport of the variables meeting these criteria (comma separated).
    #[arg(long, value_delimiter = ',', value_parser = ["Active", "Available", "Enabled", "Problem"])]
    pub criteria: Vec<String>,
    /// Wait until every part has arrived (at most 30 s), then print the state.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Subcommand)]
pub enum ReportSub {
    /// Whether the last report asked of a charger completed (every part arrived) or is still partial.
    #[command(after_help = "Example:\n  voltyard charger report status CP-201 --json")]
    Status { id: String },
}

#[derive(Subcommand)]
pub enum MonitorCmd {
    /// Install a variable monitor (SetVariableMonitoring), or set the monitoring base or level.
    #[command(after_help = "Examples:
  voltyard charger monitor set CP-201 --component EVSE@1 --variable Power --type UpperThreshold --value 7000 --severity 4
  voltyard charger monitor set CP-201 --component EVSE@1 --variable Power --type Periodic --value 60 --severity 8
  voltyard charger monitor set CP-201 --base FactoryDefault
  voltyard charger monitor set CP-201 --level 4

Severity: 0 Danger, 1 Hardware Failure, 2 System Failure, 3 Critical, 4 Error, 5 Alert, 6 Warning,
7 Notice, 8 Informational, 9 Debug. A periodic monitor's value is its interval in seconds.")]
    Set {
        id: String,
        /// Name, Name:instance or Name@evse.
        #[arg(long, required_unless_present_any = ["base", "level"])]
        component: Option<String>,
        /// The variable (Name or Name.instance).
        #[arg(long, required_unless_present_any = ["base", "level"])]
        variable: Option<String>,
        #[arg(long = "type", required_unless_present_any = ["base", "level"],
              value_parser = ["UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned"])]
        kind: Option<String>,
        #[arg(long, required_unless_present_any = ["base", "level"], allow_hyphen_values = true)]
        value: Option<f64>,
        #[arg(long, required_unless_present_any = ["base", "level"], value_parser = clap::value_parser!(u8).range(0..=9))]
        severity: Option<u8>,
        /// Only while a transaction runs.
        #[arg(long)]
        transaction: bool,
        /// Replace the monitor with this id.
        #[arg(long, value_name = "MONITOR_ID")]
        replace: Option<i64>,
        /// SetMonitoringBase instead: which monitors are active.
        #[arg(long, value_parser = ["All", "FactoryDefault", "HardWiredOnly"], conflicts_with_all = ["component", "level"])]
        base: Option<String>,
        /// SetMonitoringLevel instead: report events of this severity or worse.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9), conflicts_with = "component")]
        level: Option<u8>,
    },
    /// The charger's monitors: asks for its monitoring report and prints it.
    #[command(
        after_help = "Examples:\n  voltyard charger monitor list CP-201\n  voltyard charger monitor list CP-201 --stored --json"
    )]
    List {
        id: String,
        /// Print what is stored without asking the charger (works while it is offline).
        #[arg(long)]
        stored: bool,
    },
    /// Remove a monitor (ClearVariableMonitoring).
    #[command(after_help = "Example:\n  voltyard charger monitor clear CP-201 3")]
    Clear { id: String, monitor_id: i64 },
}

pub async fn report(ctx: &Ctx, a: ReportArgs) -> Result<(), ClientError> {
    if let Some(ReportSub::Status { id }) = a.status {
        let v = ctx.call(Request::ChargerReportStatus { id: id.clone() }).await?;
        return print_status(ctx, &id, &v, false);
    }
    let id = a.id.unwrap_or_default();
    let v = ctx
        .call(Request::ChargerReport {
            id: id.clone(),
            base: a.base,
            component: a.component,
            variable: a.variable,
            criteria: a.criteria,
        })
        .await?;
    if !a.wait {
        let rid = v["request_id"].as_i64().unwrap_or_default();
        output::done(
            ctx,
            &v,
            &format!("report {rid} requested; read it with: voltyard charger variables {id}"),
        );
        return Ok(());
    }
    let rid = v["request_id"].as_i64();
    let st = wait_for(ctx, &id, rid, |id| Request::ChargerReportStatus { id }, |v| v.clone()).await?;
    print_status(ctx, &id, &st, true)
}

/// `waited`: the report was waited for, so one that is not complete is a failure (exit 1).
fn print_status(ctx: &Ctx, id: &str, v: &Value, waited: bool) -> Result<(), ClientError> {
    if ctx.json {
        output::json(v);
    } else if v["state"] == "none" {
        println!("no report was asked of {id} yet");
    } else {
        output::object(
            ctx,
            v,
            &[
                "request_id",
                "what",
                "state",
                "answer",
                "parts",
                "missing",
                "items",
                "requested_at",
                "updated_at",
            ],
        );
    }
    if !waited || v["state"] == "complete" {
        Ok(())
    } else {
        Err(refused(format!(
            "report {} of {id} is {}",
            v["request_id"],
            v["state"].as_str().unwrap_or("?")
        )))
    }
}

fn refused(message: String) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Rejected, message))
}

/// Poll a report status (`status_of` picks it from the reply) until the
/// report `rid` is complete or refused, or `WAIT` passed; returns the reply.
async fn wait_for(
    ctx: &Ctx,
    id: &str,
    rid: Option<i64>,
    req: impl Fn(String) -> Request,
    status_of: impl Fn(&Value) -> Value,
) -> Result<Value, ClientError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = ctx.call(req(id.to_string())).await?;
        let st = status_of(&v);
        let done = st["request_id"].as_i64() == rid
            && st["state"].as_str().is_some_and(|s| s != "requested" && s != "partial");
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn variables(
    ctx: &Ctx,
    id: String,
    component: Option<String>,
    variable: Option<String>,
) -> Result<(), ClientError> {
    let v = ctx
        .call(Request::ChargerVariables {
            id: id.clone(),
            component,
            variable,
        })
        .await?;
    if !ctx.json {
        let st = ctx.call(Request::ChargerReportStatus { id: id.clone() }).await?;
        if st["state"] != "none" {
            println!(
                "last report {} ({}): {}, {} item(s)",
                st["request_id"],
                st["what"].as_str().unwrap_or("?"),
                st["state"].as_str().unwrap_or("?"),
                st["items"]
            );
        }
    }
    output::table(
        ctx,
        &v,
        &[
            ("NAME", "/name"),
            ("ATTRIBUTE", "/attribute"),
            ("VALUE", "/value"),
            ("MUTABILITY", "/mutability"),
            ("UNIT", "/unit"),
            ("TYPE", "/data_type"),
            ("REPORTED", "/reported_at"),
        ],
    );
    Ok(())
}

pub async fn monitor(ctx: &Ctx, cmd: MonitorCmd) -> Result<(), ClientError> {
    match cmd {
        MonitorCmd::Set {
            id, base: Some(base), ..
        } => {
            let v = ctx.call(Request::MonitoringBase { id, base }).await?;
            output::done(ctx, &v, v["status"].as_str().unwrap_or("Accepted"));
        }
        MonitorCmd::Set {
            id,
            level: Some(severity),
            ..
        } => {
            let v = ctx.call(Request::MonitoringLevel { id, severity }).await?;
            output::done(ctx, &v, v["status"].as_str().unwrap_or("Accepted"));
        }
        MonitorCmd::Set {
            id,
            component,
            variable,
            kind,
            value,
            severity,
            transaction,
            replace,
            ..
        } => {
            let c = component.unwrap_or_default();
            let component = ComponentRef::parse(&c).ok_or_else(|| {
                ClientError::Api(ApiError::new(
                    ErrorKind::Invalid,
                    format!("--component: {c:?}: write Name, Name:instance or Name@evse (e.g. EVSE@1)"),
                ))
            })?;
            let variable = variable.unwrap_or_default();
            let (variable, variable_instance) = match variable.split_once('.') {
                Some((v, i)) => (v.to_string(), Some(i.to_string())),
                None => (variable, None),
            };
            let monitor = MonitorRequest {
                id: replace,
                component,
                variable,
                variable_instance,
                kind: kind.unwrap_or_default(),
                value: value.unwrap_or_default(),
                severity: severity.unwrap_or(9),
                transaction,
            };
            let v = ctx.call(Request::MonitorSet { id, monitor }).await?;
            output::done(ctx, &v, &format!("monitor {} installed", v["id"]));
        }
        MonitorCmd::List { id, stored } => {
            let v = if stored {
                ctx.call(Request::MonitorList { id: id.clone() }).await?
            } else {
                let r = ctx.call(Request::MonitorReport { id: id.clone() }).await?;
                let rid = r["request_id"].as_i64();
                wait_for(ctx, &id, rid, |id| Request::MonitorList { id }, |v| v["report"].clone()).await?
            };
            if !ctx.json && !v["report"].is_null() {
                let st = &v["report"];
                println!(
                    "monitoring report {}: {}",
                    st["request_id"],
                    st["state"].as_str().unwrap_or("?")
                );
            }
            if ctx.json {
                output::json(&v);
            } else {
                output::table(
                    ctx,
                    &v["monitors"],
                    &[
                        ("ID", "/id"),
                        ("NAME", "/name"),
                        ("TYPE", "/kind"),
                        ("VALUE", "/value"),
                        ("SEVERITY", "/severity"),
                        ("TRANSACTION", "/transaction"),
                    ],
                );
            }
        }
        MonitorCmd::Clear { id, monitor_id } => {
            let v = ctx.call(Request::MonitorClear { id, monitor_id }).await?;
            output::done(ctx, &v, &format!("monitor {monitor_id} cleared"));
        }
    }
    Ok(())
}
