//! Unit tests and property tests of the optimiser.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

/// 0.40/kWh until 02:00 after the epoch of `at`, then 0.10/kWh until `cheap_until_h`.
fn dear_then_cheap(cheap_until_h: i64) -> Vec<PriceSlot> {
    vec![
        PriceSlot {
            start: at(-3600),
            end: at(2 * 3600),
            price_per_kwh: Decimal::new(40, 2),
        },
        PriceSlot {
            start: at(2 * 3600),
            end: at(cheap_until_h * 3600),
            price_per_kwh: Decimal::new(10, 2),
        },
    ]
}

fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).single().unwrap() + chrono::Duration::seconds(s)
}

fn circuit(id: &str, parent: Option<&str>, max: f64) -> CircuitState {
    CircuitState {
        id: id.into(),
        parent: parent.map(Into::into),
        max_current: [max; 3],
        unmanaged_current: None,
        max_power_w: None,
        metered: false,
        safe_current: None,
    }
}

fn charger(id: &str, circuit: &str, phases: u8, max: f64, session: Option<SessionState>) -> ChargerState {
    ChargerState {
        id: id.into(),
        circuit: circuit.into(),
        phases,
        phase_rotation: Rotation::L1L2L3,
        min_current: 6.0,
        max_current: max,
        session,
        supply: Supply::Ac,
        max_power_w: None,
        connected: true,
        fallback_current: None,
        apply_delay_s: None,
    }
}

fn sess(id: &str, measured: [f64; 3]) -> Option<SessionState> {
    Some(SessionState {
        id: id.into(),
        measured_current: measured,
        energy_wh: 0,
        energy_target_wh: None,
        departure: None,
        priority: None,
        offered_current: None,
        measured_power_w: None,
        measured_at: None,
    })
}

fn site(time: i64, circuits: Vec<CircuitState>, chargers: Vec<ChargerState>) -> SiteState {
    SiteState {
        time: at(time),
        circuits,
        chargers,
        prices: Vec::new(),
    }
}

/// Settings without emission hygiene or apply delay: the allocation itself is visible at once.
/// Sessions without a need share in equal amperes whatever energy they got.
fn quick() -> Settings {
    Settings {
        deadband_a: 0.0,
        increase_interval_s: 0.0,
        apply_delay_s: 0.0,
        make_before_break: false,
        untold_share_kwh: None,
        ..Settings::default()
    }
}

fn lim<'a>(a: &'a Allocation, id: &str) -> &'a Limit {
    a.limits.iter().find(|l| l.charger == id).unwrap()
}

fn cur(a: &Allocation, id: &str) -> f64 {
    lim(a, id).current
}

#[test]
fn rotation_maps_charger_phases_to_grid_phases() {
    assert_eq!([0, 1, 2].map(|i| Rotation::L1L2L3.grid_phase(i)), [0, 1, 2]);
    assert_eq!([0, 1, 2].map(|i| Rotation::L2L3L1.grid_phase(i)), [1, 2, 0]);
    assert_eq!([0, 1, 2].map(|i| Rotation::L3L1L2.grid_phase(i)), [2, 0, 1]);
    let mut root = circuit("grid", None, 32.0);
    root.max_current = [16.0, 32.0, 32.0];
    let mut a = charger("A", "grid", 1, 32.0, sess("a", [0.0; 3]));
    let mut b = charger("B", "grid", 1, 32.0, sess("b", [0.0; 3]));
    a.phase_rotation = Rotation::L1L2L3;
    b.phase_rotation = Rotation::L2L3L1;
    let out = Controller::new(quick()).step(&site(0, vec![root], vec![a, b])).unwrap();
    assert_eq!(cur(&out, "A"), 15.5, "L1: 16 A less 0.5 A headroom");
    assert_eq!(lim(&out, "A").load, [15.5, 0.0, 0.0]);
    assert_eq!(cur(&out, "B"), 31.0, "L2: 32 A less 3 %");
    assert_eq!(lim(&out, "B").load, [0.0, 31.0, 0.0]);
}

#[test]
fn single_phase_car_on_three_phase_charger_is_learned() {
    let root = circuit("grid", None, 32.0);
    let mut c1 = charger("C1", "grid", 3, 32.0, sess("s1", [14.0, 0.0, 0.1]));
    c1.phase_rotation = Rotation::L2L3L1; // its phase 1 is grid L2
    let c2 = charger("C2", "grid", 1, 32.0, sess("s2", [14.0, 0.0, 0.0])); // grid L1
    let mut c3 = charger("C3", "grid", 1, 32.0, sess("s3", [14.0, 0.0, 0.0]));
    c3.phase_rotation = Rotation::L3L1L2; // grid L3
    let mut ctl = Controller::new(quick());
    let state = site(0, vec![root], vec![c1, c2, c3]);
    let first = ctl.step(&state).unwrap();
    assert_eq!(
        lim(&first, "C1").load,
        [15.5, 15.5, 15.5],
        "one observation is not enough"
    );
    assert_eq!(cur(&first, "C2"), 15.5);
    let mut state2 = state.clone();
    state2.time = at(10);
    let second = ctl.step(&state2).unwrap();
    assert_eq!(ctl.insight("C1").unwrap().single_phase, Some(0));
    assert_eq!(lim(&second, "C1").load, [0.0, 31.0, 0.0], "only grid L2 is loaded");
    assert_eq!(cur(&second, "C2"), 31.0);
    assert_eq!(cur(&second, "C3"), 31.0);
    // The car starts drawing on three phases: back to a 3-phase load at once.
    let mut state3 = state2.clone();
    state3.time = at(20);
    if let Some(s) = state3.chargers[0].session.as_mut() {
        s.measured_current = [10.0, 10.0, 10.0];
    }
    let third = ctl.step(&state3).unwrap();
    assert_eq!(ctl.insight("C1").unwrap().single_phase, None);
    assert_eq!(lim(&third, "C1").load, [15.5, 15.5, 15.5]);
}

#[test]
fn water_filling_is_max_min_fair() {
    let root = circuit("grid", None, 32.0);
    let a = charger("A", "grid", 3, 32.0, sess("a", [0.0; 3]));
    let b = charger("B", "grid", 3, 32.0, sess("b", [0.0; 3]));
    let c = charger("C", "grid", 3, 8.0, sess("c", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![root], vec![a, b, c]))
        .unwrap();
    // 32 A less 3 % = 31.04 A; C takes its max 8 A, A and B split the rest.
    assert_eq!(cur(&out, "C"), 8.0);
    assert_eq!(cur(&out, "A"), 11.5);
    assert_eq!(cur(&out, "B"), 11.5);
    assert!(out.limits.iter().all(|l| l.changed && l.state == LimitState::Charging));
}

#[test]
fn a_charger_moved_to_another_circuit_is_held_by_its_new_one() {
    // The previous step's circuit of each charger is only a hint: a charger rewired to another
    // board must be counted there at once.
    let circuits = || {
        vec![
            circuit("grid", None, 63.0),
            circuit("boardA", Some("grid"), 16.0),
            circuit("boardB", Some("grid"), 63.0),
        ]
    };
    let mut ctl = Controller::new(quick());
    let on = |board: &str| {
        vec![
            charger("A1", "boardA", 3, 32.0, sess("1", [0.0; 3])),
            charger("X", board, 3, 32.0, sess("2", [0.0; 3])),
        ]
    };
    let out = ctl.step(&site(0, circuits(), on("boardB"))).unwrap();
    assert_eq!(cur(&out, "X"), 32.0);
    let out = ctl.step(&site(5, circuits(), on("boardA"))).unwrap();
    assert_eq!(cur(&out, "X"), 7.7); // 15.5 / 2 rounded down, shared with A1
    assert_eq!(cur(&out, "A1"), 7.7);
}

#[test]
fn turns_are_given_in_charger_id_order_whatever_the_input_order() {
    // Three equal cars, room for two at their minimum (12.5 A): the tie is broken by charger id, also when
    // the chargers come in another order than on the step before.
    let grid = || vec![circuit("grid", None, 13.0)];
    let cars = |ids: [&str; 3]| ids.map(|id| charger(id, "grid", 1, 16.0, sess(id, [0.0; 3]))).to_vec();
    let mut ctl = Controller::new(quick());
    let out = ctl.step(&site(0, grid(), cars(["C", "B", "A"]))).unwrap();
    assert_eq!([cur(&out, "A"), cur(&out, "B"), cur(&out, "C")], [6.2, 6.2, 0.0]);
    let mut fresh = Controller::new(quick());
    let out = fresh.step(&site(0, grid(), cars(["B", "C", "A"]))).unwrap();
    assert_eq!([cur(&out, "A"), cur(&out, "B"), cur(&out, "C")], [6.2, 6.2, 0.0]);
    let out = fresh.step(&site(1, grid(), cars(["C", "A", "B"]))).unwrap();
    assert_eq!([cur(&out, "A"), cur(&out, "B"), cur(&out, "C")], [6.2, 6.2, 0.0]);
}

#[test]
fn every_node_of_the_tree_holds() {
    let circuits = vec![
        circuit("grid", None, 63.0),
        circuit("boardA", Some("grid"), 16.0),
        circuit("boardB", Some("grid"), 63.0),
    ];
    let chargers = vec![
        charger("A1", "boardA", 3, 32.0, sess("1", [0.0; 3])),
        charger("A2", "boardA", 3, 32.0, sess("2", [0.0; 3])),
        charger("B1", "boardB", 3, 32.0, sess("3", [0.0; 3])),
        charger("B2", "boardB", 3, 32.0, sess("4", [0.0; 3])),
    ];
    let out = Controller::new(quick()).step(&site(0, circuits, chargers)).unwrap();
    assert_eq!(cur(&out, "A1"), 7.7); // 15.5 / 2 rounded down
    assert_eq!(cur(&out, "A2"), 7.7);
    // grid: 63 − 1.89 = 61.11; A takes 15.5, B1 and B2 share 45.61.
    assert_eq!(cur(&out, "B1"), 22.8);
    assert_eq!(cur(&out, "B2"), 22.8);
    let grid = out.nodes.iter().find(|n| n.circuit == "grid").unwrap();
    assert!(grid.allocated.iter().all(|&a| a <= 61.11));
}

#[test]
fn unmanaged_load_counts_at_its_node_and_above_and_export_frees_capacity() {
    let mut root = circuit("grid", None, 40.0);
    let mut board = circuit("board", Some("grid"), 40.0);
    board.unmanaged_current = Some([10.0, 20.0, 0.0]);
    root.unmanaged_current = Some([0.0, 0.0, 0.0]);
    let a = charger("A", "board", 3, 32.0, sess("a", [0.0; 3]));
    let mut ctl = Controller::new(quick());
    let out = ctl
        .step(&site(0, vec![root.clone(), board.clone()], vec![a.clone()]))
        .unwrap();
    // L2 binds: 40 − 1.2 − 20 = 18.8.
    assert_eq!(cur(&out, "A"), 18.8);
    // Solar export at the root frees capacity there but not on the board.
    root.unmanaged_current = Some([-30.0, -30.0, -30.0]);
    root.max_current = [20.0; 3];
    let out = Controller::new(quick())
        .step(&site(0, vec![root, board], vec![a]))
        .unwrap();
    // root: 20 − 0.6 + 30 − board's unmanaged on L2 (20) = 29.4; board: 18.8.
    assert_eq!(cur(&out, "A"), 18.8);
}

#[test]
fn unmanaged_load_beyond_the_limit_pauses_everything_below() {
    let mut board = circuit("board", None, 16.0);
    board.unmanaged_current = Some([20.0, 0.0, 0.0]);
    let a = charger("A", "board", 3, 32.0, sess("a", [0.0; 3]));
    let b = charger("B", "board", 1, 32.0, sess("b", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![board], vec![a, b]))
        .unwrap();
    assert_eq!(cur(&out, "A"), 0.0);
    assert_eq!(cur(&out, "B"), 0.0);
    assert_eq!(lim(&out, "A").state, LimitState::Paused);
}

#[test]
fn power_limit_of_a_node_is_shared_across_phases() {
    let mut root = circuit("grid", None, 63.0);
    root.max_power_w = Some(11_040.0); // 48 A over three phases
    let a = charger("A", "grid", 3, 32.0, sess("a", [0.0; 3]));
    let out = Controller::new(quick()).step(&site(0, vec![root], vec![a])).unwrap();
    // 48 − max(1.44, 1.5) = 46.5 phase-amps = 15.5 A per phase.
    assert_eq!(cur(&out, "A"), 15.5);
}

#[test]
fn higher_priority_is_served_up_to_its_max_first() {
    let root = circuit("grid", None, 24.0); // 23.28 A usable
    let mut a = charger("A", "grid", 3, 16.0, sess("a", [0.0; 3]));
    if let Some(s) = a.session.as_mut() {
        s.priority = Some(1);
    }
    let b = charger("B", "grid", 3, 32.0, sess("b", [0.0; 3]));
    let c = charger("C", "grid", 3, 32.0, sess("c", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![root.clone()], vec![a.clone(), b.clone(), c.clone()]))
        .unwrap();
    // B and C keep their minimum; A gets the rest.
    assert_eq!(cur(&out, "B"), 6.0);
    assert_eq!(cur(&out, "C"), 6.0);
    assert_eq!(cur(&out, "A"), 11.2);
    // With more room A stops at its max and B, C share the remainder.
    let mut big = root;
    big.max_current = [40.0; 3]; // 38.8 usable
    let out = Controller::new(quick())
        .step(&site(0, vec![big], vec![a, b, c]))
        .unwrap();
    assert_eq!(cur(&out, "A"), 16.0);
    assert_eq!(cur(&out, "B"), 11.4);
}

#[test]
fn unused_current_is_reclaimed_and_given_back() {
    let settings = Settings {
        reclaim_after_s: 60.0,
        ..quick()
    };
    let mut ctl = Controller::new(settings);
    let root = circuit("grid", None, 32.0);
    let mk = |t: i64, a_draw: f64, b_draw: f64| {
        site(
            t,
            vec![root.clone()],
            vec![
                charger("A", "grid", 3, 32.0, sess("a", [a_draw; 3])),
                charger("B", "grid", 3, 32.0, sess("b", [b_draw; 3])),
            ],
        )
    };
    let out = ctl.step(&mk(0, 0.0, 0.0)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    ctl.step(&mk(10, 8.0, 15.5)).unwrap();
    let out = ctl.step(&mk(40, 8.0, 15.5)).unwrap();
    assert_eq!(
        cur(&out, "A"),
        15.5,
        "not yet: the car must under-draw for reclaim_after_s"
    );
    let out = ctl.step(&mk(80, 8.0, 15.5)).unwrap();
    assert_eq!(cur(&out, "A"), 10.0, "draw + 2 A margin");
    assert_eq!(lim(&out, "A").state, LimitState::Reclaimed);
    assert_eq!(cur(&out, "B"), 21.0);
    // The car draws up to its limit again: it gets its share back.
    let out = ctl.step(&mk(90, 9.5, 21.0)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    assert_eq!(cur(&out, "B"), 15.5);
    assert_eq!(lim(&out, "A").state, LimitState::Charging);
}

#[test]
fn pauses_rotate_when_not_every_car_fits_at_minimum() {
    let settings = Settings {
        rotation_period_s: 600.0,
        ..Settings::default()
    };
    let mut ctl = Controller::new(settings);
    let root = circuit("grid", None, 16.0); // 15.5 A usable: two cars at 6 A, not three
    let ids = ["A", "B", "C"];
    let mut paused_for = [0i64; 3];
    let mut ever_paused = [false; 3];
    let mut ever_charged = [false; 3];
    let mut changes = 0;
    let mut full_steps = 0;
    let mut last: Option<Allocation> = None;
    for step in 0..=60 {
        let t = step * 60;
        let chargers = ids
            .iter()
            .map(|id| {
                // Each car draws what it was last given.
                let draw = last.as_ref().map_or(0.0, |a| cur(a, id));
                charger(id, "grid", 3, 32.0, sess(id, [draw; 3]))
            })
            .collect();
        let out = ctl.step(&site(t, vec![root.clone()], chargers)).unwrap();
        let charging = out.limits.iter().filter(|l| l.current > 0.0).count();
        assert!(charging <= 2, "step {step}: {charging} charging");
        for (k, id) in ids.iter().enumerate() {
            let c = cur(&out, id);
            assert!(c == 0.0 || c >= 6.0);
            if c == 0.0 {
                ever_paused[k] = true;
                paused_for[k] += 60;
                assert!(paused_for[k] <= 1260, "{id} starved for {} s", paused_for[k]);
            } else {
                ever_charged[k] = true;
                paused_for[k] = 0;
            }
            changes += usize::from(lim(&out, id).changed);
        }
        // A resume waits one step for the paused car to stop drawing (make before break).
        assert!(charging >= 1);
        full_steps += usize::from(charging == 2);
        last = Some(out);
    }
    assert_eq!(ever_paused, [true; 3]);
    assert_eq!(ever_charged, [true; 3]);
    assert!(full_steps >= 50, "two cars charged in only {full_steps} of 61 minutes");
    // One hour, three chargers: well under 10 messages per charger-hour.
    assert!(changes <= 30, "{changes} limit changes");
}

#[test]
fn non_compliant_charger_is_listed_and_its_draw_reserved() {
    let settings = Settings {
        compliance_recover_s: 60.0,
        ..quick()
    };
    let mut ctl = Controller::new(settings);
    let root = circuit("grid", None, 32.0);
    let mk = |t: i64, a_draw: f64| {
        site(
            t,
            vec![root.clone()],
            vec![
                charger("A", "grid", 3, 32.0, sess("a", [a_draw; 3])),
                charger("B", "grid", 3, 32.0, sess("b", [0.0; 3])),
            ],
        )
    };
    let out = ctl.step(&mk(0, 0.0)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    let out = ctl.step(&mk(30, 25.0)).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
    assert_eq!(lim(&out, "A").state, LimitState::NonCompliant);
    assert_eq!(cur(&out, "A"), 15.5, "its limit is kept");
    assert_eq!(lim(&out, "A").load, [25.0; 3]);
    assert_eq!(cur(&out, "B"), 6.0, "31.04 − 25 reserved = 6.04");
    // It follows again: compliant after compliance_recover_s.
    let out = ctl.step(&mk(60, 15.0)).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
    let out = ctl.step(&mk(130, 15.0)).unwrap();
    assert!(out.non_compliant.is_empty());
    assert_eq!(cur(&out, "B"), 15.5);
}

/// A lowered its limit at t = 5 (31 → 15.5 A, apply delay 10 s) when B arrived; `reading` gives
/// A's session at the later steps. Returns the controller after t = 5.
fn lowered_at_5() -> (Controller, impl Fn(i64, Option<SessionState>) -> SiteState) {
    let settings = Settings {
        apply_delay_s: 10.0,
        ..quick()
    };
    let mut ctl = Controller::new(settings);
    let root = circuit("grid", None, 32.0);
    let mk = move |t: i64, a: Option<SessionState>, b: Option<SessionState>| {
        site(
            t,
            vec![root.clone()],
            vec![charger("A", "grid", 3, 32.0, a), charger("B", "grid", 3, 32.0, b)],
        )
    };
    let out = ctl.step(&mk(0, sess("a", [0.0; 3]), None)).unwrap();
    assert_eq!(cur(&out, "A"), 31.0);
    let out = ctl.step(&mk(5, sess("a", [0.0; 3]), sess("b", [0.0; 3]))).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    (ctl, move |t, a| mk(t, a, sess("b", [0.0; 3])))
}

fn reading(draw: f64, energy_wh: i64, sampled: Option<i64>, offered: Option<f64>) -> Option<SessionState> {
    let mut s = sess("a", [draw; 3]);
    if let Some(x) = s.as_mut() {
        x.energy_wh = energy_wh;
        x.measured_at = sampled.map(at);
        x.offered_current = offered;
    }
    s
}

#[test]
fn reading_sampled_before_the_limit_was_applied_is_not_a_violation() {
    let (mut ctl, mk) = lowered_at_5();
    // After the apply delay, the latest reading is still one sampled at t = 12 (< 5 + 10), when
    // the car could still draw up to the old 31 A.
    let out = ctl.step(&mk(20, reading(30.0, 100, Some(12), Some(31.0)))).unwrap();
    assert!(out.non_compliant.is_empty(), "stale reading flagged");
    assert_eq!(lim(&out, "A").state, LimitState::Charging);
    assert_eq!(cur(&out, "B"), 15.5, "nothing reserved for A");
    // The same reading seen again later is still the old one.
    let out = ctl.step(&mk(40, reading(30.0, 100, Some(12), Some(31.0)))).unwrap();
    assert!(out.non_compliant.is_empty());
    // A reading sampled after the limit was applied that follows it: compliant.
    let out = ctl.step(&mk(45, reading(15.4, 200, Some(43), Some(15.5)))).unwrap();
    assert!(out.non_compliant.is_empty());
}

#[test]
fn reading_sampled_after_the_limit_was_applied_shows_a_violation() {
    let (mut ctl, mk) = lowered_at_5();
    let out = ctl.step(&mk(20, reading(30.0, 100, Some(12), None))).unwrap();
    assert!(out.non_compliant.is_empty());
    // Sampled at t = 16, after 5 + 10: the charger ignores its limit.
    let out = ctl.step(&mk(25, reading(30.0, 150, Some(16), None))).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
    assert_eq!(lim(&out, "A").load, [30.0; 3]);
}

#[test]
fn stale_reading_over_every_limit_that_may_have_been_in_force_is_a_violation() {
    let (mut ctl, mk) = lowered_at_5();
    // Sampled at t = 12, when 31 A or 15.5 A were in force: 34 A is over both.
    let out = ctl.step(&mk(20, reading(34.0, 100, Some(12), None))).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
    // Sampled before any limit was sent (the charger offered its own maximum): no verdict.
    let (mut ctl, mk) = lowered_at_5();
    let out = ctl.step(&mk(20, reading(34.0, 100, Some(-3), None))).unwrap();
    assert!(out.non_compliant.is_empty());
}

#[test]
fn without_sample_times_a_violation_needs_two_readings_or_the_offered_limit() {
    // Two distinct readings over the limit.
    let (mut ctl, mk) = lowered_at_5();
    let out = ctl.step(&mk(20, reading(30.0, 100, None, None))).unwrap();
    assert!(out.non_compliant.is_empty(), "one reading may predate the limit");
    let out = ctl.step(&mk(25, reading(30.0, 100, None, None))).unwrap();
    assert!(
        out.non_compliant.is_empty(),
        "the same reading again is no new evidence"
    );
    let out = ctl.step(&mk(30, reading(30.0, 140, None, None))).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);

    // A reading under the limit in between starts the count again.
    let (mut ctl, mk) = lowered_at_5();
    ctl.step(&mk(20, reading(30.0, 100, None, None))).unwrap();
    let out = ctl.step(&mk(25, reading(15.0, 120, None, None))).unwrap();
    assert!(out.non_compliant.is_empty());
    let out = ctl.step(&mk(30, reading(30.0, 140, None, None))).unwrap();
    assert!(out.non_compliant.is_empty());

    // The charger reports offering the new limit: the reading is after it was applied.
    let (mut ctl, mk) = lowered_at_5();
    let out = ctl.step(&mk(20, reading(30.0, 100, None, Some(15.5)))).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);

    // Over both the old and the new limit: proven on one new reading.
    let (mut ctl, mk) = lowered_at_5();
    let out = ctl.step(&mk(20, reading(34.0, 100, None, None))).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
}

/// Regression (bench dlm seed 3, tight-30): a car plugged into a charger that ignores its limits
/// draws the charger's maximum at once. Its first reading came while the limit just sent to it
/// had not had its apply delay yet; the verdict waited for that, every new limit started the wait
/// again, and meanwhile the charger was counted at its limit, so the others were not lowered.
#[test]
fn a_charger_ignoring_a_limit_just_sent_is_flagged_on_its_first_reading() {
    for sampled in [Some(101), None] {
        let mut ctl = Controller::new(Settings {
            deadband_a: 0.0,
            increase_interval_s: 0.0,
            ..Settings::default()
        });
        let root = circuit("grid", None, 32.0);
        let mk = |t: i64, b: Option<SessionState>| {
            site(
                t,
                vec![root.clone()],
                vec![
                    charger("A", "grid", 3, 32.0, sess("a", [0.0; 3])),
                    charger("B", "grid", 3, 32.0, b),
                ],
            )
        };
        ctl.step(&mk(0, None)).unwrap();
        let out = ctl.step(&mk(100, sess("b", [0.0; 3]))).unwrap();
        assert!(cur(&out, "B") > 0.0 && cur(&out, "B") < 30.0);
        // Sampled at t = 101, 1 s after B's limit was sent (apply delay 30 s): 32 A is over both
        // limits that may have been in force (0 since t = 30, and the new one).
        let mut b = sess("b", [32.0; 3]);
        if let Some(x) = b.as_mut() {
            x.measured_at = sampled.map(at);
            x.energy_wh = 10;
        }
        let out = ctl.step(&mk(103, b)).unwrap();
        assert_eq!(out.non_compliant, vec!["B".to_string()], "sample time {sampled:?}");
        assert_eq!(lim(&out, "B").load, [32.0; 3]);
        assert_eq!(cur(&out, "A"), 0.0, "B's 32 A leave nothing under 31.04 A");
    }
}

/// A charger the controller never sent a limit offers its own maximum: until the first limit is
/// applied, a car plugged into it may draw that, so others are not raised into that room.
#[test]
fn a_charger_never_limited_counts_at_its_maximum_until_its_first_limit_applies() {
    let mut ctl = Controller::new(Settings {
        deadband_a: 0.0,
        increase_interval_s: 0.0,
        ..Settings::default()
    });
    let root = |unmanaged: f64| CircuitState {
        unmanaged_current: Some([unmanaged; 3]),
        ..circuit("grid", None, 40.0)
    };
    let a = |draw: f64| charger("A", "grid", 3, 32.0, sess("a", [draw; 3]));
    let out = ctl.step(&site(0, vec![root(20.0)], vec![a(0.0)])).unwrap();
    assert_eq!(cur(&out, "A"), 18.8, "38.8 − 20");
    // The building load goes; a charger not seen before reports a car not metered yet. A should
    // rise to half of 38.8 A, but B may draw 32 A until its first limit applies.
    let b = charger("B", "grid", 3, 32.0, sess("b", [0.0; 3]));
    let out = ctl.step(&site(60, vec![root(0.0)], vec![a(18.8), b.clone()])).unwrap();
    assert_eq!(cur(&out, "B"), 19.4);
    assert_eq!(cur(&out, "A"), 18.8, "not raised next to B's possible 32 A");
    let out = ctl.step(&site(95, vec![root(0.0)], vec![a(18.8), b])).unwrap();
    assert_eq!(cur(&out, "A"), 19.4, "B's limit is applied");
}

/// Regression (bench dlm seed 3, tight-30, grid signal): a charger still lowering its limit counts
/// its draw before and after a rise, so the rise added nothing to the count and was sent although
/// the node was over its capacity until the others' decreases applied.
#[test]
fn a_rise_of_a_charger_still_lowering_waits_for_the_others() {
    let mut ctl = Controller::new(Settings {
        deadband_a: 0.0,
        increase_interval_s: 0.0,
        ..Settings::default()
    });
    let mk = |t: i64, max: f64, draw: [f64; 2], b_priority: Option<i32>| {
        let mut b = sess("b", [draw[1]; 3]);
        if let Some(x) = b.as_mut() {
            x.priority = b_priority;
        }
        site(
            t,
            vec![circuit("grid", None, max)],
            vec![
                charger("A", "grid", 3, 32.0, sess("a", [draw[0]; 3])),
                charger("B", "grid", 3, 32.0, b),
            ],
        )
    };
    ctl.step(&mk(0, 64.0, [0.0; 2], None)).unwrap();
    ctl.step(&mk(60, 64.0, [31.0; 2], None)).unwrap();
    // The grid connection drops to 32 A: both lower to 15.5 A (applied by t = 90).
    let out = ctl.step(&mk(61, 32.0, [31.0; 2], None)).unwrap();
    assert_eq!((cur(&out, "A"), cur(&out, "B")), (15.5, 15.5));
    // B gets priority: A goes to 6 A, B should rise, but A may still draw 31 A.
    let out = ctl.step(&mk(65, 32.0, [31.0; 2], Some(1))).unwrap();
    assert_eq!(cur(&out, "A"), 6.0);
    assert_eq!(cur(&out, "B"), 15.5, "B's rise waits: A still draws 31 A");
    let out = ctl.step(&mk(100, 32.0, [6.0, 15.5], Some(1))).unwrap();
    assert_eq!(cur(&out, "B"), 25.0);
}

/// A charger that once ignored its limit and then looked compliant again (its car drew less than
/// its limit) is lowered: the room counts as freed only once a reading shows the lower limit in
/// force, not after its apply delay.
#[test]
fn a_charger_that_ignored_a_limit_frees_room_only_when_a_reading_shows_it() {
    let mut ctl = Controller::new(Settings {
        deadband_a: 0.0,
        increase_interval_s: 0.0,
        compliance_recover_s: 60.0,
        ..Settings::default()
    });
    let mk = |t: i64, a: Option<SessionState>, b_priority: Option<i32>, b_draw: f64| {
        let mut b = sess("b", [b_draw; 3]);
        if let Some(x) = b.as_mut() {
            x.priority = b_priority;
        }
        site(
            t,
            vec![circuit("grid", None, 32.0)],
            vec![charger("A", "grid", 3, 32.0, a), charger("B", "grid", 3, 32.0, b)],
        )
    };
    let a = |draw: f64, sampled: i64| {
        let mut x = sess("a", [draw; 3]);
        if let Some(s) = x.as_mut() {
            s.measured_at = Some(at(sampled));
            s.energy_wh = sampled;
        }
        x
    };
    ctl.step(&mk(0, sess("a", [0.0; 3]), None, 0.0)).unwrap();
    // A draws 32 A against 15.5 A: it ignores limits.
    let out = ctl.step(&mk(60, a(32.0, 58), None, 0.0)).unwrap();
    assert_eq!(out.non_compliant, vec!["A".to_string()]);
    // Its car tapers to 10 A, under its limit: compliant again after 60 s.
    ctl.step(&mk(100, a(10.0, 98), None, 0.0)).unwrap();
    let out = ctl.step(&mk(170, a(10.0, 168), None, 0.0)).unwrap();
    assert!(out.non_compliant.is_empty());
    // B gets priority: A is lowered to 6 A, B should get 25 A.
    let out = ctl.step(&mk(175, a(10.0, 168), Some(1), 0.0)).unwrap();
    assert_eq!(cur(&out, "A"), 6.0);
    // Past A's apply delay, but no reading sampled since shows it: B stays below 31.04 − 10.
    let out = ctl.step(&mk(210, a(10.0, 178), Some(1), cur(&out, "B"))).unwrap();
    assert!(cur(&out, "B") <= 21.04 + 1e-9, "B {}", cur(&out, "B"));
    let out = ctl.step(&mk(220, a(6.0, 208), Some(1), cur(&out, "B"))).unwrap();
    assert_eq!(cur(&out, "B"), 25.0);
}

#[test]
fn a_session_without_a_need_weighs_less_the_more_energy_it_got() {
    let mut ctl = Controller::new(Settings {
        untold_share_kwh: Some(5.0),
        ..quick()
    });
    let mk = |wh: i64| {
        let mut a = sess("a", [0.0; 3]);
        if let Some(x) = a.as_mut() {
            x.energy_wh = wh;
        }
        site(
            0,
            vec![circuit("grid", None, 32.0)],
            vec![
                charger("A", "grid", 3, 32.0, a),
                charger("B", "grid", 3, 32.0, sess("b", [0.0; 3])),
            ],
        )
    };
    let out = ctl.step(&mk(0)).unwrap();
    assert_eq!((cur(&out, "A"), cur(&out, "B")), (15.5, 15.5));
    // A got 5 kWh: it weighs half of B (32 × 5 / (5 + 5) against 32): 31.04 A split 1 : 2.
    let out = ctl.step(&mk(5000)).unwrap();
    assert_eq!(cur(&out, "A"), 10.3);
    assert_eq!(cur(&out, "B"), 20.6);
}

#[test]
fn measured_at_is_optional_in_json() {
    let with: SessionState = serde_json::from_str(
        r#"{"id":"s","measured_current":[1,2,3],"energy_wh":5,"measured_at":"2026-11-23T08:00:10Z"}"#,
    )
    .unwrap();
    assert_eq!(with.measured_at, Some(at(10)));
    let without: SessionState = serde_json::from_str(r#"{"id":"s","measured_current":[1,2,3],"energy_wh":5}"#).unwrap();
    assert_eq!(without.measured_at, None);
}

#[test]
fn silent_meter_falls_back_to_the_safe_current() {
    let mut board = circuit("board", None, 32.0);
    board.metered = true;
    board.safe_current = Some([10.0; 3]);
    let a = charger("A", "board", 3, 32.0, sess("a", [0.0; 3]));
    let b = charger("B", "board", 3, 32.0, sess("b", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    // 31.04 − 22 assumed unmanaged = 9.04: one car at 9 A, the other paused (4.52 < 6).
    assert_eq!(cur(&out, "A"), 9.0);
    assert_eq!(cur(&out, "B"), 0.0);
    // No safe current: the whole limit is assumed used.
    board.safe_current = None;
    let out = Controller::new(quick())
        .step(&site(0, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    assert!(out.limits.iter().all(|l| l.current == 0.0));
    // The meter speaks: normal allocation.
    board.unmanaged_current = Some([0.0; 3]);
    let out = Controller::new(quick())
        .step(&site(0, vec![board], vec![a, b]))
        .unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
}

#[test]
fn a_silent_meter_is_trusted_at_its_recent_peak_plus_a_margin_for_the_hold() {
    let mut board = circuit("board", None, 100.0);
    board.metered = true;
    let a = charger("A", "board", 3, 63.0, sess("a", [0.0; 3]));
    let b = charger("B", "board", 3, 63.0, sess("b", [0.0; 3]));
    // The cars draw nothing in this test: never park them.
    let settings = Settings {
        reclaim_after_s: 1e6,
        ..quick()
    };
    let mut ctl = Controller::new(settings.clone());
    let mut step = |t: i64, unmanaged: Option<[f64; 3]>| {
        board.unmanaged_current = unmanaged;
        ctl.step(&site(t, vec![board.clone()], vec![a.clone(), b.clone()]))
            .unwrap()
    };
    let total = |out: &Allocation| cur(out, "A") + cur(out, "B");
    step(0, Some([40.0, 30.0, 30.0]));
    let out = step(60, Some([20.0, 20.0, 20.0]));
    assert_eq!(total(&out), 77.0);
    // Silent: the peak of the last readings (40 A on L1) + 10 % of 100 A: 97 − 50 = 47 A on L1.
    let out = step(65, None);
    assert_eq!(total(&out), 47.0);
    assert_eq!(out.nodes[0].allocated[0], 97.0);
    let out = step(60 + 600, None);
    assert_eq!(total(&out), 47.0);
    // After the hold: the whole limit is assumed used.
    let out = step(60 + 601, None);
    assert!(out.limits.iter().all(|l| l.current == 0.0));
    // Half an hour later the 40 A are no longer the recent peak; export may stop at once and
    // counts as 0: 97 − 10.
    step(2500, Some([-40.0; 3]));
    let out = step(2505, None);
    assert_eq!(total(&out), 87.0);
    // Without a hold, everything pauses at once, as with a controller that never heard the meter.
    let mut ctl = Controller::new(Settings {
        silent_hold_s: 0.0,
        ..settings.clone()
    });
    board.unmanaged_current = Some([0.0; 3]);
    ctl.step(&site(0, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    board.unmanaged_current = None;
    let out = ctl
        .step(&site(5, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    assert!(out.limits.iter().all(|l| l.current == 0.0));
    let out = Controller::new(quick())
        .step(&site(0, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    assert!(out.limits.iter().all(|l| l.current == 0.0));
    // An operator's safe capacity is taken as configured, even where the estimate would allow more.
    board.safe_current = Some([20.0; 3]);
    let mut ctl = Controller::new(settings);
    board.unmanaged_current = Some([0.0; 3]);
    ctl.step(&site(0, vec![board.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    board.unmanaged_current = None;
    let out = ctl.step(&site(5, vec![board], vec![a, b])).unwrap();
    assert!(total(&out) > 0.0 && total(&out) <= 20.0, "{}", total(&out));
}

#[test]
fn offline_charger_with_a_session_has_its_fallback_reserved() {
    let root = circuit("grid", None, 32.0);
    let mut a = charger("A", "grid", 3, 32.0, sess("a", [10.0; 3]));
    a.connected = false;
    a.fallback_current = Some(10.0);
    let b = charger("B", "grid", 3, 32.0, sess("b", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![root.clone()], vec![a.clone(), b.clone()]))
        .unwrap();
    assert_eq!(lim(&out, "A").state, LimitState::Offline);
    assert!(!lim(&out, "A").changed, "nothing can be sent to it");
    assert_eq!(lim(&out, "A").current, 0.0, "no limit was ever sent");
    assert_eq!(lim(&out, "A").load, [10.0; 3]);
    assert_eq!(cur(&out, "B"), 21.0);
    a.fallback_current = None; // assume its max
    let out = Controller::new(quick()).step(&site(0, vec![root], vec![a, b])).unwrap();
    assert_eq!(cur(&out, "B"), 0.0);
}

#[test]
fn charger_back_online_gets_its_limit_again() {
    let root = circuit("grid", None, 32.0);
    let mut a = charger("A", "grid", 3, 32.0, sess("a", [0.0; 3]));
    let mut ctl = Controller::new(quick());
    let out = ctl.step(&site(0, vec![root.clone()], vec![a.clone()])).unwrap();
    assert_eq!(cur(&out, "A"), 31.0);
    a.connected = false;
    let out = ctl.step(&site(10, vec![root.clone()], vec![a.clone()])).unwrap();
    assert_eq!((cur(&out, "A"), lim(&out, "A").changed), (31.0, false));
    assert_eq!(lim(&out, "A").load, [32.0; 3], "no fallback: its max is reserved");
    a.connected = true;
    let out = ctl.step(&site(20, vec![root], vec![a])).unwrap();
    assert_eq!(
        (cur(&out, "A"), lim(&out, "A").changed),
        (31.0, true),
        "sent again on reconnection"
    );
}

#[test]
fn flexible_session_waits_for_the_cheap_slot_and_urgent_one_does_not() {
    let root = circuit("grid", None, 63.0);
    let mut flexible = charger("F", "grid", 3, 16.0, sess("f", [0.0; 3]));
    if let Some(s) = flexible.session.as_mut() {
        s.energy_target_wh = Some(10_000); // 0.9 h at 11 kW
        s.departure = Some(at(8 * 3600));
    }
    let mut urgent = charger("U", "grid", 3, 16.0, sess("u", [0.0; 3]));
    if let Some(s) = urgent.session.as_mut() {
        s.energy_target_wh = Some(10_000);
        s.departure = Some(at(3600));
    }
    let prices = dear_then_cheap(4);
    let mut state = site(-60, vec![root], vec![flexible, urgent]);
    state.prices = prices;
    let mut ctl = Controller::new(quick());
    // Not shifted before the car was seen charging (its power is unknown).
    let out = ctl.step(&state).unwrap();
    assert_eq!(cur(&out, "F"), 16.0);
    state.time = at(0);
    if let Some(s) = state.chargers[0].session.as_mut() {
        s.measured_current = [16.0; 3];
    }
    let out = ctl.step(&state).unwrap();
    assert_eq!(lim(&out, "F").state, LimitState::Deferred);
    assert_eq!(cur(&out, "F"), 0.0);
    assert_eq!(cur(&out, "U"), 16.0);
    state.time = at(2 * 3600);
    let out = ctl.step(&state).unwrap();
    assert_eq!(cur(&out, "F"), 16.0, "the cheap slot has come");
    // Not enough cheap time left before departure: charge now whatever the price.
    if let Some(s) = state.chargers[0].session.as_mut() {
        s.energy_target_wh = Some(40_000);
    }
    let out = ctl.step(&state).unwrap();
    assert_eq!(cur(&out, "F"), 16.0);
}

#[test]
fn urgent_sessions_are_served_before_flexible_ones() {
    let root = circuit("grid", None, 24.0); // 23.28 usable
    let mut relaxed = charger("R", "grid", 3, 32.0, sess("r", [0.0; 3]));
    if let Some(s) = relaxed.session.as_mut() {
        s.energy_target_wh = Some(5_000);
        s.departure = Some(at(10 * 3600));
    }
    let mut urgent = charger("U", "grid", 3, 32.0, sess("u", [0.0; 3]));
    if let Some(s) = urgent.session.as_mut() {
        s.energy_target_wh = Some(30_000); // 1.36 h at 22 kW
        s.departure = Some(at(5400));
    }
    let out = Controller::new(quick())
        .step(&site(0, vec![root], vec![relaxed, urgent]))
        .unwrap();
    assert_eq!(cur(&out, "R"), 6.0);
    assert_eq!(cur(&out, "U"), 17.2);
}

/// A session that says it needs `target_wh` by `departure_s`.
fn told(id: &str, target_wh: i64, departure_s: i64) -> Option<SessionState> {
    let mut s = sess(id, [0.0; 3]);
    if let Some(x) = s.as_mut() {
        x.energy_target_wh = Some(target_wh);
        x.departure = Some(at(departure_s));
    }
    s
}

#[test]
fn a_car_paused_for_a_rotation_period_goes_before_those_that_should_charge_all_the_time() {
    // 15.5 A usable: two cars at 6 A, not three. A and B said nothing: their fluid shares (7.7 A)
    // reach the minimum, so they should charge all the time; C needs 1.6 A on average for 9 hours
    // and takes turns. Once paused for a rotation period it goes first, whatever the others' shares
    // (some cars do not wake up after a long pause); before, it waited for as long as A and B stayed.
    let mut ctl = Controller::new(Settings {
        rotation_period_s: 600.0,
        ..quick()
    });
    let root = circuit("grid", None, 16.0);
    let mut paused_for = [0i64; 3];
    let mut longest = [0i64; 3];
    let mut last: Option<Allocation> = None;
    for step in 0..=60 {
        let draw = |id: &str| last.as_ref().map_or(0.0, |a| cur(a, id));
        let mut c = told("c", 10_000, 9 * 3600);
        if let Some(x) = c.as_mut() {
            x.measured_current = [draw("C"); 3];
        }
        let chargers = vec![
            charger("A", "grid", 3, 32.0, sess("a", [draw("A"); 3])),
            charger("B", "grid", 3, 32.0, sess("b", [draw("B"); 3])),
            charger("C", "grid", 3, 32.0, c),
        ];
        let out = ctl.step(&site(step * 60, vec![root.clone()], chargers)).unwrap();
        for (k, id) in ["A", "B", "C"].iter().enumerate() {
            paused_for[k] = if cur(&out, id) == 0.0 { paused_for[k] + 60 } else { 0 };
            longest[k] = longest[k].max(paused_for[k]);
        }
        last = Some(out);
    }
    // Paused at one step, counted from the next: a rotation period, then admitted at once.
    for (k, id) in ["A", "B", "C"].iter().enumerate() {
        assert!(longest[k] <= 660, "{id} paused for {} s", longest[k]);
    }
}

#[test]
fn a_session_that_needs_its_full_power_weighs_more_than_its_need() {
    // 38.8 A usable; single-phase cars. S needs its full 32 A for the hour it stays, L needs 8 A on
    // average over 8 hours. In proportion to the need alone (32 : 8) S would get 31.0 A and L 7.7 A;
    // weighted by urgency as well (32 × 1 : 8 × 0.5), S gets all it can take and L has hours left.
    let root = circuit("grid", None, 40.0);
    let short = charger("S", "grid", 1, 32.0, told("s", 7_360, 3600));
    let long = charger("L", "grid", 1, 32.0, told("l", 14_720, 8 * 3600));
    let out = Controller::new(quick())
        .step(&site(0, vec![root], vec![short, long]))
        .unwrap();
    assert_eq!((cur(&out, "S"), cur(&out, "L")), (32.0, 6.8));
}

#[test]
fn short_stay_gets_more_than_an_all_day_car() {
    let root = circuit("grid", None, 24.0); // 23.28 A usable
    // Both need 10 kWh: A in 9 hours (1.6 A on average), B in one (14.5 A).
    let all_day = charger("A", "grid", 3, 32.0, told("a", 10_000, 9 * 3600));
    let short = charger("B", "grid", 3, 32.0, told("b", 10_000, 3600));
    let out = Controller::new(quick())
        .step(&site(0, vec![root.clone()], vec![all_day.clone(), short.clone()]))
        .unwrap();
    assert_eq!(cur(&out, "A"), 6.0);
    assert_eq!(cur(&out, "B"), 17.2);
    // A session that says nothing wants current now: it is not outweighed by one with slack.
    let silent = charger("B", "grid", 3, 32.0, sess("b", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![root.clone()], vec![all_day.clone(), silent]))
        .unwrap();
    assert_eq!((cur(&out, "A"), cur(&out, "B")), (6.0, 17.2));
    // Room for only one at its minimum: the short stay charges, the all-day car waits its turn
    // (by charger id alone A would go first).
    let mut small = root;
    small.max_current = [10.0; 3]; // 9.5 A usable
    let out = Controller::new(quick())
        .step(&site(0, vec![small], vec![all_day, short]))
        .unwrap();
    assert_eq!((cur(&out, "A"), cur(&out, "B")), (0.0, 9.5));
}

#[test]
fn deferred_car_is_kept_awake_and_not_deferred_where_the_capacity_is_wanted() {
    let prices = dear_then_cheap(6);
    let root = |grid: f64| vec![circuit("grid", None, grid)];
    // Every car draws the limit it was given last.
    let run = |grid: f64, mut chargers: Vec<ChargerState>| {
        let mut ctl = Controller::new(quick());
        let mut outs: Vec<Allocation> = Vec::new();
        for t in [-60, 0, 300, 600, 900, 1200] {
            if let Some(last) = outs.last() {
                for (c, l) in chargers.iter_mut().zip(&last.limits) {
                    if let Some(x) = c.session.as_mut() {
                        x.measured_current = [l.current; 3];
                    }
                }
            }
            let mut state = site(t, root(grid), chargers.clone());
            state.prices = prices.clone();
            outs.push(ctl.step(&state).unwrap());
        }
        outs
    };
    let flexible = charger("F", "grid", 3, 16.0, told("f", 10_000, 8 * 3600));
    // Deferred from t = 0 (once seen charging); paused for a rotation period, it gets its
    // minimum for a period.
    let outs = run(63.0, vec![flexible.clone()]);
    let f: Vec<(f64, LimitState)> = outs.iter().map(|o| (cur(o, "F"), lim(o, "F").state)).collect();
    assert_eq!(f[0], (16.0, LimitState::Charging));
    assert_eq!(f[1], (0.0, LimitState::Deferred));
    assert_eq!(f[2], (0.0, LimitState::Deferred));
    assert_eq!(f[3], (6.0, LimitState::Deferred), "awake after a rotation period");
    assert_eq!(f[4], (6.0, LimitState::Deferred));
    assert_eq!(f[5], (0.0, LimitState::Deferred), "paused again after a period");
    // On a full circuit the capacity it would leave is wanted now: it charges.
    let other = charger("G", "grid", 3, 32.0, sess("g", [0.0; 3]));
    let outs = run(20.0, vec![flexible, other]);
    assert!(outs.iter().all(|o| lim(o, "F").state == LimitState::Charging));
}

#[test]
fn dc_charger_is_allocated_in_watts() {
    let root = circuit("grid", None, 100.0); // 97 A usable
    let mut dc = charger("DC", "grid", 3, 200.0, sess("d", [0.0; 3]));
    dc.supply = Supply::Dc;
    dc.max_power_w = Some(50_000.0); // 72.46 A per grid phase
    let out = Controller::new(quick())
        .step(&site(0, vec![root.clone()], vec![dc.clone()]))
        .unwrap();
    assert_eq!(cur(&out, "DC"), 72.4);
    assert_eq!(lim(&out, "DC").power_w, Some(49_956.0));
    let ac = charger("AC", "grid", 3, 32.0, sess("a", [0.0; 3]));
    let out = Controller::new(quick())
        .step(&site(0, vec![root], vec![dc, ac]))
        .unwrap();
    assert_eq!(cur(&out, "AC"), 32.0);
    assert_eq!(cur(&out, "DC"), 65.0);
    assert_eq!(lim(&out, "DC").power_w, Some(44_850.0));
    assert_eq!(lim(&out, "AC").power_w, None);
}

#[test]
fn deadband_and_rate_limit_hold_small_changes_and_increases_but_not_safety() {
    let mut ctl = Controller::new(Settings {
        apply_delay_s: 0.0,
        reclaim_after_s: 1e9,
        ..Settings::default()
    });
    let mut root = circuit("grid", None, 32.0);
    let mk = |t: i64, root: &CircuitState| {
        site(
            t,
            vec![root.clone()],
            vec![
                charger("A", "grid", 3, 32.0, sess("a", [0.0; 3])),
                charger("B", "grid", 3, 32.0, sess("b", [0.0; 3])),
            ],
        )
    };
    let out = ctl.step(&mk(0, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    // A small rise of the limit: not worth a message.
    root.max_current = [33.0; 3];
    let out = ctl.step(&mk(100, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    assert!(!lim(&out, "A").changed);
    // A big rise: sent once, then the next rise waits for the increase interval.
    root.max_current = [40.0; 3];
    let out = ctl.step(&mk(200, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 19.4);
    assert!(lim(&out, "A").changed);
    root.max_current = [50.0; 3];
    let out = ctl.step(&mk(230, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 19.4, "rate limited");
    let out = ctl.step(&mk(260, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 24.2);
    // A small decrease that would overload: sent at once.
    root.max_current = [49.5; 3];
    let out = ctl.step(&mk(261, &root)).unwrap();
    assert_eq!(cur(&out, "A"), 24.0);
    assert!(lim(&out, "A").changed);
}

#[test]
fn increases_wait_until_a_decrease_elsewhere_is_applied() {
    let mut ctl = Controller::new(Settings {
        deadband_a: 0.0,
        increase_interval_s: 0.0,
        ..Settings::default()
    });
    let root = circuit("grid", None, 32.0);
    let mk = |t: i64, a: (f64, Option<i32>), b: f64| {
        let mut ca = charger("A", "grid", 3, 32.0, sess("a", [a.0; 3]));
        if let Some(s) = ca.session.as_mut() {
            s.priority = a.1;
        }
        site(
            t,
            vec![root.clone()],
            vec![ca, charger("B", "grid", 3, 32.0, sess("b", [b; 3]))],
        )
    };
    ctl.step(&mk(0, (0.0, None), 0.0)).unwrap();
    let out = ctl.step(&mk(60, (15.5, None), 15.5)).unwrap();
    assert_eq!(cur(&out, "A"), 15.5);
    // A gets priority: B must drop to 6 first; A rises only once B draws less.
    let out = ctl.step(&mk(120, (15.5, Some(1)), 15.5)).unwrap();
    assert_eq!(cur(&out, "B"), 6.0);
    assert_eq!(cur(&out, "A"), 15.5, "B still draws 15.5 A");
    let out = ctl.step(&mk(130, (15.5, Some(1)), 6.0)).unwrap();
    assert_eq!(cur(&out, "A"), 25.0);
}

#[test]
fn invalid_states_name_the_field() {
    let good = || {
        site(
            0,
            vec![circuit("grid", None, 32.0)],
            vec![charger("A", "grid", 3, 32.0, None)],
        )
    };
    let mut ctl = Controller::new(Settings::default());
    let mut s = good();
    s.chargers[0].circuit = "nope".into();
    assert_eq!(ctl.step(&s).unwrap_err().field(), "chargers[0].circuit");
    let mut s = good();
    s.circuits.push(circuit("b", Some("missing"), 10.0));
    assert_eq!(ctl.step(&s).unwrap_err().field(), "circuits[1].parent");
    let mut s = good();
    s.circuits = vec![circuit("a", Some("b"), 10.0), circuit("b", Some("a"), 10.0)];
    assert!(matches!(ctl.step(&s).unwrap_err(), DlmError::Cycle { .. }));
    let mut s = good();
    s.chargers[0].phases = 2;
    assert_eq!(ctl.step(&s).unwrap_err().field(), "chargers[0].phases");
    let mut s = good();
    s.chargers[0].min_current = 40.0;
    assert_eq!(ctl.step(&s).unwrap_err().field(), "chargers[0].min_current");
    let mut s = good();
    s.circuits[0].max_current[1] = f64::NAN;
    assert_eq!(ctl.step(&s).unwrap_err().field(), "circuits[0].max_current[1]");
    let mut s = good();
    s.circuits[0].max_current[2] = -1.0;
    assert_eq!(ctl.step(&s).unwrap_err().field(), "circuits[0].max_current[2]");
    let mut s = good();
    s.chargers.push(charger("A", "grid", 3, 32.0, None));
    assert_eq!(ctl.step(&s).unwrap_err().field(), "chargers[1].id");
    // Two roots are two independent supplies.
    let mut s = good();
    s.circuits.push(circuit("other", None, 16.0));
    assert!(ctl.step(&s).is_ok());
}

#[test]
fn prices_accept_numbers_and_strings() {
    let a: PriceSlot =
        serde_json::from_str(r#"{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","price_per_kwh":0.25}"#)
            .unwrap();
    let b: PriceSlot =
        serde_json::from_str(r#"{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","price_per_kwh":"0.25"}"#)
            .unwrap();
    assert_eq!(a.price_per_kwh, Decimal::new(25, 2));
    assert_eq!(b.price_per_kwh, a.price_per_kwh);
}

/// 5,000 chargers in a 3-level tree (1 grid, 10 boards, 100 sub-boards): one step, all limits safe.
#[test]
fn large_site_steps_quickly() {
    let mut circuits = vec![circuit("grid", None, 2000.0)];
    for b in 0..10 {
        circuits.push(circuit(&format!("b{b}"), Some("grid"), 400.0));
        for s in 0..10 {
            circuits.push(circuit(&format!("b{b}s{s}"), Some(&format!("b{b}")), 63.0));
        }
    }
    let mut chargers = Vec::new();
    for k in 0..5000 {
        let board = format!("b{}s{}", k % 10, (k / 10) % 10);
        let mut c = charger(
            &format!("cp{k:05}"),
            &board,
            if k % 4 == 0 { 1 } else { 3 },
            32.0,
            sess(&format!("s{k}"), [8.0; 3]),
        );
        c.phase_rotation = [Rotation::L1L2L3, Rotation::L2L3L1, Rotation::L3L1L2][k % 3];
        if let Some(s) = c.session.as_mut() {
            s.priority = Some((k % 3) as i32);
        }
        chargers.push(c);
    }
    let mut state = site(0, circuits, chargers);
    let mut ctl = Controller::new(Settings::default());
    let mut fastest = std::time::Duration::MAX;
    let mut out = None;
    for step in 0..8 {
        state.time = at(step * 20);
        let started = std::time::Instant::now();
        let o = ctl.step(&state).unwrap();
        fastest = fastest.min(started.elapsed());
        // The cars draw what they were given.
        for (c, l) in state.chargers.iter_mut().zip(&o.limits) {
            if let Some(s) = c.session.as_mut() {
                s.measured_current = [l.current; 3];
            }
        }
        out = Some(o);
    }
    eprintln!("5000 chargers: fastest of 8 steps {fastest:?}");
    let out = out.unwrap();
    assert!(out.non_compliant.is_empty());
    assert_eq!(out.limits.len(), 5000);
    assert!(out.limits.iter().any(|l| l.current > 0.0));
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    struct World {
        circuits: Vec<CircuitState>,
        chargers: Vec<ChargerState>,
    }

    fn world(rng: &mut ChaCha8Rng) -> World {
        let n = rng.random_range(1..=8usize);
        let mut depth = Vec::new();
        let mut circuits = Vec::new();
        for i in 0..n {
            let parent = if i == 0 || rng.random_bool(0.1) {
                None
            } else {
                let p = loop {
                    let p = rng.random_range(0..i);
                    if depth[p] < 3 {
                        break p;
                    }
                };
                Some(p)
            };
            depth.push(parent.map_or(0, |p: usize| depth[p] + 1));
            let mut c = circuit(&format!("c{i}"), parent.map(|p| format!("c{p}")).as_deref(), 0.0);
            c.max_current = [0, 1, 2].map(|_| rng.random_range(0.0..100.0));
            if rng.random_bool(0.5) {
                c.unmanaged_current = Some([0, 1, 2].map(|_| rng.random_range(-10.0..60.0)));
            }
            if rng.random_bool(0.2) {
                c.max_power_w = Some(rng.random_range(0.0..60_000.0));
            }
            if rng.random_bool(0.2) {
                c.metered = true;
                if rng.random_bool(0.5) {
                    c.safe_current = Some([0, 1, 2].map(|_| rng.random_range(0.0..40.0)));
                }
            }
            circuits.push(c);
        }
        let m = rng.random_range(1..=60usize);
        let mut chargers = Vec::new();
        for k in 0..m {
            let node = rng.random_range(0..n);
            let phases = if rng.random_bool(0.5) { 1 } else { 3 };
            let max = rng.random_range(6.0..40.0);
            let mut c = charger(&format!("cp{k}"), &format!("c{node}"), phases, max, None);
            c.phase_rotation = [Rotation::L1L2L3, Rotation::L2L3L1, Rotation::L3L1L2][rng.random_range(0..3usize)];
            c.min_current = if rng.random_bool(0.8) {
                6.0
            } else {
                rng.random_range(0.0..max)
            };
            chargers.push(c);
        }
        World { circuits, chargers }
    }

    fn randomise(rng: &mut ChaCha8Rng, w: &mut World, last: Option<&Allocation>) {
        for c in &mut w.circuits {
            if c.unmanaged_current.is_some() || (c.metered && rng.random_bool(0.5)) {
                c.unmanaged_current = Some([0, 1, 2].map(|_| rng.random_range(-10.0..60.0)));
            }
        }
        for (k, c) in w.chargers.iter_mut().enumerate() {
            c.connected = !rng.random_bool(0.05);
            if rng.random_bool(0.15) {
                c.session = None;
                continue;
            }
            let given = last.map_or(0.0, |a| a.limits[k].current);
            let id = c
                .session
                .as_ref()
                .map_or_else(|| format!("s{k}-{}", rng.random_range(0..1000)), |s| s.id.clone());
            let measured = [0, 1, 2].map(|_| {
                if rng.random_bool(0.1) {
                    rng.random_range(0.0..40.0)
                } else {
                    given * rng.random_range(0.0..1.05)
                }
            });
            let priority = c.session.as_ref().map_or_else(
                || {
                    if rng.random_bool(0.5) {
                        Some(rng.random_range(0..3))
                    } else {
                        None
                    }
                },
                |s| s.priority,
            );
            // Half say what they need and by when (some too late, some past their departure):
            // their shares weigh the water-filling.
            let told = rng.random_bool(0.5);
            let target = rng.random_range(0..40_000i64);
            c.session = Some(SessionState {
                id,
                measured_current: measured,
                energy_wh: if told { rng.random_range(0..45_000i64) } else { 0 },
                energy_target_wh: told.then_some(target),
                departure: told.then(|| at(rng.random_range(-600..36_000i64))),
                priority,
                offered_current: None,
                measured_power_w: None,
                measured_at: None,
            });
        }
    }

    fn caps(c: &CircuitState, s: &Settings) -> [f64; 4] {
        let mut cap = [f64::INFINITY; 4];
        for p in 0..3 {
            cap[p] = c.max_current[p] - (c.max_current[p] * s.headroom_fraction).max(s.headroom_min_a);
        }
        if let Some(w) = c.max_power_w {
            let a = w / s.volts;
            cap[3] = a - (a * s.headroom_fraction).max(3.0 * s.headroom_min_a);
        }
        cap
    }

    fn controllable(l: &Limit) -> bool {
        matches!(
            l.state,
            LimitState::Charging | LimitState::Reclaimed | LimitState::Paused | LimitState::Idle
        )
    }

    /// Circuits on the path from a charger's circuit to its root.
    fn path(circuits: &[CircuitState], start: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = circuits.iter().position(|c| c.id == start);
        while let Some(i) = cur {
            out.push(i);
            cur = circuits[i]
                .parent
                .as_ref()
                .and_then(|p| circuits.iter().position(|c| &c.id == p));
        }
        out
    }

    fn check(state: &SiteState, out: &Allocation, ctl: &Controller, s: &Settings, strict_priority: bool) {
        let cs = &state.circuits;
        // Never between 0 and the minimum.
        for (c, l) in state.chargers.iter().zip(&out.limits) {
            if controllable(l) {
                assert!(
                    l.current == 0.0 || l.current + 1e-9 >= c.min_current,
                    "{}: {} < min {}",
                    c.id,
                    l.current,
                    c.min_current
                );
            }
        }
        // Every node holds, unless no controllable charger below loads the overloaded dimension.
        for (n, node) in out.nodes.iter().enumerate() {
            let cap = caps(&cs[n], s);
            let alloc = [
                node.allocated[0],
                node.allocated[1],
                node.allocated[2],
                node.allocated.iter().sum(),
            ];
            for d in 0..4 {
                if alloc[d] <= cap[d] + 0.01 {
                    continue;
                }
                for (c, l) in state.chargers.iter().zip(&out.limits) {
                    if controllable(l) && path(cs, &c.circuit).contains(&n) {
                        let on = if d < 3 { l.load[d] } else { l.load.iter().sum() };
                        assert!(
                            on == 0.0,
                            "node {} dim {d}: {} > {} with {} at {:?}",
                            node.circuit,
                            alloc[d],
                            cap[d],
                            c.id,
                            l.load
                        );
                    }
                }
            }
        }
        if !strict_priority {
            return;
        }
        // Priority: a higher class gets no less than a lower one unless its own max or the tree limits it.
        let tight = |c: &ChargerState, l: &Limit, extra: f64| {
            path(cs, &c.circuit).iter().any(|&n| {
                let cap = caps(&cs[n], s);
                let a = out.nodes[n].allocated;
                let alloc = [a[0], a[1], a[2], a.iter().sum()];
                let below = state
                    .chargers
                    .iter()
                    .filter(|x| path(cs, &x.circuit).contains(&n))
                    .count() as f64;
                (0..4).any(|d| {
                    let w = if d < 3 {
                        f64::from(u8::from(l.load[d] > 0.0 || (l.current == 0.0 && mask(c)[d])))
                    } else {
                        3.0
                    };
                    w > 0.0 && alloc[d] + w * extra > cap[d] - 0.3 * (below + 1.0) - 1e-6
                })
            })
        };
        for (a, la) in state.chargers.iter().zip(&out.limits) {
            for (b, lb) in state.chargers.iter().zip(&out.limits) {
                let (Some(sa), Some(sb)) = (&a.session, &b.session) else {
                    continue;
                };
                let cand = |l: &Limit| {
                    matches!(
                        l.state,
                        LimitState::Charging | LimitState::Reclaimed | LimitState::Paused
                    )
                };
                if !cand(la) || !cand(lb) || sa.priority.unwrap_or(0) <= sb.priority.unwrap_or(0) {
                    continue;
                }
                if la.current + 1e-9 >= lb.current {
                    continue;
                }
                let own_cap = ctl
                    .insight(&a.id)
                    .and_then(|i| i.reclaim_cap)
                    .unwrap_or(f64::INFINITY)
                    .min(a.max_current);
                if la.current == 0.0 {
                    assert!(
                        tight(a, la, a.min_current),
                        "{} (prio {:?}) paused while {} (prio {:?}) charges",
                        a.id,
                        sa.priority,
                        b.id,
                        sb.priority
                    );
                } else {
                    assert!(
                        la.current + 0.1 + 1e-9 >= own_cap || tight(a, la, 0.0),
                        "{} gets {} < {} of {}",
                        a.id,
                        la.current,
                        lb.current,
                        b.id
                    );
                }
            }
        }
    }

    fn mask(c: &ChargerState) -> [bool; 4] {
        if c.phases == 1 {
            let mut m = [false; 4];
            m[c.phase_rotation.grid_phase(0)] = true;
            m
        } else {
            [true; 4]
        }
    }

    /// `DLM_SEED=<seed> cargo test --lib replay_seed` prints every state and allocation of one case.
    #[test]
    fn replay_seed_from_env() {
        if let Ok(seed) = std::env::var("DLM_SEED") {
            run(seed.parse().unwrap(), quick(), true);
        }
    }

    fn run(seed: u64, settings: Settings, strict: bool) -> Vec<Allocation> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = world(&mut rng);
        let mut ctl = Controller::new(settings.clone());
        let mut outs: Vec<Allocation> = Vec::new();
        let mut t = 0;
        for _ in 0..5 {
            randomise(&mut rng, &mut w, outs.last());
            t += rng.random_range(0..120i64);
            let state = site(t, w.circuits.clone(), w.chargers.clone());
            let out = ctl.step(&state).unwrap();
            if std::env::var("DLM_SEED").is_ok() {
                eprintln!(
                    "{}\n{}",
                    serde_json::to_string(&state).unwrap(),
                    serde_json::to_string(&out).unwrap()
                );
            }
            check(&state, &out, &ctl, &settings, strict);
            outs.push(out);
        }
        outs
    }

    /// Cases proptest found: a tier's room held for fluid shares paused a higher priority that fit
    /// at its minimum.
    #[test]
    fn priorities_hold_with_held_room() {
        for seed in [7_885_146_418_196_809_847, 371_031_898_636_930_848] {
            run(seed, quick(), true);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn limits_are_safe_and_deterministic(seed in any::<u64>()) {
            let a = run(seed, Settings::default(), false);
            let b = run(seed, Settings::default(), false);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn priorities_hold_without_hygiene(seed in any::<u64>()) {
            run(seed, quick(), true);
        }
    }
}
