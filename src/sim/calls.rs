//! What a virtual charger answers to the server's CALLs, per version, with
//! the refusals a real one gives (unknown connector, busy, read-only key).

use super::charger::{Charger, Clock};
use super::profiles::{Profile, Purpose as ProfilePurpose, Refused};
use super::scenario::Quirk;
use super::settings::{Access, SetOutcome};
use super::stats::Stats;
use crate::domain::Protocol;
use crate::ocpp::Rejection;
use crate::ocpp::frame::ErrorCode;
use serde_json::{Value, json};

type Answer = Result<Value, Rejection>;

/// The entries of a 2.0.1 list field (Get/SetVariables).
fn items<'a>(p: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    p.get(field).and_then(Value::as_array).into_iter().flatten()
}

/// (component name, variable name) of a 2.0.1 variable reference.
fn variable_ref(item: &Value) -> (&str, &str) {
    let name = |path| item.pointer(path).and_then(Value::as_str).unwrap_or_default();
    (name("/component/name"), name("/variable/name"))
}

fn not_implemented(action: &str) -> Rejection {
    Rejection::new(
        ErrorCode::NotImplemented,
        format!("{action} is not implemented by this charger"),
    )
}

impl Charger {
    /// Answer one CALL from the server. The payload has passed schema
    /// validation, so required fields are present with the right types.
    pub fn handle_call(&mut self, action: &str, p: &Value, clock: Clock) -> Answer {
        let answer = match self
            .ops_call(action, p, clock)
            .or_else(|| self.security_call(action, p))
        {
            Some(a) => a,
            None => match self.proto() {
                Protocol::V16 => self.call16(action, p, clock),
                Protocol::V201 => self.call201(action, p, clock),
            },
        };
        if answer.is_ok() {
            Stats::add(&self.stats.calls_answered, 1);
        }
        answer
    }

    /// A 2.0.1 variable we do not have: is its component known at all?
    fn unknown(&self, component: &str) -> &'static str {
        if self.settings.readable().any(|s| s.component == component) {
            "UnknownVariable"
        } else {
            "UnknownComponent"
        }
    }

    /// The connectors a TriggerMessage is about: all when none is named (or
    /// 0, on 1.6); `None` for one this charger does not have.
    fn trigger_targets(&self, id: Option<i64>, zero_is_all: bool) -> Option<Vec<usize>> {
        match id {
            None => Some((0..self.conns.len()).collect()),
            Some(0) if zero_is_all => Some((0..self.conns.len()).collect()),
            Some(c) => self.conn_index(c).map(|i| vec![i]),
        }
    }

    /// The trigger kinds both versions answer alike; false for the others.
    fn trigger_shared(&mut self, message: &str, targets: &[usize], clock: Clock) -> bool {
        match message {
            "BootNotification" => self.queue_boot_front(),
            "Heartbeat" => self.push_plain("Heartbeat", json!({})),
            "StatusNotification" => {
                for &i in targets {
                    let st = self.status(i);
                    self.send_status(i, st, clock);
                }
            }
            "FirmwareStatusNotification" => self.push_plain("FirmwareStatusNotification", json!({"status": "Idle"})),
            _ => return false,
        }
        true
    }

    /// Connector index for a 1-based connector / EVSE id.
    pub(super) fn conn_index(&self, id: i64) -> Option<usize> {
        (1..=self.conns.len() as i64).contains(&id).then(|| id as usize - 1)
    }

    pub(super) fn tx_index(&self, id: &str) -> Option<usize> {
        self.conns.iter().position(|c| {
            c.plugged
                .as_ref()
                .and_then(|p| p.tx.as_ref())
                .is_some_and(|t| !t.ended && t.id == id)
        })
    }

    fn running(&self, i: usize) -> bool {
        self.conns[i]
            .plugged
            .as_ref()
            .is_some_and(|p| p.tx.as_ref().is_some_and(|t| !t.ended))
    }

    /// A remote start: a waiting car, or a driver who plugs in right now.
    fn remote_start(&mut self, i: usize, token: &str, remote_id: Option<i64>, clock: Clock) -> bool {
        if !self.conns[i].available || self.running(i) {
            return false;
        }
        match self.conns[i].plugged.is_some() {
            true => {
                let Some(p) = self.conns[i].plugged.as_ref() else {
                    return false;
                };
                if p.tx.is_some() {
                    return false;
                }
                let visit = p.visit.clone();
                self.conns[i].plugged = None;
                self.plug_in(i, visit, Some((token.to_string(), remote_id)), clock);
            }
            false => {
                let visit = self.next_visit_now(i);
                self.plug_in(i, visit, Some((token.to_string(), remote_id)), clock);
            }
        }
        true
    }

    fn set_profile(&mut self, parsed: Result<Profile, String>, tx_required_on: Option<usize>) -> &'static str {
        let reject = |c: &mut Charger| {
            Stats::add(&c.stats.profiles_rejected, 1);
            "Rejected"
        };
        if self.plan.quirk == Some(Quirk::RejectProfiles) {
            return reject(self);
        }
        let profile = match parsed {
            Ok(p) => p,
            Err(why) => {
                self.stats
                    .error(format!("{}: refused a charging profile: {why}", self.plan.id));
                return reject(self);
            }
        };
        if profile.purpose == ProfilePurpose::Tx && tx_required_on.is_none_or(|i| !self.running(i)) {
            return reject(self);
        }
        Stats::add(&self.stats.profiles_accepted, 1);
        self.profiles.install(profile);
        "Accepted"
    }

    /// SetChargingProfile for connector / EVSE `target` (0: the charger).
    fn set_profile_call(
        &mut self,
        target: i64,
        profile: Option<&Value>,
        parse: fn(u32, &Value) -> Result<Profile, Refused>,
    ) -> &'static str {
        let i = self.conn_index(target);
        if target != 0 && i.is_none() {
            return "Rejected";
        }
        let parsed = profile
            .ok_or_else(|| "the profile is missing".to_string())
            .and_then(|cp| parse(target as u32, cp).map_err(|e| e.0));
        self.set_profile(parsed, i)
    }

    fn call16(&mut self, action: &str, p: &Value, clock: Clock) -> Answer {
        let int = |k: &str| p.get(k).and_then(Value::as_i64);
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let status = |st: &str| Ok(json!({"status": st}));
        match action {
            "Reset" => {
                let reason = if s("type") == "Hard" { "HardReset" } else { "SoftReset" };
                self.schedule_reset(clock, reason);
                status("Accepted")
            }
            "UnlockConnector" => {
                let Some(i) = int("connectorId").and_then(|c| self.conn_index(c)) else {
                    return status("NotSupported");
                };
                if self.running(i) {
                    self.stop_tx(i, "UnlockCommand", "UnlockCommand", clock);
                }
                status("Unlocked")
            }
            "RemoteStartTransaction" => {
                let conn = int("connectorId")
                    .map(|c| self.conn_index(c))
                    .unwrap_or_else(|| (0..self.conns.len()).find(|&i| self.conns[i].available && !self.running(i)));
                let Some(i) = conn else { return status("Rejected") };
                if let Some(cp) = p.get("chargingProfile")
                    && cp.get("chargingProfilePurpose").and_then(Value::as_str) != Some("TxProfile")
                {
                    return status("Rejected");
                }
                if !self.remote_start(i, s("idTag"), None, clock) {
                    return status("Rejected");
                }
                if let Some(cp) = p.get("chargingProfile") {
                    let parsed = Profile::from_v16(self.conns[i].id, cp).map_err(|e| e.0);
                    self.set_profile(parsed, Some(i));
                }
                status("Accepted")
            }
            "RemoteStopTransaction" => {
                let id = int("transactionId").unwrap_or(-1).to_string();
                match self.tx_index(&id) {
                    Some(i) => {
                        self.stop_tx(i, "Remote", "RemoteStop", clock);
                        status("Accepted")
                    }
                    None => status("Rejected"),
                }
            }
            "GetConfiguration" => {
                let keys: Option<Vec<&str>> = p
                    .get("key")
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect());
                let entry = |st: &super::settings::Setting| json!({"key": st.key, "readonly": st.access == Access::ReadOnly, "value": st.value});
                let (known, unknown): (Vec<Value>, Vec<String>) = match keys.filter(|k| !k.is_empty()) {
                    None => (self.settings.readable().map(entry).collect(), Vec::new()),
                    Some(keys) => {
                        let mut known = Vec::new();
                        let mut unknown = Vec::new();
                        for k in keys {
                            match self.settings.by_key(k).filter(|s| s.access != Access::WriteOnly) {
                                Some(st) => known.push(entry(st)),
                                None => unknown.push(k.to_string()),
                            }
                        }
                        (known, unknown)
                    }
                };
                let mut out = json!({"configurationKey": known});
                if !unknown.is_empty() {
                    out["unknownKey"] = json!(unknown);
                }
                Ok(out)
            }
            "ChangeConfiguration" => status(match self.settings.set(s("key"), None, s("value")) {
                SetOutcome::Accepted => "Accepted",
                SetOutcome::Rejected => "Rejected",
                SetOutcome::Unknown => "NotSupported",
            }),
            "TriggerMessage" => {
                let Some(targets) = self.trigger_targets(int("connectorId"), true) else {
                    return status("Rejected");
                };
                let message = s("requestedMessage");
                if !self.trigger_shared(message, &targets, clock) {
                    match message {
                        "MeterValues" => {
                            for i in targets {
                                self.send_meter_values(i, "Trigger", true, clock);
                            }
                        }
                        "DiagnosticsStatusNotification" => {
                            self.push_plain("DiagnosticsStatusNotification", json!({"status": "Idle"}))
                        }
                        _ => return status("NotImplemented"),
                    }
                }
                status("Accepted")
            }
            // The security extension's trigger: the same kinds, plus logs and certificates.
            "ExtendedTriggerMessage" => {
                let Some(targets) = self.trigger_targets(int("connectorId"), true) else {
                    return status("Rejected");
                };
                let message = s("requestedMessage");
                if !self.trigger_shared(message, &targets, clock) {
                    match message {
                        "MeterValues" => {
                            for i in targets {
                                self.send_meter_values(i, "Trigger", true, clock);
                            }
                        }
                        "LogStatusNotification" => self.push_plain("LogStatusNotification", json!({"status": "Idle"})),
                        // No key pair to sign a certificate request with.
                        "SignChargePointCertificate" => return status("Rejected"),
                        _ => return status("NotImplemented"),
                    }
                }
                status("Accepted")
            }
            "SetChargingProfile" => status(self.set_profile_call(
                int("connectorId").unwrap_or(-1),
                p.get("csChargingProfiles"),
                Profile::from_v16,
            )),
            "ClearChargingProfile" => {
                let purpose = match p.get("chargingProfilePurpose").and_then(Value::as_str) {
                    Some("ChargePointMaxProfile") => Some(ProfilePurpose::StationMax),
                    Some("TxDefaultProfile") => Some(ProfilePurpose::TxDefault),
                    Some("TxProfile") => Some(ProfilePurpose::Tx),
                    _ => None,
                };
                let n = self.profiles.clear(
                    int("id"),
                    int("connectorId").map(|c| c as u32),
                    purpose,
                    int("stackLevel"),
                );
                status(if n > 0 { "Accepted" } else { "Unknown" })
            }
            "GetCompositeSchedule" => {
                let c = int("connectorId").unwrap_or(-1);
                let Some(i) = self.conn_index(c) else {
                    return status("Rejected");
                };
                let limit = self.target_limit(i, clock);
                let amps = p.get("chargingRateUnit").and_then(Value::as_str) != Some("W");
                let (unit, value) = if amps || self.plan.supply == super::scenario::Supply::Dc {
                    ("A", limit)
                } else {
                    ("W", limit * 230 * self.plan.phases as i64)
                };
                Ok(json!({
                    "status": "Accepted",
                    "connectorId": c,
                    "scheduleStart": crate::ocpp::format_time(clock.wall),
                    "chargingSchedule": {
                        "duration": int("duration").unwrap_or(0),
                        "chargingRateUnit": unit,
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": super::charger::milli_number(value)}]
                    }
                }))
            }
            "ChangeAvailability" => {
                let c = int("connectorId").unwrap_or(-1);
                let operative = s("type") == "Operative";
                let targets: Vec<usize> = if c == 0 {
                    (0..self.conns.len()).collect()
                } else {
                    match self.conn_index(c) {
                        Some(i) => vec![i],
                        None => return status("Rejected"),
                    }
                };
                status(self.change_availability(&targets, operative))
            }
            "ClearCache" => status("Accepted"),
            "DataTransfer" => Ok(self.data_transfer(p)),
            "UpdateFirmware" | "SignedUpdateFirmware" => Ok(self.update_firmware(action, p, clock)),
            "GetDiagnostics" | "GetLog" => Ok(self.get_log(action, p, clock)),
            other => Err(not_implemented(other)),
        }
    }

    fn change_availability(&mut self, targets: &[usize], operative: bool) -> &'static str {
        let mut scheduled = false;
        for &i in targets {
            if operative {
                self.conns[i].available = true;
            } else if self.running(i) {
                self.set_unavailable_after_tx(i);
                scheduled = true;
            } else {
                self.conns[i].available = false;
            }
        }
        if scheduled { "Scheduled" } else { "Accepted" }
    }

    fn call201(&mut self, action: &str, p: &Value, clock: Clock) -> Answer {
        let int = |k: &str| p.get(k).and_then(Value::as_i64);
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let status = |st: &str| Ok(json!({"status": st}));
        match action {
            "Reset" => {
                if int("evseId").is_some() {
                    return status("Rejected");
                }
                let busy = (0..self.conns.len()).any(|i| self.running(i));
                if s("type") == "OnIdle" && busy {
                    return status("Scheduled");
                }
                self.schedule_reset(clock, "HardReset");
                status("Accepted")
            }
            "UnlockConnector" => {
                let Some(i) = int("evseId").and_then(|c| self.conn_index(c)) else {
                    return status("UnknownConnector");
                };
                if int("connectorId") != Some(1) {
                    return status("UnknownConnector");
                }
                if self.running(i) {
                    return status("OngoingAuthorizedTransaction");
                }
                status("Unlocked")
            }
            "RequestStartTransaction" => {
                let conn = match int("evseId") {
                    Some(e) => self.conn_index(e),
                    None => (0..self.conns.len()).find(|&i| self.conns[i].available && !self.running(i)),
                };
                let Some(i) = conn else { return status("Rejected") };
                let token = p
                    .pointer("/idToken/idToken")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !self.remote_start(i, token, int("remoteStartId"), clock) {
                    return status("Rejected");
                }
                if let Some(cp) = p.get("chargingProfile") {
                    let parsed = Profile::from_v201(self.conns[i].id, cp).map_err(|e| e.0);
                    self.set_profile(parsed, Some(i));
                }
                let tx = self.conns[i]
                    .plugged
                    .as_ref()
                    .and_then(|p| p.tx.as_ref())
                    .map(|t| t.id.clone());
                let mut out = json!({"status": "Accepted"});
                if let Some(t) = tx {
                    out["transactionId"] = json!(t);
                }
                Ok(out)
            }
            "RequestStopTransaction" => match self.tx_index(s("transactionId")) {
                Some(i) => {
                    self.stop_tx(i, "Remote", "RemoteStop", clock);
                    status("Accepted")
                }
                None => status("Rejected"),
            },
            "GetVariables" => {
                let results: Vec<Value> = items(p, "getVariableData")
                    .map(|item| {
                        let (comp, var) = variable_ref(item);
                        let mut r = json!({"component": item["component"], "variable": item["variable"]});
                        match self.settings.by_variable(comp, var) {
                            Some(st) if st.access == Access::WriteOnly => r["attributeStatus"] = json!("Rejected"),
                            Some(st) => {
                                r["attributeStatus"] = json!("Accepted");
                                r["attributeValue"] = json!(st.value.chars().take(2500).collect::<String>());
                            }
                            None => r["attributeStatus"] = json!(self.unknown(comp)),
                        }
                        r
                    })
                    .collect();
                Ok(json!({"getVariableResult": results}))
            }
            "SetVariables" => {
                let results: Vec<Value> = items(p, "setVariableData")
                    .map(|item| {
                        let (comp, var) = variable_ref(item);
                        let value = item.get("attributeValue").and_then(Value::as_str).unwrap_or_default();
                        let st = match self.settings.set(comp, Some(var), value) {
                            SetOutcome::Accepted => "Accepted",
                            SetOutcome::Rejected => "Rejected",
                            SetOutcome::Unknown => self.unknown(comp),
                        };
                        json!({"attributeStatus": st, "component": item["component"], "variable": item["variable"]})
                    })
                    .collect();
                Ok(json!({"setVariableResult": results}))
            }
            "GetBaseReport" => Ok(self.base_report(p, clock)),
            "GetReport" => Ok(self.report(p, clock)),
            "SetVariableMonitoring" => Ok(self.set_monitoring(p, clock)),
            "GetMonitoringReport" => Ok(self.monitoring_report(p, clock)),
            "ClearVariableMonitoring" => Ok(self.clear_monitoring(p)),
            "SetMonitoringBase" => Ok(self.monitoring_base(p)),
            "SetMonitoringLevel" => Ok(self.monitoring_level(p)),
            "TriggerMessage" => {
                let evse = p.pointer("/evse/id").and_then(Value::as_i64);
                let Some(targets) = self.trigger_targets(evse, false) else {
                    return status("Rejected");
                };
                let message = s("requestedMessage");
                if !self.trigger_shared(message, &targets, clock) {
                    match message {
                        // F06.FR.06: the latest readings, transaction or not.
                        "MeterValues" => {
                            for i in targets {
                                self.send_meter_values(i, "Trigger", false, clock);
                            }
                        }
                        // F06.FR.07: an Updated event of each running transaction.
                        "TransactionEvent" => {
                            let running: Vec<usize> = targets.into_iter().filter(|&i| self.running(i)).collect();
                            if running.is_empty() {
                                return status("Rejected");
                            }
                            for i in running {
                                self.send_meter_values(i, "Trigger", true, clock);
                            }
                        }
                        "LogStatusNotification" => self.push_plain("LogStatusNotification", json!({"status": "Idle"})),
                        "PublishFirmwareStatusNotification" => {
                            self.push_plain("PublishFirmwareStatusNotification", json!({"status": "Idle"}))
                        }
                        // No key pair to sign a certificate request with.
                        "SignChargingStationCertificate" | "SignV2GCertificate" | "SignCombinedCertificate" => {
                            return status("Rejected");
                        }
                        _ => return status("NotImplemented"),
                    }
                }
                status("Accepted")
            }
            "SetChargingProfile" => status(self.set_profile_call(
                int("evseId").unwrap_or(-1),
                p.get("chargingProfile"),
                Profile::from_v201,
            )),
            "ClearChargingProfile" => {
                let crit = p.get("chargingProfileCriteria");
                let purpose = match crit
                    .and_then(|c| c.get("chargingProfilePurpose"))
                    .and_then(Value::as_str)
                {
                    Some("ChargingStationMaxProfile") => Some(ProfilePurpose::StationMax),
                    Some("TxDefaultProfile") => Some(ProfilePurpose::TxDefault),
                    Some("TxProfile") => Some(ProfilePurpose::Tx),
                    Some("ChargingStationExternalConstraints") => Some(ProfilePurpose::External),
                    _ => None,
                };
                let n = self.profiles.clear(
                    int("chargingProfileId"),
                    crit.and_then(|c| c.get("evseId"))
                        .and_then(Value::as_i64)
                        .map(|e| e as u32),
                    purpose,
                    crit.and_then(|c| c.get("stackLevel")).and_then(Value::as_i64),
                );
                status(if n > 0 { "Accepted" } else { "Unknown" })
            }
            "GetCompositeSchedule" => {
                let e = int("evseId").unwrap_or(-1);
                let Some(i) = self.conn_index(e) else {
                    return status("Rejected");
                };
                let limit = self.target_limit(i, clock);
                Ok(json!({
                    "status": "Accepted",
                    "schedule": {
                        "evseId": e,
                        "duration": int("duration").unwrap_or(0),
                        "scheduleStart": crate::ocpp::format_time(clock.wall),
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": super::charger::milli_number(limit)}]
                    }
                }))
            }
            "ChangeAvailability" => {
                let operative = s("operationalStatus") == "Operative";
                let targets: Vec<usize> = match p.pointer("/evse/id").and_then(Value::as_i64) {
                    None | Some(0) => (0..self.conns.len()).collect(),
                    Some(e) => match self.conn_index(e) {
                        Some(i) => vec![i],
                        None => return status("Rejected"),
                    },
                };
                status(self.change_availability(&targets, operative))
            }
            "GetTransactionStatus" => {
                let queued = self.queued() > 0;
                let mut out = json!({"messagesInQueue": queued});
                if let Some(id) = p.get("transactionId").and_then(Value::as_str) {
                    out["ongoingIndicator"] = json!(self.tx_index(id).is_some());
                }
                Ok(out)
            }
            "ClearCache" => status("Accepted"),
            "DataTransfer" => Ok(self.data_transfer(p)),
            "UpdateFirmware" | "SignedUpdateFirmware" => Ok(self.update_firmware(action, p, clock)),
            "GetDiagnostics" | "GetLog" => Ok(self.get_log(action, p, clock)),
            other => Err(not_implemented(other)),
        }
    }
}
