//! `charger local-list`, `clear-cache`, `tx-status`, `message` and the
//! availability read: charger operations beyond single commands.

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::message::Command;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum LocalListCmd {
    /// Send the local authorization list and keep it in sync from now on.
    #[command(
        after_help = "The list holds the tokens the charger's site admits at any time (blocked and expired ones
as such), limited to --groups when given; it is kept in sync automatically when tokens
change and when the charger reconnects.

Examples:
  voltyard charger local-list sync CP-001
  voltyard charger local-list sync CP-001 --groups employees,fleet --full
  voltyard charger local-list sync --site office"
    )]
    Sync {
        /// The charger (or give --site).
        id: Option<String>,
        /// Every charger of this site.
        #[arg(long, conflicts_with = "id")]
        site: Option<String>,
        /// Only tokens of these groups (comma-separated; "" lifts the limit).
        #[arg(long, value_delimiter = ',')]
        groups: Option<Vec<String>>,
        /// Send the full list even when the charger is up to date.
        #[arg(long)]
        full: bool,
    },
    /// The list version the charger reports, and what voltyard tracks.
    #[command(after_help = "Example:\n  voltyard charger local-list version CP-001 --json")]
    Version { id: String },
}

#[derive(Subcommand)]
pub enum MessageCmd {
    /// Show a message on a 2.0.1 charger's display.
    #[command(
        after_help = "Examples:\n  voltyard charger message set CP-201 \"Free charging until 18:00\" --priority InFront --until 2026-12-01T18:00:00Z\n  voltyard charger message set CP-201 \"Welcome back\" --session 42"
    )]
    Set {
        id: String,
        text: String,
        #[arg(long, default_value = "NormalCycle", value_parser = ["AlwaysFront", "InFront", "NormalCycle"])]
        priority: String,
        /// Show it only in this charger state.
        #[arg(long, value_parser = ["Charging", "Faulted", "Idle", "Unavailable"])]
        state: Option<String>,
        /// RFC 3339 time to start showing it.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 time to stop showing it.
        #[arg(long)]
        until: Option<String>,
        /// Show it during this session (our session id) only.
        #[arg(long = "transaction", alias = "session", value_name = "SESSION")]
        session: Option<u64>,
        /// The message id (default: a fresh one).
        #[arg(long)]
        message_id: Option<i64>,
    },
    /// The messages a 2.0.1 charger is showing.
    #[command(after_help = "Example:\n  voltyard charger message list CP-201 --json")]
    List { id: String },
    /// Remove a message from a 2.0.1 charger's display.
    #[command(after_help = "Example:\n  voltyard charger message clear CP-201 17")]
    Clear { id: String, message_id: i64 },
}

fn bad(field: &str, why: String) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, format!("{field}: {why}")))
}

fn parse<T: serde::de::DeserializeOwned>(field: &str, s: String) -> Result<T, ClientError> {
    serde_json::from_value(json!(s)).map_err(|e| bad(field, e.to_string()))
}

fn time(field: &str, s: Option<String>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ClientError> {
    s.map(|s| crate::ocpp::parse_time(&s).ok_or_else(|| bad(field, format!("{s:?} is not an RFC 3339 time"))))
        .transpose()
}

pub async fn local_list(ctx: &Ctx, cmd: LocalListCmd) -> Result<(), ClientError> {
    match cmd {
        LocalListCmd::Sync { id, site, groups, full } => {
            if id.is_none() && site.is_none() {
                return Err(bad("charger", "give a charger id or --site".into()));
            }
            let groups = groups.map(|g| g.into_iter().filter(|s| !s.is_empty()).collect());
            let v = ctx.call(Request::LocalListSync { id, site, groups, full }).await?;
            if ctx.json {
                output::json(&v);
                return Ok(());
            }
            let rows = if v.is_array() { v.clone() } else { json!([v]) };
            output::table(
                ctx,
                &rows,
                &[
                    ("CHARGER", "/charger"),
                    ("UPDATE", "/update"),
                    ("VERSION", "/version"),
                    ("ENTRIES", "/entries"),
                    ("MESSAGES", "/messages"),
                    ("ERROR", "/error"),
                ],
            );
        }
        LocalListCmd::Version { id } => {
            let v = ctx.call(Request::LocalListVersion { id }).await?;
            output::object(
                ctx,
                &v,
                &[
                    "charger",
                    "version",
                    "managed",
                    "confirmed_version",
                    "entries",
                    "groups",
                    "not_supported",
                    "synced_at",
                    "last_error",
                ],
            );
        }
    }
    Ok(())
}

pub async fn clear_cache(ctx: &Ctx, id: String) -> Result<(), ClientError> {
    let v = ctx
        .call(Request::ChargerCommand {
            id: id.clone(),
            command: Command::ClearCache,
        })
        .await?;
    output::done(ctx, &v, &format!("authorization cache of {id} cleared"));
    Ok(())
}

pub async fn tx_status(ctx: &Ctx, id: String, transaction: Option<String>) -> Result<(), ClientError> {
    let v = ctx.call(Request::ChargerTxStatus { id, transaction }).await?;
    output::object(ctx, &v, &["charger", "transaction_id", "ongoing", "messages_in_queue"]);
    Ok(())
}

/// `charger availability ID` without a state: what was asked and where it stands.
pub async fn availability(ctx: &Ctx, id: String) -> Result<(), ClientError> {
    let v = ctx.call(Request::ChargerAvailability { id }).await?;
    if ctx.json {
        output::json(&v);
        return Ok(());
    }
    println!("requested:");
    output::table(
        ctx,
        &v["requested"],
        &[
            ("EVSE", "/evse"),
            ("OPERATIVE", "/operative"),
            ("STATE", "/state"),
            ("REQUESTED", "/requested_at"),
            ("EFFECTIVE", "/effective_at"),
        ],
    );
    println!("connectors:");
    output::table(
        ctx,
        &v["connectors"],
        &[("EVSE", "/evse"), ("CONNECTOR", "/connector"), ("STATUS", "/status")],
    );
    Ok(())
}

/// The answer to ChangeAvailability: Scheduled is a success of its own.
pub fn availability_result(ctx: &Ctx, v: &Value, operative: bool, connector: Option<u32>) {
    let what = connector.map_or("the charger".to_string(), |c| format!("connector {c}"));
    let state = if operative { "operative" } else { "inoperative" };
    let message = match v.get("status").and_then(Value::as_str) {
        Some("Scheduled") => {
            format!("Scheduled: {what} becomes {state} when its running transaction ends")
        }
        Some(s) => format!("{s}: {what} is being made {state}"),
        None => "Accepted".into(),
    };
    output::done(ctx, v, &message);
}

pub async fn message(ctx: &Ctx, cmd: MessageCmd) -> Result<(), ClientError> {
    match cmd {
        MessageCmd::Set {
            id,
            text,
            priority,
            state,
            from,
            until,
            session,
            message_id,
        } => {
            let req = Request::ChargerMessageSet {
                id: id.clone(),
                text,
                priority: parse("priority", priority)?,
                state: state.map(|s| parse("state", s)).transpose()?,
                from: time("from", from)?,
                until: time("until", until)?,
                session,
                message_id,
            };
            let v = ctx.call(req).await?;
            let msg_id = v.pointer("/message/id").cloned().unwrap_or(Value::Null);
            output::done(ctx, &v, &format!("message {msg_id} set on {id}"));
        }
        MessageCmd::List { id } => {
            let v = ctx.call(Request::ChargerMessageList { id }).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("ID", "/id"),
                    ("PRIORITY", "/priority"),
                    ("STATE", "/state"),
                    ("FROM", "/from"),
                    ("UNTIL", "/until"),
                    ("TRANSACTION", "/transaction_id"),
                    ("TEXT", "/text"),
                ],
            );
        }
        MessageCmd::Clear { id, message_id } => {
            let v = ctx
                .call(Request::ChargerCommand {
                    id: id.clone(),
                    command: Command::ClearDisplayMessage { id: message_id },
                })
                .await?;
            output::done(ctx, &v, &format!("message {message_id} cleared on {id}"));
        }
    }
    Ok(())
}
