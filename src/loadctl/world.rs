//! What the loop knows about each site: stored records (reloaded when they
//! change) and live readings (kept as they arrive), and how they become the
//! optimiser's input. Building a `SiteState` is a pure function of these.

use super::Reading;
use crate::config::DlmConfig;
use crate::dlm::{ChargerState, CircuitState, Rotation, SessionState, SiteState, Supply};
use crate::domain::circuit::{Circuit, Measures, MeterSource, PriceSlot};
use crate::domain::device::{EvInfo, ExternalLimit};
use crate::domain::{Charger, ChargerTxRef, Registration, Session};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// One EVSE that load management steers.
pub type Key = (String, u32);

/// The name of an EVSE in the optimiser and in `dlm status`: the charger id
/// for a single-EVSE charger, `ID/EVSE` otherwise ('/' never occurs in ids).
pub fn dlm_id(charger: &Charger, evse: u32) -> String {
    if evses(charger).len() > 1 {
        format!("{}/{evse}", charger.id)
    } else {
        charger.id.clone()
    }
}

/// EVSE numbers of a charger (1 until it has reported any).
pub fn evses(charger: &Charger) -> Vec<u32> {
    let mut e: Vec<u32> = charger.connectors.iter().map(|c| c.evse).filter(|e| *e > 0).collect();
    e.sort_unstable();
    e.dedup();
    if e.is_empty() { vec![1] } else { e }
}

pub fn rotation(text: &str) -> Rotation {
    match text {
        "L2L3L1" => Rotation::L2L3L1,
        "L3L1L2" => Rotation::L3L1L2,
        _ => Rotation::L1L2L3,
    }
}

/// The grid phase (0..3) each of a charger's phases is wired to.
pub fn grid_phases(rotation: &str) -> [usize; 3] {
    match rotation {
        "L2L3L1" => [1, 2, 0],
        "L3L1L2" => [2, 0, 1],
        _ => [0, 1, 2],
    }
}

#[derive(Default)]
pub struct World {
    /// Chargers placed in a circuit (the others are not steered).
    pub chargers: HashMap<String, Charger>,
    pub circuits: Vec<Circuit>,
    pub sessions: Vec<Session>,
    pub prices: HashMap<String, Vec<PriceSlot>>,
    /// Latest meter reading per EVSE, at the charger's terminals.
    pub measured: HashMap<Key, Reading>,
    /// Latest reading of each pushed or polled circuit meter.
    pub meters: HashMap<String, ([f64; 3], DateTime<Utc>)>,
    /// Latest EVSE-0 reading of each charger or OCPP meter device.
    pub charger_meters: HashMap<String, ([f64; 3], DateTime<Utc>)>,
    /// Limits set by other sources, until cleared.
    pub limits: Vec<ExternalLimit>,
    /// What the car at each EVSE said it needs.
    pub ev: HashMap<Key, EvInfo>,
}

impl World {
    /// Sites that have a circuit tree.
    pub fn sites(&self) -> Vec<String> {
        let mut s: Vec<String> = self.circuits.iter().map(|c| c.site.clone()).collect();
        s.sort();
        s.dedup();
        s
    }

    pub fn session_at(&self, charger: &str, evse: u32) -> Option<&Session> {
        self.sessions.iter().find(|s| s.charger == charger && s.evse == evse)
    }

    /// The EVSE a transaction message without one is about.
    pub fn evse_of_tx(&self, charger: &str, tx: &crate::domain::session::TxTarget) -> Option<u32> {
        use crate::domain::session::TxTarget;
        self.sessions
            .iter()
            .find(|s| {
                s.charger == charger
                    && match tx {
                        TxTarget::Session(id) => s.id == *id,
                        TxTarget::Charger(ChargerTxRef::V201 { transaction_id }) => {
                            matches!(&s.tx_ref, ChargerTxRef::V201 { transaction_id: t } if t == transaction_id)
                        }
                        TxTarget::Charger(ChargerTxRef::V16 { connector, .. }) => s.evse == *connector,
                    }
            })
            .map(|s| s.evse)
    }

    /// Chargers under a circuit tree, with the EVSEs steered.
    pub fn managed(&self) -> HashSet<String> {
        let known: HashSet<&str> = self.circuits.iter().map(|c| c.id.as_str()).collect();
        self.chargers
            .values()
            .filter(|c| c.circuit.as_deref().is_some_and(|k| known.contains(k)))
            .map(|c| c.id.clone())
            .collect()
    }

    /// The optimiser's view of one site at `now`. `fallback` gives, for an
    /// EVSE, what a disconnected charger may still draw (the limit it was
    /// last given, while that profile lasts).
    pub fn site_state(
        &self,
        site: &str,
        now: DateTime<Utc>,
        cfg: &DlmConfig,
        connected: &dyn Fn(&str) -> bool,
        fallback: &dyn Fn(&Key) -> Option<f64>,
    ) -> SiteState {
        let circuits: Vec<&Circuit> = self.circuits.iter().filter(|c| c.site == site).collect();
        let mut chargers_out = Vec::new();
        let mut ids: Vec<&String> = self.chargers.keys().collect();
        ids.sort();
        for id in ids {
            let ch = &self.chargers[id];
            let Some(circuit) = ch.circuit.as_deref().filter(|k| circuits.iter().any(|c| c.id == *k)) else {
                continue;
            };
            if ch.registration != Registration::Accepted {
                continue;
            }
            let dc = ch.max_power_w.is_some();
            for evse in evses(ch) {
                let reading = self.measured.get(&(ch.id.clone(), evse));
                let session = self.session_at(&ch.id, evse).map(|s| SessionState {
                    id: s.id.to_string(),
                    measured_current: reading.map(|r| r.current).unwrap_or_default(),
                    energy_wh: s.energy_wh(),
                    energy_target_wh: s.energy_target_wh,
                    departure: s.departure,
                    priority: s.priority,
                    offered_current: reading.and_then(|r| r.offered),
                    measured_power_w: reading.and_then(|r| r.power_w),
                    measured_at: reading.map(|r| r.t),
                });
                let max_power_w = ch.max_power_w.map(f64::from);
                let mut max_current = match max_power_w {
                    Some(w) => w / (3.0 * cfg.voltage),
                    None => ch.max_current.map_or(cfg.charger_max_current, f64::from),
                };
                if let Some(cap) = self.cap(ch, evse, now, cfg) {
                    max_current = max_current.min(cap.current);
                }
                chargers_out.push(ChargerState {
                    id: dlm_id(ch, evse),
                    circuit: circuit.to_string(),
                    phases: if dc { 3 } else { ch.phases },
                    phase_rotation: rotation(&ch.phase_rotation),
                    min_current: if dc { 0.0 } else { 6.0f64.min(max_current) },
                    max_current,
                    session,
                    supply: if dc { Supply::Dc } else { Supply::Ac },
                    max_power_w,
                    connected: connected(&ch.id),
                    fallback_current: fallback(&(ch.id.clone(), evse)),
                    apply_delay_s: None,
                });
            }
        }
        let circuits_out = circuits
            .iter()
            .map(|c| CircuitState {
                id: c.id.clone(),
                parent: c.parent.clone(),
                max_current: if c.phases == 1 {
                    [c.max_current[0], 0.0, 0.0]
                } else {
                    c.max_current
                },
                unmanaged_current: self.unmanaged(c, now),
                max_power_w: c.max_power_w,
                metered: c.meter.is_some(),
                safe_current: c.safe_current,
            })
            .collect();
        SiteState {
            time: now,
            circuits: circuits_out,
            chargers: chargers_out,
            prices: self
                .prices
                .get(site)
                .into_iter()
                .flatten()
                .filter(|p| p.end > now)
                .map(|p| crate::dlm::PriceSlot {
                    start: p.start,
                    end: p.end,
                    price_per_kwh: p.price_per_kwh,
                })
                .collect(),
        }
    }

    /// Load at a metered circuit that voltyard does not control: the
    /// reading itself, or for a meter of the whole node the reading less
    /// what the chargers under it report. `None` when the meter is silent.
    fn unmanaged(&self, c: &Circuit, now: DateTime<Utc>) -> Option<[f64; 3]> {
        let binding = c.meter.as_ref()?;
        let (reading, at) = match &binding.source {
            MeterSource::Ocpp { charger } => self.charger_meters.get(charger)?,
            MeterSource::Push | MeterSource::Modbus(_) => self.meters.get(&c.id)?,
        };
        if (now - *at).num_milliseconds() > i64::from(binding.timeout_s) * 1000 {
            return None;
        }
        match binding.measures {
            Measures::Unmanaged => Some(*reading),
            Measures::Total => {
                let below = self.subtree(&c.id);
                let mut out = *reading;
                for ((id, _), r) in &self.measured {
                    let Some(ch) = self.chargers.get(id) else { continue };
                    if !ch.circuit.as_deref().is_some_and(|k| below.contains(k)) {
                        continue;
                    }
                    let map = grid_phases(&ch.phase_rotation);
                    for (i, a) in r.current.iter().enumerate().take(usize::from(ch.phases)) {
                        out[map[i]] -= a;
                    }
                }
                Some(out)
            }
        }
    }

    fn subtree<'a>(&'a self, root: &'a str) -> HashSet<&'a str> {
        let mut set: HashSet<&str> = HashSet::from([root]);
        loop {
            let before = set.len();
            for c in &self.circuits {
                if c.parent.as_deref().is_some_and(|p| set.contains(p)) {
                    set.insert(c.id.as_str());
                }
            }
            if set.len() == before {
                return set;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::circuit::MeterBinding;

    fn circuit(id: &str, parent: Option<&str>, meter: Option<MeterBinding>) -> Circuit {
        Circuit {
            id: id.into(),
            site: "s".into(),
            parent: parent.map(str::to_string),
            max_current: [32.0; 3],
            phases: 3,
            max_power_w: None,
            meter,
            safe_current: None,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_total_meter_less_the_chargers_under_it_is_the_unmanaged_load_per_grid_phase() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let meter = MeterBinding {
            source: MeterSource::Push,
            measures: Measures::Total,
            timeout_s: 10,
        };
        let mut w = World {
            circuits: vec![circuit("grid", None, Some(meter)), circuit("board", Some("grid"), None)],
            ..World::default()
        };
        let mut ch = Charger::new("CP", Registration::Accepted, now);
        ch.circuit = Some("board".into());
        ch.phase_rotation = "L2L3L1".into();
        w.chargers.insert("CP".into(), ch);
        w.measured.insert(
            ("CP".into(), 1),
            Reading {
                t: now,
                current: [10.0, 0.0, 0.0],
                offered: None,
                power_w: None,
            },
        );
        w.meters.insert("grid".into(), ([20.0, 30.0, 20.0], now));
        let cfg = DlmConfig::default();
        let state = w.site_state("s", now, &cfg, &|_| true, &|_| None);
        // The car's L1 is the grid's L2 on an L2L3L1 charger.
        assert_eq!(state.circuits[0].unmanaged_current, Some([20.0, 20.0, 20.0]));
        assert_eq!(state.chargers[0].id, "CP");
        // A reading older than the meter's timeout is a silent meter.
        let later = now + chrono::Duration::seconds(11);
        let state = w.site_state("s", later, &cfg, &|_| true, &|_| None);
        assert_eq!(state.circuits[0].unmanaged_current, None);
        assert!(state.circuits[0].metered);
    }
}
