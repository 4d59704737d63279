//! The chargers table and a charger's detail: connectors, power sparkline,
//! and its live message log or configuration.

use super::{Theme, draw_table, fmt, rows, tz};
use crate::control::proto::{ChargerView, ConnectorView};
use crate::domain::{ConnectorStatus, Direction, JournalEntry};
use crate::tui::state::{ChargerDetail, ChargerPane, Screen, State};
use crate::tui::update::connectors;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline};

pub fn status_short(s: ConnectorStatus) -> &'static str {
    match s {
        ConnectorStatus::Unknown => "?",
        ConnectorStatus::Available => "Avail",
        ConnectorStatus::Preparing => "Prep",
        ConnectorStatus::Charging => "Chrg",
        ConnectorStatus::SuspendedEv => "SusEV",
        ConnectorStatus::SuspendedEvse => "SusSE",
        ConnectorStatus::Finishing => "Fin",
        ConnectorStatus::Occupied => "Occ",
        ConnectorStatus::Reserved => "Resv",
        ConnectorStatus::Unavailable => "Unav",
        ConnectorStatus::Faulted => "FAULT",
    }
}

fn protocol(c: &ChargerView) -> &'static str {
    match c.protocol {
        Some(crate::domain::Protocol::V16) => "1.6",
        Some(crate::domain::Protocol::V201) => "2.0.1",
        None => "-",
    }
}

fn connector_style(k: &ConnectorView, theme: Theme) -> Style {
    match k.status {
        ConnectorStatus::Faulted => theme.bad(),
        ConnectorStatus::Charging => theme.good(),
        ConnectorStatus::Unavailable | ConnectorStatus::Unknown => theme.warn(),
        _ => Style::new(),
    }
}

pub fn table(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let wide = area.width >= 110;
    let rows: Vec<Row> = rows::chargers(state)
        .into_iter()
        .map(|c| {
            let st = rows::charger_state(c);
            let conns: Vec<Span> = connectors(c)
                .into_iter()
                .flat_map(|k| {
                    [
                        Span::styled(
                            format!("{}:{}", k.evse, status_short(k.status)),
                            connector_style(k, theme),
                        ),
                        Span::raw(" "),
                    ]
                })
                .collect();
            let session = state.active_session(&c.id).map_or("-".into(), |s| s.id.to_string());
            let mut cells = vec![
                Cell::from(c.id.clone()),
                Cell::from(Span::styled(st, theme.charger_state(st))),
                Cell::from(protocol(c)),
                Cell::from(Line::from(conns)),
                Cell::from(Line::from(fmt::kw(state.power_w(&c.id))).right_aligned()),
                Cell::from(session),
                Cell::from(fmt::ago(state.now, c.last_seen)),
                Cell::from(c.firmware.clone().unwrap_or_else(|| "-".into())),
            ];
            if wide {
                let model = [c.vendor.as_deref(), c.model.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                cells.push(Cell::from(model));
            }
            Row::new(cells)
        })
        .collect();
    let mut header = vec![
        "ID",
        "STATE",
        "PROTO",
        "CONNECTORS",
        "kW",
        "SESSION",
        "SEEN",
        "FIRMWARE",
    ];
    let id_w = state
        .data
        .chargers
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(2);
    let mut widths = vec![
        Constraint::Length(id_w.clamp(6, if wide { 24 } else { 14 }) as u16),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(if wide { 24 } else { 15 }),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Min(8),
    ];
    if wide {
        header.push("MODEL");
        widths[7] = Constraint::Length(12);
        widths.push(Constraint::Min(10));
    }
    let selected = state.tables[Screen::Chargers.index()].selected;
    draw_table(f, area, header, rows, widths, Some(selected), theme);
}

pub fn detail(f: &mut Frame, area: Rect, state: &State, d: &ChargerDetail, theme: Theme) {
    let Some(c) = state.charger(&d.id) else {
        f.render_widget(
            Paragraph::new(Line::styled(format!("charger {} is gone", d.id), theme.bad())),
            area,
        );
        return;
    };
    let conns = connectors(c);
    let [info, conn_area, power_area, pane] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(conns.len() as u16 + 2),
        Constraint::Length(3),
        Constraint::Min(3),
    ])
    .areas(area);
    let st = rows::charger_state(c);
    let model = [c.vendor.as_deref(), c.model.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let session = match state.active_session(&c.id) {
        Some(s) => format!(
            "session {} · token {} · {} kWh",
            s.id,
            s.token.as_deref().unwrap_or("-"),
            fmt::kwh(s.energy_wh)
        ),
        None => "no session".into(),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(c.id.clone(), theme.header()),
            Span::raw(" · "),
            Span::styled(st, theme.charger_state(st)),
            Span::raw(format!(
                " · ocpp{} · {} · fw {}",
                protocol(c),
                if model.is_empty() { "-" } else { &model },
                c.firmware.as_deref().unwrap_or("-")
            )),
        ]),
        Line::raw(format!(
            "site {} · circuit {} · {} A · {} phase(s) {} · seen {} ago · booted {} ago",
            c.site,
            c.circuit.as_deref().unwrap_or("-"),
            c.max_current.map_or("-".into(), |a| a.to_string()),
            c.phases,
            c.phase_rotation,
            fmt::ago(state.now, c.last_seen),
            fmt::ago(state.now, c.last_boot),
        )),
        Line::raw(session),
    ];
    f.render_widget(Paragraph::new(lines), info);

    let rows: Vec<Row> = conns
        .iter()
        .map(|k| {
            Row::new(vec![
                Cell::from(k.evse.to_string()),
                Cell::from(k.connector.to_string()),
                Cell::from(Span::styled(format!("{:?}", k.status), connector_style(k, theme))),
                Cell::from(k.error_code.clone().unwrap_or_else(|| "-".into())),
                Cell::from(fmt::ago(state.now, k.updated_at)),
                Cell::from(k.info.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let block = Block::default()
        .borders(Borders::TOP)
        .title(" Connectors ")
        .title_style(theme.bold());
    let inner = block.inner(conn_area);
    f.render_widget(block, conn_area);
    super::draw_table(
        f,
        inner,
        vec!["EVSE", "CONN", "STATUS", "ERROR", "SINCE", "INFO"],
        rows,
        vec![
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(13),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Min(5),
        ],
        Some(d.connector),
        theme,
    );

    let history: Vec<u64> = state
        .power
        .get(&c.id)
        .map(|q| q.iter().copied().collect())
        .unwrap_or_default();
    let peak = history.iter().copied().max().unwrap_or(0);
    let title = format!(
        " Power {} kW · peak {} kW over {} samples ",
        fmt::kw(state.power_w(&c.id)),
        fmt::kw(Some(peak as f64)),
        history.len()
    );
    let block = Block::default()
        .borders(Borders::TOP)
        .title(title)
        .title_style(theme.bold());
    // The newest samples, right-aligned, as many as fit.
    let fit = usize::from(power_area.width);
    let shown = &history[history.len().saturating_sub(fit)..];
    let spark = Sparkline::default()
        .block(block)
        .data(shown.iter().copied())
        .max(peak.max(1))
        .style(theme.good());
    f.render_widget(spark, power_area);

    match d.pane {
        ChargerPane::Log => {
            let block = Block::default()
                .borders(Borders::TOP)
                .title(" Message log (c: configuration) ")
                .title_style(theme.bold());
            let inner = block.inner(pane);
            f.render_widget(block, pane);
            let lines = frame_lines(state, d.log.iter(), inner, false, theme);
            f.render_widget(Paragraph::new(lines), inner);
        }
        ChargerPane::Config => {
            let block = Block::default()
                .borders(Borders::TOP)
                .title(" Configuration (c: message log) ")
                .title_style(theme.bold());
            let inner = block.inner(pane);
            f.render_widget(block, pane);
            let lines: Vec<Line> = match &d.config {
                None => vec![Line::styled("asking the charger…", theme.dim())],
                Some(Err(e)) => vec![Line::styled(e.clone(), theme.bad())],
                Some(Ok(entries)) => entries
                    .iter()
                    .map(|e| {
                        Line::from(vec![
                            Span::raw(format!("{:<40} ", fmt::clip(&e.key, 40))),
                            Span::raw(e.value.clone().unwrap_or_else(|| "-".into())),
                            Span::styled(if e.readonly { "  (read-only)" } else { "" }, theme.dim()),
                        ])
                    })
                    .collect(),
            };
            f.render_widget(Paragraph::new(lines), inner);
        }
    }
}

/// The newest frames that fit `area`, oldest at the top.
pub fn frame_lines<'a>(
    state: &State,
    frames: impl DoubleEndedIterator<Item = &'a JournalEntry>,
    area: Rect,
    with_charger: bool,
    theme: Theme,
) -> Vec<Line<'static>> {
    let zone = tz(state);
    let mut lines: Vec<Line> = frames
        .rev()
        .take(usize::from(area.height))
        .map(|e| frame_line(e, zone, with_charger, usize::from(area.width), theme))
        .collect();
    lines.reverse();
    lines
}

pub fn frame_line(
    e: &JournalEntry,
    zone: chrono_tz::Tz,
    with_charger: bool,
    width: usize,
    theme: Theme,
) -> Line<'static> {
    let time = e.t.with_timezone(&zone).format("%H:%M:%S").to_string();
    let (arrow, style) = match e.dir {
        Direction::In => ("←", theme.good()),
        Direction::Out => ("→", theme.warn()),
    };
    let mut spans = vec![Span::styled(time, theme.dim()), Span::raw(" ")];
    let mut used = 9;
    if with_charger {
        spans.push(Span::raw(format!("{:<11} ", fmt::clip(&e.charger, 11))));
        used += 12;
    }
    spans.push(Span::styled(arrow, style));
    spans.push(Span::raw(" "));
    used += 2;
    spans.push(Span::raw(fmt::clip(&e.frame, width.saturating_sub(used))));
    Line::from(spans)
}
