//! The security extension messages of both versions (1.6 security
//! whitepaper, 2.0.1 blocks A and M): certificate signing, installation and
//! listing, and security events, translated to and from the domain model.

use super::Rejection;
use super::json::Json;
use crate::domain::Protocol;
use crate::domain::cert::{CertHash, CertKind};
use crate::domain::message::{Command, CommandResult, Inbound};
use serde_json::{Value, json};

/// A charger-initiated security message, or `None` for other actions.
pub fn decode(action: &str, payload: &Json) -> Option<Result<Inbound, Rejection>> {
    // Asked of every inbound CALL: the payload is copied only for ours.
    if !matches!(action, "SignCertificate" | "SecurityEventNotification") {
        return None;
    }
    let p = payload.to_value();
    let text = |field: &str| p.get(field).and_then(Value::as_str).map(str::to_string);
    Some(Ok(match action {
        "SignCertificate" => Inbound::SignCertificate {
            csr: text("csr").unwrap_or_default(),
            kind: text("certificateType"),
        },
        "SecurityEventNotification" => {
            let mut detail = format!(
                "{} at {}",
                text("type").unwrap_or_default(),
                text("timestamp").unwrap_or_default()
            );
            if let Some(info) = text("techInfo") {
                detail.push_str(&format!(": {info}"));
            }
            Inbound::Notice {
                kind: "security_event".into(),
                detail,
            }
        }
        _ => return None,
    }))
}

fn kind_name(proto: Protocol, kind: CertKind) -> Result<&'static str, String> {
    Ok(match (proto, kind) {
        (Protocol::V16, CertKind::CsmsRoot) => "CentralSystemRootCertificate",
        (Protocol::V201, CertKind::CsmsRoot) => "CSMSRootCertificate",
        (_, CertKind::ManufacturerRoot) => "ManufacturerRootCertificate",
        (Protocol::V201, CertKind::V2gRoot) => "V2GRootCertificate",
        (Protocol::V201, CertKind::MoRoot) => "MORootCertificate",
        (Protocol::V16, k) => return Err(format!("OCPP 1.6 has no {k:?} certificates (2.0.1 only)")),
    })
}

fn hash_json(h: &CertHash) -> Value {
    json!({
        "hashAlgorithm": h.hash_algorithm,
        "issuerNameHash": h.issuer_name_hash,
        "issuerKeyHash": h.issuer_key_hash,
        "serialNumber": h.serial_number,
    })
}

fn hash_of(v: &Value, kind: Option<String>) -> CertHash {
    let s = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    CertHash {
        hash_algorithm: s("hashAlgorithm"),
        issuer_name_hash: s("issuerNameHash"),
        issuer_key_hash: s("issuerKeyHash"),
        serial_number: s("serialNumber"),
        kind,
    }
}

/// A security command as (action, payload); v16/v201 hand these over.
pub fn encode(proto: Protocol, cmd: &Command) -> Result<(&'static str, Value), String> {
    Ok(match cmd {
        Command::CertificateSigned { chain, kind } => {
            let mut p = json!({"certificateChain": chain});
            if let (Protocol::V201, Some(k)) = (proto, kind) {
                p["certificateType"] = json!(k);
            }
            ("CertificateSigned", p)
        }
        Command::InstallCertificate { kind, pem } => match kind_name(proto, *kind) {
            Ok(k) => ("InstallCertificate", json!({"certificateType": k, "certificate": pem})),
            Err(e) => return Err(e),
        },
        Command::DeleteCertificate { hash } => ("DeleteCertificate", json!({"certificateHashData": hash_json(hash)})),
        Command::GetInstalledCertificates { kind } => match (proto, kind) {
            (Protocol::V16, None) => return Err("OCPP 1.6 asks for one certificate type at a time".into()),
            (_, Some(k)) => match kind_name(proto, *k) {
                Ok(name) if proto == Protocol::V16 => ("GetInstalledCertificateIds", json!({"certificateType": name})),
                Ok(name) => ("GetInstalledCertificateIds", json!({"certificateType": [name]})),
                Err(e) => return Err(e),
            },
            (Protocol::V201, None) => ("GetInstalledCertificateIds", json!({})),
        },
        // 1.6 asks for a new charger certificate with the security
        // extension's ExtendedTriggerMessage; both names are accepted.
        Command::Trigger { message, evse } if is_sign_trigger(message) => match proto {
            Protocol::V16 => {
                let mut p = json!({"requestedMessage": "SignChargePointCertificate"});
                if let Some(e) = evse {
                    p["connectorId"] = json!(e);
                }
                ("ExtendedTriggerMessage", p)
            }
            Protocol::V201 => (
                "TriggerMessage",
                json!({"requestedMessage": "SignChargingStationCertificate"}),
            ),
        },
        other => return Err(format!("{other:?} is not a security command")),
    })
}

pub fn is_sign_trigger(message: &str) -> bool {
    message == "SignChargePointCertificate" || message == "SignChargingStationCertificate"
}

/// The answer to a security command, or `None` for other commands.
pub fn decode_result(proto: Protocol, cmd: &Command, payload: &Value) -> Option<CommandResult> {
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
    Some(match cmd {
        Command::GetInstalledCertificates { .. } => {
            let certificates = match proto {
                Protocol::V16 => payload
                    .get("certificateHashData")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|h| hash_of(h, None))
                    .collect(),
                Protocol::V201 => payload
                    .get("certificateHashDataChain")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        let kind = c.get("certificateType").and_then(Value::as_str).map(str::to_string);
                        c.get("certificateHashData").map(|h| hash_of(h, kind))
                    })
                    .collect(),
            };
            CommandResult::Certificates {
                status: status.to_string(),
                // NotFound: nothing of that kind installed, an answer all the same.
                accepted: status == "Accepted" || status == "NotFound",
                certificates,
            }
        }
        Command::CertificateSigned { .. } | Command::InstallCertificate { .. } | Command::DeleteCertificate { .. } => {
            CommandResult::status(status, &["Accepted"])
        }
        _ => return None,
    })
}
