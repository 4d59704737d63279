//! `pnc status|issue` and `cert revoke`: ISO 15118 Plug & Charge.

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::Request;
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand)]
pub enum PncCmd {
    /// The contract-certificate source, the local test PKI and what it issued.
    #[command(
        after_help = "Examples:\n  voltyard pnc status\n  voltyard pnc status --json | jq -r .mo_root_pem > mo-root.pem"
    )]
    Status,
    /// Issue a contract certificate and key for an eMAID from the local PnC CA (prints PEM).
    #[command(
        after_help = "The eMAID is the certificate's common name and the idToken (type eMAID) at Authorize:\nadd it as a token (`voltyard token add EMAID --kind contract`) for it to be accepted.\n\nExample:\n  voltyard pnc issue --emaid DE-VYD-C12345678-9 > contract.pem"
    )]
    Issue {
        #[arg(long)]
        emaid: String,
    },
}

#[derive(Subcommand)]
pub enum CertCmd {
    /// Revoke a contract certificate the local PnC CA issued: its OCSP status becomes revoked
    /// and Authorize answers CertificateRevoked (ContractCancelled with --cancelled).
    #[command(after_help = "Example:\n  voltyard cert revoke 5f1c0a93d2e4b7a8 --cancelled")]
    Revoke {
        /// The serial number in hex (see `voltyard pnc status`).
        serial: String,
        /// The contract was cancelled rather than the key compromised.
        #[arg(long)]
        cancelled: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: PncCmd) -> Result<(), ClientError> {
    match cmd {
        PncCmd::Status => {
            let v = ctx.call(Request::PncStatus).await?;
            if ctx.json {
                output::json(&v);
                return Ok(());
            }
            output::object(ctx, &v, &["source", "dir", "contract_days", "issued", "revoked"]);
            println!();
            let rows: Vec<Value> = v["certificates"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let mut c = c.clone();
                    c["state"] = Value::from(match c["revoked"]["cancelled"].as_bool() {
                        None => "valid",
                        Some(true) => "cancelled",
                        Some(false) => "revoked",
                    });
                    c
                })
                .collect();
            output::table(
                ctx,
                &Value::Array(rows),
                &[
                    ("EMAID", "/emaid"),
                    ("SERIAL", "/serial"),
                    ("ISSUED", "/issued_at"),
                    ("EXPIRES", "/not_after"),
                    ("STATE", "/state"),
                ],
            );
        }
        PncCmd::Issue { emaid } => {
            let v = ctx.call(Request::PncIssue { emaid }).await?;
            if ctx.json {
                output::json(&v);
                return Ok(());
            }
            eprintln!(
                "issued serial {} for {}, valid until {}",
                output::cell(v.get("serial")),
                output::cell(v.get("emaid")),
                output::cell(v.get("not_after"))
            );
            print!(
                "{}{}",
                v["chain_pem"].as_str().unwrap_or_default(),
                v["key_pem"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

pub async fn cert(ctx: &Ctx, cmd: CertCmd) -> Result<(), ClientError> {
    match cmd {
        CertCmd::Revoke { serial, cancelled } => {
            let v = ctx
                .call(Request::CertRevoke {
                    serial: serial.clone(),
                    cancelled,
                })
                .await?;
            let what = if cancelled { "contract cancelled" } else { "revoked" };
            output::done(ctx, &v, &format!("certificate {serial} {what}"));
        }
    }
    Ok(())
}
