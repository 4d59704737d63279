//! What billing stores and shows: tariffs as the operator gave them, their
//! assignments, meter keys, and the bill of a completed session.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A tariff as stored: the OCPI document exactly as the operator gave it
/// (numbers stay text; it is parsed again by `tariff::parse_tariff` when
/// used), plus what lists show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTariff {
    /// The OCPI `id`.
    pub id: String,
    /// `2.2.1` or `2.1.1`.
    pub version: String,
    pub currency: String,
    pub text: String,
    pub updated_at: DateTime<Utc>,
}

/// Who a tariff assignment is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Scope {
    Site(String),
    Charger(String),
    /// The token group of the session's token (`token add --group`).
    Group(String),
}

impl Scope {
    /// Precedence when several assignments hold: group, then charger, then site.
    pub fn rank(&self) -> u8 {
        match self {
            Scope::Group(_) => 0,
            Scope::Charger(_) => 1,
            Scope::Site(_) => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Site(s) => write!(f, "site {s}"),
            Scope::Charger(c) => write!(f, "charger {c}"),
            Scope::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A tariff in force for a scope from `from` (inclusive) until `until`
/// (exclusive); either end open when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub id: u64,
    pub tariff_id: String,
    pub scope: Scope,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Assignment {
    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.until.is_none_or(|u| t < u)
    }

    /// In force at `now` or later: not ended by `now`, and not ended at its
    /// own start (an assignment cancelled before it began).
    pub fn current_or_future(&self, now: DateTime<Utc>) -> bool {
        match (self.from, self.until) {
            (_, None) => true,
            (Some(f), Some(u)) => u > now && u > f,
            (None, Some(u)) => u > now,
        }
    }
}

/// A meter public key known for a charger (from its configuration, or set by
/// the operator). `connector: None` is the charger's only meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterKey {
    pub connector: Option<u32>,
    /// As the charger published it (any shape `ocmf::PublicKey::parse` reads).
    pub key: String,
    /// `MeterPublicKey[1] (configuration)`, `operator`, …
    pub source: String,
    pub seen_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EichrechtState {
    /// Signed begin and end readings verify and pass the session checks.
    Verified,
    /// Signed data is present but something failed: the session is not billed.
    Failed,
    /// No signed meter data: billed from the meter values.
    Unsigned,
}

impl EichrechtState {
    pub fn as_str(self) -> &'static str {
        match self {
            EichrechtState::Verified => "verified",
            EichrechtState::Failed => "failed",
            EichrechtState::Unsigned => "unsigned",
        }
    }
}

/// One signed record used for the session check, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// `Transaction.Begin`, `Transaction.End`, …
    pub context: Option<String>,
    /// When the charger sent it (the OCPP meter value's timestamp).
    pub sent_at: DateTime<Utc>,
    /// The OCMF record, exactly as signed.
    pub ocmf: String,
    /// The public key used to verify it, as published.
    pub public_key: Option<String>,
    /// Where that key came from.
    pub key_source: Option<String>,
    /// The billing register, whole Wh, and the meter's time of the reading.
    pub register_wh: Option<i64>,
    pub meter_time: Option<DateTime<Utc>>,
}

/// The Eichrecht result of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eichrecht {
    pub state: EichrechtState,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// The meter's serial (`MS`, else the gateway serial `GS`).
    pub meter_serial: Option<String>,
    pub begin: Option<SignedRecord>,
    pub end: Option<SignedRecord>,
    /// End minus begin register, when verified.
    pub energy_wh: Option<i64>,
    /// How many signed values the session's meter values carried.
    pub signed_values: usize,
    /// The only obstacle was an unknown public key: learning the key
    /// re-verifies the session.
    #[serde(default)]
    pub needs_key: bool,
}

impl Eichrecht {
    pub fn unsigned() -> Eichrecht {
        Eichrecht {
            state: EichrechtState::Unsigned,
            problems: vec![],
            notes: vec![],
            meter_serial: None,
            begin: None,
            end: None,
            energy_wh: None,
            signed_values: 0,
            needs_key: false,
        }
    }
}

/// Where the billed energy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergySource {
    /// The verified signed begin and end readings (Eichrecht).
    Signed,
    /// The charger's (unsigned) meter values.
    MeterValues,
}

/// The price of a session, as lists show it. Decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSummary {
    pub tariff_id: String,
    pub currency: String,
    pub total_excl_vat: Decimal,
    pub total_vat: Decimal,
    pub total_incl_vat: Decimal,
    /// The energy priced, Wh (before any step_size rounding).
    pub energy_wh: i64,
    pub energy_source: EnergySource,
    /// The assignment that chose the tariff.
    pub scope: Option<Scope>,
    pub assignment: Option<u64>,
}

/// The bill of a completed session: the Eichrecht result, the price or why
/// there is none, and what was priced (so it can be reproduced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bill {
    pub session: u64,
    pub charger: String,
    pub computed_at: DateTime<Utc>,
    /// The site's time zone the session was priced in.
    pub timezone: String,
    pub eichrecht: Eichrecht,
    pub price: Option<PriceSummary>,
    pub unpriced_reason: Option<String>,
    /// The OCPI tariff text priced with (a copy: a later `tariff set` of the
    /// same id does not change this bill).
    pub tariff_text: Option<String>,
    /// The session document priced (the format of `voltyard tariff price
    /// --session`).
    pub pricing_session: Option<serde_json::Value>,
}

impl Bill {
    /// One line that says what the bill is: the price (or why there is
    /// none), the tariff and the assignment that chose it, the energy, the
    /// Eichrecht state and when it was computed. Kept in a session's notes
    /// when the session is priced again.
    pub fn summary(&self) -> String {
        let what = match &self.price {
            Some(p) => {
                let by = match (&p.assignment, &p.scope) {
                    (Some(id), Some(scope)) => format!(" by assignment {id} ({scope})"),
                    (Some(id), None) => format!(" by assignment {id}"),
                    _ => String::new(),
                };
                let source = match p.energy_source {
                    EnergySource::Signed => "the signed readings",
                    EnergySource::MeterValues => "the meter values",
                };
                format!(
                    "{} {cur} incl. VAT ({} {cur} excl. VAT) with tariff {}{by}, {} Wh from {source}",
                    p.total_incl_vat,
                    p.total_excl_vat,
                    p.tariff_id,
                    p.energy_wh,
                    cur = p.currency,
                )
            }
            None => format!(
                "not priced ({})",
                self.unpriced_reason.as_deref().unwrap_or("no reason given")
            ),
        };
        format!(
            "{what}; Eichrecht {}; billed at {}",
            self.eichrecht.state.as_str(),
            self.computed_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}
