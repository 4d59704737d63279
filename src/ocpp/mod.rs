//! The OCPP-J edge: framing, schema validation, the 1.6 and 2.0.1
//! translations to the domain model, and the WebSocket connections.

pub mod connection;
mod device;
pub mod frame;
pub mod json;
pub mod listener;
pub mod pnc;
pub mod registry;
pub mod schema;
pub mod security;
pub mod stream;
pub mod throttle;
pub mod v16;
pub mod v201;

use crate::domain::Protocol;
use crate::domain::message::{ChargingProfile, Command, CommandResult, Inbound, RateUnit, Reply};
use crate::domain::transfer::{FirmwareOrder, FirmwareSignature};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use frame::ErrorCode;
use json::Json;
use schema::{Part, Violation, ViolationKind};
use serde_json::{Value, json};

/// What a charger-initiated CALL turned into. It lives for one message on
/// the stack, so the size difference between variants does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    Inbound(Inbound),
    /// A known action this server does not support (yet): NotSupported.
    Unsupported,
    /// A known action of this version that a charger does not send (it is
    /// one the CSMS sends): NotSupported too.
    NotOurs,
}

/// A CALL we answer with a CALLERROR.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct Rejection {
    pub code: ErrorCode,
    pub description: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Rejection {
            code,
            description: description.into(),
        }
    }
    pub fn formation(detail: &str) -> Self {
        Rejection::new(ErrorCode::Formation, detail)
    }
    pub fn property(field: &str, reason: &str) -> Self {
        Rejection::new(ErrorCode::PropertyConstraintViolation, format!("{field}: {reason}"))
    }
}

impl From<Violation> for Rejection {
    fn from(v: Violation) -> Self {
        let code = match v.kind {
            ViolationKind::Formation => ErrorCode::Formation,
            ViolationKind::Type => ErrorCode::TypeConstraintViolation,
            ViolationKind::Occurrence => ErrorCode::Occurrence,
            ViolationKind::Property => ErrorCode::PropertyConstraintViolation,
        };
        Rejection::new(code, v.to_string())
    }
}

/// Validate and decode a charger-initiated CALL.
/// Validate and decode a CALL's payload.
pub fn decode_call(proto: Protocol, action: &str, payload: &Json, now: DateTime<Utc>) -> Result<Inbound, Rejection> {
    if !schema::knows(proto, action) {
        return Err(Rejection::new(
            ErrorCode::NotImplemented,
            format!("unknown action {action:?} for {proto}"),
        ));
    }
    schema::validate_json(proto, action, Part::Request, payload)?;
    if let Some(sec) = security::decode(action, payload) {
        return sec;
    }
    let decoded = match proto {
        Protocol::V16 => v16::decode(action, payload, now)?,
        Protocol::V201 => v201::decode(action, payload, now)?,
    };
    match decoded {
        Decoded::Inbound(i) => Ok(i),
        Decoded::Unsupported => Err(Rejection::new(
            ErrorCode::NotSupported,
            format!("{action} is not supported by this server yet"),
        )),
        Decoded::NotOurs => Err(Rejection::new(
            ErrorCode::NotSupported,
            format!("{action} is sent by the CSMS, not by a charger"),
        )),
    }
}

pub fn encode_reply(proto: Protocol, action: &str, reply: &Reply) -> Value {
    match proto {
        Protocol::V16 => v16::encode_reply(action, reply),
        Protocol::V201 => v201::encode_reply(action, reply),
    }
}

/// Turn a command into a CALL (action, payload), checked against the schema
/// so an operator's typo is refused before it reaches the charger.
pub fn encode_command(proto: Protocol, cmd: &Command) -> Result<(&'static str, Value), String> {
    let (action, payload) = match proto {
        Protocol::V16 => v16::encode_command(cmd)?,
        Protocol::V201 => v201::encode_command(cmd)?,
    };
    schema::validate(proto, action, Part::Request, &payload).map_err(|v| format!("{action} {v}"))?;
    Ok((action, payload))
}

/// The journal's copy of a CALL whose payload carries a secret (a password
/// push), with the secret blanked; `None` for every other CALL.
pub fn redacted(cmd: &Command, payload: &Value) -> Option<Value> {
    let Command::SetPassword { .. } = cmd else {
        return None;
    };
    let mut p = payload.clone();
    for ptr in ["/value", "/setVariableData/0/attributeValue"] {
        if let Some(v) = p.pointer_mut(ptr) {
            *v = json!("(redacted)");
        }
    }
    Some(p)
}

/// The schedule both versions shape alike (2.0.1 adds an `id`).
pub(super) fn schedule(p: &ChargingProfile) -> Value {
    let mut period = json!({"startPeriod": 0, "limit": (p.limit * 10.0).floor() / 10.0});
    if let Some(n) = p.number_phases {
        period["numberPhases"] = json!(n);
    }
    let mut s = json!({
        "chargingRateUnit": match p.unit { RateUnit::A => "A", RateUnit::W => "W" },
        "chargingSchedulePeriod": [period],
    });
    if let Some(d) = p.duration_s {
        s["duration"] = json!(d);
    }
    if let Some(t) = p.start {
        s["startSchedule"] = json!(format_time(t));
    }
    s
}

/// The message kinds `TriggerMessage` (and on 1.6 `ExtendedTriggerMessage`) can ask for.
pub fn trigger_kinds(proto: Protocol) -> Vec<&'static str> {
    match proto {
        Protocol::V16 => v16::trigger_kinds(),
        Protocol::V201 => v201::trigger_kinds(),
    }
}

/// The signed FirmwareType both versions share (1.6 SignedUpdateFirmware, 2.0.1).
pub(super) fn firmware(order: &FirmwareOrder, sig: &FirmwareSignature) -> Value {
    json!({
        "location": order.url,
        "retrieveDateTime": format_time(order.retrieve_at.unwrap_or_else(Utc::now)),
        "signingCertificate": sig.signing_cert,
        "signature": sig.signature,
    })
}

/// GetLog, alike in the 1.6 security extension and 2.0.1.
pub(super) fn get_log(request_id: i64, log_type: &str, url: &str, since: Option<DateTime<Utc>>) -> Value {
    let mut log = json!({"remoteLocation": url});
    if let Some(t) = since {
        log["oldestTimestamp"] = json!(format_time(t));
    }
    json!({"logType": log_type, "requestId": request_id, "log": log})
}

pub fn decode_result(proto: Protocol, cmd: &Command, payload: &Value) -> CommandResult {
    if let Some(r) = security::decode_result(proto, cmd, payload) {
        return r;
    }
    match proto {
        Protocol::V16 => v16::decode_result(cmd, payload),
        Protocol::V201 => v201::decode_result(cmd, payload),
    }
}

/// A payload that passed its schema into its typed form.
fn typed<'a, T: serde::Deserialize<'a>>(payload: &'a Json) -> Result<T, Rejection> {
    T::deserialize(payload).map_err(|e| Rejection::formation(&e.to_string()))
}

fn time(s: &str, field: &str) -> Result<DateTime<Utc>, Rejection> {
    parse_time(s).ok_or_else(|| Rejection::property(field, "is not an RFC 3339 date-time"))
}

/// `meterValue` as both versions shape it; the sampled values differ.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValue<'a, S> {
    timestamp: &'a str,
    sampled_value: Vec<S>,
}

/// Normalise every sampled value, naming the exact field of any bad one.
fn samples<'a, S>(
    values: Vec<MeterValue<'a, S>>,
    field: &str,
    to_raw: impl Fn(S) -> crate::domain::meter::RawSample<'a>,
) -> Result<Vec<crate::domain::Sample>, Rejection> {
    let mut out = Vec::with_capacity(values.iter().map(|mv| mv.sampled_value.len()).sum());
    for (i, mv) in values.into_iter().enumerate() {
        let t = parse_time(mv.timestamp)
            .ok_or_else(|| Rejection::property(&format!("{field}[{i}].timestamp"), "is not an RFC 3339 date-time"))?;
        for (j, raw) in mv.sampled_value.into_iter().enumerate() {
            let name = || format!("{field}[{i}].sampledValue[{j}]");
            let sample = crate::domain::meter::normalise(t, to_raw(raw), name)
                .map_err(|e| Rejection::property(&e.field, &e.reason))?;
            out.push(sample);
        }
    }
    Ok(out)
}

/// BootNotification status, spelled the same in both versions.
fn registration(r: crate::domain::Registration) -> &'static str {
    match r {
        crate::domain::Registration::Accepted => "Accepted",
        crate::domain::Registration::Pending => "Pending",
        crate::domain::Registration::Rejected => "Rejected",
    }
}

/// RFC 3339; a timestamp without offset (seen on real chargers) is taken as UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_with_and_without_offset() {
        assert!(parse_time("2026-01-01T10:00:00+01:00").is_some());
        assert_eq!(parse_time("2026-01-01T10:00:00"), parse_time("2026-01-01T10:00:00Z"));
        assert!(parse_time("2026-13-01T10:00:00Z").is_none());
    }

    #[test]
    fn every_ack_reply_validates_against_its_response_schema() {
        let now = Utc::now();
        for proto in [Protocol::V16, Protocol::V201] {
            for action in [
                "DataTransfer",
                "NotifyEVChargingNeeds",
                "NotifyEVChargingSchedule",
                "NotifyReport",
                "StatusNotification",
                "FirmwareStatusNotification",
                "SecurityEventNotification",
                "DiagnosticsStatusNotification",
                "MeterValues",
                "LogStatusNotification",
                "NotifyEvent",
            ] {
                if !schema::knows(proto, action) {
                    continue;
                }
                let payload = encode_reply(proto, action, &Reply::Ack);
                schema::validate(proto, action, Part::Response, &payload)
                    .unwrap_or_else(|e| panic!("{proto} {action}: {e}"));
            }
            for (action, reply) in [
                (
                    "BootNotification",
                    Reply::Boot {
                        status: crate::domain::Registration::Pending,
                        interval: 30,
                        now,
                    },
                ),
                ("Heartbeat", Reply::Heartbeat { now }),
                (
                    "Authorize",
                    Reply::Auth {
                        status: crate::domain::AuthStatus::NotAtThisTime,
                    },
                ),
            ] {
                let payload = encode_reply(proto, action, &reply);
                schema::validate(proto, action, Part::Response, &payload)
                    .unwrap_or_else(|e| panic!("{proto} {action}: {e}"));
            }
        }
        let p = encode_reply(
            Protocol::V16,
            "StartTransaction",
            &Reply::TxStarted {
                session: 7,
                auth: crate::domain::AuthStatus::Accepted,
            },
        );
        schema::validate(Protocol::V16, "StartTransaction", Part::Response, &p).unwrap();
        let p = encode_reply(
            Protocol::V201,
            "TransactionEvent",
            &Reply::Tx {
                auth: Some(crate::domain::AuthStatus::Accepted),
            },
        );
        schema::validate(Protocol::V201, "TransactionEvent", Part::Response, &p).unwrap();
        let ended = Reply::TxEnded {
            auth: None,
            total_cost: Some("3.57".parse().unwrap()),
        };
        let p = encode_reply(Protocol::V201, "TransactionEvent", &ended);
        assert_eq!(p["totalCost"], 3.57);
        schema::validate(Protocol::V201, "TransactionEvent", Part::Response, &p).unwrap();
        let p = encode_reply(Protocol::V16, "StopTransaction", &ended);
        schema::validate(Protocol::V16, "StopTransaction", Part::Response, &p).unwrap();
    }

    #[test]
    fn decode_classifies_unknown_and_unsupported_actions() {
        let now = Utc::now();
        let code = |proto, action, text| {
            decode_call(proto, action, &Json::parse(text, &bumpalo::Bump::new()).unwrap(), now)
                .unwrap_err()
                .code
        };
        assert_eq!(code(Protocol::V16, "FlyToTheMoon", "{}"), ErrorCode::NotImplemented);
        assert_eq!(
            code(Protocol::V16, "Reset", r#"{"type": "Hard"}"#),
            ErrorCode::NotSupported
        );
        assert_eq!(
            code(Protocol::V201, "Reset", r#"{"type": "Immediate"}"#),
            ErrorCode::NotSupported
        );
        // Plug & Charge messages are supported now (docs/plug-and-charge.md).
        let status = r#"{"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "a", "issuerKeyHash": "b", "serialNumber": "c", "responderURL": "http://x"}}"#;
        assert!(matches!(
            decode_call(
                Protocol::V201,
                "GetCertificateStatus",
                &Json::parse(status, &bumpalo::Bump::new()).unwrap(),
                now
            ),
            Ok(Inbound::CertificateStatus { .. })
        ));
        let mv = json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "abc"}]}]});
        let e = decode_call(
            Protocol::V16,
            "MeterValues",
            &Json::from_value(&mv, &bumpalo::Bump::new()),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::PropertyConstraintViolation);
        assert!(
            e.description.contains("meterValue[0].sampledValue[0].value"),
            "{}",
            e.description
        );
    }

    #[test]
    fn transfer_commands_and_answers_pass_the_schemas_of_both_versions() {
        use crate::domain::message::DataTransferAnswer;
        use crate::domain::transfer::{FirmwareOrder, FirmwareSignature, LogKind};
        let plain = FirmwareOrder {
            url: "http://h:9000/files/firmware/ab/fw.bin".into(),
            sha256: None,
            retrieve_at: None,
            retries: Some(2),
            signature: None,
        };
        let signed = FirmwareOrder {
            signature: Some(FirmwareSignature {
                signature: "c2ln".into(),
                signing_cert: "-----BEGIN CERTIFICATE-----".into(),
            }),
            ..plain.clone()
        };
        let cases = [
            (Protocol::V16, plain.clone(), "UpdateFirmware"),
            (Protocol::V16, signed.clone(), "SignedUpdateFirmware"),
            (Protocol::V201, plain, "UpdateFirmware"),
            (Protocol::V201, signed, "UpdateFirmware"),
        ];
        for (proto, order, action) in cases {
            let cmd = Command::UpdateFirmware { request_id: 7, order };
            let (a, _) = encode_command(proto, &cmd).unwrap_or_else(|e| panic!("{proto}: {e}"));
            assert_eq!(a, action);
        }
        for (proto, kind, action) in [
            (Protocol::V16, LogKind::Diagnostics, "GetDiagnostics"),
            (Protocol::V16, LogKind::Security, "GetLog"),
            (Protocol::V201, LogKind::Diagnostics, "GetLog"),
        ] {
            let cmd = Command::GetLog {
                request_id: 3,
                kind,
                url: "http://h/upload/t".into(),
                since: Some(Utc::now()),
            };
            assert_eq!(encode_command(proto, &cmd).unwrap().0, action);
        }
        for proto in [Protocol::V16, Protocol::V201] {
            let cmd = Command::DataTransfer {
                vendor_id: "v".into(),
                message_id: Some("m".into()),
                data: Some(r#"{"a":1}"#.into()),
            };
            encode_command(proto, &cmd).unwrap();
            let reply = Reply::DataTransfer(DataTransferAnswer {
                status: "Accepted".into(),
                data: Some("[1,2]".into()),
                note: None,
            });
            let p = encode_reply(proto, "DataTransfer", &reply);
            schema::validate(proto, "DataTransfer", Part::Response, &p).unwrap();
        }
        // 1.6 UpdateFirmware and GetDiagnostics answer without a status: consent.
        let cmd = Command::UpdateFirmware {
            request_id: 1,
            order: FirmwareOrder {
                url: "http://h/f".into(),
                sha256: None,
                retrieve_at: None,
                retries: None,
                signature: None,
            },
        };
        assert!(decode_result(Protocol::V16, &cmd, &json!({})).accepted());
        assert!(!decode_result(Protocol::V201, &cmd, &json!({"status": "Rejected"})).accepted());
    }

    #[test]
    fn commands_are_schema_checked() {
        let cmd = Command::Trigger {
            message: "Nonsense".into(),
            evse: None,
        };
        assert!(
            encode_command(Protocol::V16, &cmd)
                .unwrap_err()
                .contains("requestedMessage")
        );
        let cmd = Command::SetConfig {
            key: "NoDot".into(),
            value: "1".into(),
        };
        assert!(encode_command(Protocol::V201, &cmd).is_err());
        let cmd = Command::GetConfig {
            keys: vec!["OCPPCommCtrlr.HeartbeatInterval".into()],
        };
        let (action, p) = encode_command(Protocol::V201, &cmd).unwrap();
        assert_eq!(action, "GetVariables");
        assert_eq!(p["getVariableData"][0]["component"]["name"], "OCPPCommCtrlr");
    }
}
