//! The lock-free paths: claiming an idle object (one CAS) and releasing one nobody waits
//! for (a plain store, the light barrier and a read of the state word). The rules they
//! follow are handoff.rs's invariants; the sites below cite them.

use std::panic::Location;
use std::ptr;

use crate::defer::OnDrop;
use crate::slots::{Slot, BUSY, IDLE};
use crate::stats::DestroyReason;
use crate::sync::{hint, Ordering};

use super::{Owed, Shared, StateWord};

/// What [`Shared::try_claim`] returns for a closed pool. A zero-sized error keeps
/// `Result<Option<usize>, PoolClosed>` at two words, returned in registers (the async
/// fast path reloads it at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolClosed;

impl From<PoolClosed> for crate::PoolError {
    #[inline]
    fn from(_: PoolClosed) -> Self {
        crate::PoolError::Closed
    }
}

/// The fast release found the word non-zero after its store (someone is queued, or the
/// pool is closing, shrinking or yielding) or its checkout reclaimed: takes the object back
/// if it is still idle (Acquire: as in `claim_idle`); if it is not, whoever took it owns it
/// now (I1), and it is no longer ours to settle.
#[cold]
#[inline(never)]
fn take_back<T>(slot: &Slot<T>, announced: crate::sync::hazard::Announcement<'_>) -> Release {
    let rescued = slot
        .state
        .compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_ok();
    // After a successful take-back our object keeps the pool alive again.
    announced.exit();
    if rescued {
        Release::Slow
    } else {
        Release::Done
    }
}

/// What [`Shared::try_release_fast`] did.
pub(crate) enum Release {
    /// The object is back in the pool (or already someone else's): hands off.
    Done,
    /// The caller still owns the slot: call [`Shared::release_slow`].
    Slow,
}

impl<T: Send + 'static> Shared<T> {
    /// Claims an idle object if nobody is queued: `Ok(None)` when there is none to take.
    #[inline]
    pub(crate) fn try_claim(&self) -> Result<Option<usize>, PoolClosed> {
        let w = self.word.load();
        if StateWord::is_closed(w) {
            return Err(PoolClosed);
        }
        if StateWord::waiters(w) != 0 {
            // Callers are queued: taking an object now would jump ahead of them (I6). (The
            // divert bit concerns returns only.)
            return Ok(None);
        }
        let now = self.coarse_ms();
        while let Some(i) = self.claim_idle() {
            // Never hand out an object past its lifetime, even between maintenance passes.
            if self.slots.get(i).expires_ms.load(Ordering::Relaxed) <= now {
                self.destroy(i, DestroyReason::MaxLifetime).never();
                continue;
            }
            return Ok(Some(i));
        }
        Ok(None)
    }

    /// Whether checking out reused slot `i` needs a checkout step: recycle hooks, or
    /// validation because it sat idle at least `validation_interval`. Read before
    /// `checkout` overwrites the slot's stamp.
    #[inline]
    pub(crate) fn needs_recycle(&self, i: usize) -> bool {
        if self.checkout_hooks {
            return true;
        }
        let idle_since = self.slots.get(i).idle_since();
        self.coarse_ms().saturating_sub(idle_since) >= self.validation_ms
    }

    /// One CAS `IDLE → BUSY` on the first idle slot, scanning from this thread's hint.
    #[inline]
    fn claim_idle(&self) -> Option<usize> {
        let cap = self.slots.used();
        if cap == 0 {
            return None;
        }
        let start = hint::get();
        let mut i = if start < cap { start } else { 0 };
        for _ in 0..cap {
            let s = &self.slots.get(i).state;
            // The plain load keeps the scan from writing to cache lines it cannot claim.
            // Acquire on the CAS pairs with the Release that made the slot idle: the last
            // owner's writes to the object happen-before ours (I1).
            if s.load(Ordering::Relaxed) == IDLE
                && s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                if i != start {
                    hint::set(i);
                }
                return Some(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        None
    }

    /// Claims slot `i` if it is idle (CAS `IDLE → BUSY`); the returned guard releases it
    /// again if it is dropped armed (a panic in user code looking at it).
    pub(crate) fn claim_if_idle(&self, i: usize) -> Option<OnDrop<impl FnOnce() + '_>> {
        let s = &self.slots.get(i).state;
        // Acquire: as in `claim_idle`.
        let claimed = s.load(Ordering::Relaxed) == IDLE
            && s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        // The caller holds a reference of its own (a `Pool`), so never the last.
        claimed.then(|| OnDrop::new(move || self.release(i).never()))
    }

    /// Records a checkout in the slot (owner-only writes) and returns the slot.
    #[inline]
    pub(crate) fn checkout(&self, i: usize, loc: &'static Location<'static>) -> &Slot<T> {
        let s = self.slots.get(i);
        s.uses
            .store(s.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Stores only when the value changes: fewer stores for the next locked
        // instruction to wait for.
        let loc = ptr::from_ref(loc).cast_mut();
        if s.location.load(Ordering::Relaxed) != loc {
            s.location.store(loc, Ordering::Relaxed);
        }
        s.stamp_checkout(self.coarse_ms());
        if self.detects_deadlocks() {
            // Relaxed: read by reports, and by the deadlock check under the queue lock,
            // which the holder takes (and so publishes this store) before it can count.
            s.holder.store(crate::deadlock::caller(), Ordering::Relaxed);
        }
        s
    }

    /// Whether the object in owned slot `i` is past its lifetime.
    #[inline]
    pub(crate) fn expired(&self, i: usize) -> bool {
        self.slots.get(i).expires_ms.load(Ordering::Relaxed) <= self.coarse_ms()
    }

    /// Whether an object checked out `uses` times must be retired.
    #[inline]
    pub(crate) fn used_up(&self, uses: u64) -> bool {
        uses >= self.max_uses
    }

    /// Gives back owned slot `i`: the fast release, else the slow path.
    #[inline]
    pub(crate) fn release(&self, i: usize) -> Owed<'_> {
        self.release_slot(self.slots.get(i), i)
    }

    /// Gives back owned slot `i` (`slot` is `self.slots.get(i)`): the fast release, else
    /// the slow path. After it returns the caller must not touch `self` again, except to
    /// give up the returned `Owed` as that type says.
    #[inline]
    pub(crate) fn release_slot(&self, slot: &Slot<T>, i: usize) -> Owed<'_> {
        match self.try_release_fast(slot) {
            Release::Done => Owed::none(&self.refs),
            Release::Slow => self.release_slow(i),
        }
    }

    /// The fast release: `Done` when the object is back (idle, or already taken by
    /// someone else); then the caller must not touch `self` again (the pool may be freed
    /// at any moment). `Slow` when the caller still owns the slot and must call
    /// [`release_slow`](Shared::release_slow).
    ///
    /// With nobody queued and no mark on the slot this is a load, a plain `Release` store
    /// of `IDLE`, the light barrier and a load of the state word: no locked instruction.
    /// A marker that raced with the store (its mark was overwritten) changed the word and
    /// ran the heavy barrier before marking, so the word read here shows it; the release
    /// then takes its object back by CAS and goes the slow way (I3, I4). While the store
    /// and the word read are in flight this thread announces the pool in its hazard
    /// record, so a concurrent last owner does not free the memory under them (I7).
    #[inline]
    pub(crate) fn try_release_fast(&self, slot: &Slot<T>) -> Release {
        let s = &slot.state;
        // Relaxed: only the owner (us) and markers holding the lock write a BUSY slot; a
        // mark we miss here is caught by the word check below.
        if s.load(Ordering::Relaxed) != BUSY {
            return Release::Slow;
        }
        let Some(announced) = self.hazards.enter(ptr::from_ref(self) as usize) else {
            return self.release_first(slot);
        };
        // Release: our writes to the object happen-before the next claimer's Acquire CAS.
        crate::sync::store_over_marks(s, IDLE);
        self.word.light_barrier();
        // Relaxed: the barrier pair orders both loads against the markers' updates (the
        // word; a reclaim's record, on the line we just wrote).
        if self.word.load() == 0
            && slot.reported.load(Ordering::Relaxed) & crate::slots::RECLAIM_MARK == 0
        {
            announced.exit();
            return Release::Done;
        }
        take_back(slot, announced)
    }

    /// The fast release on a thread without a hazard record yet: makes one; while the
    /// thread's thread-locals are being destroyed (no record can be had), the release goes
    /// the slow way, under the lock, where it sees every queued waiter.
    #[cold]
    #[inline(never)]
    fn release_first(&self, slot: &Slot<T>) -> Release {
        if self.hazards.prepare() {
            return self.try_release_fast(slot);
        }
        Release::Slow
    }
}
