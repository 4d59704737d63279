//! The control API: how the CLI (and later the TUI) reach a running server.
//! Newline-delimited JSON over `<data-dir>/control.sock`; see
//! docs/control-api.md.

pub mod client;
pub mod proto;
pub mod server;
