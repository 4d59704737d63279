//! Load management: the circuit tree with limits, measured and allocated
//! current per phase, and every steered charger with its limit and what
//! limits it.

use super::{Theme, draw_table, fmt, rows};
use crate::loadctl::SiteView;
use crate::loadctl::view::ChargerLoad;
use crate::tui::state::{Screen, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row};

/// How close to its limit a node must be to count as the one holding a
/// charger back (A).
const BINDING_MARGIN: f64 = 0.5;

/// Why a charger's limit is what it is, in a few words.
pub fn reason(state: &State, site: &SiteView, c: &ChargerLoad) -> String {
    if c.non_compliant {
        return "non-compliant".into();
    }
    if !c.connected {
        return "offline".into();
    }
    if c.session.is_none() {
        return "idle".into();
    }
    // Walk up from the charger's circuit to the first full node.
    let mut node = Some(c.circuit.as_str());
    let mut depth = 0;
    while let Some(id) = node.filter(|_| depth < 32) {
        let Some(n) = site.circuits.iter().find(|x| x.id == id) else {
            break;
        };
        if (0..3).any(|i| n.limit[i] > 0.0 && n.allocated[i] >= n.limit[i] - BINDING_MARGIN) {
            let what = if c.limit == 0.0 { "paused by" } else { "limited by" };
            return format!("{what} {id}");
        }
        node = n.parent.as_deref();
        depth += 1;
    }
    let charger = c.id.split('/').next().unwrap_or(&c.id);
    let max = state.charger(charger).and_then(|v| v.max_current).map(f64::from);
    match max {
        Some(m) if c.limit >= m - 0.1 => "charger maximum".into(),
        _ if c.limit == 0.0 => "paused".into(),
        _ => "car draws less".into(),
    }
}

pub fn render(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let wide = area.width >= 110;
    let dlm = &state.data.dlm;
    let circuits = rows::circuits(state);
    let chargers: Vec<(&SiteView, &ChargerLoad)> = dlm
        .sites
        .iter()
        .flat_map(|s| s.chargers.iter().map(move |c| (s, c)))
        .collect();
    let top_h = (circuits.len() as u16 + 2).min(area.height / 2).max(3);
    let [head, top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(top_h), Constraint::Min(3)]).areas(area);
    let summary = match dlm.time {
        None => Line::styled(
            "load management has not decided yet (no circuits, or the server just started)",
            theme.dim(),
        ),
        Some(t) => {
            let nc: Vec<&str> = dlm
                .sites
                .iter()
                .flat_map(|s| s.non_compliant.iter().map(String::as_str))
                .collect();
            let mut spans = vec![Span::raw(format!(
                "last decision {} ago · {} µs",
                fmt::ago(state.now, Some(t)),
                dlm.sites.iter().map(|s| s.decision_us).max().unwrap_or(0)
            ))];
            if dlm.dropped_signals > 0 {
                spans.push(Span::styled(
                    format!(" · {} meter signals dropped", dlm.dropped_signals),
                    theme.warn(),
                ));
            }
            spans.push(Span::raw(" · non-compliant: "));
            if nc.is_empty() {
                spans.push(Span::styled("none", theme.good()));
            } else {
                spans.push(Span::styled(nc.join(", "), theme.bad()));
            }
            Line::from(spans)
        }
    };
    f.render_widget(Paragraph::new(summary), head);

    let rows_c: Vec<Row> = circuits
        .iter()
        .map(|r| {
            let c = r.circuit;
            let load = (0..3)
                .map(|i| {
                    if c.limit[i] > 0.0 {
                        c.measured[i] / c.limit[i]
                    } else {
                        0.0
                    }
                })
                .fold(0.0, f64::max);
            let unmanaged = match (&c.unmanaged, c.metered) {
                (Some(u), _) => fmt::amps(u, wide),
                (None, true) => "meter silent".into(),
                (None, false) => "-".into(),
            };
            Row::new(vec![
                Cell::from(fmt::clip(&format!("{}{}", "  ".repeat(r.depth), c.id), 16)),
                Cell::from(fmt::amps(&c.limit, wide)),
                Cell::from(Span::styled(fmt::amps(&c.measured, wide), theme.load(load))),
                Cell::from(fmt::amps(&c.allocated, wide)),
                Cell::from(format!("{:>3.0}%", load * 100.0)),
                Cell::from(Span::styled(
                    unmanaged,
                    if c.metered && c.unmanaged.is_none() {
                        theme.bad()
                    } else {
                        theme.dim()
                    },
                )),
            ])
        })
        .collect();
    let amp_w = if wide { 16 } else { 11 };
    let selected = state.tables[Screen::Load.index()].selected;
    draw_table(
        f,
        top,
        vec!["CIRCUIT", "LIMIT A", "MEASURED", "ALLOCATED", "LOAD", "UNMANAGED"],
        rows_c,
        vec![
            Constraint::Length(16),
            Constraint::Length(amp_w),
            Constraint::Length(amp_w),
            Constraint::Length(amp_w),
            Constraint::Length(4),
            Constraint::Min(8),
        ],
        Some(selected),
        theme,
    );

    let block = Block::default()
        .borders(Borders::TOP)
        .title(" Steered chargers ")
        .title_style(theme.bold());
    let inner = block.inner(bottom);
    f.render_widget(block, bottom);
    let rows_ch: Vec<Row> = chargers
        .iter()
        .map(|(site, c)| {
            let why = reason(state, site, c);
            let style = if c.non_compliant {
                theme.bad()
            } else if why.starts_with("paused") || why == "offline" {
                theme.warn()
            } else {
                theme.dim()
            };
            Row::new(vec![
                Cell::from(c.id.clone()),
                Cell::from(c.circuit.clone()),
                Cell::from(c.session.clone().unwrap_or_else(|| "-".into())),
                Cell::from(Line::from(format!("{:.1}", c.limit)).right_aligned()),
                Cell::from(fmt::amps(&c.measured, wide)),
                Cell::from(Span::styled(why, style)),
            ])
        })
        .collect();
    let id_w = chargers.iter().map(|(_, c)| c.id.chars().count()).max().unwrap_or(7);
    draw_table(
        f,
        inner,
        vec!["CHARGER", "CIRCUIT", "SESSION", "LIMIT", "MEASURED", "WHY"],
        rows_ch,
        vec![
            Constraint::Length(id_w.clamp(7, if wide { 24 } else { 14 }) as u16),
            Constraint::Length(if wide { 14 } else { 8 }),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(amp_w),
            Constraint::Min(10),
        ],
        None,
        theme,
    );
}
