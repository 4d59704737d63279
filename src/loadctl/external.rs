//! What bounds an EVSE besides the site's circuits: limits other sources
//! set on the charger (NotifyChargingLimit, until ClearedChargingLimit) and
//! what the car says it can take (NotifyEVChargingNeeds). The optimiser
//! sees them as a lower `max_current`, so the capacity a limited charger
//! cannot use goes to the others. Also the check of a car's own plan
//! (NotifyEVChargingSchedule) against the limit we sent it.

use super::view::Cap;
use super::world::{World, evses};
use crate::config::DlmConfig;
use crate::domain::Charger;
use crate::domain::device::Schedule;
use chrono::{DateTime, Utc};

/// Below this a car cannot charge on AC (IEC 61851): a lower limit pauses it.
const AC_MIN_A: f64 = 6.0;
/// A car planning more than we allowed by this much is reported (A).
const MISMATCH_A: f64 = 0.5;

impl World {
    /// The tightest bound on one EVSE at `now` (A per phase), and who set
    /// it. A limit on the whole charger (EVSE 0) is shared evenly by its
    /// EVSEs; on AC a bound below 6 A is 0 (the car pauses under it).
    pub fn cap(&self, ch: &Charger, evse: u32, now: DateTime<Utc>, cfg: &DlmConfig) -> Option<Cap> {
        let dc = ch.max_power_w.is_some();
        let share = evses(ch).len().max(1) as f64;
        let mut best: Option<Cap> = None;
        let mut consider = |current: f64, source: &str| {
            if best.as_ref().is_none_or(|b| current < b.current) {
                best = Some(Cap {
                    current,
                    source: source.to_string(),
                });
            }
        };
        for l in self.limits.iter().filter(|l| l.charger == ch.id) {
            let Some(a) = l.amps_at(now, if dc { 3 } else { ch.phases }, cfg.voltage) else {
                continue;
            };
            match l.evse {
                0 => consider(a / share, &l.source),
                e if e == evse => consider(a, &l.source),
                _ => {}
            }
        }
        let session = self.session_at(&ch.id, evse).map(|s| s.id);
        if let Some(needs) = self
            .ev
            .get(&(ch.id.clone(), evse))
            .filter(|i| i.session.is_some() && i.session == session)
            .and_then(|i| i.needs.as_ref())
        {
            match (dc, needs.max_current_a, needs.max_power_w) {
                (true, _, Some(w)) => consider(w / (3.0 * cfg.voltage), "ev"),
                (false, Some(a), _) => consider(a, "ev"),
                _ => {}
            }
        }
        best.map(|mut b| {
            if !dc && b.current < AC_MIN_A {
                b.current = 0.0;
            }
            b
        })
    }
}

/// How a car's plan differs from the limit we last sent it (A per phase),
/// if it plans more than that now.
pub fn schedule_mismatch(
    schedule: &Schedule,
    received: DateTime<Utc>,
    sent_current: f64,
    phases: u8,
    volts: f64,
) -> Option<String> {
    let planned = schedule.amps_at(received, received, phases, volts)?;
    (planned > sent_current + MISMATCH_A)
        .then(|| format!("the car plans {planned:.1} A per phase but was allowed {sent_current:.1} A"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Registration;
    use crate::domain::device::{EvInfo, EvNeeds, ExternalLimit, SchedulePeriod};
    use crate::domain::message::RateUnit;

    fn limit(evse: u32, amps: f64, duration_s: Option<u32>, at: DateTime<Utc>) -> ExternalLimit {
        ExternalLimit {
            charger: "CP".into(),
            evse,
            source: "EMS".into(),
            grid_critical: None,
            schedules: vec![Schedule {
                start: None,
                duration_s,
                unit: RateUnit::A,
                periods: vec![SchedulePeriod {
                    start_s: 0,
                    limit: amps,
                    phases: None,
                }],
            }],
            received_at: at,
        }
    }

    #[test]
    fn limits_and_the_car_bound_an_evse_and_a_station_limit_is_shared() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let cfg = DlmConfig::default();
        let mut w = World::default();
        let mut ch = Charger::new("CP", Registration::Accepted, now);
        ch.connector_mut(1, 1);
        ch.connector_mut(2, 1);
        w.limits = vec![limit(0, 20.0, Some(600), now)];
        assert_eq!(w.cap(&ch, 1, now, &cfg).map(|c| c.current), Some(10.0));
        w.limits.push(limit(2, 8.0, Some(600), now));
        assert_eq!(
            w.cap(&ch, 2, now, &cfg).map(|c| (c.current, c.source)),
            Some((8.0, "EMS".into()))
        );
        // Past its schedule's duration a limit no longer bounds.
        assert_eq!(w.cap(&ch, 1, now + chrono::Duration::seconds(601), &cfg), None);
        // Below 6 A an AC car pauses.
        w.limits = vec![limit(1, 4.0, None, now)];
        assert_eq!(w.cap(&ch, 1, now, &cfg).map(|c| c.current), Some(0.0));
        // The car's own maximum counts only for the session it came with.
        w.limits.clear();
        let needs = EvNeeds {
            departure: None,
            energy_wh: None,
            max_current_a: Some(13.0),
            max_power_w: None,
            received_at: now,
        };
        w.ev.insert(
            ("CP".into(), 1),
            EvInfo {
                session: Some(7),
                needs: Some(needs),
                ..EvInfo::default()
            },
        );
        assert_eq!(w.cap(&ch, 1, now, &cfg), None, "no session open");
        let mut s: crate::domain::Session = serde_json::from_value(serde_json::json!({
            "id": 7, "charger": "CP", "evse": 1, "connector": 1, "token": null, "auth": "accepted",
            "tx_ref": {"kind": "v201", "transaction_id": "t"}, "started_at": now, "stopped_at": null,
            "status": "active", "meter_start_wh": null, "meter_last_wh": null, "meter_stop_wh": null,
            "last_sample_at": null, "stop_reason": null, "closed_by": null, "suspect_since": null,
            "charging_state": null, "last_seq_no": null, "remote_start_id": null, "offline": false,
            "samples": 0, "notes": [], "received_at": now}))
        .unwrap();
        w.sessions.push(s.clone());
        assert_eq!(
            w.cap(&ch, 1, now, &cfg).map(|c| (c.current, c.source)),
            Some((13.0, "ev".into()))
        );
        s.id = 8;
        w.sessions = vec![s];
        assert_eq!(w.cap(&ch, 1, now, &cfg), None, "another car");
    }
}
