//! Sessions, active first, and a session's detail: meter readings and
//! the receipt.

use super::{Theme, draw_table, fmt, rows, tz};
use crate::billing::EichrechtState;
use crate::control::proto::SessionView;
use crate::domain::SessionStatus;
use crate::tui::state::{Screen, SessionDetail, SessionPane, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row};

fn eichrecht(s: &SessionView, theme: Theme) -> Span<'static> {
    match s.eichrecht.as_ref().map(|e| e.state) {
        Some(EichrechtState::Verified) => Span::styled("verified", theme.good()),
        Some(EichrechtState::Failed) => Span::styled("FAILED", theme.bad()),
        Some(EichrechtState::Unsigned) => Span::styled("unsigned", theme.dim()),
        None => Span::styled("-", theme.dim()),
    }
}

/// The bill's total; for an active session `~` and the price so far, or
/// `running` when no tariff applies.
fn price(s: &SessionView) -> String {
    match (&s.price, &s.price_so_far) {
        (Some(p), _) => format!("{} {}", p.total_incl_vat, p.currency),
        (None, Some(p)) if s.status == SessionStatus::Active => format!("~{} {}", p.total_incl_vat, p.currency),
        (None, _) if s.status == SessionStatus::Active => "running".into(),
        (None, _) => "-".into(),
    }
}

pub fn table(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let zone = tz(state);
    let wide = area.width >= 110;
    let rows: Vec<Row> = rows::sessions(state)
        .into_iter()
        .map(|s| {
            let active = s.status == SessionStatus::Active;
            let style = if active { theme.bold() } else { Style::new() };
            let mut cells = vec![
                Cell::from(s.id.to_string()),
                Cell::from(s.charger.clone()),
                Cell::from(s.evse.to_string()),
                Cell::from(s.token.clone().unwrap_or_else(|| "-".into())),
                Cell::from(s.started_at.with_timezone(&zone).format("%H:%M").to_string()),
                Cell::from(fmt::duration(rows::duration(state, s))),
                Cell::from(Line::from(fmt::kwh(s.energy_wh)).right_aligned()),
                Cell::from(price(s)),
                Cell::from(eichrecht(s, theme)),
                Cell::from(Span::styled(
                    if active { "active" } else { "done" },
                    if active { theme.good() } else { theme.dim() },
                )),
            ];
            if wide {
                cells.push(Cell::from(s.stop_reason.clone().unwrap_or_default()));
            }
            Row::new(cells).style(style)
        })
        .collect();
    let mut header = vec![
        "ID",
        "CHARGER",
        "EVSE",
        "TOKEN",
        "START",
        "DURATION",
        "kWh",
        "PRICE",
        "EICHRECHT",
        "STATE",
    ];
    let charger_w = state
        .data
        .sessions
        .iter()
        .map(|s| s.charger.chars().count())
        .max()
        .unwrap_or(7);
    let mut widths = vec![
        Constraint::Length(5),
        Constraint::Length(charger_w.clamp(7, if wide { 20 } else { 12 }) as u16),
        Constraint::Length(4),
        Constraint::Length(if wide { 14 } else { 8 }),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(if wide { 12 } else { 9 }),
        Constraint::Length(9),
        Constraint::Length(6),
    ];
    if wide {
        header.push("STOP REASON");
        widths.push(Constraint::Min(8));
    }
    let selected = state.tables[Screen::Sessions.index()].selected;
    draw_table(f, area, header, rows, widths, Some(selected), theme);
}

pub fn detail(f: &mut Frame, area: Rect, state: &State, d: &SessionDetail, theme: Theme) {
    // The full record once fetched; the list's copy until then.
    let s = match &d.view {
        Some(v) => v.as_ref(),
        None => match state.data.sessions.iter().find(|s| s.id == d.id) {
            Some(s) => s,
            None => {
                f.render_widget(Paragraph::new(Line::styled("loading…", theme.dim())), area);
                return;
            }
        },
    };
    let zone = tz(state);
    let [info, pane] = Layout::vertical([Constraint::Length(5), Constraint::Min(3)]).areas(area);
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".into(), |t| {
            t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    let mut eich = vec![Span::raw("Eichrecht "), eichrecht(s, theme)];
    if let Some(e) = &s.eichrecht {
        eich.push(Span::raw(format!(
            " · {} signed values · meter {}",
            e.signed_values,
            e.meter_serial.as_deref().unwrap_or("-")
        )));
        if let Some(p) = e.problems.first() {
            eich.push(Span::styled(format!(" · {p}"), theme.bad()));
        }
    }
    let lines = vec![
        Line::from(vec![
            Span::styled(format!("Session {}", s.id), theme.header()),
            Span::raw(format!(
                " · {} EVSE {} · token {} · {}",
                s.charger,
                s.evse,
                s.token.as_deref().unwrap_or("-"),
                if s.status == SessionStatus::Active {
                    "active"
                } else {
                    "completed"
                }
            )),
        ]),
        Line::raw(format!(
            "start {} · stop {} · {}",
            when(Some(s.started_at)),
            when(s.stopped_at),
            fmt::duration(rows::duration(state, s))
        )),
        Line::raw(format!(
            "energy {} kWh · meter {} → {} Wh · stop reason {}",
            fmt::kwh(s.energy_wh),
            s.meter_start_wh.map_or("-".into(), |v| v.to_string()),
            s.meter_stop_wh.map_or("-".into(), |v| v.to_string()),
            s.stop_reason.as_deref().unwrap_or("-")
        )),
        Line::raw(format!(
            "price {}{}",
            price(s),
            s.unpriced_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        Line::from(eich),
    ];
    f.render_widget(Paragraph::new(lines), info);
    match d.pane {
        SessionPane::Readings => {
            let block = Block::default()
                .borders(Borders::TOP)
                .title(" Meter readings, newest first (v: receipt) ")
                .title_style(theme.bold());
            let inner = block.inner(pane);
            f.render_widget(block, pane);
            let Some(samples) = s.meter_values.as_ref() else {
                f.render_widget(Paragraph::new(Line::styled("loading…", theme.dim())), inner);
                return;
            };
            let rows: Vec<Row> = samples
                .iter()
                .rev()
                .take(usize::from(inner.height))
                .map(|m| {
                    Row::new(vec![
                        Cell::from(m.t.with_timezone(&zone).format("%H:%M:%S").to_string()),
                        Cell::from(m.measurand.clone()),
                        Cell::from(m.phase.clone().unwrap_or_default()),
                        Cell::from(Line::from(format!("{:.3}", m.value_milli as f64 / 1000.0)).right_aligned()),
                        Cell::from(m.unit.clone()),
                        Cell::from(if m.signed.is_some() { "signed" } else { "" }),
                    ])
                })
                .collect();
            draw_table(
                f,
                inner,
                vec!["TIME", "MEASURAND", "PHASE", "VALUE", "UNIT", ""],
                rows,
                vec![
                    Constraint::Length(8),
                    Constraint::Length(30),
                    Constraint::Length(6),
                    Constraint::Length(12),
                    Constraint::Length(5),
                    Constraint::Min(6),
                ],
                None,
                theme,
            );
        }
        SessionPane::Receipt => {
            let block = Block::default()
                .borders(Borders::TOP)
                .title(" Receipt (v: meter readings) ")
                .title_style(theme.bold());
            let text: Vec<Line> = match &d.receipt {
                _ if s.status == SessionStatus::Active => {
                    vec![Line::styled("the receipt is issued when the session ends", theme.dim())]
                }
                None => vec![Line::styled("loading…", theme.dim())],
                Some(Err(e)) => vec![Line::styled(e.clone(), theme.bad())],
                Some(Ok(body)) => body.lines().map(|l| Line::raw(l.to_string())).collect(),
            };
            f.render_widget(Paragraph::new(text).block(block), pane);
        }
    }
}
