//! The lock-free paths: claiming an idle object (one CAS: on its slot in a calm pool, on
//! the idle stack's head in a scarce one) and releasing one nobody waits for (in a calm
//! pool a plain store, the light barrier and a read of the state word; in a scarce one the
//! same, then a take-back, a push and a read of the word). The rules they follow are handoff.rs's invariants; the
//! sites below cite them.

use std::panic::Location;
use std::ptr;

use crate::defer::OnDrop;
use crate::shared::slots::{Slot, BUSY, IDLE, RECLAIMED, RECLAIM_MARK};
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

/// The fast release found the word non-zero after its store (the pool is scarce, someone
/// is queued, or the pool is closing, shrinking or yielding) or a reclaim record on its
/// slot (`record`; `uses`: its checkout's): takes the object back if it is still idle
/// (`take_idle_back`); if it is not, whoever took it owns it now (I1), and it is
/// no longer ours to settle. An object taken back from a scarce pool that nobody waits on
/// is pushed onto the idle stack.
#[cold]
#[inline(never)]
fn take_back<T: Send + 'static>(
    shared: &Shared<T>,
    slot: &Slot<T>,
    i: usize,
    announced: crate::sync::hazard::Announcement<'_>,
    record: u64,
    uses: u64,
) -> Release {
    if record & RECLAIM_MARK != 0 {
        return take_back_reclaimed(shared, slot, i, announced, uses);
    }
    let rescued = take_idle_back(slot);
    // After a successful take-back our object keeps the pool alive again.
    announced.exit();
    if !rescued {
        return Release::Done;
    }
    // A scarce pool with nobody queued: the object goes onto the idle stack, no lock.
    if shared.word.load() == super::word::SCARCE {
        return shared.release_push(i);
    }
    Release::Slow(i)
}

/// Claims our returned object back if it is still `IDLE` (Acquire: as in `claim_idle`);
/// `false` when another caller (a claim, an eviction, a close) took it first (I1).
#[inline]
fn take_idle_back<T>(slot: &Slot<T>) -> bool {
    slot.state
        .compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// `take_back` when a reclaim has marked the slot: the mark may be our checkout's, whose
/// capacity `reclaim_leaked` gave back while we returned it (our `IDLE` store overwrote
/// the state's mark). Under the queue lock the record is final (a reclaim writes it, and
/// restores it if its CAS fails, under that lock), and says whether it was ours:
/// - taken back: the slow release destroys it as reclaimed (never the idle stack: its
///   capacity is gone), even if another caller claimed and returned it in between;
/// - taken by someone else meanwhile (a claim, an eviction): the object lives on, so the
///   reclaim is undone (`undo_reclaim`), its capacity counted again.
#[cold]
#[inline(never)]
fn take_back_reclaimed<T: Send + 'static>(
    shared: &Shared<T>,
    slot: &Slot<T>,
    i: usize,
    announced: crate::sync::hazard::Announcement<'_>,
    uses: u64,
) -> Release {
    let q = shared.queue.lock();
    // Relaxed: reclaims write the record under the lock we hold.
    let ours = slot.reported.load(Ordering::Relaxed) == uses | RECLAIM_MARK;
    let rescued = take_idle_back(slot);
    if ours && rescued {
        // The mark our store overwrote goes back (we own the slot, under the lock), so the
        // slow release destroys the object as reclaimed: the record alone may no longer
        // match the slot's use count, if another caller's whole checkout came between.
        slot.state.store(BUSY | RECLAIMED, Ordering::Relaxed);
    } else if ours {
        shared.undo_reclaim(&q, slot, uses);
    }
    drop(q);
    // The lock is released and the pool's state no longer touched: a successful
    // take-back's object keeps the pool alive from here.
    announced.exit();
    if rescued {
        Release::Slow(i)
    } else {
        Release::Done
    }
}

/// How many slots a calm pool's claim looks at from its hint before `claim_short` takes
/// over (a leftover on the idle stack, a pass over every slot while the pool can still
/// grow, else the switch to scarce mode, `idle.rs`, where a claim is O(1)).
const SCAN: usize = 32;

/// What [`Shared::try_release_fast`] did.
pub(crate) enum Release {
    /// The object is back in the pool (or already someone else's): hands off.
    Done,
    /// The caller owns this slot (the one it gave back, or, from a scarce release that
    /// saw callers queue, another idle one): call [`Shared::release_slow`] on it.
    Slow(usize),
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
        if w & super::word::SCARCE == 0 {
            while let Some(i) = self.claim_idle(SCAN) {
                // Never hand out an object past its lifetime, even between maintenance
                // passes.
                if self.slots.get(i).expired_at(now) {
                    self.destroy_aside(i, DestroyReason::MaxLifetime);
                    continue;
                }
                return Ok(Some(i));
            }
        }
        Ok(self.claim_rest(w, now))
    }

    /// The rest of `try_claim`: a scarce pool's pops, or a calm one's `claim_short`; each
    /// object past its lifetime is destroyed and the next one tried.
    #[cold]
    #[inline(never)]
    fn claim_rest(&self, w: usize, now: u64) -> Option<usize> {
        loop {
            let claimed = if w & super::word::SCARCE != 0 {
                self.idle.pop(&self.slots)
            } else {
                self.claim_short()
            };
            let Some(i) = claimed else {
                self.note_scarce();
                return None;
            };
            if self.slots.get(i).expired_at(now) {
                self.destroy_aside(i, DestroyReason::MaxLifetime);
                continue;
            }
            return Some(i);
        }
    }

    /// A calm pool's claim found nothing near its hint: a stacked object left from the
    /// last scarce spell; else, while the pool has room to create, a pass over every slot
    /// (a caller that finds nothing creates, which costs far more, so a pool being filled
    /// stays calm); else the switch into scarce mode (`idle.rs`) and a pop.
    #[cold]
    #[inline(never)]
    fn claim_short(&self) -> Option<usize> {
        if let Some(i) = self.idle.pop(&self.slots) {
            return Some(i);
        }
        if self.size.load(Ordering::Relaxed) < self.max_size() {
            return self.claim_idle(usize::MAX);
        }
        let q = self.queue.lock();
        if self.is_closed() {
            return None;
        }
        self.become_scarce(&q);
        drop(q);
        self.idle.pop(&self.slots)
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

    /// One CAS `IDLE → BUSY` on the first idle slot, scanning at most `limit` slots from
    /// this thread's hint.
    #[inline]
    fn claim_idle(&self, limit: usize) -> Option<usize> {
        let cap = self.slots.used();
        if cap == 0 {
            return None;
        }
        let start = hint::get();
        let mut i = if start < cap { start } else { 0 };
        for _ in 0..cap.min(limit) {
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

    /// Records a checkout in the slot (owner-only writes): who took it and where, its use
    /// counted and its start stamped (last: the stamp's Release publishes the rest to the
    /// leak scan). Returns the slot.
    #[inline]
    pub(crate) fn checkout(&self, i: usize, loc: &'static Location<'static>) -> &Slot<T> {
        let s = self.record_claim(i, loc);
        s.count_use();
        s.stamp_checkout(self.coarse_ms());
        s
    }

    /// Records who claimed slot `i` and where, and stamps the claim (`STAMP_CLAIMED`): for
    /// a future settled at its creation. Its checkout begins (counted and stamped, `Pooled::hand_over`) when it
    /// hands the object over at its first poll; until then the claim is no checkout: not
    /// in `acquired` or against `max_uses`, and invisible to leak reports, `reclaim_leaked`
    /// and the usage histogram.
    #[inline]
    pub(crate) fn claim_for(&self, i: usize, loc: &'static Location<'static>) -> &Slot<T> {
        let s = self.record_claim(i, loc);
        s.stamp_claimed(self.coarse_ms());
        s
    }

    /// Who took slot `i` and where (owner-only writes), before its stamp.
    #[inline]
    fn record_claim(&self, i: usize, loc: &'static Location<'static>) -> &Slot<T> {
        let s = self.slots.get(i);
        // Stores only when the value changes: fewer stores for the next locked
        // instruction to wait for.
        let loc = ptr::from_ref(loc).cast_mut();
        if s.location.load(Ordering::Relaxed) != loc {
            s.location.store(loc, Ordering::Relaxed);
        }
        if self.detects_deadlocks() {
            // Relaxed: read by reports, and by the deadlock check under the queue lock,
            // which the holder takes (and so publishes this store) before it can count.
            s.holder.store(crate::rt::caller(), Ordering::Relaxed);
        }
        s
    }

    /// Whether the object in owned slot `i` is past its lifetime.
    #[inline]
    pub(crate) fn expired(&self, i: usize) -> bool {
        self.slots.get(i).expired_at(self.coarse_ms())
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

    /// [`release`](Self::release) for a caller that must not wait on the object's `Drop`
    /// (an acquisition given up after it was handed an object): an object the slow path
    /// dooms (a shrink, `close`, a reclaim, a blocked partition) is dropped aside.
    pub(crate) fn release_aside(&self, i: usize) -> Owed<'_> {
        let slot = self.slots.get(i);
        // Relaxed: the owner's own count.
        let uses = slot.uses.load(Ordering::Relaxed);
        match self.try_release_fast(slot, i, uses) {
            Release::Done => Owed::none(&self.refs),
            Release::Slow(j) => self.release_slow_with(j, true),
        }
    }

    /// Gives back owned slot `i` (`slot` is `self.slots.get(i)`): the fast release, else
    /// the slow path. After it returns the caller must not touch `self` again, except to
    /// give up the returned `Owed` as that type says.
    #[inline]
    pub(crate) fn release_slot(&self, slot: &Slot<T>, i: usize) -> Owed<'_> {
        // Relaxed: the owner's own count.
        let uses = slot.uses.load(Ordering::Relaxed);
        match self.try_release_fast(slot, i, uses) {
            Release::Done => Owed::none(&self.refs),
            Release::Slow(j) => self.release_slow(j),
        }
    }

    /// The fast release of owned slot `i` (`slot` is `self.slots.get(i)`): `Done` when the
    /// object is back (idle, or already taken by someone else); then the caller must not
    /// touch `self` again (the pool may be freed at any moment). `Slow(j)` when the caller
    /// owns slot `j` and must call [`release_slow`](Shared::release_slow) on it.
    ///
    /// In a calm pool with nobody queued and no mark on the slot this is a load of the
    /// slot, a plain `Release` store of `IDLE`, the light barrier and a load of the word:
    /// no locked instruction. A party that changed the word meanwhile (the switch to
    /// scarce mode, close, shrink) ran the heavy barrier before looking at the slots, so
    /// the word read here shows it, or our store is seen by it; the release then takes its
    /// object back by CAS (`take_back`) and pushes it onto the idle stack (a scarce pool
    /// nobody waits on, `idle.rs`) or goes the slow way (I3, I4). While the store and the
    /// word read are in flight this thread announces the pool in its hazard record, so a
    /// concurrent last owner does not free the memory under them (I7).
    ///
    /// `uses` is the checkout's use count as its owner reads it (the guard already has
    /// it): it names this checkout in a reclaim record (`take_back_reclaimed`).
    #[inline]
    pub(crate) fn try_release_fast(&self, slot: &Slot<T>, i: usize, uses: u64) -> Release {
        let s = &slot.state;
        // Relaxed: only the owner (us) and reclaims (holding the lock) write a BUSY slot;
        // a mark we miss here is caught by the record check below, or by the push's CAS.
        if s.load(Ordering::Relaxed) != BUSY {
            return Release::Slow(i);
        }
        let Some(announced) = self.hazards.enter(ptr::from_ref(self) as usize) else {
            return self.release_first(slot, i, uses);
        };
        // Release: our writes to the object happen-before the next claimer's Acquire CAS.
        crate::sync::store_over_marks(s, IDLE);
        self.word.light_barrier();
        // Relaxed: the barrier pair orders both loads against the markers' updates (the
        // word; a reclaim's record, on the line we just wrote).
        let record = slot.reported.load(Ordering::Relaxed);
        if self.word.load() == 0 && record & RECLAIM_MARK == 0 {
            announced.exit();
            return Release::Done;
        }
        take_back(self, slot, i, announced, record, uses)
    }

    /// The fast release on a thread without a hazard record yet: makes one; while the
    /// thread's thread-locals are being destroyed (no record can be had), the release goes
    /// the slow way, under the lock, where it sees every queued waiter.
    #[cold]
    #[inline(never)]
    fn release_first(&self, slot: &Slot<T>, i: usize, uses: u64) -> Release {
        if self.hazards.prepare() {
            return self.try_release_fast(slot, i, uses);
        }
        Release::Slow(i)
    }
}
