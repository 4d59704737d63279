//! Plug & Charge inside the writer's transaction: a contract certificate
//! the local CA issued is stored before the charger hears Accepted;
//! revocations; Authorize with a checked contract certificate.

use super::{AdminResult, Ctx, Result, decode, encode};
use crate::domain::message::{Inbound, Reply};
use crate::domain::pnc::{CertVerdict, ContractCert, Revocation, SourceAnswer, norm_serial};
use crate::domain::{AuthStatus, Charger};
use crate::store::tables::{CERTIFICATES, CONTRACT_CERTS};
use chrono::{DateTime, Utc};
use redb::ReadableTable;

#[derive(Debug, Clone)]
pub enum PncOp {
    /// `pnc issue`: a contract certificate the local CA issued.
    Issued(ContractCert),
    /// `cert revoke`: the local CA's OCSP answers revoked from now on.
    Revoke { serial: String, cancelled: bool },
}

pub(super) fn admin(ctx: &mut Ctx, op: PncOp, t: DateTime<Utc>) -> Result<AdminResult> {
    match op {
        PncOp::Issued(c) => {
            ctx.store_contract(&c, None, t)?;
            Ok(AdminResult::Json(serde_json::to_value(&c).unwrap_or_default()))
        }
        PncOp::Revoke { serial, cancelled } => {
            let key = norm_serial(&serial);
            let mut table = ctx.w.open_table(CONTRACT_CERTS)?;
            let found = table
                .get(key.as_str())?
                .map(|v| decode::<ContractCert>("contract_certs", v.value()))
                .transpose()?;
            let Some(mut c) = found else {
                drop(table);
                let charger_cert = ctx.w.open_table(CERTIFICATES)?.get(key.as_str())?.is_some();
                let why = if charger_cert {
                    format!(
                        "{serial} is a charger certificate of the built-in CA; only contract certificates are revoked (their status is what OCSP answers)"
                    )
                } else {
                    format!("the local Plug & Charge CA issued no certificate with serial {serial}")
                };
                return Ok(AdminResult::NotFound(why));
            };
            if c.revoked.is_some() {
                return Ok(AdminResult::Conflict(format!(
                    "certificate {serial} is already revoked"
                )));
            }
            c.revoked = Some(Revocation { at: t, cancelled });
            table.insert(key.as_str(), encode(&c).as_slice())?;
            drop(table);
            let what = if cancelled { "contract cancelled" } else { "revoked" };
            ctx.event(
                t,
                None,
                "pnc",
                format!("contract certificate {key} of {} {what}", c.emaid),
            )?;
            Ok(AdminResult::Json(serde_json::to_value(&c).unwrap_or_default()))
        }
    }
}

impl Ctx<'_> {
    fn store_contract(&mut self, c: &ContractCert, charger: Option<&str>, t: DateTime<Utc>) -> Result<()> {
        self.w
            .open_table(CONTRACT_CERTS)?
            .insert(c.serial.as_str(), encode(c).as_slice())?;
        let detail = format!(
            "issued contract certificate for {} serial {} valid until {}",
            c.emaid,
            c.serial,
            c.not_after.format("%Y-%m-%d")
        );
        self.event(t, charger, "pnc", detail)
    }

    pub(super) fn pnc_inbound(&mut self, ch: &Charger, msg: Inbound, t: DateTime<Utc>) -> Result<Reply> {
        let unasked = || SourceAnswer::failed("InternalError", "no contract-certificate source looked at it");
        Ok(match msg {
            Inbound::EvCertificateAnswered { answer, issued } => {
                if let Some(c) = &issued {
                    self.store_contract(c, Some(&ch.id), t)?;
                }
                if let SourceAnswer::Failed { reason, detail } = &answer {
                    self.event(
                        t,
                        Some(&ch.id),
                        "pnc",
                        format!("Get15118EVCertificate failed: {reason}: {detail}"),
                    )?;
                }
                Reply::EvCertificate(answer)
            }
            Inbound::EvCertificate { .. } => Reply::EvCertificate(unasked()),
            Inbound::CertificateStatusAnswered { answer } => Reply::CertificateStatus(answer),
            Inbound::CertificateStatus { .. } => Reply::CertificateStatus(unasked()),
            Inbound::ContractChecked { token, verdict: Ok(()) } => {
                let mut status = self.authorize(ch, &token, t, None)?;
                if status == AuthStatus::Accepted && self.reserved_for_other(ch, &token, None, t)?.is_some() {
                    status = AuthStatus::NotAtThisTime;
                }
                Reply::ContractAuth {
                    status: Some(status),
                    certificate: CertVerdict::Accepted,
                }
            }
            Inbound::ContractChecked {
                token,
                verdict: Err((certificate, why)),
            } => {
                let detail = format!("Authorize of {token} refused: {}: {why}", certificate.as_str());
                self.event(t, Some(&ch.id), "pnc", detail)?;
                Reply::ContractAuth {
                    status: None,
                    certificate,
                }
            }
            Inbound::ContractAuthorize { .. } => Reply::ContractAuth {
                status: None,
                certificate: CertVerdict::NoCertificateAvailable,
            },
            _ => Reply::Ack,
        })
    }
}
