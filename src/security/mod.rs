//! OCPP security profiles: passwords at the handshake (`auth`), TLS with a
//! reloadable server certificate (`tls`), the built-in CA for charger
//! certificates (`ca`).

pub mod auth;
pub mod ca;
pub mod expiry;
pub mod pki;
pub mod tls;
