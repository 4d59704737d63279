//! One controller on one scenario: the physics second by second, the CSMS's
//! view of it (what the controller is given), the calls, the figures.

use super::baselines::{Command, Policy};
use super::metrics::{Accum, Excused, jain};
use super::physics::{Events, Physics};
use super::scenario::{METER_DELAY_S, MIN_CURRENT, SITE_METER_INTERVAL_S, STATUS_DELAY_S, Scenario};
use anyhow::Result;
use chrono::Duration;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::VecDeque;
use voltyard::dlm::{ChargerState, CircuitState, PriceSlot, Rotation, SessionState, SiteState, Supply};

/// A meter value on its way: (arrives at, sampled at, session, A at the terminals, Wh, offered A).
type MeterValue = (u32, u32, usize, [f64; 3], i64, f64);

/// What the CSMS knows: status changes (STATUS_DELAY_S late), each charger's
/// meter values (every meter_interval_s, METER_DELAY_S late), the site
/// meter's unmanaged load (every SITE_METER_INTERVAL_S, METER_DELAY_S late,
/// `None` during a dropout), and the grid signal (at once).
pub struct Observer<'a> {
    sc: &'a Scenario,
    pub view: SiteState,
    meter: Vec<Option<MeterValue>>,
    site: VecDeque<(u32, Option<[f64; 3]>)>,
    status: VecDeque<(u32, usize, bool)>,
}

fn rotation(r: usize) -> Rotation {
    match r {
        0 => Rotation::L1L2L3,
        1 => Rotation::L2L3L1,
        _ => Rotation::L3L1L2,
    }
}

impl<'a> Observer<'a> {
    pub fn new(sc: &'a Scenario) -> Observer<'a> {
        let circuits = sc
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| CircuitState {
                id: n.id.clone(),
                parent: n.parent.map(|p| sc.nodes[p].id.clone()),
                max_current: [n.cap; 3],
                unmanaged_current: (i == 0).then_some(sc.unmanaged[0].1),
                max_power_w: None,
                metered: n.metered,
                safe_current: None,
            })
            .collect();
        let chargers = sc
            .chargers
            .iter()
            .map(|c| ChargerState {
                id: c.id.clone(),
                circuit: sc.nodes[c.node].id.clone(),
                phases: c.phases,
                phase_rotation: rotation(c.rotation),
                min_current: MIN_CURRENT,
                max_current: c.max_current,
                session: None,
                supply: Supply::Ac,
                max_power_w: None,
                connected: true,
                fallback_current: None,
                apply_delay_s: Some(c.delay_s as f64),
            })
            .collect();
        let day = sc.start - Duration::seconds(sc.day_offset_s as i64);
        let first_hour = sc.day_offset_s / 3600;
        let prices = (first_hour..24)
            .map(|h| PriceSlot {
                start: day + Duration::hours(h as i64),
                end: day + Duration::hours(h as i64 + 1),
                price_per_kwh: Decimal::from_f64_retain(sc.prices[h as usize])
                    .unwrap_or_default()
                    .round_dp(4),
            })
            .collect();
        Observer {
            sc,
            view: SiteState {
                time: sc.start,
                circuits,
                chargers,
                prices,
            },
            meter: vec![None; sc.chargers.len()],
            site: VecDeque::new(),
            status: VecDeque::new(),
        }
    }

    /// After the physics of second `t`: update the view. True when a status
    /// change or a grid signal reached the CSMS at `t`.
    pub fn observe(&mut self, t: u32, ph: &Physics, ev: &Events) -> bool {
        let sc = self.sc;
        self.view.time = sc.start + Duration::seconds(t as i64);
        let mut event = false;
        for &s in &ev.departed {
            self.status.push_back((t + STATUS_DELAY_S, s, false));
        }
        for &s in &ev.arrived {
            self.status.push_back((t + STATUS_DELAY_S, s, true));
        }
        while self.status.front().is_some_and(|&(at, _, _)| at <= t) {
            let (_, s, arrived) = self.status.pop_front().expect("front exists");
            let sess = &sc.sessions[s];
            let slot = &mut self.view.chargers[sess.charger].session;
            event = true;
            if arrived {
                *slot = Some(SessionState {
                    id: sess.id.clone(),
                    measured_current: [0.0; 3],
                    energy_wh: 0,
                    energy_target_wh: sess.tells.then_some(sess.to_full_wh.round() as i64),
                    departure: sess.tells.then(|| sc.start + Duration::seconds(sess.departure as i64)),
                    priority: None,
                    offered_current: None,
                    measured_power_w: None,
                    measured_at: None,
                });
            } else if slot.as_ref().is_some_and(|x| x.id == sess.id) {
                *slot = None;
            }
        }
        for (c, ch) in sc.chargers.iter().enumerate() {
            if let Some(s) = ph.active[c]
                && (t + ch.meter_offset_s).is_multiple_of(ch.meter_interval_s)
            {
                let mut terminals = [0.0; 3];
                for a in terminals.iter_mut().take(ph.draw_phases[c] as usize) {
                    *a = ph.draw[c];
                }
                self.meter[c] = Some((
                    t + METER_DELAY_S,
                    t,
                    s,
                    terminals,
                    ph.delivered[s] as i64,
                    ph.in_force[c].current,
                ));
            }
            if let Some((at, sampled, s, terminals, wh, offered)) = self.meter[c]
                && at <= t
            {
                self.meter[c] = None;
                if let Some(view) = self.view.chargers[c].session.as_mut()
                    && view.id == sc.sessions[s].id
                {
                    view.measured_current = terminals;
                    view.energy_wh = wh;
                    view.offered_current = Some(offered);
                    view.measured_at = Some(sc.start + Duration::seconds(sampled as i64));
                }
            }
        }
        if t.is_multiple_of(SITE_METER_INTERVAL_S) {
            let v = (!sc.in_dropout(t)).then_some(ph.unmanaged);
            self.site.push_back((t + METER_DELAY_S, v));
        }
        while self.site.front().is_some_and(|&(at, _)| at <= t) {
            let (_, v) = self.site.pop_front().expect("front exists");
            self.view.circuits[0].unmanaged_current = v;
        }
        if ev.cap_changed {
            self.view.circuits[0].max_current = [ph.cap[0]; 3];
            event = true;
        }
        event
    }
}

/// The figures of one run.
pub struct Run {
    pub controller: String,
    pub site: String,
    pub chargers: usize,
    pub horizon_s: u32,
    pub raw_as: f64,
    pub preventable_as: f64,
    pub utilisation: f64,
    pub energy_wh: f64,
    pub need_wh: f64,
    pub satisfied: usize,
    pub sessions: usize,
    pub jain: f64,
    pub cost_eur: f64,
    pub messages: u64,
    pub calls: u64,
    pub decision_ns: Vec<u64>,
    pub json: Value,
}

impl Run {
    pub fn msgs_per_charger_hour(&self) -> f64 {
        self.messages as f64 / (self.chargers as f64 * self.horizon_s as f64 / 3600.0)
    }
}

pub fn simulate(sc: &Scenario, policy: &mut dyn Policy, excused: &Excused) -> Result<Run> {
    let mut ph = Physics::new(sc);
    let mut obs = Observer::new(sc);
    let mut acc = Accum::new(sc.nodes.len());
    let mut ev = Events::default();
    let mut cmds: Vec<Command> = Vec::new();
    let (period, on_events) = (policy.period_s(), policy.on_events());
    let (mut messages, mut calls) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for t in 0..sc.horizon_s {
        ph.step(t, &mut ev);
        acc.second(&ph, t, excused);
        let event = obs.observe(t, &ph, &ev);
        let tick = period != u32::MAX && t.is_multiple_of(period);
        if tick || (on_events && event) {
            cmds.clear();
            policy.decide(&obs.view, &mut cmds)?;
            calls += 1;
            for c in &cmds {
                ph.command(c.charger, c.offer, t);
            }
            messages += cmds.len() as u64;
        }
    }
    let mut ratios = Vec::with_capacity(sc.sessions.len());
    let mut satisfied = 0;
    let mut asleep = 0;
    for (s, sess) in sc.sessions.iter().enumerate() {
        let r = (ph.delivered[s] / sess.need_wh).min(1.0);
        ratios.push(r);
        satisfied += (ph.delivered[s] >= 0.99 * sess.need_wh) as usize;
        asleep += ph.asleep[s] as usize;
    }
    let need_wh = sc.need_wh();
    let worst = acc
        .preventable
        .iter()
        .enumerate()
        .flat_map(|(nd, ph)| ph.iter().enumerate().map(move |(p, a)| (nd, p, *a)))
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .filter(|w| w.2 > 0.0)
        .map(|(nd, p, a)| json!({"node": sc.nodes[nd].id, "phase": format!("L{}", p + 1), "a_s": a}));
    let mut decision_ns = Vec::new();
    let times = policy.times().map(|h| {
        decision_ns = vec![h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()];
        json!({
            "calls": h.len(),
            "p50_us": h.value_at_quantile(0.5) as f64 / 1000.0,
            "p99_us": h.value_at_quantile(0.99) as f64 / 1000.0,
            "max_us": h.max() as f64 / 1000.0,
            "mean_us": h.mean() / 1000.0,
        })
    });
    let run = Run {
        controller: policy.name().into(),
        site: sc.name.clone(),
        chargers: sc.chargers.len(),
        horizon_s: sc.horizon_s,
        raw_as: acc.raw_total(),
        preventable_as: acc.preventable_total(),
        utilisation: acc.utilisation(),
        energy_wh: acc.energy_wh,
        need_wh,
        satisfied,
        sessions: sc.sessions.len(),
        jain: jain(&ratios),
        cost_eur: acc.cost_eur,
        messages,
        calls,
        decision_ns,
        json: Value::Null,
    };
    let json = json!({
        "controller": run.controller,
        "site": run.site,
        "chargers": run.chargers,
        "horizon_s": run.horizon_s,
        "violation_raw_a_s": run.raw_as,
        "violation_preventable_a_s": run.preventable_as,
        "violation_raw_seconds": acc.raw_seconds,
        "violation_preventable_seconds": acc.preventable_seconds,
        "violation_worst_excess_a": acc.worst_a,
        "worst_preventable_node_phase": worst,
        "violation_raw_by_node": sc.nodes.iter().zip(&acc.raw).filter(|(_, a)| a.iter().any(|&x| x > 0.0))
            .map(|(n, a)| json!({"node": n.id, "a_s": a})).collect::<Vec<_>>(),
        "violation_preventable_by_node": sc.nodes.iter().zip(&acc.preventable).filter(|(_, a)| a.iter().any(|&x| x > 0.0))
            .map(|(n, a)| json!({"node": n.id, "a_s": a})).collect::<Vec<_>>(),
        "preventable_episodes": acc.episodes.iter().map(|e| json!({
            "node": sc.nodes[e.node].id, "phase": format!("L{}", e.phase + 1),
            "start": (sc.start + Duration::seconds(e.start as i64)).to_rfc3339(),
            "seconds": e.seconds, "max_excess_a": e.max_a, "a_s": e.a_s,
        })).collect::<Vec<_>>(),
        "utilisation": run.utilisation,
        "energy_kwh": run.energy_wh / 1000.0,
        "need_kwh": need_wh / 1000.0,
        "energy_of_need": run.energy_wh / need_wh.max(1.0),
        "sessions": run.sessions,
        // Per session, for finding out whom a controller leaves short.
        "per_session": sc.sessions.iter().zip(&ratios).map(|(s, r)| json!({
            "id": s.id, "arrival_s": s.arrival, "stay_s": s.departure - s.arrival, "tells": s.tells,
            "phases": s.eff_phases, "cap_a": s.cap_current, "sleepy": s.sleepy,
            "need_kwh": s.need_wh / 1000.0, "of_need": r,
        })).collect::<Vec<_>>(),
        "sessions_satisfied": satisfied,
        "cars_asleep": asleep,
        "jain": run.jain,
        "cost_eur": run.cost_eur,
        "profile_messages": messages,
        "profile_messages_per_charger_hour": run.msgs_per_charger_hour(),
        "controller_calls": calls,
        "decision_time": times,
        "notes": policy.notes(),
        "wall_s": started.elapsed().as_secs_f64(),
    });
    Ok(Run { json, ..run })
}
