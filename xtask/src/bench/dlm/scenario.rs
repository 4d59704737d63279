//! The deterministic scenario generator: a circuit tree, chargers, the day's
//! sessions (cars), the building's unmanaged load, hourly prices, a
//! grid-signal cap event and site-meter dropouts. Everything comes from one
//! seed; the two site classes share the same cars and differ only in their
//! fuses.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Volts per phase, for energy and power.
pub const VOLTS: f64 = 230.0;
/// IEC 61851: a car pauses when offered less than this.
pub const MIN_CURRENT: f64 = 6.0;
/// A "sleepy" car paused this long (while it still wants energy) never resumes.
pub const SLEEP_AFTER_S: u32 = 900;
/// A charger's meter value reaches the CSMS this long after it was sampled.
pub const METER_DELAY_S: u32 = 2;
/// The site (building) meter samples this often ...
pub const SITE_METER_INTERVAL_S: u32 = 5;
/// ... and a status change (plug-in, unplug) arrives this long after it happened.
pub const STATUS_DELAY_S: u32 = 1;
/// The periodic controller tick of ours and of the equal-share baseline, and
/// the tick the "correct controller" of the reaction windows is assumed to have.
pub const TICK_S: u32 = 5;
/// Taper starts at this fraction of the energy to full.
const TAPER_FROM: f64 = 0.8;
/// At full, the car accepts this fraction of its maximum current.
const TAPER_END: f64 = 0.25;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteClass {
    /// Fuses close to the sum of typical demand.
    Ample,
    /// Fuses well below it.
    Tight,
}

impl SiteClass {
    pub fn name(self) -> &'static str {
        match self {
            SiteClass::Ample => "ample",
            SiteClass::Tight => "tight",
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub class: SiteClass,
    pub chargers: usize,
    /// Simulated horizon, hours of the day (UTC), e.g. 6.0 .. 20.0.
    pub start_h: f64,
    pub end_h: f64,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    /// Parents always come before their children.
    pub parent: Option<usize>,
    /// A per grid phase.
    pub cap: f64,
    /// Has a meter for its unmanaged load (only the root, the site meter).
    pub metered: bool,
}

#[derive(Clone, Debug)]
pub struct Charger {
    pub id: String,
    pub node: usize,
    pub phases: u8,
    /// 0: L1L2L3, 1: L2L3L1, 2: L3L1L2. Charger phase j is grid phase (rotation + j) % 3.
    pub rotation: usize,
    pub max_current: f64,
    /// Seconds from a limit being sent until it is in force.
    pub delay_s: u32,
    /// Never applies a limit (keeps its own maximum).
    pub ignores: bool,
    pub meter_interval_s: u32,
    pub meter_offset_s: u32,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub charger: usize,
    /// Seconds from the horizon's start; present during [arrival, departure).
    pub arrival: u32,
    pub departure: u32,
    pub car_phases: u8,
    pub car_max: f64,
    /// min(car max, charger max): the most the car draws per phase.
    pub cap_current: f64,
    /// Phases it draws on: min(car phases, charger phases).
    pub eff_phases: u8,
    /// Energy until the battery is full (taper is relative to this).
    pub to_full_wh: f64,
    /// What it can take by departure on an unconstrained site (≤ to_full_wh).
    pub need_wh: f64,
    /// Never resumes after a pause of SLEEP_AFTER_S.
    pub sleepy: bool,
    /// The driver told departure time and energy target (app users).
    pub tells: bool,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub class: SiteClass,
    pub start: DateTime<Utc>,
    pub horizon_s: u32,
    pub nodes: Vec<Node>,
    pub chargers: Vec<Charger>,
    /// Sorted by arrival.
    pub sessions: Vec<Session>,
    /// The root's unmanaged load, piecewise constant: (from second, A per grid phase).
    /// The first entry is at 0.
    pub unmanaged: Vec<(u32, [f64; 3])>,
    /// The root's cap is multiplied by `factor` during [start, end).
    pub cap_event: Option<CapEvent>,
    /// The site meter is silent during [start, end).
    pub dropouts: Vec<(u32, u32)>,
    /// Hourly day-ahead prices, EUR/kWh, for the 24 hours of the day.
    pub prices: Vec<f64>,
    /// Seconds of the day at which the horizon starts.
    pub day_offset_s: u32,
    /// Per charger: its node and that node's ancestors, up to the root.
    pub chain: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, Debug)]
pub struct CapEvent {
    pub start: u32,
    pub end: u32,
    pub factor: f64,
}

impl Session {
    /// Grid phases (0..3) the car draws on when the charger offers `limit_phases`.
    pub fn grid_phases(&self, charger: &Charger, limit_phases: u8) -> impl Iterator<Item = usize> + use<> {
        let n = self.eff_phases.min(limit_phases.max(1)) as usize;
        let rot = charger.rotation;
        (0..n).map(move |j| (rot + j) % 3)
    }

    /// The current per phase the car accepts after `delivered_wh` (taper near full).
    pub fn accepts(&self, delivered_wh: f64) -> f64 {
        accepts(self.cap_current, self.to_full_wh, delivered_wh)
    }
}

pub fn accepts(cap: f64, to_full_wh: f64, delivered_wh: f64) -> f64 {
    if delivered_wh >= to_full_wh {
        return 0.0;
    }
    let f = delivered_wh / to_full_wh;
    if f < TAPER_FROM {
        cap
    } else {
        cap * (1.0 - (1.0 - TAPER_END) * (f - TAPER_FROM) / (1.0 - TAPER_FROM))
    }
}

/// Energy a car takes in `stay_s` seconds at whatever it accepts (no site limit).
fn achievable(cap: f64, phases: u8, to_full_wh: f64, stay_s: u32) -> f64 {
    let wh_per_s = |a: f64| a * phases as f64 * VOLTS / 3600.0;
    // Constant current until the taper, in closed form; then second by second.
    let flat_wh = TAPER_FROM * to_full_wh;
    let flat_s = (flat_wh / wh_per_s(cap)).floor() as u32;
    if flat_s >= stay_s {
        return wh_per_s(cap) * stay_s as f64;
    }
    let mut e = wh_per_s(cap) * flat_s as f64;
    for _ in flat_s..stay_s {
        let a = accepts(cap, to_full_wh, e);
        if a <= 0.0 {
            break;
        }
        e = (e + wh_per_s(a)).min(to_full_wh);
    }
    e
}

fn day_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// A normal variate (Box–Muller), clamped.
fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
    let u1: f64 = rng.random_range(1e-9..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + sd * z).clamp(lo, hi)
}

/// A session on the whole day, seconds of the day.
struct DaySession {
    charger: usize,
    arrival: u32,
    departure: u32,
    car_phases: u8,
    car_max: f64,
    to_full_wh: f64,
    sleepy: bool,
    tells: bool,
}

pub fn generate(spec: &Spec) -> Scenario {
    let n = spec.chargers.max(1);
    // The same cars and chargers for both site classes: only the fuses differ.
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));

    // The tree: grid → boards (→ sub-boards for big sites) → chargers.
    let mut nodes = vec![Node {
        id: "grid".into(),
        parent: None,
        cap: 0.0,
        metered: true,
    }];
    let add_boards = |nodes: &mut Vec<Node>, boards: usize| -> Vec<usize> {
        (0..boards)
            .map(|b| {
                nodes.push(Node {
                    id: format!("B{:02}", b + 1),
                    parent: Some(0),
                    cap: 0.0,
                    metered: false,
                });
                nodes.len() - 1
            })
            .collect()
    };
    let leaves: Vec<usize> = if n <= 200 {
        add_boards(&mut nodes, if n < 20 { 2 } else { n.div_ceil(16) })
    } else {
        let subs = n.div_ceil(50);
        let boards = (subs as f64).sqrt().ceil() as usize;
        let board_ids = add_boards(&mut nodes, boards);
        (0..subs)
            .map(|s| {
                let b = s * boards / subs;
                nodes.push(Node {
                    id: format!("{}-S{:02}", nodes[board_ids[b]].id, s + 1),
                    parent: Some(board_ids[b]),
                    cap: 0.0,
                    metered: false,
                });
                nodes.len() - 1
            })
            .collect()
    };

    let mut chargers = Vec::with_capacity(n);
    for i in 0..n {
        let node = leaves[i * leaves.len() / n];
        let kind: f64 = rng.random();
        let (phases, max_current) = if kind < 0.5 {
            (3, 32.0)
        } else if kind < 0.85 {
            (3, 16.0)
        } else {
            (1, 32.0)
        };
        let meter_interval_s = [10, 15, 30, 60][rng.random_range(0..4)];
        chargers.push(Charger {
            id: format!("CP{:05}", i + 1),
            node,
            phases,
            rotation: rng.random_range(0..3),
            max_current,
            delay_s: rng.random_range(2..=30),
            ignores: rng.random::<f64>() < 0.03,
            meter_interval_s,
            meter_offset_s: rng.random_range(0..meter_interval_s),
        });
    }

    // Sessions over the whole day, workplace-like.
    let h = |x: f64| (x * 3600.0) as u32;
    let mut day = Vec::new();
    for (c, _) in chargers.iter().enumerate() {
        let car = |rng: &mut ChaCha8Rng, arrival: u32, departure: u32, to_full_wh: f64| {
            let k: f64 = rng.random();
            let (car_phases, car_max) = if k < 0.6 {
                (3, 16.0)
            } else if k < 0.7 {
                (3, 32.0)
            } else if k < 0.85 {
                (1, 16.0)
            } else {
                (1, 32.0)
            };
            DaySession {
                charger: c,
                arrival,
                departure,
                car_phases,
                car_max,
                to_full_wh,
                sleepy: rng.random::<f64>() < 0.05,
                tells: rng.random::<f64>() < 0.6,
            }
        };
        if rng.random::<f64>() < 0.75 {
            // A commuter: arrives 7–10 h, leaves 16–18 h, 5–40 kWh to full.
            let arrival = h(normal(&mut rng, 8.3, 0.7, 6.5, 10.5));
            let departure = h(normal(&mut rng, 17.0, 0.6, 15.5, 19.5));
            let e = 5000.0 + 35000.0 * (rng.random::<f64>() + rng.random::<f64>()) / 2.0;
            let s = car(&mut rng, arrival, departure, e);
            day.push(s);
        } else {
            // Short visits between 9 and 18 h.
            let mut at = h(rng.random_range(9.0..11.0));
            for _ in 0..rng.random_range(1..=3) {
                let stay = rng.random_range(1800..9000);
                if at + stay > h(18.5) {
                    break;
                }
                let e = rng.random_range(5000.0..20000.0);
                let s = car(&mut rng, at, at + stay, e);
                day.push(s);
                at += stay + rng.random_range(600..5400);
            }
        }
    }

    // The building: a base load per phase with imbalance, a random walk, and
    // sudden steps (one phase or all three) of 5–30 minutes.
    let base = 10.0 + 0.5 * n as f64;
    let imbalance = [1.25, 1.0, 0.8];
    let mut changes: Vec<u32> = Vec::new();
    let mut walk_at = Vec::new();
    let mut t = 0;
    let mut level = 1.0;
    while t < 86_400 {
        walk_at.push((t, level));
        changes.push(t);
        t += rng.random_range(60..300);
        level = (level + rng.random_range(-0.08..0.08_f64)).clamp(0.7, 1.3);
    }
    let steps: Vec<(u32, u32, Option<usize>, f64)> = (0..6)
        .map(|_| {
            let s = h(rng.random_range(7.0..18.0));
            let len = rng.random_range(300..1800);
            let phase = (rng.random::<f64>() < 0.7).then(|| rng.random_range(0..3));
            (s, s + len, phase, base * rng.random_range(0.3..0.6))
        })
        .collect();
    for &(s, e, _, _) in &steps {
        changes.push(s);
        changes.push(e);
    }
    for hour in [7, 19] {
        changes.push(h(hour as f64));
    }
    changes.sort_unstable();
    changes.dedup();
    let building = |t: u32| -> [f64; 3] {
        let w = walk_at.partition_point(|&(at, _)| at <= t).saturating_sub(1);
        let daytime = (h(7.0)..h(19.0)).contains(&t);
        let b = base * walk_at[w].1 * if daytime { 1.0 } else { 0.4 };
        let mut out = [0.0; 3];
        for (p, o) in out.iter_mut().enumerate() {
            *o = b * imbalance[p];
        }
        for &(s, e, phase, amps) in &steps {
            if (s..e).contains(&t) {
                match phase {
                    Some(p) => out[p] += amps,
                    None => out.iter_mut().for_each(|o| *o += amps * 0.6),
                }
            }
        }
        out.map(|a| (a * 10.0).round() / 10.0)
    };

    // Fuses, per node and phase, from how the cars would draw with no
    // limit at all (each at its maximum while present until it has its
    // energy, minute by minute): the peak of that draw, and the mean
    // current over a 9-hour working day that the day's energy needs.
    // Ample: the grid connection at 85 % of the peak plus the typical
    // building load, boards at their peak. Tight: the grid connection at
    // 70 % of the mean plus the building, boards at 70 % of their peak.
    let mut chain: Vec<Vec<usize>> = Vec::with_capacity(n);
    for c in &chargers {
        let mut v = vec![c.node];
        while let Some(p) = nodes[*v.last().expect("non-empty")].parent {
            v.push(p);
        }
        chain.push(v);
    }
    let mut peak = vec![0.0_f64; nodes.len()];
    let mut mean = vec![[0.0_f64; 3]; nodes.len()];
    let mut got = vec![0.0_f64; day.len()];
    for minute in 0..1440u32 {
        let t = minute * 60;
        let mut load = vec![[0.0_f64; 3]; nodes.len()];
        for (k, s) in day.iter().enumerate() {
            if !(s.arrival..s.departure).contains(&t) || got[k] >= s.to_full_wh {
                continue;
            }
            let ch = &chargers[s.charger];
            let eff = s.car_phases.min(ch.phases) as usize;
            let a = s.car_max.min(ch.max_current);
            got[k] += a * eff as f64 * VOLTS / 60.0;
            for &nd in &chain[s.charger] {
                for j in 0..eff {
                    load[nd][(ch.rotation + j) % 3] += a;
                    mean[nd][(ch.rotation + j) % 3] += a / (9.0 * 60.0);
                }
            }
        }
        for (p, l) in peak.iter_mut().zip(&load) {
            *p = p.max(l.iter().copied().fold(0.0, f64::max));
        }
    }
    let building_typical = base * imbalance[0];
    for (i, node) in nodes.iter_mut().enumerate() {
        let mean_max = mean[i].iter().copied().fold(0.0, f64::max);
        let cap = match (spec.class, i) {
            (SiteClass::Ample, 0) => 0.85 * peak[0] + building_typical,
            (SiteClass::Tight, 0) => 0.7 * mean_max + building_typical,
            (SiteClass::Ample, _) => peak[i],
            (SiteClass::Tight, _) => 0.7 * peak[i],
        };
        node.cap = cap.round().max(32.0);
    }

    // The horizon.
    let start_s = h(spec.start_h);
    let end_s = h(spec.end_h).max(start_s + 60);
    let horizon_s = end_s - start_s;
    let mut sessions: Vec<Session> = day
        .iter()
        .filter(|s| s.departure > start_s && s.arrival < end_s)
        .enumerate()
        .map(|(k, s)| {
            let ch = &chargers[s.charger];
            let arrival = s.arrival.saturating_sub(start_s);
            let departure = s.departure.min(end_s) - start_s;
            let eff_phases = s.car_phases.min(ch.phases);
            let cap_current = s.car_max.min(ch.max_current);
            Session {
                id: format!("S{:05}", k + 1),
                charger: s.charger,
                arrival,
                departure,
                car_phases: s.car_phases,
                car_max: s.car_max,
                cap_current,
                eff_phases,
                to_full_wh: s.to_full_wh,
                need_wh: achievable(cap_current, eff_phases, s.to_full_wh, departure - arrival),
                sleepy: s.sleepy,
                tells: s.tells,
            }
        })
        .collect();
    sessions.sort_by_key(|s| (s.arrival, s.charger));

    let mut unmanaged = vec![(0, building(start_s))];
    for &c in changes.iter().filter(|&&c| c > start_s && c < end_s) {
        let v = building(c);
        if unmanaged.last().is_some_and(|(_, last)| *last != v) {
            unmanaged.push((c - start_s, v));
        }
    }

    // One grid-signal cap event (root at 60 % for an hour) and meter dropouts.
    let long = horizon_s >= 8 * 3600;
    let cap_event = Some(if long {
        let s = h(rng.random_range(11.0..16.0)).clamp(start_s, end_s - 3600) - start_s;
        CapEvent {
            start: s,
            end: s + 3600,
            factor: 0.6,
        }
    } else {
        let s = horizon_s / 2;
        CapEvent {
            start: s,
            end: s + (horizon_s / 4).min(3600),
            factor: 0.6,
        }
    });
    let dropouts = (0..if long { 2 } else { 1 })
        .map(|_| {
            let s = rng.random_range(horizon_s / 10..horizon_s * 9 / 10);
            (s, (s + rng.random_range(180..600)).min(horizon_s))
        })
        .collect();

    // Day-ahead prices: cheap at night, a morning and an evening peak, a
    // midday solar dip, noise.
    let prices = (0..24)
        .map(|hr| {
            let x = hr as f64;
            let morning = 0.08 * (-(x - 8.0).powi(2) / 4.0).exp();
            let evening = 0.12 * (-(x - 19.0).powi(2) / 4.0).exp();
            let solar = -0.07 * (-(x - 13.0).powi(2) / 6.0).exp();
            let p: f64 = 0.18 + morning + evening + solar + rng.random_range(-0.015..0.015);
            (p * 10_000.0).round() / 10_000.0
        })
        .collect();

    Scenario {
        name: format!("{}-{n}", spec.class.name()),
        class: spec.class,
        start: day_start() + Duration::seconds(start_s as i64),
        horizon_s,
        nodes,
        chargers,
        sessions,
        unmanaged,
        cap_event,
        dropouts,
        prices,
        day_offset_s: start_s,
        chain,
    }
}

impl Scenario {
    /// Price (EUR/kWh) at second `t` of the horizon.
    pub fn price_at(&self, t: u32) -> f64 {
        let hr = ((self.day_offset_s + t) / 3600) as usize;
        self.prices[hr.min(23)]
    }

    /// The root's cap at second `t`.
    pub fn cap_at(&self, node: usize, t: u32) -> f64 {
        let c = self.nodes[node].cap;
        match self.cap_event {
            Some(e) if node == 0 && (e.start..e.end).contains(&t) => (c * e.factor).round(),
            _ => c,
        }
    }

    pub fn in_dropout(&self, t: u32) -> bool {
        self.dropouts.iter().any(|&(s, e)| (s..e).contains(&t))
    }

    /// Total need of all sessions, Wh.
    pub fn need_wh(&self) -> f64 {
        self.sessions.iter().map(|s| s.need_wh).sum()
    }

    /// Per node: the longest apply delay of the compliant chargers under it.
    pub fn max_delay(&self) -> Vec<u32> {
        let mut out = vec![0; self.nodes.len()];
        for (c, ch) in self.chargers.iter().enumerate() {
            if !ch.ignores {
                for &nd in &self.chain[c] {
                    out[nd] = out[nd].max(ch.delay_s);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(class: SiteClass, n: usize) -> Spec {
        Spec {
            class,
            chargers: n,
            start_h: 6.0,
            end_h: 20.0,
            seed: 7,
        }
    }

    #[test]
    fn deterministic_and_classes_share_cars() {
        let a = generate(&spec(SiteClass::Ample, 40));
        let b = generate(&spec(SiteClass::Ample, 40));
        let t = generate(&spec(SiteClass::Tight, 40));
        assert_eq!(a.sessions.len(), b.sessions.len());
        assert_eq!(a.unmanaged, b.unmanaged);
        assert_eq!(a.sessions.len(), t.sessions.len());
        assert!(t.nodes[0].cap < a.nodes[0].cap);
        assert!(
            a.sessions
                .iter()
                .all(|s| s.need_wh <= s.to_full_wh + 1e-6 && s.need_wh > 0.0)
        );
    }

    #[test]
    fn big_sites_have_three_levels() {
        let s = generate(&Spec {
            start_h: 6.0,
            end_h: 7.0,
            ..spec(SiteClass::Tight, 1000)
        });
        assert!(s.chain.iter().all(|c| c.len() == 3));
        assert_eq!(s.chargers.len(), 1000);
    }

    #[test]
    fn taper_and_achievable() {
        assert_eq!(accepts(16.0, 10_000.0, 0.0), 16.0);
        assert!((accepts(16.0, 10_000.0, 9_999.0) - 4.0).abs() < 0.1);
        assert_eq!(accepts(16.0, 10_000.0, 10_000.0), 0.0);
        // 16 A × 3 × 230 V = 11.04 kW; one hour is 11.04 kWh, under the taper.
        assert!((achievable(16.0, 3, 40_000.0, 3600) - 11_040.0).abs() < 1.0);
        assert!(achievable(16.0, 3, 5_000.0, 36_000) > 4_990.0);
    }
}
