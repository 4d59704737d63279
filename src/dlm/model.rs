//! The plain data the optimiser reads and writes, its settings and its errors.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use std::str::FromStr;

/// The site at one moment: the input of [`super::Controller::step`] and one line of `dlm plan`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteState {
    pub time: DateTime<Utc>,
    pub circuits: Vec<CircuitState>,
    pub chargers: Vec<ChargerState>,
    #[serde(default)]
    pub prices: Vec<PriceSlot>,
}

/// One node of the circuit tree. Currents are amperes per grid phase `[L1, L2, L3]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircuitState {
    pub id: String,
    /// `None` at a root. Several roots are allowed (independent supplies).
    #[serde(default)]
    pub parent: Option<String>,
    pub max_current: [f64; 3],
    /// Load at this node that voltyard does not control (negative = export).
    #[serde(default)]
    pub unmanaged_current: Option<[f64; 3]>,
    /// Optional power cap of the node in W (all phases together, 230 V per phase).
    #[serde(default)]
    pub max_power_w: Option<f64>,
    /// The node has an unmanaged-load meter: `unmanaged_current: null` then means "meter silent".
    #[serde(default)]
    pub metered: bool,
    /// Current per phase left to chargers under this node while its meter is silent.
    #[serde(default)]
    pub safe_current: Option<[f64; 3]>,
}

/// One charge point (one EVSE).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargerState {
    pub id: String,
    pub circuit: String,
    pub phases: u8,
    #[serde(default)]
    pub phase_rotation: Rotation,
    pub min_current: f64,
    pub max_current: f64,
    #[serde(default)]
    pub session: Option<SessionState>,
    #[serde(default)]
    pub supply: Supply,
    /// DC: the charger's power cap in W.
    #[serde(default)]
    pub max_power_w: Option<f64>,
    #[serde(default = "yes")]
    pub connected: bool,
    /// What the charger draws at most while it cannot hear us (its offline limit).
    #[serde(default)]
    pub fallback_current: Option<f64>,
    /// Seconds the charger needs to follow a new limit (default: `Settings::apply_delay_s`).
    #[serde(default)]
    pub apply_delay_s: Option<f64>,
}

fn yes() -> bool {
    true
}

/// A car at a charger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub id: String,
    /// A per phase at the charger's own terminals (charger phase order). DC: grid-side A per phase.
    pub measured_current: [f64; 3],
    pub energy_wh: i64,
    #[serde(default)]
    pub energy_target_wh: Option<i64>,
    #[serde(default)]
    pub departure: Option<DateTime<Utc>>,
    #[serde(default)]
    pub priority: Option<i32>,
    /// What the charger reports it offers the car (A), when it reports it.
    #[serde(default)]
    pub offered_current: Option<f64>,
    /// DC: measured power in W; when present it replaces `measured_current` (as P / 690 V per phase).
    #[serde(default)]
    pub measured_power_w: Option<f64>,
    /// When the measured values (`measured_current`, `measured_power_w`, `offered_current`) were
    /// sampled, e.g. the meter value's timestamp. Only readings sampled after a limit was applied
    /// (sent + apply delay) can show that a charger ignores it. Without it, a violation must show
    /// on two distinct readings (or on one whose `offered_current` equals the limit).
    #[serde(default)]
    pub measured_at: Option<DateTime<Utc>>,
}

/// An energy price valid from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriceSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(deserialize_with = "decimal_number_or_string")]
    pub price_per_kwh: Decimal,
}

fn decimal_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(serde_json::Number),
        Str(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Num(n) => n.to_string(),
        Raw::Str(s) => s,
    };
    Decimal::from_str(text.trim())
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|e| serde::de::Error::custom(format!("not a decimal price: {text:?} ({e})")))
}

/// How the charger's phases 1, 2, 3 are wired to the grid's L1, L2, L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Rotation {
    #[default]
    L1L2L3,
    L2L3L1,
    L3L1L2,
}

impl Rotation {
    /// The grid phase (0-based) of the charger's phase `i` (0-based).
    pub fn grid_phase(self, i: usize) -> usize {
        let shift = match self {
            Rotation::L1L2L3 => 0,
            Rotation::L2L3L1 => 1,
            Rotation::L3L1L2 => 2,
        };
        (i + shift) % 3
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supply {
    #[default]
    Ac,
    Dc,
}

/// The limits for one moment: one line of `dlm plan` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub time: DateTime<Utc>,
    /// Every charger of the input, in input order.
    pub limits: Vec<Limit>,
    /// Chargers drawing more than their limit (after their apply delay); their draw is reserved.
    pub non_compliant: Vec<String>,
    /// Every circuit of the input, in input order.
    pub nodes: Vec<NodeLoad>,
}

/// The limit for one charger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub charger: String,
    /// A per phase (charger side for AC, grid-side equivalent for DC); 0 = paused; multiple of 0.1 A.
    pub current: f64,
    pub phases: u8,
    /// DC only: the limit in W (`current` × 3 × 230 V).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// The limit differs from the previous step's (or the charger just came back online).
    pub changed: bool,
    /// Why the limit is what it is.
    pub state: LimitState,
    /// A this limit may load on each grid phase `[L1, L2, L3]` (reservations included).
    pub load: [f64; 3],
}

/// Why a charger got its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitState {
    /// No session: held at 0.
    Idle,
    /// Charging at its share.
    Charging,
    /// Charging, capped near its measured draw (it used clearly less than offered); 0 while the
    /// car takes nothing at all (parked, offered current again every `park_retry_s`).
    Reclaimed,
    /// Paused: no capacity for its minimum current now (rotates).
    Paused,
    /// Waits for cheaper energy (its need fits in cheaper slots before departure): held at 0, or
    /// at its minimum while kept awake after a rotation period of pause.
    Deferred,
    /// Offline: assumed to draw its fallback current, which is reserved.
    Offline,
    /// Draws more than its limit: its draw is reserved.
    NonCompliant,
}

/// Per grid phase `[L1, L2, L3]` figures for one circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub circuit: String,
    /// The circuit's `max_current`.
    pub limit: [f64; 3],
    /// Unmanaged load as used (assumed when its meter is silent) plus the measured draw of chargers below.
    pub measured: [f64; 3],
    /// Unmanaged load as used plus the `load` of every charger below: what the plan allows at most.
    pub allocated: [f64; 3],
}

/// The controller's tuning. See docs/dlm.md for the reasoning behind each default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Phase voltage used to convert W to A.
    pub volts: f64,
    /// Part of every limit kept free for measurement error.
    pub headroom_fraction: f64,
    /// ... but at least this many A per phase.
    pub headroom_min_a: f64,
    /// Changes smaller than this are not sent (except decreases needed for safety and pauses).
    pub deadband_a: f64,
    /// At most one increase per charger in this many seconds.
    pub increase_interval_s: f64,
    /// How long a paused session waits (and a charging one is protected) before pauses rotate.
    pub rotation_period_s: f64,
    /// Seconds a charger needs to follow a new limit (when the charger does not say).
    pub apply_delay_s: f64,
    /// Raise a limit only where it fits next to the measured draw of chargers whose lower limit is
    /// not applied yet (within their apply delay, or never sent).
    pub make_before_break: bool,
    /// A charger drawing more than limit + this on a phase (after its apply delay) is non-compliant.
    pub compliance_tolerance_a: f64,
    /// A non-compliant charger is compliant again after following its limit this long.
    pub compliance_recover_s: f64,
    /// A phase drawing more than this counts as used (single-phase car detection).
    pub phase_active_a: f64,
    /// A phase drawing less than this counts as unused.
    pub phase_idle_a: f64,
    /// Consecutive single-phase observations before a 3-phase charger is treated as single-phase.
    pub single_phase_observations: u32,
    /// A car drawing less than its offer by more than this ...
    pub reclaim_threshold_a: f64,
    /// ... for this long gets its allocation lowered to its draw + `reclaim_margin_a`.
    pub reclaim_after_s: f64,
    pub reclaim_margin_a: f64,
    /// A reclaimed car drawing within this of its limit gets its full share back.
    pub giveback_a: f64,
    /// A car that drew nothing for `reclaim_after_s` although offered its minimum is held at 0
    /// (parked); after this many seconds it is offered current again.
    pub park_retry_s: f64,
    /// A session whose laxity (time left − time needed at full power) is below this is urgent.
    pub urgent_laxity_s: f64,
    /// Price shifting plans for this many times the duration needed at full power.
    pub price_time_margin: f64,
    /// Priority of sessions that carry none.
    pub default_priority: i32,
    /// Departure assumed for sessions without one, in seconds after the controller first saw them
    /// (`None`: such sessions charge now).
    pub default_departure_s: Option<f64>,
    /// A session that did not say its need weighs the highest ceiling × k / (k + kWh it got), k
    /// this many kWh (`None`: the highest ceiling all along).
    pub untold_share_kwh: Option<f64>,
    /// A silent meter's node without `safe_current` is assumed to carry its recent peak unmanaged
    /// load plus `silent_margin_fraction` of its `max_current` for this many seconds after its
    /// last reading (0: at once its whole `max_current`).
    pub silent_hold_s: f64,
    /// See `silent_hold_s`.
    pub silent_margin_fraction: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            volts: 230.0,
            headroom_fraction: 0.03,
            headroom_min_a: 0.5,
            deadband_a: 1.0,
            increase_interval_s: 60.0,
            rotation_period_s: 600.0,
            apply_delay_s: 30.0,
            make_before_break: true,
            compliance_tolerance_a: 1.5,
            compliance_recover_s: 120.0,
            phase_active_a: 1.0,
            phase_idle_a: 0.5,
            single_phase_observations: 2,
            reclaim_threshold_a: 3.0,
            reclaim_after_s: 120.0,
            reclaim_margin_a: 2.0,
            giveback_a: 1.0,
            park_retry_s: 1800.0,
            urgent_laxity_s: 1800.0,
            price_time_margin: 2.0,
            default_priority: 0,
            default_departure_s: None,
            untold_share_kwh: Some(5.0),
            silent_hold_s: 600.0,
            silent_margin_fraction: 0.1,
        }
    }
}

impl Settings {
    /// Checks every value; names the setting that is wrong.
    pub fn check(&self) -> Result<(), DlmError> {
        let non_negative = [
            ("headroom_fraction", self.headroom_fraction),
            ("headroom_min_a", self.headroom_min_a),
            ("deadband_a", self.deadband_a),
            ("increase_interval_s", self.increase_interval_s),
            ("rotation_period_s", self.rotation_period_s),
            ("apply_delay_s", self.apply_delay_s),
            ("compliance_tolerance_a", self.compliance_tolerance_a),
            ("compliance_recover_s", self.compliance_recover_s),
            ("phase_active_a", self.phase_active_a),
            ("phase_idle_a", self.phase_idle_a),
            ("reclaim_threshold_a", self.reclaim_threshold_a),
            ("reclaim_after_s", self.reclaim_after_s),
            ("reclaim_margin_a", self.reclaim_margin_a),
            ("giveback_a", self.giveback_a),
            ("park_retry_s", self.park_retry_s),
            ("urgent_laxity_s", self.urgent_laxity_s),
            ("price_time_margin", self.price_time_margin),
            ("silent_hold_s", self.silent_hold_s),
            ("silent_margin_fraction", self.silent_margin_fraction),
        ];
        for (name, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(DlmError::invalid(format!("settings.{name}"), "must be a number >= 0"));
            }
        }
        if !self.volts.is_finite() || self.volts <= 0.0 {
            return Err(DlmError::invalid("settings.volts", "must be a number > 0"));
        }
        if self.headroom_fraction >= 1.0 {
            return Err(DlmError::invalid("settings.headroom_fraction", "must be below 1"));
        }
        if let Some(d) = self.default_departure_s
            && (!d.is_finite() || d < 0.0)
        {
            return Err(DlmError::invalid(
                "settings.default_departure_s",
                "must be a number >= 0",
            ));
        }
        if let Some(k) = self.untold_share_kwh
            && (!k.is_finite() || k <= 0.0)
        {
            return Err(DlmError::invalid("settings.untold_share_kwh", "must be a number > 0"));
        }
        Ok(())
    }
}

/// A site state the controller refuses. Every variant names the offending field as a JSON path
/// (`chargers[3].circuit`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DlmError {
    #[error("`{field}`: no circuit has id {id:?}")]
    UnknownCircuit { field: String, id: String },
    #[error("`{field}`: id {id:?} is used twice")]
    Duplicate { field: String, id: String },
    #[error("`{field}`: circuit {id:?} is its own ancestor (cycle)")]
    Cycle { field: String, id: String },
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl DlmError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DlmError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            DlmError::UnknownCircuit { field, .. }
            | DlmError::Duplicate { field, .. }
            | DlmError::Cycle { field, .. }
            | DlmError::Invalid { field, .. } => field,
        }
    }
}
