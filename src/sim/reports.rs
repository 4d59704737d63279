//! What a charger reports: connector statuses (and 2.0.1 charging states)
//! when they change, and meter readings.

use super::car::AC_MIN_MA;
use super::charger::{Charger, Clock, Purpose, Status, milli_number, milli_text};
use super::scenario::Quirk;
use crate::domain::Protocol;
use serde_json::{Value, json};

impl Charger {
    pub(super) fn status(&self, i: usize) -> Status {
        let c = &self.conns[i];
        match &c.plugged {
            None if c.available => Status::Available,
            None => Status::Unavailable,
            Some(p) => match &p.tx {
                // Made inoperative: no new transaction, whatever is plugged in.
                _ if p.finished && !c.available => Status::Unavailable,
                _ if p.finished => Status::Finishing,
                None => Status::Preparing,
                Some(_) if p.car.full() => Status::SuspendedEv,
                Some(_) if c.draw.power_w > 0 => Status::Charging,
                Some(_) if !self.dc() && c.offered < AC_MIN_MA => Status::SuspendedEvse,
                Some(_) if self.dc() && c.offered <= 0 => Status::SuspendedEvse,
                Some(_) => Status::Charging,
            },
        }
    }

    /// Send a StatusNotification (and, 2.0.1, a charging-state event) for
    /// every connector whose state changed since it was last reported.
    pub(super) fn report_statuses(&mut self, clock: Clock) {
        for i in 0..self.conns.len() {
            let s = self.status(i);
            // 2.0.1 has fewer states: Preparing → Charging is no news there.
            let wire = |st: Status| {
                if self.proto() == Protocol::V16 {
                    st.v16()
                } else {
                    st.v201()
                }
            };
            if self.conns[i].reported.map(wire) != Some(wire(s)) {
                self.send_status(i, s, clock);
            }
            if self.proto() == Protocol::V201 {
                let running = self.conns[i]
                    .plugged
                    .as_ref()
                    .is_some_and(|p| p.tx.as_ref().is_some_and(|t| !t.ended));
                let state = running.then(|| s.charging_state());
                if running && self.conns[i].reported_state != state {
                    let tx_id = self.conns[i]
                        .plugged
                        .as_ref()
                        .and_then(|p| p.tx.as_ref())
                        .map(|t| t.id.clone())
                        .unwrap_or_default();
                    let ev = json!({
                        "eventType": "Updated",
                        "timestamp": crate::ocpp::format_time(clock.wall),
                        "triggerReason": "ChargingStateChanged",
                        "seqNo": 0,
                        "transactionInfo": {"transactionId": tx_id, "chargingState": state},
                        "evse": {"id": self.conns[i].id, "connectorId": 1},
                    });
                    self.push_tx_event(i, ev);
                }
                self.conns[i].reported_state = state;
            }
        }
    }

    pub(super) fn send_status(&mut self, i: usize, s: Status, clock: Clock) {
        self.conns[i].reported = Some(s);
        let id = self.conns[i].id;
        let now = crate::ocpp::format_time(clock.wall);
        let payload = match self.proto() {
            Protocol::V16 => json!({"connectorId": id, "errorCode": "NoError", "status": s.v16(), "timestamp": now}),
            Protocol::V201 => {
                json!({"timestamp": now, "connectorStatus": s.v201(), "evseId": id, "connectorId": 1})
            }
        };
        self.push("StatusNotification", payload, Purpose::Plain, false, None);
    }

    pub(super) fn register_value(&self, mwh: u64) -> i64 {
        // The kWh-labelled-Wh quirk: the number is kWh, the unit says Wh.
        if self.plan.quirk == Some(Quirk::KwhAsWh) {
            (mwh / 1000) as i64
        } else {
            mwh as i64
        }
    }

    pub(super) fn register_sample16(&self, mwh: u64, context: &str) -> Value {
        json!({"value": milli_text(self.register_value(mwh)), "context": context,
               "measurand": "Energy.Active.Import.Register", "unit": "Wh"})
    }

    /// Periodic (or triggered) readings of connector `i`. On 2.0.1 they go
    /// in a TransactionEvent when `in_event` and a transaction runs, else in
    /// a MeterValues request.
    pub(super) fn send_meter_values(&mut self, i: usize, context: &str, in_event: bool, clock: Clock) {
        let c = &self.conns[i];
        let now = crate::ocpp::format_time(clock.wall);
        let reg = self.register_value(c.register_mwh);
        let phases: &[&str] = if self.dc() || self.plan.phases == 1 {
            &["L1"]
        } else {
            &["L1", "L2", "L3"]
        };
        let soc = c.plugged.as_ref().map(|p| p.car.soc_permille() as i64 * 100);
        let tx = c.plugged.as_ref().and_then(|p| p.tx.as_ref()).filter(|t| !t.ended);
        let mut rows: Vec<(&str, Option<&str>, i64, &str)> = vec![
            ("Energy.Active.Import.Register", None, reg, "Wh"),
            ("Power.Active.Import", None, c.draw.power_w * 1000, "W"),
        ];
        for (n, ph) in phases.iter().enumerate() {
            rows.push(("Current.Import", Some(ph), c.draw.current_ma[n], "A"));
        }
        if !self.dc() {
            rows.push(("Current.Offered", None, c.offered, "A"));
        }
        if let (true, Some(soc)) = (self.dc(), soc) {
            rows.push(("SoC", None, soc, "Percent"));
        }
        match self.proto() {
            Protocol::V16 => {
                let sv: Vec<Value> = rows
                    .iter()
                    .map(|(m, ph, v, unit)| {
                        let mut s = json!({"value": milli_text(*v), "context": context, "measurand": m, "unit": unit});
                        if let Some(ph) = ph {
                            s["phase"] = json!(ph);
                        }
                        s
                    })
                    .collect();
                let local = tx.map(|t| t.local);
                let mut payload = json!({"connectorId": c.id, "meterValue": [{"timestamp": now, "sampledValue": sv}]});
                if local.is_some() {
                    payload["transactionId"] = json!(0);
                }
                self.push("MeterValues", payload, Purpose::Plain, local.is_some(), local);
            }
            Protocol::V201 => {
                let sv: Vec<Value> = rows
                    .iter()
                    .map(|(m, ph, v, unit)| {
                        let mut s = json!({"value": milli_number(*v), "context": context, "measurand": m});
                        if *unit != "Wh" {
                            s["unitOfMeasure"] = json!({"unit": unit});
                        }
                        if let Some(ph) = ph {
                            s["phase"] = json!(ph);
                        }
                        s
                    })
                    .collect();
                let mv = json!([{"timestamp": now, "sampledValue": sv}]);
                match tx.filter(|_| in_event) {
                    Some(t) => {
                        let ev = json!({
                            "eventType": "Updated",
                            "timestamp": now,
                            "triggerReason": if context == "Trigger" { "Trigger" } else { "MeterValuePeriodic" },
                            "seqNo": 0,
                            "transactionInfo": {"transactionId": t.id, "chargingState": self.status(i).charging_state()},
                            "evse": {"id": c.id, "connectorId": 1},
                            "meterValue": mv
                        });
                        self.push_tx_event(i, ev);
                    }
                    None => {
                        let payload = json!({"evseId": c.id, "meterValue": mv});
                        self.push("MeterValues", payload, Purpose::Plain, false, None);
                    }
                }
            }
        }
    }
}
