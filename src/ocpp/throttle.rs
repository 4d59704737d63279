//! Per-connection message rate limit: a token bucket. A charger over its
//! rate is not answered an error (it did nothing wrong by OCPP); its next
//! frame is simply read later, so TCP pushes back on it and the server's
//! work stays bounded whatever one charger sends.

use std::time::Duration;
use tokio::time::Instant;

pub struct Throttle {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Whether the last frame had to wait (one log line per episode).
    pub throttled: bool,
}

impl Throttle {
    /// `None` when the limit is off (`rate` 0).
    pub fn new(rate: f64, burst: u32, now: Instant) -> Option<Throttle> {
        (rate > 0.0).then(|| Throttle {
            rate,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
            throttled: false,
        })
    }

    /// Count one frame received at `now`; how long to wait before reading
    /// the next one.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            self.throttled = false;
            return None;
        }
        let wait = -self.tokens / self.rate;
        // The wait pays the debt: the bucket is empty, not negative, after it.
        self.tokens = 0.0;
        self.last = now + Duration::from_secs_f64(wait);
        Some(Duration::from_secs_f64(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10.0, 5, t0).unwrap();
        for _ in 0..5 {
            assert_eq!(t.take(t0), None);
        }
        // The sixth frame at once waits a tenth of a second.
        let w = t.take(t0).unwrap();
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        // A frame right after that wait: another tenth.
        let w = t.take(t0 + w).unwrap();
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        // A quiet second refills ten.
        let later = t0 + Duration::from_secs(2);
        for _ in 0..5 {
            assert_eq!(t.take(later), None);
        }
        assert!(t.take(later).is_some());
    }

    #[test]
    fn sustained_rate_is_held() {
        // 1,000 frames sent as fast as possible at 100/s with a burst of 50
        // take (1000 - 50) / 100 = 9.5 s of waiting.
        let t0 = Instant::now();
        let mut t = Throttle::new(100.0, 50, t0).unwrap();
        let mut now = t0;
        for _ in 0..1000 {
            if let Some(w) = t.take(now) {
                now += w;
            }
        }
        let took = now.duration_since(t0).as_secs_f64();
        assert!((took - 9.5).abs() < 0.02, "{took}");
    }

    #[test]
    fn rate_zero_is_off() {
        assert!(Throttle::new(0.0, 10, Instant::now()).is_none());
    }
}
