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

#[cfg(riptide_model)]
mod rcu_model;
#[cfg(riptide_model)]
pub(crate) use rcu_model::Rcu;

mod helpers;
pub(crate) use helpers::{increment_below, stat, store_over_marks, CachePadded, MapHasher};

#[cfg(all(test, not(riptide_model)))]
mod tests;
