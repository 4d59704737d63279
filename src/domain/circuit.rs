//! The electrical side of a site as the operator describes it: circuits
//! (grid connection → boards → chargers), the meters that see load voltyard
//! does not control, and day-ahead prices. Pure data and its validation.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A node of a site's circuit tree. Limits are amps per grid phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Circuit {
    pub id: String,
    pub site: String,
    /// `None` at the grid connection.
    pub parent: Option<String>,
    pub max_current: [f64; 3],
    /// 1 for a single-phase circuit (its load is on L1 of the grid).
    pub phases: u8,
    /// Optional real-power cap of the node, in W.
    #[serde(default)]
    pub max_power_w: Option<f64>,
    /// Where the load on this node that voltyard does not control is measured.
    #[serde(default)]
    pub meter: Option<MeterBinding>,
    /// What chargers under this node may draw in total while its meter is
    /// silent (A per phase); without it the controller assumes the worst.
    #[serde(default)]
    pub safe_current: Option<[f64; 3]>,
    pub created_at: DateTime<Utc>,
}

/// A meter of a circuit. `measures` tells whether it sees the whole node
/// (chargers included, as a grid-connection meter does) or only the load
/// voltyard does not control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterBinding {
    pub source: MeterSource,
    pub measures: Measures,
    /// A reading older than this is treated as a silent meter.
    pub timeout_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MeterSource {
    /// Values sent with `voltyard meter push` (or the control API).
    Push,
    /// Meter values a charger (or an OCPP meter device) sends for EVSE 0 /
    /// connector 0, outside any transaction.
    Ocpp { charger: String },
    /// A Modbus TCP meter polled by the server.
    Modbus(ModbusMeter),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measures {
    Total,
    Unmanaged,
}

/// Three per-phase current registers of a Modbus TCP meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModbusMeter {
    /// host:port
    pub address: String,
    pub unit: u8,
    /// Input-register address of the L1 current; L2 and L3 follow at
    /// `stride` registers each.
    pub register: u16,
    pub stride: u16,
    pub format: RegisterFormat,
    pub poll_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterFormat {
    /// IEEE 754 float in two registers, high word first (most meters: Eastron, Janitza, ABB).
    F32,
    /// Signed 16-bit value in hundredths of an ampere.
    I16Centi,
    /// Unsigned 16-bit value in tenths of an ampere.
    U16Deci,
}

impl RegisterFormat {
    pub fn registers(self) -> u16 {
        match self {
            RegisterFormat::F32 => 2,
            RegisterFormat::I16Centi | RegisterFormat::U16Deci => 1,
        }
    }

    /// The current in A from the registers of one phase.
    pub fn decode(self, regs: &[u16]) -> Option<f64> {
        let v = match (self, regs) {
            (RegisterFormat::F32, [hi, lo, ..]) => f64::from(f32::from_bits((u32::from(*hi) << 16) | u32::from(*lo))),
            (RegisterFormat::I16Centi, [v, ..]) => f64::from(i16::from_ne_bytes(v.to_ne_bytes())) / 100.0,
            (RegisterFormat::U16Deci, [v, ..]) => f64::from(*v) / 10.0,
            _ => return None,
        };
        v.is_finite().then_some(v)
    }
}

/// One price interval of a site (day-ahead market or a time-of-use plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub price_per_kwh: Decimal,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A circuit name the CLI and the control API accept.
pub fn check_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        return Err(invalid("id", "1 to 64 characters of A-Z a-z 0-9 - _ . :"));
    }
    Ok(())
}

/// Per-phase amps from `63` (all phases) or `63,63,50`.
pub fn parse_amps(field: &str, text: &str) -> Result<[f64; 3], Invalid> {
    let amps = parse_three(field, text)?;
    check_amps(field, &amps)?;
    Ok(amps)
}

/// A meter reading in the same form; negative values are export.
pub fn parse_reading(field: &str, text: &str) -> Result<[f64; 3], Invalid> {
    let amps = parse_three(field, text)?;
    check_amps_signed(field, &amps)?;
    Ok(amps)
}

fn parse_three(field: &str, text: &str) -> Result<[f64; 3], Invalid> {
    let mut vals = Vec::with_capacity(3);
    for p in text.split(',').map(str::trim) {
        let v: f64 = p
            .parse()
            .map_err(|_| invalid(field, format!("{p:?} is not a number of amperes")))?;
        vals.push(v);
    }
    match vals.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(invalid(field, "give one value for all phases or three (L1,L2,L3)")),
    }
}

pub fn check_amps(field: &str, amps: &[f64; 3]) -> Result<(), Invalid> {
    if amps.iter().any(|a| !a.is_finite() || *a < 0.0 || *a > 10_000.0) {
        return Err(invalid(field, "amperes must be between 0 and 10000"));
    }
    Ok(())
}

/// A meter reading: negative means export (e.g. solar surplus).
pub fn check_amps_signed(field: &str, amps: &[f64; 3]) -> Result<(), Invalid> {
    if amps.iter().any(|a| !a.is_finite() || a.abs() > 10_000.0) {
        return Err(invalid(field, "amperes must be between -10000 and 10000"));
    }
    Ok(())
}

/// Prices from CSV: a header naming `start` and `price_per_kwh` (or
/// `price`) and optionally `end`; times in RFC 3339. Without `end` a slot
/// ends where the next begins (the last one lasts an hour).
pub fn parse_price_csv(text: &str) -> Result<Vec<PriceSlot>, Invalid> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(invalid(
            "line 1",
            "empty file; expected a header such as start,end,price_per_kwh",
        ));
    };
    let cols: Vec<String> = header
        .split([',', ';'])
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let start_col = find(&["start", "time", "from"]).ok_or_else(|| invalid("line 1", "no `start` column"))?;
    let end_col = find(&["end", "to"]);
    let price_col = find(&["price_per_kwh", "price"]).ok_or_else(|| invalid("line 1", "no `price_per_kwh` column"))?;
    let mut rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>, Decimal)> = Vec::new();
    for (n, line) in lines {
        let field = |col: usize| line.split([',', ';']).nth(col).map(str::trim).unwrap_or("");
        let at = |col: usize, name: &str| {
            DateTime::parse_from_rfc3339(field(col))
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| invalid(format!("line {} {name}", n + 1), format!("{:?}: {e}", field(col))))
        };
        let start = at(start_col, "start")?;
        let end = end_col.map(|c| at(c, "end")).transpose()?;
        let price: Decimal = field(price_col).parse().map_err(|_| {
            invalid(
                format!("line {} price_per_kwh", n + 1),
                format!("{:?} is not a decimal number", field(price_col)),
            )
        })?;
        rows.push((start, end, price));
    }
    rows.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let (start, end, price) = rows[i];
        let end = end
            .or_else(|| rows.get(i + 1).map(|r| r.0))
            .unwrap_or(start + chrono::Duration::hours(1));
        if end <= start {
            return Err(invalid(format!("slot starting {start}"), "ends before it starts"));
        }
        if let Some(prev) = out.last().map(|p: &PriceSlot| p.end)
            && prev > start
        {
            return Err(invalid(format!("slot starting {start}"), "overlaps the previous slot"));
        }
        out.push(PriceSlot {
            start,
            end,
            price_per_kwh: price,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amps_accept_one_or_three_values_and_name_the_field() {
        assert_eq!(parse_amps("max_current", "63").unwrap(), [63.0; 3]);
        assert_eq!(parse_amps("max_current", "63, 63,50").unwrap(), [63.0, 63.0, 50.0]);
        let e = parse_amps("max_current", "63,63").unwrap_err();
        assert_eq!(e.field, "max_current");
        assert!(parse_amps("max_current", "-1").is_err());
        assert!(parse_amps("max_current", "x").unwrap_err().reason.contains("\"x\""));
        assert_eq!(parse_reading("current", "-3,2,1").unwrap(), [-3.0, 2.0, 1.0]);
    }

    #[test]
    fn prices_without_end_run_to_the_next_slot() {
        let csv = "start,price_per_kwh\n2026-11-23T01:00:00Z,0.20\n2026-11-23T00:00:00Z,0.31\n";
        let p = parse_price_csv(csv).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].end, p[1].start);
        assert_eq!(p[0].price_per_kwh, Decimal::new(31, 2));
        assert_eq!(p[1].end - p[1].start, chrono::Duration::hours(1));
    }

    #[test]
    fn bad_price_rows_name_line_and_column() {
        let e = parse_price_csv("start;end;price\n2026-11-23T00:00:00Z;2026-11-23T01:00:00Z;abc\n").unwrap_err();
        assert_eq!(e.field, "line 2 price_per_kwh");
        let e = parse_price_csv(
            "start,end,price\n2026-11-23T00:00:00Z,2026-11-23T02:00:00Z,1\n2026-11-23T01:00:00Z,2026-11-23T03:00:00Z,1\n",
        )
        .unwrap_err();
        assert!(e.reason.contains("overlaps"));
    }

    #[test]
    fn register_formats_decode_currents() {
        let bits = 12.5f32.to_bits();
        assert_eq!(
            RegisterFormat::F32.decode(&[(bits >> 16) as u16, bits as u16]),
            Some(12.5)
        );
        assert_eq!(RegisterFormat::I16Centi.decode(&[(-250i16) as u16]), Some(-2.5));
        assert_eq!(RegisterFormat::U16Deci.decode(&[163]), Some(16.3));
        assert_eq!(RegisterFormat::F32.decode(&[1]), None);
    }
}
