//! Validation of OCPP payloads against the official JSON schemas (embedded,
//! see schemas/README.md), classifying every failure the way OCPP-J's error
//! codes do. Only the keywords the OCPP schemas use are implemented.

use super::json::{Json, Num};
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

/// Schemas are compiled once into plain nodes: walking the schema JSON for
/// every message (map lookups by keyword at each level, `$ref` resolution,
/// a path string built as it went) cost more than parsing the message.
static SCHEMAS: LazyLock<HashMap<(Protocol, &'static str, Part), Schema>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for (proto, table) in [(Protocol::V16, V16), (Protocol::V201, V201)] {
        for (name, part, text) in table {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                m.insert((proto, *name, *part), Schema::compile(&v));
            }
        }
    }
    m
});

pub fn knows(proto: Protocol, action: &str) -> bool {
    SCHEMAS.contains_key(&(proto, action, Part::Request))
}

/// Check a payload; the first violation found is returned.
pub fn validate(proto: Protocol, action: &str, part: Part, payload: &Value) -> Result<(), Violation> {
    validate_json(proto, action, part, &Json::from_value(payload, &bumpalo::Bump::new()))
}

/// [`validate`] on a payload parsed with [`Json::parse`] (the inbound path).
pub fn validate_json(proto: Protocol, action: &str, part: Part, payload: &Json) -> Result<(), Violation> {
    let Some(schema) = SCHEMAS.get(&(proto, action, part)) else {
        return Ok(());
    };
    schema.check(0, payload, &mut Vec::new())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Type {
    Object,
    Array,
    String,
    Boolean,
    Number,
    Integer,
    Null,
}

impl Type {
    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "boolean" => Type::Boolean,
            "number" => Type::Number,
            "integer" => Type::Integer,
            "null" => Type::Null,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Boolean => "boolean",
            Type::Number => "number",
            Type::Integer => "integer",
            Type::Null => "null",
        }
    }

    fn matches(self, val: &Json) -> bool {
        match (self, val) {
            (Type::Object, Json::Obj(_))
            | (Type::Array, Json::Arr(_))
            | (Type::String, Json::Str(_))
            | (Type::Boolean, Json::Bool(_))
            | (Type::Number, Json::Num(_))
            | (Type::Integer, Json::Num(Num::U(_) | Num::I(_)))
            | (Type::Null, Json::Null) => true,
            (Type::Integer, Json::Num(Num::F(f))) => f.fract() == 0.0 && f.abs() < 9.0e15,
            _ => false,
        }
    }
}

/// One schema node with every keyword the OCPP schemas use, `$ref`s
/// already resolved.
#[derive(Debug, Default)]
struct Node {
    ty: Option<Type>,
    /// Every `enum` in the OCPP schemas lists strings; these are in the
    /// schema's order, for messages.
    options: Option<Vec<String>>,
    /// The same, for lookups.
    option_names: Names<()>,
    /// Each property's node and its bit among the required properties (0
    /// when optional).
    props: Names<(usize, u64)>,
    required: Vec<String>,
    /// Every required property's bit, when
    /// there are at most 64 (all OCPP schemas): a payload that set them
    /// all needs no search for a missing one.
    all_required: Option<u64>,
    closed: bool,
    items: Option<usize>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    max_length: Option<u64>,
    date_time: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    multiple_of: Option<f64>,
}

/// A name reduced to its length and its first and last eight bytes. For a
/// name of up to 16 bytes (nearly every OCPP property and enum value) it
/// is the name itself, so a lookup compares integers where comparing
/// strings cost a `memcmp` call at every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    len: usize,
    head: u64,
    tail: u64,
}

impl Name {
    fn of(s: &str) -> Name {
        let b = s.as_bytes();
        let (head, tail) = match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
            (Some(h), Some(t)) => (u64::from_le_bytes(*h), u64::from_le_bytes(*t)),
            _ => {
                let mut short = [0u8; 8];
                short[..b.len()].copy_from_slice(b);
                (u64::from_le_bytes(short), 0)
            }
        };
        Name {
            len: b.len(),
            head,
            tail,
        }
    }

    fn exact(self) -> bool {
        self.len <= 16
    }

    fn hash(self) -> usize {
        let mixed = (self.head ^ self.tail.rotate_left(32) ^ self.len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 32) as usize
    }
}

/// Values found by name: an open-addressing table at most half full, so
/// a lookup hashes the name once and compares about one entry (a binary
/// search compared three to five).
#[derive(Debug)]
struct Names<T> {
    entries: Vec<(Name, String, T)>,
    /// Index + 1 into `entries`, 0 for an empty slot; a power of two long.
    slots: Vec<u32>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names::new(Vec::new())
    }
}

impl<T> Names<T> {
    fn new(list: Vec<(String, T)>) -> Names<T> {
        let entries: Vec<(Name, String, T)> = list.into_iter().map(|(s, v)| (Name::of(&s), s, v)).collect();
        let mask = (entries.len() * 2).next_power_of_two().max(2) - 1;
        let mut slots = vec![0u32; mask + 1];
        for (i, (name, _, _)) in entries.iter().enumerate() {
            let mut at = name.hash() & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = i as u32 + 1;
        }
        Names { entries, slots }
    }

    fn get(&self, s: &str) -> Option<&T> {
        let key = Name::of(s);
        let mask = self.slots.len() - 1;
        let mut at = key.hash() & mask;
        // Half the slots at least are empty: the probe ends.
        loop {
            let slot = *self.slots.get(at)? as usize;
            let (name, text, value) = self.entries.get(slot.checked_sub(1)?)?;
            if *name == key && (key.exact() || text == s) {
                return Some(value);
            }
            at = (at + 1) & mask;
        }
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, _, v)| v)
    }
}

/// The nodes of one message schema; node 0 is the root.
struct Schema {
    nodes: Vec<Node>,
}

/// Where in the payload a check is, kept as segments and rendered only
/// when something is wrong.
enum Seg<'v> {
    Key(&'v str),
    Index(usize),
}

fn render(path: &[Seg], last: Option<&str>) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if let Some(k) = last {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(k);
    }
    if out.is_empty() { "payload".into() } else { out }
}

fn v(kind: ViolationKind, path: &[Seg], last: Option<&str>, detail: String) -> Violation {
    Violation {
        kind,
        path: render(path, last),
        detail,
    }
}

impl Schema {
    fn compile(root: &Value) -> Schema {
        let mut schema = Schema { nodes: Vec::new() };
        schema.node(root, root, 0);
        schema
    }

    /// Adds the node for `s` (and its children) and returns its index.
    /// OCPP's schemas are not recursive; the depth cap only guards against
    /// a malformed one.
    fn node(&mut self, root: &Value, s: &Value, depth: usize) -> usize {
        let s = resolve(root, s);
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        if depth > 32 {
            return id;
        }
        let mut n = Node {
            ty: s.get("type").and_then(Value::as_str).and_then(Type::parse),
            options: s
                .get("enum")
                .and_then(Value::as_array)
                .map(|o| o.iter().filter_map(Value::as_str).map(str::to_string).collect()),
            required: s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            closed: s.get("additionalProperties") == Some(&Value::Bool(false)),
            min_items: s.get("minItems").and_then(Value::as_u64),
            max_items: s.get("maxItems").and_then(Value::as_u64),
            max_length: s.get("maxLength").and_then(Value::as_u64),
            date_time: s.get("format").and_then(Value::as_str) == Some("date-time"),
            minimum: s.get("minimum").and_then(Value::as_f64),
            maximum: s.get("maximum").and_then(Value::as_f64),
            multiple_of: s.get("multipleOf").and_then(Value::as_f64).filter(|m| *m > 0.0),
            ..Node::default()
        };
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            let mut list = Vec::new();
            for (k, sub) in props {
                let node = self.node(root, sub, depth + 1);
                let required = match n.required.iter().position(|r| r == k) {
                    Some(i) if i < 64 => 1 << i,
                    _ => 0,
                };
                list.push((k.clone(), (node, required)));
            }
            n.props = Names::new(list);
        }
        let bits: u64 = n.props.values().map(|(_, bit)| bit).fold(0, |a, b| a | b);
        n.all_required = (bits.count_ones() as usize == n.required.len()).then_some(bits);
        if let Some(items) = s.get("items") {
            n.items = Some(self.node(root, items, depth + 1));
        }
        if let Some(options) = &n.options {
            n.option_names = Names::new(options.iter().map(|o| (o.clone(), ())).collect());
        }
        self.nodes[id] = n;
        id
    }

    fn check<'v>(&self, at: usize, val: &'v Json<'v>, path: &mut Vec<Seg<'v>>) -> Result<(), Violation> {
        let n = &self.nodes[at];
        if let Some(ty) = n.ty
            && !ty.matches(val)
        {
            let kind = if path.is_empty() {
                ViolationKind::Formation
            } else {
                ViolationKind::Type
            };
            return Err(v(
                kind,
                path,
                None,
                format!("expected {}, got {}", ty.name(), val.type_name()),
            ));
        }
        if let Some(options) = &n.options {
            let listed = match val {
                Json::Str(s) => n.option_names.get(s).is_some(),
                _ => false,
            };
            if !listed {
                return Err(v(
                    ViolationKind::Property,
                    path,
                    None,
                    format!("{val} is not one of {}", options.join(", ")),
                ));
            }
        }
        match val {
            Json::Obj(map) => self.check_object(n, map, path),
            Json::Arr(items) => self.check_array(n, items, path),
            Json::Str(s) => check_string(n, s, path),
            Json::Num(x) => check_number(n, *x, path),
            _ => Ok(()),
        }
    }

    fn check_object<'v>(
        &self,
        n: &Node,
        map: &'v [(&'v str, Json<'v>)],
        path: &mut Vec<Seg<'v>>,
    ) -> Result<(), Violation> {
        // A missing property is reported before anything else wrong here.
        let mut present = 0u64;
        for (key, value) in map {
            let wrong = match n.props.get(key) {
                Some(&(node, required)) => {
                    present |= required;
                    path.push(Seg::Key(key));
                    let r = self.check(node, value, path);
                    path.pop();
                    r.err()
                }
                None if n.closed => Some(v(
                    ViolationKind::Formation,
                    path,
                    Some(key),
                    "property is not defined for this message".into(),
                )),
                None => None,
            };
            if let Some(wrong) = wrong {
                missing(n, map, path)?;
                return Err(wrong);
            }
        }
        if n.all_required == Some(present) {
            return Ok(());
        }
        missing(n, map, path)
    }

    fn check_array<'v>(&self, n: &Node, items: &'v [Json<'v>], path: &mut Vec<Seg<'v>>) -> Result<(), Violation> {
        if let Some(min) = n.min_items
            && (items.len() as u64) < min
        {
            return Err(v(
                ViolationKind::Occurrence,
                path,
                None,
                format!("needs at least {min} item(s), has {}", items.len()),
            ));
        }
        if let Some(max) = n.max_items
            && (items.len() as u64) > max
        {
            return Err(v(
                ViolationKind::Occurrence,
                path,
                None,
                format!("allows at most {max} item(s), has {}", items.len()),
            ));
        }
        if let Some(item) = n.items {
            for (i, value) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                let r = self.check(item, value, path);
                path.pop();
                r?;
            }
        }
        Ok(())
    }
}

fn resolve<'s>(root: &'s Value, schema: &'s Value) -> &'s Value {
    let mut s = schema;
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                match root.get("definitions").and_then(|d| d.get(name)) {
                    Some(t) => s = t,
                    None => return s,
                }
            }
            None => return s,
        }
    }
    s
}

fn missing(n: &Node, map: &[(&str, Json)], path: &[Seg]) -> Result<(), Violation> {
    for r in &n.required {
        if !map.iter().any(|(k, _)| k == r) {
            return Err(v(
                ViolationKind::Occurrence,
                path,
                Some(r),
                "required property is missing".into(),
            ));
        }
    }
    Ok(())
}

fn check_string(n: &Node, s: &str, path: &[Seg]) -> Result<(), Violation> {
    if let Some(max) = n.max_length {
        // Byte length bounds the character count: count only when it could matter.
        let count = if (s.len() as u64) <= max {
            0
        } else {
            s.chars().count() as u64
        };
        if count > max {
            return Err(v(
                ViolationKind::Property,
                path,
                None,
                format!("is {count} characters long, at most {max} allowed"),
            ));
        }
    }
    if n.date_time && crate::ocpp::parse_time(s).is_none() {
        return Err(v(
            ViolationKind::Property,
            path,
            None,
            format!("{s:?} is not an RFC 3339 date-time"),
        ));
    }
    Ok(())
}

fn check_number(n: &Node, x: Num, path: &[Seg]) -> Result<(), Violation> {
    let f = x.as_f64();
    if let Some(min) = n.minimum
        && f < min
    {
        return Err(v(
            ViolationKind::Property,
            path,
            None,
            format!("{x} is below the minimum {min}"),
        ));
    }
    if let Some(max) = n.maximum
        && f > max
    {
        return Err(v(
            ViolationKind::Property,
            path,
            None,
            format!("{x} is above the maximum {max}"),
        ));
    }
    if let Some(step) = n.multiple_of {
        let q = f / step;
        if (q - q.round()).abs() > 1e-9 {
            return Err(v(
                ViolationKind::Property,
                path,
                None,
                format!("{x} is not a multiple of {step}"),
            ));
        }
    }
    Ok(())
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
    fn long_names_that_share_their_ends_are_told_apart() {
        // Same length, same first and last eight bytes as two real measurands.
        let sv = |m: &str| {
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
            "sampledValue": [{"value": "1", "measurand": m}]}]})
        };
        for real in ["Energy.Active.Export.Register", "Energy.Active.Import.Register"] {
            assert!(validate(Protocol::V16, "MeterValues", Part::Request, &sv(real)).is_ok());
        }
        let e = validate(
            Protocol::V16,
            "MeterValues",
            Part::Request,
            &sv("Energy.Active.Xxport.Register"),
        )
        .unwrap_err();
        assert_eq!(e.path, "meterValue[0].sampledValue[0].measurand");
    }

    #[test]
    fn a_repeated_key_does_not_stand_in_for_a_missing_one() {
        let boot = |text: &str| {
            validate_json(
                Protocol::V16,
                "BootNotification",
                Part::Request,
                &Json::parse(text, &bumpalo::Bump::new()).unwrap(),
            )
            .unwrap_err()
        };
        let e = boot(r#"{"chargePointVendor":"V","chargePointVendor":"V"}"#);
        assert_eq!(
            (e.kind, e.path.as_str()),
            (ViolationKind::Occurrence, "chargePointModel")
        );
        let e = boot(r#"{"chargePointVendor":5}"#);
        assert_eq!(
            e.kind,
            ViolationKind::Occurrence,
            "a missing property is reported first"
        );
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
