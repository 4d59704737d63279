//! OCMF signed meter data (Eichrecht): parsing, signature verification, session checks, where
//! signed values sit in OCPP messages, and the S.A.F.E. Transparenzsoftware's XML. Pure: no I/O,
//! no clock, no async. See docs/eichrecht.md.
//!
//! - [`record`]: `OCMF|{payload}|{signature}`, payload bytes kept exactly as received.
//! - [`key`]: public keys in the shapes chargers send them.
//! - [`verify`]: ECDSA / SHA-256 on secp256r1, secp384r1, secp256k1, brainpoolP256r1, brainpoolP384r1.
//! - [`session`]: begin/end checks beyond the signatures.
//! - [`ocpp`]: extraction from OCPP 1.6 / 2.0.1 messages.
//! - [`xml`]: the Transparenzsoftware input file, written and read.
//! - [`report`]: the offline verifier (`voltyard verify`).

mod asn1;
pub mod key;
pub mod ocpp;
pub mod record;
pub mod report;
pub mod session;
pub mod verify;
pub mod xml;

#[cfg(test)]
mod tests;

pub use key::{Curve, KeyError, PublicKey, parse_key};
pub use record::{ParseError, Reading, Record};
pub use report::{VerifyReport, verify_text};
pub use session::{Problem, SessionVerdict, check_session};
pub use verify::{Verdict, Verified, VerifyError, verify};
