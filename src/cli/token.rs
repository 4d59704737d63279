use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{Request, TokenAdd};
use crate::domain::TokenKind;
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Add a token.
    #[command(
        after_help = "Examples:\n  voltyard token add 04A2B3C4D5 --group employees\n  voltyard token add VID:0023A1B2C3D4 --kind vehicle --expires 2027-12-31T23:59:59Z"
    )]
    Add {
        uid: String,
        #[arg(long, value_enum, default_value_t = Kind::Rfid)]
        kind: Kind,
        #[arg(long)]
        group: Option<String>,
        /// RFC 3339 expiry time.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// List tokens.
    #[command(after_help = "Example:\n  voltyard token list --json")]
    List,
    /// Block a token: it is refused from now on.
    #[command(after_help = "Example:\n  voltyard token block 04A2B3C4D5")]
    Block { uid: String },
    /// Unblock a token.
    #[command(after_help = "Example:\n  voltyard token unblock 04A2B3C4D5")]
    Unblock { uid: String },
    /// Remove a token.
    #[command(after_help = "Example:\n  voltyard token remove 04A2B3C4D5")]
    Remove { uid: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Rfid,
    Vehicle,
    Contract,
    App,
}

pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> Result<(), ClientError> {
    match cmd {
        TokenCmd::Add {
            uid,
            kind,
            group,
            expires,
            note,
        } => {
            let expires = expires
                .map(|e| {
                    crate::ocpp::parse_time(&e).ok_or_else(|| {
                        ClientError::Api(crate::control::proto::ApiError::new(
                            crate::control::proto::ErrorKind::Invalid,
                            format!("--expires: {e:?} is not an RFC 3339 time such as 2027-12-31T23:59:59Z"),
                        ))
                    })
                })
                .transpose()?;
            let kind = match kind {
                Kind::Rfid => TokenKind::Rfid,
                Kind::Vehicle => TokenKind::Vehicle,
                Kind::Contract => TokenKind::Contract,
                Kind::App => TokenKind::App,
            };
            let v = ctx
                .call(Request::TokenAdd(TokenAdd {
                    uid: uid.clone(),
                    kind,
                    group,
                    expires,
                    note,
                }))
                .await?;
            output::done(ctx, &v, &format!("token {uid} added"));
        }
        TokenCmd::List => {
            let v = ctx.call(Request::TokenList).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("UID", "/uid"),
                    ("KIND", "/kind"),
                    ("GROUP", "/group"),
                    ("BLOCKED", "/blocked"),
                    ("EXPIRES", "/expires"),
                    ("NOTE", "/note"),
                ],
            );
        }
        TokenCmd::Block { uid } => {
            let v = ctx
                .call(Request::TokenBlock {
                    uid: uid.clone(),
                    blocked: true,
                })
                .await?;
            output::done(ctx, &v, &format!("token {uid} blocked"));
        }
        TokenCmd::Unblock { uid } => {
            let v = ctx
                .call(Request::TokenBlock {
                    uid: uid.clone(),
                    blocked: false,
                })
                .await?;
            output::done(ctx, &v, &format!("token {uid} unblocked"));
        }
        TokenCmd::Remove { uid } => {
            let v = ctx.call(Request::TokenRemove { uid: uid.clone() }).await?;
            output::done(ctx, &v, &format!("token {uid} removed"));
        }
    }
    Ok(())
}
