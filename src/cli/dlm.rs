use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::Request;
use crate::loadctl::DlmView;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DlmCmd {
    /// The circuit tree with limits, measured load and allocations per phase, and non-compliant chargers.
    #[command(after_help = "Examples:\n  voltyard dlm status\n  voltyard dlm status --json | jq '.sites[].circuits'")]
    Status,
    /// Run the load-management controller on site states from stdin, one JSON object per line (no server needed).
    #[command(after_help = "Example:
  echo '{\"time\":\"2026-11-23T08:00:00Z\",\"circuits\":[{\"id\":\"grid\",\"parent\":null,\"max_current\":[32,32,32]}],\"chargers\":[{\"id\":\"CP-1\",\"circuit\":\"grid\",\"phases\":3,\"phase_rotation\":\"L1L2L3\",\"min_current\":6,\"max_current\":32,\"session\":{\"id\":\"s1\",\"measured_current\":[16,16,16],\"energy_wh\":0}}]}' | voltyard dlm plan

Input and output schema: docs/dlm.md. Exit status 2 when a line is not a valid site state.")]
    Plan(super::dlm_plan::PlanArgs),
    /// Lift limits an energy manager or grid operator set through a charger (NotifyChargingLimit) that the charger never cleared.
    #[command(after_help = "Examples:
  voltyard dlm clear-limit CP-1                 # every external limit of CP-1
  voltyard dlm clear-limit CP-1 --evse 2 --source EMS

`dlm status` shows such a limit as the EVSE's cap. Load management plans
without it at once; the charger's own energy manager may set it again.")]
    ClearLimit(ClearLimitArgs),
}

#[derive(clap::Args)]
pub struct ClearLimitArgs {
    /// The charger whose limits to lift.
    pub charger: String,
    /// Only this EVSE's limits (default: every EVSE).
    #[arg(long)]
    pub evse: Option<u32>,
    /// Only the limits of this source, as the charger named it: EMS, SO, CSO, Other (default: every source).
    #[arg(long)]
    pub source: Option<String>,
}

pub async fn clear_limit(ctx: &Ctx, a: &ClearLimitArgs) -> Result<(), ClientError> {
    let v = ctx
        .call(Request::DlmClearLimit {
            charger: a.charger.clone(),
            evse: a.evse,
            source: a.source.clone(),
        })
        .await?;
    if ctx.json {
        output::json(&v);
    } else {
        println!(
            "{}: {} external limit(s) lifted",
            a.charger,
            v["cleared"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

pub async fn status(ctx: &Ctx) -> Result<(), ClientError> {
    let v = ctx.call(Request::DlmStatus).await?;
    if ctx.json {
        output::json(&v);
        return Ok(());
    }
    let view: DlmView = serde_json::from_value(v).unwrap_or_default();
    print!("{}", render(&view));
    Ok(())
}

fn amps(a: &[f64; 3]) -> String {
    format!("{:>5.1} {:>5.1} {:>5.1}", a[0], a[1], a[2])
}

/// The tree, then the steered EVSEs.
pub fn render(view: &DlmView) -> String {
    let mut out = String::new();
    let Some(t) = view.time else {
        return "load management has not decided yet (no circuits, or the server just started)\n".into();
    };
    out.push_str(&format!(
        "last decision {}\n",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    for s in &view.sites {
        out.push_str(&format!("\nsite {} ({} µs)\n", s.site, s.decision_us));
        if let Some(e) = &s.error {
            out.push_str(&format!("  cannot plan: {e}\n"));
            continue;
        }
        out.push_str(&format!(
            "  {:<20} {:<17}  {:<17}  {:<17}  {}\n",
            "CIRCUIT", "LIMIT L1-L3 A", "MEASURED", "ALLOCATED", "UNMANAGED"
        ));
        fn walk(s: &crate::loadctl::SiteView, parent: Option<&str>, depth: usize, out: &mut String) {
            for c in s.circuits.iter().filter(|c| c.parent.as_deref() == parent) {
                let unmanaged = match (&c.unmanaged, c.metered) {
                    (Some(u), _) => amps(u),
                    (None, true) => "meter silent".into(),
                    (None, false) => "-".into(),
                };
                let name = format!("{}{}", "  ".repeat(depth), c.id);
                out.push_str(&format!(
                    "  {name:<20} {}  {}  {}  {unmanaged}\n",
                    amps(&c.limit),
                    amps(&c.measured),
                    amps(&c.allocated)
                ));
                if depth < 32 {
                    walk(s, Some(&c.id), depth + 1, out);
                }
            }
        }
        walk(s, None, 0, &mut out);
        out.push_str(&format!(
            "\n  {:<20} {:<12} {:<8} {:>7}  {:<17}  {}\n",
            "CHARGER", "CIRCUIT", "SESSION", "LIMIT A", "MEASURED", "STATE"
        ));
        for c in &s.chargers {
            let state = if c.non_compliant {
                "NON-COMPLIANT"
            } else if !c.connected {
                "offline"
            } else if c.session.is_some() && c.limit == 0.0 {
                "paused"
            } else if c.session.is_some() {
                "charging"
            } else {
                "idle"
            };
            out.push_str(&format!(
                "  {:<20} {:<12} {:<8} {:>7.1}  {}  {state}\n",
                c.id,
                c.circuit,
                c.session.as_deref().unwrap_or("-"),
                c.limit,
                amps(&c.measured)
            ));
        }
    }
    out
}
