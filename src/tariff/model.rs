//! The tariff model: the OCPI 2.2.1 Tariff object, which OCPI 2.1.1 tariffs
//! are mapped onto. Every number is a `Decimal` (or an integer).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use rust_decimal::Decimal;
use serde::Serialize;
use std::fmt;

/// The OCPI version a tariff was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OcpiVersion {
    #[serde(rename = "2.1.1")]
    V211,
    #[serde(rename = "2.2.1")]
    V221,
}

impl fmt::Display for OcpiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OcpiVersion::V211 => "2.1.1",
            OcpiVersion::V221 => "2.2.1",
        })
    }
}

/// A validated tariff.
#[derive(Debug, Clone, PartialEq)]
pub struct Tariff {
    /// The version the tariff was read from.
    pub version: OcpiVersion,
    /// Absent in OCPI 2.1.1.
    pub country_code: Option<String>,
    /// Absent in OCPI 2.1.1.
    pub party_id: Option<String>,
    pub id: String,
    /// ISO 4217, three upper-case letters.
    pub currency: String,
    /// `AD_HOC_PAYMENT`, `PROFILE_CHEAP`, … (informational here).
    pub tariff_type: Option<String>,
    pub min_price: Option<Price>,
    pub max_price: Option<Price>,
    pub elements: Vec<Element>,
    pub start_date_time: Option<DateTime<Utc>>,
    pub end_date_time: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
}

/// A price with and without VAT (OCPI `Price`). `incl_vat` is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    pub excl_vat: Decimal,
    pub incl_vat: Option<Decimal>,
}

/// A group of price components sharing restrictions.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub price_components: Vec<PriceComponent>,
    pub restrictions: Restrictions,
}

/// The four priced dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Dimension {
    Energy,
    Flat,
    Time,
    ParkingTime,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Flat,
        Dimension::Energy,
        Dimension::Time,
        Dimension::ParkingTime,
    ];

    /// The OCPI spelling.
    pub fn ocpi(self) -> &'static str {
        match self {
            Dimension::Energy => "ENERGY",
            Dimension::Flat => "FLAT",
            Dimension::Time => "TIME",
            Dimension::ParkingTime => "PARKING_TIME",
        }
    }

    pub(crate) fn from_ocpi(s: &str) -> Option<Dimension> {
        Some(match s {
            "ENERGY" => Dimension::Energy,
            "FLAT" => Dimension::Flat,
            "TIME" => Dimension::Time,
            "PARKING_TIME" => Dimension::ParkingTime,
            _ => return None,
        })
    }

    /// The unit a price is per.
    pub fn price_unit(self) -> &'static str {
        match self {
            Dimension::Energy => "kWh",
            Dimension::Flat => "session",
            Dimension::Time | Dimension::ParkingTime => "h",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ocpi())
    }
}

/// How one dimension is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PriceComponent {
    #[serde(rename = "type")]
    pub dimension: Dimension,
    /// Per kWh (ENERGY), per hour (TIME, PARKING_TIME) or per session (FLAT), excl. VAT.
    pub price: Decimal,
    /// VAT in percent. `None`: no VAT applies (different from 0 %).
    pub vat: Option<Decimal>,
    /// In Wh (ENERGY) or seconds (TIME, PARKING_TIME); ignored for FLAT.
    pub step_size: u32,
}

/// OCPI `ReservationRestrictionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reservation {
    Reservation,
    ReservationExpires,
}

/// Restrictions under which an element applies (all must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restrictions {
    pub start_time: Option<NaiveTime>,
    /// `00:00` means the end of the day.
    pub end_time: Option<NaiveTime>,
    /// Inclusive, local date.
    pub start_date: Option<NaiveDate>,
    /// Exclusive, local date.
    pub end_date: Option<NaiveDate>,
    /// Inclusive.
    pub min_kwh: Option<Decimal>,
    /// Exclusive.
    pub max_kwh: Option<Decimal>,
    /// A, sum over phases.
    pub min_current: Option<Decimal>,
    pub max_current: Option<Decimal>,
    /// kW.
    pub min_power: Option<Decimal>,
    pub max_power: Option<Decimal>,
    /// Seconds since the session start, inclusive.
    pub min_duration: Option<u64>,
    /// Seconds since the session start, exclusive.
    pub max_duration: Option<u64>,
    /// Empty: every day.
    pub day_of_week: Vec<Weekday>,
    pub reservation: Option<Reservation>,
}

impl Restrictions {
    pub fn is_empty(&self) -> bool {
        *self == Restrictions::default()
    }

    /// A one-line human summary, e.g. `17:00–20:00, Mon Tue, ≥ 20 kWh`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let hm = |t: NaiveTime| t.format("%H:%M").to_string();
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) => parts.push(format!("{}–{}", hm(s), end_hm(e))),
            (Some(s), None) => parts.push(format!("from {}", hm(s))),
            (None, Some(e)) => parts.push(format!("until {}", end_hm(e))),
            (None, None) => {}
        }
        match (self.start_date, self.end_date) {
            (Some(s), Some(e)) => parts.push(format!("dates {s} to {e} (excl.)")),
            (Some(s), None) => parts.push(format!("from {s}")),
            (None, Some(e)) => parts.push(format!("before {e}")),
            (None, None) => {}
        }
        if !self.day_of_week.is_empty() {
            let days: Vec<String> = self.day_of_week.iter().map(|d| d.to_string()).collect();
            parts.push(days.join(" "));
        }
        range(&mut parts, self.min_kwh, self.max_kwh, "kWh");
        range(&mut parts, self.min_power, self.max_power, "kW");
        range(&mut parts, self.min_current, self.max_current, "A");
        let secs = |s: u64| crate::tariff::price::hms_ms(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000));
        match (self.min_duration, self.max_duration) {
            (Some(a), Some(b)) => parts.push(format!("after {} and before {} of session", secs(a), secs(b))),
            (Some(a), None) => parts.push(format!("after {} of session", secs(a))),
            (None, Some(b)) => parts.push(format!("first {} of session", secs(b))),
            (None, None) => {}
        }
        match self.reservation {
            Some(Reservation::Reservation) => parts.push("reservation".into()),
            Some(Reservation::ReservationExpires) => parts.push("expired reservation".into()),
            None => {}
        }
        if parts.is_empty() {
            "no restrictions".into()
        } else {
            parts.join(", ")
        }
    }
}

fn end_hm(t: NaiveTime) -> String {
    if t == NaiveTime::MIN {
        "24:00".into()
    } else {
        t.format("%H:%M").to_string()
    }
}

fn range(parts: &mut Vec<String>, min: Option<Decimal>, max: Option<Decimal>, unit: &str) {
    match (min, max) {
        (Some(a), Some(b)) => parts.push(format!("{} ≤ {unit} < {}", a.normalize(), b.normalize())),
        (Some(a), None) => parts.push(format!("≥ {} {unit}", a.normalize())),
        (None, Some(b)) => parts.push(format!("< {} {unit}", b.normalize())),
        (None, None) => {}
    }
}
