//! The OCPP-J frames the load generator sends, in 1.6 and 2.0.1, and a
//! reader for the head (`[type, "id", ...`) of the frames it gets back.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    V16,
    V201,
}

impl Proto {
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "1.6" | "ocpp1.6" => Some(Proto::V16),
            "2.0.1" | "ocpp2.0.1" => Some(Proto::V201),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::V16 => "1.6",
            Proto::V201 => "2.0.1",
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Proto::V16 => "ocpp1.6",
            Proto::V201 => "ocpp2.0.1",
        }
    }
}

/// A charger's clock, as OCPP wants it (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn boot(proto: Proto, id: &str, serial: &str) -> String {
    match proto {
        Proto::V16 => format!(
            r#"[2,"{id}","BootNotification",{{"chargePointVendor":"voltyard-bench","chargePointModel":"loadgen","chargePointSerialNumber":"{serial}","firmwareVersion":"1.0.0"}}]"#
        ),
        Proto::V201 => format!(
            r#"[2,"{id}","BootNotification",{{"reason":"PowerUp","chargingStation":{{"vendorName":"voltyard-bench","model":"loadgen","serialNumber":"{serial}","firmwareVersion":"1.0.0"}}}}]"#
        ),
    }
}

/// MeterValues for connector (EVSE) 1 outside a transaction: one meter
/// value with ten sampled values, the shape of a three-phase AC charger's
/// periodic report.
pub fn meter_values(proto: Proto, id: &str, ts: &str, wh: u64) -> String {
    match proto {
        // 1.6 sends every value as a string.
        Proto::V16 => format!(
            concat!(
                r#"[2,"{id}","MeterValues",{{"connectorId":1,"meterValue":[{{"timestamp":"{ts}","sampledValue":["#,
                r#"{{"value":"{wh}","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"}},"#,
                r#"{{"value":"11040","context":"Sample.Periodic","measurand":"Power.Active.Import","location":"Outlet","unit":"W"}},"#,
                r#"{{"value":"16.0","context":"Sample.Periodic","measurand":"Current.Import","phase":"L1","location":"Outlet","unit":"A"}},"#,
                r#"{{"value":"16.1","context":"Sample.Periodic","measurand":"Current.Import","phase":"L2","location":"Outlet","unit":"A"}},"#,
                r#"{{"value":"15.9","context":"Sample.Periodic","measurand":"Current.Import","phase":"L3","location":"Outlet","unit":"A"}},"#,
                r#"{{"value":"230.1","context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N","location":"Outlet","unit":"V"}},"#,
                r#"{{"value":"229.8","context":"Sample.Periodic","measurand":"Voltage","phase":"L2-N","location":"Outlet","unit":"V"}},"#,
                r#"{{"value":"231.0","context":"Sample.Periodic","measurand":"Voltage","phase":"L3-N","location":"Outlet","unit":"V"}},"#,
                r#"{{"value":"57","context":"Sample.Periodic","measurand":"SoC","location":"EV","unit":"Percent"}},"#,
                r#"{{"value":"31.5","context":"Sample.Periodic","measurand":"Temperature","location":"Body","unit":"Celsius"}}"#,
                r#"]}}]}}]"#
            ),
            id = id,
            ts = ts,
            wh = wh
        ),
        // 2.0.1 has numbers, unitOfMeasure objects and no Temperature
        // measurand; Frequency takes its place so the count stays ten.
        Proto::V201 => format!(
            concat!(
                r#"[2,"{id}","MeterValues",{{"evseId":1,"meterValue":[{{"timestamp":"{ts}","sampledValue":["#,
                r#"{{"value":{wh},"context":"Sample.Periodic","measurand":"Energy.Active.Import.Register","location":"Outlet","unitOfMeasure":{{"unit":"Wh"}}}},"#,
                r#"{{"value":11040,"context":"Sample.Periodic","measurand":"Power.Active.Import","location":"Outlet","unitOfMeasure":{{"unit":"W"}}}},"#,
                r#"{{"value":16.0,"context":"Sample.Periodic","measurand":"Current.Import","phase":"L1","location":"Outlet","unitOfMeasure":{{"unit":"A"}}}},"#,
                r#"{{"value":16.1,"context":"Sample.Periodic","measurand":"Current.Import","phase":"L2","location":"Outlet","unitOfMeasure":{{"unit":"A"}}}},"#,
                r#"{{"value":15.9,"context":"Sample.Periodic","measurand":"Current.Import","phase":"L3","location":"Outlet","unitOfMeasure":{{"unit":"A"}}}},"#,
                r#"{{"value":230.1,"context":"Sample.Periodic","measurand":"Voltage","phase":"L1-N","location":"Outlet","unitOfMeasure":{{"unit":"V"}}}},"#,
                r#"{{"value":229.8,"context":"Sample.Periodic","measurand":"Voltage","phase":"L2-N","location":"Outlet","unitOfMeasure":{{"unit":"V"}}}},"#,
                r#"{{"value":231.0,"context":"Sample.Periodic","measurand":"Voltage","phase":"L3-N","location":"Outlet","unitOfMeasure":{{"unit":"V"}}}},"#,
                r#"{{"value":57,"context":"Sample.Periodic","measurand":"SoC","location":"EV","unitOfMeasure":{{"unit":"Percent"}}}},"#,
                r#"{{"value":50.0,"context":"Sample.Periodic","measurand":"Frequency","location":"Outlet","unitOfMeasure":{{"unit":"Hertz"}}}}"#,
                r#"]}}]}}]"#
            ),
            id = id,
            ts = ts,
            wh = wh
        ),
    }
}

/// StartTransaction (1.6) or TransactionEvent(Started) (2.0.1) on connector
/// (EVSE) 1. `tx_ref` is the charger's own transaction id (2.0.1 only).
pub fn start_tx(proto: Proto, id: &str, ts: &str, tag: &str, wh: u64, tx_ref: &str) -> String {
    match proto {
        Proto::V16 => format!(
            r#"[2,"{id}","StartTransaction",{{"connectorId":1,"idTag":"{tag}","meterStart":{wh},"timestamp":"{ts}"}}]"#
        ),
        Proto::V201 => format!(
            concat!(
                r#"[2,"{id}","TransactionEvent",{{"eventType":"Started","timestamp":"{ts}","triggerReason":"Authorized","seqNo":0,"#,
                r#""transactionInfo":{{"transactionId":"{tx_ref}","chargingState":"Charging"}},"#,
                r#""idToken":{{"idToken":"{tag}","type":"ISO14443"}},"evse":{{"id":1,"connectorId":1}},"#,
                r#""meterValue":[{{"timestamp":"{ts}","sampledValue":[{{"value":{wh},"context":"Transaction.Begin","measurand":"Energy.Active.Import.Register","unitOfMeasure":{{"unit":"Wh"}}}}]}}]}}]"#
            ),
            id = id,
            ts = ts,
            tag = tag,
            wh = wh,
            tx_ref = tx_ref
        ),
    }
}

/// StopTransaction (1.6, `session` is the transactionId the server gave)
/// or TransactionEvent(Ended) (2.0.1, `tx_ref` is the charger's id).
pub fn stop_tx(proto: Proto, id: &str, ts: &str, tag: &str, wh: u64, session: i64, tx_ref: &str) -> String {
    match proto {
        Proto::V16 => format!(
            r#"[2,"{id}","StopTransaction",{{"transactionId":{session},"idTag":"{tag}","meterStop":{wh},"timestamp":"{ts}","reason":"Local"}}]"#
        ),
        Proto::V201 => format!(
            concat!(
                r#"[2,"{id}","TransactionEvent",{{"eventType":"Ended","timestamp":"{ts}","triggerReason":"StopAuthorized","seqNo":1,"#,
                r#""transactionInfo":{{"transactionId":"{tx_ref}","chargingState":"EVConnected","stoppedReason":"Local"}},"#,
                r#""idToken":{{"idToken":"{tag}","type":"ISO14443"}},"evse":{{"id":1,"connectorId":1}},"#,
                r#""meterValue":[{{"timestamp":"{ts}","sampledValue":[{{"value":{wh},"context":"Transaction.End","measurand":"Energy.Active.Import.Register","unitOfMeasure":{{"unit":"Wh"}}}}]}}]}}]"#
            ),
            id = id,
            ts = ts,
            tag = tag,
            wh = wh,
            tx_ref = tx_ref
        ),
    }
}

/// Our answer to a CALL from the server: the generator plays no commands.
pub fn not_implemented(id: &str) -> String {
    format!(r#"[4,"{id}","NotImplemented","the load generator answers no commands",{{}}]"#)
}

/// Message type and id of an OCPP-J frame, read without parsing the whole
/// frame: enough to match a reply to its call. None if the frame does not
/// start like `[<digit>, "<id>"`.
pub fn head(text: &str) -> Option<(u8, &str)> {
    let rest = text.trim_start().strip_prefix('[')?.trim_start();
    let kind = rest.as_bytes().first().filter(|b| b.is_ascii_digit())? - b'0';
    let rest = rest[1..].trim_start().strip_prefix(',')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let (id, _) = rest.split_once('"')?;
    // Our ids are plain digits; an escaped quote would make this cut wrong.
    (!id.contains('\\')).then_some((kind, id))
}

/// The payload (third element) of a CALLRESULT, parsed.
pub fn result_payload(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(mut items) if items.len() == 3 => Some(items.swap_remove(2)),
        _ => None,
    }
}

/// `status` of a BootNotification answer.
pub fn boot_status(payload: &Value) -> Option<&str> {
    payload.get("status")?.as_str()
}

/// The retry interval of a Pending boot answer, s.
pub fn boot_interval(payload: &Value) -> Option<u64> {
    payload.get("interval")?.as_u64()
}

/// The authorization status of a transaction answer: 1.6 `idTagInfo`,
/// 2.0.1 `idTokenInfo`.
pub fn auth_status(proto: Proto, payload: &Value) -> Option<&str> {
    let info = match proto {
        Proto::V16 => "idTagInfo",
        Proto::V201 => "idTokenInfo",
    };
    payload.get(info)?.get("status")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_json_arrays_of_four() {
        for p in [Proto::V16, Proto::V201] {
            for f in [
                boot(p, "1", "S"),
                meter_values(p, "2", &now(), 42),
                start_tx(p, "3", &now(), "T", 1, "R"),
                stop_tx(p, "4", &now(), "T", 2, 7, "R"),
            ] {
                let v: Value = serde_json::from_str(&f).expect(&f);
                assert_eq!(v.as_array().map(Vec::len), Some(4), "{f}");
            }
        }
        let mv: Value = serde_json::from_str(&meter_values(Proto::V16, "2", &now(), 42)).expect("json");
        assert_eq!(
            mv[3]["meterValue"][0]["sampledValue"].as_array().map(Vec::len),
            Some(10)
        );
    }

    #[test]
    fn head_reads_type_and_id() {
        assert_eq!(head(r#"[3,"17",{}]"#), Some((3, "17")));
        assert_eq!(head(r#" [ 2 , "a" ,"X",{}]"#), Some((2, "a")));
        assert_eq!(head(r#"[4,"x\"y","E","",{}]"#), None);
        assert_eq!(head("nonsense"), None);
        assert_eq!(head(""), None);
    }

    #[test]
    fn payload_and_statuses() {
        let p = result_payload(r#"[3,"1",{"status":"Accepted","interval":5}]"#).expect("payload");
        assert_eq!(boot_status(&p), Some("Accepted"));
        let p = result_payload(r#"[3,"1",{"transactionId":4,"idTagInfo":{"status":"Accepted"}}]"#).expect("payload");
        assert_eq!(auth_status(Proto::V16, &p), Some("Accepted"));
        assert_eq!(result_payload(r#"[2,"1","X",{}]"#), None);
    }
}
