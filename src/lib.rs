//! voltyard: a complete Charge Point Management System in one binary.
//! See docs/ARCHITECTURE.md for the map.

pub mod billing;
pub mod cli;
pub mod config;
pub mod control;
pub mod dlm;
pub mod domain;
pub mod files;
pub mod hook;
pub mod loadctl;
pub mod ocmf;
pub mod ocpp;
pub mod pnc;
pub mod security;
pub mod server;
pub mod sim;
pub mod store;
pub mod tariff;
pub mod tui;
