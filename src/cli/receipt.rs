//! `voltyard receipt SESSION [--format text|json|xml]`.

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ReceiptFormat, Request};
use clap::{Args, ValueEnum};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  voltyard receipt 42                       for the driver\n  voltyard receipt 42 --format json > 42.json   (voltyard verify 42.json checks it)\n  voltyard receipt 42 --format xml > 42.xml     (open in the S.A.F.E. Transparenzsoftware)\n\nExit status 1 when the session is still running, or (xml) has no signed meter data."
)]
pub struct ReceiptArgs {
    /// The session id.
    pub session: u64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// For the driver: every price line with how it was computed.
    Text,
    /// The same content for machines (stable field names).
    Json,
    /// The S.A.F.E. Transparenzsoftware's input (OCMF begin and end with the meter key).
    Xml,
}

pub async fn run(ctx: &Ctx, args: ReceiptArgs) -> Result<(), ClientError> {
    let format = match (args.format, ctx.json) {
        (Format::Xml, _) => ReceiptFormat::Xml,
        (Format::Json, _) | (_, true) => ReceiptFormat::Json,
        (Format::Text, false) => ReceiptFormat::Text,
    };
    let v = ctx
        .call(Request::Receipt {
            session: args.session,
            format,
        })
        .await?;
    match format {
        ReceiptFormat::Json => output::json(&v),
        _ => print!("{}", v["body"].as_str().unwrap_or_default()),
    }
    Ok(())
}
