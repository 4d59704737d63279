//! Alerts: what needs an operator, newest first; acknowledged ones hidden
//! unless asked for.

use super::{Theme, draw_table, fmt};
use crate::tui::alerts::Severity;
use crate::tui::rows;
use crate::tui::state::{Screen, State};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};

pub fn render(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let alerts = rows::alerts(state);
    let acked = state.acks.len();
    f.render_widget(
        Paragraph::new(Line::styled(
            format!(
                "{} open · {} acknowledged ({}: h)",
                rows::open_alerts(state),
                acked,
                if state.show_acked { "hide" } else { "show" }
            ),
            theme.dim(),
        )),
        head,
    );
    let rows: Vec<Row> = alerts
        .iter()
        .map(|a| {
            let sev = match a.severity {
                Severity::Critical => theme.bad(),
                Severity::Warning => theme.warn(),
                Severity::Info => theme.dim(),
            };
            let done = state.acks.contains(&a.key);
            let row = Row::new(vec![
                Cell::from(Span::styled(a.severity.label(), sev)),
                Cell::from(if a.t.is_some() {
                    fmt::ago(state.now, a.t)
                } else {
                    "now".into()
                }),
                Cell::from(a.kind),
                Cell::from(a.charger.clone().unwrap_or_else(|| "-".into())),
                Cell::from(a.detail.clone()),
                Cell::from(if done { "✓" } else { "" }),
            ]);
            if done { row.style(theme.dim()) } else { row }
        })
        .collect();
    let selected = state.tables[Screen::Alerts.index()].selected;
    draw_table(
        f,
        body,
        vec!["SEV", "WHEN", "KIND", "CHARGER", "DETAIL", "ACK"],
        rows,
        vec![
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(13),
            Constraint::Length(11),
            Constraint::Min(20),
            Constraint::Length(3),
        ],
        Some(selected),
        theme,
    );
}
