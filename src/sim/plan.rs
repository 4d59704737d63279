//! The deterministic half of a simulation: which chargers exist, what they
//! are, and the stream of car visits at every connector. Everything here
//! comes from the seed alone (one ChaCha stream per charger), so the same
//! seed gives the same site and the same visits whatever the network does.

use super::scenario::{CarModel, ProtocolChoice, Quirk, Scenario, Supply, TokenKind};
use crate::domain::Protocol;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ChargerPlan {
    pub id: String,
    pub index: u32,
    pub protocol: Protocol,
    pub connectors: u32,
    pub supply: Supply,
    pub phases: u8,
    pub phase_rotation: String,
    pub circuit: Option<String>,
    pub max_current_a: u32,
    pub max_power_kw: Option<u32>,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub meter_interval_s: u32,
    pub limit_delay_s: u32,
    /// The meter's secret key seed (secp256r1) when it signs readings.
    #[serde(skip)]
    pub meter_key: Option<[u8; 32]>,
    pub signed_meter: bool,
    pub quirk: Option<Quirk>,
    pub external_limit: Option<super::scenario::ExternalLimitSpec>,
    /// This charger's first connector among all connectors of the site,
    /// and how many there are: drivers are spread so one card is not at
    /// two connectors at once.
    pub first_slot: u32,
    pub slots: u32,
    /// Seed of this charger's visit stream.
    #[serde(skip)]
    pub visit_seed: u64,
}

/// One car at one connector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    /// Seconds of idle connector before the car plugs in.
    pub wait_s: u32,
    pub dwell_s: u32,
    pub car: String,
    pub battery_wh: u64,
    pub arrival_soc_permille: u32,
    pub ac_max_current_a: u32,
    pub ac_phases: u8,
    pub dc_max_kw: u32,
    pub token: String,
    pub token_kind: TokenKind,
    /// The car tells its needs (ISO 15118).
    pub iso15118: bool,
}

pub struct Plan {
    pub chargers: Vec<ChargerPlan>,
}

/// Tokens a scenario declares, as (uid, kind, group).
pub fn tokens(s: &Scenario) -> Vec<(String, TokenKind, Option<String>)> {
    let mut out = Vec::new();
    for g in &s.tokens {
        for n in 1..=g.count {
            out.push((format!("{}{n:04}", g.prefix), g.kind, g.group.clone()));
        }
    }
    out
}

impl Plan {
    pub fn new(s: &Scenario, seed: u64) -> Plan {
        let mut chargers = Vec::new();
        let mut index = 0u32;
        let mut slot = 0u32;
        let slots = s.chargers.iter().map(|g| g.count * g.connectors).sum();
        for g in &s.chargers {
            let width = g.count.to_string().len().max(2);
            for n in 1..=g.count {
                let mut rng = stream(seed, index as u64, 0);
                let protocol = match g.protocol {
                    ProtocolChoice::V16 => Protocol::V16,
                    ProtocolChoice::V201 => Protocol::V201,
                    ProtocolChoice::Mix if n % 2 == 1 => Protocol::V16,
                    ProtocolChoice::Mix => Protocol::V201,
                };
                let quirk = (rng.random_range(0..100) < s.misbehaviour.percent)
                    .then(|| s.misbehaviour.quirks[rng.random_range(0..s.misbehaviour.quirks.len())]);
                let meter_key = g.signed_meter.then(|| rng.random::<[u8; 32]>());
                chargers.push(ChargerPlan {
                    id: format!("{}-{n:0width$}", g.prefix),
                    index,
                    protocol,
                    connectors: g.connectors,
                    supply: g.supply,
                    phases: g.phases,
                    phase_rotation: g.phase_rotation.clone(),
                    circuit: g.circuit.clone(),
                    max_current_a: g.max_current,
                    max_power_kw: g.max_power_kw,
                    vendor: g.vendor.clone(),
                    model: g.model.clone(),
                    serial: format!("SN{:010}", rng.random_range(0..10_000_000_000u64)),
                    meter_interval_s: g.meter_interval_s,
                    limit_delay_s: g.limit_delay_s,
                    signed_meter: g.signed_meter,
                    meter_key,
                    quirk,
                    external_limit: g.external_limit.clone(),
                    first_slot: slot,
                    slots,
                    visit_seed: rng.random(),
                });
                index += 1;
                slot += g.connectors;
            }
        }
        Plan { chargers }
    }
}

/// A visit stream per connector: the n-th call gives the n-th visit.
pub struct Visits {
    rng: ChaCha8Rng,
    first: bool,
    tokens: Vec<(String, TokenKind)>,
    unknown_percent: u32,
    cars: Vec<CarModel>,
    arrivals: super::scenario::Arrivals,
    dc: bool,
}

impl Visits {
    pub fn new(s: &Scenario, charger: &ChargerPlan, connector: u32) -> Visits {
        let all: Vec<(String, TokenKind)> = tokens(s).into_iter().map(|(uid, kind, _)| (uid, kind)).collect();
        let slot = (charger.first_slot + connector - 1) as usize;
        let slots = charger.slots.max(1) as usize;
        // Each connector draws from its own share of the drivers; with
        // fewer drivers than connectors some share one card.
        let tokens = if all.len() >= slots {
            all.iter().skip(slot).step_by(slots).cloned().collect()
        } else if all.is_empty() {
            all
        } else {
            vec![all[slot % all.len()].clone()]
        };
        Visits {
            rng: stream(charger.visit_seed, connector as u64, 1),
            first: true,
            tokens,
            unknown_percent: s.arrivals.unknown_token_percent,
            cars: s.cars.clone(),
            arrivals: s.arrivals.clone(),
            dc: charger.supply == Supply::Dc,
        }
    }

    pub fn next_visit(&mut self) -> Visit {
        let r = &mut self.rng;
        let a = &self.arrivals;
        let wait_s = if self.first {
            self.first = false;
            r.random_range(0..=a.first_within_s)
        } else {
            r.random_range(a.gap_s[0]..=a.gap_s[1])
        };
        let dwell_s = r.random_range(a.dwell_s[0]..=a.dwell_s[1]).max(1);
        // DC sites only see cars that can fast-charge.
        let fleet: Vec<&CarModel> = self.cars.iter().filter(|c| !self.dc || c.dc_max_kw > 0).collect();
        let fleet = if fleet.is_empty() {
            self.cars.iter().collect()
        } else {
            fleet
        };
        let total: u32 = fleet.iter().map(|c| c.weight).sum();
        let mut pick = r.random_range(0..total.max(1));
        let car = fleet
            .iter()
            .find(|c| {
                if pick < c.weight {
                    true
                } else {
                    pick -= c.weight;
                    false
                }
            })
            .copied()
            .unwrap_or(fleet[0]);
        let soc = r.random_range(a.soc_percent[0]..=a.soc_percent[1]) * 10;
        let unknown = r.random_range(0..100) < self.unknown_percent;
        let (token, token_kind) = if unknown || self.tokens.is_empty() {
            (format!("UNKNOWN{:08X}", r.random::<u32>()), TokenKind::Rfid)
        } else {
            self.tokens[r.random_range(0..self.tokens.len())].clone()
        };
        Visit {
            wait_s,
            dwell_s,
            car: car.name.clone(),
            battery_wh: car.battery_kwh as u64 * 1000,
            arrival_soc_permille: soc,
            ac_max_current_a: car.ac_max_current,
            ac_phases: car.ac_phases,
            dc_max_kw: car.dc_max_kw,
            token,
            token_kind,
            iso15118: car.iso15118,
        }
    }
}

/// Independent, reproducible streams: ChaCha's stream id separates the
/// chargers (and their connectors) drawn from one seed.
fn stream(seed: u64, id: u64, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(id);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_visits(seed: u64) -> Vec<Visit> {
        let s = Scenario::load("demo").unwrap();
        let plan = Plan::new(&s, seed);
        plan.chargers
            .iter()
            .flat_map(|c| {
                let mut v = Visits::new(&s, c, 1);
                [v.next_visit(), v.next_visit()]
            })
            .collect()
    }

    #[test]
    fn same_seed_same_site_and_visits_other_seed_other_visits() {
        assert_eq!(first_visits(7), first_visits(7));
        assert_ne!(first_visits(7), first_visits(8));
        let s = Scenario::load("demo").unwrap();
        let a = Plan::new(&s, 7);
        let b = Plan::new(&s, 7);
        let keys = |p: &Plan| p.chargers.iter().map(|c| c.meter_key).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a.chargers.len(), 12);
    }

    #[test]
    fn mix_alternates_protocols_and_ids_are_padded() {
        let s = Scenario::generic(4, ProtocolChoice::Mix, 1);
        let p = Plan::new(&s, 1);
        let ids: Vec<_> = p.chargers.iter().map(|c| (c.id.as_str(), c.protocol)).collect();
        assert_eq!(
            ids,
            [
                ("SIM-01", Protocol::V16),
                ("SIM-02", Protocol::V201),
                ("SIM-03", Protocol::V16),
                ("SIM-04", Protocol::V201)
            ]
        );
    }

    #[test]
    fn visits_respect_the_scenario_ranges() {
        let s = Scenario::load("demo").unwrap();
        let p = Plan::new(&s, 3);
        let mut v = Visits::new(&s, &p.chargers[0], 1);
        for _ in 0..200 {
            let x = v.next_visit();
            assert!((60..=240).contains(&x.dwell_s));
            assert!((200..=900).contains(&x.arrival_soc_permille));
        }
    }
}
