//! What the controller remembers of each metered node's unmanaged load, and the load it assumes
//! there while the meter is silent.

use super::model::{CircuitState, Settings};
use chrono::{DateTime, Utc};

/// The recent peak is the highest reading in this many buckets ...
const PEAK_BUCKETS: usize = 6;
/// ... of this many seconds each (the last 25–30 minutes).
const PEAK_BUCKET_S: i64 = 300;

/// One node's recent unmanaged-load readings.
#[derive(Debug, Clone, Default)]
pub(super) struct MeterMemo {
    /// When the last reading was seen.
    last_at: Option<DateTime<Utc>>,
    /// Per bucket of `PEAK_BUCKET_S` (indexed by bucket number modulo `PEAK_BUCKETS`): the bucket
    /// number and the highest reading per phase in it.
    peaks: [(i64, [f64; 3]); PEAK_BUCKETS],
}

impl MeterMemo {
    fn record(&mut self, now: DateTime<Utc>, reading: [f64; 3]) {
        let bucket = now.timestamp().div_euclid(PEAK_BUCKET_S);
        let slot = &mut self.peaks[bucket.rem_euclid(PEAK_BUCKETS as i64) as usize];
        if self.last_at.is_none() || slot.0 != bucket {
            *slot = (bucket, reading);
        } else {
            slot.1 = [0, 1, 2].map(|p| slot.1[p].max(reading[p]));
        }
        self.last_at = Some(now);
    }

    /// The highest reading per phase in the buckets up to the last reading's.
    fn recent_peak(&self, last_at: DateTime<Utc>) -> [f64; 3] {
        let newest = last_at.timestamp().div_euclid(PEAK_BUCKET_S);
        let mut peak = [f64::NEG_INFINITY; 3];
        for &(bucket, reading) in &self.peaks {
            if bucket <= newest && newest - bucket < PEAK_BUCKETS as i64 {
                peak = [0, 1, 2].map(|p| peak[p].max(reading[p]));
            }
        }
        peak
    }
}

/// The unmanaged load per phase the optimiser counts at node `c`, remembering its readings in
/// `memo`.
///
/// While the meter speaks, its reading. While it is silent: the whole `max_current` less the
/// operator's `safe_current` when one is configured; without one, the whole `max_current`, which
/// is safe whatever the unmanaged load does, but for `silent_hold_s` after its last reading no
/// more than the recent peak (export counts as 0: it can stop at once) plus
/// `silent_margin_fraction` of `max_current`. That estimate assumes the
/// unmanaged load does not rise further above its recent peak during the hold; every car under
/// the node stopping on a short meter gap is what it avoids.
pub(super) fn unmanaged_as_used(c: &CircuitState, memo: &mut MeterMemo, now: DateTime<Utc>, s: &Settings) -> [f64; 3] {
    match (c.unmanaged_current, c.metered) {
        (Some(u), _) => {
            if c.metered {
                memo.record(now, u);
            }
            u
        }
        // An operator's own safe capacity is the fallback as configured.
        (None, true) if c.safe_current.is_some() => {
            let safe = c.safe_current.unwrap_or([0.0; 3]);
            [0, 1, 2].map(|p| (c.max_current[p] - safe[p]).max(0.0))
        }
        (None, true) => {
            let worst = c.max_current;
            match memo.last_at {
                Some(last) if (now - last).num_milliseconds() as f64 <= s.silent_hold_s * 1000.0 => {
                    let peak = memo.recent_peak(last);
                    [0, 1, 2].map(|p| worst[p].min(peak[p].max(0.0) + s.silent_margin_fraction * c.max_current[p]))
                }
                _ => worst,
            }
        }
        (None, false) => [0.0; 3],
    }
}
