//! The `std` backend of the sync facade: what ships.

pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
pub(crate) use std::sync::Arc;

/// A read-copy-update cell: lock-free reads of an `Arc<T>`, replaced whole by writers
/// (`arc_swap::ArcSwap`). Under the model checkers, a mutex around the `Arc`: the same
/// semantics (each read sees one whole version), with every access visible to them.
pub(crate) struct Rcu<T>(arc_swap::ArcSwap<T>);
impl<T> Rcu<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(v))
    }
    /// The current version.
    pub(crate) fn load(&self) -> impl std::ops::Deref<Target = std::sync::Arc<T>> + '_ {
        self.0.load()
    }
    /// Replaces the current version with `f(current)`; `f` may run more than once (a
    /// racing writer makes it start again), so it must not have side effects.
    pub(crate) fn update(&self, f: impl FnMut(&std::sync::Arc<T>) -> std::sync::Arc<T>) {
        self.0.rcu(f);
    }
}

/// `std::sync::Mutex` whose `lock` ignores poisoning: no user code runs under our locks.
pub(crate) type Mutex<T> = super::PoisonFree<std::sync::Mutex<T>>;
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
super::poison_free!(std::sync::Mutex, std::sync::MutexGuard);

pub(crate) use super::plain::{AtomicWaker, HeldMut, UnsafeCell};
