//! Admission control for reconnect storms: BootNotifications are accepted at
//! a configured rate (a token bucket); the rest are answered Pending with an
//! interval long enough for the gate to admit everyone already waiting, plus
//! jitter so the retries do not arrive as a second storm. A charger with an
//! open transaction is admitted at once: its driver is waiting and its
//! session's messages are queued behind the boot.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What an operator sets (`[admission]` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Boots accepted per second once the burst is spent; 0 turns the gate off.
    pub boot_rate_per_s: f64,
    /// Boots accepted at once after a quiet period.
    pub boot_burst: u32,
    /// Shortest retry interval given to a deferred charger (s).
    pub retry_min_s: u32,
    /// Longest retry interval given to a deferred charger (s).
    pub retry_max_s: u32,
}

impl Default for AdmissionConfig {
    /// A storm of 25,000 chargers passes at once (the server boots ~7,000 a
    /// second, see docs/benchmarks.md); chargers that reconnect in a loop
    /// beyond that are held to 1,000 boots a second.
    fn default() -> Self {
        AdmissionConfig {
            boot_rate_per_s: 1_000.0,
            boot_burst: 25_000,
            retry_min_s: 10,
            retry_max_s: 300,
        }
    }
}

impl AdmissionConfig {
    /// Names the setting that is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !self.boot_rate_per_s.is_finite() || self.boot_rate_per_s < 0.0 {
            return Err((
                "admission.boot_rate_per_s",
                "must be a number >= 0 (0 turns the gate off)",
            ));
        }
        if self.boot_rate_per_s > 0.0 && self.boot_burst == 0 {
            return Err(("admission.boot_burst", "must be at least 1"));
        }
        if self.retry_min_s == 0 || self.retry_max_s < self.retry_min_s {
            return Err(("admission.retry_min_s", "must be at least 1 and at most retry_max_s"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// Answer Pending; the charger retries after this many seconds.
    Defer {
        retry_s: u32,
    },
}

/// The gate's state; lives as long as the server.
#[derive(Debug, Clone, Default)]
pub struct BootGate {
    tokens: f64,
    /// Deferred chargers not yet expected to have been admitted.
    waiting: f64,
    last: Option<DateTime<Utc>>,
    /// Boots deferred since start (shown by `status`).
    pub deferred_total: u64,
}

impl BootGate {
    /// `open_tx` is asked only when the bucket is empty. `jitter` is any
    /// per-boot number (a hash of the charger id and time): it spreads the
    /// retries over `retry_min_s` seconds.
    pub fn admit(
        &mut self,
        cfg: &AdmissionConfig,
        now: DateTime<Utc>,
        open_tx: impl FnOnce() -> bool,
        jitter: u64,
    ) -> Admission {
        if cfg.boot_rate_per_s <= 0.0 {
            return Admission::Accept;
        }
        let burst = f64::from(cfg.boot_burst);
        let refill = match self.last {
            None => burst,
            // A clock step backwards refills nothing.
            Some(last) => (now - last).num_milliseconds().max(0) as f64 / 1000.0 * cfg.boot_rate_per_s,
        };
        self.last = Some(now);
        self.tokens = (self.tokens + refill).min(burst);
        self.waiting = (self.waiting - refill).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admission::Accept;
        }
        if open_tx() {
            // Admitted regardless, but it still counts: the others wait for it.
            self.tokens = (self.tokens - 1.0).max(-burst);
            return Admission::Accept;
        }
        self.waiting += 1.0;
        self.deferred_total += 1;
        let queue_s = ((self.waiting - self.tokens) / cfg.boot_rate_per_s).ceil() as u64;
        let spread = u64::from(cfg.retry_min_s);
        let retry = u64::from(cfg.retry_min_s) + queue_s + jitter % (spread + 1);
        Admission::Defer {
            retry_s: retry.min(u64::from(cfg.retry_max_s)) as u32,
        }
    }
}

/// What the store needs to answer a BootNotification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootPolicy {
    /// Interval given to accepted chargers.
    pub heartbeat_interval: u32,
    pub admission: AdmissionConfig,
}

/// A cheap, well-spread number from a charger id and a time, for jitter.
pub fn jitter(charger: &str, now: DateTime<Utc>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in charger.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser over the id hash and the time.
    let mut z = h ^ (now.timestamp_nanos_opt().unwrap_or_default() as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_800_000_000_000 + ms).unwrap()
    }

    fn cfg(rate: f64, burst: u32) -> AdmissionConfig {
        AdmissionConfig {
            boot_rate_per_s: rate,
            boot_burst: burst,
            retry_min_s: 10,
            retry_max_s: 300,
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let c = cfg(100.0, 50);
        let mut g = BootGate::default();
        let accepted = (0..80)
            .filter(|_| g.admit(&c, at(0), || false, 0) == Admission::Accept)
            .count();
        assert_eq!(accepted, 50, "the burst, no more");
        // Half a second later: 50 more tokens at 100/s.
        let accepted = (0..80)
            .filter(|_| g.admit(&c, at(500), || false, 0) == Admission::Accept)
            .count();
        assert_eq!(accepted, 50);
        assert_eq!(g.deferred_total, 60);
    }

    #[test]
    fn open_transactions_go_first() {
        let c = cfg(10.0, 5);
        let mut g = BootGate::default();
        for _ in 0..5 {
            assert_eq!(g.admit(&c, at(0), || false, 0), Admission::Accept);
        }
        assert!(matches!(g.admit(&c, at(0), || false, 0), Admission::Defer { .. }));
        assert_eq!(
            g.admit(&c, at(0), || true, 0),
            Admission::Accept,
            "a charger with a session is never held"
        );
        // ... but it used a token: the next idle charger waits longer.
        assert!(matches!(g.admit(&c, at(150), || false, 0), Admission::Defer { .. }));
    }

    #[test]
    fn retry_grows_with_the_queue_and_is_capped() {
        let c = cfg(10.0, 1);
        let mut g = BootGate::default();
        assert_eq!(g.admit(&c, at(0), || false, 0), Admission::Accept);
        let Admission::Defer { retry_s: first } = g.admit(&c, at(0), || false, 0) else {
            panic!("deferred")
        };
        assert_eq!(first, 10 + 1, "retry_min + one tenth of a second rounded up");
        let mut last = first;
        for _ in 0..100 {
            let Admission::Defer { retry_s } = g.admit(&c, at(0), || false, 0) else {
                panic!("deferred")
            };
            last = retry_s;
        }
        assert_eq!(last, 10 + 11, "101 waiting at 10/s: 11 s");
        for _ in 0..5000 {
            g.admit(&c, at(0), || false, 0);
        }
        assert_eq!(g.admit(&c, at(0), || false, 7), Admission::Defer { retry_s: 300 });
    }

    #[test]
    fn jitter_spreads_retries_over_retry_min() {
        // A fast gate: the queue adds at most a second, the jitter up to 10 s.
        let c = cfg(1000.0, 1);
        let mut g = BootGate::default();
        g.admit(&c, at(0), || false, 0);
        let retries: std::collections::BTreeSet<u32> = (0..200)
            .map(
                |i| match g.admit(&c, at(0), || false, jitter(&format!("CP{i}"), at(0))) {
                    Admission::Defer { retry_s } => retry_s,
                    Admission::Accept => 0,
                },
            )
            .collect();
        assert!(retries.len() >= 8, "retries spread over 10 s: {retries:?}");
        assert!(retries.iter().all(|r| (10..=21).contains(r)), "{retries:?}");
    }

    #[test]
    fn rate_zero_turns_it_off() {
        let c = cfg(0.0, 0);
        let mut g = BootGate::default();
        assert!((0..10_000).all(|_| g.admit(&c, at(0), || false, 0) == Admission::Accept));
        assert_eq!(c.check(), Ok(()));
        assert!(cfg(-1.0, 1).check().is_err());
        assert!(cfg(5.0, 0).check().is_err());
    }
}
