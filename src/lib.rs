//! voltyard: a complete Charge Point Management System in one binary.
//! See docs/ARCHITECTURE.md for the map.

pub mod domain;
