//! OCPP 2.0.1: typed charger-initiated messages, their translation into the
//! domain model, and the translation of domain replies and commands back.

use super::json::Json;
use super::{Decoded, MeterValue, Rejection, time, typed};
use crate::domain::message::{Command, CommandResult, ConfigEntry, Inbound, ProfilePurpose, Reply};
use crate::domain::meter::RawSample;
use crate::domain::ops::{DisplayMessage, MessagePriority, MessageState};
use crate::domain::session::{TxMessage, TxPhase, TxTarget};
use crate::domain::transfer::LogKind;
use crate::domain::{AuthStatus, ChargerTxRef, ConnectorStatus, SignedMeter, TokenKind};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BootNotification {
    charging_station: ChargingStation,
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargingStation {
    serial_number: Option<String>,
    model: String,
    vendor_name: String,
    firmware_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdToken {
    id_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorize {
    id_token: IdToken,
    certificate: Option<String>,
    #[serde(rename = "iso15118CertificateHashData", default)]
    hash_data: Vec<crate::domain::pnc::OcspRequestData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Get15118EvCertificate {
    #[serde(rename = "iso15118SchemaVersion")]
    schema_version: String,
    action: String,
    exi_request: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetCertificateStatus {
    ocsp_request_data: crate::domain::pnc::OcspRequestData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusNotification {
    timestamp: String,
    connector_status: String,
    evse_id: u32,
    connector_id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues<'a> {
    evse_id: u32,
    #[serde(borrow)]
    meter_value: Vec<MeterValue<'a, SampledValue<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SampledValue<'a> {
    value: serde_json::Number,
    context: Option<&'a str>,
    measurand: Option<&'a str>,
    phase: Option<&'a str>,
    location: Option<&'a str>,
    signed_meter_value: Option<SignedMeterValue>,
    #[serde(borrow)]
    unit_of_measure: Option<UnitOfMeasure<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedMeterValue {
    signed_meter_data: String,
    signing_method: String,
    encoding_method: String,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnitOfMeasure<'a> {
    unit: Option<&'a str>,
    #[serde(default)]
    multiplier: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionEvent<'a> {
    event_type: String,
    timestamp: String,
    trigger_reason: String,
    seq_no: u64,
    #[serde(default)]
    offline: bool,
    transaction_info: TransactionInfo,
    id_token: Option<IdToken>,
    evse: Option<Evse>,
    #[serde(default)]
    #[serde(borrow)]
    meter_value: Vec<MeterValue<'a, SampledValue<'a>>>,
    reservation_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReservationStatusUpdate {
    reservation_id: i64,
    reservation_update_status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyDisplayMessages {
    request_id: i64,
    #[serde(default)]
    tbc: bool,
    #[serde(default)]
    message_info: Vec<MessageInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageInfo {
    id: i64,
    priority: MessagePriority,
    state: Option<MessageState>,
    start_date_time: Option<String>,
    end_date_time: Option<String>,
    transaction_id: Option<String>,
    message: MessageContent,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageContent {
    content: String,
    language: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionInfo {
    transaction_id: String,
    charging_state: Option<String>,
    stopped_reason: Option<String>,
    remote_start_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Evse {
    id: u32,
    connector_id: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataTransfer {
    vendor_id: String,
    message_id: Option<String>,
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferStatus {
    status: String,
    request_id: Option<i64>,
}

/// Charger-initiated actions we record and acknowledge.
const NOTICES: &[&str] = &[
    "NotifyCustomerInformation",
    "PublishFirmwareStatusNotification",
    "ReportChargingProfiles",
];

pub fn decode(action: &str, payload: &Json, now: chrono::DateTime<chrono::Utc>) -> Result<Decoded, Rejection> {
    if let Some(inbound) = super::device::decode(action, payload, now)? {
        return Ok(Decoded::Inbound(inbound));
    }
    let inbound = match action {
        "BootNotification" => {
            let m: BootNotification = typed(payload)?;
            Inbound::Boot {
                vendor: m.charging_station.vendor_name,
                model: m.charging_station.model,
                serial: m.charging_station.serial_number,
                firmware: m.charging_station.firmware_version,
                reason: Some(m.reason),
            }
        }
        "Heartbeat" => Inbound::Heartbeat,
        "Authorize" => {
            let m: Authorize = typed(payload)?;
            if m.certificate.is_none() && m.hash_data.is_empty() {
                Inbound::Authorize {
                    token: m.id_token.id_token,
                }
            } else {
                Inbound::ContractAuthorize {
                    token: m.id_token.id_token,
                    data: crate::domain::pnc::ContractData {
                        certificate: m.certificate,
                        hash_data: m.hash_data,
                    },
                }
            }
        }
        "Get15118EVCertificate" => {
            let m: Get15118EvCertificate = typed(payload)?;
            Inbound::EvCertificate {
                schema_version: m.schema_version,
                action: m.action,
                exi_request: m.exi_request,
            }
        }
        "GetCertificateStatus" => Inbound::CertificateStatus {
            request: typed::<GetCertificateStatus>(payload)?.ocsp_request_data,
        },
        "StatusNotification" => {
            let m: StatusNotification = typed(payload)?;
            Inbound::Status {
                evse: m.evse_id,
                connector: m.connector_id,
                status: status(&m.connector_status),
                error_code: None,
                info: None,
                t: time(&m.timestamp, "timestamp")?,
            }
        }
        "MeterValues" => {
            let m: MeterValues = typed(payload)?;
            Inbound::Meter {
                evse: m.evse_id,
                samples: super::samples(m.meter_value, "meterValue", raw_sample)?,
            }
        }
        "TransactionEvent" => {
            let m: TransactionEvent = typed(payload)?;
            let phase = match m.event_type.as_str() {
                "Started" => TxPhase::Started,
                "Ended" => TxPhase::Ended,
                _ => TxPhase::Updated,
            };
            let stop_reason = m
                .transaction_info
                .stopped_reason
                .or_else(|| (phase == TxPhase::Ended).then(|| m.trigger_reason.clone()));
            Inbound::Tx(TxMessage {
                target: TxTarget::Charger(ChargerTxRef::V201 {
                    transaction_id: m.transaction_info.transaction_id,
                }),
                phase,
                t: time(&m.timestamp, "timestamp")?,
                evse: m.evse.as_ref().map(|e| e.id),
                connector: m.evse.as_ref().map(|e| e.connector_id.unwrap_or(1)),
                token: m.id_token.map(|t| t.id_token),
                meter_wh: None,
                samples: super::samples(m.meter_value, "meterValue", raw_sample)?,
                seq_no: Some(m.seq_no),
                charging_state: m.transaction_info.charging_state,
                stop_reason,
                offline: m.offline,
                remote_start_id: m.transaction_info.remote_start_id,
                reservation_id: m.reservation_id,
            })
        }
        "ReservationStatusUpdate" => {
            let m: ReservationStatusUpdate = typed(payload)?;
            Inbound::ReservationStatus {
                id: m.reservation_id,
                status: m.reservation_update_status,
            }
        }
        "NotifyDisplayMessages" => {
            let m: NotifyDisplayMessages = typed(payload)?;
            let mut messages = Vec::with_capacity(m.message_info.len());
            for (i, info) in m.message_info.into_iter().enumerate() {
                let at = |t: Option<String>, f: &str| t.map(|t| time(&t, &format!("messageInfo[{i}].{f}"))).transpose();
                messages.push(DisplayMessage {
                    id: info.id,
                    priority: info.priority,
                    state: info.state,
                    from: at(info.start_date_time, "startDateTime")?,
                    until: at(info.end_date_time, "endDateTime")?,
                    transaction_id: info.transaction_id,
                    text: info.message.content,
                    language: info.message.language,
                });
            }
            Inbound::DisplayMessages {
                request_id: m.request_id,
                messages,
                more_to_come: m.tbc,
            }
        }
        "DataTransfer" => {
            let m: DataTransfer = typed(payload)?;
            Inbound::DataTransfer(crate::domain::message::DataTransfer {
                vendor_id: m.vendor_id,
                message_id: m.message_id,
                // A string stays itself; other JSON is kept as its text.
                data: m.data.map(|d| match d {
                    Value::String(s) => s,
                    other => other.to_string(),
                }),
                answer: Default::default(),
            })
        }
        "FirmwareStatusNotification" => {
            let m: TransferStatus = typed(payload)?;
            Inbound::FirmwareStatus {
                status: m.status,
                request_id: m.request_id,
            }
        }
        "LogStatusNotification" => {
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
    let (unit, multiplier) = sv.unit_of_measure.map_or((None, 0), |u| (u.unit, u.multiplier));
    RawSample {
        value: sv.value.to_string().into(),
        measurand: sv.measurand,
        phase: sv.phase,
        context: sv.context,
        location: sv.location,
        unit,
        multiplier,
        value_is_signed: false,
        signed: sv.signed_meter_value.map(|s| SignedMeter {
            data: s.signed_meter_data,
            signing_method: Some(s.signing_method),
            encoding_method: Some(s.encoding_method),
            public_key: Some(s.public_key).filter(|k| !k.is_empty()),
        }),
    }
}

fn status(s: &str) -> ConnectorStatus {
    match s {
        "Available" => ConnectorStatus::Available,
        "Occupied" => ConnectorStatus::Occupied,
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
        AuthStatus::Unknown => "Unknown",
        AuthStatus::ConcurrentTx => "ConcurrentTx",
        AuthStatus::NotAtThisLocation => "NotAtThisLocation",
        AuthStatus::NotAtThisTime => "NotAtThisTime",
    }
}

pub fn encode_reply(action: &str, reply: &Reply) -> Value {
    match reply {
        Reply::Boot { status, interval, now } => {
            json!({"status": super::registration(*status), "currentTime": super::format_time(*now), "interval": interval})
        }
        Reply::Heartbeat { now } => json!({"currentTime": super::format_time(*now)}),
        Reply::Auth { status } => json!({"idTokenInfo": {"status": auth(*status)}}),
        Reply::TxStarted { auth: a, .. } | Reply::Tx { auth: Some(a) } => {
            json!({"idTokenInfo": {"status": auth(*a)}})
        }
        Reply::Tx { auth: None } => json!({}),
        Reply::TxEnded { auth: a, total_cost } => {
            let mut p = json!({});
            if let Some(a) = a {
                p["idTokenInfo"] = json!({"status": auth(*a)});
            }
            if let Some(c) = total_cost.and_then(|c| rust_decimal::prelude::ToPrimitive::to_f64(&c)) {
                p["totalCost"] = json!(c);
            }
            p
        }
        Reply::DataTransfer(a) => {
            let mut p = json!({"status": a.status});
            if let Some(d) = &a.data {
                // JSON when the hook answered JSON, else the text as a string.
                p["data"] = serde_json::from_str::<Value>(d).unwrap_or_else(|_| json!(d));
            }
            p
        }
        Reply::Ack => match action {
            "DataTransfer" => json!({"status": "UnknownVendorId"}),
            "NotifyEVChargingNeeds" | "NotifyEVChargingSchedule" => json!({"status": "Accepted"}),
            _ => json!({}),
        },
        Reply::Status { accepted } => json!({"status": if *accepted { "Accepted" } else { "Rejected" }}),
        Reply::EvCertificate(a) => super::pnc::answer(a, "exiResponse", true),
        Reply::CertificateStatus(a) => super::pnc::answer(a, "ocspResult", false),
        Reply::ContractAuth { status, certificate } => json!({
            "idTokenInfo": {"status": status.map_or("Invalid", auth)},
            "certificateStatus": certificate.as_str(),
        }),
    }
}

/// `Component.Variable` (optionally `Component.Variable.Instance`; an
/// EVSE-scoped component is written `Component@evse`).
fn component_variable(key: &str) -> Result<Value, String> {
    let mut parts = key.splitn(3, '.');
    let (Some(component), Some(variable)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "{key:?}: OCPP 2.0.1 variables are written Component.Variable, e.g. OCPPCommCtrlr.HeartbeatInterval"
        ));
    };
    let mut comp = json!({"name": component});
    if let Some((name, evse)) = component.split_once('@') {
        let id: u32 = evse
            .parse()
            .map_err(|_| format!("{key:?}: EVSE after @ must be a number"))?;
        comp = json!({"name": name, "evse": {"id": id}});
    }
    let mut var = json!({"name": variable});
    if let Some(instance) = parts.next() {
        var["instance"] = json!(instance);
    }
    Ok(json!({"component": comp, "variable": var}))
}

fn key_of(item: &Value) -> String {
    let comp = item.pointer("/component/name").and_then(Value::as_str).unwrap_or("?");
    let evse = item.pointer("/component/evse/id").and_then(Value::as_u64);
    let var = item.pointer("/variable/name").and_then(Value::as_str).unwrap_or("?");
    let inst = item.pointer("/variable/instance").and_then(Value::as_str);
    let mut k = match evse {
        Some(e) => format!("{comp}@{e}.{var}"),
        None => format!("{comp}.{var}"),
    };
    if let Some(i) = inst {
        k = format!("{k}.{i}");
    }
    k
}

pub fn encode_command(cmd: &Command) -> Result<(&'static str, Value), String> {
    Ok(match cmd {
        Command::Trigger { message, .. } if super::security::is_sign_trigger(message) => {
            return super::security::encode(crate::domain::Protocol::V201, cmd);
        }
        Command::CertificateSigned { .. }
        | Command::InstallCertificate { .. }
        | Command::DeleteCertificate { .. }
        | Command::GetInstalledCertificates { .. } => {
            return super::security::encode(crate::domain::Protocol::V201, cmd);
        }
        Command::Reset { hard } => ("Reset", json!({"type": if *hard { "Immediate" } else { "OnIdle" }})),
        Command::Unlock { evse, connector } => ("UnlockConnector", json!({"evseId": evse, "connectorId": connector})),
        Command::Trigger { message, evse } => {
            if !TRIGGERS.contains(&message.as_str()) {
                return Err(format!(
                    "requestedMessage: {message:?} is not a trigger kind of OCPP 2.0.1; valid: {}",
                    TRIGGERS.join(", ")
                ));
            }
            let mut p = json!({"requestedMessage": message});
            if let Some(e) = evse {
                p["evse"] = json!({"id": e});
            }
            ("TriggerMessage", p)
        }
        Command::GetConfig { keys } if keys.is_empty() => {
            return Err("OCPP 2.0.1 reads variables by name: give keys as Component.Variable".into());
        }
        Command::GetConfig { keys } => {
            let items = keys
                .iter()
                .map(|k| component_variable(k))
                .collect::<Result<Vec<_>, _>>()?;
            ("GetVariables", json!({"getVariableData": items}))
        }
        Command::SetConfig { key, value } => {
            let mut item = component_variable(key)?;
            item["attributeValue"] = json!(value);
            ("SetVariables", json!({"setVariableData": [item]}))
        }
        Command::SetPassword { password } => (
            "SetVariables",
            json!({"setVariableData": [{
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "attributeValue": password,
            }]}),
        ),
        Command::RemoteStart {
            token,
            evse,
            remote_start_id,
        } => {
            let mut p = json!({"idToken": {"idToken": token, "type": "Central"}, "remoteStartId": remote_start_id});
            if let Some(e) = evse {
                p["evseId"] = json!(e);
            }
            ("RequestStartTransaction", p)
        }
        Command::RemoteStop { session } => match &session.tx_ref {
            ChargerTxRef::V201 { transaction_id } => {
                ("RequestStopTransaction", json!({"transactionId": transaction_id}))
            }
            ChargerTxRef::V16 { .. } => {
                return Err(format!("session {} was started over OCPP 1.6", session.id));
            }
        },
        Command::Availability { operative, evse } => {
            let mut p = json!({"operationalStatus": if *operative { "Operative" } else { "Inoperative" }});
            if let Some(e) = evse {
                p["evse"] = json!({"id": e});
            }
            ("ChangeAvailability", p)
        }
        Command::GetTransactionStatus { transaction_id } => match transaction_id {
            Some(id) => ("GetTransactionStatus", json!({"transactionId": id})),
            None => ("GetTransactionStatus", json!({})),
        },
        Command::SendLocalList { version, full, entries } => {
            let list: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut v = json!({"idToken": id_token(&e.uid, e.kind)});
                    if let Some(item) = &e.item {
                        let mut info = json!({"status": auth(item.status)});
                        if let Some(x) = item.expires {
                            info["cacheExpiryDateTime"] = json!(super::format_time(x));
                        }
                        if let Some(g) = &item.group {
                            info["groupIdToken"] = json!({"idToken": g, "type": "Central"});
                        }
                        v["idTokenInfo"] = info;
                    }
                    v
                })
                .collect();
            let mut p = json!({"versionNumber": version, "updateType": if *full { "Full" } else { "Differential" }});
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
            kind,
            group,
            evse,
            expires,
        } => {
            let mut p = json!({"id": id, "expiryDateTime": super::format_time(*expires),
                               "idToken": id_token(token, *kind)});
            if let Some(e) = evse {
                p["evseId"] = json!(e);
            }
            if let Some(g) = group {
                p["groupIdToken"] = json!({"idToken": g, "type": "Central"});
            }
            ("ReserveNow", p)
        }
        Command::CancelReservation { id } => ("CancelReservation", json!({"reservationId": id})),
        Command::SetDisplayMessage { message: m } => {
            let mut info = json!({
                "id": m.id,
                "priority": m.priority,
                "message": {"format": "UTF8", "content": m.text},
            });
            if let Some(st) = m.state {
                info["state"] = json!(st);
            }
            if let Some(t) = m.from {
                info["startDateTime"] = json!(super::format_time(t));
            }
            if let Some(t) = m.until {
                info["endDateTime"] = json!(super::format_time(t));
            }
            if let Some(tx) = &m.transaction_id {
                info["transactionId"] = json!(tx);
            }
            if let Some(l) = &m.language {
                info["message"]["language"] = json!(l);
            }
            ("SetDisplayMessage", json!({"message": info}))
        }
        Command::GetDisplayMessages { request_id } => ("GetDisplayMessages", json!({"requestId": request_id})),
        Command::ClearDisplayMessage { id } => ("ClearDisplayMessage", json!({"id": id})),
        Command::CostUpdated { transaction_id, total } => {
            let total = rust_decimal::prelude::ToPrimitive::to_f64(total).unwrap_or(0.0);
            (
                "CostUpdated",
                json!({"totalCost": total, "transactionId": transaction_id}),
            )
        }
        Command::SetProfile { evse, profile } => {
            let mut schedule = super::schedule(profile);
            schedule["id"] = json!(profile.id);
            let mut p = json!({
                "id": profile.id,
                "stackLevel": profile.stack_level,
                "chargingProfilePurpose": purpose_name(profile.purpose),
                "chargingProfileKind": if profile.start.is_some() { "Absolute" } else { "Relative" },
                "chargingSchedule": [schedule],
            });
            if let Some(tx) = &profile.transaction_id {
                p["transactionId"] = json!(tx);
            }
            ("SetChargingProfile", json!({"evseId": evse, "chargingProfile": p}))
        }
        Command::ClearProfile { id, evse, purpose } => {
            let mut p = json!({});
            if let Some(id) = id {
                p["chargingProfileId"] = json!(id);
            }
            if evse.is_some() || purpose.is_some() {
                let mut c = json!({});
                if let Some(e) = evse {
                    c["evseId"] = json!(e);
                }
                if let Some(purpose) = purpose {
                    c["chargingProfilePurpose"] = json!(purpose_name(*purpose));
                }
                p["chargingProfileCriteria"] = c;
            }
            ("ClearChargingProfile", p)
        }
        Command::UpdateFirmware { request_id, order } => {
            let mut firmware = json!({
                "location": order.url,
                "retrieveDateTime": super::format_time(order.retrieve_at.unwrap_or_else(chrono::Utc::now)),
            });
            if let Some(sig) = &order.signature {
                firmware = super::firmware(order, sig);
            }
            let mut p = json!({"requestId": request_id, "firmware": firmware});
            if let Some(r) = order.retries {
                p["retries"] = json!(r);
            }
            ("UpdateFirmware", p)
        }
        Command::GetLog {
            request_id,
            kind,
            url,
            since,
        } => {
            let log_type = match kind {
                LogKind::Diagnostics => "DiagnosticsLog",
                LogKind::Security => "SecurityLog",
            };
            ("GetLog", super::get_log(*request_id, log_type, url, *since))
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
                p["data"] = serde_json::from_str::<Value>(d).unwrap_or_else(|_| json!(d));
            }
            ("DataTransfer", p)
        }
        device @ (Command::GetBaseReport { .. }
        | Command::GetReport { .. }
        | Command::SetMonitor { .. }
        | Command::GetMonitoringReport { .. }
        | Command::ClearMonitor { .. }
        | Command::SetMonitoringBase { .. }
        | Command::SetMonitoringLevel { .. }) => {
            super::device::encode_command(device).ok_or_else(|| format!("{device:?} is not a device-model command"))?
        }
    })
}

fn purpose_name(p: ProfilePurpose) -> &'static str {
    match p {
        ProfilePurpose::ChargerMax => "ChargingStationMaxProfile",
        ProfilePurpose::TxDefault => "TxDefaultProfile",
        ProfilePurpose::Tx => "TxProfile",
    }
}

pub fn decode_result(cmd: &Command, payload: &Value) -> CommandResult {
    if let Some(r) = super::device::decode_result(cmd, payload) {
        return r;
    }
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
    match cmd {
        Command::GetConfig { .. } => {
            let mut entries = Vec::new();
            let mut unknown = Vec::new();
            for r in payload
                .get("getVariableResult")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let st = r.get("attributeStatus").and_then(Value::as_str).unwrap_or("");
                let key = key_of(r);
                if st == "UnknownComponent" || st == "UnknownVariable" {
                    unknown.push(key);
                    continue;
                }
                entries.push(ConfigEntry {
                    key,
                    value: r.get("attributeValue").and_then(Value::as_str).map(str::to_string),
                    readonly: false,
                    status: (st != "Accepted").then(|| st.to_string()),
                });
            }
            CommandResult::Config {
                entries,
                unknown,
                accepted: true,
            }
        }
        Command::SetConfig { .. } | Command::SetPassword { .. } => {
            let st = payload
                .pointer("/setVariableResult/0/attributeStatus")
                .and_then(Value::as_str)
                .unwrap_or("");
            CommandResult::status(st, &["Accepted", "RebootRequired"])
        }
        Command::Unlock { .. } => CommandResult::status(status, &["Unlocked"]),
        Command::GetLog { .. } => CommandResult::Status {
            status: status.to_string(),
            accepted: status == "Accepted" || status == "AcceptedCanceled",
            detail: payload.get("filename").and_then(Value::as_str).map(str::to_string),
        },
        Command::UpdateFirmware { .. } => CommandResult::status(status, &["Accepted", "AcceptedCanceled"]),
        Command::DataTransfer { .. } => CommandResult::Status {
            status: status.to_string(),
            accepted: status == "Accepted",
            detail: payload.get("data").map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        },
        Command::Availability { .. } => CommandResult::status(status, &["Accepted", "Scheduled"]),
        Command::GetTransactionStatus { .. } => CommandResult::TransactionStatus {
            ongoing: payload.get("ongoingIndicator").and_then(Value::as_bool),
            messages_in_queue: payload.get("messagesInQueue").and_then(Value::as_bool).unwrap_or(false),
            accepted: true,
        },
        Command::GetLocalListVersion => CommandResult::ListVersion {
            version: payload.get("versionNumber").and_then(Value::as_i64).unwrap_or(0),
        },
        // Answered with a CALLRESULT `{}`: nothing to refuse.
        Command::CostUpdated { .. } => CommandResult::status("Accepted", &["Accepted"]),
        _ => CommandResult::status(status, &["Accepted"]),
    }
}

/// 2.0.1 MessageTriggerEnumType.
const TRIGGERS: &[&str] = &[
    "BootNotification",
    "LogStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "SignChargingStationCertificate",
    "SignV2GCertificate",
    "StatusNotification",
    "TransactionEvent",
    "SignCombinedCertificate",
    "PublishFirmwareStatusNotification",
];

/// Every kind `charger trigger` accepts on 2.0.1.
pub fn trigger_kinds() -> Vec<&'static str> {
    TRIGGERS.to_vec()
}

/// An IdTokenType for one of our tokens.
fn id_token(uid: &str, kind: TokenKind) -> Value {
    let t = match kind {
        TokenKind::Rfid => "ISO14443",
        TokenKind::Vehicle => "MacAddress",
        TokenKind::Contract => "eMAID",
        TokenKind::App => "Central",
    };
    json!({"idToken": uid, "type": t})
}
