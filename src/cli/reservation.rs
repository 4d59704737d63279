use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ReservationCmd {
    /// Reserve a connector (or any connector) of a charger for a token.
    #[command(
        after_help = "The reserved connector refuses other tokens (members of the token's group may use it)
until the reservation is used by a transaction, expires or is cancelled.

Examples:
  voltyard reservation add CP-001 --token 04A2B3C4D5 --connector 2 --expires 30m
  voltyard reservation add CP-201 --token APP-77 --evse 1 --expires 2026-12-01T18:00:00Z"
    )]
    Add {
        charger: String,
        #[arg(long)]
        token: String,
        /// Connector (1.6); leave out for any connector of the charger.
        #[arg(long, conflicts_with = "evse")]
        connector: Option<u32>,
        /// EVSE (2.0.1); leave out for any EVSE of the charger.
        #[arg(long)]
        evse: Option<u32>,
        /// A duration from now (30m, 2h) or an RFC 3339 time.
        #[arg(long, default_value = "30m")]
        expires: String,
    },
    /// List reservations, newest first.
    #[command(after_help = "Example:\n  voltyard reservation list --charger CP-001 --json")]
    List {
        #[arg(long)]
        charger: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Cancel a reservation.
    #[command(after_help = "Example:\n  voltyard reservation cancel 12")]
    Cancel { id: u64 },
}

const COLUMNS: &[(&str, &str)] = &[
    ("ID", "/id"),
    ("CHARGER", "/charger"),
    ("EVSE", "/evse"),
    ("TOKEN", "/token"),
    ("STATUS", "/status"),
    ("EXPIRES", "/expires"),
    ("SESSION", "/session"),
    ("DETAIL", "/detail"),
];

/// "30m" from now, or an RFC 3339 time.
fn expiry(s: &str) -> Result<chrono::DateTime<chrono::Utc>, ClientError> {
    if let Some(t) = crate::ocpp::parse_time(s) {
        return Ok(t);
    }
    let bad = |why: String| ClientError::Api(ApiError::new(ErrorKind::Invalid, format!("--expires: {why}")));
    let d = humantime::parse_duration(s).map_err(|e| {
        bad(format!(
            "{s:?} is neither a duration like 30m nor an RFC 3339 time ({e})"
        ))
    })?;
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .ok_or_else(|| bad(format!("{s:?} is too far ahead")))
}

pub async fn run(ctx: &Ctx, cmd: ReservationCmd) -> Result<(), ClientError> {
    match cmd {
        ReservationCmd::Add {
            charger,
            token,
            connector,
            evse,
            expires,
        } => {
            let expires = expiry(&expires)?;
            let v = ctx
                .call(Request::ReservationAdd {
                    charger: charger.clone(),
                    token,
                    evse: connector.or(evse),
                    expires,
                })
                .await?;
            let id = v["id"].clone();
            output::done(
                ctx,
                &v,
                &format!(
                    "reservation {id} accepted by {charger} until {}",
                    output::cell(v.get("expires"))
                ),
            );
        }
        ReservationCmd::List { charger, limit } => {
            let v = ctx.call(Request::ReservationList { charger, limit }).await?;
            output::table(ctx, &v, COLUMNS);
        }
        ReservationCmd::Cancel { id } => {
            let v = ctx.call(Request::ReservationCancel { id }).await?;
            output::done(ctx, &v, &format!("reservation {id} cancelled"));
        }
    }
    Ok(())
}
