//! The pool's state word: what the lock-free paths read to learn whether they may act
//! alone. Written only under the queue lock; read with `Relaxed` loads by the fast paths,
//! whose correctness comes from the barrier pair (handoff.rs, invariant I4), not from the
//! load's ordering.

use crate::sync::{AtomicUsize, MutexGuard, Ordering};
use crate::waiters::WaitQueue;

use super::Shared;

/// The pool is closed (`close`, the last handle, a partition's retirement).
const POOL_CLOSED: usize = 1;
/// Returns must look at the slow path even with nobody queued: the pool is above
/// `max_size` (shrinking), or another partition waits for global capacity. Recomputed by
/// every `publish`. (A reclaimed checkout is caught by its slot's record instead, so a guard
/// that never returns does not slow every release.)
const DIVERT: usize = 2;
/// The pool is scarce: idle objects live on the idle stack, claims pop and returns push
/// (`idle.rs`). Set and cleared under the lock, kept by `publish`.
pub(super) const SCARCE: usize = 4;
/// `word >> WAITERS_SHIFT` is the number of queued waiters.
const WAITERS_SHIFT: u32 = 3;

/// `queued waiters << WAITERS_SHIFT | SCARCE | DIVERT | POOL_CLOSED`, and, on the same cache
/// line, which barrier pair the pool uses (`sync::barrier`, chosen at build).
pub(crate) struct StateWord {
    word: AtomicUsize,
    asymmetric: bool,
}

impl StateWord {
    pub(super) fn new() -> Self {
        StateWord {
            word: AtomicUsize::new(0),
            asymmetric: crate::sync::barrier::for_new_pool(),
        }
    }

    /// The word. Relaxed: a hint for fairness and close; a caller that happens-after
    /// `close()` sees it by coherence, and a racing one is ordered either way.
    #[inline]
    pub(super) fn load(&self) -> usize {
        self.word.load(Ordering::Relaxed)
    }

    #[inline]
    pub(super) fn is_closed(w: usize) -> bool {
        w & POOL_CLOSED != 0
    }

    #[inline]
    pub(super) fn waiters(w: usize) -> usize {
        w >> WAITERS_SHIFT
    }

    /// The light side of the barrier pair, run by the fast release (I4).
    #[inline]
    pub(super) fn light_barrier(&self) {
        crate::sync::barrier::light(self.asymmetric);
    }

    /// Whether the pool is in scarce mode (`idle.rs`).
    #[inline]
    pub(super) fn is_scarce(&self) -> bool {
        self.load() & SCARCE != 0
    }

    /// Enters scarce mode. Lock held.
    pub(super) fn set_scarce(&self) {
        let w = self.load();
        self.word.store(w | SCARCE, Ordering::Relaxed);
    }

    /// Leaves scarce mode. Lock held.
    pub(super) fn clear_scarce(&self) {
        let w = self.load();
        self.word.store(w & !SCARCE, Ordering::Relaxed);
    }

    /// Sets the queue length and the divert bit, keeping the closed and scarce bits. Lock
    /// held.
    fn set(&self, queued: usize, divert: bool) {
        let closed = self.load() & (POOL_CLOSED | SCARCE);
        let divert = if divert { DIVERT } else { 0 };
        self.word
            .store(queued << WAITERS_SHIFT | divert | closed, Ordering::Relaxed);
    }

    /// Counts one more waiter before the first one looks at the slots. Lock held.
    pub(super) fn add_waiter(&self) {
        let w = self.load();
        self.word.store(w + (1 << WAITERS_SHIFT), Ordering::Relaxed);
    }

    /// Marks the pool closed (nobody queued any more). Lock held.
    pub(super) fn close(&self) {
        self.word.store(POOL_CLOSED, Ordering::Relaxed);
    }

    fn set_divert(&self) {
        let w = self.load();
        self.word.store(w | DIVERT, Ordering::Relaxed);
    }
}

impl<T: Send + 'static> Shared<T> {
    /// Whether the pool is closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        StateWord::is_closed(self.word.load())
    }

    /// Callers queued right now (`pending_acquisitions`).
    #[inline]
    pub(crate) fn waiting(&self) -> usize {
        StateWord::waiters(self.word.load())
    }

    /// Whether returns must take the slow path with nobody queued (see `DIVERT`).
    fn must_divert(&self) -> bool {
        self.size.load(Ordering::Relaxed) > self.max_size.load(Ordering::Relaxed)
            || self.others_blocked()
    }

    /// Publishes the queue length and the divert bit. Call with the lock held.
    pub(super) fn publish(&self, q: &WaitQueue) {
        self.word.set(q.len(), self.must_divert());
    }

    /// The heavy side of the barrier pair (I4), before inspecting or marking slots that
    /// releases may be returning right now: makes the word (already updated under the
    /// lock) visible to every release that has not yet read it, or makes that release's
    /// `IDLE` store visible to us. Sets the divert bit first when `divert` (shrink,
    /// reclaim, a partition yielding), so a release that overwrote a mark we are about to
    /// set sees that it must look again.
    pub(super) fn announce(&self, _q: &MutexGuard<'_, WaitQueue>, divert: bool) {
        if divert {
            self.word.set_divert();
        }
        crate::sync::barrier::heavy(self.word.asymmetric);
    }

    /// The barrier a party runs after writing the word and before looking at the idle
    /// stack, when the pool is scarce (I4): every return then pushes with an RMW followed
    /// by [`after_rmw`](crate::sync::barrier::after_rmw), so a full fence is enough here.
    pub(super) fn announce_scarce(&self, _q: &MutexGuard<'_, WaitQueue>) {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
    }
}
