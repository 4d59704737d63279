//! The figures of one run: violations (raw and preventable), utilisation of
//! the feasible capacity, energy, cost, satisfied sessions, fairness.

use super::physics::Physics;
use super::scenario::{METER_DELAY_S, SITE_METER_INTERVAL_S, STATUS_DELAY_S, Scenario, TICK_S};

/// Seconds at which a node's load may exceed its cap without the controller
/// being at fault: from a step it could not foresee until the first moment
/// a correct controller could have had its answer in force.
pub struct Excused {
    /// Per node, per second of the horizon.
    pub by_node: Vec<Vec<bool>>,
    /// Chargers that ignore limits.
    pub ignorers: Vec<usize>,
}

impl Excused {
    pub fn new(sc: &Scenario) -> Excused {
        let h = sc.horizon_s;
        let mut by_node = vec![vec![false; h as usize]; sc.nodes.len()];
        let delay = sc.max_delay();
        let mut mark = |node: usize, from: u32, to: u32| {
            let row = &mut by_node[node];
            for s in from.min(h)..to.min(h) {
                row[s as usize] = true;
            }
        };
        // The first site-meter sample at or after `t` that is not lost in a
        // dropout reaches the controller METER_DELAY_S later.
        let seen = |t: u32| -> u32 {
            let mut s = t.div_ceil(SITE_METER_INTERVAL_S) * SITE_METER_INTERVAL_S;
            while sc.in_dropout(s) && s < h {
                s += SITE_METER_INTERVAL_S;
            }
            s + METER_DELAY_S
        };
        // Reaction: seen, then up to one tick until the controller runs,
        // then the slowest compliant charger under the node, plus a second
        // for the step itself.
        let react = |seen: u32, node: usize| seen + TICK_S + delay[node] + 1;
        // Unmanaged-load steps (root).
        for w in sc.unmanaged.windows(2) {
            let at = w[1].0;
            mark(0, at, react(seen(at), 0));
        }
        // Dropout starts: the controller sees the meter go silent at the
        // next sample.
        for &(s, _) in &sc.dropouts {
            let sample = s.div_ceil(SITE_METER_INTERVAL_S) * SITE_METER_INTERVAL_S + METER_DELAY_S;
            mark(0, s, react(sample, 0));
        }
        // The grid signal: the controller is called at once.
        if let Some(e) = sc.cap_event {
            mark(0, e.start, e.start + delay[0] + 1);
        }
        // A car plugged into a charger that ignores limits: its draw is
        // known at the charger's first meter value.
        for s in &sc.sessions {
            let c = &sc.chargers[s.charger];
            if !c.ignores {
                continue;
            }
            let iv = c.meter_interval_s;
            let first = (s.arrival + c.meter_offset_s).div_ceil(iv) * iv - c.meter_offset_s;
            let seen = first.max(s.arrival + STATUS_DELAY_S) + METER_DELAY_S;
            for &nd in &sc.chain[s.charger] {
                mark(nd, s.arrival, react(seen, nd));
            }
        }
        let ignorers = (0..sc.chargers.len()).filter(|&c| sc.chargers[c].ignores).collect();
        Excused { by_node, ignorers }
    }

    /// Share of node-seconds excused (for the report).
    pub fn share(&self) -> f64 {
        let total: usize = self.by_node.iter().map(Vec::len).sum();
        let excused: usize = self.by_node.iter().map(|r| r.iter().filter(|&&b| b).count()).sum();
        if total == 0 { 0.0 } else { excused as f64 / total as f64 }
    }
}

/// Accumulates the per-second figures.
pub struct Accum {
    /// Per node and grid phase: A·s above the cap.
    pub raw: Vec<[f64; 3]>,
    pub preventable: Vec<[f64; 3]>,
    /// Seconds with some node-phase above its cap.
    pub raw_seconds: u64,
    pub preventable_seconds: u64,
    /// Worst excess seen, A.
    pub worst_a: f64,
    pub used: f64,
    pub feasible: f64,
    pub cost_eur: f64,
    pub energy_wh: f64,
    /// The first preventable episodes (a node-phase above its cap outside
    /// the reaction windows, consecutive seconds), for diagnosis.
    pub episodes: Vec<Episode>,
    open: Vec<[Option<usize>; 3]>,
    feas: Vec<[f64; 3]>,
    floor: Vec<[f64; 3]>,
}

/// Consecutive seconds of preventable excess at one node and phase.
#[derive(Clone, Debug)]
pub struct Episode {
    pub node: usize,
    pub phase: usize,
    pub start: u32,
    pub seconds: u32,
    pub max_a: f64,
    pub a_s: f64,
}

const EPISODES_KEPT: usize = 30;

impl Accum {
    pub fn new(nodes: usize) -> Accum {
        Accum {
            raw: vec![[0.0; 3]; nodes],
            preventable: vec![[0.0; 3]; nodes],
            raw_seconds: 0,
            preventable_seconds: 0,
            worst_a: 0.0,
            used: 0.0,
            feasible: 0.0,
            cost_eur: 0.0,
            energy_wh: 0.0,
            episodes: Vec::new(),
            open: vec![[None; 3]; nodes],
            feas: vec![[0.0; 3]; nodes],
            floor: vec![[0.0; 3]; nodes],
        }
    }

    /// Violations of second `t`: `load`, `cap` and `floor` (the load no
    /// controller can remove: unmanaged load and chargers that ignore
    /// limits) per node, `excused(node)`.
    pub fn violations(
        &mut self,
        t: u32,
        load: &[[f64; 3]],
        cap: &[f64],
        floor: &[[f64; 3]],
        excused: impl Fn(usize) -> bool,
    ) {
        let (mut any, mut prev) = (false, false);
        for (nd, (l, &c)) in load.iter().zip(cap).enumerate() {
            let ex = excused(nd);
            for p in 0..3 {
                let over = l[p] - c;
                if over > 1e-6 {
                    any = true;
                    self.raw[nd][p] += over;
                    self.worst_a = self.worst_a.max(over);
                    let avoidable = l[p] - c.max(floor[nd][p]);
                    if !ex && avoidable > 1e-6 {
                        prev = true;
                        self.preventable[nd][p] += avoidable;
                        self.episode(nd, p, t, avoidable);
                        continue;
                    }
                }
                self.open[nd][p] = None;
            }
        }
        self.raw_seconds += any as u64;
        self.preventable_seconds += prev as u64;
    }

    fn episode(&mut self, node: usize, phase: usize, t: u32, over: f64) {
        match self.open[node][phase] {
            Some(i) if self.episodes[i].start + self.episodes[i].seconds == t => {
                let e = &mut self.episodes[i];
                e.seconds += 1;
                e.max_a = e.max_a.max(over);
                e.a_s += over;
            }
            _ if self.episodes.len() < EPISODES_KEPT => {
                self.episodes.push(Episode {
                    node,
                    phase,
                    start: t,
                    seconds: 1,
                    max_a: over,
                    a_s: over,
                });
                self.open[node][phase] = Some(self.episodes.len() - 1);
            }
            _ => self.open[node][phase] = None,
        }
    }

    /// Everything of one simulated second.
    pub fn second(&mut self, ph: &Physics, t: u32, excused: &Excused) {
        let sc = ph.sc;
        for f in self.floor.iter_mut() {
            *f = [0.0; 3];
        }
        self.floor[0] = ph.unmanaged;
        for &c in &excused.ignorers {
            if ph.draw[c] > 0.0
                && let Some(s) = ph.active[c]
            {
                let sess = &sc.sessions[s];
                for p in sess.grid_phases(&sc.chargers[c], 3) {
                    for &nd in &sc.chain[c] {
                        self.floor[nd][p] += ph.draw[c];
                    }
                }
            }
        }
        let floor = std::mem::take(&mut self.floor);
        self.violations(t, &ph.load, &ph.cap, &floor, |nd| excused.by_node[nd][t as usize]);
        self.floor = floor;
        self.energy_wh += ph.energy_wh;
        self.cost_eur += ph.energy_wh / 1000.0 * sc.price_at(t);
        // Feasible charging per node and phase, bottom-up: what the cars
        // present would take now (what they accept; asleep ones nothing),
        // capped by each node's headroom. Parents come before children.
        for f in self.feas.iter_mut() {
            *f = [0.0; 3];
        }
        for (c, ch) in sc.chargers.iter().enumerate() {
            let Some(s) = ph.active[c] else { continue };
            if ph.asleep[s] {
                continue;
            }
            let sess = &sc.sessions[s];
            let a = sess.accepts(ph.delivered[s]);
            for p in sess.grid_phases(ch, 3) {
                self.feas[ch.node][p] += a;
            }
        }
        for nd in (0..sc.nodes.len()).rev() {
            let mut head = [ph.cap[nd]; 3];
            if nd == 0 {
                for (h, u) in head.iter_mut().zip(ph.unmanaged) {
                    *h = (*h - u).max(0.0);
                }
            }
            let f = self.feas[nd];
            let capped = [f[0].min(head[0]), f[1].min(head[1]), f[2].min(head[2])];
            self.feas[nd] = capped;
            if let Some(parent) = sc.nodes[nd].parent {
                for (f, c) in self.feas[parent].iter_mut().zip(capped) {
                    *f += c;
                }
            }
        }
        for p in 0..3 {
            self.feasible += self.feas[0][p];
            self.used += ph.charging[0][p].min(self.feas[0][p]);
        }
    }

    pub fn raw_total(&self) -> f64 {
        self.raw.iter().flatten().sum()
    }

    pub fn preventable_total(&self) -> f64 {
        self.preventable.iter().flatten().sum()
    }

    pub fn utilisation(&self) -> f64 {
        if self.feasible > 0.0 {
            self.used / self.feasible
        } else {
            1.0
        }
    }
}

/// Jain's fairness index: (Σx)² / (n Σx²); 1 when all are equal.
pub fn jain(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let sum: f64 = xs.iter().sum();
    let sq: f64 = xs.iter().map(|x| x * x).sum();
    if sq == 0.0 { 1.0 } else { sum * sum / (n * sq) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_of_equal_values_is_one() {
        assert!((jain(&[0.7, 0.7, 0.7, 0.7]) - 1.0).abs() < 1e-12);
        // One of n gets everything: 1/n.
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn violations_count_ampere_seconds() {
        // Two nodes; second 1: node 0 L1 is 5 A over, node 1 L3 2.5 A over;
        // second 2: node 0 L1 3 A over but excused, L2 exactly at the cap.
        let mut acc = Accum::new(2);
        let cap = [100.0, 40.0];
        let floor = [[0.0; 3]; 2];
        acc.violations(1, &[[105.0, 90.0, 0.0], [10.0, 20.0, 42.5]], &cap, &floor, |_| false);
        acc.violations(2, &[[103.0, 100.0, 0.0], [10.0, 20.0, 30.0]], &cap, &floor, |nd| {
            nd == 0
        });
        assert_eq!(acc.raw[0], [8.0, 0.0, 0.0]);
        assert_eq!(acc.raw[1], [0.0, 0.0, 2.5]);
        assert_eq!(acc.preventable[0], [5.0, 0.0, 0.0]);
        assert_eq!(acc.raw_total(), 10.5);
        assert_eq!(acc.preventable_total(), 7.5);
        assert_eq!((acc.raw_seconds, acc.preventable_seconds), (2, 1));
        assert_eq!(acc.worst_a, 5.0);
        assert_eq!(acc.episodes.len(), 2);
        assert_eq!((acc.episodes[0].start, acc.episodes[0].seconds), (1, 1));
        // Unmanaged load alone 4 A above the cap: only the rest is preventable.
        let mut acc = Accum::new(1);
        acc.violations(1, &[[110.0, 0.0, 0.0]], &[100.0], &[[104.0, 0.0, 0.0]], |_| false);
        assert_eq!((acc.raw_total(), acc.preventable_total()), (10.0, 6.0));
    }
}
