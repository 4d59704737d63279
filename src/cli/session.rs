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
}

pub async fn run(ctx: &Ctx, cmd: SessionCmd) -> Result<(), ClientError> {
    match cmd {
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
                ],
            );
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
