//! Splitting a session into periods inside which no restriction can change,
//! and matching restrictions at the start of each period.
//!
//! Boundaries: every reading (state, power and current change only there);
//! every local occurrence of a `start_time` / `end_time` of the tariff and of
//! local midnight (date and weekday), in the site's time zone, including both
//! occurrences of a repeated local time and the jump over a skipped one; every
//! UTC-offset change (local time jumps back at the end of DST); `start +
//! min_duration` and `start + max_duration`; and every `min_kwh` / `max_kwh`
//! threshold, found by linear interpolation inside a reading interval.

use super::model::{Restrictions, Tariff};
use super::session::{ChargeState, Session};
use chrono::{
    DateTime, Datelike as _, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone as _,
    Utc, Weekday,
};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::BTreeSet;

const THOUSAND: Decimal = Decimal::from_parts(1000, 0, 0, false, 0);
const MS_PER_H: Decimal = Decimal::from_parts(3_600_000, 0, 0, false, 0);

/// The power and current of a reading interval, as restrictions see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// kW: the interval's `min_kw`, else its average power.
    pub power_min: Decimal,
    /// kW: the interval's `max_kw`, else its average power.
    pub power_max: Decimal,
    /// A: `min_a` / `max_a` (one stands in for the other when only one is given).
    pub current: Option<(Decimal, Decimal)>,
}

/// A period in which every restriction keeps its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Atom {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Session energy (Wh since the first reading) at the start and the end.
    pub e_start: Decimal,
    pub e_end: Decimal,
    pub state: ChargeState,
    pub load: Load,
    /// Index of the reading the period lies after.
    pub reading: usize,
}

impl Atom {
    pub fn energy_wh(&self) -> Decimal {
        self.e_end - self.e_start
    }
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

pub(crate) fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The session cut into atoms (empty for a session of zero length).
pub(crate) fn split(tariff: &Tariff, s: &Session) -> Vec<Atom> {
    let start = s.start.timestamp_millis();
    let end = s.end.timestamp_millis();
    let cuts = time_cuts(tariff, s, start, end);
    let mut thresholds: BTreeSet<Decimal> = BTreeSet::new();
    for el in &tariff.elements {
        for k in [el.restrictions.min_kwh, el.restrictions.max_kwh].into_iter().flatten() {
            thresholds.insert(k * THOUSAND);
        }
    }
    let Some(first) = s.meter_readings.first() else {
        return Vec::new();
    };
    let base = first.wh;
    let mut atoms = Vec::new();
    for (i, rd) in s.meter_readings.iter().enumerate() {
        if rd.state == ChargeState::SessionEnd {
            break;
        }
        let next = s.meter_readings.get(i + 1);
        let t0 = rd.t.timestamp_millis();
        let t1 = next.map_or(end, |n| n.t.timestamp_millis());
        if t1 <= t0 {
            continue;
        }
        let e0 = rd.wh - base;
        let e1 = next.map_or(e0, |n| n.wh - base);
        let load = load(rd, e1 - e0, t1 - t0);
        let points = interval_points(t0, e0, t1, e1, &cuts, &thresholds);
        for w in points.windows(2) {
            let ((a_t, a_e), (b_t, b_e)) = (w[0], w[1]);
            if b_t == a_t && b_e == a_e {
                continue;
            }
            atoms.push(Atom {
                start_ms: a_t,
                end_ms: b_t,
                e_start: a_e,
                e_end: b_e,
                state: rd.state,
                load,
                reading: i,
            });
        }
    }
    atoms
}

fn load(rd: &super::session::Reading, energy_wh: Decimal, ms: i64) -> Load {
    // kW = Wh / 1000 / (ms / 3 600 000) = Wh × 3600 / ms
    let avg = if ms > 0 {
        energy_wh * Decimal::from(3600) / Decimal::from(ms)
    } else {
        Decimal::ZERO
    };
    let current = match (rd.min_a, rd.max_a) {
        (Some(a), Some(b)) => Some((a, b)),
        (Some(a), None) | (None, Some(a)) => Some((a, a)),
        (None, None) => None,
    };
    Load {
        power_min: rd.min_kw.unwrap_or(avg),
        power_max: rd.max_kw.unwrap_or(avg),
        current,
    }
}

/// The (time, energy) points of one reading interval, in order: its ends,
/// the time cuts inside it (energy interpolated, rounded to whole Wh) and
/// the kWh thresholds inside it (time interpolated, rounded to the ms).
fn interval_points(
    t0: i64,
    e0: Decimal,
    t1: i64,
    e1: Decimal,
    cuts: &BTreeSet<i64>,
    thresholds: &BTreeSet<Decimal>,
) -> Vec<(i64, Decimal)> {
    // (time, energy, fixed): fixed points keep their energy exactly.
    let mut pts: Vec<(i64, Decimal, bool)> = vec![(t0, e0, true), (t1, e1, true)];
    let de = e1 - e0;
    let dt = Decimal::from(t1 - t0);
    for &c in cuts.range(t0 + 1..t1) {
        let e =
            e0 + (de * Decimal::from(c - t0) / dt).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        pts.push((c, e.clamp(e0, e1), false));
    }
    if de > Decimal::ZERO {
        for &th in thresholds.iter().filter(|&&th| th > e0 && th < e1) {
            let off = ((th - e0) * dt / de).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
            let t = t0 + i64::try_from(off).unwrap_or(0);
            pts.push((t.clamp(t0, t1), th, true));
        }
    }
    pts.sort_by_key(|p| (p.0, p.1));
    // Interpolated energies may not cross a fixed point: clamp between the
    // fixed energies before and after.
    let mut lo = e0;
    for p in pts.iter_mut() {
        if p.2 {
            lo = p.1;
        } else if p.1 < lo {
            p.1 = lo;
        }
    }
    let mut hi = e1;
    for p in pts.iter_mut().rev() {
        if p.2 {
            hi = p.1;
        } else if p.1 > hi {
            p.1 = hi;
        }
    }
    pts.into_iter().map(|(t, e, _)| (t, e)).collect()
}

/// Instants (ms) strictly inside the session where a time-based restriction may change.
fn time_cuts(tariff: &Tariff, s: &Session, start: i64, end: i64) -> BTreeSet<i64> {
    let mut cuts = BTreeSet::new();
    let mut add = |ms: i64| {
        if ms > start && ms < end {
            cuts.insert(ms);
        }
    };
    for rd in &s.meter_readings {
        add(rd.t.timestamp_millis());
    }
    let mut times: BTreeSet<NaiveTime> = BTreeSet::new();
    times.insert(NaiveTime::MIN);
    for el in &tariff.elements {
        let r = &el.restrictions;
        times.extend(r.start_time);
        times.extend(r.end_time);
        for d in [r.min_duration, r.max_duration].into_iter().flatten() {
            let d = i64::try_from(d).unwrap_or(i64::MAX / 2).saturating_mul(1000);
            add(start.saturating_add(d));
        }
    }
    let tz = s.timezone;
    let first = s.start.with_timezone(&tz).date_naive().pred_opt();
    let last = s.end.with_timezone(&tz).date_naive().succ_opt();
    if let (Some(first), Some(last)) = (first, last) {
        let mut day = first;
        while day <= last {
            for t in &times {
                for at in local_instants(tz, day.and_time(*t)) {
                    add(at.timestamp_millis());
                }
            }
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
    }
    for at in offset_changes(tz, start, end) {
        add(at);
    }
    cuts
}

/// The instants at which the local wall clock shows `naive`: one, two (a
/// repeated hour) or, when the time is skipped, the instant of the jump.
fn local_instants(tz: Tz, naive: NaiveDateTime) -> Vec<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => vec![d.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
        LocalResult::None => {
            // Skipped: the first valid local minute after it is the jump.
            for m in 1..=24 * 60 {
                if let Some(d) = tz.from_local_datetime(&(naive + Duration::minutes(m))).earliest() {
                    return vec![d.with_timezone(&Utc)];
                }
            }
            Vec::new()
        }
    }
}

/// Instants (ms, whole seconds) inside `[start, end]` where the UTC offset changes.
fn offset_changes(tz: Tz, start: i64, end: i64) -> Vec<i64> {
    const STEP: i64 = 15 * 60 * 1000;
    let offset = |ms: i64| tz.offset_from_utc_datetime(&ms_to_utc(ms).naive_utc()).fix();
    let mut out = Vec::new();
    let mut a = start;
    while a < end {
        let b = (a + STEP).min(end);
        if offset(a) != offset(b) {
            // Binary search on whole seconds for the first instant with the new offset.
            let (mut lo, mut hi) = (a.div_euclid(1000), b.div_euclid(1000) + 1);
            let old = offset(a);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(mid * 1000) == old {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push(hi * 1000);
        }
        a = b;
    }
    out
}

/// What restrictions are evaluated against: the state at a period's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub local_time: NaiveTime,
    pub local_date: NaiveDate,
    pub weekday: Weekday,
    pub energy_wh: Decimal,
    pub elapsed_ms: i64,
    pub load: Load,
}

impl Snapshot {
    pub fn at(atom: &Atom, s: &Session) -> Snapshot {
        let local = ms_to_utc(atom.start_ms).with_timezone(&s.timezone).naive_local();
        Snapshot {
            local_time: local.time(),
            local_date: local.date(),
            weekday: local.weekday(),
            energy_wh: atom.e_start,
            elapsed_ms: atom.start_ms - s.start.timestamp_millis(),
            load: atom.load,
        }
    }
}

/// Whether every restriction holds at the snapshot (OCPI 2.2.1 §11.4.6: a logical AND).
pub(crate) fn matches(r: &Restrictions, s: &Snapshot) -> bool {
    // end_time 00:00 is the end of the day; end < start wraps past midnight.
    let t = s.local_time;
    let time_ok = match (r.start_time, r.end_time) {
        (None, None) => true,
        (Some(a), None) => t >= a,
        (None, Some(b)) => b == NaiveTime::MIN || t < b,
        (Some(a), Some(b)) if b == NaiveTime::MIN => t >= a,
        (Some(a), Some(b)) if b < a => t >= a || t < b,
        (Some(a), Some(b)) => t >= a && t < b,
    };
    let date_ok = r.start_date.is_none_or(|d| s.local_date >= d) && r.end_date.is_none_or(|d| s.local_date < d);
    let kwh_ok =
        r.min_kwh.is_none_or(|k| s.energy_wh >= k * THOUSAND) && r.max_kwh.is_none_or(|k| s.energy_wh < k * THOUSAND);
    let dur_ok = r
        .min_duration
        .is_none_or(|d| i128::from(s.elapsed_ms) >= i128::from(d) * 1000)
        && r.max_duration
            .is_none_or(|d| i128::from(s.elapsed_ms) < i128::from(d) * 1000);
    let power_ok =
        r.min_power.is_none_or(|p| s.load.power_min >= p) && r.max_power.is_none_or(|p| s.load.power_max < p);
    // Unknown current: a current restriction cannot be shown to hold.
    let current_ok = match s.load.current {
        Some((lo, hi)) => r.min_current.is_none_or(|a| lo >= a) && r.max_current.is_none_or(|a| hi < a),
        None => r.min_current.is_none() && r.max_current.is_none(),
    };
    let day_ok = r.day_of_week.is_empty() || r.day_of_week.contains(&s.weekday);
    // A session carries no reservation: reservation elements never apply.
    let reservation_ok = r.reservation.is_none();
    time_ok && date_ok && kwh_ok && dur_ok && power_ok && current_ok && day_ok && reservation_ok
}

/// Hours as a decimal (for CDR volumes): ms / 3 600 000.
pub(crate) fn ms_to_hours(ms: i64) -> Decimal {
    Decimal::from(ms) / MS_PER_H
}
