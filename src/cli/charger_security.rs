//! `charger set-password` and the other security subcommands' output.

use super::{Ctx, output};
use crate::control::client::ClientError;
use crate::control::proto::{ApiError, ErrorKind, Request};
use crate::domain::cert::CertKind;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Subcommand)]
pub enum CertCmd {
    /// Certificates installed on a charger (GetInstalledCertificateIds).
    #[command(after_help = "Example:\n  voltyard charger cert list CP-001 --json")]
    List { id: String },
    /// Install a root certificate on a charger (InstallCertificate).
    #[command(after_help = "Example:\n  voltyard charger cert install CP-001 --type csms-root ca.pem")]
    Install {
        id: String,
        #[arg(long = "type", value_name = "TYPE")]
        kind: KindArg,
        /// A PEM certificate file.
        file: std::path::PathBuf,
    },
    /// Delete an installed certificate by its serial number in hex (DeleteCertificate).
    #[command(after_help = "Example:\n  voltyard charger cert delete CP-001 3a9f01")]
    Delete { id: String, serial: String },
    /// Ask a charger to renew its certificate: it sends a CSR, the built-in CA signs it.
    #[command(
        after_help = "1.6: ExtendedTriggerMessage SignChargePointCertificate; 2.0.1: TriggerMessage SignChargingStationCertificate.\n\nExample:\n  voltyard charger cert renew CP-001"
    )]
    Renew { id: String },
    /// Certificates the built-in CA issued, with their expiry.
    #[command(after_help = "Example:\n  voltyard charger cert issued --charger CP-001")]
    Issued {
        #[arg(long)]
        charger: Option<String>,
    },
    /// Print the built-in CA certificate (PEM) for chargers and TLS clients to trust.
    #[command(after_help = "Example:\n  voltyard charger cert ca > voltyard-ca.pem")]
    Ca,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// 1.6 CentralSystemRootCertificate, 2.0.1 CSMSRootCertificate.
    #[value(name = "csms-root")]
    Csms,
    #[value(name = "manufacturer-root")]
    Manufacturer,
    /// 2.0.1 only.
    #[value(name = "v2g-root")]
    V2g,
    /// 2.0.1 only.
    #[value(name = "mo-root")]
    Mo,
}

impl From<KindArg> for CertKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Csms => CertKind::CsmsRoot,
            KindArg::Manufacturer => CertKind::ManufacturerRoot,
            KindArg::V2g => CertKind::V2gRoot,
            KindArg::Mo => CertKind::MoRoot,
        }
    }
}

pub async fn cert(ctx: &Ctx, cmd: CertCmd) -> Result<(), ClientError> {
    match cmd {
        CertCmd::List { id } => {
            let v = ctx.call(Request::ChargerCertList { id }).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("TYPE", "/kind"),
                    ("SERIAL", "/serial_number"),
                    ("ISSUER NAME HASH", "/issuer_name_hash"),
                ],
            );
        }
        CertCmd::Install { id, kind, file } => {
            let pem = std::fs::read_to_string(&file).map_err(|e| {
                ClientError::Api(ApiError::new(
                    ErrorKind::Invalid,
                    format!("certificate: cannot read {}: {e}", file.display()),
                ))
            })?;
            let v = ctx
                .call(Request::ChargerCertInstall {
                    id,
                    kind: kind.into(),
                    pem,
                })
                .await?;
            status(ctx, &v);
        }
        CertCmd::Delete { id, serial } => status(ctx, &ctx.call(Request::ChargerCertDelete { id, serial }).await?),
        CertCmd::Renew { id } => status(ctx, &ctx.call(Request::ChargerCertRenew { id }).await?),
        CertCmd::Issued { charger } => {
            let v = ctx.call(Request::CertIssued { charger }).await?;
            output::table(
                ctx,
                &v,
                &[
                    ("CHARGER", "/charger"),
                    ("TYPE", "/kind"),
                    ("SERIAL", "/serial"),
                    ("ISSUED", "/issued_at"),
                    ("EXPIRES", "/not_after"),
                ],
            );
        }
        CertCmd::Ca => {
            let v = ctx.call(Request::CaCertificate).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print!("{}", v["pem"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

fn status(ctx: &Ctx, v: &Value) {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("Accepted");
    output::done(ctx, v, status);
}

pub const SET_PASSWORD_HELP: &str =
    "The password is pushed to a connected charger (1.6 ChangeConfiguration AuthorizationKey,
2.0.1 SetVariables SecurityCtrlr.BasicAuthPassword). Until the charger accepts it, the old and
the new password are both valid, so a lost answer never locks the charger out.

Examples:
  voltyard charger set-password CP-001 --generate
  voltyard charger set-password CP-002 'a-long-shared-secret-16+' --offline";

pub async fn set_password(ctx: &Ctx, id: String, value: Option<String>, offline: bool) -> Result<(), ClientError> {
    let v = ctx
        .call(Request::ChargerSetPassword {
            id: id.clone(),
            password: value,
            offline,
        })
        .await?;
    let how = if offline {
        "stored (not pushed: set it on the charger)"
    } else {
        "accepted by the charger"
    };
    let mut msg = format!("password of {id} {how}");
    if let Some(pw) = v.get("password").and_then(|p| p.as_str()) {
        msg.push_str(&format!("\nnew password (shown once): {pw}"));
    }
    output::done(ctx, &v, &msg);
    Ok(())
}
