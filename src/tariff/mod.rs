//! OCPI tariffs and the pricing of sessions (pure: no I/O, no clock, no
//! async, no floats on the money path). See docs/tariffs.md.
//!
//! - [`parse_tariff`] reads an OCPI 2.2.1 or 2.1.1 Tariff object into [`Tariff`],
//!   refusing anything invalid with field paths ([`InputError`]).
//! - [`parse_session`] reads the offline session description ([`Session`]).
//! - [`price`] prices a session: [`Priced`] holds quantities, billed
//!   quantities, costs per dimension, VAT per rate, the rounded totals and a
//!   breakdown per period naming the element and component that priced it.
//! - [`Priced::cdr_charging_periods`] and [`cdr_json`] give OCPI 2.2.1 CDR output.

mod cdr;
mod error;
mod json;
mod model;
mod money;
mod parse;
mod periods;
mod price;
mod reader;
mod session;
mod v211;
mod validate;

#[cfg(test)]
mod tests;

pub use cdr::{
    CDR_VOLUME_DP, CdrContext, CdrDimension, CdrLocation, CdrNumberError, CdrToken, ChargingPeriod, GeoLocation,
    cdr_json,
};
pub use error::{FieldError, InputError, PriceError};
pub use model::{Dimension, Element, OcpiVersion, Price, PriceComponent, Reservation, Restrictions, Tariff};
pub use money::{Amount, ROUNDING, RoundingPolicy};
pub use parse::{parse_tariff, parse_tariff_version};
pub use price::{Adjustment, DimensionCost, Line, Period, Priced, StepApplied, Totals, VatLine, hms_ms, price};
pub use session::{ChargeState, Reading, Session, parse_session};
