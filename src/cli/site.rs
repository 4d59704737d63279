use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::Access;
use crate::domain::auth::parse_window;
use chrono::Weekday;
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum SiteCmd {
    /// Add a site.
    #[command(after_help = "Example:\n  voltyard site add office --timezone Europe/Berlin --access private")]
    Add {
        name: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long, value_enum, default_value_t = AccessArg::Public)]
        access: AccessArg,
    },
    /// List sites with their access rules.
    #[command(after_help = "Example:\n  voltyard site list --json")]
    List,
    /// Show one site.
    #[command(after_help = "Example:\n  voltyard site show office")]
    Show { name: String },
    /// Let groups charge at a private site, optionally only in a window.
    #[command(
        after_help = "Examples:\n  voltyard site allow office --group employees --window 08:00-18:00 --days mon,tue,wed,thu,fri\n  voltyard site allow office --window 18:00-08:00   # anyone, after hours"
    )]
    Allow {
        name: String,
        /// Group allowed (repeatable); none means any token.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Local time window HH:MM-HH:MM (may wrap past midnight).
        #[arg(long)]
        window: Option<String>,
        /// Weekdays, comma separated (mon,tue,…); all days when absent.
        #[arg(long, value_delimiter = ',')]
        days: Vec<String>,
    },
    /// Remove every access rule of a site.
    #[command(after_help = "Example:\n  voltyard site clear-rules office")]
    ClearRules { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AccessArg {
    Public,
    Private,
}

fn invalid(msg: String) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, msg))
}

pub async fn run(ctx: &Ctx, cmd: SiteCmd) -> Result<(), ClientError> {
    match cmd {
        SiteCmd::Add { name, timezone, access } => {
            let access = match access {
                AccessArg::Public => Access::Public,
                AccessArg::Private => Access::Private,
            };
            let v = ctx
                .call(Request::SiteAdd {
                    name: name.clone(),
                    timezone,
                    access,
                })
                .await?;
            output::done(ctx, &v, &format!("site {name} added"));
        }
        SiteCmd::List => {
            let v = ctx.call(Request::SiteList).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("NAME", "/name"),
                    ("TIMEZONE", "/timezone"),
                    ("ACCESS", "/access"),
                    ("RULES", "/rules"),
                ],
            );
        }
        SiteCmd::Show { name } => {
            let v = ctx.call(Request::SiteList).await?;
            let site = v
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == name.as_str()))
                .cloned()
                .ok_or_else(|| ClientError::Api(ApiError::new(ErrorKind::NotFound, format!("no site {name}"))))?;
            output::object(ctx, &site, &["name", "timezone", "access", "rules", "created_at"]);
        }
        SiteCmd::Allow {
            name,
            groups,
            window,
            days,
        } => {
            let (from, to) = match window {
                Some(w) => parse_window(&w)
                    .map(|(a, b)| (Some(a), Some(b)))
                    .map_err(|e| invalid(format!("--window: {e}")))?,
                None => (None, None),
            };
            let days = days
                .iter()
                .map(|d| {
                    d.parse::<Weekday>()
                        .map_err(|_| invalid(format!("--days: {d:?} is not a weekday (mon, tue, …)")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let v = ctx
                .call(Request::SiteAllow {
                    name: name.clone(),
                    groups,
                    days,
                    from,
                    to,
                })
                .await?;
            output::done(ctx, &v, &format!("rule added to site {name}"));
        }
        SiteCmd::ClearRules { name } => {
            let v = ctx.call(Request::SiteClearRules { name: name.clone() }).await?;
            output::done(ctx, &v, &format!("rules of site {name} cleared"));
        }
    }
    Ok(())
}
