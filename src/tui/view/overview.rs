//! Site overview: per site, the charger counts, sessions, energy today and
//! alerts, each circuit's load per phase against its limit as bars, and
//! the server's health.

use super::{Theme, fmt, rows};
use crate::domain::SessionStatus;
use crate::loadctl::view::CircuitView;
use crate::tui::alerts;
use crate::tui::state::State;
use chrono::{DateTime, TimeZone, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::BTreeSet;

const NAME_W: usize = 14;

pub fn render(f: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let mut lines: Vec<Line> = Vec::new();
    if state.data.at.is_none() {
        lines.push(Line::styled("waiting for the server…", theme.dim()));
    }
    let mut sites: BTreeSet<&str> = state.data.chargers.iter().map(|c| c.site.as_str()).collect();
    sites.extend(state.data.dlm.sites.iter().map(|s| s.site.as_str()));
    let all_alerts = alerts::derive(&state.data, state.device_severity);
    for site in sites {
        site_lines(state, site, &all_alerts, area.width, theme, &mut lines);
        lines.push(Line::raw(""));
    }
    // The server's health goes at the bottom, whatever the sites took.
    let health = health(state, theme);
    let room = usize::from(area.height).saturating_sub(health.len());
    lines.truncate(room);
    while lines.len() < room {
        lines.push(Line::raw(""));
    }
    lines.extend(health);
    f.render_widget(Paragraph::new(lines), area);
}

/// Local midnight today in `tz`, in UTC.
fn midnight(now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let local = now.with_timezone(&tz).date_naive();
    local
        .and_hms_opt(0, 0, 0)
        .and_then(|m| tz.from_local_datetime(&m).earliest())
        .map_or(now, |m| m.with_timezone(&Utc))
}

fn site_lines(
    state: &State,
    site: &str,
    alerts: &[alerts::Alert],
    width: u16,
    theme: Theme,
    lines: &mut Vec<Line<'static>>,
) {
    let d = &state.data;
    let tz: chrono_tz::Tz = d
        .sites
        .iter()
        .find(|s| s.name == site)
        .and_then(|s| s.timezone.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    let chargers: Vec<_> = d.chargers.iter().filter(|c| c.site == site).collect();
    let count = |s: &str| chargers.iter().filter(|c| rows::charger_state(c) == s).count();
    let here = |id: &str| chargers.iter().any(|c| c.id == id);
    let sessions: Vec<_> = d.sessions.iter().filter(|s| here(&s.charger)).collect();
    let active = sessions.iter().filter(|s| s.status == SessionStatus::Active).count();
    let since = midnight(state.now, tz);
    // Sessions that started today; a list cut at its limit may miss some.
    let today: i64 = sessions
        .iter()
        .filter(|s| s.started_at >= since)
        .map(|s| s.energy_wh)
        .sum();
    let open = alerts
        .iter()
        .filter(|a| !state.acks.contains(&a.key))
        .filter(|a| a.charger.as_deref().is_some_and(here) || a.charger.is_none())
        .count();
    lines.push(Line::from(vec![
        Span::styled(format!("Site {site}"), theme.header()),
        Span::styled(format!("  {tz}"), theme.dim()),
    ]));
    let mut counts = vec![
        Span::raw("chargers "),
        Span::styled(format!("{} online", count("online")), theme.good()),
    ];
    for (label, n) in [
        ("offline", count("offline")),
        ("faulted", count("faulted")),
        ("pending", count("pending")),
    ] {
        counts.push(Span::raw(" · "));
        let style = if n > 0 { theme.charger_state(label) } else { theme.dim() };
        counts.push(Span::styled(format!("{n} {label}"), style));
    }
    counts.push(Span::raw(format!("   sessions {active} active")));
    lines.push(Line::from(counts));
    lines.push(Line::from(vec![
        Span::raw(format!(
            "energy today {}{} kWh",
            if d.sessions_truncated { "≥" } else { "" },
            fmt::kwh(today)
        )),
        Span::raw("   alerts "),
        Span::styled(open.to_string(), if open > 0 { theme.warn() } else { theme.good() }),
    ]));
    if let Some(s) = d.dlm.sites.iter().find(|s| s.site == site) {
        if let Some(e) = &s.error {
            lines.push(Line::styled(format!("load management cannot plan: {e}"), theme.bad()));
        }
        lines.push(legend(theme));
        for row in rows::circuits(state).iter().filter(|r| r.site == site) {
            lines.push(circuit_line(row.circuit, row.depth, width, theme));
        }
    }
}

/// Bar width that fits three phases and the name in `width`.
fn bar_width(width: u16) -> usize {
    // name, then per phase "L1 " + bar + " 123/123" and two spaces between.
    let fixed = NAME_W + 1 + 3 * 11 + 4;
    (usize::from(width).saturating_sub(fixed) / 3).clamp(4, 30)
}

fn legend(theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{:<NAME_W$} ", "circuit"), theme.dim()),
        Span::styled(
            "█ measured  ▒ allocated  · headroom   A measured/limit per phase",
            theme.dim(),
        ),
    ])
}

fn bar(measured: f64, allocated: f64, limit: f64, w: usize) -> (String, f64) {
    let frac = |x: f64| if limit > 0.0 { (x / limit).clamp(0.0, 1.0) } else { 1.0 };
    let m = (frac(measured) * w as f64).round() as usize;
    let a = ((frac(allocated) * w as f64).round() as usize).max(m);
    let s = "█".repeat(m) + &"▒".repeat(a - m) + &"·".repeat(w - a);
    (s, if limit > 0.0 { measured / limit } else { 1.0 })
}

fn circuit_line(c: &CircuitView, depth: usize, width: u16, theme: Theme) -> Line<'static> {
    let w = bar_width(width);
    let name = fmt::clip(&format!("{}{}", "  ".repeat(depth), c.id), NAME_W);
    let mut spans = vec![Span::raw(format!("{name:<NAME_W$} "))];
    for i in 0..3 {
        let (b, load) = bar(c.measured[i], c.allocated[i], c.limit[i], w);
        spans.push(Span::styled(format!("L{} ", i + 1), theme.dim()));
        spans.push(Span::styled(b, theme.load(load)));
        spans.push(Span::raw(format!(" {:>3.0}/{:<3.0}", c.measured[i], c.limit[i])));
        if i < 2 {
            spans.push(Span::raw("  "));
        }
    }
    Line::from(spans)
}

fn health(state: &State, theme: Theme) -> Vec<Line<'static>> {
    let Some(s) = &state.data.status else {
        return vec![Line::styled("server: no answer yet", theme.dim())];
    };
    let rate = state.msg_per_s().map_or("-".into(), |r| format!("{r:.1}"));
    let commit = state.commit_ms().map_or("-".into(), |m| format!("{m:.1} ms"));
    vec![
        Line::from(vec![
            Span::styled("Server ", theme.header()),
            Span::raw(format!("v{} · ", s.version)),
            Span::styled(format!("{} chargers connected", s.chargers_connected), theme.bold()),
            Span::raw(format!(" · {rate} msg/s · commit {commit}")),
        ]),
        Line::styled(
            format!(
                "OCPP {} · {} commits · updated {} ago",
                s.listen,
                s.commits,
                fmt::ago(state.now, state.data.at)
            ),
            theme.dim(),
        ),
    ]
}
