//! Validation of OCPP payloads against the official JSON schemas (embedded,
//! see schemas/README.md), classifying every failure the way OCPP-J's error
//! codes do. Only the keywords the OCPP schemas use are implemented.

use crate::domain::Protocol;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;

/// What kind of constraint a payload broke; `frame` maps it onto the
/// version's CALLERROR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// Not an object where one is needed, or a property the PDU does not have.
    Formation,
    /// A value of the wrong JSON type.
    Type,
    /// A required property missing, or too few/many array items.
    Occurrence,
    /// A value outside its enum, length, range or format.
    Property,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct Violation {
    pub kind: ViolationKind,
    pub path: String,
    pub detail: String,
}

/// Whether we validate the request of an action or its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Request,
    Response,
}

macro_rules! schema_table {
    ($dir:literal, $req_suffix:literal; $($name:literal),* $(,)?) => {
        &[$(
            ($name, Part::Request, include_str!(concat!("schemas/", $dir, "/", $name, $req_suffix, ".json"))),
            ($name, Part::Response, include_str!(concat!("schemas/", $dir, "/", $name, "Response.json"))),
        )*]
    };
}

type Table = &'static [(&'static str, Part, &'static str)];

const V16: Table = schema_table!("v16", "";
    "Authorize", "BootNotification", "CancelReservation", "CertificateSigned", "ChangeAvailability",
    "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer", "DeleteCertificate",
    "DiagnosticsStatusNotification", "ExtendedTriggerMessage", "FirmwareStatusNotification",
    "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetInstalledCertificateIds",
    "GetLocalListVersion", "GetLog", "Heartbeat", "InstallCertificate", "LogStatusNotification",
    "MeterValues", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset",
    "SecurityEventNotification", "SendLocalList", "SetChargingProfile", "SignCertificate",
    "SignedFirmwareStatusNotification", "SignedUpdateFirmware", "StartTransaction",
    "StatusNotification", "StopTransaction", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
);

const V201: Table = schema_table!("v201", "Request";
    "Authorize", "BootNotification", "CancelReservation", "CertificateSigned", "ChangeAvailability",
    "ClearCache", "ClearChargingProfile", "ClearDisplayMessage", "ClearVariableMonitoring",
    "ClearedChargingLimit", "CostUpdated", "CustomerInformation", "DataTransfer", "DeleteCertificate",
    "FirmwareStatusNotification", "Get15118EVCertificate", "GetBaseReport", "GetCertificateStatus",
    "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages", "GetInstalledCertificateIds",
    "GetLocalListVersion", "GetLog", "GetMonitoringReport", "GetReport", "GetTransactionStatus",
    "GetVariables", "Heartbeat", "InstallCertificate", "LogStatusNotification", "MeterValues",
    "NotifyChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages",
    "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport",
    "NotifyReport", "PublishFirmware", "PublishFirmwareStatusNotification", "ReportChargingProfiles",
    "RequestStartTransaction", "RequestStopTransaction", "ReservationStatusUpdate", "ReserveNow",
    "Reset", "SecurityEventNotification", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
    "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring",
    "SetVariables", "SignCertificate", "StatusNotification", "TransactionEvent", "TriggerMessage",
    "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
);

type Compiled = HashMap<(Protocol, &'static str, Part), Value>;

static SCHEMAS: LazyLock<Compiled> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for (proto, table) in [(Protocol::V16, V16), (Protocol::V201, V201)] {
        for (name, part, text) in table {
            // The embedded schemas are fixed at build time; a test parses them all.
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                m.insert((proto, *name, *part), v);
            }
        }
    }
    m
});

/// True when the version defines this action at all.
pub fn knows(proto: Protocol, action: &str) -> bool {
    SCHEMAS.contains_key(&(proto, action, Part::Request))
}

/// Validate a payload. An action without a schema is the caller's problem
/// (NotImplemented), so it passes here.
pub fn validate(proto: Protocol, action: &str, part: Part, payload: &Value) -> Result<(), Violation> {
    let Some(root) = SCHEMAS.get(&(proto, action, part)) else {
        return Ok(());
    };
    Validator { root }.check(root, payload, &mut String::new())
}

struct Validator<'a> {
    root: &'a Value,
}

fn v(kind: ViolationKind, path: &str, detail: String) -> Violation {
    Violation {
        kind,
        path: if path.is_empty() {
            "payload".into()
        } else {
            path.to_string()
        },
        detail,
    }
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut s = schema;
        // Follow "#/definitions/X" chains; the OCPP schemas use no other kind.
        for _ in 0..8 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let name = r.trim_start_matches("#/definitions/");
                    match self.root.get("definitions").and_then(|d| d.get(name)) {
                        Some(t) => s = t,
                        None => return s,
                    }
                }
                None => return s,
            }
        }
        s
    }

    fn check(&self, schema: &Value, val: &Value, path: &mut String) -> Result<(), Violation> {
        let schema = self.resolve(schema);
        if let Some(ty) = schema.get("type").and_then(Value::as_str)
            && !type_matches(ty, val)
        {
            let kind = if path.is_empty() {
                ViolationKind::Formation
            } else {
                ViolationKind::Type
            };
            return Err(v(kind, path, format!("expected {ty}, got {}", type_name(val))));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(val)
        {
            let shown: Vec<&str> = options.iter().filter_map(Value::as_str).collect();
            return Err(v(
                ViolationKind::Property,
                path,
                format!("{val} is not one of {}", shown.join(", ")),
            ));
        }
        match val {
            Value::Object(map) => self.check_object(schema, map, path),
            Value::Array(items) => self.check_array(schema, items, path),
            Value::String(s) => check_string(schema, s, path),
            Value::Number(n) => check_number(schema, n, path),
            _ => Ok(()),
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        map: &serde_json::Map<String, Value>,
        path: &mut String,
    ) -> Result<(), Violation> {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    return Err(v(
                        ViolationKind::Occurrence,
                        &join(path, r),
                        "required property is missing".into(),
                    ));
                }
            }
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (key, value) in map {
            let sub = props.and_then(|p| p.get(key));
            match sub {
                Some(sub) => {
                    let len = path.len();
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(key);
                    let r = self.check(sub, value, path);
                    path.truncate(len);
                    r?;
                }
                None if closed => {
                    return Err(v(
                        ViolationKind::Formation,
                        &join(path, key),
                        "property is not defined for this message".into(),
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn check_array(&self, schema: &Value, items: &[Value], path: &mut String) -> Result<(), Violation> {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            return Err(v(
                ViolationKind::Occurrence,
                path,
                format!("needs at least {min} item(s), has {}", items.len()),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            return Err(v(
                ViolationKind::Occurrence,
                path,
                format!("allows at most {max} item(s), has {}", items.len()),
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let r = self.check(item_schema, item, path);
                path.truncate(len);
                r?;
            }
        }
        Ok(())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn check_string(schema: &Value, s: &str, path: &str) -> Result<(), Violation> {
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        let n = s.chars().count() as u64;
        if n > max {
            return Err(v(
                ViolationKind::Property,
                path,
                format!("is {n} characters long, at most {max} allowed"),
            ));
        }
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time") && crate::ocpp::parse_time(s).is_none() {
        return Err(v(
            ViolationKind::Property,
            path,
            format!("{s:?} is not an RFC 3339 date-time"),
        ));
    }
    Ok(())
}

fn check_number(schema: &Value, n: &serde_json::Number, path: &str) -> Result<(), Violation> {
    let Some(x) = n.as_f64() else { return Ok(()) };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        return Err(v(
            ViolationKind::Property,
            path,
            format!("{n} is below the minimum {min}"),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        return Err(v(
            ViolationKind::Property,
            path,
            format!("{n} is above the maximum {max}"),
        ));
    }
    if let Some(step) = schema.get("multipleOf").and_then(Value::as_f64)
        && step > 0.0
    {
        let q = x / step;
        if (q - q.round()).abs() > 1e-9 {
            return Err(v(
                ViolationKind::Property,
                path,
                format!("{n} is not a multiple of {step}"),
            ));
        }
    }
    Ok(())
}

fn type_matches(ty: &str, val: &Value) -> bool {
    match ty {
        "object" => val.is_object(),
        "array" => val.is_array(),
        "string" => val.is_string(),
        "boolean" => val.is_boolean(),
        "number" => val.is_number(),
        "integer" => val.is_i64() || val.is_u64() || val.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15),
        "null" => val.is_null(),
        _ => true,
    }
}

fn type_name(val: &Value) -> &'static str {
    match val {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_embedded_schema_parses() {
        assert_eq!(SCHEMAS.len(), (V16.len() + V201.len()));
    }

    #[test]
    fn classifies_violations() {
        let p = Protocol::V16;
        let ok = json!({"chargePointVendor": "V", "chargePointModel": "M"});
        assert!(validate(p, "BootNotification", Part::Request, &ok).is_ok());
        let e = validate(p, "BootNotification", Part::Request, &json!({"chargePointVendor": "V"})).unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (ViolationKind::Occurrence, "chargePointModel")
        );
        let e = validate(
            p,
            "BootNotification",
            Part::Request,
            &json!({"chargePointVendor": 5, "chargePointModel": "M"}),
        )
        .unwrap_err();
        assert_eq!((e.kind, e.path.as_str()), (ViolationKind::Type, "chargePointVendor"));
        let long = "x".repeat(21);
        let e = validate(
            p,
            "BootNotification",
            Part::Request,
            &json!({"chargePointVendor": long, "chargePointModel": "M"}),
        )
        .unwrap_err();
        assert_eq!(e.kind, ViolationKind::Property);
        let e = validate(
            p,
            "BootNotification",
            Part::Request,
            &json!({"chargePointVendor": "V", "chargePointModel": "M", "x": 1}),
        )
        .unwrap_err();
        assert_eq!((e.kind, e.path.as_str()), (ViolationKind::Formation, "x"));
        let e = validate(p, "BootNotification", Part::Request, &json!([])).unwrap_err();
        assert_eq!(e.kind, ViolationKind::Formation);
    }

    #[test]
    fn nested_paths_and_refs_are_followed() {
        let bad = json!({
            "eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": "t"},
            "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 1, "measurand": "Bogus"}]}]
        });
        let e = validate(Protocol::V201, "TransactionEvent", Part::Request, &bad).unwrap_err();
        assert_eq!(e.kind, ViolationKind::Property);
        assert_eq!(e.path, "meterValue[0].sampledValue[0].measurand");
        let bad_time =
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "yesterday"});
        let e = validate(Protocol::V16, "StatusNotification", Part::Request, &bad_time).unwrap_err();
        assert_eq!((e.kind, e.path.as_str()), (ViolationKind::Property, "timestamp"));
        let e = validate(
            Protocol::V201,
            "MeterValues",
            Part::Request,
            &json!({"evseId": 1, "meterValue": []}),
        )
        .unwrap_err();
        assert_eq!(e.kind, ViolationKind::Occurrence);
    }
}
