//! Drawing: a pure function of the state. The frame is a tab bar, the
//! screen (or the detail view opened from it), and a status line; overlays
//! (help, confirmation, prompts) go on top.

mod alerts;
mod chargers;
pub mod fmt;
mod load;
mod log;
mod overview;
mod sessions;

use super::keys;
use super::rows;
use super::state::{Ask, Detail, Link, Overlay, SCREENS, Screen, State, Tone};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, TableState, Wrap};

/// Styles, with or without colour (`--no-color`, `NO_COLOR`): without,
/// the same distinctions are made with bold, reverse and underline.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn header(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    pub fn good(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(self) -> Style {
        if self.color {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
    pub fn bad(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }
    pub fn tone(self, t: Tone) -> Style {
        match t {
            Tone::Info => Style::new(),
            Tone::Good => self.good(),
            Tone::Bad => self.bad(),
        }
    }
    /// A load against its limit: calm below 70 %, warning to 90 %, then alarm.
    pub fn load(self, fraction: f64) -> Style {
        if fraction >= 0.9 {
            self.bad()
        } else if fraction >= 0.7 {
            self.warn()
        } else {
            self.good()
        }
    }
    /// The one-word state of a charger.
    pub fn charger_state(self, s: &str) -> Style {
        match s {
            "online" => self.good(),
            "offline" | "pending" => self.warn(),
            _ => self.bad(),
        }
    }
}

pub fn render(f: &mut Frame, state: &State) {
    let theme = Theme { color: state.color };
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(f.area());
    f.render_widget(tabs(state, theme, top.width), top);
    match &state.detail {
        Some(Detail::Charger(d)) => chargers::detail(f, body, state, d, theme),
        Some(Detail::Session(d)) => sessions::detail(f, body, state, d, theme),
        Some(Detail::Frame(e)) => log::detail(f, body, e, theme),
        None => match state.screen {
            Screen::Overview => overview::render(f, body, state, theme),
            Screen::Chargers => chargers::table(f, body, state, theme),
            Screen::Sessions => sessions::table(f, body, state, theme),
            Screen::Load => load::render(f, body, state, theme),
            Screen::Alerts => alerts::render(f, body, state, theme),
            Screen::Log => log::render(f, body, state, theme),
        },
    }
    f.render_widget(status_line(state, theme, bottom.width), bottom);
    match &state.overlay {
        Some(Overlay::Help) => help(f, state, theme),
        Some(Overlay::Confirm(act)) => dialog(
            f,
            "Confirm",
            vec![
                Line::from(act.describe() + "?"),
                Line::raw(""),
                Line::from(vec![
                    Span::styled("y", theme.bold()),
                    Span::raw(" yes · "),
                    Span::styled("n", theme.bold()),
                    Span::raw(" / Esc no"),
                ]),
            ],
            theme,
        ),
        Some(Overlay::Prompt { ask, text }) => {
            let (title, label) = match ask {
                Ask::StartToken { charger, evse } => (
                    format!(
                        "Remote start on {charger}{}",
                        evse.map(|e| format!(" EVSE {e}")).unwrap_or_default()
                    ),
                    "token uid".to_string(),
                ),
                Ask::CircuitLimit { circuit } => (
                    format!("Limit of circuit {circuit}"),
                    "A per phase (32 or 32,32,16)".to_string(),
                ),
            };
            dialog(
                f,
                &title,
                vec![
                    Line::from(format!("{label}: {text}_")),
                    Line::raw(""),
                    Line::styled("Enter confirms · Esc cancels", theme.dim()),
                ],
                theme,
            );
        }
        Some(Overlay::Command(_)) | None => {}
    }
}

fn tabs(state: &State, theme: Theme, width: u16) -> Line<'static> {
    let alerts = rows::open_alerts(state);
    let mut spans = vec![Span::styled(" voltyard ", theme.header())];
    for (i, s) in SCREENS.iter().enumerate() {
        // Short names when the bar would not fit.
        let name = if width < 84 && *s == Screen::Overview {
            "Site"
        } else {
            s.title()
        };
        let mut label = format!(" {}:{name}", i + 1);
        if *s == Screen::Alerts && alerts > 0 {
            label.push_str(&format!("({alerts})"));
        }
        label.push(' ');
        let style = if *s == state.screen {
            theme.selected().add_modifier(Modifier::BOLD)
        } else if *s == Screen::Alerts && alerts > 0 {
            theme.warn()
        } else {
            Style::new()
        };
        spans.push(Span::styled(label, style));
    }
    let (dot, style) = match &state.link {
        Link::Up => ("● live", theme.good()),
        Link::Connecting => ("○ connecting", theme.warn()),
        Link::Down(_) => ("✕ no server", theme.bad()),
    };
    spans.push(Span::raw(" "));
    spans.push(Span::styled(dot, style));
    if state.readonly {
        spans.push(Span::styled(" ro", theme.dim()));
    }
    Line::from(spans)
}

fn status_line(state: &State, theme: Theme, width: u16) -> Line<'static> {
    if let Some(Overlay::Command(text)) = &state.overlay {
        return Line::from(format!(":{text}_"));
    }
    if state.filtering {
        return Line::from(vec![
            Span::styled("/", theme.bold()),
            Span::raw(format!("{}_", state.table().filter)),
            Span::styled("  Enter keeps · Esc clears", theme.dim()),
        ]);
    }
    // A message wins over the reminder of the keys.
    let hint = if state.notice.is_some() {
        "? help".to_string()
    } else {
        keys::hint(state)
    };
    let mut spans = Vec::new();
    let mut used = 0;
    let filter = &state.table().filter;
    if !filter.is_empty() && state.detail.is_none() {
        let f = format!("/{filter} ");
        used += f.chars().count();
        spans.push(Span::styled(f, theme.bold()));
    }
    if let Some(n) = &state.notice {
        let room = usize::from(width)
            .saturating_sub(used + hint.chars().count() + 1)
            .max(20);
        let text = fmt::clip(&n.text, room);
        used += text.chars().count();
        spans.push(Span::styled(text, theme.tone(n.tone)));
    }
    let pad = usize::from(width).saturating_sub(used + hint.chars().count());
    if pad > 0 {
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(hint, theme.dim()));
    }
    Line::from(spans)
}

/// A centred box of `w` × `h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

fn dialog(f: &mut Frame, title: &str, lines: Vec<Line<'static>>, theme: Theme) {
    let width = lines.iter().map(Line::width).max().unwrap_or(0).max(title.len() + 4) as u16 + 4;
    let area = centered(f.area(), width.min(76), lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    let block = Block::bordered()
        .title(format!(" {title} "))
        .title_style(theme.header());
    f.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

fn help(f: &mut Frame, state: &State, theme: Theme) {
    let keys = keys::help(state);
    let kw = keys.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let dw = keys.iter().map(|(_, d)| d.chars().count()).max().unwrap_or(0);
    let title = match &state.detail {
        Some(Detail::Charger(_)) => "charger",
        Some(Detail::Session(_)) => "session",
        Some(Detail::Frame(_)) => "frame",
        None => state.screen.title(),
    };
    let area = centered(f.area(), (kw + dw + 5) as u16, keys.len() as u16 + 2);
    f.render_widget(Clear, area);
    let rows: Vec<Row> = keys
        .iter()
        .map(|(k, d)| Row::new(vec![Span::styled(*k, theme.bold()), Span::raw(*d)]))
        .collect();
    let table = Table::new(rows, [Constraint::Length(kw as u16), Constraint::Min(10)]).block(
        Block::bordered()
            .title(format!(" Keys: {title} · any key closes "))
            .title_style(theme.header()),
    );
    f.render_widget(table, area);
}

/// A table whose selected row stays in view; the header is bold.
pub(super) fn draw_table(
    f: &mut Frame,
    area: Rect,
    header: Vec<&'static str>,
    rows: Vec<Row<'static>>,
    widths: Vec<Constraint>,
    selected: Option<usize>,
    theme: Theme,
) {
    let empty = rows.is_empty();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut ts = TableState::default().with_selected(selected.filter(|_| !empty));
    f.render_stateful_widget(table, area, &mut ts);
    if empty && area.height > 2 {
        let msg = Paragraph::new(Line::styled("  (nothing to show)", theme.dim()));
        f.render_widget(msg, Rect::new(area.x, area.y + 1, area.width, 1));
    }
}

/// The time zone times are shown in: the first site's.
pub(super) fn tz(state: &State) -> chrono_tz::Tz {
    state
        .data
        .sites
        .iter()
        .find(|s| state.data.chargers.iter().any(|c| c.site == s.name))
        .or(state.data.sites.first())
        .and_then(|s| s.timezone.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

#[cfg(test)]
pub(super) mod tests;
