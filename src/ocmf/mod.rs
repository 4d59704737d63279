//! OCMF signed meter data: parsing and verification (pure: no I/O, no clock).
