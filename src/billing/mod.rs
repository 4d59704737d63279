//! Billing: the glue that turns a stored, completed session into a priced,
//! verified result, and that result into receipts and CDRs. Pure: no I/O, no
//! clock (the time comes in), no async; `store` gathers the inputs and keeps
//! the [`Bill`], `control` shows it.
//!
//! - [`resolve`]: which tariff assignment applies (group > charger > site,
//!   valid at the session start).
//! - [`bill`]: the Eichrecht check of the session's signed data
//!   (`eichrecht`), the session document for the tariff engine (`input`),
//!   and the price — from the verified signed readings when the meter signs,
//!   never from unsigned values when its signed data fails.
//! - [`receipt`]: text, JSON and Transparenzsoftware XML; the check of a
//!   receipt JSON behind `voltyard verify`.
//! - [`cdr`]: OCPI 2.2.1 CDRs.
//!
//! It knows `domain`, `tariff` and `ocmf`; it does not know redb, OCPP
//! messages, the control API or the CLI.

mod bill;
pub mod cdr;
mod eichrecht;
pub mod input;
mod model;
pub mod receipt;

pub use bill::{BillInput, bill, resolve};
pub use model::{
    Assignment, Bill, Eichrecht, EichrechtState, EnergySource, MeterKey, PriceSummary, Scope, SignedRecord,
    StoredTariff,
};
