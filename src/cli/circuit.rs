use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::DEFAULT_SITE;
use crate::domain::circuit::parse_amps;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum CircuitCmd {
    /// Add a circuit: the grid connection (no --parent) or a board under another circuit.
    #[command(
        after_help = "Examples:\n  voltyard circuit add grid --max-current 63 --site office\n  voltyard circuit add board-a --parent grid --max-current 32,32,25"
    )]
    Add {
        name: String,
        /// Per-phase limit in A: one value for all phases or L1,L2,L3.
        #[arg(long, value_name = "A")]
        max_current: String,
        #[arg(long, value_parser = ["1", "3"], default_value = "3")]
        phases: String,
        #[arg(long)]
        parent: Option<String>,
        /// Site of a grid connection (a board takes its parent's site).
        #[arg(long)]
        site: Option<String>,
    },
    /// List circuits as a tree.
    #[command(after_help = "Example:\n  voltyard circuit list --json")]
    List,
    /// Change a circuit's limit (e.g. a grid-operator cap), its safe capacity or its kW cap.
    #[command(
        after_help = "Examples:\n  voltyard circuit set-limit grid --max-current 40\n  voltyard circuit set-limit grid --safe-current 20 --max-power 30"
    )]
    SetLimit {
        name: String,
        #[arg(long, value_name = "A")]
        max_current: Option<String>,
        /// What chargers under it may draw in total while its meter is silent (A per phase).
        #[arg(long, value_name = "A")]
        safe_current: Option<String>,
        /// Real-power cap of the node, in kW.
        #[arg(long, value_name = "KW")]
        max_power: Option<f64>,
    },
    /// Remove a circuit that feeds nothing.
    #[command(after_help = "Example:\n  voltyard circuit remove board-b")]
    Remove { name: String },
}

fn invalid(e: crate::domain::circuit::Invalid) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, e.to_string()))
}

pub async fn run(ctx: &Ctx, cmd: CircuitCmd) -> Result<(), ClientError> {
    match cmd {
        CircuitCmd::Add {
            name,
            max_current,
            phases,
            parent,
            site,
        } => {
            let max_current = parse_amps("max_current", &max_current).map_err(invalid)?;
            let site = match (&parent, site) {
                (_, Some(s)) => s,
                (Some(p), None) => parent_site(ctx, p).await?,
                (None, None) => DEFAULT_SITE.to_string(),
            };
            let v = ctx
                .call(Request::CircuitAdd {
                    id: name.clone(),
                    site,
                    parent,
                    max_current,
                    phases: phases.parse().unwrap_or(3),
                })
                .await?;
            output::done(ctx, &v, &format!("circuit {name} added"));
        }
        CircuitCmd::List => {
            let v = ctx.call(Request::CircuitList).await?;
            if ctx.json {
                output::json(&v);
            } else {
                output::table(ctx, &tree_order(&v), COLUMNS);
            }
        }
        CircuitCmd::SetLimit {
            name,
            max_current,
            safe_current,
            max_power,
        } => {
            let max_current = max_current
                .map(|m| parse_amps("max_current", &m))
                .transpose()
                .map_err(invalid)?;
            let safe_current = safe_current
                .map(|m| parse_amps("safe_current", &m))
                .transpose()
                .map_err(invalid)?;
            if max_current.is_none() && safe_current.is_none() && max_power.is_none() {
                return Err(ClientError::Api(ApiError::new(
                    ErrorKind::Invalid,
                    "give --max-current, --safe-current or --max-power",
                )));
            }
            let v = ctx
                .call(Request::CircuitSetLimit {
                    id: name.clone(),
                    max_current,
                    safe_current,
                    max_power_w: max_power.map(|kw| kw * 1000.0),
                })
                .await?;
            output::done(ctx, &v, &format!("circuit {name} updated"));
        }
        CircuitCmd::Remove { name } => {
            let v = ctx.call(Request::CircuitRemove { id: name.clone() }).await?;
            output::done(ctx, &v, &format!("circuit {name} removed"));
        }
    }
    Ok(())
}

const COLUMNS: &[(&str, &str)] = &[
    ("CIRCUIT", "/label"),
    ("SITE", "/site"),
    ("PHASES", "/phases"),
    ("MAX A (L1, L2, L3)", "/max_current"),
    ("SAFE A", "/safe_current"),
    ("METER", "/meter/source/kind"),
];

async fn parent_site(ctx: &Ctx, parent: &str) -> Result<String, ClientError> {
    let v = ctx.call(Request::CircuitList).await?;
    v.as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == parent)
        .and_then(|c| c["site"].as_str().map(str::to_string))
        .ok_or_else(|| ClientError::Api(ApiError::new(ErrorKind::NotFound, format!("no circuit {parent}"))))
}

/// Parents before children, children indented under them.
fn tree_order(v: &Value) -> Value {
    let all = v.as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    fn walk(all: &[Value], parent: Option<&str>, depth: usize, out: &mut Vec<Value>) {
        for c in all.iter().filter(|c| c["parent"].as_str() == parent) {
            let mut row = c.clone();
            let id = c["id"].as_str().unwrap_or_default();
            row["label"] = Value::String(format!("{}{id}", "  ".repeat(depth)));
            out.push(row);
            if depth < 32 {
                walk(all, Some(id), depth + 1, out);
            }
        }
    }
    walk(&all, None, 0, &mut out);
    Value::Array(out)
}
