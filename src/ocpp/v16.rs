//! OCPP 1.6J: typed charger-initiated messages, their translation into the
//! domain model, and the translation of domain replies and commands back.

use super::json::Json;
use super::{Decoded, MeterValue, Rejection, time, typed};
use crate::domain::message::{Command, CommandResult, ConfigEntry, Inbound, ProfilePurpose, Reply};
use crate::domain::meter::RawSample;
use crate::domain::session::{TxMessage, TxPhase, TxTarget};
use crate::domain::transfer::LogKind;
use crate::domain::{AuthStatus, ChargerTxRef, ConnectorStatus};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootNotification {
    charge_point_vendor: String,
    charge_point_model: String,
    charge_point_serial_number: Option<String>,
    charge_box_serial_number: Option<String>,
    firmware_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorize {
    id_tag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusNotification {
    connector_id: u32,
    error_code: String,
    info: Option<String>,
    status: String,
    timestamp: Option<String>,
    vendor_error_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartTransaction {
    connector_id: u32,
    id_tag: String,
    meter_start: i64,
    timestamp: String,
    reservation_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopTransaction<'a> {
    id_tag: Option<String>,
    meter_stop: i64,
    timestamp: String,
    transaction_id: i64,
    reason: Option<String>,
    #[serde(default)]
    #[serde(borrow)]
    transaction_data: Vec<MeterValue<'a, SampledValue<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues<'a> {
    connector_id: u32,
    transaction_id: Option<i64>,
    #[serde(borrow)]
    meter_value: Vec<MeterValue<'a, SampledValue<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SampledValue<'a> {
    value: &'a str,
    context: Option<&'a str>,
    format: Option<&'a str>,
    measurand: Option<&'a str>,
    phase: Option<&'a str>,
    location: Option<&'a str>,
    unit: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataTransfer {
    vendor_id: String,
    message_id: Option<String>,
    data: Option<String>,
}

/// Charger-initiated actions we record and acknowledge with `{}`.
const NOTICES: &[&str] = &[];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferStatus {
    status: String,
    request_id: Option<i64>,
}

pub fn decode(action: &str, payload: &Json, now: DateTime<Utc>) -> Result<Decoded, Rejection> {
    let inbound = match action {
        "BootNotification" => {
            let m: BootNotification = typed(payload)?;
            Inbound::Boot {
                vendor: m.charge_point_vendor,
                model: m.charge_point_model,
                serial: m.charge_point_serial_number.or(m.charge_box_serial_number),
                firmware: m.firmware_version,
                reason: None,
            }
        }
        "Heartbeat" => Inbound::Heartbeat,
        "Authorize" => Inbound::Authorize {
            token: typed::<Authorize>(payload)?.id_tag,
        },
        "StatusNotification" => {
            let m: StatusNotification = typed(payload)?;
            let t = m
                .timestamp
                .as_deref()
                .map(|s| time(s, "timestamp"))
                .transpose()?
                .unwrap_or(now);
            let error_code = (m.error_code != "NoError").then_some(m.error_code);
            let info = match (m.info, m.vendor_error_code) {
                (Some(i), Some(v)) => Some(format!("{i} (vendor code {v})")),
                (i, v) => i.or(v.map(|v| format!("vendor code {v}"))),
            };
            Inbound::Status {
                evse: m.connector_id,
                connector: 1,
                status: status(&m.status),
                error_code,
                info,
                t,
            }
        }
        "StartTransaction" => {
            let m: StartTransaction = typed(payload)?;
            let t = time(&m.timestamp, "timestamp")?;
            let tx_ref = ChargerTxRef::V16 {
                connector: m.connector_id,
                timestamp: t,
                meter_start: m.meter_start,
                id_tag: m.id_tag.clone(),
            };
            Inbound::Tx(TxMessage {
                target: TxTarget::Charger(tx_ref),
                phase: TxPhase::Started,
                t,
                evse: Some(m.connector_id),
                connector: Some(1),
                token: Some(m.id_tag),
                meter_wh: Some(m.meter_start),
                samples: vec![],
                seq_no: None,
                charging_state: None,
                stop_reason: None,
                offline: false,
                remote_start_id: None,
                reservation_id: m.reservation_id,
            })
        }
        "StopTransaction" => {
            let m: StopTransaction = typed(payload)?;
            let session = u64::try_from(m.transaction_id)
                .map_err(|_| Rejection::property("transactionId", "is not a transaction id this server issued"))?;
            Inbound::Tx(TxMessage {
                target: TxTarget::Session(session),
                phase: TxPhase::Ended,
                t: time(&m.timestamp, "timestamp")?,
                evse: None,
                connector: None,
                token: m.id_tag,
                meter_wh: Some(m.meter_stop),
                samples: super::samples(m.transaction_data, "transactionData", raw_sample)?,
                seq_no: None,
                charging_state: None,
                stop_reason: m.reason,
                offline: false,
                remote_start_id: None,
                reservation_id: None,
            })
        }
        "MeterValues" => {
            let m: MeterValues = typed(payload)?;
            let samples = super::samples(m.meter_value, "meterValue", raw_sample)?;
            match m.transaction_id.map(u64::try_from) {
                Some(Ok(id)) => Inbound::Tx(TxMessage {
                    target: TxTarget::Session(id),
                    phase: TxPhase::Updated,
                    t: samples.iter().map(|s| s.t).max().unwrap_or(now),
                    evse: Some(m.connector_id),
                    connector: Some(1),
                    token: None,
                    meter_wh: None,
                    samples,
                    seq_no: None,
                    charging_state: None,
                    stop_reason: None,
                    offline: false,
                    remote_start_id: None,
                    reservation_id: None,
                }),
                Some(Err(_)) => {
                    return Err(Rejection::property(
                        "transactionId",
                        "is not a transaction id this server issued",
                    ));
                }
                None => Inbound::Meter {
                    evse: m.connector_id,
                    samples,
                },
            }
        }
        "DataTransfer" => {
            let m: DataTransfer = typed(payload)?;
            if m.vendor_id == super::pnc::PNC_VENDOR
                && let Some(pnc) = super::pnc::decode_v16(m.message_id.as_deref(), m.data.as_deref())
            {
                return pnc.map(Decoded::Inbound);
            }
            Inbound::DataTransfer(crate::domain::message::DataTransfer {
                vendor_id: m.vendor_id,
                message_id: m.message_id,
                data: m.data,
                answer: Default::default(),
            })
        }
        "FirmwareStatusNotification" | "SignedFirmwareStatusNotification" => {
            let m: TransferStatus = typed(payload)?;
            Inbound::FirmwareStatus {
                status: m.status,
                request_id: m.request_id,
            }
        }
        "DiagnosticsStatusNotification" | "LogStatusNotification" => {
            let m: TransferStatus = typed(payload)?;
            Inbound::LogStatus {
                status: m.status,
                request_id: m.request_id,
            }
        }
        a if NOTICES.contains(&a) => Inbound::Notice {
            kind: a.to_string(),
            detail: payload.to_value().to_string(),
        },
        _ => return Ok(Decoded::NotOurs),
    };
    Ok(Decoded::Inbound(inbound))
}

/// One sampled value in the shape every version normalises.
fn raw_sample(sv: SampledValue) -> RawSample {
    let value_is_signed = sv.format == Some("SignedData");
    RawSample {
        value: sv.value.into(),
        measurand: sv.measurand,
        phase: sv.phase,
        context: sv.context,
        location: sv.location,
        unit: sv.unit,
        multiplier: 0,
        value_is_signed,
        signed: None,
    }
}

fn status(s: &str) -> ConnectorStatus {
    match s {
        "Available" => ConnectorStatus::Available,
        "Preparing" => ConnectorStatus::Preparing,
        "Charging" => ConnectorStatus::Charging,
        "SuspendedEV" => ConnectorStatus::SuspendedEv,
        "SuspendedEVSE" => ConnectorStatus::SuspendedEvse,
        "Finishing" => ConnectorStatus::Finishing,
        "Reserved" => ConnectorStatus::Reserved,
        "Unavailable" => ConnectorStatus::Unavailable,
        "Faulted" => ConnectorStatus::Faulted,
        _ => ConnectorStatus::Unknown,
    }
}

fn auth(status: AuthStatus) -> &'static str {
    match status {
        AuthStatus::Accepted => "Accepted",
        AuthStatus::Blocked => "Blocked",
        AuthStatus::Expired => "Expired",
        AuthStatus::ConcurrentTx => "ConcurrentTx",
        AuthStatus::Unknown | AuthStatus::NotAtThisLocation | AuthStatus::NotAtThisTime => "Invalid",
    }
}

pub fn encode_reply(action: &str, reply: &Reply) -> Value {
    match reply {
        Reply::Boot { status, interval, now } => {
            json!({"status": super::registration(*status), "currentTime": super::format_time(*now), "interval": interval})
        }
        Reply::Heartbeat { now } => json!({"currentTime": super::format_time(*now)}),
        Reply::Auth { status } => json!({"idTagInfo": {"status": auth(*status)}}),
        Reply::TxStarted { session, auth: a } => {
            json!({"transactionId": session, "idTagInfo": {"status": auth(*a)}})
        }
        Reply::Tx { auth: Some(a) } if action == "StopTransaction" => {
            json!({"idTagInfo": {"status": auth(*a)}})
        }
        Reply::Tx { .. } | Reply::TxEnded { .. } => json!({}),
        Reply::Ack if action == "DataTransfer" => json!({"status": "UnknownVendorId"}),
        Reply::Ack => json!({}),
        Reply::DataTransfer(a) => {
            let mut p = json!({"status": a.status});
            if let Some(d) = &a.data {
                p["data"] = json!(d);
            }
            p
        }
        Reply::Status { accepted } => json!({"status": if *accepted { "Accepted" } else { "Rejected" }}),
        // Plug & Charge over 1.6: the 2.0.1 answer as the DataTransfer's data.
        Reply::EvCertificate(_) | Reply::CertificateStatus(_) | Reply::ContractAuth { .. } => {
            json!({"status": "Accepted", "data": super::v201::encode_reply(action, reply).to_string()})
        }
    }
}

pub fn encode_command(cmd: &Command) -> Result<(&'static str, Value), String> {
    Ok(match cmd {
        Command::Trigger { message, .. } if super::security::is_sign_trigger(message) => {
            return super::security::encode(crate::domain::Protocol::V16, cmd);
        }
        Command::CertificateSigned { .. }
        | Command::InstallCertificate { .. }
        | Command::DeleteCertificate { .. }
        | Command::GetInstalledCertificates { .. } => {
            return super::security::encode(crate::domain::Protocol::V16, cmd);
        }
        Command::Reset { hard } => ("Reset", json!({"type": if *hard { "Hard" } else { "Soft" }})),
        Command::Unlock { evse, .. } => ("UnlockConnector", json!({"connectorId": evse})),
        Command::Trigger { message, evse } => {
            let action = if TRIGGERS.contains(&message.as_str()) {
                "TriggerMessage"
            } else if EXTENDED_TRIGGERS.contains(&message.as_str()) {
                "ExtendedTriggerMessage"
            } else {
                return Err(format!(
                    "requestedMessage: {message:?} is not a trigger kind of OCPP 1.6; valid: {}",
                    trigger_kinds().join(", ")
                ));
            };
            let mut p = json!({"requestedMessage": message});
            if let Some(e) = evse {
                p["connectorId"] = json!(e);
            }
            (action, p)
        }
        Command::GetConfig { keys } if keys.is_empty() => ("GetConfiguration", json!({})),
        Command::GetConfig { keys } => ("GetConfiguration", json!({"key": keys})),
        Command::SetConfig { key, value } => ("ChangeConfiguration", json!({"key": key, "value": value})),
        // The security whitepaper's AuthorizationKey: our passwords are hex already.
        Command::SetPassword { password } => (
            "ChangeConfiguration",
            json!({"key": "AuthorizationKey", "value": password}),
        ),
        Command::RemoteStart { token, evse, .. } => {
            let mut p = json!({"idTag": token});
            if let Some(e) = evse {
                p["connectorId"] = json!(e);
            }
            ("RemoteStartTransaction", p)
        }
        Command::RemoteStop { session } => ("RemoteStopTransaction", json!({"transactionId": session.id})),
        Command::Availability { operative, evse } => (
            "ChangeAvailability",
            json!({"connectorId": evse.unwrap_or(0), "type": if *operative { "Operative" } else { "Inoperative" }}),
        ),
        Command::GetTransactionStatus { .. } => {
            return Err("transaction status is not available on OCPP 1.6 (GetTransactionStatus is 2.0.1)".into());
        }
        Command::SendLocalList { version, full, entries } => {
            let list: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut v = json!({"idTag": e.uid});
                    if let Some(item) = &e.item {
                        let mut info = json!({"status": auth(item.status)});
                        if let Some(x) = item.expires {
                            info["expiryDate"] = json!(super::format_time(x));
                        }
                        if let Some(g) = &item.group {
                            info["parentIdTag"] = json!(g.chars().take(20).collect::<String>());
                        }
                        v["idTagInfo"] = info;
                    }
                    v
                })
                .collect();
            let mut p = json!({"listVersion": version, "updateType": if *full { "Full" } else { "Differential" }});
            if !list.is_empty() {
                p["localAuthorizationList"] = json!(list);
            }
            ("SendLocalList", p)
        }
        Command::GetLocalListVersion => ("GetLocalListVersion", json!({})),
        Command::ClearCache => ("ClearCache", json!({})),
        Command::ReserveNow {
            id,
            token,
            group,
            evse,
            expires,
            ..
        } => {
            let mut p = json!({"connectorId": evse.unwrap_or(0), "expiryDate": super::format_time(*expires),
                               "idTag": token, "reservationId": id});
            if let Some(g) = group {
                p["parentIdTag"] = json!(g.chars().take(20).collect::<String>());
            }
            ("ReserveNow", p)
        }
        Command::CancelReservation { id } => ("CancelReservation", json!({"reservationId": id})),
        Command::SetDisplayMessage { .. }
        | Command::GetDisplayMessages { .. }
        | Command::ClearDisplayMessage { .. } => {
            return Err(
                "display messages are not available on OCPP 1.6 (SetDisplayMessage is 2.0.1; 1.6 has no standard DataTransfer for it)"
                    .into(),
            );
        }
        Command::CostUpdated { .. } => {
            return Err("running cost updates are not available on OCPP 1.6 (CostUpdated is 2.0.1)".into());
        }
        Command::GetBaseReport { .. } | Command::GetReport { .. } => {
            return Err("OCPP 1.6 has no device-model reports; its configuration is read with GetConfiguration".into());
        }
        Command::SetMonitor { .. }
        | Command::GetMonitoringReport { .. }
        | Command::ClearMonitor { .. }
        | Command::SetMonitoringBase { .. }
        | Command::SetMonitoringLevel { .. } => {
            return Err("OCPP 1.6 has no variable monitoring (it is an OCPP 2.0.1 feature)".into());
        }
        Command::SetProfile { evse, profile } => {
            let mut p = json!({
                "chargingProfileId": profile.id,
                "stackLevel": profile.stack_level,
                "chargingProfilePurpose": purpose_name(profile.purpose),
                "chargingProfileKind": if profile.start.is_some() { "Absolute" } else { "Relative" },
                "chargingSchedule": super::schedule(profile),
            });
            if let Some(tx) = &profile.transaction_id {
                let id: i64 = tx.parse().map_err(|_| format!("{tx:?} is not a 1.6 transaction id"))?;
                p["transactionId"] = json!(id);
            }
            (
                "SetChargingProfile",
                json!({"connectorId": evse, "csChargingProfiles": p}),
            )
        }
        Command::ClearProfile { id, evse, purpose } => {
            let mut p = json!({});
            if let Some(id) = id {
                p["id"] = json!(id);
            }
            if let Some(e) = evse {
                p["connectorId"] = json!(e);
            }
            if let Some(purpose) = purpose {
                p["chargingProfilePurpose"] = json!(purpose_name(*purpose));
            }
            ("ClearChargingProfile", p)
        }
        Command::UpdateFirmware { request_id, order } => match &order.signature {
            None => {
                let mut p = json!({
                    "location": order.url,
                    "retrieveDate": super::format_time(order.retrieve_at.unwrap_or_else(Utc::now)),
                });
                if let Some(r) = order.retries {
                    p["retries"] = json!(r);
                }
                ("UpdateFirmware", p)
            }
            Some(sig) => {
                let mut p = json!({"requestId": request_id, "firmware": super::firmware(order, sig)});
                if let Some(r) = order.retries {
                    p["retries"] = json!(r);
                }
                ("SignedUpdateFirmware", p)
            }
        },
        Command::GetLog {
            request_id,
            kind: LogKind::Security,
            url,
            since,
        } => ("GetLog", super::get_log(*request_id, "SecurityLog", url, *since)),
        Command::GetLog { url, since, .. } => {
            let mut p = json!({"location": url});
            if let Some(t) = since {
                p["startTime"] = json!(super::format_time(*t));
            }
            ("GetDiagnostics", p)
        }
        Command::DataTransfer {
            vendor_id,
            message_id,
            data,
        } => {
            let mut p = json!({"vendorId": vendor_id});
            if let Some(m) = message_id {
                p["messageId"] = json!(m);
            }
            if let Some(d) = data {
                p["data"] = json!(d);
            }
            ("DataTransfer", p)
        }
    })
}

fn purpose_name(p: ProfilePurpose) -> &'static str {
    match p {
        ProfilePurpose::ChargerMax => "ChargePointMaxProfile",
        ProfilePurpose::TxDefault => "TxDefaultProfile",
        ProfilePurpose::Tx => "TxProfile",
    }
}

pub fn decode_result(cmd: &Command, payload: &Value) -> CommandResult {
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
    match cmd {
        Command::GetConfig { .. } => {
            let entries = payload
                .get("configurationKey")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| ConfigEntry {
                            key: e.get("key").and_then(Value::as_str).unwrap_or_default().to_string(),
                            value: e.get("value").and_then(Value::as_str).map(str::to_string),
                            readonly: e.get("readonly").and_then(Value::as_bool).unwrap_or(false),
                            status: None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let unknown = payload
                .get("unknownKey")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            CommandResult::Config {
                entries,
                unknown,
                accepted: true,
            }
        }
        Command::SetConfig { .. } | Command::SetPassword { .. } => {
            CommandResult::status(status, &["Accepted", "RebootRequired"])
        }
        Command::Unlock { .. } => CommandResult::status(status, &["Unlocked"]),
        Command::Availability { .. } => CommandResult::status(status, &["Accepted", "Scheduled"]),
        Command::GetLocalListVersion => CommandResult::ListVersion {
            version: payload.get("listVersion").and_then(Value::as_i64).unwrap_or(0),
        },
        // UpdateFirmware and GetDiagnostics have no status: an answer is consent.
        Command::UpdateFirmware { order, .. } if order.signature.is_none() => {
            CommandResult::status("Accepted", &["Accepted"])
        }
        Command::GetLog {
            kind: LogKind::Diagnostics,
            ..
        } => CommandResult::Status {
            status: "Accepted".into(),
            accepted: true,
            detail: payload.get("fileName").and_then(Value::as_str).map(str::to_string),
        },
        Command::GetLog { .. } => CommandResult::Status {
            status: status.to_string(),
            accepted: status == "Accepted" || status == "AcceptedCanceled",
            detail: payload.get("filename").and_then(Value::as_str).map(str::to_string),
        },
        Command::DataTransfer { .. } => CommandResult::Status {
            status: status.to_string(),
            accepted: status == "Accepted",
            detail: payload.get("data").and_then(Value::as_str).map(str::to_string),
        },
        _ => CommandResult::status(status, &["Accepted"]),
    }
}

/// 1.6 TriggerMessage kinds.
const TRIGGERS: &[&str] = &[
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
];

/// Kinds only the security extension's ExtendedTriggerMessage has.
const EXTENDED_TRIGGERS: &[&str] = &["LogStatusNotification", "SignChargePointCertificate"];

/// Every kind `charger trigger` accepts on 1.6.
pub fn trigger_kinds() -> Vec<&'static str> {
    TRIGGERS.iter().chain(EXTENDED_TRIGGERS).copied().collect()
}
