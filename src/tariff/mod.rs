//! OCPI tariffs and the pricing of sessions (pure: no I/O, no clock).
