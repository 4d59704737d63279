//! What `dlm status` shows: the last decision of each site.

use crate::dlm::{Allocation, SiteState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DlmView {
    /// When the last decision ran; `None` before the first.
    pub time: Option<DateTime<Utc>>,
    pub sites: Vec<SiteView>,
    /// Meter events dropped because the loop was behind.
    pub dropped_signals: u64,
    /// Times the loop re-read its records from the store (every tick, and
    /// after a change at a charger in a circuit or to the tree).
    #[serde(default)]
    pub reloads: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteView {
    pub site: String,
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub decision_us: u64,
    pub circuits: Vec<CircuitView>,
    pub chargers: Vec<ChargerLoad>,
    pub non_compliant: Vec<String>,
}

/// One node, per grid phase (A).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircuitView {
    pub id: String,
    pub parent: Option<String>,
    pub limit: [f64; 3],
    pub measured: [f64; 3],
    pub allocated: [f64; 3],
    /// Load voltyard does not control; `None` with `metered` = meter silent.
    pub unmanaged: Option<[f64; 3]>,
    pub metered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargerLoad {
    pub id: String,
    pub circuit: String,
    pub connected: bool,
    pub session: Option<String>,
    /// At the charger's terminals, per charger phase (A).
    pub measured: [f64; 3],
    /// A per phase; 0 = paused.
    pub limit: f64,
    pub phases: u8,
    pub non_compliant: bool,
    /// A bound on this EVSE besides the circuits: an external limit (by
    /// its source, e.g. `EMS`) or what the car can take (`ev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cap {
    /// A per phase.
    pub current: f64,
    pub source: String,
}

impl SiteView {
    pub fn error(site: &str, time: DateTime<Utc>, error: String) -> Self {
        SiteView {
            site: site.to_string(),
            time,
            error: Some(error),
            decision_us: 0,
            circuits: vec![],
            chargers: vec![],
            non_compliant: vec![],
        }
    }
}

pub fn site(
    site: &str,
    state: &SiteState,
    alloc: &Allocation,
    caps: &HashMap<String, Cap>,
    took: std::time::Duration,
) -> SiteView {
    let nodes: HashMap<&str, &crate::dlm::NodeLoad> = alloc.nodes.iter().map(|n| (n.circuit.as_str(), n)).collect();
    let limits: HashMap<&str, &crate::dlm::Limit> = alloc.limits.iter().map(|l| (l.charger.as_str(), l)).collect();
    let circuits = state
        .circuits
        .iter()
        .map(|c| {
            let node = nodes.get(c.id.as_str());
            CircuitView {
                id: c.id.clone(),
                parent: c.parent.clone(),
                limit: c.max_current,
                measured: node.map_or([0.0; 3], |n| n.measured),
                allocated: node.map_or([0.0; 3], |n| n.allocated),
                unmanaged: c.unmanaged_current,
                metered: c.metered,
            }
        })
        .collect();
    let chargers = state
        .chargers
        .iter()
        .map(|c| {
            let limit = limits.get(c.id.as_str());
            ChargerLoad {
                id: c.id.clone(),
                circuit: c.circuit.clone(),
                connected: c.connected,
                session: c.session.as_ref().map(|s| s.id.clone()),
                measured: c.session.as_ref().map_or([0.0; 3], |s| s.measured_current),
                limit: limit.map_or(0.0, |l| l.current),
                phases: limit.map_or(c.phases, |l| l.phases),
                non_compliant: alloc.non_compliant.contains(&c.id),
                cap: caps.get(&c.id).cloned(),
            }
        })
        .collect();
    SiteView {
        site: site.to_string(),
        time: state.time,
        error: None,
        decision_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        circuits,
        chargers,
        non_compliant: alloc.non_compliant.clone(),
    }
}
