//! The site, second by second: which cars are plugged in, the limit in force
//! at each charger (a limit sent at t is in force from t + the charger's
//! delay, never for a charger that ignores limits), what each car draws
//! (min(limit, what it accepts), taper near full, paused below 6 A, some
//! cars never resume after a long pause), and the true load of every node
//! on every grid phase.

use super::scenario::{MIN_CURRENT, SLEEP_AFTER_S, Scenario, VOLTS};
use std::collections::VecDeque;

/// A limit at a charger: A per phase (0 = paused) and phases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Offer {
    pub current: f64,
    pub phases: u8,
}

pub struct Physics<'a> {
    pub sc: &'a Scenario,
    /// The limit in force at each charger.
    pub in_force: Vec<Offer>,
    pending: Vec<VecDeque<(u32, Offer)>>,
    /// The session plugged in at each charger.
    pub active: Vec<Option<usize>>,
    /// Per session: energy delivered so far, Wh.
    pub delivered: Vec<f64>,
    paused_since: Vec<Option<u32>>,
    /// Per session: a sleepy car that stopped for good.
    pub asleep: Vec<bool>,
    /// Per charger: A drawn on each of its grid phases this second.
    pub draw: Vec<f64>,
    /// Per charger: the number of phases drawn on this second.
    pub draw_phases: Vec<u8>,
    /// Per node and grid phase: the true load this second (chargers + unmanaged).
    pub load: Vec<[f64; 3]>,
    /// Per node and grid phase: the chargers' part of `load`.
    pub charging: Vec<[f64; 3]>,
    /// The root's unmanaged load this second.
    pub unmanaged: [f64; 3],
    /// Per node: its cap this second.
    pub cap: Vec<f64>,
    /// Charging energy this second, Wh.
    pub energy_wh: f64,
    next_arrival: usize,
    by_departure: Vec<usize>,
    next_departure: usize,
    um: usize,
}

/// What happened at a second, for the observer.
#[derive(Default)]
pub struct Events {
    pub arrived: Vec<usize>,
    pub departed: Vec<usize>,
    pub cap_changed: bool,
}

impl<'a> Physics<'a> {
    pub fn new(sc: &'a Scenario) -> Physics<'a> {
        let mut by_departure: Vec<usize> = (0..sc.sessions.len()).collect();
        by_departure.sort_by_key(|&s| sc.sessions[s].departure);
        let n = sc.chargers.len();
        Physics {
            sc,
            // Before any profile, a charger offers its own maximum.
            in_force: sc
                .chargers
                .iter()
                .map(|c| Offer {
                    current: c.max_current,
                    phases: c.phases,
                })
                .collect(),
            pending: vec![VecDeque::new(); n],
            active: vec![None; n],
            delivered: vec![0.0; sc.sessions.len()],
            paused_since: vec![None; sc.sessions.len()],
            asleep: vec![false; sc.sessions.len()],
            draw: vec![0.0; n],
            draw_phases: vec![0; n],
            load: vec![[0.0; 3]; sc.nodes.len()],
            charging: vec![[0.0; 3]; sc.nodes.len()],
            unmanaged: sc.unmanaged[0].1,
            cap: sc.nodes.iter().map(|nd| nd.cap).collect(),
            energy_wh: 0.0,
            next_arrival: 0,
            by_departure,
            next_departure: 0,
            um: 0,
        }
    }

    /// A limit sent at second `t`.
    pub fn command(&mut self, charger: usize, offer: Offer, t: u32) {
        let c = &self.sc.chargers[charger];
        if c.ignores {
            return;
        }
        self.pending[charger].push_back((t + c.delay_s, offer));
    }

    /// Advance to second `t` (called for t = 0, 1, 2, ... in order) and
    /// compute what flows during [t, t + 1).
    pub fn step(&mut self, t: u32, ev: &mut Events) {
        let sc = self.sc;
        ev.arrived.clear();
        ev.departed.clear();
        ev.cap_changed = false;
        while let Some(&s) = self.by_departure.get(self.next_departure) {
            if sc.sessions[s].departure > t {
                break;
            }
            self.next_departure += 1;
            let c = sc.sessions[s].charger;
            if self.active[c] == Some(s) {
                self.active[c] = None;
            }
            ev.departed.push(s);
        }
        while let Some(s) = sc.sessions.get(self.next_arrival) {
            if s.arrival > t {
                break;
            }
            self.active[s.charger] = Some(self.next_arrival);
            ev.arrived.push(self.next_arrival);
            self.next_arrival += 1;
        }
        for (c, q) in self.pending.iter_mut().enumerate() {
            while q.front().is_some_and(|&(at, _)| at <= t) {
                let (_, offer) = q.pop_front().expect("front exists");
                self.in_force[c] = offer;
            }
        }
        while sc.unmanaged.get(self.um + 1).is_some_and(|&(at, _)| at <= t) {
            self.um += 1;
        }
        self.unmanaged = sc.unmanaged[self.um].1;
        let root_cap = sc.cap_at(0, t);
        ev.cap_changed = root_cap != self.cap[0];
        self.cap[0] = root_cap;

        for l in self.charging.iter_mut() {
            *l = [0.0; 3];
        }
        self.energy_wh = 0.0;
        for c in 0..sc.chargers.len() {
            self.draw[c] = 0.0;
            self.draw_phases[c] = 0;
            let Some(s) = self.active[c] else { continue };
            let sess = &sc.sessions[s];
            let offer = self.in_force[c];
            let wants = sess.accepts(self.delivered[s]);
            if offer.current < MIN_CURRENT {
                // Paused by the charger. A sleepy car that still wanted
                // energy and stays paused long enough never wakes up.
                if wants > 0.0 {
                    let since = *self.paused_since[s].get_or_insert(t);
                    if sess.sleepy && t - since >= SLEEP_AFTER_S {
                        self.asleep[s] = true;
                    }
                }
                continue;
            }
            self.paused_since[s] = None;
            if self.asleep[s] || wants <= 0.0 {
                continue;
            }
            let a = wants.min(offer.current);
            let ch = &sc.chargers[c];
            let mut phases = 0;
            for p in sess.grid_phases(ch, offer.phases) {
                phases += 1;
                for &nd in &sc.chain[c] {
                    self.charging[nd][p] += a;
                }
            }
            self.draw[c] = a;
            self.draw_phases[c] = phases;
            let wh = a * phases as f64 * VOLTS / 3600.0;
            self.delivered[s] = (self.delivered[s] + wh).min(sess.to_full_wh);
            self.energy_wh += wh;
        }
        for (nd, (load, charging)) in self.load.iter_mut().zip(&self.charging).enumerate() {
            *load = *charging;
            if nd == 0 {
                for (l, u) in load.iter_mut().zip(self.unmanaged) {
                    *l += u;
                }
            }
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::bench::dlm::scenario::{Charger, Node, Session, SiteClass, accepts};
    use chrono::Utc;

    /// One node (cap 100 A), `chargers` 3-phase 32 A chargers with the given
    /// delays (`None`: ignores limits), each with a 3-phase 32 A car from 0
    /// to `horizon`, 40 kWh to full.
    pub fn tiny(delays: &[Option<u32>], horizon: u32) -> Scenario {
        let chargers: Vec<Charger> = delays
            .iter()
            .enumerate()
            .map(|(i, d)| Charger {
                id: format!("CP{i}"),
                node: 0,
                phases: 3,
                rotation: 0,
                max_current: 32.0,
                delay_s: d.unwrap_or(5),
                ignores: d.is_none(),
                meter_interval_s: 10,
                meter_offset_s: 0,
            })
            .collect();
        let sessions = (0..delays.len())
            .map(|i| Session {
                id: format!("S{i}"),
                charger: i,
                arrival: 0,
                departure: horizon,
                car_phases: 3,
                car_max: 32.0,
                cap_current: 32.0,
                eff_phases: 3,
                to_full_wh: 40_000.0,
                need_wh: 40_000.0,
                sleepy: false,
                tells: true,
            })
            .collect();
        Scenario {
            name: "tiny".into(),
            class: SiteClass::Tight,
            start: Utc::now(),
            horizon_s: horizon,
            nodes: vec![Node {
                id: "grid".into(),
                parent: None,
                cap: 100.0,
                metered: true,
            }],
            chain: vec![vec![0]; delays.len()],
            chargers,
            sessions,
            unmanaged: vec![(0, [0.0; 3])],
            cap_event: None,
            dropouts: vec![],
            prices: vec![0.2; 24],
            day_offset_s: 0,
        }
    }

    #[test]
    fn limit_applies_after_the_delay() {
        let sc = tiny(&[Some(3)], 20);
        let mut ph = Physics::new(&sc);
        let mut ev = Events::default();
        ph.step(0, &mut ev);
        assert_eq!(ev.arrived, vec![0]);
        assert_eq!(ph.draw[0], 32.0);
        ph.command(
            0,
            Offer {
                current: 10.0,
                phases: 3,
            },
            0,
        );
        for t in 1..3 {
            ph.step(t, &mut ev);
            assert_eq!(ph.draw[0], 32.0, "t = {t}");
        }
        ph.step(3, &mut ev);
        assert_eq!(ph.draw[0], 10.0);
        assert_eq!(ph.load[0], [10.0; 3]);
        // Below 6 A the car pauses.
        ph.command(
            0,
            Offer {
                current: 5.0,
                phases: 3,
            },
            3,
        );
        for t in 4..7 {
            ph.step(t, &mut ev);
        }
        assert_eq!(ph.draw[0], 0.0);
        assert_eq!(ph.load[0], [0.0; 3]);
    }

    #[test]
    fn an_ignoring_charger_keeps_drawing() {
        let sc = tiny(&[None], 60);
        let mut ph = Physics::new(&sc);
        let mut ev = Events::default();
        ph.step(0, &mut ev);
        ph.command(
            0,
            Offer {
                current: 0.0,
                phases: 3,
            },
            0,
        );
        for t in 1..60 {
            ph.step(t, &mut ev);
            assert_eq!(ph.draw[0], 32.0);
        }
        // 60 s at 32 A × 3 × 230 V.
        assert!((ph.delivered[0] - 32.0 * 3.0 * 230.0 / 60.0).abs() < 1e-6);
    }

    #[test]
    fn single_phase_car_on_rotated_charger() {
        let mut sc = tiny(&[Some(2)], 10);
        sc.chargers[0].rotation = 1;
        sc.sessions[0].eff_phases = 1;
        sc.sessions[0].car_phases = 1;
        let mut ph = Physics::new(&sc);
        let mut ev = Events::default();
        ph.step(0, &mut ev);
        assert_eq!(ph.load[0], [0.0, 32.0, 0.0]);
        assert_eq!(accepts(32.0, 40_000.0, 0.0), 32.0);
    }
}
