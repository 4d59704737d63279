//! The stateful controller: one [`Controller::step`] per site state, remembering what it sent.

use super::allocate::{DIMS, Demand, FillWork, Net, load_vector, weights};
use super::meters::{MeterMemo, unmanaged_as_used};
use super::model::{
    Allocation, ChargerState, CircuitState, DlmError, Limit, LimitState, NodeLoad, PriceSlot, SessionState, Settings,
    SiteState, Supply,
};
use super::tree;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::cmp::Reverse;
use std::collections::HashMap;

const EPS: f64 = 1e-6;
/// Water-filling passes (the first plain, then refined with the ancestors' levels).
const FILL_PASSES: usize = 5;
/// The smallest share a session gets (A): one that needs almost nothing still rises with the others
/// once every other need is met.
const MIN_SHARE: f64 = 0.1;
/// The most a session's urgency multiplies its weight by (see `urgency_share`).
const URGENCY_WEIGHT_MAX: f64 = 2.0;
/// A node with less than this left (A, any dimension) after a step was full: a session below it
/// is not deferred for price at the next step, since the capacity it would leave now is wanted now.
const FULL_WITHIN_A: f64 = 1.0;

/// What the controller remembers about one charger between steps.
#[derive(Debug, Clone)]
struct Memo {
    /// The limit last output (A per phase).
    limit: f64,
    /// When that limit was first output.
    set_at: DateTime<Utc>,
    /// The last change lowered the limit (or was the first one): until the apply delay has passed,
    /// the charger may still draw its measured current.
    pending_decrease: bool,
    last_increase: Option<DateTime<Utc>>,
    online: bool,
    non_compliant: bool,
    /// It was proven to draw over its limit once: a lower limit sent to it counts as followed only
    /// once a reading shows it in force (its apply delay says nothing about a charger that may
    /// ignore limits, and it may have looked compliant again only because its car drew little).
    ignored_once: bool,
    compliant_since: Option<DateTime<Utc>>,
    /// Fingerprint of the last reading seen (to tell a new reading from the same one again).
    reading: u64,
    /// Distinct readings in a row, after the apply delay of the limit in force, over that limit
    /// (the evidence used when readings carry no `measured_at`).
    over_readings: u8,
    /// The last limits output and when, newest first (`limit`, `set_at` is the first).
    history: LimitHistory,
    session: Option<SessionMemo>,
}

/// The last few limits sent to a charger, newest first: which of them can have been in force when
/// a reading was sampled.
#[derive(Debug, Clone, Copy, Default)]
struct LimitHistory {
    entries: [(i64, f64); 4],
    len: usize,
}

impl LimitHistory {
    fn push(&mut self, at: DateTime<Utc>, limit: f64) {
        self.entries.copy_within(0..3, 1);
        self.entries[0] = (at.timestamp_millis(), limit);
        self.len = (self.len + 1).min(4);
    }

    /// The highest limit that may have been in force at `at` with apply delay `delay_s`: a limit
    /// sent at t is in force from some moment in [t, t + delay]. `None` when `at` predates every
    /// limit remembered (the charger may then have offered anything).
    fn allowed_at(&self, at: DateTime<Utc>, delay_s: f64) -> Option<f64> {
        self.range_at(at, delay_s).map(|r| r.1)
    }

    /// The lowest and highest limits that may have been in force at `at` (see `allowed_at`).
    fn range_at(&self, at: DateTime<Utc>, delay_s: f64) -> Option<(f64, f64)> {
        let at = at.timestamp_millis();
        let delay = (delay_s * 1000.0).ceil() as i64;
        let mut range: Option<(f64, f64)> = None;
        let mut until = i64::MAX;
        for &(sent, limit) in &self.entries[..self.len] {
            if at >= sent && at < until {
                range = Some(range.map_or((limit, limit), |(lo, hi)| (lo.min(limit), hi.max(limit))));
            }
            if at >= sent.saturating_add(delay) {
                return range;
            }
            until = sent.saturating_add(delay);
        }
        None
    }

    /// The higher of the last two limits.
    fn recent_max(&self) -> f64 {
        self.entries[..self.len.min(2)].iter().map(|e| e.1).fold(0.0, f64::max)
    }

    /// The highest limit remembered.
    fn max(&self) -> f64 {
        self.entries[..self.len].iter().map(|e| e.1).fold(0.0, f64::max)
    }
}

/// What the controller learns about one session.
#[derive(Debug, Clone)]
struct SessionMemo {
    id: String,
    first_seen: DateTime<Utc>,
    charging_since: Option<DateTime<Utc>>,
    paused_since: Option<DateTime<Utc>>,
    candidate_phase: Option<usize>,
    candidate_count: u32,
    /// Charger phase (0-based) a single-phase car on a 3-phase charger draws from.
    single_phase: Option<usize>,
    underuse_since: Option<DateTime<Utc>>,
    reclaim_cap: Option<f64>,
    /// Since when the car draws nothing although offered at least its minimum.
    idle_since: Option<DateTime<Utc>>,
    /// Parked (limit 0, nothing reserved) since: the car took nothing for `reclaim_after_s`.
    parked_since: Option<DateTime<Utc>>,
    /// Offered current again after `park_retry_s`: lowest urgency until it draws.
    probing: bool,
    /// Deferred for price, but offered its minimum since (keeps the car awake).
    awake_since: Option<DateTime<Utc>>,
    /// The highest power (W, all phases) the car was seen to draw this session.
    seen_power_w: f64,
    /// Fluid share (A) of the last step: what it would get without the minimum current.
    fluid: f64,
    /// Service owed (A·s): Σ (fluid share − limit given) over time. Sessions whose fluid share is
    /// below their minimum take turns at the minimum, those owed most first.
    debt: f64,
    /// When `debt` was last brought up to date.
    debt_at: DateTime<Utc>,
}

impl SessionMemo {
    fn new(id: &str, now: DateTime<Utc>) -> Self {
        SessionMemo {
            id: id.to_string(),
            first_seen: now,
            charging_since: None,
            paused_since: None,
            candidate_phase: None,
            candidate_count: 0,
            single_phase: None,
            underuse_since: None,
            reclaim_cap: None,
            idle_since: None,
            parked_since: None,
            probing: false,
            awake_since: None,
            seen_power_w: 0.0,
            fluid: 0.0,
            debt: 0.0,
            debt_at: now,
        }
    }
}

/// What is learned about a session, for the live loop's status views.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInsight {
    /// Charger phase (0-based) of a single-phase car on a 3-phase charger, once learned.
    pub single_phase: Option<usize>,
    /// Allocation cap after reclaiming unused current.
    pub reclaim_cap: Option<f64>,
    pub non_compliant: bool,
}

/// Dynamic load management controller. Keep one per site for as long as the site is controlled:
/// it remembers the limits it gave, pause rotation, learned single-phase cars, reclaimed current
/// and compliance. A fresh controller is safe (it assumes chargers draw what they measure until
/// its first limits are applied) but relearns everything.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    settings: Settings,
    /// Charger ids of the last step, in input order, and what is remembered about each.
    ids: Vec<String>,
    memo: Vec<Option<Memo>>,
    /// Circuit ids of the last step, in input order, and which of them were full after it.
    circuit_ids: Vec<String>,
    full: Vec<bool>,
    /// Each circuit's recent unmanaged-load readings (same order as `circuit_ids`).
    meters: Vec<MeterMemo>,
    /// Each charger's place in the order of charger ids (last step's chargers, in input order).
    rank: Vec<u32>,
    /// Each charger's circuit position at the last step.
    charger_circuit: Vec<usize>,
    work: Work,
}

/// Per-demand buffers reused from step to step.
#[derive(Debug, Clone, Default)]
struct Work {
    demands: Vec<Demand>,
    owner: Vec<usize>,
    order: Vec<usize>,
    keys: Vec<(Reverse<i64>, u8, i64)>,
    tiers: Vec<(i64, usize)>,
    members: Vec<usize>,
    fluid: Vec<f64>,
    reserve: Vec<f64>,
    admitted: Vec<bool>,
    held: Vec<bool>,
    alloc: Vec<f64>,
    fill: FillWork,
}

/// How a charger takes part in this step.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Idle,
    Offline,
    NonCompliant,
    /// Waits for cheaper energy: held at 0.
    Deferred,
    /// The car takes nothing: held at 0 until `park_retry_s` has passed.
    Parked,
    /// Competes for current: index into the demands.
    Candidate(usize),
}

struct Prep {
    kind: Kind,
    /// Grid phases the session (or the charger, without one) loads.
    mask: [bool; 3],
    /// Measured draw per grid phase.
    grid: [f64; 3],
    /// What it may draw per grid phase while a lower limit is not applied yet: its measured draw,
    /// or the highest limit that may be in force when the reading predates that limit.
    pending_draw: [f64; 3],
    /// Fixed reservation per grid phase (offline, non-compliant).
    reserve: [f64; 3],
    tier: i64,
    lo: f64,
    hi: f64,
    /// Weight in the water-filling (A): the current it needs on average until departure, at most
    /// its ceiling; infinite when it did not say (no target or no departure).
    share: f64,
    /// Deferred for price; a candidate only while kept awake at its minimum.
    deferred: bool,
    /// Proven to ignore a limit once, and no reading shows its last limit in force yet.
    unconfirmed: bool,
    /// A session that did not say its need: the energy it got so far (kWh).
    untold_kwh: Option<f64>,
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Rounds down to 0.1 A (a hair of tolerance for binary fractions).
fn floor_tenth(v: f64) -> f64 {
    (v * 10.0 + 1e-6).floor() / 10.0
}

/// A node's usable capacity per dimension (L1, L2, L3, sum of phases): its limits less headroom.
fn capacity(c: &CircuitState, s: &Settings) -> [f64; DIMS] {
    let mut cap = [f64::INFINITY; DIMS];
    for p in 0..3 {
        let l = c.max_current[p];
        cap[p] = l - (l * s.headroom_fraction).max(s.headroom_min_a);
    }
    if let Some(w) = c.max_power_w {
        let a = w / s.volts;
        cap[3] = a - (a * s.headroom_fraction).max(3.0 * s.headroom_min_a);
    }
    cap
}

impl Controller {
    pub fn new(settings: Settings) -> Self {
        Controller {
            settings,
            ..Controller::default()
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What the controller has learned about the session on `charger`, if any.
    pub fn insight(&self, charger: &str) -> Option<SessionInsight> {
        let k = self.ids.iter().position(|id| id == charger)?;
        let m = self.memo.get(k)?.as_ref()?;
        let s = m.session.as_ref()?;
        Some(SessionInsight {
            single_phase: s.single_phase,
            reclaim_cap: s.reclaim_cap,
            non_compliant: m.non_compliant,
        })
    }

    /// Computes the limits for `state` and remembers them. An invalid state changes nothing.
    pub fn step(&mut self, state: &SiteState) -> Result<Allocation, DlmError> {
        self.settings.check()?;
        // Usually the same chargers come in the same order: then the memory lines up as it is.
        let aligned =
            self.ids.len() == state.chargers.len() && self.ids.iter().zip(&state.chargers).all(|(a, c)| *a == c.id);
        let idx = tree::index(state, aligned, &self.charger_circuit)?;
        if !aligned {
            // Charger ids in order, as ranks: the tie-breaks below compare integers, not strings.
            let mut by_id: Vec<usize> = (0..state.chargers.len()).collect();
            by_id.sort_unstable_by(|&a, &b| state.chargers[a].id.cmp(&state.chargers[b].id));
            self.rank = vec![0; by_id.len()];
            for (r, &i) in by_id.iter().enumerate() {
                self.rank[i] = r as u32;
            }
        }
        let s = self.settings.clone();
        let now = state.time;
        let nc = state.circuits.len();

        // Which nodes (or their ancestors) were full after the last step; circuit memory lined up.
        let full_path = self.full_paths(state, &idx);

        // Capacities (with headroom) and the unmanaged load as used at each node.
        let cap: Vec<[f64; DIMS]> = state.circuits.iter().map(|c| capacity(c, &s)).collect();
        let mut own = vec![[0.0; 3]; nc];
        for (n, c) in state.circuits.iter().enumerate() {
            own[n] = unmanaged_as_used(c, &mut self.meters[n], now, &s);
        }
        let mut net = Net {
            parent: &idx.parent,
            order: &idx.order,
            cap,
            load: vec![[0.0; DIMS]; nc],
        };
        for (n, u) in own.iter().enumerate() {
            net.add(n, &load_vector(*u), 1.0);
        }

        let prices = PricePlan::new(&state.prices, now);

        // Per charger: update what we know, classify, build demands.
        let mut w = std::mem::take(&mut self.work);
        w.demands.clear();
        w.owner.clear();
        let mut preps: Vec<Prep> = Vec::with_capacity(state.chargers.len());
        // The state is valid from here on: nothing below fails, so the memory can be taken apart.
        let mut memos: Vec<Option<Memo>> = if aligned {
            std::mem::take(&mut self.memo)
        } else {
            let mut old = std::mem::take(&mut self.memo);
            let by_id: HashMap<&str, usize> = self.ids.iter().enumerate().map(|(k, id)| (id.as_str(), k)).collect();
            state
                .chargers
                .iter()
                .map(|c| {
                    by_id
                        .get(c.id.as_str())
                        .and_then(|&k| old.get_mut(k).and_then(Option::take))
                })
                .collect()
        };
        for (i, ch) in state.chargers.iter().enumerate() {
            let on_full_path = full_path[idx.charger_circuit[i]];
            let prep = Self::prepare(&s, ch, now, &prices, on_full_path, &mut memos[i]);
            let kind = match prep.kind {
                Kind::Candidate(_) => {
                    w.demands.push(Demand {
                        node: idx.charger_circuit[i],
                        w: weights(prep.mask),
                        lo: prep.lo,
                        hi: prep.hi,
                        share: prep.share,
                    });
                    w.owner.push(i);
                    Kind::Candidate(w.demands.len() - 1)
                }
                k => k,
            };
            if kind == Kind::Offline || kind == Kind::NonCompliant {
                net.add(idx.charger_circuit[i], &load_vector(prep.reserve), 1.0);
            }
            preps.push(Prep { kind, ..prep });
        }
        let nd = w.demands.len();
        // A session that did not say what it needs (no target or no departure) wants current now
        // ("charge now"): it weighs as much as the highest ceiling, so such sessions stay max-min
        // fair in amperes among themselves and are not outweighed by any that said. With
        // `untold_share_kwh` its weight falls with the energy it got: one that has charged for
        // hours is likely to need less per hour than a newcomer or one that said it needs much.
        let top = w.demands.iter().map(|d| d.hi).fold(MIN_SHARE, f64::max);
        for (d, &i) in w.demands.iter_mut().zip(&w.owner) {
            d.share = match (preps[i].untold_kwh, s.untold_share_kwh) {
                (Some(got), Some(k)) => (top * k / (k + got)).max(MIN_SHARE),
                _ => d.share.min(top),
            };
        }

        // Tiers, highest first.
        w.tiers.clear();
        w.tiers.extend((0..nd).map(|d| (preps[w.owner[d]].tier, d)));
        w.tiers.sort_unstable_by_key(|&(t, d)| (Reverse(t), d));

        // Fluid shares: the same water-filling without minimum currents (as if current could be
        // divided finely). A session whose fluid share reaches its minimum should charge all the
        // time and is admitted first, with room for that share; the others take turns at their
        // minimum in the order of the service they are owed.
        w.fluid.clear();
        w.fluid.resize(nd, 0.0);
        // When every session fits at its minimum nobody takes turns: the fluid shares are not needed
        // (the shares given are remembered instead, below).
        let all_fit = net.all_fit(&w.demands);
        if !all_fit {
            let lo: Vec<f64> = w.demands.iter().map(|d| d.lo).collect();
            for d in &mut w.demands {
                d.lo = 0.0;
            }
            let mut fluid_net = Net {
                parent: &idx.parent,
                order: &idx.order,
                cap: net.cap.clone(),
                load: net.load.clone(),
            };
            for_each_tier(&w.tiers, &mut w.members, |members| {
                // One pass: a feasible estimate is enough to order the turns.
                fluid_net.fill(&w.demands, members, &mut w.fluid, 1, &mut w.fill);
            });
            for (d, l) in w.demands.iter_mut().zip(lo) {
                d.lo = l;
            }
        }
        let window = 3.0 * s.rotation_period_s;
        w.reserve.clear();
        for d in 0..nd {
            let dm = &w.demands[d];
            let fluid = w.fluid[d].min(dm.hi);
            w.reserve.push(if fluid + EPS >= dm.lo { fluid } else { 0.0 });
            let Some(m) = memos[w.owner[d]].as_mut() else { continue };
            let given = if m.online { m.limit } else { 0.0 };
            let Some(sm) = m.session.as_mut() else { continue };
            // Calls can be minutes apart (a restarted loop): count at most a minute.
            let dt = secs(sm.debt_at, now).clamp(0.0, 60.0);
            let bound = dm.lo.max(1.0) * window;
            sm.debt = (sm.debt + (sm.fluid - given) * dt).clamp(-bound, bound);
            sm.fluid = fluid;
            sm.debt_at = now;
        }

        // Admission: priority tier first; then sessions paused for a rotation period or more (some
        // cars do not wake up after a long pause), those that should charge all the time, those
        // charging for less than a rotation period (not interrupted yet), the rest; within each, the
        // service owed (most first); then charger id. With the paused ones after those that should
        // charge all the time, a session with a small share could wait for hours (bench: pauses of
        // over an hour, and cars that never woke up) while sessions that said nothing took the room.
        let rot = s.rotation_period_s;
        w.keys.clear();
        for d in 0..nd {
            let i = w.owner[d];
            let sm = memos[i].as_ref().and_then(|m| m.session.as_ref());
            let group = match sm {
                Some(SessionMemo {
                    paused_since: Some(since),
                    ..
                }) if secs(*since, now) >= rot => 0,
                _ if w.reserve[d] > 0.0 => 1,
                Some(SessionMemo {
                    charging_since: Some(since),
                    ..
                }) if secs(*since, now) < rot => 2,
                _ => 3,
            };
            let owed = sm.map_or(0.0, |m| m.debt);
            w.keys.push((Reverse(preps[i].tier), group, -(owed * 1000.0) as i64));
        }
        w.order.clear();
        w.order.extend(0..nd);
        {
            let (keys, owner, rank) = (&w.keys, &w.owner, &self.rank);
            w.order
                .sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]).then_with(|| rank[owner[a]].cmp(&rank[owner[b]])));
        }
        w.admitted.clear();
        w.admitted.resize(nd, false);
        w.held.clear();
        w.held.resize(nd, false);
        // One tier at a time; reserves are held until every tier is admitted.
        let mut start = 0;
        while start < nd {
            let t = w.keys[w.order[start]].0;
            let end = start + w.order[start..].iter().take_while(|&&d| w.keys[d].0 == t).count();
            net.admit(
                &w.demands,
                &w.order[start..end],
                &w.reserve,
                &mut w.admitted,
                &mut w.held,
            );
            start = end;
        }
        net.release(&w.demands, &w.reserve, &w.held);

        // Water-filling, one priority tier at a time, highest first.
        w.alloc.clear();
        w.alloc.resize(nd, 0.0);
        {
            let admitted = &w.admitted;
            w.tiers.retain(|&(_, d)| admitted[d]);
        }
        for_each_tier(&w.tiers, &mut w.members, |members| {
            net.fill(&w.demands, members, &mut w.alloc, FILL_PASSES, &mut w.fill);
        });
        if all_fit {
            for (d, &i) in w.owner.iter().enumerate() {
                if let Some(sm) = memos[i].as_mut().and_then(|m| m.session.as_mut()) {
                    sm.fluid = w.alloc[d].min(w.demands[d].hi);
                }
            }
        }
        self.remember_full(state, &net);

        // Targets: rounded down to 0.1 A, never between 0 and the minimum.
        let mut target = vec![0.0; state.chargers.len()];
        for (d, &i) in w.owner.iter().enumerate() {
            if w.admitted[d] {
                target[i] = floor_tenth(w.alloc[d]).max(w.demands[d].lo);
            }
        }
        self.work = w;

        let out = Self::emit(state, &idx, &s, &own, &preps, &mut memos, &target, &self.rank);

        // Remember.
        if !aligned {
            self.ids = state.chargers.iter().map(|c| c.id.clone()).collect();
        }
        self.charger_circuit = idx.charger_circuit;
        self.memo = memos;
        Ok(out)
    }

    /// Per circuit: whether it or an ancestor was full after the last step (by circuit id). Lines up
    /// the circuits' memory with this step's circuits.
    fn full_paths(&mut self, state: &SiteState, idx: &tree::Indexed) -> Vec<bool> {
        let same = self.circuit_ids.len() == state.circuits.len()
            && self.circuit_ids.iter().zip(&state.circuits).all(|(a, c)| *a == c.id);
        if !same {
            let was: HashMap<&str, bool> = self
                .circuit_ids
                .iter()
                .zip(&self.full)
                .map(|(id, &f)| (id.as_str(), f))
                .collect();
            self.full = state
                .circuits
                .iter()
                .map(|c| was.get(c.id.as_str()).copied().unwrap_or(false))
                .collect();
            let mut meters: HashMap<&str, MeterMemo> = self
                .circuit_ids
                .iter()
                .zip(std::mem::take(&mut self.meters))
                .map(|(id, m)| (id.as_str(), m))
                .collect();
            self.meters = state
                .circuits
                .iter()
                .map(|c| meters.remove(c.id.as_str()).unwrap_or_default())
                .collect();
            self.circuit_ids = state.circuits.iter().map(|c| c.id.clone()).collect();
        }
        let mut path = self.full.clone();
        for &n in &idx.order {
            if let Some(p) = idx.parent[n] {
                path[n] |= path[p];
            }
        }
        path
    }

    fn remember_full(&mut self, state: &SiteState, net: &Net<'_>) {
        self.full.clear();
        self.full.extend(
            (0..state.circuits.len()).map(|n| (0..DIMS).any(|d| net.load[n][d] > net.cap[n][d] - FULL_WITHIN_A)),
        );
    }

    /// Updates one charger's memory from its state and decides how it takes part in this step.
    fn prepare(
        settings: &Settings,
        ch: &ChargerState,
        now: DateTime<Utc>,
        prices: &PricePlan,
        on_full_path: bool,
        memo: &mut Option<Memo>,
    ) -> Prep {
        let s = settings;
        let rot = ch.phase_rotation;
        let full_mask = if ch.phases == 1 && ch.supply == Supply::Ac {
            let mut m = [false; 3];
            m[rot.grid_phase(0)] = true;
            m
        } else {
            [true; 3]
        };
        let mut prep = Prep {
            kind: Kind::Idle,
            mask: full_mask,
            grid: [0.0; 3],
            pending_draw: [0.0; 3],
            reserve: [0.0; 3],
            tier: 0,
            lo: ch.min_current,
            hi: ch.max_current,
            share: 1.0,
            deferred: false,
            unconfirmed: false,
            untold_kwh: None,
        };
        let Some(sess) = &ch.session else {
            if let Some(m) = memo.as_mut() {
                m.session = None;
                m.non_compliant = false;
                m.compliant_since = None;
                m.over_readings = 0;
            }
            if !ch.connected {
                prep.kind = Kind::Offline;
            }
            return prep;
        };

        // Measured draw, charger side and grid side.
        let clean = sess.measured_current.map(|a| a.max(0.0));
        let charger_side: [f64; 3] = match ch.supply {
            Supply::Dc => match sess.measured_power_w {
                Some(w) => [w.max(0.0) / (3.0 * s.volts); 3],
                None => clean,
            },
            Supply::Ac if ch.phases == 1 => [clean[0].max(clean[1]).max(clean[2]), 0.0, 0.0],
            Supply::Ac => clean,
        };
        let mut grid = [0.0; 3];
        for (k, a) in charger_side.iter().enumerate() {
            let g = if ch.supply == Supply::Dc { k } else { rot.grid_phase(k) };
            grid[g] += a;
        }
        prep.grid = grid;
        prep.pending_draw = grid;

        if !ch.connected {
            // Cannot hear us: assume it draws its offline limit and reserve that.
            let assumed = ch.fallback_current.unwrap_or(ch.max_current);
            prep.kind = Kind::Offline;
            prep.reserve = full_mask.map(|m| if m { assumed } else { 0.0 });
            return prep;
        }

        let m = memo.get_or_insert_with(|| Memo {
            limit: 0.0,
            set_at: now,
            pending_decrease: true,
            last_increase: None,
            online: false,
            non_compliant: false,
            ignored_once: false,
            compliant_since: None,
            reading: 0,
            over_readings: 0,
            history: LimitHistory::default(),
            session: None,
        });
        if m.session.as_ref().is_none_or(|x| x.id != sess.id) {
            m.session = Some(SessionMemo::new(&sess.id, now));
        }
        let delay = ch.apply_delay_s.unwrap_or(s.apply_delay_s);
        let settled = m.online && secs(m.set_at, now) >= delay;
        // A reading sampled before the limit in force was applied shows the previous limit.
        let fresh = settled && sess.measured_at.is_none_or(|at| secs(m.set_at, at) >= delay);
        let fingerprint = reading_fingerprint(sess);
        let new_reading = fingerprint != m.reading;
        m.reading = fingerprint;

        // Compliance: no phase may exceed the limit that was in force when the reading was
        // sampled (+ tolerance). A reading from before the apply delay may show the previous limit.
        // A reading with its sample time is judged at once against every limit that may have been
        // in force then, however recently a new limit was sent: waiting for the newest limit to
        // settle would leave a charger that ignores its limits counted at its limit for as long as
        // its limit keeps changing. Without a sample time, a reading before the apply delay proves
        // nothing unless it is over every limit remembered.
        let judged = m.online && (settled || sess.measured_at.is_some() || m.history.len >= 2);
        if judged {
            let top = charger_side.iter().fold(0.0, |a: f64, &b| a.max(b)) - s.compliance_tolerance_a;
            let over = top > m.limit;
            if over && new_reading && settled {
                m.over_readings = m.over_readings.saturating_add(1);
            } else if !over {
                m.over_readings = 0;
            }
            let proven = over
                && match sess.measured_at {
                    // Over every limit that may have been in force when it was sampled.
                    Some(at) => m.history.allowed_at(at, delay).is_some_and(|a| top > a),
                    // Unknown sample time: the charger says it offers the limit, a new reading is
                    // over the last two limits, or two distinct readings in a row are over it (the
                    // first may predate the limit).
                    None if !settled => new_reading && top > m.history.max(),
                    None => {
                        sess.offered_current.is_some_and(|o| (o - m.limit).abs() <= 0.05)
                            || (new_reading && top > m.history.recent_max())
                            || m.over_readings >= 2
                    }
                };
            if proven {
                m.non_compliant = true;
                m.ignored_once = true;
                m.compliant_since = None;
            } else if !over && m.non_compliant {
                let since = *m.compliant_since.get_or_insert(now);
                if secs(since, now) >= s.compliance_recover_s {
                    m.non_compliant = false;
                    m.compliant_since = None;
                }
            }
        }
        // A reading taken while a lower offer than now's highest possible one was (or may have
        // been) in force does not show what the car draws now: count that limit instead.
        if let (Some(at), Some((_, now_hi))) = (sess.measured_at, m.history.range_at(now, delay)) {
            let representative = m.history.range_at(at, delay).is_some_and(|(lo, _)| lo + EPS >= now_hi);
            if !representative {
                prep.pending_draw = [0, 1, 2].map(|g| if full_mask[g] { grid[g].max(now_hi) } else { grid[g] });
            }
        }
        let shown = match sess.measured_at {
            Some(at) => m.online && secs(m.set_at, at) >= delay,
            None => sess.offered_current.is_some_and(|o| (o - m.limit).abs() <= 0.05),
        };
        prep.unconfirmed = m.ignored_once && !shown;
        if m.history.len == 0 {
            // No limit sent yet: until the first one is applied the charger offers its maximum, and
            // a car just plugged in can draw that before any reading shows it.
            prep.pending_draw = [0, 1, 2].map(|g| {
                if full_mask[g] {
                    grid[g].max(ch.max_current)
                } else {
                    grid[g]
                }
            });
        }
        let limit = m.limit;
        let non_compliant = m.non_compliant;
        let Some(sm) = m.session.as_mut() else { return prep };

        // Single-phase car on a 3-phase AC charger.
        if ch.supply == Supply::Ac && ch.phases == 3 {
            let active = (0..3).filter(|&k| charger_side[k] > s.phase_active_a).count();
            let idle = (0..3).filter(|&k| charger_side[k] < s.phase_idle_a).count();
            let first_active = (0..3).find(|&k| charger_side[k] > s.phase_active_a);
            if let (1, 2, Some(k)) = (active, idle, first_active) {
                if sm.candidate_phase == Some(k) {
                    sm.candidate_count = sm.candidate_count.saturating_add(1);
                } else {
                    sm.candidate_phase = Some(k);
                    sm.candidate_count = 1;
                }
                if sm.candidate_count >= s.single_phase_observations.max(1) {
                    sm.single_phase = Some(k);
                }
            } else if active >= 2 {
                sm.single_phase = None;
                sm.candidate_phase = None;
                sm.candidate_count = 0;
            }
            if let Some(k) = sm.single_phase {
                let mut mask = [false; 3];
                mask[rot.grid_phase(k)] = true;
                prep.mask = mask;
            }
        }

        if non_compliant {
            // Reserve what it draws or may draw, whichever is more.
            prep.kind = Kind::NonCompliant;
            prep.reserve = [0, 1, 2].map(|p| grid[p].max(if prep.mask[p] { limit } else { 0.0 }));
            return prep;
        }

        // The charger's own ceiling, in A per phase.
        let mut hi = ch.max_current;
        if ch.supply == Supply::Dc
            && let Some(w) = ch.max_power_w
        {
            hi = hi.min(w / (3.0 * s.volts));
        }
        let full_hi = hi;

        // Reclaim offered current the car does not use; give it back when it draws near the limit.
        if fresh && limit > 0.0 {
            sm.seen_power_w = sm.seen_power_w.max(grid.iter().sum::<f64>() * s.volts);
            let draw = (0..3).filter(|&p| prep.mask[p]).map(|p| grid[p]).fold(0.0, f64::max);
            let offer = limit.min(sess.offered_current.unwrap_or(f64::INFINITY));
            if sm.reclaim_cap.is_some() && draw >= limit - s.giveback_a {
                sm.reclaim_cap = None;
                sm.underuse_since = None;
            } else if draw < offer - s.reclaim_threshold_a {
                let since = *sm.underuse_since.get_or_insert(now);
                if secs(since, now) >= s.reclaim_after_s {
                    let new = (draw + s.reclaim_margin_a).max(ch.min_current);
                    sm.reclaim_cap = Some(sm.reclaim_cap.map_or(new, |c: f64| c.min(new)));
                }
            } else {
                sm.underuse_since = None;
            }
            // A car that takes nothing at all (full, asleep) is parked: its minimum goes to others.
            if draw >= s.phase_active_a {
                sm.idle_since = None;
                sm.probing = false;
            } else if offer + EPS >= ch.min_current.max(s.phase_active_a) {
                let since = *sm.idle_since.get_or_insert(now);
                if secs(since, now) >= s.reclaim_after_s {
                    sm.parked_since = Some(now);
                    sm.idle_since = None;
                    sm.probing = false;
                }
            }
        } else if limit <= 0.0 {
            sm.idle_since = None;
        }
        if let Some(since) = sm.parked_since {
            if secs(since, now) < s.park_retry_s {
                prep.kind = Kind::Parked;
                sm.fluid = 0.0;
                return prep;
            }
            // Offer it current again (lowest urgency) in case it wants energy after all.
            sm.parked_since = None;
            sm.probing = true;
            sm.reclaim_cap = None;
            sm.underuse_since = None;
        }
        if let Some(c) = sm.reclaim_cap {
            hi = hi.min(c);
        }
        prep.hi = hi;

        // Priority tier: priority first, then whether it still wants energy. Within a tier the share
        // is the current it needs on average until departure.
        let phases_used = prep.mask.iter().filter(|&&b| b).count() as f64;
        let plan = plan(sess, sm, now, phases_used * s.volts, full_hi, prices, s);
        prep.share = plan.required_a.map_or(f64::INFINITY, |r| urgency_share(r, full_hi));
        if plan.required_a.is_none() {
            prep.untold_kwh = Some(sess.energy_wh.max(0) as f64 / 1000.0);
        }
        // Shifting to cheaper hours only pays where the capacity left now is not wanted now.
        prep.deferred = plan.defer && !on_full_path;
        if !prep.deferred {
            sm.awake_since = None;
        } else {
            // Some cars do not wake up after a long pause: a deferred car paused for a rotation
            // period is offered its minimum for a period, then paused again.
            let rot = s.rotation_period_s;
            let awake = match (sm.awake_since, sm.paused_since) {
                (Some(since), _) if secs(since, now) < rot => true,
                (_, Some(since)) if secs(since, now) >= rot => {
                    sm.awake_since = Some(now);
                    true
                }
                _ => false,
            };
            if !awake {
                sm.awake_since = None;
                sm.fluid = 0.0;
                prep.kind = Kind::Deferred;
                return prep;
            }
            prep.hi = prep.lo;
        }
        let wants = !(plan.reached || sm.probing || prep.deferred);
        let priority = i64::from(sess.priority.unwrap_or(s.default_priority));
        prep.tier = priority * 2 + i64::from(wants);
        prep.kind = Kind::Candidate(0);
        prep
    }

    /// Emission hygiene and the output: deadband, rate-limited increases, make-before-break.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        state: &SiteState,
        idx: &tree::Indexed,
        s: &Settings,
        own: &[[f64; 3]],
        preps: &[Prep],
        memos: &mut [Option<Memo>],
        target: &[f64],
        rank: &[u32],
    ) -> Allocation {
        let now = state.time;
        let nc = state.circuits.len();
        let n = state.chargers.len();
        let mut net = Net {
            parent: &idx.parent,
            order: &idx.order,
            cap: state.circuits.iter().map(|c| capacity(c, s)).collect(),
            load: vec![[0.0; DIMS]; nc],
        };
        for (c, u) in own.iter().enumerate() {
            net.add(c, &load_vector(*u), 1.0);
        }

        // Proposed output, and which proposals are held or waiting.
        let mut y = vec![0.0; n];
        let mut held = vec![false; n];
        let mut rising = vec![false; n];
        let mut resent = vec![false; n];
        for i in 0..n {
            let p = &preps[i];
            let memo = memos[i].as_ref();
            let prev = memo.filter(|m| m.online).map(|m| m.limit);
            y[i] = match p.kind {
                // Nothing can be sent: the limit stays what it was; the reservation is its load.
                Kind::Offline => memo.map_or(0.0, |m| m.limit),
                Kind::NonCompliant => prev.unwrap_or(0.0),
                _ => {
                    let x = target[i];
                    match prev {
                        None => x,
                        Some(pv) if x < pv - EPS => {
                            if x > 0.0 && pv - x < s.deadband_a {
                                held[i] = true;
                                pv
                            } else {
                                x
                            }
                        }
                        Some(pv) if x > pv + EPS => {
                            rising[i] = true;
                            pv
                        }
                        Some(pv) => pv,
                    }
                }
            };
            if p.kind != Kind::Offline && memo.is_some_and(|m| !m.online) {
                resent[i] = true;
            }
        }
        // Effective load of each charger: its limit, or its measured draw while a decrease is pending.
        let effective = |i: usize, yi: f64| -> [f64; 3] {
            let p = &preps[i];
            match p.kind {
                Kind::Offline | Kind::NonCompliant => p.reserve,
                _ => {
                    let pending = s.make_before_break
                        && memos[i].as_ref().is_none_or(|m| {
                            let delay = state.chargers[i].apply_delay_s.unwrap_or(s.apply_delay_s);
                            !m.online
                                || yi < m.limit - EPS
                                || p.unconfirmed
                                || (m.pending_decrease && secs(m.set_at, now) < delay)
                        });
                    let mut e = [0.0; 3];
                    for g in 0..3 {
                        let lim = if p.mask[g] { yi } else { 0.0 };
                        e[g] = if pending { lim.max(p.pending_draw[g]) } else { lim };
                    }
                    e
                }
            }
        };
        for i in 0..n {
            net.add(idx.charger_circuit[i], &load_vector(effective(i, y[i])), 1.0);
        }
        // A held decrease under an overloaded node is sent after all.
        let violated: Vec<bool> = (0..nc)
            .map(|c| (0..DIMS).any(|d| net.load[c][d] > net.cap[c][d] + EPS))
            .collect();
        for i in 0..n {
            if !held[i] {
                continue;
            }
            let mut cur = Some(idx.charger_circuit[i]);
            while let Some(c) = cur {
                if violated[c] {
                    let before = effective(i, y[i]);
                    y[i] = target[i];
                    let after = effective(i, y[i]);
                    let delta = [0, 1, 2].map(|g| after[g] - before[g]);
                    net.add(idx.charger_circuit[i], &load_vector(delta), 1.0);
                    held[i] = false;
                    break;
                }
                cur = idx.parent[c];
            }
        }
        // Increases: highest tier first, at most one per charger per interval, at least the deadband
        // (a resume from 0 always counts), and only where they fit next to pending decreases.
        let mut ups: Vec<usize> = (0..n).filter(|&i| rising[i]).collect();
        ups.sort_by(|&a, &b| preps[b].tier.cmp(&preps[a].tier).then_with(|| rank[a].cmp(&rank[b])));
        for i in ups {
            let Some(m) = memos[i].as_ref() else { continue };
            let x = target[i];
            let big = y[i] <= 0.0 || x - y[i] >= s.deadband_a - EPS;
            let rested = m.last_increase.is_none_or(|t| secs(t, now) >= s.increase_interval_s);
            if !big || !rested {
                continue;
            }
            let before = effective(i, y[i]);
            let after = effective(i, x);
            let delta = load_vector([0, 1, 2].map(|g| after[g] - before[g]));
            // Where the limit rises, the result must fit even when the counted load does not grow
            // (a charger still lowering its previous limit counts its draw before and after): its
            // own pending decrease is not room it can take back while the others still lower theirs.
            let raised = load_vector(preps[i].mask.map(|b| if b { x - y[i] } else { 0.0 }));
            let node = idx.charger_circuit[i];
            if fits_delta(&net, node, &delta, &raised) {
                net.add(node, &delta, 1.0);
                y[i] = x;
            }
        }

        // Output and memory.
        let mut limits = Vec::with_capacity(n);
        let mut non_compliant = Vec::new();
        let mut measured = vec![[0.0; 3]; nc];
        let mut allocated = vec![[0.0; 3]; nc];
        for c in 0..nc {
            add3(&mut measured, &idx.parent, c, own[c]);
            add3(&mut allocated, &idx.parent, c, own[c]);
        }
        for (i, ch) in state.chargers.iter().enumerate() {
            let p = &preps[i];
            let yi = y[i];
            let memo = &mut memos[i];
            let prev = memo.as_ref().filter(|m| m.online).map(|m| m.limit);
            let changed = p.kind != Kind::Offline && (prev.is_none_or(|pv| (pv - yi).abs() > EPS) || resent[i]);
            let load = match p.kind {
                Kind::Offline | Kind::NonCompliant => p.reserve,
                _ => p.mask.map(|b| if b { yi } else { 0.0 }),
            };
            let node = idx.charger_circuit[i];
            add3(&mut allocated, &idx.parent, node, load);
            if ch.session.is_some() && ch.connected {
                add3(&mut measured, &idx.parent, node, p.grid);
            }
            let mut st = match p.kind {
                Kind::Idle => LimitState::Idle,
                Kind::Offline => LimitState::Offline,
                Kind::NonCompliant => LimitState::NonCompliant,
                Kind::Parked => LimitState::Reclaimed,
                Kind::Deferred => LimitState::Deferred,
                Kind::Candidate(_) if p.deferred => LimitState::Deferred,
                Kind::Candidate(_) if yi <= 0.0 => LimitState::Paused,
                Kind::Candidate(_) => LimitState::Charging,
            };
            if p.kind == Kind::NonCompliant {
                non_compliant.push(ch.id.clone());
            }
            if let Some(m) = memo.as_mut() {
                if p.kind == Kind::Offline {
                    m.online = false;
                } else {
                    if changed {
                        m.pending_decrease = prev.is_none_or(|pv| yi < pv) || resent[i];
                        if prev.is_some_and(|pv| yi > pv) {
                            m.last_increase = Some(now);
                        }
                        m.limit = yi;
                        m.set_at = now;
                        m.over_readings = 0;
                        m.history.push(now, yi);
                    }
                    m.online = true;
                }
                if let Some(sm) = m.session.as_mut() {
                    if st == LimitState::Charging && sm.reclaim_cap.is_some() {
                        st = LimitState::Reclaimed;
                    }
                    if yi > 0.0 && p.kind != Kind::Offline {
                        sm.charging_since.get_or_insert(now);
                        sm.paused_since = None;
                    } else if yi <= 0.0 {
                        sm.paused_since.get_or_insert(now);
                        sm.charging_since = None;
                    }
                }
            } else if p.kind != Kind::Offline {
                // An idle charger seen for the first time.
                let mut history = LimitHistory::default();
                history.push(now, yi);
                *memo = Some(Memo {
                    limit: yi,
                    set_at: now,
                    pending_decrease: true,
                    last_increase: None,
                    online: true,
                    non_compliant: false,
                    ignored_once: false,
                    compliant_since: None,
                    reading: 0,
                    over_readings: 0,
                    history,
                    session: None,
                });
            }
            let dc = ch.supply == Supply::Dc;
            limits.push(Limit {
                charger: ch.id.clone(),
                current: yi,
                phases: ch.phases,
                power_w: dc.then(|| (yi * 3.0 * s.volts).floor()),
                changed,
                state: st,
                load,
            });
        }
        let nodes = state
            .circuits
            .iter()
            .enumerate()
            .map(|(c, circ)| NodeLoad {
                circuit: circ.id.clone(),
                limit: circ.max_current,
                measured: measured[c].map(round3),
                allocated: allocated[c].map(round3),
            })
            .collect();
        Allocation {
            time: now,
            limits,
            non_compliant,
            nodes,
        }
    }
}

/// A fingerprint of a session's reading: equal for the same reading seen again.
fn reading_fingerprint(sess: &SessionState) -> u64 {
    let parts = [
        sess.measured_at.map_or(u64::MAX, |t| t.timestamp_millis() as u64),
        sess.measured_current[0].to_bits(),
        sess.measured_current[1].to_bits(),
        sess.measured_current[2].to_bits(),
        sess.energy_wh as u64,
        sess.offered_current.map_or(u64::MAX, f64::to_bits),
        sess.measured_power_w.map_or(u64::MAX, f64::to_bits),
    ];
    // FNV-1a-like mixing of whole words; a collision only delays a fallback verdict by one reading.
    parts.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29)
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn add3(acc: &mut [[f64; 3]], parent: &[Option<usize>], node: usize, v: [f64; 3]) {
    let mut cur = Some(node);
    while let Some(c) = cur {
        for p in 0..3 {
            acc[c][p] += v[p];
        }
        cur = parent[c];
    }
}

/// Whether adding `delta` keeps every node on the path within its capacity in every dimension
/// `raised` loads more (a decrease always fits).
fn fits_delta(net: &Net<'_>, node: usize, delta: &[f64; DIMS], raised: &[f64; DIMS]) -> bool {
    let mut cur = Some(node);
    while let Some(c) = cur {
        for d in 0..DIMS {
            if (delta[d] > 0.0 || raised[d] > 0.0) && net.load[c][d] + delta[d] > net.cap[c][d] + EPS {
                return false;
            }
        }
        cur = net.parent[c];
    }
    true
}

/// The weight of a session that told its need: the current it needs on average until departure
/// (`required_a`), times the square root of the fraction of its ceiling that is (at most 2, reached
/// at four times its ceiling). Weights in proportion to the need alone give every session the same
/// fraction of its need *now*; but an all-day car has hours left to catch up while a short visit
/// that needs its full power cannot, and ends with far less of its need (bench, seed 1: short
/// visits 0.47–0.53 of their need, all-day cars 0.79–0.83). The extra weight of the urgent ones
/// evens that out. Shares are capped at the step's highest ceiling afterwards (a session past its
/// departure needs infinitely much).
fn urgency_share(required_a: f64, ceiling_a: f64) -> f64 {
    let urgency = if ceiling_a > 0.0 {
        required_a / ceiling_a
    } else {
        f64::INFINITY
    };
    (required_a * urgency.sqrt().min(URGENCY_WEIGHT_MAX)).max(MIN_SHARE)
}

/// What a session's target and departure say about it.
struct SessionPlan {
    /// Its target is reached.
    reached: bool,
    /// Flexible, and there is enough cheaper priced time before departure.
    defer: bool,
    /// The current per phase it needs on average until departure (A; more than its maximum
    /// when it cannot make it). `None` without a target or a departure.
    required_a: Option<f64>,
}

/// Reads a session's target and departure: `w_per_a` is its power per ampere (its phases × volts),
/// `full_a` the charger's own ceiling.
fn plan(
    sess: &SessionState,
    sm: &SessionMemo,
    now: DateTime<Utc>,
    w_per_a: f64,
    full_a: f64,
    prices: &PricePlan,
    s: &Settings,
) -> SessionPlan {
    let mut out = SessionPlan {
        reached: false,
        defer: false,
        required_a: None,
    };
    let Some(target) = sess.energy_target_wh else {
        return out;
    };
    let need_wh = target.saturating_sub(sess.energy_wh);
    if need_wh <= 0 {
        out.reached = true;
        return out;
    }
    let departure = sess.departure.or_else(|| {
        s.default_departure_s.and_then(|d| {
            chrono::Duration::try_milliseconds((d * 1000.0) as i64).and_then(|d| sm.first_seen.checked_add_signed(d))
        })
    });
    let Some(departure) = departure else { return out };
    let left_s = secs(now, departure);
    out.required_a = Some(if left_s > 0.0 && w_per_a > 0.0 {
        need_wh as f64 * 3600.0 / left_s / w_per_a
    } else {
        f64::INFINITY
    });
    let full_power_w = full_a * w_per_a;
    if full_power_w <= 0.0 {
        return out;
    }
    let needed_s = need_wh as f64 / full_power_w * 3600.0;
    // Urgent sessions are never shifted; nor is a car not seen charging yet: the charger's
    // maximum can be far more than the car takes (16 A or single-phase cars, taper).
    if left_s - needed_s < s.urgent_laxity_s || sm.seen_power_w <= 0.0 {
        return out;
    }
    let seen_s = need_wh as f64 / sm.seen_power_w * 3600.0;
    out.defer = prices.defer(departure, seen_s * s.price_time_margin);
    out
}

/// The price slots of one step, sorted once by (price, start).
struct PricePlan {
    /// (price, start, end, input position).
    sorted: Vec<(Decimal, DateTime<Utc>, DateTime<Utc>, usize)>,
    /// Input position of the slot covering now.
    current: Option<usize>,
}

impl PricePlan {
    fn new(prices: &[PriceSlot], now: DateTime<Utc>) -> Self {
        let current = prices.iter().position(|p| p.start <= now && now < p.end);
        let mut sorted: Vec<_> = match current {
            Some(_) => prices
                .iter()
                .enumerate()
                .filter(|(_, p)| p.end > now)
                .map(|(k, p)| (p.price_per_kwh, p.start.max(now), p.end, k))
                .collect(),
            None => Vec::new(),
        };
        sorted.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then(x.3.cmp(&y.3)));
        PricePlan { sorted, current }
    }

    /// True when enough strictly-preferred (cheaper, or as cheap and earlier) priced time lies
    /// between now and departure to deliver the need without the current slot.
    fn defer(&self, departure: DateTime<Utc>, needed_s: f64) -> bool {
        let Some(current) = self.current else { return false };
        let mut acc = 0.0;
        for &(_, a, b, k) in &self.sorted {
            let b = b.min(departure);
            if b <= a {
                continue;
            }
            if k == current {
                return false;
            }
            acc += secs(a, b);
            if acc >= needed_s {
                return true;
            }
        }
        false
    }
}

/// Runs `f` on the members of each tier of `tiers` (sorted, highest first).
fn for_each_tier(tiers: &[(i64, usize)], members: &mut Vec<usize>, mut f: impl FnMut(&[usize])) {
    let mut start = 0;
    while start < tiers.len() {
        let t = tiers[start].0;
        let end = start + tiers[start..].iter().take_while(|x| x.0 == t).count();
        members.clear();
        members.extend(tiers[start..end].iter().map(|x| x.1));
        f(members);
        start = end;
    }
}
