//! Tests of the OCMF module: own vectors on every curve (signed here with deterministic keys),
//! the real records from public test suites (tests/fixtures/ocmf), sessions, XML and the offline
//! verifier.

mod parse;
mod real;
mod report;
mod session;
mod signer;
mod vectors;
mod xml;

/// What a test returns when it reads with `?`.
type TestResult = Result<(), Box<dyn std::error::Error>>;
