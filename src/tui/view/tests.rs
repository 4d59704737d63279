//! Every screen rendered into a `TestBackend` at 80×24 and 120×40 from
//! the fixture site, checked by what the operator must be able to read.
//! The 80×24 renders are also the captures in docs/tui.md: a test fails
//! when they drift apart (`VOLTYARD_UPDATE_DOCS=1` rewrites them).

use crate::tui::feed::FeedMsg;
use crate::tui::state::{Act, Overlay, State};
use crate::tui::tests::{loaded, press, typed};
use crate::tui::update::{Msg, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;
use serde_json::json;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn render(state: &State, w: u16, h: u16) -> (String, ratatui::buffer::Buffer) {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| super::render(f, state)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut text = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    (text, buf)
}

/// The state after `keys` (one char per key; `\n` is Enter).
fn after(keys: &str, readonly: bool) -> State {
    let mut s = loaded(readonly);
    for c in keys.chars() {
        let code = if c == '\n' { KeyCode::Enter } else { KeyCode::Char(c) };
        press(&mut s, code);
    }
    s
}

fn check(state: &State, expect: &[&str]) {
    for (w, h) in SIZES {
        let (text, _) = render(state, w, h);
        for e in expect {
            assert!(text.contains(e), "{w}×{h}: {e:?} missing from\n{text}");
        }
        assert!(
            text.lines().next().unwrap_or("").contains("6:Log"),
            "{w}×{h}: tab bar cut\n{text}"
        );
    }
}

#[test]
fn overview_shows_loads_counts_energy_and_health() {
    let s = after("", false);
    check(
        &s,
        &[
            "Site demo",
            "1 online",
            "1 offline",
            "1 faulted",
            "1 pending",
            "sessions 1 active",
            "energy today 12.25 kWh",
            "grid",
            "  board-a",
            " 40/63",
            " 16/16",
            "Server v0.1.0 · 3 chargers connected · 0.6 msg/s · commit 2.5 ms",
        ],
    );
    // Health sits on the last line above the status line whatever the height.
    for (w, h) in SIZES {
        let (text, _) = render(&s, w, h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[usize::from(h) - 3].starts_with("Server"), "{w}×{h}\n{text}");
    }
}

#[test]
fn chargers_table_and_detail() {
    check(
        &after("2", false),
        &[
            "ID",
            "CONNECTORS",
            "CP-01",
            "online",
            "1:Chrg",
            "11.0",
            "42",
            "CP-03",
            "faulted",
            "1:FAULT",
            "pending",
        ],
    );
    let (wide, _) = render(&after("2", false), 120, 40);
    assert!(wide.contains("MODEL") && wide.contains("ABL eMH3"), "{wide}");
    check(
        &after("2\n", false),
        &[
            "CP-01 · online · ocpp1.6",
            "Connectors",
            "Charging",
            "Power 11.0 kW",
            "Message log",
            "MeterValues",
            "SetChargingProfile",
        ],
    );
    let mut s = after("2jj\n", false);
    check(&s, &["GroundFailure", "Faulted"]);
    press(&mut s, KeyCode::Char('c'));
    check(&s, &["Configuration", "asking the charger"]);
    let entries = serde_json::from_value(json!([
        {"key": "HeartbeatInterval", "value": "300", "readonly": false, "status": null},
        {"key": "NumberOfConnectors", "value": "2", "readonly": true, "status": null},
    ]))
    .unwrap();
    update(
        &mut s,
        Msg::Feed(FeedMsg::ChargerConfig {
            id: "CP-03".into(),
            result: Ok(entries),
        }),
    );
    check(&s, &["HeartbeatInterval", "300", "(read-only)"]);
}

fn with_session_detail(pane_receipt: bool) -> State {
    let mut s = after("3jj\n", false);
    let mut v = s.data.sessions[2].clone();
    v.meter_values = Some(
        serde_json::from_value(json!([
            {"t": "2026-11-22T18:00:00Z", "measurand": "Energy.Active.Import.Register", "phase": null,
             "context": "Transaction.Begin", "location": "Outlet", "unit": "Wh", "value_milli": 1_000_000,
             "signed": {"data": "OCMF|{}|{}", "signing_method": null, "encoding_method": null, "public_key": null}},
            {"t": "2026-11-22T20:10:00Z", "measurand": "Energy.Active.Import.Register", "phase": null,
             "context": "Transaction.End", "location": "Outlet", "unit": "Wh", "value_milli": 13_400_000,
             "signed": null},
        ]))
        .unwrap(),
    );
    update(
        &mut s,
        Msg::Feed(FeedMsg::Session {
            id: 40,
            result: Ok(Box::new(v)),
        }),
    );
    update(
        &mut s,
        Msg::Feed(FeedMsg::Receipt {
            id: 40,
            result: Ok("Receipt for session 40\nEnergy 12.400 kWh\nTotal 4.96 EUR".into()),
        }),
    );
    if pane_receipt {
        press(&mut s, KeyCode::Char('v'));
    }
    s
}

#[test]
fn sessions_table_and_detail() {
    check(
        &after("3", false),
        &[
            "42",
            "04A2B3C4",
            "8.25",
            "~3.30 EUR",
            "active",
            "FAILED",
            "4.96 EUR",
            "verified",
            "done",
        ],
    );
    check(
        &with_session_detail(false),
        &[
            "Session 40",
            "Eichrecht verified",
            "EMH-0042",
            "Energy.Active.Import.Register",
            "13400.000",
            "signed",
        ],
    );
    check(&with_session_detail(true), &["Receipt", "Total 4.96 EUR"]);
}

#[test]
fn load_shows_the_tree_and_why_each_charger_gets_its_limit() {
    check(
        &after("4", false),
        &[
            "last decision 1s ago",
            "grid",
            "  board-a",
            "meter silent",
            "limited by board-a",
            "offline",
            "idle",
        ],
    );
}

#[test]
fn alerts_and_log() {
    check(
        &after("5", false),
        &[
            "GroundFailure",
            "offline",
            "pending",
            "signature",
            "meter",
            "inferred_end",
        ],
    );
    check(&after("6", false), &["CP-01", "MeterValues", "←", "→", "Heartbeat"]);
    let s = after("6\n", false);
    check(&s, &["seq 6", "\"status\": \"Accepted\""]);
}

#[test]
fn help_overlay_lists_the_screens_keys() {
    check(&after("2?", false), &["Keys", "soft / hard reset", "filter", "quit"]);
    let (text, _) = render(&after("2?", true), 80, 24);
    assert!(!text.contains("reset"), "read-only help lists no actions\n{text}");
}

#[test]
fn confirmation_and_prompts_are_drawn_over_the_screen() {
    let s = after("2r", false);
    assert_eq!(
        s.overlay,
        Some(Overlay::Confirm(Act::Reset {
            charger: "CP-01".into(),
            hard: false
        }))
    );
    check(&s, &["Confirm", "Soft reset CP-01?", "y yes"]);
    let mut s = after("4jl", false);
    typed(&mut s, "20");
    check(&s, &["Limit of circuit board-a", "20_"]);
    let s = after("2/cp-0", false);
    check(&s, &["/cp-0_"]);
}

#[test]
fn no_color_uses_no_colours() {
    for keys in ["", "2", "4", "5"] {
        let s = State {
            color: false,
            ..after(keys, false)
        };
        let (_, buf) = render(&s, 80, 24);
        assert!(
            buf.content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
            "colour on screen {keys:?}"
        );
    }
    let (_, buf) = render(&after("2", false), 80, 24);
    assert!(buf.content().iter().any(|c| c.fg != Color::Reset), "colour by default");
}

/// The captures in docs/tui.md are these renders.
#[test]
fn docs_captures_are_current() {
    let shots: Vec<(&str, State)> = vec![
        ("overview", after("", false)),
        ("chargers", after("2", false)),
        ("charger", after("2\n", false)),
        ("sessions", after("3", false)),
        ("session", with_session_detail(false)),
        ("load", after("4", false)),
        ("alerts", after("5", false)),
        ("log", after("6", false)),
        ("help", after("2?", false)),
        ("confirm", after("3x", false)),
    ];
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tui.md");
    let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
    let update_docs = std::env::var_os("VOLTYARD_UPDATE_DOCS").is_some();
    for (name, state) in shots {
        let (text, _) = render(&state, 80, 24);
        let open = format!("<!-- capture {name} -->\n```text\n");
        let close = "```\n<!-- /capture -->";
        let fresh = format!("{open}{text}{close}");
        let Some(start) = doc.find(&open) else {
            panic!("docs/tui.md has no `<!-- capture {name} -->` block");
        };
        let end = doc[start..]
            .find(close)
            .map(|e| start + e + close.len())
            .unwrap_or(doc.len());
        if update_docs {
            doc.replace_range(start..end, &fresh);
        } else {
            assert_eq!(
                doc[start..end],
                fresh,
                "docs/tui.md capture {name} is stale; run VOLTYARD_UPDATE_DOCS=1 cargo test --lib tui::"
            );
        }
    }
    if update_docs {
        std::fs::write(&path, doc).unwrap();
    }
}
