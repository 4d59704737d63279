//! Dynamic load management: a pure optimiser from a site state (circuit tree, chargers, sessions,
//! prices, one timestamp) to charger limits. No I/O, no clock, no async: time comes in the input,
//! and [`Controller`] keeps what it must remember between steps (limits sent, pause rotation,
//! learned single-phase cars, reclaimed current, compliance).
//!
//! See docs/dlm.md for the algorithm, the settings and the `dlm plan` JSON schema.

// Per-phase arithmetic indexes several parallel arrays by phase or dimension.
#![allow(clippy::needless_range_loop)]

mod allocate;
mod controller;
mod meters;
mod model;
#[cfg(test)]
mod tests;
mod tree;

pub use controller::{Controller, SessionInsight};
pub use model::{
    Allocation, ChargerState, CircuitState, DlmError, Limit, LimitState, NodeLoad, PriceSlot, Rotation, SessionState,
    Settings, SiteState, Supply,
};
