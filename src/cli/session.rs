use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::Request;
use crate::domain::SessionStatus;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SessionCmd {
    /// List sessions, newest first.
    #[command(
        after_help = "Examples:\n  voltyard session list --active\n  voltyard session list --charger CP-001 --json"
    )]
    List {
        #[arg(long)]
        charger: Option<String>,
        /// Only sessions in progress.
        #[arg(long, conflicts_with = "completed")]
        active: bool,
        #[arg(long)]
        completed: bool,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one session with its meter values.
    #[command(after_help = "Example:\n  voltyard session show 42 --json")]
    Show { id: u64 },
    /// OCPI 2.2.1 CDR (charge detail record) of a priced session.
    #[command(after_help = "Example:\n  voltyard session cdr 42 > cdr-42.json")]
    Cdr { id: u64 },
    /// Price a completed session again with the tariff assignments in force now for its start.
    #[command(
        after_help = "For a session that ended before its tariff was assigned, or whose assignment was ended or replaced since. The tariff is resolved as at completion (group, then charger, then site; valid at the session start), with the meter keys known now; a session whose signed meter data fails verification stays unbilled. When the bill changes, the previous one is kept in the session's notes with the time of repricing.\n\nExamples:\n  voltyard session reprice 42\n  voltyard session reprice 42 --json\n\nExit status 1 when there is no such session or it is still running."
    )]
    Reprice { id: u64 },
    /// Remote start (RemoteStartTransaction / RequestStartTransaction).
    #[command(after_help = "Example:\n  voltyard session start CP-001 --token 04A2B3C4D5 --evse 1")]
    Start {
        charger: String,
        #[arg(long)]
        token: String,
        /// Connector (1.6) or EVSE (2.0.1); the charger picks when absent.
        #[arg(long)]
        evse: Option<u32>,
    },
    /// Remote stop (RemoteStopTransaction / RequestStopTransaction).
    #[command(after_help = "Example:\n  voltyard session stop 42")]
    Stop { id: u64 },
    /// When the driver leaves and how much energy they need: load management plans by it.
    #[command(
        after_help = "Examples:\n  voltyard session set-target 42 --departure 2026-11-23T17:30:00Z --energy 20kWh\n  voltyard session set-target 42 --priority 1"
    )]
    SetTarget {
        id: u64,
        #[arg(long, value_name = "RFC3339")]
        departure: Option<chrono::DateTime<chrono::Utc>>,
        /// Energy still wanted in this session: Wh, or with a unit (20kWh).
        #[arg(long, value_parser = parse_energy)]
        energy: Option<i64>,
        /// Priority class; higher is served first.
        #[arg(long, allow_hyphen_values = true)]
        priority: Option<i32>,
    },
}

fn parse_energy(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix("kwh") {
        (n, 1000.0)
    } else {
        (t.strip_suffix("wh").unwrap_or(&t), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an energy such as 20kWh or 20000"))?;
    if !(v > 0.0 && v * scale < 1e9) {
        return Err(format!("{s:?} must be more than 0 and below 1 GWh"));
    }
    Ok((v * scale).round() as i64)
}

pub async fn run(ctx: &Ctx, cmd: SessionCmd) -> Result<(), ClientError> {
    match cmd {
        SessionCmd::SetTarget {
            id,
            departure,
            energy,
            priority,
        } => {
            let v = ctx
                .call(Request::SessionSetTarget {
                    id,
                    departure,
                    energy_wh: energy,
                    priority,
                })
                .await?;
            output::done(ctx, &v, &format!("session {id} target set"));
        }
        SessionCmd::List {
            charger,
            active,
            completed,
            limit,
        } => {
            let status = match (active, completed) {
                (true, _) => Some(SessionStatus::Active),
                (_, true) => Some(SessionStatus::Completed),
                _ => None,
            };
            let v = ctx.call(Request::SessionList { charger, status, limit }).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("ID", "/id"),
                    ("CHARGER", "/charger"),
                    ("EVSE", "/evse"),
                    ("TOKEN", "/token"),
                    ("STARTED", "/started_at"),
                    ("STOPPED", "/stopped_at"),
                    ("WH", "/energy_wh"),
                    ("STATUS", "/status"),
                    ("PRICE", "/price/total_incl_vat"),
                    ("CUR", "/price/currency"),
                    ("SO FAR", "/price_so_far/total_incl_vat"),
                    ("EICHRECHT", "/eichrecht/state"),
                ],
            );
        }
        SessionCmd::Show { id } => {
            let v = ctx.call(Request::SessionShow { id }).await?;
            output::object(
                ctx,
                &v,
                &[
                    "id",
                    "charger",
                    "evse",
                    "connector",
                    "transaction_id",
                    "token",
                    "auth",
                    "status",
                    "started_at",
                    "stopped_at",
                    "energy_wh",
                    "meter_start_wh",
                    "meter_stop_wh",
                    "stop_reason",
                    "closed_by",
                    "offline",
                    "samples",
                    "notes",
                    "price",
                    "unpriced_reason",
                    "price_so_far",
                    "eichrecht",
                ],
            );
        }
        SessionCmd::Reprice { id } => {
            let v = ctx.call(Request::SessionReprice { id }).await?;
            let message = if v["changed"] == true {
                format!(
                    "session {id} repriced: {}\nwas: {}",
                    bill_text(&v["after"]),
                    bill_text(&v["before"])
                )
            } else {
                format!("session {id}: the bill is unchanged ({})", bill_text(&v["after"]))
            };
            output::done(ctx, &v, &message);
        }
        SessionCmd::Cdr { id } => {
            // A CDR is JSON whatever --json says.
            output::json(&ctx.call(Request::SessionCdr { id }).await?);
        }
        SessionCmd::Start { charger, token, evse } => {
            let v = ctx
                .call(Request::SessionStart {
                    charger: charger.clone(),
                    token,
                    evse,
                })
                .await?;
            output::done(ctx, &v, &format!("{charger} accepted the remote start"));
        }
        SessionCmd::Stop { id } => {
            let v = ctx.call(Request::SessionStop { id }).await?;
            output::done(
                ctx,
                &v,
                &format!("the charger accepted the remote stop of session {id}"),
            );
        }
    }
    Ok(())
}

/// A bill in `session reprice`'s answer, in one line.
fn bill_text(b: &serde_json::Value) -> String {
    if b.is_null() {
        return "no bill".into();
    }
    let p = &b["price"];
    if p.is_null() {
        return format!("not priced: {}", output::cell(b.get("unpriced_reason")));
    }
    let by = match p["scope"].as_object() {
        Some(scope) => format!(
            ", assignment {} ({} {})",
            output::cell(p.get("assignment")),
            output::cell(scope.get("kind")),
            output::cell(scope.get("name"))
        ),
        None => String::new(),
    };
    format!(
        "{} {} incl. VAT, tariff {}{by}",
        output::cell(p.get("total_incl_vat")),
        output::cell(p.get("currency")),
        output::cell(p.get("tariff_id"))
    )
}
