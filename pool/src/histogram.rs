//! A lock-free log-bucket histogram of durations (wait times).
//!
//! Buckets: 4 per power of two of nanoseconds (≤ 19 % relative error) up to 2^40 ns
//! (≈ 18 min; longer values land in the last bucket). A record is one `Relaxed`
//! `fetch_add`: the counts are statistics, nothing is published through them, so no
//! ordering is needed. The buckets are striped: each thread records into one of
//! `STRIPES` copies (by a per-thread index), so two cores waiting at once do not bounce
//! one cache line; reads sum the stripes.

use std::time::Duration;

use std::ptr;

use crate::sync::stat::{AtomicPtr, AtomicU64};
use std::sync::atomic::Ordering;

const SUB: usize = 4;
const POWERS: usize = 40;
const BUCKETS: usize = POWERS * SUB;
const STRIPES: usize = 4;

pub(crate) struct Histogram {
    /// `STRIPES` stripes of `BUCKETS` counters, each allocated by the first record into
    /// it: a pool that never waits (or a partition nobody uses) keeps three histograms
    /// of null pointers, not three of 5 KiB.
    stripes: [AtomicPtr<Stripe>; STRIPES],
}

type Stripe = [AtomicU64; BUCKETS];

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let pow = 63 - ns.leading_zeros() as usize; // ns >= 4 so pow >= 2
    if pow >= POWERS {
        return BUCKETS - 1;
    }
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
            stripes: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let stripe = self.stripe(crate::sync::hint::thread_index() % STRIPES);
        stripe[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Stripe `k`, allocated now if no record has used it yet.
    fn stripe(&self, k: usize) -> &Stripe {
        // Acquire: pairs with the installing CAS's Release, so the zeroed counters it
        // wrote are seen.
        let p = self.stripes[k].load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null pointer was installed by the CAS below from a `Box`, and
            // is freed only by `drop`, which has `&mut self`.
            return unsafe { &*p };
        }
        let new = Box::into_raw(Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        // AcqRel: Release publishes our zeroed stripe; Acquire (also on failure) sees the
        // winner's.
        match self.stripes[k].compare_exchange(
            ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: installed, so freed only by `drop` (as above).
            Ok(_) => unsafe { &*new },
            Err(theirs) => {
                // SAFETY: `new` came from `Box::into_raw` above and was never shared.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: installed by another record (as above).
                unsafe { &*theirs }
            }
        }
    }

    /// Bucket counts summed over the stripes.
    fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; BUCKETS];
        for p in &self.stripes {
            // Acquire: as in `stripe`.
            let p = p.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: as in `stripe`.
            let stripe = unsafe { &*p };
            for (sum, b) in c.iter_mut().zip(stripe) {
                *sum += b.load(Ordering::Relaxed);
            }
        }
        c
    }

    /// Values recorded so far.
    pub(crate) fn count(&self) -> u64 {
        self.counts().iter().sum()
    }

    /// Percentiles `qs` (0..=1) over the recorded values plus `zeros` values of zero.
    pub(crate) fn percentiles<const N: usize>(&self, zeros: u64, qs: [f64; N]) -> [Duration; N] {
        let counts = self.counts();
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

impl Drop for Histogram {
    fn drop(&mut self) {
        for p in &mut self.stripes {
            let p = *p.get_mut();
            if !p.is_null() {
                // SAFETY: installed from a `Box` by `stripe`, and nobody else can hold a
                // reference into it now (`&mut self`).
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_bound_their_values() {
        let mut last = 0;
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 100, 1_000, 123_456, (1 << 40) - 1] {
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
    fn stripes_are_allocated_by_their_first_record_and_all_counted() {
        let h = Histogram::new();
        assert!(h
            .stripes
            .iter()
            .all(|p| p.load(Ordering::Relaxed).is_null()));
        assert_eq!(h.count(), 0);
        // Threads race to install the stripes they record into; no record is lost.
        let threads = if cfg!(miri) { 3 } else { 8 };
        let per = if cfg!(miri) { 20 } else { 1_000 };
        std::thread::scope(|s| {
            for t in 0..threads {
                let h = &h;
                s.spawn(move || {
                    for i in 0..per {
                        h.record(Duration::from_nanos(t * 1_000 + i));
                    }
                });
            }
        });
        assert_eq!(h.count(), threads * per);
    }

    #[test]
    fn huge_values_land_in_the_last_bucket() {
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(1 << 45), BUCKETS - 1);
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
