//! The offline optimum: a linear program with perfect knowledge of the
//! whole horizon, solved with good_lp's pure-Rust microlp.
//!
//! Variables: x[s][k] ≥ 0, session s's average current per phase in time
//! slot k, bounded by its maximum (min(car, charger)) times the share of the
//! slot it is plugged in. Constraints: for every node, grid phase and slot,
//! Σ x of the sessions under the node drawing on that phase + the slot's
//! mean unmanaged load ≤ the slot's mean cap; for every session, Σ energy ≤
//! its need. Averages over a slot relax the per-second limits, and taper,
//! the 6 A minimum and sleepy cars are left out, so the optimum is an upper
//! bound on what any controller can deliver without violations.

use super::scenario::{Scenario, VOLTS};
use anyhow::{Result, bail};
use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, microlp, variable};

pub struct Lp<'a> {
    sc: &'a Scenario,
    slot_s: u32,
    slots: usize,
    /// (session, slot, upper bound A).
    cells: Vec<(usize, usize, f64)>,
    /// Per slot: mean price EUR/kWh, mean headroom per node and phase.
    price: Vec<f64>,
    rhs: Vec<Vec<[f64; 3]>>,
}

pub struct Solved {
    pub energy_wh: f64,
    pub cost_eur: f64,
    pub variables: usize,
    pub constraints: usize,
    pub seconds: f64,
}

impl<'a> Lp<'a> {
    pub fn new(sc: &'a Scenario, slot_s: u32) -> Lp<'a> {
        let slots = sc.horizon_s.div_ceil(slot_s) as usize;
        let mut cells = Vec::new();
        for (i, s) in sc.sessions.iter().enumerate() {
            for k in (s.arrival / slot_s) as usize..slots {
                let (a, b) = (k as u32 * slot_s, ((k as u32 + 1) * slot_s).min(sc.horizon_s));
                let overlap = s.departure.min(b).saturating_sub(s.arrival.max(a));
                if overlap == 0 {
                    if a >= s.departure {
                        break;
                    }
                    continue;
                }
                cells.push((i, k, s.cap_current * overlap as f64 / slot_s as f64));
            }
        }
        let mut price = vec![0.0; slots];
        let mut rhs = vec![vec![[0.0; 3]; sc.nodes.len()]; slots];
        let mut um = 0;
        for k in 0..slots {
            let (a, b) = (k as u32 * slot_s, ((k as u32 + 1) * slot_s).min(sc.horizon_s));
            let len = (b - a) as f64;
            let mut cap = vec![0.0; sc.nodes.len()];
            let mut unmanaged = [0.0; 3];
            for t in a..b {
                price[k] += sc.price_at(t) / len;
                for (nd, c) in cap.iter_mut().enumerate() {
                    *c += sc.cap_at(nd, t) / len;
                }
                while sc.unmanaged.get(um + 1).is_some_and(|&(at, _)| at <= t) {
                    um += 1;
                }
                for (u, v) in unmanaged.iter_mut().zip(sc.unmanaged[um].1) {
                    *u += v / len;
                }
            }
            // A slot shorter than slot_s (the last) counts its share.
            let share = len / slot_s as f64;
            for (nd, c) in cap.iter().enumerate() {
                for p in 0..3 {
                    let u = if nd == 0 { unmanaged[p] } else { 0.0 };
                    rhs[k][nd][p] = (c - u).max(0.0) * share;
                }
            }
        }
        Lp {
            sc,
            slot_s,
            slots,
            cells,
            price,
            rhs,
        }
    }

    /// Wh per ampere of x for session `s` over one slot.
    fn wh_per_a(&self, s: usize) -> f64 {
        self.sc.sessions[s].eff_phases as f64 * VOLTS * self.slot_s as f64 / 3600.0
    }

    /// The most energy any schedule delivers.
    pub fn max_energy(&self) -> Result<Solved> {
        self.solve(None)
    }

    /// The cheapest schedule delivering at least `target_wh`.
    pub fn min_cost(&self, target_wh: f64) -> Result<Solved> {
        self.solve(Some(target_wh))
    }

    fn solve(&self, target_wh: Option<f64>) -> Result<Solved> {
        let started = std::time::Instant::now();
        let sc = self.sc;
        let mut pv = ProblemVariables::new();
        let x: Vec<Variable> = self
            .cells
            .iter()
            .map(|&(_, _, ub)| pv.add(variable().min(0.0).max(ub)))
            .collect();
        let mut energy = Expression::from(0.0);
        let mut cost = Expression::from(0.0);
        let mut per_session: Vec<Expression> = vec![Expression::from(0.0); sc.sessions.len()];
        let mut per_node: Vec<Vec<[Expression; 3]>> = (0..self.slots)
            .map(|_| {
                (0..sc.nodes.len())
                    .map(|_| std::array::from_fn(|_| Expression::from(0.0)))
                    .collect()
            })
            .collect();
        let mut used = vec![vec![[false; 3]; sc.nodes.len()]; self.slots];
        for (&(s, k, _), &v) in self.cells.iter().zip(&x) {
            let wh = self.wh_per_a(s);
            energy.add_mul(wh, v);
            cost.add_mul(wh / 1000.0 * self.price[k], v);
            per_session[s].add_mul(wh, v);
            let sess = &sc.sessions[s];
            let ch = &sc.chargers[sess.charger];
            for p in sess.grid_phases(ch, 3) {
                for &nd in &sc.chain[sess.charger] {
                    per_node[k][nd][p].add_mul(1.0, v);
                    used[k][nd][p] = true;
                }
            }
        }
        let mut constraints = Vec::new();
        for (s, e) in per_session.into_iter().enumerate() {
            constraints.push(e.leq(sc.sessions[s].need_wh));
        }
        for (k, nodes) in per_node.into_iter().enumerate() {
            for (nd, phases) in nodes.into_iter().enumerate() {
                for (p, e) in phases.into_iter().enumerate() {
                    if used[k][nd][p] {
                        constraints.push(e.leq(self.rhs[k][nd][p]));
                    }
                }
            }
        }
        let n_constraints = constraints.len() + target_wh.is_some() as usize;
        let solution = match target_wh {
            None => pv.maximise(energy.clone()).using(microlp).with_all(constraints).solve(),
            Some(t) => pv
                .minimise(cost.clone())
                .using(microlp)
                .with_all(constraints)
                .with(energy.clone().geq(t))
                .solve(),
        };
        let solution = match solution {
            Ok(s) => s,
            Err(e) => bail!("the LP of {} did not solve: {e}", sc.name),
        };
        Ok(Solved {
            energy_wh: solution.eval(&energy),
            cost_eur: solution.eval(&cost),
            variables: x.len(),
            constraints: n_constraints,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::dlm::physics::tests::tiny;

    #[test]
    fn one_node_two_cars() {
        // 40 A per phase for two 3-phase 32 A cars over an hour: the node is
        // the limit, 40 A × 3 × 230 V × 1 h = 27.6 kWh.
        let mut sc = tiny(&[Some(2), Some(2)], 3600);
        sc.nodes[0].cap = 40.0;
        let lp = Lp::new(&sc, 900);
        let best = lp.max_energy().unwrap();
        assert!((best.energy_wh - 27_600.0).abs() < 1.0, "{}", best.energy_wh);
        // Room for both: each car's own maximum, 2 × 32 A.
        sc.nodes[0].cap = 100.0;
        let best = Lp::new(&sc, 900).max_energy().unwrap();
        assert!((best.energy_wh - 44_160.0).abs() < 1.0, "{}", best.energy_wh);
    }

    #[test]
    fn cheapest_schedule_uses_the_cheap_hour() {
        let mut sc = tiny(&[Some(2), Some(2)], 7200);
        sc.nodes[0].cap = 40.0;
        sc.prices[0] = 0.10;
        sc.prices[1] = 0.30;
        let lp = Lp::new(&sc, 900);
        let cheap = lp.min_cost(27_600.0).unwrap();
        assert!((cheap.energy_wh - 27_600.0).abs() < 1.0);
        assert!((cheap.cost_eur - 2.76).abs() < 1e-3, "{}", cheap.cost_eur);
    }
}
