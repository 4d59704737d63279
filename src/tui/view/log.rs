//! The live OCPP frames of every charger, and one frame in full.

use super::chargers::frame_line;
use super::{Theme, tz};
use crate::domain::JournalEntry;
use crate::tui::rows;
use crate::tui::state::{Screen, State};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let zone = tz(state);
    let frames = rows::log(state);
    let h = usize::from(area.height);
    let selected = state.tables[Screen::Log.index()]
        .selected
        .min(frames.len().saturating_sub(1));
    // The selected frame is the bottom line while following; scrolling up
    // keeps it in view.
    let end = (selected + 1).max(h.min(frames.len())).min(frames.len());
    let start = end.saturating_sub(h);
    let lines: Vec<Line> = frames[start..end]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let line = frame_line(e, zone, true, usize::from(area.width), theme);
            if start + i == selected && !state.follow_log {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    if lines.is_empty() {
        f.render_widget(Paragraph::new(Line::styled("waiting for frames…", theme.dim())), area);
        return;
    }
    f.render_widget(Paragraph::new(lines), area);
}

pub fn detail(f: &mut Frame, area: Rect, e: &JournalEntry, theme: Theme) {
    let pretty = serde_json::from_str::<serde_json::Value>(&e.frame)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| e.frame.clone());
    let title = format!(
        " {} {} {} · seq {} ",
        e.t.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        e.charger,
        match e.dir {
            crate::domain::Direction::In => "← from the charger",
            crate::domain::Direction::Out => "→ to the charger",
        },
        e.seq
    );
    let block = Block::default()
        .borders(Borders::TOP)
        .title(title)
        .title_style(theme.bold());
    let lines: Vec<Line> = pretty.lines().map(|l| Line::raw(l.to_string())).collect();
    f.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}
