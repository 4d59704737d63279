//! OCPI 2.2.1 CDR output: charging periods from a priced session, and a whole
//! CDR object built from it plus the ids and location the caller knows.

use super::model::Dimension;
use super::periods::ms_to_hours;
use super::price::Priced;
use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// OCPI numbers carry at most 4 decimals: CDR volumes are rounded to 4 dp,
/// half away from zero (the receipt keeps the exact quantities).
pub const CDR_VOLUME_DP: u32 = 4;

/// OCPI 2.2.1 `CdrDimension` (the ones a priced session yields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CdrDimension {
    /// `ENERGY` (kWh), `TIME` (h) or `PARKING_TIME` (h).
    #[serde(rename = "type")]
    pub dimension_type: &'static str,
    pub volume: Decimal,
}

/// OCPI 2.2.1 `ChargingPeriod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChargingPeriod {
    pub start_date_time: DateTime<Utc>,
    pub dimensions: Vec<CdrDimension>,
    pub tariff_id: Option<String>,
}

fn dp4(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(CDR_VOLUME_DP, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

impl Priced {
    /// One charging period per priced period: ENERGY when energy flowed,
    /// TIME or PARKING_TIME for its duration.
    pub fn cdr_charging_periods(&self) -> Vec<ChargingPeriod> {
        self.periods
            .iter()
            .map(|p| {
                let mut dimensions = Vec::new();
                if p.energy_wh > Decimal::ZERO {
                    dimensions.push(CdrDimension {
                        dimension_type: "ENERGY",
                        volume: dp4(p.energy_wh / Decimal::from(1000)),
                    });
                }
                let ms = (p.end - p.start).num_milliseconds();
                dimensions.push(CdrDimension {
                    dimension_type: if p.state.is_charging_time() {
                        "TIME"
                    } else {
                        "PARKING_TIME"
                    },
                    volume: dp4(ms_to_hours(ms)),
                });
                ChargingPeriod {
                    start_date_time: p.start,
                    dimensions,
                    tariff_id: Some(self.tariff_id.clone()),
                }
            })
            .collect()
    }
}

/// OCPI 2.2.1 `CdrToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CdrToken {
    pub country_code: String,
    pub party_id: String,
    pub uid: String,
    /// `AD_HOC_USER`, `APP_USER`, `OTHER`, `RFID`.
    #[serde(rename = "type")]
    pub token_type: String,
    pub contract_id: String,
}

/// OCPI 2.2.1 `GeoLocation` (decimal degrees as strings, as OCPI has them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeoLocation {
    pub latitude: String,
    pub longitude: String,
}

/// OCPI 2.2.1 `CdrLocation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CdrLocation {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-3.
    pub country: String,
    pub coordinates: GeoLocation,
    pub evse_uid: String,
    pub evse_id: String,
    pub connector_id: String,
    pub connector_standard: String,
    pub connector_format: String,
    pub connector_power_type: String,
}

/// What a CDR needs beyond the priced session.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrContext {
    pub country_code: String,
    pub party_id: String,
    pub id: String,
    pub session_id: Option<String>,
    pub cdr_token: CdrToken,
    /// `AUTH_REQUEST`, `COMMAND` or `WHITELIST`.
    pub auth_method: String,
    pub authorization_reference: Option<String>,
    pub cdr_location: CdrLocation,
    pub meter_id: Option<String>,
    /// The Tariff objects to embed (as the caller stores them), may be empty.
    pub tariffs: Vec<Value>,
    pub last_updated: DateTime<Utc>,
}

/// A CDR JSON number could not be represented exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} cannot be written as an exact JSON number")]
pub struct CdrNumberError(pub Decimal);

/// A JSON number from a decimal of at most 4 dp. serde_json keeps a
/// non-integer as f64; the shortest representation of that f64 is checked
/// to read back as the same decimal, so the text written is exact.
fn num(d: Decimal) -> Result<Value, CdrNumberError> {
    let d = d.normalize();
    if d.scale() == 0
        && let Ok(i) = i64::try_from(d)
    {
        return Ok(Value::from(i));
    }
    let text = d.to_string();
    let f: f64 = text.parse().map_err(|_| CdrNumberError(d))?;
    let back: Option<Decimal> = f.to_string().parse().ok();
    match serde_json::Number::from_f64(f) {
        Some(n) if back == Some(d) => Ok(Value::Number(n)),
        _ => Err(CdrNumberError(d)),
    }
}

fn price(excl: Decimal, incl: Decimal) -> Result<Value, CdrNumberError> {
    Ok(json!({ "excl_vat": num(excl)?, "incl_vat": num(incl)? }))
}

/// Builds an OCPI 2.2.1 CDR object. Money is rounded per the rounding policy
/// (each subtotal on its own, `total_cost` once from the exact sum, after
/// min/max price); volumes to 4 dp.
pub fn cdr_json(priced: &Priced, ctx: &CdrContext) -> Result<Value, CdrNumberError> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("country_code", json!(ctx.country_code));
    put("party_id", json!(ctx.party_id));
    put("id", json!(ctx.id));
    put("start_date_time", json!(priced.start));
    put("end_date_time", json!(priced.end));
    if let Some(s) = &ctx.session_id {
        put("session_id", json!(s));
    }
    put("cdr_token", json!(ctx.cdr_token));
    put("auth_method", json!(ctx.auth_method));
    if let Some(a) = &ctx.authorization_reference {
        put("authorization_reference", json!(a));
    }
    put("cdr_location", json!(ctx.cdr_location));
    if let Some(meter) = &ctx.meter_id {
        put("meter_id", json!(meter));
    }
    put("currency", json!(priced.currency));
    if !ctx.tariffs.is_empty() {
        put("tariffs", Value::Array(ctx.tariffs.clone()));
    }
    let mut periods = Vec::new();
    for p in priced.cdr_charging_periods() {
        let mut dims = Vec::new();
        for d in &p.dimensions {
            dims.push(json!({ "type": d.dimension_type, "volume": num(d.volume)? }));
        }
        let mut o = json!({ "start_date_time": p.start_date_time, "dimensions": dims });
        if let Some(t) = p.tariff_id {
            o["tariff_id"] = json!(t);
        }
        periods.push(o);
    }
    put("charging_periods", Value::Array(periods));
    let t = &priced.totals;
    put("total_cost", price(t.excl_vat, t.incl_vat)?);
    let dim = |d: Dimension| priced.dimensions.iter().find(|x| x.dimension == d);
    let has_lines = |d: Dimension| priced.periods.iter().flat_map(|p| &p.lines).any(|l| l.dimension == d);
    if let Some(f) = dim(Dimension::Flat).filter(|_| has_lines(Dimension::Flat)) {
        put("total_fixed_cost", price(f.net_rounded, f.gross_rounded)?);
    }
    let kwh = dim(Dimension::Energy).map_or(Decimal::ZERO, |e| e.quantity / Decimal::from(1000));
    put("total_energy", num(dp4(kwh))?);
    if let Some(e) = dim(Dimension::Energy).filter(|_| has_lines(Dimension::Energy)) {
        put("total_energy_cost", price(e.net_rounded, e.gross_rounded)?);
    }
    let total_ms = (priced.end - priced.start).num_milliseconds();
    put("total_time", num(dp4(ms_to_hours(total_ms)))?);
    if let Some(tm) = dim(Dimension::Time).filter(|_| has_lines(Dimension::Time)) {
        put("total_time_cost", price(tm.net_rounded, tm.gross_rounded)?);
    }
    if let Some(pk) = dim(Dimension::ParkingTime) {
        if pk.quantity > Decimal::ZERO {
            put("total_parking_time", num(dp4(pk.quantity / Decimal::from(3600)))?);
        }
        if has_lines(Dimension::ParkingTime) {
            put("total_parking_cost", price(pk.net_rounded, pk.gross_rounded)?);
        }
    }
    put("last_updated", json!(ctx.last_updated));
    Ok(Value::Object(m))
}
