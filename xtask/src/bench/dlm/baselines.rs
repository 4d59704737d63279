//! The controllers under test, all behind one trait and all seeing only the
//! CSMS's view (`SiteState`): ours (`voltyard::dlm::Controller`), and three
//! baselines: unmanaged, static equal share, and an evcc-like order-greedy.
//!
//! Baselines may use the site's configuration (tree, charger phases and
//! rotation), which a CSMS knows; everything that changes comes from the
//! `SiteState` they are given.

use super::physics::Offer;
use super::scenario::{MIN_CURRENT, Scenario, TICK_S};
use anyhow::Result;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::time::Instant;
use voltyard::dlm::{Controller, Settings, SiteState};

/// A limit to send to charger `charger` (index in the scenario).
pub struct Command {
    pub charger: usize,
    pub offer: Offer,
}

pub trait Policy {
    fn name(&self) -> &'static str;
    /// Called every `period_s` seconds ...
    fn period_s(&self) -> u32;
    /// ... and at any second with a status change or a grid signal, if true.
    fn on_events(&self) -> bool;
    fn decide(&mut self, site: &SiteState, out: &mut Vec<Command>) -> Result<()>;
    /// Decision times, ns (ours only).
    fn times(&self) -> Option<&Histogram<u64>> {
        None
    }
    /// Diagnostics for the JSON.
    fn notes(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Static configuration shared by the baselines.
struct Topology {
    chain: Vec<Vec<usize>>,
    /// Grid phases each charger can draw on.
    phases: Vec<Vec<usize>>,
    rotation: Vec<usize>,
    max: Vec<f64>,
    charger_phases: Vec<u8>,
}

impl Topology {
    fn new(sc: &Scenario) -> Topology {
        Topology {
            chain: sc.chain.clone(),
            phases: sc
                .chargers
                .iter()
                .map(|c| (0..c.phases as usize).map(|j| (c.rotation + j) % 3).collect())
                .collect(),
            rotation: sc.chargers.iter().map(|c| c.rotation).collect(),
            max: sc.chargers.iter().map(|c| c.max_current).collect(),
            charger_phases: sc.chargers.iter().map(|c| c.phases).collect(),
        }
    }

    /// The measured current of charger `c` on grid phases.
    fn grid(&self, c: usize, terminals: [f64; 3]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (j, a) in terminals.iter().enumerate() {
            out[(self.rotation[c] + j) % 3] += a;
        }
        out
    }
}

fn floor_tenth(a: f64) -> f64 {
    (a * 10.0).floor() / 10.0
}

/// Every charger at its own maximum: no profile is ever sent.
pub struct Unmanaged;

impl Policy for Unmanaged {
    fn name(&self) -> &'static str {
        "unmanaged"
    }
    fn period_s(&self) -> u32 {
        u32::MAX
    }
    fn on_events(&self) -> bool {
        false
    }
    fn decide(&mut self, _: &SiteState, _: &mut Vec<Command>) -> Result<()> {
        Ok(())
    }
}

/// Static equal share: each node's capacity per phase (cap − last metered
/// unmanaged load at the root) split equally among the sessions under it
/// that use that phase; a session gets the smallest of its shares over its
/// ancestors. Shares below 6 A: 6 A to sessions in order of arrival while
/// every node on their path still has 6 A left, 0 to the rest. Measured
/// charger currents are not used (unused share is not given to others).
pub struct EqualShare {
    topo: Topology,
    sent: Vec<f64>,
    since: Vec<Option<u64>>,
    calls: u64,
    unmanaged: [f64; 3],
}

impl EqualShare {
    pub fn new(sc: &Scenario) -> EqualShare {
        EqualShare {
            topo: Topology::new(sc),
            sent: vec![f64::NAN; sc.chargers.len()],
            since: vec![None; sc.chargers.len()],
            calls: 0,
            unmanaged: sc.unmanaged[0].1,
        }
    }
}

impl Policy for EqualShare {
    fn name(&self) -> &'static str {
        "equal share"
    }
    fn period_s(&self) -> u32 {
        TICK_S
    }
    fn on_events(&self) -> bool {
        true
    }
    fn decide(&mut self, site: &SiteState, out: &mut Vec<Command>) -> Result<()> {
        self.calls += 1;
        let topo = &self.topo;
        if let Some(u) = site.circuits[0].unmanaged_current {
            self.unmanaged = u;
        }
        let nodes = site.circuits.len();
        let mut avail: Vec<[f64; 3]> = site.circuits.iter().map(|c| c.max_current).collect();
        for (a, u) in avail[0].iter_mut().zip(self.unmanaged) {
            *a = (*a - u).max(0.0);
        }
        let mut count = vec![[0u32; 3]; nodes];
        let mut present = Vec::new();
        for (c, ch) in site.chargers.iter().enumerate() {
            if ch.session.is_none() {
                self.since[c] = None;
                continue;
            }
            self.since[c].get_or_insert(self.calls);
            present.push(c);
            for &nd in &topo.chain[c] {
                for &p in &topo.phases[c] {
                    count[nd][p] += 1;
                }
            }
        }
        let mut want = vec![0.0; site.chargers.len()];
        let mut small = Vec::new();
        let mut used = vec![[0.0; 3]; nodes];
        for &c in &present {
            let mut share = topo.max[c];
            for &nd in &topo.chain[c] {
                for &p in &topo.phases[c] {
                    share = share.min(avail[nd][p] / count[nd][p] as f64);
                }
            }
            let share = floor_tenth(share);
            if share >= MIN_CURRENT {
                want[c] = share;
                for &nd in &topo.chain[c] {
                    for &p in &topo.phases[c] {
                        used[nd][p] += share;
                    }
                }
            } else {
                small.push(c);
            }
        }
        small.sort_by_key(|&c| (self.since[c], c));
        for c in small {
            let fits = topo.chain[c].iter().all(|&nd| {
                topo.phases[c]
                    .iter()
                    .all(|&p| avail[nd][p] - used[nd][p] >= MIN_CURRENT)
            });
            if fits {
                want[c] = MIN_CURRENT;
                for &nd in &topo.chain[c] {
                    for &p in &topo.phases[c] {
                        used[nd][p] += MIN_CURRENT;
                    }
                }
            }
        }
        for (c, &w) in want.iter().enumerate() {
            if self.sent[c] != w {
                self.sent[c] = w;
                out.push(Command {
                    charger: c,
                    offer: Offer {
                        current: w,
                        phases: topo.charger_phases[c],
                    },
                });
            }
        }
        Ok(())
    }
}

/// evcc-like: every 30 s, the headroom at the grid connection (cap − last
/// metered unmanaged load − the chargers' last measured currents) decides
/// one adjustment: when negative, the last charging charger in the fixed
/// order is reduced by the deficit (paused below 6 A); when positive, the
/// first charger in the fixed order that has a car and uses what it has is
/// raised by the headroom on its phases (started at ≥ 6 A). Chargers whose
/// car left are set to 0. Sub-boards are not looked at.
pub struct Greedy {
    topo: Topology,
    sent: Vec<f64>,
    unmanaged: [f64; 3],
}

impl Greedy {
    pub fn new(sc: &Scenario) -> Greedy {
        Greedy {
            topo: Topology::new(sc),
            sent: vec![f64::NAN; sc.chargers.len()],
            unmanaged: sc.unmanaged[0].1,
        }
    }
}

impl Policy for Greedy {
    fn name(&self) -> &'static str {
        "greedy (evcc-like)"
    }
    fn period_s(&self) -> u32 {
        30
    }
    fn on_events(&self) -> bool {
        false
    }
    fn decide(&mut self, site: &SiteState, out: &mut Vec<Command>) -> Result<()> {
        let topo = &self.topo;
        let mut send = |c: usize, a: f64, sent: &mut Vec<f64>| {
            sent[c] = a;
            out.push(Command {
                charger: c,
                offer: Offer {
                    current: a,
                    phases: topo.charger_phases[c],
                },
            });
        };
        if let Some(u) = site.circuits[0].unmanaged_current {
            self.unmanaged = u;
        }
        let mut head = site.circuits[0].max_current;
        for (h, u) in head.iter_mut().zip(self.unmanaged) {
            *h -= u;
        }
        for (c, ch) in site.chargers.iter().enumerate() {
            match &ch.session {
                None if self.sent[c] != 0.0 => send(c, 0.0, &mut self.sent),
                None => {}
                Some(s) => {
                    for (h, a) in head.iter_mut().zip(topo.grid(c, s.measured_current)) {
                        *h -= a;
                    }
                }
            }
        }
        let on = |c: usize| topo.phases[c].iter().map(|&p| head[p]).fold(f64::INFINITY, f64::min);
        let min_head = head.iter().copied().fold(f64::INFINITY, f64::min);
        if min_head < 0.0 {
            let victim = (0..site.chargers.len())
                .rev()
                .find(|&c| site.chargers[c].session.is_some() && self.sent[c] >= MIN_CURRENT);
            if let Some(c) = victim {
                let a = floor_tenth(self.sent[c] + on(c).min(0.0));
                send(c, if a < MIN_CURRENT { 0.0 } else { a }, &mut self.sent);
            }
            return Ok(());
        }
        for (c, ch) in site.chargers.iter().enumerate() {
            let Some(s) = &ch.session else { continue };
            let sent = if self.sent[c].is_nan() { 0.0 } else { self.sent[c] };
            if sent >= topo.max[c] {
                continue;
            }
            let drawn = s.measured_current.iter().copied().fold(0.0, f64::max);
            if sent >= MIN_CURRENT && drawn < sent - 1.0 {
                // Not using what it has (tapering, full or not started yet).
                continue;
            }
            let h = on(c);
            let a = floor_tenth((sent + h).min(topo.max[c]));
            if a >= MIN_CURRENT && a >= sent + 1.0 {
                send(c, a, &mut self.sent);
                break;
            }
        }
        Ok(())
    }
}

/// voltyard's optimiser, called on events and every TICK_S.
pub struct Ours {
    ctl: Controller,
    index: HashMap<String, usize>,
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    unchanged_but_different: u64,
    sent: Vec<Option<f64>>,
    max_non_compliant: usize,
    non_compliant_reports: u64,
    /// The truth, for judging the controller's non-compliance reports.
    ignores: Vec<bool>,
    ignorers_flagged: Vec<bool>,
    /// Compliant chargers newly reported as non-compliant: when the last
    /// meter value's offered current still differed from the limit last
    /// sent (a value sampled before the charger applied it), and otherwise.
    false_flags_stale: u64,
    false_flags_fresh: u64,
    flagged: Vec<bool>,
}

impl Ours {
    pub fn new(sc: &Scenario) -> Ours {
        Ours {
            ctl: Controller::new(Settings::default()),
            index: sc.chargers.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect(),
            hist: Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid bounds"),
            errors: 0,
            first_error: None,
            unchanged_but_different: 0,
            sent: vec![None; sc.chargers.len()],
            max_non_compliant: 0,
            non_compliant_reports: 0,
            ignores: sc.chargers.iter().map(|c| c.ignores).collect(),
            ignorers_flagged: vec![false; sc.chargers.len()],
            false_flags_stale: 0,
            false_flags_fresh: 0,
            flagged: vec![false; sc.chargers.len()],
        }
    }
}

impl Policy for Ours {
    fn name(&self) -> &'static str {
        "voltyard"
    }
    fn period_s(&self) -> u32 {
        TICK_S
    }
    fn on_events(&self) -> bool {
        true
    }
    fn decide(&mut self, site: &SiteState, out: &mut Vec<Command>) -> Result<()> {
        let started = Instant::now();
        let result = self.ctl.step(site);
        let ns = started.elapsed().as_nanos() as u64;
        let _ = self.hist.record(ns.max(1));
        let alloc = match result {
            Ok(a) => a,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
                return Ok(());
            }
        };
        self.max_non_compliant = self.max_non_compliant.max(alloc.non_compliant.len());
        self.non_compliant_reports += alloc.non_compliant.len() as u64;
        let was = std::mem::replace(&mut self.flagged, vec![false; self.ignores.len()]);
        for id in &alloc.non_compliant {
            let Some(&c) = self.index.get(id) else { continue };
            self.flagged[c] = true;
            if self.ignores[c] {
                self.ignorers_flagged[c] = true;
                continue;
            }
            if was[c] {
                continue;
            }
            let offered = site.chargers[c].session.as_ref().and_then(|s| s.offered_current);
            match (offered, self.sent[c]) {
                (Some(o), Some(s)) if (o - s).abs() > 1e-9 => self.false_flags_stale += 1,
                _ => self.false_flags_fresh += 1,
            }
        }
        for l in &alloc.limits {
            let Some(&c) = self.index.get(&l.charger) else {
                continue;
            };
            if l.changed {
                self.sent[c] = Some(l.current);
                out.push(Command {
                    charger: c,
                    offer: Offer {
                        current: l.current,
                        phases: if l.phases == 0 { 3 } else { l.phases },
                    },
                });
            } else if self.sent[c].is_some_and(|s| (s - l.current).abs() > 1e-9) {
                self.unchanged_but_different += 1;
            }
        }
        Ok(())
    }
    fn times(&self) -> Option<&Histogram<u64>> {
        Some(&self.hist)
    }
    fn notes(&self) -> serde_json::Value {
        serde_json::json!({
            "step_errors": self.errors,
            "first_error": self.first_error,
            "limits_not_flagged_changed_but_different": self.unchanged_but_different,
            "max_non_compliant_at_once": self.max_non_compliant,
            "non_compliant_charger_reports": self.non_compliant_reports,
            "ignoring_chargers": self.ignores.iter().filter(|&&i| i).count(),
            "ignoring_chargers_flagged": self.ignorers_flagged.iter().filter(|&&i| i).count(),
            "compliant_newly_flagged_on_stale_meter_value": self.false_flags_stale,
            "compliant_newly_flagged_otherwise": self.false_flags_fresh,
        })
    }
}
