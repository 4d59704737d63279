//! What a virtual charger does with the local authorization list,
//! reservations, display messages and running cost updates, with the
//! refusals a real one gives (a list too long, a stale differential
//! version, an occupied connector, an unknown transaction).

use super::charger::{Charger, Clock};
use crate::domain::Protocol;
use crate::ocpp::Rejection;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Entries the simulated charger's list holds at most.
pub(super) const LIST_MAX: &str = "LocalAuthListMaxLength";
/// Entries per SendLocalList it takes.
pub(super) const LIST_PER_MESSAGE: &str = "SendLocalListMaxLength";

pub(super) struct Reservation {
    pub id: i64,
    /// Connector index; `None` holds any one.
    pub conn: Option<usize>,
    pub token: String,
    pub expires: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct Ops {
    pub list_version: i64,
    /// token → status.
    pub list: BTreeMap<String, String>,
    pub reservations: Vec<Reservation>,
    /// MessageInfo as the server sent it, by id.
    pub messages: BTreeMap<i64, Value>,
}

type Answer = Result<Value, Rejection>;

impl Charger {
    /// The CALLs of this module, or `None` for any other action.
    pub(super) fn ops_call(&mut self, action: &str, p: &Value, clock: Clock) -> Option<Answer> {
        let v16 = self.proto() == Protocol::V16;
        let status = |st: &str| Some(Ok(json!({"status": st})));
        match action {
            "SendLocalList" => status(self.send_local_list(p, v16)),
            "GetLocalListVersion" => {
                let key = if v16 { "listVersion" } else { "versionNumber" };
                Some(Ok(json!({ key: self.ops.list_version })))
            }
            "ReserveNow" => status(self.reserve(p, v16, clock)),
            "CancelReservation" => {
                let id = p.get("reservationId").and_then(Value::as_i64).unwrap_or(-1);
                let before = self.ops.reservations.len();
                self.ops.reservations.retain(|r| r.id != id);
                status(if self.ops.reservations.len() < before {
                    "Accepted"
                } else {
                    "Rejected"
                })
            }
            "SetDisplayMessage" if !v16 => status(self.set_message(p)),
            "GetDisplayMessages" if !v16 => status(self.get_messages(p)),
            "ClearDisplayMessage" if !v16 => {
                let id = p.get("id").and_then(Value::as_i64).unwrap_or(-1);
                status(if self.ops.messages.remove(&id).is_some() {
                    "Accepted"
                } else {
                    "Unknown"
                })
            }
            // A charger without a display takes the cost and shows nothing.
            "CostUpdated" if !v16 => Some(Ok(json!({}))),
            _ => None,
        }
    }

    fn send_local_list(&mut self, p: &Value, v16: bool) -> &'static str {
        let (version_key, list_key, token_key, info_key) = if v16 {
            ("listVersion", "localAuthorizationList", "/idTag", "/idTagInfo/status")
        } else {
            (
                "versionNumber",
                "localAuthorizationList",
                "/idToken/idToken",
                "/idTokenInfo/status",
            )
        };
        let version = p.get(version_key).and_then(Value::as_i64).unwrap_or(0);
        let full = p.get("updateType").and_then(Value::as_str) == Some("Full");
        let entries: Vec<&Value> = p
            .get(list_key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let per_message = self.settings.int(LIST_PER_MESSAGE).unwrap_or(u64::MAX) as usize;
        let max = self.settings.int(LIST_MAX).unwrap_or(u64::MAX) as usize;
        if entries.len() > per_message {
            return "Failed";
        }
        if !full && version <= self.ops.list_version {
            return "VersionMismatch";
        }
        let mut list = if full { BTreeMap::new() } else { self.ops.list.clone() };
        for e in entries {
            let Some(token) = e.pointer(token_key).and_then(Value::as_str) else {
                return "Failed";
            };
            match e.pointer(info_key).and_then(Value::as_str) {
                Some(st) => list.insert(token.to_string(), st.to_string()),
                None => list.remove(token),
            };
        }
        if list.len() > max {
            return "Failed";
        }
        self.ops.list = list;
        self.ops.list_version = version;
        // What the list says wins over what the cache remembers.
        for (token, st) in &self.ops.list {
            if st != "Accepted" {
                self.auth_cache.remove(token);
            }
        }
        "Accepted"
    }

    fn reserve(&mut self, p: &Value, v16: bool, clock: Clock) -> &'static str {
        let (id, conn_id, token, expires) = if v16 {
            (
                p.get("reservationId").and_then(Value::as_i64),
                p.get("connectorId").and_then(Value::as_i64).filter(|&c| c != 0),
                p.get("idTag").and_then(Value::as_str),
                p.get("expiryDate").and_then(Value::as_str),
            )
        } else {
            (
                p.get("id").and_then(Value::as_i64),
                p.get("evseId").and_then(Value::as_i64),
                p.pointer("/idToken/idToken").and_then(Value::as_str),
                p.get("expiryDateTime").and_then(Value::as_str),
            )
        };
        let (Some(id), Some(token), Some(expires)) = (id, token, expires.and_then(crate::ocpp::parse_time)) else {
            return "Rejected";
        };
        if expires <= clock.wall {
            return "Rejected";
        }
        self.ops.reservations.retain(|r| r.id != id);
        let conn = match conn_id {
            Some(c) => match self.conn_index(c) {
                Some(i) => Some(i),
                None => return "Rejected",
            },
            None => None,
        };
        let held = |c: usize, rs: &[Reservation]| rs.iter().any(|r| r.conn == Some(c));
        let free = |this: &Charger, c: usize| this.conns[c].plugged.is_none() && !held(c, &this.ops.reservations);
        match conn {
            Some(i) if !self.conns[i].available => return "Unavailable",
            Some(i) if !free(self, i) => return "Occupied",
            None if !(0..self.conns.len()).any(|i| self.conns[i].available && free(self, i)) => return "Occupied",
            _ => {}
        }
        self.ops.reservations.push(Reservation {
            id,
            conn,
            token: token.to_string(),
            expires,
        });
        "Accepted"
    }

    /// A transaction of `token` starts on connector `i`: the reservation it uses, if any.
    pub(super) fn take_reservation(&mut self, i: usize, token: &str, clock: Clock) -> Option<i64> {
        let pos = self
            .ops
            .reservations
            .iter()
            .position(|r| (r.conn == Some(i) || r.conn.is_none()) && r.expires > clock.wall && r.token == token)?;
        Some(self.ops.reservations.remove(pos).id)
    }

    /// Reservations past their expiry end; a 2.0.1 charger says so.
    pub(super) fn expire_reservations(&mut self, clock: Clock) {
        let (gone, kept): (Vec<Reservation>, Vec<Reservation>) = std::mem::take(&mut self.ops.reservations)
            .into_iter()
            .partition(|r| r.expires <= clock.wall);
        self.ops.reservations = kept;
        if self.proto() == Protocol::V201 {
            for r in gone {
                self.push_plain(
                    "ReservationStatusUpdate",
                    json!({"reservationId": r.id, "reservationUpdateStatus": "Expired"}),
                );
            }
        }
    }

    fn set_message(&mut self, p: &Value) -> &'static str {
        let Some(info) = p.get("message") else {
            return "Rejected";
        };
        if info.pointer("/message/format").and_then(Value::as_str) != Some("UTF8") {
            return "NotSupportedMessageFormat";
        }
        if let Some(tx) = info.get("transactionId").and_then(Value::as_str)
            && self.tx_index(tx).is_none()
        {
            return "UnknownTransaction";
        }
        let id = info.get("id").and_then(Value::as_i64).unwrap_or(0);
        self.ops.messages.insert(id, info.clone());
        "Accepted"
    }

    fn get_messages(&mut self, p: &Value) -> &'static str {
        let request_id = p.get("requestId").and_then(Value::as_i64).unwrap_or(0);
        let ids: Option<Vec<i64>> = p
            .get("id")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_i64).collect());
        let priority = p.get("priority").and_then(Value::as_str);
        let state = p.get("state").and_then(Value::as_str);
        let found: Vec<Value> = self
            .ops
            .messages
            .iter()
            .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id)))
            .filter(|(_, m)| priority.is_none_or(|pr| m.get("priority").and_then(Value::as_str) == Some(pr)))
            .filter(|(_, m)| state.is_none_or(|st| m.get("state").and_then(Value::as_str) == Some(st)))
            .map(|(_, m)| m.clone())
            .collect();
        if found.is_empty() {
            return "Unknown";
        }
        self.push_plain(
            "NotifyDisplayMessages",
            json!({"requestId": request_id, "tbc": false, "messageInfo": found}),
        );
        "Accepted"
    }

    /// The local list version the charger holds.
    #[cfg(test)]
    pub fn list_version(&self) -> i64 {
        self.ops.list_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::plan::Plan;
    use crate::sim::scenario::{ProtocolChoice, Scenario};
    use crate::sim::stats::Stats;

    fn charger(proto: ProtocolChoice) -> (Charger, Clock) {
        let mut s = Scenario::generic(1, proto, 1);
        s.arrivals.first_within_s = 100_000;
        let plan = Plan::new(&s, 1).chargers.remove(0);
        let clock = Clock {
            now: std::time::Instant::now(),
            wall: "2026-11-23T10:00:00Z".parse().unwrap(),
        };
        let c = Charger::new(plan, &s, std::sync::Arc::new(Stats::default()), clock);
        (c, clock)
    }

    #[test]
    fn a_differential_list_needs_a_newer_version_and_a_long_list_fails() {
        let (mut c, clock) = charger(ProtocolChoice::V16);
        let full = json!({"listVersion": 3, "updateType": "Full",
                          "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}]});
        assert_eq!(
            c.ops_call("SendLocalList", &full, clock).unwrap().unwrap()["status"],
            "Accepted"
        );
        let stale = json!({"listVersion": 3, "updateType": "Differential",
                           "localAuthorizationList": [{"idTag": "A"}]});
        assert_eq!(
            c.ops_call("SendLocalList", &stale, clock).unwrap().unwrap()["status"],
            "VersionMismatch"
        );
        let many: Vec<Value> = (0..50)
            .map(|i| json!({"idTag": format!("T{i}"), "idTagInfo": {"status": "Accepted"}}))
            .collect();
        let long = json!({"listVersion": 4, "updateType": "Full", "localAuthorizationList": many});
        assert_eq!(
            c.ops_call("SendLocalList", &long, clock).unwrap().unwrap()["status"],
            "Failed"
        );
        assert_eq!(c.list_version(), 3);
    }

    #[test]
    fn a_reserved_connector_is_occupied_for_another_reservation() {
        let (mut c, clock) = charger(ProtocolChoice::V201);
        let until = crate::ocpp::format_time(clock.wall + chrono::Duration::minutes(5));
        let r = |id: i64| json!({"id": id, "expiryDateTime": until, "idToken": {"idToken": "X", "type": "Central"}, "evseId": 1});
        assert_eq!(
            c.ops_call("ReserveNow", &r(1), clock).unwrap().unwrap()["status"],
            "Accepted"
        );
        assert_eq!(
            c.ops_call("ReserveNow", &r(2), clock).unwrap().unwrap()["status"],
            "Occupied"
        );
        let cancel = json!({"reservationId": 1});
        assert_eq!(
            c.ops_call("CancelReservation", &cancel, clock).unwrap().unwrap()["status"],
            "Accepted"
        );
        assert_eq!(
            c.ops_call("CancelReservation", &cancel, clock).unwrap().unwrap()["status"],
            "Rejected"
        );
    }
}
