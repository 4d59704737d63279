//! Short figures for narrow columns.

use chrono::{DateTime, Duration, Utc};

/// How long ago: `12s`, `5m`, `3h`, `2d`; `-` when never.
pub fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => short(now - t),
        None => "-".into(),
    }
}

/// `45s`, `12m`, `3h`, `2d` (the largest unit only).
pub fn short(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `1h05m`, `12m30s`, `45s`.
pub fn duration(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn kwh(wh: i64) -> String {
    format!("{:.2}", wh as f64 / 1000.0)
}

pub fn kw(w: Option<f64>) -> String {
    match w {
        Some(w) => format!("{:.1}", w / 1000.0),
        None => "-".into(),
    }
}

/// Per-phase amps, `45/40/30`, or with one decimal when there is room.
pub fn amps(a: &[f64; 3], wide: bool) -> String {
    if wide {
        format!("{:.1}/{:.1}/{:.1}", a[0], a[1], a[2])
    } else {
        format!("{:.0}/{:.0}/{:.0}", a[0], a[1], a[2])
    }
}

/// Cut to `n` characters, marking the cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_fit_their_columns() {
        assert_eq!(short(Duration::seconds(59)), "59s");
        assert_eq!(short(Duration::seconds(3599)), "59m");
        assert_eq!(short(Duration::seconds(-5)), "0s");
        assert_eq!(duration(Duration::seconds(3900)), "1h05m");
        assert_eq!(kwh(12345), "12.35");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(amps(&[45.25, 40.0, 0.0], false), "45/40/0");
    }
}
