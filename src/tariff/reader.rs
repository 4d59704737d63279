//! Typed field access on a parsed JSON tree that collects every problem with
//! its field path instead of stopping at the first.

use super::error::FieldError;
use super::json::{Node, Path};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use std::str::FromStr as _;

/// The largest magnitude accepted for any decimal input. Keeps every product
/// the engine forms far inside `Decimal`'s range, so arithmetic cannot
/// overflow on accepted input.
pub(crate) const MAX_DECIMAL: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

#[derive(Default)]
pub(crate) struct Reader {
    pub errors: Vec<FieldError>,
}

impl Reader {
    pub(crate) fn fail(&mut self, path: &Path, reason: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.as_str().to_string(),
            reason: reason.into(),
        });
    }

    /// The object's fields, or an error. Unknown keys are reported when `known` is given.
    pub(crate) fn object<'n>(
        &mut self,
        node: &'n Node,
        path: &Path,
        known: Option<&[&str]>,
    ) -> Option<&'n [(String, Node)]> {
        match node {
            Node::Obj(fields) => {
                if let Some(known) = known {
                    for (k, _) in fields {
                        if !known.contains(&k.as_str()) {
                            self.fail(&path.key(k), "unknown field");
                        }
                    }
                }
                Some(fields)
            }
            other => {
                self.fail(path, format!("must be an object, not {}", other.kind()));
                None
            }
        }
    }

    /// A field that must be present and not null.
    pub(crate) fn required<'n>(&mut self, obj: &'n Node, path: &Path, key: &str) -> Option<&'n Node> {
        match obj.get(key) {
            None | Some(Node::Null) => {
                self.fail(&path.key(key), "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    pub(crate) fn string(&mut self, node: &Node, path: &Path) -> Option<String> {
        match node {
            Node::Str(s) => Some(s.clone()),
            other => {
                self.fail(path, format!("must be a string, not {}", other.kind()));
                None
            }
        }
    }

    /// A string of at most `max` characters, not empty.
    pub(crate) fn text(&mut self, node: &Node, path: &Path, max: usize) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.fail(path, "must not be empty");
            None
        } else if s.chars().count() > max {
            self.fail(path, format!("must be at most {max} characters"));
            None
        } else {
            Some(s)
        }
    }

    pub(crate) fn decimal(&mut self, node: &Node, path: &Path) -> Option<Decimal> {
        let Node::Num(text) = node else {
            self.fail(path, format!("must be a number, not {}", node.kind()));
            return None;
        };
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str(text)
        };
        match parsed {
            Ok(d) if d.abs() <= MAX_DECIMAL => Some(d.normalize()),
            _ => {
                self.fail(path, format!("must be a number of magnitude at most {MAX_DECIMAL}"));
                None
            }
        }
    }

    /// A decimal ≥ 0.
    pub(crate) fn non_negative(&mut self, node: &Node, path: &Path) -> Option<Decimal> {
        let d = self.decimal(node, path)?;
        if d.is_sign_negative() && !d.is_zero() {
            self.fail(path, "must be ≥ 0");
            return None;
        }
        Some(d)
    }

    /// A whole number in `0..=max`.
    pub(crate) fn integer(&mut self, node: &Node, path: &Path, max: u64) -> Option<u64> {
        let d = self.decimal(node, path)?;
        if !d.fract().is_zero() {
            self.fail(path, "must be a whole number");
            return None;
        }
        if d.is_sign_negative() && !d.is_zero() {
            self.fail(path, "must be ≥ 0");
            return None;
        }
        match u64::try_from(d) {
            Ok(v) if v <= max => Some(v),
            _ => {
                self.fail(path, format!("must be at most {max}"));
                None
            }
        }
    }

    /// `HH:MM`, 24 h, leading zeros (OCPI regex `([0-1][0-9]|2[0-3]):[0-5][0-9]`).
    pub(crate) fn time_of_day(&mut self, node: &Node, path: &Path) -> Option<NaiveTime> {
        let s = self.string(node, path)?;
        let b = s.as_bytes();
        let ok = b.len() == 5
            && b[2] == b':'
            && b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit())
            && (b[0] < b'2' || (b[0] == b'2' && b[1] <= b'3'))
            && b[3] <= b'5';
        let parsed = if ok {
            NaiveTime::parse_from_str(&s, "%H:%M").ok()
        } else {
            None
        };
        if parsed.is_none() {
            self.fail(
                path,
                format!("must be a time of day HH:MM (00:00 to 23:59), not \"{s}\""),
            );
        }
        parsed
    }

    /// `YYYY-MM-DD`.
    pub(crate) fn date(&mut self, node: &Node, path: &Path) -> Option<NaiveDate> {
        let s = self.string(node, path)?;
        let parsed = if s.len() == 10 {
            NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok()
        } else {
            None
        };
        if parsed.is_none() {
            self.fail(path, format!("must be a date YYYY-MM-DD, not \"{s}\""));
        }
        parsed
    }

    /// RFC 3339 with an offset (OCPI allows a missing `Z`: then UTC). At most millisecond precision.
    pub(crate) fn date_time(&mut self, node: &Node, path: &Path) -> Option<DateTime<Utc>> {
        let s = self.string(node, path)?;
        let parsed = DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()));
        match parsed {
            Ok(d) if d.timestamp_subsec_nanos() % 1_000_000 == 0 => Some(d),
            Ok(_) => {
                self.fail(path, "must not be more precise than milliseconds");
                None
            }
            Err(_) => {
                self.fail(path, format!("must be an RFC 3339 date-time, not \"{s}\""));
                None
            }
        }
    }

    pub(crate) fn array<'n>(&mut self, node: &'n Node, path: &Path) -> Option<&'n [Node]> {
        match node {
            Node::Arr(items) => Some(items),
            other => {
                self.fail(path, format!("must be an array, not {}", other.kind()));
                None
            }
        }
    }
}

/// A field that may be absent or null.
pub(crate) fn optional<'n>(obj: &'n Node, key: &str) -> Option<&'n Node> {
    match obj.get(key) {
        None | Some(Node::Null) => None,
        Some(v) => Some(v),
    }
}
