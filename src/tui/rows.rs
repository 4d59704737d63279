//! The rows of each screen's table, filtered and sorted. `update` moves
//! the selection over them and `view` draws them, so both see the same
//! rows in the same order. Every order ends on a unique key, so rows never
//! swap places between two snapshots with equal sort values.

use super::alerts::{self, Alert};
use super::state::{Screen, State};
use crate::control::proto::{ChargerView, SessionView};
use crate::domain::{ConnectorStatus, JournalEntry, Registration, SessionStatus};
use crate::loadctl::view::CircuitView;
use chrono::Duration;
use std::cmp::Reverse;

/// The one-word state of a charger, as the table shows it.
pub fn charger_state(c: &ChargerView) -> &'static str {
    match c.status {
        Registration::Pending => "pending",
        Registration::Rejected => "rejected",
        Registration::Accepted if !c.connected => "offline",
        Registration::Accepted
            if c.connectors.iter().any(|k| {
                k.status == ConnectorStatus::Faulted || k.error_code.as_deref().is_some_and(|e| e != "NoError")
            }) =>
        {
            "faulted"
        }
        Registration::Accepted => "online",
    }
}

fn matches(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let f = filter.to_lowercase();
    fields.iter().any(|x| x.to_lowercase().contains(&f))
}

pub fn chargers(state: &State) -> Vec<&ChargerView> {
    let t = &state.tables[Screen::Chargers.index()];
    let mut rows: Vec<&ChargerView> = state
        .data
        .chargers
        .iter()
        .filter(|c| {
            let protocol = c.protocol.map(|p| p.subprotocol()).unwrap_or("");
            matches(
                &t.filter,
                &[
                    &c.id,
                    charger_state(c),
                    protocol,
                    c.firmware.as_deref().unwrap_or(""),
                    c.vendor.as_deref().unwrap_or(""),
                    c.model.as_deref().unwrap_or(""),
                    &c.site,
                ],
            )
        })
        .collect();
    match Screen::Chargers.sorts().get(t.sort).copied() {
        Some("status") => rows.sort_by(|a, b| charger_state(a).cmp(charger_state(b)).then(a.id.cmp(&b.id))),
        Some("power") => rows.sort_by(|a, b| {
            let pa = state.power_w(&a.id).unwrap_or(-1.0);
            let pb = state.power_w(&b.id).unwrap_or(-1.0);
            pb.total_cmp(&pa).then(a.id.cmp(&b.id))
        }),
        Some("last seen") => rows.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id))),
        _ => rows.sort_by(|a, b| a.id.cmp(&b.id)),
    }
    rows
}

/// How long a session ran, or has run so far.
pub fn duration(state: &State, s: &SessionView) -> Duration {
    s.stopped_at.unwrap_or(state.now) - s.started_at
}

pub fn sessions(state: &State) -> Vec<&SessionView> {
    let t = &state.tables[Screen::Sessions.index()];
    let mut rows: Vec<&SessionView> = state
        .data
        .sessions
        .iter()
        .filter(|s| {
            let id = s.id.to_string();
            let status = match s.status {
                SessionStatus::Active => "active",
                SessionStatus::Completed => "completed",
            };
            matches(&t.filter, &[&id, &s.charger, s.token.as_deref().unwrap_or(""), status])
        })
        .collect();
    match Screen::Sessions.sorts().get(t.sort).copied() {
        Some("charger") => rows.sort_by(|a, b| a.charger.cmp(&b.charger).then(b.id.cmp(&a.id))),
        Some("energy") => rows.sort_by_key(|s| (Reverse(s.energy_wh), Reverse(s.id))),
        Some("duration") => rows.sort_by_key(|s| (Reverse(duration(state, s)), Reverse(s.id))),
        _ => rows.sort_by_key(|s| (s.status != SessionStatus::Active, Reverse(s.started_at), Reverse(s.id))),
    }
    rows
}

pub struct CircuitRow<'a> {
    pub site: &'a str,
    pub circuit: &'a CircuitView,
    pub depth: usize,
}

/// Circuits of every site in tree order: each parent before its children.
pub fn circuits(state: &State) -> Vec<CircuitRow<'_>> {
    let t = &state.tables[Screen::Load.index()];
    let mut out = Vec::new();
    for site in &state.data.dlm.sites {
        let mut ordered = Vec::new();
        // Depth-first, children in the order load management lists them.
        fn walk<'a>(
            all: &'a [CircuitView],
            parent: Option<&str>,
            depth: usize,
            out: &mut Vec<(&'a CircuitView, usize)>,
        ) {
            for c in all.iter().filter(|c| c.parent.as_deref() == parent) {
                out.push((c, depth));
                if depth < 32 {
                    walk(all, Some(&c.id), depth + 1, out);
                }
            }
        }
        walk(&site.circuits, None, 0, &mut ordered);
        out.extend(
            ordered
                .into_iter()
                .filter(|(c, _)| matches(&t.filter, &[&c.id, &site.site]))
                .map(|(circuit, depth)| CircuitRow {
                    site: &site.site,
                    circuit,
                    depth,
                }),
        );
    }
    out
}

/// Alerts on screen: unacknowledged ones (all with `show_acked`).
pub fn alerts(state: &State) -> Vec<Alert> {
    let t = &state.tables[Screen::Alerts.index()];
    let mut rows: Vec<Alert> = alerts::derive(&state.data, state.device_severity)
        .into_iter()
        .filter(|a| state.show_acked || !state.acks.contains(&a.key))
        .filter(|a| {
            matches(
                &t.filter,
                &[
                    a.kind,
                    a.charger.as_deref().unwrap_or(""),
                    &a.detail,
                    a.severity.label(),
                ],
            )
        })
        .collect();
    match Screen::Alerts.sorts().get(t.sort).copied() {
        Some("severity") => {
            rows.sort_by(|a, b| a.severity.cmp(&b.severity).then(b.t.cmp(&a.t)).then(a.key.cmp(&b.key)))
        }
        Some("charger") => rows.sort_by(|a, b| a.charger.cmp(&b.charger).then(b.t.cmp(&a.t)).then(a.key.cmp(&b.key))),
        _ => rows.sort_by(|a, b| b.t.cmp(&a.t).then(a.severity.cmp(&b.severity)).then(a.key.cmp(&b.key))),
    }
    rows
}

/// Unacknowledged alerts, for the tab bar and the overview.
pub fn open_alerts(state: &State) -> usize {
    alerts::derive(&state.data, state.device_severity)
        .iter()
        .filter(|a| !state.acks.contains(&a.key))
        .count()
}

pub fn log(state: &State) -> Vec<&JournalEntry> {
    let t = &state.tables[Screen::Log.index()];
    state
        .log
        .iter()
        .filter(|e| matches(&t.filter, &[&e.charger, &e.frame]))
        .collect()
}

/// A stable identity for each row of a screen, to keep the selection on
/// the same item when the rows change under it.
pub fn keys(state: &State, screen: Screen) -> Vec<String> {
    match screen {
        Screen::Overview => vec![],
        Screen::Chargers => chargers(state).iter().map(|c| c.id.clone()).collect(),
        Screen::Sessions => sessions(state).iter().map(|s| s.id.to_string()).collect(),
        Screen::Load => circuits(state).iter().map(|c| c.circuit.id.clone()).collect(),
        Screen::Alerts => alerts(state).into_iter().map(|a| a.key).collect(),
        Screen::Log => log(state).iter().map(|e| e.seq.to_string()).collect(),
    }
}
