//! The version-neutral domain model: chargers, connectors, tokens, sites,
//! sessions and meter samples, plus the pure rules over them (authorization,
//! meter normalisation, session lifecycle). Nothing here reads a clock, a
//! socket or a file: time and state come in as arguments.

pub mod admission;
pub mod auth;
pub mod cert;
pub mod circuit;
pub mod device;
pub mod message;
pub mod meter;
pub mod model;
pub mod ops;
pub mod password;
pub mod pnc;
pub mod session;
pub mod transfer;

pub use model::*;
