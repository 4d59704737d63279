//! SignCertificate on the connection: the built-in CA checks and signs the
//! CSR before the store records the certificate and the charger hears
//! Accepted; the chain follows in a CertificateSigned CALL.

use crate::domain::cert::IssuedCert;
use crate::domain::message::{Command, CommandResult, Inbound};
use crate::ocpp::registry::CallRequest;
use crate::server::Shared;
use chrono::Utc;
use std::sync::Arc;

/// The kind 1.6 chargers (which do not name one) ask for.
const DEFAULT_KIND: &str = "ChargingStationCertificate";

/// Turn a SignCertificate into the CA's verdict, and the CertificateSigned
/// to send once the charger has its Accepted. Other messages pass through.
pub fn prepare(shared: &Shared, charger: &str, inbound: Inbound) -> (Inbound, Option<Command>) {
    let Inbound::SignCertificate { csr, kind } = inbound else {
        return (inbound, None);
    };
    let cfg = &shared.config;
    let signed = shared.ca().map_err(|e| e.to_string()).and_then(|ca| {
        ca.sign_csr(&csr, charger, cfg.cert_organization.as_deref(), cfg.cert_days)
            .map_err(|e| e.to_string())
    });
    match signed {
        Ok(issued) => {
            let cert = IssuedCert {
                serial: issued.serial,
                charger: charger.to_string(),
                kind: kind.clone().unwrap_or_else(|| DEFAULT_KIND.into()),
                issued_at: Utc::now(),
                not_after: issued.not_after,
                warned: false,
            };
            let cmd = Command::CertificateSigned {
                chain: issued.chain_pem,
                kind,
            };
            (Inbound::CertificateRequest { result: Ok(cert) }, Some(cmd))
        }
        Err(why) => {
            tracing::warn!(charger, "certificate request refused: {why}");
            (Inbound::CertificateRequest { result: Err(why) }, None)
        }
    }
}

/// The CertificateSigned CALL; a charger that refuses the chain is recorded.
pub fn deliver(shared: Arc<Shared>, charger: &str, cmd: Command) -> CallRequest {
    let (reply, rx) = tokio::sync::oneshot::channel();
    let charger = charger.to_string();
    tokio::spawn(async move {
        shared.certs_changed.notify_one();
        let detail = match rx.await {
            Ok(Ok(r)) if r.accepted() => return,
            Ok(Ok(CommandResult::Status { status, .. })) => format!("charger answered CertificateSigned with {status}"),
            Ok(Ok(other)) => format!("charger answered CertificateSigned with {other:?}"),
            Ok(Err(e)) => format!("CertificateSigned not delivered: {e}"),
            Err(_) => "CertificateSigned not delivered: connection gone".into(),
        };
        super::auth::record(&shared, &charger, "security", detail).await;
    });
    CallRequest {
        cmd: Box::new(cmd),
        reply,
    }
}
