use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::DEFAULT_SITE;
use crate::domain::circuit::parse_price_csv;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PriceCmd {
    /// Import day-ahead or time-of-use prices from CSV (`-` reads stdin).
    #[command(after_help = "Example:
  voltyard price import prices.csv --site office

The CSV has a header naming start, price_per_kwh (or price) and optionally end,
times in RFC 3339:
  start,end,price_per_kwh
  2026-11-24T00:00:00+01:00,2026-11-24T01:00:00+01:00,0.2312
New slots replace the stored ones from the first new start on.")]
    Import {
        file: PathBuf,
        #[arg(long, default_value = DEFAULT_SITE)]
        site: String,
    },
    /// List a site's prices.
    #[command(after_help = "Example:\n  voltyard price list --site office --json")]
    List {
        #[arg(long, default_value = DEFAULT_SITE)]
        site: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: PriceCmd) -> Result<(), ClientError> {
    match cmd {
        PriceCmd::Import { file, site } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| invalid(format!("{}: {e}", file.display())))?;
            let slots = parse_price_csv(&text).map_err(|e| invalid(format!("{}: {e}", file.display())))?;
            let n = slots.len();
            let v = ctx
                .call(Request::PriceImport {
                    site: site.clone(),
                    slots,
                })
                .await?;
            output::done(ctx, &v, &format!("{n} price slots imported for site {site}"));
        }
        PriceCmd::List { site } => {
            let v = ctx.call(Request::PriceList { site }).await?;
            output::table(
                ctx,
                &v,
                &[("START", "/start"), ("END", "/end"), ("PRICE/KWH", "/price_per_kwh")],
            );
        }
    }
    Ok(())
}

fn invalid(msg: String) -> ClientError {
    ClientError::Api(ApiError::new(ErrorKind::Invalid, msg))
}
