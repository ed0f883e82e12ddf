//! The create outcomes of the last minute, for the health's error rate: a pool whose factory
//! failed once at start-up and has worked since is healthy again a minute later, and a
//! factory failing now shows at once, however many creates went well before.
//!
//! Two buckets of 30 s, each one atomic word (`epoch | attempts | errors`); a record adds to
//! the bucket of the current 30 s, starting it afresh when it holds an older epoch. The
//! rate is read over the current bucket and the one before it (30 to 60 s of history).

use crate::sync::{AtomicU64, Ordering};

/// The length of a bucket.
const BUCKET_MS: u64 = 30_000;
/// Bits of each count in a word. A bucket full at about a million attempts halves both
/// counts and goes on: the rate stays right, the counts are then a sample.
const COUNT_BITS: u32 = 20;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
/// Bits of the bucket's epoch (30 s units: wraps after about 16 years).
const EPOCH_MASK: u64 = (1 << (64 - 2 * COUNT_BITS)) - 1;

/// See the module docs.
#[derive(Default)]
pub(crate) struct RecentOutcomes {
    buckets: [AtomicU64; 2],
}

fn epoch_of(now_ms: u64) -> u64 {
    (now_ms / BUCKET_MS) & EPOCH_MASK
}

fn pack(epoch: u64, attempts: u64, errors: u64) -> u64 {
    (epoch << (2 * COUNT_BITS)) | (attempts << COUNT_BITS) | errors
}

fn unpack(w: u64) -> (u64, u64, u64) {
    (
        w >> (2 * COUNT_BITS),
        (w >> COUNT_BITS) & COUNT_MAX,
        w & COUNT_MAX,
    )
}

impl RecentOutcomes {
    /// Counts a create attempt at `now_ms` (clock ms), `failed` or not.
    pub(crate) fn record(&self, now_ms: u64, failed: bool) {
        let epoch = epoch_of(now_ms);
        let bucket = &self.buckets[(now_ms / BUCKET_MS % 2) as usize];
        // Relaxed: statistics; the CAS keeps each bucket's counts whole.
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (e, a, f) = unpack(cur);
            let (a, f) = match (e == epoch, a == COUNT_MAX) {
                (false, _) => (0, 0),
                (true, false) => (a, f),
                // Full: halve both (errors never exceed attempts, so both stay in range).
                (true, true) => (a / 2, f / 2),
            };
            let next = pack(epoch, a + 1, f + u64::from(failed));
            match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// `(attempts, errors)` over the current bucket and the one before it, at `now_ms`.
    pub(crate) fn recent(&self, now_ms: u64) -> (u64, u64) {
        let now = epoch_of(now_ms);
        let before = now.wrapping_sub(1) & EPOCH_MASK;
        self.buckets.iter().fold((0, 0), |(a, f), b| {
            let (e, ba, bf) = unpack(b.load(Ordering::Relaxed));
            if e == now || e == before {
                (a + ba, f + bf)
            } else {
                (a, f)
            }
        })
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::{pack, RecentOutcomes, BUCKET_MS};

    #[test]
    fn outcomes_count_for_a_minute_at_most() {
        let r = RecentOutcomes::default();
        let t0 = 5 * BUCKET_MS + 10;
        assert_eq!(r.recent(t0), (0, 0));
        r.record(t0, true);
        r.record(t0 + 1, false);
        assert_eq!(r.recent(t0 + 2), (2, 1));
        // The next bucket: both still count.
        r.record(t0 + BUCKET_MS, false);
        assert_eq!(r.recent(t0 + BUCKET_MS), (3, 1));
        // Two buckets on: only the last one's.
        assert_eq!(r.recent(t0 + 2 * BUCKET_MS), (1, 0));
        // Long after: nothing.
        assert_eq!(r.recent(t0 + 10 * BUCKET_MS), (0, 0));
        // A bucket reused after a gap starts afresh.
        r.record(t0 + 10 * BUCKET_MS, true);
        assert_eq!(r.recent(t0 + 10 * BUCKET_MS), (1, 1));
    }

    #[test]
    fn a_full_bucket_halves_and_keeps_the_rate() {
        let r = RecentOutcomes::default();
        // A bucket one short of full, a quarter of its attempts failed.
        r.buckets[0].store(
            pack(0, super::COUNT_MAX - 1, super::COUNT_MAX / 4),
            super::Ordering::Relaxed,
        );
        r.record(0, false);
        assert_eq!(r.recent(0), (super::COUNT_MAX, super::COUNT_MAX / 4));
        // Full: the next record halves both first.
        r.record(0, true);
        let (a, f) = r.recent(0);
        assert_eq!((a, f), (super::COUNT_MAX / 2 + 1, super::COUNT_MAX / 8 + 1));
        let rate = f as f64 / a as f64;
        assert!((rate - 0.25).abs() < 0.001, "{rate}");
        // Errors alone can never outrun attempts.
        for _ in 0..1000 {
            r.record(0, true);
        }
        let (a, f) = r.recent(0);
        assert!(f <= a);
    }
}
