//! `voltyard dlm plan` as a library function: JSON lines in, allocations out, state kept across lines.

use serde_json::Value;
use voltyard::cli::dlm_plan::{PlanArgs, PlanError, run, run_with};
use voltyard::dlm::Settings;

/// A 16 A circuit (15.5 A usable) with three 3-phase chargers: only two fit at 6 A.
fn line(minute: u32, draws: [f64; 3]) -> String {
    let chargers: Vec<Value> = ["A", "B", "C"]
        .iter()
        .zip(draws)
        .map(|(id, draw)| {
            serde_json::json!({
                "id": id, "circuit": "grid", "phases": 3, "phase_rotation": "L1L2L3",
                "min_current": 6, "max_current": 32,
                "session": {"id": format!("s-{id}"), "measured_current": [draw, draw, draw], "energy_wh": 0}
            })
        })
        .collect();
    serde_json::json!({
        "time": format!("2026-11-23T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60),
        "circuits": [{"id": "grid", "parent": null, "max_current": [16, 16, 16]}],
        "chargers": chargers,
    })
    .to_string()
}

fn parse(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn current(v: &Value, charger: &str) -> f64 {
    v["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["charger"] == charger)
        .unwrap()["current"]
        .as_f64()
        .unwrap()
}

#[test]
fn pause_rotates_across_lines() {
    // Every minute for 25 minutes; each car draws what it was last given.
    let mut input = String::new();
    let mut given = [0.0; 3];
    let mut outputs = Vec::new();
    for minute in 0..25 {
        input.push_str(&line(minute, given));
        input.push('\n');
        let mut out = Vec::new();
        run(input.as_bytes(), &mut out, Settings::default()).unwrap();
        let all = parse(&out);
        assert_eq!(all.len(), minute as usize + 1, "one output line per input line");
        let last = all.last().unwrap().clone();
        given = [current(&last, "A"), current(&last, "B"), current(&last, "C")];
        outputs.push(last);
    }
    let first = &outputs[0];
    assert_eq!(
        first["limits"].as_array().unwrap().len(),
        3,
        "every charger on every line"
    );
    assert!(first["limits"].as_array().unwrap().iter().all(|l| l["changed"] == true));
    let paused_first: Vec<&str> = ["A", "B", "C"]
        .into_iter()
        .filter(|id| current(first, id) == 0.0)
        .collect();
    assert_eq!(paused_first, vec!["C"], "ties go by charger id");
    // After the 10-minute rotation period, C charges and someone else waits.
    let later = &outputs[12];
    assert!(current(later, "C") >= 6.0);
    assert_eq!(["A", "B", "C"].iter().filter(|id| current(later, id) == 0.0).count(), 1);
}

#[test]
fn rate_limit_is_visible_across_lines_and_blank_lines_are_skipped() {
    let one = |second: u32, max: u32, draw: f64| {
        serde_json::json!({
            "time": format!("2026-11-23T08:{:02}:{:02}Z", second / 60, second % 60),
            "circuits": [{"id": "grid", "parent": null, "max_current": [max, max, max]}],
            "chargers": [{"id": "A", "circuit": "grid", "phases": 3, "phase_rotation": "L1L2L3", "min_current": 6,
                "max_current": 32, "session": {"id": "s", "measured_current": [draw, draw, draw], "energy_wh": 0}}],
            "prices": [{"start": "2026-11-23T08:00:00Z", "end": "2026-11-23T09:00:00Z", "price_per_kwh": "0.30"}]
        })
        .to_string()
    };
    let input = format!(
        "{}\n\n{}\n   \n{}\n{}\n",
        one(0, 10, 0.0),
        one(60, 20, 9.5),
        one(90, 30, 19.0),
        one(180, 30, 19.0)
    );
    let mut out = Vec::new();
    let settings = Settings {
        increase_interval_s: 120.0,
        ..Settings::default()
    };
    run(input.as_bytes(), &mut out, settings).unwrap();
    let all = parse(&out);
    assert_eq!(all.len(), 4, "blank lines get no answer");
    assert_eq!(current(&all[0], "A"), 9.5);
    assert_eq!(current(&all[1], "A"), 19.4, "the first increase goes out at once");
    assert_eq!(all[1]["limits"][0]["changed"], true);
    assert_eq!(current(&all[2], "A"), 19.4, "the next one waits 120 s");
    assert_eq!(all[2]["limits"][0]["changed"], false);
    assert_eq!(current(&all[3], "A"), 29.1);
    assert_eq!(all[3]["limits"][0]["changed"], true);
}

#[test]
fn bad_lines_are_reported_with_line_and_field_and_the_rest_is_answered() {
    let good = line(0, [0.0; 3]);
    let unknown_circuit = good.replacen("\"circuit\":\"grid\"", "\"circuit\":\"nowhere\"", 1);
    assert_ne!(good, unknown_circuit);
    let input = format!(
        "{good}\n{{\"time\": \"yesterday\"}}\n{unknown_circuit}\nnot json\n{}\n",
        line(1, [6.0; 3])
    );
    let mut out = Vec::new();
    let mut err = Vec::new();
    let e = run_with(input.as_bytes(), &mut out, &mut err, Settings::default()).unwrap_err();
    assert!(matches!(e, PlanError::BadLines { count: 3, first: 2 }), "{e}");
    assert_eq!(e.exit_code(), 2);
    let err = String::from_utf8_lossy(&err);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("voltyard dlm plan: line 2: "), "{err}");
    assert!(lines[1].starts_with("voltyard dlm plan: line 3: "), "{err}");
    assert!(
        lines[1].contains("chargers[0].circuit") && lines[1].contains("nowhere"),
        "{err}"
    );
    assert!(lines[2].starts_with("voltyard dlm plan: line 4: "), "{err}");
    assert_eq!(parse(&out).len(), 2, "good lines are still answered");
}

#[test]
fn serde_errors_name_the_field() {
    let mut v: Value = serde_json::from_str(&line(0, [0.0; 3])).unwrap();
    v["chargers"][1]["phases"] = "three".into();
    let input = v.to_string();
    assert!(input.contains("three"), "{input}");
    let mut err = Vec::new();
    let e = run_with(input.as_bytes(), Vec::new(), &mut err, Settings::default()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("line 1: `chargers[1].phases`: invalid type"), "{err}");
}

#[test]
fn flags_override_settings() {
    let args = PlanArgs {
        headroom: Some(0.1),
        headroom_min: None,
        rotation_period: Some(300.0),
        deadband: None,
        increase_interval: None,
        apply_delay: None,
        settings: Some(r#"{"deadband_a": 2.0, "rotation_period_s": 900}"#.into()),
    };
    let s = args.to_settings().unwrap();
    assert_eq!(
        (s.headroom_fraction, s.rotation_period_s, s.deadband_a),
        (0.1, 300.0, 2.0)
    );
    let bad = PlanArgs {
        headroom: Some(-1.0),
        ..args
    };
    assert!(bad.to_settings().is_err());
}
