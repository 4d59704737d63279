//! Counters every virtual charger bumps, read by the progress line and the
//! final summary.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Stats {
    pub connected: AtomicI64,
    pub accepted: AtomicI64,
    pub charging: AtomicI64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub calls_answered: AtomicU64,
    pub call_errors_received: AtomicU64,
    pub call_errors_sent: AtomicU64,
    pub timeouts: AtomicU64,
    pub sessions_started: AtomicU64,
    pub sessions_completed: AtomicU64,
    pub auth_rejected: AtomicU64,
    pub energy_wh: AtomicU64,
    pub profiles_accepted: AtomicU64,
    pub profiles_rejected: AtomicU64,
    pub replayed: AtomicU64,
    pub schema_violations: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// Distinct error descriptions kept for the summary.
const KEEP_ERRORS: usize = 20;

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn gauge(g: &AtomicI64, delta: i64) {
        g.fetch_add(delta, Relaxed);
    }

    pub fn error(&self, what: String) {
        tracing::debug!("{what}");
        if let Ok(mut e) = self.errors.lock()
            && e.len() < KEEP_ERRORS
            && !e.contains(&what)
        {
            e.push(what);
        }
    }

    pub fn snapshot(&self, chargers: usize, elapsed_s: f64) -> Summary {
        let g = |c: &AtomicU64| c.load(Relaxed);
        Summary {
            chargers,
            elapsed_s: (elapsed_s * 10.0).round() / 10.0,
            connected: self.connected.load(Relaxed).max(0) as u64,
            accepted: self.accepted.load(Relaxed).max(0) as u64,
            charging: self.charging.load(Relaxed).max(0) as u64,
            connects: g(&self.connects),
            connect_failures: g(&self.connect_failures),
            disconnects: g(&self.disconnects),
            messages_sent: g(&self.sent),
            messages_received: g(&self.received),
            calls_answered: g(&self.calls_answered),
            call_errors_received: g(&self.call_errors_received),
            call_errors_sent: g(&self.call_errors_sent),
            timeouts: g(&self.timeouts),
            sessions_started: g(&self.sessions_started),
            sessions_completed: g(&self.sessions_completed),
            auth_rejected: g(&self.auth_rejected),
            energy_wh: g(&self.energy_wh),
            profiles_accepted: g(&self.profiles_accepted),
            profiles_rejected: g(&self.profiles_rejected),
            replayed: g(&self.replayed),
            schema_violations: g(&self.schema_violations),
            errors: self.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

/// What `voltyard simulate --json` prints at the end.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Summary {
    pub chargers: usize,
    pub elapsed_s: f64,
    pub connected: u64,
    pub accepted: u64,
    pub charging: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub disconnects: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub calls_answered: u64,
    pub call_errors_received: u64,
    pub call_errors_sent: u64,
    pub timeouts: u64,
    pub sessions_started: u64,
    pub sessions_completed: u64,
    pub auth_rejected: u64,
    pub energy_wh: u64,
    pub profiles_accepted: u64,
    pub profiles_rejected: u64,
    pub replayed: u64,
    pub schema_violations: u64,
    pub errors: Vec<String>,
}

impl Summary {
    /// One line for a progress bar or a log.
    pub fn line(&self) -> String {
        format!(
            "{}/{} accepted · {} charging · sessions {} started {} done · {:.1} kWh · msgs {}↑ {}↓ · errors {}",
            self.accepted,
            self.chargers,
            self.charging,
            self.sessions_started,
            self.sessions_completed,
            self.energy_wh as f64 / 1000.0,
            self.messages_sent,
            self.messages_received,
            self.call_errors_received + self.timeouts + self.connect_failures + self.schema_violations,
        )
    }
}
