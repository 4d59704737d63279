//! `voltyard tariff set|list|show|unassign|remove|price`.

use super::{Ctx, output};
use crate::billing::Scope;
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TariffCmd {
    /// Store an OCPI 2.2.1 (or 2.1.1) tariff and assign it to a site, a charger or a token group.
    #[command(
        after_help = "The tariff's id is its OCPI `id`; setting the same id again replaces the tariff (bills keep the copy they were priced with).\nWhen a session ends, the tariff assigned to its token's group wins over one assigned to its charger, which wins over one assigned to its site; the assignment must be valid at the session start.\n\nExamples:\n  voltyard tariff set public.json --site default\n  voltyard tariff set staff.json --group employees --from 2026-01-01T00:00:00Z\n  voltyard tariff set - --charger CP-001 < fast.json\n\nExit status 2 when the tariff is not valid (each problem is named by its field path)."
    )]
    Set {
        /// The OCPI Tariff object as JSON; `-` reads stdin.
        file: PathBuf,
        #[arg(long, group = "scope")]
        site: Option<String>,
        #[arg(long, group = "scope")]
        charger: Option<String>,
        /// A token group (`token add --group`).
        #[arg(long, group = "scope")]
        group: Option<String>,
        /// In force from (RFC 3339, or YYYY-MM-DD for 00:00 UTC), inclusive.
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// In force until (RFC 3339, or YYYY-MM-DD), exclusive.
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
    },
    /// List tariffs with their assignments.
    #[command(after_help = "Example:\n  voltyard tariff list --json")]
    List,
    /// Show one tariff: the OCPI document and its assignments.
    #[command(after_help = "Example:\n  voltyard tariff show DE-VYD-PUBLIC --json")]
    Show { id: String },
    /// End a tariff assignment (its id is the `#N` of `tariff list`): it stays as history with an end.
    #[command(
        after_help = "The assignment's `until` is set to --at (default: now); it is never deleted, since bills name it. Sessions that started before then are still priced with it; sessions it already priced that started at or after then keep their bills until `voltyard session reprice ID` (the answer lists them). To cancel an assignment that has not started yet, end it at its start.\n\nExamples:\n  voltyard tariff unassign 3\n  voltyard tariff unassign 3 --at 2026-07-01 --json\n\nExit status 1 when there is no such assignment or it already ended before --at, 2 when --at is before the assignment's start."
    )]
    Unassign {
        /// The assignment's id (`#N` in `tariff list`, `assignments[].id` in its JSON).
        id: u64,
        /// End at (RFC 3339, or YYYY-MM-DD for 00:00 UTC), exclusive; default now.
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
    },
    /// Delete a tariff that nothing refers to any more.
    #[command(
        after_help = "Refused while an assignment in force now or later names the tariff (end it with `tariff unassign`), or while any session's bill was priced with it. Assignments that ended stay as history.\n\nExample:\n  voltyard tariff remove DE-VYD-OLD\n\nExit status 1 when there is no such tariff or it is still referred to."
    )]
    Remove { id: String },
    /// Price a session offline (no server) and show how every cent was computed.
    #[command(
        after_help = "Example:\n  voltyard tariff price tariff.json --session session.json\n\nSESSION.json: {\"timezone\", \"start\", \"end\", \"meter_readings\": [{\"t\", \"wh\", \"state\"}]} (see docs/tariffs.md)."
    )]
    Price {
        tariff: PathBuf,
        #[arg(long)]
        session: PathBuf,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (2026-01-01T07:00:00+01:00) or a date (2026-01-01)"))
}

fn read(path: &PathBuf) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

fn usage(message: String) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, message))
}

/// `tariff price`: offline. Exit 0, or 2 when a document is not usable.
pub fn price(tariff: &PathBuf, session: &PathBuf, json: bool) -> Result<(), String> {
    let t = read(tariff).map_err(|e| format!("{}: {e}", tariff.display()))?;
    let s = read(session).map_err(|e| format!("{}: {e}", session.display()))?;
    let p = super::tariff_price::price_offline(&t, &s).map_err(|e| format!("{e:#}"))?;
    if json {
        output::json(&super::tariff_price::render_json(&p));
    } else {
        print!("{}", super::tariff_price::render_text(&p));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: TariffCmd) -> Result<(), ClientError> {
    match cmd {
        TariffCmd::Set {
            file,
            site,
            charger,
            group,
            from,
            until,
        } => {
            let text = read(&file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
            let scope = match (site, charger, group) {
                (Some(s), _, _) => Some(Scope::Site(s)),
                (_, Some(c), _) => Some(Scope::Charger(c)),
                (_, _, Some(g)) => Some(Scope::Group(g)),
                _ => None,
            };
            let v = ctx
                .call(Request::TariffSet {
                    text,
                    scope,
                    from,
                    until,
                })
                .await?;
            let id = v["id"].as_str().unwrap_or_default();
            let what = if v["replaced"] == true { "replaced" } else { "stored" };
            let to = match v["assignment"].as_object() {
                Some(a) => format!(
                    ", assigned to {} {} (assignment {})",
                    output::cell(a.get("scope").and_then(|s| s.get("kind"))),
                    output::cell(a.get("scope").and_then(|s| s.get("name"))),
                    output::cell(a.get("id"))
                ),
                None => String::new(),
            };
            output::done(ctx, &v, &format!("tariff {id} {what}{to}"));
        }
        TariffCmd::List => {
            let mut v = ctx.call(Request::TariffList).await?;
            if !ctx.json {
                for t in v.as_array_mut().into_iter().flatten() {
                    let list: Vec<String> = t["assignments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(assignment_text)
                        .collect();
                    t["assigned"] = Value::String(if list.is_empty() { "-".into() } else { list.join("; ") });
                }
            }
            output::table(
                ctx,
                &v,
                &[
                    ("ID", "/id"),
                    ("OCPI", "/version"),
                    ("CURRENCY", "/currency"),
                    ("ASSIGNED TO", "/assigned"),
                    ("UPDATED", "/updated_at"),
                ],
            );
        }
        TariffCmd::Show { id } => {
            let v = ctx.call(Request::TariffShow { id }).await?;
            if ctx.json {
                output::json(&v);
            } else {
                output::object(ctx, &v, &["id", "version", "currency", "updated_at"]);
                for a in v["assignments"].as_array().into_iter().flatten() {
                    println!("assigned    {}", assignment_text(a));
                }
                println!("\n{}", serde_json::to_string_pretty(&v["tariff"]).unwrap_or_default());
            }
        }
        TariffCmd::Unassign { id, at } => {
            let v = ctx.call(Request::TariffUnassign { id, at }).await?;
            let a = &v["assignment"];
            let mut message = format!(
                "assignment {id} (tariff {} for {} {}) {} at {}",
                output::cell(a.get("tariff_id")),
                output::cell(a["scope"].get("kind")),
                output::cell(a["scope"].get("name")),
                if v["changed"] == true { "ends" } else { "already ends" },
                output::cell(a.get("until"))
            );
            let stale = output::cell(v.get("to_reprice"));
            if v["to_reprice"].as_array().is_some_and(|l| !l.is_empty()) {
                message.push_str(&format!(
                    "\nsessions it priced that started since then keep their bills until repriced: {stale} (voltyard session reprice ID)"
                ));
            }
            output::done(ctx, &v, &message);
        }
        TariffCmd::Remove { id } => {
            let v = ctx.call(Request::TariffRemove { id: id.clone() }).await?;
            let mut message = format!("tariff {id} removed");
            if v["ended_assignments"].as_array().is_some_and(|l| !l.is_empty()) {
                message.push_str(&format!(
                    "; its ended assignments stay as history: {}",
                    output::cell(v.get("ended_assignments"))
                ));
            }
            output::done(ctx, &v, &message);
        }
        TariffCmd::Price { .. } => {}
    }
    Ok(())
}

fn assignment_text(a: &Value) -> String {
    let when = |k: &str| a[k].as_str().map(str::to_string);
    let period = match (when("from"), when("until")) {
        (None, None) => "always".to_string(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(f), Some(u)) => format!("{f} – {u}"),
    };
    format!(
        "#{} {} {} ({period})",
        output::cell(a.get("id")),
        output::cell(a["scope"].get("kind")),
        output::cell(a["scope"].get("name"))
    )
}
