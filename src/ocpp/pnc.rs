//! Plug & Charge on the connection: the contract-certificate source
//! answers Get15118EVCertificate and GetCertificateStatus and checks an
//! Authorize's contract certificate before the store sees the message,
//! so what the charger hears is stored first. And the answers' JSON.

use super::Rejection;
use super::frame::ErrorCode;
use crate::domain::message::Inbound;
use crate::domain::pnc::{CertVerdict, ContractData, OcspRequestData, SourceAnswer};
use crate::pnc::EvCertRequest;
use crate::server::Shared;
use serde_json::{Value, json};

/// The vendorId of OCPP 1.6 Plug & Charge (OCA whitepaper "Using ISO 15118
/// Plug & Charge with OCPP 1.6"): the 2.0.1 messages carried in
/// DataTransfer, `messageId` the action, `data` the request as JSON text.
pub const PNC_VENDOR: &str = "org.openchargealliance.iso15118pnc";

/// A 1.6 DataTransfer of the Plug & Charge vendor as the 2.0.1 message it
/// carries; `None` for the messages voltyard does not take over (they go
/// to the vendor hook like any DataTransfer).
pub fn decode_v16(message_id: Option<&str>, data: Option<&str>) -> Option<Result<Inbound, Rejection>> {
    let action = message_id?;
    if !matches!(action, "Get15118EVCertificate" | "GetCertificateStatus" | "Authorize") {
        return None;
    }
    let bad = |why: String| Rejection::new(ErrorCode::TypeConstraintViolation, format!("data ({action}): {why}"));
    let parse = || -> Result<Inbound, Rejection> {
        let v: Value = serde_json::from_str(data.unwrap_or("")).map_err(|e| bad(format!("not JSON: {e}")))?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{k} (a string) is required")))
        };
        Ok(match action {
            "Get15118EVCertificate" => Inbound::EvCertificate {
                schema_version: text("iso15118SchemaVersion")?,
                action: text("action")?,
                exi_request: text("exiRequest")?,
            },
            "GetCertificateStatus" => Inbound::CertificateStatus {
                request: serde_json::from_value::<OcspRequestData>(
                    v.get("ocspRequestData").cloned().unwrap_or_default(),
                )
                .map_err(|e| bad(format!("ocspRequestData: {e}")))?,
            },
            _ => Inbound::ContractAuthorize {
                token: v
                    .pointer("/idToken/idToken")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("idToken.idToken is required".into()))?
                    .to_string(),
                data: ContractData {
                    certificate: v.get("certificate").and_then(Value::as_str).map(str::to_string),
                    hash_data: match v.get("iso15118CertificateHashData") {
                        None => Vec::new(),
                        Some(h) => serde_json::from_value(h.clone())
                            .map_err(|e| bad(format!("iso15118CertificateHashData: {e}")))?,
                    },
                },
            },
        })
    };
    Some(parse())
}

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
