//! The numeric core: admission at minimum current and max-min fair water-filling on a tree of
//! per-phase (and optional total-power) constraints.
//!
//! Every node has four constraint dimensions: grid phases L1, L2, L3 and their sum (the power cap
//! divided by the phase voltage). A demand loads each dimension with a weight: 1 on each grid phase
//! it draws from, and the number of those phases on the sum.

pub(crate) const DIMS: usize = 4;
const EPS: f64 = 1e-9;

/// Weights of a demand that draws the same current on the grid phases set in `mask`.
pub(crate) fn weights(mask: [bool; 3]) -> [f64; DIMS] {
    let mut w = [0.0; DIMS];
    for p in 0..3 {
        if mask[p] {
            w[p] = 1.0;
            w[3] += 1.0;
        }
    }
    w
}

/// A per-phase load as a vector of the four dimensions.
pub(crate) fn load_vector(per_phase: [f64; 3]) -> [f64; DIMS] {
    [
        per_phase[0],
        per_phase[1],
        per_phase[2],
        per_phase[0] + per_phase[1] + per_phase[2],
    ]
}

/// One session competing for current.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    pub node: usize,
    pub w: [f64; DIMS],
    pub lo: f64,
    pub hi: f64,
    /// How fast the demand rises with the water level (> 0): at level λ it is offered
    /// clamp(λ × share, lo, hi). Equal shares are max-min fair in amperes; shares in proportion to
    /// what each session needs give every session the same fraction of its need.
    pub share: f64,
}

/// The tree with capacities and the load placed on it so far (each node: its whole subtree).
#[derive(Debug)]
pub(crate) struct Net<'a> {
    pub parent: &'a [Option<usize>],
    pub order: &'a [usize],
    pub cap: Vec<[f64; DIMS]>,
    pub load: Vec<[f64; DIMS]>,
}

impl Net<'_> {
    /// Adds `amount` × `w` to `node` and all its ancestors.
    pub fn add(&mut self, node: usize, w: &[f64; DIMS], amount: f64) {
        let mut cur = Some(node);
        while let Some(n) = cur {
            for d in 0..DIMS {
                self.load[n][d] += w[d] * amount;
            }
            cur = self.parent[n];
        }
    }

    /// Whether `amount` × `w` more fits at `node` and all its ancestors.
    pub fn fits(&self, node: usize, w: &[f64; DIMS], amount: f64) -> bool {
        let mut cur = Some(node);
        while let Some(n) = cur {
            for d in 0..DIMS {
                if w[d] > 0.0 && self.load[n][d] + w[d] * amount > self.cap[n][d] + EPS {
                    return false;
                }
            }
            cur = self.parent[n];
        }
        true
    }

    /// Whether every demand fits at its `lo` together (nothing is added to the load).
    pub fn all_fit(&self, demands: &[Demand]) -> bool {
        let mut load = self.load.clone();
        for d in demands {
            if d.hi + EPS < d.lo {
                return false;
            }
            let mut cur = Some(d.node);
            while let Some(n) = cur {
                for dim in 0..DIMS {
                    load[n][dim] += d.w[dim] * d.lo;
                    if d.w[dim] > 0.0 && load[n][dim] > self.cap[n][dim] + EPS {
                        return false;
                    }
                }
                cur = self.parent[n];
            }
        }
        true
    }

    /// Greedy admission of one tier (`order`: its demands, in admission order): each demand is
    /// admitted at its `lo` when that fits everywhere on its path. When not all of them fit (some
    /// must pause anyway), each demand takes `max(lo, reserve)` where that fits (else `lo` where
    /// that fits), so the ones admitted first keep room to rise to their reserve (their fluid
    /// share) instead of every later one taking its minimum out of it. Admitted amounts are left in
    /// the load: reserves stay held
    /// while lower tiers are admitted (a lower tier must not take the room a higher one was
    /// paused for), and [`Net::release`] gives them back before the water-filling.
    pub fn admit(
        &mut self,
        demands: &[Demand],
        order: &[usize],
        reserve: &[f64],
        admitted: &mut [bool],
        held: &mut [bool],
    ) {
        let mut all = true;
        for &i in order {
            let d = &demands[i];
            admitted[i] = d.hi + EPS >= d.lo && self.fits(d.node, &d.w, d.lo);
            if admitted[i] {
                self.add(d.node, &d.w, d.lo);
            } else {
                all = false;
            }
        }
        if all {
            return;
        }
        for &i in order {
            let d = &demands[i];
            if admitted[i] {
                self.add(d.node, &d.w, -d.lo);
            }
        }
        for &i in order {
            let d = &demands[i];
            admitted[i] = false;
            if d.hi + EPS < d.lo {
                continue;
            }
            // One that should charge all the time but has no room for its share still charges at
            // its minimum where that fits.
            let amount = [reserve[i].max(d.lo), d.lo]
                .into_iter()
                .find(|&a| self.fits(d.node, &d.w, a));
            if let Some(a) = amount {
                self.add(d.node, &d.w, a);
                admitted[i] = true;
                held[i] = a > d.lo;
            }
        }
    }

    /// Gives back what admitted demands hold above their `lo` (see [`Net::admit`]).
    pub fn release(&mut self, demands: &[Demand], reserve: &[f64], held: &[bool]) {
        for (i, d) in demands.iter().enumerate() {
            if held[i] {
                self.add(d.node, &d.w, d.lo - reserve[i]);
            }
        }
    }

    /// Max-min fair water-filling of `members` (admitted, their `lo` already in the load) from
    /// their `lo` up to their `hi`. Writes each member's share into `alloc` and leaves the shares
    /// in the load.
    ///
    /// One pass is bottom-up: each node freezes the demands under it at the water level where one
    /// of its constraints binds, then hands its demands to its parent; the result is always feasible
    /// (ancestors only lower). With several phases a node cannot know that an ancestor will freeze
    /// some of its demands (e.g. 3-phase ones on a busy L2) and leave room for others (on L1), so
    /// later passes solve each node with the levels its ancestors bound at in the previous pass.
    /// A pass that comes out infeasible is repaired by one plain pass under its shares as ceilings
    /// (feasible by construction); passes stop when nothing changes (at most `passes`, plus the
    /// repair).
    pub fn fill(&mut self, demands: &[Demand], members: &[usize], alloc: &mut [f64], passes: usize, fw: &mut FillWork) {
        if members.is_empty() {
            return;
        }
        let nodes = self.parent.len();
        for &i in members {
            let d = &demands[i];
            self.add(d.node, &d.w, -d.lo);
        }
        fw.up.clear();
        fw.up.resize(demands.len(), 0.0);
        fw.lam_prev.clear();
        fw.lam_prev.resize(nodes, [f64::INFINITY; DIMS]);
        fw.anc.clear();
        fw.anc.resize(nodes, [f64::INFINITY; DIMS]);
        fw.at.iter_mut().for_each(Vec::clear);
        fw.at.resize_with(nodes.max(fw.at.len()), Vec::new);
        let mut have_best = false;
        // Set when a pass came out infeasible: one plain pass under these ceilings repairs it.
        let mut repair = false;
        for pass in 0..passes.max(1) {
            let plain = pass == 0 || repair;
            let anc = &mut fw.anc;
            if plain {
                anc.iter_mut().for_each(|a| *a = [f64::INFINITY; DIMS]);
            } else {
                for &n in self.order {
                    anc[n] = match self.parent[n] {
                        Some(p) => std::array::from_fn(|d| anc[p][d].min(fw.lam_prev[p][d])),
                        None => [f64::INFINITY; DIMS],
                    };
                }
            }
            fw.lam.clear();
            fw.lam.resize(nodes, [f64::INFINITY; DIMS]);
            for (k, &i) in members.iter().enumerate() {
                let d = &demands[i];
                let ceil = if repair { fw.result[k] } else { f64::INFINITY };
                fw.up[i] = d.hi.min(ceil).max(d.lo);
                fw.at[d.node].push(i);
            }
            for &n in self.order.iter().rev() {
                if fw.at[n].is_empty() {
                    continue;
                }
                let items = std::mem::take(&mut fw.at[n]);
                self.solve_node(
                    n,
                    &items,
                    demands,
                    &mut fw.up,
                    &fw.anc[n],
                    &mut fw.lam[n],
                    &mut fw.scratch,
                );
                match self.parent[n] {
                    Some(p) => {
                        fw.at[p].extend_from_slice(&items);
                        // Keep the buffer for the next pass.
                        let mut items = items;
                        items.clear();
                        fw.at[n] = items;
                    }
                    None => {
                        let mut items = items;
                        items.clear();
                        fw.at[n] = items;
                    }
                }
            }
            fw.result.clear();
            fw.result.extend(members.iter().map(|&i| fw.up[i]));
            if repair {
                // A plain pass is feasible by construction.
                std::mem::swap(&mut fw.best, &mut fw.result);
                break;
            }
            if have_best {
                if !self.feasible(demands, members, &fw.result) {
                    repair = true;
                    continue;
                }
                let same = fw.best.iter().zip(&fw.result).all(|(a, b)| (a - b).abs() <= EPS);
                std::mem::swap(&mut fw.best, &mut fw.result);
                if same {
                    break;
                }
            } else {
                std::mem::swap(&mut fw.best, &mut fw.result);
                have_best = true;
            }
            std::mem::swap(&mut fw.lam_prev, &mut fw.lam);
        }
        for (k, &i) in members.iter().enumerate() {
            alloc[i] = fw.best[k];
        }
        for &i in members {
            let d = &demands[i];
            self.add(d.node, &d.w, alloc[i]);
        }
    }

    /// Whether `shares` of `members` on top of the current load respect every constraint.
    fn feasible(&self, demands: &[Demand], members: &[usize], shares: &[f64]) -> bool {
        let mut load = self.load.clone();
        for (k, &i) in members.iter().enumerate() {
            let d = &demands[i];
            let mut cur = Some(d.node);
            while let Some(n) = cur {
                for dim in 0..DIMS {
                    load[n][dim] += d.w[dim] * shares[k];
                }
                cur = self.parent[n];
            }
        }
        (0..load.len()).all(|n| (0..DIMS).all(|d| load[n][d] <= self.cap[n][d] + 1e-7 || load[n][d] <= self.load[n][d]))
    }

    #[allow(clippy::too_many_arguments)]
    fn solve_node(
        &self,
        n: usize,
        items: &[usize],
        demands: &[Demand],
        up: &mut [f64],
        anc: &[f64; DIMS],
        lam: &mut [f64; DIMS],
        s: &mut Scratch,
    ) {
        let cap = self.cap[n];
        let base = self.load[n];
        // Each item's ceiling here: its own, lowered by where its ancestors bound last pass.
        s.eff.clear();
        for &i in items {
            let d = &demands[i];
            let mut c = up[i];
            for dim in 0..DIMS {
                if d.w[dim] > 0.0 {
                    c = c.min(d.share * anc[dim]);
                }
            }
            s.eff.push(c.max(d.lo));
        }
        // Dimensions that can bind at all.
        let mut live = [false; DIMS];
        let mut any = false;
        for d in 0..DIMS {
            if !cap[d].is_finite() {
                continue;
            }
            let most: f64 = items.iter().enumerate().map(|(k, &i)| demands[i].w[d] * s.eff[k]).sum();
            if base[d] + most > cap[d] + EPS {
                live[d] = true;
                any = true;
            }
        }
        if !any {
            return;
        }
        // One sweep over the breakpoints, upwards: Σ w·clamp(L·share, lo, eff) is piecewise linear
        // in the water level L on every dimension; the first live dimension to reach its room binds
        // at that level and freezes the demands loading it, which then stop rising everywhere.
        s.pts.clear();
        s.slope.clear();
        s.state.clear();
        let mut f = [0.0; DIMS];
        for (k, &i) in items.iter().enumerate() {
            let d = &demands[i];
            for dim in 0..DIMS {
                f[dim] += d.w[dim] * d.lo;
            }
            s.slope.push(d.w.map(|w| w * d.share));
            s.state.push(if s.eff[k] > d.lo { State::Below } else { State::Fixed });
            if s.eff[k] > d.lo {
                s.pts.push((total_order(d.lo / d.share), (k as u32) << 1));
                s.pts.push((total_order(s.eff[k] / d.share), ((k as u32) << 1) | 1));
            }
        }
        s.pts.sort_unstable();
        let room: [f64; DIMS] = std::array::from_fn(|d| cap[d] - base[d]);
        let mut slope = [0.0; DIMS];
        let mut cur = f64::NEG_INFINITY;
        let mut next = 0;
        loop {
            let v = s.pts.get(next).map_or(f64::INFINITY, |p| from_total_order(p.0));
            // The live dimension that reaches its room first, before the next breakpoint.
            let mut bind: Option<(f64, usize)> = None;
            for d in 0..DIMS {
                if !live[d] {
                    continue;
                }
                let l = if f[d] > room[d] + EPS {
                    cur
                } else if slope[d] > 0.0 && v.is_finite() && f[d] + slope[d] * (v - cur) >= room[d] {
                    cur + (room[d] - f[d]) / slope[d]
                } else {
                    continue;
                };
                if bind.is_none_or(|(b, _)| l < b) {
                    bind = Some((l, d));
                }
            }
            if let Some((l, dim)) = bind {
                advance(&mut f, &slope, &mut cur, l);
                live[dim] = false;
                lam[dim] = l;
                for (k, &i) in items.iter().enumerate() {
                    let d = &demands[i];
                    if s.state[k] == State::Frozen || d.w[dim] == 0.0 {
                        continue;
                    }
                    if s.state[k] == State::Rising {
                        for e in 0..DIMS {
                            slope[e] -= s.slope[k][e];
                        }
                    }
                    s.state[k] = State::Frozen;
                    s.eff[k] = s.eff[k].min(d.share * l).max(d.lo);
                    up[i] = up[i].min(d.share * l).max(d.lo);
                }
                if !live.contains(&true) {
                    return;
                }
                continue;
            }
            let Some(&(_, tag)) = s.pts.get(next) else { return };
            next += 1;
            advance(&mut f, &slope, &mut cur, v);
            let k = (tag >> 1) as usize;
            let upper = tag & 1 == 1;
            match (s.state[k], upper) {
                (State::Below, false) => {
                    s.state[k] = State::Rising;
                    for e in 0..DIMS {
                        slope[e] += s.slope[k][e];
                    }
                }
                (State::Rising, true) => {
                    s.state[k] = State::Fixed;
                    for e in 0..DIMS {
                        slope[e] -= s.slope[k][e];
                    }
                }
                _ => {}
            }
        }
    }
}

/// Moves the sweep from `cur` up to `to` (from −∞ nothing rises yet: every slope is 0).
fn advance(f: &mut [f64; DIMS], slope: &[f64; DIMS], cur: &mut f64, to: f64) {
    if to > *cur {
        for d in 0..DIMS {
            if slope[d] != 0.0 {
                f[d] += slope[d] * (to - *cur);
            }
        }
        *cur = to;
    }
}

/// Where a demand stands in the sweep of one node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// At its `lo`, below its first breakpoint.
    Below,
    /// Rising with the water level.
    Rising,
    /// At its ceiling (or never able to rise).
    Fixed,
    /// Stopped by a constraint of this node.
    Frozen,
}

/// A key whose integer order is `f64::total_cmp`'s order.
fn total_order(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// The inverse of [`total_order`].
fn from_total_order(key: i64) -> f64 {
    f64::from_bits((key ^ ((((key >> 63) as u64) >> 1) as i64)) as u64)
}

/// Buffers of [`Net::fill`], kept from call to call.
#[derive(Debug, Clone, Default)]
pub(crate) struct FillWork {
    up: Vec<f64>,
    lam: Vec<[f64; DIMS]>,
    lam_prev: Vec<[f64; DIMS]>,
    anc: Vec<[f64; DIMS]>,
    /// Per node, the demands below it during the bottom-up sweep.
    at: Vec<Vec<usize>>,
    result: Vec<f64>,
    best: Vec<f64>,
    scratch: Scratch,
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Breakpoints: (`total_order` of the level, item index << 1 | 1 for an upper one).
    pts: Vec<(i64, u32)>,
    /// Each item's slope (w × share) per dimension while it rises.
    slope: Vec<[f64; DIMS]>,
    state: Vec<State>,
    eff: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::total_order;

    #[test]
    fn total_order_keys_sort_like_total_cmp() {
        let xs = [
            3.5,
            -0.0,
            0.0,
            -2.0,
            f64::INFINITY,
            1e-300,
            f64::NEG_INFINITY,
            6.0,
            f64::NAN,
            -f64::NAN,
            2.0,
        ];
        let mut by_cmp = xs.to_vec();
        by_cmp.sort_by(f64::total_cmp);
        let mut by_key = xs.to_vec();
        by_key.sort_by_key(|x| total_order(*x));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&by_key), bits(&by_cmp));
    }
}
