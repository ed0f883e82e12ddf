//! A lock-free log-bucket histogram of durations (wait times).
//!
//! Buckets: 4 per power of two of nanoseconds (≤ 19 % relative error), 64 powers. A
//! record is one `Relaxed` `fetch_add`: the counts are statistics, no other memory is
//! published through them, so no ordering is needed.

use std::time::Duration;

use crate::sync::stat::AtomicU64;
use std::sync::atomic::Ordering;

const SUB: usize = 4;
const BUCKETS: usize = 64 * SUB;

pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let pow = 63 - ns.leading_zeros() as usize; // ns >= 4 so pow >= 2
    let sub = ((ns >> (pow - 2)) & 0b11) as usize;
    pow * SUB + sub
}

/// The upper bound (ns) of a bucket: what a percentile in it is reported as.
fn bucket_upper(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let pow = b / SUB;
    let sub = (b % SUB) as u64;
    let base = 1u64 << pow;
    let step = base / SUB as u64;
    base.saturating_add(step.saturating_mul(sub + 1))
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Values recorded so far.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Percentiles `qs` (0..=1) over the recorded values plus `zeros` values of zero.
    pub(crate) fn percentiles<const N: usize>(&self, zeros: u64, qs: [f64; N]) -> [Duration; N] {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total = zeros + counts.iter().sum::<u64>();
        let mut out = [Duration::ZERO; N];
        if total == 0 {
            return out;
        }
        for (o, q) in out.iter_mut().zip(qs) {
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            if rank <= zeros {
                continue;
            }
            let mut seen = zeros;
            for (b, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    *o = Duration::from_nanos(bucket_upper(b));
                    break;
                }
            }
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_bound_their_values() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            1_000,
            123_456,
            1 << 40,
            u64::MAX / 2,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last, "bucket order at {ns}");
            last = b;
            assert!(bucket_upper(b) >= ns, "upper bound of {ns}");
            if ns > 8 {
                assert!(
                    bucket_upper(b) as f64 <= ns as f64 * 1.26,
                    "precision at {ns}"
                );
            }
        }
    }

    #[test]
    fn percentiles_count_zero_waits() {
        let h = Histogram::new();
        for _ in 0..10 {
            h.record(Duration::from_millis(10));
        }
        // 90 checkouts served at once, 10 waited 10 ms.
        let [p50, p95] = h.percentiles(90, [0.5, 0.95]);
        assert_eq!(p50, Duration::ZERO);
        assert!(p95 >= Duration::from_millis(10) && p95 < Duration::from_millis(13));
    }
}
