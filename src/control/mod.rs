//! The control API: how the CLI (and later the TUI) reach a running server.
//! Newline-delimited JSON over `<data-dir>/control.sock`; see
//! docs/control-api.md.

mod billing;
pub mod client;
pub mod meter_keys;
pub mod proto;
mod security;
pub mod server;
