//! A completed session in, its bill out: which tariff, the Eichrecht check,
//! the energy to price and the price.

use super::eichrecht;
use super::input::{EnergyPoint, pricing_document};
use super::model::{Assignment, Bill, EichrechtState, EnergySource, MeterKey, PriceSummary, StoredTariff};
use crate::domain::meter::ENERGY_IMPORT;
use crate::domain::{Sample, Session};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;

/// The assignment in force for a session starting at `at` on `charger` at
/// `site` with a token of `group`: a group assignment beats a charger
/// assignment beats a site assignment; within one scope the newest wins.
pub fn resolve<'a>(
    assignments: &'a [Assignment],
    at: DateTime<Utc>,
    charger: &str,
    site: &str,
    group: Option<&str>,
) -> Option<&'a Assignment> {
    use super::model::Scope;
    assignments
        .iter()
        .filter(|a| a.valid_at(at))
        .filter(|a| match &a.scope {
            Scope::Group(g) => group == Some(g.as_str()),
            Scope::Charger(c) => c == charger,
            Scope::Site(s) => s == site,
        })
        .min_by_key(|a| (a.scope.rank(), Reverse(a.id)))
}

/// Everything a bill is computed from.
pub struct BillInput<'a> {
    pub session: &'a Session,
    pub samples: &'a [Sample],
    pub site: &'a str,
    /// The site's IANA time zone.
    pub timezone: &'a str,
    pub group: Option<&'a str>,
    /// The assignment `resolve` chose, and its tariff (`None` when it no longer exists).
    pub assignment: Option<&'a Assignment>,
    pub tariff: Option<&'a StoredTariff>,
    pub meter_keys: &'a [MeterKey],
    pub now: DateTime<Utc>,
}

/// The energy register readings of the session's (unsigned) meter values,
/// with the start and stop registers from Start/StopTransaction.
fn energy_points(s: &Session, samples: &[Sample]) -> Vec<EnergyPoint> {
    let mut pts = Vec::new();
    if let Some(wh) = s.meter_start_wh {
        pts.push(EnergyPoint { t: s.started_at, wh });
    }
    pts.extend(
        samples
            .iter()
            .filter(|x| x.measurand == ENERGY_IMPORT && x.signed.is_none() && x.unit == "Wh")
            .filter(|x| x.phase.is_none() || x.phase.as_deref() == Some("N"))
            .filter(|x| x.location != "EV")
            .map(|x| EnergyPoint {
                t: x.t,
                wh: x.value_milli.div_euclid(1000),
            }),
    );
    if let (Some(wh), Some(t)) = (s.meter_stop_wh, s.stopped_at) {
        pts.push(EnergyPoint { t, wh });
    }
    pts
}

/// Bills a completed session. Pure.
pub fn bill(i: &BillInput) -> Bill {
    let s = i.session;
    let eichrecht = eichrecht::check(&s.charger, s.evse, i.samples, i.meter_keys);
    let mut bill = Bill {
        session: s.id,
        charger: s.charger.clone(),
        computed_at: i.now,
        timezone: i.timezone.to_string(),
        eichrecht,
        price: None,
        unpriced_reason: None,
        tariff_text: None,
        pricing_session: None,
    };
    let unpriced = |mut b: Bill, why: String| {
        b.unpriced_reason = Some(why);
        b
    };
    let Some(end) = s.stopped_at else {
        return unpriced(bill, "the session is still in progress".into());
    };
    let (points, source) = match bill.eichrecht.state {
        EichrechtState::Failed => {
            let first = bill.eichrecht.problems.first().cloned().unwrap_or_default();
            return unpriced(
                bill,
                format!("not billed: the signed meter data did not pass verification ({first})"),
            );
        }
        EichrechtState::Verified => {
            let wh = bill.eichrecht.energy_wh.unwrap_or(0);
            let pts = vec![EnergyPoint { t: s.started_at, wh: 0 }, EnergyPoint { t: end, wh }];
            if wh != s.energy_wh() {
                bill.eichrecht.notes.push(format!(
                    "the signed readings give {wh} Wh, the charger's OCPP meter values {} Wh; billed: {wh} Wh",
                    s.energy_wh()
                ));
            }
            (pts, EnergySource::Signed)
        }
        EichrechtState::Unsigned => (energy_points(s, i.samples), EnergySource::MeterValues),
    };
    let Some(assignment) = i.assignment else {
        let group = i.group.map_or(String::new(), |g| format!("group {g}, "));
        return unpriced(
            bill,
            format!(
                "no tariff is assigned to {group}charger {} or site {} at the session start {}",
                s.charger,
                i.site,
                s.started_at.to_rfc3339()
            ),
        );
    };
    let Some(stored) = i.tariff else {
        return unpriced(
            bill,
            format!(
                "tariff {} (assignment {}) does not exist",
                assignment.tariff_id, assignment.id
            ),
        );
    };
    bill.tariff_text = Some(stored.text.clone());
    let tariff = match crate::tariff::parse_tariff(&stored.text) {
        Ok(t) => t,
        Err(e) => return unpriced(bill, format!("tariff {} cannot be read: {e}", stored.id)),
    };
    let doc = match pricing_document(i.timezone, s.started_at, end, &points, &s.states) {
        Ok(d) => d,
        Err(e) => return unpriced(bill, e),
    };
    bill.pricing_session = Some(doc.clone());
    let session = match crate::tariff::parse_session(&doc.to_string()) {
        Ok(x) => x,
        Err(e) => return unpriced(bill, format!("the session cannot be priced: {e}")),
    };
    let priced = match crate::tariff::price(&tariff, &session) {
        Ok(p) => p,
        Err(e) => return unpriced(bill, e.to_string()),
    };
    let energy_wh = session
        .meter_readings
        .last()
        .zip(session.meter_readings.first())
        .map_or(0, |(l, f)| i64::try_from((l.wh - f.wh).trunc()).unwrap_or(0));
    bill.price = Some(PriceSummary {
        tariff_id: priced.tariff_id.clone(),
        currency: priced.currency.clone(),
        total_excl_vat: priced.totals.excl_vat,
        total_vat: priced.totals.vat,
        total_incl_vat: priced.totals.incl_vat,
        energy_wh,
        energy_source: source,
        scope: Some(assignment.scope.clone()),
        assignment: Some(assignment.id),
    });
    bill
}

#[cfg(test)]
mod tests {
    use super::super::model::Scope;
    use super::*;

    fn a(id: u64, scope: Scope, from: Option<&str>, until: Option<&str>) -> Assignment {
        Assignment {
            id,
            tariff_id: format!("T{id}"),
            scope,
            from: from.map(|f| f.parse().unwrap()),
            until: until.map(|u| u.parse().unwrap()),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn group_beats_charger_beats_site_and_validity_and_newest_count() {
        let list = vec![
            a(1, Scope::Site("s".into()), None, None),
            a(2, Scope::Charger("c".into()), Some("2026-02-01T00:00:00Z"), None),
            a(3, Scope::Group("staff".into()), None, Some("2026-03-01T00:00:00Z")),
            a(4, Scope::Site("s".into()), Some("2026-01-15T00:00:00Z"), None),
            a(5, Scope::Site("other".into()), None, None),
        ];
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        let pick = |t: &str, g: Option<&str>| resolve(&list, at(t), "c", "s", g).map(|x| x.id);
        assert_eq!(pick("2026-01-10T00:00:00Z", None), Some(1));
        assert_eq!(pick("2026-01-20T00:00:00Z", None), Some(4));
        assert_eq!(pick("2026-02-01T00:00:00Z", None), Some(2));
        assert_eq!(pick("2026-02-01T00:00:00Z", Some("staff")), Some(3));
        assert_eq!(pick("2026-03-01T00:00:00Z", Some("staff")), Some(2));
        assert_eq!(pick("2026-01-10T00:00:00Z", Some("guests")), Some(1));
        assert_eq!(resolve(&list, at("2026-01-10T00:00:00Z"), "x", "y", None), None);
    }

    #[test]
    fn current_or_future_counts_open_and_later_ends_not_past_or_cancelled_ones() {
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let site = || Scope::Site("s".into());
        let cases = [
            (a(1, site(), None, None), true),
            (a(2, site(), Some("2027-01-01T00:00:00Z"), None), true),
            (a(3, site(), None, Some("2026-07-01T00:00:00Z")), true),
            (a(4, site(), None, Some("2026-06-01T00:00:00Z")), false),
            (
                a(5, site(), Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z")),
                false,
            ),
            // ended at its own start before it began: cancelled
            (
                a(6, site(), Some("2027-01-01T00:00:00Z"), Some("2027-01-01T00:00:00Z")),
                false,
            ),
        ];
        for (asg, want) in cases {
            assert_eq!(asg.current_or_future(now), want, "{asg:?}");
        }
    }
}
