//! Small pieces the core's protocol shares beside the backends' types: a bounded
//! increment, the fast release's store, cache padding, the statistics atomics, and the
//! hash maps' hasher.

use super::{AtomicUsize, Ordering};

/// Increments `a` by CAS if it is below `max`; false (unchanged) otherwise. Relaxed: for
/// counters whose bound is kept by the CAS's atomicity alone (capacity), nothing else is
/// published through them.
pub(crate) fn increment_below(a: &AtomicUsize, max: usize) -> bool {
    let mut cur = a.load(Ordering::Relaxed);
    while cur < max {
        match a.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
    false
}

/// The fast release's store of `v` into a slot state that markers may CAS concurrently: a
/// plain `Release` store. Under loom it is a `swap` (same ordering, same overwrite): loom
/// 0.7 lets a thread's failed CAS read a value that precedes that thread's own earlier
/// store when another thread's CAS raced with the store, which C++ coherence forbids
/// (`loom-tests/tests/loom_quirk.rs` shows it). As an RMW the store is totally ordered
/// with the markers' CASes in loom too; the protocol is unchanged (the mark is still
/// overwritten, and the word check still has to catch it).
#[inline]
pub(crate) fn store_over_marks(a: &AtomicUsize, v: usize) {
    #[cfg(not(riptide_loom))]
    a.store(v, Ordering::Release);
    #[cfg(riptide_loom)]
    let _ = a.swap(v, Ordering::Release);
}

/// Aligns a hot field to its own 128-byte block (two cache lines: adjacent-line
/// prefetching pairs lines on x86), so writers of one field do not slow readers of another.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Atomics for pure statistics (the histograms' buckets, and the pointers to their
/// lazily allocated stripes): always `std`, also under loom. The counters publish nothing
/// and order nothing, and a stripe's pointer publishes only its own zeroed counters (a
/// one-CAS install that `histogram.rs`'s threaded test and Miri cover); loom would find
/// nothing in them, and their hundreds of loads per `stats()` would only exhaust its
/// branch budget. Everything that takes part in a protocol uses the modelled types above.
pub(crate) mod stat {
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64};
}

/// The hasher of the core's hash maps (a partitioned pool's). Under the model checkers it
/// is fixed, so every execution iterates them in the same order (loom and shuttle replay
/// executions, and an order that changes between them breaks the replay).
#[cfg(not(riptide_model))]
pub(crate) type MapHasher = std::collections::hash_map::RandomState;
#[cfg(riptide_model)]
pub(crate) type MapHasher =
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;
