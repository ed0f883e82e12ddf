//! The sync facade: the only door through which the core gets its atomics, locks, cells,
//! `Arc`, threads and wakers — from `std` normally (`native.rs`), from loom under
//! `cfg(riptide_loom)` (`loom.rs`), from shuttle under `cfg(riptide_shuttle)`
//! (`shuttle.rs`) — so the models in `loom-tests/` check the very code that ships. Beside
//! the backends live the two algorithms the fast release rests on: the asymmetric barrier
//! (`barrier.rs`) and the hazard records (`hazard.rs`).

/// A backend's mutex whose `lock` ignores poisoning: no user code runs under the core's
/// locks, so a poisoned lock only means a panic elsewhere in the thread that held it.
#[derive(Debug, Default)]
pub(crate) struct PoisonFree<M>(M);

/// Gives `PoisonFree<$mutex<T>>` the facade's `new` and `lock`.
macro_rules! poison_free {
    ($($mutex:ident)::+, $($guard:ident)::+) => {
        impl<T> super::PoisonFree<$($mutex)::+<T>> {
            pub(crate) fn new(v: T) -> Self {
                Self::wrap($($mutex)::+::new(v))
            }
            pub(crate) fn lock(&self) -> $($guard)::+<'_, T> {
                self.inner().lock().unwrap_or_else(|e| e.into_inner())
            }
        }
    };
}
use poison_free;

impl<M> PoisonFree<M> {
    fn wrap(m: M) -> Self {
        Self(m)
    }
    fn inner(&self) -> &M {
        &self.0
    }
}

#[cfg(not(riptide_loom))]
mod plain;

#[cfg(not(riptide_model))]
#[path = "native.rs"]
mod backend;
#[cfg(riptide_loom)]
#[path = "loom.rs"]
mod backend;
#[cfg(all(riptide_shuttle, not(riptide_loom)))]
#[path = "shuttle.rs"]
mod backend;

pub(crate) mod barrier;
pub(crate) mod hazard;
pub(crate) mod hint;

pub(crate) use backend::*;

/// The model checkers' [`Rcu`]: a mutex around the current version.
#[cfg(riptide_model)]
pub(crate) struct Rcu<T>(Mutex<std::sync::Arc<T>>);

#[cfg(riptide_model)]
impl<T> Rcu<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(Mutex::new(std::sync::Arc::new(v)))
    }
    pub(crate) fn load(&self) -> std::sync::Arc<std::sync::Arc<T>> {
        std::sync::Arc::new(self.0.lock().clone())
    }
    pub(crate) fn update(&self, mut f: impl FnMut(&std::sync::Arc<T>) -> std::sync::Arc<T>) {
        let mut g = self.0.lock();
        *g = f(&g);
    }
}

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

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::hazard;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// The records ever made (the list only grows).
    fn records() -> usize {
        let mut n = 0;
        hazard::for_each_record(|_| n += 1);
        n
    }

    #[test]
    fn wait_clear_waits_for_an_announcement_to_end() {
        let pool = 0x5151_0000usize;
        let entered = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (e, f) = (entered.clone(), finished.clone());
        let t = std::thread::spawn(move || {
            let r = hazard::record().unwrap();
            r.enter(pool);
            e.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            f.store(true, Ordering::SeqCst);
            r.exit();
        });
        while !entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        hazard::wait_clear(pool);
        assert!(
            finished.load(Ordering::SeqCst),
            "returned while the pool was announced"
        );
        t.join().unwrap();
        // Another address is never waited for.
        hazard::wait_clear(pool + 64);
    }

    #[test]
    fn records_of_finished_threads_are_reused() {
        for _ in 0..4 {
            std::thread::spawn(|| hazard::record().map(|_| ()))
                .join()
                .unwrap();
        }
        let before = records();
        for _ in 0..32 {
            std::thread::spawn(|| hazard::record().map(|_| ()))
                .join()
                .unwrap();
        }
        // Tests run in parallel threads that may each hold one, but 32 sequential
        // short-lived threads must not add 32 records.
        assert!(records() < before + 8, "{before} -> {}", records());
    }

    #[test]
    fn the_release_barrier_choice_applies_to_pools_built_after_it() {
        use super::barrier::{release_barrier, set_release_barrier, ReleaseBarrier};
        let before = release_barrier();
        set_release_barrier(ReleaseBarrier::Fence);
        assert_eq!(release_barrier(), ReleaseBarrier::Fence);
        assert!(!super::barrier::for_new_pool());
        set_release_barrier(before);
        assert_eq!(release_barrier(), before);
    }

    #[test]
    fn the_fallback_switch_is_honoured() {
        let asym = super::barrier::for_new_pool();
        if std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_some() {
            // CI's second core run sets it: that run must really use the fences.
            assert!(!asym);
            assert_eq!(
                super::barrier::release_barrier(),
                super::barrier::ReleaseBarrier::Fence
            );
        }
        super::barrier::light(asym);
        super::barrier::heavy(asym);
    }
}
