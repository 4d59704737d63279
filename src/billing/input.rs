//! The session document the tariff engine prices (`tariff::parse_session`'s
//! format), built from what the store keeps: energy register readings and the
//! charging-state timeline.

use crate::domain::StateChange;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Readings closer than this to the previous one are left out (the state
/// changes are always kept): a long session sampled every few seconds would
/// otherwise store thousands of readings with its bill.
const THIN_MS: i64 = 60_000;

/// A reading of the cumulative energy register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnergyPoint {
    pub t: DateTime<Utc>,
    pub wh: i64,
}

/// The tariff engine's state for a stored charging state (1.6 connector
/// status or 2.0.1 chargingState); `None` for states that say nothing about
/// charging (available, faulted…).
pub fn charge_state(s: &str) -> Option<&'static str> {
    Some(match s {
        "charging" | "Charging" => "charging",
        "suspended_evse" | "SuspendedEVSE" => "suspended_evse",
        "suspended_ev" | "SuspendedEV" | "EVConnected" | "ev_connected" | "Idle" | "idle" | "finishing"
        | "preparing" => "suspended_ev",
        _ => return None,
    })
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `a + (b − a) × num / den`, rounded half away from zero.
fn lerp(a: i64, b: i64, num: i64, den: i64) -> i64 {
    if den <= 0 {
        return b;
    }
    let d = i128::from(b - a) * i128::from(num);
    let den = i128::from(den);
    let q = d / den;
    let r = d % den;
    let q = if 2 * r.abs() >= den { q + d.signum() } else { q };
    a + i64::try_from(q).unwrap_or(0)
}

/// The session document: one reading at `start`, one at each energy point
/// and state change, and a `session_end` reading at `end`. Energy is counted
/// from the first point (the register's absolute value does not matter);
/// between two points it is spread linearly over the time spent `charging`
/// (linearly over all the time when there is none), rounded to whole Wh. The
/// state at a time is the last state change at or before it (`charging`
/// before the first). Times are cut to the millisecond.
pub fn pricing_document(
    timezone: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    energy: &[EnergyPoint],
    states: &[StateChange],
) -> Result<Value, String> {
    let (start, end) = (ms(start), ms(end));
    if end < start {
        return Err(format!(
            "the session ends ({}) before it starts ({})",
            text(end),
            text(start)
        ));
    }
    let mut pts: Vec<(DateTime<Utc>, i64)> = energy.iter().map(|p| (ms(p.t).clamp(start, end), p.wh)).collect();
    pts.sort_by_key(|p| p.0);
    // The register never runs back; a reading at the same instant keeps the highest.
    let mut mono: Vec<(DateTime<Utc>, i64)> = Vec::new();
    for (t, wh) in pts {
        let wh = mono.last().map_or(wh, |l| l.1.max(wh));
        match mono.last_mut() {
            Some(l) if l.0 == t => l.1 = wh,
            _ => mono.push((t, wh)),
        }
    }
    if mono.is_empty() {
        mono.push((start, 0));
    }
    let base = mono[0].1;
    let mapped: Vec<(DateTime<Utc>, &str)> = states
        .iter()
        .filter_map(|s| charge_state(&s.state).map(|st| (ms(s.t), st)))
        .collect();
    let state_at = |t: DateTime<Utc>| -> &str {
        mapped
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map_or("charging", |(_, st)| st)
    };
    // Milliseconds spent `charging` from `start` to `t`: energy flows only
    // then (suspended_ev: the EV asks for none; suspended_evse: the EVSE
    // delivers none).
    let mut bounds: Vec<(DateTime<Utc>, bool)> = vec![(start, state_at(start) == "charging")];
    for &(t, st) in &mapped {
        if t > start && t < end {
            bounds.push((t, st == "charging"));
        }
    }
    let charging_ms = |t: DateTime<Utc>| -> i64 {
        let mut sum = 0;
        for (i, &(from, on)) in bounds.iter().enumerate() {
            if from >= t {
                break;
            }
            let to = bounds.get(i + 1).map_or(t, |b| b.0.min(t));
            if on {
                sum += (to - from).num_milliseconds();
            }
        }
        sum
    };
    let wh_at = |t: DateTime<Utc>| -> i64 {
        let i = mono.partition_point(|p| p.0 <= t);
        if i == 0 {
            return mono[0].1 - base;
        }
        let (t0, a) = mono[i - 1];
        match mono.get(i) {
            None => a - base,
            Some(&(t1, b)) => {
                let (c0, c1) = (charging_ms(t0), charging_ms(t1));
                let wh = if c1 > c0 {
                    lerp(a, b, charging_ms(t) - c0, c1 - c0)
                } else {
                    lerp(a, b, (t - t0).num_milliseconds(), (t1 - t0).num_milliseconds())
                };
                wh - base
            }
        }
    };
    let mut times = BTreeSet::new();
    times.insert(start);
    let mut last_kept = start;
    for &(t, _) in &mono {
        if t > start && t < end && (t - last_kept).num_milliseconds() >= THIN_MS {
            times.insert(t);
            last_kept = t;
        }
    }
    for &(t, _) in &mapped {
        if t > start && t < end {
            times.insert(t);
        }
    }
    let mut readings = Vec::new();
    let mut prev: Option<&str> = None;
    for &t in &times {
        if t == end {
            break;
        }
        let st = state_at(t);
        // A state change to the same state adds nothing.
        if prev == Some(st) && !mono.iter().any(|p| p.0 == t) {
            continue;
        }
        prev = Some(st);
        readings.push(json!({"t": text(t), "wh": wh_at(t), "state": st}));
    }
    if end > start || readings.is_empty() {
        if end == start {
            readings.clear();
        }
        readings.push(json!({"t": text(end), "wh": wh_at(end), "state": "session_end"}));
    }
    Ok(json!({
        "timezone": timezone,
        "start": text(start),
        "end": text(end),
        "meter_readings": readings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn energy_is_relative_interpolated_at_state_changes_and_ends_with_session_end() {
        let energy = [
            EnergyPoint {
                t: t("2026-01-05T08:00:00Z"),
                wh: 1_000_000,
            },
            EnergyPoint {
                t: t("2026-01-05T09:00:00Z"),
                wh: 1_011_000,
            },
        ];
        let states = [
            StateChange {
                t: t("2026-01-05T07:59:00Z"),
                state: "charging".into(),
            },
            StateChange {
                t: t("2026-01-05T08:30:00Z"),
                state: "SuspendedEV".into(),
            },
            StateChange {
                t: t("2026-01-05T08:40:00Z"),
                state: "faulted".into(),
            },
        ];
        let doc = pricing_document(
            "Europe/Berlin",
            t("2026-01-05T08:00:00Z"),
            t("2026-01-05T09:00:00Z"),
            &energy,
            &states,
        )
        .unwrap();
        let r = doc["meter_readings"].as_array().unwrap();
        assert_eq!(r.len(), 3, "{doc}");
        assert_eq!(
            r[0],
            json!({"t": "2026-01-05T08:00:00.000Z", "wh": 0, "state": "charging"})
        );
        // all the energy flowed while charging, none while the EV was parked
        assert_eq!(
            r[1],
            json!({"t": "2026-01-05T08:30:00.000Z", "wh": 11000, "state": "suspended_ev"})
        );
        assert_eq!(r[2]["state"], "session_end");
        assert_eq!(r[2]["wh"], 11_000);
        let s = crate::tariff::parse_session(&doc.to_string()).unwrap();
        assert_eq!(s.meter_readings.len(), 3);
        // charging 08:00–08:20 and 08:40–09:00, paused by the EVSE between
        let states = [
            StateChange {
                t: t("2026-01-05T08:20:00Z"),
                state: "SuspendedEVSE".into(),
            },
            StateChange {
                t: t("2026-01-05T08:40:00Z"),
                state: "Charging".into(),
            },
        ];
        let doc = pricing_document(
            "UTC",
            t("2026-01-05T08:00:00Z"),
            t("2026-01-05T09:00:00Z"),
            &energy,
            &states,
        )
        .unwrap();
        let wh: Vec<i64> = doc["meter_readings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["wh"].as_i64().unwrap())
            .collect();
        assert_eq!(wh, [0, 5500, 5500, 11000], "{doc}");
        // never charging: spread over the whole time
        let parked = [StateChange {
            t: t("2026-01-05T07:00:00Z"),
            state: "SuspendedEV".into(),
        }];
        let doc = pricing_document(
            "UTC",
            t("2026-01-05T08:00:00Z"),
            t("2026-01-05T09:00:00Z"),
            &energy,
            &parked,
        )
        .unwrap();
        let last = doc["meter_readings"].as_array().unwrap().last().cloned().unwrap();
        assert_eq!(last["wh"], 11000, "{doc}");
        assert_eq!(doc["meter_readings"].as_array().unwrap().len(), 2, "{doc}");
    }

    #[test]
    fn a_backwards_register_and_readings_outside_the_session_are_tamed() {
        let energy = [
            EnergyPoint {
                t: t("2026-01-05T07:00:00Z"),
                wh: 10,
            },
            EnergyPoint {
                t: t("2026-01-05T08:10:00Z"),
                wh: 500,
            },
            EnergyPoint {
                t: t("2026-01-05T08:20:00Z"),
                wh: 400,
            },
        ];
        let doc = pricing_document(
            "UTC",
            t("2026-01-05T08:00:00Z"),
            t("2026-01-05T08:30:00Z"),
            &energy,
            &[],
        )
        .unwrap();
        assert!(crate::tariff::parse_session(&doc.to_string()).is_ok(), "{doc}");
        let r = doc["meter_readings"].as_array().unwrap();
        assert_eq!(r.last().unwrap()["wh"], 490);
        assert!(pricing_document("UTC", t("2026-01-05T09:00:00Z"), t("2026-01-05T08:00:00Z"), &[], &[]).is_err());
        let zero = pricing_document("UTC", t("2026-01-05T09:00:00Z"), t("2026-01-05T09:00:00Z"), &[], &[]).unwrap();
        assert!(crate::tariff::parse_session(&zero.to_string()).is_ok(), "{zero}");
    }
}
