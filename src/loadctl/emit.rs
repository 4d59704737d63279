//! From limits to charging profiles: which EVSEs need a new profile, in
//! which order (every decrease is answered before any increase goes out),
//! and the safe profiles a charger gets when it boots.

use super::Signal;
use super::world::{Key, World, dlm_id, evses};
use crate::config::DlmConfig;
use crate::dlm::{Allocation, SiteState};
use crate::domain::message::{ChargingProfile, Command, ProfilePurpose, RateUnit};
use crate::domain::{ChargerTxRef, Session};
use crate::server::Shared;
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How long the decreases of one decision may hold back its increases.
const DECREASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// A refused profile is tried again after this long.
pub const RETRY: Duration = Duration::seconds(30);

const CHARGER_MAX_ID: i64 = 1;
const TX_DEFAULT_ID: i64 = 2;
/// Steering profiles: one id per EVSE, so each replaces the one before.
const STEER_ID: i64 = 100;
const STEER_DEFAULT_ID: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InFlight,
    Accepted,
    Rejected,
}

/// The last profile sent to an EVSE.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub session: u64,
    /// A per phase (grid-side equivalent for DC).
    pub current: f64,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub state: State,
    /// The charger refused a TxProfile, so it is steered with TxDefault.
    pub as_default: bool,
}

/// What a disconnected charger may still draw: the limit it was given,
/// while that profile lasts.
pub fn still_in_force(sent: Option<&Sent>, now: DateTime<Utc>) -> Option<f64> {
    sent.filter(|s| s.state != State::Rejected && s.until > now)
        .map(|s| s.current)
}

#[derive(Debug)]
pub struct Order {
    key: Key,
    evse: u32,
    profile: ChargingProfile,
    sent: Sent,
    decrease: bool,
}

/// The profiles one decision needs.
#[allow(clippy::too_many_arguments)]
pub fn orders(
    world: &World,
    state: &SiteState,
    alloc: &Allocation,
    sent: &HashMap<Key, Sent>,
    fresh: &HashSet<Key>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    cfg: &DlmConfig,
) -> Vec<Order> {
    let by_id: HashMap<&str, &crate::dlm::ChargerState> = state.chargers.iter().map(|c| (c.id.as_str(), c)).collect();
    let lifetime = Duration::seconds(i64::from(cfg.profile_duration_s));
    let mut out = Vec::new();
    for limit in &alloc.limits {
        let Some(cs) = by_id.get(limit.charger.as_str()) else {
            continue;
        };
        let Some(key) = key_of(world, &limit.charger) else {
            continue;
        };
        let Some(session) = world.session_at(&key.0, key.1) else {
            continue;
        };
        if !cs.connected {
            continue;
        }
        let current = (limit.current * 10.0).floor() / 10.0;
        let prev = sent.get(&key);
        let due = match prev {
            None => true,
            Some(p) if p.state == State::InFlight => false,
            Some(p) if p.session != session.id => true,
            Some(p) if p.state == State::Rejected => now - p.at >= RETRY,
            Some(p) => (p.current - current).abs() >= 0.1 || p.until - now < lifetime / 4,
        };
        if !due {
            continue;
        }
        let decrease = match prev {
            Some(p) if p.session == session.id && p.state != State::Rejected => current < p.current,
            _ => current < cfg.default_current,
        };
        let warm = fresh.contains(&key) || now >= started + Duration::seconds(cfg.warmup_s as i64);
        if !decrease && !warm {
            continue;
        }
        // A charger that refused a TxProfile is steered through TxDefault.
        let as_default = prev.is_some_and(|p| p.as_default || (p.state == State::Rejected && p.session == session.id));
        let dc = limit.power_w.is_some() || cs.max_power_w.is_some();
        let (unit, value) = match limit.power_w {
            Some(w) if dc => (RateUnit::W, w.floor()),
            _ if dc => (RateUnit::W, (current * 3.0 * cfg.voltage).floor()),
            _ => (RateUnit::A, current),
        };
        let start = now - Duration::seconds(60);
        let profile = ChargingProfile {
            id: if as_default { STEER_DEFAULT_ID } else { STEER_ID } + i64::from(key.1),
            stack_level: 1,
            purpose: if as_default {
                ProfilePurpose::TxDefault
            } else {
                ProfilePurpose::Tx
            },
            transaction_id: (!as_default).then(|| transaction_id(session)),
            start: Some(start),
            duration_s: Some(cfg.profile_duration_s + 60),
            unit,
            limit: value,
            number_phases: (!dc).then_some(cs.phases),
        };
        out.push(Order {
            evse: key.1,
            sent: Sent {
                session: session.id,
                current,
                at: now,
                until: start + lifetime + Duration::seconds(60),
                state: State::InFlight,
                as_default,
            },
            key,
            profile,
            decrease,
        });
    }
    out
}

fn key_of(world: &World, id: &str) -> Option<Key> {
    let (charger, evse) = match id.rsplit_once('/') {
        Some((c, e)) => (c, e.parse().ok()?),
        None => {
            let ch = world.chargers.get(id)?;
            (id, *evses(ch).first()?)
        }
    };
    let ch = world.chargers.get(charger)?;
    (dlm_id(ch, evse) == id).then(|| (charger.to_string(), evse))
}

fn transaction_id(s: &Session) -> String {
    match &s.tx_ref {
        ChargerTxRef::V16 { .. } => s.id.to_string(),
        ChargerTxRef::V201 { transaction_id } => transaction_id.clone(),
    }
}

/// Send one decision's profiles: decreases first, and increases only once
/// the decreases are answered (or `DECREASE_WAIT` has passed).
pub async fn send(shared: &Arc<Shared>, sent: &mut HashMap<Key, Sent>, orders: Vec<Order>) {
    let (down, up): (Vec<Order>, Vec<Order>) = orders.into_iter().partition(|o| o.decrease);
    let mut waiting = Vec::new();
    for o in down {
        sent.insert(o.key.clone(), o.sent.clone());
        waiting.push(tokio::spawn(call(shared.clone(), o)));
    }
    if !waiting.is_empty() {
        let all = futures_util::future::join_all(waiting);
        let _ = tokio::time::timeout(DECREASE_WAIT, all).await;
    }
    for o in up {
        sent.insert(o.key.clone(), o.sent.clone());
        tokio::spawn(call(shared.clone(), o));
    }
}

async fn call(shared: Arc<Shared>, o: Order) {
    let cmd = Command::SetProfile {
        evse: o.evse,
        profile: o.profile,
    };
    let r = shared.registry.call(&o.key.0, cmd, shared.config.call_timeout()).await;
    let accepted = matches!(&r, Ok(res) if res.accepted());
    if !accepted {
        tracing::info!(charger = o.key.0, evse = o.evse, "charging profile not applied: {r:?}");
    }
    shared.load.signal(Signal::Answer {
        key: o.key,
        sent: o.sent,
        accepted,
    });
}

pub fn answered(map: &mut HashMap<Key, Sent>, key: Key, sent: Sent, accepted: bool) {
    if let Some(cur) = map.get_mut(&key)
        && cur.at == sent.at
        && cur.session == sent.session
    {
        cur.state = if accepted { State::Accepted } else { State::Rejected };
    }
}

/// At boot: the charger's own maximum as a ChargePointMax profile, and a
/// low TxDefault so that a session starts safe until it is steered.
pub fn baseline(shared: Arc<Shared>, charger: String) {
    tokio::spawn(async move {
        let Ok(Some(ch)) = shared.store.charger(&charger) else {
            return;
        };
        let cfg = &shared.config.dlm;
        let dc = ch.max_power_w;
        let (unit, max, low) = match dc {
            Some(w) => (
                RateUnit::W,
                f64::from(w),
                (cfg.default_current * 3.0 * cfg.voltage).floor(),
            ),
            None => (
                RateUnit::A,
                ch.max_current.map_or(cfg.charger_max_current, f64::from),
                cfg.default_current,
            ),
        };
        let phases = dc.is_none().then_some(ch.phases);
        let profiles = [
            ChargingProfile {
                id: CHARGER_MAX_ID,
                stack_level: 0,
                purpose: ProfilePurpose::ChargerMax,
                transaction_id: None,
                start: Some(Utc::now() - Duration::seconds(60)),
                duration_s: None,
                unit,
                limit: max,
                number_phases: phases,
            },
            ChargingProfile {
                id: TX_DEFAULT_ID,
                stack_level: 0,
                purpose: ProfilePurpose::TxDefault,
                transaction_id: None,
                start: None,
                duration_s: None,
                unit,
                limit: low,
                number_phases: phases,
            },
        ];
        for profile in profiles {
            let purpose = profile.purpose;
            let cmd = Command::SetProfile { evse: 0, profile };
            match shared.registry.call(&charger, cmd, shared.config.call_timeout()).await {
                Ok(r) if r.accepted() => {}
                other => tracing::info!(charger, ?purpose, "safe profile not installed: {other:?}"),
            }
        }
    });
}
