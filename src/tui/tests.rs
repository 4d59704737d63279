//! Key handling as state transitions, on a fixed site: one charging
//! charger, one offline, one faulted, one pending, three circuits.

use super::feed::{FeedMsg, Job, Outcome};
use super::state::{Act, Ask, ChargerPane, Detail, Overlay, Screen, Snapshot, State, Tone};
use super::update::{Effect, Msg, update};
use super::{keys, rows};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};

pub fn now() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn charger(id: &str, status: &str, connected: bool, protocol: &str, connectors: Value) -> Value {
    json!({
        "id": id, "status": status, "connected": connected, "protocol": protocol,
        "vendor": "ABL", "model": "eMH3", "serial": null, "firmware": "1.8.2",
        "site": "demo", "circuit": "board-a", "max_current": 16, "max_power_w": null,
        "phases": 3, "phase_rotation": "L1L2L3", "password": false,
        "connectors": connectors,
        "last_seen": if connected { "2026-11-23T09:59:58Z" } else { "2026-11-23T09:12:00Z" },
        "last_boot": "2026-11-23T06:00:00Z",
        "connected_since": if connected { json!("2026-11-23T06:00:00Z") } else { Value::Null },
    })
}

fn connector(evse: u32, status: &str, error: Option<&str>) -> Value {
    json!({"evse": evse, "connector": 1, "status": status, "error_code": error, "info": null,
           "updated_at": "2026-11-23T09:40:00Z"})
}

fn session(id: u64, charger: &str, token: &str, start: &str, stop: Option<&str>, wh: i64, extra: Value) -> Value {
    let mut s = json!({
        "id": id, "charger": charger, "evse": 1, "connector": 1, "token": token, "auth": "accepted",
        "started_at": start, "stopped_at": stop, "energy_wh": wh,
        "status": if stop.is_some() { "completed" } else { "active" },
        "meter_start_wh": 1000, "meter_stop_wh": stop.map(|_| 1000 + wh), "stop_reason": stop.map(|_| "EVDisconnected"),
        "closed_by": null, "transaction_id": id.to_string(), "suspect_since": null, "offline": false,
        "samples": 12, "notes": [], "departure": null, "energy_target_wh": null, "priority": null,
        "price": null, "unpriced_reason": null, "eichrecht": null,
    });
    if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    s
}

/// The site every test starts from.
pub fn fixture() -> Snapshot {
    let verified = json!({"state": "verified", "problems": [], "notes": [], "meter_serial": "EMH-0042",
                          "begin_wh": 1000, "end_wh": 13400, "energy_wh": 12400, "signed_values": 2});
    let failed = json!({"state": "failed", "problems": ["end record: signature does not verify"], "notes": [],
                        "meter_serial": "EMH-0043", "begin_wh": 1000, "end_wh": 5000, "energy_wh": null,
                        "signed_values": 2});
    let price = json!({"tariff_id": "DEMO", "currency": "EUR", "total_excl_vat": "4.17", "total_vat": "0.79",
                       "total_incl_vat": "4.96", "energy_wh": 12400, "energy_source": "signed",
                       "scope": {"kind": "site", "name": "demo"}, "assignment": 1});
    Snapshot {
        at: Some(now()),
        status: Some(from(json!({"version": "0.1.0", "api": 1, "listen": "0.0.0.0:9000",
            "data_dir": "/var/lib/voltyard", "chargers_connected": 3, "commits": 5120, "commit_time_us": 6_100_000}))),
        chargers: vec![
            from(charger(
                "CP-01",
                "accepted",
                true,
                "ocpp1.6",
                json!([connector(0, "available", None), connector(1, "charging", None)]),
            )),
            from(charger(
                "CP-02",
                "accepted",
                false,
                "ocpp1.6",
                json!([connector(1, "available", None)]),
            )),
            from(charger(
                "CP-03",
                "accepted",
                true,
                "ocpp2.0.1",
                json!([
                    connector(1, "faulted", Some("GroundFailure")),
                    connector(2, "available", None)
                ]),
            )),
            from(charger("CP-NEW", "pending", true, "ocpp2.0.1", json!([]))),
        ],
        sessions: vec![
            from(session(
                42,
                "CP-01",
                "04A2B3C4",
                "2026-11-23T09:15:00Z",
                None,
                8250,
                json!({"price_so_far": {"tariff_id": "DEMO", "currency": "EUR", "total_excl_vat": "2.77",
                       "total_vat": "0.53", "total_incl_vat": "3.30", "energy_wh": 8250, "energy_source": "meter_values",
                       "scope": {"kind": "site", "name": "demo"}, "assignment": 1}}),
            )),
            from(session(
                41,
                "CP-03",
                "DEADBEEF",
                "2026-11-23T07:02:00Z",
                Some("2026-11-23T08:31:00Z"),
                4000,
                json!({"eichrecht": failed, "unpriced_reason": "signed meter data failed verification"}),
            )),
            from(session(
                40,
                "CP-01",
                "04A2B3C4",
                "2026-11-22T18:00:00Z",
                Some("2026-11-22T20:10:00Z"),
                12400,
                json!({"eichrecht": verified, "price": price}),
            )),
        ],
        sessions_truncated: false,
        dlm: from(json!({
            "time": "2026-11-23T09:59:59Z", "dropped_signals": 0,
            "sites": [{
                "site": "demo", "time": "2026-11-23T09:59:59Z", "decision_us": 180, "non_compliant": [],
                "circuits": [
                    {"id": "grid", "parent": null, "limit": [63.0, 63.0, 63.0], "measured": [40.5, 30.2, 22.0],
                     "allocated": [48.0, 40.0, 30.0], "unmanaged": [24.5, 14.2, 6.0], "metered": true},
                    {"id": "board-a", "parent": "grid", "limit": [16.0, 16.0, 16.0], "measured": [16.0, 16.0, 16.0],
                     "allocated": [16.0, 16.0, 16.0], "unmanaged": null, "metered": false},
                    {"id": "board-b", "parent": "grid", "limit": [32.0, 32.0, 32.0], "measured": [0.0, 0.0, 0.0],
                     "allocated": [0.0, 0.0, 0.0], "unmanaged": null, "metered": true},
                ],
                "chargers": [
                    {"id": "CP-01", "circuit": "board-a", "connected": true, "session": "42",
                     "measured": [16.0, 16.0, 16.0], "limit": 16.0, "phases": 3, "non_compliant": false},
                    {"id": "CP-02", "circuit": "board-a", "connected": false, "session": null,
                     "measured": [0.0, 0.0, 0.0], "limit": 0.0, "phases": 3, "non_compliant": false},
                    {"id": "CP-03/1", "circuit": "board-b", "connected": true, "session": null,
                     "measured": [0.0, 0.0, 0.0], "limit": 0.0, "phases": 3, "non_compliant": false},
                ],
            }],
        })),
        events: vec![
            from(json!({"t": "2026-11-23T09:40:00Z", "charger": "CP-03", "kind": "fault",
                        "detail": "EVSE 1 connector 1: GroundFailure"})),
            from(
                json!({"t": "2026-11-23T08:00:00Z", "charger": "CP-02", "kind": "inferred_end",
                        "detail": "session 39: the charger rebooted without a StopTransaction"}),
            ),
            from(json!({"t": "2026-11-23T06:00:00Z", "charger": "CP-01", "kind": "boot",
                        "detail": "boot (PowerUp), answered Accepted"})),
        ],
        sites: vec![from(
            json!({"name": "demo", "timezone": "Europe/Berlin", "access": "public", "rules": [],
                                "created_at": "2026-01-01T00:00:00Z"}),
        )],
    }
}

fn frame(seq: u64, charger: &str, dir: &str, frame: &str) -> crate::domain::JournalEntry {
    from(json!({"seq": seq, "t": "2026-11-23T09:59:58Z", "charger": charger, "dir": dir, "frame": frame}))
}

/// A state that has seen the fixture, a few frames, and two snapshots
/// for the rates.
pub fn loaded(readonly: bool) -> State {
    let mut s = State::new(now(), readonly, true);
    let mut first = fixture();
    first.at = Some(now() - chrono::Duration::seconds(10));
    if let Some(st) = first.status.as_mut() {
        st.commits -= 100;
        st.commit_time_us -= 250_000;
    }
    update(&mut s, Msg::Feed(FeedMsg::Snapshot(Box::new(first))));
    let frames = [
        (
            1,
            "CP-01",
            "in",
            r#"[2,"1001","MeterValues",{"connectorId":1,"transactionId":42,"meterValue":[{"timestamp":"2026-11-23T09:59:58Z","sampledValue":[{"value":"9250","measurand":"Energy.Active.Import.Register"}]}]}]"#,
        ),
        (2, "CP-01", "out", r#"[3,"1001",{}]"#),
        (3, "CP-03", "in", r#"[2,"77","Heartbeat",{}]"#),
        (4, "CP-03", "out", r#"[3,"77",{"currentTime":"2026-11-23T09:59:58Z"}]"#),
        (
            5,
            "CP-01",
            "out",
            r#"[2,"vy12","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1}}]"#,
        ),
        (6, "CP-01", "in", r#"[3,"vy12",{"status":"Accepted"}]"#),
    ];
    for (seq, c, dir, f) in frames {
        update(&mut s, Msg::Feed(FeedMsg::Frame(frame(seq, c, dir, f))));
    }
    update(&mut s, Msg::Feed(FeedMsg::Snapshot(Box::new(fixture()))));
    s.notice = None;
    s
}

pub fn press(s: &mut State, code: KeyCode) -> Vec<Effect> {
    update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn typed(s: &mut State, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| press(s, KeyCode::Char(c))).collect()
}

#[test]
fn number_keys_tab_and_colon_names_switch_screens() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('3'));
    assert_eq!(s.screen, Screen::Sessions);
    press(&mut s, KeyCode::Tab);
    assert_eq!(s.screen, Screen::Load);
    press(&mut s, KeyCode::BackTab);
    press(&mut s, KeyCode::BackTab);
    assert_eq!(s.screen, Screen::Chargers);
    press(&mut s, KeyCode::Char(':'));
    typed(&mut s, "alerts");
    assert_eq!(s.overlay, Some(Overlay::Command("alerts".into())));
    press(&mut s, KeyCode::Enter);
    assert_eq!((s.screen, s.overlay.clone()), (Screen::Alerts, None));
    press(&mut s, KeyCode::Char(':'));
    typed(&mut s, "nope");
    press(&mut s, KeyCode::Enter);
    assert_eq!(s.screen, Screen::Alerts);
    assert_eq!(s.notice.as_ref().map(|n| n.tone), Some(Tone::Bad));
    press(&mut s, KeyCode::Char(':'));
    typed(&mut s, "q");
    assert_eq!(press(&mut s, KeyCode::Enter), vec![Effect::Quit]);
}

#[test]
fn q_and_ctrl_c_quit_but_q_in_a_prompt_is_text() {
    let mut s = loaded(false);
    assert_eq!(press(&mut s, KeyCode::Char('q')), vec![Effect::Quit]);
    let mut s = loaded(false);
    let ctrl_c = update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(ctrl_c, vec![Effect::Quit]);
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    press(&mut s, KeyCode::Char('/'));
    assert!(press(&mut s, KeyCode::Char('q')).is_empty());
    assert_eq!(s.table().filter, "q");
}

#[test]
fn moving_the_selection_stays_in_bounds() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    assert_eq!(s.table().selected, 0);
    press(&mut s, KeyCode::Char('k'));
    assert_eq!(s.table().selected, 0);
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Down);
    assert_eq!(s.table().selected, 2);
    press(&mut s, KeyCode::Char('G'));
    assert_eq!(s.table().selected, 3);
    press(&mut s, KeyCode::PageDown);
    assert_eq!(s.table().selected, 3);
    press(&mut s, KeyCode::Char('g'));
    assert_eq!(s.table().selected, 0);
    press(&mut s, KeyCode::PageDown);
    assert_eq!(s.table().selected, 3);
    press(&mut s, KeyCode::PageUp);
    assert_eq!(s.table().selected, 0);
}

#[test]
fn filter_narrows_rows_and_esc_clears_it() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    press(&mut s, KeyCode::Char('/'));
    assert!(s.filtering);
    typed(&mut s, "off");
    let ids: Vec<String> = rows::chargers(&s).iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, ["CP-02"]);
    press(&mut s, KeyCode::Enter);
    assert!(!s.filtering);
    assert_eq!(s.table().filter, "off", "Enter keeps the filter");
    press(&mut s, KeyCode::Esc);
    assert_eq!(s.table().filter, "");
    assert_eq!(rows::chargers(&s).len(), 4);
}

#[test]
fn s_cycles_the_sort_and_rows_keep_a_stable_order() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    let ids = |s: &State| rows::chargers(s).iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&s), ["CP-01", "CP-02", "CP-03", "CP-NEW"]);
    press(&mut s, KeyCode::Char('s'));
    assert_eq!(
        ids(&s),
        ["CP-03", "CP-02", "CP-01", "CP-NEW"],
        "by state: faulted, offline, online, pending"
    );
    press(&mut s, KeyCode::Char('s'));
    assert_eq!(ids(&s)[0], "CP-01", "by power: the charging one first");
    let before = ids(&s);
    update(&mut s, Msg::Feed(FeedMsg::Snapshot(Box::new(fixture()))));
    assert_eq!(ids(&s), before, "a new snapshot with the same data keeps the order");
    for _ in 0..2 {
        press(&mut s, KeyCode::Char('s'));
    }
    assert_eq!(ids(&s), ["CP-01", "CP-02", "CP-03", "CP-NEW"], "back to id");
}

#[test]
fn the_selection_follows_its_row_when_the_data_changes() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('j'));
    assert_eq!(rows::chargers(&s)[s.table().selected].id, "CP-03");
    let mut snap = fixture();
    let mut early = snap.chargers[0].clone();
    early.id = "CP-00".into();
    snap.chargers.push(early);
    update(&mut s, Msg::Feed(FeedMsg::Snapshot(Box::new(snap))));
    assert_eq!(rows::chargers(&s)[s.table().selected].id, "CP-03");
}

#[test]
fn enter_opens_a_charger_and_fetches_its_log_esc_goes_back() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    let fx = press(&mut s, KeyCode::Enter);
    assert_eq!(fx, vec![Effect::Run(Job::ChargerLog { id: "CP-01".into() })]);
    let Some(Detail::Charger(d)) = &s.detail else {
        panic!("no detail: {:?}", s.detail)
    };
    assert_eq!(d.log.len(), 4, "the frames already seen for CP-01");
    let fx = press(&mut s, KeyCode::Char('c'));
    assert_eq!(
        fx,
        vec![Effect::Run(Job::ChargerConfig {
            id: "CP-01".into(),
            protocol: Some(crate::domain::Protocol::V16)
        })]
    );
    assert!(matches!(&s.detail, Some(Detail::Charger(d)) if d.pane == ChargerPane::Config));
    press(&mut s, KeyCode::Esc);
    assert!(s.detail.is_none());
    assert_eq!(s.screen, Screen::Chargers);
}

#[test]
fn live_frames_reach_the_open_detail_and_history_merges_under_them() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    press(&mut s, KeyCode::Enter);
    update(
        &mut s,
        Msg::Feed(FeedMsg::Frame(frame(9, "CP-01", "in", r#"[2,"1002","Heartbeat",{}]"#))),
    );
    update(
        &mut s,
        Msg::Feed(FeedMsg::Frame(frame(10, "CP-03", "in", r#"[2,"78","Heartbeat",{}]"#))),
    );
    let history = vec![frame(1, "CP-01", "in", "[]"), frame(2, "CP-01", "out", "[]")];
    update(
        &mut s,
        Msg::Feed(FeedMsg::ChargerLog {
            id: "CP-01".into(),
            entries: history,
        }),
    );
    let Some(Detail::Charger(d)) = &s.detail else { panic!() };
    let seqs: Vec<u64> = d.log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 5, 6, 9]);
}

#[test]
fn an_action_asks_first_and_runs_only_on_y() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    assert!(press(&mut s, KeyCode::Char('r')).is_empty());
    let reset = Act::Reset {
        charger: "CP-01".into(),
        hard: false,
    };
    assert_eq!(s.overlay, Some(Overlay::Confirm(reset.clone())));
    assert!(press(&mut s, KeyCode::Char('n')).is_empty());
    assert_eq!(s.overlay, None);
    press(&mut s, KeyCode::Char('R'));
    let fx = press(&mut s, KeyCode::Char('y'));
    let hard = Act::Reset {
        charger: "CP-01".into(),
        hard: true,
    };
    assert_eq!(fx, vec![Effect::Run(Job::Act(hard.clone()))]);
    update(
        &mut s,
        Msg::Feed(FeedMsg::Done {
            act: hard,
            outcome: Outcome::Rejected("charger CP-01 answered Rejected".into()),
        }),
    );
    let n = s.notice.clone().unwrap();
    assert_eq!(n.tone, Tone::Bad);
    assert!(n.text.starts_with("Hard reset CP-01: Rejected"), "{}", n.text);
    update(
        &mut s,
        Msg::Feed(FeedMsg::Done {
            act: reset,
            outcome: Outcome::Accepted("Accepted".into()),
        }),
    );
    assert_eq!(s.notice.clone().unwrap().text, "Soft reset CP-01: Accepted");
}

#[test]
fn every_action_maps_to_the_cli_request() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    let confirmed = |s: &mut State, keys: &str| {
        let mut fx = vec![];
        for c in keys.chars() {
            fx.extend(press(s, KeyCode::Char(c)));
        }
        match (s.overlay.take(), fx.as_slice()) {
            (Some(Overlay::Confirm(a)), []) => a,
            other => panic!("{keys}: {other:?}"),
        }
    };
    assert_eq!(
        confirmed(&mut s, "u"),
        Act::Unlock {
            charger: "CP-01".into(),
            evse: 1,
            connector: 1
        }
    );
    assert_eq!(
        confirmed(&mut s, "i"),
        Act::Availability {
            charger: "CP-01".into(),
            operative: false,
            evse: None
        }
    );
    assert_eq!(
        confirmed(&mut s, "x"),
        Act::RemoteStop {
            session: 42,
            charger: "CP-01".into()
        }
    );
    press(&mut s, KeyCode::Char('G'));
    assert_eq!(
        confirmed(&mut s, "A"),
        Act::Accept {
            charger: "CP-NEW".into()
        }
    );
    // In the detail, the selected connector is the target.
    press(&mut s, KeyCode::Char('g'));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Enter);
    press(&mut s, KeyCode::Char('j'));
    assert_eq!(
        confirmed(&mut s, "o"),
        Act::Availability {
            charger: "CP-03".into(),
            operative: true,
            evse: Some(2)
        }
    );
    press(&mut s, KeyCode::Char('S'));
    assert!(matches!(
        &s.overlay,
        Some(Overlay::Prompt {
            ask: Ask::StartToken { evse: Some(2), .. },
            ..
        })
    ));
    typed(&mut s, "04A2B3C4");
    press(&mut s, KeyCode::Enter);
    assert_eq!(
        s.overlay,
        Some(Overlay::Confirm(Act::RemoteStart {
            charger: "CP-03".into(),
            token: "04A2B3C4".into(),
            evse: Some(2)
        }))
    );
    s.overlay = None;
    press(&mut s, KeyCode::Char('3'));
    assert_eq!(confirmed(&mut s, "b"), Act::BlockToken { uid: "04A2B3C4".into() });
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('x'));
    assert_eq!(s.overlay, None, "a completed session cannot be stopped");
    press(&mut s, KeyCode::Char('4'));
    press(&mut s, KeyCode::Char('j'));
    press(&mut s, KeyCode::Char('l'));
    typed(&mut s, "20,20,abc");
    press(&mut s, KeyCode::Enter);
    assert!(
        matches!(s.overlay, Some(Overlay::Prompt { .. })),
        "a bad number keeps the prompt open"
    );
    for _ in 0..4 {
        press(&mut s, KeyCode::Backspace);
    }
    typed(&mut s, ",16");
    press(&mut s, KeyCode::Enter);
    assert_eq!(
        s.overlay,
        Some(Overlay::Confirm(Act::CircuitLimit {
            circuit: "board-a".into(),
            max_current: [20.0, 20.0, 16.0]
        }))
    );
}

#[test]
fn actions_send_the_same_requests_as_the_cli() {
    use crate::control::proto::Request;
    let r = super::feed::request(&Act::RemoteStop {
        session: 42,
        charger: "CP-01".into(),
    });
    assert!(matches!(r, Request::SessionStop { id: 42 }));
    let r = super::feed::request(&Act::BlockToken { uid: "X".into() });
    assert!(matches!(r, Request::TokenBlock { blocked: true, .. }));
    let r = super::feed::request(&Act::Reset {
        charger: "CP-01".into(),
        hard: true,
    });
    let json = serde_json::to_value(crate::control::proto::Envelope { v: 1, request: r }).unwrap();
    assert_eq!(
        json,
        json!({"v": 1, "method": "charger_command", "params": {"id": "CP-01", "command": {"command": "reset", "hard": true}}})
    );
}

#[test]
fn readonly_hides_and_refuses_actions_but_keeps_looking_around() {
    let mut s = loaded(true);
    press(&mut s, KeyCode::Char('2'));
    for c in ['r', 'R', 'u', 'o', 'i', 'A', 'S', 'x'] {
        assert!(press(&mut s, KeyCode::Char(c)).is_empty());
        assert_eq!(s.overlay, None, "{c}");
    }
    assert!(s.notice.as_ref().is_some_and(|n| n.text.contains("read-only")));
    assert!(!keys::help(&s).iter().any(|(_, d)| d.contains("reset")));
    assert_eq!(press(&mut s, KeyCode::Enter).len(), 1, "details still open");
    let mut rw = loaded(false);
    press(&mut rw, KeyCode::Char('2'));
    assert!(keys::help(&rw).iter().any(|(_, d)| d.contains("reset")));
}

#[test]
fn alerts_are_derived_and_acknowledged() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('5'));
    let kinds: Vec<&str> = rows::alerts(&s).iter().map(|a| a.kind).collect();
    for k in ["offline", "fault", "pending", "signature", "meter", "inferred_end"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(
        kinds.iter().filter(|k| **k == "fault").count(),
        1,
        "the fault event and the faulted connector are one alert"
    );
    let open = rows::open_alerts(&s);
    assert_eq!(press(&mut s, KeyCode::Char('a')), vec![Effect::SaveAcks]);
    assert_eq!(rows::open_alerts(&s), open - 1);
    assert_eq!(rows::alerts(&s).len(), open - 1, "acknowledged alerts are hidden");
    press(&mut s, KeyCode::Char('h'));
    assert_eq!(rows::alerts(&s).len(), open, "h shows them again");
    assert_eq!(press(&mut s, KeyCode::Char('A')), vec![Effect::SaveAcks]);
    assert_eq!(rows::open_alerts(&s), 0);
    // The acknowledgement of a condition that cleared is dropped, so the
    // next occurrence alerts again.
    let mut snap = fixture();
    snap.chargers.retain(|c| c.id != "CP-NEW");
    update(&mut s, Msg::Feed(FeedMsg::Snapshot(Box::new(snap))));
    assert!(!s.acks.iter().any(|k| k.starts_with("pending:")));
}

#[test]
fn the_log_follows_new_frames_until_the_operator_scrolls() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('6'));
    assert!(s.follow_log);
    assert_eq!(s.table().selected, 5);
    press(&mut s, KeyCode::Char('k'));
    assert!(!s.follow_log);
    update(&mut s, Msg::Feed(FeedMsg::Frame(frame(20, "CP-01", "in", "[]"))));
    assert_eq!(s.table().selected, 4, "stays on the frame it was on");
    press(&mut s, KeyCode::Char('G'));
    assert!(s.follow_log);
    update(&mut s, Msg::Feed(FeedMsg::Frame(frame(21, "CP-01", "in", "[]"))));
    assert_eq!(s.table().selected, 7);
    press(&mut s, KeyCode::Enter);
    assert!(matches!(&s.detail, Some(Detail::Frame(e)) if e.seq == 21));
}

#[test]
fn rates_come_from_the_counters_over_the_window() {
    let s = loaded(false);
    // 6 frames and 100 commits taking 250 ms over 10 s.
    assert_eq!(s.msg_per_s(), Some(0.6));
    assert_eq!(s.commit_ms(), Some(2.5));
    let mut s = s;
    update(&mut s, Msg::Feed(FeedMsg::Lagged(54)));
    assert_eq!(s.frames_seen, 60, "skipped frames still count");
}

#[test]
fn help_opens_on_question_mark_and_any_key_closes_it() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('?'));
    assert_eq!(s.overlay, Some(Overlay::Help));
    assert!(
        press(&mut s, KeyCode::Char('q')).is_empty(),
        "q closes the help, not the app"
    );
    assert_eq!(s.overlay, None);
}

/// Every key the help names for a screen does something there.
#[test]
fn help_lists_only_keys_that_work() {
    let mut s = loaded(false);
    press(&mut s, KeyCode::Char('2'));
    let help: Vec<&str> = keys::help(&s).iter().map(|(k, _)| *k).collect();
    for k in ["r / R", "u", "o / i", "A", "S", "x", "s", "/"] {
        assert!(help.contains(&k), "{k} missing from the chargers help");
    }
    press(&mut s, KeyCode::Char('5'));
    let help: Vec<&str> = keys::help(&s).iter().map(|(k, _)| *k).collect();
    for k in ["a", "A", "h"] {
        assert!(help.contains(&k), "{k} missing from the alerts help");
    }
}

#[test]
fn security_events_and_expiring_certificates_are_alerts() {
    let mut snap = fixture();
    for kind in [
        "security_event",
        "security_refused",
        "auth_failed",
        "cert_expiring",
        "certificate",
    ] {
        snap.events.push(from(
            json!({"t": "2026-11-23T09:50:00Z", "charger": "CP-01", "kind": kind, "detail": "x"}),
        ));
    }
    let kinds: Vec<&str> = super::alerts::derive(&snap, 4).iter().map(|a| a.kind).collect();
    for k in ["security_event", "security_refused", "auth_failed", "cert_expiring"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(!kinds.contains(&"certificate"), "an issued certificate is no alert");
}
