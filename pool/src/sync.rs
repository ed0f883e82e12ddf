//! The sync facade: every atomic, lock, cell and thread primitive of the core comes from
//! here: from `std` normally, from `loom` under `cfg(loom)`, from `shuttle` under
//! `cfg(shuttle)`, so the models in `loom-tests/` check the very code that ships.

#[cfg(not(model))]
mod imp {
    /// `atomic_waker::AtomicWaker` under the facade's calling convention.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    /// `std::sync::Mutex` whose `lock` ignores poisoning: no user code runs under our locks.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// An `UnsafeCell` with the `loom` calling convention.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            Self(core::cell::UnsafeCell::new(v))
        }
        /// Raw pointer to the contents; the caller upholds the aliasing rules.
        pub(crate) fn get(&self) -> *mut T {
            self.0.get()
        }
    }
}

#[cfg(loom)]
mod imp {
    /// `loom::future::AtomicWaker` under the facade's calling convention.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register_by_ref(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
    pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread;

    /// `loom::sync::Mutex` with the same poison-free `lock` as the std build.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    pub(crate) use loom::future::block_on;

    /// loom's `UnsafeCell`; `get` hands out the raw pointer (loom checks the access
    /// where it is taken: the slot protocol decides who may take it).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(loom::cell::UnsafeCell::new(v))
        }
        pub(crate) fn get(&self) -> *mut T {
            self.0.with_mut(|p| p)
        }
    }
}

#[cfg(all(shuttle, not(loom)))]
mod imp {
    //! shuttle: its scheduler controls atomics, locks and threads. Cells and the waker
    //! stay std (shuttle runs one model thread at a time and does not check cells).
    pub(crate) use shuttle::future::block_on;
    pub(crate) use shuttle::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use shuttle::thread;
    pub(crate) use std::sync::Arc;

    /// `shuttle::sync::Mutex` with the facade's poison-free `lock`.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = shuttle::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(shuttle::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A std `UnsafeCell` (shuttle does not model cells).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(core::cell::UnsafeCell::new(v))
        }
        pub(crate) fn get(&self) -> *mut T {
            self.0.get()
        }
    }

    /// `atomic_waker::AtomicWaker` under the facade's calling convention.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

pub(crate) use imp::*;

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

/// Atomics for pure statistics (the wait-time histogram's buckets): always `std`, also
/// under loom. They publish nothing and order nothing, so there is nothing for loom to
/// find in them, and their hundreds of loads per `stats()` would only exhaust its branch
/// budget. Everything that takes part in a protocol uses the modelled types above.
pub(crate) mod stat {
    pub(crate) use std::sync::atomic::AtomicU64;
}

/// Where a thread last found an idle object: the next acquire by that thread starts its
/// scan there, so a thread that keeps taking and returning one object touches one slot.
#[cfg(not(model))]
pub(crate) mod hint {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    thread_local!(static HINT: Cell<usize> = const { Cell::new(0) });
    thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
    static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

    /// A small per-thread number (0, 1, 2, … in order of first use): spreads statistics
    /// over stripes. Relaxed: only uniqueness-ish matters, nothing is published.
    #[inline]
    pub(crate) fn thread_index() -> usize {
        INDEX.with(|i| {
            let v = i.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
            i.set(v);
            v
        })
    }
    #[inline]
    pub(crate) fn get() -> usize {
        HINT.with(Cell::get)
    }
    #[inline]
    pub(crate) fn set(i: usize) {
        HINT.with(|h| h.set(i))
    }
}

/// Under a model checker the hint is constant: state that survives between iterations
/// would make executions non-deterministic.
#[cfg(model)]
pub(crate) mod hint {
    pub(crate) fn get() -> usize {
        0
    }
    pub(crate) fn set(_: usize) {}
    pub(crate) fn thread_index() -> usize {
        0
    }
}
