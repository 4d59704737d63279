//! The only place the state changes: a key, a message from the feed or
//! the clock goes in, the state moves, and what the loop must do (run a
//! job on the server, save acknowledgements, quit) comes out. No I/O, so
//! every key is testable as a state transition.

use super::feed::{FeedMsg, Job, Outcome};
use super::rows;
use super::state::{
    Act, Ask, ChargerDetail, ChargerPane, DETAIL_LOG_CAP, Detail, LOG_CAP, Link, Notice, Overlay, POWER_CAP,
    RATE_WINDOW_S, RateSample, SCREENS, Screen, SessionDetail, SessionPane, Snapshot, State, Tone,
};
use crate::domain::{JournalEntry, Registration, SessionStatus};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Feed(FeedMsg),
    Tick(DateTime<Utc>),
    Resize(u16, u16),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Run(Job),
    /// Write `State::acks` to the acknowledgement file.
    SaveAcks,
    Quit,
}

pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(k) => key(state, k),
        Msg::Feed(f) => {
            feed(state, f);
            vec![]
        }
        Msg::Tick(now) => {
            state.now = now;
            vec![]
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            vec![]
        }
    }
}

fn notice(state: &mut State, tone: Tone, text: impl Into<String>) {
    state.notice = Some(Notice {
        text: text.into(),
        tone,
    });
}

fn feed(state: &mut State, msg: FeedMsg) {
    match msg {
        FeedMsg::Link(l) => {
            if let Link::Down(e) = &l
                && state.link != l
            {
                notice(state, Tone::Bad, format!("server unreachable, retrying: {e}"));
            }
            state.link = l;
        }
        FeedMsg::Snapshot(s) => snapshot(state, *s),
        FeedMsg::Frame(j) => frame(state, j),
        FeedMsg::Lagged(n) => {
            state.frames_seen += n;
            notice(
                state,
                Tone::Info,
                format!("{n} frames skipped (slow link); the screens are refetched"),
            );
        }
        FeedMsg::Done { act, outcome } => {
            let what = act.describe();
            match outcome {
                Outcome::Accepted(status) => notice(state, Tone::Good, format!("{what}: {status}")),
                Outcome::Rejected(m) => notice(state, Tone::Bad, format!("{what}: Rejected ({m})")),
                Outcome::Timeout(m) => notice(state, Tone::Bad, format!("{what}: timeout ({m})")),
                Outcome::Failed(m) => notice(state, Tone::Bad, format!("{what}: failed ({m})")),
            }
        }
        FeedMsg::ChargerLog { id, entries } => {
            if let Some(Detail::Charger(d)) = &mut state.detail
                && d.id == id
            {
                let last = entries.last().map_or(0, |e| e.seq);
                let live: Vec<JournalEntry> = d.log.drain(..).filter(|e| e.seq > last).collect();
                d.log = entries.into_iter().chain(live).collect();
                trim(&mut d.log, DETAIL_LOG_CAP);
            }
        }
        FeedMsg::ChargerConfig { id, result } => {
            if let Some(Detail::Charger(d)) = &mut state.detail
                && d.id == id
            {
                d.config = Some(result);
            }
        }
        FeedMsg::Session { id, result } => {
            if let Some(Detail::Session(d)) = &mut state.detail
                && d.id == id
            {
                match result {
                    Ok(v) => d.view = Some(v),
                    Err(e) => notice(state, Tone::Bad, format!("session {id}: {e}")),
                }
            }
        }
        FeedMsg::Receipt { id, result } => {
            if let Some(Detail::Session(d)) = &mut state.detail
                && d.id == id
            {
                d.receipt = Some(result);
            }
        }
    }
}

fn trim<T>(q: &mut VecDeque<T>, cap: usize) {
    while q.len() > cap {
        q.pop_front();
    }
}

fn frame(state: &mut State, j: JournalEntry) {
    state.frames_seen += 1;
    let anchor = (!state.follow_log).then(|| selected_key(state, Screen::Log));
    if let Some(Detail::Charger(d)) = &mut state.detail
        && d.id == j.charger
    {
        d.log.push_back(j.clone());
        trim(&mut d.log, DETAIL_LOG_CAP);
    }
    state.log.push_back(j);
    trim(&mut state.log, LOG_CAP);
    match anchor {
        Some(key) => reselect(state, Screen::Log, key),
        None => state.tables[Screen::Log.index()].selected = rows::log(state).len().saturating_sub(1),
    }
}

fn selected_key(state: &State, screen: Screen) -> Option<String> {
    let keys = rows::keys(state, screen);
    keys.get(state.tables[screen.index()].selected).cloned()
}

/// Put the selection back on the row with `key`, or keep its position.
fn reselect(state: &mut State, screen: Screen, key: Option<String>) {
    let keys = rows::keys(state, screen);
    let t = &mut state.tables[screen.index()];
    if let Some(i) = key.and_then(|k| keys.iter().position(|x| *x == k)) {
        t.selected = i;
    }
    t.selected = t.selected.min(keys.len().saturating_sub(1));
}

fn snapshot(state: &mut State, s: Snapshot) {
    let anchors: Vec<(Screen, Option<String>)> = SCREENS
        .iter()
        .filter(|sc| **sc != Screen::Log)
        .map(|sc| (*sc, selected_key(state, *sc)))
        .collect();
    if let (Some(at), Some(status)) = (s.at, &s.status) {
        state.rates.push_back(RateSample {
            at,
            frames: state.frames_seen,
            commits: status.commits,
            commit_us: status.commit_time_us,
        });
        while state
            .rates
            .front()
            .is_some_and(|f| (at - f.at).num_seconds() > RATE_WINDOW_S && state.rates.len() > 2)
        {
            state.rates.pop_front();
        }
    }
    state.data = s;
    state.link = Link::Up;
    // An acknowledgement lasts as long as its alert: the same condition
    // coming back later is a new occurrence.
    let current: std::collections::HashSet<String> = super::alerts::derive(&state.data, state.device_severity)
        .into_iter()
        .map(|a| a.key)
        .collect();
    state.acks.retain(|k| current.contains(k));
    let ids: Vec<String> = state.data.chargers.iter().map(|c| c.id.clone()).collect();
    for id in ids {
        if let Some(w) = state.power_w(&id) {
            let q = state.power.entry(id).or_default();
            q.push_back(w.max(0.0).round() as u64);
            trim(q, POWER_CAP);
        }
    }
    for (screen, key) in anchors {
        reselect(state, screen, key);
    }
}

fn page(state: &State) -> usize {
    usize::from(state.size.1.saturating_sub(6)).max(1)
}

fn key(state: &mut State, k: KeyEvent) -> Vec<Effect> {
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
        state.quit = true;
        return vec![Effect::Quit];
    }
    if let Some(o) = state.overlay.take() {
        return overlay(state, o, k);
    }
    if state.filtering {
        filter_key(state, k);
        return vec![];
    }
    let len = rows_len(state);
    match k.code {
        KeyCode::Char('q') => {
            state.quit = true;
            return vec![Effect::Quit];
        }
        KeyCode::Char('?') => state.overlay = Some(Overlay::Help),
        KeyCode::Char(':') => state.overlay = Some(Overlay::Command(String::new())),
        KeyCode::Char('/') if state.screen != Screen::Overview && state.detail.is_none() => {
            state.filtering = true;
        }
        KeyCode::Esc if state.detail.is_some() => state.detail = None,
        KeyCode::Esc if state.table().filter.is_empty() => state.notice = None,
        KeyCode::Esc => clear_filter(state),
        KeyCode::Tab => switch(state, SCREENS[(state.screen.index() + 1) % SCREENS.len()]),
        KeyCode::BackTab => switch(
            state,
            SCREENS[(state.screen.index() + SCREENS.len() - 1) % SCREENS.len()],
        ),
        KeyCode::Char(c @ '1'..='6') => switch(state, SCREENS[usize::from(c as u8 - b'1')]),
        KeyCode::Char('j') | KeyCode::Down => step(state, len, 1),
        KeyCode::Char('k') | KeyCode::Up => step(state, len, -1),
        KeyCode::PageDown => step(state, len, page(state) as isize),
        KeyCode::PageUp => step(state, len, -(page(state) as isize)),
        KeyCode::Char('g') | KeyCode::Home => step(state, len, isize::MIN),
        KeyCode::Char('G') | KeyCode::End => {
            step(state, len, isize::MAX);
            if state.screen == Screen::Log && state.detail.is_none() {
                state.follow_log = true;
            }
        }
        KeyCode::Char('s') if state.detail.is_none() => {
            let n = state.screen.sorts().len();
            if n > 0 {
                let t = state.table_mut();
                t.sort = (t.sort + 1) % n;
                let name = state.screen.sorts()[state.table().sort];
                notice(state, Tone::Info, format!("sorted by {name}"));
            }
        }
        KeyCode::Enter => return open(state),
        KeyCode::Char(c) => return screen_key(state, c),
        _ => {}
    }
    vec![]
}

fn clear_filter(state: &mut State) {
    let t = state.table_mut();
    t.filter.clear();
    t.selected = 0;
}

fn filter_key(state: &mut State, k: KeyEvent) {
    match k.code {
        KeyCode::Esc => {
            state.filtering = false;
            clear_filter(state);
        }
        KeyCode::Enter => state.filtering = false,
        KeyCode::Backspace => {
            let t = state.table_mut();
            t.filter.pop();
            t.selected = 0;
        }
        KeyCode::Char(c) => {
            let t = state.table_mut();
            t.filter.push(c);
            t.selected = 0;
        }
        _ => {}
    }
    if state.screen == Screen::Log {
        state.follow_log = state.table().filter.is_empty();
    }
}

fn switch(state: &mut State, screen: Screen) {
    state.screen = screen;
    state.detail = None;
    state.filtering = false;
}

/// Rows the selection moves over: connectors in a charger's detail, the
/// screen's table otherwise.
fn rows_len(state: &State) -> usize {
    match &state.detail {
        Some(Detail::Charger(d)) => state.charger(&d.id).map_or(0, |c| connectors(c).len()),
        Some(_) => 0,
        None => rows::keys(state, state.screen).len(),
    }
}

fn step(state: &mut State, len: usize, by: isize) {
    let max = len.saturating_sub(1);
    let at = match &state.detail {
        Some(Detail::Charger(d)) => d.connector,
        Some(_) => return,
        None => state.table().selected,
    };
    let to = at.saturating_add_signed(by).min(max);
    match &mut state.detail {
        Some(Detail::Charger(d)) => d.connector = to,
        _ => {
            state.table_mut().selected = to;
            if state.screen == Screen::Log {
                state.follow_log = to == max;
            }
        }
    }
}

/// A charger's connectors as the detail lists them (EVSE 0 is the charger).
pub fn connectors(c: &crate::control::proto::ChargerView) -> Vec<&crate::control::proto::ConnectorView> {
    let mut v: Vec<_> = c.connectors.iter().filter(|k| k.evse > 0).collect();
    v.sort_by_key(|k| (k.evse, k.connector));
    v
}

fn open_charger(state: &mut State, id: String) -> Vec<Effect> {
    state.screen = Screen::Chargers;
    state.detail = Some(Detail::Charger(ChargerDetail {
        id: id.clone(),
        connector: 0,
        pane: ChargerPane::Log,
        log: state.log.iter().filter(|e| e.charger == id).cloned().collect(),
        config: None,
    }));
    vec![Effect::Run(Job::ChargerLog { id })]
}

fn open(state: &mut State) -> Vec<Effect> {
    if state.detail.is_some() {
        return vec![];
    }
    let i = state.table().selected;
    match state.screen {
        Screen::Overview | Screen::Load => vec![],
        Screen::Chargers => match rows::chargers(state).get(i) {
            Some(c) => {
                let id = c.id.clone();
                open_charger(state, id)
            }
            None => vec![],
        },
        Screen::Sessions => {
            let Some(s) = rows::sessions(state).get(i).map(|s| (s.id, s.status)) else {
                return vec![];
            };
            state.detail = Some(Detail::Session(SessionDetail {
                id: s.0,
                pane: SessionPane::Readings,
                view: None,
                receipt: None,
            }));
            let mut jobs = vec![Effect::Run(Job::Session { id: s.0 })];
            if s.1 == SessionStatus::Completed {
                jobs.push(Effect::Run(Job::Receipt { id: s.0 }));
            }
            jobs
        }
        Screen::Alerts => match rows::alerts(state).get(i).and_then(|a| a.charger.clone()) {
            Some(id) if state.charger(&id).is_some() => open_charger(state, id),
            _ => vec![],
        },
        Screen::Log => {
            if let Some(e) = rows::log(state).get(i) {
                state.detail = Some(Detail::Frame((*e).clone()));
            }
            vec![]
        }
    }
}

/// The charger an action key applies to, and the selected connector
/// (in its detail view).
fn target_charger(state: &State) -> Option<(String, Option<(u32, u32)>)> {
    match &state.detail {
        Some(Detail::Charger(d)) => {
            let c = state.charger(&d.id)?;
            let k = connectors(c).get(d.connector).map(|k| (k.evse, k.connector));
            Some((d.id.clone(), k))
        }
        Some(_) => None,
        None if state.screen == Screen::Chargers => rows::chargers(state)
            .get(state.table().selected)
            .map(|c| (c.id.clone(), None)),
        None => None,
    }
}

fn confirm(state: &mut State, act: Act) -> Vec<Effect> {
    state.overlay = Some(Overlay::Confirm(act));
    vec![]
}

fn screen_key(state: &mut State, c: char) -> Vec<Effect> {
    // Keys that change nothing on the server work in read-only mode too.
    match (state.screen, &mut state.detail, c) {
        (_, Some(Detail::Charger(d)), 'c') => {
            if d.pane == ChargerPane::Config {
                d.pane = ChargerPane::Log;
                return vec![];
            }
            d.pane = ChargerPane::Config;
            if d.config.is_some() {
                return vec![];
            }
            let id = d.id.clone();
            let protocol = state.charger(&id).and_then(|c| c.protocol);
            return vec![Effect::Run(Job::ChargerConfig { id, protocol })];
        }
        (_, Some(Detail::Session(d)), 'v') => {
            d.pane = match d.pane {
                SessionPane::Readings => SessionPane::Receipt,
                SessionPane::Receipt => SessionPane::Readings,
            };
            return vec![];
        }
        (Screen::Alerts, None, 'h') => {
            state.show_acked = !state.show_acked;
            state.table_mut().selected = 0;
            return vec![];
        }
        (Screen::Alerts, None, 'a' | 'A') => {
            let all = rows::alerts(state);
            let picked: Vec<String> = if c == 'a' {
                all.get(state.table().selected)
                    .map(|a| a.key.clone())
                    .into_iter()
                    .collect()
            } else {
                all.into_iter().map(|a| a.key).collect()
            };
            if picked.is_empty() {
                return vec![];
            }
            let n = picked.len();
            state.acks.extend(picked);
            reselect(state, Screen::Alerts, None);
            notice(state, Tone::Good, format!("{n} alert(s) acknowledged"));
            return vec![Effect::SaveAcks];
        }
        _ => {}
    }
    if state.readonly {
        if "rRuoiASxbl".contains(c) {
            notice(
                state,
                Tone::Info,
                "read-only: actions are off (started with --readonly)",
            );
        }
        return vec![];
    }
    if let Some((id, conn)) = target_charger(state) {
        let evse = conn.map(|k| k.0);
        let act = match c {
            'r' => Some(Act::Reset {
                charger: id.clone(),
                hard: false,
            }),
            'R' => Some(Act::Reset {
                charger: id.clone(),
                hard: true,
            }),
            'u' => {
                let (evse, connector) = conn.unwrap_or((1, 1));
                Some(Act::Unlock {
                    charger: id.clone(),
                    evse,
                    connector,
                })
            }
            'o' | 'i' => Some(Act::Availability {
                charger: id.clone(),
                operative: c == 'o',
                evse,
            }),
            'A' => {
                let pending = state.charger(&id).is_some_and(|c| c.status != Registration::Accepted);
                if !pending {
                    notice(state, Tone::Info, format!("{id} is already accepted"));
                    return vec![];
                }
                Some(Act::Accept { charger: id.clone() })
            }
            'x' => match state.active_session(&id) {
                Some(s) => Some(Act::RemoteStop {
                    session: s.id,
                    charger: id.clone(),
                }),
                None => {
                    notice(state, Tone::Info, format!("no active session on {id}"));
                    return vec![];
                }
            },
            'S' => {
                state.overlay = Some(Overlay::Prompt {
                    ask: Ask::StartToken { charger: id, evse },
                    text: String::new(),
                });
                return vec![];
            }
            _ => None,
        };
        return act.map(|a| confirm(state, a)).unwrap_or_default();
    }
    match (state.screen, c) {
        (Screen::Sessions, 'x' | 'b') => {
            let s = match &state.detail {
                Some(Detail::Session(d)) => state.data.sessions.iter().find(|s| s.id == d.id),
                _ => rows::sessions(state).get(state.table().selected).copied(),
            };
            let Some(s) = s else { return vec![] };
            let act = if c == 'x' {
                if s.status != SessionStatus::Active {
                    notice(state, Tone::Info, format!("session {} has already ended", s.id));
                    return vec![];
                }
                Act::RemoteStop {
                    session: s.id,
                    charger: s.charger.clone(),
                }
            } else {
                let Some(uid) = s.token.clone() else {
                    notice(state, Tone::Info, format!("session {} has no token", s.id));
                    return vec![];
                };
                Act::BlockToken { uid }
            };
            confirm(state, act)
        }
        (Screen::Load, 'l') => {
            let Some(circuit) = rows::circuits(state)
                .get(state.table().selected)
                .map(|r| r.circuit.id.clone())
            else {
                return vec![];
            };
            state.overlay = Some(Overlay::Prompt {
                ask: Ask::CircuitLimit { circuit },
                text: String::new(),
            });
            vec![]
        }
        _ => vec![],
    }
}

fn overlay(state: &mut State, o: Overlay, k: KeyEvent) -> Vec<Effect> {
    match o {
        Overlay::Help => {}
        Overlay::Confirm(act) => {
            if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                notice(
                    state,
                    Tone::Info,
                    format!("{}: sent, waiting for the answer…", act.describe()),
                );
                return vec![Effect::Run(Job::Act(act))];
            }
            notice(state, Tone::Info, "cancelled");
        }
        Overlay::Prompt { ask, mut text } => match k.code {
            KeyCode::Esc => notice(state, Tone::Info, "cancelled"),
            KeyCode::Enter => match answer(&ask, &text) {
                Ok(act) => state.overlay = Some(Overlay::Confirm(act)),
                Err(e) => {
                    notice(state, Tone::Bad, e);
                    state.overlay = Some(Overlay::Prompt { ask, text });
                }
            },
            KeyCode::Backspace => {
                text.pop();
                state.overlay = Some(Overlay::Prompt { ask, text });
            }
            KeyCode::Char(c) => {
                if text.chars().count() < 64 {
                    text.push(c);
                }
                state.overlay = Some(Overlay::Prompt { ask, text });
            }
            _ => state.overlay = Some(Overlay::Prompt { ask, text }),
        },
        Overlay::Command(mut text) => match k.code {
            KeyCode::Esc => {}
            KeyCode::Enter => return command(state, &text),
            KeyCode::Backspace => {
                text.pop();
                state.overlay = Some(Overlay::Command(text));
            }
            KeyCode::Char(c) => {
                if text.len() < 32 {
                    text.push(c);
                }
                state.overlay = Some(Overlay::Command(text));
            }
            _ => state.overlay = Some(Overlay::Command(text)),
        },
    }
    vec![]
}

fn command(state: &mut State, text: &str) -> Vec<Effect> {
    let name = text.trim();
    if matches!(name, "q" | "q!" | "quit" | "exit") {
        state.quit = true;
        return vec![Effect::Quit];
    }
    match Screen::from_name(name) {
        Some(s) => switch(state, s),
        None if name.is_empty() => {}
        None => notice(
            state,
            Tone::Bad,
            format!(":{name}? screens: overview chargers sessions load alerts log; :q quits"),
        ),
    }
    vec![]
}

/// A prompt's text as the action it asks for.
fn answer(ask: &Ask, text: &str) -> Result<Act, String> {
    let text = text.trim();
    match ask {
        Ask::StartToken { charger, evse } => {
            if text.is_empty() || text.len() > 36 {
                return Err("a token uid is 1 to 36 characters".into());
            }
            Ok(Act::RemoteStart {
                charger: charger.clone(),
                token: text.to_string(),
                evse: *evse,
            })
        }
        Ask::CircuitLimit { circuit } => {
            let parts: Vec<&str> = text
                .split(|c: char| c == ',' || c == '/' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .collect();
            let amps: Vec<f64> = parts
                .iter()
                .map(|p| p.parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("{text:?}: give amps per phase, e.g. 32 or 32,32,16"))?;
            let max_current = match amps[..] {
                [a] => [a, a, a],
                [a, b, c] => [a, b, c],
                _ => return Err("one value for all phases, or three (L1,L2,L3)".into()),
            };
            if max_current.iter().any(|a| !a.is_finite() || *a < 0.0 || *a > 10_000.0) {
                return Err("amps must be between 0 and 10000".into());
            }
            Ok(Act::CircuitLimit {
                circuit: circuit.clone(),
                max_current,
            })
        }
    }
}
