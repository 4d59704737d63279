//! Plug & Charge on the connection: the contract-certificate source
//! answers Get15118EVCertificate and GetCertificateStatus and checks an
//! Authorize's contract certificate before the store sees the message,
//! so what the charger hears is stored first. And the answers' JSON.

use crate::domain::message::Inbound;
use crate::domain::pnc::{CertVerdict, SourceAnswer};
use crate::pnc::EvCertRequest;
use crate::server::Shared;
use serde_json::{Value, json};

/// OCPP 2.0.1 StatusInfoType limits.
const REASON_MAX: usize = 20;
const INFO_MAX: usize = 512;

pub async fn prepare(shared: &Shared, charger: &str, inbound: Inbound) -> Inbound {
    let needs_source = matches!(
        inbound,
        Inbound::EvCertificate { .. } | Inbound::CertificateStatus { .. } | Inbound::ContractAuthorize { .. }
    );
    if !needs_source {
        return inbound;
    }
    let source = match shared.pnc.source(&shared.config, &shared.store) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(charger, "Plug & Charge source: {e}");
            let down = SourceAnswer::failed("SourceUnavailable", e.clone());
            return match inbound {
                Inbound::EvCertificate { .. } => Inbound::EvCertificateAnswered {
                    answer: down,
                    issued: None,
                },
                Inbound::ContractAuthorize { token, .. } => Inbound::ContractChecked {
                    token,
                    verdict: Err((CertVerdict::NoCertificateAvailable, e)),
                },
                _ => Inbound::CertificateStatusAnswered { answer: down },
            };
        }
    };
    match inbound {
        Inbound::EvCertificate {
            schema_version,
            action,
            exi_request,
        } => {
            let req = EvCertRequest {
                charger: charger.to_string(),
                schema_version,
                action,
                exi_request,
            };
            let a = source.ev_certificate(&req).await;
            Inbound::EvCertificateAnswered {
                answer: a.answer,
                issued: a.issued,
            }
        }
        Inbound::CertificateStatus { request } => Inbound::CertificateStatusAnswered {
            answer: source.certificate_status(&request).await,
        },
        Inbound::ContractAuthorize { token, data } => Inbound::ContractChecked {
            verdict: crate::pnc::check(source.as_ref(), &token, &data, chrono::Utc::now()).await,
            token,
        },
        other => other,
    }
}

/// `{"status": "Accepted", field: …}` or `{"status": "Failed", "statusInfo": …}`;
/// Get15118EVCertificateResponse requires its exiResponse even then.
pub fn answer(a: &SourceAnswer, field: &str, required: bool) -> Value {
    match a {
        SourceAnswer::Accepted(v) => json!({"status": "Accepted", field: v}),
        SourceAnswer::Failed { reason, detail } => {
            let mut info = json!({"reasonCode": clip(reason, REASON_MAX)});
            if !detail.is_empty() {
                info["additionalInfo"] = json!(clip(detail, INFO_MAX));
            }
            let mut p = json!({"status": "Failed", "statusInfo": info});
            if required {
                p[field] = json!("");
            }
            p
        }
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
