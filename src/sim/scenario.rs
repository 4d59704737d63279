//! Scenario files: a site, its circuits, charger groups, tokens, the car
//! fleet and how cars arrive. TOML or JSON; the shipped ones live in
//! `scenarios/` and are embedded, so `--scenario office` works anywhere.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub site: SiteSpec,
    #[serde(default)]
    pub circuits: Vec<CircuitSpec>,
    pub chargers: Vec<ChargerGroup>,
    #[serde(default)]
    pub tokens: Vec<TokenGroup>,
    pub cars: Vec<CarModel>,
    #[serde(default)]
    pub arrivals: Arrivals,
    #[serde(default)]
    pub misbehaviour: Misbehaviour,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub id: String,
    pub name: String,
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A node of the site's electrical tree (used by load management).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSpec {
    pub id: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// A per grid phase.
    pub max_current: [u32; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtocolChoice {
    #[serde(rename = "1.6")]
    V16,
    #[serde(rename = "2.0.1")]
    V201,
    /// Alternate 1.6 and 2.0.1 within the group.
    #[serde(rename = "mix")]
    Mix,
}

impl std::str::FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.6" | "ocpp1.6" => Ok(Self::V16),
            "2.0.1" | "ocpp2.0.1" => Ok(Self::V201),
            "mix" => Ok(Self::Mix),
            other => Err(format!("unknown protocol {other:?}: use 1.6, 2.0.1 or mix")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supply {
    Ac,
    Dc,
}

/// Identical chargers: ids are `{prefix}-{01..count}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerGroup {
    pub prefix: String,
    pub count: u32,
    #[serde(default)]
    pub circuit: Option<String>,
    pub protocol: ProtocolChoice,
    #[serde(default = "one")]
    pub connectors: u32,
    #[serde(default = "ac")]
    pub supply: Supply,
    /// Phases wired to the charger (AC): 1 or 3.
    #[serde(default = "three")]
    pub phases: u8,
    /// Which grid phase the charger's L1 is on: "L1L2L3", "L2L3L1", "L3L1L2".
    #[serde(default = "rotation")]
    pub phase_rotation: String,
    /// A per phase (AC).
    #[serde(default = "sixteen")]
    pub max_current: u32,
    /// kW (DC).
    #[serde(default)]
    pub max_power_kw: Option<u32>,
    #[serde(default = "vendor")]
    pub vendor: String,
    #[serde(default = "model")]
    pub model: String,
    #[serde(default = "ten")]
    pub meter_interval_s: u32,
    /// Seconds from a new charging limit to the car drawing it.
    #[serde(default = "three_u32")]
    pub limit_delay_s: u32,
    /// Carries an Eichrecht meter that signs begin/end readings (OCMF).
    #[serde(default)]
    pub signed_meter: bool,
    /// An energy manager on site caps these chargers for a while (2.0.1:
    /// reported with NotifyChargingLimit / ClearedChargingLimit).
    #[serde(default)]
    pub external_limit: Option<ExternalLimitSpec>,
}

/// A cap another source puts on a charger: `current_a` per phase, from
/// `after_s` after the simulation starts, for `for_s`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalLimitSpec {
    pub current_a: u32,
    pub after_s: u32,
    pub for_s: u32,
    /// EMS, Other, SO or CSO.
    #[serde(default = "ems")]
    pub source: String,
}

fn ems() -> String {
    "EMS".into()
}

fn one() -> u32 {
    1
}
fn three() -> u8 {
    3
}
fn three_u32() -> u32 {
    3
}
fn ten() -> u32 {
    10
}
fn sixteen() -> u32 {
    16
}
fn ac() -> Supply {
    Supply::Ac
}
fn rotation() -> String {
    "L1L2L3".into()
}
fn vendor() -> String {
    "voltyard-sim".into()
}
fn model() -> String {
    "VirtualWallbox".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Rfid,
    /// AutoCharge: the car's id (`VID:` + MAC) is the token.
    Vehicle,
    /// An ISO 15118 contract id (eMAID), what Plug & Charge cars present.
    Contract,
}

/// Tokens the cars present: `{prefix}{0001..count}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGroup {
    pub prefix: String,
    pub count: u32,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "rfid")]
    pub kind: TokenKind,
}

fn rfid() -> TokenKind {
    TokenKind::Rfid
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarModel {
    pub name: String,
    pub battery_kwh: u32,
    /// Max AC current per phase (A).
    pub ac_max_current: u32,
    /// 1 or 3.
    pub ac_phases: u8,
    /// Max DC power (kW); 0 for AC-only cars.
    #[serde(default)]
    pub dc_max_kw: u32,
    /// Relative share in the fleet.
    #[serde(default = "one")]
    pub weight: u32,
    /// Speaks ISO 15118: tells its needs (NotifyEVChargingNeeds, 2.0.1).
    #[serde(default)]
    pub iso15118: bool,
}

/// How cars arrive at each connector: wait a gap, stay a while, leave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Arrivals {
    /// Seconds from start until a connector's first car, drawn uniformly.
    pub first_within_s: u32,
    /// Seconds between a departure and the next arrival [min, max].
    pub gap_s: [u32; 2],
    /// Seconds a car stays plugged in [min, max].
    pub dwell_s: [u32; 2],
    /// State of charge on arrival, percent [min, max].
    pub soc_percent: [u32; 2],
    /// Share of visits (percent) whose token the server does not know.
    pub unknown_token_percent: u32,
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            first_within_s: 60,
            gap_s: [30, 300],
            dwell_s: [600, 3600],
            soc_percent: [10, 70],
            unknown_token_percent: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quirk {
    /// Accept charging profiles but keep drawing what it drew.
    IgnoreProfiles,
    /// Answer every SetChargingProfile with Rejected.
    RejectProfiles,
    /// Apply limits rounded to the nearest whole ampere.
    RoundLimits,
    /// Report the energy register in kWh while labelling it Wh.
    KwhAsWh,
    /// Lose the connection now and then, queue, and replay on reconnect.
    DropAndReplay,
}

impl Quirk {
    pub const ALL: [Quirk; 5] = [
        Quirk::IgnoreProfiles,
        Quirk::RejectProfiles,
        Quirk::RoundLimits,
        Quirk::KwhAsWh,
        Quirk::DropAndReplay,
    ];
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Misbehaviour {
    /// Share of chargers (percent) that carry one quirk.
    pub percent: u32,
    /// The quirks to draw from.
    pub quirks: Vec<Quirk>,
    /// Seconds between drops for `drop_and_replay` [min, max].
    pub drop_every_s: [u32; 2],
    /// Seconds offline per drop.
    pub offline_s: u32,
    /// Share of firmware downloads and log uploads (percent) that fail.
    pub transfer_failure_percent: u32,
}

impl Default for Misbehaviour {
    fn default() -> Self {
        Misbehaviour {
            percent: 0,
            quirks: Quirk::ALL.to_vec(),
            drop_every_s: [120, 600],
            offline_s: 20,
            transfer_failure_percent: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Parse { path: String, err: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: String,
        field: String,
        reason: String,
    },
    #[error("no scenario named {0:?}; the built-in ones are {1}")]
    Unknown(String, String),
}

/// The scenarios shipped in `scenarios/`.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("demo", include_str!("../../scenarios/demo.toml")),
    ("office", include_str!("../../scenarios/office.toml")),
    ("apartments", include_str!("../../scenarios/apartments.toml")),
    ("depot", include_str!("../../scenarios/depot.toml")),
    ("retail-dc", include_str!("../../scenarios/retail-dc.toml")),
];

impl Scenario {
    /// A file path (`.toml` or `.json`) or the name of a built-in scenario.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((name, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, &format!("built-in scenario {name}"), false);
        }
        let path = Path::new(name_or_path);
        if !path.exists() && !name_or_path.contains(['/', '.']) {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            return Err(ScenarioError::Unknown(name_or_path.into(), names.join(", ")));
        }
        let text = std::fs::read_to_string(path).map_err(|err| ScenarioError::Read {
            path: name_or_path.into(),
            err,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, name_or_path, json)
    }

    pub fn parse(text: &str, origin: &str, json: bool) -> Result<Scenario, ScenarioError> {
        let parsed: Scenario = if json {
            serde_json::from_str(text).map_err(|e| ScenarioError::Parse {
                path: origin.into(),
                err: e.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|e| ScenarioError::Parse {
                path: origin.into(),
                err: e.to_string(),
            })?
        };
        parsed.check(origin)?;
        Ok(parsed)
    }

    /// A plain site for `--chargers N` without a scenario file: one AC
    /// wallbox group, cards `SIM0001…` (two per connector), a mixed fleet.
    pub fn generic(chargers: u32, protocol: ProtocolChoice, connectors: u32) -> Scenario {
        let car = |name: &str, battery_kwh, ac_max_current, ac_phases, dc_max_kw, weight| CarModel {
            name: name.into(),
            battery_kwh,
            ac_max_current,
            ac_phases,
            dc_max_kw,
            weight,
            iso15118: name == "VW ID.3",
        };
        Scenario {
            site: SiteSpec {
                id: "sim".into(),
                name: "Simulated site".into(),
                timezone: utc(),
            },
            circuits: Vec::new(),
            chargers: vec![ChargerGroup {
                prefix: "SIM".into(),
                count: chargers,
                circuit: None,
                protocol,
                connectors,
                supply: Supply::Ac,
                phases: 3,
                phase_rotation: rotation(),
                max_current: 16,
                max_power_kw: None,
                vendor: vendor(),
                model: model(),
                meter_interval_s: 10,
                limit_delay_s: 3,
                signed_meter: false,
                external_limit: None,
            }],
            tokens: vec![TokenGroup {
                prefix: "SIM".into(),
                count: (chargers.saturating_mul(connectors).saturating_mul(2)).clamp(10, 9999),
                group: None,
                kind: TokenKind::Rfid,
            }],
            cars: vec![
                car("VW ID.3", 58, 16, 3, 120, 3),
                car("Renault Zoe", 52, 32, 3, 50, 2),
                car("Nissan Leaf", 40, 32, 1, 50, 1),
                car("Tesla Model 3", 75, 16, 3, 170, 2),
            ],
            arrivals: Arrivals::default(),
            misbehaviour: Misbehaviour::default(),
        }
    }

    fn check(&self, origin: &str) -> Result<(), ScenarioError> {
        let bad = |field: String, reason: &str| {
            Err(ScenarioError::Invalid {
                path: origin.into(),
                field,
                reason: reason.into(),
            })
        };
        if self.chargers.is_empty() {
            return bad("chargers".into(), "at least one charger group is needed");
        }
        if self.cars.is_empty() || self.cars.iter().all(|c| c.weight == 0) {
            return bad("cars".into(), "at least one car model with a weight above 0 is needed");
        }
        for (i, c) in self.circuits.iter().enumerate() {
            if let Some(p) = &c.parent
                && !self.circuits[..i].iter().any(|o| &o.id == p)
            {
                return bad(
                    format!("circuits[{i}].parent"),
                    "must name a circuit listed before this one",
                );
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, g) in self.chargers.iter().enumerate() {
            let f = |name: &str| format!("chargers[{i}].{name}");
            if g.prefix.is_empty() || g.prefix.len() > 40 || !g.prefix.chars().all(|c| c.is_ascii_graphic()) {
                return bad(f("prefix"), "1 to 40 printable ASCII characters");
            }
            if !ids.insert(g.prefix.clone()) {
                return bad(f("prefix"), "used by another charger group");
            }
            if g.connectors == 0 || g.connectors > 8 {
                return bad(f("connectors"), "between 1 and 8");
            }
            if !matches!(g.phases, 1 | 3) {
                return bad(f("phases"), "1 or 3");
            }
            if !["L1L2L3", "L2L3L1", "L3L1L2"].contains(&g.phase_rotation.as_str()) {
                return bad(f("phase_rotation"), "one of L1L2L3, L2L3L1, L3L1L2");
            }
            if g.supply == Supply::Ac && !(6..=63).contains(&g.max_current) {
                return bad(f("max_current"), "between 6 and 63 A for AC");
            }
            if g.supply == Supply::Dc && g.max_power_kw.is_none_or(|k| k == 0 || k > 1000) {
                return bad(f("max_power_kw"), "DC chargers need 1 to 1000 kW");
            }
            if g.meter_interval_s == 0 {
                return bad(f("meter_interval_s"), "at least 1");
            }
            if let Some(c) = &g.circuit
                && !self.circuits.iter().any(|o| &o.id == c)
            {
                return bad(f("circuit"), "must name a circuit of this scenario");
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.prefix.is_empty() || t.prefix.len() + 4 > 20 {
                return bad(format!("tokens[{i}].prefix"), "1 to 16 characters (ids must fit 20)");
            }
        }
        for (i, c) in self.cars.iter().enumerate() {
            if c.battery_kwh == 0 {
                return bad(format!("cars[{i}].battery_kwh"), "above 0");
            }
            if !matches!(c.ac_phases, 1 | 3) {
                return bad(format!("cars[{i}].ac_phases"), "1 or 3");
            }
        }
        let a = &self.arrivals;
        for (name, [lo, hi]) in [
            ("gap_s", a.gap_s),
            ("dwell_s", a.dwell_s),
            ("soc_percent", a.soc_percent),
        ] {
            if lo > hi {
                return bad(format!("arrivals.{name}"), "[min, max] with min ≤ max");
            }
        }
        if a.soc_percent[1] > 100 || a.unknown_token_percent > 100 || self.misbehaviour.percent > 100 {
            return bad("arrivals / misbehaviour".into(), "percentages are 0 to 100");
        }
        let m = &self.misbehaviour;
        if m.drop_every_s[0] > m.drop_every_s[1] || m.drop_every_s[0] == 0 {
            return bad("misbehaviour.drop_every_s".into(), "[min, max] with 0 < min ≤ max");
        }
        if m.transfer_failure_percent > 100 {
            return bad(
                "misbehaviour.transfer_failure_percent".into(),
                "percentages are 0 to 100",
            );
        }
        if m.percent > 0 && m.quirks.is_empty() {
            return bad("misbehaviour.quirks".into(), "list at least one quirk");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_parses() {
        for (name, _) in BUILT_IN {
            Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn errors_name_the_field() {
        let text = BUILT_IN[0].1.replacen("phases = 3", "phases = 2", 1);
        let err = Scenario::parse(&text, "x.toml", false).unwrap_err().to_string();
        assert!(err.contains("chargers[0].phases"), "{err}");
        let err = Scenario::load("nonesuch").unwrap_err().to_string();
        assert!(err.contains("office"), "{err}");
    }
}
