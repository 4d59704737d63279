//! A car's visit at a connector: plug-in, authorization, the transaction
//! from start to stop (1.6 Start/StopTransaction, 2.0.1 TransactionEvent),
//! signed begin/end readings, and the car leaving.

use super::car::Car;
use super::charger::{Auth, Charger, Clock, Plugged, Purpose, Tx};
use super::ocmf::{Reading, SIGNING_METHOD};
use super::plan::Visit;
use super::scenario::TokenKind;
use super::settings;
use super::stats::Stats;
use crate::domain::Protocol;
use data_encoding::BASE64;
use serde_json::{Value, json};
use std::time::Duration;

/// Tokens are at most 20 characters in 1.6; 2.0.1 allows 36.
pub(super) fn token_type(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Rfid => "ISO14443",
        TokenKind::Vehicle => "MacAddress",
        TokenKind::Contract => "eMAID",
    }
}

impl Charger {
    /// A car plugs in. `remote` carries a remote start's token and id.
    pub(super) fn plug_in(&mut self, i: usize, visit: Visit, remote: Option<(String, Option<i64>)>, clock: Clock) {
        let car = Car::new(&visit);
        let leave_at = clock.now + Duration::from_secs(visit.dwell_s as u64);
        let remote_auth = remote.is_some() && !self.settings.flag(settings::AUTHORIZE_REMOTE);
        let mut visit = visit;
        if let Some((token, _)) = &remote {
            visit.token = token.clone();
            visit.token_kind = TokenKind::Rfid;
        }
        let is_remote = remote.is_some();
        let remote_id = remote.and_then(|(_, id)| id);
        self.conns[i].plugged = Some(Plugged {
            visit,
            car,
            leave_at,
            auth: if remote_auth { Auth::Accepted } else { Auth::Waiting },
            tx: None,
            finished: false,
            remote: is_remote,
        });
        if remote_auth {
            self.start_tx(i, remote_id, clock);
        } else if let Some(p) = self.conns[i].plugged.as_mut()
            && !self.online
            && self.auth_cache.contains(&p.visit.token)
            && self.settings.flag("LocalAuthorizeOffline")
        {
            // Offline: a token the charger saw accepted before may start.
            p.auth = Auth::Accepted;
            self.start_tx(i, None, clock);
        }
    }

    pub(super) fn ask_authorization(&mut self, i: usize) {
        let Some(p) = self.conns[i].plugged.as_mut() else {
            return;
        };
        p.auth = Auth::Asked;
        let payload = match self.plan.protocol {
            Protocol::V16 => json!({"idTag": p.visit.token}),
            Protocol::V201 => json!({"idToken": {"idToken": p.visit.token, "type": token_type(p.visit.token_kind)}}),
        };
        self.push("Authorize", payload, Purpose::Authorize { conn: i }, false, None);
    }

    pub(super) fn authorized(&mut self, i: usize, ok: bool, clock: Clock) {
        let Some(p) = self.conns[i].plugged.as_mut() else {
            return;
        };
        if p.auth != Auth::Asked {
            return;
        }
        if ok {
            p.auth = Auth::Accepted;
            self.auth_cache.insert(p.visit.token.clone());
            self.start_tx(i, None, clock);
        } else {
            p.auth = Auth::Refused;
            Stats::add(&self.stats.auth_rejected, 1);
            // The driver gives up and drives off shortly.
            p.leave_at = p.leave_at.min(clock.now + Duration::from_secs(5));
        }
    }

    pub(super) fn start_tx(&mut self, i: usize, remote_start_id: Option<i64>, clock: Clock) {
        self.tx_counter += 1;
        let local = self.tx_counter;
        let conn_id = self.conns[i].id;
        let register_wh = self.conns[i].register_mwh / 1000;
        let Some(p) = self.conns[i].plugged.as_mut() else {
            return;
        };
        let id = format!("{}-{:06}", &self.plan.serial[2..], local);
        let tx = Tx {
            local,
            server_id: None,
            id: id.clone(),
            seq: 0,
            started: clock.wall,
            token: p.visit.token.clone(),
            token_kind: p.visit.token_kind,
            ended: false,
        };
        let token = tx.token.clone();
        let kind = tx.token_kind;
        p.tx = Some(tx);
        let reservation = self.take_reservation(i, &token, clock);
        Stats::add(&self.stats.sessions_started, 1);
        self.conns[i].next_meter = clock.now + Duration::from_secs(1);
        let signed = self.sign(conn_id, 'B', register_wh, &token, clock);
        match self.proto() {
            Protocol::V16 => {
                let mut start = json!({"connectorId": conn_id, "idTag": token, "meterStart": register_wh,
                                       "timestamp": crate::ocpp::format_time(clock.wall)});
                if let Some(r) = reservation {
                    start["reservationId"] = json!(r);
                }
                self.push("StartTransaction", start, Purpose::Start { conn: i, local }, true, None);
                if let Some(sd) = signed {
                    let mv = json!({
                        "connectorId": conn_id,
                        "transactionId": 0,
                        "meterValue": [{"timestamp": crate::ocpp::format_time(clock.wall), "sampledValue": [
                            self.register_sample16(register_wh * 1000, "Transaction.Begin"),
                            {"value": sd, "format": "SignedData", "context": "Transaction.Begin",
                             "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                        ]}]
                    });
                    self.push("MeterValues", mv, Purpose::Plain, true, Some(local));
                }
            }
            Protocol::V201 => {
                let mut sv = json!({"value": register_wh, "context": "Transaction.Begin",
                                    "measurand": "Energy.Active.Import.Register"});
                if let Some(sd) = signed {
                    sv["signedMeterValue"] = self.signed201(&sd);
                }
                let mut ev = json!({
                    "eventType": "Started",
                    "timestamp": crate::ocpp::format_time(clock.wall),
                    "triggerReason": if remote_start_id.is_some() { "RemoteStart" } else { "Authorized" },
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": id, "chargingState": "EVConnected"},
                    "evse": {"id": conn_id, "connectorId": 1},
                    "idToken": {"idToken": token, "type": token_type(kind)},
                    "meterValue": [{"timestamp": crate::ocpp::format_time(clock.wall), "sampledValue": [sv]}]
                });
                if let Some(r) = remote_start_id {
                    ev["transactionInfo"]["remoteStartId"] = json!(r);
                }
                if let Some(r) = reservation {
                    ev["reservationId"] = json!(r);
                }
                self.push_tx_event(i, ev);
                self.send_needs(i, clock);
            }
        }
    }

    /// 2.0.1 events carry seqNo and `offline`; both are set here.
    pub(super) fn push_tx_event(&mut self, i: usize, mut ev: Value) {
        let online = self.online;
        if let Some(tx) = self.conns[i].plugged.as_mut().and_then(|p| p.tx.as_mut()) {
            ev["seqNo"] = json!(tx.seq);
            tx.seq += 1;
        }
        if !online {
            ev["offline"] = json!(true);
        }
        self.push("TransactionEvent", ev, Purpose::Plain, true, None);
    }

    pub(super) fn sign(
        &mut self,
        connector: u32,
        kind: char,
        register_wh: u64,
        token: &str,
        clock: Clock,
    ) -> Option<String> {
        let m = self.meter.as_mut()?;
        Some(m.sign(&Reading {
            at: clock.wall,
            kind,
            register_wh,
            token,
            connector,
        }))
    }

    pub(super) fn signed201(&self, ocmf: &str) -> Value {
        let key = self
            .meter
            .as_ref()
            .map(|m| BASE64.encode(&m.public_key_der()))
            .unwrap_or_default();
        json!({"signedMeterData": BASE64.encode(ocmf.as_bytes()), "signingMethod": SIGNING_METHOD,
               "encodingMethod": "OCMF", "publicKey": key})
    }

    /// End the transaction on connector `i` (the car may stay plugged).
    pub(super) fn stop_tx(&mut self, i: usize, reason16: &'static str, trigger201: &'static str, clock: Clock) {
        let conn_id = self.conns[i].id;
        let register_wh = self.conns[i].register_mwh / 1000;
        let Some(p) = self.conns[i].plugged.as_mut() else {
            return;
        };
        let Some(tx) = p.tx.as_mut().filter(|t| !t.ended) else {
            return;
        };
        tx.ended = true;
        p.finished = true;
        let (local, token, id) = (tx.local, tx.token.clone(), tx.id.clone());
        // A ChangeAvailability(Inoperative) that was Scheduled takes effect now.
        if std::mem::take(&mut self.conns[i].unavailable_after_tx) {
            self.conns[i].available = false;
        }
        Stats::add(&self.stats.sessions_completed, 1);
        self.profiles.end_transaction(conn_id);
        let signed = self.sign(conn_id, 'E', register_wh, &token, clock);
        let now = crate::ocpp::format_time(clock.wall);
        match self.proto() {
            Protocol::V16 => {
                let mut sv = vec![self.register_sample16(register_wh * 1000, "Transaction.End")];
                if let Some(sd) = signed {
                    sv.push(
                        json!({"value": sd, "format": "SignedData", "context": "Transaction.End",
                                   "measurand": "Energy.Active.Import.Register", "unit": "Wh"}),
                    );
                }
                self.push(
                    "StopTransaction",
                    json!({"transactionId": 0, "idTag": token, "meterStop": register_wh, "timestamp": now,
                           "reason": reason16, "transactionData": [{"timestamp": now, "sampledValue": sv}]}),
                    Purpose::Plain,
                    true,
                    Some(local),
                );
            }
            Protocol::V201 => {
                let mut sv = json!({"value": register_wh, "context": "Transaction.End",
                                    "measurand": "Energy.Active.Import.Register"});
                if let Some(sd) = signed {
                    sv["signedMeterValue"] = self.signed201(&sd);
                }
                let stopped = match reason16 {
                    "EVDisconnected" => "EVDisconnected",
                    "Remote" => "Remote",
                    "DeAuthorized" => "DeAuthorized",
                    "HardReset" | "SoftReset" => "ImmediateReset",
                    "UnlockCommand" => "Other",
                    _ => "Local",
                };
                let ev = json!({
                    "eventType": "Ended",
                    "timestamp": now,
                    "triggerReason": trigger201,
                    "transactionInfo": {"transactionId": id, "stoppedReason": stopped, "chargingState": "Idle"},
                    "evse": {"id": conn_id, "connectorId": 1},
                    "meterValue": [{"timestamp": now, "sampledValue": [sv]}]
                });
                self.push_tx_event(i, ev);
            }
        }
        if self.conns[i].unavailable_after_tx {
            self.conns[i].unavailable_after_tx = false;
            self.conns[i].available = false;
        }
        if self.proto() == Protocol::V16 {
            self.remember_finished(i);
        }
    }

    /// The car drives off: stop what is running, free the connector, and
    /// draw the next visit.
    pub(super) fn unplug(&mut self, i: usize, clock: Clock) {
        self.stop_tx(i, "EVDisconnected", "EVCommunicationLost", clock);
        let conn = &mut self.conns[i];
        conn.plugged = None;
        let v = conn.visits.next_visit();
        conn.next = Some((clock.now + Duration::from_secs(v.wait_s as u64), v));
    }
}
