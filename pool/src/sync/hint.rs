//! Where a thread last found an idle object: the next acquire by that thread starts its
//! scan there, so a thread that keeps taking and returning one object touches one slot.

#[cfg(not(riptide_model))]
mod imp {
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
#[cfg(riptide_model)]
mod imp {
    pub(crate) fn get() -> usize {
        0
    }
    pub(crate) fn set(_: usize) {}
    pub(crate) fn thread_index() -> usize {
        0
    }
}

pub(crate) use imp::*;
