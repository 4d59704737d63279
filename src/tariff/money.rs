//! Exact money and the rounding policy.
//!
//! A time price is per hour and time is counted in (milli)seconds, so a cost
//! is `seconds × price / 3600`, which is rarely a finite decimal. An
//! [`Amount`] therefore stores `value × 3600` — always an exact decimal for
//! every cost the engine forms (energy: `Wh × price × 3.6`, flat:
//! `price × 3600`, VAT: `× (100 + rate) / 100`) — and sums stay exact.
//! Only a total is ever rounded, once, by [`Amount::round`], using exact
//! integer arithmetic on the stored fraction.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};
use std::cmp::Ordering;
use std::ops::{Add, Sub};

const DENOM: Decimal = Decimal::from_parts(3600, 0, 0, false, 0);

/// An exact amount of money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    /// `value × 3600`.
    n3600: Decimal,
}

impl Amount {
    pub const ZERO: Amount = Amount { n3600: Decimal::ZERO };

    /// An amount from a finite decimal.
    pub fn from_decimal(d: Decimal) -> Amount {
        Amount { n3600: d * DENOM }
    }

    /// `n / 3600`.
    pub(crate) fn from_n3600(n3600: Decimal) -> Amount {
        Amount { n3600 }
    }

    /// The value as a decimal: exact when it is a finite decimal, else
    /// correct to 28 significant digits. For display only: rounding uses
    /// [`Amount::round`].
    pub fn to_decimal(self) -> Decimal {
        (self.n3600 / DENOM).normalize()
    }

    /// `self × (100 + rate) / 100`.
    pub fn with_vat(self, rate: Option<Decimal>) -> Amount {
        match rate {
            Some(r) => Amount {
                n3600: self.n3600 * (Decimal::ONE_HUNDRED + r) / Decimal::ONE_HUNDRED,
            },
            None => self,
        }
    }

    /// Rounds the exact value to `dp` decimal places with `strategy`
    /// (integer arithmetic on the stored fraction: no intermediate rounding).
    pub fn round(self, dp: u32, strategy: RoundingStrategy) -> Decimal {
        let n = self.n3600;
        // value × 10^dp = mantissa / (3600 × 10^scale) × 10^dp
        let scale = n.scale();
        let mantissa = n.mantissa(); // i128, |m| < 2^96
        let shift = i64::from(dp) - i64::from(scale);
        let (num, den) = if shift >= 0 {
            (mantissa * 10i128.pow(u32::try_from(shift).unwrap_or(0)), 3600i128)
        } else {
            (mantissa, 3600i128 * 10i128.pow(u32::try_from(-shift).unwrap_or(0)))
        };
        let q = num.div_euclid(den); // floor
        let r = num.rem_euclid(den); // 0 ≤ r < den
        let twice = 2 * r;
        let up = match strategy {
            RoundingStrategy::MidpointAwayFromZero => {
                if q >= 0 {
                    twice >= den
                } else {
                    twice > den
                }
            }
            RoundingStrategy::MidpointNearestEven => twice > den || (twice == den && q % 2 != 0),
            RoundingStrategy::MidpointTowardZero => {
                if q >= 0 {
                    twice > den
                } else {
                    twice >= den
                }
            }
            RoundingStrategy::ToZero => q < 0 && r != 0,
            RoundingStrategy::AwayFromZero => q >= 0 && r != 0,
            RoundingStrategy::ToNegativeInfinity => false,
            RoundingStrategy::ToPositiveInfinity => r != 0,
            _ => twice >= den,
        };
        let q = if up { q + 1 } else { q };
        Decimal::from_i128_with_scale(q, dp)
    }

    pub fn is_zero(self) -> bool {
        self.n3600.is_zero()
    }
}

impl Add for Amount {
    type Output = Amount;
    fn add(self, o: Amount) -> Amount {
        Amount {
            n3600: self.n3600 + o.n3600,
        }
    }
}

impl Sub for Amount {
    type Output = Amount;
    fn sub(self, o: Amount) -> Amount {
        Amount {
            n3600: self.n3600 - o.n3600,
        }
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, |a, b| a + b)
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Amount {
    fn cmp(&self, other: &Self) -> Ordering {
        self.n3600.cmp(&other.n3600)
    }
}

/// Serialised as the decimal string of [`Amount::to_decimal`].
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_decimal().to_string())
    }
}

/// How money is rounded; shown on receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoundingPolicy {
    /// Decimal places of a rounded total.
    pub total_dp: u32,
    /// The rounding rule, by name.
    pub rule: &'static str,
    /// One-paragraph statement of the whole policy.
    pub statement: &'static str,
    #[serde(skip)]
    pub strategy: RoundingStrategy,
}

/// voltyard's rounding policy (see docs/tariffs.md).
pub const ROUNDING: RoundingPolicy = RoundingPolicy {
    total_dp: 2,
    rule: "half away from zero (commercial rounding)",
    statement: "Quantities are exact (energy in Wh, time in seconds). The cost of each dimension and the VAT of \
                each component are exact. Each total is rounded once, from the exact sum, to 2 decimal places, \
                half away from zero: 0.125 becomes 0.13, 0.124999 becomes 0.12, -0.125 becomes -0.13. Rounded \
                subtotals are rounded the same way on their own and need not add up to the rounded total; \
                VAT total = rounded gross - rounded net.",
    strategy: RoundingStrategy::MidpointAwayFromZero,
};

impl RoundingPolicy {
    pub fn round(&self, a: Amount) -> Decimal {
        a.round(self.total_dp, self.strategy)
    }
}
