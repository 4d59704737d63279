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
    [per_phase[0], per_phase[1], per_phase[2], per_phase[0] + per_phase[1] + per_phase[2]]
}

/// One session competing for current.
#[derive(Debug, Clone)]
pub(crate) struct Demand {
    pub node: usize,
    pub w: [f64; DIMS],
    pub lo: f64,
    pub hi: f64,
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

    /// Greedy admission in the given order: a demand is admitted at its `lo` when that fits
    /// everywhere on its path. Admitted minimums are added to the load.
    pub fn admit(&mut self, demands: &[Demand], order: &[usize]) -> Vec<bool> {
        let mut admitted = vec![false; demands.len()];
        for &i in order {
            let d = &demands[i];
            if d.hi + EPS >= d.lo && self.fits(d.node, &d.w, d.lo) {
                self.add(d.node, &d.w, d.lo);
                admitted[i] = true;
            }
        }
        admitted
    }

    /// Max-min fair water-filling of `members` (admitted, their `lo` already in the load) from
    /// their `lo` up to their `hi`. Writes each member's share into `alloc` and leaves the shares
    /// in the load. Bottom-up: each node freezes the demands under it at the water level where one
    /// of its constraints binds, then hands its demands to its parent.
    pub fn fill(&mut self, demands: &[Demand], members: &[usize], alloc: &mut [f64]) {
        if members.is_empty() {
            return;
        }
        let mut at: Vec<Vec<usize>> = vec![Vec::new(); self.parent.len()];
        for &i in members {
            let d = &demands[i];
            self.add(d.node, &d.w, -d.lo);
            alloc[i] = d.hi.max(d.lo);
            at[d.node].push(i);
        }
        let mut scratch = Scratch::default();
        for &n in self.order.iter().rev() {
            if at[n].is_empty() {
                continue;
            }
            let items = std::mem::take(&mut at[n]);
            self.solve_node(n, &items, demands, alloc, &mut scratch);
            match self.parent[n] {
                Some(p) => {
                    if at[p].is_empty() {
                        at[p] = items;
                    } else {
                        at[p].extend_from_slice(&items);
                    }
                }
                None => {}
            }
        }
        for &i in members {
            let d = &demands[i];
            self.add(d.node, &d.w, alloc[i]);
        }
    }

    fn solve_node(&self, n: usize, items: &[usize], demands: &[Demand], up: &mut [f64], s: &mut Scratch) {
        let cap = self.cap[n];
        let base = self.load[n];
        // Dimensions that can bind at all.
        let mut live = [false; DIMS];
        let mut any = false;
        for d in 0..DIMS {
            if !cap[d].is_finite() {
                continue;
            }
            let most: f64 = items.iter().map(|&i| demands[i].w[d] * up[i]).sum();
            if base[d] + most > cap[d] + EPS {
                live[d] = true;
                any = true;
            }
        }
        if !any {
            return;
        }
        s.pts.clear();
        for (k, &i) in items.iter().enumerate() {
            let d = &demands[i];
            if up[i] > d.lo {
                s.pts.push((d.lo, k as u32, false));
                s.pts.push((up[i], k as u32, true));
            }
        }
        s.pts.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        s.frozen.clear();
        s.frozen.resize(items.len(), false);
        let mut level = f64::NEG_INFINITY;
        loop {
            let mut best: Option<(f64, usize)> = None;
            for d in 0..DIMS {
                if !live[d] {
                    continue;
                }
                let l = self.level(d, cap[d] - base[d], level, items, demands, up, s);
                if best.is_none_or(|(b, _)| l < b) {
                    best = Some((l, d));
                }
            }
            let Some((l, dim)) = best else { break };
            if l == f64::INFINITY {
                break;
            }
            live[dim] = false;
            for (k, &i) in items.iter().enumerate() {
                let d = &demands[i];
                if !s.frozen[k] && d.w[dim] > 0.0 {
                    s.frozen[k] = true;
                    up[i] = up[i].min(l).max(d.lo);
                }
            }
            level = l;
        }
    }

    /// The highest water level `L >= from` at which Σ w·clamp(L, lo, up) over `items` stays within
    /// `room` on dimension `d` (frozen items count as fixed at their `up`).
    #[allow(clippy::too_many_arguments)]
    fn level(&self, d: usize, room: f64, from: f64, items: &[usize], demands: &[Demand], up: &[f64], s: &Scratch) -> f64 {
        let mut f = 0.0;
        let mut slope = 0.0;
        for (k, &i) in items.iter().enumerate() {
            let dm = &demands[i];
            let w = dm.w[d];
            if w == 0.0 {
                continue;
            }
            if s.frozen[k] {
                f += w * up[i];
            } else {
                f += w * from.max(dm.lo).min(up[i].max(dm.lo));
                if dm.lo <= from && from < up[i] {
                    slope += w;
                }
            }
        }
        if f > room + EPS {
            return from;
        }
        let start = s.pts.partition_point(|p| p.0 <= from);
        let mut cur = from;
        for &(v, k, upper) in &s.pts[start..] {
            let k = k as usize;
            let w = demands[items[k]].w[d];
            if w == 0.0 || s.frozen[k] {
                continue;
            }
            if slope > 0.0 {
                let fv = f + slope * (v - cur);
                if fv >= room {
                    return cur + (room - f) / slope;
                }
                f = fv;
            }
            cur = v;
            if upper {
                slope -= w;
            } else {
                slope += w;
            }
        }
        f64::INFINITY
    }
}

#[derive(Default)]
struct Scratch {
    pts: Vec<(f64, u32, bool)>,
    frozen: Vec<bool>,
}
