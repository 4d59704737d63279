//! Parsing `OCMF|{payload}|{signature}`. The payload bytes are kept exactly as received: the
//! signature is over them, so nothing here ever re-serialises JSON. The typed view of the payload
//! is lenient (real meters write numbers as padded strings, `FV` as a number, `IS` as a string…):
//! odd fields become `None` plus an entry in [`Payload::issues`], never a parse failure, so a
//! record whose content is odd can still have its signature checked.

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the record is empty")]
    Empty,
    #[error("the record does not start with \"OCMF|\"")]
    NotOcmf,
    #[error("the payload section is not valid JSON: {0}")]
    PayloadJson(String),
    #[error("the payload section is not a JSON object")]
    PayloadNotObject,
    #[error("no \"|\" after the payload section")]
    MissingSeparator,
    #[error("the signature section is not valid JSON: {0}")]
    SignatureJson(String),
    #[error("the signature section is not a JSON object")]
    SignatureNotObject,
    #[error("signature field {0} is not a string")]
    SignatureField(&'static str),
    #[error("RD is not an array of reading objects")]
    Readings,
}

/// One OCMF record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    text: String,
    payload: Range<usize>,
    signature_range: Range<usize>,
    /// The typed payload.
    pub data: Payload,
    /// The signature section.
    pub signature: SignatureSection,
}

/// The signature section's fields, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignatureSection {
    #[serde(rename = "SA")]
    pub sa: Option<String>,
    #[serde(rename = "SE")]
    pub se: Option<String>,
    #[serde(rename = "SM")]
    pub sm: Option<String>,
    #[serde(rename = "SD")]
    pub sd: Option<String>,
}

/// The payload's fields. Strings given as JSON numbers (`"FV": 1.0`) are kept as their text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Payload {
    pub fv: Option<String>,
    pub gi: Option<String>,
    pub gs: Option<String>,
    pub gv: Option<String>,
    pub pg: Option<String>,
    pub mv: Option<String>,
    pub mm: Option<String>,
    pub ms: Option<String>,
    pub mf: Option<String>,
    pub is: Option<bool>,
    pub il: Option<String>,
    #[serde(rename = "if")]
    pub if_: Vec<String>,
    pub it: Option<String>,
    pub id: Option<String>,
    pub tt: Option<String>,
    pub cf: Option<String>,
    /// Loss compensation (`LC`), as written.
    pub lc: Option<Value>,
    pub ct: Option<String>,
    pub ci: Option<String>,
    pub readings: Vec<Reading>,
    /// Fields that could not be read as their type (the record still parses).
    pub issues: Vec<String>,
    /// Every top-level field, as parsed (vendor extensions included).
    #[serde(skip)]
    pub fields: Map<String, Value>,
}

/// `TX`: why the reading was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tx {
    /// B: begin of transaction.
    Begin,
    /// C: during charging.
    Charging,
    /// X: error during charging; time and/or energy no longer usable from here.
    Exception,
    /// E: end of transaction.
    End,
    /// L: terminated locally.
    EndLocal,
    /// R: terminated remotely.
    EndRemote,
    /// A: aborted by an error.
    EndAbort,
    /// P: terminated by a power failure.
    EndPowerFailure,
    /// S: suspended.
    Suspended,
    /// T: tariff change.
    TariffChange,
}

impl Tx {
    pub fn from_code(s: &str) -> Option<Tx> {
        Some(match s {
            "B" => Tx::Begin,
            "C" => Tx::Charging,
            "X" => Tx::Exception,
            "E" => Tx::End,
            "L" => Tx::EndLocal,
            "R" => Tx::EndRemote,
            "A" => Tx::EndAbort,
            "P" => Tx::EndPowerFailure,
            "S" => Tx::Suspended,
            "T" => Tx::TariffChange,
            _ => return None,
        })
    }

    pub fn code(self) -> char {
        match self {
            Tx::Begin => 'B',
            Tx::Charging => 'C',
            Tx::Exception => 'X',
            Tx::End => 'E',
            Tx::EndLocal => 'L',
            Tx::EndRemote => 'R',
            Tx::EndAbort => 'A',
            Tx::EndPowerFailure => 'P',
            Tx::Suspended => 'S',
            Tx::TariffChange => 'T',
        }
    }

    /// E and its more precise forms L, R, A, P.
    pub fn is_end(self) -> bool {
        matches!(
            self,
            Tx::End | Tx::EndLocal | Tx::EndRemote | Tx::EndAbort | Tx::EndPowerFailure
        )
    }
}

/// The time status letter after `TM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeSync {
    /// U: unknown, unsynchronised.
    Unknown,
    /// I: informative (info clock).
    Informative,
    /// S: synchronised.
    Synchronised,
    /// R: relative time accounting, calibration-law accurate duration.
    Relative,
}

/// `TM`: `2019-11-19T13:32:39,000+0100 S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MeterTime {
    pub at: DateTime<FixedOffset>,
    pub sync: Option<TimeSync>,
}

impl MeterTime {
    pub fn parse(s: &str) -> Result<MeterTime, String> {
        let s = s.trim();
        let (time, flag) = match s.rsplit_once(' ') {
            Some((t, f)) => (t.trim(), Some(f)),
            None => (s, None),
        };
        let sync = match flag {
            None => None,
            Some("U") => Some(TimeSync::Unknown),
            Some("I") => Some(TimeSync::Informative),
            Some("S") => Some(TimeSync::Synchronised),
            Some("R") => Some(TimeSync::Relative),
            Some(other) => return Err(format!("unknown time status {other:?} in TM {s:?}")),
        };
        let mut t = time.replacen(',', ".", 1);
        if let Some(stripped) = t.strip_suffix('Z') {
            t = format!("{stripped}+0000");
        }
        let at = DateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f%z")
            .or_else(|_| DateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f%:z"))
            .map_err(|e| format!("TM {s:?} is not a time: {e}"))?;
        Ok(MeterTime { at, sync })
    }

    pub fn utc(&self) -> DateTime<Utc> {
        self.at.with_timezone(&Utc)
    }
}

/// `RU`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Unit {
    Wh,
    KWh,
    Varh,
    KVarh,
    Other(String),
}

impl Unit {
    pub fn parse(s: &str) -> Unit {
        match s.trim() {
            "Wh" => Unit::Wh,
            "kWh" => Unit::KWh,
            "varh" => Unit::Varh,
            "kvarh" => Unit::KVarh,
            other => match other.to_ascii_lowercase().as_str() {
                "wh" => Unit::Wh,
                "kwh" => Unit::KWh,
                "varh" => Unit::Varh,
                "kvarh" => Unit::KVarh,
                _ => Unit::Other(other.to_owned()),
            },
        }
    }

    /// A value in this unit in Wh, exactly; `None` for units that are not active energy.
    pub fn to_wh(&self, v: Decimal) -> Option<Decimal> {
        match self {
            Unit::Wh => Some(v),
            Unit::KWh => v.checked_mul(Decimal::ONE_THOUSAND),
            _ => None,
        }
    }

    pub fn is_active_energy(&self) -> bool {
        matches!(self, Unit::Wh | Unit::KWh)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Wh => "Wh",
            Unit::KWh => "kWh",
            Unit::Varh => "varh",
            Unit::KVarh => "kvarh",
            Unit::Other(s) => s,
        })
    }
}

/// One element of `RD`, with the fields a reading omitted filled in from the one before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    pub tm: Option<String>,
    pub time: Option<MeterTime>,
    pub tx: Option<Tx>,
    /// `RV` exactly (from a JSON number or a padded string).
    pub value: Option<Decimal>,
    pub ri: Option<String>,
    pub unit: Option<Unit>,
    pub rt: Option<String>,
    pub cl: Option<Decimal>,
    pub ef: Option<String>,
    pub st: Option<String>,
}

impl Reading {
    /// The value in Wh, exactly, if the unit is Wh or kWh.
    pub fn value_wh(&self) -> Option<Decimal> {
        self.unit.as_ref()?.to_wh(self.value?)
    }
}

impl Record {
    /// Parse one record. Leading/trailing whitespace and a byte-order mark are ignored; everything
    /// between the two separators is the signed payload, byte for byte.
    pub fn parse(input: &str) -> Result<Record, ParseError> {
        let text = input.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let rest = text.strip_prefix("OCMF|").ok_or(ParseError::NotOcmf)?;
        let start = text.len() - rest.len();
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Strict>();
        let payload_value = match stream.next() {
            Some(Ok(v)) => v.0,
            Some(Err(e)) => return Err(ParseError::PayloadJson(e.to_string())),
            None => return Err(ParseError::PayloadJson("empty".into())),
        };
        let json_end = stream.byte_offset();
        let sep = rest[json_end..]
            .find(|c: char| !c.is_whitespace())
            .map(|i| json_end + i)
            .filter(|&i| rest.as_bytes()[i] == b'|')
            .ok_or(ParseError::MissingSeparator)?;
        let Value::Object(fields) = payload_value else {
            return Err(ParseError::PayloadNotObject);
        };
        let sig_text = &rest[sep + 1..];
        let sig_value = serde_json::from_str::<Strict>(sig_text)
            .map_err(|e| ParseError::SignatureJson(e.to_string()))?
            .0;
        let Value::Object(sig) = sig_value else {
            return Err(ParseError::SignatureNotObject);
        };
        let sig_str = |k: &'static str| -> Result<Option<String>, ParseError> {
            match sig.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ParseError::SignatureField(k)),
            }
        };
        let signature = SignatureSection {
            sa: sig_str("SA")?,
            se: sig_str("SE")?,
            sm: sig_str("SM")?,
            sd: sig_str("SD")?,
        };
        let data = Payload::from_fields(fields)?;
        Ok(Record {
            text: text.to_owned(),
            payload: start..start + sep,
            signature_range: start + sep + 1..text.len(),
            data,
            signature,
        })
    }

    /// The whole record as received (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The payload section exactly as received: the bytes the signature is over.
    pub fn payload_str(&self) -> &str {
        &self.text[self.payload.clone()]
    }

    pub fn payload_bytes(&self) -> &[u8] {
        self.payload_str().as_bytes()
    }

    /// The signature section as received.
    pub fn signature_str(&self) -> &str {
        &self.text[self.signature_range.clone()]
    }

    /// The first reading with this TX.
    pub fn reading(&self, pred: impl Fn(Tx) -> bool) -> Option<&Reading> {
        self.data.readings.iter().find(|r| r.tx.is_some_and(&pred))
    }

    pub fn has_begin(&self) -> bool {
        self.reading(|t| t == Tx::Begin).is_some()
    }

    pub fn has_end(&self) -> bool {
        self.reading(Tx::is_end).is_some()
    }
}

impl Payload {
    fn from_fields(fields: Map<String, Value>) -> Result<Payload, ParseError> {
        let mut issues = Vec::new();
        let text = |k: &str, issues: &mut Vec<String>| -> Option<String> {
            match fields.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Null => None,
                other => {
                    issues.push(format!("{k} is not a string: {other}"));
                    None
                }
            }
        };
        let is = match fields.get("IS") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                issues.push(format!("IS is not a boolean: {other}"));
                None
            }
        };
        let if_ = match fields.get("IF") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        issues.push(format!("IF holds a non-string: {other}"));
                        None
                    }
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(other) => {
                issues.push(format!("IF is not an array: {other}"));
                Vec::new()
            }
        };
        let readings = match fields.get("RD") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => readings(a, &mut issues)?,
            Some(_) => return Err(ParseError::Readings),
        };
        let mut p = Payload {
            fv: text("FV", &mut issues),
            gi: text("GI", &mut issues),
            gs: text("GS", &mut issues),
            gv: text("GV", &mut issues),
            pg: text("PG", &mut issues),
            mv: text("MV", &mut issues),
            mm: text("MM", &mut issues),
            ms: text("MS", &mut issues),
            mf: text("MF", &mut issues),
            is,
            il: text("IL", &mut issues),
            if_,
            it: text("IT", &mut issues),
            id: text("ID", &mut issues),
            tt: text("TT", &mut issues),
            cf: text("CF", &mut issues),
            lc: fields.get("LC").cloned(),
            ct: text("CT", &mut issues),
            ci: text("CI", &mut issues),
            readings,
            issues: Vec::new(),
            fields: Map::new(),
        };
        p.issues = issues;
        p.fields = fields;
        Ok(p)
    }

    /// `PG` split into its context letter and number (`T12` → `('T', 12)`).
    pub fn pagination(&self) -> Option<(char, u64)> {
        let pg = self.pg.as_deref()?.trim();
        let mut chars = pg.chars();
        let letter = chars.next()?;
        let n = chars.as_str().parse().ok()?;
        Some((letter, n))
    }
}

fn readings(items: &[Value], issues: &mut Vec<String>) -> Result<Vec<Reading>, ParseError> {
    let mut out: Vec<Reading> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(ParseError::Readings);
        };
        let mut r = out.last().cloned().unwrap_or_default();
        let n = i + 1;
        let string = |k: &str, issues: &mut Vec<String>| -> Option<Option<String>> {
            match m.get(k)? {
                Value::String(s) => Some(Some(s.clone())),
                Value::Number(x) => Some(Some(x.to_string())),
                other => {
                    issues.push(format!("reading {n}: {k} is not a string: {other}"));
                    Some(None)
                }
            }
        };
        if let Some(tm) = string("TM", issues) {
            r.time = tm.as_deref().and_then(|s| match MeterTime::parse(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    issues.push(format!("reading {n}: {e}"));
                    None
                }
            });
            r.tm = tm;
        }
        if let Some(tx) = string("TX", issues) {
            r.tx = tx.as_deref().and_then(|s| {
                let t = Tx::from_code(s.trim());
                if t.is_none() {
                    issues.push(format!("reading {n}: unknown TX {s:?}"));
                }
                t
            });
        }
        if let Some(v) = m.get("RV") {
            r.value = number(v).or_else(|| {
                issues.push(format!("reading {n}: RV {v} is not a number"));
                None
            });
        }
        if let Some(ri) = string("RI", issues) {
            r.ri = ri;
        }
        if let Some(ru) = string("RU", issues) {
            r.unit = ru.as_deref().map(Unit::parse);
        }
        if let Some(rt) = string("RT", issues) {
            r.rt = rt;
        }
        if let Some(v) = m.get("CL") {
            r.cl = number(v).or_else(|| {
                issues.push(format!("reading {n}: CL {v} is not a number"));
                None
            });
        }
        if let Some(ef) = string("EF", issues) {
            r.ef = ef;
        }
        if let Some(st) = string("ST", issues) {
            r.st = st;
        }
        out.push(r);
    }
    Ok(out)
}

/// A JSON number or a (padded) numeric string, exactly. JSON numbers arrive as f64; their shortest
/// round-trip text is the meter's digits for any value a meter writes (≤ 15 significant digits).
pub fn number(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .map(|d| d.normalize())
}

/// A JSON value parsed with duplicate object keys refused: two `RV`s in one reading would mean
/// one thing to this parser and another to the next.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}
