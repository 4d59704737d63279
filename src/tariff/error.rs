//! Errors of the tariff engine.

use chrono::{DateTime, Utc};
use std::fmt;

/// One problem with one field of the input, e.g.
/// `elements[1].price_components[0].step_size: must be > 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path (`$` for the whole document).
    pub path: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// A tariff or session document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("not valid JSON (line {line}, column {column}): {reason}")]
    Json { line: usize, column: usize, reason: String },
    /// Every problem found, in document order.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
}

impl InputError {
    /// The field errors (empty for a JSON syntax error).
    pub fn fields(&self) -> &[FieldError] {
        match self {
            InputError::Json { .. } => &[],
            InputError::Invalid(v) => v,
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<super::json::SyntaxError> for InputError {
    fn from(e: super::json::SyntaxError) -> Self {
        InputError::Json {
            line: e.line,
            column: e.column,
            reason: e.reason,
        }
    }
}

/// A valid tariff and a valid session that still cannot be priced together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("tariff {tariff_id} is not valid at the session start {start} (valid {valid})")]
    TariffNotActive {
        tariff_id: String,
        start: DateTime<Utc>,
        valid: String,
    },
    #[error("an amount is out of the representable range")]
    Overflow,
}
