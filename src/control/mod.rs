//! The control API: how the CLI (and later the TUI) reach a running server.
//! Newline-delimited JSON over `<data-dir>/control.sock`; see
//! docs/control-api.md.

mod billing;
pub mod campaign;
pub mod client;
pub mod device;
pub mod local_list;
pub mod meter_keys;
mod ops;
pub mod ops_tasks;
mod pnc;
pub mod proto;
pub mod remote;
mod security;
pub mod server;
mod transfer;
