//! voltyard: a complete Charge Point Management System in one binary.
//! See docs/ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
pub mod control;
pub mod domain;
pub mod ocpp;
pub mod server;
pub mod sim;
pub mod store;
