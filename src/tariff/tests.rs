//! Hand-computed expectations for every feature of the engine. The
//! arithmetic of each expectation is in the comment above it.

use super::*;
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr as _;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A 2.2.1 tariff around `elements` (a JSON array body), with extra top-level fields.
fn tariff_with(elements: &str, extra: &str) -> Tariff {
    let text = format!(
        r#"{{"country_code":"DE","party_id":"VYD","id":"T1","currency":"EUR",{extra}
            "elements":[{elements}],"last_updated":"2026-01-01T00:00:00Z"}}"#
    );
    parse_tariff(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn tariff(elements: &str) -> Tariff {
    tariff_with(elements, "")
}

/// Readings `(t, wh, state)`; the session runs from the first reading to `end`.
fn session(tz: &str, readings: &[(&str, u64, &str)], end: &str) -> Session {
    session_json(
        tz,
        &readings
            .iter()
            .map(|(t, wh, st)| format!(r#"{{"t":"{t}","wh":{wh},"state":"{st}"}}"#))
            .collect::<Vec<_>>(),
        end,
    )
}

fn session_json(tz: &str, readings: &[String], end: &str) -> Session {
    let start = readings[0]
        .split("\"t\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let text = format!(
        r#"{{"timezone":"{tz}","start":"{start}","end":"{end}","meter_readings":[{}]}}"#,
        readings.join(",")
    );
    parse_session(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn priced(t: &Tariff, s: &Session) -> Priced {
    price(t, s).unwrap()
}

fn dim(p: &Priced, d: Dimension) -> &DimensionCost {
    p.dimensions.iter().find(|x| x.dimension == d).unwrap()
}

fn excl(p: &Priced) -> Decimal {
    p.totals.excl_vat
}

const UTC: &str = "UTC";

// ---------------------------------------------------------------- components

#[test]
fn energy_component() {
    // 10 000 Wh = 10 kWh × 0.25 = 2.50
    let t = tariff(r#"{"price_components":[{"type":"ENERGY","price":0.25,"step_size":1}]}"#);
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 1000, "charging"),
            ("2026-01-05T11:00:00Z", 11000, "session_end"),
        ],
        "2026-01-05T11:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("2.50"));
    assert_eq!(dim(&p, Dimension::Energy).quantity, d("10000"));
    assert_eq!(p.totals.incl_vat, d("2.50"));
}

#[test]
fn flat_component() {
    // FLAT 1.00 once
    let t = tariff(r#"{"price_components":[{"type":"FLAT","price":1.00,"step_size":1}]}"#);
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T11:00:00Z");
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("1.00"));
    assert_eq!(dim(&p, Dimension::Flat).quantity, d("1"));
}

#[test]
fn time_component() {
    // 90 min charging = 1.5 h × 2.00 = 3.00
    let t = tariff(r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}]}"#);
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T11:30:00Z", 5000, "session_end"),
        ],
        "2026-01-05T11:30:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.00"));
    assert_eq!(dim(&p, Dimension::Time).quantity, d("5400"));
}

#[test]
fn parking_time_component() {
    // 20 min suspended_ev = 1/3 h × 6.00 = 2.00; the 10 charging minutes are free (no TIME component)
    let t = tariff(r#"{"price_components":[{"type":"PARKING_TIME","price":6.00,"step_size":1}]}"#);
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:10:00Z", 2000, "suspended_ev"),
            ("2026-01-05T10:30:00Z", 2000, "session_end"),
        ],
        "2026-01-05T10:30:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("2.00"));
    assert_eq!(dim(&p, Dimension::ParkingTime).quantity, d("1200"));
    assert_eq!(dim(&p, Dimension::Time).quantity, d("600"));
    assert_eq!(p.periods[0].unpriced, vec![Dimension::Energy, Dimension::Time]);
}

#[test]
fn time_while_suspended_by_evse_parking_while_suspended_by_ev() {
    // TIME 2.00/h, PARKING_TIME 5.00/h. charging 30 min, suspended_evse 30 min (load management:
    // still TIME), charging 30 min, suspended_ev 30 min (PARKING_TIME).
    // TIME 90 min = 1.5 h × 2.00 = 3.00; PARKING 0.5 h × 5.00 = 2.50; total 5.50
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1},{"type":"PARKING_TIME","price":5.00,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:30:00Z", 3000, "suspended_evse"),
            ("2026-01-05T11:00:00Z", 3000, "charging"),
            ("2026-01-05T11:30:00Z", 6000, "suspended_ev"),
            ("2026-01-05T12:00:00Z", 6000, "session_end"),
        ],
        "2026-01-05T12:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(dim(&p, Dimension::Time).net_rounded, d("3.00"));
    assert_eq!(dim(&p, Dimension::ParkingTime).net_rounded, d("2.50"));
    assert_eq!(excl(&p), d("5.50"));
}

// -------------------------------------------------------------- restrictions

#[test]
fn time_window_and_fallback() {
    // 16:00–18:00 UTC charging at TIME; 17:00–20:00 costs 2.40/h, else 1.20/h
    // 1 h × 1.20 + 1 h × 2.40 = 3.60
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.40,"step_size":1}],"restrictions":{"start_time":"17:00","end_time":"20:00"}},
           {"price_components":[{"type":"TIME","price":1.20,"step_size":1}]}"#,
    );
    let s = session(UTC, &[("2026-01-05T16:00:00Z", 0, "charging")], "2026-01-05T18:00:00Z");
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.60"));
    assert_eq!(p.periods.len(), 2);
    assert_eq!(p.periods[1].lines[0].element, 0);
    assert_eq!(p.periods[1].lines[0].restrictions, "17:00–20:00");
    assert_eq!(p.periods[0].lines[0].restrictions, "no restrictions");
}

#[test]
fn time_window_across_midnight() {
    // Night 22:00–06:00 at 1.00/h, day 3.00/h. Session 21:00–07:00 local (Berlin, winter UTC+1):
    // day 1 h (21–22) + night 8 h + day 1 h (06–07) = 3.00 + 8.00 + 3.00 = 14.00
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":1.00,"step_size":1}],"restrictions":{"start_time":"22:00","end_time":"06:00"}},
           {"price_components":[{"type":"TIME","price":3.00,"step_size":1}]}"#,
    );
    let s = session(
        "Europe/Berlin",
        &[("2026-01-05T20:00:00Z", 0, "charging")],
        "2026-01-06T06:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("14.00"));
    assert_eq!(p.periods.len(), 3);
}

#[test]
fn end_time_midnight_means_end_of_day() {
    // 20:00–00:00 at 2.00/h, else 1.00/h; UTC session 19:00–21:00: 1.00 + 2.00 = 3.00
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}],"restrictions":{"start_time":"20:00","end_time":"00:00"}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    let s = session(UTC, &[("2026-01-05T19:00:00Z", 0, "charging")], "2026-01-05T21:00:00Z");
    assert_eq!(excl(&priced(&t, &s)), d("3.00"));
}

#[test]
fn time_window_at_spring_forward_in_berlin() {
    // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST (at 01:00 UTC).
    // Day rate from 03:00 local 2.00/h, night 1.00/h. Session 00:00–02:00 UTC = 01:00 CET – 04:00 CEST:
    // 00:00–01:00 UTC is 01:00–02:00 local (night, 1.00); 01:00–02:00 UTC is 03:00–04:00 local (day, 2.00).
    // 1.00 + 2.00 = 3.00 (two real hours, although the wall clock shows three).
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}],"restrictions":{"start_time":"03:00"}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    let s = session(
        "Europe/Berlin",
        &[("2026-03-29T00:00:00Z", 0, "charging")],
        "2026-03-29T02:00:00Z",
    );
    assert_eq!(excl(&priced(&t, &s)), d("3.00"));
    // A start_time inside the skipped hour (02:30) starts at the jump: same 3.00.
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}],"restrictions":{"start_time":"02:30"}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.00"));
    assert_eq!(p.periods[1].start.to_rfc3339(), "2026-03-29T01:00:00+00:00");
}

#[test]
fn time_window_at_fall_back_in_berlin() {
    // 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET (at 01:00 UTC), so 02:00–03:00 happens twice.
    // Window 02:30–03:00 at 3.00/h, else 1.00/h. Session 00:00–02:00 UTC:
    // 00:00–00:30 UTC = 02:00–02:30 CEST  fallback 0.5 h × 1.00 = 0.50
    // 00:30–01:00 UTC = 02:30–03:00 CEST  window   0.5 h × 3.00 = 1.50
    // 01:00–01:30 UTC = 02:00–02:30 CET   fallback 0.5 h × 1.00 = 0.50 (the clock went back: the offset change is a cut)
    // 01:30–02:00 UTC = 02:30–03:00 CET   window   0.5 h × 3.00 = 1.50
    // total 4.00
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":3.00,"step_size":1}],"restrictions":{"start_time":"02:30","end_time":"03:00"}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    let s = session(
        "Europe/Berlin",
        &[("2026-10-25T00:00:00Z", 0, "charging")],
        "2026-10-25T02:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("4.00"));
    assert_eq!(p.periods.len(), 4);
}

#[test]
fn day_of_week_switches_at_local_midnight() {
    // 2026-01-09 is a Friday. SATURDAY 2.00/h, else 1.00/h. Session 23:00 Fri – 01:00 Sat Berlin
    // (22:00–00:00 UTC): 1 h × 1.00 + 1 h × 2.00 = 3.00. (UTC midnight would make it all Friday: 2.00.)
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}],"restrictions":{"day_of_week":["SATURDAY"]}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    let s = session(
        "Europe/Berlin",
        &[("2026-01-09T22:00:00Z", 0, "charging")],
        "2026-01-10T00:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.00"));
    assert_eq!(p.periods[1].start.to_rfc3339(), "2026-01-09T23:00:00+00:00");
}

#[test]
fn start_and_end_date_are_local_and_end_is_exclusive() {
    // From local 2026-01-10 energy costs 0.40, before it 0.30 (end_date exclusive).
    // Berlin, 22:00–00:00 UTC = 23:00–01:00 local, 2 kWh linear: 1 kWh before local midnight, 1 after.
    // 1 × 0.30 + 1 × 0.40 = 0.70
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.40,"step_size":1}],"restrictions":{"start_date":"2026-01-10"}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}],"restrictions":{"end_date":"2026-01-10"}}"#,
    );
    let s = session(
        "Europe/Berlin",
        &[
            ("2026-01-09T22:00:00Z", 0, "charging"),
            ("2026-01-10T00:00:00Z", 2000, "session_end"),
        ],
        "2026-01-10T00:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("0.70"));
    assert_eq!(p.periods[0].energy_wh, d("1000"));
}

#[test]
fn kwh_tier_split_inside_an_interval() {
    // First 10 kWh 0.20 (max_kwh exclusive), from 10 kWh 0.30 (min_kwh inclusive).
    // One interval: 15 kWh in 90 min (10 kW). 10 kWh is reached at 60 min (linear).
    // 10 × 0.20 + 5 × 0.30 = 3.50
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.20,"step_size":1}],"restrictions":{"max_kwh":10}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}],"restrictions":{"min_kwh":10}}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 500, "charging"),
            ("2026-01-05T11:30:00Z", 15500, "session_end"),
        ],
        "2026-01-05T11:30:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.50"));
    assert_eq!(p.periods.len(), 2);
    assert_eq!(p.periods[1].start.to_rfc3339(), "2026-01-05T11:00:00+00:00");
    assert_eq!(p.periods[0].energy_wh, d("10000"));
    assert_eq!(p.periods[1].energy_wh, d("5000"));
}

#[test]
fn time_cut_inside_an_interval_interpolates_whole_wh() {
    // 1001 Wh over 17:00 – 17:03 UTC; a window starts 17:01: energy at 17:01 = 1001 × 1/3 = 333.67 → 334 Wh
    // (half away from zero, whole Wh). 0.334 kWh × 0.30 + 0.667 kWh × 0.60 = 0.1002 + 0.4002 = 0.5004 → 0.50
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.60,"step_size":1}],"restrictions":{"start_time":"17:01"}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T17:00:00Z", 0, "charging"),
            ("2026-01-05T17:03:00Z", 1001, "session_end"),
        ],
        "2026-01-05T17:03:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(p.periods[0].energy_wh, d("334"));
    assert_eq!(p.totals.net.to_decimal(), d("0.5004"));
    assert_eq!(excl(&p), d("0.50"));
}

#[test]
fn power_crossings_spec_example() {
    // OCPI 2.2.1 §11.4.6 max_power example: < 16 kW 0.20, < 32 kW 0.35, else 0.50.
    // 1 kWh at 6 kW (10 min), 40 kWh at 48 kW (50 min), 0.5 kWh at 4 kW (7.5 min):
    // 1 × 0.20 + 40 × 0.50 + 0.5 × 0.20 = 0.20 + 20.00 + 0.10 = 20.30
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.20,"step_size":1}],"restrictions":{"max_power":16.00}},
           {"price_components":[{"type":"ENERGY","price":0.35,"step_size":1}],"restrictions":{"max_power":32.00}},
           {"price_components":[{"type":"ENERGY","price":0.50,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:10:00Z", 1000, "charging"),
            ("2026-01-05T11:00:00Z", 41000, "charging"),
            ("2026-01-05T11:07:30Z", 41500, "session_end"),
        ],
        "2026-01-05T11:07:30Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("20.30"));
    assert_eq!(p.periods[1].power_kw, (d("48"), d("48")));
    assert_eq!(p.periods[1].lines[0].element, 2);
}

#[test]
fn min_max_kw_of_a_reading_drive_power_restrictions() {
    // min_power 11 kW → 0.40, else 0.30. Interval average is 12 kW but min_kw says it dipped to 8 kW:
    // the element does not hold over the whole interval → 0.30. 12 kWh × 0.30 = 3.60
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.40,"step_size":1}],"restrictions":{"min_power":11}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}]}"#,
    );
    let r = |t: &str, wh: u64, st: &str, extra: &str| format!(r#"{{"t":"{t}","wh":{wh},"state":"{st}"{extra}}}"#);
    let s = session_json(
        UTC,
        &[
            r("2026-01-05T10:00:00Z", 0, "charging", r#","min_kw":8,"max_kw":14"#),
            r("2026-01-05T11:00:00Z", 12000, "session_end", ""),
        ],
        "2026-01-05T11:00:00Z",
    );
    assert_eq!(excl(&priced(&t, &s)), d("3.60"));
    // Without min/max the average (12 kW ≥ 11) applies: 12 × 0.40 = 4.80
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T11:00:00Z", 12000, "session_end"),
        ],
        "2026-01-05T11:00:00Z",
    );
    assert_eq!(excl(&priced(&t, &s)), d("4.80"));
}

#[test]
fn current_restrictions() {
    // max_current 16 A → 0.20, else 0.30. First hour max 10 A (5 kWh), second hour 30–32 A (5 kWh).
    // 5 × 0.20 + 5 × 0.30 = 2.50. An hour with unknown current cannot match: 0.30.
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.20,"step_size":1}],"restrictions":{"max_current":16}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}],"restrictions":{"min_current":0}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}]}"#,
    );
    let r = |t: &str, wh: u64, st: &str, extra: &str| format!(r#"{{"t":"{t}","wh":{wh},"state":"{st}"{extra}}}"#);
    let s = session_json(
        UTC,
        &[
            r("2026-01-05T10:00:00Z", 0, "charging", r#","max_a":10"#),
            r("2026-01-05T11:00:00Z", 5000, "charging", r#","min_a":30,"max_a":32"#),
            r("2026-01-05T12:00:00Z", 10000, "charging", ""),
            r("2026-01-05T13:00:00Z", 15000, "session_end", ""),
        ],
        "2026-01-05T13:00:00Z",
    );
    let p = priced(&t, &s);
    // 1.00 + 1.50 + 1.50 = 4.00
    assert_eq!(excl(&p), d("4.00"));
    assert_eq!(p.periods[0].lines[0].element, 0);
    assert_eq!(p.periods[1].lines[0].element, 1);
    assert_eq!(p.periods[2].lines[0].element, 2);
}

#[test]
fn duration_restrictions_spec_example() {
    // OCPI 2.2.1 §11.4.6 max_duration example: first 30 min free, 0.25/kWh until 60 min, then 0.40.
    // 40 min: 5 kWh in the first 30 min, 1.2 kWh in the next 10: 0 + 1.2 × 0.25 = 0.30
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.00,"step_size":1}],"restrictions":{"max_duration":1800}},
           {"price_components":[{"type":"ENERGY","price":0.25,"step_size":1}],"restrictions":{"max_duration":3600}},
           {"price_components":[{"type":"ENERGY","price":0.40,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:30:00Z", 5000, "charging"),
            ("2026-01-05T10:40:00Z", 6200, "session_end"),
        ],
        "2026-01-05T10:40:00Z",
    );
    assert_eq!(excl(&priced(&t, &s)), d("0.30"));
    // min_duration is inclusive: parking from 45 min on (2700 s) at 12.00/h. Charging 30 min, parking 30–60 min:
    // parking 45–60 min = 0.25 h × 12.00 = 3.00
    let t = tariff(
        r#"{"price_components":[{"type":"PARKING_TIME","price":12.00,"step_size":1}],"restrictions":{"min_duration":2700}}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:30:00Z", 5000, "suspended_ev"),
        ],
        "2026-01-05T11:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("3.00"));
    assert_eq!(dim(&p, Dimension::ParkingTime).priced_quantity, d("900"));
}

#[test]
fn reservation_elements_never_match_a_session_without_reservation() {
    // The reservation element (TIME 5.00) is skipped; TIME 1.00 applies: 1 h → 1.00
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":5.00,"step_size":60}],"restrictions":{"reservation":"RESERVATION"}},
           {"price_components":[{"type":"FLAT","price":4.00,"step_size":1}],"restrictions":{"reservation":"RESERVATION_EXPIRES"}},
           {"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#,
    );
    assert_eq!(t.elements[0].restrictions.reservation, Some(Reservation::Reservation));
    assert_eq!(
        t.elements[1].restrictions.reservation,
        Some(Reservation::ReservationExpires)
    );
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T11:00:00Z");
    assert_eq!(excl(&priced(&t, &s)), d("1.00"));
}

// ----------------------------------------------------------------- step_size

/// tariff_14_step_size.json of OCPI 2.2.1 (the fixture v221_real_world/step_size).
fn step_size_tariff() -> Tariff {
    tariff(
        r#"{"price_components":[{"type":"TIME","price":1.20,"step_size":1800},{"type":"PARKING_TIME","price":1.00,"step_size":900}],
            "restrictions":{"start_time":"00:00","end_time":"17:00"}},
           {"price_components":[{"type":"TIME","price":2.40,"step_size":900},{"type":"PARKING_TIME","price":1.00,"step_size":900}],
            "restrictions":{"start_time":"17:00","end_time":"20:00"}},
           {"price_components":[{"type":"TIME","price":2.40,"step_size":900}],"restrictions":{"start_time":"20:00","end_time":"00:00"}}"#,
    )
}

#[test]
fn step_size_spec_example_1_is_0_55() {
    // OCPI 2.2.1 §11.4.2 (errata text): charge 16:55–17:05, park 17:05–17:07.
    // TIME 5 min × 1.20 = 0.10 + 5 min × 2.40 = 0.20 — not stepped, because it is followed by
    // parking (CDR module, step_size: "only taken into account for the total parking duration").
    // PARKING 2 min → 15 min (step 900 of the last parking component) × 1.00 = 0.25. Total 0.55.
    let s = session(
        UTC,
        &[
            ("2026-01-05T16:55:00Z", 0, "charging"),
            ("2026-01-05T17:05:00Z", 1000, "suspended_ev"),
            ("2026-01-05T17:07:00Z", 1000, "session_end"),
        ],
        "2026-01-05T17:07:00Z",
    );
    let p = priced(&step_size_tariff(), &s);
    assert_eq!(excl(&p), d("0.55"));
    let pk = dim(&p, Dimension::ParkingTime);
    assert_eq!(pk.billed_quantity, d("900"));
    assert_eq!(pk.step.as_ref().map(|s| (s.step_size, s.element)), Some((900, 1)));
    assert_eq!(dim(&p, Dimension::Time).billed_quantity, d("600"));
    assert!(dim(&p, Dimension::Time).step.is_none());
}

#[test]
fn step_size_spec_example_2_is_1_30() {
    // Charge 16:35–17:10 (35 min), no parking. The last TIME component (17:00–20:00) has step 900:
    // 35 min → 45 min in total; 25 min before 17:00 × 1.20 = 0.50, the remaining 20 min × 2.40 = 0.80. 1.30
    let s = session(
        UTC,
        &[
            ("2026-01-05T16:35:00Z", 0, "charging"),
            ("2026-01-05T17:10:00Z", 1000, "session_end"),
        ],
        "2026-01-05T17:10:00Z",
    );
    let p = priced(&step_size_tariff(), &s);
    assert_eq!(excl(&p), d("1.30"));
    assert_eq!(dim(&p, Dimension::Time).billed_quantity, d("2700"));
}

#[test]
fn step_size_spec_example_free_parking_after_20_is_0_73() {
    // Charge 19:40–19:52 (12 min × 2.40 = 0.48, not stepped: parking follows), park 19:52–20:12.
    // Parking is priced only until 20:00: 8 billable minutes → 15 min × 1.00 = 0.25. 0.73
    // (the step applies to the priced parking, 8 min, not to all 20 parked minutes; ocpi-tariffs 0.48 rounds
    // all 20 up to 30 min and gives 0.78: fixture ours/step_size_examples/cdr_example_free_parking)
    let s = session(
        UTC,
        &[
            ("2026-01-05T19:40:00Z", 0, "charging"),
            ("2026-01-05T19:52:00Z", 1000, "suspended_ev"),
        ],
        "2026-01-05T20:12:00Z",
    );
    let p = priced(&step_size_tariff(), &s);
    assert_eq!(excl(&p), d("0.73"));
    let pk = dim(&p, Dimension::ParkingTime);
    assert_eq!(
        (pk.quantity, pk.priced_quantity, pk.billed_quantity),
        (d("1200"), d("480"), d("900"))
    );
}

#[test]
fn step_size_time_not_parking_when_parking_is_free() {
    // TIME 2.00/h step 600, no PARKING_TIME component. 21 min charging + 7 min parking (free):
    // TIME 21 → 30 min × 2.00 = 1.00
    let t = tariff(r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":600}]}"#);
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:21:00Z", 1000, "suspended_ev"),
        ],
        "2026-01-05T10:28:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("1.00"));
    assert!(dim(&p, Dimension::ParkingTime).step.is_none());
}

#[test]
fn step_size_cdr_module_example_time_then_parking() {
    // CDR module §step_size: TIME and PARKING step 5 min; 21 min charging, 7 min parking:
    // charging billed 21 min, parking 10 min. TIME 1.00/h, PARKING 2.00/h: 0.35 + 0.3333… = 0.6833… → 0.68
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":1.00,"step_size":300},{"type":"PARKING_TIME","price":2.00,"step_size":300}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:21:00Z", 1000, "suspended_ev"),
        ],
        "2026-01-05T10:28:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(dim(&p, Dimension::Time).billed_quantity, d("1260"));
    assert_eq!(dim(&p, Dimension::ParkingTime).billed_quantity, d("600"));
    assert_eq!(excl(&p), d("0.68"));
}

#[test]
fn step_size_energy_on_the_session_total() {
    // CDR module §step_size: 0.20/kWh before 17:00, 0.27 after, both step 500 Wh.
    // 4.3 kWh before, 1.1 after = 5.4 → 5.5 kWh; the extra 0.1 kWh is billed after 17:00:
    // 4.3 × 0.20 + 1.2 × 0.27 = 0.86 + 0.324 = 1.184 → 1.18
    let t = tariff(
        r#"{"price_components":[{"type":"ENERGY","price":0.20,"step_size":500}],"restrictions":{"end_time":"17:00"}},
           {"price_components":[{"type":"ENERGY","price":0.27,"step_size":500}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T16:00:00Z", 0, "charging"),
            ("2026-01-05T17:00:00Z", 4300, "charging"),
            ("2026-01-05T18:00:00Z", 5400, "session_end"),
        ],
        "2026-01-05T18:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(dim(&p, Dimension::Energy).billed_quantity, d("5500"));
    assert_eq!(p.totals.net.to_decimal(), d("1.184"));
    assert_eq!(excl(&p), d("1.18"));
}

// ---------------------------------------------------------------- FLAT, limits

#[test]
fn flat_once_per_session() {
    // FLAT 2.00 from 10:00 (element 0), FLAT 0.50 otherwise (element 1). Session 09:00–11:00:
    // the first period (09:00) takes element 1's 0.50; at 10:00 element 0 matches but a flat fee was already charged.
    let t = tariff(
        r#"{"price_components":[{"type":"FLAT","price":2.00,"step_size":1}],"restrictions":{"start_time":"10:00"}},
           {"price_components":[{"type":"FLAT","price":0.50,"step_size":1}]}"#,
    );
    let s = session(UTC, &[("2026-01-05T09:00:00Z", 0, "charging")], "2026-01-05T11:00:00Z");
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("0.50"));
    assert_eq!(dim(&p, Dimension::Flat).quantity, d("1"));
}

#[test]
fn min_price_spec_example() {
    // tariff_12 (025kwh_min_price): 0.25/kWh + 10 % VAT, min_price 0.50 / 0.55.
    // 1.2 kWh: 0.30 / 0.33 → raised to 0.50 / 0.55
    let t = tariff_with(
        r#"{"price_components":[{"type":"ENERGY","price":0.25,"vat":10.0,"step_size":1}]}"#,
        r#""min_price":{"excl_vat":0.50,"incl_vat":0.55},"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T10:30:00Z", 1200, "session_end"),
        ],
        "2026-01-05T10:30:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(
        (p.totals.excl_vat, p.totals.incl_vat, p.totals.vat),
        (d("0.50"), d("0.55"), d("0.05"))
    );
    let adj = p.totals.adjustment.as_ref().unwrap();
    assert_eq!(
        (adj.reason, adj.net.to_decimal(), adj.gross.to_decimal()),
        ("min_price", d("0.2"), d("0.22"))
    );
    assert_eq!(dim(&p, Dimension::Energy).net_rounded, d("0.30"));
}

#[test]
fn max_price_spec_example() {
    // tariff_6 (025kwh_start_max_price): FLAT 0.50 + 20 %, 0.25/kWh + 10 %, max 10.00 / 11.00.
    // 50 kWh: net 0.50 + 12.50 = 13.00, gross 0.60 + 13.75 = 14.35 → 10.00 / 11.00
    let t = tariff_with(
        r#"{"price_components":[{"type":"FLAT","price":0.50,"vat":20.0,"step_size":1},{"type":"ENERGY","price":0.25,"vat":10.0,"step_size":1}]}"#,
        r#""max_price":{"excl_vat":10.00,"incl_vat":11.00},"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T12:00:00Z", 50000, "session_end"),
        ],
        "2026-01-05T12:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!((p.totals.excl_vat, p.totals.incl_vat), (d("10.00"), d("11.00")));
    assert_eq!(p.totals.components_gross.to_decimal(), d("14.35"));
}

#[test]
fn min_price_binds_excl_and_incl_separately() {
    // ENERGY 0.25 with 0 % VAT, 4.2 kWh: net 1.05, gross 1.05. min 1.00 / 1.10:
    // the net is above its minimum (stays 1.05), the gross is below (raised to 1.10).
    let t = tariff_with(
        r#"{"price_components":[{"type":"ENERGY","price":0.25,"vat":0,"step_size":1}]}"#,
        r#""min_price":{"excl_vat":1.00,"incl_vat":1.10},"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T11:00:00Z", 4200, "session_end"),
        ],
        "2026-01-05T11:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!((p.totals.excl_vat, p.totals.incl_vat), (d("1.05"), d("1.10")));
    // Without incl_vat the gross moves with the net: 0.30/0.33 → 1.00/1.03
    let t = tariff_with(
        r#"{"price_components":[{"type":"ENERGY","price":0.25,"vat":10,"step_size":1}]}"#,
        r#""min_price":{"excl_vat":1.00},"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T11:00:00Z", 1200, "session_end"),
        ],
        "2026-01-05T11:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!((p.totals.excl_vat, p.totals.incl_vat), (d("1.00"), d("1.03")));
}

#[test]
fn vat_per_rate_with_two_rates() {
    // FLAT 1.00 @ 20 %, ENERGY 0.25 @ 10 %, 10 kWh:
    // 10 %: net 2.50, VAT 0.25, gross 2.75; 20 %: net 1.00, VAT 0.20, gross 1.20; total 3.50 / 3.95, VAT 0.45
    let t = tariff(
        r#"{"price_components":[{"type":"FLAT","price":1.00,"vat":20,"step_size":1},{"type":"ENERGY","price":0.25,"vat":10,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2026-01-05T10:00:00Z", 0, "charging"),
            ("2026-01-05T11:00:00Z", 10000, "session_end"),
        ],
        "2026-01-05T11:00:00Z",
    );
    let p = priced(&t, &s);
    let rows: Vec<_> = p
        .vat
        .iter()
        .map(|v| (v.rate, v.net.to_decimal(), v.vat.to_decimal(), v.gross.to_decimal()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (Some(d("10")), d("2.5"), d("0.25"), d("2.75")),
            (Some(d("20")), d("1"), d("0.2"), d("1.2"))
        ]
    );
    assert_eq!(
        (p.totals.excl_vat, p.totals.vat, p.totals.incl_vat),
        (d("3.50"), d("0.45"), d("3.95"))
    );
}

// ------------------------------------------------------------------- rounding

#[test]
fn rounding_ties_go_away_from_zero() {
    // 0.125 → 0.13, 0.124999 → 0.12, -0.125 → -0.13, 0.135 → 0.14, 0.005 → 0.01
    let r = |s: &str| ROUNDING.round(Amount::from_decimal(d(s)));
    assert_eq!(r("0.125"), d("0.13"));
    assert_eq!(r("0.124999"), d("0.12"));
    assert_eq!(r("-0.125"), d("-0.13"));
    assert_eq!(r("0.135"), d("0.14"));
    assert_eq!(r("0.005"), d("0.01"));
    // Banker's rounding (ocpi-tariffs' 4 dp) on the same fraction, for comparison: 0.00125 → 0.0012
    assert_eq!(
        Amount::from_decimal(d("0.00125")).round(4, RoundingStrategy::MidpointNearestEven),
        d("0.0012")
    );
    // TIME 0.25/h for 30 min = 0.125 exactly → 0.13
    let t = tariff(r#"{"price_components":[{"type":"TIME","price":0.25,"step_size":1}]}"#);
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T10:30:00Z");
    assert_eq!(excl(&priced(&t, &s)), d("0.13"));
}

#[test]
fn totals_round_once_from_exact_fractions() {
    // 40 s at 0.15/h = 0.001666…, then 20 s at 0.60/h = 0.003333…: exactly 0.005 together → 0.01.
    // (Rounding each period first would give 0.00 + 0.00.)
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":0.60,"step_size":1}],"restrictions":{"start_time":"10:01"}},
           {"price_components":[{"type":"TIME","price":0.15,"step_size":1}]}"#,
    );
    let s = session(UTC, &[("2026-01-05T10:00:20Z", 0, "charging")], "2026-01-05T10:01:20Z");
    let p = priced(&t, &s);
    assert_eq!(p.totals.net, Amount::from_decimal(d("0.005")));
    assert_eq!(excl(&p), d("0.01"));
}

// ----------------------------------------------------------------- validation

fn errors(text: &str) -> Vec<String> {
    match parse_tariff(text) {
        Ok(_) => vec![],
        Err(e) => e.fields().iter().map(ToString::to_string).collect(),
    }
}

fn with_elements(elements: &str) -> String {
    format!(
        r#"{{"country_code":"DE","party_id":"VYD","id":"T1","currency":"EUR","elements":[{elements}],"last_updated":"2026-01-01T00:00:00Z"}}"#
    )
}

#[test]
fn validation_errors_name_the_field() {
    let e = errors(&with_elements(
        r#"{"price_components":[{"type":"FLAT","price":1,"step_size":1}]},
           {"price_components":[{"type":"TIME","price":1,"step_size":0}]}"#,
    ));
    assert_eq!(e, vec!["elements[1].price_components[0].step_size: must be > 0"]);

    let e = errors(&with_elements(
        r#"{"price_components":[{"type":"SESSION_TIME","price":-1,"vat":120,"step_size":1.5}],
            "restrictions":{"start_time":"24:00","end_date":"2026-02-30","dayOfWeek":["MONDAY"],"day_of_week":["FUNDAY"]}}"#,
    ));
    assert_eq!(
        e,
        vec![
            "elements[0].price_components[0].type: must be one of ENERGY, FLAT, TIME, PARKING_TIME, not \"SESSION_TIME\"",
            "elements[0].price_components[0].price: must be ≥ 0",
            "elements[0].price_components[0].vat: must be a percentage between 0 and 100",
            "elements[0].restrictions.dayOfWeek: unknown field",
            "elements[0].restrictions.start_time: must be a time of day HH:MM (00:00 to 23:59), not \"24:00\"",
            "elements[0].restrictions.end_date: must be a date YYYY-MM-DD, not \"2026-02-30\"",
            "elements[0].restrictions.day_of_week[0]: must be MONDAY … SUNDAY, not \"FUNDAY\"",
        ]
    );
    let e = errors(&with_elements(
        r#"{"price_components":[{"type":"ENERGY","price":1,"step_size":1},{"type":"ENERGY","price":2,"step_size":1}],
            "restrictions":{"min_kwh":20,"max_kwh":10,"start_time":"10:00","end_time":"10:00","reservation":"RESERVATION"}}"#,
    ));
    assert_eq!(
        e,
        vec![
            "elements[0].price_components[0].type: an element restricted to a reservation may only have FLAT and TIME components",
            "elements[0].price_components[1].type: the element already has a ENERGY component (price_components[0]); only one per dimension can apply",
            "elements[0].price_components[1].type: an element restricted to a reservation may only have FLAT and TIME components",
            "elements[0].restrictions.end_time: must differ from start_time (the window would be empty)",
            "elements[0].restrictions.max_kwh: must be > min_kwh (20): min is inclusive and max exclusive, so the element would never apply",
        ]
    );
    let e = errors(
        r#"{"country_code":"DEU","party_id":"VYD","id":"T1","currency":"eur","elements":[],"min_price":{"incl_vat":1}}"#,
    );
    assert_eq!(
        e,
        vec![
            "country_code: must be exactly 2 characters",
            "currency: must be an ISO 4217 code of three upper-case letters, not \"eur\"",
            "min_price.excl_vat: is required",
            "last_updated: is required",
            "elements: must have at least one element",
        ]
    );
    let e = errors(&with_elements(
        r#"{"price_components":[{"type":"TIME","price":1,"step_size":1}],"restrictions":{"reservation":"MAYBE"}}"#,
    ));
    assert_eq!(
        e,
        vec!["elements[0].restrictions.reservation: must be RESERVATION or RESERVATION_EXPIRES, not \"MAYBE\""]
    );
    // FLAT ignores step_size: 0 is accepted there
    assert!(
        errors(&with_elements(
            r#"{"price_components":[{"type":"FLAT","price":1,"step_size":0}]}"#
        ))
        .is_empty()
    );
    // JSON syntax errors carry the position
    assert_eq!(
        parse_tariff("{\n \"id\": }").unwrap_err(),
        InputError::Json {
            line: 2,
            column: 8,
            reason: "expected a JSON value".into()
        }
    );
}

#[test]
fn session_validation_errors_name_the_field() {
    let text = r#"{"timezone":"Mars/Olympus","start":"2026-01-05T10:00:00Z","end":"2026-01-05T11:00:00Z","meter_readings":[
        {"t":"2026-01-05T10:00:00Z","wh":100,"state":"charging"},
        {"t":"2026-01-05T10:30:00Z","wh":50,"state":"resting"},
        {"t":"2026-01-05T10:20:00Z","wh":60,"state":"charging","min_kw":5,"max_kw":4}]}"#;
    let e: Vec<String> = parse_session(text)
        .unwrap_err()
        .fields()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        vec![
            "timezone: must be an IANA time zone such as Europe/Berlin, not \"Mars/Olympus\"",
            "meter_readings[1].state: must be charging, suspended_evse, suspended_ev or session_end, not \"resting\"",
            "meter_readings[2].max_kw: must be ≥ min_kw",
        ]
    );
    let text = r#"{"timezone":"UTC","start":"2026-01-05T10:00:00Z","end":"2026-01-05T11:00:00Z","meter_readings":[
        {"t":"2026-01-05T10:00:01Z","wh":100,"state":"charging"},
        {"t":"2026-01-05T10:30:00Z","wh":50,"state":"session_end"},
        {"t":"2026-01-05T10:20:00Z","wh":60,"state":"charging"}]}"#;
    let e: Vec<String> = parse_session(text)
        .unwrap_err()
        .fields()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        vec![
            "meter_readings[0].t: the first reading must be at start",
            "meter_readings[1].wh: the register must not go backwards",
            "meter_readings[2].t: must be later than the previous reading",
            "meter_readings[2]: no reading may follow a session_end reading",
            "meter_readings[1].t: a session_end reading must be at end",
        ]
    );
}

#[test]
fn tariff_not_active_at_session_start() {
    let t = tariff_with(
        r#"{"price_components":[{"type":"FLAT","price":1,"step_size":1}]}"#,
        r#""end_date_time":"2025-01-01T00:00:00Z","#,
    );
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T11:00:00Z");
    assert!(matches!(price(&t, &s), Err(PriceError::TariffNotActive { .. })));
}

// ----------------------------------------------------------------- OCPI 2.1.1

#[test]
fn ocpi_211_tariff_maps_to_the_model() {
    let text = r#"{"id":"12","currency":"EUR","elements":[
        {"price_components":[{"type":"TIME","price":2.00,"step_size":300}],"restrictions":{"start_time":"07:00","end_time":"23:00","day_of_week":["MONDAY"]}},
        {"price_components":[{"type":"PARKING_TIME","price":1.00,"step_size":60}]}],
        "tariff_alt_url":"https://example.com","last_updated":"2015-06-29T20:39:09Z"}"#;
    let t = parse_tariff(text).unwrap();
    assert_eq!(t.version, OcpiVersion::V211);
    assert_eq!((t.country_code.as_deref(), t.party_id.as_deref()), (None, None));
    assert_eq!(t.elements[0].price_components[0].vat, None);
    assert_eq!(t.elements[0].price_components[0].step_size, 300);
    assert_eq!(t.elements[0].restrictions.day_of_week, vec![chrono::Weekday::Mon]);
    // 2.2.1-only fields are unknown inside a 2.1.1 element
    let e = parse_tariff_version(
        r#"{"id":"1","currency":"EUR","elements":[{"price_components":[{"type":"TIME","price":1,"vat":21,"step_size":1}],"restrictions":{"max_current":16}}],"last_updated":"2015-06-29T20:39:09Z"}"#,
        OcpiVersion::V211,
    )
    .unwrap_err();
    let e: Vec<String> = e.fields().iter().map(ToString::to_string).collect();
    assert_eq!(
        e,
        vec![
            "elements[0].price_components[0].vat: unknown field",
            "elements[0].restrictions.max_current: unknown field"
        ]
    );
    // Monday 2026-01-05, 10:00–11:00 UTC: 1 h × 2.00 = 2.00, gross = net (no VAT in 2.1.1)
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T11:00:00Z");
    let p = priced(&t, &s);
    assert_eq!((p.totals.excl_vat, p.totals.incl_vat), (d("2.00"), d("2.00")));
    assert_eq!(p.vat[0].rate, None);
}

// ----------------------------------------------------------------------- CDR

#[test]
fn cdr_charging_periods_and_cdr_json() {
    // TIME 2.40 + PARKING 1.00: charge 16:55–17:05 with 1.5 kWh, park until 17:07 (step_size tariff).
    let s = session(
        UTC,
        &[
            ("2026-01-05T16:55:00Z", 0, "charging"),
            ("2026-01-05T17:05:00Z", 1500, "suspended_ev"),
            ("2026-01-05T17:07:00Z", 1500, "session_end"),
        ],
        "2026-01-05T17:07:00Z",
    );
    let p = priced(&step_size_tariff(), &s);
    let cps = p.cdr_charging_periods();
    // 16:55 (1.20 element), 17:00 (2.40 element), 17:05 parking
    assert_eq!(cps.len(), 3);
    assert_eq!(cps[0].dimensions[0].dimension_type, "ENERGY");
    // 5 min of 10 with 1500 Wh linear → 0.75 kWh; 5 min = 0.0833 h (4 dp)
    assert_eq!(cps[0].dimensions[0].volume, d("0.75"));
    assert_eq!(cps[0].dimensions[1].volume, d("0.0833"));
    assert_eq!(cps[2].dimensions[0].dimension_type, "PARKING_TIME");
    assert_eq!(cps[2].tariff_id.as_deref(), Some("T1"));
    let ctx = CdrContext {
        country_code: "DE".into(),
        party_id: "VYD".into(),
        id: "CDR1".into(),
        session_id: Some("S1".into()),
        cdr_token: CdrToken {
            country_code: "DE".into(),
            party_id: "VYD".into(),
            uid: "04A1".into(),
            token_type: "RFID".into(),
            contract_id: "DE-VYD-C1".into(),
        },
        auth_method: "WHITELIST".into(),
        authorization_reference: None,
        cdr_location: CdrLocation {
            id: "LOC1".into(),
            name: None,
            address: "Main St 1".into(),
            city: "Berlin".into(),
            postal_code: Some("10115".into()),
            state: None,
            country: "DEU".into(),
            coordinates: GeoLocation {
                latitude: "52.5".into(),
                longitude: "13.4".into(),
            },
            evse_uid: "E1".into(),
            evse_id: "DE*VYD*E1".into(),
            connector_id: "1".into(),
            connector_standard: "IEC_62196_T2".into(),
            connector_format: "SOCKET".into(),
            connector_power_type: "AC_3_PHASE".into(),
        },
        meter_id: None,
        tariffs: vec![],
        last_updated: s.end,
    };
    let v = cdr_json(&p, &ctx).unwrap();
    assert_eq!(v["total_cost"], serde_json::json!({"excl_vat": 0.55, "incl_vat": 0.55}));
    assert_eq!(v["total_energy"], serde_json::json!(1.5));
    assert_eq!(v["total_time"], serde_json::json!(0.2));
    assert_eq!(
        v["total_parking_cost"],
        serde_json::json!({"excl_vat": 0.25, "incl_vat": 0.25})
    );
    assert_eq!(v["charging_periods"][1]["start_date_time"], "2026-01-05T17:00:00Z");
    assert_eq!(v["cdr_location"]["evse_id"], "DE*VYD*E1");
    assert!(v.get("total_energy_cost").is_none());
}

#[test]
fn breakdown_serialises_with_exact_strings() {
    let t = tariff(r#"{"price_components":[{"type":"TIME","price":1.00,"step_size":1}]}"#);
    let s = session(UTC, &[("2026-01-05T10:00:00Z", 0, "charging")], "2026-01-05T10:00:01Z");
    let v = serde_json::to_value(priced(&t, &s)).unwrap();
    // 1 s at 1.00/h = 1/3600 = 0.000277… shown with 28 significant digits, rounds to 0.00
    assert_eq!(v["totals"]["net"], "0.0002777777777777777777777778");
    assert_eq!(v["totals"]["excl_vat"], "0.00");
    assert_eq!(v["rounding"]["total_dp"], 2);
    assert_eq!(v["periods"][0]["lines"][0]["dimension"], "TIME");
}

// ------------------------------------------- disagreements with ocpi-tariffs
// Each pins our side of a case where the cross-check (crosscheck/tariffs)
// finds ocpi-tariffs 0.48 giving another result; see docs/tariffs.md.

#[test]
fn disagreement_reservation_element_does_not_price_an_ordinary_session() {
    // Fixture v221/periods_state_no_time_tariff_prices_reservation: TIME 2.00/h restricted to RESERVATION,
    // ENERGY 0.30/kWh. 20 kWh in 2 h, no reservation. OCPI 2.2.1 §11.4.6 `reservation`: "When this field is
    // present, the TariffElement describes reservation costs" — so only 20 × 0.30 = 6.00.
    // (ocpi-tariffs ignores the restriction and adds 2 h × 2.00: 10.00.)
    let t = tariff(
        r#"{"price_components":[{"type":"TIME","price":2.00,"step_size":1}],"restrictions":{"reservation":"RESERVATION"}},
           {"price_components":[{"type":"ENERGY","price":0.30,"step_size":1}]}"#,
    );
    let s = session(
        UTC,
        &[
            ("2025-07-21T06:00:00Z", 0, "charging"),
            ("2025-07-21T08:00:00Z", 20000, "session_end"),
        ],
        "2025-07-21T08:00:00Z",
    );
    let p = priced(&t, &s);
    assert_eq!(excl(&p), d("6.00"));
    assert_eq!(p.periods[0].unpriced, vec![Dimension::Time]);
}

#[test]
fn disagreement_restriction_boundary_inside_a_reading_interval_is_cut_exactly() {
    // Fixtures v211/time_and_parking_time*, v211/unordered_cdr_periods: PARKING_TIME 2.479/h from 07:00 local
    // (Europe/Amsterdam, CEST = UTC+2). A reading interval 04:57:55–05:12:55 UTC (06:57:55–07:12:55 local) of
    // parking: OCPI 2.2.1 §11.4.6 start_time "valid from this time of the day", and the CDR module requires a new
    // charging period at every change relevant to cost, so 07:00:00–07:12:55 (775 s) is priced:
    // 775 / 3600 × 2.479 = 0.53367… → 0.53. (ocpi-tariffs prices the unsplit CDR period by its start: 0.)
    let t = tariff(
        r#"{"price_components":[{"type":"PARKING_TIME","price":2.479,"step_size":1}],"restrictions":{"start_time":"07:00"}}"#,
    );
    let s = session(
        "Europe/Amsterdam",
        &[
            ("2025-04-10T04:57:55Z", 0, "suspended_ev"),
            ("2025-04-10T05:12:55Z", 0, "session_end"),
        ],
        "2025-04-10T05:12:55Z",
    );
    let p = priced(&t, &s);
    assert_eq!(dim(&p, Dimension::ParkingTime).priced_quantity, d("775"));
    assert_eq!(excl(&p), d("0.53"));
}

#[test]
fn disagreement_non_spec_dimensions_and_a_bare_max_price_are_refused() {
    // Fixtures popular/AC-0014, AC-0018, AC-0019, DC-0016, DC-0018, v211/custom_tariff_dimension. OCPI 2.2.1
    // §11.4.5: TariffDimensionType is ENERGY, FLAT, PARKING_TIME or TIME; §11.3.1: max_price is a Price object.
    // Refusing (with the path) beats pricing a tariff the CPO did not publish (ocpi-tariffs drops them silently).
    let e = errors(&with_elements(
        r#"{"price_components":[{"type":"SESSION_TIME","price":1,"step_size":1}]}"#,
    ));
    assert_eq!(
        e,
        vec![
            "elements[0].price_components[0].type: must be one of ENERGY, FLAT, TIME, PARKING_TIME, not \"SESSION_TIME\""
        ]
    );
    let text = with_elements(r#"{"price_components":[{"type":"TIME","price":1,"step_size":1}]}"#).replacen(
        '{',
        r#"{"max_price":12.5,"#,
        1,
    );
    assert_eq!(errors(&text), vec!["max_price: must be an object, not a number"]);
}
