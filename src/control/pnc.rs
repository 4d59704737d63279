//! Control requests for Plug & Charge: the source's status, contract
//! certificates from the local test PKI, revocation.

use super::proto::{ApiError, ErrorKind};
use super::server::{admin, internal, invalid};
use crate::server::Shared;
use crate::store::{AdminOp, PncOp};
use serde_json::{Value, json};

fn fail(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

pub(super) fn status(shared: &Shared) -> Result<Value, ApiError> {
    let cfg = &shared.config;
    let local = shared.pnc.local(cfg, &shared.store).map_err(fail)?;
    let issued = shared.store.contract_certs().map_err(internal)?;
    let revoked = issued.iter().filter(|c| c.revoked.is_some()).count();
    let source = match cfg.pnc.source {
        crate::config::PncSource::Local => "local".to_string(),
        crate::config::PncSource::Http => format!("http {}", cfg.pnc.url.as_deref().unwrap_or_default()),
        crate::config::PncSource::Program => format!("program {}", cfg.pnc.command.join(" ")),
    };
    Ok(json!({
        "source": source,
        "dir": local.dir.display().to_string(),
        "v2g_root_pem": local.v2g_root.pem,
        "mo_root_pem": local.mo_root.pem,
        "mo_sub_ca_pem": local.mo_sub_ca.pem,
        "ocsp_responder_pem": local.ocsp.pem,
        "contract_days": cfg.pnc.contract_days,
        "issued": issued.len(),
        "revoked": revoked,
        "certificates": issued,
    }))
}

pub(super) async fn issue(shared: &Shared, emaid: &str) -> Result<Value, ApiError> {
    if !crate::pnc::local::valid_emaid(emaid) {
        return Err(invalid(
            "emaid",
            "2 to 36 letters, digits or hyphens, starting with a two-letter country code, e.g. DE-VYD-C12345678-9",
        ));
    }
    let local = shared.pnc.local(&shared.config, &shared.store).map_err(fail)?;
    let (issued, key_pem) = local.issue_with_key(emaid, chrono::Utc::now()).map_err(fail)?;
    admin(shared, AdminOp::Pnc(PncOp::Issued(issued.record.clone()))).await?;
    Ok(json!({
        "serial": issued.record.serial,
        "emaid": issued.record.emaid,
        "not_after": issued.record.not_after,
        "chain_pem": issued.chain_pem,
        "key_pem": key_pem,
    }))
}

pub(super) async fn revoke(shared: &Shared, serial: String, cancelled: bool) -> Result<Value, ApiError> {
    let hex = serial.trim().trim_start_matches("0x");
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("serial", "must be the certificate's serial number in hex"));
    }
    admin(shared, AdminOp::Pnc(PncOp::Revoke { serial, cancelled })).await
}
